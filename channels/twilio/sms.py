"""The messaging webhooks: verify, parse into core DTOs, hand them to the application.

Endpoints (form POSTs from Twilio, all signature-checked, 403 before any work otherwise):
``inbound`` (a text to one of our numbers; answered with an empty TwiML ``<Response/>``: replies
go through the outbox, never as TwiML) and ``status`` (delivery receipts of our texts; the
outbox row is named in the callback URL's ``outbox`` query parameter).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import MultiDict

from channels.twilio import sms_params
from channels.twilio.answering import answer_webhook
from channels.twilio.signature import WebhookVerifier
from crm_core.services.sms_types import SmsInbox

PREFIX = "/twilio/sms"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


def status_callback_url(public_base_url: str, outbox_id: int) -> str:
    return f"{public_base_url.rstrip('/')}{PREFIX}/status?outbox={outbox_id}"


def _outbox_param(request: web.Request) -> int | None:
    raw = request.query.get("outbox", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


def sms_routes(inbox: Callable[[], SmsInbox], verifier: WebhookVerifier) -> list[web.RouteDef]:
    """The webhooks, answered by the inbox ``inbox`` returns (looked up per webhook: the
    application builds it at start-up, after the routes are added)."""

    def webhook(
        handle: Callable[[web.Request, MultiDict[str]], Awaitable[None]],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def answer(request: web.Request) -> web.Response:
            params = await verifier.verified_form(request)
            await answer_webhook(request, lambda: handle(request, params))
            return web.Response(text=EMPTY_TWIML, content_type="text/xml")

        return answer

    async def inbound(request: web.Request, params: MultiDict[str]) -> None:
        message = sms_params.inbound_sms(params)
        await inbox().message_received(message)

    async def status(request: web.Request, params: MultiDict[str]) -> None:
        update = sms_params.message_status(params, _outbox_param(request))
        await inbox().message_status(update)

    return [web.post(f"{PREFIX}/inbound", webhook(inbound)), web.post(f"{PREFIX}/status", webhook(status))]
