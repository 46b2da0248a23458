"""The sections of the settings: one typed, frozen model per table of config/default.toml.

Mail (mailboxes, SMTP) is in :mod:`contact_center.settings.mail`; the whole and its loading in
:mod:`contact_center.settings.loading`.
"""

from __future__ import annotations

import ipaddress
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfoNotFoundError

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from crm_core.errors import InvalidInput
from crm_core.rules.business_hours import WEEKDAYS, BusinessHours
from crm_core.services.tickets import SlaPolicy
from crm_core.types import Priority


class Section(BaseModel):
    """A table of the settings: unknown keys are refused, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def network_list(value: list[str]) -> list[str]:
    """Addresses or networks (``10.0.0.0/8``), each checked, spaces trimmed."""
    for item in value:
        try:
            ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an address or network like 10.0.0.0/8") from None
    return [item.strip() for item in value]


class ServerSettings(Section):
    host: str
    port: int = Field(ge=0, le=65535)
    public_base_url: str
    max_body_bytes: int = Field(ge=1024)
    shutdown_timeout: float = Field(ge=0)
    # Seconds between SIGTERM and closing the listening socket, answering /readyz with 503
    # "draining" meanwhile so a load balancer stops sending new work first.
    drain_seconds: float = Field(default=0.0, ge=0, le=300)
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return network_list(value)

    def trusted_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(item, strict=False) for item in self.trusted_proxies]

    @field_validator("public_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class MetricsSettings(Section):
    """Who may read ``/metrics``: a peer in ``allow_networks`` (empty: any) and, when ``token``
    is set, only with ``Authorization: Bearer <token>``."""

    token: SecretStr = SecretStr("")
    allow_networks: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    # Figures read from the database and Redis (queues, outboxes, agents) are reused this long.
    cache_seconds: float = Field(default=2.0, ge=0, le=60)

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return network_list(value)

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(item, strict=False) for item in self.allow_networks]


class DatabaseSettings(Section):
    url: str
    pool_size: int = Field(ge=1, le=200)
    echo: bool

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError("not a database URL") from exc
        if url.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
            raise ValueError("use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


class RedisSettings(Section):
    url: str
    key_prefix: str

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be empty or a redis://, rediss:// or unix:// URL")
        return value


class SecuritySettings(Section):
    secret_key: SecretStr
    session_ttl_hours: float = Field(gt=0, le=24 * 30)
    cookie_secure: bool
    login_attempts_per_minute: int = Field(ge=1)
    var_dir: Path
    password_time_cost: int = Field(ge=1, le=20)
    password_memory_kib: int = Field(ge=8, le=4 * 1024 * 1024)


class SlaSettings(Section):
    first_response_minutes: dict[Priority, int]
    resolution_minutes: dict[Priority, int]

    @field_validator("first_response_minutes", "resolution_minutes")
    @classmethod
    def _every_priority(cls, value: dict[Priority, int]) -> dict[Priority, int]:
        missing = set(Priority) - set(value)
        if missing:
            raise ValueError(f"missing priorities: {', '.join(sorted(missing))}")
        if any(v <= 0 for v in value.values()):
            raise ValueError("minutes must be positive")
        return value


class CrmSettings(Section):
    default_region: str
    ticket_first_number: int = Field(ge=1)
    page_size: int = Field(ge=1)
    max_page_size: int = Field(ge=1)
    sla: SlaSettings

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        region = value.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r}; use an ISO 3166 code such as US or GB")
        return region

    def sla_policy(self) -> SlaPolicy:
        return SlaPolicy(
            first_response={p: timedelta(minutes=m) for p, m in self.sla.first_response_minutes.items()},
            resolution={p: timedelta(minutes=m) for p, m in self.sla.resolution_minutes.items()},
            first_number=self.ticket_first_number,
        )


class TwilioSettings(Section):
    account_sid: str = Field(pattern=r"^AC\w{32}$")
    auth_token: SecretStr
    api_base_url: str
    twiml_app_sid: str
    api_key_sid: str
    api_key_secret: SecretStr


class HoursSettings(Section):
    timezone: str
    monday: str
    tuesday: str
    wednesday: str
    thursday: str
    friday: str
    saturday: str
    sunday: str
    holidays: list[date]

    @model_validator(mode="after")
    def _valid_hours(self) -> HoursSettings:
        try:
            self.business_hours()
        except InvalidInput as exc:
            raise ValueError(f"{exc.field}: {exc}") from None
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from exc
        return self

    def business_hours(self) -> BusinessHours:
        days = {day: getattr(self, day) for day in WEEKDAYS}
        return BusinessHours.from_config(self.timezone, days, self.holidays)


class VoiceSettings(Section):
    wrap_up_seconds: float = Field(ge=0, le=3600)
    ring_seconds: int = Field(ge=5, le=120)
    queue_poll_seconds: float = Field(gt=0, le=60)
    # Calls with no news this long are asked of Twilio (ringing/queued, in progress), every poll.
    quiet_ringing_seconds: float = Field(default=120.0, ge=10)
    quiet_in_progress_seconds: float = Field(default=300.0, ge=10)
    quiet_poll_seconds: float = Field(default=30.0, gt=0, le=3600)
    dispositions: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(min_length=1)
    hours: HoursSettings


class DialerSettings(Section):
    """The campaign dialer: its tick, the pacing lease, the account's call rate and answers."""

    tick_seconds: float = Field(default=1.0, gt=0, le=60)
    lease_seconds: float = Field(default=5.0, gt=0, le=300)
    """A campaign's pacing lease lasts this long unless renewed (each tick): how soon another
    instance resumes the campaigns of one that stopped."""
    calls_per_second: float = Field(default=1.0, gt=0, le=1000)
    """The account's calls-per-second limit, shared by every instance (through Redis)."""
    settle_after_seconds: float = Field(default=5.0, gt=0, le=600)
    """A dial recorded this long ago with no call SID is settled by asking Twilio."""
    ring_seconds: int = Field(default=25, ge=15, le=120)
    """How long a campaign call rings before it counts as not answered (at least 15 s: FCC, Ofcom)."""
    connect_grace_seconds: float = Field(default=2.0, gt=0, le=2.0)
    """A live answer not joined to an agent this long after the greeting is abandoned."""
    reservation_seconds: float = Field(default=30.0, gt=0, le=600)
    quiet_seconds: float = Field(default=120.0, gt=0, le=3600)
    """A dial unsettled this long (not with an agent) is asked of Twilio."""


