"""Searching the knowledge base's published articles, in English and Chinese alike.

A query is cut into terms: runs of letters and digits, and runs of CJK characters (which have no
spaces between words: a run longer than four characters is cut into overlapping three-character
pieces, so a sentence from a ticket still finds the articles sharing some of its words).

- PostgreSQL: English full text (``ts_rank`` over the title, weighted A, and the body, B) for
  the letter terms, read from the stored column ``kb_search_vector``; for CJK terms of three
  characters or more a substring match served by the pg_trgm index, for two-character ones the
  stored array of the text's CJK character pairs (``kb_search_bigrams``), and for a single
  character a substring scan. All are built by migration 0018 (the trigram index on exactly
  :data:`PG_TEXT`).
- SQLite: FTS5 with the trigram tokenizer (``kb_search_fts``, kept in step by triggers) ranked by
  ``bm25`` with the title weighted five times the body; terms shorter than three characters,
  which trigrams cannot match, fall back to ``LIKE`` (CJK terms always, letter terms only when
  the query has nothing longer); common English endings are taken off words first.

Any term matching is enough; the more terms an article matches, and in its title, the higher it
ranks; among equals the article that solved more tickets comes first. Only published articles
are searched, and the audience decides which: the public sees public ones only.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import ArticleStatus, ArticleVisibility, KbArticle
from crm_core.sql import dialect_name

MAX_TERMS = 24
MAX_TERM_CHARS = 64
CANDIDATES = 50
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TERM = re.compile(f"[{_CJK}]+|[^\\W_{_CJK}]+")
_CJK_RUN = re.compile(f"^[{_CJK}]+$")

PG_VECTOR = "kb_articles.kb_search_vector"
"""The weighted English vector (title A, body B): a stored generated column of PostgreSQL only."""
PG_BIGRAMS = "kb_articles.kb_search_bigrams"
"""The distinct CJK character pairs of the published text (PostgreSQL only): two-character words."""
PG_TEXT = "(coalesce(kb_articles.published_title, '') || ' ' || coalesce(kb_articles.published_body, ''))"


class Audience(enum.StrEnum):
    PUBLIC = "public"
    """The help centre and the chat widget: public articles only."""
    STAFF = "staff"
    """Agents, supervisors and admins: internal and public articles."""


@dataclass(frozen=True, slots=True)
class SearchHit:
    article: KbArticle
    score: float


def is_cjk(term: str) -> bool:
    return bool(_CJK_RUN.match(term))


def search_terms(query: str) -> list[str]:
    """The distinct terms of ``query``, lower-cased, in order, at most :data:`MAX_TERMS`."""
    terms: list[str] = []
    for run in _TERM.findall(query.lower()):
        run = run[:MAX_TERM_CHARS]
        if is_cjk(run) and len(run) > 4:
            terms.extend(run[i : i + 3] for i in range(len(run) - 2))
        else:
            terms.append(run)
    return list(dict.fromkeys(terms))[:MAX_TERMS]


def readable(audience: Audience) -> ColumnElement[bool]:
    """What ``audience`` may read: published articles, and public ones only for the public."""
    published = KbArticle.status == ArticleStatus.PUBLISHED
    if audience is Audience.PUBLIC:
        return and_(published, KbArticle.visibility == ArticleVisibility.PUBLIC)
    return published


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search_articles(
    session: AsyncSession,
    query: str,
    audience: Audience,
    *,
    language: str | None = None,
    category_id: int | None = None,
    limit: int = 10,
    exclude: Sequence[int] = (),
) -> list[SearchHit]:
    """The published articles ``audience`` may read that match ``query``, best first."""
    terms = search_terms(query)
    if not terms:
        return []
    filters = [readable(audience)]
    if language:
        filters.append(KbArticle.language == language)
    if category_id is not None:
        filters.append(KbArticle.category_id == category_id)
    if exclude:
        filters.append(KbArticle.id.not_in(list(exclude)))
    if dialect_name(session) == "postgresql":
        return await _search_postgresql(session, terms, filters, limit)
    return await _search_sqlite(session, terms, filters, limit)


async def _search_postgresql(
    session: AsyncSession, terms: list[str], filters: list[ColumnElement[bool]], limit: int
) -> list[SearchHit]:
    words = [t for t in terms if not is_cjk(t) and len(t) > 1]
    cjk = [t for t in terms if is_cjk(t)]
    matches: list[ColumnElement[bool]] = []
    score: ColumnElement[float] = literal(0.0, Float)
    if words:
        tsquery: ColumnElement[Any] = func.plainto_tsquery(literal_column("'english'::regconfig"), words[0])
        for word in words[1:]:
            tsquery = tsquery.op("||")(func.plainto_tsquery(literal_column("'english'::regconfig"), word))
        vector: ColumnElement[Any] = literal_column(PG_VECTOR)
        matches.append(vector.op("@@")(tsquery))
        score = score + func.ts_rank(vector, tsquery)
    for term in cjk:
        pattern = _like(term)
        found: ColumnElement[bool]
        if len(term) == 2:
            found = literal_column(PG_BIGRAMS, type_=ARRAY(Text)).contains(cast(array([term]), ARRAY(Text)))
        else:
            found = literal_column(PG_TEXT).like(pattern)
        matches.append(found)
        # A match in the title counts three times one in the body only.
        score = score + case(
            (func.coalesce(KbArticle.published_title, "").like(pattern), 0.6), (found, 0.2), else_=0.0
        )
    if not matches:
        return []
    ranked = score.label("score")
    stmt = (
        select(KbArticle, ranked)
        .where(*filters, or_(*matches))
        .order_by(ranked.desc(), KbArticle.solved_count.desc(), KbArticle.id.desc())
        .limit(limit)
    )
    return [SearchHit(article, float(s)) for article, s in (await session.execute(stmt)).all()]


def substring_stem(term: str) -> str:
    """An English word without a common ending, for substring search ("refunds", "refunded" and
    "refunding" all find "refund"); PostgreSQL stems properly."""
    if is_cjk(term):
        return term
    for ending in ("ing", "ed", "es", "s"):
        if term.endswith(ending) and len(term) - len(ending) >= 4:
            return term[: -len(ending)]
    return term


def _fts_query(terms: Sequence[str]) -> str:
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


async def _search_sqlite(
    session: AsyncSession, terms: list[str], filters: list[ColumnElement[bool]], limit: int
) -> list[SearchHit]:
    terms = list(dict.fromkeys(substring_stem(t) for t in terms))
    long_terms = [t for t in terms if len(t) >= 3]
    # A single letter or digit finds nearly everything: dropped, as PostgreSQL's search drops it.
    short = [t for t in terms if len(t) < 3 and (is_cjk(t) or (len(t) == 2 and not long_terms))]
    scores: dict[int, float] = {}
    articles: dict[int, KbArticle] = {}
    if long_terms:
        fts = text(
            "SELECT rowid AS id, -bm25(kb_search_fts, 5.0, 1.0) AS score FROM kb_search_fts "
            "WHERE kb_search_fts MATCH :query ORDER BY bm25(kb_search_fts, 5.0, 1.0) LIMIT :candidates"
        ).columns(id=KbArticle.id.type, score=Float())
        found = fts.bindparams(query=_fts_query(long_terms), candidates=CANDIDATES * 20).subquery()
        stmt = (
            select(KbArticle, found.c.score)
            .join(found, found.c.id == KbArticle.id)
            .where(*filters)
            .order_by(found.c.score.desc())
            .limit(CANDIDATES)
        )
        for article, score in (await session.execute(stmt)).all():
            articles[article.id] = article
            scores[article.id] = float(score)
    if short:
        title = func.coalesce(KbArticle.published_title, "")
        body = func.coalesce(KbArticle.published_body, "")
        like_score: ColumnElement[float] = literal(0.0, Float)
        matches = []
        for term in short:
            pattern = _like(term)
            matches.extend([title.like(pattern, escape="\\"), body.like(pattern, escape="\\")])
            like_score = like_score + case(
                (title.like(pattern, escape="\\"), 1.0), (body.like(pattern, escape="\\"), 0.4), else_=0.0
            )
        ranked = like_score.label("score")
        stmt = (
            select(KbArticle, ranked)
            .where(*filters, or_(*matches))
            .order_by(ranked.desc(), KbArticle.solved_count.desc())
            .limit(CANDIDATES)
        )
        for article, score in (await session.execute(stmt)).all():
            articles[article.id] = article
            scores[article.id] = scores.get(article.id, 0.0) + float(score)
    ordered = sorted(articles, key=lambda i: (-scores[i], -articles[i].solved_count, -i))
    return [SearchHit(articles[i], scores[i]) for i in ordered[:limit]]
