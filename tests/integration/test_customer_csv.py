"""Customer CSV import and export: the service, the CLI commands and the API routes."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import delete, select

from contact_center.appkeys import RUNTIME
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import AuditEntry, Customer, CustomerEmail, CustomerPhone
from crm_core.services import customer_import
from crm_core.services.customer_export import export_customers
from crm_core.services.customer_import import CsvFileError, ImportResult, import_customers
from crm_core.services.customers import create_customer, with_contact_points
from tests.conftest import RecordingPublisher, SignIn, Staff

API = "/api/v1"
ROOT = Path(__file__).resolve().parents[2]


def lines(*rows: str) -> io.BytesIO:
    return io.BytesIO("".join(row + "\r\n" for row in rows).encode("utf-8"))


async def run_import(uow_factory: UnitOfWorkFactory, data: io.BytesIO, **kwargs: Any) -> ImportResult:
    return await import_customers(uow_factory, data, actor=None, region="US", **kwargs)


async def export_text(uow_factory: UnitOfWorkFactory, **kwargs: Any) -> str:
    async with uow_factory() as uow:
        return "".join([chunk async for chunk in export_customers(uow.session, None, **kwargs)])


async def add_customer(uow_factory: UnitOfWorkFactory, name: str, **kwargs: Any) -> int:
    async with uow_factory() as uow:
        customer = await create_customer(uow, None, region="US", display_name=name, **kwargs)
        await uow.commit()
        return customer.id


async def customer_named(uow_factory: UnitOfWorkFactory, name: str) -> Customer:
    async with uow_factory() as uow:
        stmt = select(Customer).where(Customer.display_name == name).options(*with_contact_points())
        return (await uow.session.scalars(stmt)).one()


async def wipe_customers(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        for model in (CustomerPhone, CustomerEmail, Customer):
            await uow.session.execute(delete(model))
        await uow.commit()


MIXED_FILE = (
    "Display_Name,PHONES,emails,Owner,tags,company,Consent_SMS,custom.account_no",  # 1
    "Ada Lovelace,(202) 555-0143,ada@example.com,Red-1,vip;new,Analytical,yes,A-1",  # 2
    "Grace Hopper,202-555-0144 | 202-555-0145,,,,,,",  # 3
    "Ada L.,,ADA@example.com,,partner;vip,,,A-2",  # 4 same email as line 2
    "Grace Hopper,+1 202 555 0144",  # 5 same phone as line 3, nothing new
    "Someone,,known@example.com,,,NewCo",  # 6 an existing customer's email
    "",  # 7
    "Bad Phone,12",  # 8
    "Bad Email,,not-an-email",  # 9
    ",2025550199",  # 10
    "Nobody,,,ghost",  # 11
    "Mixed,2025550100,other@example.com",  # 12 phone of one customer, email of another
    "Bad Consent,,,,,,maybe",  # 13
    '"Multi',  # 14
    'Line",2025550177',  # 15
    "Bad Phone Again,555",  # 16
)


async def test_import_counts_merges_and_rejects_with_line_numbers(
    uow_factory: UnitOfWorkFactory, staff: Staff, published: RecordingPublisher
) -> None:
    known = await add_customer(uow_factory, "Kim Known", phones=["2025550100"], emails=["known@example.com"])
    await add_customer(uow_factory, "Olly Other", emails=["other@example.com"])
    published.events.clear()

    result = await run_import(uow_factory, lines(*MIXED_FILE))

    assert (result.created, result.updated, result.duplicates) == (3, 2, 1)
    reasons = {r.line: r.reason for r in result.rejected}
    assert sorted(reasons) == [8, 9, 10, 11, 12, 13, 16]
    assert reasons[8] == "invalid phone '12'"
    assert reasons[9] == "invalid email 'not-an-email'"
    assert reasons[10] == "display_name is missing"
    assert reasons[11] == "unknown owner login 'ghost'"
    assert reasons[12] == (
        "conflicting contact points: +12025550100, other@example.com belong to different customers"
    )
    assert reasons[13].startswith("bad consent value 'maybe' in consent_sms")
    assert reasons[16] == "invalid phone '555'"

    ada = await customer_named(uow_factory, "Ada Lovelace")
    assert [p.e164 for p in ada.phones] == ["+12025550143"]
    assert [e.address for e in ada.emails] == ["ada@example.com"]
    assert ada.owner_id == staff.red_1.id
    assert ada.tags == ["vip", "new", "partner"]
    assert ada.custom_fields == {"account_no": "A-1"}
    assert ada.consent == {"sms": True}
    assert ada.company == "Analytical"
    grace = await customer_named(uow_factory, "Grace Hopper")
    assert [p.e164 for p in grace.phones] == ["+12025550144", "+12025550145"]
    kim = await customer_named(uow_factory, "Kim Known")
    assert (kim.id, kim.company) == (known, "NewCo")
    assert [p.e164 for p in (await customer_named(uow_factory, "Multi\r\nLine")).phones] == ["+12025550177"]

    assert sorted(published.names()) == ["customer.created"] * 3 + ["customer.updated"] * 2
    async with uow_factory() as uow:
        audits = await uow.session.scalars(
            select(AuditEntry).where(AuditEntry.entity_id == known, AuditEntry.action == "updated")
        )
        assert [a.changes["company"] for a in audits] == [[None, "NewCo"]]


async def test_dry_run_counts_the_same_and_saves_nothing(
    uow_factory: UnitOfWorkFactory, staff: Staff, published: RecordingPublisher
) -> None:
    await add_customer(uow_factory, "Kim Known", phones=["2025550100"], emails=["known@example.com"])
    await add_customer(uow_factory, "Olly Other", emails=["other@example.com"])
    published.events.clear()

    result = await run_import(uow_factory, lines(*MIXED_FILE), dry_run=True, batch_size=2)

    assert (result.created, result.updated, result.duplicates, len(result.rejected)) == (3, 2, 1, 7)
    assert published.events == []
    async with uow_factory() as uow:
        names = await uow.session.scalars(select(Customer.display_name).order_by(Customer.id))
        assert list(names) == ["Kim Known", "Olly Other"]
        kim = await uow.session.scalar(select(Customer.company).where(Customer.display_name == "Kim Known"))
        assert kim is None


DUPLICATES_FILE = (
    "display_name,phones,emails,tags",
    "First,2025550101,,a",
    "Second,2025550102,,",
    "First Again,2025550101,first@example.com;first@example.org,",
    "Second,2025550102,,",
    "First Once More,,first@example.org,b",
)


@pytest.mark.parametrize("batch_size", [1, 500])
async def test_a_batch_gives_the_outcome_of_rows_taken_one_by_one(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher, batch_size: int
) -> None:
    published.events.clear()
    result = await run_import(uow_factory, lines(*DUPLICATES_FILE), batch_size=batch_size)
    assert (result.created, result.updated, result.duplicates, result.rejected) == (2, 2, 1, [])
    first = await customer_named(uow_factory, "First")
    assert first.tags == ["a", "b"]
    assert [e.address for e in first.emails] == ["first@example.com", "first@example.org"]
    second = await customer_named(uow_factory, "Second")
    assert first.id < second.id  # created in the file's order
    assert sorted(published.names()) == ["customer.created"] * 2 + ["customer.updated"] * 2
    async with uow_factory() as uow:
        created = await uow.session.scalars(
            select(AuditEntry).where(
                AuditEntry.entity_type == "customer",
                AuditEntry.action == "created",
                AuditEntry.entity_id.in_([first.id, second.id]),
            )
        )
        snapshots = {a.entity_id: a.changes for a in created}
    assert snapshots[first.id]["display_name"] == "First" and snapshots[first.id]["tags"] == ["a"]
    assert snapshots[second.id]["tags"] == [] and snapshots[second.id]["owner_id"] is None


async def test_a_batch_that_clashes_after_its_lookup_is_imported_row_by_row(
    uow_factory: UnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = await add_customer(uow_factory, "Kim Known", phones=["2025550100"])

    async def nothing_taken(self: Any, phones: list[str], emails: list[str]) -> set[str]:
        return set()  # as if the number had been added by someone else after the lookup

    monkeypatch.setattr(customer_import._Importer, "_taken", nothing_taken)
    data = lines("display_name,phones,company", "New One,2025550111,", "Kim Again,2025550100,KimCo")
    result = await run_import(uow_factory, data)
    assert (result.created, result.updated, result.duplicates, result.rejected) == (1, 1, 0, [])
    kim = await customer_named(uow_factory, "Kim Known")
    assert (kim.id, kim.company) == (known, "KimCo")
    assert [p.e164 for p in (await customer_named(uow_factory, "New One")).phones] == ["+12025550111"]


async def test_unreadable_lines_are_rejected_alone(uow_factory: UnitOfWorkFactory) -> None:
    data = io.BytesIO(
        b"display_name,phones\n"
        b"Zo\xe9,2025550143\n"
        b"Nul\x00,2025550144\n"
        b"Extra,2025550145,surplus\n"
        b"Trailing Empty Cells,2025550146,,\n"
        b",,\n"
        b"Fine,2025550147\n"
    )
    result = await run_import(uow_factory, data)
    assert result.created == 2
    assert [(r.line, r.reason) for r in result.rejected] == [
        (2, "the line is not UTF-8 text"),
        (3, "the row contains a NUL character"),
        (4, "3 values but the header has 2 columns"),
    ]


async def test_bad_header_is_refused_before_any_row(uow_factory: UnitOfWorkFactory) -> None:
    with pytest.raises(CsvFileError, match=r"unknown columns: 'foo', 'Bar Baz'; known columns are"):
        await run_import(uow_factory, lines("display_name,foo,phones,Bar Baz", "Ada,1,2025550143,2"))
    with pytest.raises(CsvFileError, match="the display_name column is missing"):
        await run_import(uow_factory, lines("company,phones", "Acme,2025550143"))
    with pytest.raises(CsvFileError, match="the file is empty"):
        await run_import(uow_factory, lines())
    with pytest.raises(CsvFileError, match="unknown owner login 'nobody'"):
        await run_import(uow_factory, lines("display_name", "Ada"), default_owner="nobody")
    async with uow_factory() as uow:
        assert list(await uow.session.scalars(select(Customer.id))) == []


async def test_export_then_import_into_an_empty_database_gives_the_same_customers(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    source = lines(
        "display_name,company,phones,emails,owner,tags,segment,timezone,preferred_language,"
        "consent_voice,consent_sms,consent_email,consent_chat,custom.account_no,custom.Tier",
        'Zoë Ådahl,"Acme, ""Ltd""",2025550143;+44 20 7946 0958,zoe@example.com|z@example.org,red-1,'
        "vip;eu,enterprise,Europe/Stockholm,sv,yes,no,1,0,A-1,gold",
        "=SUM(A1),+danger,,,,,-minus,,,,,,,@at,''=quoted",
        "No Contact Points,,,,blue-1,,,,,,,true,,,",
    )
    first = await run_import(uow_factory, source)
    assert (first.created, first.rejected) == (3, [])
    merged = await add_customer(uow_factory, "Merged Away", phones=["2025550199"])
    async with uow_factory() as uow:
        customer = await uow.session.get(Customer, merged)
        assert customer is not None
        customer.merged_into_id = (await customer_named(uow_factory, "No Contact Points")).id
        await uow.commit()

    exported = await export_text(uow_factory, batch_size=2)
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [r["display_name"] for r in rows] == ["Zoë Ådahl", "'=SUM(A1)", "No Contact Points"]
    assert rows[0]["phones"] == "+12025550143;+442079460958"
    assert rows[0]["company"] == 'Acme, "Ltd"'
    assert (rows[1]["company"], rows[1]["segment"]) == ("'+danger", "'-minus")
    assert (rows[1]["custom.account_no"], rows[1]["custom.Tier"]) == ("'@at", "''=quoted")
    assert rows[2]["owner"] == "blue-1"

    await wipe_customers(uow_factory)
    again = await run_import(uow_factory, io.BytesIO(exported.encode("utf-8")))
    assert (again.created, again.updated, again.duplicates, again.rejected) == (3, 0, 0, [])
    assert await export_text(uow_factory) == exported
    formula = await customer_named(uow_factory, "=SUM(A1)")
    assert (formula.company, formula.custom_fields) == ("+danger", {"account_no": "@at", "Tier": "'=quoted"})


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database.url,
        "SECRET_KEY": settings.security.secret_key.get_secret_value(),
        "CONTACT_CENTER__SECURITY__VAR_DIR": str(settings.security.var_dir),
        "CONTACT_CENTER__CRM__DEFAULT_REGION": settings.crm.default_region,
        "REDIS_URL": settings.redis.url,
        "REDIS_KEY_PREFIX": settings.redis.key_prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "contact_center.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_cli_import_exit_codes_and_export(
    uow_factory: UnitOfWorkFactory, staff: Staff, settings: Settings, tmp_path: Path
) -> None:
    good = tmp_path / "good.csv"
    good.write_text("display_name,phones\nAda,2025550143\nAda again,202 555 0143\n", encoding="utf-8-sig")
    done = cli(settings, "import-customers", str(good), "--owner", "red-2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["created: 1, updated: 0, duplicates: 1, rejected: 0"]

    bad = tmp_path / "bad.csv"
    bad.write_text("display_name,phones\nGrace,2025550144\nBroken,12\n", encoding="utf-8")
    done = cli(settings, "import-customers", str(bad))
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        "created: 1, updated: 0, duplicates: 0, rejected: 1",
        "line 3: invalid phone '12'",
    ]

    out = tmp_path / "out.csv"
    done = cli(settings, "export-customers", "--output", str(out))
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert [(r["display_name"], r["phones"], r["owner"]) for r in rows] == [
        ("Ada", "+12025550143", "red-2"),
        ("Grace", "+12025550144", ""),
    ]


