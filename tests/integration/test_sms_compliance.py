"""Opt-outs: STOP and its synonyms suppress the number (audited) and every later text to it is
refused before Twilio; START, UNSTOP and YES lift it; HELP and INFO get the help reply; Twilio's
21610 suppresses too. Also the whole path through the sandbox's texting simulation and CLI."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from contact_center.appkeys import SETTINGS
from contact_center.sandbox_cli import send_sms
from contact_center.sms.routes import SMS_DESK
from crm_core.db import UnitOfWorkFactory
from crm_core.models import AuditEntry, SmsMessage, SmsSuppression
from crm_core.types import Direction
from tests.conftest import Session, Staff
from tests.support.agent_socket import agent_socket, next_of
from tests.support.sessions import signed_in
from tests.support.sms import OUR_NUMBER, Twilio, customer_with_phone, sandbox_messages, sms_rows, sms_ticket
from tests.support.waiting import eventually

TEXTER = "+12025550143"


async def suppressed(uow_factory: UnitOfWorkFactory) -> dict[str, str]:
    async with uow_factory() as uow:
        return {s.phone: s.reason for s in await uow.session.scalars(select(SmsSuppression))}


async def audit_actions(uow_factory: UnitOfWorkFactory, customer_id: int) -> list[tuple[str, dict[str, Any]]]:
    async with uow_factory() as uow:
        rows = await uow.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.entity_type == "customer", AuditEntry.entity_id == customer_id)
            .where(AuditEntry.action.like("sms_%"))
            .order_by(AuditEntry.id)
        )
        return [(r.action, r.changes) for r in rows]


@pytest.mark.parametrize(
    "word", [" stop ", "STOPALL", "Unsubscribe", "cancel", "END", "quit", "revoke", "OptOut"]
)
async def test_stop_words_suppress_and_sends_are_refused_before_twilio(
    word: str, service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    ticket_id = await sms_ticket(service, uow_factory, staff.red_1)
    customer_id = (await sms_rows(uow_factory))[0].customer_id
    await Twilio(service).text(word)
    assert await suppressed(uow_factory) == {TEXTER: "keyword"}
    assert await audit_actions(uow_factory, customer_id) == [
        ("sms_suppressed", {"phone": TEXTER, "reason": "keyword", "keyword": word.strip().upper()})
    ]
    agent = await signed_in(service, staff.red_1)
    for path in (f"/api/v1/tickets/{ticket_id}/sms", f"/api/v1/customers/{customer_id}/sms"):
        resp = await agent.post(path, json={"body": "Are you there?"})
        assert resp.status == 409, await resp.text()
        error = (await resp.json())["error"]
        assert error["code"] == "sms_opted_out" and TEXTER in error["message"]
    assert [r.direction for r in await sms_rows(uow_factory)] == [Direction.INBOUND, Direction.INBOUND]
    assert await sandbox_messages(service, TEXTER) == []
    # The keyword joined the open ticket (with a note) and opened no other one.
    rows = await sms_rows(uow_factory)
    assert rows[1].ticket_id == ticket_id and rows[1].kind == "keyword"


async def test_twilios_own_opt_out_keywords_are_honoured(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    """Advanced Opt-Out with keywords of the account's own: Twilio names them in OptOutType."""
    await customer_with_phone(uow_factory)
    await Twilio(service).text("ARRET", OptOutType="STOP")
    assert await suppressed(uow_factory) == {TEXTER: "keyword"}
    await Twilio(service).text("reprendre", OptOutType="START")
    assert await suppressed(uow_factory) == {}


