"""Twilio voice webhook parameters parsed into the core's call DTOs (the only place that knows them).

Every value is checked by :mod:`channels.twilio.form` (SIDs, bounded numbers and text, dates);
what fails is :class:`InvalidInput`, answered 400 before the application sees anything.
"""

from __future__ import annotations

from multidict import MultiDict

from channels.twilio.form import MAX_URL, number, optional_sid, required, sid, text, timestamp
from crm_core.errors import InvalidInput
from crm_core.rules.call_status import TERMINAL
from crm_core.voice import (
    CallStatus,
    CallStatusUpdate,
    DialOutcome,
    InboundCall,
    MachineDetection,
    OutboundAnswer,
    QueueOutcome,
    QueueWait,
    Recording,
)

CALL = ("CA",)


def call_sid(params: MultiDict[str]) -> str:
    return sid(params, "CallSid", CALL)


def inbound_call(params: MultiDict[str]) -> InboundCall:
    return InboundCall(
        call_sid=call_sid(params),
        from_number=text(params, "From"),
        to_number=text(params, "To"),
        caller_name=text(params, "CallerName") or None,
    )


def call_status(params: MultiDict[str]) -> CallStatusUpdate:
    raw_status = required(params, "CallStatus")
    try:
        status = CallStatus(raw_status)
    except ValueError as exc:
        raise InvalidInput(f"unknown CallStatus {raw_status[:40]!r}", "CallStatus") from exc
    return CallStatusUpdate(
        call_sid=call_sid(params),
        status=status,
        sequence_number=number(params, "SequenceNumber"),
        duration_seconds=number(params, "CallDuration"),
        timestamp=timestamp(params, "Timestamp"),
        answered_by=text(params, "AnsweredBy") or None,
        recording_url=text(params, "RecordingUrl", MAX_URL) or None,
        direction=text(params, "Direction") or None,
        from_number=text(params, "From") or None,
        to_number=text(params, "To") or None,
    )


def agent_leg(params: MultiDict[str]) -> tuple[str | None, CallStatusUpdate]:
    """The caller's CallSid (None for a leg with no parent) and the agent leg's progress."""
    return optional_sid(params, "ParentCallSid", CALL), call_status(params)


def dial_outcome(params: MultiDict[str], agent_id: int | None) -> DialOutcome:
    return DialOutcome(
        call_sid=call_sid(params),
        agent_id=agent_id,
        status=text(params, "DialCallStatus") or "failed",
        duration_seconds=number(params, "DialCallDuration"),
        caller_gone=text(params, "CallStatus") in TERMINAL,
    )


def queue_wait(params: MultiDict[str]) -> QueueWait:
    return QueueWait(
        call_sid=call_sid(params),
        position=number(params, "QueuePosition") or 1,
        queue_seconds=number(params, "QueueTime") or 0,
    )


def queue_outcome(params: MultiDict[str]) -> QueueOutcome:
    return QueueOutcome(
        call_sid=call_sid(params),
        result=text(params, "QueueResult") or "error",
        queue_seconds=number(params, "QueueTime"),
    )


def recording(params: MultiDict[str]) -> Recording:
    return Recording(
        call_sid=call_sid(params),
        recording_url=required(params, "RecordingUrl", MAX_URL),
        recording_sid=text(params, "RecordingSid", 64) or None,
        duration_seconds=number(params, "RecordingDuration"),
    )


def outbound_answer(params: MultiDict[str]) -> OutboundAnswer:
    return OutboundAnswer(
        call_sid=call_sid(params),
        to_number=text(params, "To"),
        from_number=text(params, "From"),
        answered_by=text(params, "AnsweredBy") or None,
    )


def machine_detection(params: MultiDict[str]) -> MachineDetection:
    return MachineDetection(
        call_sid=call_sid(params),
        answered_by=text(params, "AnsweredBy") or "unknown",
        detection_ms=number(params, "MachineDetectionDuration"),
    )
