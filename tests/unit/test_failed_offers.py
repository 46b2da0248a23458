"""A caller whose offers fail is kept from agents for a wait that doubles with every failure, up to
a cap, so that an agent is not rung again and again for a call that cannot be connected."""

from __future__ import annotations

from contact_center.voice.queue import (
    MAX_REFUSED_BACKOFF_SECONDS,
    REFUSED_REDIRECT_BACKOFF_SECONDS,
    FailedOffers,
)
from crm_core.clock import FakeClock


def test_each_failed_offer_doubles_the_wait_up_to_the_cap() -> None:
    clock = FakeClock()
    failed = FailedOffers(clock)
    waits: list[float] = []
    for count in range(1, 9):
        assert failed.failed("CA1") == count
        waited = 0.0
        while "CA1" in failed.backing_off():
            clock.advance(1.0)
            waited += 1.0
        waits.append(waited)
    first = REFUSED_REDIRECT_BACKOFF_SECONDS
    assert waits[:4] == [first, 2 * first, 4 * first, 8 * first]
    assert max(waits) == MAX_REFUSED_BACKOFF_SECONDS
    assert failed.backing_off() == []


def test_a_caller_is_forgotten_long_after_its_last_failed_offer() -> None:
    clock = FakeClock()
    failed = FailedOffers(clock)
    failed.failed("CA1")
    failed.failed("CA2")
    failed.forget("CA2")
    assert failed.backing_off() == ["CA1"]
    clock.advance(REFUSED_REDIRECT_BACKOFF_SECONDS + MAX_REFUSED_BACKOFF_SECONDS + 1)
    assert failed.backing_off() == []
    assert "CA1" not in failed
    assert failed.failed("CA1") == 1  # counted afresh


def test_an_offer_that_never_landed_is_made_again_at_once_the_first_time_only() -> None:
    clock = FakeClock()
    failed = FailedOffers(clock)
    failed.failed("CA1", first_free=True)
    assert failed.backing_off() == []
    failed.failed("CA1", first_free=True)
    assert failed.backing_off() == ["CA1"]
    clock.advance(REFUSED_REDIRECT_BACKOFF_SECONDS)
    assert failed.backing_off() == []
