"""Answering machine detection as Twilio runs it: what it concludes, and when.

``Enable`` answers once it has heard enough to tell a human, the start of a machine or a fax
(``amd_seconds``); ``DetectMessageEnd`` waits, for a machine, until its greeting ends (a beep,
silence, or something else). Detection may be wrong (``human_as_machine``, ``machine_as_human``)
and gives up with ``unknown`` at ``MachineDetectionTimeout``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contact_center.sandbox.engine import Sandbox

ANSWERED_BY = (
    "human",
    "machine_start",
    "machine_end_beep",
    "machine_end_silence",
    "machine_end_other",
    "fax",
    "unknown",
)
CALLEES = ("human", "machine", "fax")
BEEP_SECONDS = 0.5
SILENCE_SECONDS = 5.0
"""Twilio's MachineDetectionSilenceTimeout default: how long a silent end is waited for."""


@dataclass(frozen=True, slots=True)
class Detection:
    answered_by: str
    seconds: float
    """Simulated seconds from the answer to the result (MachineDetectionDuration)."""


def _conclusion(sb: Sandbox, callee: str, mode: str) -> str:
    outcomes = sb.config.outcomes
    if callee == "fax":
        return "fax"
    if callee == "human":
        if sb.rng.random() >= outcomes.human_as_machine:
            return "human"
        return "machine_start" if mode == "Enable" else "machine_end_other"
    if sb.rng.random() < outcomes.machine_as_human:
        return "human"
    return "machine_start" if mode == "Enable" else sb.pick(outcomes.machine_ends())


def detect(sb: Sandbox, callee: str, mode: str, timeout: float, forced: str | None = None) -> Detection:
    """What detection of ``callee`` concludes in ``mode`` (or ``forced``), and after how long."""
    outcomes = sb.config.outcomes
    answered_by = forced or _conclusion(sb, callee, mode)
    seconds = sb.between(outcomes.amd_seconds)
    if answered_by.startswith("machine_end"):
        greeting = sb.between(outcomes.greeting_seconds)
        end = SILENCE_SECONDS if answered_by == "machine_end_silence" else BEEP_SECONDS
        seconds = max(seconds, greeting + end)
    if answered_by == "unknown" or seconds > timeout:
        return Detection("unknown", timeout)
    return Detection(answered_by, seconds)
