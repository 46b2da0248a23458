"""Article Markdown: formatting kept, Chinese kept, every way of carrying script stripped."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from contact_center.knowledge.markdown import plain_excerpt, render_markdown


class Elements(HTMLParser):
    """Every element of a piece of HTML, with its attributes, as a browser would read them."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def test_formatting_and_chinese_are_kept() -> None:
    html = render_markdown(
        "# 退款 Refunds\n\n1. **Open** the [portal](https://example.com/退款)\n\n|a|b|\n|-|-|\n|1|2|"
    )
    assert "<h1>退款 Refunds</h1>" in html and "<strong>Open</strong>" in html and "<ol>" in html
    assert (
        '<a href="https://example.com/%E9%80%80%E6%AC%BE" rel="noopener noreferrer nofollow">portal</a>'
        in html
    )
    assert "<table>" in html and "<td>2</td>" in html


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "![x](javascript:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
        "<iframe src=https://evil.example></iframe>",
        "<svg onload=alert(1)>",
        "[x](vbscript:msgbox(1))",
    ],
)
def test_script_never_survives(source: str) -> None:
    html = render_markdown(f"Before {source} after 之后")
    elements = Elements()
    elements.feed(html)
    assert not {"script", "iframe", "svg", "object", "embed"} & {tag for tag, _ in elements.found}, html
    for _, attrs in elements.found:
        for name, value in attrs:
            assert not name.startswith("on"), html
            if name in ("href", "src"):
                assert (value or "").lower().startswith(("https:", "http:", "mailto:", "tel:")), html
    assert "之后" in html


def test_the_excerpt_is_plain_text() -> None:
    assert (
        plain_excerpt("# Title 标题\n\nSome **bold** & <b>raw</b> text")
        == "Title 标题 Some bold & <b>raw</b> text"
    )
    assert plain_excerpt("word " * 100, chars=20) == "word word word word…"
