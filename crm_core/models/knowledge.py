"""The knowledge base: categories, articles (a draft and the version readers see) and the tickets
an article solved.

An article keeps its working draft (``title``, ``body``, ``version``) apart from what was last
published (``published_title``, ``published_body``, ``published_version``): editing a published
article changes nothing readers see until it is published again. Search reads the published
columns only (the PostgreSQL indexes and SQLite's FTS5 table ``kb_search_fts`` are built on them
by the migration: see :mod:`crm_core.services.knowledge_search`).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, BigIntId, Timestamped, str_enum, utcnow


class ArticleVisibility(enum.StrEnum):
    INTERNAL = "internal"
    """Agents only."""
    PUBLIC = "public"
    """Also the help centre and the chat widget."""


class ArticleStatus(enum.StrEnum):
    DRAFT = "draft"
    """Never published, or withdrawn: readers see nothing."""
    PUBLISHED = "published"
    """Readers see the published version (the draft may hold newer, unpublished changes)."""


class KbCategory(Base):
    __tablename__ = "kb_categories"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class KbArticle(Timestamped, Base):
    __tablename__ = "kb_articles"
    __table_args__ = (
        Index("ix_kb_articles_status_visibility", "status", "visibility"),
        Index("ix_kb_articles_category_id", "category_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    category_id: Mapped[int | None] = mapped_column(ForeignKey("kb_categories.id", ondelete="SET NULL"))
    language: Mapped[str] = mapped_column(String(10), default="en")
    visibility: Mapped[ArticleVisibility] = mapped_column(
        str_enum(ArticleVisibility), default=ArticleVisibility.INTERNAL
    )
    status: Mapped[ArticleStatus] = mapped_column(str_enum(ArticleStatus), default=ArticleStatus.DRAFT)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    """Markdown."""
    version: Mapped[int] = mapped_column(default=1)
    """The draft's version: one more at every edit."""
    published_title: Mapped[str | None] = mapped_column(String(300))
    published_body: Mapped[str | None] = mapped_column(Text)
    published_version: Mapped[int | None]
    published_at: Mapped[datetime | None]
    author_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    solved_count: Mapped[int] = mapped_column(default=0)
    """How many tickets were marked solved by this article."""


class KbTicketSolution(Base):
    """A ticket marked "solved by" an article (once per pair)."""

    __tablename__ = "kb_ticket_solutions"
    __table_args__ = (Index("ix_kb_ticket_solutions_article_id", "article_id"),)

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("kb_articles.id", ondelete="CASCADE"), primary_key=True
    )
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
