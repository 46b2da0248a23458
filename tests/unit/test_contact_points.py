"""Normalising phone numbers to E.164 and email addresses to one canonical spelling."""

from __future__ import annotations

import pytest

from crm_core.contact_points import email_match_key, normalize_email, normalize_phone
from crm_core.errors import InvalidInput

# --- phones -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        # National formats read with the default region.
        ("(202) 555-0143", "US", "+12025550143"),
        ("202-555-0143", "US", "+12025550143"),
        ("202.555.0143", "US", "+12025550143"),
        ("2025550143", "US", "+12025550143"),
        ("1 (202) 555-0143", "US", "+12025550143"),
        ("  202 555 0143  ", "US", "+12025550143"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("030 901820", "DE", "+4930901820"),
        # The region's international prefix.
        ("011 44 20 7946 0958", "US", "+442079460958"),
        ("0044 20 7946 0958", "GB", "+442079460958"),
        # +international ignores the default region.
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("+44 (0)20 7946 0958", "US", "+442079460958"),
        ("+1 202-555-0143", "GB", "+12025550143"),
        ("+33 1 23 45 67 89", "US", "+33123456789"),
        ("+12025550143", "FR", "+12025550143"),
    ],
)
def test_phone_normalised_to_e164(raw: str, region: str, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "phone number is empty"),
        ("   ", "phone number is empty"),
        ("1" * 41, "phone number is too long"),
        ("12", "not a valid phone number"),
        ("555-0143", "not a valid phone number"),  # too short: no area code
        ("(202) 555-01", "not a valid phone number"),
        ("2025550143123456", "not a valid phone number"),  # too long for the US
        ("+1 202 555 01430", "not a valid phone number"),
        ("000-000-0000", "not a valid phone number"),  # well-formed but not assigned
        ("+999 123", "not a phone number"),  # no such country code
        ("call me", "not a phone number"),
        ("abc", "not a phone number"),
        ("2O2-555-0143", "not a phone number"),  # letter O for a zero
    ],
)
def test_invalid_phone_refused(raw: str, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        normalize_phone(raw, "US")
    assert str(info.value).startswith(message)
    assert info.value.field == "phone"


def test_phone_error_names_the_field() -> None:
    with pytest.raises(InvalidInput) as info:
        normalize_phone("nope", "US", "phones[2]")
    assert info.value.field == "phones[2]"


def test_the_same_number_written_differently_is_one_contact_point() -> None:
    spellings = ["(202) 555-0143", "+1 202 555 0143", "1-202-555-0143", "202.555.0143"]
    assert {normalize_phone(s, "US") for s in spellings} == {"+12025550143"}


def test_vanity_letters_are_dialled_as_keypad_digits() -> None:
    # phonenumbers reads a whole-word vanity number on the keypad; this is accepted on purpose.
    assert normalize_phone("1-800-FLOWERS", "US") == "+18003569377"


# --- emails -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ada@example.com", "ada@example.com"),
        ("Ada@Example.COM", "ada@example.com"),
        ("  ADA.Lovelace@EXAMPLE.co.uk ", "ada.lovelace@example.co.uk"),
        ("ada+crm@example.com", "ada+crm@example.com"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        # Internationalised domains are stored in their ASCII (punycode) form.
        ("ada@bücher.de", "ada@xn--bcher-kva.de"),
        ("ADA@BÜCHER.DE", "ada@xn--bcher-kva.de"),
        ("ada@xn--bcher-kva.de", "ada@xn--bcher-kva.de"),
        ("info@例え.jp", "info@xn--r8jz45g.jp"),
    ],
)
def test_email_normalised(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "plain",
        "ada@",
        "@example.com",
        "ada@example",
        "ada@@example.com",
        "ada@bob@example.com",
        "ada lovelace@example.com",
        "Ada <ada@example.com>",
        "<ada@example.com>",
        "ada,b@example.com",
        '"ada"@example.com',
        "ada@.example.com",
        "ada@example..com",
        "ada@example.com.",
        "ada@-example.com",
        "ada@example-.com",
        "ada@example.-com",
        "ada@exa_mple.com",
        "ada@exa mple.com",
        "ada@" + "x" * 64 + ".com",  # a DNS label has at most 63 characters
        "a" * 310 + "@example.com",  # longer than 320
    ],
)
def test_invalid_email_refused(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        normalize_email(raw)
    assert info.value.field == "email"


def test_email_error_names_the_field() -> None:
    with pytest.raises(InvalidInput) as info:
        normalize_email("nope", "emails[1]")
    assert info.value.field == "emails[1]"


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("ada@example.com", "ada@example.com"),
        # +tags are dropped everywhere...
        ("ada+newsletter@example.com", "ada@example.com"),
        ("ada+a+b@example.com", "ada@example.com"),
        # ...but dots only count for Gmail.
        ("ada.lovelace@example.com", "ada.lovelace@example.com"),
        ("ada.lovelace+crm@example.com", "ada.lovelace@example.com"),
        ("ada.lovelace@gmail.com", "adalovelace@gmail.com"),
        ("a.d.a.lovelace+x@gmail.com", "adalovelace@gmail.com"),
        # googlemail.com is the same mailbox as gmail.com.
        ("ada.lovelace@googlemail.com", "adalovelace@gmail.com"),
        ("adalovelace+tag@googlemail.com", "adalovelace@gmail.com"),
        # A look-alike domain is not Gmail.
        ("ada.lovelace@gmail.co", "ada.lovelace@gmail.co"),
    ],
)
def test_email_match_key(address: str, key: str) -> None:
    assert email_match_key(address) == key


def test_match_key_of_differently_written_gmail_addresses_is_the_same() -> None:
    spellings = ["Bob.Smith@gmail.com", " bobsmith+crm@GMAIL.com", "B.O.B.Smith@GoogleMail.com"]
    assert {email_match_key(normalize_email(s)) for s in spellings} == {"bobsmith@gmail.com"}
