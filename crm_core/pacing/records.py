"""What a campaign remembers of its recent calls: one record per dial, one per agent's handling."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DialOutcome:
    """A dial whose fate is known: it ended unanswered, was hung up after machine detection, or was
    passed to the agents (and joined or abandoned)."""

    ring_seconds: float
    """From placing the call to its answer, or to its end when it was not answered."""
    answered: bool = False
    amd_seconds: float | None = None
    """How long machine detection took (answered calls)."""
    to_agent: bool = False
    """Passed to the agents (a person, or a machine taken for one): it needed an agent."""
    live: bool = False
    """Counted as a live answer under the campaign's profile."""
    abandoned: bool = False
    """Counted as abandoned under the campaign's profile (UK: AMD false positives too)."""


@dataclass(frozen=True, slots=True)
class AgentWork:
    """One call an agent handled: how long it held the agent talking, then in wrap-up."""

    talk_seconds: float
    wrap_seconds: float = 0.0
