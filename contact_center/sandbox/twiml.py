"""TwiML documents as the sandbox reads them: a list of verbs with attributes, text and nouns."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field


class TwiMLError(ValueError):
    """The document is not TwiML (Twilio's error 12100, document parse failure)."""


@dataclass(frozen=True, slots=True)
class Verb:
    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    text: str = ""
    children: tuple[Verb, ...] = ()

    def get(self, name: str, default: str = "") -> str:
        return self.attrs.get(name, default)

    def number(self, name: str, default: float) -> float:
        raw = self.attrs.get(name)
        try:
            return float(raw) if raw not in (None, "") else default
        except ValueError:
            return default

    def flag(self, name: str, default: bool = False) -> bool:
        raw = self.attrs.get(name)
        return default if raw is None else raw.strip().lower() == "true"


def _verb(element: ET.Element) -> Verb:
    return Verb(
        name=element.tag,
        attrs=dict(element.attrib),
        text=(element.text or "").strip(),
        children=tuple(_verb(child) for child in element),
    )


def parse_twiml(document: str) -> list[Verb]:
    """The verbs of a ``<Response>``; raises :class:`TwiMLError` on anything else."""
    try:
        root = ET.fromstring(document.strip())  # noqa: S314
    except ET.ParseError as exc:
        raise TwiMLError(f"not XML: {exc}") from exc
    if root.tag != "Response":
        raise TwiMLError(f"root element is <{root.tag}>, not <Response>")
    return [_verb(child) for child in root]


class TwiMLSchemaError(TwiMLError):
    """XML that breaks TwiML's schema: an unknown verb or a noun where it is not allowed (12200)."""


SSML = frozenset(
    {"break", "emphasis", "lang", "p", "phoneme", "prosody", "s", "say-as", "sub", "w", "amazon:effect"}
)
PROMPT_NOUNS = frozenset({"Say", "Play", "Pause"})
VOICE_NOUNS: dict[str, frozenset[str] | None] = {
    # verb -> the elements it may hold (None: not checked, a verb the sandbox does not simulate)
    "Say": SSML,
    "Play": frozenset(),
    "Pause": frozenset(),
    "Gather": PROMPT_NOUNS,
    "Dial": frozenset({"Number", "Client", "Sip", "Conference", "Queue", "Sim", "Application"}),
    "Enqueue": frozenset({"Task"}),
    "Record": frozenset(),
    "Redirect": frozenset(),
    "Hangup": frozenset(),
    "Reject": frozenset(),
    "Leave": frozenset(),
    "Connect": None,
    "Start": None,
    "Stop": None,
    "Pay": None,
    "Prompt": None,
    "Refer": None,
    "Sms": frozenset(),
}
NOUN_CHILDREN: dict[str, frozenset[str]] = {
    "Client": frozenset({"Identity", "Parameter"}),
    "Application": frozenset({"ApplicationSid", "Parameter"}),
}


def check_voice_schema(verbs: list[Verb]) -> None:
    """Raise :class:`TwiMLSchemaError` when a voice document breaks TwiML's schema: Twilio runs
    none of such a document (names are case-sensitive: ``<say>`` is not ``<Say>``)."""
    for verb in verbs:
        if verb.name not in VOICE_NOUNS:
            raise TwiMLSchemaError(f"<{verb.name}> is not a TwiML verb")
        allowed = VOICE_NOUNS[verb.name]
        if allowed is None:
            continue
        for noun in verb.children:
            if noun.name not in allowed:
                raise TwiMLSchemaError(f"<{noun.name}> is not allowed inside <{verb.name}>")
            if verb.name == "Gather":
                check_voice_schema([noun])
            elif verb.name != "Say":
                inner = NOUN_CHILDREN.get(noun.name, frozenset())
                bad = [child.name for child in noun.children if child.name not in inner]
                if bad:
                    raise TwiMLSchemaError(f"<{bad[0]}> is not allowed inside <{noun.name}>")
