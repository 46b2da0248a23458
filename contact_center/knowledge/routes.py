"""The knowledge base API: categories and articles (agents read published articles; supervisors
and admins also read drafts, write, publish and withdraw), search, and on a ticket the agent may
see: suggested articles from its subject and body, and the articles marked as solving it."""

from __future__ import annotations

from aiohttp import web

from contact_center.api.responses import json_out, page_bounds
from contact_center.api.spec import ApiRoutes, parse_body, parse_query, path_int
from contact_center.auth.middleware import viewer_of
from contact_center.knowledge.desk import ArticleFilter, KnowledgeDesk, is_writer
from contact_center.knowledge.markdown import plain_excerpt, render_markdown
from contact_center.knowledge.schemas import (
    ArticleIn,
    ArticleOut,
    ArticlePage,
    ArticleQuery,
    ArticleSummary,
    ArticleUpdate,
    CategoryIn,
    CategoryList,
    CategoryOut,
    CategoryUpdate,
    SearchHitOut,
    SearchQuery,
    SearchResults,
    SolutionsOut,
)
from contact_center.late import Late
from crm_core.models import ArticleStatus, KbArticle
from crm_core.services.knowledge import ArticleDraft
from crm_core.services.knowledge_search import Audience, SearchHit

routes = ApiRoutes("knowledge base")
KNOWLEDGE_DESK = web.AppKey("knowledge_desk", Late[KnowledgeDesk])
SUGGESTIONS = 5


def desk_of(request: web.Request) -> KnowledgeDesk:
    return request.app[KNOWLEDGE_DESK].get()


def _shown(article: KbArticle) -> tuple[str, str]:
    """The title and body a reader sees: the published version, else (writers only) the draft."""
    if article.status is ArticleStatus.PUBLISHED and article.published_title is not None:
        return article.published_title, article.published_body or ""
    return article.title, article.body


def article_summary(article: KbArticle) -> ArticleSummary:
    title, body = _shown(article)
    return ArticleSummary.model_validate(
        {**_columns(article), "title": title, "excerpt": plain_excerpt(body)}
    )


def _columns(article: KbArticle) -> dict[str, object]:
    names = ArticleSummary.model_fields.keys() - {"title", "excerpt"}
    return {name: getattr(article, name) for name in names}


def article_out(article: KbArticle, writer: bool) -> ArticleOut:
    title, body = _shown(article)
    extra: dict[str, object] = {}
    if writer:
        extra = {
            "draft_title": article.title,
            "draft_body": article.body,
            "unpublished_changes": article.published_version != article.version,
        }
    return ArticleOut.model_validate(
        {
            **_columns(article),
            "title": title,
            "excerpt": plain_excerpt(body),
            "body": body,
            "html": render_markdown(body),
            "author_id": article.author_id,
            "created_at": article.created_at,
            **extra,
        }
    )


def hits_out(hits: list[SearchHit]) -> SearchResults:
    return SearchResults(
        items=[
            SearchHitOut.model_validate({**article_summary(h.article).model_dump(), "score": h.score})
            for h in hits
        ]
    )


def _draft(body: ArticleIn | ArticleUpdate) -> ArticleDraft:
    fields = body.model_fields_set
    return ArticleDraft(
        title=body.title,
        body=body.body,
        language=body.language,
        visibility=body.visibility,
        category_id=body.category_id,
        clear_category="category_id" in fields and body.category_id is None,
    )


# --- categories ---------------------------------------------------------------------------------


@routes.route("GET", "/kb/categories", summary="The knowledge base's categories", response=CategoryList)
async def list_kb_categories(request: web.Request) -> web.Response:
    viewer_of(request)
    categories = await desk_of(request).categories()
    return json_out(CategoryList(items=[CategoryOut.model_validate(c) for c in categories]))


@routes.route(
    "POST",
    "/kb/categories",
    summary="Add a category (supervisors and admins)",
    body=CategoryIn,
    response=CategoryOut,
    status=201,
    error_codes=((409, "conflict", "a category of that name exists"),),
)
async def create_kb_category(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, CategoryIn)
    category = await desk_of(request).create_category(viewer, body.name, body.description, body.position)
    return json_out(CategoryOut.model_validate(category), 201)


