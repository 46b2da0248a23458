"""The outbox sender with a scripted gateway and with the real one: a text is handed over once,
whatever happens; one that certainly did not reach Twilio (rate limited, or no connection) goes
back to the queue and is tried again after a growing wait; one without an answer is unconfirmed,
never resent blindly and never dropped, and settled by asking Twilio; a number suppressed after
queueing is never texted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import ClientSession, encode_basic_auth, web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from channels.twilio.gateway import TwilioGateway
from contact_center.sandbox import SandboxConfig, create_sandbox_app
from crm_core.clock import FakeClock
from crm_core.db import UnitOfWorkFactory
from crm_core.errors import GatewayError
from crm_core.models import OutboxEntry, SmsMessage, utcnow
from crm_core.ports import SmsSender
from crm_core.services.sms_outbound import SendRetry, apply_status, claim, queue_sms
from crm_core.services.sms_outbox import SmsOutbox
from crm_core.services.sms_suppression import REASON_KEYWORD, suppress
from crm_core.services.sms_types import SmsLookup, SmsStatusUpdate
from tests.support.sms import customer_with_phone
from tests.support.waiting import free_port

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


async def entry(uow_factory: UnitOfWorkFactory, message_id: int) -> OutboxEntry:
    """The text's outbox row."""
    async with uow_factory() as uow:
        found = await uow.session.scalar(select(OutboxEntry).where(OutboxEntry.sms_message_id == message_id))
        assert found is not None
        return found


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
    claimed_at = (await entry(uow_factory, message_id)).claimed_at
    assert (row.status, claimed_at, row.message_sid) == ("queued", None, None)
    assert await sender.send_waiting() == 0  # not before its wait is over
    assert await sender.send_waiting(now=utcnow() + timedelta(seconds=11)) == 1
    row = await load(uow_factory, message_id)
    assert (row.message_sid, row.error_message) == ("SM" + "3" * 32, None)


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


CALLBACK = "http://127.0.0.1:9/twilio/sms/status?outbox={}"
ACCOUNT = "AC" + "c" * 32
TOKEN = "outbox-test-token"


def sandbox_app() -> web.Application:
    return create_sandbox_app(SandboxConfig(account_sid=ACCOUNT, auth_token=TOKEN, time_scale=0.001, seed=7))


def gateway_at(base_url: str) -> TwilioGateway:
    return TwilioGateway(account_sid=ACCOUNT, auth_token=TOKEN, base_url=base_url, connect_timeout=1.0)


def real_outbox(uow_factory: UnitOfWorkFactory, sender: SmsSender, lookup: SmsLookup | None) -> SmsOutbox:
    return SmsOutbox(uow_factory, sender, CALLBACK.format, lookup=lookup)


