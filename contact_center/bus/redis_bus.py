"""Event bus over Redis pub/sub: every instance subscribed to one channel sees every event.

Pub/sub is fire-and-forget: an instance that is disconnected misses events. That is acceptable
because the database stays the source of truth; the subscriber reconnects with backoff. Events
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
from contact_center.group_commit import GroupCommit
from crm_core.events import DomainEvent

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0
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
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        if events:
            await self._outbox.submit(events)

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
        while True:
            try:
                await self._listen()
                attempt = 0
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._subscribed.clear()
                attempt += 1
                delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)
                log.warning("redis bus disconnected (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    async def _listen(self) -> None:
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self.channel)
            self._subscribed.set()
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
