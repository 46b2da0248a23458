"""The one customer that calls from no usable number are logged against.

A withheld, anonymous, app (``client:``) or SIP caller, or a caller id that is not a phone
number, names nobody: every such call is logged against one shared pool customer ("Withheld
number", marked in its custom fields) rather than a new customer per call. Looking it up and
creating it is serialised (a transaction-level advisory lock on PostgreSQL, the write lock on
SQLite), so calls arriving together never make two. Should it be merged into another customer,
the next withheld call starts a new one.
"""

from __future__ import annotations

from sqlalchemy import func, select

from crm_core import events
from crm_core.db import UnitOfWork
from crm_core.models import Customer
from crm_core.services.audit import audit
from crm_core.sql import dialect_name

DISPLAY_NAME = "Withheld number"
MARKER = "withheld_callers"
_LOCK = 0x5749_5448  # pg_advisory_xact_lock key of this record's creation ("WITH")


def is_withheld_callers(customer: Customer) -> bool:
    """Whether ``customer`` is the shared record of withheld callers."""
    return customer.custom_fields.get(MARKER) is True


async def _shared(uow: UnitOfWork) -> Customer | None:
    found: Customer | None = await uow.session.scalar(
        select(Customer)
        .where(Customer.custom_fields[MARKER].as_boolean().is_(True), Customer.merged_into_id.is_(None))
        .order_by(Customer.id)
        .limit(1)
    )
    return found


async def withheld_caller(uow: UnitOfWork, known_id: int | None = None) -> Customer:
    """The shared customer of calls from no usable number, created on first use.

    ``known_id`` is the id found last time (callers cache it): checked, then used, so the
    marker's lookup (not indexed) runs once per process rather than once per call.
    """
    session = uow.session
    if known_id is not None:
        known = await session.get(Customer, known_id)
        if known is not None and known.merged_into_id is None and is_withheld_callers(known):
            return known
    found = await _shared(uow)
    if found is not None:
        return found
    if dialect_name(session) == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(_LOCK)))
    # On SQLite the savepoint begins the transaction with BEGIN IMMEDIATE: one writer at a time.
    async with session.begin_nested():
        found = await _shared(uow)
        if found is not None:
            return found
        customer = Customer(display_name=DISPLAY_NAME, custom_fields={MARKER: True})
        session.add(customer)
        await session.flush()
    audit(session, "customer", customer.id, "created", None, {"source": "voice", "withheld": True})
    uow.record(
        events.customer_created(
            {"customer_id": customer.id, "owner_id": None, "display_name": DISPLAY_NAME, "source": "voice"},
        )
    )
    return customer
