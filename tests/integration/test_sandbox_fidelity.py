"""The sandbox answers as Twilio does where the service depends on it, checked with the official
twilio-python client: texts through a Messaging Service, call and message resources, deletion and
redaction, and Twilio's error bodies."""

from __future__ import annotations

import asyncio

from contact_center.sandbox import MessageOutcomes
from tests.support.sandbox_harness import CALLER, NUMBER, sandbox_env, twilio_client

SERVICE = "MG" + "0123456789abcdef" * 2
DELIVERED = MessageOutcomes(delivered=1, undelivered=0, failed=0)


async def test_a_text_sent_through_a_messaging_service_starts_accepted() -> None:
    async with sandbox_env(messages=DELIVERED) as env:
        client = twilio_client(env)

        def send(path: str, **sender: str) -> str:
            callback = env.fake.url(path)
            message = client.messages.create(to=CALLER, body="Hi", status_callback=callback, **sender)
            assert message.messaging_service_sid == SERVICE
            return str(message.status)

        with_from = await asyncio.to_thread(send, "/with-from", from_=NUMBER, messaging_service_sid=SERVICE)
        alone = await asyncio.to_thread(send, "/alone", messaging_service_sid=SERVICE)
        assert with_from == alone == "accepted"
        for path in ("/with-from", "/alone"):
            callbacks = await env.fake.wait_for(path, 3)
            assert [c.params["MessageStatus"] for c in callbacks] == ["queued", "sent", "delivered"]
            assert all(c.params["MessagingServiceSid"] == SERVICE for c in callbacks)
        assert {c.params["From"] for c in env.fake.at("/with-from")} == {NUMBER}
