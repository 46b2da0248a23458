"""Group commit: the first write goes at once, those submitted meanwhile go together next."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from contact_center.group_commit import GroupCommit


async def settle() -> None:
    """Let the tasks just created run up to their first wait."""
    for _ in range(3):
        await asyncio.sleep(0)


class Writer:
    """Doubles its items; holds each write until released; fails on the items it is told to."""

    def __init__(self, *, bad: frozenset[int] = frozenset()) -> None:
        self.groups: list[list[int]] = []
        self.bad = bad
        self.gate = asyncio.Event()
        self.gate.set()

    async def write(self, items: Sequence[int]) -> list[int]:
        self.groups.append(list(items))
        await self.gate.wait()
        if self.bad & set(items):
            raise ValueError(f"bad item in {list(items)}")
        return [2 * i for i in items]


async def test_items_submitted_during_a_write_go_together_in_the_next() -> None:
    writer = Writer()
    writer.gate.clear()
    group = GroupCommit(writer.write, max_items=3)
    first = asyncio.create_task(group.submit(1))
    await settle()
    assert writer.groups == [[1]]  # at once: no waiting for company
    rest = [asyncio.create_task(group.submit(i)) for i in range(2, 7)]
    await settle()
    writer.gate.set()
    assert await first == 2
    assert await asyncio.gather(*rest) == [4, 6, 8, 10, 12]
    assert writer.groups == [[1], [2, 3, 4], [5, 6]]  # in order, at most max_items each


async def test_a_bad_item_fails_only_its_own_submitter() -> None:
    writer = Writer(bad=frozenset({3}))
    writer.gate.clear()
    group = GroupCommit(writer.write)
    first = asyncio.create_task(group.submit(1))
    await settle()
    others = [asyncio.create_task(group.submit(i)) for i in (2, 3, 4)]
    await settle()
    writer.gate.set()
    results = await asyncio.gather(first, *others, return_exceptions=True)
    assert results[:2] == [2, 4] and results[3] == 8
    assert isinstance(results[2], ValueError)
    assert writer.groups == [[1], [2, 3, 4], [2], [3], [4]]  # the failed group, one by one


async def test_without_isolation_a_failed_group_fails_all_its_submitters_once() -> None:
    writer = Writer(bad=frozenset({3}))
    group = GroupCommit(writer.write, isolate_failures=False)
    results = await asyncio.gather(*(group.submit(i) for i in (3, 4)), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert writer.groups == [[3, 4]]  # submitted together, written together, not again


async def test_a_submitter_going_away_does_not_cancel_the_write() -> None:
    writer = Writer()
    writer.gate.clear()
    group = GroupCommit(writer.write)
    leaving = asyncio.create_task(group.submit(1))
    staying = asyncio.create_task(group.submit(2))
    await settle()
    leaving.cancel()
    writer.gate.set()
    assert await staying == 4
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert writer.groups == [[1, 2]]


async def test_a_write_returning_the_wrong_number_of_results_fails_its_group() -> None:
    async def short(items: Sequence[int]) -> list[int]:
        return list(items)[:-1]

    group: GroupCommit[int, int] = GroupCommit(short)
    with pytest.raises(RuntimeError, match="1 items"):
        await group.submit(1)


async def test_close_waits_for_the_write_in_flight() -> None:
    writer = Writer()
    writer.gate.clear()
    group = GroupCommit(writer.write)
    pending = asyncio.create_task(group.submit(5))
    await settle()
    closing = asyncio.create_task(group.close())
    await settle()
    assert not closing.done()
    writer.gate.set()
    await closing
    assert pending.done() and pending.result() == 10
