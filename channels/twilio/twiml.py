"""Rendering the application's call decisions as TwiML with twilio's VoiceResponse."""

from __future__ import annotations

from functools import lru_cache

from twilio.twiml.voice_response import VoiceResponse

from crm_core.voice import CallDecision, DecisionKind

VOICE = "Polly.Joanna"


def render(decision: CallDecision, urls: VoiceUrls) -> str:
    """The TwiML of ``decision``; the answers repeat (same agents, same prompts), so they are kept."""
    return _render(
        decision.kind,
        decision.agent_id,
        decision.agent_identity,
        decision.agent_number,
        decision.queue_name,
        tuple(decision.say),
        decision.ring_seconds,
        urls,
    )


@lru_cache(maxsize=1024)
def _render(
    kind: DecisionKind,
    agent_id: int | None,
    agent_identity: str | None,
    agent_number: str | None,
    queue_name: str,
    say: tuple[str, ...],
    ring_seconds: int,
    urls: VoiceUrls,
) -> str:
    decision = CallDecision(kind, agent_id, agent_identity, agent_number, queue_name, list(say), ring_seconds)
    response = VoiceResponse()
    for text in decision.say:
        response.say(text, voice=VOICE)
    if decision.kind is DecisionKind.CONNECT_AGENT:
        dial = response.dial(action=urls.dial_action(decision.agent_id), timeout=decision.ring_seconds)
        if decision.agent_number:
            dial.number(
                decision.agent_number,
                status_callback_event="answered completed",
                status_callback=urls.agent_leg(decision.agent_id),
            )
        else:
            dial.client(
                decision.agent_identity,
                status_callback_event="answered completed",
                status_callback=urls.agent_leg(decision.agent_id),
            )
    elif decision.kind is DecisionKind.ENQUEUE:
        response.enqueue(decision.queue_name, action=urls.enqueue_action, wait_url=urls.queue_wait)
    elif decision.kind is DecisionKind.VOICEMAIL:
        response.record(
            action=urls.voicemail,
            max_length=300,
            play_beep=True,
            recording_status_callback=urls.recording_status,
        )
        response.hangup()
    elif decision.kind is DecisionKind.HANG_UP:
        response.hangup()
    return str(response)


def say_only(lines: list[str]) -> str:
    response = VoiceResponse()
    for text in lines:
        response.say(text, voice=VOICE)
    response.pause(length=10)
    return str(response)


class VoiceUrls:
    """The absolute URLs Twilio is told to call back, under the service's public base URL."""

    def __init__(self, public_base_url: str, prefix: str) -> None:
        self.base = public_base_url.rstrip("/") + prefix

    def dial_action(self, agent_id: int | None) -> str:
        return f"{self.base}/dial-action" + (f"?agent={agent_id}" if agent_id is not None else "")

    def connect(self, agent_id: int) -> str:
        return f"{self.base}/connect?agent={agent_id}"

    def agent_leg(self, agent_id: int | None) -> str:
        return f"{self.base}/agent-leg" + (f"?agent={agent_id}" if agent_id is not None else "")

    @property
    def enqueue_action(self) -> str:
        return f"{self.base}/enqueue-action"

    @property
    def queue_wait(self) -> str:
        return f"{self.base}/queue-wait"

    @property
    def voicemail(self) -> str:
        return f"{self.base}/voicemail"

    @property
    def recording_status(self) -> str:
        return f"{self.base}/recording-status"
