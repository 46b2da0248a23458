"""The sandbox counts segments as Twilio does, and as the service's own ``count_segments``."""

from __future__ import annotations

import asyncio

import pytest

from contact_center.sandbox.segments import num_segments
from crm_core.rules.sms_segments import count_segments
from tests.support.sandbox_harness import CALLER, NUMBER, sandbox_env, twilio_client

CORPUS = [
    "",
    "Hello",
    "a" * 160,
    "a" * 161,
    "a" * 306,
    "a" * 307,
    "é" * 100,
    "é" * 161,
    "{" * 80,
    "{" * 81,
    "{" * 100,
    "a" * 152 + "{",
    "a" * 153 + "[" + "b" * 10,
    "€" * 77,
    "Your code is 1234 ~ thanks | see you [soon]",
    "Ünïcode ñ but ğ is not GSM",
    "ğ" * 70,
    "ğ" * 71,
    "ğ" * 134,
    "ğ" * 135,
    "😀" * 35,
    "😀" * 36,
    "a" * 66 + "😀" + "b" * 10,
    "Grüße aus Köln! Café, Ærø, Øresund, Δ and Ω.\r\n" * 5,
    "line\fbreak" * 20,
    "`backtick is not GSM`",
    "ç lowercase cedilla is not GSM, Ç is",
]


@pytest.mark.parametrize("text", CORPUS)
def test_the_sandbox_and_the_service_agree(text: str) -> None:
    assert num_segments(text) == count_segments(text).segments


def test_twilio_counts() -> None:
    assert num_segments("é" * 100) == 1  # é is in GSM-7's basic table
    assert num_segments("{" * 100) == 2  # extension characters take two septets: 200 > 160
    assert num_segments("a" * 160) == 1 and num_segments("a" * 161) == 2
    assert num_segments("ğ" * 70) == 1 and num_segments("ğ" * 71) == 2


async def test_messages_answer_their_segments_to_the_official_client() -> None:
    async with sandbox_env() as env:
        client = twilio_client(env)

        def send(body: str) -> str:
            return str(client.messages.create(to=CALLER, from_=NUMBER, body=body).num_segments)

        assert await asyncio.to_thread(send, "é" * 100) == "1"
        assert await asyncio.to_thread(send, "{" * 100) == "2"
        assert await asyncio.to_thread(send, "ğ" * 71) == "2"
