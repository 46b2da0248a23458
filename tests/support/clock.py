"""A clock that moves only when a test says so, for rate-limit windows (``create_app(rate_clock=)``)."""

from __future__ import annotations

# On a minute and an hour boundary, so a test knows where its windows start.
START = 1_800_000_000.0


class FakeClock:
    """Seconds since the epoch, frozen until :meth:`advance`."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now
