"""Interactions: the log of contacts, readable by whoever may see the customer."""

from __future__ import annotations

from aiohttp import web

from contact_center.api.responses import json_out, page_bounds, page_out
from contact_center.api.schemas import InteractionOut, InteractionPage, InteractionQuery
from contact_center.api.spec import ApiRoutes, parse_query, path_int
from contact_center.appkeys import RUNTIME
from contact_center.auth.middleware import viewer_of
from crm_core.services.interactions import get_interaction, list_interactions

routes = ApiRoutes("interactions")


@routes.route(
    "GET", "/interactions", summary="List interactions", query=InteractionQuery, response=InteractionPage
)
async def interactions_index(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    query = parse_query(request, InteractionQuery)
    limit, offset = page_bounds(request, query)
    filters = query.model_dump(exclude={"limit", "offset"}, exclude_none=True)
    async with request.app[RUNTIME].uow() as uow:
        page = await list_interactions(uow.session, viewer, limit=limit, offset=offset, **filters)
    return page_out(InteractionPage, page.items, page.total, limit, offset)


@routes.route("GET", "/interactions/{id}", summary="Read an interaction", response=InteractionOut)
async def interaction_detail(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    async with request.app[RUNTIME].uow() as uow:
        found = await get_interaction(uow.session, viewer, path_int(request))
    return json_out(InteractionOut.model_validate(found))
