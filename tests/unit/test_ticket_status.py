"""The ticket state machine, checked pair by pair against the specification."""

from __future__ import annotations

import itertools

import pytest

from crm_core.errors import CoreError, InvalidTransition
from crm_core.rules.ticket_status import (
    ACTIVE_STATUSES,
    ALLOWED_TRANSITIONS,
    TicketStatus,
    check_transition,
)

NEW, OPEN, PENDING, RESOLVED, CLOSED = (
    TicketStatus.NEW,
    TicketStatus.OPEN,
    TicketStatus.PENDING,
    TicketStatus.RESOLVED,
    TicketStatus.CLOSED,
)

# The specification, written out independently of the module under test.
SPEC: dict[TicketStatus, set[TicketStatus]] = {
    NEW: {OPEN, PENDING, RESOLVED, CLOSED},
    OPEN: {PENDING, RESOLVED, CLOSED},
    PENDING: {OPEN, RESOLVED, CLOSED},
    RESOLVED: {OPEN, CLOSED},
    CLOSED: set(),
}

PAIRS = list(itertools.product(TicketStatus, repeat=2))
ALLOWED = [(a, b) for a, b in PAIRS if b in SPEC[a]]
REFUSED = [(a, b) for a, b in PAIRS if b not in SPEC[a]]


def test_the_spec_covers_every_pair() -> None:
    assert len(ALLOWED) == 12
    assert len(REFUSED) == 13
    assert set(SPEC) == set(TicketStatus)


def test_table_matches_the_spec() -> None:
    assert {k: set(v) for k, v in ALLOWED_TRANSITIONS.items()} == SPEC


@pytest.mark.parametrize(("current", "target"), ALLOWED, ids=[f"{a}->{b}" for a, b in ALLOWED])
def test_allowed_transition(current: TicketStatus, target: TicketStatus) -> None:
    check_transition(current, target)


@pytest.mark.parametrize(("current", "target"), REFUSED, ids=[f"{a}->{b}" for a, b in REFUSED])
def test_refused_transition(current: TicketStatus, target: TicketStatus) -> None:
    with pytest.raises(InvalidTransition) as info:
        check_transition(current, target)
    message = str(info.value)
    assert message.startswith(f"a {current.value} ticket cannot become {target.value}; allowed: ")
    assert isinstance(info.value, CoreError)


def test_staying_in_the_same_status_is_not_a_transition() -> None:
    for status in TicketStatus:
        with pytest.raises(InvalidTransition):
            check_transition(status, status)


def test_error_message_lists_the_allowed_targets_sorted() -> None:
    with pytest.raises(InvalidTransition) as info:
        check_transition(OPEN, NEW)
    assert str(info.value) == "a open ticket cannot become new; allowed: closed, pending, resolved"

    with pytest.raises(InvalidTransition) as info:
        check_transition(RESOLVED, PENDING)
    assert str(info.value) == "a resolved ticket cannot become pending; allowed: closed, open"


def test_error_message_says_closed_is_final() -> None:
    with pytest.raises(InvalidTransition) as info:
        check_transition(CLOSED, OPEN)
    assert str(info.value) == "a closed ticket cannot become open; allowed: none (closed is final)"


def test_active_statuses_are_the_unresolved_ones() -> None:
    assert frozenset({NEW, OPEN, PENDING}) == ACTIVE_STATUSES
