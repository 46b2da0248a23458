"""Sending with aiosmtplib: the core's :class:`MailTransport`, errors translated at the edge
(4xx and connection problems are temporary, 5xx permanent with the server's reply)."""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiosmtplib

from channels.email.compose import compose
from channels.email.content_store import ContentStore
from crm_core.email_ports import Accepted, DeliveryError, OutboundEmail


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int
    tls: Literal["ssl", "starttls", "none"]
    username: str = ""
    password: str = ""
    timeout: float = 30.0
    ca_file: Path | None = None  # CA bundle to verify the server with instead of the system's

    def __repr__(self) -> str:  # the password never reaches a log line
        return f"SmtpServer({self.host}:{self.port}, tls={self.tls}, user={self.username or '-'})"


class SmtpSender:
    def __init__(self, server: SmtpServer, store: ContentStore) -> None:
        self.server = server
        self.store = store

    async def deliver(self, email: OutboundEmail, accepted: Accepted) -> str:
        """Hand the message over in a session of its own. ``accepted`` is awaited between the
        server's 250 to the end of DATA and the QUIT, so what it records does not wait for the
        session's end (a crash then cannot send the message again)."""
        message = compose(email, self.store)
        server = self.server
        client = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            use_tls=server.tls == "ssl",
            start_tls=server.tls == "starttls",
            tls_context=self._tls_context() if server.tls != "none" else None,
            username=server.username or None,
            password=server.password or None,
            timeout=server.timeout,
        )
        try:
            await client.connect()
            errors, reply = await client.send_message(
                message, sender=email.from_address, recipients=[*email.to, *email.cc]
            )
        except BaseException as exc:
            client.close()
            if isinstance(exc, Exception):
                raise self._error(exc) from exc
            raise
        if errors:
            # Some recipients refused, others took it: delivered, with the refusals noted.
            reply = f"{reply}; refused: " + "; ".join(f"{a}: {r.code} {r.message}" for a, r in errors.items())
        try:
            await accepted(reply)
        finally:
            await _quit(client)
        return reply

    def _error(self, exc: Exception) -> Exception:
        """The :class:`DeliveryError` for what the session raised (others as they are)."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            return DeliveryError(self._untrusted(exc), permanent=False)
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return DeliveryError(f"{exc.code} {exc.message}", permanent=500 <= exc.code < 600)
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            return DeliveryError(detail, permanent=all(500 <= c < 600 for c in codes))
        if isinstance(exc, aiosmtplib.SMTPException | OSError | TimeoutError):
            if isinstance(exc.__cause__, ssl.SSLCertVerificationError):
                return DeliveryError(self._untrusted(exc.__cause__), permanent=False)
            return DeliveryError(f"connection: {exc}", permanent=False)
        return exc

    def _tls_context(self) -> ssl.SSLContext:
        """Verifies the certificate and host name, against ``ca_file`` when set, else the system's
        trust store."""
        return ssl.create_default_context(cafile=self.server.ca_file)

    def _untrusted(self, exc: ssl.SSLCertVerificationError) -> str:
        # Temporary: the mail stays queued until the server or the CA setting is fixed.
        where = f"{self.server.host}:{self.server.port}"
        return f"connection: {where}: TLS certificate not accepted: {exc.verify_message}"


async def _quit(client: aiosmtplib.SMTP) -> None:
    """End the session politely; the message is the server's already, so a failure here is not
    the hand-over's."""
    try:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            await client.quit()
    finally:
        client.close()
