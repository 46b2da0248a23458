"""The senders' throttle on Redis: the turns of one sender are shared by every instance."""

from __future__ import annotations

import os
import secrets

import pytest
from redis.asyncio import Redis

from contact_center.throttle import RedisThrottle

pytestmark = pytest.mark.needs_redis


async def test_two_instances_share_one_senders_turns() -> None:
    redis = Redis.from_url(os.environ["REDIS_URL"])
    prefix = f"cc-test-throttle-{secrets.token_hex(4)}:"
    try:
        one, two = RedisThrottle(redis, 10.0, prefix), RedisThrottle(redis, 10.0, prefix)
        waits = [await one.acquire("a@example.com"), await two.acquire("a@example.com")]
        waits.append(await one.acquire("a@example.com"))
        assert waits[0] == pytest.approx(0.0, abs=0.02)
        assert waits[1] == pytest.approx(0.1, abs=0.03)
        assert waits[2] == pytest.approx(0.2, abs=0.03)
        assert await two.acquire("b@example.com") == pytest.approx(0.0, abs=0.02)
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
