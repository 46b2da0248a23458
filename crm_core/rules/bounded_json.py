"""JSON from outside, decoded within bounds: nesting depth, integer size and storable text.

``json.loads`` recurses once per nesting level, so a body of 20,000 ``[`` ends in a
``RecursionError`` (a 500, or a dead socket handler) instead of a clear refusal; an integer of
2**70 passes every ``isinstance(x, int)`` check and then overflows a BIGINT column. Every edge
that reads JSON (REST bodies, visitor and agent socket frames) decodes it here.
"""

from __future__ import annotations

import json
import re
from typing import Any

from crm_core.rules.storable_text import first_unstorable_path

MAX_DEPTH = 32
INT_BOUND = 2**63 - 1  # what a BIGINT column holds
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class JsonRefused(ValueError):
    """The text is not JSON the service accepts; ``path`` names the offending value if known."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


def nesting_depth(raw: str) -> int:
    """The deepest nesting of arrays and objects, brackets inside strings not counted."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", raw))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _bounded_int(text: str) -> int:
    value = int(text)
    if not -INT_BOUND <= value <= INT_BOUND:
        raise JsonRefused(f"the number {text[:24]}{'…' if len(text) > 24 else ''} is too large")
    return value


def loads(
    raw: str | bytes, *, max_depth: int = MAX_DEPTH, text_storable: bool = True, bound_ints: bool = True
) -> Any:
    """Decode ``raw`` or raise :class:`JsonRefused` (a ``ValueError``): invalid JSON, nested
    deeper than ``max_depth``, (with ``bound_ints``) an integer beyond 64 bits, or (with
    ``text_storable``) a string holding NUL or a lone surrogate, which no column can store.
    Callers that validate every number against a schema pass ``bound_ints=False`` so the
    schema names the field."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    except UnicodeDecodeError as exc:
        raise JsonRefused(f"not UTF-8: {exc}") from None
    if ("[" in text or "{" in text) and nesting_depth(text) > max_depth:
        raise JsonRefused(f"JSON nested deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_int=_bounded_int if bound_ints else None)
    except JsonRefused:
        raise
    except RecursionError:
        raise JsonRefused(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise JsonRefused(f"not valid JSON: {exc}") from None
    if text_storable and "\\u" in text:  # NUL and surrogates only arrive escaped
        path = first_unstorable_path(value)
        if path is not None:
            raise JsonRefused("text may not contain NUL characters or unpaired surrogates", path)
    return value
