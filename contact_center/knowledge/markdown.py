"""Article bodies: Markdown rendered to HTML, then sanitised, so an article can never carry script
into the console, the help centre or the widget (raw HTML in the Markdown is shown as text)."""

from __future__ import annotations

import html
import re

import nh3
from markdown_it import MarkdownIt

_RENDERER = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])
_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "th": {"style"},
    "td": {"style"},
}
_SCHEMES = {"http", "https", "mailto", "tel"}
_TAG = re.compile(r"<[^>]*>")


def render_markdown(source: str) -> str:
    """Safe HTML for ``source``: only formatting tags, links to http(s), mail and phone numbers."""
    return nh3.clean(
        _RENDERER.render(source),
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
    )


def plain_excerpt(source: str, chars: int = 200) -> str:
    """The start of the article as plain text (for search results)."""
    text = " ".join(html.unescape(_TAG.sub(" ", render_markdown(source))).split())
    return text if len(text) <= chars else text[: chars - 1].rstrip() + "…"
