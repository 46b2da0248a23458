"""Twilio's webhooks as Twilio sends them: form posts signed for the service's public URL."""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from twilio.request_validator import RequestValidator

from contact_center.appkeys import SETTINGS

OUR_NUMBER = "+15005550006"
_NUMBERS = itertools.count(1)


def call_sid() -> str:
    """A CallSid no other test uses (in this run)."""
    return f"CA7e{next(_NUMBERS):030x}"


def message_sid() -> str:
    """A MessageSid no other test uses (in this run)."""
    return f"SM7e{next(_NUMBERS):030x}"


async def post_signed(client: TestClient[Any, Any], path: str, params: dict[str, str]) -> ClientResponse:
    """Post ``params`` to ``path`` of the app behind ``client``, signed with its auth token."""
    settings = client.app[SETTINGS]
    validator = RequestValidator(settings.twilio.auth_token.get_secret_value())
    signature = validator.compute_signature(settings.server.public_base_url + path, params)
    return await client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def inbound_call(sid: str, caller: str) -> dict[str, str]:
    """The voice webhook's form for a call from ``caller`` ringing our number."""
    return {"CallSid": sid, "From": caller, "To": OUR_NUMBER, "CallStatus": "ringing", "Direction": "inbound"}


def inbound_text(sid: str, sender: str, body: str) -> dict[str, str]:
    """The messaging webhook's form for a text from ``sender`` to our number."""
    return {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC5a4db0c0000000000000000000000000",
        "From": sender,
        "To": OUR_NUMBER,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
