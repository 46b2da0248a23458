"""What the chat desk is told by the settings: limits, hours, region, and the pages it serves."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from contact_center.settings import Settings
from crm_core.rules.business_hours import BusinessHours
from crm_core.services.tickets import SlaPolicy

RATE_WINDOW_SECONDS = 60


@dataclass(frozen=True, slots=True)
class ChatPolicy:
    region: str
    sla: SlaPolicy
    hours: BusinessHours
    max_message_chars: int = 2000
    messages_per_minute_per_visitor: int = 30
    messages_per_minute_per_ip: int = 120
    connections_per_minute_per_ip: int = 60
    history_limit: int = 200
    block_address_hours: float = 24.0


def chat_policy(settings: Settings) -> ChatPolicy:
    webchat = settings.webchat
    return ChatPolicy(
        region=settings.crm.default_region,
        sla=settings.crm.sla_policy(),
        hours=settings.voice.hours.business_hours(),
        max_message_chars=webchat.max_message_chars,
        messages_per_minute_per_visitor=webchat.messages_per_minute_per_visitor,
        messages_per_minute_per_ip=webchat.messages_per_minute_per_ip,
        connections_per_minute_per_ip=webchat.connections_per_minute_per_ip,
        history_limit=webchat.history_limit,
        block_address_hours=webchat.block_address_hours,
    )


def allowed_origins(settings: Settings) -> frozenset[str]:
    """The configured origins and the service's own."""
    own = urlsplit(settings.server.public_base_url)
    return frozenset({*settings.webchat.allowed_origins, f"{own.scheme}://{own.netloc}"})
