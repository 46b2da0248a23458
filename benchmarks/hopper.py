"""Hopper benchmark: choosing a campaign's next 100 dialable numbers from a call list of 1M.

Creates a throw-away database (``cc_bench_<hex>``) on the ``DATABASE_URL`` server, migrates it and
loads with COPY: N customers (90% consenting to calls, 5% refusing, 5% silent, the consent copied
onto their call-list rows; 10% with a zone of their own among Denver, Phoenix, Honolulu, Anchorage
and Shanghai, the rest placed by their US number in the New York, Chicago or Los Angeles zone),
one running campaign whose call list holds every one of them (80% pending, the rest in flight,
done or exhausted; 40% of the pending not due before tomorrow; 2% under the redial lockout; 0.2%
with a callback in the next two weeks), 3% of the numbers on the company's do-not-call list and 5%
plus N/2 other numbers on the national list. Then VACUUM ANALYZE.

What is timed is :func:`crm_core.services.hopper.next_dialable` for 100 numbers on a session of
an engine made by ``crm_core.db.create_engine`` (the campaign's current row read, the zone sets
inside the calling window worked out, the choice in SQL, the rows read), one pick after the other,
at three moments of the day: 13:30 UTC (only New York's zone open), 18:00 UTC (every US zone
but Honolulu's open) and 02:30 UTC (New York closed, the west and Shanghai open). Also timed, for
information: :func:`crm_core.services.hopper.claim_next` of 10 numbers (locked with SKIP LOCKED
and each rechecked with the dial-time rules), rolled back after each.

    python benchmarks/hopper.py [--quick] [--explain] [--seed N]

``--quick`` loads 100k numbers. Progress goes to stderr; the last line of stdout is one JSON
object with the figures (``hopper_pick_p99_ms`` the target: <= 20 ms at 1M).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from _load import DEFAULT_URL, Generator, admin_dsn, create_database, drop_database, say
from sqlalchemy import event, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from crm_core.db import create_engine, migrate
from crm_core.models import Campaign
from crm_core.services.call_lists import zone_key
from crm_core.services.hopper import claim_next, next_dialable

PICKS = 2_000
QUICK_PICKS = 600
WARMUP = 100
CLAIMS = 60
TARGET_MS = 20.0
CHUNK = 100_000
OWN_ZONES = ("America/Denver", "America/Phoenix", "Pacific/Honolulu", "America/Anchorage", "Asia/Shanghai")
MOMENTS = (
    datetime(2026, 12, 8, 13, 30, tzinfo=UTC),
    datetime(2026, 12, 8, 18, 0, tzinfo=UTC),
    datetime(2026, 12, 9, 2, 30, tzinfo=UTC),
)
LOADED = datetime(2026, 12, 1, tzinfo=UTC)


VOICE_YES = '{"voice": true}'


async def load(url: URL, n: int, rng: random.Random) -> float:
    started = time.perf_counter()
    numbers = Generator(rng, LOADED).phone_numbers(n + n // 2)
    listed, others = numbers[:n], numbers[n:]
    conn = await asyncpg.connect(admin_dsn(url))
    try:
        await conn.execute("SET synchronous_commit = off")
        await conn.execute(
            "INSERT INTO campaigns (id, name, mode, caller_id, script_template, regulatory_profile,"
            " abandonment_target, schedule_timezone, status, machine_action, price_per_minute, zone_keys,"
            " created_at, updated_at) VALUES (1, 'Bench', 'predictive', '+12125550199', '', 'us', 0.03,"
            " 'UTC', 'running', 'hangup', 0.01, '[]', $1, $1)",
            LOADED,
        )
        keys: set[str] = set()
        cache: dict[tuple[str, str | None], str] = {}
        tomorrow = max(MOMENTS) + timedelta(days=1)
        for first in range(0, n, CHUNK):
            customers: list[tuple[Any, ...]] = []
            contacts: list[tuple[Any, ...]] = []
            for offset, e164 in enumerate(listed[first : first + CHUNK]):
                cid = first + offset + 1
                tz = rng.choice(OWN_ZONES) if rng.random() < 0.10 else None
                draw = rng.random()
                consent = VOICE_YES if draw < 0.90 else '{"voice": false}' if draw < 0.95 else "{}"
                customers.append((cid, f"Customer {cid}", "[]", tz, consent, "{}", LOADED, LOADED))
                key = cache.get((e164[:5], tz))
                if key is None:
                    key = cache[(e164[:5], tz)] = zone_key(e164, tz)
                keys.add(key)
                draw = rng.random()
                state = (
                    "pending"
                    if draw < 0.80
                    else "in_flight"
                    if draw < 0.85
                    else "done"
                    if draw < 0.93
                    else "exhausted"
                )
                due = LOADED + timedelta(seconds=rng.randrange(6 * 86400))
                if rng.random() < 0.40:
                    due = tomorrow + timedelta(seconds=rng.randrange(86400))
                locked = tomorrow if rng.random() < 0.02 else None
                callback = (
                    LOADED + timedelta(seconds=rng.randrange(14 * 86400)) if rng.random() < 0.002 else None
                )
                contacts.append(
                    (
                        cid,
                        1,
                        cid,
                        e164,
                        state,
                        key,
                        consent == VOICE_YES,
                        1,
                        0,
                        callback or due,
                        callback,
                        locked,
                        LOADED,
                    )
                )
            await conn.copy_records_to_table(
                "customers",
                records=customers,
                columns=[
                    "id",
                    "display_name",
                    "tags",
                    "timezone",
                    "consent",
                    "custom_fields",
                    "created_at",
                    "updated_at",
                ],
            )
            await conn.copy_records_to_table(
                "campaign_contacts",
                records=contacts,
                columns=[
                    "id",
                    "campaign_id",
                    "customer_id",
                    "e164",
                    "state",
                    "zone_key",
                    "voice_consent",
                    "attempts",
                    "attempts_today",
                    "next_attempt_at",
                    "callback_at",
                    "locked_until",
                    "created_at",
                ],
            )
            say(f"loaded {first + len(customers):,} / {n:,} numbers")
        internal = rng.sample(listed, n * 3 // 100)
        national = rng.sample(listed, n * 5 // 100) + others
        dnc = [(e, "api", LOADED, None) for e in internal] + [
            (e, "national", LOADED, date(2026, 11, 30)) for e in national
        ]
        await conn.copy_records_to_table(
            "do_not_call", records=dnc, columns=["e164", "source", "added_at", "file_date"]
        )
        await conn.execute("UPDATE campaigns SET zone_keys = $1 WHERE id = 1", json.dumps(sorted(keys)))
        for table in ("customers", "campaign_contacts", "campaigns", "do_not_call"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


async def measure(url: URL, picks: int, explain: bool) -> dict[str, Any]:
    engine = create_engine(url.render_as_string(hide_password=False))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    pick_ms: list[float] = []
    claim_ms: list[float] = []
    found: dict[str, int] = {}
    try:
        async with sessions() as session:
            campaign = await session.scalar(select(Campaign))
            assert campaign is not None
            for i in range(WARMUP + picks):
                now = MOMENTS[i % len(MOMENTS)]
                t0 = time.perf_counter()
                chosen = await next_dialable(session, campaign, now, 100)
                elapsed = (time.perf_counter() - t0) * 1000
                await session.rollback()
                if i >= WARMUP:
                    pick_ms.append(elapsed)
                found[now.isoformat()] = len(chosen)
            for i in range(CLAIMS):
                now = MOMENTS[i % len(MOMENTS)]
                t0 = time.perf_counter()
                await claim_next(session, campaign, now, 10)
                claim_ms.append((time.perf_counter() - t0) * 1000)
                await session.rollback()
        if explain:
            await print_plan(engine)
    finally:
        await engine.dispose()
    for moment, count in found.items():
        say(f"at {moment}: {count} numbers chosen")
    return {
        "hopper_pick_p50_ms": round(statistics.median(pick_ms), 3),
        "hopper_pick_p99_ms": round(pct(pick_ms, 99), 3),
        "hopper_claim10_p50_ms": round(statistics.median(claim_ms), 3),
        "hopper_claim10_p99_ms": round(pct(claim_ms, 99), 3),
        "chosen_per_moment": list(found.values()),
    }


async def print_plan(engine: AsyncEngine) -> None:
    """EXPLAIN ANALYZE of the statements one pick runs on the call list."""
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "campaign_contacts" in statement:
            statements.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    async with async_sessionmaker(engine)() as session:
        await next_dialable(session, 1, MOMENTS[0], 100)
    event.remove(engine.sync_engine, "before_cursor_execute", capture)
    raw = await engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        for statement, parameters in statements:
            rows = await driver.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *parameters)
            say(statement + "\n" + "\n".join(r[0] for r in rows))
    finally:
        raw.close()


async def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="100k numbers")
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--explain", action="store_true", help="print the plans of one pick")
    args = parser.parse_args(argv)
    base = make_url(os.environ.get("DATABASE_URL", DEFAULT_URL))
    n = 100_000 if args.quick else 1_000_000
    name = f"cc_bench_{secrets.token_hex(4)}"
    url = base.set(database=name)
    await create_database(base, name)
    try:
        engine = create_engine(url.render_as_string(hide_password=False))
        await migrate(engine)
        await engine.dispose()
        load_s = await load(url, n, random.Random(args.seed))
        say(f"loaded {n:,} numbers in {load_s:.1f}s")
        figures = await measure(url, QUICK_PICKS if args.quick else PICKS, args.explain)
    finally:
        await drop_database(base, name)
        say(f"dropped database {name}")
    say(f"pick p50 {figures['hopper_pick_p50_ms']} ms, p99 {figures['hopper_pick_p99_ms']} ms")
    return {
        **figures,
        "numbers": n,
        "load_s": round(load_s, 1),
        "quick": args.quick,
        "target_met": figures["hopper_pick_p99_ms"] <= TARGET_MS,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(asyncio.run(main())) + "\n")
