"""The one email ingest decision (both paths ask it) and whether an opened ticket is acknowledged."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from crm_core.email_ports import BounceReport, InboundEmail
from crm_core.models import EmailKind
from crm_core.rules.email_refs import new_message_id
from crm_core.rules.ticket_status import TicketStatus
from crm_core.services.email_acks import may_acknowledge
from crm_core.services.email_ingest import (
    Decision,
    EmailPolicy,
    MailboxPolicy,
    Outcome,
    Thread,
    decide,
    needs_thread,
)
from crm_core.services.tickets import SlaPolicy

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = EmailPolicy(
    secret=b"unit-secret",
    domain="example.com",
    our_addresses=frozenset({"support@example.com"}),
    sla=SlaPolicy(),
    reopen_window=timedelta(hours=24),
    acks_per_hour=2,
)
MAIL = InboundEmail(
    key="m-1@example.org",
    message_id="m-1@example.org",
    from_address="ana@example.org",
    from_name="Ana",
    subject="Help",
    text="Something is broken.",
    visible_text="Something is broken.",
)
AUTO = replace(MAIL, headers={"auto-submitted": "auto-replied"})  # as parsed: names lower-cased


def test_a_new_conversation_opens_a_ticket_and_is_acknowledged() -> None:
    decision = decide(MAIL, POLICY, None, NOW)
    assert decision == Decision(Outcome.NEW_TICKET, EmailKind.MESSAGE) and decision.acknowledged


@pytest.mark.parametrize(
    ("thread", "outcome"),
    [
        (Thread(TicketStatus.NEW), Outcome.THREADED),
        (Thread(TicketStatus.PENDING), Outcome.REOPENED),  # the customer answered: open again, clock running
        (Thread(TicketStatus.RESOLVED, NOW - timedelta(hours=1)), Outcome.REOPENED),
        (Thread(TicketStatus.RESOLVED, NOW - timedelta(hours=25)), Outcome.LINKED),
        (Thread(TicketStatus.CLOSED, NOW - timedelta(hours=1)), Outcome.LINKED),
    ],
)
def test_a_reply_follows_its_ticket(thread: Thread, outcome: Outcome) -> None:
    decision = decide(MAIL, POLICY, thread, NOW)
    assert decision.outcome is outcome
    assert decision.acknowledged is (outcome is Outcome.LINKED)


def test_an_auto_reply_is_filed_on_any_ticket_and_opens_none() -> None:
    closed = Thread(TicketStatus.CLOSED, NOW - timedelta(days=30))
    assert decide(AUTO, POLICY, closed, NOW) == Decision(Outcome.AUTO_REPLY, EmailKind.AUTO_REPLY)
    assert decide(AUTO, POLICY, None, NOW).outcome is Outcome.IGNORED


@pytest.mark.parametrize("sender", [None, "", "not an address"])
def test_mail_without_a_valid_sender_opens_nothing(sender: str | None) -> None:
    assert decide(replace(MAIL, from_address=sender), POLICY, None, NOW).outcome is Outcome.IGNORED


def test_loops_and_bounces_are_decided_before_threading() -> None:
    ours = replace(MAIL, from_address="Support@Example.com")
    signed = replace(MAIL, message_id=new_message_id(1000, POLICY.secret, POLICY.domain))
    bounce = replace(MAIL, from_address="mailer-daemon@example.org", bounce=BounceReport(("x@y",), ()))
    thread = Thread(TicketStatus.OPEN)
    assert decide(ours, POLICY, thread, NOW) == Decision(Outcome.LOOP, EmailKind.LOOP)
    assert decide(signed, POLICY, None, NOW).outcome is Outcome.LOOP
    assert decide(bounce, POLICY, thread, NOW) == Decision(Outcome.BOUNCE, EmailKind.BOUNCE)
    assert not needs_thread(ours, POLICY) and not needs_thread(bounce, POLICY)
    assert needs_thread(MAIL, POLICY)


def test_acknowledgments_go_to_working_addresses_a_few_times_an_hour() -> None:
    box = MailboxPolicy(name="support", address="support@example.com")
    assert may_acknowledge(box, POLICY, "ana@example.org", failing=False, sent_last_hour=1)
    assert not may_acknowledge(box, POLICY, "ana@example.org", failing=False, sent_last_hour=2)
    assert not may_acknowledge(box, POLICY, "ana@example.org", failing=True, sent_last_hour=0)
    assert not may_acknowledge(box, POLICY, "", failing=False, sent_last_hour=0)
    quiet = replace(box, acknowledge=False)
    assert not may_acknowledge(quiet, POLICY, "ana@example.org", failing=False, sent_last_hour=0)
