"""The predictive pacer: progressive as a floor, the model's reading of the campaign's history,
the fall back at the abandonment limit, the controller, and a short simulated shift."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from crm_core.pacing import (
    AgentSnapshot,
    AgentState,
    AgentWork,
    CallInFlight,
    CallState,
    CampaignHistory,
    DialOutcome,
    Pacer,
    PacingMode,
    PacingReason,
    PacingSnapshot,
)
from crm_core.pacing.simulation import Scenario, run_shift
from crm_core.rules.abandonment import WindowCounts
from crm_core.rules.regulatory_profile import UK, US, RegulatoryProfile

NOW = datetime(2027, 1, 15, 10, tzinfo=UTC)
ROOMY = WindowCounts(connected=10_000, abandoned=150)
"""A window at 1.5%: predictive allowed with plenty of budget."""


def history(to_agent_share: float = 0.2, dials: int = 1000) -> CampaignHistory:
    campaign = CampaignHistory()
    live = round(to_agent_share * dials)
    for i in range(dials):
        if i < live:
            campaign.add_dial(DialOutcome(9.0 + i % 5, True, 3.0, to_agent=True, live=True))
        elif i % 2:
            campaign.add_dial(DialOutcome(25.0))
        else:
            campaign.add_dial(DialOutcome(8.0, True, 3.0))
    for i in range(300):
        campaign.add_work(AgentWork(60.0 + i % 120, 20.0))
    return campaign


def agent(state: AgentState, seconds_ago: float = 0.0) -> AgentSnapshot:
    return AgentSnapshot(state, NOW - timedelta(seconds=seconds_ago))


def snapshot(
    agents: Sequence[AgentSnapshot],
    *,
    calls: Sequence[CallInFlight] = (),
    window: WindowCounts = ROOMY,
    campaign: CampaignHistory | None = None,
    mode: PacingMode = PacingMode.PREDICTIVE,
    profile: RegulatoryProfile = US,
) -> PacingSnapshot:
    return PacingSnapshot(
        now=NOW,
        mode=mode,
        agents=agents,
        calls=calls,
        window=window,
        profile=profile,
        history=campaign if campaign is not None else history(),
    )


def busy_floor(free: int = 2, wrapping: int = 4, talking: int = 10) -> list[AgentSnapshot]:
    return (
        [agent(AgentState.AVAILABLE, 5)] * free
        + [agent(AgentState.WRAP_UP, 10)] * wrapping
        + [agent(AgentState.ON_CALL, 30 + 20 * i) for i in range(talking)]
    )


def test_no_agents_no_calls() -> None:
    decision = Pacer().decide(snapshot([]))
    assert (decision.calls, decision.reason) == (0, PacingReason.NO_AGENTS)


def test_progressive_mode_places_one_call_per_free_agent_not_covered() -> None:
    agents = [*busy_floor(free=3), agent(AgentState.RESERVED, 1)]
    calls = [CallInFlight(CallState.RINGING, NOW - timedelta(seconds=2))]
    decision = Pacer().decide(snapshot(agents, calls=calls, mode=PacingMode.PROGRESSIVE))
    assert (decision.calls, decision.reason) == (3, PacingReason.PROGRESSIVE_MODE)


def test_predictive_dials_ahead_of_agents_about_to_finish_wrap_up() -> None:
    agents = [agent(AgentState.WRAP_UP, 12)] * 5 + [agent(AgentState.ON_CALL, 60)] * 5
    decision = Pacer().decide(snapshot(agents))
    assert decision.progressive_calls == 0
    assert decision.calls > 5  # several dials per agent: about one in five reaches a person


def test_never_fewer_calls_than_progressive() -> None:
    # Every dial reaches a person, and one abandon is left before the limit (the risk target
    # shrinks to almost nothing): the model would not risk one call per free agent.
    tight = WindowCounts(connected=98, abandoned=2)
    agents = [agent(AgentState.AVAILABLE)] * 5
    decision = Pacer().decide(snapshot(agents, window=tight, campaign=history(1.0)))
    assert decision.predictive_calls < 5
    assert (decision.calls, decision.reason) == (5, PacingReason.PROGRESSIVE_FLOOR)


def test_more_calls_when_fewer_dials_reach_a_person() -> None:
    agents = busy_floor()
    low = Pacer().decide(snapshot(agents, campaign=history(0.1)))
    high = Pacer().decide(snapshot(agents, campaign=history(0.4)))
    assert low.calls > high.calls >= 2


def test_calls_in_flight_count_against_new_calls() -> None:
    agents = busy_floor()
    ringing = [CallInFlight(CallState.RINGING, NOW - timedelta(seconds=4))] * 6
    answered = [CallInFlight(CallState.AMD, NOW - timedelta(seconds=1))] * 3
    idle = Pacer().decide(snapshot(agents)).calls
    assert Pacer().decide(snapshot(agents, calls=ringing)).calls < idle
    assert Pacer().decide(snapshot(agents, calls=answered)).calls < idle


@pytest.mark.parametrize(
    ("window", "allowed"),
    [
        (WindowCounts(connected=97, abandoned=3), False),  # at 3%: the next abandon would cross it
        (WindowCounts(connected=98, abandoned=2), True),
        (WindowCounts(), False),  # no live answers yet: any abandon would be 100%
    ],
)
def test_falls_back_to_progressive_before_the_limit(window: WindowCounts, allowed: bool) -> None:
    decision = Pacer().decide(snapshot(busy_floor(free=4), window=window))
    if allowed:
        assert decision.reason is not PacingReason.ABANDONMENT_LIMIT
    else:
        assert (decision.calls, decision.reason) == (4, PacingReason.ABANDONMENT_LIMIT)


def test_uk_profile_counts_amd_false_positives_towards_the_limit() -> None:
    window = WindowCounts(connected=97, abandoned=1, amd_false_positives=2)
    assert Pacer().decide(snapshot(busy_floor(), window=window)).reason is not PacingReason.ABANDONMENT_LIMIT
    decision = Pacer().decide(snapshot(busy_floor(), window=window, profile=UK))
    assert decision.reason is PacingReason.ABANDONMENT_LIMIT


def test_the_controller_dials_less_as_abandonment_rises() -> None:
    agents = busy_floor(free=0, wrapping=8, talking=30)
    decisions = [
        Pacer().decide(snapshot(agents, window=WindowCounts(connected=10_000 - a, abandoned=a)))
        for a in (240, 260, 275, 290)
    ]
    targets = [d.risk_target for d in decisions]
    calls = [d.calls for d in decisions]
    assert targets == sorted(targets, reverse=True) and len(set(targets)) == 4
    assert calls == sorted(calls, reverse=True) and calls[0] > calls[-1]


def test_the_same_snapshot_gives_the_same_decision() -> None:
    agents = busy_floor()
    calls = [CallInFlight(CallState.RINGING, NOW - timedelta(seconds=s)) for s in (1, 3, 7)]
    first = Pacer().decide(snapshot(agents, calls=calls, campaign=history(0.25)))
    again = snapshot(agents, calls=calls, campaign=history(0.25))
    pacer = Pacer()
    assert pacer.decide(again) == first
    assert pacer.decide(again) == first


def test_a_short_simulated_shift_beats_progressive_within_the_limit() -> None:
    scenario = Scenario(agents=20, seconds=3600.0, profile=US)
    predictive = run_shift(scenario, PacingMode.PREDICTIVE, seed=7)
    progressive = run_shift(scenario, PacingMode.PROGRESSIVE, seed=7)
    assert progressive.abandoned == 0
    assert predictive.human_answers > 400
    assert predictive.abandonment_rate <= US.abandonment_limit
    assert predictive.occupancy > progressive.occupancy + 0.1
    assert predictive.pacer_calls == 3600


def test_a_shift_can_start_with_answers_already_in_the_window() -> None:
    fresh = Scenario(agents=10, seconds=300.0, talk_mean=30.0, wrap_seconds=5.0)
    running = Scenario(
        agents=10, seconds=300.0, talk_mean=30.0, wrap_seconds=5.0, earlier_window=WindowCounts(1000, 20)
    )
    cold = run_shift(fresh, PacingMode.PREDICTIVE, seed=3)
    warm = run_shift(running, PacingMode.PREDICTIVE, seed=3)
    assert cold.reasons.get(PacingReason.ABANDONMENT_LIMIT.value, 0) > 60
    assert PacingReason.ABANDONMENT_LIMIT.value not in warm.reasons
    assert warm.dials > cold.dials
    assert warm.window.connected + warm.window.abandoned <= warm.human_answers
