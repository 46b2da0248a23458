"""Wiring of text messages: the Twilio messaging webhooks, the outbox sender and its timer.

The desk answers the webhooks on the CRM core (``crm_core.services.sms_*``), sends what agents
write through the outbox right after it commits, and a timer on every instance settles texts whose
hand-over went unanswered, sends whatever is due in the queue (after a restart, or a text that
could not reach Twilio) and applies the no-answer ticket rule.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aiohttp import web

from channels.twilio.signature import WebhookVerifier
from channels.twilio.sms import sms_routes, status_callback_url
from contact_center.appkeys import RUNTIME
from contact_center.periodic import every
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import SmsMessage
from crm_core.services import sms_outbound
from crm_core.services.sms_inbound import open_unanswered, receive_sms
from crm_core.services.sms_outbox import SmsOutbox
from crm_core.services.sms_types import InboundSms, SmsPolicy, SmsStatusUpdate, TicketRule
from crm_core.visibility import Viewer

log = logging.getLogger(__name__)


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


class SmsDesk:
    """Implements :class:`crm_core.services.sms_types.SmsInbox`, and sends agents' texts."""

    def __init__(self, uow: UnitOfWorkFactory, policy: SmsPolicy, outbox: SmsOutbox) -> None:
        self._uow = uow
        self.policy = policy
        self.outbox = outbox
        self._tasks: set[asyncio.Task[Any]] = set()

    def _background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def idle(self) -> None:
        """Wait for the texts being sent in the background (the help replies)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def message_received(self, message: InboundSms) -> None:
        async with self._uow() as uow:
            received = await receive_sms(uow, message, self.policy)
            await uow.commit()
        if received.reply_id is not None:
            # Sent after the webhook is answered: Twilio should not wait on our own request to it.
            self._background(self.outbox.send(received.reply_id))

    async def message_status(self, update: SmsStatusUpdate) -> None:
        async with self._uow() as uow:
            row = await sms_outbound.apply_status(uow, update)
            await uow.commit()
        if row is None:
            log.info("receipt %s for unknown text %s ignored", update.status, update.message_sid)

    async def _sent(self, row: SmsMessage, created: bool) -> SmsMessage:
        if not created:
            return row
        await self.outbox.send(row.id)
        async with self._uow() as uow:
            return await uow.session.get_one(SmsMessage, row.id)

    async def reply_on_ticket(
        self, viewer: Viewer, ticket_id: int, *, body: str, to: str | None, idempotency_key: str | None
    ) -> tuple[SmsMessage, bool]:
        async with self._uow() as uow:
            row, created = await sms_outbound.reply_on_ticket(
                uow, viewer, ticket_id, body=body, to=to, policy=self.policy, idempotency_key=idempotency_key
            )
            await uow.commit()
        return await self._sent(row, created), created

    async def text_customer(
        self, viewer: Viewer, customer_id: int, *, body: str, to: str | None, idempotency_key: str | None
    ) -> tuple[SmsMessage, bool]:
        async with self._uow() as uow:
            row, created = await sms_outbound.text_customer(
                uow,
                viewer,
                customer_id,
                body=body,
                to=to,
                policy=self.policy,
                idempotency_key=idempotency_key,
            )
            await uow.commit()
        return await self._sent(row, created), created

    async def sweep(self) -> None:
        """Settle unconfirmed texts, send what is due in the queue; open tickets for texts nobody
        answered in time."""
        await self.outbox.reconcile()
        await self.outbox.send_waiting()
        if self.policy.ticket_rule is TicketRule.NO_ANSWER:
            async with self._uow() as uow:
                await open_unanswered(uow, self.policy)
                await uow.commit()


SMS_DESK = web.AppKey("sms_desk", SmsDesk)


class _DeskOfApp:
    """Routes are added before start-up, the desk is built at start-up: look it up per webhook."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def message_received(self, message: InboundSms) -> None:
        await self._app[SMS_DESK].message_received(message)

    async def message_status(self, update: SmsStatusUpdate) -> None:
        await self._app[SMS_DESK].message_status(update)


async def _desk_ctx(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    settings = runtime.settings
    gateway = runtime.twilio
    base = settings.server.public_base_url
    outbox = SmsOutbox(
        runtime.uow, gateway, lambda message_id: status_callback_url(base, message_id), lookup=gateway
    )
    desk = SmsDesk(runtime.uow, sms_policy(settings), outbox)
    app[SMS_DESK] = desk
    try:
        with every(settings.sms.sweep_seconds, desk.sweep, "sms-sweep"):
            yield
    finally:
        await desk.close()


def setup_sms(app: web.Application, settings: Settings) -> None:
    """Add the messaging webhooks; must come after the runtime in ``cleanup_ctx``."""
    verifier = WebhookVerifier(settings.twilio.auth_token.get_secret_value(), settings.server.public_base_url)
    app.cleanup_ctx.append(_desk_ctx)
    app.router.add_routes(sms_routes(_DeskOfApp(app), verifier))
