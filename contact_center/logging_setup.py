"""Logging configuration: one JSON object per line (or readable text), each line carrying the
request, call, text or ticket it was written for (:mod:`crm_core.log_context`); secrets from the
settings are masked in every record. Per-request and per-REST-call lines are left to DEBUG."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from contact_center.settings import Settings
from crm_core import log_context

# One INFO line per request (aiohttp's access log) or per Twilio REST call (twilio's client, httpx)
# would drown what matters; /metrics counts them instead. At DEBUG they speak.
CHATTY_LOGGERS = ("aiohttp.access", "twilio", "httpx", "httpcore")


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, "[redacted]")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class ContextFields(logging.Filter):
    """Copies the current request id, CallSid, MessageSid and ticket id onto the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = log_context.current()
        record.context = fields
        record.context_text = "".join(f" {k}={v}" for k, v in fields.items())
        return True


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(getattr(record, "context", None) or log_context.current())
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context_text)s"


def secret_values(settings: Settings) -> list[str]:
    values = [
        settings.security.secret_key.get_secret_value(),
        settings.twilio.auth_token.get_secret_value(),
        settings.twilio.api_key_secret.get_secret_value(),
        settings.metrics.token.get_secret_value(),
    ]
    for url in (settings.database.url, settings.redis.url):
        if "@" in url and ":" in url.split("@", 1)[0].split("//", 1)[-1]:
            values.append(url.split("@", 1)[0].split("//", 1)[-1].split(":", 1)[1])
    return values


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if settings.logging.format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactSecrets(secret_values(settings)))
    handler.addFilter(ContextFields())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.logging.level)
    # Their warnings and errors still come through; at DEBUG the access log and REST calls too.
    quiet = logging.DEBUG if root.level <= logging.DEBUG else max(logging.WARNING, root.level)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
