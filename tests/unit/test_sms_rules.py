"""Pure SMS rules: segments and encoding, opt-out keywords, receipt ordering."""

from __future__ import annotations

import pytest

from crm_core.rules.sms_keywords import SmsKeyword, keyword_of, match_keyword, normalize
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
        ("helpful", None),
        ("", None),
        ("   ", None),
        ("\u200b", None),
    ],
)
def test_keywords(body: str, keyword: SmsKeyword | None) -> None:
    assert keyword_of(body) is keyword


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ("Stop.", "STOP"),
        ("Stop!", "STOP"),
        ('"STOP"', "STOP"),
        ("\u201cStop\u201d", "STOP"),
        ("\uff33\uff34\uff2f\uff30", "STOP"),  # fullwidth letters
        ("\uff53\uff54\uff4f\uff50\uff01", "STOP"),
        ("Stop\u200b", "STOP"),  # zero-width space
        ("S\u200bt\u200do\u2060p", "STOP"),  # zero-width space, joiner, word joiner
        ("\ufeffSTOP", "STOP"),  # byte order mark
        ("st\u00adop", "STOP"),  # soft hyphen
        ("...stop...", "STOP"),
        ("*STOP*", "STOP"),
        ("(unsubscribe)", "UNSUBSCRIBE"),
        ("End.", "END"),
        ("OPT OUT", "OPT OUT"),
        ("opt-out", "OPT OUT"),
        ("Opt  Out!", "OPT OUT"),
        ("opt_out", "OPT OUT"),
        ("Stop all", "STOP ALL"),
        ("退订", "退订"),
        ("退订。", "退订"),
        ("TD", "TD"),
        ("td", "TD"),
        ("\uff34\uff24", "TD"),  # fullwidth TD
    ],
)
def test_opt_out_words_with_punctuation_case_width_and_invisible_characters(body: str, word: str) -> None:
    found = match_keyword(body)
    assert found is not None
    assert (found.keyword, found.word, found.exact) == (SmsKeyword.STOP, word, True)


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("Start!", SmsKeyword.START),
        ("\uff33\uff34\uff21\uff32\uff34", SmsKeyword.START),
        ("UNSTOP.", SmsKeyword.START),
        ("Yes.", SmsKeyword.START),
        ('"yes"', SmsKeyword.START),
        ("Help?", SmsKeyword.HELP),
        ("INFO\u200b", SmsKeyword.HELP),
        # Only opt-outs are read inside a longer text.
        ("start please", None),
        ("Yes, Tuesday works", None),
        ("I need help with my bill", None),
    ],
)
def test_start_and_help_words_are_normalised_the_same_way(body: str, keyword: SmsKeyword | None) -> None:
    assert keyword_of(body) is keyword


@pytest.mark.parametrize(
    ("body", "word", "phrase"),
    [
        ("STOP please", "STOP", "stop please"),
        ("Please stop.", "STOP", "please stop"),
        ("stop it now thanks", "STOP", "stop it now thanks"),
        ("please stop texting me", "STOP", "stop texting"),
        ("STOP SENDING ME THESE", "STOP", "stop sending me"),
        ("Can you stop all these messages?", "STOP", "stop all these messages"),
        ("Why don't you just stop texting me", "STOP", "stop texting"),
        ("I already paid. Stop!", "STOP", "stop"),
        ("unsubscribe me", "UNSUBSCRIBE", "unsubscribe me"),
        ("How do I unsubscribe?", "UNSUBSCRIBE", "unsubscribe"),
        ("I'd like to opt out of these", "OPT OUT", "opt out"),
        ("please opt me out", "OPT OUT", "please opt me out"),
        ("cancel these text alerts", "CANCEL", "cancel these text alerts"),
        ("End the notifications", "END", "end the notifications"),
        ("quit texting me", "QUIT", "quit texting"),
        ("I revoke consent", "REVOKE", "revoke consent"),
        ("Revoke, thanks", "REVOKE", "revoke"),
        ("TD please", "TD", "td please"),
        ("don't text me", "DO NOT TEXT", "don t text me"),
        ("Do not text me, I already paid", "DO NOT TEXT", "do not text me"),
        ("no more texts please", "NO MORE TEXTS", "no more texts"),
        ("Please remove me from your list", "REMOVE ME", "remove me from your list"),
        ("take my number off the list", "REMOVE ME", "take my number off the list"),
        ("我要退订", "退订", "我要退订"),
        ("请帮我退订\uff0c谢谢", "退订", "请帮我退订"),
        ("请不要再发了\uff0c退订", "退订", "退订"),
        ("别再发短信了。退订", "退订", "退订"),
        ("\uff33\uff34\uff2f\uff30 please", "STOP", "stop please"),
        ("Stop\u200b texting me", "STOP", "stop texting"),
    ],
)
def test_an_opt_out_asked_for_inside_a_longer_text(body: str, word: str, phrase: str) -> None:
    found = match_keyword(body)
    assert found is not None
    assert (found.keyword, found.word, found.exact, found.phrase) == (SmsKeyword.STOP, word, False, phrase)
    assert found.carrier_confirms is False


@pytest.mark.parametrize(
    "body",
    [
        # The letters inside another word.
        "Stopped by the store",
        "The backend is down",
        "See you at the weekend",
        "cancellation policy?",
        "What is your cancellation policy?",
        "unstoppable",
        "Tdap vaccine booked",
        # Everyday words a contact centre hears, not aimed at the texts.
        "cancel my order",
        "Please cancel my appointment",
        "Can you cancel it and start sending to my new address?",
        "at the end of the month",
        "I quit my job so I need a new plan",
        "Can you stop the delivery?",
        "The bus stop is far",
        "Will the texts stop after my order ships?",
        "Stop calling me",
        "TD Bank",
        "Is TD the right bank?",
        # Negated.
        "don't stop texting me deals",
        "Please do not stop",
        "I do not want to unsubscribe",
        "I didn't mean to opt out",
        "never unsubscribe me",
        # Chinese: 退订单 is "cancel the order", 不要退订 "do not unsubscribe".
        "我想退订单",
        "我要退订单号123",
        "不要退订",
        "我不想退订",
        # Start and help words inside a longer text are no keywords.
        "Yes that works",
        "help me with my bill",
    ],
)
def test_ordinary_messages_are_no_opt_out(body: str) -> None:
    assert match_keyword(body) is None


@pytest.mark.parametrize(
    ("body", "confirms"),
    [("STOP", True), ("Stop.", True), ("cancel", True), ("OPT OUT", False), ("TD", False), ("退订", False)],
)
def test_the_carrier_confirms_only_its_own_words(body: str, confirms: bool) -> None:
    found = match_keyword(body)
    assert found is not None and found.carrier_confirms is confirms


def test_normalize() -> None:
    assert normalize("  \uff33\uff54\u200bop!!  \u201cplease\u201d\n") == "stop please"
    assert normalize("OPT-OUT") == "opt out"
    assert normalize("Stra\u00dfe") == "strasse"


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
