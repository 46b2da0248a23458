"""The outbox sender with a scripted gateway: a text is handed over once, whatever happens; only a
rate-limited one goes back to the queue; one without an answer is never resent; a number
suppressed after queueing is never texted."""

from __future__ import annotations

import asyncio

from crm_core.db import UnitOfWorkFactory
from crm_core.errors import GatewayError
from crm_core.models import SmsMessage
from crm_core.services.sms_outbound import apply_status, queue_sms
from crm_core.services.sms_outbox import SmsOutbox
from crm_core.services.sms_suppression import REASON_KEYWORD, suppress
from crm_core.services.sms_types import SmsStatusUpdate
from tests.integration.test_sms_inbound import customer_with_phone

TO = "+12025550143"


class ScriptedGateway:
    """Answers each send with the next outcome: a MessageSid, or an error to raise."""

    def __init__(self, *outcomes: str | GatewayError) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[tuple[str, str, str | None]] = []

    async def send_sms(self, *, to: str, from_: str, body: str, status_callback: str | None = None) -> str:
        self.sent.append((to, body, status_callback))
        await asyncio.sleep(0.01)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, GatewayError):
            raise outcome
        return outcome


async def queued(uow_factory: UnitOfWorkFactory, body: str = "Hello") -> int:
    customer_id = await customer_with_phone(uow_factory)
    async with uow_factory() as uow:
        row = await queue_sms(uow, customer_id=customer_id, to=TO, from_="+15005550006", body=body)
        await uow.commit()
    return row.id


async def load(uow_factory: UnitOfWorkFactory, message_id: int) -> SmsMessage:
    async with uow_factory() as uow:
        return await uow.session.get_one(SmsMessage, message_id)


def outbox(uow_factory: UnitOfWorkFactory, gateway: ScriptedGateway) -> SmsOutbox:
    return SmsOutbox(
        uow_factory, gateway, lambda message_id: f"https://cc.example/twilio/sms/status?outbox={message_id}"
    )


async def test_a_text_is_handed_over_once_even_when_sent_twice_at_once(
    uow_factory: UnitOfWorkFactory,
) -> None:
    message_id = await queued(uow_factory)
    gateway = ScriptedGateway("SM" + "1" * 32, "SM" + "2" * 32)
    sender = outbox(uow_factory, gateway)
    results = await asyncio.gather(sender.send(message_id), sender.send(message_id), sender.send_waiting())
    assert results[:2].count(True) + results[2] == 1
    assert gateway.sent == [(TO, "Hello", f"https://cc.example/twilio/sms/status?outbox={message_id}")]
    row = await load(uow_factory, message_id)
    assert (row.message_sid, row.status) == ("SM" + "1" * 32, "queued")
    assert await sender.send(message_id) is False and len(gateway.sent) == 1


async def test_rate_limited_texts_go_back_to_the_queue(uow_factory: UnitOfWorkFactory) -> None:
    message_id = await queued(uow_factory)
    gateway = ScriptedGateway(
        GatewayError("slow down", code=20429, status=429, retryable=True), "SM" + "3" * 32
    )
    sender = outbox(uow_factory, gateway)
    assert await sender.send(message_id) is False
    row = await load(uow_factory, message_id)
    assert (row.status, row.claimed_at, row.message_sid) == ("queued", None, None)
    assert await sender.send_waiting() == 1
    assert (await load(uow_factory, message_id)).message_sid == "SM" + "3" * 32


async def test_no_answer_is_never_resent_but_a_later_receipt_still_counts(
    uow_factory: UnitOfWorkFactory,
) -> None:
    message_id = await queued(uow_factory)
    gateway = ScriptedGateway(GatewayError("text message: no answer from Twilio (TimeoutError)"))
    sender = outbox(uow_factory, gateway)
    assert await sender.send(message_id) is False
    assert (await load(uow_factory, message_id)).status == "unconfirmed"
    assert await sender.send_waiting() == 0 and len(gateway.sent) == 1
    async with uow_factory() as uow:
        await apply_status(uow, SmsStatusUpdate("SM" + "4" * 32, "delivered", outbox_id=message_id))
        await uow.commit()
    row = await load(uow_factory, message_id)
    assert (row.status, row.message_sid) == ("delivered", "SM" + "4" * 32)


async def test_refused_texts_fail_with_twilios_code(uow_factory: UnitOfWorkFactory) -> None:
    message_id = await queued(uow_factory)
    gateway = ScriptedGateway(GatewayError("invalid To", code=21211, status=400))
    assert await outbox(uow_factory, gateway).send(message_id) is False
    row = await load(uow_factory, message_id)
    assert (row.status, row.error_code) == ("failed", 21211)


async def test_a_number_suppressed_after_queueing_is_never_texted(uow_factory: UnitOfWorkFactory) -> None:
    message_id = await queued(uow_factory)
    row = await load(uow_factory, message_id)
    async with uow_factory() as uow:
        await suppress(uow, TO, reason=REASON_KEYWORD, customer_id=row.customer_id, keyword="STOP")
        await uow.commit()
    gateway = ScriptedGateway("SM" + "5" * 32)
    assert await outbox(uow_factory, gateway).send(message_id) is False
    assert gateway.sent == []
    row = await load(uow_factory, message_id)
    assert row.status == "failed" and "STOP" in (row.error_message or "")
