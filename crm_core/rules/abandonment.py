"""The abandonment rule: which answered calls count as abandoned, the rate over the profile's
window per campaign, whether predictive dialling may go on, and the UK redial lockout.

US (FCC): abandoned humans / calls answered by a person over the rolling 30 days. UK (Ofcom):
abandoned calls, AMD false positives (a person taken for a machine and hung up on) included, /
live calls over 24 hours, and no redial of an abandoned number within 72 hours unless an agent is
reserved for the call. Pure: ``now`` is given.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from crm_core.rules.regulatory_profile import AbandonmentBasis, RegulatoryProfile


class AnswerOutcome(enum.StrEnum):
    CONNECTED = "connected"
    """A person answered and was joined to an agent in time."""
    ABANDONED = "abandoned"
    """A person answered and was not joined to an agent in time."""
    AMD_FALSE_POSITIVE = "amd-false-positive"
    """A person answered, was classified as a machine and hung up on."""
    PENDING = "pending"
    """A person answered, the grace period is still running."""


def classify_answer(
    greeting_ended_at: datetime,
    agent_joined_at: datetime | None,
    now: datetime,
    profile: RegulatoryProfile,
) -> AnswerOutcome:
    """A live answer from its timestamps: connected when an agent joined within the profile's
    grace (2 s) of the end of the callee's greeting, abandoned once that grace has passed without
    one, pending before."""
    deadline = greeting_ended_at + profile.connect_grace
    if agent_joined_at is not None and agent_joined_at <= deadline:
        return AnswerOutcome.CONNECTED
    if agent_joined_at is not None or now > deadline:
        return AnswerOutcome.ABANDONED
    return AnswerOutcome.PENDING


@dataclass(frozen=True, slots=True)
class AnswerEvent:
    at: datetime
    outcome: AnswerOutcome


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """A campaign's live answers in the profile's window, by outcome."""

    connected: int = 0
    abandoned: int = 0
    amd_false_positives: int = 0

    def __post_init__(self) -> None:
        if min(self.connected, self.abandoned, self.amd_false_positives) < 0:
            raise ValueError("counts cannot be negative")


def counts_in_window(
    events: Iterable[AnswerEvent], now: datetime, profile: RegulatoryProfile
) -> WindowCounts:
    """Counts the answers inside the window ending at ``now``: an answer counts while it is less
    than the window's length old (one exactly 30 days old no longer does), and not before it
    happened."""
    start = now - profile.abandonment_window
    tally = dict.fromkeys(AnswerOutcome, 0)
    for event in events:
        if start < event.at <= now:
            tally[event.outcome] += 1
    return WindowCounts(
        tally[AnswerOutcome.CONNECTED],
        tally[AnswerOutcome.ABANDONED],
        tally[AnswerOutcome.AMD_FALSE_POSITIVE],
    )


def _counted(counts: WindowCounts, basis: AbandonmentBasis) -> tuple[int, int]:
    """(abandoned, live answers) as the basis counts them."""
    if basis is AbandonmentBasis.UK:
        abandoned = counts.abandoned + counts.amd_false_positives
        return abandoned, counts.connected + abandoned
    return counts.abandoned, counts.connected + counts.abandoned


@dataclass(frozen=True, slots=True)
class AbandonmentStatus:
    abandoned: int
    live: int
    rate: float
    """abandoned / live (0.0 with no live answers)."""
    limit: float
    predictive_allowed: bool
    """Whether one more abandoned answer would still keep the rate within the limit; otherwise the
    campaign dials progressively (an agent reserved for every call)."""
    budget: int
    """How many further answers could be abandoned, with no more connected ones, within the limit."""


def abandonment_status(counts: WindowCounts, profile: RegulatoryProfile) -> AbandonmentStatus:
    abandoned, live = _counted(counts, profile.abandonment_basis)
    limit = profile.abandonment_limit
    rate = abandoned / live if live else 0.0
    # (abandoned + k) / (live + k) <= limit  <=>  k <= (limit * live - abandoned) / (1 - limit)
    room = (limit * live - abandoned) / (1 - limit)
    budget = max(0, math.floor(room + 1e-9))
    return AbandonmentStatus(abandoned, live, rate, limit, budget >= 1, budget)


def redial_allowed_at(
    last_abandoned_at: datetime | None, profile: RegulatoryProfile, *, agent_reserved: bool
) -> datetime | None:
    """When a number whose last abandoned call was at ``last_abandoned_at`` may be dialled again
    (None: no lockout applies). Only profiles with a redial lockout (UK: 72 h) hold one, and an
    agent reserved for the call lifts it."""
    if last_abandoned_at is None or profile.redial_lockout is None or agent_reserved:
        return None
    return last_abandoned_at + profile.redial_lockout


def redial_locked(
    last_abandoned_at: datetime | None, now: datetime, profile: RegulatoryProfile, *, agent_reserved: bool
) -> bool:
    until = redial_allowed_at(last_abandoned_at, profile, agent_reserved=agent_reserved)
    return until is not None and now < until
