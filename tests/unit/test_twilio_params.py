"""Twilio's form parameters at the edge: SIDs, bounded numbers, RFC 2822 dates, NULs, and caller
ids that name nobody."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from multidict import MultiDict

from channels.twilio import form, voice_params
from crm_core.errors import InvalidInput
from crm_core.rules.caller_id import names_nobody


def params(**values: str) -> MultiDict[str]:
    return MultiDict(values)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Mon, 07 Dec 2026 10:00:00 -0000", datetime(2026, 12, 7, 10, tzinfo=UTC)),
        ("Mon, 07 Dec 2026 10:00:00 +0000", datetime(2026, 12, 7, 10, tzinfo=UTC)),
        (
            "Mon, 07 Dec 2026 10:00:00 +0200",
            datetime(2026, 12, 7, 10, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("Mon, 07 Dec 2026 10:00:00 +9999", None),
        ("Mon, 07 Dec 99999 10:00:00 +0000", None),
        ("yesterday", None),
        ("", None),
    ],
)
def test_timestamps_are_aware_or_none(raw: str, expected: datetime | None) -> None:
    assert form.timestamp(params(Timestamp=raw), "Timestamp") == expected


@pytest.mark.parametrize("raw", ["99999999999999999999", "2147483648", "-1", "1e3", "12a", " ١٢ ", "9" * 30])
def test_numbers_outside_an_integer_column_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        form.number(params(CallDuration=raw), "CallDuration")


def test_numbers_within_an_integer_column_are_read() -> None:
    assert form.number(params(CallDuration="2147483647"), "CallDuration") == 2147483647
    assert form.number(params(CallDuration=" 0 "), "CallDuration") == 0
    assert form.number(params(), "CallDuration") is None


@pytest.mark.parametrize(
    "raw", ["CA" + "0" * 298, "CA123", "SM" + "0" * 32, "CA" + "g" * 32, "ca" + "0" * 32]
)
def test_call_sids_must_look_like_twilio_ones(raw: str) -> None:
    with pytest.raises(InvalidInput):
        voice_params.call_sid(params(CallSid=raw))


def test_text_is_made_storable_and_bounded() -> None:
    call = voice_params.inbound_call(
        params(CallSid="CA" + "a" * 32, From="+12025550143", CallerName="Ada\x00 \ud800Lovelace")
    )
    assert call.caller_name == "Ada \ufffdLovelace"
    with pytest.raises(InvalidInput):
        voice_params.inbound_call(params(CallSid="CA" + "a" * 32, From="+1" * 200))


@pytest.mark.parametrize(
    "caller",
    [
        "",
        " ",
        "anonymous",
        "Anonymous",
        "RESTRICTED",
        "unknown",
        "private",
        "+266696687",
        "client:agent-3",
        "sip:bob@example.com",
    ],
)
def test_caller_ids_that_name_nobody(caller: str) -> None:
    assert names_nobody(caller)


@pytest.mark.parametrize("caller", ["+12025550143", "2025550143", "+442079460958"])
def test_phone_numbers_name_someone(caller: str) -> None:
    assert not names_nobody(caller)