class SandboxNumberSettings(Section):
    voice_url: str = ""
    voice_status_callback: str = ""
    sms_url: str = ""
    voice_status_events: tuple[Literal["initiated", "ringing", "answered", "completed"], ...] = ("completed",)


class LognormalSettings(Section):
    """A simulated duration: ``mean`` seconds on average, ``spread`` the deviation of its logarithm."""

    mean: float = Field(ge=0)
    spread: float = Field(default=0.5, ge=0, le=3)


SandboxDuration = LognormalSettings | tuple[float, float]


class SandboxOutboundSettings(Section):
    human: float = Field(default=0.6, ge=0)
    machine: float = Field(default=0.2, ge=0)
    busy: float = Field(default=0.05, ge=0)
    no_answer: float = Field(default=0.1, ge=0)
    failed: float = Field(default=0.05, ge=0)
    fax: float = Field(default=0.0, ge=0)
    ring_seconds: SandboxDuration = LognormalSettings(mean=7.0, spread=0.5)
    talk_seconds: SandboxDuration = LognormalSettings(mean=60.0, spread=0.8)
    amd_seconds: SandboxDuration = LognormalSettings(mean=2.5, spread=0.3)
    greeting_seconds: SandboxDuration = LognormalSettings(mean=9.0, spread=0.4)
    human_as_machine: float = Field(default=0.0, ge=0, le=1)
    machine_as_human: float = Field(default=0.0, ge=0, le=1)
    machine_end_beep: float = Field(default=0.8, ge=0)
    machine_end_silence: float = Field(default=0.15, ge=0)
    machine_end_other: float = Field(default=0.05, ge=0)
    calls_per_second: float = Field(default=1.0, gt=0, le=1000)
    fail_with_20429_rate: float = Field(default=0.0, ge=0, le=1)

    @field_validator("ring_seconds", "talk_seconds", "amd_seconds", "greeting_seconds")
    @classmethod
    def _range(cls, value: SandboxDuration) -> SandboxDuration:
        if isinstance(value, tuple) and (value[0] < 0 or value[1] < value[0]):
            raise ValueError("must be [min, max] with 0 <= min <= max, or {mean, spread}")
        return value


