"""Twilio's list resources: filters by value and by time (``DateSent>``, ``StartTime<``...), and
pages whose links keep every filter.

A time filter takes a date (``2024-05-01``: the whole day) or a time (``2024-05-01T10:00:00Z``, as
twilio-python sends a ``datetime`` or a ``date``); ``Name>`` means on or after, ``Name<`` on or
before (Twilio's ``Name>=`` and ``Name<=`` read as a key ending in ``>`` or ``<``), and ``Name``
alone the day it names (Twilio: "on this date"), in GMT. A resource without that time
(a text not sent yet, a call not started) matches no time filter. A page's links carry the filters,
the page size, its number and a ``PageToken`` naming the last item before it, so that the next page
starts after that item even while new ones arrive.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from contact_center.sandbox.model import TwilioApiError

T = TypeVar("T")
PAGING = frozenset({"Page", "PageSize", "PageToken"})
INVALID_FILTER = 20001


def _when(name: str, value: str) -> date | datetime:
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise TwilioApiError(INVALID_FILTER, f"Invalid {name}: {value}") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _on(moment: datetime, when: date | datetime) -> bool:
    return moment.astimezone(UTC).date() == (
        when.astimezone(UTC).date() if isinstance(when, datetime) else when
    )


def _after(moment: datetime, when: date | datetime) -> bool:
    return moment.astimezone(UTC).date() >= when if not isinstance(when, datetime) else moment >= when


def _before(moment: datetime, when: date | datetime) -> bool:
    if not isinstance(when, datetime):
        return moment.astimezone(UTC).date() <= when
    return moment.replace(microsecond=0) <= when


def time_filter(query: Mapping[str, str], name: str) -> Callable[[datetime | None], bool]:
    """Whether a time passes the ``name``, ``name<`` and ``name>`` filters of ``query``."""
    tests = [
        (test, _when(key, query[key]))
        for key, test in ((name, _on), (f"{name}<", _before), (f"{name}>", _after))
        if key in query
    ]

    def passes(moment: datetime | None) -> bool:
        if not tests:
            return True
        if moment is None:
            return False
        moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return all(test(moment, when) for test, when in tests)

    return passes


def equal_to(query: Mapping[str, str], name: str, value: str | None) -> bool:
    """Whether ``value`` passes the exact filter ``name`` (absent: everything does)."""
    return name not in query or query[name] == (value or "")


def page(
    query: Mapping[str, str],
    key: str,
    items: Sequence[T],
    sid: Callable[[T], str],
    shape: Callable[[T], dict[str, Any]],
    path: str,
) -> dict[str, Any]:
    """One page of ``items`` (already filtered, in order) as Twilio shapes it."""
    try:
        size = min(1000, max(1, int(query.get("PageSize", "50"))))
        number = max(0, int(query.get("Page", "0")))
    except ValueError as exc:
        raise TwilioApiError(INVALID_FILTER, "Invalid paging parameters") from exc
    start = number * size
    token = query.get("PageToken", "")
    if token.startswith("PA"):
        sids = [sid(item) for item in items]
        if token[2:] in sids:
            start = sids.index(token[2:]) + 1
    chunk = list(items[start : start + size])
    filters = [(name, value) for name, value in query.items() if name not in PAGING]

    def uri(page_number: int, after: T | None = None) -> str:
        paging = [("PageSize", str(size)), ("Page", str(page_number))]
        if after is not None:
            paging.append(("PageToken", "PA" + sid(after)))
        return f"{path}?{urlencode(filters + paging)}"

    more = start + size < len(items)
    return {
        key: [shape(item) for item in chunk],
        "end": max(start, start + len(chunk) - 1),
        "first_page_uri": uri(0),
        "next_page_uri": uri(number + 1, chunk[-1]) if more and chunk else None,
        "page": number,
        "page_size": size,
        "previous_page_uri": uri(number - 1) if number > 0 else None,
        "start": start,
        "uri": f"{path}?{urlencode(list(query.items()))}" if query else uri(number),
    }
