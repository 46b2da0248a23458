"""What the sandbox is told: credentials, phone numbers, outcome probabilities and the speed of time."""

from __future__ import annotations

import math
import random
import secrets
from dataclasses import dataclass, field

DEFAULT_ACCOUNT_SID = "AC5a4db0c5" + "0" * 24
"""Shaped as Twilio's (AC and 32 hex digits); the service passes its own account SID."""
DEFAULT_AUTH_TOKEN = "sandbox-auth-token"  # noqa: S105 - the sandbox's own, public, demo secret
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")


@dataclass(frozen=True, slots=True)
class NumberConfig:
    """One phone number the sandbox owns, and the webhooks Twilio would call for it."""

    voice_url: str = ""
    voice_status_callback: str | None = None
    sms_url: str = ""
    voice_method: str = "POST"
    sms_method: str = "POST"
    voice_status_events: tuple[str, ...] = ("completed",)
    """A Twilio phone number's status callback has no event setting: only the final event."""


@dataclass(frozen=True, slots=True)
class Lognormal:
    """A simulated duration drawn from a lognormal law: ``mean`` seconds on average; ``spread`` is
    the standard deviation of its logarithm (0: always ``mean``; 0.5: most within x0.4..x2.5)."""

    mean: float
    spread: float = 0.5

    def draw(self, rng: random.Random) -> float:
        if self.mean <= 0:
            return 0.0
        if self.spread <= 0:
            return self.mean
        return rng.lognormvariate(math.log(self.mean) - self.spread**2 / 2, self.spread)


Duration = Lognormal | tuple[float, float]
"""A lognormal law, or ``(min, max)`` drawn uniformly (the older form)."""


@dataclass(frozen=True, slots=True)
class CallOutcomes:
    """How outbound calls to phone numbers end: relative weights, simulated durations (seconds),
    answering machine detection's errors, and the account's calls-per-second limit."""

    human: float = 0.6
    machine: float = 0.2
    busy: float = 0.05
    no_answer: float = 0.1
    failed: float = 0.05
    fax: float = 0.0
    ring_seconds: Duration = Lognormal(7.0, 0.5)
    talk_seconds: Duration = Lognormal(60.0, 0.8)
    amd_seconds: Duration = Lognormal(2.5, 0.3)
    """How long detection takes to tell a human, the start of a machine or a fax."""
    greeting_seconds: Duration = Lognormal(9.0, 0.4)
    """A machine's greeting: ``DetectMessageEnd`` answers when it ends."""
    human_as_machine: float = 0.0
    """Share of humans that detection calls machines."""
    machine_as_human: float = 0.0
    """Share of machines that detection passes as humans."""
    machine_end_beep: float = 0.8
    machine_end_silence: float = 0.15
    machine_end_other: float = 0.05
    """How a machine's greeting ends (relative weights): a beep, silence, or something else."""
    calls_per_second: float = 1.0
    """API-created calls start at this rate (per simulated second); the others wait ``queued``."""
    fail_with_20429_rate: float = 0.0
    """Share of ``POST Calls.json`` refused with 429 / 20429 Too Many Requests."""

    def weights(self) -> dict[str, float]:
        return {
            "human": self.human,
            "machine": self.machine,
            "busy": self.busy,
            "no-answer": self.no_answer,
            "failed": self.failed,
            "fax": self.fax,
        }

    def machine_ends(self) -> dict[str, float]:
        return {
            "machine_end_beep": self.machine_end_beep,
            "machine_end_silence": self.machine_end_silence,
            "machine_end_other": self.machine_end_other,
        }


@dataclass(frozen=True, slots=True)
class MessageOutcomes:
    """How outbound messages end (relative weights) and how long each hop takes (simulated seconds)."""

    delivered: float = 0.97
    undelivered: float = 0.02
    failed: float = 0.01
    send_seconds: float = 1.0
    deliver_seconds: float = 2.0
    undelivered_error_codes: tuple[int, ...] = (30003, 30005, 30006, 30007)
    failed_error_codes: tuple[int, ...] = (30008,)
    out_of_order: bool = False
    """Send the status callbacks of a message newest first (delivered before sent), to test ordering."""

    def weights(self) -> dict[str, float]:
        return {"delivered": self.delivered, "undelivered": self.undelivered, "failed": self.failed}


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Everything the sandbox needs: built by hand in tests, or by the application that runs it
    from its own settings (the sandbox knows nothing of them)."""

    account_sid: str = DEFAULT_ACCOUNT_SID
    auth_token: str = DEFAULT_AUTH_TOKEN
    numbers: dict[str, NumberConfig] = field(default_factory=dict)
    time_scale: float = 1.0
    """Every simulated wait lasts ``seconds * time_scale`` real seconds: 0.01 runs 100 times faster."""
    outcomes: CallOutcomes = field(default_factory=CallOutcomes)
    messages: MessageOutcomes = field(default_factory=MessageOutcomes)
    seed: int | None = None
    webhook_timeout: float = 15.0
    """Real seconds the sandbox waits for a webhook answer before recording error 11200."""
    public_url: str = ""
    """Where the sandbox is reached (used in RecordingUrl); empty: taken from the requests it receives."""
    client_voice_url: str = ""
    """TwiML App Voice URL, requested when a simulated agent browser places a call."""
    client_auto_answer_seconds: float | None = None
    """When set, a ringing browser client answers by itself after these simulated seconds."""
    callback_jitter_seconds: float = 0.0
    """Above 0: call status callbacks are sent concurrently, each after a random delay up to this
    (simulated seconds), so they may arrive out of order as Twilio warns they can."""
    speech_words_per_second: float = 2.5
    play_seconds: float = 5.0
    """Simulated length of one <Play> of an audio file."""
    record_seconds: float = 5.0
    """How long a simulated caller speaks when <Record> asks them to."""
    queue_wait_period_seconds: float = 5.0
    """Least simulated time between two requests of an <Enqueue> waitUrl."""
    max_queue_size: int = 100
    magic_numbers: bool = True
    """Honour Twilio's magic test numbers (+15005550001 invalid, +15005550004 opted out, ...)."""
    control_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    """Lets a caller drive ``/sandbox/...`` (``Authorization: Bearer`` or ``X-Sandbox-Token``);
    a new random one unless given."""
