"""Customers and their contact points: create, read, update, search, claim."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Select, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from crm_core import events
from crm_core.contact_points import email_match_key, normalize_email, normalize_phone
from crm_core.db import UnitOfWork
from crm_core.errors import Conflict, Forbidden, InvalidInput, NotFound
from crm_core.models import Agent, AuditEntry, Customer, CustomerEmail, CustomerPhone, Interaction, Role
from crm_core.services.audit import audit, diff
from crm_core.services.pages import Page, paginate
from crm_core.types import CONSENT_CHANNELS, Channel
from crm_core.visibility import Viewer, customer_filter, may_manage_customer

NEWEST_FIRST = (Interaction.started_at.desc(), Interaction.id.desc())
EDITABLE_FIELDS = (
    "display_name",
    "company",
    "tags",
    "segment",
    "timezone",
    "preferred_language",
    "consent",
    "custom_fields",
)


def _snapshot(customer: Customer) -> dict[str, Any]:
    return {name: getattr(customer, name) for name in (*EDITABLE_FIELDS, "owner_id")}


def _check_fields(fields: dict[str, Any]) -> None:
    """Rules on field values that hold whichever way a customer is written (API, CSV, channels)."""
    for key, value in (fields.get("consent") or {}).items():
        if key not in CONSENT_CHANNELS:
            raise InvalidInput(f"unknown consent channel {key!r}", "consent")
        if not isinstance(value, bool):
            raise InvalidInput(f"consent for {key} must be true or false", "consent")
    zone = fields.get("timezone")
    if zone:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidInput(
                f"unknown time zone {zone!r}; use an IANA name such as Europe/Paris", "timezone"
            ) from exc


def with_contact_points() -> tuple[Any, ...]:
    return (selectinload(Customer.phones), selectinload(Customer.emails), selectinload(Customer.owner))


async def get_visible(
    session: AsyncSession, viewer: Viewer, customer_id: int, *, for_update: bool = False
) -> Customer:
    """The customer, or :class:`NotFound` when it does not exist or ``viewer`` may not see it."""
    stmt = (
        select(Customer)
        .where(Customer.id == customer_id, Customer.merged_into_id.is_(None), customer_filter(viewer))
        .options(*with_contact_points())
    )
    customer = (await session.execute(stmt)).scalar_one_or_none()
    if customer is None:
        raise NotFound(f"customer {customer_id} not found")
    return customer


def check_manages(viewer: Viewer, customer: Customer) -> None:
    """Refuse ownership-level changes (owner, release, merge) on a customer ``viewer`` only sees.

    ``customer.owner`` must be loaded (:func:`get_visible` loads it).
    """
    if may_manage_customer(viewer, customer.owner):
        return
    raise Forbidden(
        f"customer {customer.id} belongs to {'another team' if viewer.is_supervisor else 'another agent'}: "
        "only its owner, a supervisor of its owner's team or an admin may change its owner or merge it"
    )


async def lock_customer(session: AsyncSession, customer_id: int) -> None:
    """Hold the customer's row until commit, so contacts arriving together from one customer
    (a burst of texts on several connections or instances) decide their ticket one at a time
    instead of each opening one. SQLite's single writer serialises them already."""
    # FOR NO KEY UPDATE: rows just inserted that refer to the customer hold FOR KEY SHARE on it.
    await session.execute(
        select(Customer.id).where(Customer.id == customer_id).with_for_update(key_share=True)
    )


async def _attach_phone(session: AsyncSession, customer: Customer, e164: str, label: str | None) -> None:
    owner = await session.scalar(select(CustomerPhone.customer_id).where(CustomerPhone.e164 == e164))
    if owner is not None and owner != customer.id:
        raise Conflict(f"phone {e164} already belongs to another customer")
    if owner is None:
        session.add(CustomerPhone(customer_id=customer.id, e164=e164, label=label))


async def _attach_email(session: AsyncSession, customer: Customer, address: str, label: str | None) -> None:
    owner = await session.scalar(select(CustomerEmail.customer_id).where(CustomerEmail.address == address))
    if owner is not None and owner != customer.id:
        raise Conflict(f"email {address} already belongs to another customer")
    if owner is None:
        session.add(
            CustomerEmail(
                customer_id=customer.id, address=address, match_key=email_match_key(address), label=label
            )
        )


