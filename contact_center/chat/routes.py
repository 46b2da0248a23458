"""Web chats' routes: the REST routes of the agents' side (my chats, send, mark read, close,
block, and transcripts; the supervisors' list of blocked addresses), the visitor socket
(``/ws/chat``) with the widget's files, and the agents' typing over their socket
(``{"type": "chat.typing", "conversation_id", "typing"}``).

Messages are plain text: whoever displays them must escape them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field, StringConstraints

from channels.webchat.socket import VisitorDesk, VisitorSockets, visitor_socket
from channels.webchat.tokens import VisitorTokens
from contact_center.api.responses import json_out, page_bounds
from contact_center.api.schemas import MAX_ID, Input, Output, PageQuery
from contact_center.api.spec import ApiRoutes, parse_body, parse_query, path_int
from contact_center.appkeys import RUNTIME
from contact_center.auth.middleware import require_role, viewer_of
from contact_center.chat.desk import ChatDesk
from contact_center.late import Late
from contact_center.realtime import register_agent_message
from contact_center.settings import MAX_BLOCK_ADDRESS_HOURS
from crm_core.errors import InvalidInput
from crm_core.models import ChatConversation, ChatMessage, ChatStatus, Role
from crm_core.services.chat_blocks import AddressBlock, address_blocks, lift_address_block

# The desk, built at start-up (see contact_center.chat.wiring).
CHAT_DESK = web.AppKey("chat_desk", Late[ChatDesk])
STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "chat"

routes = ApiRoutes("chats")


class ChatOut(Output):
    id: int
    status: ChatStatus
    customer_id: int
    interaction_id: int
    agent_id: int | None
    ticket_id: int | None
    visitor_name: str | None
    visitor_email: str | None
    visitor_phone: str | None
    origin: str | None
    visitor_read_id: int | None
    agent_read_id: int | None
    created_at: datetime
    assigned_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None


class ChatList(Output):
    items: list[ChatOut]


class ChatQuery(Input):
    status: list[ChatStatus] | None = Field(default=None, description="Default: waiting and active")


class ChatMessageOut(Output):
    id: int
    client_id: str
    sender: Literal["visitor", "agent"]
    agent_id: int | None
    agent_name: str | None = None
    body: str
    created_at: datetime


class TranscriptOut(Output):
    chat: ChatOut
    messages: list[ChatMessageOut]


class ChatMessageIn(Input):
    text: Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
    client_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        default=None, description="Chosen by the sender: the same id again is not stored twice"
    )


class ChatMessageSent(ChatMessageOut):
    created: bool


class ChatReadIn(Input):
    up_to: int = Field(ge=0, le=MAX_ID, description="The id of the last message read")


class ChatReadOut(Output):
    agent_read_id: int | None


class BlockIn(Input):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] | None = None
    address_hours: float | None = Field(
        default=None,
        ge=0,
        le=MAX_BLOCK_ADDRESS_HOURS,
        allow_inf_nan=False,
        description="How long the address the chat came from is blocked too; "
        "default webchat.block_address_hours, 0 blocks the visitor only",
    )


class ChatBlockOut(Output):
    ip: str = Field(description="An IPv4 address, or the /64 network of an IPv6 address")
    until: datetime
    blocked_at: datetime
    reason: str | None
    blocked_by_id: int | None
    blocked_by_name: str | None
    conversation_id: int | None = Field(description="The chat the block came from")


class ChatBlockList(Output):
    items: list[ChatBlockOut]


def _message_out(message: ChatMessage, names: dict[int, str]) -> ChatMessageOut:
    return ChatMessageOut(
        id=message.id,
        client_id=message.client_id,
        sender=message.sender.value,
        agent_id=message.agent_id,
        agent_name=names.get(message.agent_id) if message.agent_id else None,
        body=message.body,
        created_at=message.created_at,
    )


def _chat_out(conversation: ChatConversation) -> ChatOut:
    return ChatOut.model_validate(conversation)


def _block_out(found: AddressBlock) -> ChatBlockOut:
    block = found.block
    return ChatBlockOut(
        ip=block.ip,
        until=block.until,
        blocked_at=block.blocked_at,
        reason=block.reason,
        blocked_by_id=block.blocked_by_id,
        blocked_by_name=found.blocked_by_name,
        conversation_id=block.conversation_id,
    )


@routes.route(
    "GET",
    "/chats",
    summary="List my chats (waiting and active by default)",
    query=ChatQuery,
    response=ChatList,
)
async def my_chats(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    query = parse_query(request, ChatQuery)
    statuses = query.status or [ChatStatus.WAITING, ChatStatus.ACTIVE]
    found = await request.app[CHAT_DESK].get().my_chats(viewer, statuses)
    return json_out(ChatList(items=[_chat_out(c) for c in found]))


@routes.route(
    "GET", "/chats/{id}/transcript", summary="Read a chat and all its messages", response=TranscriptOut
)
async def chat_transcript(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    conversation, messages, names = await request.app[CHAT_DESK].get().transcript(viewer, path_int(request))
    return json_out(
        TranscriptOut(chat=_chat_out(conversation), messages=[_message_out(m, names) for m in messages])
    )


@routes.route(
    "POST",
    "/chats/{id}/messages",
    summary="Send a message to the visitor",
    body=ChatMessageIn,
    response=ChatMessageSent,
    status=201,
    repeat_status=200,
)
async def send_chat_message(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, ChatMessageIn)
    message, created = (
        await request.app[CHAT_DESK].get().agent_message(viewer, path_int(request), body.text, body.client_id)
    )
    out = _message_out(message, {})
    return json_out(ChatMessageSent(**out.model_dump(), created=created), status=201 if created else 200)


@routes.route(
    "POST",
    "/chats/{id}/read",
    summary="Mark the visitor's messages read up to one",
    body=ChatReadIn,
    response=ChatReadOut,
)
async def mark_chat_read(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, ChatReadIn)
    mark = await request.app[CHAT_DESK].get().agent_read(viewer, path_int(request), body.up_to)
    return json_out(ChatReadOut(agent_read_id=mark))


@routes.route("POST", "/chats/{id}/close", summary="End a chat", response=ChatOut)
async def close_chat(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    conversation = await request.app[CHAT_DESK].get().agent_close(viewer, path_int(request))
    return json_out(_chat_out(conversation))


@routes.route(
    "POST",
    "/chats/{id}/block",
    summary="Block the chat's visitor and end the chat",
    body=BlockIn,
    response=ChatOut,
)
async def block_chat_visitor(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, BlockIn)
    conversation = (
        await request.app[CHAT_DESK].get().block(viewer, path_int(request), body.reason, body.address_hours)
    )
    return json_out(_chat_out(conversation))


@routes.route(
    "GET",
    "/chat-blocks",
    summary="Addresses blocked from the web chat now, the latest first (supervisors and admins)",
    query=PageQuery,
    response=ChatBlockList,
)
async def list_chat_blocks(request: web.Request) -> web.Response:
    require_role(viewer_of(request), Role.SUPERVISOR, Role.ADMIN)
    limit, offset = page_bounds(request, parse_query(request, PageQuery))
    runtime = request.app[RUNTIME]
    async with runtime.uow() as uow:
        found = await address_blocks(uow.session, now=runtime.clock.now(), limit=limit, offset=offset)
    return json_out(ChatBlockList(items=[_block_out(b) for b in found]))


@routes.route(
    "DELETE",
    "/chat-blocks/{ip}",
    summary="Lift an address block (supervisors and admins); the blocked visitor stays blocked",
    response=ChatBlockOut,
    text_params=("ip",),
)
async def lift_chat_block(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    require_role(viewer, Role.SUPERVISOR, Role.ADMIN)
    runtime = request.app[RUNTIME]
    async with runtime.uow() as uow:
        lifted = await lift_address_block(
            uow, request.match_info["ip"], viewer.agent_id, now=runtime.clock.now()
        )
        await uow.commit()
    return json_out(_block_out(lifted))


# --- the sockets -------------------------------------------------------------------------------


def add_visitor_routes(
    app: web.Application,
    desk_of: Callable[[], VisitorDesk],
    sockets: VisitorSockets,
    tokens: VisitorTokens,
    origins: Collection[str],
) -> None:
    """The visitor socket (``/ws/chat``) and the widget's files (``/chat/``)."""
    app.router.add_get("/ws/chat", visitor_socket(desk_of, sockets, tokens, lambda: origins))
    app.router.add_static("/chat/", STATIC_DIR, append_version=False)


def add_agent_typing(app: web.Application, desk_of: Callable[[], ChatDesk]) -> None:
    """The agents' ``chat.typing`` messages on their socket (``/ws/agent``)."""

    async def agent_typing(_app: web.Application, agent_id: int, payload: dict[str, Any]) -> None:
        conversation_id, typing = payload.get("conversation_id"), payload.get("typing")
        if not isinstance(conversation_id, int) or not isinstance(typing, bool):
            raise InvalidInput("chat.typing needs an integer conversation_id and a boolean typing")
        await desk_of().agent_typing(agent_id, conversation_id, typing)

    register_agent_message(app, "chat.typing", agent_typing)
