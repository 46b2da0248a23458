"""Customer card lookup benchmark: ``card_by_phone`` latency at 10k and 1M customers.

For each size it creates a throw-away database (``cc_bench_<hex>``) on the ``DATABASE_URL`` server,
migrates it, bulk-loads synthetic customers with COPY (one valid US phone, one email and five
interactions each, an active ticket for ~10%), rebuilds exactly the migration's indexes and
constraints, and runs VACUUM ANALYZE. It then times ``card_by_phone`` for random existing phones,
a fresh ``AsyncSession`` per lookup: 500 warm-up lookups per size, then 10,000 timed ones in ten
rounds that alternate between the sizes so that noise from other processes hits both alike. The
databases are dropped at the end, also on failure.

    python benchmarks/customer_card.py [--quick] [--explain] [--seed N]

``--quick`` loads 10k and 100k customers and times 2,000 lookups; the ``*_1m`` keys then hold the
100k figures (``n_large`` and ``quick`` say so). ``--explain`` prints the plans of one lookup's
queries. Progress goes to stderr; the last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import secrets
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import phonenumbers
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.contact_points import email_match_key
from crm_core.db import create_engine, migrate
from crm_core.rules.ticket_status import ACTIVE_STATUSES
from crm_core.services.customer_card import card_by_phone
from crm_core.services.tickets import TICKET_COUNTER
from crm_core.types import Channel, Direction, Priority

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
WARMUP = 500
LOOKUPS = 10_000
QUICK_LOOKUPS = 2_000
ROUNDS = 10
CHUNK = 50_000
INTERACTIONS_PER_CUSTOMER = 5
TICKET_SHARE = 0.10
P99_TARGET_MS = 5.0
RATIO_TARGET = 1.5

# The tables whose secondary indexes and constraints are dropped for the load and rebuilt after.
BULK_TABLES = ("customers", "customer_phones", "customer_emails", "tickets", "interactions")

# Real US area codes (with their time zone) and every exchange 200-999 that is not an N11 code.
AREA_CODES: dict[int, str] = {
    201: "America/New_York",
    202: "America/New_York",
    212: "America/New_York",
    213: "America/Los_Angeles",
    305: "America/New_York",
    312: "America/Chicago",
    415: "America/Los_Angeles",
    512: "America/Chicago",
    617: "America/New_York",
    646: "America/New_York",
    702: "America/Los_Angeles",
    713: "America/Chicago",
    718: "America/New_York",
    773: "America/Chicago",
    818: "America/Los_Angeles",
    917: "America/New_York",
}
AREAS = tuple(AREA_CODES)
EXCHANGES = tuple(x for x in range(200, 1000) if x % 100 != 11)
LINES = 10_000

# fmt: off
FIRST_NAMES = [
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William", "Elizabeth",
    "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Maria",
    "Wei", "Mei", "Ahmed", "Fatima", "Ivan", "Olga", "Kenji", "Yuki", "Luis", "Ana",
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson",
    "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis",
    "Robinson",
]
# fmt: on
COMPANIES = (
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella LLC",
    "Hooli",
    "Stark Industries",
    "Wayne Enterprises",
)
SEGMENTS = ("consumer", "smb", "enterprise", None)
LANGUAGES = ("en", "en", "en", "es", "fr", None)
EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "example.org")
TAGS = ("[]", "[]", '["vip"]', '["newsletter"]', '["vip", "b2b"]')
CONSENTS = ("{}", '{"sms": true, "email": true}', '{"voice": false}', '{"sms": false}')
CUSTOM_FIELDS = ("{}", "{}", '{"account_no": "A-1042"}', '{"plan": "premium"}')
TOPICS = (
    "Billing question",
    "Password reset",
    "Delivery delayed",
    "Refund request",
    "Upgrade plan",
    "Cancel subscription",
    "Invoice copy",
    "Technical issue with the app",
    "Change of address",
    "Complaint about service",
)
CHANNELS = tuple(c.value for c in Channel)
DIRECTIONS = (Direction.INBOUND.value, Direction.OUTBOUND.value)
STATUS_BY_CHANNEL: dict[str, tuple[str, ...]] = {
    "voice": ("completed", "completed", "completed", "no-answer", "busy"),
    "sms": ("delivered", "received"),
    "email": ("received", "sent"),
    "chat": ("closed",),
}
EXTERNAL_PREFIX = {"voice": "CA", "sms": "SM", "email": "msg-", "chat": "chat-"}
METADATA_BY_CHANNEL = {
    "voice": '{"recording": false}',
    "sms": '{"segments": 1}',
    "email": '{"mailbox": "support"}',
    "chat": '{"widget": "web"}',
}
TICKET_STATUSES = tuple(sorted(s.value for s in ACTIVE_STATUSES))
PRIORITIES = tuple(p.value for p in Priority)
PRIORITY_WEIGHTS = (2, 6, 2, 1)

N_TEAMS = 4
N_AGENTS = 40
YEAR_SECONDS = 365 * 24 * 3600

# fmt: off
CUSTOMER_COLUMNS = [
    "id", "display_name", "company", "owner_id", "tags", "segment", "timezone", "preferred_language",
    "consent", "custom_fields", "merged_into_id", "created_at", "updated_at",
]
PHONE_COLUMNS = ["id", "customer_id", "e164", "label", "created_at"]
EMAIL_COLUMNS = ["id", "customer_id", "address", "match_key", "label", "created_at"]
TICKET_COLUMNS = [
    "id", "number", "subject", "status", "priority", "customer_id", "assignee_id", "team_id",
    "source_channel", "linked_ticket_id", "first_response_due_at", "resolution_due_at",
    "first_responded_at", "resolved_at", "closed_at", "created_at", "updated_at",
]
INTERACTION_COLUMNS = [
    "id", "channel", "direction", "customer_id", "agent_id", "ticket_id", "external_id", "status",
    "started_at", "ended_at", "duration_seconds", "subject", "body", "summary", "metadata", "created_at",
]
AGENT_COLUMNS = [
    "id", "login", "display_name", "email", "role", "team_id", "supervisor_id", "skills", "password_hash",
    "active", "created_at", "updated_at",
]
# fmt: on

console = Console(stderr=True, highlight=False, soft_wrap=True)
_T0 = time.perf_counter()


def say(message: str) -> None:
    console.print(f"[dim]{time.perf_counter() - _T0:8.1f}s[/dim] {message}")


Row = tuple[Any, ...]


@dataclass
class Chunk:
    customers: list[Row] = field(default_factory=list)
    phones: list[Row] = field(default_factory=list)
    emails: list[Row] = field(default_factory=list)
    tickets: list[Row] = field(default_factory=list)
    interactions: list[Row] = field(default_factory=list)


@dataclass
class Target:
    """One database of ``n`` customers and what was measured on it."""

    n: int
    name: str
    url: URL
    created: bool = False
    load_s: float = 0.0
    picks: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[p - 1]


class Generator:
    """Deterministic synthetic data; ids are assigned here so rows can reference each other."""

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        self.ticket_id = 0
        self.interaction_id = 0

    def phone_numbers(self, n: int) -> list[str]:
        """``n`` distinct valid US numbers (checked with phonenumbers on a sample)."""
        per_area = len(EXCHANGES) * LINES
        codes = self.rng.sample(range(len(AREAS) * per_area), n)
        numbers = []
        for code in codes:
            area, rest = divmod(code, per_area)
            exchange, line = divmod(rest, LINES)
            numbers.append(f"+1{AREAS[area]}{EXCHANGES[exchange]}{line:04d}")
        for number in self.rng.sample(numbers, min(n, 2_000)):
            if not phonenumbers.is_valid_number(phonenumbers.parse(number)):
                raise SystemExit(f"generated an invalid phone number: {number}")
        return numbers

    def chunk(self, first_id: int, phones: Sequence[str]) -> Chunk:
        rng, now = self.rng, self.now
        random_ = rng.random
        randrange = rng.randrange
        choice = rng.choice
        out = Chunk()
        for offset, e164 in enumerate(phones):
            cid = first_id + offset
            first, last = choice(FIRST_NAMES), choice(LAST_NAMES)
            created = now - timedelta(seconds=YEAR_SECONDS + randrange(2 * YEAR_SECONDS))
            out.customers.append(
                (
                    cid,
                    f"{first} {last}",
                    choice(COMPANIES) if random_() < 0.3 else None,
                    randrange(1, N_AGENTS + 1) if random_() < 0.7 else None,
                    choice(TAGS),
                    choice(SEGMENTS),
                    AREA_CODES[int(e164[2:5])],
                    choice(LANGUAGES),
                    choice(CONSENTS),
                    choice(CUSTOM_FIELDS),
                    None,
                    created,
                    created,
                )
            )
            out.phones.append((cid, cid, e164, "mobile" if random_() < 0.6 else "work", created))
            address = f"{first.lower()}.{last.lower()}.{cid}@{choice(EMAIL_DOMAINS)}"
            out.emails.append((cid, cid, address, email_match_key(address), None, created))

            ticket_id = None
            if random_() < TICKET_SHARE:
                self.ticket_id += 1
                ticket_id = self.ticket_id
                opened = now - timedelta(seconds=randrange(30 * 24 * 3600))
                status = choice(TICKET_STATUSES)
                out.tickets.append(
                    (
                        ticket_id,
                        ticket_id,
                        choice(TOPICS),
                        status,
                        rng.choices(PRIORITIES, PRIORITY_WEIGHTS)[0],
                        cid,
                        randrange(1, N_AGENTS + 1) if random_() < 0.8 else None,
                        randrange(1, N_TEAMS + 1),
                        choice(CHANNELS),
                        None,
                        opened + timedelta(hours=4),
                        opened + timedelta(days=3),
                        None if status == "new" else opened + timedelta(hours=1),
                        None,
                        None,
                        opened,
                        opened,
                    )
                )

            starts = sorted(randrange(YEAR_SECONDS) for _ in range(INTERACTIONS_PER_CUSTOMER))
            for index, ago in enumerate(starts):
                self.interaction_id += 1
                iid = self.interaction_id
                channel = choice(CHANNELS)
                started = now - timedelta(seconds=ago)
                topic = choice(TOPICS)
                duration = randrange(30, 1800) if channel == "voice" else None
                ended: datetime | None = None
                if channel in ("voice", "chat"):
                    ended = started + timedelta(seconds=duration or randrange(60, 900))
                out.interactions.append(
                    (
                        iid,
                        channel,
                        choice(DIRECTIONS),
                        cid,
                        randrange(1, N_AGENTS + 1) if random_() < 0.8 else None,
                        ticket_id if index == 0 else None,  # the most recent contact opened the ticket
                        f"{EXTERNAL_PREFIX[channel]}{iid:032x}",
                        choice(STATUS_BY_CHANNEL[channel]),
                        started,
                        ended,
                        duration,
                        topic,
                        None if channel == "voice" else f"Hello, this is about: {topic.lower()}.",
                        f"Customer called: {topic.lower()}"
                        if channel == "voice" and random_() < 0.5
                        else None,
                        METADATA_BY_CHANNEL[channel],
                        started,
                    )
                )
        return out


def admin_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(url: URL, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn(url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(url: URL, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn(url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def schema_snapshot(conn: asyncpg.Connection) -> set[tuple[str, str]]:
    """Every index definition and constraint definition of the bulk-loaded tables."""
    rows = await conn.fetch(
        """
        SELECT 'index', pg_get_indexdef(i.indexrelid) FROM pg_index i
         WHERE i.indrelid = ANY($1::text[]::regclass[])
        UNION ALL
        SELECT 'constraint', c.conrelid::regclass::text || ' ' || quote_ident(c.conname) || ' '
               || pg_get_constraintdef(c.oid)
          FROM pg_constraint c WHERE c.conrelid = ANY($1::text[]::regclass[])
        """,
        list(BULK_TABLES),
    )
    return {(r[0], r[1]) for r in rows}


async def drop_secondary_structures(conn: asyncpg.Connection) -> list[str]:
    """Drop FKs, unique constraints and plain indexes (not PKs); return the DDL that recreates them."""
    constraints = await conn.fetch(
        """
        SELECT c.contype::text AS contype, c.conrelid::regclass::text AS tbl, quote_ident(c.conname) AS name,
               pg_get_constraintdef(c.oid) AS def
          FROM pg_constraint c
         WHERE c.conrelid = ANY($1::text[]::regclass[]) AND c.contype IN ('f', 'u')
        """,
        list(BULK_TABLES),
    )
    indexes = await conn.fetch(
        """
        SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
          FROM pg_index i
         WHERE i.indrelid = ANY($1::text[]::regclass[])
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                            WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x'))
        """,
        list(BULK_TABLES),
    )
    foreign = [r for r in constraints if r["contype"] == "f"]
    unique = [r for r in constraints if r["contype"] == "u"]
    for r in (*foreign, *unique):
        await conn.execute(f"ALTER TABLE {r['tbl']} DROP CONSTRAINT {r['name']}")
    for r in indexes:
        await conn.execute(f"DROP INDEX {r['name']}")
    recreate = [r["def"] for r in indexes]
    recreate += [f"ALTER TABLE {r['tbl']} ADD CONSTRAINT {r['name']} {r['def']}" for r in (*unique, *foreign)]
    return recreate


async def load(url: URL, n: int, gen: Generator) -> list[str]:
    """Fill the migrated database with ``n`` customers; return their phone numbers."""
    conn = await asyncpg.connect(admin_dsn(url))
    try:
        await conn.execute("SET synchronous_commit = off; SET maintenance_work_mem = '512MB'")
        before = await schema_snapshot(conn)
        recreate = await drop_secondary_structures(conn)

        created = gen.now - timedelta(days=3 * 365)
        await conn.copy_records_to_table(
            "teams", records=[(i, f"Team {i}", created) for i in range(1, N_TEAMS + 1)]
        )
        agents = [
            (
                i,
                f"agent{i:02d}",
                f"Agent {i:02d}",
                f"agent{i:02d}@contact-center.example",
                "supervisor" if i <= N_TEAMS else "agent",
                (i - 1) % N_TEAMS + 1,
                None,
                '["en"]',
                None,
                True,
                created,
                created,
            )
            for i in range(1, N_AGENTS + 1)
        ]
        await conn.copy_records_to_table(
            "agents",
            records=agents,
            columns=AGENT_COLUMNS,
        )

        phones = gen.phone_numbers(n)
        with Progress(
            TextColumn("  loading {task.fields[n]:,} customers"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("load", total=n, n=n)
            for start in range(0, n, CHUNK):
                chunk = gen.chunk(start + 1, phones[start : start + CHUNK])
                await conn.copy_records_to_table(
                    "customers", records=chunk.customers, columns=CUSTOMER_COLUMNS
                )
                await conn.copy_records_to_table(
                    "customer_phones", records=chunk.phones, columns=PHONE_COLUMNS
                )
                await conn.copy_records_to_table(
                    "customer_emails", records=chunk.emails, columns=EMAIL_COLUMNS
                )
                await conn.copy_records_to_table("tickets", records=chunk.tickets, columns=TICKET_COLUMNS)
                await conn.copy_records_to_table(
                    "interactions", records=chunk.interactions, columns=INTERACTION_COLUMNS
                )
                progress.advance(task, len(chunk.customers))
        say(f"  copied {n:,} customers, {gen.ticket_id:,} tickets, {gen.interaction_id:,} interactions")

        t0 = time.perf_counter()
        for ddl in recreate:
            await conn.execute(ddl)
        if await schema_snapshot(conn) != before:
            raise RuntimeError("rebuilt indexes/constraints differ from the migration's")
        say(f"  rebuilt {len(recreate)} indexes and constraints in {time.perf_counter() - t0:.1f}s")

        for table in ("teams", "agents", *BULK_TABLES):
            sequence = f"pg_get_serial_sequence('{table}', 'id')"
            await conn.execute(f"SELECT setval({sequence}, max(id)) FROM {table} HAVING count(*) > 0")
        await conn.execute(
            "INSERT INTO counters (name, value) VALUES ($1, $2)", TICKET_COUNTER, gen.ticket_id
        )
        t0 = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE)")
        await conn.execute("CHECKPOINT")
        size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
        say(f"  VACUUM ANALYZE + CHECKPOINT in {time.perf_counter() - t0:.1f}s; database size {size}")
        return phones
    finally:
        await conn.close()


async def timed_lookups(sessions: async_sessionmaker[AsyncSession], phones: Sequence[str]) -> list[float]:
    """Wall time in milliseconds of one ``card_by_phone`` per phone, each in a fresh session."""
    latencies = []
    for phone in phones:
        t0 = time.perf_counter()
        async with sessions() as session:
            card = await card_by_phone(session, phone)
        latencies.append((time.perf_counter() - t0) * 1000)
        if card is None or phone not in card.phones:
            raise RuntimeError(f"no card for loaded phone {phone}")
    return latencies


async def explain(target: Target, phone: str) -> None:
    """Print EXPLAIN (ANALYZE, BUFFERS) of every statement one card lookup runs."""
    engine = create_engine(target.url.render_as_string(hide_password=False), pool_size=1)
    statements: list[tuple[str, Sequence[Any]]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Sequence[Any], *_: Any) -> None:
        statements.append((statement, params))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            await card_by_phone(session, phone)
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(admin_dsn(target.url))
    try:
        for statement, params in statements:
            plan = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", *params)
            console.print(f"[bold]N={target.n:,}[/bold] {' '.join(statement.split())[:120]}...")
            for row in plan:
                console.print(f"    {row[0]}", markup=False)
    finally:
        await conn.close()


async def measure(targets: Sequence[Target], warmup: int, lookups: int) -> None:
    """Warm up each database, then time interleaved rounds so that machine noise hits all sizes alike."""
    engines = [create_engine(t.url.render_as_string(hide_password=False)) for t in targets]
    try:
        sessions = [async_sessionmaker(engine, expire_on_commit=False) for engine in engines]
        for target, maker in zip(targets, sessions, strict=True):
            await timed_lookups(maker, target.picks[:warmup])
        per_round = -(-lookups // ROUNDS)
        order = list(zip(targets, sessions, strict=True))
        for round_no in range(ROUNDS):
            start = warmup + round_no * per_round
            stop = warmup + min(lookups, (round_no + 1) * per_round)
            medians: dict[int, float] = {}
            for target, maker in order if round_no % 2 == 0 else reversed(order):
                latencies = await timed_lookups(maker, target.picks[start:stop])
                target.latencies_ms += latencies
                medians[target.n] = statistics.median(latencies)
            figures = ", ".join(f"N={n:,} {ms:.2f}" for n, ms in sorted(medians.items()))
            say(f"  round {round_no + 1}/{ROUNDS} median ms: {figures}; load {os.getloadavg()[0]:.1f}")
    finally:
        for engine in engines:
            await engine.dispose()


async def prepare(base: URL, target: Target, gen: Generator, picks: int) -> None:
    """Create, migrate and load the target's database; pick the phones to look up."""
    say(f"N={target.n:,}: creating database {target.name}")
    await create_database(base, target.name)
    target.created = True
    engine = create_engine(target.url.render_as_string(hide_password=False))
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    t0 = time.perf_counter()
    phones = await load(target.url, target.n, gen)
    target.load_s = time.perf_counter() - t0
    target.picks = gen.rng.choices(phones, k=picks)
    say(f"N={target.n:,}: loaded in {target.load_s:.1f}s")


