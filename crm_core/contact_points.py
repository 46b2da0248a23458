"""Normalising phone numbers (E.164, via phonenumbers) and email addresses."""

from __future__ import annotations

import re

import phonenumbers

from crm_core.errors import InvalidInput

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
# Checked on the ASCII (IDNA) form of the domain, so internationalised domains pass.
_EMAIL_RE = re.compile(rf"^[^@\s<>()\[\],;:\"]+@{_LABEL}(?:\.{_LABEL})+$")
_DOTLESS_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def normalize_phone(raw: str, default_region: str, field: str = "phone") -> str:
    """Return ``raw`` as E.164 or raise :class:`InvalidInput` naming ``field``."""
    text = raw.strip()
    if not text:
        raise InvalidInput("phone number is empty", field)
    if len(text) > 40:
        raise InvalidInput("phone number is too long", field)
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(f"not a phone number: {exc}", field) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidInput(f"not a valid phone number: {raw!r}", field)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str, field: str = "email") -> str:
    """Lower-case the domain (and the local part: mailboxes here are case-insensitive)."""
    text = raw.strip()
    local, _, domain = text.rpartition("@")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidInput(f"not a valid email domain: {domain!r}", field) from exc
    address = f"{local}@{domain}"
    if len(address) > 320 or not _EMAIL_RE.match(address):
        raise InvalidInput(f"not a valid email address: {raw!r}", field)
    return address.lower()


def email_match_key(normalized: str) -> str:
    """The canonical mailbox behind an address: ``+tags`` dropped, Gmail dots removed."""
    local, _, domain = normalized.rpartition("@")
    local = local.split("+", 1)[0]
    if domain in _DOTLESS_DOMAINS:
        local = local.replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"
