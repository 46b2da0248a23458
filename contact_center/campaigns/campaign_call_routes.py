"""The Twilio webhooks of campaign calls and of the agents' rooms, under :data:`PREFIX`, signed
and checked like every Twilio route. The dial's attempt id (or the room's campaign and agent)
rides in the URL's query, which the signature covers.

- ``calls/answer``: the customer picked up: bridged into an agent's room, or the abandonment
  message with its opt-out ``<Gather>`` (to ``calls/optout``);
- ``calls/amd``: the asynchronous machine verdict: a machine is redirected to ``calls/machine``;
- ``calls/status``: every progress event of the call;
- ``rooms/agent`` and ``rooms/status``: an agent's browser joining their room, and its leg's end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDict
from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from channels.twilio import voice_params
from channels.twilio.signature import WebhookVerifier
from channels.twilio.voice import EMPTY_TWIML, twiml_webhook
from contact_center.campaigns.agent_rooms import AgentRooms
from contact_center.campaigns.campaign_calls import AnswerKind, CallAnswer, CampaignCallDesk
from crm_core.errors import GatewayError, InvalidInput
from crm_core.voice import CallStatus

PREFIX = "/twilio/campaigns"


class CampaignUrls:
    """The absolute URLs given to Twilio for campaign calls and rooms."""

    def __init__(self, public_base_url: str) -> None:
        self.base = public_base_url.rstrip("/") + PREFIX

    def _url(self, name: str, **query: int) -> str:
        return f"{self.base}/{name}?{urlencode(query)}"

    def answer(self, attempt_id: int) -> str:
        return self._url("calls/answer", attempt=attempt_id)

    def status(self, attempt_id: int) -> str:
        return self._url("calls/status", attempt=attempt_id)

    def amd(self, attempt_id: int) -> str:
        return self._url("calls/amd", attempt=attempt_id)

    def machine(self, attempt_id: int) -> str:
        return self._url("calls/machine", attempt=attempt_id)

    def optout(self, attempt_id: int) -> str:
        return self._url("calls/optout", attempt=attempt_id)

    def room(self, campaign_id: int, agent_id: int) -> str:
        return self._url("rooms/agent", campaign=campaign_id, agent=agent_id)

    def room_status(self, campaign_id: int, agent_id: int) -> str:
        return self._url("rooms/status", campaign=campaign_id, agent=agent_id)


class CallRedirect(Protocol):
    async def redirect_call(self, call_sid: str, url: str) -> None: ...


def _query_int(request: web.Request, name: str) -> int:
    raw = request.query.get(name, "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise InvalidInput(f"no {name} in the webhook's URL", name)
    return int(raw)


def _xml(response: VoiceResponse) -> str:
    return str(response.to_xml(xml_declaration=True))


def render(answer: CallAnswer, urls: CampaignUrls, attempt_id: int) -> str:
    response = VoiceResponse()
    if answer.kind is AnswerKind.BRIDGE:
        dial = Dial()
        dial.conference(answer.room, start_conference_on_enter=True, end_conference_on_exit=False, beep=False)
        response.append(dial)
    elif answer.kind is AnswerKind.ABANDON:
        gather = Gather(num_digits=1, action=urls.optout(attempt_id), method="POST", timeout=5)
        gather.say(answer.say)
        response.append(gather)
        response.hangup()
    elif answer.kind is AnswerKind.MESSAGE:
        response.say(answer.say)
        response.hangup()
    else:
        response.hangup()
    return _xml(response)


def room_twiml(room: str | None) -> str:
    """The agent's browser joins their room: it starts the conference and ends it on leaving."""
    response = VoiceResponse()
    if room is None:
        response.hangup()
        return _xml(response)
    dial = Dial()
    dial.conference(room, start_conference_on_enter=True, end_conference_on_exit=True, beep=False)
    response.append(dial)
    return _xml(response)


def campaign_call_routes(
    desk: Callable[[], CampaignCallDesk],
    rooms: Callable[[], AgentRooms],
    calls: Callable[[], CallRedirect],
    verifier: WebhookVerifier,
    urls: CampaignUrls,
) -> list[web.RouteDef]:
    async def answer(request: web.Request, params: MultiDict[str]) -> str:
        attempt_id = _query_int(request, "attempt")
        answered = await desk().answered(attempt_id, voice_params.call_sid(params))
        return render(answered, urls, attempt_id)

    async def amd(request: web.Request, params: MultiDict[str]) -> str:
        attempt_id = _query_int(request, "attempt")
        verdict = voice_params.machine_detection(params)
        machine = await desk().machine_verdict(attempt_id, verdict.call_sid, verdict.answered_by)
        if machine is not None:
            try:
                await calls().redirect_call(verdict.call_sid, urls.machine(attempt_id))
            except GatewayError as exc:  # the call ended meanwhile: nothing to redirect
                if not exc.code:
                    raise
        return EMPTY_TWIML

    async def machine(request: web.Request, params: MultiDict[str]) -> str:
        attempt_id = _query_int(request, "attempt")
        return render(await desk().machine_answer(attempt_id), urls, attempt_id)

    async def status(request: web.Request, params: MultiDict[str]) -> str:
        await desk().status(_query_int(request, "attempt"), voice_params.call_status(params))
        return EMPTY_TWIML

    async def optout(request: web.Request, params: MultiDict[str]) -> str:
        stopped = await desk().opt_out(_query_int(request, "attempt"), params.get("Digits", ""))
        response = VoiceResponse()
        if stopped:
            response.say("You will not be called again. Goodbye.")
        response.hangup()
        return _xml(response)

    async def room(request: web.Request, params: MultiDict[str]) -> str:
        campaign_id, agent_id = _query_int(request, "campaign"), _query_int(request, "agent")
        return room_twiml(await rooms().room_of(campaign_id, agent_id))

    async def room_status(request: web.Request, params: MultiDict[str]) -> str:
        update = voice_params.call_status(params)
        if update.status in (
            CallStatus.COMPLETED,
            CallStatus.BUSY,
            CallStatus.NO_ANSWER,
            CallStatus.FAILED,
            CallStatus.CANCELED,
        ):
            await rooms().left_room(_query_int(request, "campaign"), _query_int(request, "agent"))
        return EMPTY_TWIML

    handlers = {
        "calls/answer": answer,
        "calls/amd": amd,
        "calls/machine": machine,
        "calls/status": status,
        "calls/optout": optout,
        "rooms/agent": room,
        "rooms/status": room_status,
    }
    return [web.post(f"{PREFIX}/{name}", twiml_webhook(verifier, h)) for name, h in handlers.items()]
