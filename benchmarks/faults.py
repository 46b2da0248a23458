"""Fault benchmark: the fault suite's four faults under heavier traffic, with figures.

It starts its own PostgreSQL cluster (``initdb``, run as the ``postgres`` user when run as root)
and Redis server on spare loopback ports, so that it can restart them; the shared servers named by
DATABASE_URL / REDIS_URL are never touched. Two instances of the service (``contact-center
serve``) run behind a round-robin load balancer, with Twilio played by a sandbox process
(``contact-center sandbox serve``); the harness is the fault suite's (``tests/support/fault_*``).

For each fault in turn (kill -9 of an instance, restarted after 2 s; Redis restarted empty; Redis
down for 30 s; PostgreSQL restarted) it runs traffic on every channel (agents' consoles with
their sockets, chat visitors sending a message every half second each and resending what was not
acknowledged, callers every ``--call-every`` seconds, texts every ``--text-every`` seconds),
inflicts the fault, measures how long until a new call rings an agent (``recovery_s``), lets the
traffic go on, stops it and counts:

- ``lost_<fault>``: texts, chat messages and calls the service acknowledged but did not store;
- ``duplicated_<fault>``: the same stored twice;
- ``stuck_<fault>``: calls never ended, agents left unavailable, chat messages not shown on a
  console within 10 s of the later of their acknowledgment and the fault's end;
- ``recovery_s_<fault>``: seconds from the fault's end until a new call's screen-pop reached an agent.

and the totals ``lost_total``, ``duplicated_total``, ``stuck_total``, ``recovery_s_max``. Targets:
0, 0, 0 and <= 10 s.

    python benchmarks/faults.py [--quick] [--agents N] [--visitors N] [--call-every S] [--text-every S]

``--quick`` runs 5 s of traffic before and after each fault (default 20 s) with fewer agents and
visitors. Progress goes to stderr; the last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.fault_checks import FaultOutcome, measure, time_to_route  # noqa: E402
from tests.support.fault_cluster import FaultCluster  # noqa: E402
from tests.support.fault_traffic import Traffic  # noqa: E402
from tests.support.private_servers import missing_tools  # noqa: E402

QUIET_CALLS = {"quiet_ringing_seconds": 10, "quiet_in_progress_seconds": 10, "quiet_poll_seconds": 1}


def say(message: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def run_fault(
    cluster: FaultCluster,
    args: argparse.Namespace,
    fault: str,
    inflict: Callable[[], Awaitable[None]],
) -> FaultOutcome:
    traffic = Traffic(cluster, visitors=args.visitors, call_every=args.call_every, text_every=args.text_every)
    try:
        await traffic.start()
        await asyncio.sleep(args.traffic_seconds)
        say(f"{fault}: inflicting")
        await inflict()
        fault_end = time.monotonic()
        recovery_s = await time_to_route(traffic, fault_end)
        await asyncio.sleep(args.traffic_seconds)
        outcome = await measure(cluster, traffic, fault, fault_end)
        outcome.recovery_s = recovery_s
    finally:
        await traffic.close()
    say(f"{fault}: {outcome.figures()} {json.dumps(outcome.details)[:600]}")
    return outcome


async def redis_outage(cluster: FaultCluster) -> None:
    await cluster.redis.stop()
    await asyncio.sleep(30)
    await cluster.redis.start()


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--agents", type=int)
    parser.add_argument("--visitors", type=int)
    parser.add_argument("--call-every", type=float, help="seconds between calls (default: 10 / agents)")
    parser.add_argument("--text-every", type=float, default=0.1)
    args = parser.parse_args(argv)
    args.agents = args.agents or (6 if args.quick else 16)
    args.visitors = args.visitors or (6 if args.quick else 20)
    args.traffic_seconds = 5.0 if args.quick else 20.0
    # Calls last about 5 s (ring, answer, talk, wrap-up): about half the agents busy at a time.
    args.call_every = args.call_every or 10.0 / args.agents
    missing = missing_tools()
    if missing:
        raise SystemExit(f"the fault benchmark needs {', '.join(missing)}")

    cluster = FaultCluster(agents=args.agents, settings_overrides={"voice": QUIET_CALLS})
    say(f"starting PostgreSQL, Redis, the sandbox and two instances ({args.agents} agents)")
    outcomes: list[FaultOutcome] = []
    try:
        await cluster.start()
        faults: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("kill9", lambda: cluster.kill_instance(0)),
            ("redis_restart", cluster.redis.restart),
            ("redis_down", lambda: redis_outage(cluster)),
            ("pg_restart", cluster.postgres.restart),
        ]
        for fault, inflict in faults:
            outcomes.append(await run_fault(cluster, args, fault, inflict))
    finally:
        await cluster.stop()

    figures: dict[str, Any] = {"agents": args.agents, "visitors": args.visitors, "quick": args.quick}
    for outcome in outcomes:
        figures.update(outcome.figures())
        figures[f"acknowledged_{outcome.fault}"] = (
            outcome.details["texts"] + outcome.details["chat_acked"] + outcome.details["calls_answered"]
        )
    figures["lost_total"] = sum(o.lost for o in outcomes)
    figures["duplicated_total"] = sum(o.duplicated for o in outcomes)
    figures["stuck_total"] = sum(o.stuck for o in outcomes)
    figures["recovery_s_max"] = max(round(o.recovery_s, 2) for o in outcomes)
    return figures


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
