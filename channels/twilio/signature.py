"""Twilio webhook authentication: X-Twilio-Signature checked against the public URL.

The signature covers the parameters exactly as Twilio sent them, so it is checked on the raw
values; only then is every name and value made storable (NULs dropped, lone surrogates replaced),
and nothing past this module sees a raw string.
"""

from __future__ import annotations

import logging

from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from crm_core import log_context
from crm_core.rules.storable_text import storable

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
MAX_FORM_BYTES = 64 * 1024


class WebhookVerifier:
    """Checks that a form POST was signed by Twilio for the URL it was sent to.

    The URL is rebuilt from the configured public base URL, not from the request, so the check
    holds behind a proxy or load balancer that rewrites scheme, host or port.
    """

    def __init__(self, auth_token: str, public_base_url: str) -> None:
        self._validator = RequestValidator(auth_token)
        self._base = public_base_url.rstrip("/")

    def public_url(self, request: web.Request) -> str:
        return self._base + request.rel_url.path_qs

    async def verified_form(self, request: web.Request) -> MultiDict[str]:
        """The POSTed parameters, made storable; answers 403 (and logs) when the signature is
        missing or wrong."""
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM_BYTES, actual_size=request.content_length)
        try:
            form = await request.post()
        except (UnicodeDecodeError, LookupError) as exc:
            # Not UTF-8 (or an unknown charset): nothing Twilio sends, and nothing to verify.
            log.warning("refused a Twilio webhook to %s from %s: %s", request.path, request.remote, exc)
            raise web.HTTPBadRequest(text="the form is not UTF-8") from exc
        params: MultiDict[str] = MultiDict((k, v) for k, v in form.items() if isinstance(v, str))
        url = self.public_url(request)
        if not signature or not self._validator.validate(url, params, signature):
            log.warning(
                "refused a Twilio webhook to %s from %s: %s signature",
                request.path,
                request.remote,
                "wrong" if signature else "missing",
            )
            raise web.HTTPForbidden(text="invalid Twilio signature")
        log_context.bind_twilio(params)
        return MultiDict((storable(k), storable(v)) for k, v in params.items())
