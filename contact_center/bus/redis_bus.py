"""Event bus over Redis pub/sub: every instance subscribed to one channel sees every event.

Pub/sub is fire-and-forget: an instance that is disconnected misses events, and a PUBLISH that
fails after its commit reaches nobody. Both end in a ``bus.resync`` event, on which every hub
resends its sockets what they missed, from the database (the source of truth): the subscriber
reconnects with a short backoff and, once subscribed again, delivers ``bus.resync`` to this
instance's subscribers; an instance whose PUBLISH failed (the error is raised to the publisher,
which counts it; the unit of work does not undo its commit for it) publishes ``bus.resync`` to
every instance as soon as Redis takes it. Events
published while a PUBLISH is in flight go out together in the next message (one JSON list).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable, Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from contact_center.bus import EventHandler
from contact_center.bus.dispatch import Subscribers
from contact_center.events import bus_resync
from contact_center.group_commit import GroupCommit
from crm_core.events import DomainEvent

log = logging.getLogger(__name__)

# Short: what instances missed meanwhile is resent once they are subscribed again.
MAX_BACKOFF_SECONDS = 4.0
# How often an instance whose PUBLISH failed tries to announce ``bus.resync``.
RESYNC_RETRY_SECONDS = 1.0
MAX_BATCHES_PER_MESSAGE = 64


def channel_name(key_prefix: str) -> str:
    """The pub/sub channel of the bus under ``key_prefix``."""
    return f"{key_prefix}events"


def encode_events(events: Sequence[DomainEvent]) -> str:
    """One bus message: the events as a JSON list, encoded once for every instance."""
    return json.dumps([e.to_json() for e in events], default=str)


class RedisBus:
    def __init__(self, redis: Redis, key_prefix: str) -> None:
        self._redis = redis
        self.channel = channel_name(key_prefix)
        self._subscribers = Subscribers()
        self._task: asyncio.Task[None] | None = None
        self._announcer: asyncio.Task[None] | None = None
        self._resyncs: set[asyncio.Task[None]] = set()
        self._subscribed = asyncio.Event()
        # Batches published while a PUBLISH is in flight travel together in the next message.
        self._outbox: GroupCommit[Sequence[DomainEvent], None] = GroupCommit(
            self._publish_batches, max_items=MAX_BATCHES_PER_MESSAGE, isolate_failures=False
        )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="redis-bus")
        # Events published right after start must not be missed by this instance.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout=5)

    async def close(self) -> None:
        await self._outbox.close()
        for task in (self._task, self._announcer, *self._resyncs):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._announcer = None

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        """Publish ``events``; when Redis cannot take them, the error is raised and they are
        announced lost (``bus.resync``, as soon as Redis takes it)."""
        if not events:
            return
        try:
            await self._outbox.submit(events)
        except (RedisError, OSError):
            if self._announcer is None or self._announcer.done():
                self._announcer = asyncio.create_task(self._announce_resync(), name="redis-bus-resync")
            raise

    async def _announce_resync(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_RETRY_SECONDS)
            try:
                await self._outbox.submit([bus_resync({"reason": "publish failed"})])
                return
            except (RedisError, OSError):
                continue

    async def _publish_batches(self, batches: Sequence[Sequence[DomainEvent]]) -> list[None]:
        # A unit of work's events travel together and in order, in publication order.
        await self._redis.publish(self.channel, encode_events([e for batch in batches for e in batch]))
        return [None] * len(batches)

    def subscribe(self, handler: EventHandler) -> Callable[[], None]:
        return self._subscribers.add(handler)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def _listen_forever(self) -> None:
        attempt = 0
        lost = False
        while True:
            try:
                await self._listen(resync=lost)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self._subscribed.is_set():  # it was working: a new outage, a new backoff
                    attempt = 0
                self._subscribed.clear()
                lost = True
                attempt += 1
                delay = min(MAX_BACKOFF_SECONDS, 0.25 * 2**attempt) * random.uniform(0.5, 1.0)
                log.warning("redis bus disconnected (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    async def _listen(self, *, resync: bool) -> None:
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self.channel)
            self._subscribed.set()
            if resync:
                # Subscribed again: what was published meanwhile is read from the database now,
                # while later events arrive here (the hubs show each message once).
                log.info("redis bus subscribed again; resyncing this instance's sockets")
                resync_event = bus_resync({"reason": "subscribed again"})
                task = asyncio.create_task(self._subscribers.deliver(resync_event), name="redis-bus-resync")
                self._resyncs.add(task)
                task.add_done_callback(self._resyncs.discard)
            # listen() blocks on the socket: no timeout scope per message as with get_message().
            # A dropped connection raises here and _listen_forever resubscribes.
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                for event in _decode(message["data"], self.channel):
                    await self._subscribers.deliver(event)
            raise ConnectionError("redis bus subscription ended")


def _decode(data: str, channel: str) -> list[DomainEvent]:
    """The events of one message: a JSON list of events (or a single event object)."""
    try:
        decoded = json.loads(data)
        items = decoded if isinstance(decoded, list) else [decoded]
        return [DomainEvent.from_json(item) for item in items]
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring malformed event on %s", channel)
        return []
