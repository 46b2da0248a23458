"""Sending what the outbox holds: claim a queued text, hand it to the gateway, record the answer.

Each step is its own transaction, so a crash between them loses nothing and sends nothing twice:
a claimed text is never claimed again; one the gateway did not answer becomes "unconfirmed"
(never resent, its delivery receipt may still arrive); only a rate-limited one (Twilio cannot
have acted on it) goes back to the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from crm_core.db import UnitOfWorkFactory
from crm_core.errors import GatewayError
from crm_core.ports import SmsSender
from crm_core.services import sms_outbound as outbound

log = logging.getLogger(__name__)


class SmsOutbox:
    def __init__(
        self, uow: UnitOfWorkFactory, sender: SmsSender, status_callback: Callable[[int], str]
    ) -> None:
        self._uow = uow
        self._sender = sender
        self._status_callback = status_callback

    async def send(self, message_id: int) -> bool:
        """Send one queued text; False when it was not sent now (taken, suppressed or refused)."""
        async with self._uow() as uow:
            row = await outbound.claim(uow, message_id)
            await uow.commit()
        if row is None:
            return False
        try:
            sid = await self._sender.send_sms(
                to=row.to_number,
                from_=row.from_number,
                body=row.body,
                status_callback=self._status_callback(row.id),
            )
        except GatewayError as exc:
            async with self._uow() as uow:
                if exc.retryable:
                    await outbound.release(uow, message_id)
                elif exc.code is None and exc.status is None:
                    await outbound.record_unconfirmed(uow, message_id, str(exc))
                else:
                    await outbound.record_refused(uow, message_id, exc.code, str(exc))
                await uow.commit()
            log.warning("text %s not sent: %s", message_id, exc)
            return False
        async with self._uow() as uow:
            await outbound.record_handed_over(uow, message_id, sid)
            await uow.commit()
        return True

    async def send_waiting(self, limit: int = 100) -> int:
        """Send every queued text nobody has taken (after a restart, or a rate-limited one)."""
        async with self._uow() as uow:
            ids = await outbound.waiting_ids(uow.session, limit)
        sent = 0
        for message_id in ids:
            sent += await self.send(message_id)
        return sent
