"""The visitor WebSocket (``/ws/chat``): origin check at the handshake, the visitor token, frames.

The handshake is refused (403) unless the page's Origin is allowed. The first frame is ``hello``
with the visitor token the browser kept; a missing or forged token gets a new visitor. Every
later frame is parsed here and handed to the :class:`VisitorDesk` the application gives (through
a getter: the desk is built at start-up, after the route); what it answers goes back on this
socket, and what it publishes for the visitor reaches every socket of theirs, on any instance,
through :class:`VisitorSockets`. Both are typed values of :mod:`channels.webchat.protocol`,
framed and encoded here. A message may be pushed again (a resync after a bus outage): each socket
is shown a message once, those of its welcome's history included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import WSCloseCode, WSMsgType, web

from channels.webchat.protocol import (
    MAX_FRAME_CHARS,
    Blocked,
    ChatLine,
    FrameError,
    Hello,
    Send,
    VisitorFrame,
    VisitorNotice,
    VisitorReply,
    Welcome,
    encode,
    error_frame,
    parse_frame,
)
from channels.webchat.tokens import VisitorTokens
from crm_core.errors import CoreError, InvalidInput, NotFound

log = logging.getLogger(__name__)

HELLO_TIMEOUT_SECONDS = 10.0
SEND_TIMEOUT_SECONDS = 5.0
# The ids of the messages each socket was shown (the newest are kept).
MESSAGES_KEPT_PER_SOCKET = 5000
# Application close codes (4000-4999): the widget does not reconnect after these.
CLOSE_BLOCKED = 4403
CLOSE_BAD_HELLO = 4400


@dataclass(frozen=True, slots=True)
class Visitor:
    """One connected visitor: who (the verified id), from where."""

    visitor_id: str
    ip: str | None
    origin: str | None


class VisitorBlocked(Exception):
    """The visitor was blocked by an agent: the socket is refused or closed."""


class RateLimited(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class VisitorDesk(Protocol):
    """What the chat channel asks of the application."""

    async def admit(self, ip: str | None) -> bool:
        """May one more connection come from ``ip`` now (connection rate limit)?"""
        ...

    async def welcome(self, visitor: Visitor) -> Welcome:
        """The state a (re)connecting visitor resumes: mode, open conversation, history.

        Raises :class:`VisitorBlocked` for a blocked visitor.
        """
        ...

    async def handle(self, visitor: Visitor, frame: VisitorFrame) -> Sequence[VisitorReply]:
        """Act on one frame; returns what to answer on this socket.

        Raises :class:`VisitorBlocked`, :class:`RateLimited` or crm_core errors.
        """
        ...

    def left(self, visitor: Visitor) -> None:
        """The visitor's last socket on this instance closed (they may come back: a reload)."""
        ...


class VisitorSockets:
    """This instance's visitor sockets, by visitor id."""

    def __init__(self) -> None:
        self._by_visitor: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
        # The ids of the messages each socket was shown, oldest first.
        self._shown: dict[web.WebSocketResponse, dict[int, None]] = {}
        self.all: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()

    def add(self, visitor_id: str, ws: web.WebSocketResponse, shown: Sequence[int] = ()) -> None:
        """A socket of ``visitor_id``, already shown the messages ``shown`` (its welcome)."""
        self._by_visitor[visitor_id].add(ws)
        self._shown[ws] = dict.fromkeys(shown)
        self.all.add(ws)

    def visitor_ids(self) -> list[str]:
        """The visitors with a socket here."""
        return list(self._by_visitor)

    def _first_showing(self, ws: web.WebSocketResponse, message_id: int) -> bool:
        shown = self._shown.setdefault(ws, {})
        if message_id in shown:
            return False
        shown[message_id] = None
        if len(shown) > MESSAGES_KEPT_PER_SOCKET:
            del shown[next(iter(shown))]
        return True

    def remove(self, visitor_id: str, ws: web.WebSocketResponse) -> None:
        self._shown.pop(ws, None)
        sockets = self._by_visitor.get(visitor_id)
        if sockets is not None:
            sockets.discard(ws)
            if not sockets:
                del self._by_visitor[visitor_id]

    def connected(self, visitor_id: str) -> bool:
        return bool(self._by_visitor.get(visitor_id))

    def count(self) -> int:
        return sum(len(s) for s in self._by_visitor.values())

    async def send(self, visitor_id: str, notice: VisitorNotice) -> int:
        """Push ``notice`` to the visitor's sockets here (a message: to those not shown it yet);
        returns to how many."""
        sockets = self._by_visitor.get(visitor_id)
        if not sockets:
            return 0
        text = encode(notice.frame())  # once, whatever the number of sockets
        message_id = notice.message_id if isinstance(notice, ChatLine) else None
        sent = 0
        for ws in list(sockets):
            if ws.closed or (message_id is not None and not self._first_showing(ws, message_id)):
                continue
            try:
                async with asyncio.timeout(SEND_TIMEOUT_SECONDS):  # a scope, not wait_for: no task
                    await ws.send_str(text)
                sent += 1
            except (ConnectionError, TimeoutError, RuntimeError):
                await ws.close(code=WSCloseCode.GOING_AWAY)
        return sent

    async def close_visitor(self, visitor_id: str, code: int, message: bytes = b"") -> None:
        for ws in list(self._by_visitor.get(visitor_id, ())):
            await ws.close(code=code, message=message)

    async def close_all(self) -> None:
        for ws in list(self.all):
            with contextlib.suppress(Exception):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


