"""A PostgreSQL cluster of a test's own, on a spare loopback port, that the test may stop and
restart as an operator's outage would: the shared server is never touched (Redis: spare_redis.py).

PostgreSQL runs as the ``postgres`` system user when the tests run as root (``initdb`` refuses
root). :func:`missing_tools` names what this machine lacks, for a clear skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from tests.support.waiting import eventually, free_port


def postgres_bin() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl`` (Debian keeps them out of PATH)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(versions[0]).parent if versions else None


def missing_tools() -> list[str]:
    missing = []
    if postgres_bin() is None:
        missing.append("initdb (PostgreSQL server binaries)")
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        missing.append("runuser (to run PostgreSQL as the postgres user)")
    return missing


class PrivatePostgres:
    """A throw-away cluster: trust authentication, no fsync, removed by :meth:`destroy`."""

    def __init__(self) -> None:
        bin_dir = postgres_bin()
        assert bin_dir is not None, "no initdb on this machine"
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="cc-private-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()

    @property
    def url(self) -> str:
        return self.url_of("postgres")

    def url_of(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    async def create(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        await asyncio.to_thread(
            self._run,
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        await self.start()

    async def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        )
        await asyncio.to_thread(
            self._run,
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "start",
        )
        await eventually(self._answers, 30, "the private PostgreSQL answers")

    async def stop(self) -> None:
        await asyncio.to_thread(
            self._run, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"
        )

    async def restart(self) -> None:
        """What an operator's restart does: every connection is cut, the data stays."""
        await self.stop()
        await self.start()

    async def _answers(self) -> bool:
        try:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=self.port, user="postgres", database="postgres"
            )
        except (OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    async def destroy(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            await self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
