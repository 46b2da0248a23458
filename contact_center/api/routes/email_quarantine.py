"""Received mail that could not be stored: admins list it, download it, retry it or dismiss it."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import Field

from contact_center.api.errors import ApiError
from contact_center.api.responses import json_out
from contact_center.api.schemas import Input, Output
from contact_center.api.spec import API_PREFIX, ApiRoutes, parse_query, path_int
from contact_center.appkeys import RUNTIME
from contact_center.auth.middleware import require_role, viewer_of
from contact_center.email_setup import EMAIL_DESK
from crm_core.models import EmailQuarantine, Role
from crm_core.services.email_quarantine import list_quarantined

routes = ApiRoutes("email")


class QuarantinedOut(Output):
    id: int
    mailbox: str
    uidvalidity: int
    uid: int
    message_key: str | None
    from_address: str | None
    subject: str
    error: str
    attempts: int
    raw_size: int
    raw_url: str | None
    created_at: datetime
    last_attempt_at: datetime
    resolved_at: datetime | None
    email_id: int | None


class QuarantineList(Output):
    items: list[QuarantinedOut]


class QuarantineQuery(Input):
    include_resolved: bool = False
    before_id: int | None = Field(default=None, ge=1, le=2**62)
    limit: int = Field(default=100, ge=1, le=500)


def _out(row: EmailQuarantine) -> QuarantinedOut:
    return QuarantinedOut(
        id=row.id,
        mailbox=row.mailbox,
        uidvalidity=row.uidvalidity,
        uid=row.uid,
        message_key=row.message_key,
        from_address=row.from_address,
        subject=row.subject,
        error=row.error,
        attempts=row.attempts,
        raw_size=row.raw_size,
        raw_url=f"{API_PREFIX}/email-quarantine/{row.id}/raw" if row.raw_sha256 else None,
        created_at=row.created_at,
        last_attempt_at=row.last_attempt_at,
        resolved_at=row.resolved_at,
        email_id=row.email_id,
    )


@routes.route(
    "GET",
    "/email-quarantine",
    summary="List received messages that could not be stored (admins; newest first)",
    query=QuarantineQuery,
    response=QuarantineList,
)
async def list_quarantine(request: web.Request) -> web.Response:
    require_role(viewer_of(request), Role.ADMIN)
    query = parse_query(request, QuarantineQuery)
    async with request.app[RUNTIME].uow() as uow:
        rows = await list_quarantined(
            uow.session, include_resolved=query.include_resolved, limit=query.limit, before_id=query.before_id
        )
    return json_out(QuarantineList(items=[_out(r) for r in rows]))


@routes.route(
    "POST",
    "/email-quarantine/{id}/retry",
    summary="Ingest a quarantined message again; resolved when it is stored, else the new error "
    "(409 when it is resolved, its mailbox is gone or its bytes are missing)",
    response=QuarantinedOut,
    errors=(409,),
)
async def retry_quarantined(request: web.Request) -> web.Response:
    require_role(viewer_of(request), Role.ADMIN)
    desk = request.app[EMAIL_DESK]
    row = await desk.retry_quarantined(request.app[RUNTIME].uow, path_int(request))
    return json_out(_out(row))


@routes.route(
    "DELETE",
    "/email-quarantine/{id}",
    summary="Dismiss a quarantined message (kept, with its raw bytes, as resolved)",
    response=QuarantinedOut,
)
async def dismiss_quarantined(request: web.Request) -> web.Response:
    require_role(viewer_of(request), Role.ADMIN)
    desk = request.app[EMAIL_DESK]
    row = await desk.dismiss_quarantined(request.app[RUNTIME].uow, path_int(request))
    return json_out(_out(row))


@routes.route(
    "GET",
    "/email-quarantine/{id}/raw",
    summary="Download a quarantined message as it was received (message/rfc822)",
    produces="message/rfc822",
)
async def raw_quarantined(request: web.Request) -> web.Response:
    require_role(viewer_of(request), Role.ADMIN)
    item_id = path_int(request)
    store = request.app[EMAIL_DESK].store
    async with request.app[RUNTIME].uow() as uow:
        row = await uow.session.get(EmailQuarantine, item_id)
    if row is None:
        raise ApiError(404, "not_found", f"no quarantined message {item_id}")
    if row.raw_sha256 is None or not store.exists(row.raw_sha256):
        raise ApiError(404, "not_found", f"the raw bytes of quarantined message {item_id} are not stored")
    return web.Response(
        body=store.get(row.raw_sha256),
        content_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="quarantined-{item_id}.eml"'},
    )
