"""Voice: inbound and outbound calls, the TwiML they run, browser clients, queues and bridges.

Every leg is a :class:`~contact_center.sandbox.model.Call`. A leg that runs TwiML (or rings) has a
``runner`` task; hang-ups, live redirects and dequeues reach it as interrupts, which every wait in
this module checks (:meth:`Telephony.wait`), so a verb can clean up (end the bridged leg, leave
the queue, send its action) before the call moves on.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import urljoin

import phonenumbers

from contact_center.sandbox.model import (
    API_VERSION,
    Bridge,
    Call,
    CallInterrupted,
    Interrupt,
    Queue,
    Recording,
    TwilioApiError,
    new_sid,
    rfc2822,
    utcnow,
)
from contact_center.sandbox.twiml import TwiMLError, Verb, parse_twiml

if TYPE_CHECKING:
    from contact_center.sandbox.engine import Sandbox

SIP_CODES = {"completed": 200, "busy": 486, "no-answer": 487, "canceled": 487, "failed": 500}
SPEECH_PREFIX = "speech:"
DIAL_NOUNS = ("Client", "Number", "Queue", "Sip", "Conference", "Application")
WAIT_VERBS = ("Say", "Play", "Pause")


@dataclass(frozen=True, slots=True)
class Next:
    """Where a call's TwiML continues: a URL to request (with extra parameters) or inline TwiML."""

    url: str | None
    method: str = "POST"
    twiml: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    end: bool = False


END = Next(url=None, end=True)


@dataclass(slots=True)
class DialResult:
    status: str
    child: Call | None
    duration: int
    bridged: bool
    interrupted: CallInterrupted | None = None


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """The parameters of ``POST Calls.json`` that the simulation uses."""

    to: str
    from_: str
    url: str | None
    twiml: str | None
    method: str = "POST"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_events: frozenset[str] = frozenset({"completed"})
    machine_detection: str | None = None
    async_amd: bool = False
    async_amd_callback: str | None = None
    async_amd_method: str = "POST"
    timeout: float = 60.0


def resolve(base: str | None, url: str) -> str | None:
    """A TwiML URL attribute made absolute against the document that contained it."""
    url = url.strip()
    if not url:
        return None
    if url.startswith(("http://", "https://")):
        return url
    return urljoin(base, url) if base else None


def is_phone_number(value: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(value, None))
    except phonenumbers.NumberParseException:
        return False


Handler = Callable[[Call, Verb, str | None], Awaitable[Next | None]]
QueueOutcome = tuple[str, Next | None]


