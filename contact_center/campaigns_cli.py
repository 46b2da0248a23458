"""The ``campaigns`` and ``dnc`` commands: campaigns (list, create, load a CSV or customers, start,
pause, stop) and the company's do-not-call list (add, import, list, remove), acting as an agent
given by login (``--as``, the admin by default) with that agent's rights."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from contact_center.campaigns.desk import CampaignDesk, account_numbers
from contact_center.customer_csv_cli import _units_of_work
from contact_center.settings import Settings
from crm_core.clock import SystemClock
from crm_core.db import UnitOfWorkFactory
from crm_core.errors import NotFound
from crm_core.models import CampaignMode, CampaignStatus
from crm_core.rules.regulatory_profile import PROFILES
from crm_core.services.agents import agent_by_login
from crm_core.services.call_lists import ListLoad
from crm_core.visibility import Viewer

if TYPE_CHECKING:
    from contact_center.cli import Command

STATUSES = {"start": CampaignStatus.RUNNING, "pause": CampaignStatus.PAUSED, "stop": CampaignStatus.STOPPED}


async def _viewer(uows: UnitOfWorkFactory, login: str) -> Viewer:
    async with uows() as uow:
        agent = await agent_by_login(uow.session, login)
    if agent is None:
        raise NotFound(f"no agent with the login {login!r} (give one with --as)")
    return Viewer.of(agent)


def _progress(what: str, console: Console) -> Progress:
    return Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


def _count_lines(path: Path) -> int:
    with path.open("rb") as file:
        return sum(1 for _ in file)


def _print_load(result: ListLoad) -> None:
    print(f"added: {result.added}, already on the list: {result.already}")
    if result.imported is not None:
        imported = result.imported
        print(
            f"customers created: {imported.created}, updated: {imported.updated}, "
            f"duplicates: {imported.duplicates}, rejected: {len(imported.rejected)}"
        )
        for rejected in imported.rejected:
            print(f"line {rejected.line}: {rejected.reason}")


async def cmd_campaigns(settings: Settings, args: argparse.Namespace) -> int:
    async with _units_of_work(settings) as uows:
        desk = CampaignDesk(uows, SystemClock(), settings.crm.default_region, account_numbers(settings))
        viewer = await _viewer(uows, args.acting_as)
        action = args.campaigns_command
        if action == "list":
            for view in await desk.visible(viewer):
                c = view.campaign
                print(f"{c.id}\t{c.status.value}\t{c.mode.value}\t{c.caller_id}\t{c.name}")
            return 0
        if action == "create":
            fields = {"name": args.name, "caller_id": args.caller_id, "mode": args.mode}
            fields |= {"regulatory_profile": args.profile}
            if args.team_id is not None:
                fields["team_id"] = args.team_id
            view = await desk.create(viewer, fields)
            print(view.campaign.id)
            return 0
        if action in STATUSES:
            view = await desk.set_status(viewer, args.campaign_id, STATUSES[action])
            print(f"{view.campaign.id}\t{view.campaign.status.value}")
            return 0
        if action == "load-customers":
            filters = {k: v for k, v in (("q", args.q), ("owner_id", args.owner_id)) if v is not None}
            if args.pool:
                filters["pool"] = True
            _print_load(await desk.load_customers(viewer, args.campaign_id, filters))
            return 0
        return await _load_csv(desk, viewer, args)


async def _load_csv(desk: CampaignDesk, viewer: Viewer, args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        rows = max(0, _count_lines(path) - 1)
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    console = Console(stderr=True)
    with _progress("loading", console) as progress:
        task = progress.add_task("load", total=rows)
        result = await desk.load_csv(
            viewer,
            args.campaign_id,
            lambda: path.open("rb"),
            default_owner=args.owner,
            progress=lambda n: progress.advance(task, n),
        )
    _print_load(result)
    rejected = result.imported.rejected if result.imported is not None else []
    return 1 if rejected else 0


def _file_lines(path: Path, advance: Callable[[int], None]) -> Iterator[str]:
    with path.open(encoding="utf-8-sig") as file:
        for line in file:
            advance(1)
            yield line


async def cmd_dnc(settings: Settings, args: argparse.Namespace) -> int:
    async with _units_of_work(settings) as uows:
        desk = CampaignDesk(uows, SystemClock(), settings.crm.default_region, account_numbers(settings))
        viewer = await _viewer(uows, args.acting_as)
        action = args.dnc_command
        if action == "add":
            new = await desk.dnc_add(viewer, args.number)
            print("added" if new else "already on the list")
            return 0
        if action == "remove":
            print(f"removed: {await desk.dnc_remove(viewer, args.number)}")
            return 0
        if action == "list":
            page = await desk.dnc_list(limit=args.limit, offset=0, national=bool(args.national))
            for entry in page.items:
                print(f"{entry.e164}\t{entry.source.value}\t{entry.added_at.isoformat()}")
            print(f"total: {page.total}", file=sys.stderr)
            return 0
        path = Path(args.file)
        try:
            total = _count_lines(path)
        except OSError as exc:
            print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
        national_date = None
        if args.national:
            try:
                national_date = date.fromisoformat(args.file_date or "")
            except ValueError:
                print("error: the national file needs --file-date YYYY-MM-DD", file=sys.stderr)
                return 2
        console = Console(stderr=True)
        with _progress("importing", console) as progress:
            task = progress.add_task("import", total=total)
            added, already, rejected, warnings = await desk.dnc_import(
                viewer, _file_lines(path, lambda n: progress.advance(task, n)), national_date=national_date
            )
        print(f"added: {added}, already on the list: {already}, rejected: {len(rejected)}")
        for line, reason in rejected:
            print(f"line {line}: {reason}")
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return 1 if rejected else 0


def add_campaign_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    register: Callable[[str], Callable[[Command], Command]],
) -> None:
    """Add ``campaigns`` and ``dnc`` (each with its own sub-commands) through ``register``."""
    acting = argparse.ArgumentParser(add_help=False)
    acting.add_argument(
        "--as",
        dest="acting_as",
        metavar="LOGIN",
        default=os.environ.get("CONTACT_CENTER_AS", "admin"),
        help="the agent whose rights the command uses (default: admin)",
    )
    campaigns = sub.add_parser("campaigns", help="outbound campaigns")
    actions = campaigns.add_subparsers(dest="campaigns_command", required=True)
    actions.add_parser("list", parents=[acting], help="the campaigns one may see")
    create = actions.add_parser("create", parents=[acting], help="create a draft campaign; prints its id")
    create.add_argument("name")
    create.add_argument("--caller-id", required=True, help="one of the account's numbers")
    create.add_argument(
        "--mode", choices=[m.value for m in CampaignMode], default=CampaignMode.PROGRESSIVE.value
    )
    create.add_argument("--profile", choices=list(PROFILES), default="us", help="regulatory profile")
    create.add_argument("--team-id", type=int)
    load_csv = actions.add_parser(
        "load-csv", parents=[acting], help="import a customer CSV and put each row's first phone on the list"
    )
    load_csv.add_argument("campaign_id", type=int)
    load_csv.add_argument("file", help="UTF-8 customer CSV (the import-customers columns)")
    load_csv.add_argument("--owner", metavar="LOGIN", help="owner of new customers whose owner cell is empty")
    load_customers = actions.add_parser(
        "load-customers", parents=[acting], help="put the customers matching the filters on the list"
    )
    load_customers.add_argument("campaign_id", type=int)
    load_customers.add_argument("--q", help="name, company, email prefix or phone")
    load_customers.add_argument("--owner-id", type=int)
    load_customers.add_argument("--pool", action="store_true", help="only customers without an owner")
    for verb in STATUSES:
        status = actions.add_parser(verb, parents=[acting], help=f"{verb} the campaign")
        status.add_argument("campaign_id", type=int)

    dnc = sub.add_parser("dnc", help="the company's do-not-call list and the national file")
    dnc_actions = dnc.add_subparsers(dest="dnc_command", required=True)
    for verb, text in (("add", "put a number on the company's list"), ("remove", "take it off")):
        number = dnc_actions.add_parser(verb, parents=[acting], help=text)
        number.add_argument("number", help="in E.164 (+ and country code)")
    listing = dnc_actions.add_parser("list", parents=[acting], help="the newest entries")
    listing.add_argument("--national", action="store_true", help="the national list instead of the company's")
    listing.add_argument("--limit", type=int, default=100)
    imp = dnc_actions.add_parser("import", parents=[acting], help="import a file of numbers, one per line")
    imp.add_argument("file")
    imp.add_argument("--national", action="store_true", help="replace the national list with this file")
    imp.add_argument("--file-date", help="the national file's date (YYYY-MM-DD)")
    register("campaigns")(cmd_campaigns)
    register("dnc")(cmd_dnc)
