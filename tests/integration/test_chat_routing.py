"""Chat load (open chats per agent): the same behaviour in memory and in Redis, and no slot is
handed out twice when many chats claim at once (on two instances with Redis)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from contact_center.routing.chat_load import ChatLoad, MemoryChatLoad, RedisChatLoad
from tests.conftest import RUN_ID

KINDS = [
    "memory",
    pytest.param("redis", marks=pytest.mark.needs_redis),
]


@pytest_asyncio.fixture(loop_scope="session", params=KINDS)
async def loads(request: pytest.FixtureRequest) -> AsyncIterator[tuple[ChatLoad, ChatLoad]]:
    """Two views of one load: the same store in memory, two instances' stores in Redis."""
    if request.param == "memory":
        store = MemoryChatLoad()
        yield store, store
        return
    prefix = f"cc-test-{RUN_ID}:{secrets.token_hex(3)}:"
    first = Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
    second = Redis.from_url(os.environ["REDIS_URL"])
    try:
        yield RedisChatLoad(first, prefix), RedisChatLoad(second, prefix)
    finally:
        keys = [k async for k in first.scan_iter(match=f"{prefix}*")]
        if keys:
            await first.delete(*keys)
        await first.aclose()
        await second.aclose()


async def test_owner_first_then_least_busy_within_capacity(loads: tuple[ChatLoad, ChatLoad]) -> None:
    one, two = loads
    assert await one.claim(preferred=None, candidates=[], capacity=2) is None
    # Ties go to the earlier candidate (the longest available).
    assert await one.claim(preferred=None, candidates=[1, 2], capacity=2) == 1
    assert await two.claim(preferred=None, candidates=[1, 2], capacity=2) == 2
    # The owner wins while they have room, even when busier than others.
    assert await one.claim(preferred=1, candidates=[1, 2, 3], capacity=2) == 1
    assert await two.claim(preferred=1, candidates=[1, 2, 3], capacity=2) == 3  # 1 is full
    assert await one.loads([1, 2, 3, 4]) == {1: 2, 2: 1, 3: 1, 4: 0}
    assert await one.claim(preferred=None, candidates=[1, 2, 3], capacity=2) == 2
    assert await two.claim(preferred=None, candidates=[1, 2, 3], capacity=2) == 3
    assert await one.claim(preferred=None, candidates=[1, 2, 3], capacity=2) is None
    await two.release(1)
    await two.release(4)  # never below zero
    assert await one.loads([1, 4]) == {1: 1, 4: 0}
    assert await one.claim(preferred=None, candidates=[1, 2, 3], capacity=2) == 1
    await one.reset({5: 1})
    assert await two.loads([1, 2, 3, 5]) == {1: 0, 2: 0, 3: 0, 5: 1}


async def test_concurrent_claims_never_exceed_capacity(loads: tuple[ChatLoad, ChatLoad]) -> None:
    one, two = loads
    agents = [1, 2, 3]
    claims = [(one if i % 2 else two).claim(preferred=None, candidates=agents, capacity=3) for i in range(20)]
    won = [a for a in await asyncio.gather(*claims) if a is not None]
    assert sorted(won) == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert await one.loads(agents) == {1: 3, 2: 3, 3: 3}


async def test_adjust_adds_to_counts_and_never_below_zero(loads: tuple[ChatLoad, ChatLoad]) -> None:
    one, two = loads
    await one.reset({1: 2, 2: 1})
    await two.adjust({1: -1, 2: -5, 3: 2})
    assert await one.loads([1, 2, 3]) == {1: 1, 2: 0, 3: 2}
    assert await one.claim(preferred=None, candidates=[2, 3], capacity=2) == 2  # 2 has room again
