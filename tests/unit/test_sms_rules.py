"""Pure SMS rules: segments and encoding, opt-out keywords, receipt ordering."""

from __future__ import annotations

import pytest

from crm_core.rules.sms_keywords import SmsKeyword, keyword_of
from crm_core.rules.sms_segments import SmsEncoding, count_segments, encoding_of
from crm_core.rules.sms_status import should_apply

GSM = SmsEncoding.GSM7
UCS = SmsEncoding.UCS2


@pytest.mark.parametrize(
    ("text", "encoding", "segments", "units"),
    [
        ("", GSM, 1, 0),
        ("Hello", GSM, 1, 5),
        ("a" * 160, GSM, 1, 160),
        ("a" * 161, GSM, 2, 161),
        ("a" * 306, GSM, 2, 306),
        ("a" * 307, GSM, 3, 307),
        ("a" * 459, GSM, 3, 459),
        # GSM's own accented letters, Greek capitals and symbols stay GSM-7.
        ("Ça coûte 5€? Où ça? ΔΣΩ ¿¡ £¥ §@ äöü ÄÖÜ ñÑ", UCS, 1, 43),
        ("Ça va? Où? ΔΣΩ ¿¡ £¥ §@ äöü ÄÖÜ ñÑ \n\r", GSM, 1, 37),
        # Extension table characters take two septets each.
        ("{" * 80, GSM, 1, 160),
        ("{" * 81, GSM, 2, 162),
        ("a" * 159 + "€", GSM, 2, 161),
        ("[]~|^\\\f", GSM, 1, 14),
        # An escape pair is never cut between two segments: 152 + (2) + 152 needs a third one.
        ("a" * 152 + "^" + "a" * 152, GSM, 3, 306),
        ("a" * 153 + "^" + "a" * 151, GSM, 2, 306),
        # One character outside GSM 03.38 makes the whole text UCS-2.
        ("a" * 69 + "ж", UCS, 1, 70),
        ("a" * 70 + "ж", UCS, 2, 71),
        ("ç", UCS, 1, 1),  # only the capital Ç is in GSM 03.38
        ("`", UCS, 1, 1),
        ("ж" * 134, UCS, 2, 134),
        ("ж" * 135, UCS, 3, 135),
        # Characters outside the BMP take two UTF-16 code units and are never split either.
        ("😀" * 35, UCS, 1, 70),
        ("😀" * 36, UCS, 2, 72),
        ("ж" * 66 + "😀" + "ж" * 66, UCS, 3, 134),
        ("ж" * 67 + "😀" + "ж" * 65, UCS, 2, 134),
    ],
)
def test_segments_and_encoding(text: str, encoding: SmsEncoding, segments: int, units: int) -> None:
    count = count_segments(text)
    assert (count.encoding, count.segments, count.units) == (encoding, segments, units)


def test_encoding_of_mixed_text() -> None:
    assert encoding_of("Your order #123 is ready.") is GSM
    assert encoding_of("Merci ! Votre commande est prête") is UCS  # ê is not GSM
    assert encoding_of("Smart “quotes”") is UCS


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", SmsKeyword.STOP),
        (" stop ", SmsKeyword.STOP),
        ("Stop\n", SmsKeyword.STOP),
        ("\u00a0sToP\t", SmsKeyword.STOP),
        ("STOPALL", SmsKeyword.STOP),
        ("unsubscribe", SmsKeyword.STOP),
        ("Cancel", SmsKeyword.STOP),
        ("end", SmsKeyword.STOP),
        ("QUIT", SmsKeyword.STOP),
        ("revoke", SmsKeyword.STOP),
        ("OptOut", SmsKeyword.STOP),
        ("START", SmsKeyword.START),
        (" unstop", SmsKeyword.START),
        ("yes", SmsKeyword.START),
        ("help", SmsKeyword.HELP),
        ("  INFO  ", SmsKeyword.HELP),
        ("stop please", None),
        ("please stop", None),
        ("STOP!", None),
        ("opt out", None),
        ("helpful", None),
        ("", None),
        ("   ", None),
    ],
)
def test_keywords(body: str, keyword: SmsKeyword | None) -> None:
    assert keyword_of(body) is keyword


@pytest.mark.parametrize(
    ("current", "new", "applies"),
    [
        ("queued", "sending", True),
        ("queued", "sent", True),
        ("queued", "delivered", True),
        ("sent", "delivered", True),
        ("sent", "undelivered", True),
        ("sending", "failed", True),
        ("unconfirmed", "sent", True),
        ("delivered", "read", True),
        ("queued", "queued", False),
        ("sent", "sent", False),
        ("delivered", "delivered", False),
        ("delivered", "sent", False),
        ("delivered", "queued", False),
        ("undelivered", "sent", False),
        ("failed", "delivered", False),
        ("delivered", "undelivered", False),
        ("sent", "some-new-status", False),
    ],
)
def test_receipts_never_move_backwards(current: str, new: str, applies: bool) -> None:
    assert should_apply(current, new) is applies
