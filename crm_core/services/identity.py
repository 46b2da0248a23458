"""Identity resolution: a phone number, an email address or a chat visitor becomes one customer.

Unknown contact points create a new customer in the shared pool. Two deliveries racing for the
same unknown number both end on the one customer: the loser's insert hits the unique index and
re-reads inside a savepoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm_core import events
from crm_core.contact_points import email_match_key, normalize_email, normalize_phone
from crm_core.db import UnitOfWork
from crm_core.models import Customer, CustomerEmail, CustomerPhone
from crm_core.services.audit import audit


@dataclass(frozen=True, slots=True)
class Resolution:
    customer: Customer
    created: bool


async def _customer_by_phone(uow: UnitOfWork, e164: str) -> Customer | None:
    stmt = select(Customer).join(CustomerPhone).where(CustomerPhone.e164 == e164)
    return (await uow.session.execute(stmt)).scalar_one_or_none()


async def _customer_by_email(uow: UnitOfWork, address: str) -> Customer | None:
    stmt = select(Customer).join(CustomerEmail).where(CustomerEmail.address == address)
    return (await uow.session.execute(stmt)).scalar_one_or_none()


async def _create_in_pool(
    uow: UnitOfWork, display_name: str, phone: str | None, email: str | None, source: str
) -> Customer | None:
    """Create a pool customer owning the contact point; None if another writer won the race."""
    session = uow.session
    try:
        async with session.begin_nested():
            customer = Customer(display_name=display_name)
            session.add(customer)
            await session.flush()
            if phone:
                session.add(CustomerPhone(customer_id=customer.id, e164=phone))
            if email:
                session.add(
                    CustomerEmail(customer_id=customer.id, address=email, match_key=email_match_key(email))
                )
            await session.flush()
    except IntegrityError:
        return None
    audit(
        session, "customer", customer.id, "created", None, {"source": source, "phone": phone, "email": email}
    )
    uow.record(
        events.customer_created(
            {"customer_id": customer.id, "owner_id": None, "display_name": display_name, "source": source},
        )
    )
    return customer


async def resolve_phone(uow: UnitOfWork, raw: str, *, region: str, source: str = "phone") -> Resolution:
    """The customer who owns this number, or a new pool customer named after it."""
    e164 = normalize_phone(raw, region)
    for _ in range(2):
        found = await _customer_by_phone(uow, e164)
        if found is not None:
            return Resolution(found, created=False)
        created = await _create_in_pool(uow, e164, e164, None, source)
        if created is not None:
            return Resolution(created, created=True)
    raise RuntimeError(f"could not resolve {e164}")  # pragma: no cover - unique index guarantees a row


async def resolve_email(
    uow: UnitOfWork, raw: str, *, display_name: str | None = None, source: str = "email"
) -> Resolution:
    address = normalize_email(raw)
    for _ in range(2):
        found = await _customer_by_email(uow, address)
        if found is not None:
            return Resolution(found, created=False)
        created = await _create_in_pool(uow, (display_name or "").strip() or address, None, address, source)
        if created is not None:
            return Resolution(created, created=True)
    raise RuntimeError(f"could not resolve {address}")  # pragma: no cover


async def resolve_visitor(
    uow: UnitOfWork,
    *,
    region: str,
    name: str | None = None,
    email: str | None = None,
    phone: str | None = None,
) -> Resolution:
    """A chat visitor: email first, then phone; unknown ones become one new pool customer
    holding every contact point given (or an anonymous one when none is)."""
    address = normalize_email(email) if email else None
    e164 = normalize_phone(phone, region) if phone else None
    for _ in range(2):
        if address and (found := await _customer_by_email(uow, address)) is not None:
            return Resolution(found, created=False)
        if e164 and (found := await _customer_by_phone(uow, e164)) is not None:
            return Resolution(found, created=False)
        label = (name or "").strip() or address or e164 or "Web visitor"
        created = await _create_in_pool(uow, label, e164, address, "chat")
        if created is not None:
            return Resolution(created, created=True)
    raise RuntimeError("could not resolve the chat visitor")  # pragma: no cover
