"""The client's address behind trusted proxies (X-Forwarded-For), and only behind them."""

from __future__ import annotations

import ipaddress

import pytest

from contact_center.client_address import client_address
from contact_center.settings import ConfigError, load_settings

PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("198.51.100.7", ["203.0.113.9"], "198.51.100.7"),  # not a proxy of ours: header ignored
        ("10.1.2.3", ["203.0.113.9"], "203.0.113.9"),
        ("10.1.2.3", ["1.2.3.4, 203.0.113.9"], "203.0.113.9"),  # what the client wrote is skipped
        ("10.1.2.3", ["203.0.113.9, 10.9.9.9"], "203.0.113.9"),  # through two proxies of ours
        ("10.1.2.3", ["1.2.3.4", "203.0.113.9, 10.9.9.9"], "203.0.113.9"),  # several headers
        ("2001:db8::1", ["2001:db8:ffff::2, 2a00:1450::5"], "2a00:1450::5"),
        ("10.1.2.3", ["10.4.4.4, 10.5.5.5"], "10.4.4.4"),  # nothing but proxies: the first
        ("10.1.2.3", ["unknown"], "unknown"),
        (None, ["203.0.113.9"], None),
    ],
)
def test_the_client_is_the_rightmost_address_that_is_not_a_trusted_proxy(
    peer: str | None, forwarded: list[str], expected: str | None
) -> None:
    assert client_address(peer, forwarded, PROXIES) == expected


def test_trusted_proxies_are_addresses_or_networks() -> None:
    env = {"SECRET_KEY": "s" * 32, "CONTACT_CENTER__SERVER__TRUSTED_PROXIES": '["10.0.0.0/8", "192.0.2.1"]'}
    settings = load_settings(env=env)
    assert [str(n) for n in settings.server.trusted_networks()] == ["10.0.0.0/8", "192.0.2.1/32"]
    with pytest.raises(ConfigError, match=r"server\.trusted_proxies"):
        load_settings(env={**env, "CONTACT_CENTER__SERVER__TRUSTED_PROXIES": '["proxy.local"]'})
