"""Customers to and from CSV, in one set of columns so that an export imports back unchanged.

Columns: ``display_name`` (required), ``company``, ``phones`` and ``emails`` (several values
separated by ``;`` or ``|``), ``owner`` (an agent login), ``tags`` (``;``-separated), ``segment``,
``timezone``, ``preferred_language``, ``consent_voice``/``_sms``/``_email``/``_chat`` (true/false,
yes/no, 1/0; empty leaves it unset) and ``custom.<name>`` for each custom field. Header names are
case-insensitive (custom field names keep their case); an empty cell means "no value".

Import reads the file line by line and commits every :data:`BATCH_SIZE` rows. A row whose phone or
email already belongs to a customer completes that customer (missing contact points, tags and empty
fields) instead of creating another one; this holds for rows repeated in the same file too. A row
that cannot be imported is reported with its line number and never stops the others. Within a
batch, the rows that make new customers sharing no phone or email with anybody (in the database or
on an earlier line) are written together (:func:`crm_core.services.customers.create_customers`);
the others follow one by one, so the outcome is that of taking the rows in the file's order.

Export prefixes ``'`` to text cells a spreadsheet would run as a formula (``=``, ``+``, ``-``,
``@``...), and import removes it again.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections import Counter
from collections.abc import AsyncGenerator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import ColumnElement, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.contact_points import normalize_email, normalize_phone
from crm_core.db import UnitOfWork, UnitOfWorkFactory
from crm_core.errors import CoreError, InvalidInput
from crm_core.events import DomainEvent
from crm_core.models import Customer, CustomerEmail, CustomerPhone
from crm_core.services.agents import agent_by_login
from crm_core.services.customers import (
    NewCustomer,
    create_customer,
    create_customers,
    fill_customer,
    with_contact_points,
)
from crm_core.types import Channel
from crm_core.visibility import Viewer, customer_filter

BATCH_SIZE = 500
# Phones or emails asked about in one query (well under SQLite's limit of bound parameters).
LOOKUP_CHUNK = 1000
CUSTOM_PREFIX = "custom."
CONSENT_PREFIX = "consent_"
TEXT_FIELDS = ("company", "segment", "timezone", "preferred_language")
COLUMNS = (
    "display_name",
    "company",
    "phones",
    "emails",
    "owner",
    "tags",
    "segment",
    "timezone",
    "preferred_language",
    *(CONSENT_PREFIX + channel.value for channel in Channel),
)
MAX_CONTACT_POINTS = 20
MAX_TAGS = 50
MAX_TAG_LENGTH = 50
MAX_CUSTOM_FIELDS = 100

_SEPARATORS = re.compile(r"[;|]")
_TAG_SEPARATOR = re.compile(";")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_FORMULA_STARTS = frozenset("=+-@\t\r")
_QUOTED_STARTS = _FORMULA_STARTS | {"'"}

Outcome = Literal["created", "updated", "duplicate"]


class CsvFileError(InvalidInput):
    """The file as a whole cannot be imported (empty, unknown or missing columns...)."""


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


def _max_length(column: str) -> int:
    column_type = Customer.__table__.c[column].type
    assert isinstance(column_type, String) and column_type.length is not None
    return column_type.length


_MAX_LENGTHS = {name: _max_length(name) for name in ("display_name", *TEXT_FIELDS)}


def protect_cell(value: str) -> str:
    """``value`` with a leading ``'`` if a spreadsheet would read it as a formula."""
    if value[:1] in _FORMULA_STARTS or (value[:1] == "'" and value[1:2] in _QUOTED_STARTS):
        return "'" + value
    return value


def unprotect_cell(value: str) -> str:
    """The inverse of :func:`protect_cell`."""
    return value[1:] if value[:1] == "'" and value[1:2] in _QUOTED_STARTS else value


# --- reading ----------------------------------------------------------------------------------


class _TextLines:
    """Text lines of a binary line source; ``undecodable`` is set when a line is not UTF-8."""

    def __init__(self, source: Iterable[bytes]) -> None:
        self._source = iter(source)
        self._first = True
        self.undecodable = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = next(self._source)
        if self._first:
            self._first = False
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.undecodable = True
            return raw.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class _Record:
    line: int
    cells: list[str]
    error: str | None = None


def _records(lines: _TextLines) -> Iterator[_Record]:
    """Non-blank CSV records with the physical line each starts on (the first line is 1)."""
    reader = csv.reader(lines)
    while True:
        start = reader.line_num + 1
        lines.undecodable = False
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield _Record(start, [], f"unreadable CSV: {exc}")
            continue
        if lines.undecodable:
            yield _Record(start, cells, "the line is not UTF-8 text")
        elif any(cell.strip() for cell in cells):
            yield _Record(start, cells)


