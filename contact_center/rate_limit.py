"""Fixed-window rate limits, kept in memory or in Redis (shared by every instance).

Windows are counted on the clock given (seconds since the epoch): the runtime's, so a simulated
clock moves them as it moves everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        """Count one attempt under ``key``; False once more than ``limit`` fall in the window."""
        ...

    async def attempts(self, key: str, window_seconds: int) -> int:
        """How many attempts fall under ``key`` in the current window (counting none)."""
        ...

    async def reset(self, key: str) -> None: ...


class MemoryRateLimiter:
    def __init__(self, *, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[int, int]] = {}

    async def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        window = int(self._clock() // window_seconds)
        start, count = self._windows.get(key, (window, 0))
        if start != window:
            start, count = window, 0
        count += 1
        self._windows[key] = (start, count)
        if len(self._windows) > 100_000:
            self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        return count <= limit

    async def attempts(self, key: str, window_seconds: int) -> int:
        start, count = self._windows.get(key, (-1, 0))
        return count if start == int(self._clock() // window_seconds) else 0

    async def reset(self, key: str) -> None:
        self._windows.pop(key, None)


class RedisRateLimiter:
    def __init__(self, redis: Redis, key_prefix: str, *, clock: Callable[[], float]) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}rl:"
        self._clock = clock

    async def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        window = int(self._clock() // window_seconds)
        redis_key = f"{self._prefix}{key}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(redis_key)
            pipe.expire(redis_key, window_seconds + 1)
            count, _ = await pipe.execute()
        return int(count) <= limit

    async def attempts(self, key: str, window_seconds: int) -> int:
        window = int(self._clock() // window_seconds)
        return int(await self._redis.get(f"{self._prefix}{key}:{window}") or 0)

    async def reset(self, key: str) -> None:
        keys = [k async for k in self._redis.scan_iter(match=f"{self._prefix}{key}:*")]
        if keys:
            await self._redis.delete(*keys)
