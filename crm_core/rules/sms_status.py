"""Outbound message status ordering: delivery receipts arrive twice and out of order, and a status
never moves backwards (a late "sent" does not undo "delivered")."""

from __future__ import annotations

# Twilio's MessageStatus values, plus "unconfirmed": handed to Twilio without an answer (a timeout),
# so it is not sent again; a later receipt still tells what became of it.
_RANK = {
    "queued": 0,
    "accepted": 0,
    "scheduled": 0,
    "unconfirmed": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
    "canceled": 3,
    "partially_delivered": 3,
    "read": 4,
}
FINAL = frozenset({"delivered", "undelivered", "failed", "canceled", "partially_delivered", "read"})
KNOWN = frozenset(_RANK)


def should_apply(current: str, new: str) -> bool:
    """Whether a receipt saying ``new`` may replace ``current``: only a later stage wins, so a
    repeated or late receipt changes nothing, and unknown statuses are ignored."""
    if new not in _RANK:
        return False
    return _RANK[new] > _RANK.get(current, -1)
