"""Typed settings: config/default.toml, then an optional file, then environment variables.

A bad value stops the service with one line naming the key: see :func:`load_settings`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import ssl
import tomllib
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfoNotFoundError

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from crm_core.errors import InvalidInput
from crm_core.rules.business_hours import WEEKDAYS, BusinessHours
from crm_core.services.tickets import SlaPolicy
from crm_core.types import Priority

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "default.toml"

ENV_KEYS: dict[str, tuple[str, ...]] = {
    "DATABASE_URL": ("database", "url"),
    "REDIS_URL": ("redis", "url"),
    "REDIS_KEY_PREFIX": ("redis", "key_prefix"),
    "PUBLIC_BASE_URL": ("server", "public_base_url"),
    "HOST": ("server", "host"),
    "PORT": ("server", "port"),
    "SECRET_KEY": ("security", "secret_key"),
    "TWILIO_ACCOUNT_SID": ("twilio", "account_sid"),
    "TWILIO_AUTH_TOKEN": ("twilio", "auth_token"),
    "TWILIO_API_BASE_URL": ("twilio", "api_base_url"),
    "SANDBOX_CONTROL_TOKEN": ("sandbox", "control_token"),
    "LOG_LEVEL": ("logging", "level"),
}
GENERIC_ENV_PREFIX = "CONTACT_CENTER__"
SANDBOX_ACCOUNT_PREFIX = "ACsandbox"
PUBLIC_SANDBOX_AUTH_TOKEN = "sandbox-auth-token"  # noqa: S105 - published in config/default.toml


class ConfigError(Exception):
    """A setting is missing or wrong; the message is one line naming the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str
    port: int = Field(ge=0, le=65535)
    public_base_url: str
    max_body_bytes: int = Field(ge=1024)
    shutdown_timeout: float = Field(ge=0)
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an address or network like 10.0.0.0/8") from None
        return [item.strip() for item in value]

    def trusted_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(item, strict=False) for item in self.trusted_proxies]

    @field_validator("public_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class DatabaseSettings(_Section):
    url: str
    pool_size: int = Field(ge=1, le=200)
    echo: bool

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError("not a database URL") from exc
        if url.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
            raise ValueError("use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


class RedisSettings(_Section):
    url: str
    key_prefix: str

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be empty or a redis://, rediss:// or unix:// URL")
        return value


class SecuritySettings(_Section):
    secret_key: SecretStr
    session_ttl_hours: float = Field(gt=0, le=24 * 30)
    cookie_secure: bool
    login_attempts_per_minute: int = Field(ge=1)
    var_dir: Path
    password_time_cost: int = Field(ge=1, le=20)
    password_memory_kib: int = Field(ge=8, le=4 * 1024 * 1024)


class SlaSettings(_Section):
    first_response_minutes: dict[Priority, int]
    resolution_minutes: dict[Priority, int]

    @field_validator("first_response_minutes", "resolution_minutes")
    @classmethod
    def _every_priority(cls, value: dict[Priority, int]) -> dict[Priority, int]:
        missing = set(Priority) - set(value)
        if missing:
            raise ValueError(f"missing priorities: {', '.join(sorted(missing))}")
        if any(v <= 0 for v in value.values()):
            raise ValueError("minutes must be positive")
        return value


class CrmSettings(_Section):
    default_region: str
    ticket_first_number: int = Field(ge=1)
    page_size: int = Field(ge=1)
    max_page_size: int = Field(ge=1)
    sla: SlaSettings

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        region = value.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r}; use an ISO 3166 code such as US or GB")
        return region

    def sla_policy(self) -> SlaPolicy:
        return SlaPolicy(
            first_response={p: timedelta(minutes=m) for p, m in self.sla.first_response_minutes.items()},
            resolution={p: timedelta(minutes=m) for p, m in self.sla.resolution_minutes.items()},
            first_number=self.ticket_first_number,
        )


class TwilioSettings(_Section):
    account_sid: str = Field(pattern=r"^AC\w{32}$")
    auth_token: SecretStr
    api_base_url: str
    twiml_app_sid: str
    api_key_sid: str
    api_key_secret: SecretStr


class HoursSettings(_Section):
    timezone: str
    monday: str
    tuesday: str
    wednesday: str
    thursday: str
    friday: str
    saturday: str
    sunday: str
    holidays: list[date]

    @model_validator(mode="after")
    def _valid_hours(self) -> HoursSettings:
        try:
            self.business_hours()
        except InvalidInput as exc:
            raise ValueError(f"{exc.field}: {exc}") from None
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from exc
        return self

    def business_hours(self) -> BusinessHours:
        days = {day: getattr(self, day) for day in WEEKDAYS}
        return BusinessHours.from_config(self.timezone, days, self.holidays)


class VoiceSettings(_Section):
    wrap_up_seconds: float = Field(ge=0, le=3600)
    ring_seconds: int = Field(ge=5, le=120)
    queue_poll_seconds: float = Field(gt=0, le=60)
    dispositions: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(min_length=1)
    hours: HoursSettings


class SandboxNumberSettings(_Section):
    voice_url: str = ""
    voice_status_callback: str = ""
    sms_url: str = ""
    voice_status_events: tuple[Literal["initiated", "ringing", "answered", "completed"], ...] = (
        "initiated",
        "ringing",
        "answered",
        "completed",
    )


class SandboxOutboundSettings(_Section):
    human: float = Field(default=0.6, ge=0)
    machine: float = Field(default=0.2, ge=0)
    busy: float = Field(default=0.05, ge=0)
    no_answer: float = Field(default=0.1, ge=0)
    failed: float = Field(default=0.05, ge=0)
    ring_seconds: tuple[float, float] = (3.0, 15.0)
    talk_seconds: tuple[float, float] = (20.0, 180.0)
    amd_seconds: tuple[float, float] = (2.0, 4.0)

    @field_validator("ring_seconds", "talk_seconds", "amd_seconds")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] < 0 or value[1] < value[0]:
            raise ValueError("must be [min, max] with 0 <= min <= max")
        return value


