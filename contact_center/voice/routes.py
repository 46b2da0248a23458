"""The REST routes of voice: the agent's browser phone (a Twilio Voice SDK access token), live
calls and the queue, and the outcome an agent records after a call.

Two groups, for the two tags of the API document: ``routes`` (voice) and ``call_routes`` (calls).
"""

from __future__ import annotations

from aiohttp import web

from channels.twilio.access_token import voice_access_token
from contact_center.api.errors import ApiError
from contact_center.api.responses import json_out
from contact_center.api.schemas import (
    CallOutcomeIn,
    InteractionOut,
    LiveCallList,
    LiveCallOut,
    VoiceTokenOut,
)
from contact_center.api.spec import ApiRoutes, parse_body, path_int
from contact_center.appkeys import RUNTIME
from contact_center.auth.middleware import viewer_of
from crm_core.services.interactions import live_calls, record_outcome
from crm_core.voice import QUEUED_FOR_AGENT, agent_identity

routes = ApiRoutes("voice")
call_routes = ApiRoutes("calls")
TOKEN_TTL_SECONDS = 3600
QUEUED = frozenset({QUEUED_FOR_AGENT})


@routes.route(
    "POST",
    "/voice/token",
    summary="A short-lived Voice SDK token so this agent's browser rings for their calls",
    response=VoiceTokenOut,
    errors=(409,),
)
async def voice_token(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    twilio = request.app[RUNTIME].settings.twilio
    key_secret = twilio.api_key_secret.get_secret_value()
    if not (twilio.api_key_sid and key_secret and twilio.twiml_app_sid):
        raise ApiError(
            409,
            "voice_sdk_not_configured",
            "set twilio.api_key_sid, twilio.api_key_secret and twilio.twiml_app_sid to ring browsers; "
            "without them calls are answered through the sandbox",
        )
    identity = agent_identity(viewer.agent_id)
    token = voice_access_token(
        account_sid=twilio.account_sid,
        api_key_sid=twilio.api_key_sid,
        api_key_secret=key_secret,
        twiml_app_sid=twilio.twiml_app_sid,
        identity=identity,
        ttl_seconds=TOKEN_TTL_SECONDS,
    )
    return json_out(VoiceTokenOut(token=token, identity=identity, expires_in=TOKEN_TTL_SECONDS))


@call_routes.route(
    "GET",
    "/calls/live",
    summary="Calls going on now and the queue (agents: their own; supervisors: all they may see)",
    response=LiveCallList,
)
async def list_live_calls(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    runtime = request.app[RUNTIME]
    async with runtime.uow() as uow:
        rows = await live_calls(uow.session, viewer, only_mine=not viewer.is_supervisor)
    now = runtime.clock.now()
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


@call_routes.route(
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
