"""The realtime hub: agents' WebSockets (``/ws/agent``) fed from the event bus.

Every instance subscribes to the bus and delivers an event to the sockets it holds for the agent
the event names, so a screen-pop reaches the agent whichever instance their browser is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web
from sqlalchemy import select

from contact_center.appkeys import IDENTITY, RUNTIME, Runtime
from contact_center.calls import SCREEN_POP
from contact_center.presence import AgentState
from crm_core.events import DomainEvent
from crm_core.models import Interaction
from crm_core.services.customer_card import card_by_customer
from crm_core.types import Channel

log = logging.getLogger(__name__)

# Events delivered to the agent named in their payload's "agent_id".
AGENT_EVENTS = frozenset({SCREEN_POP, "call.updated", "presence.changed", "ticket.opened", "ticket.updated"})
SEND_TIMEOUT_SECONDS = 5.0


class AgentSockets:
    def __init__(self) -> None:
        self._by_agent: dict[int, set[web.WebSocketResponse]] = defaultdict(set)
        self.all: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()

    def add(self, agent_id: int, ws: web.WebSocketResponse) -> None:
        self._by_agent[agent_id].add(ws)
        self.all.add(ws)

    def remove(self, agent_id: int, ws: web.WebSocketResponse) -> None:
        sockets = self._by_agent.get(agent_id)
        if sockets is not None:
            sockets.discard(ws)
            if not sockets:
                del self._by_agent[agent_id]

    def connected(self, agent_id: int) -> bool:
        return bool(self._by_agent.get(agent_id))

    async def send(self, agent_id: int, message: dict[str, Any]) -> int:
        text = json.dumps(message, default=str)
        sent = 0
        for ws in list(self._by_agent.get(agent_id, ())):
            if ws.closed:
                continue
            try:
                await asyncio.wait_for(ws.send_str(text), SEND_TIMEOUT_SECONDS)
                sent += 1
            except (ConnectionError, TimeoutError, RuntimeError):
                log.info("dropping a stalled socket of agent %s", agent_id)
                await ws.close(code=WSCloseCode.GOING_AWAY)
        return sent

    async def close_all(self) -> None:
        for ws in list(self.all):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


SOCKETS = web.AppKey("agent_sockets", AgentSockets)


def _frame(event: DomainEvent) -> dict[str, Any]:
    return {"type": event.name, "at": event.occurred_at.isoformat(), **event.payload}


async def _ringing_card(runtime: Runtime, agent_id: int) -> dict[str, Any] | None:
    """The screen-pop of a call still ringing for this agent (for a socket that reconnects)."""
    presence = await runtime.presence.get(agent_id)
    if presence.state is not AgentState.RINGING or not presence.call_sid:
        return None
    async with runtime.uow() as uow:
        interaction = await uow.session.scalar(
            select(Interaction).where(
                Interaction.channel == Channel.VOICE, Interaction.external_id == presence.call_sid
            )
        )
        if interaction is None:
            return None
        card = await card_by_customer(uow.session, interaction.customer_id)
    return {
        "type": SCREEN_POP,
        "agent_id": agent_id,
        "call_sid": presence.call_sid,
        "interaction_id": interaction.id,
        "from": interaction.meta.get("from"),
        "card": card.to_json() if card else None,
        "replayed": True,
    }


def _origin_allowed(request: web.Request, public_base_url: str) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser: the session cookie is the credential
    allowed = urlsplit(public_base_url)
    seen = urlsplit(origin)
    return (seen.scheme, seen.netloc) == (allowed.scheme, allowed.netloc) or seen.netloc == request.host


async def agent_socket(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    identity = request.get(IDENTITY)
    if identity is None:
        raise web.HTTPUnauthorized(text="sign in first")
    if not _origin_allowed(request, runtime.settings.server.public_base_url):
        log.warning("refused agent socket from origin %s", request.headers.get("Origin"))
        raise web.HTTPForbidden(text="origin not allowed")
    agent_id = identity.agent.id
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    sockets = request.app[SOCKETS]
    sockets.add(agent_id, ws)
    try:
        await ws.send_json({"type": "hello", "agent_id": agent_id})
        ringing = await _ringing_card(runtime, agent_id)
        if ringing is not None:
            await ws.send_str(json.dumps(ringing, default=str))
        async for message in ws:
            if message.type is WSMsgType.TEXT and message.data == "ping":
                await ws.send_str("pong")
    finally:
        sockets.remove(agent_id, ws)
    return ws


async def _hub_ctx(app: web.Application) -> Any:
    sockets = AgentSockets()
    app[SOCKETS] = sockets

    async def deliver(event: DomainEvent) -> None:
        agent_id = event.payload.get("agent_id")
        if event.name in AGENT_EVENTS and isinstance(agent_id, int):
            await sockets.send(agent_id, _frame(event))

    unsubscribe = app[RUNTIME].bus.subscribe(deliver)
    try:
        yield
    finally:
        unsubscribe()
        with contextlib.suppress(Exception):
            await sockets.close_all()


def setup_realtime(app: web.Application) -> None:
    """Register the hub; must come after the runtime in ``cleanup_ctx``."""
    app.cleanup_ctx.append(_hub_ctx)
    app.router.add_get("/ws/agent", agent_socket)
