"""Managing the company's do-not-call list from the API and the CLI: listing it, importing a file
of numbers onto it, and taking a number off it (audited). Adding one number and the national file
are :mod:`crm_core.services.do_not_call`'s."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, delete, select

from crm_core.db import UnitOfWork
from crm_core.errors import InvalidInput, NotFound
from crm_core.models import DncSource, DoNotCall
from crm_core.services import do_not_call
from crm_core.services.audit import audit
from crm_core.services.pages import Page, paginate

BATCH = 1000


def list_statement(*, national: bool | None = None, number: str | None = None) -> Select[tuple[DoNotCall]]:
    """The listed numbers, newest first; ``national``: only that list (None: both)."""
    stmt = select(DoNotCall)
    if national is not None:
        on_national = DoNotCall.source == DncSource.NATIONAL
        stmt = stmt.where(on_national if national else ~on_national)
    if number is not None:
        stmt = stmt.where(DoNotCall.e164 == do_not_call.normalise_e164(number))
    return stmt


async def list_numbers(
    uow: UnitOfWork, *, limit: int, offset: int, national: bool | None = None, number: str | None = None
) -> Page[DoNotCall]:
    stmt = list_statement(national=national, number=number)
    return await paginate(uow.session, stmt, DoNotCall.id.desc(), limit=limit, offset=offset)


async def remove(uow: UnitOfWork, number: str, *, actor_id: int | None) -> int:
    """Take ``number`` off the company's own list (every source that put it there); how many
    entries went. The national list changes only by importing its next file."""
    e164 = do_not_call.normalise_e164(number)
    gone = list(
        await uow.session.scalars(
            delete(DoNotCall)
            .where(DoNotCall.e164 == e164, DoNotCall.source != DncSource.NATIONAL)
            .returning(DoNotCall.id)
        )
    )
    if not gone:
        raise NotFound(f"{e164} is not on the company's do-not-call list")
    audit(uow.session, "do_not_call", gone[0], "dnc_removed", actor_id, {"e164": e164})
    return len(gone)


@dataclass(slots=True)
class CompanyImport:
    added: int = 0
    already: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


async def import_company(
    uow: UnitOfWork,
    lines: Iterable[str],
    now: datetime,
    *,
    actor_id: int | None,
    progress: Callable[[int], None] | None = None,
) -> CompanyImport:
    """Add the numbers of a file (one per line; a first cell of a CSV line; blank lines and ``#``
    comments skipped) to the company's list as a CSV import. Invalid lines are reported."""
    result = CompanyImport()
    done = 0
    for line_no, line in enumerate(lines, start=1):
        text = line.split(",", 1)[0].strip().strip('"')
        if text and not text.startswith("#") and text.lower() not in ("number", "phone", "e164"):
            try:
                added = await do_not_call.add(uow, text, DncSource.CSV, now, actor_id=actor_id)
            except InvalidInput as exc:
                result.rejected.append((line_no, str(exc)))
            else:
                result.added += added
                result.already += not added
        done += 1
        if done % BATCH == 0:
            await uow.session.flush()
            if progress is not None:
                progress(BATCH)
    if progress is not None:
        progress(done % BATCH)
    return result
