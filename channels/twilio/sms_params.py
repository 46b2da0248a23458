"""Twilio messaging webhook parameters parsed into the core's SMS DTOs (the only place that knows them).

Every value is checked by :mod:`channels.twilio.form` (SIDs, bounded numbers and text); what
fails is :class:`InvalidInput`, answered 400 before the application sees anything.
"""

from __future__ import annotations

from multidict import MultiDict

from channels.twilio.form import MAX_URL, number, required, sid, text
from crm_core.errors import InvalidInput
from crm_core.rules.storable_text import storable
from crm_core.services.sms_types import InboundSms, MediaItem, SmsStatusUpdate

MAX_MEDIA = 10  # Twilio delivers at most ten media items per message
MAX_BODY = 1600
MAX_ADDRESS = 40  # the phone columns of texts (E.164, short codes, alphanumeric senders)
MESSAGE = ("SM", "MM")


def _sid(params: MultiDict[str]) -> str:
    # MessageSid, with SmsSid / SmsMessageSid (older names of the same value) as fallbacks.
    for name in ("MessageSid", "SmsMessageSid", "SmsSid"):
        if params.get(name, "").strip():
            return sid(params, name, MESSAGE)
    raise InvalidInput("missing MessageSid", "MessageSid")


def inbound_sms(params: MultiDict[str]) -> InboundSms:
    count = number(params, "NumMedia") or 0
    if count > MAX_MEDIA:
        raise InvalidInput(f"NumMedia {count} is more than {MAX_MEDIA}", "NumMedia")
    media = []
    for index in range(count):
        url = required(params, f"MediaUrl{index}", MAX_URL)
        media.append(MediaItem(url=url, content_type=text(params, f"MediaContentType{index}")))
    body = storable(params.get("Body", ""))
    if len(body) > MAX_BODY:
        raise InvalidInput(f"Body is longer than {MAX_BODY} characters", "Body")
    return InboundSms(
        message_sid=_sid(params),
        from_number=required(params, "From", MAX_ADDRESS),
        to_number=text(params, "To", MAX_ADDRESS),
        body=body,
        media=media,
        segments=number(params, "NumSegments"),
        opt_out_type=text(params, "OptOutType").upper() or None,
    )


def message_status(params: MultiDict[str], outbox_id: int | None) -> SmsStatusUpdate:
    status = (text(params, "MessageStatus") or text(params, "SmsStatus")).lower()
    if not status:
        raise InvalidInput("missing MessageStatus", "MessageStatus")
    return SmsStatusUpdate(
        message_sid=_sid(params),
        status=status,
        error_code=number(params, "ErrorCode"),
        outbox_id=outbox_id,
    )
