"""The service-level API: calendars, SLA policies and escalation rules (supervisors and admins),
and a ticket's SLA clock (whoever may see the ticket)."""

from __future__ import annotations

from aiohttp import web

from contact_center.api.responses import json_out
from contact_center.api.spec import ApiRoutes, parse_body, path_int
from contact_center.auth.middleware import viewer_of
from contact_center.late import Late
from contact_center.service_levels.desk import ServiceLevelDesk
from contact_center.service_levels.schemas import (
    CalendarIn,
    CalendarList,
    CalendarOut,
    FiringOut,
    PolicyIn,
    PolicyList,
    PolicyOut,
    PolicyUpdate,
    RuleIn,
    RuleList,
    RuleOut,
    TicketSlaOut,
)
from crm_core.models import EscalationRule, ServiceCalendar, SlaPolicyRecord
from crm_core.services.sla_admin import RuleDraft

routes = ApiRoutes("service levels")
SERVICE_LEVEL_DESK = web.AppKey("service_level_desk", Late[ServiceLevelDesk])
CONFLICT = ((409, "conflict", "that name or level is taken"),)


def desk_of(request: web.Request) -> ServiceLevelDesk:
    return request.app[SERVICE_LEVEL_DESK].get()


@routes.route(
    "GET", "/sla/calendars", summary="Business calendars (supervisors and admins)", response=CalendarList
)
async def list_sla_calendars(request: web.Request) -> web.Response:
    rows = await desk_of(request).calendars(viewer_of(request))
    return json_out(CalendarList(items=[CalendarOut.model_validate(r) for r in rows]))


async def _save_calendar(request: web.Request, calendar_id: int | None) -> ServiceCalendar:
    viewer = viewer_of(request)
    body = await parse_body(request, CalendarIn)
    return await desk_of(request).save_calendar(
        viewer,
        name=body.name,
        timezone=body.timezone,
        weekly=body.weekly,
        holidays=body.holidays,
        calendar_id=calendar_id,
    )


@routes.route(
    "POST",
    "/sla/calendars",
    summary="Add a business calendar: time zone, weekly hours, holidays (supervisors and admins)",
    body=CalendarIn,
    response=CalendarOut,
    status=201,
    error_codes=CONFLICT,
)
async def create_sla_calendar(request: web.Request) -> web.Response:
    return json_out(CalendarOut.model_validate(await _save_calendar(request, None)), 201)


@routes.route(
    "PUT",
    "/sla/calendars/{id}",
    summary="Replace a business calendar (supervisors and admins)",
    body=CalendarIn,
    response=CalendarOut,
    error_codes=CONFLICT,
)
async def replace_sla_calendar(request: web.Request) -> web.Response:
    viewer_of(request)
    return json_out(CalendarOut.model_validate(await _save_calendar(request, path_int(request))))


@routes.route("DELETE", "/sla/calendars/{id}", summary="Delete a business calendar", status=204)
async def delete_sla_calendar(request: web.Request) -> web.Response:
    await desk_of(request).delete(viewer_of(request), ServiceCalendar, path_int(request), "calendar")
    return web.Response(status=204)


@routes.route(
    "GET", "/sla/policies", summary="SLA policies in the order they are tried (supervisors and admins)",
    response=PolicyList,
)  # fmt: skip
async def list_sla_policies(request: web.Request) -> web.Response:
    rows = await desk_of(request).policies(viewer_of(request))
    return json_out(PolicyList(items=[PolicyOut.model_validate(r) for r in rows]))


@routes.route(
    "POST",
    "/sla/policies",
    summary="Add an SLA policy: conditions (priority, channel, team, segment, VIP) and targets",
    body=PolicyIn,
    response=PolicyOut,
    status=201,
    error_codes=CONFLICT,
)
async def create_sla_policy(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, PolicyIn)
    row = await desk_of(request).save_policy(viewer, body.model_dump())
    return json_out(PolicyOut.model_validate(row), 201)


@routes.route(
    "PATCH",
    "/sla/policies/{id}",
    summary="Change an SLA policy's conditions, order or targets (null clears a condition or target)",
    body=PolicyUpdate,
    response=PolicyOut,
    error_codes=CONFLICT,
)
async def update_sla_policy(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    policy_id = path_int(request)
    body = await parse_body(request, PolicyUpdate)
    values = body.model_dump(include=body.model_fields_set)
    row = await desk_of(request).save_policy(viewer, values, policy_id)
    return json_out(PolicyOut.model_validate(row))


@routes.route(
    "DELETE", "/sla/policies/{id}", summary="Delete an SLA policy and its escalation rules", status=204
)
async def delete_sla_policy(request: web.Request) -> web.Response:
    await desk_of(request).delete(viewer_of(request), SlaPolicyRecord, path_int(request), "SLA policy")
    return web.Response(status=204)


@routes.route(
    "GET", "/sla/policies/{id}/escalations", summary="A policy's escalation levels", response=RuleList
)
async def list_sla_escalations(request: web.Request) -> web.Response:
    rows = await desk_of(request).rules(viewer_of(request), path_int(request))
    return json_out(RuleList(items=[RuleOut.model_validate(r) for r in rows]))


@routes.route(
    "POST",
    "/sla/policies/{id}/escalations",
    summary="Add an escalation level: at a share of a target or after its breach; notify, raise, reassign",
    body=RuleIn,
    response=RuleOut,
    status=201,
    error_codes=CONFLICT,
)
async def create_sla_escalation(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    policy_id = path_int(request)
    body = await parse_body(request, RuleIn)
    draft = RuleDraft(
        target=body.target,
        level=body.level,
        percent=body.percent,
        after_breach_minutes=body.after_breach_minutes,
        actions=tuple(body.actions),
        reassign_team_id=body.reassign_team_id,
    )
    rule = await desk_of(request).add_rule(viewer, policy_id, draft)
    return json_out(RuleOut.model_validate(rule), 201)


@routes.route("DELETE", "/sla/escalations/{id}", summary="Delete an escalation level", status=204)
async def delete_sla_escalation(request: web.Request) -> web.Response:
    await desk_of(request).delete(viewer_of(request), EscalationRule, path_int(request), "escalation level")
    return web.Response(status=204)


@routes.route(
    "GET", "/tickets/{id}/sla", summary="A ticket's SLA clock: due times, pause, escalations fired",
    response=TicketSlaOut,
)  # fmt: skip
async def get_ticket_sla(request: web.Request) -> web.Response:
    clock = await desk_of(request).ticket_clock(viewer_of(request), path_int(request))
    sla = clock.sla
    return json_out(
        TicketSlaOut(
            ticket_id=clock.ticket_id,
            policy_id=sla.policy_id if sla else None,
            first_response_due_at=sla.first_response_due_at if sla else None,
            next_response_due_at=sla.next_response_due_at if sla else None,
            resolution_due_at=sla.resolution_due_at if sla else None,
            paused=bool(sla and sla.paused_since is not None),
            escalations=[FiringOut.model_validate(f) for f in clock.firings],
        )
    )