@routes.route(
    "PATCH",
    "/kb/categories/{id}",
    summary="Rename, describe or reorder a category (supervisors and admins)",
    body=CategoryUpdate,
    response=CategoryOut,
    error_codes=((409, "conflict", "a category of that name exists"),),
)
async def update_kb_category(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    category_id = path_int(request)
    body = await parse_body(request, CategoryUpdate)
    category = await desk_of(request).update_category(
        viewer, category_id, body.name, body.description, body.position
    )
    return json_out(CategoryOut.model_validate(category))


@routes.route(
    "DELETE",
    "/kb/categories/{id}",
    summary="Delete a category; its articles stay, uncategorised (supervisors and admins)",
    status=204,
)
async def delete_kb_category(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    await desk_of(request).delete_category(viewer, path_int(request))
    return web.Response(status=204)


# --- articles -----------------------------------------------------------------------------------


@routes.route(
    "GET",
    "/kb/articles",
    summary="Articles, last changed first: agents see published ones, supervisors and admins drafts too",
    query=ArticleQuery,
    response=ArticlePage,
)
async def list_kb_articles(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    query = parse_query(request, ArticleQuery)
    limit, offset = page_bounds(request, query)
    wanted = ArticleFilter(category_id=query.category_id, language=query.language, status=query.status)
    page = await desk_of(request).articles(viewer, wanted, limit, offset)
    out = ArticlePage(
        items=[article_summary(a) for a in page.items], total=page.total, limit=limit, offset=offset
    )
    return json_out(out)


@routes.route(
    "POST",
    "/kb/articles",
    summary="Write a new article, as a draft (supervisors and admins)",
    body=ArticleIn,
    response=ArticleOut,
    status=201,
)
async def create_kb_article(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, ArticleIn)
    article = await desk_of(request).create_article(viewer, _draft(body))
    return json_out(article_out(article, True), 201)


@routes.route(
    "GET",
    "/kb/articles/{id}",
    summary="An article with its Markdown rendered: the published version (writers also get the draft)",
    response=ArticleOut,
)
async def get_kb_article(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    article = await desk_of(request).article(viewer, path_int(request))
    return json_out(article_out(article, is_writer(viewer)))


@routes.route(
    "PATCH",
    "/kb/articles/{id}",
    summary="Edit an article's draft (readers see the change once it is published); visibility, "
    "language and category apply at once (supervisors and admins)",
    body=ArticleUpdate,
    response=ArticleOut,
)
async def update_kb_article(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    article_id = path_int(request)
    body = await parse_body(request, ArticleUpdate)
    article = await desk_of(request).update_article(viewer, article_id, _draft(body))
    return json_out(article_out(article, True))


@routes.route(
    "POST",
    "/kb/articles/{id}/publish",
    summary="Publish the article's draft: readers see it from now on (supervisors and admins)",
    response=ArticleOut,
)
async def publish_kb_article(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    article = await desk_of(request).publish(viewer, path_int(request))
    return json_out(article_out(article, True))


@routes.route(
    "POST",
    "/kb/articles/{id}/withdraw",
    summary="Withdraw the published version: readers no longer see the article (supervisors and admins)",
    response=ArticleOut,
)
async def withdraw_kb_article(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    article = await desk_of(request).withdraw(viewer, path_int(request))
    return json_out(article_out(article, True))


@routes.route("DELETE", "/kb/articles/{id}", summary="Delete an article (supervisors and admins)", status=204)
async def delete_kb_article(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    await desk_of(request).delete_article(viewer, path_int(request))
    return web.Response(status=204)


@routes.route(
    "GET",
    "/kb/search",
    summary="Search the published articles (internal and public), in English and Chinese, best first",
    query=SearchQuery,
    response=SearchResults,
)
async def search_kb(request: web.Request) -> web.Response:
    viewer_of(request)
    query = parse_query(request, SearchQuery)
    hits = await desk_of(request).search(
        Audience.STAFF, query.q, language=query.language, category_id=query.category_id, limit=query.limit
    )
    return json_out(hits_out(hits))


# --- tickets ------------------------------------------------------------------------------------


@routes.route(
    "GET",
    "/kb/tickets/{id}/suggestions",
    summary="Articles matching a ticket's subject and body, leaving out those already solving it",
    response=SearchResults,
)
async def suggest_kb_articles(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    hits = await desk_of(request).suggestions(viewer, path_int(request), SUGGESTIONS)
    return json_out(hits_out(hits))


@routes.route(
    "GET",
    "/kb/tickets/{id}/solutions",
    summary="The articles marked as solving a ticket",
    response=SolutionsOut,
)
async def list_kb_solutions(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    articles = await desk_of(request).solutions(viewer, path_int(request))
    return json_out(SolutionsOut(items=[article_summary(a) for a in articles]))


@routes.route(
    "PUT",
    "/kb/tickets/{id}/solutions/{article_id}",
    summary="Mark a ticket as solved by a published article (counted once per ticket and article)",
    response=SolutionsOut,
    status=201,
    repeat_status=200,
)
async def mark_kb_solution(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    added, articles = await desk_of(request).mark_solved(
        viewer, path_int(request), path_int(request, "article_id")
    )
    return json_out(SolutionsOut(items=[article_summary(a) for a in articles]), 201 if added else 200)


@routes.route(
    "DELETE",
    "/kb/tickets/{id}/solutions/{article_id}",
    summary='Take back a ticket\'s "solved by" mark for an article',
    status=204,
)
async def unmark_kb_solution(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    await desk_of(request).unmark_solved(viewer, path_int(request), path_int(request, "article_id"))
    return web.Response(status=204)
