"""Every recorded Twilio messaging payload (tests/fixtures/twilio/sms), replayed signed against the
service: known shapes are stored, unknown parameters ignored, malformed ones refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from crm_core.db import UnitOfWorkFactory
from crm_core.models import SmsMessage, SmsSuppression
from crm_core.services.sms_outbound import queue_sms
from tests.conftest import Staff
from tests.support.sms import Twilio, customer_with_phone, sms_rows

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "twilio" / "sms"


def load(path: Path) -> tuple[str, int, dict[str, str]]:
    """(path, expected status, form parameters) of a fixture file."""
    headers = {}
    body = ""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            headers[key.strip()] = value.strip()
        elif line.strip():
            body = line.strip()
    return (
        headers.get("path", "/twilio/sms/inbound"),
        int(headers["expect"]),
        dict(parse_qsl(body, keep_blank_values=True)),
    )


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.form")), ids=lambda p: p.stem)
async def test_recorded_payload(
    fixture: Path, service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    path, status, params = load(fixture)
    customer_id = await customer_with_phone(uow_factory)
    if "outbox=1" in path:
        async with uow_factory() as uow:
            queued = await queue_sms(
                uow, customer_id=customer_id, to="+12025550143", from_="+15005550006", body="Hi"
            )
            await uow.commit()
        path = path.replace("outbox=1", f"outbox={queued.id}")
    resp = await Twilio(service).post(path, params)
    assert resp.status == status, await resp.text()
    rows = await sms_rows(uow_factory)
    if "malformed" in fixture.stem:
        assert all(r.message_sid is None for r in rows)
        return
    if fixture.stem.startswith("inbound"):
        (row,) = rows
        assert row.message_sid == params["MessageSid"] and row.body == params["Body"]
        assert len(row.media) == int(params.get("NumMedia", "0"))
        async with uow_factory() as uow:
            suppressed = list(await uow.session.scalars(select(SmsSuppression.phone)))
        assert suppressed == (["+12025550143"] if params["Body"].strip().upper() == "STOP" else [])
    elif fixture.stem != "status-unknown-message":
        async with uow_factory() as uow:
            row = await uow.session.scalar(
                select(SmsMessage).where(SmsMessage.message_sid == params["MessageSid"])
            )
        assert row is not None and row.status == params["MessageStatus"]
        assert row.error_code == (int(params["ErrorCode"]) if "ErrorCode" in params else None)


def test_every_endpoint_has_a_fixture() -> None:
    covered = {load(p)[0].split("?")[0].rsplit("/", 1)[-1] for p in FIXTURES.glob("*.form")}
    assert covered >= {"inbound", "status"}
