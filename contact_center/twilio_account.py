"""The service's Twilio account: which API it talks to (Twilio, a configured base URL, or the
built-in sandbox mounted on this service), the one gateway every capability shares, and the
sandbox's mount."""

from __future__ import annotations

from aiohttp import web

from channels.twilio.gateway import TWILIO_API, TwilioGateway
from contact_center.sandbox import create_sandbox_app, sandbox_config_from_settings
from contact_center.sandbox_access import sandbox_authorizer
from contact_center.settings import Settings

SANDBOX_CONTROL_TOKEN = web.AppKey("sandbox_control_token", str)
SANDBOX_PREFIX = "/twilio-sandbox"
SANDBOX_SID_PREFIX = "ACsandbox"


def uses_sandbox(settings: Settings) -> bool:
    """No Twilio account configured (the default sandbox SID and no API base URL): the built-in
    sandbox plays Twilio, mounted on this service."""
    return not settings.twilio.api_base_url and settings.twilio.account_sid.startswith(SANDBOX_SID_PREFIX)


def gateway_base_url(settings: Settings) -> str:
    if settings.twilio.api_base_url:
        return settings.twilio.api_base_url
    return settings.server.public_base_url + SANDBOX_PREFIX if uses_sandbox(settings) else TWILIO_API


def twilio_gateway(settings: Settings) -> TwilioGateway:
    """The one gateway (one HTTP pool, one retry budget) calls and texts go through."""
    return TwilioGateway(
        account_sid=settings.twilio.account_sid,
        auth_token=settings.twilio.auth_token.get_secret_value(),
        base_url=gateway_base_url(settings),
        messaging_service_sid=settings.sms.messaging_service_sid,
    )


def setup_sandbox(app: web.Application, settings: Settings) -> None:
    """Mount the sandbox when it plays Twilio: it listens where the service does. Driving it takes
    the service's sign-in (sandbox_authorizer) or its control token, kept here for `serve` to
    print once."""
    if not uses_sandbox(settings):
        return
    sandbox = sandbox_config_from_settings(settings)
    app[SANDBOX_CONTROL_TOKEN] = sandbox.control_token
    app.add_subapp(SANDBOX_PREFIX, create_sandbox_app(sandbox, sandbox_authorizer(app)))