async def sandbox_texts(server: TestServer) -> list[dict[str, Any]]:
    url = server.make_url(f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    auth = {"Authorization": encode_basic_auth(ACCOUNT, TOKEN)}
    async with ClientSession(headers=auth) as http, http.get(url) as resp:
        return list((await resp.json())["messages"])


async def test_a_text_sent_while_twilio_refuses_the_connection_goes_out_once_it_is_back(
    uow_factory: UnitOfWorkFactory,
) -> None:
    message_id = await queued(uow_factory)
    port = free_port()
    gateway = gateway_at(f"http://127.0.0.1:{port}")
    sender = real_outbox(uow_factory, gateway, gateway)
    try:
        assert await sender.send(message_id) is False
        row = await load(uow_factory, message_id)
        claimed_at = (await entry(uow_factory, message_id)).claimed_at
        assert (row.status, claimed_at, row.message_sid) == ("queued", None, None)
        assert row.error_message is not None and row.error_message.startswith("not sent yet")
        assert "could not be reached" in row.error_message
        # Still refused when its turn comes again: it waits once more, still queued.
        assert await sender.send_waiting(now=utcnow() + timedelta(seconds=11)) == 0
        assert (await load(uow_factory, message_id)).status == "queued"
        async with TestServer(sandbox_app(), host="127.0.0.1", port=port) as server:
            assert await sender.send_waiting() == 0  # its wait is not over yet
            assert await sender.reconcile(now=utcnow() + timedelta(hours=1)) == 0  # nothing unconfirmed
            assert await sender.send_waiting(now=utcnow() + timedelta(seconds=30)) == 1
            texts = await sandbox_texts(server)
    finally:
        await gateway.close()
    row = await load(uow_factory, message_id)
    assert [t["sid"] for t in texts] == [row.message_sid]
    assert row.error_message is None and texts[0]["body"] == "Hello"


def test_the_wait_before_another_try_doubles_up_to_a_limit() -> None:
    retry = SendRetry(first_seconds=10, max_seconds=600)
    queued_at = utcnow()
    waits = []
    tried_at = queued_at
    for _ in range(9):
        due = retry.due_at(queued_at, tried_at)
        waits.append((due - tried_at).total_seconds())
        tried_at = due
    assert waits == [10, 10, 20, 40, 80, 160, 320, 600, 600]


async def test_a_text_that_cannot_be_sent_for_a_day_fails_saying_why(uow_factory: UnitOfWorkFactory) -> None:
    message_id = await queued(uow_factory)
    refused = GatewayError("text message not sent: Twilio could not be reached", retryable=True)
    sender = outbox(uow_factory, ScriptedGateway(refused, refused))
    assert await sender.send(message_id) is False
    assert (await load(uow_factory, message_id)).status == "queued"
    later = utcnow() + timedelta(hours=25)
    assert await sender.send_waiting(now=later) == 0
    row = await load(uow_factory, message_id)
    assert row.status == "failed" and row.error_message is not None
    assert row.error_message.startswith("not sent after") and "could not be reached" in row.error_message


class LosesTheAnswer:
    """Hands the text to Twilio, then loses Twilio's answer (a timeout after sending)."""

    def __init__(self, gateway: TwilioGateway) -> None:
        self.gateway = gateway

    async def send_sms(self, *, to: str, from_: str, body: str, status_callback: str | None = None) -> str:
        await self.gateway.send_sms(to=to, from_=from_, body=body, status_callback=status_callback)
        raise GatewayError("text message: no answer from Twilio (TimeoutError)", unconfirmed=True)


async def test_an_unconfirmed_text_is_kept_and_settled_by_asking_twilio(
    uow_factory: UnitOfWorkFactory,
) -> None:
    message_id = await queued(uow_factory)
    async with TestServer(sandbox_app(), host="127.0.0.1") as server:
        gateway = gateway_at(str(server.make_url("")))
        sender = real_outbox(uow_factory, LosesTheAnswer(gateway), gateway)
        try:
            assert await sender.send(message_id) is False
            row = await load(uow_factory, message_id)
            assert (row.status, row.message_sid) == ("unconfirmed", None)
            assert await sender.send_waiting(now=utcnow() + timedelta(hours=1)) == 0  # never resent blindly
            assert await sender.reconcile() == 0  # too early: its receipt may still come on its own
            assert await sender.reconcile(now=utcnow() + timedelta(seconds=31)) == 1
            texts = await sandbox_texts(server)
        finally:
            await gateway.close()
    (text,) = texts
    row = await load(uow_factory, message_id)
    assert row.message_sid == text["sid"] and row.status not in ("unconfirmed", "failed")
    assert row.error_message is None and row.sent_at is not None


class Lookup:
    """What Twilio holds, as scripted: the texts it answers with, or an error."""

    def __init__(self, *answers: list[SmsStatusUpdate] | GatewayError) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, str, str]] = []

    async def find_sms(
        self, *, to: str, from_: str, body: str, created_after: datetime
    ) -> list[SmsStatusUpdate]:
        self.asked.append((to, from_, body))
        answer = self.answers.pop(0)
        if isinstance(answer, GatewayError):
            raise answer
        return answer


async def test_an_unconfirmed_text_twilio_never_got_is_sent_again_only_after_a_while(
    uow_factory: UnitOfWorkFactory,
) -> None:
    message_id = await queued(uow_factory)
    lost = GatewayError("text message: no answer from Twilio (ServerDisconnectedError)", unconfirmed=True)
    gateway = ScriptedGateway(lost, "SM" + "6" * 32)
    unreachable = GatewayError("text lookup not sent: Twilio could not be reached", retryable=True)
    lookup = Lookup(unreachable, [], [])
    sender = real_outbox(uow_factory, gateway, lookup)
    assert await sender.send(message_id) is False
    # Twilio cannot be asked: nothing changes.
    assert await sender.reconcile(now=utcnow() + timedelta(seconds=31)) == 0
    # Twilio has no such text yet, but its lists may lag: still unconfirmed, not resent.
    assert await sender.reconcile(now=utcnow() + timedelta(minutes=2)) == 0
    assert (await load(uow_factory, message_id)).status == "unconfirmed"
    assert await sender.send_waiting() == 0 and len(gateway.sent) == 1
    # Long after, still nothing at Twilio: it never arrived, so it is sent again, once.
    assert await sender.reconcile(now=utcnow() + timedelta(minutes=11)) == 1
    row = await load(uow_factory, message_id)
    assert (row.status, (await entry(uow_factory, message_id)).claimed_at) == ("queued", None)
    assert await sender.send_waiting() == 1 and len(gateway.sent) == 2
    assert (await load(uow_factory, message_id)).message_sid == "SM" + "6" * 32
    assert lookup.asked == [(TO, "+15005550006", "Hello")] * 3


