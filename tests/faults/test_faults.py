"""The service recovers by itself from the faults an operator sees: an instance killed with
SIGKILL, Redis restarted empty, Redis down for 30 s, PostgreSQL restarted. Two instances behind a
load balancer on a PostgreSQL and a Redis of the suite's own, with calls, texts and chats flowing
and agents' consoles open; after each fault nothing acknowledged is lost or stored twice, every
call ends, agents are available again without anyone pressing a button, chat messages reach the
consoles within 10 s, and calls reach agents again within 10 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from tests.support.fault_checks import FaultOutcome, measure, time_to_route
from tests.support.fault_cluster import FaultCluster
from tests.support.fault_traffic import Traffic
from tests.support.private_servers import missing_tools

# Runs in the PostgreSQL pass of the suite (its own cluster, not the shared server).
pytestmark = [
    pytest.mark.needs_postgres,
    pytest.mark.skipif(bool(missing_tools()), reason=f"the fault suite needs {', '.join(missing_tools())}"),
]

RECOVERY_S = 10.0
TRAFFIC_BEFORE_S = 6.0
TRAFFIC_AFTER_S = 6.0


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cluster() -> AsyncIterator[FaultCluster]:
    # Calls whose last status callback died with an instance are asked of Twilio after a few
    # quiet seconds here (minutes in production), so that the suite sees them end.
    cluster = FaultCluster(
        settings_overrides={
            "voice": {"quiet_ringing_seconds": 10, "quiet_in_progress_seconds": 10, "quiet_poll_seconds": 1}
        }
    )
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()


async def under_traffic(
    cluster: FaultCluster, fault: str, inflict: Callable[[], Awaitable[None]]
) -> FaultOutcome:
    traffic = Traffic(cluster)
    try:
        await traffic.start()
        await asyncio.sleep(TRAFFIC_BEFORE_S)
        await inflict()
        fault_end = time.monotonic()
        recovery_s = await time_to_route(traffic, fault_end)
        await asyncio.sleep(TRAFFIC_AFTER_S)
        outcome = await measure(cluster, traffic, fault, fault_end)
        outcome.recovery_s = recovery_s
    finally:
        await traffic.close()
    return outcome


def assert_recovered(outcome: FaultOutcome, cluster: FaultCluster) -> None:
    report = f"{outcome.figures()} {outcome.details}"
    assert outcome.details["texts"] > 0 and outcome.details["chat_acked"] > 0, report
    assert outcome.details["calls_answered"] > 0, report
    assert (outcome.lost, outcome.duplicated, outcome.stuck) == (0, 0, 0), f"{report}\n{cluster.logs()}"
    assert outcome.recovery_s <= RECOVERY_S, f"{report}\n{cluster.logs()}"


async def test_an_instance_killed_mid_traffic(cluster: FaultCluster) -> None:
    outcome = await under_traffic(cluster, "kill9", lambda: cluster.kill_instance(0))
    assert_recovered(outcome, cluster)


async def test_redis_restarted_empty(cluster: FaultCluster) -> None:
    outcome = await under_traffic(cluster, "redis_restart", cluster.redis.restart)
    assert_recovered(outcome, cluster)


async def test_redis_down_for_30_seconds(cluster: FaultCluster) -> None:
    async def outage() -> None:
        await cluster.redis.stop()
        await asyncio.sleep(30)
        await cluster.redis.start()

    outcome = await under_traffic(cluster, "redis_down", outage)
    assert_recovered(outcome, cluster)


async def test_postgres_restarted(cluster: FaultCluster) -> None:
    outcome = await under_traffic(cluster, "pg_restart", cluster.postgres.restart)
    assert_recovered(outcome, cluster)
