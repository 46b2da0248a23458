"""The SMS desk: the use case of text messages, one unit of work per event.

- A text arrives (Twilio's inbound webhook): :meth:`SmsDesk.message_received` stores it once per
  MessageSid, reads keywords, threads it to a ticket and queues any reply, in one transaction
  (the decisions: :mod:`contact_center.sms.inbound`); the reply is handed to Twilio after the
  webhook is answered.
- Twilio reports on one of our texts (the status webhook): :meth:`SmsDesk.message_status` moves
  the outbox row forward, never back.
- An agent texts a ticket's customer or a customer (the API): :meth:`SmsDesk.reply_on_ticket` and
  :meth:`SmsDesk.text_customer` write the text to the outbox in one transaction (the decisions:
  :mod:`contact_center.sms.agent_texts`), then hand it to Twilio and answer with its state.
- The sweep (:meth:`SmsDesk.sweep`, on a timer on every instance) settles texts whose hand-over
  went unanswered, sends whatever is due in the queue (after a restart, or a text that could not
  reach Twilio) and applies the no-answer ticket rule.

The steps (storing texts, the suppression list, the outbox and its sender, tickets) are the
core's: ``crm_core.services.sms_*`` and ``crm_core.services.tickets``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from contact_center.jobs import Jobs
from contact_center.sms import agent_texts
from contact_center.sms.inbound import open_unanswered, receive_sms
from crm_core.clock import SystemClock
from crm_core.db import UnitOfWorkFactory
from crm_core.models import SmsMessage
from crm_core.ports import Clock
from crm_core.services.sms_outbound import apply_status
from crm_core.services.sms_outbox import SmsOutbox
from crm_core.services.sms_types import InboundSms, SmsPolicy, SmsStatusUpdate, TicketRule
from crm_core.visibility import Viewer

log = logging.getLogger(__name__)


class SmsDesk:
    """Implements :class:`crm_core.services.sms_types.SmsInbox`, and sends agents' texts."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        policy: SmsPolicy,
        outbox: SmsOutbox,
        jobs: Jobs,
        clock: Clock | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock or SystemClock()
        self.policy = policy
        self.outbox = outbox
        self._jobs = jobs
        # The replies being handed over, only so that idle() can wait for them: the runtime's jobs
        # own them (cancelled and awaited at shutdown).
        self._sending: set[asyncio.Task[Any]] = set()

    def _send_after_answer(self, message_id: int) -> None:
        task = self._jobs.spawn(self.outbox.send(message_id), f"sms-send-{message_id}")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def idle(self) -> None:
        """Wait for the texts being sent in the background (the help replies)."""
        while self._sending:
            await asyncio.gather(*list(self._sending), return_exceptions=True)

    async def message_received(self, message: InboundSms) -> None:
        async with self._uow() as uow:
            received = await receive_sms(uow, message, self.policy, self._clock.now())
            await uow.commit()
        if received.reply_id is not None:
            # Sent after the webhook is answered: Twilio should not wait on our own request to it.
            self._send_after_answer(received.reply_id)

    async def message_status(self, update: SmsStatusUpdate) -> None:
        async with self._uow() as uow:
            row = await apply_status(uow, update)
            await uow.commit()
        if row is None:
            log.info("receipt %s for unknown text %s ignored", update.status, update.message_sid)

    async def _sent(self, row: SmsMessage, created: bool) -> SmsMessage:
        """Hand a new text to Twilio now; answer with its state after (a repeat as it is)."""
        if not created:
            return row
        await self.outbox.send(row.id)
        async with self._uow() as uow:
            return await uow.session.get_one(SmsMessage, row.id)

    async def reply_on_ticket(
        self, viewer: Viewer, ticket_id: int, *, body: str, to: str | None, idempotency_key: str | None
    ) -> tuple[SmsMessage, bool]:
        return await self._agent_text(
            agent_texts.reply_on_ticket, viewer, ticket_id, body, to, idempotency_key
        )

    async def text_customer(
        self, viewer: Viewer, customer_id: int, *, body: str, to: str | None, idempotency_key: str | None
    ) -> tuple[SmsMessage, bool]:
        return await self._agent_text(
            agent_texts.text_customer, viewer, customer_id, body, to, idempotency_key
        )

    async def _agent_text(
        self,
        write: Callable[..., Awaitable[tuple[SmsMessage, bool]]],
        viewer: Viewer,
        target_id: int,
        body: str,
        to: str | None,
        idempotency_key: str | None,
    ) -> tuple[SmsMessage, bool]:
        """An agent's text to a ticket's or a customer's number: queued in one unit of work, then
        sent (a repeated request answers with the first text)."""
        async with self._uow() as uow:
            row, created = await write(
                uow,
                viewer,
                target_id,
                body=body,
                to=to,
                policy=self.policy,
                idempotency_key=idempotency_key,
                now=self._clock.now(),
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
                await open_unanswered(uow, self.policy, self._clock.now())
                await uow.commit()
