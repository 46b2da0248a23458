import asyncio
import logging

import pytest

from contact_center.jobs import Jobs
from contact_center.late import Late
from crm_core.clock import FakeClock
from tests.support.waiting import until


async def test_periodic_jobs_share_one_scheduler_and_stop_with_their_block() -> None:
    jobs = Jobs()
    runs = {"a": 0, "b": 0}

    async def a() -> None:
        runs["a"] += 1

    async def b() -> None:
        runs["b"] += 1

    try:
        with jobs.every(0.02, a, "a"), jobs.every(0.02, b, "b"):
            await until(lambda: runs["a"] >= 2 and runs["b"] >= 2, 5, "both jobs ran twice")
        stopped = dict(runs)
        with jobs.every(0.02, b, "b"):  # the name is free again
            await until(lambda: runs["b"] >= stopped["b"] + 2, 5, "the job ran again")
        assert runs["a"] <= stopped["a"] + 1  # at most the run already under way
    finally:
        await jobs.close()


async def test_background_failures_are_logged_and_close_cancels(caplog: pytest.LogCaptureFixture) -> None:
    jobs = Jobs()

    async def fail() -> None:
        raise ValueError("boom")

    forever = jobs.spawn(asyncio.Event().wait(), "forever")
    with caplog.at_level(logging.ERROR):
        failed = jobs.spawn(fail(), "failing")
        await asyncio.gather(failed, return_exceptions=True)
        await until(lambda: "background task failing failed" in caplog.text, 5)
    await jobs.close()
    assert forever.cancelled()


def test_late_values_are_refused_until_set() -> None:
    late: Late[int] = Late("the desk")
    with pytest.raises(RuntimeError, match="the desk is not started"):
        late.get()
    late.set(3)
    assert late.get() == 3
    late.clear()
    with pytest.raises(RuntimeError):
        late.get()


async def test_closing_lets_a_run_under_way_finish(caplog: pytest.LogCaptureFixture) -> None:
    jobs = Jobs()
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(0.1)
        finished.set()

    with caplog.at_level(logging.ERROR), jobs.every(0.01, slow, "slow"):
        await asyncio.wait_for(started.wait(), 5)
        await jobs.close()
    assert finished.is_set()
    assert "Error" not in caplog.text


async def test_periodic_jobs_run_on_the_clock_they_are_given() -> None:
    """On a simulated clock a job runs as that clock passes its interval, never by itself: the
    first run comes one interval (or ``first_in``) after the block opens, runs the clock skips
    over while one is under way are coalesced into it, and nothing is logged per run."""
    clock = FakeClock()
    jobs = Jobs(clock)
    runs: list[float] = []
    gate = asyncio.Event()

    async def sweep() -> None:
        runs.append(clock.monotonic())
        await gate.wait()

    async def settle() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    try:
        with jobs.every(10, sweep, "sweep"):
            await asyncio.sleep(0.05)
            clock.advance(9.9)
            await settle()
            assert runs == []
            clock.advance(0.1)
            await settle()
            assert runs == [10.0]
            clock.advance(100)  # ten more intervals while the first run is still under way
            await settle()
            assert runs == [10.0]
            gate.set()
            await settle()
            clock.advance(10)
            await settle()
            assert runs == [10.0, 120.0]
        clock.advance(100)  # the block is closed: no more runs
        await settle()
        assert runs == [10.0, 120.0]
        with jobs.every(60, sweep, "sweep", first_in=0):
            clock.advance(0)
            await settle()
            assert runs == [10.0, 120.0, 220.0]
    finally:
        await jobs.close()


async def test_a_job_name_runs_once_and_a_failed_run_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    jobs = Jobs(clock)

    async def fail() -> None:
        raise ValueError("boom")

    try:
        with caplog.at_level(logging.INFO), jobs.every(1, fail, "failing"):
            with pytest.raises(ValueError, match="already running"), jobs.every(1, fail, "failing"):
                pass
            clock.advance(3)
            await until(lambda: "periodic job failing failed" in caplog.text, 5)
            clock.advance(1)  # a failed run does not stop the job
            await until(lambda: caplog.text.count("periodic job failing failed") == 2, 5)
        assert [r.levelno for r in caplog.records if r.name == "contact_center.jobs"] == [logging.ERROR] * 2
    finally:
        await jobs.close()
