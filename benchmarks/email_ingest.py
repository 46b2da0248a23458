"""Email ingestion benchmark: N realistic messages APPENDed to a real Dovecot, ingested into
PostgreSQL by the IMAP watcher, timed until every ticket exists, threading checked against the
generator's ground truth; with the service's settings, then with a larger batch.

The generator writes conversations: a customer's first mail, then follow-ups threaded by
In-Reply-To, by References only (no In-Reply-To), or as replies in a legacy charset (ISO-2022-JP,
GB2312) with RFC 2047 subjects; some with attachments (the same logo in many, stored once), some
without a Message-ID; out-of-office auto-replies to a conversation (filed on its ticket, never a
new one); bounces of mail we never sent and list mail (no ticket at all). Every message knows the
conversation it belongs to, so ``threading_accuracy`` is the share of messages that landed on
their conversation's ticket (or on none, when they should not open one), with every
conversation on a ticket of its own.

The watcher is built as ``contact-center serve`` builds it (``contact_center.email.wiring``:
``watch_options``, ``email_policy``, ``mailbox_policy``, handing mail to the core's
``EmailIntake``) from the service's settings
(config/default.toml, nothing from the environment) with one mailbox on the benchmark's Dovecot,
so it fetches and stores ``email.batch_size`` messages per transaction (50) and parses in its own
process (``email.parse_processes`` 0). A second run repeats the ingestion with
``--compare-batch-size`` (200) into a database and mailbox of its own.

What it touches: PostgreSQL (``DATABASE_URL``) and a Dovecot it starts itself
(``/usr/sbin/dovecot``, package dovecot-imapd, from a throw-away config). No Redis: the events of
the ingested messages go nowhere (the service would publish them on its bus), and ``REDIS_URL`` is
ignored. No SMTP either: acknowledgments are written to the outbox table, never sent. Each run
creates a throw-away database ``cc_bench_email_<hex>`` (dropped at the end, also on failure).

    python benchmarks/email_ingest.py [--quick] [--messages N] [--seed N] [--batch-size N]
                                      [--compare-batch-size N] [--parse-processes N]

``--quick`` uses 1,000 messages. Progress goes to stderr; the last line of stdout is one JSON
object: ``msgs_per_s``, ``threading_accuracy`` and ``seconds`` of the first run (the service's
settings unless ``--batch-size`` or ``--parse-processes`` say otherwise: ``service_defaults``
tells), the same per batch size as ``msgs_per_s_batch_<N>``, ``threading_accuracy_batch_<N>`` and
``seconds_batch_<N>``, and ``backends``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
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
from typing import Any, TypedDict

from _load import DEFAULT_URL, create_database, drop_database, say
from sqlalchemy import select
from sqlalchemy.engine import URL, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels.email.content_store import ContentStore
from channels.email.imap import MailboxWatcher, WatchOptions
from contact_center.email.wiring import email_policy, imap_account, mailbox_policy, watch_options
from contact_center.settings import Settings, load_settings
from crm_core.db import UnitOfWorkFactory, create_engine, migrate
from crm_core.models import EmailMessage as EmailRow
from crm_core.services.email_intake import EmailIntake

TARGET_MSGS_PER_S = 300.0
BACKENDS = "PostgreSQL and Dovecot (IMAP); no Redis (events dropped), no SMTP"
COMPARE_BATCH_SIZE = 200
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


def service_settings(dovecot: Any, login: str) -> Settings:
    """The service's settings (config/default.toml alone) with one mailbox on our Dovecot."""
    settings = load_settings(env={"SECRET_KEY": "benchmark-secret-key-0123456789"})
    mailbox = {
        "name": "support",
        "address": "support@example.com",
        "imap_host": dovecot.host,
        "imap_port": dovecot.port,
        "imap_tls": "none",
        "login": login,
        "password": dovecot.password,
    }
    return settings.with_overrides(email={"mailboxes": [mailbox]})


class Ingestion(TypedDict):
    stored: int
    seconds: float
    msgs_per_s: float
    threading_accuracy: float