def parse_header(cells: list[str]) -> tuple[str, ...]:
    """Canonical column names of a header row, or :class:`CsvFileError` naming what is wrong."""
    names: list[str] = []
    unknown: list[str] = []
    for position, cell in enumerate(cells, 1):
        text = cell.strip()
        custom_name = text[len(CUSTOM_PREFIX) :].strip()
        if text.lower().startswith(CUSTOM_PREFIX) and custom_name:
            names.append(CUSTOM_PREFIX + custom_name)
        elif text.lower() in COLUMNS:
            names.append(text.lower())
        else:
            unknown.append(repr(text) if text else f"column {position} (no name)")
    if unknown:
        raise CsvFileError(
            f"unknown columns: {', '.join(unknown)}; "
            f"known columns are {', '.join(COLUMNS)} and {CUSTOM_PREFIX}<name>"
        )
    repeated = [name for name, times in Counter(names).items() if times > 1]
    if repeated:
        raise CsvFileError(f"columns given more than once: {', '.join(repeated)}")
    if "display_name" not in names:
        raise CsvFileError("the display_name column is missing")
    return tuple(names)


class _RowError(Exception):
    """Why one row is rejected."""


@dataclass(slots=True)
class _Row:
    display_name: str
    phones: list[str]
    emails: list[str]
    owner: str | None
    tags: list[str]
    fields: dict[str, Any]


def _split(value: str, separators: re.Pattern[str] = _SEPARATORS) -> list[str]:
    return list(dict.fromkeys(part.strip() for part in separators.split(value) if part.strip()))


def _checked_length(name: str, value: str) -> str:
    if len(value) > _MAX_LENGTHS[name]:
        raise _RowError(f"{name} is longer than {_MAX_LENGTHS[name]} characters")
    return value


def _parse_row(columns: tuple[str, ...], cells: list[str], region: str) -> _Row:
    if any("\x00" in cell for cell in cells):
        raise _RowError("the row contains a NUL character")
    if len(cells) > len(columns) and any(cell.strip() for cell in cells[len(columns) :]):
        raise _RowError(f"{len(cells)} values but the header has {len(columns)} columns")
    values = {
        name: unprotect_cell(cell.strip()) for name, cell in zip(columns, cells, strict=False) if cell.strip()
    }
    display_name = _checked_length("display_name", values.get("display_name", ""))
    if not display_name:
        raise _RowError("display_name is missing")
    phones, emails = _split(values.get("phones", "")), _split(values.get("emails", ""))
    if len(phones) > MAX_CONTACT_POINTS or len(emails) > MAX_CONTACT_POINTS:
        raise _RowError(f"more than {MAX_CONTACT_POINTS} phones or emails")
    e164s: list[str] = []
    for raw in phones:
        try:
            e164s.append(normalize_phone(raw, region))
        except InvalidInput:
            raise _RowError(f"invalid phone {raw!r}") from None
    addresses: list[str] = []
    for raw in emails:
        try:
            addresses.append(normalize_email(raw))
        except InvalidInput:
            raise _RowError(f"invalid email {raw!r}") from None
    tags = _split(values.get("tags", ""), _TAG_SEPARATOR)
    if len(tags) > MAX_TAGS or any(len(tag) > MAX_TAG_LENGTH for tag in tags):
        raise _RowError(f"at most {MAX_TAGS} tags of up to {MAX_TAG_LENGTH} characters")
    fields: dict[str, Any] = {
        name: _checked_length(name, values[name]) for name in TEXT_FIELDS if name in values
    }
    consent: dict[str, bool] = {}
    for channel in Channel:
        column = CONSENT_PREFIX + channel.value
        cell = values.get(column)
        if cell is None:
            continue
        if cell.lower() not in _TRUE | _FALSE:
            raise _RowError(f"bad consent value {cell!r} in {column} (use true/false, yes/no or 1/0)")
        consent[channel.value] = cell.lower() in _TRUE
    custom = {
        name[len(CUSTOM_PREFIX) :]: value for name, value in values.items() if name.startswith(CUSTOM_PREFIX)
    }
    if len(custom) > MAX_CUSTOM_FIELDS:
        raise _RowError(f"more than {MAX_CUSTOM_FIELDS} custom fields")
    return _Row(
        display_name=display_name,
        phones=list(dict.fromkeys(e164s)),
        emails=list(dict.fromkeys(addresses)),
        owner=values.get("owner"),
        tags=tags,
        fields={**fields, "consent": consent, "custom_fields": custom},
    )