def _error_for(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, FrameError):
        return error_frame(exc.code, exc.message, exc.field)
    if isinstance(exc, RateLimited):
        return error_frame("rate_limited", exc.message)
    if isinstance(exc, InvalidInput):
        return error_frame("invalid_input", str(exc), exc.field)
    if isinstance(exc, NotFound):
        return error_frame("not_found", str(exc))
    return error_frame("refused", str(exc))


def visitor_socket(
    desk_of: Callable[[], VisitorDesk],
    sockets: VisitorSockets,
    tokens: VisitorTokens,
    allowed_origins: Callable[[], Collection[str]],
) -> Callable[[web.Request], Any]:
    """The aiohttp handler of the visitor socket; ``desk_of`` gives the desk (built at start-up)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        origin = (request.headers.get("Origin") or "").rstrip("/")
        if origin not in allowed_origins():
            log.warning("refused chat socket from origin %r", origin[:200])
            raise web.HTTPForbidden(text="origin not allowed")
        desk = desk_of()
        ip = request.remote
        if not await desk.admit(ip):
            raise web.HTTPTooManyRequests(text="too many chat connections from this address")
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_FRAME_CHARS * 4)
        await ws.prepare(request)
        greeted = await _greet(ws, desk, tokens, ip, origin)
        if greeted is None:
            return ws
        visitor, welcome = greeted
        sockets.add(visitor.visitor_id, ws, [line.message_id for line in welcome.history])
        try:
            await _converse(ws, desk, visitor)
        finally:
            sockets.remove(visitor.visitor_id, ws)
            if not sockets.connected(visitor.visitor_id):
                desk.left(visitor)
        return ws

    return handler


async def _greet(
    ws: web.WebSocketResponse, desk: VisitorDesk, tokens: VisitorTokens, ip: str | None, origin: str
) -> tuple[Visitor, Welcome] | None:
    try:
        first = await ws.receive(timeout=HELLO_TIMEOUT_SECONDS)
    except TimeoutError:
        await ws.close(code=CLOSE_BAD_HELLO, message=b"say hello first")
        return None
    if first.type is not WSMsgType.TEXT:
        await ws.close(code=CLOSE_BAD_HELLO, message=b"say hello first")
        return None
    try:
        hello = parse_frame(first.data)
    except FrameError as exc:
        await ws.send_str(encode(_error_for(exc)))
        await ws.close(code=CLOSE_BAD_HELLO, message=b"say hello first")
        return None
    if not isinstance(hello, Hello):
        await ws.close(code=CLOSE_BAD_HELLO, message=b"say hello first")
        return None
    visitor_id = tokens.verify(hello.token) if hello.token else None
    if visitor_id is None:
        visitor_id, token = tokens.issue()
    else:
        token = hello.token or ""
    visitor = Visitor(visitor_id, ip, origin)
    try:
        state = await desk.welcome(visitor)
    except VisitorBlocked:
        await ws.send_str(encode(Blocked().frame()))
        await ws.close(code=CLOSE_BLOCKED, message=b"blocked")
        return None
    await ws.send_str(encode(state.frame(token)))
    return visitor, state


async def _converse(ws: web.WebSocketResponse, desk: VisitorDesk, visitor: Visitor) -> None:
    async for message in ws:
        if message.type is not WSMsgType.TEXT:
            if message.type is WSMsgType.BINARY:
                await ws.send_str(encode(error_frame("text_only", "frames are JSON text")))
            continue
        try:
            frame = parse_frame(message.data)
            if isinstance(frame, Hello):
                raise FrameError("invalid_frame", "hello comes once, first")
        except FrameError as exc:
            await ws.send_str(encode(_error_for(exc)))
            continue
        try:
            replies = await desk.handle(visitor, frame)
        except VisitorBlocked:
            await ws.send_str(encode(Blocked().frame()))
            await ws.close(code=CLOSE_BLOCKED, message=b"blocked")
            return
        except (RateLimited, CoreError) as exc:
            reply = _error_for(exc)
        except Exception:
            # The frame was not acted on (the database is out of reach, ...): the visitor may
            # send it again; the socket stays.
            log.exception("chat frame %s of visitor %s failed", frame.type, visitor.visitor_id)
            reply = error_frame("unavailable", "the service could not take this now; it is sent again")
        else:
            for answer in replies:
                await ws.send_str(encode(answer.frame()))
            continue
        if isinstance(frame, Send):
            reply["id"] = frame.id  # the widget marks that message as not sent (or resends it)
        await ws.send_str(encode(reply))
