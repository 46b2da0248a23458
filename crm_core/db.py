"""Engine creation, migrations and the unit of work."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from crm_core.events import DomainEvent
from crm_core.ports import EventPublisher

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    """An async engine with the settings each backend needs."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine.sync_engine, "savepoint")
        def _begin_before_savepoint(conn: Connection, _name: str | None) -> None:
            # pysqlite opens a transaction only before INSERT/UPDATE/DELETE: a SAVEPOINT issued
            # first would itself become the transaction and its RELEASE would COMMIT everything.
            if not conn.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_async_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


async def migrate(engine: AsyncEngine, revision: str = "heads") -> None:
    """Bring the schema up to ``revision`` through Alembic on the given engine."""

    def _upgrade(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


class UnitOfWork:
    """One transaction; the events recorded in it are published only after it commits (a failed
    publish is logged, never raised: the change is committed)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], publisher: EventPublisher) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._events: list[DomainEvent] = []
        self.session: AsyncSession

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._sessions()
        self._events = []
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is not None:
                await self.session.rollback()
        finally:
            await self.session.close()

    def record(self, event: DomainEvent) -> None:
        self._events.append(event)

    @property
    def pending_events(self) -> Sequence[DomainEvent]:
        return tuple(self._events)

    async def commit(self) -> None:
        # Taken first: if the commit fails, the facts they announce never happened.
        events, self._events = self._events, []
        await self.session.commit()
        if events:
            try:
                await self._publisher.publish(events)
            except Exception:
                # The change stands: its caller is not told it failed. What the events announce
                # is in the database, where the publisher's recovery (a resync) reads it.
                log.warning("the events of a committed change were not published", exc_info=True)

    async def rollback(self) -> None:
        self._events = []
        await self.session.rollback()


class UnitOfWorkFactory:
    """Makes units of work that share one engine and one publisher."""

    def __init__(self, engine: AsyncEngine, publisher: EventPublisher) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.publisher = publisher

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, self.publisher)
