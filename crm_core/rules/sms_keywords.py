"""The opt-out keywords carriers (and Twilio on long codes) honour: a whole message of one word."""

from __future__ import annotations

import enum


class SmsKeyword(enum.StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"


STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})


def keyword_of(body: str) -> SmsKeyword | None:
    """The keyword a message is, in any letter case with surrounding whitespace; None for a message
    that merely contains one ("please stop calling" is a message, not an opt-out)."""
    word = body.strip().upper()
    if word in STOP_WORDS:
        return SmsKeyword.STOP
    if word in START_WORDS:
        return SmsKeyword.START
    if word in HELP_WORDS:
        return SmsKeyword.HELP
    return None
