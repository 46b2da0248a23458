"""Pure email rules: signed ticket refs, subject tokens, and what a reply does to its ticket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_core.rules.email_refs import (
    body_marker,
    is_our_message_id,
    message_key,
    new_message_id,
    signed_numbers,
    subject_numbers,
    with_token,
)
from crm_core.rules.email_threading import ThreadAction, reply_action
from crm_core.rules.ticket_status import TicketStatus

SECRET = b"rules-secret"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
WINDOW = timedelta(days=7)


def test_signed_refs_survive_only_with_the_right_key() -> None:
    message_id = new_message_id(1234, SECRET, "example.com")
    assert message_id.startswith("T1234-") and message_id.endswith("@example.com")
    assert signed_numbers([message_id], SECRET) == [1234]
    assert signed_numbers([message_id], b"another-secret") == []
    assert signed_numbers([f"quoted text {body_marker(77, SECRET)} more"], SECRET) == [77]
    forged = message_id.replace("T1234-", "T1235-")
    assert signed_numbers([forged], SECRET) == []
    assert is_our_message_id(message_id, SECRET, "example.com")
    assert not is_our_message_id("abc@example.com", SECRET, "example.com")
    assert not is_our_message_id(message_id, SECRET, "other.example")


def test_message_keys_are_bounded() -> None:
    assert message_key("<abc@x>") == "abc@x"
    long_id = "a" * 400 + "@x"
    key = message_key(long_id)
    assert key.startswith("sha256:") and len(key) <= 255 and key == message_key(f"<{long_id}>")


def test_subject_tokens_in_any_format() -> None:
    assert subject_numbers("Re: Invoice [#1234] and [#99]", "[#{number}]") == [1234, 99]
    assert subject_numbers("Re: Invoice #1234", "[#{number}]") == []
    assert subject_numbers("Ticket:42 - hello", "Ticket:{number}") == [42]
    assert with_token("Hello", 7, "[#{number}]") == "Hello [#7]"
    assert with_token("Hello [#7]", 7, "[#{number}]") == "Hello [#7]"


def test_reply_action() -> None:
    for status in (TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING):
        assert reply_action(status, None, NOW, WINDOW, automatic=False) is ThreadAction.APPEND
    recent = NOW - timedelta(days=1)
    old = NOW - timedelta(days=8)
    assert reply_action(TicketStatus.RESOLVED, recent, NOW, WINDOW, automatic=False) is ThreadAction.REOPEN
    assert reply_action(TicketStatus.RESOLVED, old, NOW, WINDOW, automatic=False) is ThreadAction.NEW_LINKED
    assert reply_action(TicketStatus.CLOSED, recent, NOW, WINDOW, automatic=False) is ThreadAction.NEW_LINKED
    assert reply_action(TicketStatus.CLOSED, recent, NOW, WINDOW, automatic=True) is ThreadAction.APPEND
    assert reply_action(TicketStatus.RESOLVED, recent, NOW, WINDOW, automatic=True) is ThreadAction.APPEND
