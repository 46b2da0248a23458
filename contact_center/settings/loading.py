"""The settings as a whole, and loading them: config/default.toml, then an optional file, then
environment variables; a bad value stops the service with one line naming the key."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from contact_center.settings.mail import EmailSettings
from contact_center.settings.sections import (
    CrmSettings,
    DatabaseSettings,
    DialerSettings,
    LoggingSettings,
    MetricsSettings,
    RedisSettings,
    SandboxSettings,
    Section,
    SecuritySettings,
    ServerSettings,
    SmsSettings,
    TwilioSettings,
    VoiceSettings,
    WebchatSettings,
)

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "default.toml"

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
    "METRICS_TOKEN": ("metrics", "token"),
}
GENERIC_ENV_PREFIX = "CONTACT_CENTER__"
SANDBOX_ACCOUNT_SID = "AC5a4db0c0000000000000000000000000"
"""The shipped account SID: a well-formed one (AC and 32 hex digits) that means "the built-in sandbox"."""
LEGACY_SANDBOX_PREFIX = "ACsandbox"  # the shipped SID of earlier releases, still honoured


def is_sandbox_account(account_sid: str) -> bool:
    """The account SID is the shipped one: no Twilio account is configured."""
    return account_sid == SANDBOX_ACCOUNT_SID or account_sid.startswith(LEGACY_SANDBOX_PREFIX)


PUBLIC_SANDBOX_AUTH_TOKEN = "sandbox-auth-token"  # noqa: S105 - published in config/default.toml


class ConfigError(Exception):
    """A setting is missing or wrong; the message is one line naming the key."""


class Settings(Section):
    """Every setting of the service, section by section; built by :func:`load_settings`."""

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
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    dialer: DialerSettings = Field(default_factory=DialerSettings)

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
        data["metrics"]["token"] = sections.get("metrics", {}).get(
            "token", self.metrics.token.get_secret_value()
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
                if path[-1] in ("url", "secret_key", "auth_token", "control_token", "token")
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
        not is_sandbox_account(twilio.account_sid)
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