class Telephony:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self._verbs: dict[str, Handler] = {
            "Say": self._say,
            "Play": self._play,
            "Pause": self._pause,
            "Gather": self._gather,
            "Dial": self._dial,
            "Enqueue": self._enqueue,
            "Record": self._record,
            "Redirect": self._redirect,
            "Hangup": self._hangup,
            "Reject": self._reject,
            "Leave": self._leave_outside_queue,
        }

    # -- starting calls --------------------------------------------------------------------------

    def _new_call(
        self,
        from_: str,
        to: str,
        direction: Literal["inbound", "outbound-api", "outbound-dial"],
        parent: Call | None = None,
    ) -> Call:
        call = Call(
            sid=new_sid("CA"),
            account_sid=self.sb.config.account_sid,
            from_=from_,
            to=to,
            direction=direction,
            parent_call_sid=parent.sid if parent is not None else None,
        )
        self.sb.calls[call.sid] = call
        call.note("created", direction=direction, **{"from": from_, "to": to})
        return call

    def start_inbound(
        self,
        from_: str,
        to: str,
        *,
        digits: str = "",
        hangup_after: float | None = None,
        caller_name: str | None = None,
        record_seconds: float | None = None,
    ) -> Call:
        """A caller dials one of the sandbox's numbers: its voice URL is requested as Twilio would."""
        number = self.sb.config.numbers.get(to)
        if number is None or not number.voice_url:
            raise ValueError(f"{to} is not a sandbox number with a voice_url")
        call = self._new_call(from_, to, "inbound")
        call.caller_name = caller_name
        call.status_callback = number.voice_status_callback
        call.status_events = frozenset(number.voice_status_events)
        call.url, call.method = number.voice_url, number.voice_method
        call.digits = split_digits(digits)
        call.record_seconds = record_seconds
        call.runner = self.sb.spawn(self._inbound(call, hangup_after), name=f"call {call.sid}")
        return call

    def start_client_call(
        self,
        identity: str,
        to: str,
        *,
        params: dict[str, str] | None = None,
        digits: str = "",
        hangup_after: float | None = None,
    ) -> Call:
        """An agent's browser places a call (Voice SDK ``connect``): the TwiML App's URL is requested."""
        url = self.sb.config.client_voice_url
        if not url:
            raise ValueError("no client_voice_url (TwiML App Voice URL) is configured")
        call = self._new_call(f"client:{identity}", to, "inbound")
        call.url = url
        call.digits = split_digits(digits)
        call.extra_params = {k: str(v) for k, v in (params or {}).items()}
        call.runner = self.sb.spawn(self._inbound(call, hangup_after), name=f"call {call.sid}")
        return call

    def start_outbound(self, request: OutboundRequest) -> Call:
        """``POST Calls.json``: ring ``to``; the outcome follows the configured probabilities."""
        call = self._new_call(request.from_, request.to, "outbound-api")
        call.url, call.method, call.twiml = request.url, request.method, request.twiml
        call.status_callback = request.status_callback
        call.status_callback_method = request.status_callback_method
        call.status_events = request.status_events
        call.runner = self.sb.spawn(self._outbound(call, request), name=f"call {call.sid}")
        return call

    async def _inbound(self, call: Call, hangup_after: float | None) -> None:
        if hangup_after is not None:
            self.sb.spawn(self._hangup_later(call, hangup_after, "caller"))
        self._status(call, "initiated", "initiated")
        self._status(call, "ringing", "ringing")
        await self._run(call, Next(call.url, call.method, params=call.extra_params))

    async def _outbound(self, call: Call, request: OutboundRequest) -> None:
        try:
            outcome = await self._ring(call, request.timeout)
        except CallInterrupted:
            outcome = call.status
        if outcome != "answered":
            return
        self._answer(call)
        if call.callee is not None:
            talk = self.sb.between(self.sb.config.outcomes.talk_seconds)
            call.note("callee will hang up", after_seconds=round(talk, 1))
            self.sb.spawn(self._hangup_later(call, talk, "callee"))
        if request.machine_detection:
            try:
                await self._detect_machine(call, request)
            except CallInterrupted:
                self._end_after_run(call)
                return
        await self._run(call, Next(call.url, call.method, call.twiml))

    async def _detect_machine(self, call: Call, request: OutboundRequest) -> None:
        detection = self.sb.between(self.sb.config.outcomes.amd_seconds)
        if call.callee == "machine":
            answered_by = (
                "machine_end_beep" if request.machine_detection == "DetectMessageEnd" else "machine_start"
            )
        else:
            answered_by = "human"
        if not request.async_amd:
            await self.wait(call, detection)
            call.answered_by = answered_by
            call.note("machine detection", answered_by=answered_by)
            return
        self.sb.spawn(self._async_amd(call, request, detection, answered_by))

    async def _async_amd(
        self, call: Call, request: OutboundRequest, seconds: float, answered_by: str
    ) -> None:
        await self.sb.sleep(seconds)
        if call.is_final:
            return
        call.answered_by = answered_by
        call.note("machine detection", answered_by=answered_by)
        if request.async_amd_callback:
            params = {
                "AccountSid": call.account_sid,
                "CallSid": call.sid,
                "AnsweredBy": answered_by,
                "MachineDetectionDuration": str(round(seconds * 1000)),
            }
            self._callback_task(
                call, request.async_amd_callback, request.async_amd_method, params, "amd status", chain=False
            )

    # -- ringing ---------------------------------------------------------------------------------

    async def _ring(self, leg: Call, ring_limit: float) -> str:
        """Ring a leg to a client or a number; "answered" or the final status it ended with."""
        try:
            self._status(leg, "initiated", "initiated")
            self._status(leg, "ringing", "ringing")
            if leg.to.startswith("client:"):
                return await self._ring_client(leg, ring_limit)
            return await self._ring_number(leg, ring_limit)
        except CallInterrupted as exc:
            self._finish(leg, exc.interrupt.status if exc.interrupt.kind == "hangup" else "canceled")
            return leg.status
        except asyncio.CancelledError:
            if not leg.is_final and not self.sb.closing:
                self._finish(leg, "canceled")
            raise

    async def _ring_client(self, leg: Call, ring_limit: float) -> str:
        identity = leg.to.removeprefix("client:")
        leg.ringing_client = identity
        leg.answer_decision = asyncio.get_running_loop().create_future()
        auto = self.sb.config.client_auto_answer_seconds
        ring_for = min(ring_limit, auto) if auto is not None else ring_limit
        try:
            decision = await asyncio.wait_for(asyncio.shield(leg.answer_decision), self.sb.real(ring_for))
        except TimeoutError:
            decision = "answer" if auto is not None and auto < ring_limit else "no-answer"
        finally:
            leg.ringing_client = None
        if decision == "answer":
            leg.callee = None
            leg.note("client answered", identity=identity)
            return "answered"
        status = {"reject": "busy", "no-answer": "no-answer"}.get(decision, "canceled")
        leg.note("client did not answer", identity=identity, outcome=decision)
        self._finish(leg, status)
        return status

    async def _ring_number(self, leg: Call, ring_limit: float) -> str:
        if not is_phone_number(leg.to):
            leg.note("not a valid phone number")
            self._finish(leg, "failed")
            return "failed"
        outcomes = self.sb.config.outcomes
        outcome = self.sb.pick(outcomes.weights())
        ring = self.sb.between(outcomes.ring_seconds)
        leg.note("outcome", outcome=outcome, ring_seconds=round(ring, 1))
        if outcome == "failed":
            self._finish(leg, "failed")
            return "failed"
        if outcome == "busy":
            await self.wait(leg, min(ring, 3.0))
            self._finish(leg, "busy")
            return "busy"
        if outcome == "no-answer" or ring >= ring_limit:
            await self.wait(leg, ring_limit)
            self._finish(leg, "no-answer")
            return "no-answer"
        await self.wait(leg, ring)
        leg.callee = outcome
        return "answered"

    # -- agent browsers --------------------------------------------------------------------------

    def ringing(self, identity: str) -> list[Call]:
        return [
            c
            for c in self.sb.calls.values()
            if c.ringing_client == identity and c.answer_decision is not None and not c.answer_decision.done()
        ]

    def decide(self, identity: str, call_sid: str | None, decision: str) -> Call | None:
        """The simulated browser answers or rejects a ringing leg (by its SID or its parent's)."""
        for leg in self.ringing(identity):
            if call_sid in (None, "", leg.sid, leg.parent_call_sid):
                assert leg.answer_decision is not None
                leg.answer_decision.set_result(decision)
                return leg
        return None

    # -- status, answer, end ---------------------------------------------------------------------

    def params(self, call: Call) -> dict[str, str]:
        """The parameters Twilio sends with every request about ``call``."""
        params = {
            "AccountSid": call.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call.sid,
            "CallStatus": call.status,
            "Called": call.to,
            "Caller": call.from_,
            "Direction": call.direction,
            "From": call.from_,
            "To": call.to,
        }
        if call.caller_name:
            params["CallerName"] = call.caller_name
        if call.parent_call_sid:
            params["ParentCallSid"] = call.parent_call_sid
        if call.answered_by:
            params["AnsweredBy"] = call.answered_by
        return params

    def _status(self, call: Call, status: str, event: str | None = None) -> None:
        call.status = status
        call.date_updated = utcnow()
        call.note("status", status=status)
        if event is not None:
            self._status_callback(call, event)

    def _answer(self, call: Call) -> None:
        if call.answered_at is not None:
            return
        call.answered_at = self.sb.now()
        call.start_time = utcnow()
        self._status(call, "in-progress", "answered")
        call.answered_event.set()

    def _finish(self, call: Call, status: str) -> None:
        if call.is_final:
            return
        call.duration = call.talk_seconds(self.sb.now(), self.sb.config.time_scale)
        call.status = status
        call.end_time = call.date_updated = utcnow()
        call.sip_response_code = SIP_CODES.get(status, 200)
        if call.queue is not None:
            self._left_queue(call.queue, call)
        if call.bridge is not None:
            call.bridge.end(call)
        if call.answer_decision is not None and not call.answer_decision.done():
            call.answer_decision.set_result("cancel")
        call.note("ended", status=status, duration=call.duration)
        self._status_callback(call, "completed")
        call.ended.set()

    def _end_after_run(self, call: Call) -> None:
        what = call.pending_interrupt
        if call.answered_at is not None:
            status = "completed"
        elif what is not None and what.kind == "hangup":
            status = what.status
        else:
            status = "failed"
        self._finish(call, status)

    def hangup(self, call: Call, by: str, status: str = "canceled") -> bool:
        """End a leg from outside (caller, callee, agent, API); ``status`` if it was not answered."""
        if call.is_final:
            return False
        call.note("hangup", by=by)
        if call.answer_decision is not None and not call.answer_decision.done():
            call.answer_decision.set_result("reject" if by == "agent" else "cancel")
        elif call.runner is not None and not call.runner.done():
            call.interrupt(Interrupt("hangup", by=by, status=status))
        else:
            self._finish(call, "completed" if call.answered_at is not None else status)
        return True

    async def _hangup_later(self, call: Call, seconds: float, by: str) -> None:
        try:
            await asyncio.wait_for(call.ended.wait(), self.sb.real(seconds))
        except TimeoutError:
            self.hangup(call, by)

    def update(
        self, call: Call, *, url: str | None, method: str, twiml: str | None, status: str | None
    ) -> bool:
        """``POST Calls/{Sid}.json``: redirect a live call to new TwiML or end it; True when ending."""
        if status is not None:
            if status not in ("canceled", "completed"):
                raise TwilioApiError(21218, f"Invalid Status value {status!r}: use canceled or completed")
            if call.is_final or (status == "canceled" and call.answered_at is not None):
                return False  # Twilio leaves an answered call alone when asked to cancel it
            return self.hangup(call, by="api", status="canceled")
        if url is None and twiml is None:
            return False
        if call.is_final:
            raise TwilioApiError(21220, "Call is not in-progress. Cannot redirect.")
        if call.answered_at is None:
            call.url, call.method, call.twiml = url, method, twiml
            call.note("new url before answer", url=url)
            return False
        if call.runner is None or call.runner.done():
            # A dialled leg has no TwiML of its own: it leaves its bridge and runs the new TwiML.
            if call.bridge is not None:
                call.bridge.end(call)
                call.bridge = None
            call.note("redirect", url=url, by="api")
            call.runner = self.sb.spawn(self._run(call, Next(url, method, twiml)), name=f"call {call.sid}")
            return False
        call.interrupt(Interrupt("redirect", by="api", url=url, method=method, twiml=twiml))
        return False

    # -- status callbacks ------------------------------------------------------------------------

    def _status_callback(self, call: Call, event: str) -> None:
        if not call.status_callback or event not in call.status_events or self.sb.closing:
            return
        params = self.params(call)
        params.update(
            CallbackSource="call-progress-events",
            SequenceNumber=str(call.sequence),
            Timestamp=rfc2822(utcnow()) or "",
        )
        if event == "completed":
            duration = call.duration or 0
            params.update(
                CallDuration=str(duration),
                Duration=str(math.ceil(duration / 60)),
                SipResponseCode=str(call.sip_response_code),
            )
        call.sequence += 1
        self._callback_task(
            call, call.status_callback, call.status_callback_method, params, f"status {event}", chain=True
        )

    def _callback_task(
        self, call: Call, url: str, method: str, params: dict[str, str], what: str, *, chain: bool
    ) -> None:
        jitter = self.sb.config.callback_jitter_seconds
        delay = self.sb.rng.uniform(0, jitter) if chain and jitter > 0 else 0.0
        previous = call.last_callback if chain and jitter <= 0 else None
        call.pending_callbacks += 1
        task = self.sb.spawn(self._send_callback(call, url, method, params, what, previous, delay))
        if chain:
            call.last_callback = task

    async def _send_callback(
        self,
        call: Call,
        url: str,
        method: str,
        params: dict[str, str],
        what: str,
        previous: asyncio.Task[None] | None,
        delay: float,
    ) -> None:
        try:
            if delay:
                await self.sb.sleep(delay)
            if previous is not None:
                await asyncio.wait({previous})
            await self.sb.webhook(url, params, method, what=what, call=call)
        finally:
            call.pending_callbacks -= 1

    # -- running TwiML ---------------------------------------------------------------------------

    async def wait(self, call: Call, seconds: float | None, *events: asyncio.Event) -> bool:
        """Let ``seconds`` of simulated time pass (None: forever) unless one of ``events`` happens.

        True when an event is set, False when the time ran out; raises :class:`CallInterrupted`
        when the call is hung up, redirected or dequeued meanwhile.
        """
        call.check()
        if any(e.is_set() for e in events):
            return True
        waiters = [asyncio.ensure_future(e.wait()) for e in (call.interrupt_event, *events)]
        try:
            await asyncio.wait(
                waiters,
                timeout=None if seconds is None else self.sb.real(seconds),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        call.check()
        return any(e.is_set() for e in events)

    async def _run(self, call: Call, first: Next | None) -> None:
        nxt = first
        try:
            while nxt is not None and not nxt.end and not call.is_final:
                try:
                    call.check()
                    loaded = await self._load(call, nxt)
                    if loaded is None:
                        break
                    verbs, doc_url = loaded
                    nxt = await self._execute(call, verbs, doc_url)
                except CallInterrupted as exc:
                    what = exc.interrupt
                    if what.kind != "redirect":
                        break
                    call.take_interrupt()
                    call.note("redirect", url=what.url, by=what.by)
                    nxt = Next(what.url, what.method, what.twiml)
        finally:
            if not call.is_final and not self.sb.closing:
                self._end_after_run(call)

    async def _load(self, call: Call, nxt: Next) -> tuple[list[Verb], str | None] | None:
        """Request (or take inline) the next TwiML document; None after an error (logged)."""
        if nxt.twiml is not None:
            source, doc_url = nxt.twiml, nxt.url
        elif nxt.url is None:
            self.sb.record_error(21205, "Invalid URL", "no URL to request TwiML from", call)
            return None
        else:
            result = await self.sb.webhook(
                nxt.url, {**self.params(call), **nxt.params}, nxt.method, what="twiml", call=call
            )
            call.check()
            if not result.ok:
                return None
            source, doc_url = result.body, nxt.url
        try:
            verbs = parse_twiml(source)
        except TwiMLError as exc:
            self.sb.record_error(12100, "Document parse failure", str(exc), call)
            return None
        call.note("twiml", url=doc_url, verbs=[v.name for v in verbs])
        return verbs, doc_url

    async def _execute(self, call: Call, verbs: list[Verb], doc_url: str | None) -> Next | None:
        for verb in verbs:
            call.check()
            if call.answered_at is None and verb.name != "Reject":
                self._answer(call)
            handler = self._verbs.get(verb.name)
            if handler is None:
                call.note("not simulated", verb=verb.name)
                continue
            nxt = await handler(call, verb, doc_url)
            if nxt is not None:
                return nxt
        return END

    async def _request_ignored(
        self, call: Call, url: str, method: str, params: dict[str, str], what: str
    ) -> None:
        """An action Twilio still requests after the caller hung up; its answer is ignored."""
        request = {**self.params(call), **params}
        if call.pending_interrupt is not None and call.pending_interrupt.kind == "hangup":
            request["CallStatus"] = "completed"
        await self.sb.webhook(url, request, method, what=what, call=call)

    # -- simple verbs ----------------------------------------------------------------------------

    @staticmethod
    def _loops(verb: Verb) -> int:
        return max(0, int(verb.number("loop", 1)))

    async def _say(self, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
        loops = self._loops(verb)
        words = max(1, len(verb.text.split()))
        seconds = max(1.0, words / self.sb.config.speech_words_per_second)
        call.note(
            "say", text=verb.text, voice=verb.get("voice") or None, language=verb.get("language") or None
        )
        await self.wait(call, None if loops == 0 else seconds * loops)
        return None

    async def _play(self, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
        digits = verb.get("digits")
        if digits:
            call.note("play", digits=digits)
            await self.wait(call, 0.5 * len(digits))
            return None
        loops = self._loops(verb)
        call.note("play", url=resolve(doc_url, verb.text) or verb.text, loop=loops)
        await self.wait(call, None if loops == 0 else self.sb.config.play_seconds * loops)
        return None

    async def _pause(self, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
        length = verb.number("length", 1)
        call.note("pause", length=length)
        await self.wait(call, length)
        return None

    async def _redirect(self, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
        url = resolve(doc_url, verb.text)
        call.note("redirect", url=url)
        if url is None:
            self.sb.record_error(21205, "Invalid URL", f"<Redirect> to {verb.text!r}", call)
            return END
        return Next(url, verb.get("method", "POST"))

    async def _hangup(self, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
        call.note("hangup", by="twiml")
        return END

    async def _reject(self, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
        reason = verb.get("reason", "rejected")
        call.note("reject", reason=reason)
        if call.answered_at is None:
            self._finish(call, "busy")
        return END

    async def _leave_outside_queue(self, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
        call.note("leave ignored", reason="the call is not in a queue")
        return None

    # -- Gather ----------------------------------------------------------------------------------

    async def _gather(self, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
        action = resolve(doc_url, verb.get("action")) or doc_url
        method = verb.get("method", "POST")
        timeout = verb.number("timeout", 5)
        num_digits = int(verb.number("numDigits", 0))
        finish = verb.get("finishOnKey", "#")
        inputs = verb.get("input", "dtmf").replace(",", " ").split()
        call.note("gather", action=action, num_digits=num_digits or None, timeout=timeout, input=inputs)
        if not call.digits:
            for child in verb.children:
                if child.name in WAIT_VERBS:
                    await self._verbs[child.name](call, child, doc_url)
                    if call.digits:
                        break  # the caller pressed a key during the prompt
        got = await self._take_input(call, timeout, num_digits, finish, inputs)
        if got is None:
            call.note("gather timeout")
            if verb.flag("actionOnEmptyResult") and action:
                return Next(action, method)
            return None
        call.note("gathered", **{k.lower(): v for k, v in got.items()})
        if action is None:
            self.sb.record_error(21205, "Invalid URL", "<Gather> without action in inline TwiML", call)
            return None
        return Next(action, method, params=got)

    async def _take_input(
        self, call: Call, wait_seconds: float, num_digits: int, finish: str, inputs: list[str]
    ) -> dict[str, str] | None:
        if not call.digits:
            call.digits_arrived.clear()
            await self.wait(call, wait_seconds, call.digits_arrived)
            if not call.digits:
                return None
        segment = call.digits.pop(0)
        if segment.startswith(SPEECH_PREFIX):
            if "speech" not in inputs:
                return None
            return {"SpeechResult": segment[len(SPEECH_PREFIX) :].strip(), "Confidence": "0.92"}
        if "dtmf" not in inputs:
            return None
        digits, finished, index = "", "", 0
        while index < len(segment):
            key = segment[index]
            index += 1
            if finish and key in finish:
                finished = key
                break
            digits += key
            if num_digits and len(digits) >= num_digits:
                break
        if segment[index:]:
            call.digits.insert(0, segment[index:])
        result = {"Digits": digits}
        if finished:
            result["FinishedOnKey"] = finished
        return result

    def press(self, call: Call, digits: str) -> None:
        """The caller presses keys (or says ``speech:...``) now."""
        call.digits.extend(split_digits(digits))
        call.note("caller input", digits=digits)
        call.digits_arrived.set()

    # -- Record ----------------------------------------------------------------------------------

    async def _record(self, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
        action = resolve(doc_url, verb.get("action")) or doc_url
        method = verb.get("method", "POST")
        max_length = verb.number("maxLength", 3600)
        finish = verb.get("finishOnKey", "1234567890*#")
        speaks = call.record_seconds if call.record_seconds is not None else self.sb.config.record_seconds
        seconds = min(max(0.0, speaks), max_length)
        callback = resolve(doc_url, verb.get("recordingStatusCallback"))
        callback_method = verb.get("recordingStatusCallbackMethod", "POST")
        events = set(verb.get("recordingStatusCallbackEvent", "completed").replace(",", " ").split())
        recording = Recording(new_sid("RE"), call.account_sid, call.sid, duration=round(seconds))
        call.note(
            "record", recording_sid=recording.sid, max_length=max_length, beep=verb.flag("playBeep", True)
        )
        if seconds <= 0:
            call.note("record empty", detail="the caller said nothing; next verb")
            return None
        if callback:
            self._recording_callback(call, recording, callback, callback_method, "in-progress", events)
        hung_up: CallInterrupted | None = None
        started = self.sb.now()
        try:
            await self.wait(call, seconds)
        except CallInterrupted as exc:
            if exc.interrupt.kind != "hangup":
                raise
            hung_up = exc
            recording.duration = max(1, round((self.sb.now() - started) / self.sb.config.time_scale))
        digits = "hangup" if hung_up else ""
        if not hung_up and call.digits and call.digits[0][:1] and call.digits[0][0] in finish:
            digits = call.digits[0][0]
            rest = call.digits[0][1:]
            call.digits[0:1] = [rest] if rest else []
        self.sb.recordings[recording.sid] = recording
        url = self.sb.recording_url(recording)
        call.note("recorded", recording_sid=recording.sid, duration=recording.duration, digits=digits)
        if callback:
            self._recording_callback(call, recording, callback, callback_method, "completed", events)
        params = {
            "RecordingUrl": url,
            "RecordingSid": recording.sid,
            "RecordingDuration": str(recording.duration),
            "Digits": digits,
        }
        if hung_up is not None:
            if action:
                await self._request_ignored(call, action, method, params, "record action")
            raise hung_up
        if action is None:
            return None
        return Next(action, method, params=params)

    def _recording_callback(
        self, call: Call, recording: Recording, url: str, method: str, status: str, events: set[str]
    ) -> None:
        if status not in events:
            return
        params = {
            "AccountSid": call.account_sid,
            "CallSid": call.sid,
            "RecordingSid": recording.sid,
            "RecordingUrl": self.sb.recording_url(recording),
            "RecordingStatus": status,
            "RecordingChannels": "1",
            "RecordingSource": recording.source,
            "RecordingStartTime": rfc2822(recording.date_created) or "",
        }
        if status == "completed":
            params["RecordingDuration"] = str(recording.duration)
        self._callback_task(call, url, method, params, f"recording {status}", chain=False)

    # -- Dial ------------------------------------------------------------------------------------

    async def _dial(self, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
        action = resolve(doc_url, verb.get("action"))
        method = verb.get("method", "POST")
        timeout = verb.number("timeout", 30)
        time_limit = verb.number("timeLimit", 14400)
        caller_id = verb.get("callerId") or call.from_
        nouns = [c for c in verb.children if c.name in DIAL_NOUNS]
        if not nouns and verb.text:
            nouns = [Verb("Number", text=verb.text)]
        call.note("dial", targets=[f"{n.name}:{n.text}" for n in nouns], timeout=timeout)
        queue_noun = next((n for n in nouns if n.name == "Queue"), None)
        if queue_noun is not None:
            result = await self._dial_queue(call, queue_noun, timeout, time_limit)
        else:
            targets = [n for n in nouns if n.name in ("Client", "Number")]
            for other in (n for n in nouns if n not in targets):
                call.note("not simulated", noun=other.name)
            if targets:
                result = await self._dial_legs(call, targets, doc_url, timeout, time_limit, caller_id)
            else:
                result = DialResult("failed", None, 0, False)
        params = {"DialCallStatus": result.status, "DialBridged": "true" if result.bridged else "false"}
        if result.child is not None:
            params["DialCallSid"] = result.child.sid
            params["DialCallDuration"] = str(result.duration)
        call.note(
            "dial ended",
            dial_call_status=result.status,
            dial_call_sid=result.child.sid if result.child else None,
            duration=result.duration,
        )
        if result.interrupted is not None:
            if result.interrupted.interrupt.kind == "hangup" and action:
                await self._request_ignored(call, action, method, params, "dial action")
            raise result.interrupted
        if action:
            return Next(action, method, params=params)
        return None

    async def _dial_legs(
        self,
        call: Call,
        nouns: list[Verb],
        doc_url: str | None,
        ring_limit: float,
        time_limit: float,
        caller_id: str,
    ) -> DialResult:
        legs: list[Call] = []
        for noun in nouns:
            if noun.name == "Client":
                identity = noun.text or next((c.text for c in noun.children if c.name == "Identity"), "")
                to = f"client:{identity}"
            else:
                to = noun.text
            leg = self._new_call(caller_id, to, "outbound-dial", parent=call)
            leg.status_callback = resolve(doc_url, noun.get("statusCallback"))
            leg.status_callback_method = noun.get("statusCallbackMethod", "POST")
            leg.status_events = frozenset(
                noun.get("statusCallbackEvent", "completed").replace(",", " ").split()
            )
            legs.append(leg)
            call.note("ringing", call_sid=leg.sid, to=to)
        rings: dict[asyncio.Task[str], Call] = {}
        for leg in legs:
            task: asyncio.Task[str] = self.sb.spawn(self._ring(leg, ring_limit), name=f"ring {leg.sid}")
            leg.runner = task
            rings[task] = leg
        winner: Call | None = None
        outcomes: list[str] = []
        pending = set(rings)
        try:
            while pending and winner is None:
                done = await self._race(call, pending)
                pending -= done
                for task in done:
                    outcome = task.result() if not task.cancelled() else "canceled"
                    if outcome == "answered" and winner is None:
                        winner = rings[task]
                    elif outcome == "answered":
                        self.hangup(rings[task], by="dial")
                    else:
                        outcomes.append(outcome)
        except CallInterrupted as exc:
            await self._stop_ringing(rings)
            return DialResult("canceled", legs[0] if len(legs) == 1 else None, 0, False, exc)
        await self._stop_ringing({t: leg for t, leg in rings.items() if leg is not winner})
        if winner is None:
            status = next((s for s in ("no-answer", "busy", "canceled", "failed") if s in outcomes), "failed")
            return DialResult(status, legs[0] if len(legs) == 1 else None, 0, False)
        return await self._bridge(call, winner, time_limit)

    async def _stop_ringing(self, rings: dict[asyncio.Task[str], Call]) -> None:
        for task, leg in rings.items():
            if not task.done():
                self.hangup(leg, by="dial")
        await asyncio.gather(*rings, return_exceptions=True)
        for leg in rings.values():
            if not leg.is_final:
                self._finish(leg, "canceled")

    async def _race(self, call: Call, tasks: set[asyncio.Task[str]]) -> set[asyncio.Task[str]]:
        """Wait for the first of ``tasks``; raises :class:`CallInterrupted` if ``call`` is interrupted."""
        call.check()
        waiter = asyncio.ensure_future(call.interrupt_event.wait())
        try:
            done, _ = await asyncio.wait({*tasks, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        call.check()
        return {t for t in tasks if t in done}

    async def _bridge(self, call: Call, leg: Call, time_limit: float) -> DialResult:
        self._answer(leg)
        bridge = Bridge(call, leg, self.sb.now())
        call.bridge = leg.bridge = bridge
        call.note("bridged", call_sid=leg.sid, to=leg.to)
        leg.note("bridged", call_sid=call.sid)
        if leg.callee is not None:
            talk = self.sb.between(self.sb.config.outcomes.talk_seconds)
            leg.note("callee will hang up", after_seconds=round(talk, 1))
            self.sb.spawn(self._hangup_later(leg, talk, "callee"))
        interrupted: CallInterrupted | None = None
        try:
            if not await self.wait(call, time_limit, bridge.ended):
                call.note("dial time limit reached", seconds=time_limit)
        except CallInterrupted as exc:
            interrupted = exc
        duration = round((self.sb.now() - bridge.started_at) / self.sb.config.time_scale)
        still_bridged = leg.bridge is bridge  # not when the leg left to run TwiML of its own
        bridge.end(call)
        call.bridge = None
        if still_bridged:
            self.hangup(leg, by="bridge")
        return DialResult("completed", leg, duration, True, interrupted)

    async def _dial_queue(self, call: Call, noun: Verb, ring_limit: float, time_limit: float) -> DialResult:
        queue = self.sb.queue(noun.text)
        deadline = self.sb.now() + self.sb.real(ring_limit)
        try:
            while not queue.members:
                queue.member_added.clear()
                left = (deadline - self.sb.now()) / self.sb.config.time_scale
                if left <= 0 or not await self.wait(call, left, queue.member_added):
                    return DialResult("no-answer", None, 0, False)
        except CallInterrupted as exc:
            return DialResult("canceled", None, 0, False, exc)
        member = queue.members[0]
        self._left_queue(queue, member)
        bridge = Bridge(member, call, self.sb.now())
        member.bridge = call.bridge = bridge
        member.interrupt(Interrupt("bridge", by=call.sid, bridge=bridge))
        call.note("dequeued", queue=queue.friendly_name, call_sid=member.sid)
        interrupted: CallInterrupted | None = None
        try:
            if not await self.wait(call, time_limit, bridge.ended):
                call.note("dial time limit reached", seconds=time_limit)
        except CallInterrupted as exc:
            interrupted = exc
        duration = round((self.sb.now() - bridge.started_at) / self.sb.config.time_scale)
        bridge.end(call)
        call.bridge = None
        return DialResult("completed", member, duration, True, interrupted)

    # -- Enqueue ---------------------------------------------------------------------------------

    def _left_queue(self, queue: Queue, call: Call) -> int:
        """Take ``call`` out of ``queue`` (once); its time in the queue in simulated seconds."""
        entered = queue.entered.pop(call.sid, None)
        if call in queue.members:
            queue.members.remove(call)
        if entered is not None:
            seconds = (self.sb.now() - entered) / self.sb.config.time_scale
            queue.waits.append(seconds)
            call.queue_time = round(seconds)
        if call.queue is queue:
            call.queue = None
        return call.queue_time

    def queue_params(self, queue: Queue, call: Call) -> dict[str, str]:
        entered = queue.entered.get(call.sid, self.sb.now())
        scale = self.sb.config.time_scale
        average = sum(queue.waits) / len(queue.waits) if queue.waits else 0.0
        return {
            "QueuePosition": str(queue.position(call)),
            "QueueSid": queue.sid,
            "QueueTime": str(round((self.sb.now() - entered) / scale)),
            "AvgQueueTime": str(round(average)),
            "CurrentQueueSize": str(len(queue.members)),
            "MaxQueueSize": str(self.sb.config.max_queue_size),
        }

    async def _enqueue(self, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
        action = resolve(doc_url, verb.get("action"))
        method = verb.get("method", "POST")
        wait_url = resolve(doc_url, verb.get("waitUrl"))
        wait_method = verb.get("waitUrlMethod", "POST")
        queue = self.sb.queue(verb.text)
        if verb.get("workflowSid"):
            call.note("not simulated", detail="TaskRouter workflowSid: a plain queue is used")
        if len(queue.members) >= self.sb.config.max_queue_size:
            outcome: QueueOutcome = ("queue-full", None)
        else:
            queue.members.append(call)
            queue.entered[call.sid] = self.sb.now()
            call.queue = queue
            queue.member_added.set()
            call.note(
                "enqueued", queue=queue.friendly_name, queue_sid=queue.sid, position=queue.position(call)
            )
            try:
                outcome = await self._wait_in_queue(call, queue, wait_url, wait_method)
            except CallInterrupted as exc:
                what = exc.interrupt
                if what.kind == "bridge" and what.bridge is not None:
                    call.take_interrupt()
                    self._left_queue(queue, call)
                    outcome = await self._bridged_from_queue(call, what.bridge)
                elif what.kind == "redirect":
                    call.take_interrupt()
                    outcome = ("redirected", Next(what.url, what.method, what.twiml))
                else:
                    queue_time = self._left_queue(queue, call)
                    call.note("left queue", result="hangup", queue_time=queue_time)
                    if action:
                        params = self._queue_result(queue, "hangup", queue_time)
                        await self._request_ignored(call, action, method, params, "enqueue action")
                    raise
        result, follow = outcome
        queue_time = self._left_queue(queue, call)
        call.note("left queue", result=result, queue_time=queue_time)
        params = self._queue_result(queue, result, queue_time)
        if result == "hangup":
            if action:
                await self._request_ignored(call, action, method, params, "enqueue action")
            return END
        if follow is not None:
            if action:
                await self._request_ignored(call, action, method, params, "enqueue action")
            return follow
        if action:
            return Next(action, method, params=params)
        return None

    @staticmethod
    def _queue_result(queue: Queue, result: str, queue_time: int) -> dict[str, str]:
        return {"QueueResult": result, "QueueSid": queue.sid, "QueueTime": str(queue_time)}

    async def _wait_in_queue(
        self, call: Call, queue: Queue, wait_url: str | None, wait_method: str
    ) -> QueueOutcome:
        period = self.sb.config.queue_wait_period_seconds
        while True:
            started = self.sb.now()
            if wait_url is None:
                call.note("hold music", detail="Twilio's default wait music")
                await self.wait(call, None)
                continue
            params = {**self.params(call), **self.queue_params(queue, call)}
            result = await self.sb.webhook(wait_url, params, wait_method, what="enqueue wait", call=call)
            call.check()
            if not result.ok:
                return ("error", None)
            try:
                verbs = parse_twiml(result.body)
            except TwiMLError as exc:
                self.sb.record_error(12100, "Document parse failure", str(exc), call)
                return ("error", None)
            call.note("wait twiml", position=params["QueuePosition"], verbs=[v.name for v in verbs])
            outcome = await self._execute_wait(call, verbs, wait_url)
            if outcome is not None:
                return outcome
            elapsed = (self.sb.now() - started) / self.sb.config.time_scale
            if elapsed < period:
                await self.wait(call, period - elapsed)

    async def _execute_wait(self, call: Call, verbs: list[Verb], doc_url: str | None) -> QueueOutcome | None:
        """The TwiML of a waitUrl: only Say Play Pause Gather Leave Hangup Redirect are allowed."""
        for verb in verbs:
            call.check()
            if verb.name in WAIT_VERBS:
                await self._verbs[verb.name](call, verb, doc_url)
            elif verb.name == "Gather":
                nxt = await self._gather(call, verb, doc_url)
                if nxt is not None:
                    loaded = await self._load(call, nxt)
                    if loaded is None:
                        return ("error", None)
                    return await self._execute_wait(call, loaded[0], loaded[1])
            elif verb.name == "Leave":
                call.note("leave")
                return ("leave", None)
            elif verb.name == "Hangup":
                call.note("hangup", by="twiml")
                return ("hangup", None)
            elif verb.name == "Redirect":
                url = resolve(doc_url, verb.text)
                call.note("redirect", url=url)
                if url is None:
                    return ("error", None)
                return ("redirected", Next(url, verb.get("method", "POST")))
            else:
                call.note("not allowed in waitUrl", verb=verb.name)
        return None

    async def _bridged_from_queue(self, call: Call, bridge: Bridge) -> QueueOutcome:
        call.note("bridged", call_sid=bridge.other(call).sid)
        try:
            await self.wait(call, None, bridge.ended)
        except CallInterrupted as exc:
            bridge.end(call)
            call.bridge = None
            if exc.interrupt.kind == "redirect":
                call.take_interrupt()
                what = exc.interrupt
                return ("redirected-from-bridged", Next(what.url, what.method, what.twiml))
            raise
        call.bridge = None
        return ("bridged", None)


def split_digits(digits: str) -> list[str]:
    """``"1,23#"`` -> ``["1", "23#"]``: one segment per prompt (``speech:words`` for speech)."""
    return [part.strip() for part in digits.split(",") if part.strip()] if digits else []
