"""The outbox's life cycle as pure rules: its moves, what a provider's error means, the one retry
rule (which gives the texts' waits and the mail's backoff alike) and the throttle step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_core.email_ports import DeliveryError as MailDeliveryError
from crm_core.errors import DeliveryError, GatewayError
from crm_core.outbox.rules import MOVES, Outcome, RetryRule, Stage, after_failure, can_move, outcome_of
from crm_core.outbox.steps import UNLIMITED, pace
from crm_core.services.email_outbound import RetryPolicy
from crm_core.services.sms_outbound import SendRetry

T0 = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)


def test_a_message_moves_forward_only_and_ends_handed_over_or_failed() -> None:
    assert can_move(Stage.QUEUED, Stage.CLAIMED)
    assert can_move(Stage.CLAIMED, Stage.UNCONFIRMED)
    assert can_move(Stage.UNCONFIRMED, Stage.QUEUED)  # the provider never got it: sent again
    assert not can_move(Stage.UNCONFIRMED, Stage.FAILED)  # never dropped while it may have left
    assert not can_move(Stage.QUEUED, Stage.HANDED_OVER)  # only a claimed message is handed over
    assert MOVES[Stage.HANDED_OVER] == MOVES[Stage.FAILED] == frozenset()


def test_one_error_for_every_provider() -> None:
    assert MailDeliveryError is DeliveryError
    assert issubclass(GatewayError, DeliveryError)
    assert outcome_of(DeliveryError("421 try later", permanent=False)) is Outcome.RETRY
    assert outcome_of(DeliveryError("550 no such user", permanent=True)) is Outcome.REFUSED
    assert outcome_of(GatewayError("no connection", retryable=True)) is Outcome.RETRY
    assert outcome_of(GatewayError("no answer")) is Outcome.UNCONFIRMED
    assert outcome_of(GatewayError("invalid number", code=21211, status=400)) is Outcome.REFUSED
    refused = GatewayError("invalid number", code=21211, status=400)
    assert refused.permanent and refused.code == 21211


def test_the_mail_backoff_doubles_by_attempt_and_gives_up_after_the_last() -> None:
    rule = RetryPolicy(base_seconds=30, max_seconds=3600, max_attempts=10).rule
    waits = [rule.wait(n).total_seconds() for n in range(1, 10)]
    assert waits == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert rule.next_try(attempts=3, first_try_at=T0, now=T0) == T0 + timedelta(seconds=120)
    assert rule.next_try(attempts=10, first_try_at=T0, now=T0) is None


def test_the_texts_wait_grows_with_their_wait_and_gives_up_after_a_day() -> None:
    rule = SendRetry().rule
    assert rule.next_try(attempts=1, first_try_at=T0, now=T0) == T0 + timedelta(seconds=10)
    later = T0 + timedelta(seconds=40)
    assert rule.next_try(attempts=1, first_try_at=T0, now=later) == later + timedelta(seconds=40)
    assert rule.next_try(attempts=1, first_try_at=T0, now=T0 + timedelta(hours=24)) is None


def test_after_a_failure() -> None:
    rule = RetryRule(first_seconds=10, max_seconds=60, max_attempts=2)
    retry = after_failure(GatewayError("busy", retryable=True), rule, attempts=1, first_try_at=T0, now=T0)
    assert (retry.stage, retry.retry_at) == (Stage.QUEUED, T0 + timedelta(seconds=10))
    gave_up = after_failure(DeliveryError("421", permanent=False), rule, attempts=2, first_try_at=T0, now=T0)
    assert (gave_up.stage, gave_up.gave_up) == (Stage.FAILED, True)
    unknown = after_failure(GatewayError("no answer"), rule, attempts=1, first_try_at=T0, now=T0)
    assert unknown.stage is Stage.UNCONFIRMED
    refused = after_failure(DeliveryError("550", permanent=True), rule, attempts=1, first_try_at=T0, now=T0)
    assert (refused.stage, refused.gave_up) == (Stage.FAILED, False)


async def test_without_a_limit_every_turn_is_now() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    assert await pace(UNLIMITED, "+15005550006", sleep) == 0
    assert slept == []
