"""The senders' throttle in memory: each sender's turns spaced evenly, senders apart."""

from __future__ import annotations

import pytest

from contact_center.throttle import MemoryThrottle, throttle
from crm_core.outbox.steps import UNLIMITED


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_turns_are_spaced_per_sender() -> None:
    ticks = Ticks()
    paced = MemoryThrottle(2.0, clock=ticks)  # two a second
    assert [await paced.acquire("+1") for _ in range(3)] == [0.0, 0.5, 1.0]
    assert await paced.acquire("+2") == 0.0  # another sender has turns of its own
    ticks.now += 5  # its turns are past: the next is now
    assert await paced.acquire("+1") == 0.0


def test_no_limit_unless_one_is_set() -> None:
    assert throttle(0, None, "cc:") is UNLIMITED
    assert isinstance(throttle(1.5, None, "cc:"), MemoryThrottle)
    with pytest.raises(ValueError, match="rate above 0"):
        MemoryThrottle(0)
