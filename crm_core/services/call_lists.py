"""Loading a campaign's call list: from customers (the customer list's own filters), from a CSV
(through the customer import, so its dedupe and identity resolution apply) or from another
campaign's results by disposition. A number is on a campaign once; loading it again is a no-op.

A customer is called on their first phone. Each row caches the callee's zones (the customer's
own zone, else the number's) as ``zone_key`` for the hopper, and the campaign keeps the set of
zone keys its list holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import UnitOfWork, UnitOfWorkFactory
from crm_core.errors import CoreError, InvalidInput
from crm_core.models import Campaign, CampaignContact, ContactState, Customer, CustomerPhone
from crm_core.models.campaign import consents_to_calls
from crm_core.rules.calling_window import callee_zones
from crm_core.services import campaigns
from crm_core.services.customer_csv_rows import RowError, TextLines, parse_header, parse_row, records
from crm_core.services.customer_import import ImportResult, import_customers
from crm_core.services.customers import search_statement
from crm_core.sql import dialect_name, insert_module
from crm_core.visibility import Viewer

BATCH = 1000

_Callee = tuple[int, str, str | None, Any]
"""Customer id, E.164, the customer's zone and consent record."""


@dataclass(slots=True)
class ListLoad:
    """What a load added: ``added`` new numbers, ``already`` numbers the campaign had."""

    added: int = 0
    already: int = 0
    imported: ImportResult | None = None
    missing: list[int] = field(default_factory=list)
    """CSV lines whose number no customer holds after the import (the import rejected them)."""


def zone_key(e164: str, customer_timezone: str | None) -> str:
    return " ".join(sorted(callee_zones(e164, customer_timezone).zones))


