"""The campaign API: campaigns (create, read, edit, start, pause, stop, who works them), their
dispositions and retry rules, loading their call lists (customer filters, a CSV, another
campaign's results) and listing them. Visibility as for customers and tickets: an agent reads
the campaigns they work, a supervisor their team's, an admin all; supervisors and admins edit.
Every handler asks who is signed in before reading its body, so a caller who is not gets 401, not 422."""

from __future__ import annotations

import tempfile
from dataclasses import asdict

from aiohttp import web

from contact_center.api.errors import ApiError
from contact_center.api.responses import json_out, page_bounds, page_out
from contact_center.api.spec import ApiRoutes, parse_body, parse_query, path_int
from contact_center.appkeys import RUNTIME
from contact_center.auth.middleware import require_role, viewer_of
from contact_center.campaigns.desk import CampaignDesk, CampaignView
from contact_center.campaigns.schemas import (
    CampaignCreate,
    CampaignList,
    CampaignOut,
    CampaignResultsOut,
    CampaignUpdate,
    ContactPage,
    ContactQuery,
    DispositionIn,
    DispositionList,
    DispositionOut,
    FromCampaignIn,
    FromCustomersIn,
    ListLoadOut,
    MembersIn,
    RetryRuleIn,
    RetryRuleList,
    RetryRuleOut,
)
from contact_center.late import Late
from crm_core.models import CampaignStatus, Role
from crm_core.services.call_lists import ListLoad

routes = ApiRoutes("campaigns")
CAMPAIGN_DESK = web.AppKey("campaign_desk", Late[CampaignDesk])
SPOOL_MEMORY_BYTES = 1 << 20
CHUNK_BYTES = 64 * 1024


def desk_of(request: web.Request) -> CampaignDesk:
    return request.app[CAMPAIGN_DESK].get()


def campaign_out(view: CampaignView) -> CampaignOut:
    out = CampaignOut.model_validate(view.campaign)
    return out.model_copy(update={"agent_ids": view.agent_ids, "team_ids": view.team_ids})


def load_out(result: ListLoad) -> ListLoadOut:
    imported = None
    if result.imported is not None:
        imported = {
            **{k: v for k, v in asdict(result.imported).items() if k != "rejected"},
            "rejected": [{"line": r.line, "reason": r.reason} for r in result.imported.rejected],
        }
    return ListLoadOut(
        added=result.added, already=result.already, imported=imported, missing_lines=result.missing
    )


@routes.route("GET", "/campaigns", summary="The campaigns one may see", response=CampaignList)
async def list_campaigns(request: web.Request) -> web.Response:
    views = await desk_of(request).visible(viewer_of(request))
    return json_out(CampaignList(items=[campaign_out(v) for v in views]))


@routes.route(
    "POST",
    "/campaigns",
    summary="Create a draft campaign (supervisors: of their team; admins)",
    body=CampaignCreate,
    response=CampaignOut,
    status=201,
)
async def create_campaign(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, CampaignCreate)
    fields = body.model_dump(exclude_none=True)
    view = await desk_of(request).create(viewer, fields)
    return json_out(campaign_out(view), 201)


@routes.route("GET", "/campaigns/{id}", summary="Read a campaign", response=CampaignOut)
async def get_campaign(request: web.Request) -> web.Response:
    return json_out(campaign_out(await desk_of(request).get(viewer_of(request), path_int(request))))


@routes.route(
    "PATCH",
    "/campaigns/{id}",
    summary="Edit a campaign (not once stopped)",
    body=CampaignUpdate,
    response=CampaignOut,
    errors=(409,),
)
async def update_campaign(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, CampaignUpdate)
    fields = body.model_dump(exclude_unset=True)
    if fields.get("name", "") is None or fields.get("caller_id", "") is None:
        raise ApiError(422, "invalid_input", "name and caller_id may be left out but not null")
    view = await desk_of(request).update(viewer, path_int(request), fields)
    return json_out(campaign_out(view))


