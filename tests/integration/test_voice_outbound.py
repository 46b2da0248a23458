"""The webhooks of placed calls stand beside the inbound ones: signed, parsed and answered. Nothing
places calls yet, so an answered call is hung up and its progress is only logged."""

from __future__ import annotations

from xml.etree import ElementTree

from sqlalchemy import func, select

from channels.twilio.outbound import OutboundUrls
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Interaction
from tests.support.voice_calls import CALLER, Twilio, call_sid

OUTBOUND = "/twilio/voice/outbound"


def test_the_urls_given_when_placing_a_call(settings: Settings) -> None:
    urls = OutboundUrls(settings.server.public_base_url + "/")
    base = settings.server.public_base_url.rstrip("/") + OUTBOUND
    assert (urls.answer, urls.status, urls.amd) == (f"{base}/answer", f"{base}/status", f"{base}/amd")


async def test_an_answered_placed_call_is_hung_up_and_its_callbacks_answered(
    twilio: Twilio, uow_factory: UnitOfWorkFactory
) -> None:
    sid = call_sid()
    placed = {"CallSid": sid, "From": "+15005550006", "To": CALLER, "Direction": "outbound-api"}
    answer = await twilio.twiml(
        f"{OUTBOUND}/answer", {**placed, "CallStatus": "in-progress", "AnsweredBy": "human"}
    )
    assert [child.tag for child in answer] == ["Hangup"]
    for status in ("ringing", "in-progress", "completed"):
        resp = await twilio.post(
            f"{OUTBOUND}/status", {**placed, "CallStatus": status, "SequenceNumber": "1"}
        )
        assert resp.status == 200 and ElementTree.fromstring(await resp.text()).tag == "Response"
    amd = {"CallSid": sid, "AnsweredBy": "machine_end_beep", "MachineDetectionDuration": "2300"}
    assert (await twilio.post(f"{OUTBOUND}/amd", amd)).status == 200
    async with uow_factory() as uow:  # nothing is logged until the dialer does so
        assert await uow.session.scalar(select(func.count()).select_from(Interaction)) == 0


async def test_placed_call_webhooks_are_signed_and_checked(twilio: Twilio) -> None:
    params = {"CallSid": call_sid(), "From": "+15005550006", "To": CALLER, "CallStatus": "in-progress"}
    for name in ("answer", "status", "amd"):
        assert (
            await twilio.post(f"{OUTBOUND}/{name}", params, signature="bm90IHRoZSBzaWduYXR1cmU=")
        ).status == 403
    assert (await twilio.post(f"{OUTBOUND}/answer", {**params, "CallSid": "not-a-sid"})).status == 400
    assert (await twilio.post(f"{OUTBOUND}/status", {**params, "CallStatus": "exploded"})).status == 400
    assert (await twilio.post(f"{OUTBOUND}/amd", {**params, "MachineDetectionDuration": "-1"})).status == 400
