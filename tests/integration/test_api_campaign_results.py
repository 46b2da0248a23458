"""REST API: a campaign's activity (agents working it, calls in flight, the last hour's dials a
minute, abandonment over 24 hours and 30 days) and its results as a CSV file, with the campaign's
visibility."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from crm_core.db import UnitOfWorkFactory
from crm_core.models import CampaignAttempt, CampaignContact, DialOutcome
from crm_core.models.campaign import CampaignAgent, CampaignAnswerCount
from tests.conftest import SignIn, Staff
from tests.integration.campaign_support import customer, load, new_york, running_campaign

API = "/api/v1"


async def test_activity_and_csv_show_the_campaigns_last_hour_and_results(
    sign_in: SignIn, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    campaign = await running_campaign(uow_factory, staff.red_lead)
    for n in (1, 2):
        await customer(uow_factory, new_york(n))
    await load(uow_factory, staff.red_lead, campaign.id)
    now = datetime.now(UTC)
    minute = now.replace(second=0, microsecond=0)
    async with uow_factory() as uow:
        s = uow.session
        contact = (await s.execute(CampaignContact.__table__.select().limit(1))).first()
        assert contact is not None

        def dial(ago: timedelta, **fields: object) -> CampaignAttempt:
            return CampaignAttempt(
                campaign_id=campaign.id, contact_id=contact.id, started_at=now - ago, **fields
            )

        s.add_all(
            [
                dial(timedelta(seconds=10)),  # in flight, this minute
                dial(
                    timedelta(minutes=5, seconds=20),
                    ended_at=now - timedelta(minutes=3),
                    outcome=DialOutcome.HUMAN,
                    talk_seconds=120,
                    disposition="成交",
                    cost=Decimal("0.04"),
                ),
                dial(
                    timedelta(minutes=5, seconds=30),
                    ended_at=now - timedelta(minutes=5),
                    outcome=DialOutcome.HUMAN,
                    abandoned=True,
                ),
                dial(timedelta(hours=2), ended_at=now - timedelta(hours=2), outcome=DialOutcome.BUSY),
                CampaignAnswerCount(campaign_id=campaign.id, minute=minute - timedelta(hours=2), connected=3),
                CampaignAnswerCount(campaign_id=campaign.id, minute=minute - timedelta(days=3), abandoned=1),
                CampaignAgent(campaign_id=campaign.id, agent_id=staff.red_1.id, room="room-red-1"),
            ]
        )
        await uow.commit()

    lead = await sign_in(staff.red_lead)
    resp = await lead.get(f"{API}/campaigns/{campaign.id}/activity")
    activity = await resp.json()
    assert resp.status == 200, activity
    per_minute = activity["dials_per_minute"]
    assert len(per_minute) == 60 and sum(per_minute) == 3 == activity["dials_last_hour"]
    assert per_minute[59] == 1 and per_minute[54] == 2
    assert activity["calls_in_flight"] == 1 and activity["conversations_last_hour"] == 1
    # The minute counts: 3 connected 2 hours ago; 1 abandoned 3 days ago (only in the 30 days).
    assert activity["abandonment_24h"] == {
        "abandoned": 0,
        "live": 3,
        "rate": 0.0,
        "limit": 0.03,
        "predictive_allowed": False,
    }
    assert (activity["abandonment_30d"]["abandoned"], activity["abandonment_30d"]["live"]) == (1, 4)
    assert [(a["agent_id"], a["display_name"], a["state"]) for a in activity["agents"]] == [
        (staff.red_1.id, staff.red_1.display_name, "offline")
    ]

    resp = await lead.get(f"{API}/campaigns/{campaign.id}/results.csv")
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert f"campaign-{campaign.id}-results.csv" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows[0] == ["metric", "value"]
    values = dict(rows[1:])
    assert (values["dials"], values["live_answers"], values["conversations"], values["busy"]) == (
        "4",
        "2",
        "1",
        "1",
    )
    assert values["talk_seconds"] == "120" and values["disposition:成交"] == "1"
    assert values["contacts"] == "2" and values["roi"] == "-1.0000"

    # Other teams do not find it.
    blue = await sign_in(staff.blue_lead)
    for path in ("activity", "results.csv"):
        resp = await blue.get(f"{API}/campaigns/{campaign.id}/{path}")
        assert resp.status == 404, await resp.text()