def _status_route(status: CampaignStatus, verb: str, summary: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        view = await desk_of(request).set_status(viewer_of(request), path_int(request), status)
        return json_out(campaign_out(view))

    handler.__name__ = f"{verb}_campaign"
    routes.route("POST", f"/campaigns/{{id}}/{verb}", summary=summary, response=CampaignOut, errors=(409,))(
        handler
    )


_status_route(CampaignStatus.RUNNING, "start", "Start (or resume) dialling the campaign")
_status_route(CampaignStatus.PAUSED, "pause", "Pause the campaign: no new dials")
_status_route(CampaignStatus.STOPPED, "stop", "Stop the campaign for good")


@routes.route(
    "PUT",
    "/campaigns/{id}/members",
    summary="Set the agents and teams who work the campaign",
    body=MembersIn,
    response=CampaignOut,
)
async def set_campaign_members(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, MembersIn)
    view = await desk_of(request).set_members(viewer, path_int(request), body.agent_ids, body.team_ids)
    return json_out(campaign_out(view))


@routes.route(
    "GET", "/campaigns/{id}/dispositions", summary="The campaign's dispositions", response=DispositionList
)
async def list_campaign_dispositions(request: web.Request) -> web.Response:
    found = await desk_of(request).dispositions(viewer_of(request), path_int(request))
    return json_out(DispositionList(items=[DispositionOut.model_validate(d) for d in found]))


@routes.route(
    "PUT",
    "/campaigns/{id}/dispositions/{code}",
    summary="Create or replace a disposition (final, call back, do not call, converted with a value)",
    body=DispositionIn,
    response=DispositionOut,
    text_params=("code",),
)
async def set_campaign_disposition(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, DispositionIn)
    found = await desk_of(request).set_disposition(
        viewer, path_int(request), request.match_info["code"], **body.model_dump()
    )
    return json_out(DispositionOut.model_validate(found))


@routes.route(
    "DELETE",
    "/campaigns/{id}/dispositions/{code}",
    summary="Remove a disposition",
    status=204,
    text_params=("code",),
)
async def delete_campaign_disposition(request: web.Request) -> web.Response:
    await desk_of(request).delete_disposition(
        viewer_of(request), path_int(request), request.match_info["code"]
    )
    return web.Response(status=204)


@routes.route(
    "GET",
    "/campaigns/{id}/retry-rules",
    summary="The campaign's retry rules by outcome",
    response=RetryRuleList,
)
async def list_campaign_retry_rules(request: web.Request) -> web.Response:
    found = await desk_of(request).retry_rules(viewer_of(request), path_int(request))
    return json_out(RetryRuleList(items=[RetryRuleOut.model_validate(r) for r in found]))


@routes.route(
    "PUT",
    "/campaigns/{id}/retry-rules/{outcome}",
    summary="Set how a number is retried after an outcome (human, busy, no_answer, machine, failed)",
    body=RetryRuleIn,
    response=RetryRuleOut,
    text_params=("outcome",),
)
async def set_campaign_retry_rule(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, RetryRuleIn)
    found = await desk_of(request).set_retry_rule(
        viewer, path_int(request), request.match_info["outcome"], **body.model_dump()
    )
    return json_out(RetryRuleOut.model_validate(found))


@routes.route(
    "POST",
    "/campaigns/{id}/contacts/from-customers",
    summary="Add the customers matching the customer list's filters to the call list",
    body=FromCustomersIn,
    response=ListLoadOut,
)
async def load_campaign_customers(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, FromCustomersIn)
    result = await desk_of(request).load_customers(
        viewer, path_int(request), body.model_dump(exclude_none=True)
    )
    return json_out(load_out(result))


@routes.route(
    "POST",
    "/campaigns/{id}/contacts/from-campaign",
    summary="Add another campaign's numbers last dispositioned with one of the given codes",
    body=FromCampaignIn,
    response=ListLoadOut,
)
async def load_campaign_results(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, FromCampaignIn)
    result = await desk_of(request).load_from_campaign(
        viewer, path_int(request), body.source_id, body.dispositions
    )
    return json_out(load_out(result))


@routes.route(
    "POST",
    "/campaigns/{id}/contacts/import",
    summary="Import a customer CSV (deduplicated into customers) and add each row's first phone",
    consumes="text/csv",
    response=ListLoadOut,
)
async def import_campaign_csv(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    require_role(viewer, Role.ADMIN, Role.SUPERVISOR)
    if request.content_type != "text/csv":
        raise ApiError(415, "unsupported_media_type", "send the file as text/csv")
    limit = request.app[RUNTIME].settings.server.max_body_bytes
    too_large = ApiError(413, "payload_too_large", f"the file is larger than {limit} bytes")
    if (request.content_length or 0) > limit:
        raise too_large
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as body:
        received = 0
        async for chunk in request.content.iter_chunked(CHUNK_BYTES):
            received += len(chunk)
            if received > limit:
                raise too_large
            body.write(chunk)

        def read() -> tempfile.SpooledTemporaryFile[bytes]:
            body.seek(0)
            return body

        result = await desk_of(request).load_csv(viewer, path_int(request), read)
    return json_out(load_out(result))


@routes.route(
    "GET",
    "/campaigns/{id}/contacts",
    summary="The campaign's call list, a page at a time",
    query=ContactQuery,
    response=ContactPage,
)
async def list_campaign_contacts(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    query = parse_query(request, ContactQuery)
    limit, offset = page_bounds(request, query)
    page = await desk_of(request).contacts(
        viewer, path_int(request), state=query.state, limit=limit, offset=offset
    )
    return page_out(ContactPage, page.items, page.total, limit, offset)


@routes.route(
    "GET",
    "/campaigns/{id}/results",
    summary="The campaign's results: dials, answers, dispositions, talk time, cost, revenue, ROI, "
    "list penetration and abandonment",
    response=CampaignResultsOut,
)
async def campaign_results(request: web.Request) -> web.Response:
    found = await desk_of(request).results(viewer_of(request), path_int(request))
    return json_out(CampaignResultsOut.model_validate(found))
