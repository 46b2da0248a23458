"""Both ingest paths decide alike. The fixture corpus, with a few messages added to reach every
outcome (replies to active, resolved and closed tickets, a subject token, an auto-reply, a loop,
a duplicate, more mail from one sender than it gets acknowledgments for) and conversations that
arrive whole (a message and its reply, by In-Reply-To or by References only, a chain of three,
replies before the messages they answer), goes through the batch
path in one batch, through the single-message path one by one, and as batches of one; each run
starts from the same database and is rolled back, and all three give the same outcomes, tickets,
acknowledgments, notes and participants."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from channels.email.content_store import ContentStore
from channels.email.parsing import parse_message
from crm_core.db import UnitOfWork, UnitOfWorkFactory
from crm_core.email_ports import InboundEmail
from crm_core.models import (
    CustomerEmail,
    EmailKind,
    EmailMessage,
    EmailParticipant,
    Interaction,
    Ticket,
    TicketComment,
    utcnow,
)
from crm_core.rules.ticket_status import TicketStatus
from crm_core.services.email_batch import ingest, ingest_batch
from crm_core.services.email_ingest import EmailPolicy, Ingested, MailboxPolicy, Outcome, ingest_one
from crm_core.services.tickets import SlaPolicy
from crm_core.types import Direction
from tests.email_servers import make_mail

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "email"
SUPPORT = MailboxPolicy(name="support", address="support@example.com", display_name="Support")
QUIET = MailboxPolicy(name="support", address="support@example.com", acknowledge=False)  # for the seeds
POLICY = EmailPolicy(
    secret=b"test-secret-for-both-paths",
    domain="example.com",
    our_addresses=frozenset({"support@example.com"}),
    sla=SlaPolicy(),
    reopen_window=timedelta(hours=24),
    acks_per_hour=2,
)
FIRST = SlaPolicy().first_number
# Tickets there before the corpus arrives: (Message-ID of the mail that opened it, status, resolved
# how long ago).
SEEDS = (
    ("seed-active@example.org", TicketStatus.OPEN, None),
    ("seed-resolved@example.org", TicketStatus.RESOLVED, timedelta(hours=1)),
    ("seed-old@example.org", TicketStatus.RESOLVED, timedelta(hours=48)),
    ("seed-closed@example.org", TicketStatus.CLOSED, timedelta(hours=2)),
)


def parse(raw: bytes, store: ContentStore) -> InboundEmail:
    return parse_message(raw, store, max_attachment_bytes=100_000)


def corpus(store: ContentStore) -> list[InboundEmail]:
    mails = [parse(path.read_bytes(), store) for path in sorted(FIXTURES.glob("*.eml"))]
    added = [
        make_mail(
            sender="seed@example.org", subject="more", message_id="to-active@x", in_reply_to=SEEDS[0][0]
        ),
        make_mail(
            sender="seed@example.org", subject="again", message_id="to-resolved@x", in_reply_to=SEEDS[1][0]
        ),
        make_mail(sender="seed@example.org", subject="later", message_id="to-old@x", in_reply_to=SEEDS[2][0]),
        make_mail(
            sender="seed@example.org", subject="again later", message_id="to-old-2@x", in_reply_to="to-old@x"
        ),
        make_mail(
            sender="seed@example.org",
            subject="Out of office",
            message_id="auto-to-closed@x",
            in_reply_to=SEEDS[3][0],
            headers={"Auto-Submitted": "auto-replied"},
        ),
        make_mail(sender="seed@example.org", subject=f"Re: [#{FIRST}] token", message_id="token@x"),
        make_mail(sender="stranger@example.org", subject=f"Re: [#{FIRST}] not yours", message_id="token-2@x"),
        make_mail(sender="support@example.com", subject="ours", message_id="loop@x"),
        (FIXTURES / "plain_utf8.eml").read_bytes(),  # a duplicate
        *(
            make_mail(sender="many@example.org", subject=f"issue {n}", message_id=f"many-{n}@x")
            for n in range(3)
        ),
        make_mail(
            sender="many@example.org", subject="Re: issue 0", message_id="many-re@x", in_reply_to="many-0@x"
        ),
        *CONVERSATIONS,
    ]
    return mails + [parse(raw, store) for raw in added]


def _conversation(sender: str, *mails: tuple[str, str | None, str | None]) -> list[bytes]:
    """(Message-ID, In-Reply-To, References) of each message, in mailbox order."""
    return [
        make_mail(
            sender=sender,
            subject=f"Re: {sender}" if parent or refs else sender,
            message_id=mid,
            in_reply_to=parent,
            references=refs,
        )
        for mid, parent, refs in mails
    ]


# Whole conversations in one batch: each is one ticket holding all its messages, acknowledged once.
CONVERSATIONS = [
    *_conversation("pair@example.org", ("pair-1@x", None, None), ("pair-2@x", "pair-1@x", None)),
    *_conversation("refs@example.org", ("refs-1@x", None, None), ("refs-2@x", None, "<refs-1@x>")),
    *_conversation(
        "chain@example.org",
        ("chain-1@x", None, None),
        ("chain-2@x", "chain-1@x", "<chain-1@x>"),
        ("chain-3@x", "chain-2@x", "<chain-1@x> <chain-2@x>"),
    ),
    *_conversation("late@example.org", ("late-2@x", "late-1@x", None), ("late-1@x", None, None)),
    *_conversation("late-refs@example.org", ("lr-2@x", None, "<lr-1@x>"), ("lr-1@x", None, None)),
    *_conversation(
        "backwards@example.org",
        ("back-3@x", "back-2@x", "<back-1@x> <back-2@x>"),
        ("back-2@x", "back-1@x", "<back-1@x>"),
        ("back-1@x", None, None),
    ),
]
WHOLE = {
    "pair": ["pair-1@x", "pair-2@x"],
    "refs": ["refs-1@x", "refs-2@x"],
    "chain": ["chain-1@x", "chain-2@x", "chain-3@x"],
    "late": ["late-2@x", "late-1@x"],
    "late-refs": ["lr-2@x", "lr-1@x"],
    "backwards": ["back-3@x", "back-2@x", "back-1@x"],
}


async def seed(uow: UnitOfWork, store: ContentStore) -> None:
    now = utcnow()
    for message_id, status, ago in SEEDS:
        raw = make_mail(sender="seed@example.org", subject=message_id, message_id=message_id)
        result = await ingest_one(uow, QUIET, POLICY, parse(raw, store))
        ticket = await uow.session.get_one(Ticket, result.ticket_id)
        ticket.status = status
        ticket.resolved_at = now - ago if ago is not None else None
    await uow.session.flush()


async def snapshot(uow: UnitOfWork, mails: list[InboundEmail], results: list[Ingested]) -> dict[str, Any]:
    """What the run did, without database ids (a rolled-back PostgreSQL sequence moves on)."""
    session = uow.session
    number = {t.id: t.number for t in await session.scalars(select(Ticket))}
    addresses = {c.customer_id: c.address for c in await session.scalars(select(CustomerEmail))}
    outcomes = []
    for mail, result in zip(mails, results, strict=True):
        ack = await session.get(EmailMessage, result.acknowledgment_id) if result.acknowledgment_id else None
        outcomes.append(
            (
                mail.key,
                result.outcome,
                number.get(result.ticket_id) if result.ticket_id else None,
                (ack.to_addresses, ack.subject, ack.visible_text, ack.in_reply_to) if ack else None,
            )
        )
    tickets = [
        (
            t.number,
            t.subject,
            t.status,
            addresses.get(t.customer_id),
            number.get(t.linked_ticket_id) if t.linked_ticket_id else None,
        )
        for t in await session.scalars(select(Ticket).order_by(Ticket.number))
    ]
    messages = sorted(
        (
            m.message_key if m.direction is Direction.INBOUND else "(ours)",
            m.kind,
            number.get(m.ticket_id or 0),
        )
        for m in await session.scalars(select(EmailMessage))
    )
    acks = sorted(
        (number[m.ticket_id or 0], m.to_addresses, m.subject, m.in_reply_to)
        for m in await session.scalars(
            select(EmailMessage).where(EmailMessage.kind == EmailKind.ACKNOWLEDGMENT)
        )
    )
    notes = sorted((number[c.ticket_id], c.body) for c in await session.scalars(select(TicketComment)))
    participants = sorted(
        (number[p.ticket_id], p.address) for p in await session.scalars(select(EmailParticipant))
    )
    interactions = sorted(
        (number.get(i.ticket_id or 0), str(i.direction), i.status, i.subject or "")
        for i in await session.scalars(select(Interaction))
    )
    return {
        "outcomes": outcomes,
        "tickets": tickets,
        "messages": messages,
        "acknowledgments": acks,
        "notes": notes,
        "participants": participants,
        "interactions": interactions,
    }


async def run(
    uow_factory: UnitOfWorkFactory, store: ContentStore, mails: list[InboundEmail], path: str
) -> dict[str, Any]:
    async with uow_factory() as uow:
        await seed(uow, store)
        if path == "batch":
            results = await ingest_batch(uow, SUPPORT, POLICY, mails)
        elif path == "one by one":
            results = [await ingest_one(uow, SUPPORT, POLICY, mail) for mail in mails]
        else:
            results = [await ingest(uow, SUPPORT, POLICY, mail) for mail in mails]
        found = await snapshot(uow, mails, results)
        await uow.rollback()
    return found


async def test_the_batch_and_the_single_message_path_decide_the_same(
    uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path / "mail")
    mails = corpus(store)
    batch = await run(uow_factory, store, mails, "batch")
    one_by_one = await run(uow_factory, store, mails, "one by one")
    batches_of_one = await run(uow_factory, store, mails, "batches of one")
    for part in batch:
        assert batch[part] == one_by_one[part], part
        assert batch[part] == batches_of_one[part], part
    # The corpus reaches every outcome, and the acknowledgment limit.
    outcome = {key: result for key, result, _, _ in batch["outcomes"]}
    assert set(outcome.values()) == set(Outcome)
    assert outcome["to-active@x"] is Outcome.THREADED and outcome["token@x"] is Outcome.THREADED
    assert outcome["to-resolved@x"] is Outcome.REOPENED and outcome["to-old@x"] is Outcome.LINKED
    assert outcome["auto-to-closed@x"] is Outcome.AUTO_REPLY and outcome["loop@x"] is Outcome.LOOP
    assert outcome["token-2@x"] is Outcome.NEW_TICKET and outcome["many-re@x"] is Outcome.THREADED
    acknowledged = {key: ack is not None for key, _, _, ack in batch["outcomes"]}
    assert [acknowledged[f"many-{n}@x"] for n in range(3)] == [True, True, False]
    assert acknowledged["to-old@x"]  # a linked ticket is acknowledged too
    assert any("Attachments not stored" in body for _, body in batch["notes"])
    # A conversation arriving whole is one ticket with all its messages, acknowledged once: the
    # first message in mailbox order opens it, the others are filed on it.
    numbers = {key: number for key, _, number, _ in batch["outcomes"]}
    for name, keys in WHOLE.items():
        assert len({numbers[k] for k in keys}) == 1, name
        assert [outcome[k] for k in keys] == [Outcome.NEW_TICKET] + [Outcome.THREADED] * (len(keys) - 1), name
        assert sum(acknowledged[k] for k in keys) == 1, name
        ticket = numbers[keys[0]]
        assert sorted(k for k, _, n in batch["messages"] if n == ticket and k != "(ours)") == sorted(keys)