class SandboxMessageSettings(_Section):
    delivered: float = Field(default=0.97, ge=0)
    undelivered: float = Field(default=0.02, ge=0)
    failed: float = Field(default=0.01, ge=0)
    send_seconds: float = Field(default=1.0, ge=0)
    deliver_seconds: float = Field(default=2.0, ge=0)
    out_of_order: bool = False


class SandboxSettings(_Section):
    """The built-in Twilio sandbox (contact_center.sandbox)."""

    control_token: SecretStr = SecretStr("")
    time_scale: float = Field(default=1.0, gt=0, le=100)
    seed: int | None = None
    webhook_timeout: float = Field(default=15.0, gt=0, le=120)
    client_voice_url: str = ""
    client_auto_answer_seconds: float = Field(default=0, ge=0)
    outbound: SandboxOutboundSettings = Field(default_factory=SandboxOutboundSettings)
    messages: SandboxMessageSettings = Field(default_factory=SandboxMessageSettings)
    numbers: dict[str, SandboxNumberSettings] = Field(default_factory=dict)

    @field_validator("numbers")
    @classmethod
    def _e164(cls, value: dict[str, SandboxNumberSettings]) -> dict[str, SandboxNumberSettings]:
        for number in value:
            try:
                parsed = phonenumbers.parse(number, None)
            except phonenumbers.NumberParseException:
                parsed = None
            if parsed is None or not phonenumbers.is_valid_number(parsed):
                raise ValueError(f"{number!r} is not an E.164 phone number")
        return value


# The longest an agent's block keeps a visitor's address out of the chat.
MAX_BLOCK_ADDRESS_HOURS = 24 * 365


class WebchatSettings(_Section):
    """The web chat widget and its visitors (channels.webchat)."""

    allowed_origins: list[str] = Field(default_factory=list)
    max_chats_per_agent: int = Field(default=3, ge=1, le=50)
    max_message_chars: int = Field(default=2000, ge=1, le=20_000)
    messages_per_minute_per_visitor: int = Field(default=30, ge=1)
    messages_per_minute_per_ip: int = Field(default=120, ge=1)
    connections_per_minute_per_ip: int = Field(default=60, ge=1)
    queue_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    history_limit: int = Field(default=200, ge=1, le=5000)
    load_check_seconds: float = Field(default=60.0, ge=10, le=3600)
    block_address_hours: float = Field(default=24.0, ge=0, le=MAX_BLOCK_ADDRESS_HOURS, allow_inf_nan=False)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not origin.startswith(("http://", "https://")) or origin.rstrip("/").count("/") != 2:
                raise ValueError(f"{origin!r} is not an origin like https://www.example.com")
        return [origin.rstrip("/") for origin in value]


class SmsSettings(_Section):
    """Text messages (channels/twilio/sms.py and contact_center/sms/)."""

    from_number: str = "+15005550006"
    ticket_rule: Literal["every_conversation", "no_answer"] = "every_conversation"
    no_answer_minutes: float = Field(default=15.0, gt=0, le=7 * 24 * 60)
    help_reply: str = Field(
        default="Reply STOP to stop receiving texts, START to receive them again. Msg&data rates may apply.",
        max_length=1600,
    )
    opt_out_confirmation: str = Field(
        default=(
            "You are unsubscribed and will get no more texts from us. If you did not mean to, reply START."
        ),
        max_length=320,
    )
    sweep_seconds: float = Field(default=30.0, gt=0, le=3600)
    messaging_service_sid: str = Field(default="", pattern=r"^(MG[0-9a-fA-F]{32})?$")

    @field_validator("from_number")
    @classmethod
    def _e164(cls, value: str) -> str:
        try:
            parsed = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is None or not phonenumbers.is_valid_number(parsed):
            raise ValueError(f"{value!r} is not an E.164 phone number")
        return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