async def test_a_text_found_at_twilio_is_not_taken_from_another_row(uow_factory: UnitOfWorkFactory) -> None:
    """Two identical texts: the one already known as SM…7 is not claimed twice."""
    first = await queued(uow_factory)
    async with uow_factory() as uow:
        customer_id = (await uow.session.get_one(SmsMessage, first)).customer_id
        second = (await queue_sms(uow, customer_id=customer_id, to=TO, from_="+15005550006", body="Hello")).id
        await uow.commit()
    lost = GatewayError("text message: no answer from Twilio (TimeoutError)")
    gateway = ScriptedGateway("SM" + "7" * 32, lost)
    known = SmsStatusUpdate("SM" + "7" * 32, "delivered")
    other = SmsStatusUpdate("SM" + "8" * 32, "sent")
    sender = real_outbox(uow_factory, gateway, Lookup([known, other]))
    assert await sender.send(first) is True
    assert await sender.send(second) is False
    assert await sender.reconcile(now=utcnow() + timedelta(seconds=31)) == 1
    row = await load(uow_factory, second)
    assert (row.message_sid, row.status) == ("SM" + "8" * 32, "sent")


async def test_a_text_whose_sender_stopped_mid_send_becomes_unconfirmed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    message_id = await queued(uow_factory)
    async with uow_factory() as uow:
        assert await claim(uow, message_id, now=utcnow()) is not None  # then the process dies
        await uow.commit()
    sender = outbox(uow_factory, ScriptedGateway())
    assert await sender.reconcile(now=utcnow() + timedelta(minutes=1)) == 0
    assert (await load(uow_factory, message_id)).status == "queued"
    await sender.reconcile(now=utcnow() + timedelta(minutes=6))
    row = await load(uow_factory, message_id)
    assert row.status == "unconfirmed" and "stopped" in (row.error_message or "")


class NeverArrives:
    """Twilio never gets the text, and the sender hears nothing back (a request lost on the way)."""

    def __init__(self) -> None:
        self.sent = 0

    async def send_sms(self, *, to: str, from_: str, body: str, status_callback: str | None = None) -> str:
        self.sent += 1
        raise GatewayError("text message: no answer from Twilio (TimeoutError)", unconfirmed=True)


async def test_a_text_twilio_never_has_is_sent_again_once_then_fails(uow_factory: UnitOfWorkFactory) -> None:
    message_id = await queued(uow_factory)
    async with TestServer(sandbox_app(), host="127.0.0.1") as server:
        gateway = gateway_at(str(server.make_url("")))
        lost = NeverArrives()
        sender = real_outbox(uow_factory, lost, gateway)
        try:
            assert await sender.send(message_id) is False
            for sweep in range(1, 4):
                # Each sweep long after the last claim: the sandbox's list has no such text.
                assert await sender.reconcile(now=utcnow() + timedelta(minutes=11 * sweep)) == 1
                await sender.send_waiting(now=utcnow() + timedelta(minutes=11 * sweep))
                row = await load(uow_factory, message_id)
                if row.status == "failed":
                    break
        finally:
            await gateway.close()
    assert lost.sent == 2, "sent once, then once again, never a third time"
    resends = (await entry(uow_factory, message_id)).resends
    assert (row.status, resends, row.message_sid) == ("failed", 1, None)
    assert row.error_message is not None and "no record" in row.error_message
    assert await sender.send_waiting(now=utcnow() + timedelta(hours=2)) == 0 and lost.sent == 2


class BreaksFor:
    """The sandbox's lookup, except for one recipient, whose lookup fails unexpectedly."""

    def __init__(self, lookup: SmsLookup, to: str) -> None:
        self.lookup = lookup
        self.to = to

    async def find_sms(
        self, *, to: str, from_: str, body: str, created_after: datetime
    ) -> list[SmsStatusUpdate]:
        if to == self.to:
            raise ValueError("unexpected answer")
        return await self.lookup.find_sms(to=to, from_=from_, body=body, created_after=created_after)


