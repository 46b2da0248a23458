"""The customer CSV format: its columns, its cells and the reading of its rows.

Columns: ``display_name`` (required), ``company``, ``phones`` and ``emails`` (several values
separated by ``;`` or ``|``), ``owner`` (an agent login), ``tags`` (``;``-separated), ``segment``,
``timezone``, ``preferred_language``, ``consent_voice``/``_sms``/``_email``/``_chat`` (true/false,
yes/no, 1/0; empty leaves it unset) and ``custom.<name>`` for each custom field. Header names are
case-insensitive (custom field names keep their case); an empty cell means "no value". One set of
columns for import (:mod:`crm_core.services.customer_import`) and export
(:mod:`crm_core.services.customer_export`), so that an export imports back unchanged.

Export prefixes ``'`` to text cells a spreadsheet would run as a formula (``=``, ``+``, ``-``,
``@``...), and import removes it again.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String

from crm_core.contact_points import normalize_email, normalize_phone
from crm_core.errors import InvalidInput
from crm_core.models import Customer
from crm_core.types import Channel

BATCH_SIZE = 500
"""Rows per transaction of an import, customers per query of an export."""
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


class CsvFileError(InvalidInput):
    """The file as a whole cannot be imported (empty, unknown or missing columns...)."""


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


class TextLines:
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
class Record:
    """One CSV record: the line it starts on and its cells, or why it cannot be read."""

    line: int
    cells: list[str]
    error: str | None = None


def records(lines: TextLines) -> Iterator[Record]:
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
            yield Record(start, [], f"unreadable CSV: {exc}")
            continue
        if lines.undecodable:
            yield Record(start, cells, "the line is not UTF-8 text")
        elif any(cell.strip() for cell in cells):
            yield Record(start, cells)


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


class RowError(Exception):
    """Why one row is rejected."""


@dataclass(slots=True)
class Row:
    """One data row, checked and normalised (E.164 phones, lower-case emails): what an import writes."""

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
        raise RowError(f"{name} is longer than {_MAX_LENGTHS[name]} characters")
    return value


def parse_row(columns: tuple[str, ...], cells: list[str], region: str) -> Row:
    if any("\x00" in cell for cell in cells):
        raise RowError("the row contains a NUL character")
    if len(cells) > len(columns) and any(cell.strip() for cell in cells[len(columns) :]):
        raise RowError(f"{len(cells)} values but the header has {len(columns)} columns")
    values = {
        name: unprotect_cell(cell.strip()) for name, cell in zip(columns, cells, strict=False) if cell.strip()
    }
    display_name = _checked_length("display_name", values.get("display_name", ""))
    if not display_name:
        raise RowError("display_name is missing")
    phones, emails = _split(values.get("phones", "")), _split(values.get("emails", ""))
    if len(phones) > MAX_CONTACT_POINTS or len(emails) > MAX_CONTACT_POINTS:
        raise RowError(f"more than {MAX_CONTACT_POINTS} phones or emails")
    e164s: list[str] = []
    for raw in phones:
        try:
            e164s.append(normalize_phone(raw, region))
        except InvalidInput:
            raise RowError(f"invalid phone {raw!r}") from None
    addresses: list[str] = []
    for raw in emails:
        try:
            addresses.append(normalize_email(raw))
        except InvalidInput:
            raise RowError(f"invalid email {raw!r}") from None
    tags = _split(values.get("tags", ""), _TAG_SEPARATOR)
    if len(tags) > MAX_TAGS or any(len(tag) > MAX_TAG_LENGTH for tag in tags):
        raise RowError(f"at most {MAX_TAGS} tags of up to {MAX_TAG_LENGTH} characters")
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
            raise RowError(f"bad consent value {cell!r} in {column} (use true/false, yes/no or 1/0)")
        consent[channel.value] = cell.lower() in _TRUE
    custom = {
        name[len(CUSTOM_PREFIX) :]: value for name, value in values.items() if name.startswith(CUSTOM_PREFIX)
    }
    if len(custom) > MAX_CUSTOM_FIELDS:
        raise RowError(f"more than {MAX_CUSTOM_FIELDS} custom fields")
    return Row(
        display_name=display_name,
        phones=list(dict.fromkeys(e164s)),
        emails=list(dict.fromkeys(addresses)),
        owner=values.get("owner"),
        tags=tags,
        fields={**fields, "consent": consent, "custom_fields": custom},
    )
