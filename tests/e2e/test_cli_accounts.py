"""`contact-center migrate`, `create-agent` and `create-token` against a fresh SQLite database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from contact_center.app import create_app
from contact_center.settings import load_settings


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contact_center.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_accounts_and_tokens_from_the_command_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update(
        {
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cc.db'}",
            "CONTACT_CENTER__SECURITY__VAR_DIR": str(tmp_path),
        }
    )
    assert _cli(env, "migrate").returncode == 0
    made = _cli(
        env,
        "create-agent",
        "Sam",
        "--name",
        "Sam Agent",
        "--role",
        "supervisor",
        "--password",
        "long enough pw",
    )
    assert made.returncode == 0, made.stderr
    assert "sam (supervisor)" in made.stdout
    again = _cli(env, "create-agent", "sam", "--password", "long enough pw")
    assert again.returncode == 1 and "taken" in again.stderr
    weak = _cli(env, "create-agent", "kim", "--password", "short")
    assert weak.returncode == 1 and "at least" in weak.stderr
    missing = _cli(env, "create-token", "nobody")
    assert missing.returncode == 1
    token_run = _cli(env, "create-token", "sam", "--name", "crm sync")
    assert token_run.returncode == 0, token_run.stderr
    token = token_run.stdout.strip().rsplit(" ", 1)[-1]
    assert token.startswith("cct_")
    bad_config = _cli({**env, "PORT": "x"}, "migrate")
    assert bad_config.returncode == 2
    assert bad_config.stderr.strip().startswith("configuration error: server.port:")

    settings = load_settings(env=env)
    async with TestClient(TestServer(create_app(settings))) as client:
        resp = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200
        assert (await resp.json())["agent"]["login"] == "sam"
