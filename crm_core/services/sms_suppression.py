"""The SMS suppression list: numbers that opted out (STOP, or a text asking to stop) or that the
carrier refuses (21610).

Every change is written to the audit log against the customer (or against the suppression row
when no customer is known), with the keyword or error code that caused it, and for an opt-out
asked for inside a longer text, the words that asked and the text itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import UnitOfWork
from crm_core.errors import Conflict
from crm_core.models import SmsSuppression
from crm_core.services.audit import audit
from crm_core.sql import insert_ignore

REASON_KEYWORD = "keyword"
REASON_REQUEST = "opt-out-request"
"""A longer text that asked to stop ("please stop texting me"), not a keyword alone."""
REASON_CARRIER = "carrier-21610"
UNSUBSCRIBED_RECIPIENT = 21610
AUDIT_MESSAGE_CHARS = 500
KEYWORD_CHARS = 20  # the column's length


def why_suppressed(reason: str, keyword: str | None) -> str:
    """What the agent is told about a suppressed number, in words."""
    if reason == REASON_KEYWORD:
        return f"replied {keyword or 'STOP'}"
    if reason == REASON_REQUEST:
        return f"asked in a text to get no more texts ({keyword or 'STOP'})"
    return "is unsubscribed at the carrier (21610)"


class SmsSuppressed(Conflict):
    """A text to a number on the suppression list, refused before it reaches the network."""

    def __init__(self, phone: str, reason: str, keyword: str | None = None) -> None:
        super().__init__(
            f"{phone} {why_suppressed(reason, keyword)}; texts to it are refused until it replies START"
        )
        self.phone = phone
        self.reason = reason


async def suppression_of(session: AsyncSession, phone: str) -> SmsSuppression | None:
    found: SmsSuppression | None = await session.scalar(
        select(SmsSuppression).where(SmsSuppression.phone == phone)
    )
    return found


async def check_not_suppressed(session: AsyncSession, phone: str) -> None:
    found = await suppression_of(session, phone)
    if found is not None:
        raise SmsSuppressed(phone, found.reason, found.keyword)


def _audit(
    uow: UnitOfWork, row_id: int, customer_id: int | None, action: str, changes: dict[str, object]
) -> None:
    if customer_id is not None:
        audit(uow.session, "customer", customer_id, action, None, changes)
    else:
        audit(uow.session, "sms_suppression", row_id, action, None, changes)


async def suppress(
    uow: UnitOfWork,
    phone: str,
    *,
    reason: str,
    customer_id: int | None,
    keyword: str | None = None,
    error_code: int | None = None,
    phrase: str | None = None,
    message: str | None = None,
) -> bool:
    """Put ``phone`` on the list; False when it already was (nothing is audited twice).

    ``phrase`` and ``message``: the words that asked to stop and the text they were in, for an
    opt-out asked for inside a longer text (kept in the audit entry).
    """
    stored_keyword = keyword[:KEYWORD_CHARS] if keyword else None
    values = {"phone": phone, "reason": reason, "keyword": stored_keyword, "customer_id": customer_id}
    new_id = await insert_ignore(uow.session, SmsSuppression, values, ["phone"])
    if new_id is None:
        return False
    changes: dict[str, object] = {"phone": phone, "reason": reason}
    if keyword:
        changes["keyword"] = keyword
    if error_code is not None:
        changes["error_code"] = error_code
    if phrase:
        changes["phrase"] = phrase
    if message is not None:
        changes["message"] = message[:AUDIT_MESSAGE_CHARS]
    _audit(uow, int(new_id), customer_id, "sms_suppressed", changes)
    return True


async def lift(uow: UnitOfWork, phone: str, *, customer_id: int | None, keyword: str) -> bool:
    """Take ``phone`` off the list (the customer replied START); False when it was not on it."""
    found = await suppression_of(uow.session, phone)
    if found is None:
        return False
    await uow.session.execute(delete(SmsSuppression).where(SmsSuppression.id == found.id))
    _audit(
        uow,
        found.id,
        customer_id if customer_id is not None else found.customer_id,
        "sms_unsuppressed",
        {"phone": phone, "keyword": keyword, "was": found.reason},
    )
    return True


async def list_suppressions(session: AsyncSession, *, limit: int, offset: int) -> Sequence[SmsSuppression]:
    rows = await session.scalars(
        select(SmsSuppression).order_by(SmsSuppression.id.desc()).limit(limit).offset(offset)
    )
    return list(rows)
