"""The predictive pacer: how many calls a campaign places now.

For the k-th call placed now, the pacer estimates the chance that, when it is passed to an agent
(at one of the model's equally likely ``nodes``), every agent free by then plus the grace is
already taken by the answers that arrive before it (from the calls in flight, the other new
calls and part of those the next seconds will place at the current rate): a normal
approximation of (answers needing an agent) - (agents free), each a sum of independent chances.
It places the largest k whose chance stays within the risk target, and never fewer calls than
progressive would. The risk target is a controller on the observed abandonment (the window's
rate, which integrates the past, and the recent rate), both read from the snapshot, so the
decision is a function of the snapshot alone; it also shrinks as the last few abandons the limit
allows are used up, so the campaign slows down before it must stop. Predictive stops
(progressive instead) when the abandonment rule says one more abandon would cross the limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from crm_core.pacing.model import Vector
from crm_core.pacing.snapshot import (
    AgentState,
    CallState,
    PacingDecision,
    PacingMode,
    PacingReason,
    PacingSnapshot,
)
from crm_core.rules.abandonment import abandonment_status

_FREE = (AgentState.AVAILABLE, AgentState.RESERVED)
_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True, slots=True)
class PacerSettings:
    target_share: float = 0.85
    """Aim the abandonment rate at this share of the profile's limit (the rest is a margin)."""
    window_gain: float = 4.0
    """How hard the risk target reacts to the window's rate being off the aim (relative error)."""
    recent_gain: float = 1.0
    """The same for the rate among the history's recent live answers."""
    window_prior: int = 60
    """Live answers at the aimed rate mixed into the window's rate (steadies a young window)."""
    recent_prior: int = 30
    budget_softening: float = 8.0
    """While fewer abandons than this are left before the limit, the risk target shrinks in
    proportion, so the campaign slows down smoothly instead of falling back to progressive."""
    later_calls_weight: float = 0.5
    """How much of the answers of the calls the next seconds will place (at the last seconds'
    rate) the pacer counts against the agents a call placed now could find."""
    max_calls_per_agent: float = 3.0
    """A ceiling on one decision's calls, per agent working the campaign."""


class Pacer:
    """Pure: no I/O, no clock of its own, no state between calls (see ``decide``)."""

    def __init__(self, settings: PacerSettings | None = None) -> None:
        self.settings = settings or PacerSettings()

    def risk_target(self, snapshot: PacingSnapshot, window_abandoned: int, window_live: int) -> float:
        """The chance the controller allows that the last call placed now finds no free agent."""
        s = self.settings
        aim = snapshot.profile.abandonment_limit * s.target_share
        if aim <= 0:
            return 0.0
        window_rate = (window_abandoned + aim * s.window_prior) / (window_live + s.window_prior)
        abandoned, live = snapshot.history.recent_abandonment()
        recent_rate = (abandoned + aim * s.recent_prior) / (live + s.recent_prior)
        error = s.window_gain * (window_rate - aim) / aim + s.recent_gain * (recent_rate - aim) / aim
        return aim * math.exp(-min(6.0, max(-1.0, error)))

    def decide(self, snapshot: PacingSnapshot) -> PacingDecision:
        agents = snapshot.agents
        if not agents:
            return PacingDecision(0, PacingReason.NO_AGENTS, 0)
        free = sum(1 for agent in agents if agent.state in _FREE)
        progressive = max(0, free - len(snapshot.calls))
        if snapshot.mode is PacingMode.PROGRESSIVE:
            return PacingDecision(progressive, PacingReason.PROGRESSIVE_MODE, progressive)
        status = abandonment_status(snapshot.window, snapshot.profile)
        if not status.predictive_allowed:
            return PacingDecision(
                progressive, PacingReason.ABANDONMENT_LIMIT, progressive, abandonment_rate=status.rate
            )

        model = snapshot.history.model()
        tables = model.tables(round(snapshot.profile.connect_grace.total_seconds()))
        now = snapshot.now
        supply: list[Vector] = []
        for agent in agents:
            if agent.state is AgentState.ON_CALL:
                supply.append(tables.talk(max(0, int((now - agent.since).total_seconds()))))
            elif agent.state is AgentState.WRAP_UP:
                supply.append(tables.wrap(max(0, int((now - agent.since).total_seconds()))))
        demand: list[Vector] = []
        nodes = len(model.nodes)
        waiting = 0
        just_placed = 0
        for call in snapshot.calls:
            age = max(0, int((now - call.since).total_seconds()))
            if age <= 2:
                just_placed += 1
            if call.state is CallState.AMD:
                demand.append(tables.amd(age))
            elif call.state is CallState.CONNECTING:
                waiting += 1
            else:
                demand.append(tables.ringing(age))
        s_sum = [sum(column) for column in zip(*supply, strict=True)] if supply else [0.0] * 2 * nodes
        d_sum = [sum(column) for column in zip(*demand, strict=True)] if demand else [0.0] * 2 * nodes
        # Per node: answers needing an agent minus agents free (mean), and its variance.
        rate = self.settings.later_calls_weight * just_placed / 2.0
        later = [rate * c for c in model.later_calls]
        gap = [d_sum[j] + waiting + later[j] - s_sum[j] - free for j in range(nodes)]
        spread = [d_sum[nodes + j] + s_sum[nodes + j] + later[j] for j in range(nodes)]
        new_call = model.new_call

        def risk(k: int) -> float:
            """P(the k-th call placed now finds no free agent | it is passed to one)."""
            total = 0.0
            for j in range(nodes):
                q = new_call[j]
                mean = gap[j] + (k - 1) * q + 0.5
                var = spread[j] + (k - 1) * q * (1.0 - q)
                if var < 1e-12:
                    total += 1.0 if mean > 0 else 0.0
                else:
                    total += 0.5 * math.erfc(-mean / (_SQRT2 * math.sqrt(var)))
            return total / nodes

        target = self.risk_target(snapshot, status.abandoned, status.live)
        if status.budget < self.settings.budget_softening:
            target *= status.budget / self.settings.budget_softening
        low, high = 0, max(1, math.ceil(self.settings.max_calls_per_agent * len(agents)))
        while low < high:  # the largest k with risk(k) <= target (risk grows with k)
            mid = (low + high + 1) // 2
            if risk(mid) <= target:
                low = mid
            else:
                high = mid - 1
        predictive = low
        calls = max(progressive, predictive)
        reason = PacingReason.PREDICTIVE if predictive >= progressive else PacingReason.PROGRESSIVE_FLOOR
        middle = nodes // 2
        return PacingDecision(
            calls,
            reason,
            progressive,
            predictive_calls=predictive,
            risk_target=target,
            abandonment_rate=status.rate,
            expected_free_agents=free + s_sum[middle],
            expected_live_answers=waiting + d_sum[middle],
        )
