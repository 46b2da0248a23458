"""A message's Media subresource (2010-04-01): one item per media URL of a text, listed (filter
DateCreated) and fetched, as ``subresource_uris.media`` advertises."""

from __future__ import annotations

import hashlib
import mimetypes
from typing import Any

from aiohttp import web

from contact_center.sandbox.engine import Sandbox
from contact_center.sandbox.listing import page, time_filter
from contact_center.sandbox.model import API_VERSION, Message, TwilioApiError, rfc2822
from contact_center.sandbox.rest import PREFIX, check_account

routes = web.RouteTableDef()
MediaItem = tuple[Message, int, str]


def media_sid(message: Message, index: int) -> str:
    return "ME" + hashlib.sha256(f"{message.sid}/{index}".encode()).hexdigest()[:32]


def media_resource(item: MediaItem) -> dict[str, Any]:
    message, index, url = item
    sid = media_sid(message, index)
    return {
        "account_sid": message.account_sid,
        "content_type": mimetypes.guess_type(url)[0] or "application/octet-stream",
        "date_created": rfc2822(message.date_created),
        "date_updated": rfc2822(message.date_updated),
        "parent_sid": message.sid,
        "sid": sid,
        "uri": f"/{API_VERSION}/Accounts/{message.account_sid}/Messages/{message.sid}/Media/{sid}.json",
    }


def _message(sb: Sandbox, request: web.Request) -> Message:
    message = sb.messages.get(request.match_info["message"])
    if message is None:
        raise TwilioApiError(20404, f"The requested resource {request.path} was not found", 404)
    return message


def _items(message: Message) -> list[MediaItem]:
    return [(message, index, url) for index, url in enumerate(message.media_urls)]


@routes.get(f"{PREFIX}/Messages/{{message}}/Media.json")
async def list_media(request: web.Request) -> web.Response:
    sb = check_account(request)
    message = _message(sb, request)
    created = time_filter(request.query, "DateCreated")
    items = [item for item in _items(message) if created(message.date_created)]
    path = f"/{API_VERSION}/Accounts/{sb.config.account_sid}/Messages/{message.sid}/Media.json"
    return web.json_response(
        page(request.query, "media_list", items, lambda i: media_sid(i[0], i[1]), media_resource, path)
    )


@routes.get(f"{PREFIX}/Messages/{{message}}/Media/{{sid}}.json")
async def fetch_media(request: web.Request) -> web.Response:
    sb = check_account(request)
    message = _message(sb, request)
    item = next((i for i in _items(message) if media_sid(message, i[1]) == request.match_info["sid"]), None)
    if item is None:
        raise TwilioApiError(20404, f"The requested resource {request.path} was not found", 404)
    return web.json_response(media_resource(item))
