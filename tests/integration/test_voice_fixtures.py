"""Every recorded Twilio voice payload (tests/fixtures/twilio/voice), replayed signed against the
service: known shapes are answered, unknown parameters ignored, malformed ones refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from contact_center.appkeys import RUNTIME
from contact_center.routing.presence import AgentState
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Interaction
from tests.conftest import Staff
from tests.support.voice_calls import Twilio

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "twilio" / "voice"
ENDPOINTS = (
    "inbound",
    "status",
    "agent-leg",
    "dial-action",
    "queue-wait",
    "enqueue-action",
    "voicemail",
    "recording-status",
)


def load(path: Path) -> tuple[str, int, str | None, dict[str, str]]:
    """(path, expected status, expected TwiML verb or None, form parameters) of a fixture file."""
    headers = {}
    body = ""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            headers[key.strip()] = value.strip()
        elif line.strip():
            body = line.strip()
    endpoint = max((e for e in ENDPOINTS if path.stem.startswith(e)), key=len, default=None)
    url = headers.get("path") or f"/twilio/voice/{endpoint}"
    status, _, verb = headers["expect"].partition(" ")
    return url, int(status), verb or None, dict(parse_qsl(body, keep_blank_values=True))


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.form")), ids=lambda p: p.stem)
async def test_recorded_payload(
    fixture: Path,
    client: TestClient[Any, Any],
    settings: Settings,
    staff: Staff,
    uow_factory: UnitOfWorkFactory,
) -> None:
    twilio = Twilio(client, settings)
    await client.app[RUNTIME].presence.set(staff.red_1.id, AgentState.AVAILABLE)
    url, status, verb, params = load(fixture)
    if not fixture.stem.startswith("inbound") and "malformed" not in fixture.stem:
        # The call these callbacks are about.
        _, _, _, call = load(FIXTURES / "inbound.form")
        await twilio.twiml("/twilio/voice/inbound", call)
    resp = await twilio.post(url.replace("agent=1", f"agent={staff.red_1.id}"), params)
    assert resp.status == status, await resp.text()
    if verb is not None:
        document = ElementTree.fromstring(await resp.text())
        assert document.tag == "Response"
        if verb != "Response":
            assert document.iter(verb) is not None and any(True for _ in document.iter(verb)), (
                await resp.text()
            )
    if "malformed" in fixture.stem:
        async with uow_factory() as uow:
            assert await uow.session.scalar(select(func.count()).select_from(Interaction)) == 0


def test_every_endpoint_has_a_fixture() -> None:
    covered = {load(p)[0].split("?")[0].rsplit("/", 1)[-1] for p in FIXTURES.glob("*.form")}
    assert covered >= set(ENDPOINTS)
