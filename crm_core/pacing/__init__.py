"""Predictive and progressive pacing of outbound campaigns: pure code, no I/O.

The service's runner, once a second per running campaign::

    history = CampaignHistory()                  # per campaign; add_dial / add_work as outcomes arrive
    pacer = Pacer()
    decision = pacer.decide(PacingSnapshot(now=clock.now(), mode=..., agents=..., calls=...,
                                           window=counts, profile=profile, history=history))
    place(decision.calls)                        # decision.reason and figures for the supervisor page

``simulation`` runs the same pacer in a discrete-event simulation of a shift.
"""

from crm_core.pacing.history import CampaignHistory
from crm_core.pacing.model import CampaignModel, Priors
from crm_core.pacing.pacer import Pacer, PacerSettings
from crm_core.pacing.records import AgentWork, DialOutcome
from crm_core.pacing.snapshot import (
    AgentSnapshot,
    AgentState,
    CallInFlight,
    CallState,
    PacingDecision,
    PacingMode,
    PacingReason,
    PacingSnapshot,
)

__all__ = [
    "AgentSnapshot",
    "AgentState",
    "AgentWork",
    "CallInFlight",
    "CallState",
    "CampaignHistory",
    "CampaignModel",
    "DialOutcome",
    "Pacer",
    "PacerSettings",
    "PacingDecision",
    "PacingMode",
    "PacingReason",
    "PacingSnapshot",
    "Priors",
]
