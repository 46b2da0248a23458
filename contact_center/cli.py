"""The `contact-center` command: serve, migrate, create-agent, create-token, import/export customers."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import secrets
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from sqlalchemy import func, select

from contact_center.auth.credentials import create_api_token
from contact_center.auth.passwords import Argon2Hasher
from contact_center.campaigns_cli import add_campaign_commands
from contact_center.customer_csv_cli import add_customer_csv_commands
from contact_center.gc_tuning import tune_for_service
from contact_center.logging_setup import configure_logging
from contact_center.sandbox_cli import add_sandbox_commands
from contact_center.settings import ConfigError, Settings, load_settings
from crm_core.db import create_engine, migrate
from crm_core.errors import CoreError
from crm_core.models import Agent, Role
from crm_core.services.agents import agent_by_login, create_agent, create_team

log = logging.getLogger("contact_center")
DEMO_ADMIN = "admin"

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]
COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        COMMANDS[name] = fn
        return fn

    return register


async def run_migrations(settings: Settings) -> None:
    engine = create_engine(settings.database.url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


async def ensure_demo_admin(settings: Settings) -> str | None:
    """Create the demo admin on an empty database; returns its password (printed once) or None."""
    engine = create_engine(settings.database.url)
    hasher = Argon2Hasher(settings.security.password_time_cost, settings.security.password_memory_kib)
    try:
        async with engine.begin() as conn:
            from sqlalchemy.ext.asyncio import AsyncSession

            session = AsyncSession(bind=conn, expire_on_commit=False)
            if (await session.scalar(select(func.count()).select_from(Agent))) or 0:
                return None
            password = secrets.token_urlsafe(12)
            team = await create_team(session, "Support")
            await create_agent(
                session,
                hasher,
                login=DEMO_ADMIN,
                display_name="Demo Administrator",
                password=password,
                role=Role.ADMIN,
                team_id=team.id,
            )
            await session.flush()
            return password
    finally:
        await engine.dispose()


@command("migrate")
async def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    await run_migrations(settings)
    print("database is at the latest schema")
    return 0


@command("serve")
async def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here, not at the top: the other commands start without loading the web application.
    from aiohttp import web

    from contact_center.app import create_app
    from contact_center.observability.shutdown import begin_drain
    from contact_center.twilio_account import SANDBOX_CONTROL_TOKEN

    if not args.no_migrate:
        await run_migrations(settings)
    if args.demo:
        password = await ensure_demo_admin(settings)
        if password:
            print(f"demo admin created: login '{DEMO_ADMIN}', password '{password}' (shown once)", flush=True)
    app = create_app(settings)
    runner = web.AppRunner(app, shutdown_timeout=settings.server.shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, settings.server.host, settings.server.port)
    await site.start()
    print(f"contact-center listening on http://{settings.server.host}:{settings.server.port}", flush=True)
    if SANDBOX_CONTROL_TOKEN in app and not settings.sandbox.control_token.get_secret_value():
        print(
            f"sandbox control token: {app[SANDBOX_CONTROL_TOKEN]} (shown once; new at every start; "
            "contact-center sandbox call|sms --token, or set SANDBOX_CONTROL_TOKEN)",
            flush=True,
        )
    tune_for_service()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("shutting down")
        await begin_drain(app)
        if settings.server.drain_seconds:
            await asyncio.sleep(settings.server.drain_seconds)
    finally:
        await runner.cleanup()
    return 0


@command("create-agent")
async def cmd_create_agent(settings: Settings, args: argparse.Namespace) -> int:
    password = args.password or getpass.getpass("password: ")
    engine = create_engine(settings.database.url)
    hasher = Argon2Hasher(settings.security.password_time_cost, settings.security.password_memory_kib)
    try:
        async with engine.begin() as conn:
            from sqlalchemy.ext.asyncio import AsyncSession

            session = AsyncSession(bind=conn, expire_on_commit=False)
            agent = await create_agent(
                session,
                hasher,
                login=args.login,
                display_name=args.name or args.login,
                password=password,
                role=Role(args.role),
                team_id=args.team_id,
                skills=args.skill or [],
            )
            await session.flush()
            print(f"agent {agent.id} created: {agent.login} ({agent.role})")
    finally:
        await engine.dispose()
    return 0


@command("create-token")
async def cmd_create_token(settings: Settings, args: argparse.Namespace) -> int:
    engine = create_engine(settings.database.url)
    try:
        async with engine.begin() as conn:
            from sqlalchemy.ext.asyncio import AsyncSession

            session = AsyncSession(bind=conn, expire_on_commit=False)
            agent = await agent_by_login(session, args.login)
            if agent is None:
                print(f"error: no agent with login {args.login!r}", file=sys.stderr)
                return 1
            token, secret = await create_api_token(
                session, name=args.name, agent_id=agent.id, created_by_id=None
            )
            print(f"token {token.id} for {agent.login}: {secret}")
            print("store it now: only its hash is kept", file=sys.stderr)
    finally:
        await engine.dispose()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="contact-center", description=__doc__)
    parser.add_argument("--config", help="settings file (TOML) layered over config/default.toml")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--demo", action="store_true", help="create a demo admin on an empty database")
    serve.add_argument("--no-migrate", action="store_true", help="do not upgrade the schema before serving")
    sub.add_parser("migrate", help="upgrade the database schema to the latest revision")
    agent = sub.add_parser("create-agent", help="create an agent account")
    agent.add_argument("login")
    agent.add_argument("--name", help="display name")
    agent.add_argument("--role", choices=[r.value for r in Role], default=Role.AGENT.value)
    agent.add_argument("--team-id", type=int)
    agent.add_argument("--skill", action="append", help="a skill (repeat for several)")
    agent.add_argument("--password", help="password (asked for when omitted)")
    token = sub.add_parser("create-token", help="create an API token acting as an agent")
    token.add_argument("login", help="the agent whose rights the token carries")
    token.add_argument("--name", default="integration", help="what the token is for")
    add_customer_csv_commands(sub, command)
    add_campaign_commands(sub, command)
    add_sandbox_commands(sub, command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        return asyncio.run(COMMANDS[args.command](settings, args))
    except KeyboardInterrupt:
        return 0
    except CoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
