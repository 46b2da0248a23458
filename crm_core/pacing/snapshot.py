"""What the pacer is given and what it answers: a campaign's state at one moment, as plain data.

The service builds a :class:`PacingSnapshot` once a second per running campaign (from routing's
agent states, the calls in flight and the persisted abandonment window) and places
:attr:`PacingDecision.calls` calls; a simulation builds the same snapshot from its own state.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from crm_core.pacing.history import CampaignHistory
from crm_core.rules.abandonment import WindowCounts
from crm_core.rules.regulatory_profile import RegulatoryProfile


class PacingMode(enum.StrEnum):
    PROGRESSIVE = "progressive"
    """One call per free agent not already covered by a call in flight: nobody is abandoned."""
    PREDICTIVE = "predictive"
    """Dials ahead of free agents by the campaign's model, within the abandonment budget."""


class AgentState(enum.StrEnum):
    AVAILABLE = "available"
    """Ready for this campaign's next answered call."""
    RESERVED = "reserved"
    """Held by routing for this campaign (for a call in flight); free for the pacer's purposes."""
    ON_CALL = "on-call"
    """Talking to a customer (or hearing a machine): free after the rest of the talk and wrap-up."""
    WRAP_UP = "wrap-up"
    """Writing the disposition and notes after a call."""


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    state: AgentState
    since: datetime
    """When the agent entered ``state``: for an agent on a call, when the talk began."""


class CallState(enum.StrEnum):
    DIALING = "dialing"
    RINGING = "ringing"
    AMD = "amd"
    """Answered; machine detection is listening."""
    CONNECTING = "connecting"
    """Passed to the agents and waiting (at most the 2-second grace) for one."""


@dataclass(frozen=True, slots=True)
class CallInFlight:
    state: CallState
    since: datetime
    """When the call was placed (dialing, ringing) or answered (amd, connecting)."""


@dataclass(frozen=True, slots=True)
class PacingSnapshot:
    """One campaign at ``now``: everything the pacer reads, nothing it has to fetch."""

    now: datetime
    mode: PacingMode
    agents: Sequence[AgentSnapshot]
    """The agents working the campaign (their states as routing holds them)."""
    calls: Sequence[CallInFlight]
    """The campaign's calls placed and not yet joined to an agent nor ended."""
    window: WindowCounts
    """Live answers in the profile's abandonment window (persisted; survives restarts)."""
    profile: RegulatoryProfile
    history: CampaignHistory
    """The campaign's recent dials and agent work, from which the pacer's model is fitted."""


class PacingReason(enum.StrEnum):
    NO_AGENTS = "no-agents"
    PROGRESSIVE_MODE = "progressive-mode"
    ABANDONMENT_LIMIT = "abandonment-limit"
    """Predictive would risk crossing the limit with one more abandon: progressive instead."""
    PREDICTIVE = "predictive"
    PROGRESSIVE_FLOOR = "progressive-floor"
    """Predictive wanted fewer calls than progressive would place; progressive's count is used."""


@dataclass(frozen=True, slots=True)
class PacingDecision:
    calls: int
    """How many calls to place now."""
    reason: PacingReason
    progressive_calls: int
    """What progressive dialling would place now (the floor)."""
    predictive_calls: int = 0
    risk_target: float = 0.0
    """The chance, allowed by the controller, that the last call placed finds no free agent."""
    abandonment_rate: float = 0.0
    """The window's abandonment rate, as the profile counts it."""
    expected_free_agents: float = 0.0
    """Agents expected free by the time a call placed now is typically answered (plus the grace)."""
    expected_live_answers: float = 0.0
    """Answers expected to need an agent by then, from the calls already in flight."""
