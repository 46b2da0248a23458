"""Answering a verified Twilio webhook: malformed values are a 400, and a database connection
found dead on use (kept from before a restart or failover of the database) is not Twilio's
failure: the answer is asked once more, on a new connection. Every webhook is safe to repeat
(calls keyed by CallSid, texts stored once per MessageSid, receipts move forward only)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from crm_core.errors import InvalidInput
from crm_core.sql import lost_connection

log = logging.getLogger(__name__)

T = TypeVar("T")


async def answer_webhook(request: web.Request, answer: Callable[[], Awaitable[T]]) -> T:
    for attempt in (1, 2):
        try:
            return await answer()
        except InvalidInput as exc:
            log.warning("malformed Twilio webhook to %s: %s", request.path, exc)
            raise web.HTTPBadRequest(text=str(exc)) from exc
        except Exception as exc:
            if attempt == 2 or not lost_connection(exc):
                raise
            log.warning("database connection lost answering %s: answering again", request.path)
    raise AssertionError("unreachable: the second attempt returns or raises")
