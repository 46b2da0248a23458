"""Text from outside made storable: what PostgreSQL refuses never reaches a column.

PostgreSQL refuses NUL in ``text`` and ``\\u0000`` in ``jsonb``, and a Python string with an
unpaired surrogate (from a ``surrogateescape`` decode) cannot be encoded to UTF-8 at all. One
such character used to fail a whole message on every retry, so every edge (webhooks, mail, chat
frames, REST bodies, CSV) passes strings through :func:`storable` or refuses them with
:func:`has_unstorable`.
"""

from __future__ import annotations

import re
from typing import Any

# NUL and unpaired surrogates; nothing else a UTF-8 database refuses.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_REPLACEMENT = "\ufffd"


def storable(value: str) -> str:
    """``value`` with NULs dropped and unpaired surrogates replaced by U+FFFD."""
    if not _UNSTORABLE.search(value):
        return value
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else _REPLACEMENT, value)


def storable_or_none(value: str | None) -> str | None:
    return None if value is None else storable(value)


def has_unstorable(value: str) -> bool:
    return _UNSTORABLE.search(value) is not None


def storable_json(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings, numbers) with every string, keys included,
    made storable."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable(str(k)): storable_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(v) for v in value]
    return value


def first_unstorable_path(value: Any, path: str = "") -> str | None:
    """The JSON path of the first string (key or value) holding NUL or a lone surrogate."""
    if isinstance(value, str):
        return (path or "$") if has_unstorable(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and has_unstorable(key):
                return here
            found = first_unstorable_path(item, here)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = first_unstorable_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
