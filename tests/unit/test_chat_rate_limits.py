"""Chat message limits: counted locally, shared in batches, exact near the limit."""

from __future__ import annotations

from channels.webchat.rate_limits import BatchedRateLimit


class Counter:
    """A shared counter in a dict (what Redis is for several instances), counting its calls."""

    def __init__(self) -> None:
        self.totals: dict[tuple[str, int], int] = {}
        self.calls = 0

    async def add(self, key: str, amount: int, window: int, window_seconds: int) -> int:
        self.calls += 1
        total = self.totals.get((key, window), 0) + amount
        self.totals[(key, window)] = total
        return total


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_020.0

    def __call__(self) -> float:
        return self.now


async def test_alone_the_limit_is_exact_and_the_window_resets() -> None:
    clock = Clock()
    limits = BatchedRateLimit(None, clock=clock)
    assert [await limits.hit("v", 3, 60) for _ in range(5)] == [True, True, True, False, False]
    assert await limits.hit("other", 3, 60)
    clock.now += 60
    assert await limits.hit("v", 3, 60)


async def test_far_from_the_limit_hits_reach_the_shared_counter_in_batches() -> None:
    counter = Counter()
    limits = BatchedRateLimit(counter, clock=Clock())
    assert all([await limits.hit("ip", 10_000, 60) for _ in range(1000)])
    assert counter.calls <= 1000 // 20 + 1
    assert sum(counter.totals.values()) >= 980  # at most one batch not yet shared


async def test_instances_together_hold_the_limit_approximately() -> None:
    counter, clock = Counter(), Clock()
    one, two = BatchedRateLimit(counter, clock=clock), BatchedRateLimit(counter, clock=clock)
    allowed = 0
    for _ in range(200):
        allowed += await one.hit("ip", 120, 60)
        allowed += await two.hit("ip", 120, 60)
    assert 120 <= allowed <= 120 + 120 // 4
    # Once known to be over the limit, an instance refuses without asking again.
    calls = counter.calls
    assert not await one.hit("ip", 120, 60)
    assert counter.calls == calls


async def test_a_small_limit_is_checked_on_every_hit_and_exact() -> None:
    counter, clock = Counter(), Clock()
    one, two = BatchedRateLimit(counter, clock=clock), BatchedRateLimit(counter, clock=clock)
    results = [await one.hit("v", 3, 60), await two.hit("v", 3, 60), await one.hit("v", 3, 60)]
    assert results == [True, True, True]
    assert not await two.hit("v", 3, 60)


async def test_a_refunded_attempt_costs_nothing_alone_and_shared() -> None:
    clock = Clock()
    for limits in (BatchedRateLimit(None, clock=clock), BatchedRateLimit(Counter(), clock=clock)):
        assert [await limits.hit("v", 3, 60) for _ in range(3)] == [True, True, True]
        assert not await limits.hit("v", 3, 60)
        limits.refund("v", 60)
        limits.refund("v", 60)  # the refused attempt and the third one
        assert await limits.hit("v", 3, 60)
        assert not await limits.hit("v", 3, 60)
    clock.now += 60
    limits.refund("v", 60)  # an attempt of a window gone is not given back in the next one
    assert [await limits.hit("v", 3, 60) for _ in range(4)] == [True, True, True, False]
