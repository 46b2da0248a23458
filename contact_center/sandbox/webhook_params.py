"""Webhook parameters Twilio adds about phone numbers: caller location and the inbound CallToken.

Twilio sends ``FromCity``, ``FromState``, ``FromZip``, ``FromCountry`` (and the same for ``To``,
``Caller``, ``Called``) for every party that is a phone number, empty where it knows nothing. The
sandbox knows only the country, from the number itself; SDK (``client:``) and SIP parties get none,
as on Twilio.
"""

from __future__ import annotations

import hashlib

import phonenumbers


def country(number: str) -> str | None:
    """The ISO country of an E.164 number (its calling code's main country), None when not one."""
    if not number.startswith("+"):
        return None
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(parsed) or phonenumbers.region_code_for_country_code(
        parsed.country_code or 0
    )
    return "" if region in (None, "ZZ") else region


def location(**parties: str) -> dict[str, str]:
    """``location(From="+1415...", To="client:alice")``: the location parameters of the phone numbers."""
    params: dict[str, str] = {}
    for name, number in parties.items():
        iso = country(number)
        if iso is not None:
            params.update({f"{name}City": "", f"{name}State": "", f"{name}Zip": "", f"{name}Country": iso})
    return params


def call_token(call_sid: str) -> str:
    """The opaque ``CallToken`` of an inbound call from a phone (what forwarding it would present)."""
    return hashlib.sha256(f"call-token:{call_sid}".encode()).hexdigest()
