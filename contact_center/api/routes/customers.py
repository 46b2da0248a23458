"""Customers: create, read, update, search, timeline, duplicates, merge, claim."""

from __future__ import annotations

from aiohttp import web

from contact_center.api.responses import json_out, page_bounds, page_out
from contact_center.api.schemas import (
    AuditEntryOut,
    AuditTrail,
    CustomerCreate,
    CustomerOut,
    CustomerPage,
    CustomerSearch,
    CustomerUpdate,
    DuplicateList,
    DuplicateOut,
    InteractionPage,
    MergeIn,
    TimelineQuery,
)
from contact_center.api.spec import ApiRoutes, parse_body, parse_query, path_int
from contact_center.appkeys import RUNTIME
from contact_center.auth.middleware import viewer_of
from crm_core.services import customers as svc
from crm_core.services.audit import history
from crm_core.services.duplicates import find_duplicates, merge_customers

routes = ApiRoutes("customers")


@routes.route(
    "POST",
    "/customers",
    summary="Create a customer",
    body=CustomerCreate,
    response=CustomerOut,
    status=201,
    errors=(409,),
)
async def create_customer(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, CustomerCreate)
    runtime = request.app[RUNTIME]
    fields = body.model_dump(exclude={"phones", "emails", "owner_id"}, mode="json")
    async with runtime.uow() as uow:
        customer = await svc.create_customer(
            uow,
            viewer,
            region=runtime.region,
            phones=body.phones,
            emails=body.emails,
            owner_id=body.owner_id,
            **fields,
        )
        await uow.commit()
        customer = await svc.get_visible(uow.session, viewer, customer.id)
    return json_out(CustomerOut.model_validate(customer), 201)


@routes.route(
    "GET",
    "/customers",
    summary="Search customers by name, phone, email or free text",
    query=CustomerSearch,
    response=CustomerPage,
)
async def search_customers(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    query = parse_query(request, CustomerSearch)
    limit, offset = page_bounds(request, query)
    runtime = request.app[RUNTIME]
    filters = query.model_dump(exclude={"limit", "offset"}, exclude_none=True)
    async with runtime.uow() as uow:
        page = await svc.search_customers(
            uow.session, viewer, limit=limit, offset=offset, region=runtime.region, **filters
        )
    return page_out(CustomerPage, page.items, page.total, limit, offset)


@routes.route("GET", "/customers/{id}", summary="Read a customer", response=CustomerOut)
async def get_customer(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    async with request.app[RUNTIME].uow() as uow:
        customer = await svc.get_visible(uow.session, viewer, path_int(request))
    return json_out(CustomerOut.model_validate(customer))


@routes.route(
    "PATCH",
    "/customers/{id}",
    summary="Update a customer and its contact points",
    body=CustomerUpdate,
    response=CustomerOut,
    errors=(409,),
)
async def update_customer(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, CustomerUpdate)
    runtime = request.app[RUNTIME]
    contact = {"add_phones", "add_emails", "remove_phones", "remove_emails"}
    changes = body.model_dump(exclude=contact, exclude_unset=True, mode="json")
    async with runtime.uow() as uow:
        customer = await svc.update_customer(
            uow,
            viewer,
            path_int(request),
            changes,
            region=runtime.region,
            add_phones=body.add_phones,
            add_emails=body.add_emails,
            remove_phones=body.remove_phones,
            remove_emails=body.remove_emails,
        )
        await uow.commit()
    return json_out(CustomerOut.model_validate(customer))


@routes.route(
    "GET",
    "/customers/{id}/timeline",
    summary="Every interaction with the customer, newest first",
    query=TimelineQuery,
    response=InteractionPage,
)
async def customer_timeline(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    query = parse_query(request, TimelineQuery)
    limit, offset = page_bounds(request, query)
    async with request.app[RUNTIME].uow() as uow:
        page = await svc.timeline(
            uow.session, viewer, path_int(request), limit=limit, offset=offset, channels=query.channel
        )
    return page_out(InteractionPage, page.items, page.total, limit, offset)


@routes.route(
    "POST",
    "/customers/{id}/claim",
    summary="Take a customer from the shared pool",
    response=CustomerOut,
    errors=(409,),
)
async def claim_customer(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    async with request.app[RUNTIME].uow() as uow:
        customer = await svc.claim_customer(uow, viewer, path_int(request))
        await uow.commit()
    return json_out(CustomerOut.model_validate(customer))


@routes.route(
    "GET",
    "/customers/{id}/duplicates",
    summary="Customers that look like the same person",
    response=DuplicateList,
)
async def customer_duplicates(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    async with request.app[RUNTIME].uow() as uow:
        found = await find_duplicates(uow.session, viewer, path_int(request))
        items = [
            DuplicateOut(customer=CustomerOut.model_validate(c.customer), reasons=c.reasons, score=c.score)
            for c in found
        ]
    return json_out(DuplicateList(items=items))


@routes.route(
    "POST",
    "/customers/{id}/merge",
    summary="Merge another customer into this one (contact points, interactions, tickets)",
    body=MergeIn,
    response=CustomerOut,
)
async def merge_customer(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, MergeIn)
    async with request.app[RUNTIME].uow() as uow:
        survivor = await merge_customers(uow, viewer, path_int(request), body.merged_id)
        await uow.commit()
    return json_out(CustomerOut.model_validate(survivor))


@routes.route(
    "GET",
    "/customers/{id}/history",
    summary="Who changed what on the customer, oldest first",
    response=AuditTrail,
)
async def customer_history(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    customer_id = path_int(request)
    async with request.app[RUNTIME].uow() as uow:
        await svc.get_visible(uow.session, viewer, customer_id)
        entries = await history(uow.session, "customer", customer_id)
    return json_out(AuditTrail(items=[AuditEntryOut.model_validate(e) for e in entries]))
