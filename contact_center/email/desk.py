"""The email desk: what the email routes and background work share, and the admins' handling
of quarantined mail (retry, dismiss)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

from channels.email.content_store import ContentStore
from channels.email.parsing import parse_message
from contact_center.settings import Settings
from crm_core.db import UnitOfWork
from crm_core.errors import Conflict, NotFound
from crm_core.models import EmailQuarantine
from crm_core.services.email_batch import ingest
from crm_core.services.email_ingest import EmailPolicy, MailboxPolicy
from crm_core.services.email_outbound import RetryPolicy
from crm_core.services.email_quarantine import mark_resolved, record_failure

log = logging.getLogger(__name__)


@dataclass
class EmailDesk:
    """What the email routes and background tasks share."""

    policy: EmailPolicy
    mailboxes: dict[str, MailboxPolicy]
    store: ContentStore
    retry: RetryPolicy
    settings: Settings
    outbox_wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    def wake_outbox(self) -> None:
        self.outbox_wakeup.set()

    async def retry_quarantined(
        self, uow_factory: Callable[[], UnitOfWork], item_id: int, now: datetime
    ) -> EmailQuarantine:
        """Parse and ingest a quarantined message again, as its mailbox would have at ``now``.
        Resolved on success (a message stored meanwhile counts too); otherwise the new error is
        noted."""
        async with uow_factory() as uow:
            row = await uow.session.get(EmailQuarantine, item_id)
            if row is None:
                raise NotFound(f"no quarantined message {item_id}")
            if row.resolved_at is not None:
                raise Conflict(f"quarantined message {item_id} is already resolved")
            mailbox = self.mailboxes.get(row.mailbox)
            if mailbox is None:
                raise Conflict(f"mailbox {row.mailbox!r} is no longer configured")
            if row.raw_sha256 is None or not self.store.exists(row.raw_sha256):
                raise Conflict(f"the raw bytes of quarantined message {item_id} are not stored")
            raw = self.store.get(row.raw_sha256)
        limit = self.settings.email.max_attachment_bytes
        try:
            mail = parse_message(raw, self.store, max_attachment_bytes=limit)
            async with uow_factory() as uow:
                result = await ingest(uow, mailbox, self.policy, mail, now)
                row = await uow.session.get_one(EmailQuarantine, item_id)
                mark_resolved(row, result.email_id, now)
                await uow.commit()
        except Exception as exc:
            log.warning("quarantined message %s failed again: %s", item_id, exc)
            async with uow_factory() as uow:
                row = await uow.session.get_one(EmailQuarantine, item_id)
                record_failure(row, exc, now)
                await uow.commit()
            return row
        self.wake_outbox()  # its acknowledgment, if any
        return row

    async def dismiss_quarantined(
        self, uow_factory: Callable[[], UnitOfWork], item_id: int, now: datetime
    ) -> EmailQuarantine:
        """Give up on a quarantined message at ``now`` (its raw bytes stay downloadable)."""
        async with uow_factory() as uow:
            row = await uow.session.get(EmailQuarantine, item_id)
            if row is None:
                raise NotFound(f"no quarantined message {item_id}")
            if row.resolved_at is None:
                mark_resolved(row, None, now)
                await uow.commit()
            return row


# Built when the application is set up (it needs no database): routes use it from the first request.
EMAIL_DESK = web.AppKey("email_desk", EmailDesk)