async def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10k and 100k customers, 2,000 lookups")
    parser.add_argument("--seed", type=int, default=20261123, help="random seed for data and lookups")
    parser.add_argument("--explain", action="store_true", help="print the query plans of one lookup")
    args = parser.parse_args(argv)

    base = make_url(os.environ.get("DATABASE_URL", DEFAULT_URL))
    n_small, n_large = (10_000, 100_000) if args.quick else (10_000, 1_000_000)
    lookups = QUICK_LOOKUPS if args.quick else LOOKUPS
    rng = random.Random(args.seed)
    now = datetime.now(UTC)

    targets: list[Target] = []
    try:
        for n in (n_small, n_large):
            name = f"cc_bench_{secrets.token_hex(4)}"
            targets.append(Target(n, name, base.set(database=name)))
            await prepare(base, targets[-1], Generator(rng, now), WARMUP + lookups)
        gc.collect()
        gc.freeze()  # keep the harness's own data out of the collector's way while timing
        load_before = os.getloadavg()[0]
        say(f"{WARMUP} warm-up lookups per size, then {lookups:,} timed in {ROUNDS} interleaved rounds")
        await measure(targets, WARMUP, lookups)
        load_after = os.getloadavg()[0]
        gc.unfreeze()
        for target in targets:
            say(f"N={target.n:,}: p50 {target.percentile(50):.3f} ms, p99 {target.percentile(99):.3f} ms")
            if args.explain:
                await explain(target, target.picks[0])
    finally:
        for target in targets:
            if target.created:
                await drop_database(base, target.name)
                say(f"N={target.n:,}: dropped database {target.name}")

    small, large = targets
    p99_small, p99_large = small.percentile(99), large.percentile(99)
    ratio = p99_large / p99_small
    return {
        "p50_ms_10k": round(small.percentile(50), 3),
        "p99_ms_10k": round(p99_small, 3),
        "p50_ms_1m": round(large.percentile(50), 3),
        "p99_ms_1m": round(p99_large, 3),
        "ratio_p99_1m_to_10k": round(ratio, 3),
        "load_s_10k": round(small.load_s, 1),
        "load_s_1m": round(large.load_s, 1),
        "n_small": n_small,
        "n_large": n_large,
        "lookups": lookups,
        "warmup": WARMUP,
        "quick": args.quick,
        "target_p99_1m_met": p99_large < P99_TARGET_MS,
        "target_ratio_met": ratio <= RATIO_TARGET,
        "loadavg_1m_before": round(load_before, 2),
        "loadavg_1m_after": round(load_after, 2),
    }


if __name__ == "__main__":
    figures = asyncio.run(main())
    sys.stdout.write(json.dumps(figures) + "\n")
