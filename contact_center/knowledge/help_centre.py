"""The public help centre: read-only pages of the public, published articles (no sign-in) and the
JSON search the chat widget calls before a visitor starts a chat. Internal articles and drafts
never show here. The pages are rendered on the server (Jinja2, autoescaped; article bodies are
sanitised HTML) and served under a Content-Security-Policy that allows no script at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

from contact_center.appkeys import RUNTIME
from contact_center.knowledge.markdown import plain_excerpt, render_markdown
from contact_center.knowledge.routes import desk_of
from crm_core.errors import NotFound
from crm_core.services.knowledge_search import Audience

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' https: data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
MAX_QUERY_CHARS = 500
PAGE_RESULTS = 20
HOME_ARTICLES = 200
WIDGET_RESULTS = 5
# Searches one address may make per minute (the widget searches as a visitor types).
SEARCHES_PER_MINUTE = 60
SEARCH_WINDOW_SECONDS = 60
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

routes = web.RouteTableDef()


def _html(template: str, status: int = 200, **context: Any) -> web.Response:
    context.setdefault("query", "")
    context.setdefault("lang", "en")
    context.setdefault("limited", False)
    body = TEMPLATES.get_template(template).render(**context)
    return web.Response(text=body, content_type="text/html", charset="utf-8", status=status, headers=HEADERS)


def _query(request: web.Request) -> str:
    return request.query.get("q", "").replace("\x00", "").strip()[:MAX_QUERY_CHARS]


async def _within_limit(request: web.Request) -> bool:
    runtime = request.app[RUNTIME]
    key = f"kb-help-search:{request.remote or 'unknown'}"
    return await runtime.limiter.hit(key, SEARCHES_PER_MINUTE, SEARCH_WINDOW_SECONDS)


@routes.get("/help")
async def help_home(request: web.Request) -> web.Response:
    desk = desk_of(request)
    query = _query(request)
    if query:
        if not await _within_limit(request):
            return _html("index.html", 429, query=query, results=[], limited=True)
        hits = await desk.search(Audience.PUBLIC, query, limit=PAGE_RESULTS)
        results = [
            {
                "id": h.article.id,
                "title": h.article.published_title,
                "excerpt": plain_excerpt(h.article.published_body or ""),
            }
            for h in hits
        ]
        return _html("index.html", query=query, results=results)
    # In the categories' own order (position, then name), the uncategorised last.
    order: dict[int | None, str] = {c.id: c.name for c in await desk.categories()}
    order[None] = "General · 常见问题"
    grouped: dict[int | None, list[dict[str, Any]]] = {key: [] for key in order}
    for article in await desk.public_articles(HOME_ARTICLES):
        grouped[article.category_id if article.category_id in order else None].append(
            {"id": article.id, "title": article.published_title}
        )
    categories = [{"name": order[key], "articles": items} for key, items in grouped.items() if items]
    return _html("index.html", categories=categories, results=[])


@routes.get(r"/help/articles/{id:\d{1,18}}")
async def help_article(request: web.Request) -> web.Response:
    try:
        article = await desk_of(request).public_article(int(request.match_info["id"]))
    except NotFound:
        return _html("index.html", 404, query="", categories=[], results=[])
    return _html(
        "article.html",
        lang=article.language,
        title=article.published_title,
        html=render_markdown(article.published_body or ""),
        published_at=article.published_at.date().isoformat() if article.published_at else "",
    )


def _widget_origins(request: web.Request) -> frozenset[str]:
    """The sites the chat widget is embedded in (``webchat.allowed_origins``) and the service's own."""
    settings = request.app[RUNTIME].settings
    own = urlsplit(settings.server.public_base_url)
    return frozenset({*settings.webchat.allowed_origins, f"{own.scheme}://{own.netloc}"})


@routes.get("/help/search.json")
async def help_search(request: web.Request) -> web.Response:
    """Public articles matching ``q`` (the chat widget offers them before a chat starts). The
    widget runs in the pages of the sites it is embedded in: those origins may read the answer."""
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache", "Vary": "Origin"}
    origin = request.headers.get("Origin")
    if origin and origin in _widget_origins(request):
        headers["Access-Control-Allow-Origin"] = origin
    query = _query(request)
    if not await _within_limit(request):
        error = {
            "error": {
                "status": 429,
                "code": "too_many_requests",
                "message": "too many searches; wait a minute",
            }
        }
        return web.json_response(
            error, status=429, headers={**headers, "Retry-After": str(SEARCH_WINDOW_SECONDS)}
        )
    hits = await desk_of(request).search(Audience.PUBLIC, query, limit=WIDGET_RESULTS) if query else []
    items = [
        {
            "id": h.article.id,
            "title": h.article.published_title,
            "excerpt": plain_excerpt(h.article.published_body or ""),
            "url": f"/help/articles/{h.article.id}",
        }
        for h in hits
    ]
    return web.json_response({"items": items}, headers=headers)
