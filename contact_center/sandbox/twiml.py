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
