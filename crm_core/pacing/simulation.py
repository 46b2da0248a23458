"""A discrete-event simulation of an outbound campaign on simulated time, driving the product's
:class:`~crm_core.pacing.pacer.Pacer` once a simulated second, as the service runs it.

Each dial is a person, an answering machine (both after a lognormal ring time), no answer (given
up after a while) or busy (ends soon), or failed (the rest); answered calls go through machine
detection (a lognormal time), which takes some people for machines (hung up on: abandoned under
the UK rule) and passes some machines to the agents (a few seconds of an agent's time). A call
passed to the agents takes a free one at once, or waits for the profile's grace (2 s) and is
abandoned. Agents talk (lognormal), wrap up, and are ready again; they never pause. Every figure
of the scenario is an argument, so other benchmarks can run the same engine with theirs.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from crm_core.clock import SIMULATION_START
from crm_core.pacing.history import CampaignHistory
from crm_core.pacing.pacer import Pacer
from crm_core.pacing.records import AgentWork, DialOutcome
from crm_core.pacing.snapshot import (
    AgentSnapshot,
    AgentState,
    CallInFlight,
    CallState,
    PacingMode,
    PacingSnapshot,
)
from crm_core.rules.abandonment import WindowCounts, abandonment_status
from crm_core.rules.regulatory_profile import US, AbandonmentBasis, RegulatoryProfile


@dataclass(frozen=True, slots=True)
class Scenario:
    agents: int = 20
    seconds: float = 8 * 3600.0
    human_share: float = 0.20
    machine_share: float = 0.25
    no_answer_share: float = 0.45
    busy_share: float = 0.10
    """Whatever the four shares leave is a failed call (ends at once)."""
    ring_mean: float = 9.0
    ring_sd: float = 4.0
    no_answer_after: float = 25.0
    busy_after: float = 3.0
    amd_mean: float = 3.0
    amd_sd: float = 1.0
    amd_false_positive: float = 0.02
    """Share of people machine detection takes for machines (hung up on)."""
    amd_false_negative: float = 0.05
    """Share of machines passed to the agents."""
    machine_agent_seconds: float = 10.0
    talk_mean: float = 120.0
    talk_cv: float = 1.0
    wrap_seconds: float = 20.0
    profile: RegulatoryProfile = US
    tick_seconds: float = 1.0
    earlier_window: WindowCounts = field(default_factory=WindowCounts)
    """Live answers already in the abandonment window when the shift starts (the pacer sees them,
    the shift's figures do not); empty, the shift begins progressive until one abandon is allowed."""


@dataclass(slots=True)
class ShiftResult:
    scenario: Scenario
    mode: PacingMode
    seed: int
    dials: int = 0
    human_answers: int = 0
    """People who answered (AMD false positives included)."""
    connected: int = 0
    abandoned: int = 0
    """People passed to the agents and not joined within the grace."""
    false_positives: int = 0
    talk_seconds: float = 0.0
    """Agents' seconds talking to people (machines passed to agents not included)."""
    pacer_calls: int = 0
    pacer_seconds: float = 0.0
    """Processor time spent in the pacer."""
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def window(self) -> WindowCounts:
        return WindowCounts(self.connected, self.abandoned, self.false_positives)

    @property
    def occupancy(self) -> float:
        return self.talk_seconds / (self.scenario.agents * self.scenario.seconds)

    @property
    def abandonment_rate(self) -> float:
        """As the scenario's profile counts it."""
        return abandonment_status(self.window, self.scenario.profile).rate

    @property
    def contacts_per_agent_hour(self) -> float:
        return self.connected / (self.scenario.agents * self.scenario.seconds / 3600.0)


def _lognormal(rng: random.Random, mean: float, sd: float) -> float:
    sigma2 = math.log(1.0 + (sd / mean) ** 2)
    return rng.lognormvariate(math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2))


# Event kinds, in the heap as (time, sequence, kind, subject).
_TICK, _UNANSWERED, _ANSWER, _DETECTED, _GIVE_UP, _TALK_END, _WRAP_END = range(7)
_HUMAN, _MACHINE = 1, 2


@dataclass(slots=True)
class _Call:
    kind: int
    placed: float
    ring: float = 0.0
    amd: float = 0.0
    snapshot: CallInFlight | None = None


