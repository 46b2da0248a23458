"""``/metrics``: who may read it, latency by route pattern, and the figures read at scrape time
(the call queue, agents by state, the outboxes, the database pool, a mailbox's lag)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from contact_center.app import create_app
from contact_center.appkeys import RUNTIME
from contact_center.events import SCREEN_POP
from contact_center.observability.metrics import MAILBOXES, METRICS, CountingPublisher, Metrics
from contact_center.routing.presence import AgentState
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.events import DomainEvent
from crm_core.models import EmailMessage, Interaction, SmsMessage
from crm_core.models.base import utcnow
from crm_core.models.email import EmailKind, EmailStatus
from crm_core.types import Channel, Direction
from crm_core.voice import QUEUED_FOR_AGENT
from tests.conftest import Staff, isolated_settings
from tests.support.agent_socket import agent_socket
from tests.support.metrics import Samples, parse, scrape, value, with_name
from tests.support.twilio_webhooks import call_sid, post_signed
from tests.support.voice_calls import known_customer
from tests.support.waiting import eventually

Client = TestClient[Any, Any]


def _app_with(settings: Settings, **metrics: Any) -> TestServer:
    return TestServer(create_app(isolated_settings(settings).with_overrides(metrics=metrics)))


async def test_loopback_reads_the_metrics_and_others_are_refused(
    settings: Settings, uow_factory: UnitOfWorkFactory
) -> None:
    async with TestClient(_app_with(settings)) as client:
        await scrape(client)
    async with TestClient(_app_with(settings, allow_networks=["10.0.0.0/8"])) as client:
        assert (await client.get("/metrics")).status == 403
    async with TestClient(_app_with(settings, allow_networks=[], token="scrape-secret-1")) as client:
        missing = await client.get("/metrics")
        assert missing.status == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        await scrape(client, Authorization="Bearer scrape-secret-1")


async def test_request_latency_is_labelled_by_route_pattern_not_by_url(client: Client, staff: Staff) -> None:
    for customer_id in (987654, 987655):
        await client.get(f"/api/v1/customers/{customer_id}")
    await client.get("/no/such/page/42")
    samples = await scrape(client)
    routes = {
        dict(labels)["route"]
        for labels in with_name(samples, "contact_center_http_request_duration_seconds_count")
    }
    assert "/api/v1/customers/{id}" in routes, routes
    assert "unmatched" in routes
    assert not any("987654" in route or "42" in route for route in routes), routes


async def test_webhooks_have_their_own_latency(client: Client) -> None:
    params = {"CallSid": call_sid(), "CallStatus": "completed", "SequenceNumber": "1"}
    resp = await post_signed(client, "/twilio/voice/status", params)
    assert resp.status < 500, await resp.text()
    samples = await scrape(client)
    counts = with_name(samples, "contact_center_webhook_duration_seconds_count")
    assert any(dict(labels)["route"] == "/twilio/voice/status" for labels in counts), counts


async def test_queue_agents_and_outboxes_are_read_at_scrape_time(
    settings: Settings, uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    customer_id = await known_customer(uow_factory)
    waited = timedelta(minutes=3)
    async with uow_factory() as uow:
        uow.session.add(
            Interaction(
                channel=Channel.VOICE,
                direction=Direction.INBOUND,
                customer_id=customer_id,
                external_id=call_sid(),
                status=QUEUED_FOR_AGENT,
                started_at=utcnow() - waited,
                queued_at=utcnow() - waited,
            )
        )
        uow.session.add(
            SmsMessage(
                direction=Direction.OUTBOUND,
                customer_id=customer_id,
                from_number="+15005550006",
                to_number="+15005550009",
                body="hello",
                status="queued",
                created_at=utcnow() - waited,
            )
        )
        uow.session.add(
            EmailMessage(
                message_key="<metrics-test@example.com>",
                direction=Direction.OUTBOUND,
                kind=EmailKind.REPLY,
                status=EmailStatus.QUEUED,
                recipient="ada@example.com",
                created_at=utcnow() - waited,
            )
        )
        await uow.commit()
    async with TestClient(_app_with(settings, cache_seconds=0)) as client:
        presence = client.app[RUNTIME].presence
        await presence.set(staff.red_1.id, AgentState.AVAILABLE)
        await presence.set(staff.red_2.id, AgentState.AWAY)
        samples = await scrape(client)
    assert value(samples, "contact_center_state_read_ok") == 1.0
    assert value(samples, "contact_center_call_queue_length") == 1.0
    assert (value(samples, "contact_center_call_queue_oldest_wait_seconds") or 0) >= waited.total_seconds()
    assert value(samples, "contact_center_agents", state="available") == 1.0
    assert value(samples, "contact_center_agents", state="away") == 1.0
    assert (
        value(samples, "contact_center_agents", state="offline") == 6 - 2
    )  # the admin, two leads and three agents
    for channel in ("sms", "email"):
        assert value(samples, "contact_center_outbox_messages", channel=channel) == 1.0, channel
        age = value(samples, "contact_center_outbox_oldest_age_seconds", channel=channel) or 0
        assert age >= waited.total_seconds(), channel
    size = value(samples, "contact_center_db_pool_size")
    in_use = value(samples, "contact_center_db_pool_checked_out")
    assert size is not None and in_use is not None and in_use <= size + 100


class _Mailbox:
    name = "support"
    state = "reconnecting"
    failures = 3
    ingested = 12
    last_error: str | None = "ImapError: login refused"
    last_poll_at: float | None = None


async def test_mailbox_lag_and_connection(client: Client) -> None:
    mailbox = _Mailbox()
    mailbox.last_poll_at = time.time() - 90
    client.app[MAILBOXES].append(mailbox)
    samples = await scrape(client)
    assert value(samples, "contact_center_imap_connected", mailbox="support") == 0.0
    assert (value(samples, "contact_center_imap_seconds_since_last_poll", mailbox="support") or 0) >= 90
    assert value(samples, "contact_center_imap_failures_total", mailbox="support") == 3.0


async def test_the_event_loop_lag_is_measured(client: Client) -> None:
    samples = await scrape(client)
    assert value(samples, "contact_center_event_loop_lag_seconds") is not None


class _Failing:
    async def publish(self, events: Any) -> None:
        raise ConnectionError("redis is gone")


async def test_a_failed_publish_is_counted_and_still_raised() -> None:
    metrics = Metrics()
    publisher = CountingPublisher(_Failing(), metrics.publish_failures)
    with pytest.raises(ConnectionError):
        await publisher.publish([DomainEvent("x", {})])
    samples = parse(metrics.exposition().decode())
    assert value(samples, "contact_center_bus_publish_failures_total") == 1.0


def test_each_app_has_its_own_registry(settings: Settings) -> None:
    first, second = create_app(settings), create_app(settings)
    assert first[METRICS].registry is not second[METRICS].registry


async def test_screen_pop_latency_is_observed_where_the_agent_is_connected(
    client: Client, staff: Staff
) -> None:
    ws = await agent_socket(client, staff.red_1.login)
    try:
        runtime = client.app[RUNTIME]
        late = DomainEvent(
            SCREEN_POP, {"agent_id": staff.red_1.id}, occurred_at=utcnow() - timedelta(seconds=2)
        )
        elsewhere = DomainEvent(SCREEN_POP, {"agent_id": staff.blue_1.id}, occurred_at=utcnow())
        await runtime.bus.publish([late, elsewhere])

        async def observed() -> Samples | None:
            samples = await scrape(client)
            return samples if value(samples, "contact_center_screen_pop_latency_seconds_count") else None

        samples = await eventually(observed, 10, "the screen pop is observed")
        assert value(samples, "contact_center_screen_pop_latency_seconds_count") == 1.0  # only red_1's
        assert (value(samples, "contact_center_screen_pop_latency_seconds_sum") or 0) >= 2.0
    finally:
        await ws.close()
