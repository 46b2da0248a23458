"""Where a call's TwiML continues, and fetching the next document: what every verb shares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from contact_center.sandbox.model import Call
from contact_center.sandbox.twiml import TwiMLError, TwiMLSchemaError, Verb, check_voice_schema, parse_twiml

if TYPE_CHECKING:
    from contact_center.sandbox.voice.calls import Telephony

SPEECH_PREFIX = "speech:"
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

Handler = Callable[["Telephony", Call, Verb, str | None], Awaitable[Next | None]]
"""A verb: runs on a call (with the URL of its document) and says where the TwiML continues."""


def resolve(base: str | None, url: str) -> str | None:
    """A TwiML URL attribute made absolute against the document that contained it."""
    url = url.strip()
    if not url:
        return None
    if url.startswith(("http://", "https://")):
        return url
    return urljoin(base, url) if base else None


def split_digits(digits: str) -> list[str]:
    """``"1,23#"`` -> ``["1", "23#"]``: one segment per prompt (``speech:words`` for speech)."""
    return [part.strip() for part in digits.split(",") if part.strip()] if digits else []


async def load(t: Telephony, call: Call, nxt: Next) -> tuple[list[Verb], str | None] | None:
    """Request (or take inline) the next TwiML document; None after an error (logged)."""
    if nxt.twiml is not None:
        source, doc_url = nxt.twiml, nxt.url
    elif nxt.url is None:
        t.sb.record_error(21205, "Invalid URL", "no URL to request TwiML from", call)
        return None
    else:
        result = await t.sb.webhook(
            nxt.url, {**t.params(call), **nxt.params}, nxt.method, what="twiml", call=call
        )
        call.check()
        if not result.ok:
            return None
        source, doc_url = result.body, nxt.url
    try:
        verbs = parse_twiml(source)
        check_voice_schema(verbs)
    except TwiMLSchemaError as exc:
        t.sb.record_error(12200, "Schema validation warning", str(exc), call)
        return None
    except TwiMLError as exc:
        t.sb.record_error(12100, "Document parse failure", str(exc), call)
        return None
    call.note("twiml", url=doc_url, verbs=[v.name for v in verbs])
    return verbs, doc_url


async def request_ignored(
    t: Telephony, call: Call, url: str, method: str, params: dict[str, str], what: str
) -> None:
    """An action Twilio still requests after the caller hung up; its answer is ignored."""
    request = {**t.params(call), **params}
    if call.pending_interrupt is not None and call.pending_interrupt.kind == "hangup":
        request["CallStatus"] = "completed"
    await t.sb.webhook(url, request, method, what=what, call=call)
