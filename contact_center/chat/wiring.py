"""The chat's wiring: its routes (added before start-up), and what it opens, subscribes to and
starts with the application (its ``cleanup_ctx``).

The desk is built at start-up; the visitor socket, the agents' typing and the REST routes
(:mod:`contact_center.chat.routes`) reach it through one late-bound holder, ``app[CHAT_DESK]``.
Every instance delivers the chat's events to the visitor sockets it holds, resends its agents' and
visitors' sockets the messages they missed when the bus may have lost some (``bus.resync``:
:mod:`contact_center.chat.catchup`), dispatches the queue when routing offers it free agents
(after the waiting callers), and polls the queue and checks the chat load on the runtime's
scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial

from aiohttp import web
from redis.asyncio import Redis

from channels.webchat.protocol import Blocked, Closed
from channels.webchat.rate_limits import BatchedRateLimit
from channels.webchat.socket import CLOSE_BLOCKED, VisitorSockets
from channels.webchat.tokens import VisitorTokens
from contact_center.appkeys import RUNTIME, Runtime
from contact_center.chat.catchup import resend_missed
from contact_center.chat.desk import ChatDesk
from contact_center.chat.events import for_visitor
from contact_center.chat.policy import allowed_origins, chat_policy
from contact_center.chat.queue import Publish
from contact_center.chat.routes import CHAT_DESK, add_agent_typing, add_visitor_routes
from contact_center.events import BUS_RESYNC, VISITOR_BACK
from contact_center.late import Late
from contact_center.realtime import SOCKETS
from contact_center.routing.chat_load import ChatRouter, MemoryChatLoad, chat_load_store, reconcile_load
from contact_center.routing.free_agents import CHATS, Freed
from contact_center.settings import Settings
from crm_core.events import EMAIL_DELIVERY, DomainEvent
from crm_core.services import chat_queue
from crm_core.services.chat_transcripts import OutboxTranscriptMailer, TranscriptMailer

log = logging.getLogger(__name__)


class RedisCounter:
    """Window counters in Redis, under the keys the service's other rate limits use."""

    def __init__(self, redis: Redis, key_prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}rl:"

    async def add(self, key: str, amount: int, window: int, window_seconds: int) -> int:
        redis_key = f"{self._prefix}{key}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(redis_key, amount)
            pipe.expire(redis_key, window_seconds + 1)
            total, _ = await pipe.execute()
        return int(total)


def _logged_failures(publish: Publish) -> Publish:
    """The bus's publish for the chat's desks: a failure is logged, not raised to the visitor or
    the agent. What it announced is stored (or was fleeting: typing), and the bus resyncs the
    sockets once it can (``bus.resync``)."""

    async def published(events: Sequence[DomainEvent]) -> None:
        try:
            await publish(events)
        except Exception:
            log.warning("%d chat events not published; the sockets resync once the bus is back", len(events))

    return published


async def _rebuild_load(runtime: Runtime, router: ChatRouter) -> None:
    if isinstance(router.load, MemoryChatLoad):
        async with runtime.uow() as uow:
            await router.load.reset(await chat_queue.active_chats_per_agent(uow.session))


async def _check_load(runtime: Runtime, router: ChatRouter, every_seconds: float) -> None:
    """:func:`reconcile_load` on one instance per period (a Redis lock when instances share it)."""
    if runtime.redis is not None:
        lock = f"{runtime.settings.redis.key_prefix}chat-load-check"
        if not await runtime.redis.set(lock, "1", nx=True, px=int(every_seconds * 900)):
            return
    try:
        await reconcile_load(runtime.uow, router.load)
    except Exception:
        log.exception("checking the chat load failed")


