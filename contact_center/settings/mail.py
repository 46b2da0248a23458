"""The mail sections: watched mailboxes (IMAP), the SMTP server of the outbox, acknowledgments."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, field_validator, model_validator

from contact_center.settings.sections import Section


class EmailAcknowledgment(Section):
    """One language's automatic answer (Jinja2, sandboxed): ``{{ ticket_number }}``,
    ``{{ subject_token }}``, ``{{ subject }}``, ``{{ customer_name }}``, ``{{ mailbox }}``."""

    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=20_000)


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


def _ca_bundle(value: Path | None) -> Path | None:
    """Checked at start-up: a missing or wrong file would otherwise only show as failed TLS."""
    if value is None:
        return None
    if not value.is_file():
        raise ValueError(f"{value} is not a file")
    if not os.access(value, os.R_OK):
        raise ValueError(f"{value} is not readable")
    try:
        ssl.create_default_context(cafile=value)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ValueError(f"{value} holds no PEM certificates ({exc})") from None
    return value


# PEM CA certificates that verify a mail server instead of the system's trust store; "" or unset:
# the system's. Certificates and host names are verified either way.
CaFile = Annotated[Path | None, BeforeValidator(_empty_is_none), AfterValidator(_ca_bundle)]


class MailboxSettings(Section):
    """One watched mailbox: where its mail comes from, where its tickets go, how it answers."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    address: str
    display_name: str = ""
    imap_host: str = "127.0.0.1"
    imap_port: int = Field(default=993, ge=1, le=65535)
    imap_tls: Literal["ssl", "starttls", "none"] = "ssl"
    imap_ca_file: CaFile = None
    login: str
    # The password itself, or the name of an environment variable, or a file holding it.
    password: SecretStr = SecretStr("")
    password_env: str = ""
    password_file: str = ""
    folder: str = "INBOX"
    after: Literal["seen", "move", "leave"] = "seen"
    move_to: str = ""
    team_id: int | None = None
    language: str = "en"
    acknowledge: bool = True
    acknowledgments: dict[str, EmailAcknowledgment] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> MailboxSettings:
        if self.after == "move" and not self.move_to:
            raise ValueError("move_to: must name a folder when after = 'move'")
        if "@" not in self.address:
            raise ValueError("address: not an email address")
        return self

    def imap_password(self, environ: Mapping[str, str] | None = None) -> str:
        """The password from the first source set; never logged."""
        if self.password.get_secret_value():
            return self.password.get_secret_value()
        env = os.environ if environ is None else environ
        if self.password_env:
            return env.get(self.password_env, "")
        if self.password_file:
            return Path(self.password_file).read_text().strip()
        return ""


class SmtpSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["ssl", "starttls", "none"] = "starttls"
    ca_file: CaFile = None
    username: str = ""
    password: SecretStr = SecretStr("")
    password_env: str = ""
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    def smtp_password(self, environ: Mapping[str, str] | None = None) -> str:
        if self.password.get_secret_value():
            return self.password.get_secret_value()
        env = os.environ if environ is None else environ
        return env.get(self.password_env, "") if self.password_env else ""


class EmailSettings(Section):
    """Mailboxes in (IMAP), the outbox out (SMTP); see channels/email and contact_center/email/."""

    mailboxes: list[MailboxSettings] = Field(default_factory=list)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    attachment_dir: Path = Path("var/mail")
    max_attachment_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    reopen_window_hours: float = Field(default=168.0, ge=0)
    subject_token: str = "[#{number}]"  # noqa: S105 - a format, not a secret
    acks_per_sender_per_hour: int = Field(default=3, ge=0)
    message_id_domain: str = ""
    poll_seconds: float = Field(default=60.0, gt=0, le=3600)
    idle: bool = True
    idle_seconds: float = Field(default=300.0, gt=0, le=1740)
    batch_size: int = Field(default=50, ge=1, le=1000)
    parse_processes: int = Field(default=0, ge=0, le=32)
    reconnect_min_seconds: float = Field(default=1.0, gt=0)
    reconnect_max_seconds: float = Field(default=300.0, gt=0)
    outbox_poll_seconds: float = Field(default=5.0, gt=0, le=3600)
    retry_base_seconds: float = Field(default=30.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    max_attempts: int = Field(default=10, ge=1, le=100)
    # How long a claimed message is another instance's to leave alone: one not reported back by
    # then (its sender died mid-send) is sent again. Longer than an SMTP hand-over can take.
    claim_lease_seconds: float = Field(default=300.0, ge=10, le=86400)
    # Messages one sending address may hand over per minute, across every instance (0: no limit).
    max_per_minute: float = Field(default=0.0, ge=0)

    @field_validator("subject_token")
    @classmethod
    def _has_number(cls, value: str) -> str:
        if value.count("{number}") != 1 or not value.replace("{number}", "").strip():
            raise ValueError("must contain {number} once and some text around it, such as [#{number}]")
        return value

    @model_validator(mode="after")
    def _unique_mailboxes(self) -> EmailSettings:
        names = [m.name for m in self.mailboxes]
        if len(names) != len(set(names)):
            raise ValueError("mailboxes: every mailbox needs a name of its own")
        return self

    @model_validator(mode="after")
    def _lease_outlasts_a_hand_over(self) -> EmailSettings:
        # A hand-over may wait up to the SMTP timeout at each of its steps (connect, envelope,
        # DATA): a shorter lease would let another instance send a message still being sent.
        if self.claim_lease_seconds <= 3 * self.smtp.timeout_seconds:
            raise ValueError(
                "claim_lease_seconds: must be longer than three times smtp.timeout_seconds "
                f"({3 * self.smtp.timeout_seconds:g} s)"
            )
        return self
