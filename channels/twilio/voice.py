"""The voice webhooks: verify, parse into core DTOs, ask the application, answer TwiML.

Endpoints (all form POSTs from Twilio, all signature-checked): ``inbound`` (a call arrives),
``status`` (call progress), ``agent-leg`` (the agent's leg answered or ended), ``dial-action``,
``connect`` (a queued call redirected to the agent claimed for it), ``queue-wait``,
``enqueue-action``, ``voicemail`` (Record action) and ``recording-status``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import MultiDict

from channels.twilio import twiml, voice_params
from channels.twilio.answering import answer_webhook
from channels.twilio.signature import WebhookVerifier
from crm_core.errors import InvalidInput
from crm_core.ports import VoiceCalls

PREFIX = "/twilio/voice"
TWIML = "text/xml"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'

Handler = Callable[[web.Request], Awaitable[web.Response]]
Answer = Callable[[web.Request, MultiDict[str]], Awaitable[str]]


def twiml_webhook(verifier: WebhookVerifier, answer: Answer) -> Handler:
    """A Twilio webhook: the signed form verified, ``answer`` asked, its TwiML sent back; a
    malformed form is answered 400 before the application sees anything. A database connection
    found dead on use (kept from before a restart of the database) is not the caller's failure:
    ``answer`` is asked once more, on a new connection (every webhook is safe to repeat: keyed by
    CallSid or MessageSid, as Twilio's own retries are)."""

    async def handle(request: web.Request) -> web.Response:
        params = await verifier.verified_form(request)
        body = await answer_webhook(request, lambda: answer(request, params))
        return web.Response(text=body, content_type=TWIML)

    return handle


def _agent_param(request: web.Request) -> int | None:
    raw = request.query.get("agent", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


def voice_routes(
    calls: Callable[[], VoiceCalls], verifier: WebhookVerifier, public_base_url: str
) -> list[web.RouteDef]:
    """The inbound call webhooks; ``calls`` gives the port that answers them (looked up per call:
    the routes are added before the application starts, the port is built as it starts)."""
    urls = twiml.VoiceUrls(public_base_url, PREFIX)

    async def inbound(request: web.Request, params: MultiDict[str]) -> str:
        return twiml.render(await calls().inbound_call(voice_params.inbound_call(params)), urls)

    async def status(request: web.Request, params: MultiDict[str]) -> str:
        await calls().call_status(voice_params.call_status(params))
        return EMPTY_TWIML

    async def agent_leg(request: web.Request, params: MultiDict[str]) -> str:
        agent_id = _agent_param(request)
        parent, update = voice_params.agent_leg(params)
        if agent_id is not None and parent is not None:
            await calls().agent_leg_status(agent_id, parent, update)
        return EMPTY_TWIML

    async def dial_action(request: web.Request, params: MultiDict[str]) -> str:
        outcome = voice_params.dial_outcome(params, _agent_param(request))
        return twiml.render(await calls().dial_finished(outcome), urls)

    async def connect(request: web.Request, params: MultiDict[str]) -> str:
        agent_id = _agent_param(request)
        if agent_id is None:
            raise InvalidInput("missing agent", "agent")
        return twiml.render(await calls().connect_agent(voice_params.call_sid(params), agent_id), urls)

    async def queue_wait(request: web.Request, params: MultiDict[str]) -> str:
        return twiml.say_only(await calls().queue_wait(voice_params.queue_wait(params)))

    async def enqueue_action(request: web.Request, params: MultiDict[str]) -> str:
        return twiml.render(await calls().queue_finished(voice_params.queue_outcome(params)), urls)

    async def voicemail(request: web.Request, params: MultiDict[str]) -> str:
        await calls().recording_ready(voice_params.recording(params))
        return EMPTY_TWIML

    async def recording_status(request: web.Request, params: MultiDict[str]) -> str:
        if params.get("RecordingStatus", "completed") == "completed":
            await calls().recording_ready(voice_params.recording(params))
        return EMPTY_TWIML

    handlers = {
        "inbound": inbound,
        "status": status,
        "agent-leg": agent_leg,
        "dial-action": dial_action,
        "connect": connect,
        "queue-wait": queue_wait,
        "enqueue-action": enqueue_action,
        "voicemail": voicemail,
        "recording-status": recording_status,
    }
    return [
        web.post(f"{PREFIX}/{name}", twiml_webhook(verifier, answer)) for name, answer in handlers.items()
    ]
