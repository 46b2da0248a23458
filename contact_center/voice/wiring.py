"""Wiring of voice: the Twilio webhooks answered by the call desk (inbound) and the outbound call
desk (the calls the application places), the desks built at start-up, and what runs beside them
(the queue offered to agents as they become free, and on a timer)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from channels.twilio.outbound import outbound_call_routes
from channels.twilio.signature import WebhookVerifier
from channels.twilio.twiml import VoiceUrls
from channels.twilio.voice import PREFIX, voice_routes
from contact_center.appkeys import RUNTIME
from contact_center.late import Late
from contact_center.routing.free_agents import INBOUND_CALLS, Freed
from contact_center.settings import Settings
from contact_center.voice.desk import CallDesk, CallPolicy
from contact_center.voice.outbound import OutboundCallDesk
from contact_center.voice.reconcile import QuietLimits

# The call desk of a running application (tests reach it through this key).
CALL_DESK = web.AppKey("call_desk", Late[CallDesk])


def call_policy(settings: Settings) -> CallPolicy:
    return CallPolicy(
        region=settings.crm.default_region,
        sla=settings.crm.sla_policy(),
        hours=settings.voice.hours.business_hours(),
        wrap_up_seconds=settings.voice.wrap_up_seconds,
        ring_seconds=settings.voice.ring_seconds,
    )


def _desk_ctx(
    holder: Late[CallDesk], outbound: Late[OutboundCallDesk]
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def desk_ctx(app: web.Application) -> AsyncIterator[None]:
        runtime = app[RUNTIME]
        settings = runtime.settings
        jobs = runtime.jobs
        urls = VoiceUrls(settings.server.public_base_url, PREFIX)
        free_agents = runtime.free_agents
        desk = CallDesk(
            runtime.uow,
            runtime.presence,
            call_policy(settings),
            runtime.twilio,
            urls.connect,
            jobs.spawn,
            free_agents.free_at,
            runtime.clock,
            lookup=runtime.twilio,
            quiet=QuietLimits(
                ringing_seconds=settings.voice.quiet_ringing_seconds,
                in_progress_seconds=settings.voice.quiet_in_progress_seconds,
            ),
        )
        holder.set(desk)
        outbound.set(OutboundCallDesk())

        async def offer_free_agents(freed: frozenset[Freed]) -> None:
            # An agent became free: the longest-waiting callers are offered first (before chats).
            # A wrap-up's end matters only when callers may wait (else nobody waited at the last
            # claim or queue run here).
            if Freed.AVAILABLE in freed or desk.callers_may_wait:
                await desk.connect_waiting_callers()

        unsubscribe = free_agents.register("inbound calls", INBOUND_CALLS, offer_free_agents)
        # Wrap-ups end by themselves (no event): routing offers the agents as those begun here end,
        # and a timer covers the rest (an instance that stopped meanwhile, a refused redirect).
        # Calls whose final status was lost are asked of Twilio and closed (agents freed).
        try:
            with (
                jobs.every(
                    settings.voice.queue_poll_seconds, desk.connect_waiting_callers, "connect-waiting-callers"
                ),
                jobs.every(settings.voice.quiet_poll_seconds, desk.settle_quiet_calls, "settle-quiet-calls"),
            ):
                yield
        finally:
            unsubscribe()
            outbound.clear()
            holder.clear()
            await desk.close()

    return desk_ctx


def setup_voice(app: web.Application, settings: Settings) -> None:
    """Add the voice webhooks; must come after the runtime in ``cleanup_ctx``."""
    holder = Late[CallDesk]("the call desk")
    outbound = Late[OutboundCallDesk]("the outbound call desk")
    app[CALL_DESK] = holder
    base_url = settings.server.public_base_url
    verifier = WebhookVerifier(settings.twilio.auth_token.get_secret_value(), base_url)
    app.cleanup_ctx.append(_desk_ctx(holder, outbound))
    app.router.add_routes(voice_routes(holder.get, verifier, base_url))
    app.router.add_routes(outbound_call_routes(outbound.get, verifier, base_url))
