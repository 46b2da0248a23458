"""Bodies for people: sanitized HTML, HTML as text, and the reply without its quoted history."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3

from crm_core.rules.email_refs import strip_markers

_ALLOWED_SCHEMES = {"http", "https", "mailto", "cid", "tel"}
_BLOCKS = frozenset(
    {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "hr"}
)
_SKIP = frozenset({"script", "style", "head", "title"})


def sanitize_html(html: str) -> str:
    """Safe to show in the agent's browser: no scripts, styles, handlers or foreign schemes;
    ``cid:`` images stay (the API points them at the stored attachments)."""
    tags = set(nh3.ALLOWED_TAGS) | {"img", "font", "center", "span", "div"}
    attributes = {k: set(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()}
    attributes.setdefault("img", set()).update({"src", "alt", "width", "height", "title"})
    return strip_markers(nh3.clean(html, tags=tags, attributes=attributes, url_schemes=_ALLOWED_SCHEMES))


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        if tag in _BLOCKS:
            self.parts.append("\n")
        if tag == "blockquote":
            self.parts.append("> ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP and self._skip:
            self._skip -= 1
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):  # pragma: no cover - html.parser is lenient
        return re.sub(r"<[^>]+>", " ", html)
    text = "".join(parser.parts).replace("\xa0", " ")
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# Lines where quoted history or a forwarded original starts, in the common clients' languages.
_QUOTE_HEADERS = [
    re.compile(r"^\s*On .{1,200}wrote:\s*$", re.IGNORECASE),
    re.compile(r"^\s*Am .{1,200}schrieb .{0,200}:\s*$", re.IGNORECASE),
    re.compile(r"^\s*Le .{1,200}a écrit\s*:\s*$", re.IGNORECASE),
    re.compile(r"^\s*El .{1,200}escribió:\s*$", re.IGNORECASE),
    re.compile(r"^\s*-{2,}\s*Original Message\s*-{2,}\s*$", re.IGNORECASE),
    re.compile(r"^\s*-{2,}\s*Ursprüngliche Nachricht\s*-{2,}\s*$", re.IGNORECASE),
    re.compile(r"^\s*_{5,}\s*$"),
    re.compile(r"^\s*From:\s.+$", re.IGNORECASE),
    re.compile(r"^\s*Von:\s.+$", re.IGNORECASE),
]
_SIGNATURES = [
    re.compile(r"^-- ?$"),
    re.compile(r"^Sent from my \w+", re.IGNORECASE),
    re.compile(r"^Get Outlook for \w+", re.IGNORECASE),
    re.compile(r"^Von meinem \w+ gesendet", re.IGNORECASE),
]


def visible_reply(text: str) -> str:
    """The new part of a reply: cut at the first quote header, quoted block or signature.

    The full body stays stored; this is what the ticket view shows first.
    """
    lines = strip_markers(text).splitlines()
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if any(p.match(line) for p in _SIGNATURES) or any(p.match(line) for p in _QUOTE_HEADERS):
            break
        if stripped.startswith(">") and all(
            not rest.strip() or rest.lstrip().startswith(">") for rest in lines[index:]
        ):
            break
        kept.append(line)
    visible = "\n".join(kept).strip()
    return visible or strip_markers(text).strip()