async def ingest_once(
    base: URL, dovecot: Any, root: Path, corpus: Corpus, options: dict[str, int]
) -> Ingestion:
    """One ingestion of the corpus into a database and a mailbox of its own, with the service's
    watcher settings changed by ``options``."""
    n = len(corpus.messages)
    conversations = {m.conversation for m in corpus.messages if m.conversation is not None}
    login = f"bench{secrets.token_hex(4)}"
    settings = service_settings(dovecot, login)
    watching: WatchOptions = dataclasses.replace(watch_options(settings), **options)
    name = f"cc_bench_email_{secrets.token_hex(4)}"
    await create_database(base, name)
    engine = create_engine(base.set(database=name).render_as_string(hide_password=False))
    try:
        await migrate(engine)
        t0 = time.perf_counter()
        await append_all(dovecot, login, corpus)
        say(f"appended {n} messages to Dovecot in {time.perf_counter() - t0:.1f}s")
        factory = UnitOfWorkFactory(engine, _NoEvents())
        mailbox = settings.email.mailboxes[0]
        watcher = MailboxWatcher(
            imap_account(mailbox),
            EmailIntake(factory, mailbox_policy(mailbox), email_policy(settings)),
            ContentStore(root / f"store-{login}"),
            watching,
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
            "stored": stored,
            "seconds": round(elapsed, 3),
            "msgs_per_s": round(rate, 1),
            "threading_accuracy": round(score, 4),
        }
    finally:
        await engine.dispose()
        await drop_database(base, name)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.email_servers import DOVECOT, start_dovecot

    if not os.path.exists(DOVECOT):  # noqa: ASYNC240 - once, before anything starts
        raise SystemExit("Dovecot is not installed: run `apt-get install -y dovecot-imapd`")
    if os.environ.get("REDIS_URL"):
        say("REDIS_URL is ignored: this benchmark touches PostgreSQL and Dovecot only")
    n = 1000 if args.quick and not args.messages else (args.messages or 5000)
    say(f"generating {n} messages (seed {args.seed})")
    corpus = generate(n, args.seed)
    conversations = {m.conversation for m in corpus.messages if m.conversation is not None}
    defaults = watch_options(load_settings(env={"SECRET_KEY": "benchmark-secret-key-0123456789"}))
    first = {
        "batch_size": args.batch_size or defaults.batch_size,
        "parse_processes": defaults.parse_processes if args.parse_processes is None else args.parse_processes,
    }
    plans = [first]
    if args.compare_batch_size and args.compare_batch_size != first["batch_size"]:
        plans.append({**first, "batch_size": args.compare_batch_size})
    base = make_url(os.environ.get("DATABASE_URL", DEFAULT_URL))
    root = Path(tempfile.mkdtemp(prefix="cc-bench-dovecot-"))
    dovecot = start_dovecot(root)
    results: list[Ingestion] = []
    try:
        for options in plans:
            say(f"batch size {options['batch_size']}, {options['parse_processes']} parse processes")
            results.append(await ingest_once(base, dovecot, root, corpus, options))
    finally:
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)
    figures: dict[str, Any] = {
        "benchmark": "email_ingest",
        "backends": BACKENDS,
        "messages": n,
        "conversations": len(conversations),
        **results[0],
        "target_msgs_per_s": TARGET_MSGS_PER_S,
        "batch_size": first["batch_size"],
        "parse_processes": first["parse_processes"],
        "default_batch_size": defaults.batch_size,
        "default_parse_processes": defaults.parse_processes,
        "service_defaults": (first["batch_size"], first["parse_processes"])
        == (defaults.batch_size, defaults.parse_processes),
    }
    for options, result in zip(plans, results, strict=True):
        size = options["batch_size"]
        figures[f"msgs_per_s_batch_{size}"] = result["msgs_per_s"]
        figures[f"threading_accuracy_batch_{size}"] = result["threading_accuracy"]
        figures[f"seconds_batch_{size}"] = result["seconds"]
    figures["quick"] = bool(args.quick)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 messages")
    parser.add_argument("--messages", type=int, default=0, help="number of messages (default 5,000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--batch-size",
        "--batch",
        type=int,
        default=0,
        help="messages fetched and stored per transaction in the first run (default: the service's "
        "email.batch_size)",
    )
    parser.add_argument(
        "--compare-batch-size",
        type=int,
        default=COMPARE_BATCH_SIZE,
        help=f"batch size of a second run ({COMPARE_BATCH_SIZE}; 0: no second run)",
    )
    parser.add_argument(
        "--parse-processes",
        type=int,
        default=None,
        help="MIME parsing worker processes (default: the service's email.parse_processes)",
    )
    result = asyncio.run(run(parser.parse_args()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
