"""The ``import-customers`` and ``export-customers`` commands."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from redis.asyncio import Redis
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from contact_center.bus.redis_bus import RedisBus
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory, create_engine
from crm_core.events import DomainEvent
from crm_core.ports import EventPublisher
from crm_core.services.customer_csv_rows import COLUMNS, CUSTOM_PREFIX
from crm_core.services.customer_export import export_customers
from crm_core.services.customer_import import import_customers

if TYPE_CHECKING:
    from contact_center.cli import Command


class _NoListeners:
    """The publisher of a lone process without Redis: no other process can hear its events."""

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        return None


@contextlib.asynccontextmanager
async def _units_of_work(settings: Settings) -> AsyncIterator[UnitOfWorkFactory]:
    """Units of work on the configured database; events go to Redis when it is configured."""
    engine = create_engine(settings.database.url)
    redis = Redis.from_url(settings.redis.url, decode_responses=True) if settings.redis.url else None
    publisher: EventPublisher = (
        RedisBus(redis, settings.redis.key_prefix) if redis is not None else _NoListeners()
    )
    try:
        yield UnitOfWorkFactory(engine, publisher)
    finally:
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


def _open_input(path: str) -> BinaryIO:
    return Path(path).open("rb")


def _open_output(path: str | None) -> contextlib.AbstractContextManager[BinaryIO]:
    if path is None:
        return contextlib.nullcontext(sys.stdout.buffer)
    return Path(path).open("wb")


def _counted(lines: Iterable[bytes], advance: Callable[[int], None]) -> Iterator[bytes]:
    for line in lines:
        advance(len(line))
        yield line


async def cmd_import_customers(settings: Settings, args: argparse.Namespace) -> int:
    """Import a CSV file; exits with 1 when a row was rejected."""
    try:
        file = _open_input(args.file)
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("importing"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    with file, progress:
        task = progress.add_task("import", total=os.fstat(file.fileno()).st_size)
        lines = _counted(file, lambda size: progress.advance(task, size))
        async with _units_of_work(settings) as uows:
            result = await import_customers(
                uows,
                lines,
                actor=None,
                region=settings.crm.default_region,
                default_owner=args.owner,
                dry_run=args.dry_run,
            )
    summary = (
        f"created: {result.created}, updated: {result.updated}, "
        f"duplicates: {result.duplicates}, rejected: {len(result.rejected)}"
    )
    print(summary + (" (dry run: nothing was saved)" if args.dry_run else ""))
    for rejected in result.rejected:
        print(f"line {rejected.line}: {rejected.reason}")
    return 1 if result.rejected else 0


async def cmd_export_customers(settings: Settings, args: argparse.Namespace) -> int:
    """Write every customer (merged ones left out) as CSV, in id order."""
    async with _units_of_work(settings) as uows, uows() as uow:
        try:
            with _open_output(args.output) as out:
                async for chunk in export_customers(uow.session, None):
                    out.write(chunk.encode("utf-8"))
                out.flush()
        except BrokenPipeError:
            # The reader (``head``...) has gone; point stdout at nothing so the exit flush is quiet.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    return 0


def add_customer_csv_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    register: Callable[[str], Callable[[Command], Command]],
) -> None:
    """Add the two sub-commands to ``sub`` and their functions through ``register``."""
    imp = sub.add_parser(
        "import-customers",
        help="import customers from a CSV file",
        description=(
            f"Columns (case-insensitive header names): {', '.join(COLUMNS)}, {CUSTOM_PREFIX}<name>. "
            "display_name is required; phones and emails take several values separated by ';' or '|', "
            "tags by ';'. A row whose phone or email is already known completes that customer."
        ),
    )
    imp.add_argument("file", help="UTF-8 CSV file with a header row")
    imp.add_argument("--owner", metavar="LOGIN", help="owner of the rows whose owner cell is empty")
    imp.add_argument("--dry-run", action="store_true", help="check and count every row, save nothing")
    exp = sub.add_parser("export-customers", help="write all customers as CSV")
    exp.add_argument("--output", "-o", metavar="FILE", help="file to write (default: standard output)")
    register("import-customers")(cmd_import_customers)
    register("export-customers")(cmd_export_customers)
