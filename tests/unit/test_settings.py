"""Settings: layering of defaults, file and environment; one-line errors naming the key."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from contact_center.email.wiring import build_desk
from contact_center.logging_setup import RedactSecrets, secret_values
from contact_center.settings import ConfigError, load_settings

KEY = {"SECRET_KEY": "0123456789abcdef-secret"}


def test_defaults_are_the_embedded_setup(tmp_path: Path) -> None:
    settings = load_settings(env={**KEY})
    assert settings.database.url.startswith("sqlite+aiosqlite:///")
    assert settings.redis.url == ""
    assert settings.crm.default_region == "US"


def test_file_then_environment_override(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text('[server]\nport = 9000\n[crm]\ndefault_region = "gb"\n')
    env = {**KEY, "PORT": "9100", "CONTACT_CENTER__CRM__PAGE_SIZE": "25"}
    settings = load_settings(config, env=env)
    assert settings.server.port == 9100
    assert settings.crm.default_region == "GB"
    assert settings.crm.page_size == 25
    via_env = load_settings(env={**KEY, "CONTACT_CENTER_CONFIG": str(config)})
    assert via_env.server.port == 9000


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "eighty"}, "server.port: "),
        ({"DATABASE_URL": "mysql://root@localhost/db"}, "database.url: "),
        ({"REDIS_URL": "http://localhost"}, "redis.url: "),
        ({"CONTACT_CENTER__CRM__DEFAULT_REGION": "XX"}, "crm.default_region: "),
        ({"LOG_LEVEL": "LOUD"}, "logging.level: "),
        ({"CONTACT_CENTER__CRM__NO_SUCH_KEY": "1"}, "crm.no_such_key: "),
        ({"SECRET_KEY": "short"}, "security.secret_key: "),
        ({"CONTACT_CENTER__SMS__MESSAGING_SERVICE_SID": "PN" + "0" * 32}, "sms.messaging_service_sid: "),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={**KEY, **env})
    text = str(info.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_error_says_which_variable_set_it() -> None:
    with pytest.raises(ConfigError, match=r"\(from PORT\)"):
        load_settings(env={**KEY, "PORT": "-1"})


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env=KEY)
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken, env=KEY)


def test_postgres_needs_an_explicit_secret_key() -> None:
    with pytest.raises(ConfigError, match=r"security\.secret_key"):
        load_settings(env={"DATABASE_URL": "postgresql+asyncpg://u@localhost/db"})


def test_generated_secret_key_is_kept(tmp_path: Path) -> None:
    env = {"CONTACT_CENTER__SECURITY__VAR_DIR": str(tmp_path)}
    first = load_settings(env=env).security.secret_key.get_secret_value()
    second = load_settings(env=env).security.secret_key.get_secret_value()
    assert first == second and len(first) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_secrets_are_masked_in_log_records(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(
        env={
            **KEY,
            "TWILIO_AUTH_TOKEN": "twilio-token-value",
            "DATABASE_URL": "postgresql+asyncpg://app:db-password-1@localhost/db",
        }
    )
    assert "0123456789abcdef-secret" not in repr(settings)
    logger = logging.getLogger("test.redaction")
    logger.addFilter(RedactSecrets(secret_values(settings)))
    with caplog.at_level(logging.INFO, logger="test.redaction"):
        logger.info("token %s and %s and db-password-1", "twilio-token-value", "0123456789abcdef-secret")
    assert caplog.records[0].getMessage() == "token [redacted] and [redacted] and [redacted]"


def test_the_mail_outbox_lease_is_a_setting() -> None:
    assert build_desk(load_settings(env={**KEY})).retry.lease_seconds == 300
    settings = load_settings(env={**KEY, "CONTACT_CENTER__EMAIL__CLAIM_LEASE_SECONDS": "120"})
    assert build_desk(settings).retry.lease_seconds == 120
    # No shorter than a hand-over may take (three SMTP timeouts of 30 s by default).
    with pytest.raises(ConfigError, match=r"^email: .*claim_lease_seconds"):
        load_settings(env={**KEY, "CONTACT_CENTER__EMAIL__CLAIM_LEASE_SECONDS": "60"})
