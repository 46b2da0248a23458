"""Twilio voice webhook parameters parsed into the core's call DTOs (the only place that knows them)."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from multidict import MultiDict

from crm_core.errors import InvalidInput
from crm_core.voice import (
    CallStatus,
    CallStatusUpdate,
    DialOutcome,
    InboundCall,
    QueueOutcome,
    QueueWait,
    Recording,
)


def _required(params: MultiDict[str], name: str) -> str:
    value = params.get(name, "").strip()
    if not value:
        raise InvalidInput(f"missing {name}", name)
    return value


def _int(params: MultiDict[str], name: str) -> int | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidInput(f"{name} is not a number: {raw!r}", name) from exc


def inbound_call(params: MultiDict[str]) -> InboundCall:
    return InboundCall(
        call_sid=_required(params, "CallSid"),
        from_number=params.get("From", "").strip(),
        to_number=params.get("To", "").strip(),
        caller_name=params.get("CallerName") or None,
    )


def call_status(params: MultiDict[str]) -> CallStatusUpdate:
    raw_status = _required(params, "CallStatus")
    try:
        status = CallStatus(raw_status)
    except ValueError as exc:
        raise InvalidInput(f"unknown CallStatus {raw_status!r}", "CallStatus") from exc
    stamp = params.get("Timestamp")
    try:
        timestamp = parsedate_to_datetime(stamp) if stamp else None
    except (TypeError, ValueError):
        timestamp = None
    return CallStatusUpdate(
        call_sid=_required(params, "CallSid"),
        status=status,
        sequence_number=_int(params, "SequenceNumber"),
        duration_seconds=_int(params, "CallDuration"),
        timestamp=timestamp,
        answered_by=params.get("AnsweredBy") or None,
        recording_url=params.get("RecordingUrl") or None,
        direction=params.get("Direction") or None,
        from_number=params.get("From", "").strip() or None,
        to_number=params.get("To", "").strip() or None,
    )


def dial_outcome(params: MultiDict[str], agent_id: int | None) -> DialOutcome:
    return DialOutcome(
        call_sid=_required(params, "CallSid"),
        agent_id=agent_id,
        status=params.get("DialCallStatus", "failed"),
        duration_seconds=_int(params, "DialCallDuration"),
    )


def queue_wait(params: MultiDict[str]) -> QueueWait:
    return QueueWait(
        call_sid=_required(params, "CallSid"),
        position=_int(params, "QueuePosition") or 1,
        queue_seconds=_int(params, "QueueTime") or 0,
    )


def queue_outcome(params: MultiDict[str]) -> QueueOutcome:
    return QueueOutcome(
        call_sid=_required(params, "CallSid"),
        result=params.get("QueueResult", "error"),
        queue_seconds=_int(params, "QueueTime"),
    )


def recording(params: MultiDict[str]) -> Recording:
    return Recording(
        call_sid=_required(params, "CallSid"),
        recording_url=_required(params, "RecordingUrl"),
        recording_sid=params.get("RecordingSid") or None,
        duration_seconds=_int(params, "RecordingDuration"),
    )
