"""The [sandbox] settings section and the SandboxConfig built from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from contact_center.sandbox import Lognormal
from contact_center.settings import ConfigError, load_settings
from contact_center.twilio_account import sandbox_config_from_settings, uses_sandbox

KEY = {"SECRET_KEY": "0123456789abcdef-secret"}


def test_defaults_route_the_demo_number_to_the_service(tmp_path: Path) -> None:
    settings = load_settings(env={**KEY, "PUBLIC_BASE_URL": "https://cc.example.com"})
    config = sandbox_config_from_settings(settings)
    number = config.numbers["+15005550006"]
    assert number.voice_url == "https://cc.example.com/twilio/voice/inbound"
    assert number.voice_status_callback == "https://cc.example.com/twilio/voice/status"
    assert number.sms_url == "https://cc.example.com/twilio/sms/inbound"
    assert number.voice_status_events == ("completed",)  # a Twilio number's callback: final only
    assert config.public_url == "https://cc.example.com/twilio-sandbox"
    assert config.account_sid == settings.twilio.account_sid
    assert config.auth_token == settings.twilio.auth_token.get_secret_value()
    assert config.time_scale == 1.0 and config.seed is None
    assert config.client_auto_answer_seconds is None
    assert sum(config.outcomes.weights().values()) == pytest.approx(1.0)


def test_the_shipped_account_sid_is_well_formed_and_means_the_sandbox() -> None:
    settings = load_settings(env=KEY)
    assert re.fullmatch(r"AC[0-9a-f]{32}", settings.twilio.account_sid)
    assert uses_sandbox(settings)
    legacy = load_settings(env={**KEY, "TWILIO_ACCOUNT_SID": "ACsandbox0000000000000000000000000"})
    assert uses_sandbox(legacy)  # the shipped SID of earlier releases
    real = load_settings(env={**KEY, "TWILIO_ACCOUNT_SID": "AC" + "1f" * 16, "TWILIO_AUTH_TOKEN": "t" * 32})
    assert not uses_sandbox(real)


def test_file_and_environment_override(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(
        "[sandbox]\ntime_scale = 0.01\nseed = 5\n"
        "[sandbox.outbound]\nbusy = 1.0\nring_seconds = [1, 2]\n"
        '[sandbox.numbers."+14155550100"]\nvoice_url = "https://elsewhere.example/voice"\n'
    )
    settings = load_settings(site, env={**KEY, "CONTACT_CENTER__SANDBOX__CLIENT_AUTO_ANSWER_SECONDS": "3"})
    config = sandbox_config_from_settings(settings, public_url="http://127.0.0.1:8081")
    assert config.time_scale == 0.01 and config.seed == 5
    assert config.outcomes.busy == 1.0 and config.outcomes.ring_seconds == (1.0, 2.0)
    assert config.numbers["+14155550100"].voice_url == "https://elsewhere.example/voice"
    assert config.numbers["+14155550100"].voice_status_callback is None
    assert "+15005550006" in config.numbers
    assert config.client_auto_answer_seconds == 3
    assert config.public_url == "http://127.0.0.1:8081"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[sandbox]\ntime_scale = 0\n", "sandbox.time_scale: "),
        ("[sandbox.outbound]\nring_seconds = [5, 1]\n", "sandbox.outbound.ring_seconds"),
        ("[sandbox.outbound]\nring_seconds = { mean = -1 }\n", "sandbox.outbound.ring_seconds"),
        ("[sandbox.outbound]\ncalls_per_second = 0\n", "sandbox.outbound.calls_per_second: "),
        ('[sandbox.numbers."12345"]\nvoice_url = "/v"\n', "sandbox.numbers: "),
        ("[sandbox]\nnope = 1\n", "sandbox.nope: "),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    site = tmp_path / "site.toml"
    site.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(site, env=KEY)
    assert str(info.value).startswith(message)


def test_dialer_settings_reach_the_sandbox(tmp_path: Path) -> None:
    defaults = sandbox_config_from_settings(load_settings(env=KEY)).outcomes
    assert defaults.ring_seconds == Lognormal(7.0, 0.5) and defaults.calls_per_second == 1.0
    assert defaults.fail_with_20429_rate == 0.0
    site = tmp_path / "site.toml"
    site.write_text(
        "[sandbox.outbound]\ntalk_seconds = { mean = 30, spread = 0.2 }\namd_seconds = [1, 3]\n"
        "calls_per_second = 5\nfail_with_20429_rate = 0.25\nhuman_as_machine = 0.1\nfax = 0.02\n"
    )
    outcomes = sandbox_config_from_settings(load_settings(site, env=KEY)).outcomes
    assert outcomes.talk_seconds == Lognormal(30.0, 0.2)
    assert outcomes.amd_seconds == (1.0, 3.0)  # the older [min, max] form: uniform
    assert (outcomes.calls_per_second, outcomes.fail_with_20429_rate) == (5.0, 0.25)
    assert (outcomes.human_as_machine, outcomes.fax) == (0.1, 0.02)
