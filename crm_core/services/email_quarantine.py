"""Received mail that could not be stored: kept aside (raw bytes in the content store) so the
mailbox moves on, listed for admins, and retried on demand once the cause is fixed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import EmailQuarantine, utcnow
from crm_core.rules.storable_text import storable

MAX_ERROR = 2000
MAX_SUBJECT = 998


@dataclass(frozen=True, slots=True)
class QuarantinedMail:
    """What is known of a message that failed: enough to find it, never its decoded body."""

    mailbox: str
    uidvalidity: int
    uid: int
    raw_sha256: str | None
    raw_size: int
    error: str
    message_key: str | None = None
    from_address: str | None = None
    subject: str = ""


def describe(exc: BaseException) -> str:
    """The error as an admin reads it: type and message, storable, bounded."""
    return error_text(f"{type(exc).__name__}: {exc}")


def error_text(text: str) -> str:
    """An error's description (``Type: message``), storable and bounded."""
    return storable(text.strip())[:MAX_ERROR]


async def quarantine(
    session: AsyncSession, mail: QuarantinedMail, now: datetime | None = None
) -> EmailQuarantine:
    """Keep ``mail`` aside (at ``now``, the current time by default); the same mailbox UID again
    only counts another attempt."""
    now = now or utcnow()
    row = await session.scalar(
        select(EmailQuarantine).where(
            EmailQuarantine.mailbox == mail.mailbox,
            EmailQuarantine.uidvalidity == mail.uidvalidity,
            EmailQuarantine.uid == mail.uid,
        )
    )
    if row is not None:
        row.attempts += 1
        row.last_attempt_at = now
        row.error = storable(mail.error)[:MAX_ERROR]
        return row
    row = EmailQuarantine(
        mailbox=mail.mailbox,
        uidvalidity=mail.uidvalidity,
        uid=mail.uid,
        message_key=storable(mail.message_key)[:255] if mail.message_key else None,
        raw_sha256=mail.raw_sha256,
        raw_size=mail.raw_size,
        from_address=storable(mail.from_address)[:320] if mail.from_address else None,
        subject=storable(mail.subject)[:MAX_SUBJECT],
        error=storable(mail.error)[:MAX_ERROR],
        attempts=1,
        created_at=now,
        last_attempt_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def list_quarantined(
    session: AsyncSession, *, include_resolved: bool = False, limit: int = 100, before_id: int | None = None
) -> Sequence[EmailQuarantine]:
    """Newest first."""
    query = select(EmailQuarantine).order_by(EmailQuarantine.id.desc()).limit(limit)
    if not include_resolved:
        query = query.where(EmailQuarantine.resolved_at.is_(None))
    if before_id is not None:
        query = query.where(EmailQuarantine.id < before_id)
    return (await session.scalars(query)).all()


def mark_resolved(row: EmailQuarantine, email_id: int | None, now: datetime) -> None:
    row.resolved_at = now
    row.email_id = email_id


def record_failure(row: EmailQuarantine, exc: BaseException, now: datetime) -> None:
    row.attempts += 1
    row.last_attempt_at = now
    row.error = describe(exc)
