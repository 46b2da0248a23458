"""Visitor tokens: a random visitor id signed with the service's secret key (HMAC-SHA256).

The browser keeps the token (localStorage) and presents it on every connection, so a reload or a
reconnect resumes the same visitor and conversation; a token whose signature does not match is
treated as no token (the browser gets a new visitor).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

_VISITOR_ID = re.compile(r"^[0-9a-f]{32}$")


class VisitorTokens:
    def __init__(self, secret_key: str) -> None:
        # A key of its own, derived from the secret, so these signatures mean nothing elsewhere.
        self._key = hashlib.sha256(b"webchat-visitor-token:" + secret_key.encode()).digest()

    def _signature(self, visitor_id: str) -> str:
        digest = hmac.new(self._key, visitor_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self) -> tuple[str, str]:
        """A new visitor id and its token."""
        visitor_id = secrets.token_hex(16)
        return visitor_id, self.token_for(visitor_id)

    def token_for(self, visitor_id: str) -> str:
        return f"{visitor_id}.{self._signature(visitor_id)}"

    def verify(self, token: str) -> str | None:
        """The visitor id the token was issued for, or None when it is not one of ours."""
        visitor_id, _, signature = token.partition(".")
        if not _VISITOR_ID.match(visitor_id):
            return None
        if not hmac.compare_digest(signature.encode(), self._signature(visitor_id).encode()):
            return None
        return visitor_id
