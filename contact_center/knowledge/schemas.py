"""Request and response bodies of the knowledge base API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from contact_center.api.schemas import Id, Input, Name, Output, PageOut, PageQuery, not_null
from crm_core.models import ArticleStatus, ArticleVisibility

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Body = Annotated[str, Field(max_length=100_000, description="Markdown")]
Language = Annotated[str, Field(max_length=10, description="en, zh-CN, zh-TW, fr, de, es, ja or ko")]
SearchText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Position = Annotated[int, Field(ge=0, le=1_000_000)]


class CategoryIn(Input):
    name: Name
    description: str = Field(default="", max_length=2000)
    position: Position = 0


class CategoryUpdate(Input):
    name: Name | None = None
    description: str | None = Field(default=None, max_length=2000)
    position: Position | None = None

    _not_null = field_validator("name", "description", "position")(not_null)


class CategoryOut(Output):
    id: int
    name: str
    description: str
    position: int


class CategoryList(Output):
    items: list[CategoryOut]


class ArticleIn(Input):
    title: Title
    body: Body = ""
    language: Language = "en"
    visibility: ArticleVisibility = ArticleVisibility.INTERNAL
    category_id: Id | None = None


class ArticleUpdate(Input):
    title: Title | None = None
    body: Body | None = None
    language: Language | None = None
    visibility: ArticleVisibility | None = None
    category_id: Id | None = Field(default=None, description="null takes the article out of its category")

    _not_null = field_validator("title", "body", "language", "visibility")(not_null)


class ArticleSummary(Output):
    """An article as its reader sees it in a list: the published version (for writers, the draft of
    an article never published)."""

    id: int
    title: str
    excerpt: str
    category_id: int | None
    language: str
    visibility: ArticleVisibility
    status: ArticleStatus
    version: int
    published_version: int | None
    published_at: datetime | None
    solved_count: int
    updated_at: datetime


class ArticleOut(ArticleSummary):
    """``body``/``html``: what the reader sees (the published version; writers get the draft in
    ``draft_title``/``draft_body`` as well)."""

    body: str
    html: str
    author_id: int | None
    created_at: datetime
    draft_title: str | None = None
    draft_body: str | None = None
    unpublished_changes: bool = False


class ArticlePage(PageOut[ArticleSummary]):
    pass


class ArticleQuery(PageQuery):
    category_id: Id | None = None
    language: Language | None = None
    status: ArticleStatus | None = Field(default=None, description="Writers only: draft or published")


class SearchQuery(Input):
    q: SearchText
    language: Language | None = None
    category_id: Id | None = None
    limit: int = Field(default=10, ge=1, le=50)


class SearchHitOut(ArticleSummary):
    score: float


class SearchResults(Output):
    items: list[SearchHitOut]


class SolutionsOut(Output):
    items: list[ArticleSummary]
