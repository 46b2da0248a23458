"""Messaging: outbound messages with delivery receipts, inbound SMS webhooks, STOP/START opt-outs."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from contact_center.sandbox.model import (
    API_VERSION,
    Message,
    TwilioApiError,
    new_sid,
    utcnow,
)
from contact_center.sandbox.segments import num_segments
from contact_center.sandbox.twiml import TwiMLError, parse_twiml
from contact_center.sandbox.voice import is_phone_number, resolve
from contact_center.sandbox.webhook_params import location

if TYPE_CHECKING:
    from contact_center.sandbox.engine import Sandbox

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})
STOP_REPLY = (
    "You have successfully been unsubscribed. You will not receive any more messages from this number. "
    "Reply START to resubscribe."
)
START_REPLY = "You have successfully been re-subscribed to messages from this number. Reply HELP for help."
MAX_BODY = 1600
MAX_REDIRECTS = 10
MAGIC_TO = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable via SMS."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for the region."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """The parameters of ``POST Messages.json`` that the simulation uses."""

    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    media_urls: list[str] = field(default_factory=list)
    status_callback: str | None = None


OUTCOMES = ("delivered", "undelivered", "failed")


class Messaging:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.forced: dict[str, tuple[str, int | None]] = {}
        """Recipient -> (outcome, ErrorCode): how every text to that number ends, chance aside."""

    def force_outcome(self, to: str, outcome: str | None, error_code: int | None = None) -> None:
        """Texts to ``to`` end ``outcome`` (delivered, undelivered or failed, with ``error_code``
        or a typical one); None goes back to the configured weights."""
        if outcome is None:
            self.forced.pop(to, None)
            return
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome is one of {', '.join(OUTCOMES)}")
        self.forced[to] = (outcome, error_code)

    def reset(self) -> None:
        self.forced.clear()

    # -- outbound --------------------------------------------------------------------------------

    def _sender(self, request: OutboundMessage) -> str:
        if request.from_:
            return request.from_
        return next(iter(self.sb.config.numbers), "+15005550006")

    def validate(self, request: OutboundMessage) -> None:
        """Twilio's checks, in Twilio's order; raises :class:`TwilioApiError`."""
        if not request.to:
            raise TwilioApiError(21604, "A 'To' phone number is required.")
        if not request.from_ and not request.messaging_service_sid:
            raise TwilioApiError(21603, "A 'From' phone number is required.")
        if not request.body and not request.media_urls:
            raise TwilioApiError(21602, "Message body is required.")
        if len(request.body) > MAX_BODY:
            raise TwilioApiError(21617, "The concatenated message body exceeds the 1600 character limit.")
        if self.sb.config.magic_numbers and request.to in MAGIC_TO:
            code, text = MAGIC_TO[request.to]
            raise TwilioApiError(code, text)
        if not is_phone_number(request.to):
            raise TwilioApiError(21211, f"The 'To' number {request.to} is not a valid phone number.")
        numbers = self.sb.config.numbers
        if request.from_ and numbers and request.from_ not in numbers:
            raise TwilioApiError(
                21606,
                f"The From phone number {request.from_} is not a valid, SMS-capable inbound phone number "
                "or short code for your account.",
            )
        senders = {self._sender(request), request.messaging_service_sid}
        if any((request.to, sender) in self.sb.opt_outs for sender in senders if sender):
            raise TwilioApiError(21610, "Attempt to send to unsubscribed recipient")

    def create(self, request: OutboundMessage) -> Message:
        self.validate(request)
        message = Message(
            sid=new_sid("MM" if request.media_urls else "SM"),
            account_sid=self.sb.config.account_sid,
            from_=self._sender(request),
            to=request.to,
            body=request.body,
            direction="outbound-api",
            status="accepted" if request.messaging_service_sid else "queued",
            media_urls=list(request.media_urls),
            messaging_service_sid=request.messaging_service_sid,
            status_callback=request.status_callback,
        )
        self.sb.messages[message.sid] = message
        message.note("created", status=message.status)
        self.sb.spawn(self._deliver(message), name=f"message {message.sid}")
        return message

    async def _deliver(self, message: Message) -> None:
        """queued -> sent -> delivered (or undelivered / failed), one status callback per status."""
        cfg = self.sb.config.messages
        steps: list[tuple[str, int | None]] = [("queued", None)] if message.status == "accepted" else []
        forced = self.forced.get(message.to)
        outcome, code = forced if forced is not None else (self.sb.pick(cfg.weights()), None)
        if outcome == "failed":
            steps.append(("failed", code or self.sb.rng.choice(cfg.failed_error_codes)))
        else:
            steps.append(("sent", None))
            if outcome == "delivered":
                steps.append(("delivered", None))
            else:
                steps.append(("undelivered", code or self.sb.rng.choice(cfg.undelivered_error_codes)))
        held: list[dict[str, str]] = []
        for index, (status, code) in enumerate(steps):
            await self.sb.sleep(cfg.send_seconds if index == 0 else cfg.deliver_seconds)
            self._set_status(message, status, code)
            params = self._status_params(message)
            if cfg.out_of_order:
                held.append(params)
            else:
                await self._callback(message, params)
        for params in reversed(held):
            await self._callback(message, params)

    def _set_status(self, message: Message, status: str, code: int | None) -> None:
        message.status = status
        message.date_updated = utcnow()
        if status == "sent":
            message.date_sent = message.date_updated
        if code is not None:
            message.error_code = code
            message.error_message = {
                30003: "Unreachable destination handset",
                30005: "Unknown destination handset",
                30006: "Landline or unreachable carrier",
                30007: "Message filtered",
                30008: "Unknown error",
            }.get(code, "Delivery failed")
        message.note("status", status=status, error_code=code)

    def _status_params(self, message: Message) -> dict[str, str]:
        params = {
            "AccountSid": message.account_sid,
            "ApiVersion": API_VERSION,
            "From": message.from_,
            "To": message.to,
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "MessageStatus": message.status,
            "SmsStatus": message.status,
        }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if message.error_code is not None and message.status in ("failed", "undelivered"):
            params["ErrorCode"] = str(message.error_code)
        if message.status in ("delivered", "undelivered"):
            params["RawDlrDoneDate"] = message.date_updated.strftime("%y%m%d%H%M")
        return params

    async def _callback(self, message: Message, params: dict[str, str]) -> None:
        if message.status_callback:
            await self.sb.webhook(
                message.status_callback,
                params,
                what=f"message status {params['MessageStatus']}",
                message=message,
            )

    # -- inbound ---------------------------------------------------------------------------------

    async def receive(
        self, from_: str, to: str, body: str, media_urls: list[str]
    ) -> tuple[Message, list[Message]]:
        """A phone texts one of the sandbox's numbers: its SMS URL is requested as Twilio would.

        Returns the inbound message and the replies of the TwiML answer (``<Message>``).
        """
        number = self.sb.config.numbers.get(to)
        if number is None or not number.sms_url:
            raise ValueError(f"{to} is not a sandbox number with an sms_url")
        message = Message(
            sid=new_sid("MM" if media_urls else "SM"),
            account_sid=self.sb.config.account_sid,
            from_=from_,
            to=to,
            body=body,
            direction="inbound",
            status="received",
            media_urls=list(media_urls),
        )
        self.sb.messages[message.sid] = message
        keyword = body.strip().upper()
        replies: list[Message] = []
        opt_out_type: str | None = None
        if keyword in STOP_WORDS:
            opt_out_type = "STOP"
            self.sb.opt_outs.add((from_, to))
            replies.append(self._auto_reply(message, STOP_REPLY))
        elif keyword in START_WORDS:
            opt_out_type = "START"
            self.sb.opt_outs.discard((from_, to))
            replies.append(self._auto_reply(message, START_REPLY))
        elif keyword in HELP_WORDS:
            opt_out_type = "HELP"
        message.note("received", opt_out_type=opt_out_type)
        params = {
            "AccountSid": message.account_sid,
            "ApiVersion": API_VERSION,
            "Body": body,
            "From": from_,
            "To": to,
            "MessageSid": message.sid,
            "SmsMessageSid": message.sid,
            "SmsSid": message.sid,
            "SmsStatus": "received",
            "NumMedia": str(len(media_urls)),
            "NumSegments": str(num_segments(body)),
            **location(From=from_, To=to),
        }
        for index, url in enumerate(media_urls):
            params[f"MediaUrl{index}"] = url
            params[f"MediaContentType{index}"] = mimetypes.guess_type(url)[0] or "application/octet-stream"
        if opt_out_type:
            params["OptOutType"] = opt_out_type
        url, method = number.sms_url, number.sms_method
        for _hop in range(MAX_REDIRECTS):
            result = await self.sb.webhook(url, params, method, what="sms", message=message)
            if not result.ok or not result.body.strip():
                break
            try:
                verbs = parse_twiml(result.body)
            except TwiMLError as exc:
                message.note("error", code=12100, detail=str(exc))
                self.sb.record_error(12100, "Document parse failure", str(exc))
                break
            redirect: str | None = None
            for verb in verbs:
                if verb.name == "Message":
                    text = verb.text or next((c.text for c in verb.children if c.name == "Body"), "")
                    media = [c.text for c in verb.children if c.name == "Media"]
                    reply = self._reply(
                        message,
                        to=verb.get("to") or from_,
                        from_=verb.get("from") or to,
                        body=text,
                        media=media,
                        status_callback=resolve(url, verb.get("action")),
                    )
                    replies.append(reply)
                elif verb.name == "Redirect":
                    redirect = resolve(url, verb.text)
                    method = verb.get("method", "POST")
                    break
                else:
                    message.note("not simulated", verb=verb.name)
            if redirect is None:
                break
            url = redirect
        return message, replies

    def _auto_reply(self, inbound: Message, body: str) -> Message:
        reply = Message(
            sid=new_sid("SM"),
            account_sid=inbound.account_sid,
            from_=inbound.to,
            to=inbound.from_,
            body=body,
            direction="outbound-reply",
            status="delivered",
        )
        reply.note("automatic opt-out reply")
        self.sb.messages[reply.sid] = reply
        return reply

    def _reply(
        self,
        inbound: Message,
        *,
        to: str,
        from_: str,
        body: str,
        media: list[str],
        status_callback: str | None,
    ) -> Message:
        reply = Message(
            sid=new_sid("MM" if media else "SM"),
            account_sid=inbound.account_sid,
            from_=from_,
            to=to,
            body=body,
            direction="outbound-reply",
            status="queued",
            media_urls=media,
            status_callback=status_callback,
        )
        self.sb.messages[reply.sid] = reply
        if (to, from_) in self.sb.opt_outs:
            self._set_status(reply, "failed", 21610)
            reply.error_message = "Attempt to send to unsubscribed recipient"
            inbound.note("reply blocked", code=21610, to=to)
            return reply
        inbound.note("reply", message_sid=reply.sid, body=body)
        self.sb.spawn(self._deliver(reply), name=f"message {reply.sid}")
        return reply
