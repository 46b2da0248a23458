"""Twilio messaging webhook parameters parsed into the core's SMS DTOs (the only place that knows them)."""

from __future__ import annotations

from multidict import MultiDict

from crm_core.errors import InvalidInput
from crm_core.services.sms_types import InboundSms, MediaItem, SmsStatusUpdate

MAX_MEDIA = 10  # Twilio delivers at most ten media items per message
MAX_BODY = 1600


def _required(params: MultiDict[str], name: str) -> str:
    value = params.get(name, "").strip()
    if not value:
        raise InvalidInput(f"missing {name}", name)
    return value


def _int(params: MultiDict[str], name: str) -> int | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise InvalidInput(f"{name} is not a number: {raw[:20]!r}", name)
    return int(raw)


def _sid(params: MultiDict[str]) -> str:
    # MessageSid, with SmsSid / SmsMessageSid (older names of the same value) as fallbacks.
    for name in ("MessageSid", "SmsMessageSid", "SmsSid"):
        value = params.get(name, "").strip()
        if value:
            if len(value) > 64:
                raise InvalidInput(f"{name} is too long", name)
            return value
    raise InvalidInput("missing MessageSid", "MessageSid")


def inbound_sms(params: MultiDict[str]) -> InboundSms:
    count = _int(params, "NumMedia") or 0
    if count > MAX_MEDIA:
        raise InvalidInput(f"NumMedia {count} is more than {MAX_MEDIA}", "NumMedia")
    media = []
    for index in range(count):
        url = _required(params, f"MediaUrl{index}")
        media.append(MediaItem(url=url, content_type=params.get(f"MediaContentType{index}", "").strip()))
    body = params.get("Body", "")
    if len(body) > MAX_BODY:
        raise InvalidInput(f"Body is longer than {MAX_BODY} characters", "Body")
    return InboundSms(
        message_sid=_sid(params),
        from_number=_required(params, "From"),
        to_number=params.get("To", "").strip(),
        body=body,
        media=media,
        segments=_int(params, "NumSegments"),
        opt_out_type=params.get("OptOutType", "").strip().upper() or None,
    )


def message_status(params: MultiDict[str], outbox_id: int | None) -> SmsStatusUpdate:
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower()
    if not status:
        raise InvalidInput("missing MessageStatus", "MessageStatus")
    return SmsStatusUpdate(
        message_sid=_sid(params),
        status=status,
        error_code=_int(params, "ErrorCode"),
        outbox_id=outbox_id,
    )
