"""The ``campaigns`` and ``dnc`` commands, run as the installed command runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sqlalchemy import select

from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import CampaignContact, DncSource, DoNotCall
from tests.conftest import Staff
from tests.integration.test_customer_csv import cli


def ok(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


async def test_a_campaign_is_created_loaded_from_a_csv_and_started(
    uow_factory: UnitOfWorkFactory, staff: Staff, settings: Settings, tmp_path: Path
) -> None:
    [campaign_id] = ok(cli(settings, "campaigns", "create", "Rappels 回访", "--caller-id", "+15005550006"))
    listed = tmp_path / "list.csv"
    listed.write_text(
        "display_name,phones,consent_voice\n王伟,+12125550100,true\nAda,+12125550101;+12125550102,\n"
        "Ada again,+12125550101,\nBroken,12,\n",
        encoding="utf-8",
    )
    done = cli(settings, "campaigns", "load-csv", campaign_id, str(listed))
    assert done.returncode == 1, done.stderr  # a row was rejected
    assert done.stdout.splitlines()[:2] == [
        "added: 2, already on the list: 1",
        "customers created: 2, updated: 0, duplicates: 1, rejected: 1",
    ]
    assert ok(cli(settings, "campaigns", "start", campaign_id)) == [f"{campaign_id}\trunning"]
    assert ok(cli(settings, "campaigns", "list", "--as", "red-lead")) == []
    [line] = ok(cli(settings, "campaigns", "list"))
    assert line.split("\t")[:2] == [campaign_id, "running"]
    refused = cli(settings, "campaigns", "start", campaign_id, "--as", "red-1")
    assert refused.returncode == 1 and "error:" in refused.stderr
    async with uow_factory() as uow:
        numbers = list(await uow.session.scalars(select(CampaignContact.e164).order_by(CampaignContact.id)))
    assert numbers == ["+12125550100", "+12125550101"]


async def test_the_do_not_call_list_is_kept_from_the_command_line(
    uow_factory: UnitOfWorkFactory, staff: Staff, settings: Settings, tmp_path: Path
) -> None:
    assert ok(cli(settings, "dnc", "add", "+1 212 555 0100")) == ["added"]
    numbers = tmp_path / "dnc.txt"
    numbers.write_text("+12125550101\n+12125550100\nnope\n", encoding="utf-8")
    done = cli(settings, "dnc", "import", str(numbers))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    # Once per source: the API's entry stays beside the file's.
    assert lines[0] == "added: 2, already on the list: 0, rejected: 1"
    assert lines[1].startswith("line 3: 'nope' is not a phone number")
    again = cli(settings, "dnc", "import", str(numbers))
    assert again.stdout.splitlines()[0] == "added: 0, already on the list: 2, rejected: 1"
    listed = [line.split("\t")[:2] for line in ok(cli(settings, "dnc", "list"))]
    assert sorted(listed) == [["+12125550100", "api"], ["+12125550100", "csv"], ["+12125550101", "csv"]]
    assert ok(cli(settings, "dnc", "remove", "+12125550100")) == ["removed: 2"]
    national = tmp_path / "national.txt"
    national.write_text("+12125550199\n", encoding="utf-8")
    assert cli(settings, "dnc", "import", str(national), "--national").returncode == 2
    assert ok(cli(settings, "dnc", "import", str(national), "--national", "--file-date", "2026-12-01")) == [
        "added: 1, already on the list: 0, rejected: 0"
    ]
    async with uow_factory() as uow:
        rows = {(r.e164, r.source) for r in await uow.session.scalars(select(DoNotCall))}
    assert rows == {("+12125550101", DncSource.CSV), ("+12125550199", DncSource.NATIONAL)}
