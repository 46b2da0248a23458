"""The do-not-call lists: the company's own (added through the API, a CSV import, the "do not
call" disposition, the opt-out digit) and the national registry, imported whole from its file.

Numbers are stored in E.164; a number phonenumbers finds invalid is refused, never stored. A
national file older than the profile's limit (31 days: the FCC's scrub interval) is imported
with a warning, and the check reports the list as stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import phonenumbers
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import UnitOfWork
from crm_core.errors import InvalidInput
from crm_core.models import DncSource, DoNotCall
from crm_core.services.audit import audit
from crm_core.sql import insert_ignore

NATIONAL_MAX_AGE = timedelta(days=31)
IMPORT_BATCH = 1000


def normalise_e164(number: str, field_name: str = "number") -> str:
    """``number`` in E.164, or :class:`InvalidInput` saying why it is not a callable number."""
    text = number.strip()
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(
            f"{text!r} is not a phone number in E.164 (+ and country code): {exc}", field_name
        ) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidInput(f"{text!r} is not a valid phone number", field_name)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


async def add(
    uow: UnitOfWork, number: str, source: DncSource, now: datetime, *, actor_id: int | None = None
) -> bool:
    """Put ``number`` on the company's own list; False when it already was (from that source)."""
    if source is DncSource.NATIONAL:
        raise InvalidInput("the national list is replaced by importing its file", "source")
    e164 = normalise_e164(number)
    values = {"e164": e164, "source": source, "added_at": now}
    new_id = await insert_ignore(uow.session, DoNotCall, values, ["e164", "source"])
    if new_id is None:
        return False
    audit(
        uow.session, "do_not_call", int(new_id), "dnc_added", actor_id, {"e164": e164, "source": source.value}
    )
    return True


@dataclass(frozen=True, slots=True)
class NationalImport:
    imported: int
    file_date: date
    rejected: list[tuple[int, str]] = field(default_factory=list)
    """(line number, why) for each line that is not a valid number."""
    warnings: list[str] = field(default_factory=list)


def national_file_age_warning(
    file_date: date, now: datetime, max_age: timedelta = NATIONAL_MAX_AGE
) -> str | None:
    age = now.date() - file_date
    if age > max_age:
        return (
            f"the national do-not-call file is dated {file_date.isoformat()}, {age.days} days ago: "
            f"older than {max_age.days} days; import a newer one"
        )
    return None


async def import_national(
    uow: UnitOfWork,
    lines: Iterable[str],
    file_date: date,
    now: datetime,
    max_age: timedelta = NATIONAL_MAX_AGE,
) -> NationalImport:
    """Replace the national list with the numbers of a registry file (one per line; blank lines
    and lines starting with ``#`` are skipped). Invalid lines are reported, not stored."""
    if file_date > now.date():
        raise InvalidInput(f"the file date {file_date.isoformat()} is in the future", "file_date")
    session = uow.session
    await session.execute(delete(DoNotCall).where(DoNotCall.source == DncSource.NATIONAL))
    seen: set[str] = set()
    rejected: list[tuple[int, str]] = []
    batch: list[dict[str, object]] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            e164 = normalise_e164(text)
        except InvalidInput as exc:
            rejected.append((number, str(exc)))
            continue
        if e164 in seen:
            continue
        seen.add(e164)
        batch.append({"e164": e164, "source": DncSource.NATIONAL, "added_at": now, "file_date": file_date})
        if len(batch) >= IMPORT_BATCH:
            await session.execute(insert(DoNotCall), batch)
            batch = []
    if batch:
        await session.execute(insert(DoNotCall), batch)
    warning = national_file_age_warning(file_date, now, max_age)
    return NationalImport(len(seen), file_date, rejected, [warning] if warning else [])


async def national_file_date(session: AsyncSession) -> date | None:
    """The date of the national file in use (None: none imported). An import replaces the whole
    list, so every national row carries the same date: one row answers, found through the source
    index, instead of an aggregate over the whole registry (millions of rows) at every dial."""
    found: date | None = await session.scalar(
        select(DoNotCall.file_date).where(DoNotCall.source == DncSource.NATIONAL).limit(1)
    )
    return found


@dataclass(frozen=True, slots=True)
class DncCheck:
    e164: str
    internal: list[DncSource]
    """The sources that put the number on the company's own list."""
    national: date | None
    """The date of the national file that lists the number (None: not listed)."""

    @property
    def listed(self) -> bool:
        return bool(self.internal) or self.national is not None


async def check(session: AsyncSession, number: str) -> DncCheck:
    e164 = normalise_e164(number)
    rows: Sequence[DoNotCall] = list(
        await session.scalars(select(DoNotCall).where(DoNotCall.e164 == e164).order_by(DoNotCall.id))
    )
    internal: list[DncSource] = [r.source for r in rows if r.source is not DncSource.NATIONAL]
    national = next((r.file_date or date.min for r in rows if r.source is DncSource.NATIONAL), None)
    return DncCheck(e164, internal, national)
