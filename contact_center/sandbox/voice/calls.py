"""Calls and legs: starting them (inbound, from a browser, through the REST API), ringing,
answering, machine detection, agent browsers, hang-ups and live updates, status callbacks, and
the wait every verb makes.

Every leg is a :class:`~contact_center.sandbox.model.Call`. A leg that runs TwiML (or rings) has a
``runner`` task (:func:`~contact_center.sandbox.voice.runner.run`); hang-ups, live redirects and
dequeues reach it as interrupts, which every wait checks (:meth:`Telephony.wait`), so a verb can
clean up (end the bridged leg, leave the queue, send its action) before the call moves on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import phonenumbers

from contact_center.sandbox.model import (
    API_VERSION,
    Call,
    CallInterrupted,
    Interrupt,
    TwilioApiError,
    new_sid,
    utcnow,
)
from contact_center.sandbox.voice.amd import ANSWERED_BY, CALLEES, detect
from contact_center.sandbox.voice.callbacks import callback_task, status_callback
from contact_center.sandbox.voice.flow import Next, split_digits
from contact_center.sandbox.voice.pacing import Pacer
from contact_center.sandbox.voice.queues import left_queue
from contact_center.sandbox.voice.runner import run
from contact_center.sandbox.webhook_params import call_token, location

if TYPE_CHECKING:
    from contact_center.sandbox.engine import Sandbox

CALL_OUTCOMES = (*CALLEES, "busy", "no-answer", "failed")
SIP_CODES = {"completed": 200, "busy": 486, "no-answer": 487, "canceled": 487, "failed": 500}


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
    machine_detection_timeout: float = 30.0
    timeout: float = 60.0


def is_phone_number(value: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(value, None))
    except phonenumbers.NumberParseException:
        return False


class Telephony:
    """The voice half of the simulated network: every leg's life from its start to its end."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.pacer = Pacer(sandbox)
        self.scripted: dict[str, tuple[str, str | None]] = {}
        """Phone number -> (outcome, AnsweredBy or None): how calls to it end, whatever the odds."""

    def reset(self) -> None:
        self.pacer.reset()
        self.scripted.clear()

    def script(self, to: str, outcome: str | None, answered_by: str | None = None) -> None:
        """Calls to ``to`` end ``outcome`` (and detection concludes ``answered_by``); None: the odds."""
        if outcome is None:
            self.scripted.pop(to, None)
            return
        if outcome not in CALL_OUTCOMES:
            raise ValueError(f"outcome is one of {', '.join(CALL_OUTCOMES)}")
        if answered_by is not None and answered_by not in ANSWERED_BY:
            raise ValueError(f"answered_by is one of {', '.join(ANSWERED_BY)}")
        self.scripted[to] = (outcome, answered_by)

    # -- starting calls --------------------------------------------------------------------------

    def new_call(
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
        call = self.new_call(from_, to, "inbound")
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
        call = self.new_call(f"client:{identity}", to, "inbound")
        call.url = url
        call.digits = split_digits(digits)
        call.extra_params = {k: str(v) for k, v in (params or {}).items()}
        call.runner = self.sb.spawn(self._inbound(call, hangup_after), name=f"call {call.sid}")
        return call

    def start_outbound(self, request: OutboundRequest) -> Call:
        """``POST Calls.json``: ring ``to``; the outcome follows the configured probabilities."""
        call = self.new_call(request.from_, request.to, "outbound-api")
        call.url, call.method, call.twiml = request.url, request.method, request.twiml
        call.status_callback = request.status_callback
        call.status_callback_method = request.status_callback_method
        call.status_events = request.status_events
        call.runner = self.sb.spawn(self._outbound(call, request), name=f"call {call.sid}")
        return call

    async def _inbound(self, call: Call, hangup_after: float | None) -> None:
        if hangup_after is not None:
            self.sb.spawn(self.hangup_later(call, hangup_after, "caller"))
        self._status(call, "initiated", "initiated")
        self._status(call, "ringing", "ringing")
        await run(self, call, Next(call.url, call.method, params=call.extra_params))

    async def _outbound(self, call: Call, request: OutboundRequest) -> None:
        wait = self.pacer.turn()
        if wait > 0:
            call.note("queued for the calls-per-second limit", seconds=round(wait, 3))
            try:
                await self.wait(call, wait)
            except CallInterrupted as exc:
                self.finish(call, exc.interrupt.status if exc.interrupt.kind == "hangup" else "canceled")
                return
        call.queue_time = round(wait * 1000)
        try:
            outcome = await self.ring(call, request.timeout)
        except CallInterrupted:
            outcome = call.status
        if outcome != "answered":
            return
        self.answer(call)
        if call.callee is not None:
            talk = self.sb.between(self.sb.config.outcomes.talk_seconds)
            call.note("callee will hang up", after_seconds=round(talk, 1))
            self.sb.spawn(self.hangup_later(call, talk, "callee"))
        if request.machine_detection:
            try:
                await self._detect_machine(call, request)
            except CallInterrupted:
                self.end_after_run(call)
                return
        await run(self, call, Next(call.url, call.method, call.twiml))

    async def _detect_machine(self, call: Call, request: OutboundRequest) -> None:
        forced = self.scripted.get(call.to, ("", None))[1]
        mode = request.machine_detection or "Enable"
        found = detect(self.sb, call.callee or "human", mode, request.machine_detection_timeout, forced)
        if not request.async_amd:
            await self.wait(call, found.seconds)
            self._detected(call, found.answered_by, found.seconds)
            return
        self.sb.spawn(self._async_amd(call, request, found.seconds, found.answered_by))

    def _detected(self, call: Call, answered_by: str, seconds: float) -> None:
        call.answered_by = answered_by
        call.machine_detection_duration = round(seconds * 1000)
        call.note("machine detection", answered_by=answered_by, seconds=round(seconds, 2))

    async def _async_amd(
        self, call: Call, request: OutboundRequest, seconds: float, answered_by: str
    ) -> None:
        await self.sb.sleep(seconds)
        if call.is_final:
            return
        self._detected(call, answered_by, seconds)
        if request.async_amd_callback:
            params = {
                "AccountSid": call.account_sid,
                "CallSid": call.sid,
                "AnsweredBy": answered_by,
                "MachineDetectionDuration": str(call.machine_detection_duration),
            }
            callback_task(
                self,
                call,
                request.async_amd_callback,
                request.async_amd_method,
                params,
                "amd status",
                chain=False,
            )

    # -- ringing ---------------------------------------------------------------------------------

    async def ring(self, leg: Call, ring_limit: float) -> str:
        """Ring a leg to a client or a number; "answered" or the final status it ended with."""
        try:
            self._status(leg, "initiated", "initiated")
            self._status(leg, "ringing", "ringing")
            if leg.to.startswith("client:"):
                return await self._ring_client(leg, ring_limit)
            return await self._ring_number(leg, ring_limit)
        except CallInterrupted as exc:
            self.finish(leg, exc.interrupt.status if exc.interrupt.kind == "hangup" else "canceled")
            return leg.status
        except asyncio.CancelledError:
            if not leg.is_final and not self.sb.closing:
                self.finish(leg, "canceled")
            raise

    async def _ring_client(self, leg: Call, ring_limit: float) -> str:
        identity = leg.to.removeprefix("client:")
        leg.check()  # hung up before it started ringing
        leg.ringing_client = identity
        leg.answer_decision = decision_made = asyncio.get_running_loop().create_future()
        auto = self.sb.config.client_auto_answer_seconds
        ring_for = min(ring_limit, auto) if auto is not None else ring_limit
        try:
            decision = await asyncio.wait_for(asyncio.shield(decision_made), self.sb.real(ring_for))
        except TimeoutError:
            decision = "answer" if auto is not None and auto < ring_limit else "no-answer"
        finally:
            leg.ringing_client = None
            # The ring is over: a later hang-up must end the leg, not answer a browser no longer asked.
            if not decision_made.done():
                decision_made.cancel()
        leg.check()
        if decision == "answer":
            leg.callee = None
            leg.note("client answered", identity=identity)
            return "answered"
        status = {"reject": "busy", "no-answer": "no-answer"}.get(decision, "canceled")
        leg.note("client did not answer", identity=identity, outcome=decision)
        self.finish(leg, status)
        return status

    async def _ring_number(self, leg: Call, ring_limit: float) -> str:
        if not is_phone_number(leg.to):
            leg.note("not a valid phone number")
            self.finish(leg, "failed")
            return "failed"
        outcomes = self.sb.config.outcomes
        scripted = self.scripted.get(leg.to)
        outcome = scripted[0] if scripted is not None else self.sb.pick(outcomes.weights())
        ring = self.sb.between(outcomes.ring_seconds)
        leg.note("outcome", outcome=outcome, ring_seconds=round(ring, 1), scripted=scripted is not None)
        if scripted is not None:
            ring = min(ring, ring_limit / 2)  # a scripted answer is not lost to the ring timeout
        if outcome == "failed":
            self.finish(leg, "failed")
            return "failed"
        if outcome == "busy":
            await self.wait(leg, min(ring, 3.0))
            self.finish(leg, "busy")
            return "busy"
        if outcome == "no-answer" or ring >= ring_limit:
            await self.wait(leg, ring_limit)
            self.finish(leg, "no-answer")
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
            **location(From=call.from_, To=call.to, Caller=call.from_, Called=call.to),
        }
        if call.direction == "inbound" and call.from_.startswith("+"):
            params["CallToken"] = call_token(call.sid)
        if call.caller_name:
            params["CallerName"] = call.caller_name
        if call.parent_call_sid:
            params["ParentCallSid"] = call.parent_call_sid
        if call.answered_by:
            params["AnsweredBy"] = call.answered_by
        if call.machine_detection_duration is not None:
            params["MachineDetectionDuration"] = str(call.machine_detection_duration)
        return params

    def _status(self, call: Call, status: str, event: str | None = None) -> None:
        if status == "initiated" and call.start_time is None:
            call.start_time = utcnow()  # Twilio's start_time is when the call is dialled
        call.status = status
        call.date_updated = utcnow()
        call.note("status", status=status)
        if event is not None:
            status_callback(self, call, event)

    def answer(self, call: Call) -> None:
        if call.answered_at is not None or call.is_final:
            return
        call.answered_at = self.sb.now()
        call.start_time = call.start_time or utcnow()
        self._status(call, "in-progress", "answered")
        call.answered_event.set()

    def finish(self, call: Call, status: str) -> None:
        if call.is_final:
            return
        call.duration = call.talk_seconds(self.sb.now(), self.sb.config.time_scale)
        call.status = status
        call.end_time = call.date_updated = utcnow()
        call.sip_response_code = SIP_CODES.get(status, 200)
        if call.queue is not None:
            left_queue(self, call.queue, call)
        if call.bridge is not None:
            call.bridge.end(call)
        if call.answer_decision is not None and not call.answer_decision.done():
            call.answer_decision.set_result("cancel")
        call.note("ended", status=status, duration=call.duration)
        status_callback(self, call, "completed")
        call.ended.set()

    def end_after_run(self, call: Call) -> None:
        what = call.pending_interrupt
        if call.answered_at is not None:
            status = "completed"
        elif what is not None and what.kind == "hangup":
            status = what.status
        else:
            status = "failed"
        self.finish(call, status)

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
            self.finish(call, "completed" if call.answered_at is not None else status)
        return True

    async def hangup_later(self, call: Call, seconds: float, by: str) -> None:
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
            call.runner = self.sb.spawn(run(self, call, Next(url, method, twiml)), name=f"call {call.sid}")
            return False
        call.interrupt(Interrupt("redirect", by="api", url=url, method=method, twiml=twiml))
        return False

    # -- waits and the caller's keys -------------------------------------------------------------

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

    def press(self, call: Call, digits: str) -> None:
        """The caller presses keys (or says ``speech:...``) now."""
        call.digits.extend(split_digits(digits))
        call.note("caller input", digits=digits)
        call.digits_arrived.set()
