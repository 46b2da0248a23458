"""Caller ids that name nobody: withheld, anonymous, an app or SIP client, or none at all.

Such a caller cannot be told apart from the next one, so no customer is looked up or created
for their "number"; the calls are logged against one shared record instead
(:mod:`crm_core.services.withheld_callers`).
"""

from __future__ import annotations

# What carriers and Twilio put in From when the number is withheld: the words, and the words
# spelled on a phone keypad (Twilio's +266696687 is ANONYMOUS).
_WITHHELD = frozenset(
    {
        "anonymous",
        "restricted",
        "unknown",
        "private",
        "unavailable",
        "blocked",
        "withheld",
        "+266696687",  # ANONYMOUS
        "+7378742833",  # RESTRICTED
        "+86282452253",  # UNAVAILABLE
        "+2562533",  # BLOCKED
    }
)
_NOT_A_PHONE = ("client:", "sip:")


def names_nobody(caller_id: str | None) -> bool:
    """Whether ``caller_id`` is withheld, empty, or an app (``client:``) or SIP address."""
    value = (caller_id or "").strip().lower()
    return not value or value in _WITHHELD or value.startswith(_NOT_A_PHONE)
