"""How many segments Twilio bills a text as (3GPP TS 23.038 / 23.040).

GSM-7 when every character is in the GSM 03.38 basic table or its extension table (the extension
characters ``^ { } \\ [ ~ ] | €`` and form feed take two septets: escape + character): 160 septets
in one segment, 153 per segment once split. Anything else makes the whole text UCS-2: 70 UTF-16
code units in one segment, 67 per segment once split, characters outside the Basic Multilingual
Plane taking two units. A two-unit character is never cut across two segments. An empty text
still takes one segment.
"""

from __future__ import annotations

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


def num_segments(body: str) -> int:
    """The segments of ``body``: GSM-7 with its extension table, else UCS-2."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in body):
        costs = [2 if ch in GSM7_EXTENSION else 1 for ch in body]
        single, multi = 160, 153
    else:
        costs = [2 if ord(ch) > 0xFFFF else 1 for ch in body]
        single, multi = 70, 67
    if sum(costs) <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return segments
