"""Service levels' use cases: supervisors and admins keep calendars, policies and escalation
rules; whoever may see a ticket sees its SLA clock; the escalation pass runs on the clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from crm_core.db import UnitOfWorkFactory
from crm_core.errors import Forbidden
from crm_core.models import (
    EscalationFiring,
    EscalationRule,
    Role,
    ServiceCalendar,
    SlaPolicyRecord,
    TicketSla,
)
from crm_core.ports import Clock
from crm_core.rules.business_hours import BusinessHours
from crm_core.services import sla_admin
from crm_core.services.escalation import PassReport, escalation_pass
from crm_core.services.escalation_mail import EscalationMailer
from crm_core.services.tickets import get_ticket
from crm_core.visibility import Viewer


def _keeper(viewer: Viewer) -> None:
    if viewer.role not in (Role.SUPERVISOR, Role.ADMIN):
        raise Forbidden("service levels are kept by supervisors and admins")


@dataclass(frozen=True, slots=True)
class TicketClock:
    sla: TicketSla | None
    ticket_id: int
    firings: Sequence[EscalationFiring]


class ServiceLevelDesk:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, mailer: EscalationMailer | None = None) -> None:
        self._uow = uow
        self._clock = clock
        self._mailer = mailer

    async def seed(self, voice_hours: BusinessHours) -> None:
        async with self._uow() as uow:
            if await sla_admin.seed_voice_calendar(uow.session, voice_hours, self._clock.now()) is not None:
                await uow.commit()

    async def escalate(self) -> PassReport:
        return await escalation_pass(self._uow, self._clock.now(), mailer=self._mailer)

    async def calendars(self, viewer: Viewer) -> list[ServiceCalendar]:
        _keeper(viewer)
        async with self._uow() as uow:
            return await sla_admin.list_calendars(uow.session)

    async def save_calendar(
        self,
        viewer: Viewer,
        *,
        name: str,
        timezone: str,
        weekly: Mapping[str, str],
        holidays: Sequence[str],
        calendar_id: int | None = None,
    ) -> ServiceCalendar:
        _keeper(viewer)
        async with self._uow() as uow:
            row = await sla_admin.save_calendar(
                uow.session,
                name=name,
                timezone=timezone,
                weekly=weekly,
                holidays=holidays,
                calendar_id=calendar_id,
            )
            await sla_admin.reclock_open_tickets(uow.session, self._clock.now())
            await uow.commit()
            return row

    async def delete(self, viewer: Viewer, model: Any, row_id: int, what: str) -> None:
        _keeper(viewer)
        async with self._uow() as uow:
            await sla_admin.delete_row(uow.session, model, row_id, what)
            await sla_admin.reclock_open_tickets(uow.session, self._clock.now())
            await uow.commit()

    async def policies(self, viewer: Viewer) -> list[SlaPolicyRecord]:
        _keeper(viewer)
        async with self._uow() as uow:
            return await sla_admin.list_policies(uow.session)

    async def save_policy(
        self, viewer: Viewer, values: Mapping[str, Any], policy_id: int | None = None
    ) -> SlaPolicyRecord:
        _keeper(viewer)
        async with self._uow() as uow:
            row = await sla_admin.save_policy(uow.session, values, policy_id=policy_id)
            await sla_admin.reclock_open_tickets(uow.session, self._clock.now())
            await uow.commit()
            return row

    async def rules(self, viewer: Viewer, policy_id: int) -> list[EscalationRule]:
        _keeper(viewer)
        async with self._uow() as uow:
            return await sla_admin.list_rules(uow.session, policy_id)

    async def add_rule(self, viewer: Viewer, policy_id: int, draft: sla_admin.RuleDraft) -> EscalationRule:
        _keeper(viewer)
        async with self._uow() as uow:
            rule = await sla_admin.add_rule(uow.session, policy_id, draft)
            await sla_admin.reclock_open_tickets(uow.session, self._clock.now())
            await uow.commit()
            return rule

    async def ticket_clock(self, viewer: Viewer, ticket_id: int) -> TicketClock:
        async with self._uow() as uow:
            ticket = await get_ticket(uow.session, viewer, ticket_id)
            sla = await uow.session.get(TicketSla, ticket.id)
            firings = await uow.session.scalars(
                select(EscalationFiring)
                .where(EscalationFiring.ticket_id == ticket.id)
                .order_by(EscalationFiring.fired_at, EscalationFiring.id)
            )
            return TicketClock(sla, ticket.id, list(firings))
