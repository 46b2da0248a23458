"""Reading Twilio's form parameters, each checked against what can be stored before anything is.

Identifiers must look like Twilio's (two letters and 32 hex digits, which also fits every column
they go to), numbers are plain digits within a 32-bit integer column, text is bounded, and dates
are RFC 2822 with any zone (``-0000``, "zone unknown", read as UTC). Anything else is
:class:`InvalidInput`, which the webhooks answer with 400 before any work. The values arrive
made storable by :class:`~channels.twilio.signature.WebhookVerifier`, and are made so again
here, so that no parser depends on where its parameters came from.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from multidict import MultiDict

from crm_core.errors import InvalidInput
from crm_core.rules.storable_text import storable

MAX_INT = 2**31 - 1  # the integer columns (durations) and JSON numbers compared as such
MAX_TEXT = 256  # a caller name, a status word, a caller id (numbers, client: and sip: URIs)
MAX_URL = 2048
_SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
_DIGITS = re.compile(r"[0-9]{1,10}")


def text(params: MultiDict[str], name: str, max_length: int = MAX_TEXT) -> str:
    """The parameter stripped ("" when absent); refused when longer than ``max_length``."""
    value = storable(params.get(name, "")).strip()
    if len(value) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters", name)
    return value


def required(params: MultiDict[str], name: str, max_length: int = MAX_TEXT) -> str:
    value = text(params, name, max_length)
    if not value:
        raise InvalidInput(f"missing {name}", name)
    return value


def sid(params: MultiDict[str], name: str, prefixes: tuple[str, ...]) -> str:
    """A Twilio SID (``CA`` and 32 hex digits for a call, ``SM``/``MM`` for a message)."""
    value = required(params, name, max_length=64)
    if not _SID.fullmatch(value) or not value.startswith(prefixes):
        raise InvalidInput(f"{name} is not a Twilio {'/'.join(prefixes)} SID", name)
    return value


def optional_sid(params: MultiDict[str], name: str, prefixes: tuple[str, ...]) -> str | None:
    return sid(params, name, prefixes) if text(params, name, max_length=64) else None


def number(params: MultiDict[str], name: str) -> int | None:
    """A whole number of at most :data:`MAX_INT` (None when absent)."""
    raw = text(params, name, max_length=20)
    if not raw:
        return None
    if not _DIGITS.fullmatch(raw) or int(raw) > MAX_INT:
        raise InvalidInput(f"{name} is not a number up to {MAX_INT}: {raw[:20]!r}", name)
    return int(raw)


def timestamp(params: MultiDict[str], name: str) -> datetime | None:
    """An RFC 2822 date as an aware datetime; None when absent or unreadable (it is a hint only)."""
    raw = text(params, name)
    if not raw:
        return None
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    # "-0000" means "the zone is not known"; Python then answers a naive datetime.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
