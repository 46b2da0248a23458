"""`contact-center serve` in a process of its own, as it runs in production: a test can kill it
(SIGKILL) at a moment it chooses and start it again on the same database.

The process gets the run's database and Redis (a key prefix of its own) through environment
variables and everything else through a settings file written by :func:`write_settings`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from contact_center.settings import ENV_KEYS, Settings
from tests.support.waiting import eventually, until

ROOT = Path(__file__).resolve().parents[2]
# What the `contact-center` command runs, with the interpreter running the tests.
COMMAND = [sys.executable, "-m", "contact_center.cli"]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def write_settings(path: Path, sections: Mapping[str, Mapping[str, Any]]) -> Path:
    """A settings file: one table per section, nested tables and lists of tables inline."""
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def service_environment(settings: Settings, port: int, redis_prefix: str) -> dict[str, str]:
    """The run's database, secret, cheap password hashing and, with Redis, a key prefix of the
    test's own; the service listens on ``port`` of loopback, which is also its public URL."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CONTACT_CENTER") and key not in ENV_KEYS
    }
    env.update(
        {
            "DATABASE_URL": settings.database.url,
            "SECRET_KEY": settings.security.secret_key.get_secret_value(),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "CONTACT_CENTER__SECURITY__VAR_DIR": str(settings.security.var_dir),
            "CONTACT_CENTER__SECURITY__PASSWORD_TIME_COST": str(settings.security.password_time_cost),
            "CONTACT_CENTER__SECURITY__PASSWORD_MEMORY_KIB": str(settings.security.password_memory_kib),
            "CONTACT_CENTER__CRM__DEFAULT_REGION": settings.crm.default_region,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if settings.redis.url:
        env["REDIS_URL"] = settings.redis.url
        env["REDIS_KEY_PREFIX"] = redis_prefix
    return env


class ServiceProcess:
    """One ``contact-center serve --no-migrate`` at a time (the test migrates first); its output
    goes to ``log_file``, whose end failures quote."""

    def __init__(self, config_file: Path, env: Mapping[str, str], port: int, log_file: Path) -> None:
        self.config_file = config_file
        self.env = dict(env)
        self.port = port
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        text = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        return text[-chars:]

    @contextlib.contextmanager
    def explained(self) -> Iterator[None]:
        """A failed assertion inside quotes the end of the service's log."""
        try:
            yield
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- service log ---\n{self.log_tail()}") from exc

    async def start(self, timeout: float = 30) -> None:
        """Start the service and wait until it answers ``/healthz``; fails if it exits first."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        with self.log_file.open("ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [*COMMAND, "--config", str(self.config_file), "serve", "--no-migrate"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            await eventually(self._healthy, timeout, "the service answers /healthz")
        except BaseException:
            self.kill()
            raise

    async def _healthy(self) -> bool:
        process = self.process
        assert process is not None
        if process.poll() is not None:
            raise AssertionError(f"the service exited with {process.returncode}:\n{self.log_tail()}")
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{self.base_url}/healthz", timeout=aiohttp.ClientTimeout(total=2)) as resp,
            ):
                return resp.status == 200
        return False

    def kill(self) -> None:
        """SIGKILL, and reap the process: no handler runs, no buffer is flushed, no transaction
        ends other than by the database noticing the dropped connection. Callable from any
        thread (an SMTP handler's, say)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    async def stop(self, timeout: float = 30) -> None:
        """SIGTERM (a graceful stop) and wait for the exit; fails if it takes longer."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await until(lambda: process.poll() is not None, timeout, "the service stops on SIGTERM")
        except AssertionError:
            self.kill()
            raise AssertionError(f"the service did not stop within {timeout} s:\n{self.log_tail()}") from None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None
