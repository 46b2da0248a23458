import asyncio
import logging

import pytest

from contact_center.jobs import Jobs
from contact_center.late import Late
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
