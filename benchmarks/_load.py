"""Synthetic customers for the benchmarks, bulk-loaded into a throw-away PostgreSQL database.

``load`` fills a migrated database with ``n`` customers through COPY (one valid US phone, one email
and five interactions each, an active ticket for ~10%, 4 teams and 40 agents), with the migration's
secondary indexes and constraints dropped for the load and rebuilt (and checked) after, then runs
VACUUM ANALYZE. Used by ``customer_card.py`` and ``screen_pop.py``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import phonenumbers
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import URL

from crm_core.contact_points import email_match_key
from crm_core.rules.ticket_status import ACTIVE_STATUSES
from crm_core.services.tickets import TICKET_COUNTER
from crm_core.types import Channel, Direction, Priority

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
CHUNK = 50_000
INTERACTIONS_PER_CUSTOMER = 5
TICKET_SHARE = 0.10

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
