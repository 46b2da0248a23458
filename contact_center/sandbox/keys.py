"""The sandbox's typed application key (its own application, so not in contact_center.appkeys)."""

from __future__ import annotations

from aiohttp import web

from contact_center.sandbox.engine import Sandbox

SANDBOX = web.AppKey("twilio_sandbox", Sandbox)
