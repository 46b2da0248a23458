"""The sandbox's heart: shared state, simulated time, tracked background tasks and signed webhooks."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Coroutine
from typing import Any

import aiohttp

from contact_center.sandbox.config import Duration, Lognormal, SandboxConfig
from contact_center.sandbox.messaging import Messaging
from contact_center.sandbox.model import Call, Message, Queue, Recording, new_sid, utcnow
from contact_center.sandbox.voice import Telephony
from contact_center.sandbox.voice.conference import Conference
from contact_center.sandbox.webhooks import WebhookResult, WebhookSender

log = logging.getLogger(__name__)
TWILIO_API = "https://api.twilio.com"


class Sandbox:
    """One simulated Twilio account and the phone network around it."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.public_url = config.public_url.rstrip("/")
        self.calls: dict[str, Call] = {}
        self.messages: dict[str, Message] = {}
        self.queues: dict[str, Queue] = {}
        self.conferences: dict[str, Conference] = {}
        self.recordings: dict[str, Recording] = {}
        self.opt_outs: set[tuple[str, str]] = set()
        """(recipient, sender) pairs: the recipient texted STOP to that sender."""
        self.debugger: list[dict[str, Any]] = []
        """Webhook and TwiML errors, like Twilio's debugger (11200, 12100, ...)."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._sender: WebhookSender | None = None
        self.closing = False
        self.voice = Telephony(self)
        self.sms = Messaging(self)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self.closing = False
        self._session = aiohttp.ClientSession()
        self._sender = WebhookSender(self._session, self.config.auth_token, self.config.webhook_timeout)

    async def close(self) -> None:
        self.closing = True
        await self.cancel_tasks()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def cancel_tasks(self) -> None:
        current = asyncio.current_task()
        while True:
            tasks = [t for t in self._tasks if t is not current and not t.done()]
            if not tasks:
                break
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def reset(self, seed: int | None = None) -> None:
        """Forget every call, message, queue, conference, recording and opt-out; no callbacks are sent."""
        self.closing = True
        try:
            await self.cancel_tasks()
        finally:
            self.closing = False
        self.calls.clear()
        self.messages.clear()
        self.queues.clear()
        self.conferences.clear()
        self.recordings.clear()
        self.opt_outs.clear()
        self.sms.reset()
        self.voice.reset()
        self.debugger.clear()
        self.rng = random.Random(self.config.seed if seed is None else seed)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` in the background; the task is cancelled when the sandbox closes."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sandbox task %s failed", task.get_name(), exc_info=task.exception())

    @property
    def busy_tasks(self) -> int:
        return sum(1 for t in self._tasks if not t.done())

    # -- time and chance -------------------------------------------------------------------------

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def real(self, seconds: float) -> float:
        """Real seconds for ``seconds`` of simulated time."""
        return max(0.0, seconds) * self.config.time_scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(self.real(seconds))

    def pick(self, weights: dict[str, float]) -> str:
        names = [k for k, w in weights.items() if w > 0]
        if not names:
            return next(iter(weights))
        return self.rng.choices(names, weights=[weights[k] for k in names])[0]

    def between(self, duration: Duration) -> float:
        """A simulated duration: from its lognormal law, or uniform in ``(min, max)``."""
        if isinstance(duration, Lognormal):
            return duration.draw(self.rng)
        low, high = duration
        return self.rng.uniform(min(low, high), max(low, high))

    # -- URLs and webhooks -----------------------------------------------------------------------

    def learn_public_url(self, origin: str, path: str) -> None:
        """Remember where the sandbox is reached (its REST base), from a request it received."""
        if self.public_url:
            return
        for marker in ("/2010-04-01/", "/sandbox/"):
            index = path.find(marker)
            if index >= 0:
                self.public_url = origin + path[:index]
                return

    @property
    def rest_base(self) -> str:
        return self.public_url or TWILIO_API

    def recording_url(self, recording: Recording) -> str:
        return f"{self.rest_base}/2010-04-01/Accounts/{recording.account_sid}/Recordings/{recording.sid}"

    async def webhook(
        self,
        url: str,
        params: dict[str, str],
        method: str = "POST",
        *,
        what: str,
        call: Call | None = None,
        message: Message | None = None,
    ) -> WebhookResult:
        """Send a signed webhook; log it on the call or message; failures go to the debugger."""
        if self._sender is None:
            raise RuntimeError("the sandbox is not started (use it inside its aiohttp application)")
        result = await self._sender.send(url, params, method)
        entry: dict[str, Any] = {"what": what, "url": result.url, "method": result.method}
        entry["status"] = result.status
        owner = call or message
        if result.ok:
            if owner is not None:
                owner.note("webhook", **entry)
        else:
            error = {
                "code": 11200,
                "message": "HTTP retrieval failure",
                "detail": result.error,
                **entry,
                "at": utcnow().isoformat(),
                "sid": owner.sid if owner is not None else None,
            }
            self.debugger.append(error)
            log.warning("sandbox webhook %s failed: %s", what, result.error)
            if owner is not None:
                owner.note("error", code=11200, detail=result.error, what=what, url=result.url)
        return result

    def record_error(self, code: int, message: str, detail: str, call: Call | None = None) -> None:
        self.debugger.append(
            {
                "code": code,
                "message": message,
                "detail": detail,
                "at": utcnow().isoformat(),
                "sid": call.sid if call is not None else None,
            }
        )
        if call is not None:
            call.note("error", code=code, detail=detail)

    def queue(self, name: str) -> Queue:
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = Queue(sid=new_sid("QU"), friendly_name=name)
        return queue
