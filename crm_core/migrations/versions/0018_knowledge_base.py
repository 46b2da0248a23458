"""knowledge base: categories, articles (draft and published version), the tickets an article
solved, and the search indexes (PostgreSQL full text and pg_trgm trigrams, SQLite FTS5 trigrams)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 22:40:00

The search structures are named ``kb_search_*`` and live outside the models: on PostgreSQL a
stored generated ``tsvector`` column and an array of the CJK character pairs, each with its
GIN index, and a pg_trgm expression index over the
published columns; on SQLite an FTS5 table kept in step with ``kb_articles`` by triggers.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# PostgreSQL: the weighted English vector is a stored generated column (ranking reads it instead
# of parsing every matching body again); the trigram index's expression must match
# crm_core.services.knowledge_search.PG_TEXT exactly, or PostgreSQL will not use it.
PG_VECTOR = (
    "setweight(to_tsvector('english'::regconfig, coalesce(published_title, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(published_body, '')), 'B')"
)
PG_TEXT = "(coalesce(published_title, '') || ' ' || coalesce(published_body, ''))"
# Two-character CJK words are shorter than a trigram: the distinct CJK character pairs of the
# published text, in an array with a GIN index, find them without reading every article.
PG_BIGRAMS_FUNCTION = """
CREATE FUNCTION kb_search_cjk_bigrams(body text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
  SELECT coalesce(array_agg(DISTINCT pair), '{}')
    FROM (SELECT substr(body, i, 2) AS pair FROM generate_series(1, length(body) - 1) AS i) AS pairs
   WHERE pair ~ '^[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]{2}$'
$$
"""

SQLITE_SEARCH = [
    "CREATE VIRTUAL TABLE kb_search_fts USING fts5(title, body, tokenize='trigram')",
    "CREATE TRIGGER kb_search_insert AFTER INSERT ON kb_articles WHEN new.published_version IS NOT NULL "
    "BEGIN INSERT INTO kb_search_fts(rowid, title, body) "
    "VALUES (new.id, new.published_title, new.published_body); END",
    "CREATE TRIGGER kb_search_update AFTER UPDATE OF published_title, published_body, published_version "
    "ON kb_articles BEGIN DELETE FROM kb_search_fts WHERE rowid = old.id; "
    "INSERT INTO kb_search_fts(rowid, title, body) SELECT new.id, new.published_title, new.published_body "
    "WHERE new.published_version IS NOT NULL; END",
    "CREATE TRIGGER kb_search_delete AFTER DELETE ON kb_articles "
    "BEGIN DELETE FROM kb_search_fts WHERE rowid = old.id; END",
]


def upgrade() -> None:
    op.create_table(
        "kb_categories",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_categories")),
        sa.UniqueConstraint("name", name=op.f("uq_kb_categories_name")),
    )
    op.create_table(
        "kb_articles",
        sa.Column("id", ID, nullable=False),
        sa.Column("category_id", ID, nullable=True),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column(
            "visibility",
            sa.Enum("internal", "public", name="articlevisibility", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum("draft", "published", name="articlestatus", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("published_title", sa.String(length=300), nullable=True),
        sa.Column("published_body", sa.Text(), nullable=True),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("author_id", ID, nullable=True),
        sa.Column("solved_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["kb_categories.id"],
            name=op.f("fk_kb_articles_category_id_kb_categories"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["author_id"], ["agents.id"], name=op.f("fk_kb_articles_author_id_agents"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_articles")),
    )
    op.create_index("ix_kb_articles_status_visibility", "kb_articles", ["status", "visibility"])
    op.create_index("ix_kb_articles_category_id", "kb_articles", ["category_id"])
    op.create_table(
        "kb_ticket_solutions",
        sa.Column("ticket_id", ID, nullable=False),
        sa.Column("article_id", ID, nullable=False),
        sa.Column("agent_id", ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_kb_ticket_solutions_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["kb_articles.id"],
            name=op.f("fk_kb_ticket_solutions_article_id_kb_articles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_kb_ticket_solutions_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("ticket_id", "article_id", name=op.f("pk_kb_ticket_solutions")),
    )
    op.create_index("ix_kb_ticket_solutions_article_id", "kb_ticket_solutions", ["article_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            f"ALTER TABLE kb_articles ADD COLUMN kb_search_vector tsvector GENERATED ALWAYS AS ({PG_VECTOR}) STORED"
        )
        op.execute("CREATE INDEX kb_search_vector_index ON kb_articles USING gin (kb_search_vector)")
        op.execute(PG_BIGRAMS_FUNCTION)
        op.execute(
            "ALTER TABLE kb_articles ADD COLUMN kb_search_bigrams text[] "
            f"GENERATED ALWAYS AS (kb_search_cjk_bigrams({PG_TEXT})) STORED"
        )
        op.execute("CREATE INDEX kb_search_bigrams_index ON kb_articles USING gin (kb_search_bigrams)")
        op.execute(f"CREATE INDEX kb_search_trigram ON kb_articles USING gin ({PG_TEXT} gin_trgm_ops)")
    elif op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_SEARCH:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS kb_search_trigram")
        op.execute("DROP INDEX IF EXISTS kb_search_bigrams_index")
        op.execute("ALTER TABLE kb_articles DROP COLUMN IF EXISTS kb_search_bigrams")
        op.execute("DROP FUNCTION IF EXISTS kb_search_cjk_bigrams(text)")
        op.execute("DROP INDEX IF EXISTS kb_search_vector_index")
        op.execute("ALTER TABLE kb_articles DROP COLUMN IF EXISTS kb_search_vector")
    elif op.get_bind().dialect.name == "sqlite":
        for trigger in ("kb_search_insert", "kb_search_update", "kb_search_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS kb_search_fts")
    op.drop_index("ix_kb_ticket_solutions_article_id", table_name="kb_ticket_solutions")
    op.drop_table("kb_ticket_solutions")
    op.drop_index("ix_kb_articles_category_id", table_name="kb_articles")
    op.drop_index("ix_kb_articles_status_visibility", table_name="kb_articles")
    op.drop_table("kb_articles")
    op.drop_table("kb_categories")
