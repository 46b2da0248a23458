"""Duplicate detection and merging of customers."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core import events
from crm_core.db import UnitOfWork
from crm_core.errors import InvalidInput
from crm_core.models import Customer, CustomerEmail, CustomerPhone, Interaction, Ticket
from crm_core.services.audit import audit
from crm_core.services.customers import check_manages, get_visible, with_contact_points
from crm_core.visibility import Viewer, customer_filter

NAME_SIMILARITY = 0.85
_PUNCT = re.compile(r"[^\w\s]")
# Legal-form words at the end of a company name ("Acme Co Ltd"), not inside it ("AG Barr").
_COMPANY_SUFFIXES = re.compile(r"(?:\s+(?:inc|ltd|llc|gmbh|sa|sas|plc|co|corp|bv|ag))+$")


@dataclass(frozen=True, slots=True)
class DuplicateCandidate:
    customer: Customer
    reasons: list[str]
    score: float


def normalize_name(text: str | None) -> str:
    words = _PUNCT.sub(" ", (text or "").lower())
    return " ".join(words.split())


def normalize_company(text: str | None) -> str:
    return _COMPANY_SUFFIXES.sub("", normalize_name(text))


def name_similarity(a: str, b: str) -> float:
    left, right = normalize_name(a), normalize_name(b)
    if not left or not right:
        return 0.0
    if sorted(left.split()) == sorted(right.split()):
        return 1.0
    return difflib.SequenceMatcher(None, left, right).ratio()


async def find_duplicates(
    session: AsyncSession, viewer: Viewer, customer_id: int, *, limit: int = 20
) -> list[DuplicateCandidate]:
    """Other visible customers that share an email mailbox, or a very similar name at the same company."""
    customer = await get_visible(session, viewer, customer_id)
    found: dict[int, DuplicateCandidate] = {}
    keys = [e.match_key for e in customer.emails]
    if keys:
        rows = await session.execute(
            select(Customer, CustomerEmail.address)
            .join(CustomerEmail, CustomerEmail.customer_id == Customer.id)
            .options(*with_contact_points())
            .where(
                CustomerEmail.match_key.in_(keys),
                Customer.id != customer.id,
                Customer.merged_into_id.is_(None),
                customer_filter(viewer),
            )
        )
        for other, address in rows:
            cand = found.setdefault(other.id, DuplicateCandidate(other, [], 0.0))
            cand.reasons.append(f"same mailbox as {address}")
            found[other.id] = DuplicateCandidate(other, cand.reasons, 1.0)
    company = normalize_company(customer.company)
    first_word = normalize_name(customer.display_name).split(" ")[0] if customer.display_name else ""
    if first_word:
        pool = await session.scalars(
            select(Customer)
            .options(*with_contact_points())
            .where(
                Customer.id != customer.id,
                Customer.merged_into_id.is_(None),
                customer_filter(viewer),
                func.lower(Customer.display_name).contains(first_word, autoescape=True),
            )
            .limit(500)
        )
        for other in pool:
            if normalize_company(other.company) != company:
                continue
            score = name_similarity(customer.display_name, other.display_name)
            if score >= NAME_SIMILARITY:
                cand = found.get(other.id) or DuplicateCandidate(other, [], 0.0)
                reason = f"similar name ({score:.0%})" + (f" at {other.company}" if other.company else "")
                found[other.id] = DuplicateCandidate(other, [*cand.reasons, reason], max(cand.score, score))
    ranked = sorted(found.values(), key=lambda c: (-c.score, c.customer.id))
    return ranked[:limit]


async def merge_customers(uow: UnitOfWork, viewer: Viewer, survivor_id: int, merged_id: int) -> Customer:
    """Move every contact point, interaction and ticket of ``merged_id`` onto ``survivor_id``."""
    if survivor_id == merged_id:
        raise InvalidInput("a customer cannot be merged into itself", "merged_id")
    session = uow.session
    survivor = await get_visible(session, viewer, survivor_id)
    merged = await get_visible(session, viewer, merged_id)
    # Seeing a customer through a ticket is not owning it: both must be the viewer's to manage.
    check_manages(viewer, survivor)
    check_manages(viewer, merged)
    moved: dict[str, object] = {
        "phones": [p.e164 for p in merged.phones],
        "emails": [e.address for e in merged.emails],
    }
    for model in (CustomerPhone, CustomerEmail, Interaction, Ticket):
        result = await session.execute(
            update(model).where(model.customer_id == merged_id).values(customer_id=survivor_id)
        )
        moved[f"{model.__tablename__}_moved"] = result.rowcount  # type: ignore[attr-defined]
    survivor.tags = sorted(set(survivor.tags or []) | set(merged.tags or []))
    survivor.custom_fields = {**(merged.custom_fields or {}), **(survivor.custom_fields or {})}
    survivor.company = survivor.company or merged.company
    survivor.owner_id = survivor.owner_id or merged.owner_id
    merged.merged_into_id = survivor_id
    # Customers merged earlier into the one going away now point at the survivor directly.
    await session.execute(
        update(Customer).where(Customer.merged_into_id == merged_id).values(merged_into_id=survivor_id)
    )
    snapshot = {"display_name": merged.display_name, "company": merged.company, "owner_id": merged.owner_id}
    audit(
        session,
        "customer",
        survivor_id,
        "merged",
        viewer.agent_id,
        {"merged_id": merged_id, **moved, "merged": snapshot},
    )
    audit(session, "customer", merged_id, "merged_into", viewer.agent_id, {"survivor_id": survivor_id})
    await session.flush()
    uow.record(events.customer_merged({"customer_id": survivor_id, "merged_id": merged_id}))
    session.expire(survivor)
    return await get_visible(session, viewer, survivor_id)
