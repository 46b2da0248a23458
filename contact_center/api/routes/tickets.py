"""Tickets: create, read, update, transition, assign, comment, list."""

from __future__ import annotations

from aiohttp import web

from contact_center.api.responses import json_out, page_bounds, page_out
from contact_center.api.schemas import (
    AssignIn,
    AuditEntryOut,
    AuditTrail,
    CommentIn,
    CommentList,
    CommentOut,
    TicketCreate,
    TicketOut,
    TicketPage,
    TicketQuery,
    TicketUpdate,
    TransitionIn,
)
from contact_center.api.spec import ApiRoutes, parse_body, parse_query, path_int
from contact_center.appkeys import RUNTIME
from contact_center.auth.middleware import viewer_of
from crm_core.services import tickets as svc
from crm_core.services.audit import history

routes = ApiRoutes("tickets")


@routes.route(
    "POST",
    "/tickets",
    summary="Open a ticket (404 when the customer is not one you may see)",
    body=TicketCreate,
    response=TicketOut,
    status=201,
    errors=(404,),
)
async def create_ticket(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, TicketCreate)
    runtime = request.app[RUNTIME]
    async with runtime.uow() as uow:
        ticket = await svc.open_ticket(
            uow, viewer, sla=runtime.sla, now=runtime.clock.now(), **body.model_dump()
        )
        await uow.commit()
    return json_out(TicketOut.model_validate(ticket), 201)


@routes.route("GET", "/tickets", summary="List tickets with filters", query=TicketQuery, response=TicketPage)
async def list_tickets(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    query = parse_query(request, TicketQuery)
    limit, offset = page_bounds(request, query)
    async with request.app[RUNTIME].uow() as uow:
        page = await svc.list_tickets(
            uow.session,
            viewer,
            limit=limit,
            offset=offset,
            statuses=query.status,
            priority=query.priority,
            assignee_id=viewer.agent_id if query.mine else query.assignee_id,
            unassigned=query.unassigned,
            team_id=query.team_id,
            customer_id=query.customer_id,
            source_channel=query.channel,
            q=query.q,
        )
    return page_out(TicketPage, page.items, page.total, limit, offset)


@routes.route("GET", "/tickets/{id}", summary="Read a ticket", response=TicketOut)
async def get_ticket(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    async with request.app[RUNTIME].uow() as uow:
        ticket = await svc.get_ticket(uow.session, viewer, path_int(request))
    return json_out(TicketOut.model_validate(ticket))


@routes.route(
    "PATCH",
    "/tickets/{id}",
    summary="Update subject, priority, status, assignee or team",
    body=TicketUpdate,
    response=TicketOut,
    errors=(409,),
)
async def update_ticket(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, TicketUpdate)
    runtime = request.app[RUNTIME]
    async with runtime.uow() as uow:
        ticket = await svc.update_ticket(
            uow,
            viewer,
            path_int(request),
            body.model_dump(exclude_unset=True),
            sla=runtime.sla,
            now=runtime.clock.now(),
        )
        await uow.commit()
    return json_out(TicketOut.model_validate(ticket))


@routes.route(
    "POST",
    "/tickets/{id}/transition",
    summary="Move a ticket to another status",
    body=TransitionIn,
    response=TicketOut,
    errors=(409,),
)
async def transition_ticket(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, TransitionIn)
    runtime = request.app[RUNTIME]
    async with runtime.uow() as uow:
        ticket = await svc.transition(
            uow, viewer, path_int(request), body.status, sla=runtime.sla, now=runtime.clock.now()
        )
        await uow.commit()
    return json_out(TicketOut.model_validate(ticket))


@routes.route(
    "POST",
    "/tickets/{id}/assign",
    summary="Assign a ticket (null unassigns)",
    body=AssignIn,
    response=TicketOut,
)
async def assign_ticket(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, AssignIn)
    runtime = request.app[RUNTIME]
    async with runtime.uow() as uow:
        ticket = await svc.assign(
            uow, viewer, path_int(request), body.assignee_id, sla=runtime.sla, now=runtime.clock.now()
        )
        await uow.commit()
    return json_out(TicketOut.model_validate(ticket))


@routes.route(
    "POST",
    "/tickets/{id}/comments",
    summary="Add a comment or internal note",
    body=CommentIn,
    response=CommentOut,
    status=201,
)
async def comment_ticket(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, CommentIn)
    runtime = request.app[RUNTIME]
    async with runtime.uow() as uow:
        note = await svc.comment(
            uow, viewer, path_int(request), body.body, internal=body.internal, now=runtime.clock.now()
        )
        await uow.commit()
    return json_out(CommentOut.model_validate(note), 201)


@routes.route(
    "GET", "/tickets/{id}/comments", summary="The ticket's comments, oldest first", response=CommentList
)
async def list_ticket_comments(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    async with request.app[RUNTIME].uow() as uow:
        rows = await svc.list_comments(uow.session, viewer, path_int(request))
    return json_out(CommentList(items=[CommentOut.model_validate(r) for r in rows]))


@routes.route(
    "GET",
    "/tickets/{id}/history",
    summary="Who changed what on the ticket, oldest first",
    response=AuditTrail,
)
async def ticket_history(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    ticket_id = path_int(request)
    async with request.app[RUNTIME].uow() as uow:
        await svc.get_ticket(uow.session, viewer, ticket_id)
        entries = await history(uow.session, "ticket", ticket_id)
    return json_out(AuditTrail(items=[AuditEntryOut.model_validate(e) for e in entries]))
