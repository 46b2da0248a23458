"""Opt-out, opt-in and help keywords in customers' texts.

Texts are compared in a normal form (:func:`normalize`): Unicode NFKC (STOP in fullwidth letters is
"stop"), case folded, format and control characters dropped (zero-width spaces and joiners, the
BOM, soft hyphens), punctuation and symbols read as spaces, runs of spaces collapsed. So "Stop.",
"Stop!", '"STOP"', "S\u200btop" (a zero-width space inside) and "OPT-OUT" are keywords like "STOP".

A text *is* a keyword when nothing else is left in it: STOP and its synonyms, START/UNSTOP/YES,
HELP/INFO. Only an opt-out is also recognised inside a longer text (US rules accept revocation
"by any reasonable means"), and then only as whole words, never as letters inside another word
("Stopped by the store", "backend", "weekend" and "cancellation" are no opt-out):

- a strong opt-out word with nothing but courtesy words around it ("STOP please", "unsubscribe me");
- "unsubscribe" or "opt out" anywhere ("how do I unsubscribe?", "please opt me out");
- an opt-out verb aimed at the texts ("please stop texting me", "cancel these messages", "end the
  alerts") or a phrase saying the same ("don't text me", "no more texts", "take me off your list");
- 退订 ("unsubscribe") as a clause of its own or asked for ("请退订", "我要退订"), but not inside
  another word (退订单, "cancel the order").

CANCEL, END, QUIT and TD are everyday words in a contact centre ("cancel my order", "the end of
the month", "TD Bank"): inside a longer text they count only when aimed at the texts. A negated
word never counts ("don't stop", "I do not want to unsubscribe").
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass


class SmsKeyword(enum.StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"


# Normalised forms (see normalize): what a whole text may be.
STOP_WORDS = frozenset(
    {
        "stop",
        "stopall",
        "stop all",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "revoke",
        "optout",
        "opt out",  # also "OPT-OUT", "opt_out"
        "td",  # Chinese carriers' "reply TD to unsubscribe"
        "退订",
    }
)
START_WORDS = frozenset({"start", "unstop", "yes"})
HELP_WORDS = frozenset({"help", "info"})
CARRIER_STOP_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"}
)
"""The opt-out words Twilio itself honours (and confirms) on long codes."""

# Inside a longer text (tokens after normalisation; "opt out" / "opt me out" read as "optout").
_STRONG = frozenset({"stop", "stopall", "unsubscribe", "optout", "revoke", "td"})
_ANYWHERE = frozenset({"unsubscribe", "optout"})
_VERBS = frozenset({"stop", "stopall", "cancel", "end", "quit", "revoke", "unsubscribe"})
_TEXTS = frozenset(
    {
        "texts",
        "texting",
        "txts",
        "txting",
        "messages",
        "messaging",
        "msgs",
        "sms",
        "spam",
        "spamming",
        "consent",
        "alerts",
        "notifications",
    }
)
_COURTESY = frozenset(
    {
        "please",
        "pls",
        "plz",
        "thanks",
        "thank",
        "thankyou",
        "thx",
        "ty",
        "you",
        "me",
        "us",
        "now",
        "it",
        "all",
        "asap",
        "immediately",
        "ok",
        "okay",
        "just",
        "sorry",
        "already",
        "again",
        "do",
    }
)
_NEGATIONS = frozenset({"not", "never", "dont", "didnt", "wont", "cant", "cannot", "t"})
_WANTING = frozenset({"want", "wanted", "wish", "mean", "meant", "need", "like", "trying", "going"})
# "stop sending me ...", "stop contacting us ...": aimed at the customer, so at the texts too.
_AT_CUSTOMER = frozenset({"sending", "contacting"})
# Words that may sit between an opt-out verb and what it stops ("stop all these messages").
_BETWEEN = 2
_PHRASES = (
    (
        "DO NOT TEXT",
        re.compile(r"\b(?:do not|don t|dont) (?:ever )?(?:text|txt|message|msg|sms|contact) (?:me|us)\b"),
    ),
    ("NO MORE TEXTS", re.compile(r"\bno more (?:texts|txts|messages|msgs|sms|texting|messaging)\b")),
    (
        "REMOVE ME",
        re.compile(
            r"\b(?:remove|take) (?:me|us|my number) (?:off|out of|from) "
            r"(?:\w+ ){0,3}(?:list|texts|messages)\b"
        ),
    ),
)
_CHINESE_STOP = re.compile(r"^(?:请|麻烦)?(?:你们?)?(?:帮我)?(?:我)?(?:要|想|申请)?退订(?:了|吧|谢谢)?$")
# After NFKC, fullwidth punctuation is ASCII; the ideographic full stop and comma are not.
_CLAUSES = re.compile(r"[.!?;,:\n\u3001\u3002]+")


@dataclass(frozen=True, slots=True)
class KeywordMatch:
    keyword: SmsKeyword
    word: str
    """The keyword as read, in capitals ("STOP", "OPT OUT", "退订")."""
    exact: bool
    """The whole text is the keyword; False: an opt-out asked for inside a longer text."""
    phrase: str = ""
    """For a longer text: the words that asked to stop ("stop texting")."""

    @property
    def carrier_confirms(self) -> bool:
        """Twilio itself answers this opt-out on long codes (the service must not confirm it too)."""
        return self.exact and self.word.casefold() in CARRIER_STOP_WORDS


def _drop(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cf", "Cc") and not ch.isspace()


def _blank(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch)[0] in "PSZ"


def normalize(body: str) -> str:
    """``body`` as keywords are compared: NFKC, case folded, zero-width and control characters
    dropped, punctuation and symbols as spaces, spaces collapsed."""
    text = unicodedata.normalize("NFKC", body)
    kept = "".join(" " if _blank(ch) else ch for ch in text if not _drop(ch))
    return " ".join(kept.casefold().split())


def _tokens(text: str) -> list[str]:
    words = text.split()
    out: list[str] = []
    i = 0
    while i < len(words):
        if words[i] == "opt" and words[i + 1 : i + 2] == ["out"]:
            out.append("optout")
            i += 2
        elif (
            words[i] == "opt"
            and len(words) > i + 2
            and words[i + 1] in ("me", "us")
            and words[i + 2] == "out"
        ):
            out.append("optout")
            i += 3
        else:
            out.append(words[i])
            i += 1
    return out


def _negated(tokens: list[str], at: int) -> bool:
    """Whether the word at ``at`` is negated: "don't stop", "do not want to unsubscribe"."""
    i = at - 1
    if i >= 0 and tokens[i] in ("please", "pls", "just", "ever"):
        i -= 1
    if i >= 0 and tokens[i] == "to":
        i -= 1
    if i >= 0 and tokens[i] in _WANTING:
        i -= 1
    return i >= 0 and tokens[i] in _NEGATIONS


def _aimed_at_texts(tokens: list[str], at: int) -> str:
    """The words from the verb at ``at`` to the texts it stops ("stop sending me"), or ""."""
    for j in range(at + 1, min(len(tokens), at + 2 + _BETWEEN)):
        if tokens[j] in _TEXTS:
            return " ".join(tokens[at : j + 1])
        if tokens[j] in _AT_CUSTOMER and tokens[j + 1 : j + 2] in (["me"], ["us"]):
            return " ".join(tokens[at : j + 2])
    return ""


def _request_in_clause(clause: str) -> tuple[str, str]:
    """The opt-out word and the words of ``clause`` (normalised) that ask to stop texts, or ("", "")."""
    tokens = _tokens(clause)
    strong = [i for i, t in enumerate(tokens) if t in _STRONG]
    only_courtesy = all(t in _STRONG or t in _COURTESY for t in tokens)
    if strong and only_courtesy and not any(_negated(tokens, i) for i in strong):
        return _word_of(tokens[strong[0]]), clause
    for i, word in enumerate(tokens):
        if _negated(tokens, i):
            continue
        if word in _ANYWHERE:
            return _word_of(word), _word_of(word).lower()
        if word in _VERBS and (phrase := _aimed_at_texts(tokens, i)):
            return _word_of(word), phrase
        if _CHINESE_STOP.match(word):
            return "退订", word
    for word, pattern in _PHRASES:
        if found := pattern.search(clause):
            return word, found.group(0)
    return "", ""


def _word_of(word: str) -> str:
    """A normalised opt-out word as shown: "optout" inside a text was "opt out" or "opt me out"."""
    return "OPT OUT" if word == "optout" else word.upper()


def match_keyword(body: str) -> KeywordMatch | None:
    """The keyword ``body`` is (or the opt-out it asks for), None for an ordinary message."""
    text = normalize(body)
    if not text:
        return None
    if text in STOP_WORDS:
        return KeywordMatch(SmsKeyword.STOP, text.upper(), exact=True)
    if text in START_WORDS:
        return KeywordMatch(SmsKeyword.START, text.upper(), exact=True)
    if text in HELP_WORDS:
        return KeywordMatch(SmsKeyword.HELP, text.upper(), exact=True)
    # Clauses are cut before punctuation is dropped: "don't text me, stop" has a clause "stop".
    clean = unicodedata.normalize("NFKC", body)
    for clause in _CLAUSES.split("".join(ch for ch in clean if not _drop(ch))):
        word, phrase = _request_in_clause(normalize(clause))
        if word:
            return KeywordMatch(SmsKeyword.STOP, word, exact=False, phrase=phrase)
    return None


def keyword_of(body: str) -> SmsKeyword | None:
    """The keyword ``body`` is or asks for; None for an ordinary message."""
    found = match_keyword(body)
    return found.keyword if found is not None else None
