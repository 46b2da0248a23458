"""Customers to CSV, in the columns an import reads (:mod:`crm_core.services.customer_csv_rows`)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncGenerator
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Customer
from crm_core.services.customer_csv_rows import (
    BATCH_SIZE,
    COLUMNS,
    CONSENT_PREFIX,
    CUSTOM_PREFIX,
    protect_cell,
)
from crm_core.services.customers import with_contact_points
from crm_core.types import Channel
from crm_core.visibility import Viewer, customer_filter


def _consent_cell(value: Any) -> str:
    return "true" if value is True else "false" if value is False else ""


def _custom_cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _export_row(customer: Customer, custom_names: list[str]) -> list[str]:
    consent = customer.consent or {}
    custom = customer.custom_fields or {}
    cells: dict[str, str] = {
        "display_name": customer.display_name,
        "company": customer.company or "",
        "emails": ";".join(email.address for email in customer.emails),
        "owner": customer.owner.login if customer.owner is not None else "",
        "tags": ";".join(customer.tags or []),
        "segment": customer.segment or "",
        "timezone": customer.timezone or "",
        "preferred_language": customer.preferred_language or "",
        **{CONSENT_PREFIX + c.value: _consent_cell(consent.get(c.value)) for c in Channel},
        **{CUSTOM_PREFIX + name: _custom_cell(custom.get(name)) for name in custom_names},
    }
    phones = ";".join(phone.e164 for phone in customer.phones)
    names = (*COLUMNS, *(CUSTOM_PREFIX + name for name in custom_names))
    return [phones if name == "phones" else protect_cell(cells[name]) for name in names]


async def _custom_field_names(
    session: AsyncSession, where: list[ColumnElement[bool]], batch_size: int
) -> list[str]:
    names: set[str] = set()
    last_id = 0
    while True:
        stmt = (
            select(Customer.id, Customer.custom_fields)
            .where(*where, Customer.id > last_id)
            .order_by(Customer.id)
            .limit(batch_size)
        )
        rows = (await session.execute(stmt)).all()
        if not rows:
            return sorted(names)
        for _, custom in rows:
            names.update(custom or {})
        last_id = rows[-1][0]


async def export_customers(
    session: AsyncSession, viewer: Viewer | None, *, batch_size: int = BATCH_SIZE
) -> AsyncGenerator[str, None]:
    """CSV text of the customers ``viewer`` may see (every one for None), merged ones left out.

    Yields the header, then one chunk per batch of customers in id order.
    """
    where: list[ColumnElement[bool]] = [Customer.merged_into_id.is_(None)]
    if viewer is not None:
        where.append(customer_filter(viewer))
    custom_names = await _custom_field_names(session, where, batch_size)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*COLUMNS, *(CUSTOM_PREFIX + name for name in custom_names)])
    yield buffer.getvalue()
    last_id = 0
    while True:
        stmt = (
            select(Customer)
            .where(*where, Customer.id > last_id)
            .options(*with_contact_points())
            .order_by(Customer.id)
            .limit(batch_size)
        )
        batch = list(await session.scalars(stmt))
        if not batch:
            return
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(_export_row(customer, custom_names) for customer in batch)
        last_id = batch[-1].id
        session.expunge_all()
        yield buffer.getvalue()
