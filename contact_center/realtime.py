"""The realtime hub: agents' WebSockets (``/ws/agent``) fed from the event bus.

Every instance subscribes to the bus and delivers an event to the sockets it holds for the agent
the event names, so a screen-pop reaches the agent whichever instance their browser is on. Who is
shown an event is what its entry in the catalogue declares (``contact_center.events``, with the
core's ``crm_core.events``): its audience; a name not in the catalogue is shown to nobody.

An event its catalogue entry gives a ``key`` (a chat message) may come twice, live and from a
resync after a bus outage (``bus.resync``: the chat resends its agents' sockets the messages they
missed): each socket is shown it once.

A socket lives no longer than what opened it: on ``agent.access_changed`` (sessions ended by a
password change, deactivation, signing out) every instance closes the agent's sockets, and every
minute each instance closes the sockets whose session has ended or expired or whose agent is no
longer active, should that event have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable
from collections.abc import Set as AbstractSet
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web
from sqlalchemy import select

from contact_center.appkeys import IDENTITY, RUNTIME, Runtime
from contact_center.events import AGENT_ACCESS_CHANGED, SCREEN_POP, spec_of
from contact_center.routing.presence import AgentState
from crm_core.errors import CoreError
from crm_core.events import Audience, DomainEvent, EventSpec
from crm_core.models import Agent, AgentSession, Interaction, Role
from crm_core.rules import bounded_json
from crm_core.rules.storable_text import storable_json
from crm_core.services.customer_card import card_by_customer
from crm_core.types import Channel

log = logging.getLogger(__name__)

SEND_TIMEOUT_SECONDS = 5.0
# How often an instance checks that its sockets' sessions and agents are still valid.
SOCKET_RECHECK_SECONDS = 60.0
# The keys of the events each socket was shown that may come again (the newest are kept).
KEYS_KEPT_PER_SOCKET = 5000


class AgentSockets:
    def __init__(self) -> None:
        self._by_agent: dict[int, set[web.WebSocketResponse]] = defaultdict(set)
        # The browser session each socket was opened with (None: an API token).
        self._session_of: dict[web.WebSocketResponse, int | None] = {}
        # The keys of the events each socket was shown (see EventSpec.key), oldest first.
        self._shown: dict[web.WebSocketResponse, dict[Hashable, None]] = {}
        self.all: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()

    def add(self, agent_id: int, ws: web.WebSocketResponse, session_id: int | None = None) -> None:
        self._by_agent[agent_id].add(ws)
        self._session_of[ws] = session_id
        self.all.add(ws)

    def remove(self, agent_id: int, ws: web.WebSocketResponse) -> None:
        self._session_of.pop(ws, None)
        self._shown.pop(ws, None)
        sockets = self._by_agent.get(agent_id)
        if sockets is not None:
            sockets.discard(ws)
            if not sockets:
                del self._by_agent[agent_id]

    def held(self) -> list[tuple[int, int | None]]:
        """(agent, session) of every socket held here; session None for an API token."""
        return [
            (agent_id, self._session_of.get(ws)) for agent_id, held in self._by_agent.items() for ws in held
        ]

    async def close_agent(
        self,
        agent_id: int,
        reason: str,
        *,
        tokens: bool = False,
        session_ids: AbstractSet[int] | None = None,
    ) -> int:
        """Close the agent's sockets of browser sessions (only ``session_ids`` when given) and, with
        ``tokens``, those of API tokens; returns how many were closed."""
        closed = 0
        for ws in list(self._by_agent.get(agent_id, ())):
            session_id = self._session_of.get(ws)
            if session_ids is not None:
                chosen = session_id is not None and session_id in session_ids
            else:
                chosen = session_id is not None or tokens
            if chosen and not ws.closed:
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=reason.encode()[:120])
                closed += 1
        return closed

    def connected(self, agent_id: int) -> bool:
        return bool(self._by_agent.get(agent_id))

    def agent_ids(self) -> list[int]:
        """The agents with a socket here."""
        return list(self._by_agent)

    def _first_showing(self, ws: web.WebSocketResponse, key: Hashable) -> bool:
        """Note that ``ws`` is shown ``key``; False if it was already (noted before sending: two
        deliveries at once never both send)."""
        shown = self._shown.setdefault(ws, {})
        if key in shown:
            return False
        shown[key] = None
        if len(shown) > KEYS_KEPT_PER_SOCKET:
            del shown[next(iter(shown))]
        return True

    async def send(self, agent_id: int, message: dict[str, Any], key: Hashable | None = None) -> int:
        """Send ``message`` to the agent's sockets here (with ``key``: those not shown it yet)."""
        sockets = self._by_agent.get(agent_id)
        if not sockets:
            return 0
        text = json.dumps(message, default=str)  # once, whatever the number of sockets
        sent = 0
        for ws in list(sockets):
            if ws.closed or (key is not None and not self._first_showing(ws, key)):
                continue
            try:
                # A timeout scope, not wait_for: no task per frame.
                async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                    await ws.send_str(text)
                sent += 1
            except (ConnectionError, TimeoutError, RuntimeError):
                log.info("dropping a stalled socket of agent %s", agent_id)
                await ws.close(code=WSCloseCode.GOING_AWAY)
        return sent

    async def close_all(self) -> None:
        for ws in list(self.all):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