class EmailAcknowledgment(_Section):
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


class MailboxSettings(_Section):
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


class SmtpSettings(_Section):
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


class EmailSettings(_Section):
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


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    json_lines: bool = Field(alias="json")

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class Settings(_Section):
    server: ServerSettings
    database: DatabaseSettings
    redis: RedisSettings
    security: SecuritySettings
    crm: CrmSettings
    twilio: TwilioSettings
    voice: VoiceSettings
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    webchat: WebchatSettings = Field(default_factory=WebchatSettings)
    sms: SmsSettings = Field(default_factory=SmsSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    logging: LoggingSettings

    def with_overrides(self, **sections: dict[str, Any]) -> Settings:
        """A copy with some keys replaced (tests and the CLI use it)."""
        data = self.model_dump(by_alias=True)
        for section, values in sections.items():
            data[section] = {**data[section], **values}
        data["security"]["secret_key"] = sections.get("security", {}).get(
            "secret_key", self.security.secret_key.get_secret_value()
        )
        for key in ("auth_token", "api_key_secret"):
            data["twilio"][key] = sections.get("twilio", {}).get(
                key, getattr(self.twilio, key).get_secret_value()
            )
        data["sandbox"]["control_token"] = sections.get("sandbox", {}).get(
            "control_token", self.sandbox.control_token.get_secret_value()
        )
        return Settings.model_validate(data)


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def _env_value(raw: str) -> Any:
    """Environment values are strings; numbers and booleans are read as TOML scalars."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from exc


def load_settings(config_file: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Merge the layers and validate; raise :class:`ConfigError` with a one-line reason."""
    environ = os.environ if env is None else env
    data = _read_toml(DEFAULT_CONFIG, "default settings file")
    origin: dict[tuple[str, ...], str] = {}
    extra = config_file or environ.get("CONTACT_CENTER_CONFIG")
    if extra:
        data = _deep_merge(data, _read_toml(Path(extra), "settings file"))
    for name, path in ENV_KEYS.items():
        if name in environ:
            _set(
                data,
                path,
                environ[name]
                if path[-1] in ("url", "secret_key", "auth_token", "control_token")
                else _env_value(environ[name]),
            )
            origin[path] = name
    for name, raw in environ.items():
        if name.startswith(GENERIC_ENV_PREFIX):
            path = tuple(part.lower() for part in name[len(GENERIC_ENV_PREFIX) :].split("__"))
            _set(data, path, _env_value(raw))
            origin[path] = name
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        source = origin.get(tuple(str(p) for p in err["loc"]))
        where = f" (from {source})" if source else ""
        raise ConfigError(f"{key}: {err['msg']}{where}") from None
    return _with_sandbox_auth_token(_with_secret_key(settings))


def _with_sandbox_auth_token(settings: Settings) -> Settings:
    """The sandbox account's auth token as shipped (config/default.toml) is public: whoever knew
    it could sign webhooks to this service and read the sandbox's REST API. Left at that value,
    an installation uses one derived from its secret key instead, the same for ``serve`` and
    ``sandbox serve`` sharing a var directory (or secret key)."""
    twilio = settings.twilio
    if (
        not twilio.account_sid.startswith(SANDBOX_ACCOUNT_PREFIX)
        or twilio.auth_token.get_secret_value() != PUBLIC_SANDBOX_AUTH_TOKEN
    ):
        return settings
    key = settings.security.secret_key.get_secret_value().encode()
    derived = hmac.new(key, b"twilio sandbox auth token", hashlib.sha256).hexdigest()
    return settings.with_overrides(twilio={"auth_token": derived})


def _with_secret_key(settings: Settings) -> Settings:
    if settings.security.secret_key.get_secret_value():
        if len(settings.security.secret_key.get_secret_value()) < 16:
            raise ConfigError("security.secret_key: must have at least 16 characters")
        return settings
    if not settings.database.is_sqlite:
        raise ConfigError("security.secret_key: must be set (SECRET_KEY) when the database is not SQLite")
    key_file = settings.security.var_dir / "secret_key"
    if key_file.exists():
        key = key_file.read_text().strip()
    else:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        key_file.touch(mode=0o600)
        key_file.write_text(key)
    return settings.with_overrides(security={"secret_key": key})