# --- importing --------------------------------------------------------------------------------


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
            raise _RowError(f"unknown owner login {login!r}")
        if not found[1]:
            raise _RowError(f"owner {login!r} is inactive")
        return found[0]

    async def _holders(self, row: _Row) -> dict[str, int]:
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
        self, rows: list[tuple[int, _Row]], default_owner: str | None, result: ImportResult
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
            except (_RowError, CoreError) as exc:
                result.rejected.append(RejectedRow(line, str(exc)))
            except IntegrityError:
                reason = "its phone or email was just added elsewhere; import the row again"
                result.rejected.append(RejectedRow(line, reason))

    async def _fresh_customers(
        self, rows: list[tuple[int, _Row]], default_owner: str | None, result: ImportResult
    ) -> tuple[list[tuple[int, _Row, NewCustomer]], list[tuple[int, _Row]]]:
        """The rows that make new customers sharing nothing with anybody, and the others."""
        phones = [p for _, row in rows for p in row.phones]
        emails = [e for _, row in rows for e in row.emails]
        taken = await self._taken(phones, emails)
        fresh: list[tuple[int, _Row, NewCustomer]] = []
        others: list[tuple[int, _Row]] = []
        for line, row in rows:
            points = (*row.phones, *row.emails)
            if any(point in taken for point in points):
                others.append((line, row))
            else:
                try:
                    owner_login = row.owner or default_owner
                    owner_id = await self.owner_id(owner_login) if owner_login else None
                except _RowError as exc:
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

    async def apply(self, row: _Row, default_owner: str | None) -> Outcome:
        owner_login = row.owner or default_owner
        owner_id = await self.owner_id(owner_login) if owner_login else None
        holders = await self._holders(row)
        if len(set(holders.values())) > 1:
            # Which customers they are is not said: the caller may not see all of them.
            raise _RowError(f"conflicting contact points: {', '.join(holders)} belong to different customers")
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
            raise _RowError("its phone or email already belongs to another customer")
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
    records = _records(_TextLines(source))
    header = next(records, None)
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
            except _RowError as exc:
                raise CsvFileError(str(exc)) from None
        batch: list[tuple[int, _Row]] = []
        in_batch = 0
        for record in records:
            try:
                if record.error is not None:
                    raise _RowError(record.error)
                batch.append((record.line, _parse_row(columns, record.cells, region)))
            except (_RowError, CoreError) as exc:
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


# --- exporting --------------------------------------------------------------------------------


def _consent_cell(value: Any) -> str:
    return "true" if value is True else "false" if value is False else ""


def _custom_cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _export_row(customer: Customer, custom_names: list[str]) -> list[str]:
    consent = customer.consent or {}
    custom = customer.custom_fields or {}
    cells: dict[str, str] = {
        "display_name": customer.display_name,
        "company": customer.company or "",
        "emails": ";".join(email.address for email in customer.emails),
        "owner": customer.owner.login if customer.owner is not None else "",
        "tags": ";".join(customer.tags or []),
        "segment": customer.segment or "",
        "timezone": customer.timezone or "",
        "preferred_language": customer.preferred_language or "",
        **{CONSENT_PREFIX + c.value: _consent_cell(consent.get(c.value)) for c in Channel},
        **{CUSTOM_PREFIX + name: _custom_cell(custom.get(name)) for name in custom_names},
    }
    phones = ";".join(phone.e164 for phone in customer.phones)
    names = (*COLUMNS, *(CUSTOM_PREFIX + name for name in custom_names))
    return [phones if name == "phones" else protect_cell(cells[name]) for name in names]


async def _custom_field_names(
    session: AsyncSession, where: list[ColumnElement[bool]], batch_size: int
) -> list[str]:
    names: set[str] = set()
    last_id = 0
    while True:
        stmt = (
            select(Customer.id, Customer.custom_fields)
            .where(*where, Customer.id > last_id)
            .order_by(Customer.id)
            .limit(batch_size)
        )
        rows = (await session.execute(stmt)).all()
        if not rows:
            return sorted(names)
        for _, custom in rows:
            names.update(custom or {})
        last_id = rows[-1][0]


async def export_customers(
    session: AsyncSession, viewer: Viewer | None, *, batch_size: int = BATCH_SIZE
) -> AsyncGenerator[str, None]:
    """CSV text of the customers ``viewer`` may see (every one for None), merged ones left out.

    Yields the header, then one chunk per batch of customers in id order.
    """
    where: list[ColumnElement[bool]] = [Customer.merged_into_id.is_(None)]
    if viewer is not None:
        where.append(customer_filter(viewer))
    custom_names = await _custom_field_names(session, where, batch_size)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*COLUMNS, *(CUSTOM_PREFIX + name for name in custom_names)])
    yield buffer.getvalue()
    last_id = 0
    while True:
        stmt = (
            select(Customer)
            .where(*where, Customer.id > last_id)
            .options(*with_contact_points())
            .order_by(Customer.id)
            .limit(batch_size)
        )
        batch = list(await session.scalars(stmt))
        if not batch:
            return
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(_export_row(customer, custom_names) for customer in batch)
        last_id = batch[-1].id
        session.expunge_all()
        yield buffer.getvalue()
