"""The do-not-call lists and the dial-time check on the database: numbers added (validated,
audited), the national file imported whole with its date (warned when stale), and every reason a
number is not dialable now."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from crm_core.db import UnitOfWorkFactory
from crm_core.errors import InvalidInput
from crm_core.models import AuditEntry, DncSource, DoNotCall
from crm_core.rules.regulatory_profile import UK, US
from crm_core.services import do_not_call
from crm_core.services.customers import create_customer
from crm_core.services.dialable import RefusalCode, dialable

NOON_NEW_YORK = datetime(2026, 12, 7, 17, tzinfo=UTC)
NEW_YORK = "+12125550100"
OTHER = "+12125550111"
LONDON = "+442079460000"


async def customer(uow_factory: UnitOfWorkFactory, phone: str, **fields: Any) -> int:
    async with uow_factory() as uow:
        created = await create_customer(
            uow, None, region="US", display_name="Grace Hopper", phones=[phone], **fields
        )
        await uow.commit()
    return created.id


async def dnc_rows(uow_factory: UnitOfWorkFactory) -> list[tuple[str, str, date | None]]:
    async with uow_factory() as uow:
        rows = await uow.session.scalars(select(DoNotCall).order_by(DoNotCall.e164, DoNotCall.source))
        return [(r.e164, r.source.value, r.file_date) for r in rows]


async def test_numbers_are_added_in_e164_once_per_source_and_audited(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        assert await do_not_call.add(uow, " +1 (212) 555-0100 ", DncSource.API, NOON_NEW_YORK, actor_id=None)
        assert not await do_not_call.add(uow, NEW_YORK, DncSource.API, NOON_NEW_YORK)
        assert await do_not_call.add(uow, NEW_YORK, DncSource.OPT_OUT_DIGIT, NOON_NEW_YORK)
        await uow.commit()
    assert await dnc_rows(uow_factory) == [(NEW_YORK, "api", None), (NEW_YORK, "opt-out-digit", None)]
    async with uow_factory() as uow:
        entries = list(
            await uow.session.scalars(select(AuditEntry).where(AuditEntry.entity_type == "do_not_call"))
        )
        found = await do_not_call.check(uow.session, NEW_YORK)
    assert [e.changes for e in entries] == [
        {"e164": NEW_YORK, "source": "api"},
        {"e164": NEW_YORK, "source": "opt-out-digit"},
    ]
    assert found.internal == [DncSource.API, DncSource.OPT_OUT_DIGIT] and found.national is None


@pytest.mark.parametrize("number", ["2125550100", "+1 212 555", "+1 000 555 0100", "call me"])
async def test_invalid_numbers_are_refused_clearly(uow_factory: UnitOfWorkFactory, number: str) -> None:
    async with uow_factory() as uow:
        with pytest.raises(InvalidInput, match="phone number") as refused:
            await do_not_call.add(uow, number, DncSource.API, NOON_NEW_YORK)
    assert refused.value.field == "number"
    assert await dnc_rows(uow_factory) == []


async def test_the_national_file_replaces_the_last_one_and_reports_bad_lines(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        await do_not_call.add(uow, OTHER, DncSource.CSV, NOON_NEW_YORK)
        first = await do_not_call.import_national(uow, [OTHER, NEW_YORK], date(2026, 11, 20), NOON_NEW_YORK)
        await uow.commit()
    assert first.imported == 2 and first.warnings == []
    lines = ["# registry extract", NEW_YORK, "", "+1 212 555 0100", "12345", LONDON]
    async with uow_factory() as uow:
        second = await do_not_call.import_national(uow, lines, date(2026, 12, 1), NOON_NEW_YORK)
        await uow.commit()
    assert second.imported == 2
    assert [n for n, _ in second.rejected] == [5]
    assert await dnc_rows(uow_factory) == [
        (NEW_YORK, "national", date(2026, 12, 1)),
        (OTHER, "csv", None),
        (LONDON, "national", date(2026, 12, 1)),
    ]


async def test_a_national_file_older_than_31_days_is_imported_with_a_warning(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        fresh = await do_not_call.import_national(uow, [NEW_YORK], date(2026, 11, 6), NOON_NEW_YORK)
        assert fresh.warnings == []  # 31 days old
        stale = await do_not_call.import_national(uow, [NEW_YORK], date(2026, 11, 5), NOON_NEW_YORK)
        await uow.commit()
    assert len(stale.warnings) == 1 and "32 days ago" in stale.warnings[0]
    async with uow_factory() as uow:
        result = await dialable(uow.session, OTHER, US, NOON_NEW_YORK)
    assert any("older than 31 days" in w for w in result.warnings)


async def test_a_consenting_customer_in_hours_and_on_no_list_is_dialable(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await customer(uow_factory, NEW_YORK, consent={"voice": True})
    async with uow_factory() as uow:
        await do_not_call.import_national(uow, [OTHER], date(2026, 12, 1), NOON_NEW_YORK)
        await uow.commit()
        result = await dialable(uow.session, NEW_YORK, US, NOON_NEW_YORK)
    assert result.dialable and result.reasons == [] and result.warnings == []


async def test_every_reason_is_given_at_once(uow_factory: UnitOfWorkFactory) -> None:
    await customer(uow_factory, NEW_YORK, consent={"voice": False}, timezone="America/Los_Angeles")
    async with uow_factory() as uow:
        await do_not_call.add(uow, NEW_YORK, DncSource.DISPOSITION, NOON_NEW_YORK)
        await do_not_call.import_national(uow, [NEW_YORK], date(2026, 12, 1), NOON_NEW_YORK)
        await uow.commit()
    early = NOON_NEW_YORK - timedelta(hours=3, minutes=30)  # 05:30 in Los Angeles
    async with uow_factory() as uow:
        result = await dialable(uow.session, "+1 212-555-0100", US, early)
    assert not result.dialable and result.e164 == NEW_YORK
    by_code = {r.code: r for r in result.reasons}
    assert list(by_code) == [
        RefusalCode.OUTSIDE_CALLING_HOURS,
        RefusalCode.INTERNAL_DNC,
        RefusalCode.NATIONAL_DNC,
        RefusalCode.NO_VOICE_CONSENT,
    ]
    window = by_code[RefusalCode.OUTSIDE_CALLING_HOURS]
    assert window.details == {
        "zones": ["America/Los_Angeles"],
        "zone_source": "customer",
        "next_callable": "2026-12-07T16:00:00+00:00",
    }
    assert result.next_callable == datetime(2026, 12, 7, 16, tzinfo=UTC)
    assert by_code[RefusalCode.INTERNAL_DNC].details == {"sources": ["disposition"]}
    assert by_code[RefusalCode.NATIONAL_DNC].details == {"file_date": "2026-12-01"}
    assert "refused calls" in by_code[RefusalCode.NO_VOICE_CONSENT].message


async def test_consent_must_be_given_and_a_number_nobody_holds_has_none(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await customer(uow_factory, NEW_YORK)
    async with uow_factory() as uow:
        silent = await dialable(uow.session, NEW_YORK, US, NOON_NEW_YORK)
        stranger = await dialable(uow.session, OTHER, US, NOON_NEW_YORK)
    assert [r.code for r in silent.reasons] == [RefusalCode.NO_VOICE_CONSENT]
    assert "has not given consent" in silent.reasons[0].message
    assert [r.code for r in stranger.reasons] == [RefusalCode.NO_VOICE_CONSENT]
    assert "no customer holds this number" in stranger.reasons[0].message
    assert stranger.warnings == ["no national do-not-call file has been imported"]


async def test_the_uk_profile_refuses_a_number_abandoned_within_72_hours(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await customer(uow_factory, LONDON, consent={"voice": True})
    at = datetime(2026, 12, 7, 12, tzinfo=UTC)
    abandoned = at - timedelta(hours=70)
    async with uow_factory() as uow:
        locked = await dialable(uow.session, LONDON, UK, at, last_abandoned_at=abandoned)
        reserved = await dialable(
            uow.session, LONDON, UK, at, last_abandoned_at=abandoned, agent_reserved=True
        )
        later = await dialable(uow.session, LONDON, UK, at + timedelta(hours=2), last_abandoned_at=abandoned)
        us_rule = await dialable(uow.session, LONDON, US, at, last_abandoned_at=abandoned)
    assert [r.code for r in locked.reasons] == [RefusalCode.ABANDONED_RECENTLY]
    assert locked.reasons[0].details["until"] == "2026-12-07T14:00:00+00:00"
    assert reserved.dialable and later.dialable and us_rule.dialable


@pytest.mark.parametrize(
    ("number", "code"),
    [("+80012345678", RefusalCode.UNKNOWN_TIME_ZONE), ("555-0100", RefusalCode.INVALID_NUMBER)],
)
async def test_unplaceable_and_invalid_numbers_are_refused_with_why(
    uow_factory: UnitOfWorkFactory, number: str, code: RefusalCode
) -> None:
    async with uow_factory() as uow:
        result = await dialable(uow.session, number, US, NOON_NEW_YORK)
    assert not result.dialable and result.reasons[0].code is code
