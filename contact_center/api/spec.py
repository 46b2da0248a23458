"""Declared API endpoints: routing, request parsing and the OpenAPI 3.1 document from one table."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from contact_center.api.errors import ApiError, validation_fields
from contact_center.api.schemas import ErrorResponse
from crm_core.rules import bounded_json
from crm_core.rules.storable_text import has_unstorable

API_PREFIX = "/api/v1"
MAX_HEADER_CHARS = 100
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    public: bool = False
    produces: str = "application/json"
    consumes: str = "application/json"
    # Path parameters that are text (the others are integer ids).
    text_params: tuple[str, ...] = ()
    # Error statuses the handler answers besides those every endpoint of its shape may answer
    # (401/403 when signed in, 404 with a path id, 400/413/415/422 with a body, 422 with a query).
    errors: tuple[int, ...] = ()
    # The success status of a repeated request that created nothing (same client id or key).
    repeat_status: int | None = None
    # Optional request headers the handler reads: (name, description); text of up to 100 characters.
    headers: tuple[tuple[str, str], ...] = ()
    # Error codes particular to the operation: (status, code, when); the status's description names them.
    error_codes: tuple[tuple[int, str, str], ...] = ()


class ApiRoutes:
    """A module's endpoints; ``route`` is used as a decorator on each handler."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        public: bool = False,
        produces: str = "application/json",
        consumes: str = "application/json",
        text_params: tuple[str, ...] = (),
        errors: tuple[int, ...] = (),
        repeat_status: int | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        error_codes: tuple[tuple[int, str, str], ...] = (),
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(
                    method,
                    API_PREFIX + path,
                    handler,
                    summary,
                    self.tag,
                    body,
                    query,
                    response,
                    status,
                    public,
                    produces,
                    consumes,
                    text_params,
                    errors,
                    repeat_status,
                    headers,
                    error_codes,
                )
            )
            return handler

        return register


def add_routes(app: web.Application, groups: Iterable[ApiRoutes]) -> list[Endpoint]:
    endpoints = [e for g in groups for e in g.endpoints]
    for e in endpoints:
        app.router.add_route(e.method, e.path, e.handler)
    return endpoints


