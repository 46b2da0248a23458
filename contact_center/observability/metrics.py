"""``/metrics`` in Prometheus' text format, one registry per application.

Measured as things happen: request and webhook latency by route (the route's pattern, never the
raw URL, so the number of series stays bounded), screen-pop latency, event-bus publish failures,
event-loop lag. Read at scrape time: see :mod:`contact_center.observability.state`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
from collections.abc import AsyncIterator, Sequence

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from contact_center.appkeys import RUNTIME, SETTINGS
from contact_center.events import SCREEN_POP
from contact_center.observability.state import StateCollector, WatchedMailbox
from contact_center.settings import MetricsSettings
from crm_core.events import DomainEvent
from crm_core.models.base import utcnow
from crm_core.ports import EventPublisher

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LOOP_LAG_INTERVAL = 0.5
WEBHOOK_PREFIX = "/twilio/"


class Metrics:
    """The application's registry and the instruments the edges observe."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.http = Histogram(
            "contact_center_http_request_duration_seconds",
            "HTTP requests by route pattern (sockets excluded)",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.webhooks = Histogram(
            "contact_center_webhook_duration_seconds",
            "Twilio webhooks (voice, SMS) by route pattern",
            ["route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.screen_pop = Histogram(
            "contact_center_screen_pop_latency_seconds",
            "From a call's screen-pop being decided to its delivery to the agent's socket here",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.publish_failures = Counter(
            "contact_center_bus_publish_failures",
            "Event batches the event bus failed to publish after a commit",
            registry=self.registry,
        )
        self.loop_lag = Gauge(
            "contact_center_event_loop_lag_seconds",
            "How late the event loop ran a timer at its last check",
            registry=self.registry,
        )
        self.loop_lag_max = Gauge(
            "contact_center_event_loop_lag_max_seconds",
            "The largest event-loop lag since the last scrape",
            registry=self.registry,
        )
        self._lag_max = 0.0
        self.state: StateCollector | None = None

    def observe_request(self, request: web.Request, status: int, seconds: float) -> None:
        route = route_of(request)
        status_class = f"{status // 100}xx"
        self.http.labels(request.method, route, status_class).observe(seconds)
        if route.startswith(WEBHOOK_PREFIX):
            self.webhooks.labels(route, status_class).observe(seconds)

    def record_lag(self, seconds: float) -> None:
        self.loop_lag.set(seconds)
        self._lag_max = max(self._lag_max, seconds)
        self.loop_lag_max.set(self._lag_max)

    def exposition(self) -> bytes:
        body = generate_latest(self.registry)
        self._lag_max = 0.0  # the next check starts the next scrape's maximum
        return body


METRICS = web.AppKey("metrics", Metrics)
MAILBOXES = web.AppKey("watched_mailboxes", list[WatchedMailbox])


def route_of(request: web.Request) -> str:
    """The matched route's pattern (``/api/v1/tickets/{ticket_id}``), or ``unmatched``."""
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical or "unmatched"


class CountingPublisher:
    """The bus as the units of work see it: a failed publish is counted, then raised as before."""

    def __init__(self, inner: EventPublisher, failures: Counter) -> None:
        self._inner = inner
        self._failures = failures

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        try:
            await self._inner.publish(events)
        except Exception:
            self._failures.inc()
            raise


def counted(bus: EventPublisher, metrics: Metrics | None) -> EventPublisher:
    """``bus`` with its failures counted in ``metrics`` (as it is without metrics)."""
    return bus if metrics is None else CountingPublisher(bus, metrics.publish_failures)


def allowed(settings: MetricsSettings, request: web.Request) -> int | None:
    """None when ``request`` may read the metrics, else the status to refuse it with (403: not
    from an allowed network; 401: the token is missing or wrong)."""
    networks = settings.networks()
    if networks:
        try:
            address = ipaddress.ip_address((request.remote or "").split("%", 1)[0])
        except ValueError:
            return 403
        if not any(address in net for net in networks):
            return 403
    token = settings.token.get_secret_value()
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            return 401
    return None


async def metrics_endpoint(request: web.Request) -> web.Response:
    refused = allowed(request.app[SETTINGS].metrics, request)
    if refused == 401:
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    if refused is not None:
        raise web.HTTPForbidden()
    metrics = request.app[METRICS]
    if metrics.state is not None:
        await metrics.state.refresh()
    return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _measure_loop_lag(metrics: Metrics) -> None:
    """How late the event loop wakes: measured on the loop's own monotonic time, never on the
    runtime's clock (a simulated clock says nothing about how busy the process is)."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(LOOP_LAG_INTERVAL)
        metrics.record_lag(max(0.0, loop.time() - started - LOOP_LAG_INTERVAL))


async def _metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the runtime and the agents' sockets: watches the bus for screen pops delivered here."""
    from contact_center.realtime import SOCKETS  # the hub's sockets, to count only pops delivered here

    metrics = app[METRICS]
    runtime = app[RUNTIME]

    async def on_event(event: DomainEvent) -> None:
        if event.name != SCREEN_POP:
            return
        agent_id = event.payload.get("agent_id")
        sockets = app.get(SOCKETS)
        if isinstance(agent_id, int) and sockets is not None and sockets.connected(agent_id):
            # A latency: measured on the system clock that stamped the event, like the request
            # latencies, whatever clock the runtime's desks run on.
            metrics.screen_pop.observe(max(0.0, (utcnow() - event.occurred_at).total_seconds()))

    unsubscribe = runtime.bus.subscribe(on_event)
    lag = asyncio.create_task(_measure_loop_lag(metrics), name="event-loop-lag")
    try:
        yield
    finally:
        unsubscribe()
        lag.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lag


def setup_metrics(app: web.Application, settings: MetricsSettings) -> Metrics:
    """The registry, the scrape-time collector and ``GET /metrics``; the context must come after
    the runtime and the realtime hub in ``cleanup_ctx``."""
    metrics = Metrics()
    app[METRICS] = metrics
    mailboxes: list[WatchedMailbox] = []
    app[MAILBOXES] = mailboxes
    metrics.state = StateCollector(lambda: app.get(RUNTIME), lambda: mailboxes, settings.cache_seconds)
    metrics.registry.register(metrics.state)
    app.cleanup_ctx.append(_metrics_ctx)
    app.router.add_get("/metrics", metrics_endpoint)
    return metrics
