"""Wiring of campaigns: the campaign desk, built at start-up on the runtime's units of work and
clock with the account's numbers; the dialer ticking on the runtime's jobs, the campaign calls'
desk and the agents' rooms, with their Twilio webhooks."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from channels.twilio.signature import WebhookVerifier
from contact_center.appkeys import RUNTIME
from contact_center.campaigns.agent_room_routes import AGENT_ROOMS
from contact_center.campaigns.agent_rooms import AgentRooms
from contact_center.campaigns.campaign_call_routes import CampaignUrls, campaign_call_routes
from contact_center.campaigns.campaign_calls import CampaignCallDesk
from contact_center.campaigns.desk import CampaignDesk, account_numbers
from contact_center.campaigns.dialer import CampaignDialer, DialerPolicy
from contact_center.campaigns.routes import CAMPAIGN_DESK
from contact_center.late import Late
from contact_center.settings import Settings
from contact_center.throttle import throttle

CAMPAIGN_DIALER = web.AppKey("campaign_dialer", Late[CampaignDialer])
CAMPAIGN_CALL_DESK = web.AppKey("campaign_call_desk", Late[CampaignCallDesk])


def setup_campaigns(app: web.Application) -> None:
    """Build the desk the campaign routes use; must come after the runtime in ``cleanup_ctx``."""
    desk: Late[CampaignDesk] = Late("the campaign desk")
    app[CAMPAIGN_DESK] = desk

    async def _desk_ctx(app: web.Application) -> AsyncIterator[None]:
        runtime = app[RUNTIME]
        desk.set(CampaignDesk(runtime.uow, runtime.clock, runtime.region, account_numbers(runtime.settings)))
        try:
            yield
        finally:
            desk.clear()

    app.cleanup_ctx.append(_desk_ctx)


def setup_dialer(app: web.Application, settings: Settings) -> None:
    """The dialer (a tick per second on the runtime's jobs), the campaign calls' desk and the
    agents' rooms, and their Twilio webhooks; must come after the runtime in ``cleanup_ctx``."""
    dialer: Late[CampaignDialer] = Late("the campaign dialer")
    calls: Late[CampaignCallDesk] = Late("the campaign call desk")
    rooms: Late[AgentRooms] = Late("the agents' campaign rooms")
    app[CAMPAIGN_DIALER], app[CAMPAIGN_CALL_DESK], app[AGENT_ROOMS] = dialer, calls, rooms
    urls = CampaignUrls(settings.server.public_base_url)
    verifier = WebhookVerifier(settings.twilio.auth_token.get_secret_value(), settings.server.public_base_url)

    async def _dialer_ctx(app: web.Application) -> AsyncIterator[None]:
        runtime = app[RUNTIME]
        config = runtime.settings.dialer
        paced = throttle(
            config.calls_per_second, runtime.redis, f"{runtime.settings.redis.key_prefix}dialer:"
        )
        policy = DialerPolicy(
            lease=timedelta(seconds=config.lease_seconds),
            settle_after=timedelta(seconds=config.settle_after_seconds),
            ring_seconds=config.ring_seconds,
            wrap_up_seconds=runtime.settings.voice.wrap_up_seconds,
            quiet_after=timedelta(seconds=config.quiet_seconds),
            max_calls_per_tick=max(1, math.ceil(config.calls_per_second * config.tick_seconds)),
        )
        built = CampaignDialer(
            runtime.uow, runtime.clock, runtime.presence, runtime.twilio, urls, paced, policy
        )
        dialer.set(built)
        calls.set(
            CampaignCallDesk(
                runtime.uow,
                runtime.clock,
                runtime.presence,
                connect_grace=timedelta(seconds=config.connect_grace_seconds),
                wrap_up_seconds=runtime.settings.voice.wrap_up_seconds,
                reservation_seconds=config.reservation_seconds,
            )
        )
        rooms.set(AgentRooms(runtime.uow, runtime.clock, runtime.twilio, urls))
        try:
            with runtime.jobs.every(config.tick_seconds, built.tick, "campaign-dialer"):
                yield
        finally:
            rooms.clear()
            calls.clear()
            dialer.clear()
            await built.release()

    app.cleanup_ctx.append(_dialer_ctx)
    app.router.add_routes(
        campaign_call_routes(calls.get, rooms.get, lambda: app[RUNTIME].twilio, verifier, urls)
    )
