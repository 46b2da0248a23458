"""The interaction log: one row per contact, idempotent by (channel, external id)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core import events
from crm_core.db import UnitOfWork
from crm_core.errors import Forbidden, InvalidInput, NotFound
from crm_core.models import Customer, Interaction, utcnow
from crm_core.services.customers import NEWEST_FIRST
from crm_core.services.pages import Page, paginate
from crm_core.sql import insert_ignore
from crm_core.types import Channel, Direction
from crm_core.visibility import Viewer, customer_filter

# Voice statuses of a call that is not over yet (Twilio's, and the call desk's own).
LIVE_CALL_STATUSES = ("queued", "initiated", "ringing", "in-progress", "queued-for-agent", "offering")


@dataclass(frozen=True, slots=True)
class Logged:
    interaction: Interaction
    created: bool


async def log_interaction(
    uow: UnitOfWork,
    *,
    channel: Channel,
    direction: Direction,
    customer_id: int,
    external_id: str | None = None,
    agent_id: int | None = None,
    ticket_id: int | None = None,
    status: str = "logged",
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    duration_seconds: int | None = None,
    subject: str | None = None,
    body: str | None = None,
    summary: str | None = None,
    meta: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Logged:
    """Insert the interaction; a second delivery with the same external id returns the first row.

    It is logged at ``now`` (the current time by default), and started then unless ``started_at``.
    """
    now = now or utcnow()
    session = uow.session
    values: dict[str, Any] = {
        "channel": channel,
        "direction": direction,
        "customer_id": customer_id,
        "external_id": external_id,
        "agent_id": agent_id,
        "ticket_id": ticket_id,
        "status": status,
        "started_at": started_at or now,
        "ended_at": ended_at,
        "duration_seconds": duration_seconds,
        "subject": subject,
        "body": body,
        "summary": summary,
        "metadata": meta or {},
        "created_at": now,
    }
    if external_id is None:
        interaction = Interaction(**{("meta" if k == "metadata" else k): v for k, v in values.items()})
        session.add(interaction)
        await session.flush()
        new_id: int | None = interaction.id
    else:
        new_id = await insert_ignore(session, Interaction, values, ["channel", "external_id"])
    if new_id is None:
        existing = await session.scalar(
            select(Interaction).where(Interaction.channel == channel, Interaction.external_id == external_id)
        )
        assert existing is not None
        return Logged(existing, created=False)
    interaction = await session.get_one(Interaction, new_id)
    uow.record(
        interaction_logged(new_id, customer_id, channel, direction, agent_id=agent_id, ticket_id=ticket_id)
    )
    return Logged(interaction, created=True)


def interaction_logged(
    interaction_id: int,
    customer_id: int,
    channel: Channel,
    direction: Direction,
    *,
    agent_id: int | None = None,
    ticket_id: int | None = None,
) -> events.DomainEvent:
    """The ``interaction.logged`` event (also announced by paths that insert without the ORM)."""
    return events.interaction_logged(
        {
            "interaction_id": interaction_id,
            "customer_id": customer_id,
            "channel": str(channel),
            "direction": str(direction),
            "agent_id": agent_id,
            "ticket_id": ticket_id,
        },
    )


async def get_interaction(session: AsyncSession, viewer: Viewer, interaction_id: int) -> Interaction:
    stmt = (
        select(Interaction)
        .join(Customer, Customer.id == Interaction.customer_id)
        .where(Interaction.id == interaction_id, customer_filter(viewer))
    )
    found = (await session.execute(stmt)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"interaction {interaction_id} not found")
    return found


async def list_interactions(
    session: AsyncSession,
    viewer: Viewer,
    *,
    limit: int,
    offset: int,
    channel: Channel | None = None,
    customer_id: int | None = None,
    ticket_id: int | None = None,
    agent_id: int | None = None,
) -> Page[Interaction]:
    stmt = (
        select(Interaction)
        .join(Customer, Customer.id == Interaction.customer_id)
        .where(customer_filter(viewer))
    )
    if channel is not None:
        stmt = stmt.where(Interaction.channel == channel)
    if customer_id is not None:
        stmt = stmt.where(Interaction.customer_id == customer_id)
    if ticket_id is not None:
        stmt = stmt.where(Interaction.ticket_id == ticket_id)
    if agent_id is not None:
        stmt = stmt.where(Interaction.agent_id == agent_id)
    return await paginate(session, stmt, *NEWEST_FIRST, limit=limit, offset=offset)


async def record_outcome(
    uow: UnitOfWork,
    viewer: Viewer,
    interaction_id: int,
    *,
    disposition: str,
    note: str | None,
    dispositions: Sequence[str],
) -> Interaction:
    """After a contact: its disposition (from the configured list) and the agent's note.

    The agent who handled it, or a supervisor or admin who can see it, may record it; a later
    call replaces the earlier outcome (the previous one is kept in the metadata's history).
    """
    if disposition not in dispositions:
        raise InvalidInput(
            f"unknown disposition {disposition!r}; use one of: {', '.join(dispositions)}", "disposition"
        )
    interaction = await get_interaction(uow.session, viewer, interaction_id)
    if not viewer.is_supervisor and interaction.agent_id != viewer.agent_id:
        raise Forbidden("only the agent who handled this contact or a supervisor can record its outcome")
    previous = {k: interaction.meta[k] for k in ("disposition", "disposition_by") if k in interaction.meta}
    history = [*interaction.meta.get("outcome_history", []), previous] if previous else []
    interaction.meta = {
        **interaction.meta,
        "disposition": disposition,
        "disposition_by": viewer.agent_id,
        **({"outcome_history": history} if history else {}),
    }
    if note is not None:
        interaction.summary = note.strip() or None
    await uow.session.flush()
    uow.record(
        events.interaction_updated(
            {
                "interaction_id": interaction.id,
                "customer_id": interaction.customer_id,
                "agent_id": interaction.agent_id,
                "disposition": disposition,
            },
        )
    )
    return interaction


async def live_calls(
    session: AsyncSession, viewer: Viewer, *, only_mine: bool
) -> Sequence[tuple[Interaction, str]]:
    """Voice contacts still going on (ringing, queued, offered or connected), oldest first,
    with the customer's name."""
    stmt = (
        select(Interaction, Customer.display_name)
        .join(Customer, Customer.id == Interaction.customer_id)
        .where(
            Interaction.channel == Channel.VOICE,
            Interaction.ended_at.is_(None),
            Interaction.status.in_(LIVE_CALL_STATUSES),
            customer_filter(viewer),
        )
        .order_by(Interaction.started_at, Interaction.id)
    )
    if only_mine:
        stmt = stmt.where(Interaction.agent_id == viewer.agent_id)
    return [(row[0], row[1]) for row in (await session.execute(stmt)).all()]