def _chat_ctx(
    desk_holder: Late[ChatDesk],
    sockets: VisitorSockets,
    transcripts: TranscriptMailer | None,
    wake_mail: Callable[[], None] | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def chat_ctx(app: web.Application) -> AsyncIterator[None]:
        runtime = app[RUNTIME]
        settings = runtime.settings
        load = chat_load_store(runtime.redis, settings.redis.key_prefix)
        counter = None if runtime.redis is None else RedisCounter(runtime.redis, settings.redis.key_prefix)
        router = ChatRouter(runtime.uow, runtime.presence, load, settings.webchat.max_chats_per_agent)
        await _rebuild_load(runtime, router)
        desk = ChatDesk(
            runtime.uow,
            _logged_failures(runtime.bus.publish),
            router,
            runtime.limiter,
            chat_policy(settings),
            transcripts or OutboxTranscriptMailer(),
            spawn=runtime.jobs.spawn,
            connected=sockets.connected,
            message_limits=BatchedRateLimit(counter, clock=runtime.rate_clock),
            clock=runtime.clock,
        )
        desk_holder.set(desk)
        history_limit = chat_policy(settings).history_limit

        async def deliver(event: DomainEvent) -> None:
            addressed = for_visitor(event)
            if addressed is not None:
                visitor_id, notice = addressed
                if isinstance(notice, Closed | Blocked):
                    desk.visitors.forget(visitor_id)
                await sockets.send(visitor_id, notice)
                if isinstance(notice, Blocked):
                    await sockets.close_visitor(visitor_id, CLOSE_BLOCKED, b"blocked")
            elif event.name == VISITOR_BACK and isinstance(back := event.payload.get("visitor_id"), str):
                desk.queue.came_back(back)
            elif event.name == BUS_RESYNC:
                missed = resend_missed(runtime.uow, app.get(SOCKETS), sockets, history_limit)
                runtime.jobs.spawn(missed, "chat-resync")
            elif event.name == EMAIL_DELIVERY and event.payload.get("status") == "queued" and wake_mail:
                wake_mail()  # a transcript queued by a chat that ended

        async def offer_free_agents(freed: frozenset[Freed]) -> None:
            # An agent set themselves available: waiting chats get their turn. The end of a wrap-up
            # is left to the queue's timer, as before (a look per call would cost the call's path).
            if Freed.AVAILABLE in freed:
                desk.queue.dispatch_soon()

        unsubscribe = runtime.bus.subscribe(deliver)
        unregister = runtime.free_agents.register("chats", CHATS, offer_free_agents)
        check = settings.webchat.load_check_seconds
        try:
            with (
                runtime.jobs.every(settings.webchat.queue_poll_seconds, desk.queue.poll, "chat-queue"),
                runtime.jobs.every(check, partial(_check_load, runtime, router, check), "chat-load-check"),
            ):
                yield
        finally:
            unregister()
            unsubscribe()
            await desk.close()
            await sockets.close_all()

    return chat_ctx


def setup_chat(
    app: web.Application,
    settings: Settings,
    *,
    transcripts: TranscriptMailer | None = None,
    wake_mail: Callable[[], None] | None = None,
) -> None:
    """The widget's files, the visitor socket and the agents' chat messages; must come after the
    runtime in ``cleanup_ctx``. Transcripts go to ``transcripts`` (the email outbox, when mail is
    set up; else they wait in ``chat_transcript_emails``), and ``wake_mail`` is called when an
    email is queued."""
    origins = allowed_origins(settings)
    tokens = VisitorTokens(settings.security.secret_key.get_secret_value())
    sockets = VisitorSockets()
    desk: Late[ChatDesk] = Late("the chat desk")
    app[CHAT_DESK] = desk
    app.cleanup_ctx.append(_chat_ctx(desk, sockets, transcripts, wake_mail))

    async def close_visitor_sockets(_app: web.Application) -> None:
        # Before the server waits for open requests: a socket left open would hold the shutdown.
        await sockets.close_all()

    app.on_shutdown.append(close_visitor_sockets)
    add_visitor_routes(app, lambda: desk.get().visitors, sockets, tokens, origins)
    add_agent_typing(app, desk.get)
