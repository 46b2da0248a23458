"""The application factory: the one place that picks concrete adapters from the settings."""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis

from contact_center.api.errors import json_errors
from contact_center.api.routes import (
    admin,
    auth,
    customer_csv,
    customers,
    interactions,
    presence,
    tickets,
    wallboard,
)
from contact_center.api.spec import Endpoint, add_routes, openapi_document
from contact_center.appkeys import RUNTIME, SETTINGS, Runtime
from contact_center.auth.middleware import authenticate
from contact_center.auth.passwords import Argon2Hasher
from contact_center.bus import EventBus
from contact_center.bus.inprocess import InProcessBus
from contact_center.bus.redis_bus import RedisBus
from contact_center.campaigns import agent_room_routes as campaign_room_routes
from contact_center.campaigns import dnc_routes as campaign_dnc_routes
from contact_center.campaigns import results_routes as campaign_results_routes
from contact_center.campaigns import routes as campaign_routes
from contact_center.campaigns.wiring import setup_campaigns, setup_dialer
from contact_center.chat import routes as chat_routes
from contact_center.chat.wiring import setup_chat
from contact_center.client_address import client_address_middleware
from contact_center.email import routes as email_routes
from contact_center.email.desk import EMAIL_DESK
from contact_center.email.wiring import setup_email, transcript_mailer
from contact_center.health import routes as health_routes
from contact_center.jobs import Jobs
from contact_center.knowledge import routes as knowledge_routes
from contact_center.knowledge.wiring import setup_knowledge
from contact_center.observability.metrics import METRICS, counted, setup_metrics
from contact_center.observability.requests import request_context, setup_request_context
from contact_center.observability.shutdown import refuse_sockets_while_draining, setup_shutdown
from contact_center.rate_limit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from contact_center.realtime import SOCKETS, setup_realtime
from contact_center.routing.free_agents import FreeAgents
from contact_center.routing.recovery import presence_recovery
from contact_center.routing.redis_presence import presence_store
from contact_center.server_header import hide_server_software
from contact_center.service_levels import routes as service_level_routes
from contact_center.service_levels.wiring import setup_service_levels
from contact_center.settings import Settings
from contact_center.sms import routes as sms
from contact_center.sms.wiring import setup_sms
from contact_center.twilio_account import setup_sandbox, twilio_gateway
from contact_center.voice import routes as voice
from contact_center.voice.wiring import setup_voice
from contact_center.web_setup import setup_web
from crm_core.clock import SystemClock
from crm_core.db import UnitOfWorkFactory, create_engine
from crm_core.ports import Clock
from crm_core.services.escalation_mail import EscalationMailer

log = logging.getLogger(__name__)