@pytest.mark.parametrize("word", ["START", " unstop", "Yes"])
async def test_start_words_lift_the_suppression(
    word: str, service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    ticket_id = await sms_ticket(service, uow_factory, staff.red_1)
    customer_id = (await sms_rows(uow_factory))[0].customer_id
    twilio = Twilio(service)
    await twilio.text("STOP")
    await twilio.text("stop")  # a second STOP changes nothing
    await twilio.text(word)
    await twilio.text(word)
    assert await suppressed(uow_factory) == {}
    assert [a for a, _ in await audit_actions(uow_factory, customer_id)] == [
        "sms_suppressed",
        "sms_unsuppressed",
    ]
    agent = await signed_in(service, staff.red_1)
    resp = await agent.post(f"/api/v1/tickets/{ticket_id}/sms", json={"body": "Welcome back"})
    assert resp.status == 201 and (await resp.json())["message_sid"] is not None


@pytest.mark.parametrize("word", ["HELP", " info ", "Help"])
async def test_help_words_get_the_help_reply_through_the_gateway(
    word: str, service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await customer_with_phone(uow_factory)
    await Twilio(service).text(word)
    help_text = service.app[SETTINGS].sms.help_reply

    async def replied() -> list[dict[str, Any]]:
        return await sandbox_messages(service, TEXTER)

    (reply,) = await eventually(replied, timeout=10)
    assert reply["body"] == help_text and reply["from"] == OUR_NUMBER
    await service.app[SMS_DESK].get().idle()  # the gateway's answer is stored
    rows = await sms_rows(uow_factory)
    assert [(r.direction, r.kind, r.ticket_id) for r in rows] == [
        (Direction.INBOUND, "keyword", None),
        (Direction.OUTBOUND, "help", None),
    ]
    assert rows[1].message_sid == reply["sid"] and rows[1].segments == 1
    assert await suppressed(uow_factory) == {}


async def test_no_help_reply_to_a_suppressed_number(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await customer_with_phone(uow_factory)
    twilio = Twilio(service)
    await twilio.text("STOP")
    await twilio.text("HELP")
    assert [r.direction for r in await sms_rows(uow_factory)] == [Direction.INBOUND, Direction.INBOUND]


async def test_twilio_21610_suppresses_the_number(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    # The sandbox's magic +15005550004 is always "unsubscribed" (21610 on create).
    customer_id = await customer_with_phone(uow_factory, "+15005550004", owner_id=staff.red_1.id)
    agent = await signed_in(service, staff.red_1)
    resp = await agent.post(f"/api/v1/customers/{customer_id}/sms", json={"body": "Hello"})
    assert resp.status == 201
    failed = await resp.json()
    assert (failed["status"], failed["error_code"], failed["message_sid"]) == ("failed", 21610, None)
    assert await suppressed(uow_factory) == {"+15005550004": "carrier-21610"}
    assert await audit_actions(uow_factory, customer_id) == [
        ("sms_suppressed", {"phone": "+15005550004", "reason": "carrier-21610", "error_code": 21610})
    ]
    again = await agent.post(f"/api/v1/customers/{customer_id}/sms", json={"body": "Hello?"})
    assert again.status == 409 and (await again.json())["error"]["code"] == "sms_opted_out"


async def test_the_whole_path_through_the_sandbox(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    """A phone texts the sandbox number; the sandbox signs the webhook to the service; the reply
    goes back through the sandbox's REST API; STOP at the sandbox is known to both sides."""
    await customer_with_phone(uow_factory, owner_id=staff.red_1.id)
    resp = await service.post(
        "/twilio-sandbox/sandbox/sms",
        json={
            "from": TEXTER,
            "to": OUR_NUMBER,
            "body": "Hi, photo attached",
            "media_urls": ["https://example.com/a.png"],
        },
    )
    assert resp.status == 201, await resp.text()
    answer = await resp.json()
    assert not [e for e in answer["message"]["log"] if e["event"] == "error"], answer["message"]["log"]
    (inbound,) = await sms_rows(uow_factory)
    assert inbound.message_sid == answer["message_sid"] and inbound.ticket_id is not None
    assert inbound.media == [{"url": "https://example.com/a.png", "content_type": "image/png"}]
    agent = await signed_in(service, staff.red_1)
    sent = await agent.post(f"/api/v1/tickets/{inbound.ticket_id}/sms", json={"body": "Thanks!"})
    assert sent.status == 201

    # STOP through the sandbox: Twilio records the opt-out itself and tells the service.
    resp = await service.post(
        "/twilio-sandbox/sandbox/sms", json={"from": TEXTER, "to": OUR_NUMBER, "body": "Stop"}
    )
    assert resp.status == 201
    assert await suppressed(uow_factory) == {TEXTER: "keyword"}
    # START reaches the service but not the sandbox (say, a message replayed from elsewhere):
    # the service lifts its list, Twilio still refuses with 21610, and the number is suppressed again.
    await Twilio(service).text("START")
    assert await suppressed(uow_factory) == {}
    refused = await agent.post(f"/api/v1/tickets/{inbound.ticket_id}/sms", json={"body": "Back?"})
    assert (await refused.json())["error_code"] == 21610
    assert await suppressed(uow_factory) == {TEXTER: "carrier-21610"}


async def test_the_sandbox_cli_texts_the_service(
    service: TestClient[Any, Any],
    staff: Staff,
    uow_factory: UnitOfWorkFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = service.app[SETTINGS]
    args = argparse.Namespace(
        from_="+12025550166",
        to=OUR_NUMBER,
        body="Texted from the command line",
        media=[],
        url=None,
        json=False,
    )
    assert await send_sms(settings, args) == 0
    printed = capsys.readouterr().out.splitlines()
    async with uow_factory() as uow:
        row = await uow.session.scalar(select(SmsMessage))
    assert row is not None and printed[0] == row.message_sid and row.body == "Texted from the command line"
    assert any("webhook" in line and "/twilio/sms/inbound" in line for line in printed), printed


async def _confirmations(service: TestClient[Any, Any]) -> list[dict[str, Any]]:
    await service.app[SMS_DESK].get().idle()  # the confirmation is sent after the webhook is answered
    return await sandbox_messages(service, TEXTER)


@pytest.mark.parametrize(
    ("body", "word", "confirmed_by_us"),
    [
        ("Stop.", "STOP", False),
        ("Stop!", "STOP", False),
        ('"STOP"', "STOP", False),
        ("\uff33\uff34\uff2f\uff30", "STOP", False),  # fullwidth letters
        ("Stop\u200b", "STOP", False),  # zero-width space
        ("unsubscribe.", "UNSUBSCRIBE", False),
        # Words Twilio does not know: it neither opts the number out nor confirms, so the service does.
        ("OPT OUT", "OPT OUT", True),
        ("Opt-out!", "OPT OUT", True),
        ("退订", "退订", True),
        ("TD", "TD", True),
    ],
)
async def test_opt_out_words_in_any_dress_suppress(
    body: str,
    word: str,
    confirmed_by_us: bool,
    service: TestClient[Any, Any],
    staff: Staff,
    uow_factory: UnitOfWorkFactory,
) -> None:
    ticket_id = await sms_ticket(service, uow_factory, staff.red_1)
    customer_id = (await sms_rows(uow_factory))[0].customer_id
    await Twilio(service).text(body)
    assert await suppressed(uow_factory) == {TEXTER: "keyword"}
    assert await audit_actions(uow_factory, customer_id) == [
        ("sms_suppressed", {"phone": TEXTER, "reason": "keyword", "keyword": word})
    ]
    agent = await signed_in(service, staff.red_1)
    resp = await agent.post(f"/api/v1/tickets/{ticket_id}/sms", json={"body": "Are you there?"})
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "sms_opted_out"
    sent = await _confirmations(service)
    if confirmed_by_us:
        (confirmation,) = sent
        assert confirmation["body"] == service.app[SETTINGS].sms.opt_out_confirmation
    else:
        assert sent == []
    kinds = [(r.direction, r.kind) for r in await sms_rows(uow_factory)]
    assert kinds[:2] == [(Direction.INBOUND, "message"), (Direction.INBOUND, "keyword")]


@pytest.mark.parametrize(
    ("body", "word", "phrase"),
    [
        ("STOP please", "STOP", "stop please"),
        ("Please stop texting me, I already paid", "STOP", "stop texting"),
        ("unsubscribe me", "UNSUBSCRIBE", "unsubscribe me"),
        ("请不要再发了\uff0c退订", "退订", "退订"),
    ],
)
async def test_a_text_asking_to_stop_suppresses_tells_the_agent_and_is_confirmed_once(
    body: str,
    word: str,
    phrase: str,
    service: TestClient[Any, Any],
    staff: Staff,
    uow_factory: UnitOfWorkFactory,
) -> None:
    ticket_id = await sms_ticket(service, uow_factory, staff.red_1)
    customer_id = (await sms_rows(uow_factory))[0].customer_id
    ws = await agent_socket(service, staff.red_1.login)
    twilio = Twilio(service)
    await twilio.text(body)

    # The agent sees why, live and on the message.
    event = await next_of(ws, "sms.received")
    assert event["kind"] == "opt-out-request" and event["ticket_id"] == ticket_id
    assert event["opt_out"]["reason"] == "opt-out-request" and event["opt_out"]["keyword"] == word
    assert event["opt_out"]["phrase"] == phrase
    await ws.close()
    async with uow_factory() as uow:
        rows = await uow.session.scalars(select(SmsSuppression))
        (row,) = rows
    assert (row.phone, row.reason, row.keyword) == (TEXTER, "opt-out-request", word)
    assert await audit_actions(uow_factory, customer_id) == [
        (
            "sms_suppressed",
            {
                "phone": TEXTER,
                "reason": "opt-out-request",
                "keyword": word,
                "phrase": phrase,
                "message": body,
            },
        )
    ]
    agent = await signed_in(service, staff.red_1)
    listed = await (await agent.get(f"/api/v1/tickets/{ticket_id}/sms")).json()
    assert [m["kind"] for m in listed["items"]][:2] == ["message", "opt-out-request"]
    notes = (await (await agent.get(f"/api/v1/tickets/{ticket_id}/comments")).json())["items"]
    assert [n["body"] for n in notes] == [
        f'{TEXTER} opted out of text messages: their text asks to stop ("{phrase}").'
    ]

    # The next text is refused, saying why.
    resp = await agent.post(f"/api/v1/tickets/{ticket_id}/sms", json={"body": "Are you there?"})
    assert resp.status == 409
    error = (await resp.json())["error"]
    assert error["code"] == "sms_opted_out" and "asked in a text" in error["message"]

    # One confirmation, through the outbox and the gateway; asking again sends no second one.
    (confirmation,) = await _confirmations(service)
    assert confirmation["body"] == service.app[SETTINGS].sms.opt_out_confirmation
    assert confirmation["from"] == OUR_NUMBER
    await twilio.text("I said stop texting me")
    assert len(await _confirmations(service)) == 1
    outbound = [r for r in await sms_rows(uow_factory) if r.direction is Direction.OUTBOUND]
    assert [(r.kind, r.message_sid) for r in outbound] == [("opt-out-confirmation", confirmation["sid"])]


@pytest.mark.parametrize(
    "body",
    [
        "Stopped by the store, nobody there",
        "What is your cancellation policy?",
        "My backend login fails at the weekend",
        "Please cancel my order",
        "Don't stop texting me the deals",
        "我想退订单",
        "TD Bank card declined",
    ],
)
async def test_texts_that_only_contain_the_letters_are_ordinary_messages(
    body: str, service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await customer_with_phone(uow_factory, owner_id=staff.red_1.id)
    await Twilio(service).text(body)
    assert await suppressed(uow_factory) == {}
    (inbound,) = await sms_rows(uow_factory)
    assert inbound.kind == "message" and inbound.ticket_id is not None
    agent = await signed_in(service, staff.red_1)
    resp = await agent.post(f"/api/v1/tickets/{inbound.ticket_id}/sms", json={"body": "On it"})
    assert resp.status == 201 and await _confirmations(service) != []
    assert [m["body"] for m in await _confirmations(service)] == ["On it"]


async def test_yes_is_an_answer_unless_the_number_opted_out(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await customer_with_phone(uow_factory, owner_id=staff.red_1.id)
    twilio = Twilio(service)
    await twilio.text("Yes.")
    (answer,) = await sms_rows(uow_factory)
    assert answer.kind == "message" and answer.ticket_id is not None
    await twilio.text("STOP")
    await twilio.text("Yes!")
    assert await suppressed(uow_factory) == {}
    assert [r.kind for r in await sms_rows(uow_factory)] == ["message", "keyword", "keyword"]


async def test_supervisors_and_admins_list_the_suppressions_as_they_change(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    path = "/api/v1/sms/suppressions"
    other = "+12025550150"
    ada = await customer_with_phone(uow_factory)
    grace = await customer_with_phone(uow_factory, phone=other)
    twilio = Twilio(service)
    await twilio.text("STOP")
    await twilio.text("Please stop texting me", sender=other)

    assert (await service.get(path)).status == 401
    agent = await signed_in(service, staff.red_1)
    refused = await agent.get(path)
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "forbidden"

    async def listed(who: Session, query: str = "") -> list[tuple[Any, ...]]:
        resp = await who.get(path + query)
        assert resp.status == 200, await resp.text()
        return [
            (s["phone"], s["reason"], s["keyword"], s["customer_id"], bool(s["created_at"]))
            for s in (await resp.json())["items"]
        ]

    newest_first = [
        (other, "opt-out-request", "STOP", grace, True),  # the word that opted it out
        (TEXTER, "keyword", "STOP", ada, True),
    ]
    supervisor, admin = await signed_in(service, staff.blue_lead), await signed_in(service, staff.admin)
    assert await listed(supervisor) == newest_first  # every number, whichever team's customer
    assert await listed(admin) == newest_first
    assert await listed(admin, "?limit=1&offset=1") == newest_first[1:]

    await twilio.text("START")  # lifts TEXTER's suppression
    assert await listed(supervisor) == newest_first[:1]
