"""The knowledge base: categories, articles and their publishing, and tickets "solved by" an article.

An article is written as a draft; publishing copies the draft to the published version readers
see, so a published article can be edited without readers seeing the edit until it is published
again. Withdrawing takes the published version away. Who may do what is decided by the caller
(agents read and mark solutions; supervisors and admins write).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.errors import Conflict, InvalidInput, NotFound
from crm_core.models import (
    ArticleStatus,
    ArticleVisibility,
    EmailMessage,
    KbArticle,
    KbCategory,
    KbTicketSolution,
    Ticket,
    TicketComment,
)
from crm_core.services.audit import audit
from crm_core.services.knowledge_search import Audience, SearchHit, readable, search_articles
from crm_core.services.pages import Page, paginate
from crm_core.sql import insert_ignore

LANGUAGES = ("en", "zh-CN", "zh-TW", "fr", "de", "es", "ja", "ko")
SUGGESTION_TEXT_CHARS = 2000


@dataclass(frozen=True, slots=True)
class ArticleDraft:
    """The fields an author gives; ``None`` leaves a field as it is when editing."""

    title: str | None = None
    body: str | None = None
    language: str | None = None
    visibility: ArticleVisibility | None = None
    category_id: int | None = None
    clear_category: bool = False


def _clean_title(title: str) -> str:
    text = " ".join(title.split())
    if not text:
        raise InvalidInput("the title is empty", "title")
    return text


def _check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise InvalidInput(f"the language must be one of {', '.join(LANGUAGES)}", "language")
    return language


async def _check_category(session: AsyncSession, category_id: int) -> None:
    if await session.get(KbCategory, category_id) is None:
        raise InvalidInput(f"no category {category_id}", "category_id")


# --- categories ---------------------------------------------------------------------------------


async def list_categories(session: AsyncSession) -> list[KbCategory]:
    return list(await session.scalars(select(KbCategory).order_by(KbCategory.position, KbCategory.name)))


async def _category(session: AsyncSession, category_id: int) -> KbCategory:
    category = await session.get(KbCategory, category_id)
    if category is None:
        raise NotFound(f"category {category_id} not found")
    return category


async def _name_free(session: AsyncSession, name: str, but: int | None = None) -> None:
    stmt = select(KbCategory.id).where(KbCategory.name == name)
    if but is not None:
        stmt = stmt.where(KbCategory.id != but)
    if await session.scalar(stmt) is not None:
        raise Conflict(f"a category named {name!r} exists")


async def create_category(
    session: AsyncSession, actor_id: int, name: str, description: str = "", position: int = 0
) -> KbCategory:
    name = _clean_title(name)
    await _name_free(session, name)
    category = KbCategory(name=name, description=description.strip(), position=position)
    session.add(category)
    await session.flush()
    audit(session, "kb_category", category.id, "create", actor_id, {"name": name})
    return category


async def update_category(
    session: AsyncSession,
    actor_id: int,
    category_id: int,
    *,
    name: str | None = None,
    description: str | None = None,
    position: int | None = None,
) -> KbCategory:
    category = await _category(session, category_id)
    if name is not None:
        new_name = _clean_title(name)
        await _name_free(session, new_name, but=category_id)  # before the change is flushed
        category.name = new_name
    if description is not None:
        category.description = description.strip()
    if position is not None:
        category.position = position
    audit(session, "kb_category", category_id, "update", actor_id, {"name": category.name})
    return category


async def delete_category(session: AsyncSession, actor_id: int, category_id: int) -> None:
    """Delete a category; its articles stay, uncategorised."""
    await _category(session, category_id)
    await session.execute(
        update(KbArticle).where(KbArticle.category_id == category_id).values(category_id=None)
    )
    await session.execute(delete(KbCategory).where(KbCategory.id == category_id))
    audit(session, "kb_category", category_id, "delete", actor_id)


# --- articles -----------------------------------------------------------------------------------


async def create_article(session: AsyncSession, author_id: int, draft: ArticleDraft) -> KbArticle:
    if draft.title is None:
        raise InvalidInput("the title is required", "title")
    if draft.category_id is not None:
        await _check_category(session, draft.category_id)
    article = KbArticle(
        title=_clean_title(draft.title),
        body=draft.body or "",
        language=_check_language(draft.language or "en"),
        visibility=draft.visibility or ArticleVisibility.INTERNAL,
        category_id=draft.category_id,
        author_id=author_id,
        version=1,
        status=ArticleStatus.DRAFT,
        solved_count=0,
    )
    session.add(article)
    await session.flush()
    audit(session, "kb_article", article.id, "create", author_id, {"title": article.title})
    return article


async def get_article(
    session: AsyncSession, article_id: int, *, audience: Audience | None = None, for_update: bool = False
) -> KbArticle:
    """The article; with an ``audience``, only if it may read it (published, visible to it)."""
    stmt = select(KbArticle).where(KbArticle.id == article_id)
    if audience is not None:
        stmt = stmt.where(readable(audience))
    if for_update:
        stmt = stmt.with_for_update()
    article = await session.scalar(stmt)
    if article is None:
        raise NotFound(f"article {article_id} not found")
    return article


async def update_article(
    session: AsyncSession, actor_id: int, article_id: int, draft: ArticleDraft
) -> KbArticle:
    """Edit the draft (a new draft version when the title or body change); the visibility, language
    and category apply at once."""
    article = await get_article(session, article_id, for_update=True)
    changed: dict[str, Any] = {}
    if draft.title is not None and _clean_title(draft.title) != article.title:
        article.title = changed["title"] = _clean_title(draft.title)
    if draft.body is not None and draft.body != article.body:
        article.body = draft.body
        changed["body"] = True
    if changed:
        article.version += 1
    if draft.language is not None:
        article.language = changed["language"] = _check_language(draft.language)
    if draft.visibility is not None:
        article.visibility = changed["visibility"] = draft.visibility
    if draft.clear_category:
        article.category_id = changed["category_id"] = None
    elif draft.category_id is not None:
        await _check_category(session, draft.category_id)
        article.category_id = changed["category_id"] = draft.category_id
    if changed:
        audit(session, "kb_article", article_id, "update", actor_id, {**changed, "version": article.version})
    return article


async def publish_article(session: AsyncSession, actor_id: int, article_id: int, now: datetime) -> KbArticle:
    """Readers see the draft as it is now."""
    article = await get_article(session, article_id, for_update=True)
    article.published_title = article.title
    article.published_body = article.body
    article.published_version = article.version
    article.published_at = now
    article.status = ArticleStatus.PUBLISHED
    audit(session, "kb_article", article_id, "publish", actor_id, {"version": article.version})
    return article


async def withdraw_article(session: AsyncSession, actor_id: int, article_id: int) -> KbArticle:
    """Readers no longer see the article; its draft stays."""
    article = await get_article(session, article_id, for_update=True)
    article.published_title = article.published_body = None
    article.published_version = None
    article.published_at = None
    article.status = ArticleStatus.DRAFT
    audit(session, "kb_article", article_id, "withdraw", actor_id)
    return article


async def delete_article(session: AsyncSession, actor_id: int, article_id: int) -> None:
    await get_article(session, article_id)
    await session.execute(delete(KbArticle).where(KbArticle.id == article_id))
    audit(session, "kb_article", article_id, "delete", actor_id)


async def list_articles(
    session: AsyncSession,
    *,
    audience: Audience | None,
    category_id: int | None = None,
    language: str | None = None,
    status: ArticleStatus | None = None,
    limit: int,
    offset: int,
) -> Page[KbArticle]:
    """Articles newest first; ``audience`` None lists drafts too (for their writers)."""
    stmt = select(KbArticle)
    if audience is not None:
        stmt = stmt.where(readable(audience))
    if status is not None:
        stmt = stmt.where(KbArticle.status == status)
    if category_id is not None:
        stmt = stmt.where(KbArticle.category_id == category_id)
    if language:
        stmt = stmt.where(KbArticle.language == language)
    return await paginate(
        session, stmt, KbArticle.updated_at.desc(), KbArticle.id.desc(), limit=limit, offset=offset
    )


# --- tickets ------------------------------------------------------------------------------------


async def ticket_text(session: AsyncSession, ticket: Ticket) -> str:
    """The ticket's subject and body: its first e-mail's text, else its first comment."""
    body = await session.scalar(
        select(EmailMessage.visible_text)
        .where(EmailMessage.ticket_id == ticket.id)
        .order_by(EmailMessage.id)
        .limit(1)
    )
    if not body:
        body = await session.scalar(
            select(TicketComment.body)
            .where(TicketComment.ticket_id == ticket.id)
            .order_by(TicketComment.id)
            .limit(1)
        )
    return f"{ticket.subject}\n{(body or '')[:SUGGESTION_TEXT_CHARS]}"


async def suggest_for_ticket(session: AsyncSession, ticket: Ticket, limit: int = 5) -> list[SearchHit]:
    """Published articles matching the ticket's subject and body, leaving out those already marked
    as solving it."""
    solved = list(
        await session.scalars(
            select(KbTicketSolution.article_id).where(KbTicketSolution.ticket_id == ticket.id)
        )
    )
    return await search_articles(
        session, await ticket_text(session, ticket), Audience.STAFF, limit=limit, exclude=solved
    )


async def mark_solved(session: AsyncSession, agent_id: int, ticket: Ticket, article_id: int) -> bool:
    """Record that ``article_id`` solved the ticket; False if it was already recorded."""
    await get_article(session, article_id, audience=Audience.STAFF)
    added = await insert_ignore(
        session,
        KbTicketSolution,
        {"ticket_id": ticket.id, "article_id": article_id, "agent_id": agent_id},
        ["ticket_id", "article_id"],
    )
    if added is None:
        return False
    await session.execute(
        update(KbArticle).where(KbArticle.id == article_id).values(solved_count=KbArticle.solved_count + 1)
    )
    audit(session, "ticket", ticket.id, "solved_by", agent_id, {"article_id": article_id})
    return True


async def unmark_solved(session: AsyncSession, agent_id: int, ticket: Ticket, article_id: int) -> bool:
    removed = await session.execute(
        delete(KbTicketSolution)
        .where(KbTicketSolution.ticket_id == ticket.id, KbTicketSolution.article_id == article_id)
        .returning(KbTicketSolution.article_id)
    )
    if removed.scalar_one_or_none() is None:
        return False
    await session.execute(
        update(KbArticle).where(KbArticle.id == article_id).values(solved_count=KbArticle.solved_count - 1)
    )
    audit(session, "ticket", ticket.id, "not_solved_by", agent_id, {"article_id": article_id})
    return True


async def solutions_of(session: AsyncSession, ticket: Ticket) -> list[KbArticle]:
    """The articles marked as solving the ticket, in the order they were marked."""
    stmt = (
        select(KbArticle)
        .join(KbTicketSolution, KbTicketSolution.article_id == KbArticle.id)
        .where(KbTicketSolution.ticket_id == ticket.id)
        .order_by(KbTicketSolution.created_at, KbArticle.id)
    )
    return list(await session.scalars(stmt))