async def parse_body(request: web.Request, model: type[M]) -> M:
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    try:
        # Every number is checked by the body's model, which names the field.
        data = bounded_json.loads(await request.read(), bound_ints=False)
    except bounded_json.JsonRefused as exc:
        if exc.path is not None:
            raise ApiError(422, "invalid_input", str(exc), {exc.path: str(exc)}) from None
        raise ApiError(400, "invalid_json", f"the body is not accepted: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_input", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_input", "the body has invalid fields", validation_fields(exc)) from None


def _is_list(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(annotation))
    return typing.get_origin(annotation) is list


def parse_query(request: web.Request, model: type[M]) -> M:
    data: dict[str, Any] = {}
    for key, value in request.query.items():
        if has_unstorable(key) or has_unstorable(value):
            raise ApiError(
                422, "invalid_input", "the query may not contain NUL characters", {key: "NUL character"}
            )
    for key in set(request.query.keys()):
        field = model.model_fields.get(key)
        values = request.query.getall(key)
        data[key] = values if field is not None and _is_list(field.annotation) else values[-1]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(
            422, "invalid_input", "the query has invalid parameters", validation_fields(exc)
        ) from None


def path_int(request: web.Request, name: str = "id") -> int:
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:  # not "²" (isdigit, but int() fails)
        raise ApiError(404, "not_found", f"no such {name}: {raw!r}")
    return int(raw)


def _schema_refs(endpoints: list[Endpoint]) -> tuple[dict[Any, Any], dict[str, Any]]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for e in endpoints:
        if e.body is not None:
            wanted.append((e.body, "validation"))
        if e.response is not None:
            wanted.append((e.response, "serialization"))
    wanted.append((ErrorResponse, "serialization"))
    unique = list(dict.fromkeys(wanted))
    refs, defs = models_json_schema(unique, ref_template="#/components/schemas/{model}")
    return dict(refs), defs.get("$defs", {})


def _query_parameters(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(mode="validation", ref_template="#/components/schemas/{model}")
    # The enums the parameters refer to are component schemas like every other (not "#/$defs").
    for name, definition in schema.get("$defs", {}).items():
        components.setdefault(name, definition)
    params = []
    for name, prop in schema.get("properties", {}).items():
        params.append(
            {
                "name": name,
                "in": "query",
                "required": name in schema.get("required", []),
                "schema": prop,
                **({"description": prop["description"]} if "description" in prop else {}),
            }
        )
    return params


ERROR_DESCRIPTIONS = {
    400: "The body is not valid JSON",
    401: "Not signed in, or the credentials are wrong, unknown or revoked",
    403: "Not allowed for this role, or the CSRF token is missing",
    404: "Not found, or not visible to you",
    409: "In conflict with the current state (the error code says which)",
    413: "The body is too large",
    415: "The body's media type is not accepted",
    422: "Invalid input: the fields say which",
    429: "Too many attempts: wait and retry",
}


def error_statuses(e: Endpoint) -> list[int]:
    """Every error status the endpoint may answer (each with the JSON error body), in order."""
    codes = set(e.errors)
    if not e.public:
        codes |= {401, 403}
    if e.body is not None:
        codes |= {400, 413, 415, 422}
    elif e.consumes != "application/json":
        codes |= {413, 415, 422}
    elif e.query is not None or e.headers:
        codes.add(422)
    codes |= {status for status, _, _ in e.error_codes}
    if "{" in e.path:
        codes.add(404)
    return sorted(codes)


def _error_description(e: Endpoint, status: int) -> str:
    """The status's meaning, and the error codes particular to the operation that it answers with."""
    particular = [f"`{code}`: {when}" for answered, code, when in e.error_codes if answered == status]
    generic = ERROR_DESCRIPTIONS.get(status, "Error")
    return f"{generic}. Also {'; '.join(particular)}" if particular else generic


def openapi_document(
    endpoints: list[Endpoint], *, title: str, version: str, server_url: str
) -> dict[str, Any]:
    refs, components = _schema_refs(endpoints)
    error_ref = refs[(ErrorResponse, "serialization")]
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        op: dict[str, Any] = {
            "operationId": e.handler.__name__,
            "summary": e.summary,
            "tags": [e.tag],
            "parameters": [
                {
                    "name": n,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string" if n in e.text_params else "integer"},
                }
                for n in re.findall(r"{(\w+)}", e.path)
            ],
            "responses": {},
        }
        if e.query is not None:
            op["parameters"].extend(_query_parameters(e.query, components))
        op["parameters"].extend(
            {
                "name": name,
                "in": "header",
                "required": False,
                "description": description,
                "schema": {"type": "string", "maxLength": MAX_HEADER_CHARS},
            }
            for name, description in e.headers
        )
        if not op["parameters"]:
            del op["parameters"]
        if e.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(e.body, "validation")]}},
            }
        elif e.consumes != "application/json":
            op["requestBody"] = {"required": True, "content": {e.consumes: {"schema": {"type": "string"}}}}
        if e.response is not None:
            content = {e.produces: {"schema": refs[(e.response, "serialization")]}}
            op["responses"][str(e.status)] = {"description": "OK", "content": content}
        elif e.produces != "application/json":
            op["responses"][str(e.status)] = {
                "description": "OK",
                "content": {e.produces: {"schema": {"type": "string"}}},
            }
        else:
            op["responses"][str(e.status)] = {"description": "No content"}
        if e.repeat_status is not None:
            op["responses"][str(e.repeat_status)] = {
                **op["responses"][str(e.status)],
                "description": "A repeat of an earlier request: its result; nothing is created twice",
            }
        for code in error_statuses(e):
            op["responses"][str(code)] = {
                "description": _error_description(e, code),
                "content": {"application/json": {"schema": error_ref}},
            }
        if not e.public:
            op["security"] = [{"session": []}, {"bearer": []}]
        paths.setdefault(e.path, {})[e.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "cc_session"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
