"""The do-not-call list and the dial-time check over the API: whether a number (or a campaign's
number) is dialable now and every reason why not; adding a number (any agent: a customer asked),
listing, importing (the company's list, or the national registry file with its date) and taking
a number off the company's list (supervisors and admins)."""

from __future__ import annotations

import codecs
from collections.abc import Iterator

from aiohttp import web

from contact_center.api.errors import ApiError
from contact_center.api.responses import json_out, page_bounds, page_out
from contact_center.api.spec import ApiRoutes, parse_body, parse_query, path_int
from contact_center.appkeys import RUNTIME
from contact_center.auth.middleware import require_role, viewer_of
from contact_center.campaigns.routes import desk_of
from contact_center.campaigns.schemas import (
    DialabilityOut,
    DialableQuery,
    DncImportOut,
    DncImportQuery,
    DncIn,
    DncPage,
    DncQuery,
    RefusalOut,
)
from crm_core.errors import InvalidInput
from crm_core.models import Role
from crm_core.services.dialable import Dialability

routes = ApiRoutes("do-not-call")


def dialability_out(found: Dialability) -> DialabilityOut:
    return DialabilityOut(
        number=found.e164,
        dialable=found.dialable,
        reasons=[RefusalOut(code=r.code.value, message=r.message, details=r.details) for r in found.reasons],
        warnings=found.warnings,
        next_callable=found.next_callable,
    )


@routes.route(
    "GET",
    "/dialable",
    summary="Whether a number may be dialled now under a regulatory profile, and every reason why not",
    query=DialableQuery,
    response=DialabilityOut,
)
async def check_dialable(request: web.Request) -> web.Response:
    viewer_of(request)
    query = parse_query(request, DialableQuery)
    return json_out(dialability_out(await desk_of(request).dialable(query.number, query.profile)))


@routes.route(
    "GET",
    "/campaigns/{id}/contacts/{contact_id}/dialable",
    summary="Whether a campaign's number may be dialled now under the campaign's rules, and why not",
    response=DialabilityOut,
)
async def check_campaign_contact_dialable(request: web.Request) -> web.Response:
    found = await desk_of(request).contact_dialable(
        viewer_of(request), path_int(request), path_int(request, "contact_id")
    )
    return json_out(dialability_out(found))


@routes.route(
    "GET",
    "/do-not-call",
    summary="The do-not-call lists, newest first (supervisors and admins)",
    query=DncQuery,
    response=DncPage,
)
async def list_do_not_call(request: web.Request) -> web.Response:
    require_role(viewer_of(request), Role.ADMIN, Role.SUPERVISOR)
    query = parse_query(request, DncQuery)
    limit, offset = page_bounds(request, query)
    page = await desk_of(request).dnc_list(
        limit=limit, offset=offset, national=query.national, number=query.number
    )
    return page_out(DncPage, page.items, page.total, limit, offset)


@routes.route(
    "POST",
    "/do-not-call",
    summary="Put a number on the company's do-not-call list; answers its entries on that list",
    body=DncIn,
    response=DncPage,
    status=201,
    repeat_status=200,
)
async def add_do_not_call(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, DncIn)
    desk = desk_of(request)
    added = await desk.dnc_add(viewer, body.number)
    page = await desk.dnc_list(limit=10, offset=0, national=False, number=body.number)
    response = page_out(DncPage, page.items, page.total, 10, 0)
    response.set_status(201 if added else 200)
    return response


def _lines(payload: bytes) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        text = decoder.decode(payload, final=True)
    except UnicodeDecodeError as exc:
        raise ApiError(422, "invalid_input", f"the file is not UTF-8: {exc}") from None
    return iter(text.splitlines())


@routes.route(
    "POST",
    "/do-not-call/import",
    summary="Import numbers (one per line) onto the company's list, or replace the national list with "
    "its registry file and date (supervisors and admins)",
    query=DncImportQuery,
    consumes="text/plain",
    response=DncImportOut,
)
async def import_do_not_call(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    require_role(viewer, Role.ADMIN, Role.SUPERVISOR)
    query = parse_query(request, DncImportQuery)
    if request.content_type not in ("text/plain", "text/csv"):
        raise ApiError(415, "unsupported_media_type", "send the file as text/plain")
    limit = request.app[RUNTIME].settings.server.max_body_bytes
    if (request.content_length or 0) > limit:
        raise ApiError(413, "payload_too_large", f"the file is larger than {limit} bytes")
    payload = await request.content.read(limit + 1)
    if len(payload) > limit:
        raise ApiError(413, "payload_too_large", f"the file is larger than {limit} bytes")
    if query.list == "national" and query.file_date is None:
        raise InvalidInput("the national file needs its file_date", "file_date")
    added, already, rejected, warnings = await desk_of(request).dnc_import(
        viewer, _lines(payload), national_date=query.file_date if query.list == "national" else None
    )
    return json_out(
        DncImportOut(
            added=added,
            already=already,
            rejected=[{"line": line, "reason": reason} for line, reason in rejected],
            warnings=warnings,
        )
    )


@routes.route(
    "DELETE",
    "/do-not-call/{number}",
    summary="Take a number off the company's do-not-call list (supervisors and admins)",
    status=204,
    text_params=("number",),
)
async def remove_do_not_call(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    require_role(viewer, Role.ADMIN, Role.SUPERVISOR)
    try:
        await desk_of(request).dnc_remove(viewer, request.match_info["number"])
    except InvalidInput:
        raise ApiError(404, "not_found", "no such number on the company's list") from None
    return web.Response(status=204)
