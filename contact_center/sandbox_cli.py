"""``contact-center sandbox serve`` (a standalone Twilio sandbox), ``sandbox call`` (ring it) and
``sandbox sms`` (text it): the service's commands around the sandbox, which knows nothing of the
settings they read.

``call`` and ``sms`` drive the sandbox's phones, which takes its control token: ``--token``, else
``sandbox.control_token`` (SANDBOX_CONTROL_TOKEN). ``serve`` and the service print the token they
made up at start when none is configured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from contact_center.settings import Settings

if TYPE_CHECKING:
    from contact_center.cli import Command

CALL_TIMEOUT = 600.0
TOKEN_HELP = "the sandbox control token (default: sandbox.control_token, SANDBOX_CONTROL_TOKEN)"  # noqa: S105


async def cmd_sandbox(settings: Settings, args: argparse.Namespace) -> int:
    if args.sandbox_command == "serve":
        return await serve(settings, args)
    if args.sandbox_command == "sms":
        return await send_sms(settings, args)
    return await place_call(settings, args)


async def serve(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here, not at the top: every other command of the CLI starts without the sandbox.
    from contact_center.sandbox import create_sandbox_app
    from contact_center.twilio_account import sandbox_config_from_settings

    host = args.host or settings.server.host
    url = f"http://{host}:{args.port}"
    config = sandbox_config_from_settings(settings, public_url=url)
    if args.time_scale is not None:
        config = replace(config, time_scale=args.time_scale)
    runner = web.AppRunner(create_sandbox_app(config))
    await runner.setup()
    site = web.TCPSite(runner, host, args.port)
    await site.start()
    print(f"twilio sandbox listening on {url} (account {config.account_sid})", flush=True)
    print(f"point the service at it: TWILIO_API_BASE_URL={url}", flush=True)
    if not settings.sandbox.control_token.get_secret_value():
        print(f"sandbox control token: {config.control_token} (shown once; call|sms --token)", flush=True)
    for number, n in config.numbers.items():
        print(f"  {number}: voice {n.voice_url or '-'}, sms {n.sms_url or '-'}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


def _describe(entry: dict[str, Any]) -> str:
    details = ", ".join(f"{k}={v}" for k, v in entry.items() if k not in ("at", "event") and v is not None)
    return f"  {entry.get('at', '')[11:19]} {entry.get('event')}" + (f": {details}" if details else "")


def _control_headers(settings: Settings, args: argparse.Namespace) -> dict[str, str]:
    from contact_center.sandbox.access import CONTROL_TOKEN_HEADER

    token = getattr(args, "token", None) or settings.sandbox.control_token.get_secret_value()
    return {CONTROL_TOKEN_HEADER: token} if token else {}


async def place_call(settings: Settings, args: argparse.Namespace) -> int:
    base = (args.url or f"{settings.server.public_base_url}/twilio-sandbox").rstrip("/")
    body: dict[str, Any] = {"from": args.from_, "to": args.to}
    if args.digits:
        body["digits"] = args.digits
    if args.hangup_after is not None:
        body["hangup_after_seconds"] = args.hangup_after
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, headers=_control_headers(settings, args)) as session:
        try:
            async with session.post(f"{base}/sandbox/calls", json=body) as resp:
                answer = await resp.json(content_type=None)
                if resp.status != 201:
                    print(f"error: {answer.get('error', answer)}", file=sys.stderr)
                    return 1
        except aiohttp.ClientError as exc:
            print(f"error: no sandbox at {base}: {exc}", file=sys.stderr)
            return 1
        sid = answer["call_sid"]
        print(sid, flush=True)
        deadline = time.monotonic() + args.wait
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            async with session.get(f"{base}/sandbox/calls/{sid}") as resp:
                state = await resp.json()
            if state.get("settled"):
                break
            await asyncio.sleep(0.2)
        else:
            print(f"the call has not ended after {args.wait:g}s; its log so far:", file=sys.stderr)
    if args.json:
        print(json.dumps(state, indent=2))
    else:
        print(f"status {state.get('status')}, duration {state.get('duration')}s")
        for entry in state.get("log", []):
            print(_describe(entry))
    return 0


async def send_sms(settings: Settings, args: argparse.Namespace) -> int:
    """A phone texts a sandbox number: the signed webhook goes to the service; print what happened."""
    base = (args.url or f"{settings.server.public_base_url}/twilio-sandbox").rstrip("/")
    body: dict[str, Any] = {"from": args.from_, "to": args.to, "body": args.body, "media_urls": args.media}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, headers=_control_headers(settings, args)) as session:
        try:
            async with session.post(f"{base}/sandbox/sms", json=body) as resp:
                answer = await resp.json(content_type=None)
        except aiohttp.ClientError as exc:
            print(f"error: no sandbox at {base}: {exc}", file=sys.stderr)
            return 1
    if resp.status != 201:
        print(f"error: {answer.get('error', answer)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    message = answer["message"]
    print(answer["message_sid"], flush=True)
    for entry in message.get("log", []):
        print(_describe(entry))
    for reply in answer.get("replies", []):
        print(f"reply {reply['sid']} ({reply['status']}): {reply['body']}")
    failed = any(entry.get("event") == "error" for entry in message.get("log", []))
    return 1 if failed else 0


def add_sandbox_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    register: Callable[[str], Callable[[Command], Command]],
) -> None:
    """Add ``sandbox serve``, ``sandbox call`` and ``sandbox sms`` to ``sub``."""
    sandbox = sub.add_parser("sandbox", help="the built-in Twilio sandbox")
    commands = sandbox.add_subparsers(dest="sandbox_command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the Twilio sandbox on its own")
    serve_cmd.add_argument("--host", help="address to bind (default: server.host, 127.0.0.1 as shipped)")
    serve_cmd.add_argument("--port", type=int, default=8081, help="port (default 8081)")
    serve_cmd.add_argument("--time-scale", type=float, help="override sandbox.time_scale")
    call = commands.add_parser("call", help="ring a sandbox number, print the CallSid and the call's log")
    call.add_argument("--from", dest="from_", required=True, metavar="E164", help="the caller's number")
    call.add_argument("--to", required=True, metavar="E164", help="a number the sandbox owns")
    call.add_argument("--digits", help="keys the caller presses when asked (commas: one per prompt)")
    call.add_argument("--hangup-after", type=float, metavar="SECONDS", help="the caller hangs up then")
    call.add_argument(
        "--url", metavar="SANDBOX_URL", help="the sandbox (default <public_base_url>/twilio-sandbox)"
    )
    call.add_argument("--wait", type=float, default=CALL_TIMEOUT, help="seconds to wait for the end")
    call.add_argument("--token", help=TOKEN_HELP)
    call.add_argument("--json", action="store_true", help="print the final state as JSON")
    sms = commands.add_parser("sms", help="text a sandbox number, print the MessageSid and the webhook log")
    sms.add_argument("--from", dest="from_", required=True, metavar="E164", help="the texter's number")
    sms.add_argument("--to", required=True, metavar="E164", help="a number the sandbox owns")
    sms.add_argument("--body", required=True, help="the text")
    sms.add_argument("--media", action="append", default=[], metavar="URL", help="a media URL (repeatable)")
    sms.add_argument(
        "--url", metavar="SANDBOX_URL", help="the sandbox (default <public_base_url>/twilio-sandbox)"
    )
    sms.add_argument("--json", action="store_true", help="print the sandbox's answer as JSON")
    sms.add_argument("--token", help=TOKEN_HELP)
    register("sandbox")(cmd_sandbox)
