"""Sending with aiosmtplib: the core's :class:`MailTransport`, errors translated at the edge
(4xx and connection problems are temporary, 5xx permanent with the server's reply)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiosmtplib

from channels.email.compose import compose
from channels.email.content_store import ContentStore
from crm_core.email_ports import DeliveryError, OutboundEmail


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

    async def deliver(self, email: OutboundEmail) -> str:
        message = compose(email, self.store)
        server = self.server
        try:
            errors, reply = await aiosmtplib.send(
                message,
                sender=email.from_address,
                recipients=[*email.to, *email.cc],
                hostname=server.host,
                port=server.port,
                use_tls=server.tls == "ssl",
                start_tls=server.tls == "starttls",
                tls_context=self._tls_context() if server.tls != "none" else None,
                username=server.username or None,
                password=server.password or None,
                timeout=server.timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(self._untrusted(exc), permanent=False) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(f"{exc.code} {exc.message}", permanent=500 <= exc.code < 600) from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            raise DeliveryError(detail, permanent=all(500 <= c < 600 for c in codes)) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            if isinstance(exc.__cause__, ssl.SSLCertVerificationError):
                raise DeliveryError(self._untrusted(exc.__cause__), permanent=False) from exc
            raise DeliveryError(f"connection: {exc}", permanent=False) from exc
        if errors:
            # Some recipients refused, others took it: delivered, with the refusals noted.
            return f"{reply}; refused: " + "; ".join(f"{a}: {r.code} {r.message}" for a, r in errors.items())
        return reply

    def _tls_context(self) -> ssl.SSLContext:
        """Verifies the certificate and host name, against ``ca_file`` when set, else the system's
        trust store."""
        return ssl.create_default_context(cafile=self.server.ca_file)

    def _untrusted(self, exc: ssl.SSLCertVerificationError) -> str:
        # Temporary: the mail stays queued until the server or the CA setting is fixed.
        where = f"{self.server.host}:{self.server.port}"
        return f"connection: {where}: TLS certificate not accepted: {exc.verify_message}"