async def test_one_lookup_failing_unexpectedly_does_not_stop_the_sweep(
    uow_factory: UnitOfWorkFactory,
) -> None:
    broken = await queued(uow_factory, body="First")
    async with uow_factory() as uow:
        first = await uow.session.get_one(SmsMessage, broken)
        other = await queue_sms(
            uow, customer_id=first.customer_id, to="+12025550199", from_="+15005550006", body="Second"
        )
        first.to_number = "+12025550198"
        await uow.commit()
    async with TestServer(sandbox_app(), host="127.0.0.1") as server:
        gateway = gateway_at(str(server.make_url("")))
        sender = real_outbox(uow_factory, LosesTheAnswer(gateway), BreaksFor(gateway, "+12025550198"))
        try:
            assert await sender.send(broken) is False
            assert await sender.send(other.id) is False
            # The first text's lookup fails; the second is still settled, the first asked again later.
            assert await sender.reconcile(now=utcnow() + timedelta(seconds=31)) == 1
        finally:
            await gateway.close()
    assert (await load(uow_factory, broken)).status == "unconfirmed"
    settled = await load(uow_factory, other.id)
    assert settled.message_sid is not None and settled.status not in ("unconfirmed", "failed")


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def test_a_rate_limited_text_is_due_again_on_the_outboxs_clock(uow_factory: UnitOfWorkFactory) -> None:
    clock = FakeClock()
    customer_id = await customer_with_phone(uow_factory)
    async with uow_factory() as uow:
        queued_at = clock.now()
        row = await queue_sms(
            uow, customer_id=customer_id, to=TO, from_="+15005550006", body="Hi", now=queued_at
        )
        await uow.commit()
    gateway = ScriptedGateway(
        GatewayError("slow down", code=20429, status=429, retryable=True), "SM" + "7" * 32
    )
    sender = SmsOutbox(uow_factory, gateway, CALLBACK.format, clock=clock)
    clock.advance(2)
    assert await sender.send(row.id) is False
    due = (await entry(uow_factory, row.id)).next_attempt_at
    assert due is not None
    # Tried 2 s after it was queued: the first wait (10 s) counts from that try.
    assert aware(due) == queued_at + timedelta(seconds=12)
    clock.advance(9.5)
    assert await sender.send_waiting() == 0 and len(gateway.sent) == 1
    clock.advance(0.5)
    assert await sender.send_waiting() == 1 and len(gateway.sent) == 2
    sent = await load(uow_factory, row.id)
    assert sent.message_sid == "SM" + "7" * 32
    assert sent.sent_at is not None and aware(sent.sent_at) == clock.now()


class EmptyLookup:
    """A gateway with no record of any text; counts the questions."""

    def __init__(self) -> None:
        self.asked: list[datetime] = []

    async def find_sms(
        self, *, to: str, from_: str, body: str, created_after: datetime
    ) -> list[SmsStatusUpdate]:
        self.asked.append(created_after)
        return []


async def test_an_unconfirmed_text_is_asked_about_and_sent_again_on_the_outboxs_clock(
    uow_factory: UnitOfWorkFactory,
) -> None:
    clock = FakeClock()
    customer_id = await customer_with_phone(uow_factory)
    async with uow_factory() as uow:
        row = await queue_sms(
            uow, customer_id=customer_id, to=TO, from_="+15005550006", body="Hi", now=clock.now()
        )
        await uow.commit()
    gateway = ScriptedGateway(GatewayError("text message: no answer from Twilio", unconfirmed=True))
    lookup = EmptyLookup()
    sender = SmsOutbox(uow_factory, gateway, CALLBACK.format, lookup=lookup, clock=clock)
    claimed_at = clock.now()
    assert await sender.send(row.id) is False
    clock.advance(29)
    assert await sender.reconcile() == 0 and lookup.asked == []  # its receipt may still come
    clock.advance(1)
    assert await sender.reconcile() == 0 and len(lookup.asked) == 1  # asked: not there yet
    clock.advance(600 - 30 - 1)
    assert await sender.reconcile() == 0 and len(lookup.asked) == 2
    clock.advance(1)  # ten minutes after it was handed over, Twilio still has no record of it
    assert await sender.reconcile() == 1
    assert lookup.asked == [claimed_at - timedelta(seconds=60)] * 3
    assert (await entry(uow_factory, row.id)).resends == 1
    assert (await load(uow_factory, row.id)).status == "queued"