SOCKETS = web.AppKey("agent_sockets", AgentSockets)

# What agents' sockets may send besides "ping": JSON objects dispatched by their "type".
AgentMessageHandler = Callable[[web.Application, int, dict[str, Any]], Awaitable[None]]
AGENT_MESSAGES = web.AppKey("agent_message_handlers", dict[str, AgentMessageHandler])


def register_agent_message(app: web.Application, kind: str, handler: AgentMessageHandler) -> None:
    """Handle JSON messages of type ``kind`` from agents' sockets (register before start-up)."""
    if AGENT_MESSAGES not in app:
        app[AGENT_MESSAGES] = {}
    app[AGENT_MESSAGES][kind] = handler


async def _agent_message(request: web.Request, ws: web.WebSocketResponse, agent_id: int, text: str) -> None:
    try:
        data = storable_json(bounded_json.loads(text, text_storable=False))
    except bounded_json.JsonRefused:
        data = None
    kind = data.get("type") if isinstance(data, dict) else None
    handler = request.app.get(AGENT_MESSAGES, {}).get(kind) if isinstance(kind, str) else None
    if data is None or handler is None:
        await ws.send_json({"type": "error", "code": "unknown_message", "message": "unknown message type"})
        return
    try:
        await handler(request.app, agent_id, data)
    except CoreError as exc:
        await ws.send_json({"type": "error", "code": "refused", "for": kind, "message": str(exc)})


def _frame(event: DomainEvent) -> dict[str, Any]:
    return {"type": event.name, "at": event.occurred_at.isoformat(), **event.payload}


async def deliver_to_agent(sockets: AgentSockets, event: DomainEvent) -> int:
    """Show ``event`` on the sockets here of the agent it names, if its audience is that agent
    (each socket once, for an event with a key); returns to how many sockets it went."""
    spec = spec_of(event.name)
    if spec is None or Audience.AGENT not in spec.audience:
        return 0
    agent_id = event.payload.get("agent_id")
    # Only events for an agent with a socket here are framed and encoded.
    if not isinstance(agent_id, int) or not sockets.connected(agent_id):
        return 0
    key = spec.key(event.payload) if spec.key is not None else None
    return await sockets.send(agent_id, _frame(event), key)


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
    sockets.add(agent_id, ws, identity.session_id)
    watchers = request.app[WATCHERS]
    watchers.watch(identity.agent)
    try:
        await ws.send_json({"type": "hello", "agent_id": agent_id})
        ringing = await _ringing_card(runtime, agent_id)
        if ringing is not None:
            await ws.send_str(json.dumps(ringing, default=str))
        async for message in ws:
            if message.type is WSMsgType.TEXT and message.data == "ping":
                await ws.send_str("pong")
            elif message.type is WSMsgType.TEXT:
                await _agent_message(request, ws, agent_id, message.data)
    finally:
        sockets.remove(agent_id, ws)
        if not sockets.connected(agent_id):
            watchers.unwatch(agent_id)
    return ws


async def _close_on_access_change(sockets: AgentSockets, event: DomainEvent) -> None:
    payload = event.payload
    agent_id, session_id = payload.get("agent_id"), payload.get("session_id")
    if not isinstance(agent_id, int):
        return
    reason = str(payload.get("reason") or "signed out")
    if isinstance(session_id, int):
        await sockets.close_agent(agent_id, reason, session_ids={session_id})
    else:
        await sockets.close_agent(agent_id, reason, tokens=bool(payload.get("tokens")))


async def recheck_sockets(runtime: Runtime, sockets: AgentSockets) -> int:
    """Close the sockets whose browser session has ended or expired, or whose agent is no longer
    active; returns how many. (What ``agent.access_changed`` does at once, for events missed.)"""
    held = sockets.held()
    if not held:
        return 0
    agent_ids = {agent_id for agent_id, _ in held}
    session_ids = {session_id for _, session_id in held if session_id is not None}
    async with runtime.uow() as uow:
        active = set(await uow.session.scalars(select(Agent.id).where(Agent.id.in_(agent_ids), Agent.active)))
        valid = (
            set(
                await uow.session.scalars(
                    select(AgentSession.id).where(
                        AgentSession.id.in_(session_ids), AgentSession.expires_at >= runtime.clock.now()
                    )
                )
            )
            if session_ids
            else set()
        )
    closed = 0
    for agent_id in agent_ids:
        if agent_id not in active:
            closed += await sockets.close_agent(agent_id, "inactive", tokens=True)
            continue
        ended = {s for a, s in held if a == agent_id and s is not None and s not in valid}
        if ended:
            closed += await sockets.close_agent(agent_id, "session ended", session_ids=ended)
    return closed


