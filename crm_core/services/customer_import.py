"""Customers from CSV (the format: :mod:`crm_core.services.customer_csv_rows`).

Import reads the file line by line and commits every :data:`BATCH_SIZE` rows. A row whose phone or
email already belongs to a customer completes that customer (missing contact points, tags and empty
fields) instead of creating another one; this holds for rows repeated in the same file too. A row
that cannot be imported is reported with its line number and never stops the others. Within a
batch, the rows that make new customers sharing no phone or email with anybody (in the database or
on an earlier line) are written together (:func:`crm_core.services.customers.create_customers`);
the others follow one by one, so the outcome is that of taking the rows in the file's order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm_core.db import UnitOfWork, UnitOfWorkFactory
from crm_core.errors import CoreError
from crm_core.events import DomainEvent
from crm_core.models import Customer, CustomerEmail, CustomerPhone
from crm_core.services.agents import agent_by_login
from crm_core.services.customer_csv_rows import (
    BATCH_SIZE,
    CsvFileError,
    Row,
    RowError,
    TextLines,
    parse_header,
    parse_row,
    records,
)
from crm_core.services.customers import NewCustomer, create_customer, create_customers, fill_customer
from crm_core.visibility import Viewer, customer_filter

__all__ = ["BATCH_SIZE", "CsvFileError", "ImportResult", "RejectedRow", "import_customers"]

# Phones or emails asked about in one query (well under SQLite's limit of bound parameters).
LOOKUP_CHUNK = 1000

Outcome = Literal["created", "updated", "duplicate"]


@dataclass(frozen=True, slots=True)
class RejectedRow:
    line: int
    reason: str


@dataclass(slots=True)
class ImportResult:
    """Counts of an import; every data row is exactly one of created, updated, duplicate or rejected.

    ``updated`` rows matched an existing customer and added something to it; ``duplicates``
    matched one and had nothing to add.
    """

    created: int = 0
    updated: int = 0
    duplicates: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)

    def count(self, outcome: Outcome) -> None:
        if outcome == "created":
            self.created += 1
        elif outcome == "updated":
            self.updated += 1
        else:
            self.duplicates += 1


class _DryRunUnitOfWork(UnitOfWork):
    """A unit of work that is never committed, so what it would announce is dropped at once."""

    def record(self, event: DomainEvent) -> None:
        return None


class _Importer:
    def __init__(self, uow: UnitOfWork, actor: Viewer | None, region: str) -> None:
        self.uow = uow
        self.actor = actor
        self.region = region
        self._owners: dict[str, tuple[int, bool] | None] = {}

    async def owner_id(self, login: str) -> int:
        key = login.strip().lower()
        if key not in self._owners:
            agent = await agent_by_login(self.uow.session, key)
            self._owners[key] = (agent.id, agent.active) if agent is not None else None
        found = self._owners[key]
        if found is None:
            raise RowError(f"unknown owner login {login!r}")
        if not found[1]:
            raise RowError(f"owner {login!r} is inactive")
        return found[0]

    async def _holders(self, row: Row) -> dict[str, int]:
        """Each of the row's phones and emails that already belongs to a customer, with its id."""
        session = self.uow.session
        found: dict[str, int] = {}
        if row.phones:
            phones = select(CustomerPhone.e164, CustomerPhone.customer_id).where(
                CustomerPhone.e164.in_(row.phones)
            )
            found.update((e164, cid) for e164, cid in await session.execute(phones))
        if row.emails:
            emails = select(CustomerEmail.address, CustomerEmail.customer_id).where(
                CustomerEmail.address.in_(row.emails)
            )
            found.update((address, cid) for address, cid in await session.execute(emails))
        return {point: found[point] for point in (*row.phones, *row.emails) if point in found}

    async def apply_many(
        self, rows: list[tuple[int, Row]], default_owner: str | None, result: ImportResult
    ) -> None:
        """Import rows as if one by one, in their order: the new customers whose phones and emails
        nobody has (in the database or on an earlier row) in one go, then the others one by one."""
        fresh, others = await self._fresh_customers(rows, default_owner, result)
        if fresh:
            try:
                async with self.uow.session.begin_nested():
                    await create_customers(self.uow, self.actor, [new for _, _, new in fresh])
            except (IntegrityError, CoreError):
                # Something changed meanwhile (or a row breaks a rule): one by one, as any row. The
                # customers the rolled-back insert returned must not linger in the session.
                self.uow.session.expunge_all()
                others = sorted([*others, *((line, row) for line, row, _ in fresh)], key=lambda lr: lr[0])
            else:
                result.created += len(fresh)
        for line, row in others:
            try:
                async with self.uow.session.begin_nested():
                    result.count(await self.apply(row, default_owner))
            except (RowError, CoreError) as exc:
                result.rejected.append(RejectedRow(line, str(exc)))
            except IntegrityError:
                reason = "its phone or email was just added elsewhere; import the row again"
                result.rejected.append(RejectedRow(line, reason))

    async def _fresh_customers(
        self, rows: list[tuple[int, Row]], default_owner: str | None, result: ImportResult
    ) -> tuple[list[tuple[int, Row, NewCustomer]], list[tuple[int, Row]]]:
        """The rows that make new customers sharing nothing with anybody, and the others."""
        phones = [p for _, row in rows for p in row.phones]
        emails = [e for _, row in rows for e in row.emails]
        taken = await self._taken(phones, emails)
        fresh: list[tuple[int, Row, NewCustomer]] = []
        others: list[tuple[int, Row]] = []
        for line, row in rows:
            points = (*row.phones, *row.emails)
            if any(point in taken for point in points):
                others.append((line, row))
            else:
                try:
                    owner_login = row.owner or default_owner
                    owner_id = await self.owner_id(owner_login) if owner_login else None
                except RowError as exc:
                    result.rejected.append(RejectedRow(line, str(exc)))
                    continue
                new = NewCustomer(
                    row.display_name, row.phones, row.emails, owner_id, {"tags": row.tags, **row.fields}
                )
                fresh.append((line, row, new))
            taken.update(points)  # a later row with one of them meets this one
        return fresh, others

    async def _taken(self, phones: list[str], emails: list[str]) -> set[str]:
        """Which of these phones and emails belong to a customer already."""
        session = self.uow.session
        taken: set[str] = set()
        for start in range(0, len(phones), LOOKUP_CHUNK):
            chunk = phones[start : start + LOOKUP_CHUNK]
            taken.update(
                await session.scalars(select(CustomerPhone.e164).where(CustomerPhone.e164.in_(chunk)))
            )
        for start in range(0, len(emails), LOOKUP_CHUNK):
            chunk = emails[start : start + LOOKUP_CHUNK]
            taken.update(
                await session.scalars(select(CustomerEmail.address).where(CustomerEmail.address.in_(chunk)))
            )
        return taken

    async def apply(self, row: Row, default_owner: str | None) -> Outcome:
        owner_login = row.owner or default_owner
        owner_id = await self.owner_id(owner_login) if owner_login else None
        holders = await self._holders(row)
        if len(set(holders.values())) > 1:
            # Which customers they are is not said: the caller may not see all of them.
            raise RowError(f"conflicting contact points: {', '.join(holders)} belong to different customers")
        if not holders:
            await create_customer(
                self.uow,
                self.actor,
                region=self.region,
                display_name=row.display_name,
                phones=row.phones,
                emails=row.emails,
                owner_id=owner_id,
                tags=row.tags,
                **row.fields,
            )
            return "created"
        customer_id = next(iter(holders.values()))
        stmt = select(Customer).where(Customer.id == customer_id, Customer.merged_into_id.is_(None))
        if self.actor is not None:
            stmt = stmt.where(customer_filter(self.actor))
        customer = await self.uow.session.scalar(stmt)
        if customer is None:
            raise RowError("its phone or email already belongs to another customer")
        changed = await fill_customer(
            self.uow,
            self.actor,
            customer,
            phones=row.phones,
            emails=row.emails,
            tags=row.tags,
            owner_id=owner_id,
            display_name=row.display_name,
            **row.fields,
        )
        return "updated" if changed else "duplicate"


