"""The account's calls-per-second limit: Twilio starts API-created calls one by one at its rate,
the others wait ``queued``; a create can also be refused with 429 / 20429 (by the configured
share, or the next ``n`` after ``/sandbox/calls/throttle``) to exercise a client's retries."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contact_center.sandbox.engine import Sandbox


class Pacer:
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.next_free = 0.0
        """Loop time (real seconds) when the next call may start."""
        self.refuse_next = 0

    def reset(self) -> None:
        self.next_free = 0.0
        self.refuse_next = 0

    def turn(self) -> float:
        """Take the next start; the simulated seconds to wait for it."""
        now = self.sb.now()
        rate = self.sb.config.outcomes.calls_per_second
        start = max(now, self.next_free)
        self.next_free = start + (self.sb.real(1.0 / rate) if rate > 0 else 0.0)
        return (start - now) / self.sb.config.time_scale

    def refuses(self) -> bool:
        """True when this create is answered 429 / 20429 instead."""
        if self.refuse_next > 0:
            self.refuse_next -= 1
            return True
        share = self.sb.config.outcomes.fail_with_20429_rate
        return share > 0 and self.sb.rng.random() < share
