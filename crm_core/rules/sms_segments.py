"""How many SMS segments a text takes, and in which encoding (3GPP TS 23.038 / 23.040).

A text made only of GSM 03.38 characters travels as GSM-7: 160 septets in one segment, 153 per
segment once it is split (the user data header takes the rest). Characters of the GSM extension
table (``^ { } \\ [ ~ ] | €`` and form feed) take two septets (escape + character). Anything else
turns the whole text into UCS-2: 70 UTF-16 code units in one segment, 67 per segment when split;
characters outside the Basic Multilingual Plane (most emoji) take two code units. A two-unit
character is never cut across two segments, so it may leave a segment one unit short.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


class SmsEncoding(enum.StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


# (one segment, each segment of a split message), in septets (GSM-7) or code units (UCS-2).
LIMITS = {SmsEncoding.GSM7: (160, 153), SmsEncoding.UCS2: (70, 67)}


@dataclass(frozen=True, slots=True)
class SegmentCount:
    encoding: SmsEncoding
    segments: int
    units: int
    """Septets (GSM-7) or UTF-16 code units (UCS-2) the text takes."""


def encoding_of(text: str) -> SmsEncoding:
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        return SmsEncoding.GSM7
    return SmsEncoding.UCS2


def _unit_cost(ch: str, encoding: SmsEncoding) -> int:
    if encoding is SmsEncoding.GSM7:
        return 2 if ch in GSM7_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def count_segments(text: str) -> SegmentCount:
    """The encoding, segment count and size of ``text`` (an empty text still takes one segment)."""
    encoding = encoding_of(text)
    costs = [_unit_cost(ch, encoding) for ch in text]
    units = sum(costs)
    single, multi = LIMITS[encoding]
    if units <= single:
        return SegmentCount(encoding, 1, units)
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments += 1
            used = 0
        used += cost
    return SegmentCount(encoding, segments, units)
