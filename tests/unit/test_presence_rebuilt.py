"""What an agent's presence is rebuilt as, after Redis lost it: from what they last chose and
their latest call, whichever is newer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contact_center.routing.presence import AgentState, Presence
from contact_center.routing.recovery import AgentCall, rebuilt

AGENT = 7
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WRAP = 30.0


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def chose(state: AgentState, minutes: float) -> Presence:
    return Presence(AGENT, state, at(minutes))


def call(
    *,
    status: str = "in-progress",
    routed: int | None = AGENT,
    answered_by: int | None = None,
    offered: float | None = 10,
    answered: float | None = None,
    ended: float | None = None,
) -> AgentCall:
    return AgentCall(
        "CA1",
        routed,
        answered_by,
        status,
        at(9),
        None if offered is None else at(offered),
        None if answered is None else at(answered),
        None if ended is None else at(ended),
    )


def test_without_a_call_the_choice_stands_with_its_since() -> None:
    choice = chose(AgentState.AWAY, 5)
    assert rebuilt(AGENT, choice, None, WRAP, at(60)) == choice
    assert rebuilt(AGENT, None, None, WRAP, at(60)) is None


def test_a_call_under_way_keeps_the_agent_on_it_or_ringing() -> None:
    available = chose(AgentState.AVAILABLE, 5)
    on_it = rebuilt(AGENT, available, call(answered_by=AGENT, answered=11), WRAP, at(12))
    assert on_it == Presence(AGENT, AgentState.ON_CALL, at(11), call_sid="CA1")
    ringing = rebuilt(AGENT, available, call(status="offering"), WRAP, at(10.1))
    assert ringing == Presence(AGENT, AgentState.RINGING, at(10), call_sid="CA1")


def test_a_call_over_leaves_a_wrap_up_then_the_agent_available() -> None:
    available = chose(AgentState.AVAILABLE, 5)
    over = call(status="completed", answered_by=AGENT, answered=11, ended=20)
    wrapping = rebuilt(AGENT, available, over, WRAP, at(20.25))
    assert wrapping == Presence(AGENT, AgentState.WRAP_UP, at(20), at(20.5), "CA1")
    assert rebuilt(AGENT, available, over, WRAP, at(25)) == Presence(AGENT, AgentState.AVAILABLE, at(20.5))


def test_a_choice_made_after_the_call_wins() -> None:
    over = call(status="completed", answered_by=AGENT, answered=11, ended=20)
    assert rebuilt(AGENT, chose(AgentState.AWAY, 21), over, WRAP, at(22)) == chose(AgentState.AWAY, 21)


def test_calls_not_the_agents_say_nothing() -> None:
    available = chose(AgentState.AVAILABLE, 5)
    queued = call(status="queued-for-agent")  # offered once, back in the queue
    assert rebuilt(AGENT, available, queued, WRAP, at(12)) == available
    missed = call(status="no-answer", ended=11)  # rung, not taken: the choice stands
    assert rebuilt(AGENT, available, missed, WRAP, at(12)) == available
    taken_by_another = call(routed=8, answered_by=8, answered=11)
    assert rebuilt(AGENT, available, taken_by_another, WRAP, at(12)) == available
