"""Customer card benchmark: the screen-pop's card lookup latency at 10k and 1M customers.

For each size it creates a throw-away database (``cc_bench_<hex>``) on the ``DATABASE_URL`` server,
migrates it, bulk-loads synthetic customers with COPY (one valid US phone, one email and five
interactions each, an active ticket for ~10%), rebuilds exactly the migration's indexes and
constraints, and runs VACUUM ANALYZE.

What is timed is what the screen-pop runs for the card (``InboundCalls._log_routed_call`` in
contact_center/voice/inbound.py), one lookup after the other: ``card_by_customer`` (the card statement
keyed by customer id, as a ``text()`` statement built once) on a connection taken from
``crm_core.sql.AutocommitConnections`` (the kept autocommit connections the desk's hot path uses,
default size and freshness) on an engine made by ``crm_core.db.create_engine``. One lookup's time
(``time.perf_counter()``) runs from asking ``AutocommitConnections.connect()`` for a connection
to having it back there: taking the kept connection (one used less than 5 s ago skips the pool's
pre-ping; one idle for longer goes back to the pool and a checked one is taken), the one statement,
turning the row into a ``CustomerCard``, and giving the connection back. Not timed: what the desk
runs before the card on that connection (the caller's lookup by number, the agent's claim, the
interaction's ``INSERT``) and the publishing of the pop; ``screen_pop.py`` times the whole call.
Each lookup is for a random loaded customer; the card must hold that customer's phone. 500
warm-up lookups per size, then 10,000 timed ones in ten rounds that alternate between the sizes so
that noise from other processes hits both alike. The databases are dropped at the end, also on
failure.

    python benchmarks/customer_card.py [--quick] [--explain] [--seed N]

``--quick`` loads 10k and 100k customers and times 2,000 lookups; the ``*_1m`` keys then hold the
100k figures (``n_large`` and ``quick`` say so). ``--explain`` prints the plan of one lookup's
statement. Progress goes to stderr; the last line of stdout is one JSON object with the figures.
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
from datetime import UTC, datetime
from typing import Any

import asyncpg
from _load import DEFAULT_URL, Generator, admin_dsn, console, create_database, drop_database, load, say
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url

from crm_core.db import create_engine, migrate
from crm_core.services.customer_card import card_by_customer
from crm_core.sql import AutocommitConnections

WARMUP = 500
LOOKUPS = 10_000
QUICK_LOOKUPS = 2_000
ROUNDS = 10
P99_TARGET_MS = 5.0
RATIO_TARGET = 1.5
TIMED = "card_by_customer on crm_core.sql.AutocommitConnections, as the screen-pop"


@dataclass(frozen=True, slots=True)
class Pick:
    """A loaded customer to look up, and the phone its card must hold."""

    customer_id: int
    phone: str


@dataclass
class Target:
    """One database of ``n`` customers and what was measured on it."""

    n: int
    name: str
    url: URL
    created: bool = False
    load_s: float = 0.0
    picks: list[Pick] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[p - 1]


async def timed_lookups(connections: AutocommitConnections, picks: Sequence[Pick]) -> list[float]:
    """Wall time in milliseconds of one screen-pop card per pick: a kept autocommit connection
    taken, ``card_by_customer`` on it, the connection given back."""
    latencies = []
    for pick in picks:
        t0 = time.perf_counter()
        async with connections.connect() as conn:
            card = await card_by_customer(conn, pick.customer_id)
        latencies.append((time.perf_counter() - t0) * 1000)
        if card is None or card.customer_id != pick.customer_id or pick.phone not in card.phones:
            raise RuntimeError(f"no card with {pick.phone} for loaded customer {pick.customer_id}")
    return latencies


async def explain(target: Target, pick: Pick) -> None:
    """Print EXPLAIN (ANALYZE, BUFFERS) of every statement one card lookup runs."""
    engine = create_engine(target.url.render_as_string(hide_password=False), pool_size=1)
    statements: list[tuple[str, Sequence[Any]]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Sequence[Any], *_: Any) -> None:
        statements.append((statement, params))

    connections = AutocommitConnections(engine)
    try:
        async with connections.connect() as conn:
            event.listen(engine.sync_engine, "before_cursor_execute", capture)  # the card only
            await card_by_customer(conn, pick.customer_id)
    finally:
        await connections.close()
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
    kept = [AutocommitConnections(engine) for engine in engines]
    try:
        for target, connections in zip(targets, kept, strict=True):
            await timed_lookups(connections, target.picks[:warmup])
        per_round = -(-lookups // ROUNDS)
        order = list(zip(targets, kept, strict=True))
        for round_no in range(ROUNDS):
            start = warmup + round_no * per_round
            stop = warmup + min(lookups, (round_no + 1) * per_round)
            medians: dict[int, float] = {}
            for target, connections in order if round_no % 2 == 0 else reversed(order):
                latencies = await timed_lookups(connections, target.picks[start:stop])
                target.latencies_ms += latencies
                medians[target.n] = statistics.median(latencies)
            figures = ", ".join(f"N={n:,} {ms:.2f}" for n, ms in sorted(medians.items()))
            say(f"  round {round_no + 1}/{ROUNDS} median ms: {figures}; load {os.getloadavg()[0]:.1f}")
    finally:
        for connections in kept:
            await connections.close()
        for engine in engines:
            await engine.dispose()


async def prepare(base: URL, target: Target, gen: Generator, picks: int) -> None:
    """Create, migrate and load the target's database; pick the customers to look up."""
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
    # The loader numbers customers from 1 in the order of the phones it returns.
    chosen = gen.rng.choices(range(len(phones)), k=picks)
    target.picks = [Pick(index + 1, phones[index]) for index in chosen]
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
        "timed": TIMED,
    }


if __name__ == "__main__":
    figures = asyncio.run(main())
    sys.stdout.write(json.dumps(figures) + "\n")
