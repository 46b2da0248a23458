"""Turning models into JSON responses and pages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from contact_center.api.schemas import PageQuery
from contact_center.appkeys import RUNTIME

T = TypeVar("T")


def json_out(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(text=model.model_dump_json(), status=status)


def page_bounds(request: web.Request, query: PageQuery) -> tuple[int, int]:
    crm = request.app[RUNTIME].settings.crm
    limit = min(query.limit or crm.page_size, crm.max_page_size)
    return limit, query.offset


def page_out(
    page_model: type[BaseModel],
    items: Sequence[Any],
    total: int,
    limit: int,
    offset: int,
    convert: Callable[[Any], Any] | None = None,
) -> web.Response:
    rows = [convert(i) for i in items] if convert else list(items)
    item_model = page_model.model_fields["items"].annotation.__args__[0]  # type: ignore[union-attr]
    return json_out(
        page_model(
            items=[item_model.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
        )
    )
