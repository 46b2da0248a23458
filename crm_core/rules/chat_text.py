"""What a chat message's text and id may be: the rules both ends' messages pass before storing."""

from __future__ import annotations

import unicodedata

from crm_core.errors import InvalidInput

MAX_CLIENT_ID = 64
_KEEP_CONTROLS = frozenset("\n\t")


def clean_text(raw: str, max_chars: int, field: str = "text") -> str:
    """Message text as stored: control characters (but newlines and tabs) dropped, unpaired
    surrogates replaced, surrounding blanks trimmed; empty or longer than ``max_chars`` is refused."""
    text = raw.encode("utf-8", "replace").decode("utf-8")
    text = "".join(
        c for c in text if c in _KEEP_CONTROLS or unicodedata.category(c) not in ("Cc", "Cs")
    ).strip()
    if not text:
        raise InvalidInput("the message is empty", field)
    if len(text) > max_chars:
        raise InvalidInput(f"the message is longer than {max_chars} characters", field)
    return text


def clean_client_id(raw: str) -> str:
    text = raw.strip()
    if not text or len(text) > MAX_CLIENT_ID or not text.isascii() or not text.isprintable():
        raise InvalidInput(f"a message id is 1 to {MAX_CLIENT_ID} printable ASCII characters", "id")
    return text