def normalize_contact_points(
    phones: Sequence[str],
    emails: Sequence[str],
    region: str,
    *,
    phone_field: str = "phones",
    email_field: str = "emails",
) -> tuple[list[str], list[str]]:
    norm_phones = [normalize_phone(p, region, f"{phone_field}[{i}]") for i, p in enumerate(phones)]
    norm_emails = [normalize_email(e, f"{email_field}[{i}]") for i, e in enumerate(emails)]
    return list(dict.fromkeys(norm_phones)), list(dict.fromkeys(norm_emails))


async def create_customer(
    uow: UnitOfWork,
    actor: Viewer | None,
    *,
    region: str,
    display_name: str,
    phones: Sequence[str] = (),
    emails: Sequence[str] = (),
    owner_id: int | None = None,
    **fields: Any,
) -> Customer:
    """Create a customer with its contact points; phones and emails are normalised here."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    _check_fields(fields)
    norm_phones, norm_emails = normalize_contact_points(phones, emails, region)
    session = uow.session
    if owner_id is not None:
        await _check_owner_assignable(session, actor, owner_id)
    customer = Customer(display_name=display_name.strip(), owner_id=owner_id, **fields)
    session.add(customer)
    await session.flush()
    for e164 in norm_phones:
        await _attach_phone(session, customer, e164, None)
    for address in norm_emails:
        await _attach_email(session, customer, address, None)
    await session.flush()
    audit(session, "customer", customer.id, "created", actor.agent_id if actor else None, _snapshot(customer))
    uow.record(_created(customer))
    return customer


def _created(customer: Customer) -> events.DomainEvent:
    payload: events.CustomerCreated = {
        "customer_id": customer.id,
        "owner_id": customer.owner_id,
        "display_name": customer.display_name,
    }
    return events.customer_created(payload)


@dataclass(frozen=True, slots=True)
class NewCustomer:
    """A customer for :func:`create_customers`, its phones (E.164) and emails normalised."""

    display_name: str
    phones: Sequence[str] = ()
    emails: Sequence[str] = ()
    owner_id: int | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


# The editable fields a new customer gets when not given (the columns' own defaults).
_NEW_FIELD_DEFAULTS: dict[str, Callable[[], Any]] = {"tags": list, "consent": dict, "custom_fields": dict}


async def create_customers(
    uow: UnitOfWork, actor: Viewer | None, new: Sequence[NewCustomer]
) -> list[Customer]:
    """Create many customers as :func:`create_customer` creates one (checks, audit entries and
    ``customer.created`` events alike), in one statement per table.

    Their phones and emails must belong to nobody yet: the caller has looked (a clash raises
    :class:`sqlalchemy.exc.IntegrityError`; retry those customers one by one).
    """
    if not new:
        return []
    for item in new:
        unknown = set(item.fields) - set(EDITABLE_FIELDS)
        if unknown:
            raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
        _check_fields(dict(item.fields))
    session = uow.session
    for owner_id in dict.fromkeys(item.owner_id for item in new if item.owner_id is not None):
        await _check_owner_assignable(session, actor, owner_id)
    rows = []
    for item in new:
        # Every row with the same keys: one multi-row INSERT, rows returned in this order.
        values: dict[str, Any] = {name: None for name in EDITABLE_FIELDS}
        values.update({name: make() for name, make in _NEW_FIELD_DEFAULTS.items()})
        values.update(item.fields)
        values.update(display_name=item.display_name.strip(), owner_id=item.owner_id)
        rows.append(values)
    created = await session.scalars(insert(Customer).returning(Customer, sort_by_parameter_order=True), rows)
    customers = list(created)
    phones = [
        {"customer_id": c.id, "e164": e164, "label": None}
        for c, item in zip(customers, new, strict=True)
        for e164 in item.phones
    ]
    emails = [
        {"customer_id": c.id, "address": address, "match_key": email_match_key(address), "label": None}
        for c, item in zip(customers, new, strict=True)
        for address in item.emails
    ]
    if phones:
        await session.execute(insert(CustomerPhone), phones)
    if emails:
        await session.execute(insert(CustomerEmail), emails)
    actor_id = actor.agent_id if actor else None
    entries = [
        {"entity_type": "customer", "entity_id": c.id, "action": "created", "actor_id": actor_id}
        | {"changes": _snapshot(c)}
        for c in customers
    ]
    await session.execute(insert(AuditEntry), entries)
    for customer in customers:
        uow.record(_created(customer))
    return customers


async def _check_owner_assignable(session: AsyncSession, actor: Viewer | None, owner_id: int) -> None:
    owner = await session.get(Agent, owner_id)
    if owner is None or not owner.active:
        raise InvalidInput(f"agent {owner_id} does not exist or is inactive", "owner_id")
    if actor is None or actor.is_admin or owner_id == actor.agent_id:
        return
    if actor.role is Role.SUPERVISOR and actor.team_id is not None and owner.team_id == actor.team_id:
        return
    raise Forbidden(
        "you may only assign customers to yourself" + (" or your team" if actor.is_supervisor else "")
    )


async def update_customer(
    uow: UnitOfWork,
    viewer: Viewer,
    customer_id: int,
    changes: dict[str, Any],
    *,
    region: str,
    add_phones: Sequence[str] = (),
    add_emails: Sequence[str] = (),
    remove_phones: Sequence[str] = (),
    remove_emails: Sequence[str] = (),
) -> Customer:
    session = uow.session
    customer = await get_visible(session, viewer, customer_id)
    unknown = set(changes) - {*EDITABLE_FIELDS, "owner_id"}
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    _check_fields(changes)
    if "owner_id" in changes and changes["owner_id"] != customer.owner_id:
        check_manages(viewer, customer)
        if changes["owner_id"] is not None:
            await _check_owner_assignable(session, viewer, changes["owner_id"])
    before = _snapshot(customer)
    for name, value in changes.items():
        setattr(customer, name, value.strip() if name == "display_name" and isinstance(value, str) else value)
    new_phones, new_emails = normalize_contact_points(
        add_phones, add_emails, region, phone_field="add_phones", email_field="add_emails"
    )
    for e164 in new_phones:
        await _attach_phone(session, customer, e164, None)
    for address in new_emails:
        await _attach_email(session, customer, address, None)
    drop_phones, drop_emails = normalize_contact_points(
        remove_phones, remove_emails, region, phone_field="remove_phones", email_field="remove_emails"
    )
    for phone in list(customer.phones):
        if phone.e164 in drop_phones:
            await session.delete(phone)
    for email in list(customer.emails):
        if email.address in drop_emails:
            await session.delete(email)
    await session.flush()
    changed = diff(before, _snapshot(customer))
    contact_changes = {
        k: v
        for k, v in {
            "added_phones": new_phones,
            "added_emails": new_emails,
            "removed_phones": drop_phones,
            "removed_emails": drop_emails,
        }.items()
        if v
    }
    if changed or contact_changes:
        audit(session, "customer", customer.id, "updated", viewer.agent_id, {**changed, **contact_changes})
        uow.record(events.customer_updated({"customer_id": customer.id, "fields": sorted(changed)}))
    await session.refresh(customer, ["phones", "emails", "owner", "updated_at"])
    return customer


async def claim_customer(uow: UnitOfWork, viewer: Viewer, customer_id: int) -> Customer:
    """Take a pool customer as one's own; a customer someone already owns is a conflict."""
    session = uow.session
    customer = await get_visible(session, viewer, customer_id)
    if customer.owner_id == viewer.agent_id:
        return customer
    if customer.owner_id is not None:
        raise Conflict(f"customer {customer_id} already has an owner")
    customer.owner_id = viewer.agent_id
    audit(session, "customer", customer.id, "claimed", viewer.agent_id, {"owner_id": [None, viewer.agent_id]})
    uow.record(events.customer_claimed({"customer_id": customer.id, "owner_id": viewer.agent_id}))
    await session.flush()
    await session.refresh(customer, ["owner", "updated_at"])
    return customer


