"""Ticket references carried by mail: message keys, HMAC-signed refs and subject tokens.

Our outbound Message-IDs look like ``<T1234-5f0c9a1b2e3d.8c1f...@domain>``: the ticket number and
an HMAC of it under the secret key, so a reply names its ticket even when our database no longer
knows that Message-ID, and nobody can forge a reference to someone else's ticket. The same ref is
hidden in our bodies as ``[ref:T1234-5f0c9a1b2e3d]`` for providers that rewrite Message-IDs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

MAX_KEY = 255
REF_RE = re.compile(r"\bT(\d{1,12})-([0-9a-f]{12})\b")
MARKER_RE = re.compile(r"\[ref:(T\d{1,12}-[0-9a-f]{12})\]")


def message_key(message_id: str) -> str:
    """The unique key of a Message-ID (without ``<>``); hashed when too long for the index."""
    value = message_id.strip().strip("<>").strip()
    if len(value) <= MAX_KEY:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


def _signature(number: int, secret: bytes) -> str:
    return hmac.new(secret, f"ticket:{number}".encode(), hashlib.sha256).hexdigest()[:12]


def ticket_ref(number: int, secret: bytes) -> str:
    return f"T{number}-{_signature(number, secret)}"


def body_marker(number: int, secret: bytes) -> str:
    return f"[ref:{ticket_ref(number, secret)}]"


def new_message_id(number: int | None, secret: bytes, domain: str) -> str:
    """A fresh Message-ID (without ``<>``), signed with the ticket when there is one."""
    unique = secrets.token_hex(8)
    if number is None:
        return f"cc.{unique}@{domain}"
    return f"{ticket_ref(number, secret)}.{unique}@{domain}"


def signed_numbers(texts: Iterable[str], secret: bytes) -> list[int]:
    """Ticket numbers of the correctly signed refs in ``texts``, in order of appearance."""
    found: list[int] = []
    for text in texts:
        for match in REF_RE.finditer(text):
            number = int(match.group(1))
            if hmac.compare_digest(match.group(2), _signature(number, secret)) and number not in found:
                found.append(number)
    return found


def is_our_message_id(message_id: str, secret: bytes, domain: str) -> bool:
    value = message_id.strip("<>").lower()
    return value.endswith("@" + domain.lower()) and (
        value.startswith("cc.") or bool(signed_numbers([message_id], secret))
    )


def subject_token(number: int, fmt: str) -> str:
    return fmt.replace("{number}", str(number))


def token_pattern(fmt: str) -> re.Pattern[str]:
    """A regex finding the ticket number in a subject written with ``fmt`` (e.g. ``[#{number}]``)."""
    before, _, after = fmt.partition("{number}")
    return re.compile(re.escape(before) + r"(\d{1,12})" + re.escape(after))


def subject_numbers(subject: str, fmt: str) -> list[int]:
    return [int(m) for m in token_pattern(fmt).findall(subject)]


def with_token(subject: str, number: int, fmt: str) -> str:
    token = subject_token(number, fmt)
    return subject if token in subject else f"{subject} {token}".strip()


def strip_markers(text: str) -> str:
    return MARKER_RE.sub("", text)
