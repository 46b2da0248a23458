"""The calling rules of one regulator, as numbers the outbound rules read (defaults: the US FCC
rule and the UK Ofcom policy; see ``docs/architecture.md``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import time, timedelta


class AbandonmentBasis(enum.StrEnum):
    US = "us"
    """Abandoned humans / calls answered by a person (AMD false positives are not counted)."""
    UK = "uk"
    """Abandoned calls, AMD false positives included, / live calls (false positives included)."""


@dataclass(frozen=True, slots=True)
class RegulatoryProfile:
    name: str
    call_start: time = time(8, 0)
    call_end: time = time(21, 0)  # exclusive: a call may start up to, not at, this local time
    abandonment_basis: AbandonmentBasis = AbandonmentBasis.US
    abandonment_window: timedelta = timedelta(days=30)
    abandonment_limit: float = 0.03
    connect_grace: timedelta = timedelta(seconds=2)
    """A live answer must be joined to an agent this soon after the greeting, or it is abandoned."""
    redial_lockout: timedelta | None = None
    """After an abandoned call, the number is not called again this long unless an agent is reserved."""
    national_list_max_age: timedelta = timedelta(days=31)
    requires_voice_consent: bool = True

    def __post_init__(self) -> None:
        if self.call_end <= self.call_start:
            raise ValueError("the calling window must end after it starts, on the same day")
        if not 0 <= self.abandonment_limit < 1:
            raise ValueError("the abandonment limit is a share between 0 and 1")


US = RegulatoryProfile(name="us")
UK = RegulatoryProfile(
    name="uk",
    abandonment_basis=AbandonmentBasis.UK,
    abandonment_window=timedelta(hours=24),
    redial_lockout=timedelta(hours=72),
)
PROFILES = {p.name: p for p in (US, UK)}
