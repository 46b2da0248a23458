"""Wiring of service levels: the desk on the runtime's units of work and clock, the voice hours
seeded as the ``voice`` calendar, and the escalation pass every ``ESCALATION_EVERY`` seconds of
the runtime's clock on every instance (the pass claims tickets, so instances share the work)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from contact_center.appkeys import RUNTIME
from contact_center.late import Late
from contact_center.service_levels.desk import ServiceLevelDesk
from contact_center.service_levels.routes import SERVICE_LEVEL_DESK
from contact_center.settings import Settings
from crm_core.services.escalation_mail import EscalationMailer

log = logging.getLogger(__name__)
ESCALATION_EVERY = 30.0


def setup_service_levels(
    app: web.Application,
    settings: Settings,
    *,
    mailer: EscalationMailer | None = None,
    wake_mail: Callable[[], None] | None = None,
) -> None:
    """Must come after the runtime in ``cleanup_ctx``. With a ``mailer`` escalations are also
    mailed (``wake_mail`` tells the mail sender there is mail)."""
    desk: Late[ServiceLevelDesk] = Late("the service-level desk")
    app[SERVICE_LEVEL_DESK] = desk

    async def _ctx(app: web.Application) -> AsyncIterator[None]:
        runtime = app[RUNTIME]
        service_levels = ServiceLevelDesk(runtime.uow, runtime.clock, mailer)
        desk.set(service_levels)
        await service_levels.seed(settings.voice.hours.business_hours())

        async def escalate() -> None:
            report = await service_levels.escalate()
            if report.mailed and wake_mail is not None:
                wake_mail()
            if report.fired:
                log.info("escalation pass: %d tickets checked, %d levels fired", report.claimed, report.fired)

        try:
            with runtime.jobs.every(ESCALATION_EVERY, escalate, "escalation pass"):
                yield
        finally:
            desk.clear()

    app.cleanup_ctx.append(_ctx)
