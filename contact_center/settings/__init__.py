"""Typed settings: config/default.toml, then an optional file, then environment variables.

A bad value stops the service with one line naming the key: see :func:`load_settings`. The
sections are in :mod:`~contact_center.settings.sections` (mail's in
:mod:`~contact_center.settings.mail`); the whole, its environment keys and its loading in
:mod:`~contact_center.settings.loading`.
"""

from __future__ import annotations

from contact_center.settings.loading import (
    DEFAULT_CONFIG,
    ENV_KEYS,
    GENERIC_ENV_PREFIX,
    PUBLIC_SANDBOX_AUTH_TOKEN,
    SANDBOX_ACCOUNT_SID,
    ConfigError,
    Settings,
    is_sandbox_account,
    load_settings,
)
from contact_center.settings.mail import (
    CaFile,
    EmailAcknowledgment,
    EmailSettings,
    MailboxSettings,
    SmtpSettings,
)
from contact_center.settings.sections import (
    MAX_BLOCK_ADDRESS_HOURS,
    CrmSettings,
    DatabaseSettings,
    HoursSettings,
    LoggingSettings,
    MetricsSettings,
    RedisSettings,
    SandboxMessageSettings,
    SandboxNumberSettings,
    SandboxOutboundSettings,
    SandboxSettings,
    SecuritySettings,
    ServerSettings,
    SlaSettings,
    SmsSettings,
    TwilioSettings,
    VoiceSettings,
    WebchatSettings,
)

__all__ = [
    "DEFAULT_CONFIG",
    "ENV_KEYS",
    "GENERIC_ENV_PREFIX",
    "MAX_BLOCK_ADDRESS_HOURS",
    "PUBLIC_SANDBOX_AUTH_TOKEN",
    "SANDBOX_ACCOUNT_SID",
    "CaFile",
    "ConfigError",
    "CrmSettings",
    "DatabaseSettings",
    "EmailAcknowledgment",
    "EmailSettings",
    "HoursSettings",
    "LoggingSettings",
    "MailboxSettings",
    "MetricsSettings",
    "RedisSettings",
    "SandboxMessageSettings",
    "SandboxNumberSettings",
    "SandboxOutboundSettings",
    "SandboxSettings",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "SlaSettings",
    "SmsSettings",
    "SmtpSettings",
    "TwilioSettings",
    "VoiceSettings",
    "WebchatSettings",
    "is_sandbox_account",
    "load_settings",
]
