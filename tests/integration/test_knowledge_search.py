"""Knowledge base services on both engines: English and Chinese search (a two-character Chinese
query too), ranking, drafts kept from readers, visibility by audience, suggestions for a ticket
and "solved by" counts."""

from __future__ import annotations

from datetime import UTC, datetime

from crm_core.db import UnitOfWorkFactory
from crm_core.models import ArticleStatus, ArticleVisibility, KbArticle
from crm_core.services import knowledge as kb
from crm_core.services.customers import create_customer
from crm_core.services.knowledge_search import Audience, search_articles, search_terms
from crm_core.services.tickets import SlaPolicy, comment, open_ticket
from crm_core.visibility import Viewer
from tests.conftest import Staff

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
PUBLIC, INTERNAL = ArticleVisibility.PUBLIC, ArticleVisibility.INTERNAL


async def article(
    uow_factory: UnitOfWorkFactory,
    author: int,
    title: str,
    body: str,
    visibility: ArticleVisibility = PUBLIC,
    language: str = "en",
    publish: bool = True,
) -> int:
    async with uow_factory() as uow:
        created = await kb.create_article(
            uow.session,
            author,
            kb.ArticleDraft(title=title, body=body, visibility=visibility, language=language),
        )
        if publish:
            await kb.publish_article(uow.session, author, created.id, NOW)
        await uow.commit()
        return created.id


async def found(uow_factory: UnitOfWorkFactory, query: str, audience: Audience = Audience.STAFF) -> list[int]:
    async with uow_factory() as uow:
        return [hit.article.id for hit in await search_articles(uow.session, query, audience)]


def test_query_terms_cut_chinese_sentences_into_overlapping_pieces() -> None:
    assert search_terms("Refund, refund 退款!") == ["refund", "退款"]
    assert search_terms("我想申请退款") == ["我想申", "想申请", "申请退", "请退款"]
    assert search_terms("   ") == []


async def test_english_and_chinese_search_ranked_title_first(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    author = staff.red_lead.id
    in_title = await article(uow_factory, author, "Refund policy", "How money comes back to you.")
    in_body = await article(uow_factory, author, "Orders", "A cancelled order gets a refund within days.")
    unrelated = await article(uow_factory, author, "Passwords", "Reset your password from the login page.")
    zh_title = await article(uow_factory, author, "退款政策", "钱会在七天内退回。", language="zh-CN")
    zh_body = await article(uow_factory, author, "订单说明", "取消订单后可以申请退款。", language="zh-CN")
    assert await found(uow_factory, "refund") == [in_title, in_body]
    assert (await found(uow_factory, "REFUNDS"))[:2] == [in_title, in_body]  # stemmed or trigram
    assert await found(uow_factory, "退款政策") == [zh_title]
    # Two characters: shorter than a trigram, found all the same, title first.
    assert await found(uow_factory, "退款") == [zh_title, zh_body]
    assert await found(uow_factory, "申请退款") == [zh_body]
    assert unrelated not in await found(uow_factory, "refund 退款")
    assert set(await found(uow_factory, "refund 退款")) == {in_title, in_body, zh_title, zh_body}
    assert await found(uow_factory, "100%_\\ 'x\"") == []


async def test_readers_see_the_published_version_and_the_public_only_public_articles(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    author = staff.red_lead.id
    draft = await article(uow_factory, author, "Voicemail greeting", "Record it.", publish=False)
    internal = await article(uow_factory, author, "Voicemail escalation", "Call the lead.", INTERNAL)
    public = await article(uow_factory, author, "Voicemail for customers", "Press 1.")
    assert set(await found(uow_factory, "voicemail")) == {public, internal}
    assert await found(uow_factory, "voicemail", Audience.PUBLIC) == [public]
    assert draft not in await found(uow_factory, "greeting")

    async with uow_factory() as uow:
        await kb.update_article(uow.session, author, public, kb.ArticleDraft(title="Fax for customers"))
        await uow.commit()
    async with uow_factory() as uow:
        seen = await kb.get_article(uow.session, public, audience=Audience.PUBLIC)
        assert (seen.published_title, seen.title, seen.version, seen.published_version) == (
            "Voicemail for customers",
            "Fax for customers",
            2,
            1,
        )
    assert await found(uow_factory, "fax") == []
    async with uow_factory() as uow:
        await kb.publish_article(uow.session, author, public, NOW)
        await kb.withdraw_article(uow.session, author, internal)
        await uow.commit()
    assert await found(uow_factory, "fax", Audience.PUBLIC) == [public]
    assert await found(uow_factory, "voicemail") == []
    async with uow_factory() as uow:
        withdrawn = await uow.session.get(KbArticle, internal)
        assert withdrawn is not None and withdrawn.status is ArticleStatus.DRAFT


async def test_suggestions_for_a_ticket_and_solved_by_counts(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    author = staff.red_lead.id
    agent = Viewer.of(staff.red_1)
    printer = await article(uow_factory, author, "Printer offline", "Restart the printer spooler.", INTERNAL)
    zh = await article(uow_factory, author, "打印机无法连接", "重启打印服务。", language="zh-CN")
    await article(uow_factory, author, "Holiday hours", "We close on public holidays.")
    async with uow_factory() as uow:
        customer = await create_customer(uow, None, region="US", display_name="王芳")
        ticket = await open_ticket(
            uow, None, customer_id=customer.id, subject="My printer is offline", sla=SlaPolicy()
        )
        await comment(uow, agent, ticket.id, "打印机无法连接到电脑")
        await uow.commit()
    async with uow_factory() as uow:
        suggested = [hit.article.id for hit in await kb.suggest_for_ticket(uow.session, ticket)]
        assert set(suggested) == {printer, zh}
        assert await kb.mark_solved(uow.session, agent.agent_id, ticket, printer) is True
        assert await kb.mark_solved(uow.session, agent.agent_id, ticket, printer) is False
        await uow.commit()
    async with uow_factory() as uow:
        assert [a.id for a in await kb.solutions_of(uow.session, ticket)] == [printer]
        assert [hit.article.id for hit in await kb.suggest_for_ticket(uow.session, ticket)] == [zh]
        counted = await uow.session.get(KbArticle, printer)
        assert counted is not None and counted.solved_count == 1
        assert await kb.unmark_solved(uow.session, agent.agent_id, ticket, printer) is True
        assert await kb.unmark_solved(uow.session, agent.agent_id, ticket, printer) is False
        await uow.commit()
    async with uow_factory() as uow:
        counted = await uow.session.get(KbArticle, printer)
        assert counted is not None and counted.solved_count == 0
