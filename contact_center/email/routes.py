"""Email's REST routes: a ticket's mail (list it, reply by email, download an attachment or the raw
message) and, for admins, received mail that could not be stored (list it, download it, retry
it or dismiss it)."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Annotated

from aiohttp import web
from pydantic import Field
from sqlalchemy import select

from channels.email.bodies import sanitize_html
from channels.email.compose import compose
from channels.email.content_store import ContentStore
from contact_center.api.errors import ApiError
from contact_center.api.responses import json_out
from contact_center.api.schemas import Input, Output
from contact_center.api.spec import API_PREFIX, ApiRoutes, parse_body, parse_query, path_int
from contact_center.appkeys import RUNTIME
from contact_center.auth.middleware import require_role, viewer_of
from contact_center.email.desk import EMAIL_DESK
from crm_core.email_ports import MailAttachment
from crm_core.models import EmailAttachment, EmailKind, EmailMessage, EmailQuarantine, EmailStatus, Role
from crm_core.services.email_outbound import outbound_of
from crm_core.services.email_quarantine import list_quarantined
from crm_core.services.email_threads import (
    TicketMail,
    get_attachment,
    get_email,
    list_ticket_emails,
    reply_by_email,
)
from crm_core.types import Direction

# A ticket's mail.
routes = ApiRoutes("email")

_CID_RE = re.compile(r"""(src\s*=\s*["']?)cid:([^"'\s>]+)""", re.IGNORECASE)
Address = Annotated[str, Field(min_length=3, max_length=320)]


class AttachmentOut(Output):
    id: int
    filename: str
    content_type: str
    size: int
    inline: bool
    content_id: str | None
    stored: bool
    skipped_reason: str | None
    url: str | None


class EmailOut(Output):
    id: int
    ticket_id: int | None
    direction: Direction
    kind: EmailKind
    # received (inbound); queued, sending, sent, failed or bounced (outbound).
    status: EmailStatus
    mailbox: str | None
    message_id: str | None
    from_address: str | None
    from_name: str | None
    to: list[str]
    cc: list[str]
    subject: str
    in_reply_to: str | None
    visible_text: str
    text: str
    html: str | None
    defects: list[str]
    attempts: int
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    raw_url: str
    attachments: list[AttachmentOut]


class EmailList(Output):
    items: list[EmailOut]


class AttachmentIn(Input):
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(default="application/octet-stream", pattern=r"^[\w.+-]+/[\w.+-]+$")
    content_base64: str


class EmailReplyIn(Input):
    text: str = Field(min_length=1, max_length=200_000)
    html: str | None = Field(default=None, max_length=500_000)
    to: list[Address] = Field(default_factory=list, max_length=50)
    cc: list[Address] = Field(default_factory=list, max_length=50)
    mailbox: str | None = None
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=20)


def _attachment_url(attachment_id: int) -> str:
    return f"{API_PREFIX}/email-attachments/{attachment_id}"


def _email_out(mail: TicketMail) -> EmailOut:
    email = mail.email
    by_cid = {a.content_id: a.id for a in mail.attachments if a.content_id and a.sha256}
    html = email.html_body
    if html and by_cid:
        html = _CID_RE.sub(
            lambda m: m.group(1) + (_attachment_url(by_cid[m.group(2)]) if m.group(2) in by_cid else ""),
            html,
        )
    return EmailOut(
        id=email.id,
        ticket_id=email.ticket_id,
        direction=email.direction,
        kind=email.kind,
        status=email.status,
        mailbox=email.mailbox,
        message_id=email.message_id,
        from_address=email.from_address,
        from_name=email.from_name,
        to=email.to_addresses,
        cc=email.cc_addresses,
        subject=email.subject,
        in_reply_to=email.in_reply_to,
        visible_text=email.visible_text,
        text=email.text_body,
        html=html,
        defects=email.defects,
        attempts=email.attempts,
        last_error=email.last_error,
        delivered_at=email.delivered_at,
        created_at=email.created_at,
        raw_url=f"{API_PREFIX}/emails/{email.id}/raw",
        attachments=[
            AttachmentOut(
                id=a.id,
                filename=a.filename,
                content_type=a.content_type,
                size=a.size,
                inline=a.inline,
                content_id=a.content_id,
                stored=a.sha256 is not None,
                skipped_reason=a.skipped_reason,
                url=_attachment_url(a.id) if a.sha256 else None,
            )
            for a in mail.attachments
        ],
    )


@routes.route("GET", "/tickets/{id}/emails", summary="List a ticket's email messages", response=EmailList)
async def list_emails(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    async with request.app[RUNTIME].uow() as uow:
        mails = await list_ticket_emails(uow.session, viewer, path_int(request))
    return json_out(EmailList(items=[_email_out(m) for m in mails]))


@routes.route(
    "POST",
    "/tickets/{id}/emails",
    summary="Reply to a ticket by email (queued in the outbox; its status shows the delivery)",
    body=EmailReplyIn,
    response=EmailOut,
    status=201,
)
async def reply(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, EmailReplyIn)
    runtime = request.app[RUNTIME]
    desk = request.app[EMAIL_DESK]
    limit = runtime.settings.email.max_attachment_bytes
    attachments: list[MailAttachment] = []
    for index, item in enumerate(body.attachments):
        try:
            data = base64.b64decode(item.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(
                422,
                "invalid_input",
                "an attachment is not valid base64",
                {f"attachments.{index}": "not base64"},
            ) from None
        if len(data) > limit:
            raise ApiError(
                413, "payload_too_large", f"attachment {item.filename!r} is larger than {limit} bytes"
            )
        sha = desk.store.put(data)
        attachments.append(MailAttachment(item.filename, item.content_type, len(data), sha))
    async with runtime.uow() as uow:
        email = await reply_by_email(
            uow,
            viewer,
            path_int(request),
            text=body.text,
            html=sanitize_html(body.html) if body.html else None,
            to=body.to,
            cc=body.cc,
            mailbox=body.mailbox,
            policy=desk.policy,
            mailboxes=desk.mailboxes,
            attachments=attachments,
            now=runtime.clock.now(),
        )
        await uow.commit()
        rows = list(
            await uow.session.scalars(select(EmailAttachment).where(EmailAttachment.email_id == email.id))
        )
    desk.wake_outbox()
    return json_out(_email_out(TicketMail(email, rows)), 201)


@routes.route(
    "GET",
    "/emails/{id}/raw",
    summary="Download a message as it was received or sent (message/rfc822)",
    produces="message/rfc822",
)
async def raw_email(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    desk = request.app[EMAIL_DESK]
    async with request.app[RUNTIME].uow() as uow:
        email = await get_email(uow.session, viewer, path_int(request))
        attachments = list(
            await uow.session.scalars(select(EmailAttachment).where(EmailAttachment.email_id == email.id))
        )
    data = _raw_bytes(email, attachments, desk.store)
    return web.Response(
        body=data,
        content_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="email-{email.id}.eml"'},
    )


def _raw_bytes(email: EmailMessage, attachments: list[EmailAttachment], store: ContentStore) -> bytes:
    if email.direction is Direction.OUTBOUND:
        return compose(outbound_of(email, attachments), store).as_bytes()
    if email.raw_sha256 is None or not store.exists(email.raw_sha256):
        raise ApiError(404, "not_found", f"the raw message of email {email.id} is not stored")
    return store.get(email.raw_sha256)


@routes.route(
    "GET",
    "/email-attachments/{id}",
    summary="Download an email attachment, with the media type it came with",
    produces="*/*",
)
async def download_attachment(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    store = request.app[EMAIL_DESK].store
    async with request.app[RUNTIME].uow() as uow:
        attachment, _ = await get_attachment(uow.session, viewer, path_int(request))
    if attachment.sha256 is None:
        raise ApiError(
            404, "not_found", f"attachment {attachment.id} was not stored: {attachment.skipped_reason}"
        )
    if not store.exists(attachment.sha256):
        raise ApiError(404, "not_found", f"the content of attachment {attachment.id} is missing")
    safe_name = re.sub(r"[^\w.\- ]", "_", attachment.filename) or "attachment"
    return web.Response(
        body=store.get(attachment.sha256),
        content_type=attachment.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{safe_name}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        },
    )


# Received mail that could not be stored (admins).
quarantine_routes = ApiRoutes("email")


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


def _quarantined_out(row: EmailQuarantine) -> QuarantinedOut:
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


@quarantine_routes.route(
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
    return json_out(QuarantineList(items=[_quarantined_out(r) for r in rows]))


@quarantine_routes.route(
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
    runtime = request.app[RUNTIME]
    row = await desk.retry_quarantined(runtime.uow, path_int(request), runtime.clock.now())
    return json_out(_quarantined_out(row))


@quarantine_routes.route(
    "DELETE",
    "/email-quarantine/{id}",
    summary="Dismiss a quarantined message (kept, with its raw bytes, as resolved)",
    response=QuarantinedOut,
)
async def dismiss_quarantined(request: web.Request) -> web.Response:
    require_role(viewer_of(request), Role.ADMIN)
    desk = request.app[EMAIL_DESK]
    runtime = request.app[RUNTIME]
    row = await desk.dismiss_quarantined(runtime.uow, path_int(request), runtime.clock.now())
    return json_out(_quarantined_out(row))


@quarantine_routes.route(
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
