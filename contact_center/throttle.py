"""Throttles for the outbox's senders (:class:`crm_core.outbox.steps.Throttle`): how fast one
sender (a phone number, a mailbox address) hands messages over. Each sender's turns are spaced
evenly (``rate`` per second): a turn is taken at once and the caller waits until it comes.

In memory for a single instance; on Redis (one Lua script, on the server's clock) when several
instances send for the same numbers and addresses. No limit unless one is configured.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis

from crm_core.outbox.steps import UNLIMITED, Throttle


class MemoryThrottle:
    """Turns spaced ``1 / rate`` seconds apart per sender, in this process."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("a throttle needs a rate above 0")
        self._interval = 1.0 / rate
        self._clock = clock
        self._next: dict[str, float] = {}

    async def acquire(self, sender_key: str) -> float:
        now = self._clock()
        # Senders whose turns are all past need no memory.
        if len(self._next) > 1024:
            self._next = {k: t for k, t in self._next.items() if t > now}
        turn = max(now, self._next.get(sender_key, now))
        self._next[sender_key] = turn + self._interval
        return turn - now


# KEYS[1]: the sender's next free turn (seconds on the server's clock); ARGV[1]: the interval.
# Returns the wait in microseconds (an integer: Lua numbers become integers on the way back).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local turn = tonumber(redis.call('GET', KEYS[1]) or '0')
if turn < now then turn = now end
local free = turn + interval
redis.call('SET', KEYS[1], string.format('%.6f', free), 'PX', math.ceil((free - now) * 1000) + 1000)
return math.floor((turn - now) * 1000000)
"""


class RedisThrottle:
    """Turns spaced ``1 / rate`` seconds apart per sender, shared by every instance on ``redis``."""

    def __init__(self, redis: Redis, rate: float, prefix: str) -> None:
        if rate <= 0:
            raise ValueError("a throttle needs a rate above 0")
        self._interval = 1.0 / rate
        self._prefix = prefix
        self._script = redis.register_script(_ACQUIRE)

    async def acquire(self, sender_key: str) -> float:
        micros = await self._script(
            keys=[f"{self._prefix}throttle:{sender_key}"], args=[repr(self._interval)]
        )
        return int(micros) / 1_000_000


def throttle(rate: float, redis: Redis | None, prefix: str) -> Throttle:
    """The throttle for ``rate`` turns per second per sender: none for 0, on Redis when there is one."""
    if rate <= 0:
        return UNLIMITED
    if redis is not None:
        return RedisThrottle(redis, rate, prefix)
    return MemoryThrottle(rate)
