"""The outbox's life cycle as pure rules: the stages a message goes through, which moves are
allowed, what a provider's error means, and when a message that was certainly not sent is tried
again. Functions of their arguments (``now`` included) only: no clock, no database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from crm_core.errors import DeliveryError


class Stage(StrEnum):
    """Where an outbound message is in its life, whatever its table calls it."""

    QUEUED = "queued"
    """Waiting to be claimed (new, or back after an attempt that certainly did not send it)."""
    CLAIMED = "claimed"
    """Taken by one sender, which is handing it over."""
    HANDED_OVER = "handed_over"
    """The provider took it (what happens next is the provider's receipts' business)."""
    UNCONFIRMED = "unconfirmed"
    """It may have reached the provider: settled by asking, never sent again blindly."""
    FAILED = "failed"
    """Refused, suppressed, or given up on."""


MOVES: dict[Stage, frozenset[Stage]] = {
    # Failed straight from the queue: suppressed at its claim, or waited too long.
    Stage.QUEUED: frozenset({Stage.CLAIMED, Stage.FAILED}),
    # Claimed again: its sender's lease ran out. Unconfirmed: its sender stopped mid-send.
    Stage.CLAIMED: frozenset(
        {Stage.HANDED_OVER, Stage.QUEUED, Stage.UNCONFIRMED, Stage.FAILED, Stage.CLAIMED}
    ),
    # Found at the provider, or absent long after (never arrived): queued to be sent again.
    Stage.UNCONFIRMED: frozenset({Stage.HANDED_OVER, Stage.QUEUED}),
    Stage.HANDED_OVER: frozenset(),
    Stage.FAILED: frozenset(),
}


def can_move(current: Stage, new: Stage) -> bool:
    """Whether a message at ``current`` may move to ``new``."""
    return new in MOVES[current]


class Outcome(StrEnum):
    """What a provider's error means for the message."""

    RETRY = "retry"
    """Certainly not sent: try again at the time the retry rule gives."""
    UNCONFIRMED = "unconfirmed"
    """Maybe sent: ask the provider, do not send again."""
    REFUSED = "refused"
    """Refused for good: failed."""


def outcome_of(error: DeliveryError) -> Outcome:
    if error.retryable:
        return Outcome.RETRY
    if error.unconfirmed:
        return Outcome.UNCONFIRMED
    return Outcome.REFUSED


@dataclass(frozen=True, slots=True)
class RetryRule:
    """When a message that certainly was not sent is tried again, or given up on.

    The wait doubles with each attempt from ``first_seconds`` up to ``max_seconds``; with
    ``grows_with_wait`` it is also at least as long as the message has waited since its first try
    (for an outbox that counts time, not attempts). It is given up after ``max_attempts`` attempts
    or ``give_up_seconds`` after its first try, whichever is set and comes first.
    """

    first_seconds: float
    max_seconds: float
    max_attempts: int | None = None
    give_up_seconds: float | None = None
    grows_with_wait: bool = False

    def wait(self, attempts: int, waited: timedelta = timedelta(0)) -> timedelta:
        """The wait after the ``attempts``-th attempt failed, ``waited`` after the first."""
        seconds = self.first_seconds * 2 ** max(0, attempts - 1)
        if self.grows_with_wait:
            seconds = max(seconds, waited.total_seconds())
        return timedelta(seconds=min(self.max_seconds, seconds))

    def gives_up(self, *, attempts: int, first_try_at: datetime, now: datetime) -> bool:
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return True
        waited = (now - first_try_at).total_seconds()
        return self.give_up_seconds is not None and waited >= self.give_up_seconds

    def next_try(self, *, attempts: int, first_try_at: datetime, now: datetime) -> datetime | None:
        """When to try again after the ``attempts``-th attempt failed at ``now``; None: give up."""
        if self.gives_up(attempts=attempts, first_try_at=first_try_at, now=now):
            return None
        return now + self.wait(attempts, now - first_try_at)


@dataclass(frozen=True, slots=True)
class AfterFailure:
    """Where a message goes after its provider did not take it, and when it is tried again."""

    stage: Stage
    retry_at: datetime | None = None
    gave_up: bool = False
    """Failed because the retry rule gave up (not because the provider refused it)."""


def after_failure(
    error: DeliveryError, rule: RetryRule, *, attempts: int, first_try_at: datetime, now: datetime
) -> AfterFailure:
    """The one decision for a message the provider did not take."""
    outcome = outcome_of(error)
    if outcome is Outcome.UNCONFIRMED:
        return AfterFailure(Stage.UNCONFIRMED)
    if outcome is Outcome.REFUSED:
        return AfterFailure(Stage.FAILED)
    at = rule.next_try(attempts=attempts, first_try_at=first_try_at, now=now)
    return AfterFailure(Stage.QUEUED, at) if at is not None else AfterFailure(Stage.FAILED, gave_up=True)
