"""The knowledge base's use cases: who reads what (agents the published articles, internal and
public; supervisors and admins drafts too, and they alone write), suggestions and "solved by" on
the tickets an agent may see, and the public's read-only view. One unit of work per call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crm_core.db import UnitOfWorkFactory
from crm_core.errors import Forbidden
from crm_core.models import ArticleStatus, KbArticle, KbCategory, Role
from crm_core.ports import Clock
from crm_core.services import knowledge as kb
from crm_core.services.knowledge_search import Audience, SearchHit, search_articles
from crm_core.services.pages import Page
from crm_core.services.tickets import get_ticket
from crm_core.visibility import Viewer


def is_writer(viewer: Viewer) -> bool:
    return viewer.role in (Role.SUPERVISOR, Role.ADMIN)


def _writer(viewer: Viewer) -> None:
    if not is_writer(viewer):
        raise Forbidden("writing the knowledge base needs the supervisor or admin role")


@dataclass(frozen=True, slots=True)
class ArticleFilter:
    category_id: int | None = None
    language: str | None = None
    status: ArticleStatus | None = None


class KnowledgeDesk:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    # --- categories ---

    async def categories(self) -> list[KbCategory]:
        async with self._uow() as uow:
            return await kb.list_categories(uow.session)

    async def create_category(self, viewer: Viewer, name: str, description: str, position: int) -> KbCategory:
        _writer(viewer)
        async with self._uow() as uow:
            category = await kb.create_category(uow.session, viewer.agent_id, name, description, position)
            await uow.commit()
            return category

    async def update_category(
        self,
        viewer: Viewer,
        category_id: int,
        name: str | None,
        description: str | None,
        position: int | None,
    ) -> KbCategory:
        _writer(viewer)
        async with self._uow() as uow:
            category = await kb.update_category(
                uow.session,
                viewer.agent_id,
                category_id,
                name=name,
                description=description,
                position=position,
            )
            await uow.commit()
            return category

    async def delete_category(self, viewer: Viewer, category_id: int) -> None:
        _writer(viewer)
        async with self._uow() as uow:
            await kb.delete_category(uow.session, viewer.agent_id, category_id)
            await uow.commit()

    # --- articles ---

    async def articles(
        self, viewer: Viewer, wanted: ArticleFilter, limit: int, offset: int
    ) -> Page[KbArticle]:
        writer = is_writer(viewer)
        async with self._uow() as uow:
            return await kb.list_articles(
                uow.session,
                audience=None if writer else Audience.STAFF,
                category_id=wanted.category_id,
                language=wanted.language,
                status=wanted.status if writer else None,
                limit=limit,
                offset=offset,
            )

    async def article(self, viewer: Viewer, article_id: int) -> KbArticle:
        async with self._uow() as uow:
            audience = None if is_writer(viewer) else Audience.STAFF
            return await kb.get_article(uow.session, article_id, audience=audience)

    async def create_article(self, viewer: Viewer, draft: kb.ArticleDraft) -> KbArticle:
        _writer(viewer)
        async with self._uow() as uow:
            article = await kb.create_article(uow.session, viewer.agent_id, draft)
            await uow.commit()
            return article

    async def update_article(self, viewer: Viewer, article_id: int, draft: kb.ArticleDraft) -> KbArticle:
        _writer(viewer)
        async with self._uow() as uow:
            article = await kb.update_article(uow.session, viewer.agent_id, article_id, draft)
            await uow.commit()
            return article

    async def publish(self, viewer: Viewer, article_id: int) -> KbArticle:
        _writer(viewer)
        async with self._uow() as uow:
            article = await kb.publish_article(uow.session, viewer.agent_id, article_id, self._clock.now())
            await uow.commit()
            return article

    async def withdraw(self, viewer: Viewer, article_id: int) -> KbArticle:
        _writer(viewer)
        async with self._uow() as uow:
            article = await kb.withdraw_article(uow.session, viewer.agent_id, article_id)
            await uow.commit()
            return article

    async def delete_article(self, viewer: Viewer, article_id: int) -> None:
        _writer(viewer)
        async with self._uow() as uow:
            await kb.delete_article(uow.session, viewer.agent_id, article_id)
            await uow.commit()

    # --- search and tickets ---

    async def search(
        self,
        audience: Audience,
        query: str,
        *,
        language: str | None = None,
        category_id: int | None = None,
        limit: int = 10,
    ) -> list[SearchHit]:
        async with self._uow() as uow:
            return await search_articles(
                uow.session, query, audience, language=language, category_id=category_id, limit=limit
            )

    async def public_article(self, article_id: int) -> KbArticle:
        async with self._uow() as uow:
            return await kb.get_article(uow.session, article_id, audience=Audience.PUBLIC)

    async def public_articles(self, limit: int) -> Sequence[KbArticle]:
        async with self._uow() as uow:
            page = await kb.list_articles(uow.session, audience=Audience.PUBLIC, limit=limit, offset=0)
            return page.items

    async def suggestions(self, viewer: Viewer, ticket_id: int, limit: int) -> list[SearchHit]:
        async with self._uow() as uow:
            ticket = await get_ticket(uow.session, viewer, ticket_id)
            return await kb.suggest_for_ticket(uow.session, ticket, limit)

    async def solutions(self, viewer: Viewer, ticket_id: int) -> list[KbArticle]:
        async with self._uow() as uow:
            ticket = await get_ticket(uow.session, viewer, ticket_id)
            return await kb.solutions_of(uow.session, ticket)

    async def mark_solved(
        self, viewer: Viewer, ticket_id: int, article_id: int
    ) -> tuple[bool, list[KbArticle]]:
        async with self._uow() as uow:
            ticket = await get_ticket(uow.session, viewer, ticket_id)
            added = await kb.mark_solved(uow.session, viewer.agent_id, ticket, article_id)
            await uow.commit()
            return added, await kb.solutions_of(uow.session, ticket)

    async def unmark_solved(self, viewer: Viewer, ticket_id: int, article_id: int) -> None:
        async with self._uow() as uow:
            ticket = await get_ticket(uow.session, viewer, ticket_id)
            await kb.unmark_solved(uow.session, viewer.agent_id, ticket, article_id)
            await uow.commit()
