"""voice: a call's routing state in typed columns instead of the interaction's metadata

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 17:00:00

The decision (``decision``), the routed agent (``routed_agent_id``), when the call was queued,
offered and answered (``queued_at``, ``offered_at``, ``answered_at``), who answered
(``answered_by``), the last status callback's sequence number (``sequence``) and whether it was
missed (``missed``) move out of ``interactions.metadata`` of voice rows into columns; downgrade
puts them back. Rows are read and written in batches by id, the same way on SQLite and PostgreSQL.
"""

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)
BATCH = 2000

# metadata key -> column
TIMES = {"queued_at": "queued_at", "offered_at": "offered_at", "answered_at": "answered_at"}
AGENTS = {"routed_agent_id": "routed_agent_id", "answered_by": "answered_by_id"}
MOVED = ("decision", "sequence", "missed", *TIMES, *AGENTS)

interactions = sa.table(
    "interactions",
    sa.column("id", ID),
    sa.column("channel", sa.String()),
    sa.column("metadata", sa.JSON()),
    sa.column("call_decision", sa.String()),
    sa.column("routed_agent_id", sa.BigInteger()),
    sa.column("queued_at", WHEN),
    sa.column("offered_at", WHEN),
    sa.column("answered_at", WHEN),
    sa.column("answered_by_id", sa.BigInteger()),
    sa.column("status_sequence", sa.Integer()),
    sa.column("missed", sa.Boolean()),
)
COLUMNS = (
    "call_decision",
    "routed_agent_id",
    "queued_at",
    "offered_at",
    "answered_at",
    "answered_by_id",
    "status_sequence",
    "missed",
)


def upgrade() -> None:
    op.add_column("interactions", sa.Column("call_decision", sa.String(length=20), nullable=True))
    op.add_column("interactions", sa.Column("routed_agent_id", sa.BigInteger(), nullable=True))
    op.add_column("interactions", sa.Column("queued_at", WHEN, nullable=True))
    op.add_column("interactions", sa.Column("offered_at", WHEN, nullable=True))
    op.add_column("interactions", sa.Column("answered_at", WHEN, nullable=True))
    op.add_column("interactions", sa.Column("answered_by_id", sa.BigInteger(), nullable=True))
    op.add_column("interactions", sa.Column("status_sequence", sa.Integer(), nullable=True))
    op.add_column(
        "interactions", sa.Column("missed", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    for rows in _voice_rows(conn, interactions.c.metadata):
        changes = [_columns_of(id_, meta, sqlite) for id_, meta in rows if _moves(meta)]
        if changes:
            conn.execute(_update(("metadata", *COLUMNS)), changes)


def downgrade() -> None:
    conn = op.get_bind()
    for rows in _voice_rows(conn, interactions.c.metadata, *(interactions.c[name] for name in COLUMNS)):
        changes = [
            _metadata_of(row) for row in rows if any(v is not None and v is not False for v in row[2:])
        ]
        if changes:
            conn.execute(_update(("metadata",)), changes)
    with op.batch_alter_table("interactions") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)


def _voice_rows(conn: sa.Connection, *columns: Any) -> Iterator[Sequence[sa.Row[Any]]]:
    last = 0
    while True:
        rows = conn.execute(
            sa.select(interactions.c.id, *columns)
            .where(interactions.c.channel == "voice", interactions.c.id > last)
            .order_by(interactions.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _update(names: Sequence[str]) -> sa.Update:
    return (
        interactions.update()
        .where(interactions.c.id == sa.bindparam("_id"))
        .values({name: sa.bindparam(f"_{name}") for name in names})
    )


def _moves(meta: Any) -> bool:
    return isinstance(meta, dict) and any(key in meta for key in MOVED)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(value: Any, sqlite: bool) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return parsed.replace(tzinfo=None) if sqlite else parsed  # SQLite keeps naive UTC


def _columns_of(id_: int, meta: dict[str, Any], sqlite: bool) -> dict[str, Any]:
    decision = meta.get("decision")
    values: dict[str, Any] = {
        "_id": id_,
        "_metadata": {k: v for k, v in meta.items() if k not in MOVED},
        "_call_decision": decision[:20] if isinstance(decision, str) else None,
        "_status_sequence": _int(meta.get("sequence")),
        "_missed": meta.get("missed") is True,
    }
    for key, column in TIMES.items():
        values[f"_{column}"] = _time(meta.get(key), sqlite)
    for key, column in AGENTS.items():
        values[f"_{column}"] = _int(meta.get(key))
    return values


def _metadata_of(row: sa.Row[Any]) -> dict[str, Any]:
    id_, meta, *state = row
    columns = dict(zip(COLUMNS, state, strict=True))
    meta = dict(meta) if isinstance(meta, dict) else {}
    if columns["call_decision"] is not None:
        meta["decision"] = columns["call_decision"]
        meta["routed_agent_id"] = columns["routed_agent_id"]
    for key, column in TIMES.items():
        if (at := columns[column]) is not None:
            meta[key] = (at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)).isoformat()
    if columns["answered_by_id"] is not None:
        meta["answered_by"] = columns["answered_by_id"]
    if columns["status_sequence"] is not None:
        meta["sequence"] = columns["status_sequence"]
    if columns["missed"]:
        meta["missed"] = True
    return {"_id": id_, "_metadata": meta}
