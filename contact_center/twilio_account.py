"""The service's Twilio account: which API it talks to (Twilio, a configured base URL, or the
built-in sandbox mounted on this service), the one gateway every capability shares, and the
sandbox's mount and its configuration from the settings (the sandbox knows nothing of them)."""

from __future__ import annotations

import secrets
from urllib.parse import urljoin

from aiohttp import web

from channels.twilio.gateway import TWILIO_API, TwilioGateway
from contact_center.sandbox import (
    CallOutcomes,
    Duration,
    Lognormal,
    MessageOutcomes,
    NumberConfig,
    SandboxConfig,
    create_sandbox_app,
)
from contact_center.sandbox_access import sandbox_authorizer
from contact_center.settings import Settings, is_sandbox_account
from contact_center.settings.sections import LognormalSettings

SANDBOX_CONTROL_TOKEN = web.AppKey("sandbox_control_token", str)
SANDBOX_PREFIX = "/twilio-sandbox"


def uses_sandbox(settings: Settings) -> bool:
    """No Twilio account configured (the default sandbox SID and no API base URL): the built-in
    sandbox plays Twilio, mounted on this service."""
    return not settings.twilio.api_base_url and is_sandbox_account(settings.twilio.account_sid)


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


def _absolute(base: str, url: str) -> str:
    if not url:
        return ""
    return urljoin(base.rstrip("/") + "/", url.lstrip("/")) if "://" not in url else url


def _duration(value: LognormalSettings | tuple[float, float]) -> Duration:
    return Lognormal(value.mean, value.spread) if isinstance(value, LognormalSettings) else value


def sandbox_config_from_settings(settings: Settings, public_url: str | None = None) -> SandboxConfig:
    """The sandbox for this service: its numbers' relative webhook paths point at ``public_base_url``.

    ``public_url`` is where the sandbox itself is reached; by default the service's own
    ``<public_base_url>/twilio-sandbox`` (the sandbox mounted as a sub-application). The control
    token is ``sandbox.control_token``, or a new random one when that is empty.
    """
    base = settings.server.public_base_url
    sb = settings.sandbox
    numbers = {
        number: NumberConfig(
            voice_url=_absolute(base, n.voice_url),
            voice_status_callback=_absolute(base, n.voice_status_callback) or None,
            sms_url=_absolute(base, n.sms_url),
            voice_status_events=tuple(n.voice_status_events),
        )
        for number, n in sb.numbers.items()
    }
    out = sb.outbound
    msg = sb.messages
    return SandboxConfig(
        account_sid=settings.twilio.account_sid,
        auth_token=settings.twilio.auth_token.get_secret_value(),
        numbers=numbers,
        time_scale=sb.time_scale,
        outcomes=CallOutcomes(
            human=out.human,
            machine=out.machine,
            busy=out.busy,
            no_answer=out.no_answer,
            failed=out.failed,
            fax=out.fax,
            ring_seconds=_duration(out.ring_seconds),
            talk_seconds=_duration(out.talk_seconds),
            amd_seconds=_duration(out.amd_seconds),
            greeting_seconds=_duration(out.greeting_seconds),
            human_as_machine=out.human_as_machine,
            machine_as_human=out.machine_as_human,
            machine_end_beep=out.machine_end_beep,
            machine_end_silence=out.machine_end_silence,
            machine_end_other=out.machine_end_other,
            calls_per_second=out.calls_per_second,
            fail_with_20429_rate=out.fail_with_20429_rate,
        ),
        messages=MessageOutcomes(
            delivered=msg.delivered,
            undelivered=msg.undelivered,
            failed=msg.failed,
            send_seconds=msg.send_seconds,
            deliver_seconds=msg.deliver_seconds,
            out_of_order=msg.out_of_order,
        ),
        seed=sb.seed,
        webhook_timeout=sb.webhook_timeout,
        public_url=(public_url if public_url is not None else f"{base}{SANDBOX_PREFIX}"),
        client_voice_url=_absolute(base, sb.client_voice_url),
        client_auto_answer_seconds=sb.client_auto_answer_seconds or None,
        control_token=sb.control_token.get_secret_value() or secrets.token_urlsafe(24),
    )
