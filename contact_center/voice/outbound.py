"""The calls the application places (implements crm_core's OutboundCalls), beside the inbound desk.

Nothing places calls yet: the dialer fills these in. Until then a placed call that is answered
hears nothing and is hung up, and its progress and answering-machine verdict are only logged.
"""

from __future__ import annotations

import logging

from crm_core.voice import CallDecision, CallStatusUpdate, DecisionKind, MachineDetection, OutboundAnswer

log = logging.getLogger(__name__)


class OutboundCallDesk:
    """Implements :class:`crm_core.ports.OutboundCalls`."""

    async def call_answered(self, answer: OutboundAnswer) -> CallDecision:
        log.info(
            "outbound call %s answered (%s): hung up", answer.call_sid, answer.answered_by or "no detection"
        )
        return CallDecision(DecisionKind.HANG_UP)

    async def outbound_status(self, update: CallStatusUpdate) -> None:
        log.info("outbound call %s is %s", update.call_sid, update.status.value)

    async def machine_detected(self, detection: MachineDetection) -> None:
        log.info("outbound call %s answered by %s", detection.call_sid, detection.answered_by)
