"""Twilio signs the URL it calls: the public one. Behind a TLS-terminating proxy or a load balancer
the service is reached over plain HTTP at another host and port, so the signed URL is rebuilt from
``server.public_base_url`` alone: every instance behind one public URL accepts the same webhook,
and no ``X-Forwarded-Proto`` or ``X-Forwarded-Host``, from a trusted proxy or not, changes which
URL a signature must be for."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from contact_center.app import create_app
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from tests.conftest import isolated_settings
from tests.support.twilio_webhooks import call_sid

PUBLIC = "https://public.example"
PATH = "/twilio/voice/status"


def behind_proxy(settings: Settings, trusted: list[str]) -> Settings:
    return isolated_settings(settings).with_overrides(
        server={"public_base_url": PUBLIC, "trusted_proxies": trusted}
    )


def signed(settings: Settings, url: str, params: dict[str, str]) -> str:
    validator = RequestValidator(settings.twilio.auth_token.get_secret_value())
    return str(validator.compute_signature(url, params))


async def post(
    client: TestClient[Any, Any], params: dict[str, str], signature: str, forwarded_host: str
) -> int:
    headers = {
        "X-Twilio-Signature": signature,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": forwarded_host,
        "X-Forwarded-For": "203.0.113.7",
    }
    resp = await client.post(PATH, data=params, headers=headers)
    return resp.status


def status_params() -> dict[str, str]:
    return {"CallSid": call_sid(), "CallStatus": "completed", "SequenceNumber": "1"}


async def test_signed_for_the_public_url_and_arriving_over_http_through_a_trusted_proxy(
    settings: Settings, uow_factory: UnitOfWorkFactory
) -> None:
    app_settings = behind_proxy(settings, ["127.0.0.1/32"])
    async with TestClient(TestServer(create_app(app_settings))) as client:
        params = status_params()
        good = signed(app_settings, PUBLIC + PATH, params)
        assert await post(client, params, good, "public.example") == 200
        # A proxy's headers never pick the URL: signed for another host, refused.
        other = signed(app_settings, "https://elsewhere.example" + PATH, params)
        assert await post(client, params, other, "elsewhere.example") == 403
        # Nor is the URL the request arrived at (plain HTTP, the instance's own port) accepted.
        local = signed(app_settings, str(client.make_url(PATH)), params)
        assert await post(client, params, local, "public.example") == 403


async def test_headers_from_an_untrusted_peer_are_ignored(
    settings: Settings, uow_factory: UnitOfWorkFactory
) -> None:
    app_settings = behind_proxy(settings, ["10.0.0.0/8"])  # the test client is not a proxy of ours
    async with TestClient(TestServer(create_app(app_settings))) as client:
        params = status_params()
        forged = signed(app_settings, "https://attacker.example" + PATH, params)
        assert await post(client, params, forged, "attacker.example") == 403
        good = signed(app_settings, PUBLIC + PATH, params)
        assert await post(client, params, good, "attacker.example") == 200


async def test_every_instance_behind_one_public_url_accepts_the_same_webhook(
    settings: Settings, uow_factory: UnitOfWorkFactory
) -> None:
    app_settings = behind_proxy(settings, ["127.0.0.1/32"])
    params = status_params()
    signature = signed(app_settings, PUBLIC + PATH, params)
    async with (
        TestClient(TestServer(create_app(app_settings))) as first,
        TestClient(TestServer(create_app(app_settings))) as second,
    ):
        assert first.port != second.port
        assert await post(first, params, signature, "public.example") == 200
        assert await post(second, params, signature, "public.example") == 200  # a redelivery, answered