async def _hub_ctx(app: web.Application) -> Any:
    sockets = AgentSockets()
    app[SOCKETS] = sockets
    runtime = app[RUNTIME]

    async def deliver(event: DomainEvent) -> None:
        if event.name == AGENT_ACCESS_CHANGED:
            await _close_on_access_change(sockets, event)
            return
        await deliver_to_agent(sockets, event)

    async def recheck() -> None:
        closed = await recheck_sockets(runtime, sockets)
        if closed:
            log.info("closed %d agent sockets whose session or agent is no longer valid", closed)

    unsubscribe = runtime.bus.subscribe(deliver)
    try:
        with runtime.jobs.every(SOCKET_RECHECK_SECONDS, recheck, "agent-socket-recheck"):
            yield
    finally:
        unsubscribe()
        with contextlib.suppress(Exception):
            await sockets.close_all()


# --- supervisors' fan-out ----------------------------------------------------------------------
#
# Supervisors and admins also receive what happens to the agents they may see (a supervisor: the
# agents of their team; an admin: everyone), for wallboards: the events whose audience includes
# Audience.TEAM (presence changes, call progress, chats starting and ending), reduced to who and
# what state (the spec's team_fields; no customer data nor message text: the wallboard reads those
# through the API, under the usual visibility). An event of Audience.SUPERVISORS that names no
# agent (a call that joined the queue) is announced to every supervisor and admin as a bare
# "queue.changed", so they re-read the queue.

QUEUE_CHANGED = "queue.changed"
TEAM_CACHE_SECONDS = 60.0


class TeamWatchers:
    """The connected supervisors and admins, with the team each may watch."""

    def __init__(self) -> None:
        self._watching: dict[int, tuple[Role, int | None]] = {}

    def watch(self, agent: Agent) -> None:
        if agent.role in (Role.SUPERVISOR, Role.ADMIN):
            self._watching[agent.id] = (agent.role, agent.team_id)

    def unwatch(self, agent_id: int) -> None:
        self._watching.pop(agent_id, None)

    def __bool__(self) -> bool:
        return bool(self._watching)

    def everyone(self) -> list[int]:
        return list(self._watching)

    def audience(self, team_id: int | None) -> list[int]:
        """Who may watch an agent of ``team_id``: admins, and that team's supervisors."""
        return [
            watcher
            for watcher, (role, watched_team) in self._watching.items()
            if role is Role.ADMIN or (team_id is not None and watched_team == team_id)
        ]


WATCHERS = web.AppKey("team_watchers", TeamWatchers)


class AgentTeams:
    """Agents' teams, read from the database and remembered for a minute (of the runtime's clock)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._teams: dict[int, int | None] = {}
        self._loaded_at = float("-inf")

    async def team_of(self, agent_id: int) -> int | None:
        now = self._runtime.clock.monotonic()
        if agent_id not in self._teams or now - self._loaded_at > TEAM_CACHE_SECONDS:
            async with self._runtime.uow() as uow:
                rows = await uow.session.execute(select(Agent.id, Agent.team_id))
                self._teams = {row[0]: row[1] for row in rows}
            self._loaded_at = now
        return self._teams.get(agent_id)


def team_frame(event: DomainEvent, spec: EventSpec[Any]) -> dict[str, Any]:
    """What a supervisor learns of an event about one of their agents."""
    payload = event.payload
    frame: dict[str, Any] = {
        "type": event.name,
        "scope": "team",
        "at": event.occurred_at.isoformat(),
        "agent_id": payload.get("agent_id"),
        "call_sid": payload.get("call_sid"),
    }
    for name in spec.team_fields:
        frame[name] = payload.get(name)
    return frame


async def fan_out_to_supervisors(
    sockets: AgentSockets, watchers: TeamWatchers, teams: AgentTeams, event: DomainEvent
) -> None:
    if not watchers:
        return
    spec = spec_of(event.name)
    if spec is None or not spec.audience & (Audience.TEAM | Audience.SUPERVISORS):
        return
    agent_id = event.payload.get("agent_id")
    if isinstance(agent_id, int):
        if Audience.TEAM not in spec.audience:
            return
        frame = team_frame(event, spec)
        for watcher in watchers.audience(await teams.team_of(agent_id)):
            if watcher != agent_id:  # their own events reach them already
                await sockets.send(watcher, frame)
    elif Audience.SUPERVISORS in spec.audience:
        nudge = {"type": QUEUE_CHANGED, "scope": "team", "at": event.occurred_at.isoformat()}
        for watcher in watchers.everyone():
            await sockets.send(watcher, nudge)


async def _supervisors_ctx(app: web.Application) -> Any:
    watchers = TeamWatchers()
    app[WATCHERS] = watchers
    teams = AgentTeams(app[RUNTIME])
    sockets = app[SOCKETS]

    async def deliver(event: DomainEvent) -> None:
        await fan_out_to_supervisors(sockets, watchers, teams, event)

    unsubscribe = app[RUNTIME].bus.subscribe(deliver)
    try:
        yield
    finally:
        unsubscribe()


def setup_realtime(app: web.Application) -> None:
    """Register the hub; must come after the runtime in ``cleanup_ctx``."""
    app.cleanup_ctx.append(_hub_ctx)
    app.cleanup_ctx.append(_supervisors_ctx)
    app.router.add_get("/ws/agent", agent_socket)
