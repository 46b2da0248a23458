"""Wiring of text messages: the desk built at start-up on the runtime's Twilio gateway, its sweep
on the runtime's scheduler, and the messaging webhooks."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

from aiohttp import web

from channels.twilio.sms import status_callback_url
from contact_center.appkeys import RUNTIME
from contact_center.late import Late
from contact_center.settings import Settings
from contact_center.sms.desk import SmsDesk
from contact_center.sms.routes import SMS_DESK, twilio_webhooks
from contact_center.throttle import throttle
from crm_core.services.sms_outbox import SmsOutbox
from crm_core.services.sms_types import SmsPolicy, TicketRule


def sms_policy(settings: Settings) -> SmsPolicy:
    return SmsPolicy(
        region=settings.crm.default_region,
        sla=settings.crm.sla_policy(),
        default_from=settings.sms.from_number,
        ticket_rule=TicketRule(settings.sms.ticket_rule),
        no_answer_minutes=settings.sms.no_answer_minutes,
        help_reply=settings.sms.help_reply.strip(),
        opt_out_confirmation=settings.sms.opt_out_confirmation.strip(),
    )


async def _desk_ctx(app: web.Application, desk: Late[SmsDesk]) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    settings = runtime.settings
    gateway = runtime.twilio
    base = settings.server.public_base_url
    outbox = SmsOutbox(
        runtime.uow,
        gateway,
        lambda message_id: status_callback_url(base, message_id),
        lookup=gateway,
        throttle=throttle(
            settings.sms.max_per_second_per_sender, runtime.redis, f"{settings.redis.key_prefix}sms:"
        ),
        clock=runtime.clock,
    )
    built = SmsDesk(runtime.uow, sms_policy(settings), outbox, runtime.jobs, runtime.clock)
    desk.set(built)
    try:
        with runtime.jobs.every(settings.sms.sweep_seconds, built.sweep, "sms-sweep"):
            yield
    finally:
        desk.clear()


def setup_sms(app: web.Application, settings: Settings) -> None:
    """Add the messaging webhooks; must come after the runtime in ``cleanup_ctx``."""
    desk: Late[SmsDesk] = Late("the SMS desk")
    app[SMS_DESK] = desk
    app.cleanup_ctx.append(functools.partial(_desk_ctx, desk=desk))
    app.router.add_routes(twilio_webhooks(desk.get, settings))
