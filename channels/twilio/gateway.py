"""The outbound half of the Twilio channel: calls and messages through the official client.

The client runs over aiohttp (AsyncTwilioHttpClient) against a configurable API base URL (the
sandbox, or https://api.twilio.com), with a real per-request timeout. Twilio's 429 / 20429
("too many concurrent requests") is never processed by Twilio, so only that is retried, with
capped exponential backoff; anything else is reported, never blindly repeated.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from crm_core.errors import GatewayError

log = logging.getLogger(__name__)

TWILIO_API = "https://api.twilio.com"
TOO_MANY_REQUESTS = 20429
T = TypeVar("T")


class _HttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """Sends every request to ``base_url`` and bounds it by ``timeout`` seconds."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(pool_connections=True)
        self._base = base_url.rstrip("/")
        self._timeout = timeout

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if url.startswith(TWILIO_API):
            url = self._base + url[len(TWILIO_API) :]
        kwargs["timeout"] = None  # aiohttp wants a ClientTimeout; the bound is applied here instead
        auth = kwargs.pop("auth", None)
        if auth is not None:
            # As an explicit header: aiohttp's auth= argument is deprecated.
            credentials = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            kwargs["headers"] = {**(kwargs.get("headers") or {}), "Authorization": f"Basic {credentials}"}
        return await asyncio.wait_for(super().request(method, url, *args, **kwargs), self._timeout)


class TwilioGateway:
    """Implements the core's CallControl and SmsSender ports."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        base_url: str = TWILIO_API,
        timeout: float = 10.0,
        max_attempts: int = 4,
        messaging_service_sid: str = "",
    ) -> None:
        self._http = _HttpClient(base_url, timeout)
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
                raise GatewayError(
                    f"{what} refused by Twilio: {exc.msg}",
                    code=exc.code,
                    status=exc.status,
                    retryable=too_many,
                ) from exc
            except (TimeoutError, OSError) as exc:
                # The request may have reached Twilio: its outcome is unknown, so it is not repeated.
                raise GatewayError(f"{what}: no answer from Twilio ({type(exc).__name__})") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def redirect_call(self, call_sid: str, url: str) -> None:
        await self._call(
            "call redirect", lambda: self._client.calls(call_sid).update_async(url=url, method="POST")
        )

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
