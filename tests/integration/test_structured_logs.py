"""Log lines are JSON objects naming the request (X-Request-Id, honoured or made, and returned)
and the call or text a webhook is about; requests and Twilio REST calls make no INFO line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from contact_center.logging_setup import configure_logging
from contact_center.settings import Settings
from tests.support.twilio_webhooks import call_sid, message_sid, post_signed

Client = TestClient[Any, Any]


@pytest.fixture
def log_lines(settings: Settings) -> Iterator[io.StringIO]:
    """The service's log as configured for production (JSON), written to a buffer."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("aiohttp.access", "twilio", "apscheduler")}
    configure_logging(settings.with_overrides(logging={"level": "INFO", "format": "json"}))
    buffer = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers[:], root.level = saved
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


async def test_a_request_id_is_honoured_or_made_and_returned(client: Client) -> None:
    given = await client.get("/healthz", headers={"X-Request-Id": "lb-4f2a-0001"})
    assert given.headers["X-Request-Id"] == "lb-4f2a-0001"
    made = await client.get("/healthz")
    other = await client.get("/healthz")
    assert made.headers["X-Request-Id"] and made.headers["X-Request-Id"] != other.headers["X-Request-Id"]
    odd = await client.get("/healthz", headers={"X-Request-Id": "a b\tc"})
    assert odd.headers["X-Request-Id"] != "a b\tc"  # not a sane id: a new one
    refused = await client.get("/api/v1/customers")  # an error answer names its request too
    assert refused.status == 401 and refused.headers["X-Request-Id"]


async def test_log_lines_name_the_request_and_the_call(client: Client, log_lines: io.StringIO) -> None:
    sid = call_sid()
    params = {"CallSid": sid, "CallStatus": "completed", "SequenceNumber": "1"}
    resp = await post_signed_with_id(client, "/twilio/voice/status", params, "req-voice-1")
    assert resp.status < 500
    written = lines(log_lines)
    about_call = [line for line in written if line.get("call_sid") == sid]
    assert about_call, written
    for line in about_call:
        assert line["request_id"] == "req-voice-1", line
        assert {"timestamp", "level", "logger", "message"} <= set(line), line
    # No access-log line per request at INFO.
    assert not [line for line in written if line["logger"] == "aiohttp.access"], written


async def test_a_text_names_its_message_sid(client: Client, log_lines: io.StringIO) -> None:
    sid = message_sid()
    # An unknown receipt is logged (and ignored), naming the text.
    resp = await post_signed(
        client, "/twilio/sms/status?outbox=999999", {"MessageSid": sid, "MessageStatus": "sent"}
    )
    assert resp.status < 500, await resp.text()
    written = lines(log_lines)
    assert any(line.get("message_sid") == sid for line in written), written


async def post_signed_with_id(client: Client, path: str, params: dict[str, str], request_id: str) -> Any:
    from twilio.request_validator import RequestValidator

    from contact_center.appkeys import SETTINGS

    settings = client.app[SETTINGS]
    validator = RequestValidator(settings.twilio.auth_token.get_secret_value())
    signature = validator.compute_signature(settings.server.public_base_url + path, params)
    return await client.post(
        path, data=params, headers={"X-Twilio-Signature": signature, "X-Request-Id": request_id}
    )
