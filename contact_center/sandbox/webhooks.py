"""Webhooks as Twilio sends them: form-encoded, signed with the auth token, failures recorded."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urldefrag, urlencode

import aiohttp
from twilio.request_validator import RequestValidator

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024
USER_AGENT = "TwilioProxy/1.1"


@dataclass(frozen=True, slots=True)
class WebhookResult:
    url: str
    method: str
    status: int | None
    body: str
    error: str | None = None
    """Why the request failed (connection refused, timeout, HTTP 5xx): Twilio's debugger error 11200."""

    @property
    def ok(self) -> bool:
        return self.error is None


class WebhookSender:
    def __init__(self, session: aiohttp.ClientSession, auth_token: str, timeout: float) -> None:
        self._session = session
        self._validator = RequestValidator(auth_token)
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def sign(self, url: str, params: dict[str, str]) -> str:
        return str(self._validator.compute_signature(url, params))

    async def send(self, url: str, params: dict[str, str], method: str = "POST") -> WebhookResult:
        """POST (or GET) ``params`` to ``url`` with ``X-Twilio-Signature``; never raises for I/O."""
        url, _fragment = urldefrag(url)  # Twilio reads connection overrides (#ct=..) from the fragment
        method = method.upper() if method.upper() in ("GET", "POST") else "POST"
        headers = {
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
        }
        if method == "GET":
            target = url + ("&" if "?" in url else "?") + urlencode(params) if params else url
            headers["X-Twilio-Signature"] = self.sign(target, {})
            data = None
        else:
            target = url
            headers["X-Twilio-Signature"] = self.sign(url, params)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = urlencode(params)
        try:
            async with self._session.request(
                method, target, data=data, headers=headers, timeout=self._timeout, allow_redirects=True
            ) as resp:
                raw = await resp.content.read(MAX_BODY)
                body = raw.decode(resp.charset or "utf-8", errors="replace")
                if resp.status >= 400:
                    return WebhookResult(url, method, resp.status, body, f"HTTP {resp.status} from {url}")
                return WebhookResult(url, method, resp.status, body)
        except TimeoutError:
            return WebhookResult(url, method, None, "", f"timed out after {self._timeout.total}s: {url}")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return WebhookResult(url, method, None, "", f"{type(exc).__name__}: {exc} ({url})")