async def test_api_import_needs_admin_or_supervisor(
    client: TestClient[Any, Any], staff: Staff, sign_in: SignIn
) -> None:
    body = "display_name,phones,owner\nAda,2025550143,\nBlue Owned,2025550144,blue-1\nBroken,12,\n"
    headers = {"Content-Type": "text/csv"}
    agent = await sign_in(staff.red_1)
    resp = await agent.post(f"{API}/customers/import", data=body, headers=headers)
    assert resp.status == 403, await resp.text()

    lead = await sign_in(staff.red_lead)
    resp = await lead.post(f"{API}/customers/import", data=body, headers=headers)
    report = await resp.json()
    assert resp.status == 200, report
    assert (report["created"], report["updated"], report["duplicates"]) == (1, 0, 0)
    assert [r["line"] for r in report["rejected"]] == [3, 4]
    assert "your team" in report["rejected"][0]["reason"]

    admin = await sign_in(staff.admin)
    resp = await admin.post(f"{API}/customers/import", data=body, headers=headers)
    report = await resp.json()
    assert resp.status == 200, report
    assert report == {
        "created": 1,
        "updated": 0,
        "duplicates": 1,
        "rejected": [{"line": 4, "reason": "invalid phone '12'"}],
    }

    resp = await lead.post(
        f"{API}/customers/import", data="display_name,phones\nX,2025550144\n", headers=headers
    )
    report = await resp.json()
    assert report["rejected"][0]["reason"] == "its phone or email already belongs to another customer", report

    resp = await admin.post(f"{API}/customers/import", data=body, headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    resp = await admin.post(f"{API}/customers/import", data="display_name,nope\n", headers=headers)
    error = (await resp.json())["error"]
    assert (resp.status, error["code"]) == (422, "invalid_input")
    assert "'nope'" in error["message"]
    limit = client.app[RUNTIME].settings.server.max_body_bytes
    resp = await admin.post(f"{API}/customers/import", data="x" * (limit + 1), headers=headers)
    assert resp.status == 413


async def test_api_export_lists_only_visible_customers(
    client: TestClient[Any, Any], uow_factory: UnitOfWorkFactory, staff: Staff, sign_in: SignIn
) -> None:
    await add_customer(uow_factory, "Red Owned", owner_id=staff.red_1.id, phones=["2025550143"])
    await add_customer(uow_factory, "Blue Owned", owner_id=staff.blue_1.id)
    await add_customer(uow_factory, "In The Pool", emails=["pool@example.com"])

    agent = await sign_in(staff.red_1)
    resp = await agent.get(f"{API}/customers/export")
    text = await resp.text()
    assert resp.status == 200, text
    assert resp.content_type == "text/csv"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="customers.csv"'
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["display_name"], r["owner"]) for r in rows] == [("Red Owned", "red-1"), ("In The Pool", "")]

    admin = await sign_in(staff.admin)
    rows = list(csv.DictReader(io.StringIO(await (await admin.get(f"{API}/customers/export")).text())))
    assert [r["display_name"] for r in rows] == ["Red Owned", "Blue Owned", "In The Pool"]


async def test_openapi_lists_the_csv_routes(client: TestClient[Any, Any]) -> None:
    paths = (await (await client.get("/api/openapi.json")).json())["paths"]
    import_op = paths[f"{API}/customers/import"]["post"]
    assert "text/csv" in import_op["requestBody"]["content"]
    assert "text/csv" in paths[f"{API}/customers/export"]["get"]["responses"]["200"]["content"]


async def test_unknown_time_zone_is_rejected_with_its_line(uow_factory: UnitOfWorkFactory) -> None:
    result = await run_import(
        uow_factory,
        lines("display_name,timezone", "Ada,Europe/London", "Bob,Mars/Olympus_Mons", "Cy,America/New_York"),
    )
    assert result.created == 2
    [rejected] = result.rejected
    assert rejected.line == 3
    assert "unknown time zone 'Mars/Olympus_Mons'" in rejected.reason
