"""The README's promise: `contact-center serve --demo` on a fresh directory serves and signs in."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from tests.support.waiting import free_port


def _read_until(proc: subprocess.Popen[str], pattern: str, timeout: float = 60) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"{pattern!r} not printed; got: {''.join(seen)}")


async def test_serve_demo_creates_admin_once_and_shuts_down_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")
    }
    env.update(
        {
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'var' / 'cc.db'}",
            "CONTACT_CENTER__SECURITY__VAR_DIR": str(tmp_path / "var"),
            "PORT": str(port),
            "HOST": "127.0.0.1",
        }
    )
    cmd = [sys.executable, "-m", "contact_center.cli", "serve", "--demo"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        password = _read_until(proc, r"login 'admin', password '([^']+)'").group(1)
        _read_until(proc, "listening on")
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 200
            async with http.post(
                f"{base}/api/v1/auth/login", json={"login": "admin", "password": password}
            ) as resp:
                assert resp.status == 200
                assert (await resp.json())["agent"]["role"] == "admin"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # A second start keeps the existing admin and prints no new password.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = _read_until(proc, "listening on|password").group(0)
        assert line == "listening on"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
