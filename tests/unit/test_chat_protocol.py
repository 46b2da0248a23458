"""The visitor socket's wire format, visitor tokens and the message text rules."""

from __future__ import annotations

import pytest

from channels.webchat.protocol import FrameError, Hello, LeaveMessage, Send, Start, parse_frame
from channels.webchat.tokens import VisitorTokens
from crm_core.errors import InvalidInput
from crm_core.rules.chat_text import clean_client_id, clean_text


def test_tokens_verify_only_their_own_signature() -> None:
    tokens = VisitorTokens("a-secret-key-of-some-length")
    visitor_id, token = tokens.issue()
    assert tokens.verify(token) == visitor_id
    assert tokens.token_for(visitor_id) == token
    assert VisitorTokens("another-secret-key-entirely").verify(token) is None
    tampered = ("0" if visitor_id[0] != "0" else "1") + token[1:]
    for bad in (tampered, token[:-1], visitor_id, "", ".", "x" * 40 + "." + token.split(".")[1]):
        assert tokens.verify(bad) is None
    assert tokens.issue()[0] != visitor_id


def test_frames_are_parsed_into_their_types() -> None:
    assert parse_frame('{"type": "hello", "token": null}') == Hello(type="hello", token=None)
    start = parse_frame('{"type": "start", "name": "  Ann ", "transcript": true, "extra": 1}')
    assert isinstance(start, Start) and start.name == "Ann" and start.transcript
    send = parse_frame('{"type": "message", "id": "m-1", "text": "<b>hi</b>"}')
    assert isinstance(send, Send) and send.text == "<b>hi</b>"
    assert isinstance(parse_frame('{"type": "leave_message", "text": "x"}'), LeaveMessage)


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        ("nope", "invalid_json", None),
        ("[1]", "invalid_frame", None),
        ('{"type": 3}', "invalid_frame", None),
        ('{"type": "dance"}', "unknown_type", None),
        ('{"type": "message", "id": "", "text": "x"}', "invalid_frame", "id"),
        ('{"type": "message", "id": "a"}', "invalid_frame", "text"),
        ('{"type": "read", "up_to": -1}', "invalid_frame", "up_to"),
        ('{"type": "typing", "typing": "maybe"}', "invalid_frame", "typing"),
        ('{"type": "message", "id": "a", "text": "' + "x" * 70_000 + '"}', "too_large", None),
    ],
)
def test_bad_frames_are_named(raw: str, code: str, field: str | None) -> None:
    with pytest.raises(FrameError) as refused:
        parse_frame(raw)
    assert refused.value.code == code
    assert refused.value.field == field


def test_message_text_is_cleaned_and_bounded() -> None:
    assert clean_text("  hello\x00 \x1b[31mworld\n\tok  ", 100) == "hello [31mworld\n\tok"
    assert clean_text("\ud800 lone", 100) == "? lone"
    assert clean_text("<script>alert(1)</script>", 100) == "<script>alert(1)</script>"
    assert clean_text("é" * 10, 10) == "é" * 10
    for bad in ("", "   ", "\x00\x07", "x" * 11):
        with pytest.raises(InvalidInput):
            clean_text(bad, 10)
    assert clean_client_id(" abc-1 ") == "abc-1"
    for bad in ("", "x" * 65, "naïve", "a\nb"):
        with pytest.raises(InvalidInput):
            clean_client_id(bad)