def search_statement(
    viewer: Viewer,
    *,
    region: str,
    q: str | None = None,
    name: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    owner_id: int | None = None,
    pool: bool | None = None,
) -> Select[tuple[Customer]]:
    stmt = select(Customer).where(Customer.merged_into_id.is_(None), customer_filter(viewer))
    if name:
        stmt = stmt.where(func.lower(Customer.display_name).contains(name.lower(), autoescape=True))
    if phone:
        e164 = normalize_phone(phone, region, "phone")
        stmt = stmt.where(
            Customer.id.in_(select(CustomerPhone.customer_id).where(CustomerPhone.e164 == e164))
        )
    if email:
        address = normalize_email(email, "email")
        stmt = stmt.where(
            Customer.id.in_(select(CustomerEmail.customer_id).where(CustomerEmail.address == address))
        )
    if owner_id is not None:
        stmt = stmt.where(Customer.owner_id == owner_id)
    if pool is not None:
        stmt = stmt.where(Customer.owner_id.is_(None) if pool else Customer.owner_id.is_not(None))
    if q:
        text = q.strip().lower()
        matches = [
            func.lower(Customer.display_name).contains(text, autoescape=True),
            func.lower(Customer.company).contains(text, autoescape=True),
            Customer.id.in_(
                select(CustomerEmail.customer_id).where(
                    CustomerEmail.address.startswith(text, autoescape=True)
                )
            ),
        ]
        try:
            e164 = normalize_phone(q, region)
        except InvalidInput:
            pass
        else:
            matches.append(
                Customer.id.in_(select(CustomerPhone.customer_id).where(CustomerPhone.e164 == e164))
            )
        stmt = stmt.where(or_(*matches))
    return stmt


