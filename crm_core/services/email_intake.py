"""A watched mailbox's intake: what the IMAP channel hands over, stored with the mailbox's
checkpoint (the core's implementation of :class:`crm_core.email_ports.MailboxIntake`).

A batch and its checkpoint go in one transaction; if that fails, message by message, each with
the checkpoint up to its UID. A message that cannot be stored, like one that could not be parsed,
is quarantined (its raw bytes are kept for an admin to retry) and the mailbox moves on. A batch is
stored as of the intake's clock at its start (threading windows, SLA due times, timestamps).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from crm_core.clock import SystemClock
from crm_core.db import UnitOfWork
from crm_core.email_ports import InboundEmail, IntakeReport, UnreadableMail
from crm_core.ports import Clock
from crm_core.services.email_batch import ingest, ingest_batch
from crm_core.services.email_ingest import (
    EmailPolicy,
    MailboxPolicy,
    Outcome,
    known_keys,
    load_checkpoint,
    save_checkpoint,
)
from crm_core.services.email_quarantine import QuarantinedMail, describe, error_text, quarantine

log = logging.getLogger(__name__)


class EmailIntake:
    """The intake of the mailbox ``mailbox`` names."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        mailbox: MailboxPolicy,
        policy: EmailPolicy,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.mailbox = mailbox
        self.policy = policy
        self.clock: Clock = clock or SystemClock()

    async def checkpoint(self) -> tuple[int | None, int]:
        async with self.uow_factory() as uow:
            return await load_checkpoint(uow.session, self.mailbox.name)

    async def known(self, keys: Sequence[str]) -> set[str]:
        async with self.uow_factory() as uow:
            return await known_keys(uow.session, keys)

    async def save_checkpoint(self, uidvalidity: int, last_uid: int) -> None:
        async with self.uow_factory() as uow:
            await save_checkpoint(uow.session, self.mailbox.name, uidvalidity, last_uid, self.clock.now())
            await uow.commit()

    async def store_batch(
        self,
        uidvalidity: int,
        last_uid: int,
        parsed: Sequence[tuple[int, InboundEmail]],
        unreadable: Sequence[UnreadableMail],
    ) -> IntakeReport:
        name = self.mailbox.name
        now = self.clock.now()
        failed = [
            QuarantinedMail(
                name,
                uidvalidity,
                u.uid,
                raw_sha256=u.raw_sha256,
                raw_size=u.raw_size,
                error=error_text(u.error),
            )
            for u in unreadable
        ]
        try:
            async with self.uow_factory() as uow:
                results = await ingest_batch(uow, self.mailbox, self.policy, [m for _, m in parsed], now)
                for item in failed:
                    await quarantine(uow.session, item, now)
                await save_checkpoint(uow.session, name, uidvalidity, last_uid, now)
                await uow.commit()
            self._log_quarantined(failed)
            return IntakeReport(sum(r.outcome is not Outcome.DUPLICATE for r in results), len(failed))
        except Exception:
            log.exception("mailbox %s: batch failed, ingesting one by one", name)
        stored = 0
        for uid, mail in parsed:
            try:
                async with self.uow_factory() as uow:
                    result = await ingest(uow, self.mailbox, self.policy, mail, now)
                    stored += result.outcome is not Outcome.DUPLICATE
                    await save_checkpoint(uow.session, name, uidvalidity, uid, now)
                    await uow.commit()
            except Exception as exc:
                log.exception("mailbox %s: UID %s could not be ingested", name, uid)
                failed.append(_quarantined(name, uidvalidity, uid, mail, exc))
        async with self.uow_factory() as uow:
            for item in failed:
                await quarantine(uow.session, item, now)
            await save_checkpoint(uow.session, name, uidvalidity, last_uid, now)
            await uow.commit()
        self._log_quarantined(failed)
        return IntakeReport(stored, len(failed))

    def _log_quarantined(self, failed: list[QuarantinedMail]) -> None:
        for item in failed:
            log.warning(
                "mailbox %s: UID %s quarantined (%s); an admin can retry it",
                self.mailbox.name,
                item.uid,
                item.error,
            )


def _quarantined(
    mailbox: str, uidvalidity: int, uid: int, mail: InboundEmail, exc: Exception
) -> QuarantinedMail:
    return QuarantinedMail(
        mailbox=mailbox,
        uidvalidity=uidvalidity,
        uid=uid,
        raw_sha256=mail.raw_sha256,
        raw_size=mail.raw_size,
        error=describe(exc),
        message_key=mail.key,
        from_address=mail.from_address,
        subject=mail.subject,
    )
