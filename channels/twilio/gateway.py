"""The outbound half of the Twilio channel: calls and messages through the official client.

The client runs over aiohttp (AsyncTwilioHttpClient) against a configurable API base URL (the
sandbox, or https://api.twilio.com), with a real per-request timeout and a shorter one for
connecting. Twilio's 429 / 20429 ("too many concurrent requests") is never processed by Twilio,
so that is retried here, with capped exponential backoff. Every failure is reported as one of:

- not sent (``retryable``): no connection was made (refused, DNS failure, connect timeout, TLS
  handshake failure), so no request byte left; or Twilio kept answering 429. Safe to send again.
- unconfirmed: the request may have reached Twilio (no answer in time, the connection lost after
  sending, a 5xx). Never repeated blindly: the outbox settles it by asking Twilio.
- refused: Twilio answered with an error (4xx) and its code.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from crm_core.errors import GatewayError
from crm_core.services.sms_types import SmsStatusUpdate
from crm_core.voice import CallRecord, CallStatus

log = logging.getLogger(__name__)

TWILIO_API = "https://api.twilio.com"
TOO_MANY_REQUESTS = 20429
NOT_FOUND = 20404
LOOKUP_LIMIT = 200  # texts to one number from one sender, newest first, searched for a lost one
T = TypeVar("T")
# No connection was made, so nothing was sent: refused, DNS failure, TLS handshake failure (all
# ClientConnectorError), or no connection within the connect timeout (also waiting for the pool).
NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
# Anything else on the way may have come after the request was written.
MAYBE_SENT = (TimeoutError, OSError, aiohttp.ClientError)


class _HttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """Sends every request to ``base_url``, bounded by ``timeout`` seconds in all and
    ``connect_timeout`` to connect. aiohttp applies both (the library's own timeout is ignored,
    twilio-python issue #925), so a request that never got a connection is told apart
    (:class:`aiohttp.ConnectionTimeoutError`) from one that got no answer."""

    def __init__(self, base_url: str, timeout: float, connect_timeout: float) -> None:
        super().__init__(pool_connections=True)
        self._base = base_url.rstrip("/")
        self._bounds = aiohttp.ClientTimeout(total=timeout, connect=min(connect_timeout, timeout))

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - twilio-python's signature; self._bounds applies
        allow_redirects: bool = False,
    ) -> Response:
        if url.startswith(TWILIO_API):
            url = self._base + url[len(TWILIO_API) :]
        headers = dict(headers or {})
        if auth is not None:
            # As an explicit header: aiohttp's auth= argument is deprecated.
            credentials = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {credentials}"
        async with self.session.request(
            method.upper(),
            url,
            params=params,
            data=data,
            headers=headers,
            timeout=self._bounds,
            allow_redirects=allow_redirects,
        ) as response:
            return Response(response.status, await response.text(), response.headers)


def _why(exc: BaseException) -> str:
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _refused(what: str, exc: TwilioRestException, too_many: bool) -> GatewayError:
    """Twilio answered with an error. A 5xx may come after Twilio acted (it may have queued the
    text and failed answering), so only its 4xx answers are refusals."""
    if exc.status >= 500:
        return GatewayError(
            f"{what}: Twilio answered {exc.status} ({exc.msg})",
            code=exc.code,
            status=exc.status,
            unconfirmed=True,
        )
    return GatewayError(
        f"{what} refused by Twilio: {exc.msg}", code=exc.code, status=exc.status, retryable=too_many
    )


class TwilioGateway:
    """Implements the core's CallControl, CallLookup, SmsSender and SmsLookup ports."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        base_url: str = TWILIO_API,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        max_attempts: int = 4,
        messaging_service_sid: str = "",
    ) -> None:
        self._http = _HttpClient(base_url, timeout, connect_timeout)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        self._max_attempts = max_attempts
        # Texts go out through this Messaging Service (A2P 10DLC registration, opt-out handling):
        # still from the number chosen, which must belong to the service.
        self._messaging_service = (
            {"messaging_service_sid": messaging_service_sid} if messaging_service_sid else {}
        )

    async def close(self) -> None:
        await self._http.close()

    async def _call(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(1, self._max_attempts + 1):
            try:
                return await operation()
            except TwilioRestException as exc:
                too_many = exc.status == 429 or exc.code == TOO_MANY_REQUESTS
                if too_many and attempt < self._max_attempts:
                    delay = min(8.0, 0.25 * 2**attempt) * random.uniform(0.5, 1.0)
                    log.info("Twilio asked to slow down on %s; retrying in %.2fs", what, delay)
                    await asyncio.sleep(delay)
                    continue
                raise _refused(what, exc, too_many) from exc
            except NOT_SENT as exc:
                raise GatewayError(
                    f"{what} not sent: Twilio could not be reached ({_why(exc)})", retryable=True
                ) from exc
            except MAYBE_SENT as exc:
                # The request may have reached Twilio: its outcome is unknown, so it is not repeated.
                raise GatewayError(f"{what}: no answer from Twilio ({_why(exc)})", unconfirmed=True) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def redirect_call(self, call_sid: str, url: str) -> None:
        await self._call(
            "call redirect", lambda: self._client.calls(call_sid).update_async(url=url, method="POST")
        )

    async def fetch_call(self, call_sid: str) -> CallRecord | None:
        """The call as Twilio holds it (``GET Calls/{Sid}.json``); None when Twilio does not know it."""

        async def fetch() -> CallRecord:
            call = await self._client.calls(call_sid).fetch_async()
            duration = str(call.duration) if call.duration is not None else ""
            return CallRecord(
                call_sid=call_sid,
                status=CallStatus(str(call.status)),
                duration_seconds=int(duration) if duration.isdigit() else None,
                start_time=call.start_time,
                end_time=call.end_time,
                answered_by=call.answered_by,
            )

        try:
            return await self._call("call lookup", fetch)
        except GatewayError as exc:
            if exc.status == 404 or exc.code == NOT_FOUND:
                return None
            raise

    async def place_call(
        self, *, to: str, from_: str, url: str, status_callback: str, machine_detection: bool = False
    ) -> str:
        extra: dict[str, Any] = {"machine_detection": "Enable"} if machine_detection else {}

        async def create() -> str:
            call = await self._client.calls.create_async(
                to=to,
                from_=from_,
                url=url,
                status_callback=status_callback,
                status_callback_event=["initiated", "ringing", "answered", "completed"],
                **extra,
            )
            return str(call.sid)

        return await self._call("outbound call", create)

    async def place_campaign_call(
        self,
        *,
        to: str,
        from_: str,
        url: str,
        status_callback: str,
        amd_callback: str,
        machine_detection: str = "DetectMessageEnd",
        ring_seconds: int = 25,
    ) -> str:
        """A campaign call: every progress event reported, answering-machine detection run
        asynchronously (the call's TwiML plays at once; the verdict comes to ``amd_callback``)."""

        async def create() -> str:
            call = await self._client.calls.create_async(
                to=to,
                from_=from_,
                url=url,
                status_callback=status_callback,
                status_callback_event=["initiated", "ringing", "answered", "completed"],
                machine_detection=machine_detection,
                async_amd="true",
                async_amd_status_callback=amd_callback,
                timeout=ring_seconds,
            )
            return str(call.sid)

        return await self._call("campaign call", create)

    async def find_calls(self, *, to: str, from_: str, created_after: datetime) -> list[CallRecord]:
        """Twilio's calls from ``from_`` to ``to`` created after ``created_after``, oldest first:
        how a campaign call whose hand-over went unanswered is settled. Not filtered by StartTime,
        which a call still queued at Twilio does not have yet."""

        async def lookup() -> list[CallRecord]:
            found = await self._client.calls.list_async(
                to=to, from_=from_, limit=LOOKUP_LIMIT, page_size=LOOKUP_LIMIT
            )
            return [
                CallRecord(
                    call_sid=str(c.sid),
                    status=CallStatus(str(c.status)),
                    start_time=c.start_time,
                    end_time=c.end_time,
                    answered_by=c.answered_by,
                )
                for c in reversed(found)
                if c.date_created is not None and c.date_created >= created_after
            ]

        return await self._call("call lookup", lookup)

    async def send_sms(self, *, to: str, from_: str, body: str, status_callback: str | None = None) -> str:
        async def create() -> str:
            message = await self._client.messages.create_async(
                to=to,
                from_=from_,
                body=body,
                **({"status_callback": status_callback} if status_callback else {}),
                **self._messaging_service,
            )
            return str(message.sid)

        return await self._call("text message", create)

    async def find_sms(
        self, *, to: str, from_: str, body: str, created_after: datetime
    ) -> list[SmsStatusUpdate]:
        """Twilio's texts from ``from_`` to ``to`` with this body created after ``created_after``,
        oldest first: how a text whose hand-over went unanswered is settled. Not filtered by
        DateSent, which a text still queued at Twilio does not have yet."""

        async def lookup() -> list[SmsStatusUpdate]:
            found = await self._client.messages.list_async(
                to=to, from_=from_, limit=LOOKUP_LIMIT, page_size=LOOKUP_LIMIT
            )
            return [
                SmsStatusUpdate(str(m.sid), str(m.status), m.error_code)
                for m in reversed(found)
                if m.body == body and m.date_created is not None and m.date_created >= created_after
            ]

        return await self._call("text lookup", lookup)