async def search_customers(
    session: AsyncSession, viewer: Viewer, *, limit: int, offset: int, region: str, **filters: Any
) -> Page[Customer]:
    stmt = search_statement(viewer, region=region, **filters)
    return await paginate(
        session, stmt.options(*with_contact_points()), Customer.id, limit=limit, offset=offset
    )


async def timeline(
    session: AsyncSession,
    viewer: Viewer,
    customer_id: int,
    *,
    limit: int,
    offset: int,
    channels: Sequence[Channel] = (),
) -> Page[Interaction]:
    await get_visible(session, viewer, customer_id)
    stmt = select(Interaction).where(Interaction.customer_id == customer_id)
    if channels:
        stmt = stmt.where(Interaction.channel.in_(list(channels)))
    return await paginate(session, stmt, *NEWEST_FIRST, limit=limit, offset=offset)


async def fill_customer(
    uow: UnitOfWork,
    actor: Viewer | None,
    customer: Customer,
    *,
    phones: Sequence[str] = (),
    emails: Sequence[str] = (),
    tags: Sequence[str] = (),
    owner_id: int | None = None,
    **fields: Any,
) -> bool:
    """Complete ``customer`` without overwriting anything it already has.

    Adds the normalised ``phones`` and ``emails`` it lacks and the missing ``tags``, sets empty
    fields and the owner of a pool customer, and adds consent channels and custom fields it has no
    value for. Returns whether anything changed (then an audit entry and an event are recorded).
    """
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    _check_fields(fields)
    session = uow.session
    before = _snapshot(customer)
    for name, value in fields.items():
        current = getattr(customer, name)
        if isinstance(current, dict) and isinstance(value, dict):
            missing = {k: v for k, v in value.items() if current.get(k) in (None, "")}
            if missing:
                setattr(customer, name, {**current, **missing})
        elif current in (None, "") and value not in (None, ""):
            setattr(customer, name, value.strip() if name == "display_name" else value)
    new_tags = [t for t in dict.fromkeys(tags) if t not in (customer.tags or [])]
    if new_tags:
        customer.tags = [*(customer.tags or []), *new_tags]
    if owner_id is not None and customer.owner_id is None:
        await _check_owner_assignable(session, actor, owner_id)
        customer.owner_id = owner_id
    known_phones = set(
        await session.scalars(select(CustomerPhone.e164).where(CustomerPhone.customer_id == customer.id))
    )
    known_emails = set(
        await session.scalars(select(CustomerEmail.address).where(CustomerEmail.customer_id == customer.id))
    )
    added_phones = [p for p in dict.fromkeys(phones) if p not in known_phones]
    added_emails = [e for e in dict.fromkeys(emails) if e not in known_emails]
    for e164 in added_phones:
        await _attach_phone(session, customer, e164, None)
    for address in added_emails:
        await _attach_email(session, customer, address, None)
    await session.flush()
    changed = diff(before, _snapshot(customer))
    contact_changes = {
        k: v for k, v in {"added_phones": added_phones, "added_emails": added_emails}.items() if v
    }
    if not (changed or contact_changes):
        return False
    audit(
        session,
        "customer",
        customer.id,
        "updated",
        actor.agent_id if actor else None,
        {**changed, **contact_changes},
    )
    uow.record(events.customer_updated({"customer_id": customer.id, "fields": sorted(changed)}))
    return True