async def _add(session: AsyncSession, campaign: Campaign, rows: Sequence[_Callee], now: datetime) -> int:
    """Insert (customer id, E.164, customer zone, customer consent) rows not yet on the list; how
    many were new."""
    if not rows:
        return 0
    values = [
        {
            "campaign_id": campaign.id,
            "customer_id": customer_id,
            "e164": e164,
            "zone_key": zone_key(e164, tz),
            "voice_consent": consents_to_calls(consent),
            "state": ContactState.PENDING,
            "attempts": 0,
            "attempts_today": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for customer_id, e164, tz, consent in rows
    ]
    table = CampaignContact.__table__
    assert isinstance(table, Table)
    stmt = (
        insert_module(dialect_name(session))
        .insert(table)
        .values(values)
        .on_conflict_do_nothing(index_elements=["campaign_id", "e164"])
        .returning(table.c.id)
    )
    added = len(list((await session.execute(stmt)).scalars()))
    keys = {str(v["zone_key"]) for v in values if v["zone_key"]}
    if keys - set(campaign.zone_keys):
        # Read again under a row lock: two loads at once must not lose each other's zones.
        await session.refresh(campaign, ["zone_keys"], with_for_update=True)
        if keys - set(campaign.zone_keys):
            campaign.zone_keys = sorted(set(campaign.zone_keys) | keys)
    await session.flush()
    return added


def _first_phone() -> Any:
    return (
        select(CustomerPhone.e164)
        .where(CustomerPhone.customer_id == Customer.id)
        .order_by(CustomerPhone.id)
        .limit(1)
        .scalar_subquery()
    )


async def _editable_not_stopped(session: AsyncSession, viewer: Viewer, campaign_id: int) -> Campaign:
    campaign = await campaigns.get_editable(session, viewer, campaign_id)
    if campaign.status.value == "stopped":
        raise InvalidInput("a stopped campaign takes no more numbers", "campaign_id")
    return campaign


async def load_customers(
    uow: UnitOfWork, viewer: Viewer, campaign_id: int, now: datetime, *, region: str, **filters: Any
) -> ListLoad:
    """Add the customers ``viewer`` sees that match the customer list's ``filters`` (q, name,
    phone, email, owner_id, pool), each on their first phone."""
    campaign = await _editable_not_stopped(uow.session, viewer, campaign_id)
    chosen = search_statement(viewer, region=region, **filters).subquery()
    phone = _first_phone()
    stmt = (
        select(Customer.id, phone, Customer.timezone, Customer.consent)
        .where(Customer.id.in_(select(chosen.c.id)), phone.is_not(None))
        .order_by(Customer.id)
    )
    result = ListLoad()
    rows = [(int(r[0]), str(r[1]), r[2], r[3]) for r in await uow.session.execute(stmt)]
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        added = await _add(uow.session, campaign, chunk, now)
        result.added += added
        result.already += len(chunk) - added
    return result


async def load_from_campaign(
    uow: UnitOfWork,
    viewer: Viewer,
    campaign_id: int,
    source_id: int,
    dispositions: Iterable[str],
    now: datetime,
) -> ListLoad:
    """Add the numbers of another campaign (one ``viewer`` sees) last dispositioned with one of
    ``dispositions`` (e.g. everyone marked "interested")."""
    campaign = await _editable_not_stopped(uow.session, viewer, campaign_id)
    source = await campaigns.get_visible(uow.session, viewer, source_id)
    codes = sorted(set(dispositions))
    if not codes:
        raise InvalidInput("name at least one disposition to take numbers from", "dispositions")
    stmt = (
        select(CampaignContact.customer_id, CampaignContact.e164, Customer.timezone, Customer.consent)
        .join(Customer, Customer.id == CampaignContact.customer_id)
        .where(CampaignContact.campaign_id == source.id, CampaignContact.last_disposition.in_(codes))
        .order_by(CampaignContact.id)
    )
    result = ListLoad()
    rows = [(int(r[0]), str(r[1]), r[2], r[3]) for r in await uow.session.execute(stmt)]
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        added = await _add(uow.session, campaign, chunk, now)
        result.added += added
        result.already += len(chunk) - added
    return result


def _csv_numbers(source: Iterable[bytes], region: str) -> list[tuple[int, str]]:
    """(line, first phone) of each CSV row that has a valid one, read with the import's parser."""
    lines = records(TextLines(source))
    header = next(lines, None)
    if header is None or header.error is not None:
        return []
    columns = parse_header(header.cells)
    found: list[tuple[int, str]] = []
    for record in lines:
        if record.error is not None:
            continue
        try:
            row = parse_row(columns, record.cells, region)
        except (RowError, CoreError):
            continue
        if row.phones:
            found.append((record.line, row.phones[0]))
    return found


async def load_csv(
    uow_factory: UnitOfWorkFactory,
    viewer: Viewer,
    campaign_id: int,
    read: Callable[[], Iterable[bytes]],
    now: datetime,
    *,
    region: str,
    default_owner: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ListLoad:
    """Import a customer CSV (creating or completing customers as the customer import does), then
    put each row's first phone on the list. ``read`` opens the file afresh each time it is
    called (it is read twice: once by the import, once for the numbers)."""
    async with uow_factory() as uow:
        await _editable_not_stopped(uow.session, viewer, campaign_id)
    imported = await import_customers(
        uow_factory, read(), actor=viewer, region=region, default_owner=default_owner
    )
    numbers = _csv_numbers(read(), region)
    result = ListLoad(imported=imported)
    async with uow_factory() as uow:
        campaign = await _editable_not_stopped(uow.session, viewer, campaign_id)
        for start in range(0, len(numbers), BATCH):
            chunk = numbers[start : start + BATCH]
            held = {
                r[0]: (int(r[1]), r[2], r[3])
                for r in await uow.session.execute(
                    select(CustomerPhone.e164, CustomerPhone.customer_id, Customer.timezone, Customer.consent)
                    .join(Customer, Customer.id == CustomerPhone.customer_id)
                    .where(CustomerPhone.e164.in_([n for _, n in chunk]))
                )
            }
            rows: list[_Callee] = []
            for line, e164 in chunk:
                if e164 in held:
                    customer_id, tz, consent = held[e164]
                    rows.append((customer_id, e164, tz, consent))
                else:
                    result.missing.append(line)
            unique = list({r[1]: r for r in rows}.values())
            added = await _add(uow.session, campaign, unique, now)
            result.added += added
            result.already += len(rows) - added
            await uow.commit()
            if progress is not None:
                progress(len(chunk))
    return result


async def list_size(session: AsyncSession, campaign_id: int) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(CampaignContact)
            .where(CampaignContact.campaign_id == campaign_id)
        )
        or 0
    )
