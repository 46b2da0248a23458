"""The agent's browser phone: a Twilio Voice SDK access token."""

from __future__ import annotations

from aiohttp import web

from channels.twilio.access_token import voice_access_token
from contact_center.api.errors import ApiError
from contact_center.api.responses import json_out
from contact_center.api.schemas import VoiceTokenOut
from contact_center.api.spec import ApiRoutes
from contact_center.appkeys import RUNTIME
from contact_center.auth.middleware import viewer_of
from contact_center.calls import agent_identity

routes = ApiRoutes("voice")
TOKEN_TTL_SECONDS = 3600


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
