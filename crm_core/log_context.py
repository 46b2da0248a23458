"""What the current piece of work is about, for the log: the request, the call, the text, the ticket.

Set by the edges (the HTTP middleware names the request; a Twilio webhook, once its signature is
checked, names its CallSid or MessageSid) and read by the log formatter, so every line written
while handling one event carries its keys without each call site repeating them. Context
variables: each request's task has its own copy, nothing leaks between concurrent requests.
"""

from __future__ import annotations

from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
call_sid: ContextVar[str | None] = ContextVar("call_sid", default=None)
message_sid: ContextVar[str | None] = ContextVar("message_sid", default=None)
ticket_id: ContextVar[int | None] = ContextVar("ticket_id", default=None)

FIELDS: dict[str, ContextVar[str | None] | ContextVar[int | None]] = {
    "request_id": request_id,
    "call_sid": call_sid,
    "message_sid": message_sid,
    "ticket_id": ticket_id,
}


def current() -> dict[str, str | int]:
    """The keys known now (unset ones left out)."""
    return {name: value for name, var in FIELDS.items() if (value := var.get()) is not None}


def bind_twilio(params: object) -> None:
    """Name the call or text a Twilio webhook's parameters are about (a mapping of the form)."""
    get = getattr(params, "get", None)
    if get is None:
        return
    for name, var in (("CallSid", call_sid), ("MessageSid", message_sid)):
        value = get(name)
        if isinstance(value, str) and value:
            var.set(value[:64])