# customer_csv before customers: its fixed paths (/customers/export) must win over /customers/{id}.
API_GROUPS = (
    auth.routes,
    customer_csv.routes,
    customers.routes,
    tickets.routes,
    interactions.routes,
    admin.routes,
    presence.routes,
    voice.routes,
    voice.call_routes,
    chat_routes.routes,
    wallboard.routes,
    sms.routes,
    email_routes.routes,
    email_routes.quarantine_routes,
    campaign_routes.routes,
    campaign_results_routes.routes,
    campaign_dnc_routes.routes,
    campaign_room_routes.routes,
    knowledge_routes.routes,
    service_level_routes.routes,
)
VERSION = "0.1.0"
ENDPOINTS = web.AppKey("endpoints", list[Endpoint])
# A silent Redis connection is probed after 15 s and given up after 3 unanswered probes 5 s apart.
KEEPALIVE_OPTIONS = {
    option: value
    for name, value in (("TCP_KEEPIDLE", 15), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
    if (option := getattr(socket, name, None)) is not None
}


async def _runtime_ctx(
    app: web.Application, clock: Clock, rate_clock: Callable[[], float]
) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = create_engine(
        settings.database.url, echo=settings.database.echo, pool_size=settings.database.pool_size
    )
    redis: Redis | None = None
    bus: EventBus
    limiter: RateLimiter
    if settings.redis.url:
        # A blocking pool: a burst of requests waits for a free connection instead of failing.
        pool = BlockingConnectionPool.from_url(
            settings.redis.url,
            decode_responses=True,
            health_check_interval=30,
            max_connections=200,
            timeout=5,
            socket_connect_timeout=5,
            # The bus listener blocks reading its subscription: without keepalive probes a peer
            # that vanished without a reset (a failover, a NAT dropping the flow) is never noticed.
            socket_keepalive=True,
            socket_keepalive_options=KEEPALIVE_OPTIONS,
        )
        redis = Redis.from_pool(pool)
        bus = RedisBus(redis, settings.redis.key_prefix)
        limiter = RedisRateLimiter(redis, settings.redis.key_prefix, clock=rate_clock)
    else:
        bus = InProcessBus()
        limiter = MemoryRateLimiter(clock=rate_clock)
    await bus.start()
    jobs = Jobs(clock)
    free_agents = FreeAgents(jobs.spawn, clock.now, call_later=clock.call_later)
    app[RUNTIME] = Runtime(
        settings=settings,
        uow=UnitOfWorkFactory(engine, counted(bus, app.get(METRICS))),
        bus=bus,
        hasher=Argon2Hasher(settings.security.password_time_cost, settings.security.password_memory_kib),
        limiter=limiter,
        redis=redis,
        sla=settings.crm.sla_policy(),
        presence=presence_store(redis, settings.redis.key_prefix, clock.now),
        twilio=twilio_gateway(settings),
        jobs=jobs,
        free_agents=free_agents,
        clock=clock,
        rate_clock=rate_clock,
    )
    log.info("database %s, event bus %s", engine.dialect.name, type(bus).__name__)
    runtime = app[RUNTIME]
    unsubscribe = bus.subscribe(free_agents.on_event)
    try:
        yield
    finally:
        unsubscribe()
        free_agents.close()
        await runtime.jobs.close()
        await runtime.twilio.close()
        await bus.close()
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


async def openapi_json(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    doc = openapi_document(
        request.app[ENDPOINTS],
        title="contact-center API",
        version=VERSION,
        server_url=settings.server.public_base_url,
    )
    return web.json_response(doc)


def create_app(
    settings: Settings, *, clock: Clock | None = None, rate_clock: Callable[[], float] | None = None
) -> web.Application:
    """The service on ``clock`` (the real time by default; a simulated one in a simulation).

    ``rate_clock`` (seconds since the epoch) is what rate-limit windows count on: the clock's by default.
    """
    clock = clock or SystemClock()
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[
            request_context,
            refuse_sockets_while_draining,
            client_address_middleware(settings.server.trusted_networks()),
            json_errors,
            authenticate,
        ],
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.append(
        functools.partial(_runtime_ctx, clock=clock, rate_clock=rate_clock or clock.timestamp)
    )
    app.router.add_routes(health_routes)
    app[ENDPOINTS] = add_routes(app, API_GROUPS)
    app.router.add_get("/api/openapi.json", openapi_json)
    setup_voice(app, settings)
    setup_sandbox(app, settings)
    setup_sms(app, settings)
    setup_email(app, settings)
    setup_campaigns(app)
    setup_dialer(app, settings)
    setup_knowledge(app)
    transcripts = transcript_mailer(settings)
    setup_service_levels(
        app,
        settings,
        mailer=EscalationMailer(transcripts.identity, transcripts.secret, transcripts.domain)
        if transcripts
        else None,
        wake_mail=lambda: app[EMAIL_DESK].wake_outbox(),
    )
    setup_realtime(app)
    app.cleanup_ctx.append(presence_recovery(lambda: [agent for agent, _ in app[SOCKETS].held()]))
    setup_chat(
        app,
        settings,
        transcripts=transcripts,
        wake_mail=lambda: app[EMAIL_DESK].wake_outbox(),
    )
    setup_web(app, settings)
    setup_metrics(app, settings.metrics)
    setup_request_context(app)
    setup_shutdown(app)
    hide_server_software(app)
    return app
