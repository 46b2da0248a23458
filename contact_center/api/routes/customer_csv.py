"""Customers as CSV: import a file (admins and supervisors), export the customers one may see."""

from __future__ import annotations

import contextlib
import tempfile

from aiohttp import web

from contact_center.api.errors import ApiError
from contact_center.api.responses import json_out
from contact_center.api.schemas import ImportReport
from contact_center.api.spec import ApiRoutes
from contact_center.appkeys import RUNTIME
from contact_center.auth.middleware import require_role, viewer_of
from crm_core.models import Role
from crm_core.services.customer_export import export_customers
from crm_core.services.customer_import import import_customers

routes = ApiRoutes("customers")

# Bodies up to this size stay in memory while they are imported; bigger ones go to a temporary file.
SPOOL_MEMORY_BYTES = 1 << 20
CHUNK_BYTES = 64 * 1024


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"the file is larger than {limit} bytes")


@routes.route(
    "POST",
    "/customers/import",
    summary="Import customers from a CSV file (admins and supervisors); rejected rows are reported",
    consumes="text/csv",
    response=ImportReport,
)
async def import_customers_csv(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    require_role(viewer, Role.ADMIN, Role.SUPERVISOR)
    if request.content_type != "text/csv":
        raise ApiError(415, "unsupported_media_type", "send the file as text/csv")
    if (request.charset or "utf-8").lower() not in ("utf-8", "utf8", "us-ascii"):
        raise ApiError(415, "unsupported_media_type", "send the file encoded as UTF-8")
    runtime = request.app[RUNTIME]
    limit = runtime.settings.server.max_body_bytes
    if (request.content_length or 0) > limit:
        raise _too_large(limit)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as body:
        received = 0
        async for chunk in request.content.iter_chunked(CHUNK_BYTES):
            received += len(chunk)
            if received > limit:
                raise _too_large(limit)
            body.write(chunk)
        body.seek(0)
        result = await import_customers(runtime.uow, body, actor=viewer, region=runtime.region)
    rejected = [{"line": r.line, "reason": r.reason} for r in result.rejected]
    return json_out(
        ImportReport(
            created=result.created, updated=result.updated, duplicates=result.duplicates, rejected=rejected
        )
    )


@routes.route(
    "GET",
    "/customers/export",
    summary="The customers you may see as a CSV file, in the columns the import reads",
    produces="text/csv",
)
async def export_customers_csv(request: web.Request) -> web.StreamResponse:
    viewer = viewer_of(request)
    response = web.StreamResponse(
        headers={"Content-Disposition": 'attachment; filename="customers.csv"', "Cache-Control": "no-store"}
    )
    response.content_type = "text/csv"
    response.charset = "utf-8"
    async with (
        request.app[RUNTIME].uow() as uow,
        contextlib.aclosing(export_customers(uow.session, viewer)) as chunks,
    ):
        header = await anext(chunks)
        await response.prepare(request)
        await response.write(header.encode("utf-8"))
        async for chunk in chunks:
            await response.write(chunk.encode("utf-8"))
    await response.write_eof()
    return response
