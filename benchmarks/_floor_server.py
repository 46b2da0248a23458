"""Baseline servers for ``screen_pop.py``'s saturation runs, one aiohttp app per process.

    python benchmarks/_floor_server.py --mode bare --port P
    python benchmarks/_floor_server.py --mode floor --port P --auth-token T

``bare``: ``GET /`` answers a fixed text; the framework's limit. ``floor``: ``POST
/twilio/voice/inbound`` parses the form, checks ``X-Twilio-Signature`` with twilio's
``RequestValidator`` against ``http://127.0.0.1:P`` + the path (the service's scheme: configured
public base URL + path and query) and answers a fixed TwiML; the Twilio webhook protocol's limit in
Python, without any of the service's work. Both run like ``contact-center serve`` runs the service:
an ``AppRunner`` with its default access logger, silenced by a WARNING log level.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator

INBOUND_PATH = "/twilio/voice/inbound"
MAX_FORM_BYTES = 64 * 1024
# What the service answers to a routed call (greeting, then ring agent 7's browser).
FIXED_TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Say voice="Polly.Joanna">Thank you for calling. '
    'Connecting you to an agent.</Say><Dial action="{base}/twilio/voice/dial-action?agent=7" '
    'timeout="20"><Client statusCallback="{base}/twilio/voice/agent-leg?agent=7" '
    'statusCallbackEvent="answered completed">agent-7</Client></Dial></Response>'
)


def bare_app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", hello)
    return app


def floor_app(auth_token: str, public_base_url: str) -> web.Application:
    validator = RequestValidator(auth_token)
    base = public_base_url.rstrip("/")
    twiml = FIXED_TWIML.replace("{base}", base)

    async def inbound(request: web.Request) -> web.Response:
        signature = request.headers.get("X-Twilio-Signature", "")
        if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM_BYTES, actual_size=request.content_length)
        form = await request.post()
        params: MultiDict[str] = MultiDict((k, v) for k, v in form.items() if isinstance(v, str))
        if not signature or not validator.validate(base + request.rel_url.path_qs, params, signature):
            raise web.HTTPForbidden(text="invalid Twilio signature")
        return web.Response(text=twiml, content_type="text/xml")

    app = web.Application()
    app.router.add_post(INBOUND_PATH, inbound)
    return app


async def serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"listening on http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mode", choices=("bare", "floor"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--auth-token", default="sandbox-auth-token")
    parser.add_argument("--public-base-url", help="default http://HOST:PORT")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.mode == "bare":
        app = bare_app()
    else:
        app = floor_app(args.auth_token, args.public_base_url or f"http://{args.host}:{args.port}")
    asyncio.run(serve(app, args.host, args.port))


if __name__ == "__main__":
    main()
