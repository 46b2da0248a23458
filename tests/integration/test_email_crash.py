"""Killing the ingesting process (SIGKILL) mid-batch and restarting it loses and duplicates nothing."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import EmailKind, EmailMailboxState, EmailMessage, Ticket
from tests.email_servers import Dovecot, make_mail

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 240


async def counts(uow_factory: UnitOfWorkFactory) -> tuple[int, int, int]:
    async with uow_factory() as uow:
        s = uow.session
        inbound = await s.scalar(
            select(func.count()).select_from(EmailMessage).where(EmailMessage.direction == "inbound")
        )
        tickets = await s.scalar(select(func.count()).select_from(Ticket))
        acks = await s.scalar(
            select(func.count())
            .select_from(EmailMessage)
            .where(EmailMessage.kind == EmailKind.ACKNOWLEDGMENT)
        )
    return int(inbound or 0), int(tickets or 0), int(acks or 0)


def start(settings: Settings, dovecot: Dovecot, login: str, store: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.email_servers",
            "--database-url",
            settings.database.url,
            "--port",
            str(dovecot.port),
            "--login",
            login,
            "--store",
            str(store),
            "--batch",
            "8",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def test_kill_9_mid_batch_then_restart_is_exactly_once(
    settings: Settings, uow_factory: UnitOfWorkFactory, dovecot: Dovecot, tmp_path: Path
) -> None:
    login = "crash-" + secrets.token_hex(4)
    messages = [
        make_mail(
            sender=f"customer{n}@example.org", subject=f"Order {n}", message_id=f"crash-{n}@example.org"
        )
        for n in range(MESSAGES)
    ]
    await dovecot.append(login, *messages)
    kills = 0
    for threshold in (30, 90, 160):
        process = start(settings, dovecot, login, tmp_path)
        try:
            for _ in range(1200):
                inbound, _, _ = await counts(uow_factory)
                if inbound >= threshold:
                    break
                await asyncio.sleep(0.01)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        kills += 1
        inbound, tickets, acks = await counts(uow_factory)
        assert inbound == tickets == acks, (inbound, tickets, acks)
        async with uow_factory() as uow:
            state = await uow.session.get(EmailMailboxState, "support")
            # The checkpoint never runs ahead of what is stored.
            assert state is None or state.last_uid <= inbound
    assert kills == 3
    process = start(settings, dovecot, login, tmp_path)
    try:
        for _ in range(3000):
            if (await counts(uow_factory))[0] == MESSAGES:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # let it run on: nothing more may appear
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert await counts(uow_factory) == (MESSAGES, MESSAGES, MESSAGES)
    async with uow_factory() as uow:
        keys = set(
            await uow.session.scalars(
                select(EmailMessage.message_key).where(EmailMessage.direction == "inbound")
            )
        )
    assert keys == {f"crash-{n}@example.org" for n in range(MESSAGES)}
    assert await dovecot.uids(login, criteria="UNSEEN") == []
