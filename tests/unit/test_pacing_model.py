"""The pacer's model of a campaign: priors while the history is thin, the campaign's own figures
once it has some, and the conditional chances it reads per agent and per call."""

from __future__ import annotations

import pytest

from crm_core.pacing import AgentWork, CampaignHistory, DialOutcome, Priors


def test_priors_stand_in_for_an_empty_history() -> None:
    model = CampaignHistory().model()
    priors = Priors()
    assert model.to_agent_share == pytest.approx(priors.to_agent_share)
    assert model.talk.mean == pytest.approx(priors.talk_mean)
    assert list(model.nodes) == sorted(model.nodes) and model.nodes[0] < model.nodes[-1]


def test_the_campaign_s_own_history_outweighs_the_priors() -> None:
    history = CampaignHistory()
    for i in range(1000):
        reached = i % 10 < 4
        history.add_dial(
            DialOutcome(20.0, True, 2.0, to_agent=reached, live=reached) if reached else DialOutcome(3.0)
        )
    for _ in range(400):
        history.add_work(AgentWork(30.0, 5.0))
    model = history.model()
    assert model.to_agent_share == pytest.approx(0.4, abs=0.01)
    prior = Priors()  # weighs as `weight` records
    assert model.talk.mean == pytest.approx(
        (400 * 30 + prior.weight * prior.talk_mean) / (400 + prior.weight)
    )
    assert model.wrap.mean == pytest.approx(5.0, rel=0.1)
    assert 20 <= model.nodes[len(model.nodes) // 2] <= 23  # 20 s ring + 2 s detection


def test_the_model_is_refitted_only_after_enough_new_records() -> None:
    history = CampaignHistory(refit_every=10)
    first = history.model()
    for _ in range(9):
        history.add_dial(DialOutcome(25.0))
    assert history.model() is first
    history.add_dial(DialOutcome(25.0))
    assert history.model() is not first


def test_chances_follow_what_each_agent_and_call_has_done_so_far() -> None:
    tables = CampaignHistory().model().tables(grace_seconds=2)
    last = len(tables.model.nodes) - 1
    # Wrap-up almost over: free by the time a call placed now is answered; just begun: less so.
    assert tables.wrap(14)[last] > tables.wrap(0)[last]
    assert tables.wrap(40)[last] > 0.99
    # A call ringing for 40 s is most likely one nobody answers; one answered and in detection
    # needs an agent far more often than one just placed.
    assert tables.ringing(40)[last] < tables.ringing(2)[last]
    assert tables.amd(1)[last] > tables.ringing(0)[last]
    # Chances, then their variances p(1 - p).
    p = tables.talk(100)[0]
    assert tables.talk(100)[last + 1] == pytest.approx(p * (1 - p))
