"""Signed Twilio webhooks carrying what Twilio never sends: NULs, oversized and overflowing values,
odd dates, callers with no usable number. Each answers 4xx (or plain TwiML), stores nothing half
done and nothing the database refuses, and the channel goes on working."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any
from urllib.parse import urlencode

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Customer, Interaction, SmsMessage, Ticket
from tests.conftest import SignIn, Staff
from tests.support.agents import available
from tests.support.voice_calls import (
    CALLER,
    VOICE,
    Twilio,
    call_sid,
    dialed_identity,
    voice_rows,
)

SMS = "/twilio/sms"
OUR_NUMBER = "+15005550006"
NUL = "\x00"
_SMS_SIDS = itertools.count(0x5000)


def message_sid() -> str:
    return f"SM{next(_SMS_SIDS):032x}"


def inbound(sid: str, caller: str = CALLER, **extra: str) -> dict[str, str]:
    params = {
        "CallSid": sid,
        "From": caller,
        "To": OUR_NUMBER,
        "CallStatus": "ringing",
        "Direction": "inbound",
    }
    return params | extra


async def customers(uow_factory: UnitOfWorkFactory) -> list[Customer]:
    async with uow_factory() as uow:
        return list(await uow.session.scalars(select(Customer).order_by(Customer.id)))


async def count(uow_factory: UnitOfWorkFactory, model: Any) -> int:
    async with uow_factory() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model)) or 0)


async def post_encoded(twilio: Twilio, path: str, params: dict[str, str]) -> ClientResponse:
    """Signed like :meth:`Twilio.post`, the form encoded by hand (the client refuses NUL in a name)."""
    signature = twilio.validator.compute_signature(twilio.base + path, params)
    return await twilio.client.post(
        path,
        data=urlencode(params),
        headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
    )


def has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


async def test_a_nul_in_a_caller_name_is_dropped_and_the_wallboard_still_answers(
    client: TestClient[Any, Any],
    settings: Settings,
    staff: Staff,
    sign_in: SignIn,
    uow_factory: UnitOfWorkFactory,
) -> None:
    twilio = Twilio(client, settings)
    sid = call_sid()
    params = inbound(sid, CallerName=f"Mallory{NUL}Evil")
    assert (await twilio.post(f"{VOICE}/inbound", params)).status == 200
    [row] = await voice_rows(uow_factory)
    assert row.meta["caller_name"] == "MalloryEvil"
    for who in (staff.red_lead, staff.blue_lead, staff.admin):
        board = await (await sign_in(who)).get("/api/v1/wallboard")
        assert board.status == 200, await board.text()
    assert (await board.json())["calls"]["offered"] == 1


async def test_the_signature_covers_the_values_as_sent_not_as_cleaned(
    client: TestClient[Any, Any], settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    twilio = Twilio(client, settings)
    sent = inbound(call_sid(), CallerName=f"A{NUL}B")
    cleaned = {**sent, "CallerName": "AB"}
    signed_over_cleaned = twilio.validator.compute_signature(twilio.base + f"{VOICE}/inbound", cleaned)
    resp = await twilio.post(f"{VOICE}/inbound", sent, signature=signed_over_cleaned)
    assert resp.status == 403
    assert await voice_rows(uow_factory) == []
    assert (await twilio.post(f"{VOICE}/inbound", sent)).status == 200


async def test_nuls_in_any_twilio_webhook_are_dropped_and_the_channels_keep_working(
    client: TestClient[Any, Any], settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    twilio = Twilio(client, settings)
    sid, answered = call_sid(), call_sid()
    await available(client, staff.red_1)
    assert (await twilio.post(f"{VOICE}/inbound", inbound(answered))).status == 200
    agent = f"?agent={staff.red_1.id}"
    recording = {"CallSid": sid, "RecordingUrl": "https://api.twilio.com/rec/RE1", "RecordingSid": "RE1"}
    webhooks: list[tuple[str, dict[str, str]]] = [
        (f"{VOICE}/inbound", inbound(sid, CallerName="Eve")),
        (f"{VOICE}/status", {"CallSid": sid, "CallStatus": "in-progress", "AnsweredBy": "human"}),
        (
            f"{VOICE}/agent-leg{agent}",
            {"CallSid": call_sid(), "ParentCallSid": answered, "CallStatus": "in-progress"},
        ),
        (f"{VOICE}/queue-wait", {"CallSid": sid, "QueuePosition": "1", "QueueTime": "3"}),
        (f"{VOICE}/enqueue-action", {"CallSid": sid, "QueueResult": "hangup"}),
        (f"{VOICE}/dial-action{agent}", {"CallSid": answered, "DialCallStatus": "completed"}),
        (f"{VOICE}/voicemail", recording),
        (f"{VOICE}/recording-status", {**recording, "RecordingStatus": "completed"}),
        (f"{VOICE}/status", {"CallSid": sid, "CallStatus": "completed", "RecordingUrl": "https://r/x"}),
        (
            f"{SMS}/inbound",
            {"MessageSid": message_sid(), "From": "+12025550111", "To": OUR_NUMBER, "Body": "Hello there"},
        ),
        (f"{SMS}/status", {"MessageSid": message_sid(), "MessageStatus": "delivered"}),
    ]
    for path, params in webhooks:
        for name in params:
            hostile = {**params, name: NUL + params[name] + NUL, f"X{NUL}Extra": NUL}
            resp = await post_encoded(twilio, path, hostile)
            assert resp.status in (200, 400), (path, name, resp.status, await resp.text())
    async with uow_factory() as uow:
        for row in await uow.session.scalars(select(Interaction)):
            assert not has_nul(row.meta) and not has_nul(row.external_id) and not has_nul(row.body), row.id
        for text in await uow.session.scalars(select(SmsMessage)):
            assert not has_nul([text.body, text.to_number, text.from_number, text.media]), text.id
        for ticket in await uow.session.scalars(select(Ticket)):
            assert not has_nul(ticket.subject), ticket.id
    # The channels still work: a call is routed, a text is taken.
    await available(client, staff.blue_1)
    routed = await twilio.twiml(f"{VOICE}/inbound", inbound(call_sid(), caller="+12025550177"))
    assert dialed_identity(routed) in {f"agent-{staff.blue_1.id}", f"agent-{staff.red_1.id}"}
    text = {"MessageSid": message_sid(), "From": "+12025550178", "To": OUR_NUMBER, "Body": "still here"}
    assert (await twilio.post(f"{SMS}/inbound", text)).status == 200


async def test_oversized_and_overflowing_values_are_refused_with_nothing_half_stored(
    client: TestClient[Any, Any], settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    twilio = Twilio(client, settings)
    long_sid = "CA" + "0" * 298
    for params in (
        inbound(long_sid),
        inbound("CA" + "0" * 33),
        inbound("SM" + "0" * 32),
        inbound("not-a-call-sid"),
    ):
        assert (await twilio.post(f"{VOICE}/inbound", params)).status == 400, params["CallSid"]
    for params in (
        {"MessageSid": "SM" + "0" * 298, "From": "+12025550111", "To": OUR_NUMBER, "Body": "hi"},
        {"MessageSid": message_sid(), "From": "+12025550111", "To": "+1" * 150, "Body": "hi"},
        {"MessageSid": message_sid(), "From": "+1" * 150, "To": OUR_NUMBER, "Body": "hi"},
        {"MessageSid": message_sid(), "From": "+12025550111", "To": OUR_NUMBER, "NumSegments": "9" * 20},
    ):
        assert (await twilio.post(f"{SMS}/inbound", params)).status == 400, params
    assert await count(uow_factory, Customer) == 0
    assert await count(uow_factory, Interaction) == 0

    sid = call_sid()
    await twilio.incoming(sid)
    overflowing = "99999999999999999999"
    for name in ("CallDuration", "SequenceNumber"):
        params = {"CallSid": sid, "CallStatus": "completed", "SequenceNumber": "3", name: overflowing}
        assert (await twilio.post(f"{VOICE}/status", params)).status == 400, name
    for path, params in (
        (f"{VOICE}/queue-wait", {"CallSid": sid, "QueuePosition": overflowing}),
        (f"{VOICE}/dial-action", {"CallSid": sid, "DialCallStatus": "completed", "DialCallDuration": "-1"}),
        (f"{SMS}/status", {"MessageSid": message_sid(), "MessageStatus": "failed", "ErrorCode": overflowing}),
    ):
        assert (await twilio.post(path, params)).status == 400, path
    [row] = await voice_rows(uow_factory)
    assert row.status != "completed" and row.duration_seconds is None
    await twilio.status(sid, "completed", 3, CallDuration="2147483647")
    [row] = await voice_rows(uow_factory)
    assert (row.status, row.duration_seconds) == ("completed", 2147483647)


async def test_a_timestamp_whose_zone_is_unknown_is_read_as_utc(
    client: TestClient[Any, Any], settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    twilio = Twilio(client, settings)
    sid, other = call_sid(), call_sid()
    await twilio.incoming(sid)
    await twilio.incoming(other, caller="+12025550144")
    await twilio.status(sid, "completed", 3, CallDuration="5", Timestamp="Mon, 07 Dec 2026 10:00:00 -0000")
    await twilio.status(other, "completed", 3, CallDuration="5", Timestamp="Mon, 07 Dec 2026 10:00:00 +9999")
    rows = {r.external_id: r for r in await voice_rows(uow_factory)}
    ended = rows[sid].ended_at
    assert ended is not None and ended.isoformat() == "2026-12-07T10:00:00+00:00"
    assert rows[other].status == "completed" and rows[other].ended_at is not None  # unreadable: now


NO_USABLE_NUMBER = [
    "anonymous",
    "Anonymous",
    "restricted",
    "unknown",
    "private",
    "+266696687",
    "",
    "client:agent-3",
    "sip:someone@example.sip.twilio.com",
    "12",
]


async def test_callers_with_no_usable_number_share_one_customer(
    client: TestClient[Any, Any], settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    twilio = Twilio(client, settings)
    # Arriving together: never two shared records.
    together = await asyncio.gather(*(twilio.incoming(call_sid(), caller=c) for c in NO_USABLE_NUMBER))
    assert all(t.find("./Enqueue") is not None for t in together)
    for caller in NO_USABLE_NUMBER:
        await twilio.incoming(call_sid(), caller=caller)
    [withheld] = await customers(uow_factory)
    assert withheld.display_name == "Withheld number" and withheld.owner_id is None
    rows = await voice_rows(uow_factory)
    assert len(rows) == 2 * len(NO_USABLE_NUMBER)
    assert {r.customer_id for r in rows} == {withheld.id}
    assert sorted({r.meta["from"] for r in rows}) == sorted(NO_USABLE_NUMBER)
    # A real number is a customer of its own.
    await twilio.incoming(call_sid(), caller="+12025550190")
    assert len(await customers(uow_factory)) == 2


async def test_the_shared_withheld_customer_routes_to_no_owner_and_survives_a_merge(
    client: TestClient[Any, Any],
    settings: Settings,
    staff: Staff,
    uow_factory: UnitOfWorkFactory,
) -> None:
    twilio = Twilio(client, settings)
    await twilio.incoming(call_sid(), caller="anonymous")
    [withheld] = await customers(uow_factory)
    async with uow_factory() as uow:
        record = await uow.session.get_one(Customer, withheld.id)
        record.owner_id = staff.red_2.id
        await uow.commit()
    await available(client, staff.red_1)
    await available(client, staff.red_2)
    first = dialed_identity(await twilio.incoming(call_sid(), caller="anonymous"))
    assert first == f"agent-{staff.red_1.id}"  # the longest idle, not the record's owner
    assert {r.customer_id for r in await voice_rows(uow_factory)} == {withheld.id}

    async with uow_factory() as uow:
        other = Customer(display_name="Someone")
        uow.session.add(other)
        await uow.session.flush()
        record = await uow.session.get_one(Customer, withheld.id)
        record.merged_into_id = other.id
        await uow.commit()
    await twilio.incoming(call_sid(), caller="private")
    rows = await voice_rows(uow_factory)
    latest = max(rows, key=lambda r: r.id)
    assert latest.customer_id not in {withheld.id, other.id}
