"""Call status ordering: callbacks arrive twice and out of order; state never moves backwards."""

from __future__ import annotations

from crm_core.voice import CallStatus

TERMINAL = frozenset(
    {CallStatus.COMPLETED, CallStatus.BUSY, CallStatus.FAILED, CallStatus.NO_ANSWER, CallStatus.CANCELED}
)
_RANK = {
    CallStatus.QUEUED: 0,
    CallStatus.INITIATED: 1,
    CallStatus.RINGING: 2,
    CallStatus.IN_PROGRESS: 3,
    **{status: 4 for status in TERMINAL},
}
# Stages of our own call flow. Twilio reports a caller in our queue as "in-progress" (our TwiML is
# running), so queue stages rank with it: only the end of the call replaces them.
_OWN_RANK = {"logged": 0, "queued-for-agent": 3, "offering": 3, "voicemail": 3}


def rank(status: str) -> int:
    try:
        return _RANK[CallStatus(status)]
    except ValueError:
        return _OWN_RANK.get(status, 0)


def should_apply(
    current: str, current_sequence: int | None, new: CallStatus, new_sequence: int | None
) -> bool:
    """Whether a callback saying ``new`` may replace the stored ``current`` status.

    A terminal status is final; otherwise a later stage wins, and within one stage a higher
    SequenceNumber wins. A redelivered callback (same sequence) changes nothing.
    """
    if current in {s.value for s in TERMINAL}:
        return False
    if rank(new) != rank(current):
        return rank(new) > rank(current)
    if new_sequence is None or current_sequence is None:
        return False
    return new_sequence > current_sequence
