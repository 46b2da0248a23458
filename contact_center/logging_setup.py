"""Logging configuration; secrets from the settings are masked in every record."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from contact_center.settings import Settings


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


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)


def secret_values(settings: Settings) -> list[str]:
    values = [
        settings.security.secret_key.get_secret_value(),
        settings.twilio.auth_token.get_secret_value(),
        settings.twilio.api_key_secret.get_secret_value(),
    ]
    for url in (settings.database.url, settings.redis.url):
        if "@" in url and ":" in url.split("@", 1)[0].split("//", 1)[-1]:
            values.append(url.split("@", 1)[0].split("//", 1)[-1].split(":", 1)[1])
    return values


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonLines()
        if settings.logging.json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(RedactSecrets(secret_values(settings)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.logging.level)
    # The scheduler logs every run of every periodic job at INFO (the queues are looked at every
    # few seconds); its warnings and errors still come through.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