async def import_customers(
    uow_factory: UnitOfWorkFactory,
    source: Iterable[bytes],
    *,
    actor: Viewer | None,
    region: str,
    default_owner: str | None = None,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
) -> ImportResult:
    """Import the CSV lines of ``source`` (UTF-8 bytes, read lazily) as ``actor`` (None: the system).

    ``default_owner`` is the agent login for rows with an empty owner cell. A dry run goes through
    every row in one transaction that is rolled back. Raises :class:`CsvFileError` before any row
    is imported when the header or ``default_owner`` is wrong.
    """
    lines = records(TextLines(source))
    header = next(lines, None)
    if header is None:
        raise CsvFileError("the file is empty")
    if header.error is not None:
        raise CsvFileError(f"line {header.line}: {header.error}")
    columns = parse_header(header.cells)
    result = ImportResult()
    uow = _DryRunUnitOfWork(uow_factory.sessions, uow_factory.publisher) if dry_run else uow_factory()
    async with uow:
        importer = _Importer(uow, actor, region)
        if default_owner:
            try:
                await importer.owner_id(default_owner)
            except RowError as exc:
                raise CsvFileError(str(exc)) from None
        batch: list[tuple[int, Row]] = []
        in_batch = 0
        for record in lines:
            try:
                if record.error is not None:
                    raise RowError(record.error)
                batch.append((record.line, parse_row(columns, record.cells, region)))
            except (RowError, CoreError) as exc:
                result.rejected.append(RejectedRow(record.line, str(exc)))
            in_batch += 1
            if in_batch >= batch_size:
                await importer.apply_many(batch, default_owner, result)
                if not dry_run:
                    await uow.commit()
                uow.session.expunge_all()
                batch, in_batch = [], 0
        await importer.apply_many(batch, default_owner, result)
        if dry_run:
            await uow.rollback()
        else:
            await uow.commit()
    result.rejected.sort(key=lambda rejected: rejected.line)
    return result
