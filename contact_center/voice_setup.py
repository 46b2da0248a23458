"""Wiring of the voice channel: the Twilio webhooks answered by the call desk."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from channels.twilio.signature import WebhookVerifier
from channels.twilio.voice import voice_routes
from contact_center.appkeys import RUNTIME
from contact_center.calls import CallDesk, CallPolicy
from contact_center.settings import Settings
from crm_core.voice import (
    CallDecision,
    CallStatusUpdate,
    DialOutcome,
    InboundCall,
    QueueOutcome,
    QueueWait,
    Recording,
)

CALL_DESK = web.AppKey("call_desk", CallDesk)


class _DeskOfApp:
    """Routes are added before start-up, the desk is built at start-up: look it up per call."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    @property
    def _desk(self) -> CallDesk:
        return self._app[CALL_DESK]

    async def inbound_call(self, call: InboundCall) -> CallDecision:
        return await self._desk.inbound_call(call)

    async def call_status(self, update: CallStatusUpdate) -> None:
        await self._desk.call_status(update)

    async def agent_leg_status(self, agent_id: int, parent_call_sid: str, update: CallStatusUpdate) -> None:
        await self._desk.agent_leg_status(agent_id, parent_call_sid, update)

    async def dial_finished(self, outcome: DialOutcome) -> CallDecision:
        return await self._desk.dial_finished(outcome)

    async def queue_wait(self, wait: QueueWait) -> list[str]:
        return await self._desk.queue_wait(wait)

    async def queue_finished(self, outcome: QueueOutcome) -> CallDecision:
        return await self._desk.queue_finished(outcome)

    async def recording_ready(self, recording: Recording) -> None:
        await self._desk.recording_ready(recording)


def call_policy(settings: Settings) -> CallPolicy:
    return CallPolicy(
        region=settings.crm.default_region,
        sla=settings.crm.sla_policy(),
        hours=settings.voice.hours.business_hours(),
        wrap_up_seconds=settings.voice.wrap_up_seconds,
        ring_seconds=settings.voice.ring_seconds,
    )


async def _desk_ctx(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    app[CALL_DESK] = CallDesk(runtime.uow, runtime.presence, call_policy(runtime.settings))
    yield


def setup_voice(app: web.Application, settings: Settings) -> None:
    """Add the voice webhooks; must come after the runtime in ``cleanup_ctx``."""
    verifier = WebhookVerifier(settings.twilio.auth_token.get_secret_value(), settings.server.public_base_url)
    app.cleanup_ctx.append(_desk_ctx)
    app.router.add_routes(voice_routes(_DeskOfApp(app), verifier, settings.server.public_base_url))