def run_shift(
    scenario: Scenario,
    mode: PacingMode,
    seed: int,
    *,
    pacer: Pacer | None = None,
    progress: Callable[[float], None] | None = None,
) -> ShiftResult:
    """Runs one shift; ``progress`` is told the simulated seconds done, once a simulated minute."""
    rng = random.Random(seed)
    pacer = pacer or Pacer()
    history = CampaignHistory()
    profile = scenario.profile
    grace = profile.connect_grace.total_seconds()
    uk = profile.abandonment_basis is AbandonmentBasis.UK
    result = ShiftResult(scenario, mode, seed)
    end = scenario.seconds
    events: list[tuple[float, int, int, int]] = []
    sequence = 0

    def at(when: float, kind: int, subject: int) -> None:
        nonlocal sequence
        sequence += 1
        heapq.heappush(events, (when, sequence, kind, subject))

    agents = [AgentSnapshot(AgentState.AVAILABLE, SIMULATION_START)] * scenario.agents
    free: list[int] = list(range(scenario.agents - 1, -1, -1))
    talk_started = [0.0] * scenario.agents
    on_call_kind = [0] * scenario.agents
    talk_length = [0.0] * scenario.agents
    calls: dict[int, _Call] = {}
    in_flight: dict[int, CallInFlight] = {}
    waiting: deque[int] = deque()
    call_ids = 0
    s = scenario
    shares = (s.human_share, s.human_share + s.machine_share)
    shares2 = (shares[1] + s.no_answer_share, shares[1] + s.no_answer_share + s.busy_share)

    def dial(t: float) -> None:
        nonlocal call_ids
        call_ids += 1
        u = rng.random()
        when = SIMULATION_START + timedelta(seconds=t)
        result.dials += 1
        if u < shares[1]:
            call = _Call(_HUMAN if u < shares[0] else _MACHINE, t, _lognormal(rng, s.ring_mean, s.ring_sd))
            at(t + call.ring, _ANSWER, call_ids)
        else:
            ends = s.no_answer_after if u < shares2[0] else s.busy_after if u < shares2[1] else 0.0
            call = _Call(0, t, ends)
            at(t + ends, _UNANSWERED, call_ids)
        calls[call_ids] = call
        in_flight[call_ids] = CallInFlight(CallState.RINGING, when)

    def connect(agent: int, call_id: int, call: _Call, t: float) -> None:
        del calls[call_id]
        del in_flight[call_id]
        agents[agent] = AgentSnapshot(AgentState.ON_CALL, SIMULATION_START + timedelta(seconds=t))
        talk_started[agent] = t
        on_call_kind[agent] = call.kind
        if call.kind == _HUMAN:
            result.connected += 1
            talk = _lognormal(rng, s.talk_mean, s.talk_mean * s.talk_cv)
        else:
            talk = s.machine_agent_seconds
        talk_length[agent] = talk
        live = call.kind == _HUMAN
        history.add_dial(DialOutcome(call.ring, True, call.amd, to_agent=True, live=live))
        at(t + talk, _TALK_END, agent)

    def agent_free(agent: int, t: float) -> None:
        while waiting:
            call_id = waiting.popleft()
            call = calls.get(call_id)
            if call is not None:
                connect(agent, call_id, call, t)
                return
        agents[agent] = AgentSnapshot(AgentState.AVAILABLE, SIMULATION_START + timedelta(seconds=t))
        free.append(agent)

    earlier = s.earlier_window

    def window() -> WindowCounts:
        return WindowCounts(
            earlier.connected + result.connected,
            earlier.abandoned + result.abandoned,
            earlier.amd_false_positives + result.false_positives,
        )

    at(0.0, _TICK, 0)
    next_report = 60.0
    while events:
        t, _, kind, subject = heapq.heappop(events)
        if t >= end:
            break
        if kind == _TICK:
            if progress is not None and t >= next_report:
                progress(t)
                next_report += 60.0
            snapshot = PacingSnapshot(
                now=SIMULATION_START + timedelta(seconds=t),
                mode=mode,
                agents=agents,
                calls=list(in_flight.values()),
                window=window(),
                profile=profile,
                history=history,
            )
            started = time.process_time()
            decision = pacer.decide(snapshot)
            result.pacer_seconds += time.process_time() - started
            result.pacer_calls += 1
            result.reasons[decision.reason.value] = result.reasons.get(decision.reason.value, 0) + 1
            for _ in range(decision.calls):
                dial(t)
            at(t + s.tick_seconds, _TICK, 0)
        elif kind == _UNANSWERED:
            call = calls.pop(subject)
            del in_flight[subject]
            history.add_dial(DialOutcome(call.ring))
        elif kind == _ANSWER:
            call = calls[subject]
            call.amd = _lognormal(rng, s.amd_mean, s.amd_sd)
            in_flight[subject] = CallInFlight(CallState.AMD, SIMULATION_START + timedelta(seconds=t))
            at(t + call.amd, _DETECTED, subject)
            if call.kind == _HUMAN:
                result.human_answers += 1
        elif kind == _DETECTED:
            call = calls[subject]
            hang_up = (
                rng.random() < s.amd_false_positive
                if call.kind == _HUMAN
                else rng.random() >= s.amd_false_negative
            )
            if hang_up:
                del calls[subject]
                del in_flight[subject]
                person = call.kind == _HUMAN
                if person:
                    result.false_positives += 1
                history.add_dial(
                    DialOutcome(call.ring, True, call.amd, live=person and uk, abandoned=person and uk)
                )
            elif free:
                connect(free.pop(), subject, call, t)
            else:
                waiting.append(subject)
                in_flight[subject] = CallInFlight(
                    CallState.CONNECTING, SIMULATION_START + timedelta(seconds=t)
                )
                at(t + grace, _GIVE_UP, subject)
        elif kind == _GIVE_UP:
            call_or_none = calls.pop(subject, None)
            if call_or_none is not None:
                del in_flight[subject]
                person = call_or_none.kind == _HUMAN
                if person:
                    result.abandoned += 1
                history.add_dial(
                    DialOutcome(
                        call_or_none.ring,
                        True,
                        call_or_none.amd,
                        to_agent=True,
                        live=person,
                        abandoned=person,
                    )
                )
        elif kind == _TALK_END:
            if on_call_kind[subject] == _HUMAN:
                result.talk_seconds += talk_length[subject]
                agents[subject] = AgentSnapshot(AgentState.WRAP_UP, SIMULATION_START + timedelta(seconds=t))
                at(t + s.wrap_seconds, _WRAP_END, subject)
            else:
                history.add_work(AgentWork(talk_length[subject], 0.0))
                agent_free(subject, t)
        elif kind == _WRAP_END:
            history.add_work(AgentWork(talk_length[subject], s.wrap_seconds))
            agent_free(subject, t)
    for agent, snapshot_ in enumerate(agents):  # talk still going at the end of the shift
        if snapshot_.state is AgentState.ON_CALL and on_call_kind[agent] == _HUMAN:
            result.talk_seconds += end - talk_started[agent]
    return result
