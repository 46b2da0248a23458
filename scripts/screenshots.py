"""Screenshots of the agent console (with a screen-pop) and of the wallboard, for the README.

Runs the real service on a loopback port over a throw-away SQLite database with the Twilio
sandbox mounted, fills it with a small demo day, drives Debian's Chromium through Playwright and
writes docs/screenshots/console.png and docs/screenshots/wallboard.png (or into --output).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import socket
import tempfile
from datetime import timedelta
from pathlib import Path

import aiohttp
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright

from contact_center.app import create_app
from contact_center.auth.passwords import Argon2Hasher
from contact_center.sandbox.access import CONTROL_TOKEN_HEADER
from contact_center.settings import Settings, load_settings
from contact_center.twilio_account import SANDBOX_CONTROL_TOKEN
from crm_core.contact_points import email_match_key
from crm_core.db import UnitOfWorkFactory, create_engine, migrate
from crm_core.models import Customer, CustomerEmail, CustomerPhone, Role, Ticket, utcnow
from crm_core.services.agents import create_agent, create_team
from crm_core.services.interactions import log_interaction
from crm_core.types import Channel, Direction, Priority

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PASSWORD = secrets.token_urlsafe(12)  # the demo agents exist only for this run
CALLER = "+14155550123"
SANDBOX_NUMBER = "+15005550006"


class _Nobody:
    async def publish(self, events: object) -> None:
        return None


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _demo_day(settings: Settings) -> None:
    engine = create_engine(settings.database.url)
    await migrate(engine)
    uow_factory = UnitOfWorkFactory(engine, _Nobody())
    hasher = Argon2Hasher(1, 8)
    now = utcnow()
    async with uow_factory() as uow:
        s = uow.session
        team = await create_team(s, "Front desk")
        agents = {}
        for login, name, role in [
            ("maya", "Maya Okafor", Role.AGENT),
            ("liam", "Liam Chen", Role.AGENT),
            ("sofia", "Sofia Rossi", Role.AGENT),
            ("lead", "Dana Brooks", Role.SUPERVISOR),
        ]:
            agents[login] = await create_agent(
                s, hasher, login=login, display_name=name, password=PASSWORD, role=role, team_id=team.id
            )
        grace = Customer(
            display_name="Grace Whitfield",
            company="Whitfield Logistics",
            owner_id=agents["maya"].id,
            tags=["vip", "fleet"],
            segment="enterprise",
        )
        s.add(grace)
        await s.flush()
        s.add(CustomerPhone(customer_id=grace.id, e164=CALLER))
        address = "grace@whitfield.example"
        s.add(CustomerEmail(customer_id=grace.id, address=address, match_key=email_match_key(address)))
        s.add(
            Ticket(
                number=1041,
                subject="Invoice 2291 charged twice",
                priority=Priority.HIGH,
                customer_id=grace.id,
                assignee_id=agents["maya"].id,
                source_channel=Channel.EMAIL,
                first_response_due_at=now + timedelta(minutes=25),
                resolution_due_at=now + timedelta(hours=20),
            )
        )
        history = [
            (Channel.EMAIL, Direction.INBOUND, "Invoice 2291 charged twice", timedelta(hours=3)),
            (Channel.SMS, Direction.OUTBOUND, "We are looking into your invoice", timedelta(hours=2)),
            (Channel.VOICE, Direction.INBOUND, None, timedelta(days=2)),
            (Channel.CHAT, Direction.INBOUND, "Delivery window for order 88", timedelta(days=9)),
        ]
        for n, (channel, direction, subject, ago) in enumerate(history):
            await log_interaction(
                uow,
                channel=channel,
                direction=direction,
                customer_id=grace.id,
                external_id=f"demo-{n}",
                subject=subject,
                status="completed" if channel is Channel.VOICE else "logged",
                started_at=now - ago,
            )
        others = []
        for name in ["Northwind Traders", "Ana Trujillo", "Thomas Hardy", "Hanna Moos"]:
            customer = Customer(display_name=name, owner_id=agents["liam"].id)
            s.add(customer)
            others.append(customer)
        s.add(Customer(display_name="+12125550188"))
        await s.flush()
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        span = max((now - midnight).total_seconds() - 60, 60)
        counts = {Channel.VOICE: 14, Channel.EMAIL: 9, Channel.SMS: 6, Channel.CHAT: 5}
        n = 0
        for channel, count in counts.items():
            for i in range(count):
                n += 1
                started = midnight + timedelta(seconds=span * (i + 1) / (count + 1))
                logged = await log_interaction(
                    uow,
                    channel=channel,
                    direction=Direction.OUTBOUND if i % 4 == 3 else Direction.INBOUND,
                    customer_id=others[i % len(others)].id,
                    external_id=f"today-{n}",
                    status="completed",
                    started_at=started,
                )
                if channel is Channel.VOICE:
                    if i % 5 == 4:
                        logged.interaction.missed = True
                    else:
                        logged.interaction.answered_at = started + timedelta(seconds=8 + 3 * (i % 4))
        await log_interaction(
            uow,
            channel=Channel.CHAT,
            direction=Direction.INBOUND,
            customer_id=others[1].id,
            agent_id=agents["sofia"].id,
            external_id="live-chat",
            status="active",
            started_at=now - timedelta(minutes=4),
        )
        s.add(
            Ticket(
                number=1042,
                subject="Damaged pallet on delivery",
                priority=Priority.URGENT,
                customer_id=others[0].id,
                assignee_id=agents["liam"].id,
                source_channel=Channel.VOICE,
                first_response_due_at=now - timedelta(minutes=12),
                resolution_due_at=now + timedelta(hours=3),
            )
        )
        await uow.commit()
    await engine.dispose()


async def _signed_in(browser: Browser, base: str, login: str, path: str) -> Page:
    context = await browser.new_context(viewport={"width": 1360, "height": 860}, base_url=base)
    page = await context.new_page()
    await page.goto("/login?next=" + path)
    await page.fill("#login", login)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("body[data-ready=true]")
    return page


async def main(output: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = _port()
        base = f"http://127.0.0.1:{port}"
        settings = load_settings(
            env={
                "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/demo.db",
                "SECRET_KEY": "screenshots-" + "x" * 24,
                "PUBLIC_BASE_URL": base,
                "CONTACT_CENTER__SECURITY__VAR_DIR": tmp,
                "CONTACT_CENTER__SANDBOX__TIME_SCALE": "0.25",
            }
        )
        await _demo_day(settings)
        app = create_app(settings)
        sandbox_headers = {CONTROL_TOKEN_HEADER: app[SANDBOX_CONTROL_TOKEN]}
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                for login, state in [("liam", "Away"), ("sofia", "Available")]:
                    page = await _signed_in(browser, base, login, "/console")
                    await page.get_by_label(state).check()
                console = await _signed_in(browser, base, "maya", "/console")
                await console.get_by_label("Available").check()
                await console.wait_for_selector("#presence-state .badge-available")
                async with aiohttp.ClientSession(headers=sandbox_headers) as http:
                    await http.post(
                        f"{base}/twilio-sandbox/sandbox/calls", json={"from": CALLER, "to": SANDBOX_NUMBER}
                    )
                await console.wait_for_selector("#card-name")
                await console.wait_for_timeout(300)
                await console.screenshot(path=str(output / "console.png"))
                board = await _signed_in(browser, base, "lead", "/wallboard")
                await board.wait_for_timeout(800)
                await board.screenshot(path=str(output / "wallboard.png"), full_page=True)
                await browser.close()
        finally:
            await runner.cleanup()
    print(f"wrote {output / 'console.png'} and {output / 'wallboard.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "screenshots")
    target = parser.parse_args().output
    target.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(target))
