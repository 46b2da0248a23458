"""Live calls and the queue, and the outcome an agent records after a call."""

from __future__ import annotations

from aiohttp import web

from contact_center.api.responses import json_out
from contact_center.api.schemas import CallOutcomeIn, InteractionOut, LiveCallList, LiveCallOut
from contact_center.api.spec import ApiRoutes, parse_body, path_int
from contact_center.appkeys import RUNTIME
from contact_center.auth.middleware import viewer_of
from crm_core.models import utcnow
from crm_core.services.interactions import live_calls, record_outcome

routes = ApiRoutes("calls")
QUEUED = frozenset({"queued-for-agent"})


@routes.route(
    "GET",
    "/calls/live",
    summary="Calls going on now and the queue (agents: their own; supervisors: all they may see)",
    response=LiveCallList,
)
async def list_live_calls(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    async with request.app[RUNTIME].uow() as uow:
        rows = await live_calls(uow.session, viewer, only_mine=not viewer.is_supervisor)
    now = utcnow()
    items: list[LiveCallOut] = []
    position = 0
    for interaction, name in rows:
        queued = interaction.status in QUEUED
        position += queued
        items.append(
            LiveCallOut(
                interaction_id=interaction.id,
                call_sid=interaction.external_id,
                customer_id=interaction.customer_id,
                customer_name=name,
                caller=interaction.meta.get("from"),
                status=interaction.status,
                agent_id=interaction.agent_id,
                started_at=interaction.started_at,
                seconds=int((now - interaction.started_at).total_seconds()),
                queue_position=position if queued else None,
            )
        )
    waits = [i.seconds for i in items if i.queue_position is not None]
    return json_out(
        LiveCallList(items=items, queued=len(waits), longest_wait_seconds=max(waits, default=None))
    )


@routes.route(
    "POST",
    "/calls/{id}/outcome",
    summary="Record a call's disposition and the agent's note (id: the call's interaction)",
    body=CallOutcomeIn,
    response=InteractionOut,
)
async def call_outcome(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, CallOutcomeIn)
    runtime = request.app[RUNTIME]
    async with runtime.uow() as uow:
        interaction = await record_outcome(
            uow,
            viewer,
            path_int(request),
            disposition=body.disposition,
            note=body.note,
            dispositions=runtime.settings.voice.dispositions,
        )
        await uow.commit()
    return json_out(InteractionOut.model_validate(interaction))
