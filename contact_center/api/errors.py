"""One JSON error shape for every failure: ``{"error": {"status", "code", "message", "fields"}}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from crm_core.errors import Conflict, Forbidden, InvalidInput, InvalidTransition, NotFound

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}


def error_response(
    status: int, code: str, message: str, fields: dict[str, str] | None = None
) -> web.Response:
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if fields:
        body["fields"] = fields
    return web.json_response({"error": body}, status=status)


def validation_fields(exc: ValidationError, prefix: str = "") -> dict[str, str]:
    fields: dict[str, str] = {}
    for err in exc.errors():
        loc = ""
        for part in err["loc"]:
            # List positions read as the domain errors name them: phones[0], not phones.0.
            if isinstance(part, int):
                loc += f"[{part}]"
            elif part != "__root__":
                loc += f".{part}" if loc else str(part)
        fields.setdefault(prefix + (loc or "body"), err["msg"])
    return fields


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.fields)
    except InvalidInput as exc:
        fields = {exc.field: str(exc)} if exc.field else None
        return error_response(422, "invalid_input", str(exc), fields)
    except InvalidTransition as exc:
        return error_response(409, "invalid_transition", str(exc))
    except NotFound as exc:
        return error_response(404, "not_found", str(exc))
    except Forbidden as exc:
        return error_response(403, "forbidden", str(exc))
    except Conflict as exc:
        return error_response(409, "conflict", str(exc))
    except web.HTTPException as exc:
        if exc.status < 400 or not _wants_json(request):
            raise
        return error_response(exc.status, _HTTP_CODES.get(exc.status, "http_error"), exc.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal server error")


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")
