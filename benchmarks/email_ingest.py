"""Email ingestion benchmark: N realistic messages APPENDed to a real Dovecot, ingested into
PostgreSQL by the IMAP watcher, timed until every ticket exists, threading checked against the
generator's ground truth.

The generator writes conversations: a customer's first mail, then follow-ups threaded by
In-Reply-To, by References only (no In-Reply-To), or as replies in a legacy charset (ISO-2022-JP,
GB2312) with RFC 2047 subjects; some with attachments (the same logo in many, stored once), some
without a Message-ID; out-of-office auto-replies to a conversation (filed on its ticket, never a
new one); bounces of mail we never sent and list mail (no ticket at all). Every message knows the
conversation it belongs to, so ``threading_accuracy`` is the share of messages that landed on
their conversation's ticket (or on none, when they should not open one), with every
conversation on a ticket of its own.

It starts its own Dovecot (``/usr/sbin/dovecot``, package dovecot-imapd) from a throw-away config
and creates a throw-away database ``cc_bench_email_<hex>`` on the ``DATABASE_URL`` server (dropped
at the end, also on failure).

    python benchmarks/email_ingest.py [--quick] [--messages N] [--seed N]

``--quick`` uses 1,000 messages. Progress goes to stderr; the last line of stdout is one JSON
object with ``messages``, ``msgs_per_s`` and ``threading_accuracy``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from email.header import Header
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from _load import DEFAULT_URL, create_database, drop_database, say
from sqlalchemy import select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels.email.content_store import ContentStore
from channels.email.imap import ImapAccount, MailboxWatcher, WatchOptions
from crm_core.db import UnitOfWorkFactory, create_engine, migrate
from crm_core.models import EmailMessage as EmailRow
from crm_core.services.email_ingest import EmailPolicy, MailboxPolicy
from crm_core.services.tickets import SlaPolicy

TARGET_MSGS_PER_S = 300.0
LOGO = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


@dataclass
class Generated:
    raw: bytes
    key: str | None  # Message-ID (None: the mail has none)
    conversation: int | None  # None: must open no ticket
    subject: str
    sender: str
    body: str


@dataclass
class Corpus:
    messages: list[Generated] = field(default_factory=list)


def _message(
    sender: str,
    subject: str,
    body: str,
    *,
    message_id: str | None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    headers: dict[str, str] | None = None,
    charset: str = "utf-8",
    attachment: bool = False,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@example.com"
    msg["Subject"] = Header(subject, charset).encode() if charset != "utf-8" else subject
    msg["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    if message_id:
        msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    for name, value in (headers or {}).items():
        msg[name] = value
    if charset == "utf-8":
        msg.set_content(body)
    else:
        codec = "iso2022_jp" if charset == "iso-2022-jp" else charset
        msg.set_content(body.encode(codec), maintype="text", subtype="plain", cte="base64")
        msg.set_param("charset", charset)
    if attachment:
        msg.add_attachment(LOGO, maintype="image", subtype="png", filename="logo.png")
    return msg.as_bytes()


def generate(n: int, seed: int) -> Corpus:
    rng = random.Random(seed)
    corpus = Corpus()
    threads: list[list[Generated]] = []
    customers = [f"customer{i}@example{i % 97}.org" for i in range(max(10, n // 4))]
    while len(corpus.messages) < n:
        roll = rng.random()
        number = len(corpus.messages)
        if not threads or roll < 0.38:
            sender = rng.choice(customers)
            subject = f"Order {number}: question about invoice {rng.randint(1000, 9999)}"
            no_id = rng.random() < 0.03
            key = None if no_id else f"m{number}.{seed}@{sender.rpartition('@')[2]}"
            body = f"Hello, this is about order {number}.\nRegards"
            raw = _message(sender, subject, body, message_id=key, attachment=rng.random() < 0.15)
            item = Generated(raw, key, len(threads), subject, sender, body)
            if key is not None:
                threads.append([item])
            else:
                threads.append([])  # a conversation of one: nothing can reply to it by reference
            corpus.messages.append(item)
            continue
        thread_no = rng.randrange(len(threads))
        thread = threads[thread_no]
        if not thread:
            continue
        parent = rng.choice(thread)
        root = thread[0]
        key = f"m{number}.{seed}@{root.sender.rpartition('@')[2]}"
        chain = [m.key for m in thread if m.key][-5:]
        if roll < 0.70:
            raw = _message(
                root.sender,
                f"Re: {root.subject}",
                "Any news?",
                message_id=key,
                in_reply_to=parent.key,
                references=chain,
            )
            conversation: int | None = thread_no
        elif roll < 0.82:
            raw = _message(
                root.sender,
                f"Re: {root.subject}",
                "Following up.\n> quoted",
                message_id=key,
                references=chain,
            )
            conversation = thread_no
        elif roll < 0.88:
            charset = rng.choice(["iso-2022-jp", "gb2312"])
            text = "ご確認お願いします" if charset == "iso-2022-jp" else "请尽快回复"
            raw = _message(root.sender, text, text, message_id=key, in_reply_to=parent.key, charset=charset)
            conversation = thread_no
        elif roll < 0.93:
            raw = _message(
                root.sender,
                f"Automatic reply: {root.subject}",
                "I am out of the office.",
                message_id=key,
                in_reply_to=parent.key,
                headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"},
            )
            conversation = thread_no
        elif roll < 0.97:
            dsn = (
                f"Final-Recipient: rfc822; gone{number}@example.net\nAction: failed\nStatus: 5.1.1\n"
                f"Diagnostic-Code: smtp; 550 5.1.1 user unknown"
            )
            raw = _message(
                "MAILER-DAEMON@mx.example.net",
                "Undelivered Mail Returned to Sender",
                f"Delivery failed.\n{dsn}\nMessage-ID: <unknown{number}@elsewhere.example>",
                message_id=key,
                headers={"Return-Path": "<>", "X-Failed-Recipients": f"gone{number}@example.net"},
            )
            conversation = None
        else:
            raw = _message(
                "news@lists.example.com",
                "Weekly digest",
                "News.",
                message_id=key,
                headers={"List-Id": "<news.lists.example.com>", "List-Unsubscribe": "<mailto:u@x>"},
            )
            conversation = None
        item = Generated(raw, key, conversation, "", root.sender, "")
        if conversation is not None:
            thread.append(item)
        corpus.messages.append(item)
    return corpus


async def append_all(dovecot: Any, login: str, corpus: Corpus) -> None:
    chunk = 500
    for start in range(0, len(corpus.messages), chunk):
        await dovecot.append(login, *(m.raw for m in corpus.messages[start : start + chunk]))


async def accuracy(factory: UnitOfWorkFactory, corpus: Corpus) -> tuple[float, int]:
    async with factory() as uow:
        rows = (
            await uow.session.execute(
                select(EmailRow.message_key, EmailRow.ticket_id).where(EmailRow.direction == "inbound")
            )
        ).all()
    by_key = dict(rows)
    ticket_of_conversation: dict[int, int | None] = {}
    owners: dict[int, int] = {}
    correct = 0
    judged = 0
    for message in corpus.messages:
        if message.key is None:
            continue  # no reply can refer to it; it opens a ticket of its own
        judged += 1
        ticket = by_key.get(message.key)
        if message.conversation is None:
            correct += ticket is None
            continue
        expected = ticket_of_conversation.setdefault(message.conversation, ticket)
        if (
            ticket is not None
            and ticket == expected
            and owners.setdefault(ticket, message.conversation) == message.conversation
        ):
            correct += 1
    return (correct / judged if judged else 1.0), len(rows)


async def wait_for_tickets(factory: UnitOfWorkFactory, expected: int) -> None:
    from sqlalchemy import func

    from crm_core.models import Ticket

    while True:
        async with factory() as uow:
            if int(await uow.session.scalar(select(func.count()).select_from(Ticket)) or 0) >= expected:
                return
        await asyncio.sleep(0.05)


class _NoEvents:
    async def publish(self, events: Any) -> None:
        return None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.email_servers import DOVECOT, start_dovecot

    if not os.path.exists(DOVECOT):  # noqa: ASYNC240 - once, before anything starts
        raise SystemExit("Dovecot is not installed: run `apt-get install -y dovecot-imapd`")
    n = 1000 if args.quick and not args.messages else (args.messages or 5000)
    say(f"generating {n} messages (seed {args.seed})")
    corpus = generate(n, args.seed)
    conversations = {m.conversation for m in corpus.messages if m.conversation is not None}
    base = make_url(os.environ.get("DATABASE_URL", DEFAULT_URL))
    name = f"cc_bench_email_{secrets.token_hex(4)}"
    root = Path(tempfile.mkdtemp(prefix="cc-bench-dovecot-"))
    dovecot = start_dovecot(root)
    await create_database(base, name)
    engine = create_engine(base.set(database=name).render_as_string(hide_password=False))
    try:
        await migrate(engine)
        login = "bench"
        t0 = time.perf_counter()
        await append_all(dovecot, login, corpus)
        say(f"appended {n} messages to Dovecot in {time.perf_counter() - t0:.1f}s")
        factory = UnitOfWorkFactory(engine, _NoEvents())
        watcher = MailboxWatcher(
            ImapAccount("support", dovecot.host, dovecot.port, "none", login, dovecot.password),
            factory,
            MailboxPolicy("support", "support@example.com"),
            EmailPolicy(
                secret=b"benchmark-secret-key",
                domain="example.com",
                our_addresses=frozenset({"support@example.com"}),
                sla=SlaPolicy(),
            ),
            ContentStore(root / "store"),
            WatchOptions(batch_size=args.batch, idle=False, parse_processes=args.parse_processes),
        )
        t0 = time.perf_counter()
        try:
            stored = await watcher.run_once()
        finally:
            watcher.close()
        await wait_for_tickets(factory, len(conversations))
        elapsed = time.perf_counter() - t0
        rate = n / elapsed
        say(f"ingested {stored} messages in {elapsed:.2f}s: {rate:.0f} msg/s")
        score, rows = await accuracy(factory, corpus)
        say(f"threading accuracy {score:.4f} over {rows} stored messages, {len(conversations)} conversations")
        return {
            "benchmark": "email_ingest",
            "messages": n,
            "stored": stored,
            "conversations": len(conversations),
            "seconds": round(elapsed, 3),
            "msgs_per_s": round(rate, 1),
            "threading_accuracy": round(score, 4),
            "target_msgs_per_s": TARGET_MSGS_PER_S,
            "batch_size": args.batch,
            "parse_processes": args.parse_processes,
            "quick": bool(args.quick),
        }
    finally:
        await engine.dispose()
        await drop_database(base, name)
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 messages")
    parser.add_argument("--messages", type=int, default=0, help="number of messages (default 5,000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch", type=int, default=200, help="messages fetched and stored per round")
    parser.add_argument(
        "--parse-processes", type=int, default=0, help="MIME parsing worker processes (email.parse_processes)"
    )
    result = asyncio.run(run(parser.parse_args()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
