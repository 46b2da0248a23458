"""The messaging webhooks: verify, parse into core DTOs, hand them to the application.

Endpoints (form POSTs from Twilio, all signature-checked, 403 before any work otherwise):
``inbound`` (a text to one of our numbers; answered with an empty TwiML ``<Response/>``: replies
go through the outbox, never as TwiML) and ``status`` (delivery receipts of our texts; the
outbox row is named in the callback URL's ``outbox`` query parameter).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import MultiDict

from channels.twilio import sms_params
from channels.twilio.signature import WebhookVerifier
from crm_core.errors import InvalidInput
from crm_core.services.sms_types import SmsInbox
from crm_core.sql import lost_connection

log = logging.getLogger(__name__)

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
            # A database connection found dead on use (kept from before a restart or failover of
            # the database) is not Twilio's failure: answered once more, on a new connection
            # (texts are stored once per MessageSid, receipts move a text forward only).
            for attempt in (1, 2):
                try:
                    await handle(request, params)
                    break
                except InvalidInput as exc:
                    log.warning("malformed Twilio webhook to %s: %s", request.path, exc)
                    raise web.HTTPBadRequest(text=str(exc)) from exc
                except Exception as exc:
                    if attempt == 2 or not lost_connection(exc):
                        raise
                    log.warning("database connection lost answering %s: answering again", request.path)
            return web.Response(text=EMPTY_TWIML, content_type="text/xml")

        return answer

    async def inbound(request: web.Request, params: MultiDict[str]) -> None:
        message = sms_params.inbound_sms(params)
        await inbox().message_received(message)

    async def status(request: web.Request, params: MultiDict[str]) -> None:
        update = sms_params.message_status(params, _outbox_param(request))
        await inbox().message_status(update)

    return [web.post(f"{PREFIX}/inbound", webhook(inbound)), web.post(f"{PREFIX}/status", webhook(status))]
