"""The SMS routes: agents text a ticket's (or a customer's) number and read the conversation;
supervisors read the suppression list (the ``sms`` API group); and Twilio's messaging webhooks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Protocol

from aiohttp import web
from pydantic import Field, StringConstraints

from channels.twilio.signature import WebhookVerifier
from channels.twilio.sms import sms_routes
from contact_center.api.errors import ApiError
from contact_center.api.responses import json_out, page_bounds
from contact_center.api.schemas import Input, Output, PageQuery
from contact_center.api.spec import ApiRoutes, parse_body, parse_query, path_int
from contact_center.appkeys import RUNTIME
from contact_center.auth.middleware import require_role, viewer_of
from contact_center.late import Late
from contact_center.settings import Settings
from contact_center.sms.desk import SmsDesk
from crm_core.models import Role, SmsMessage
from crm_core.services.sms_conversation import customer_messages, ticket_messages
from crm_core.services.sms_outbound import MAX_BODY, IdempotencyKeyReused
from crm_core.services.sms_suppression import SmsSuppressed, list_suppressions
from crm_core.types import Direction
from crm_core.visibility import Viewer

routes = ApiRoutes("sms")
SMS_DESK = web.AppKey("sms_desk", Late[SmsDesk])
"""The desk, built at start-up, for routes added before it."""
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_DOC = (
    "The sender's own key for this text (each agent's keys are their own). Sent again with the same "
    "text, the answer is 200 with the first text and nothing is sent again; with a different body, "
    "recipient, ticket or customer, 422 with error code idempotency_key_reused"
)
SEND_ERRORS = (
    (409, "sms_opted_out", "the number opted out (STOP, a text asking to stop, or carrier 21610)"),
    (422, "idempotency_key_reused", "the Idempotency-Key was used before for a different text"),
)


class SmsSendIn(Input):
    body: Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY)]
    to: Annotated[str, StringConstraints(max_length=40)] | None = Field(
        default=None,
        description="One of the customer's numbers; by default the number they last texted from",
    )


class MediaOut(Output):
    url: str
    content_type: str


class SmsMessageOut(Output):
    id: int
    direction: Direction
    kind: str = Field(
        description="message, keyword (STOP/START/HELP), opt-out-request (a longer text asking to stop "
        "texts: it opted the number out), help (the service's help reply) or opt-out-confirmation"
    )
    customer_id: int
    ticket_id: int | None
    interaction_id: int | None
    agent_id: int | None
    message_sid: str | None
    from_number: str
    to_number: str
    body: str
    media: list[MediaOut]
    encoding: str | None = Field(description="GSM-7 or UCS-2 (outbound)")
    segments: int | None
    status: str = Field(
        description="received (inbound); queued (error_message says why when an attempt could not reach "
        "Twilio), unconfirmed (may have reached Twilio; settled by asking it), sending, sent, delivered, "
        "undelivered or failed"
    )
    error_code: int | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime


class SmsMessageList(Output):
    items: list[SmsMessageOut]


class SuppressionOut(Output):
    phone: str
    reason: str
    keyword: str | None
    customer_id: int | None
    created_at: datetime


class SuppressionList(Output):
    items: list[SuppressionOut]


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if len(key) > 100:
        raise ApiError(422, "invalid_input", f"{IDEMPOTENCY_HEADER} is longer than 100 characters")
    return key or None


class _Send(Protocol):
    async def __call__(
        self, viewer: Viewer, target_id: int, /, *, body: str, to: str | None, idempotency_key: str | None
    ) -> tuple[SmsMessage, bool]: ...


async def _send(request: web.Request, send: _Send) -> web.Response:
    """Text through ``send`` (to a ticket's or a customer's number): 201, or 200 for a repeat."""
    viewer = viewer_of(request)  # 401 before anything is read
    body = await parse_body(request, SmsSendIn)
    try:
        row, created = await send(
            viewer,
            path_int(request),
            body=body.body,
            to=body.to,
            idempotency_key=_idempotency_key(request),
        )
    except SmsSuppressed as exc:
        raise ApiError(409, "sms_opted_out", str(exc), {"to": str(exc)}) from None
    except IdempotencyKeyReused as exc:
        raise ApiError(422, "idempotency_key_reused", str(exc), {IDEMPOTENCY_HEADER: str(exc)}) from None
    return json_out(SmsMessageOut.model_validate(row), 201 if created else 200)


@routes.route(
    "POST",
    "/tickets/{id}/sms",
    summary="Text the ticket's customer (409 sms_opted_out when the number replied STOP)",
    body=SmsSendIn,
    response=SmsMessageOut,
    status=201,
    errors=(409,),
    repeat_status=200,
    headers=((IDEMPOTENCY_HEADER, IDEMPOTENCY_DOC),),
    error_codes=SEND_ERRORS,
)
async def send_ticket_sms(request: web.Request) -> web.Response:
    return await _send(request, request.app[SMS_DESK].get().reply_on_ticket)


@routes.route(
    "GET", "/tickets/{id}/sms", summary="The ticket's texts, both ways, oldest first", response=SmsMessageList
)
async def list_ticket_sms(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    async with request.app[RUNTIME].uow() as uow:
        rows = await ticket_messages(uow.session, viewer, path_int(request))
    return json_out(SmsMessageList(items=[SmsMessageOut.model_validate(r) for r in rows]))


@routes.route(
    "POST",
    "/customers/{id}/sms",
    summary="Text a customer (joins their open SMS ticket; 409 sms_opted_out after STOP)",
    body=SmsSendIn,
    response=SmsMessageOut,
    status=201,
    errors=(409,),
    repeat_status=200,
    headers=((IDEMPOTENCY_HEADER, IDEMPOTENCY_DOC),),
    error_codes=SEND_ERRORS,
)
async def send_customer_sms(request: web.Request) -> web.Response:
    return await _send(request, request.app[SMS_DESK].get().text_customer)


@routes.route(
    "GET",
    "/customers/{id}/sms",
    summary="A customer's texts, both ways, newest first",
    query=PageQuery,
    response=SmsMessageList,
)
async def list_customer_sms(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    query = parse_query(request, PageQuery)
    limit, offset = page_bounds(request, query)
    async with request.app[RUNTIME].uow() as uow:
        rows = await customer_messages(uow.session, viewer, path_int(request), limit=limit, offset=offset)
    return json_out(SmsMessageList(items=[SmsMessageOut.model_validate(r) for r in rows]))


@routes.route(
    "GET",
    "/sms/suppressions",
    summary="Numbers that will not be texted (STOP, a text asking to stop, or carrier 21610), newest first; "
    "supervisors",
    query=PageQuery,
    response=SuppressionList,
)
async def list_sms_suppressions(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    require_role(viewer, Role.SUPERVISOR, Role.ADMIN)
    query = parse_query(request, PageQuery)
    limit, offset = page_bounds(request, query)
    async with request.app[RUNTIME].uow() as uow:
        rows = await list_suppressions(uow.session, limit=limit, offset=offset)
    return json_out(SuppressionList(items=[SuppressionOut.model_validate(r) for r in rows]))


def twilio_webhooks(desk: Callable[[], SmsDesk], settings: Settings) -> list[web.RouteDef]:
    """The messaging webhooks (signature-checked), answered by the desk ``desk`` returns."""
    verifier = WebhookVerifier(settings.twilio.auth_token.get_secret_value(), settings.server.public_base_url)
    return sms_routes(desk, verifier)