class SandboxMessageSettings(Section):
    delivered: float = Field(default=0.97, ge=0)
    undelivered: float = Field(default=0.02, ge=0)
    failed: float = Field(default=0.01, ge=0)
    send_seconds: float = Field(default=1.0, ge=0)
    deliver_seconds: float = Field(default=2.0, ge=0)
    out_of_order: bool = False


class SandboxSettings(Section):
    """The built-in Twilio sandbox (contact_center.sandbox)."""

    control_token: SecretStr = SecretStr("")
    time_scale: float = Field(default=1.0, gt=0, le=100)
    seed: int | None = None
    webhook_timeout: float = Field(default=15.0, gt=0, le=120)
    client_voice_url: str = ""
    client_auto_answer_seconds: float = Field(default=0, ge=0)
    outbound: SandboxOutboundSettings = Field(default_factory=SandboxOutboundSettings)
    messages: SandboxMessageSettings = Field(default_factory=SandboxMessageSettings)
    numbers: dict[str, SandboxNumberSettings] = Field(default_factory=dict)

    @field_validator("numbers")
    @classmethod
    def _e164(cls, value: dict[str, SandboxNumberSettings]) -> dict[str, SandboxNumberSettings]:
        for number in value:
            try:
                parsed = phonenumbers.parse(number, None)
            except phonenumbers.NumberParseException:
                parsed = None
            if parsed is None or not phonenumbers.is_valid_number(parsed):
                raise ValueError(f"{number!r} is not an E.164 phone number")
        return value


# The longest an agent's block keeps a visitor's address out of the chat.
MAX_BLOCK_ADDRESS_HOURS = 24 * 365


class WebchatSettings(Section):
    """The web chat widget and its visitors (channels.webchat)."""

    allowed_origins: list[str] = Field(default_factory=list)
    max_chats_per_agent: int = Field(default=3, ge=1, le=50)
    max_message_chars: int = Field(default=2000, ge=1, le=20_000)
    messages_per_minute_per_visitor: int = Field(default=30, ge=1)
    messages_per_minute_per_ip: int = Field(default=120, ge=1)
    connections_per_minute_per_ip: int = Field(default=60, ge=1)
    queue_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    history_limit: int = Field(default=200, ge=1, le=5000)
    load_check_seconds: float = Field(default=60.0, ge=10, le=3600)
    block_address_hours: float = Field(default=24.0, ge=0, le=MAX_BLOCK_ADDRESS_HOURS, allow_inf_nan=False)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not origin.startswith(("http://", "https://")) or origin.rstrip("/").count("/") != 2:
                raise ValueError(f"{origin!r} is not an origin like https://www.example.com")
        return [origin.rstrip("/") for origin in value]


class SmsSettings(Section):
    """Text messages (channels/twilio/sms.py and contact_center/sms/)."""

    from_number: str = "+15005550006"
    ticket_rule: Literal["every_conversation", "no_answer"] = "every_conversation"
    no_answer_minutes: float = Field(default=15.0, gt=0, le=7 * 24 * 60)
    help_reply: str = Field(
        default="Reply STOP to stop receiving texts, START to receive them again. Msg&data rates may apply.",
        max_length=1600,
    )
    opt_out_confirmation: str = Field(
        default=(
            "You are unsubscribed and will get no more texts from us. If you did not mean to, reply START."
        ),
        max_length=320,
    )
    sweep_seconds: float = Field(default=30.0, gt=0, le=3600)
    # Texts one sending number may hand over per second, across every instance (0: no limit).
    max_per_second_per_sender: float = Field(default=0.0, ge=0)
    messaging_service_sid: str = Field(default="", pattern=r"^(MG[0-9a-fA-F]{32})?$")

    @field_validator("from_number")
    @classmethod
    def _e164(cls, value: str) -> str:
        try:
            parsed = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is None or not phonenumbers.is_valid_number(parsed):
            raise ValueError(f"{value!r} is not an E.164 phone number")
        return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    # "json": one JSON object per line (production); "text": a readable line (a terminal).
    format: Literal["json", "text"] = "json"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value
