"""The webhooks of the calls the application places (the dialer), beside the inbound ones in
:mod:`channels.twilio.voice`: verify, parse into core DTOs, ask the application, answer TwiML.

Endpoints (form POSTs from Twilio, all signature-checked) under :data:`PREFIX`: ``answer`` (the
placed call was picked up: the URL given when placing it; with answering-machine detection it
carries the verdict), ``status`` (the call's progress, its status callback) and ``amd`` (the
verdict of an asynchronous answering-machine detection).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from multidict import MultiDict

from channels.twilio import twiml, voice_params
from channels.twilio.signature import WebhookVerifier
from channels.twilio.voice import EMPTY_TWIML, twiml_webhook
from crm_core.ports import OutboundCalls

PREFIX = "/twilio/voice/outbound"


class OutboundUrls:
    """The absolute URLs given to Twilio when placing a call, under the service's public base URL."""

    def __init__(self, public_base_url: str) -> None:
        self.base = public_base_url.rstrip("/") + PREFIX

    @property
    def answer(self) -> str:
        return f"{self.base}/answer"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def amd(self) -> str:
        return f"{self.base}/amd"


def outbound_call_routes(
    calls: Callable[[], OutboundCalls], verifier: WebhookVerifier, public_base_url: str
) -> list[web.RouteDef]:
    """The outbound call webhooks; ``calls`` gives the port that answers them (looked up per call)."""
    urls = twiml.VoiceUrls(public_base_url, PREFIX)

    async def answer(request: web.Request, params: MultiDict[str]) -> str:
        return twiml.render(await calls().call_answered(voice_params.outbound_answer(params)), urls)

    async def status(request: web.Request, params: MultiDict[str]) -> str:
        await calls().outbound_status(voice_params.call_status(params))
        return EMPTY_TWIML

    async def amd(request: web.Request, params: MultiDict[str]) -> str:
        await calls().machine_detected(voice_params.machine_detection(params))
        return EMPTY_TWIML

    handlers = {"answer": answer, "status": status, "amd": amd}
    return [
        web.post(f"{PREFIX}/{name}", twiml_webhook(verifier, handle)) for name, handle in handlers.items()
    ]
