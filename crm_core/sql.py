"""Dialect-aware statements the ORM does not spell the same way on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from crm_core.models import Base

Executor = AsyncSession | AsyncConnection


def dialect_name(executor: Executor) -> str:
    """``postgresql`` or ``sqlite``, for a session or a connection alike."""
    if isinstance(executor, AsyncConnection):
        return executor.dialect.name
    return executor.get_bind().dialect.name


def insert_module(dialect: str) -> Any:
    """The dialect's ``insert`` construct (the one that knows ON CONFLICT)."""
    return postgresql if dialect == "postgresql" else sqlite


async def insert_ignore(
    session: AsyncSession, model: type[Base], values: dict[str, Any], conflict_columns: Sequence[str]
) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING; return the new row's primary key, or None if it existed."""
    table = model.__table__
    assert isinstance(table, Table)
    module = insert_module(dialect_name(session))
    stmt = (
        module.insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(conflict_columns))
        .returning(*table.primary_key.columns)
    )
    result = await session.execute(stmt)
    return result.scalar_one_or_none()


def lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` is a database connection found dead on use (the server restarted or went
    away without the driver seeing it): the connection is discarded, and work that is safe to
    repeat may run again at once on a new one."""
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


async def _ended_by_the_server(conn: AsyncConnection) -> bool:
    """Whether the driver knows the connection is closed (asyncpg does once the server ends it);
    asks nothing of the server."""
    if conn.closed or conn.invalidated:
        return True
    raw = await conn.get_raw_connection()
    is_closed = getattr(raw.driver_connection, "is_closed", None)
    return bool(is_closed()) if callable(is_closed) else False


class AutocommitConnections:
    """At most ``size`` autocommit connections at a time, kept between uses, for hot paths of
    single statements.

    Each statement commits by itself (no BEGIN/COMMIT round trips), so use these only where one
    statement is the whole write; use a unit of work whenever two writes must succeed or fail
    together. The engine's pool checks every connection it hands out (pre-ping: three round trips
    on asyncpg); a connection taken again from here within ``fresh_seconds`` of its last use skips
    that check, and one idle for longer goes back to the pool. More than ``size`` users wait for a
    connection here, so the path never takes more than ``size`` of the pool's connections. One the
    server ended (a restart or failover closes it, and the driver sees that) is dropped when taken,
    without a round trip; one that raised goes back to the pool, never reused. Only a connection that
    died unseen (a server gone without closing it) still fails one use, where the pre-ping would
    have replaced it.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        size: int = 8,
        fresh_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._fresh = fresh_seconds
        self._clock = clock
        self._slots = asyncio.Semaphore(size)
        self._idle: list[tuple[AsyncConnection, float]] = []  # the least recently used first

    async def _take(self) -> AsyncConnection:
        while self._idle:
            conn, used_at = self._idle.pop()
            if self._clock() - used_at > self._fresh:
                await conn.close()  # unused for a while (and so are the others): the pool checks again
            elif await _ended_by_the_server(conn):
                await conn.invalidate()
                await conn.close()
            else:
                return conn
        conn = await self._engine.connect()
        return await conn.execution_options(isolation_level="AUTOCOMMIT")

    async def _give_back(self, conn: AsyncConnection) -> None:
        now = self._clock()
        self._idle.append((conn, now))
        while self._idle and now - self._idle[0][1] > self._fresh:
            await self._idle.pop(0)[0].close()

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self._slots:
            conn = await self._take()
            try:
                yield conn
            except BaseException:
                await conn.close()
                raise
            await self._give_back(conn)

    async def close(self) -> None:
        """Give the idle connections back to the pool (before the engine is disposed)."""
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            await conn.close()
