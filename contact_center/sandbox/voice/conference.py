"""Conferences: rooms a call joins with ``<Dial><Conference>`` (or the REST API dials into), their
participants' state (muted, on hold, coaching), and the conference's status callbacks.

A conference starts (``init`` -> ``in-progress``, ``conference-start``) once two participants are
in it and one of them has ``startConferenceOnEnter``; it ends (``completed``, ``conference-end``)
when its last participant leaves, when one with ``endConferenceOnExit`` leaves or is kicked, or
through the API. A participant that leaves (kicked, the conference over, its time limit) goes on
with the TwiML after its ``<Dial>``; one the API dialled has none, so its call ends.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from contact_center.sandbox.model import Call, CallInterrupted, TwilioApiError, new_sid, rfc2822, utcnow
from contact_center.sandbox.twiml import Verb
from contact_center.sandbox.voice.conference_music import play_while
from contact_center.sandbox.voice.flow import resolve

if TYPE_CHECKING:
    from contact_center.sandbox.voice.calls import Telephony

CONFERENCE_EVENTS = frozenset(
    {"start", "end", "join", "leave", "mute", "hold", "modify", "speaker", "announcement"}
)
DEFAULT_EVENTS = frozenset({"start", "end"})
MAX_PARTICIPANTS = 250


@dataclass(slots=True, eq=False)
class Participant:
    """One call in a conference (or being dialled into one by the API)."""

    call: Call
    label: str | None = None
    muted: bool = False
    hold: bool = False
    coaching: bool = False
    call_sid_to_coach: str | None = None
    start_conference_on_enter: bool = True
    end_conference_on_exit: bool = False
    joined: bool = False
    wait_url: str | None = None
    wait_method: str = "POST"
    hold_url: str | None = None
    hold_method: str = "GET"
    date_created: datetime = field(default_factory=utcnow)
    date_updated: datetime = field(default_factory=utcnow)
    left: asyncio.Event = field(default_factory=asyncio.Event)
    leave_reason: str = ""

    @property
    def status(self) -> str:
        """Twilio's participant status: queued, connecting, ringing, connected, complete, failed."""
        if self.joined:
            return "complete" if self.left.is_set() else "connected"
        return {"queued": "queued", "ringing": "ringing"}.get(
            self.call.status, "failed" if self.call.is_final else "connecting"
        )

    def touch(self) -> None:
        self.date_updated = utcnow()


@dataclass(slots=True, eq=False)
class Conference:
    sid: str
    account_sid: str
    friendly_name: str
    status: str = "init"
    participants: dict[str, Participant] = field(default_factory=dict)
    """Call SID -> participant, in the order they joined or were dialled (the API's, while ringing)."""
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_events: frozenset[str] = DEFAULT_EVENTS
    max_participants: int = MAX_PARTICIPANTS
    sequence: int = 0
    last_callback: asyncio.Task[None] | None = None
    reason_ended: str | None = None
    joined_once: bool = False
    call_sid_ending: str | None = None
    date_created: datetime = field(default_factory=utcnow)
    date_updated: datetime = field(default_factory=utcnow)

    @property
    def active(self) -> bool:
        return self.status != "completed"

    def present(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.joined and not p.left.is_set()]

    def find(self, key: str) -> Participant | None:
        """A participant by its call's SID or its label."""
        found = self.participants.get(key)
        if found is None:
            found = next((p for p in self.participants.values() if p.label and p.label == key), None)
        return found if found is not None and not found.left.is_set() else None


# -- finding and opening rooms -----------------------------------------------------------------


def is_conference_sid(text: str) -> bool:
    return len(text) == 34 and text.startswith("CF") and all(c in "0123456789abcdef" for c in text[2:])


def room(t: Telephony, name: str) -> Conference:
    """The account's conference of that name not yet over, or a new one (``init``)."""
    for conference in t.sb.conferences.values():
        if conference.friendly_name == name and conference.active:
            return conference
    conference = Conference(new_sid("CF"), t.sb.config.account_sid, name)
    t.sb.conferences[conference.sid] = conference
    return conference


def adopt_settings(
    conference: Conference,
    callback: str | None,
    method: str,
    events: frozenset[str] | None,
    max_participants: int | None,
) -> None:
    """The conference's callback and size come from the first participant that names them."""
    if callback and conference.status_callback is None:
        conference.status_callback, conference.status_callback_method = callback, method
        conference.status_events = events if events else DEFAULT_EVENTS
    if max_participants is not None and not conference.participants:
        conference.max_participants = max(1, min(MAX_PARTICIPANTS, max_participants))


def parse_events(value: str) -> frozenset[str]:
    events = frozenset(value.replace(",", " ").split())
    unknown = events - CONFERENCE_EVENTS
    if unknown:
        raise TwilioApiError(21626, f"Invalid ConferenceStatusCallbackEvent: {', '.join(sorted(unknown))}")
    return events


# -- the conference's status callbacks ---------------------------------------------------------


def notify(
    t: Telephony,
    conference: Conference,
    event: str,
    participant: Participant | None = None,
    extra: dict[str, str] | None = None,
) -> None:
    """``participant-join``, ``conference-end``...: sent in order, numbered by SequenceNumber."""
    kind = event.removeprefix("conference-").removeprefix("participant-")
    kind = {"unmute": "mute", "unhold": "hold"}.get(kind, kind).split("-")[0]
    url = conference.status_callback
    if url is None or kind not in conference.status_events or t.sb.closing:
        return
    conference.sequence += 1
    params = {
        "AccountSid": conference.account_sid,
        "ConferenceSid": conference.sid,
        "FriendlyName": conference.friendly_name,
        "StatusCallbackEvent": event,
        "SequenceNumber": str(conference.sequence),
        "Timestamp": rfc2822(utcnow()) or "",
    }
    if participant is not None:
        params.update(
            CallSid=participant.call.sid,
            Muted=_flag(participant.muted),
            Hold=_flag(participant.hold),
            Coaching=_flag(participant.coaching),
            EndConferenceOnExit=_flag(participant.end_conference_on_exit),
            StartConferenceOnEnter=_flag(participant.start_conference_on_enter),
        )
        if participant.label:
            params["ParticipantLabel"] = participant.label
        if participant.coaching and participant.call_sid_to_coach:
            params["CallSidToCoach"] = participant.call_sid_to_coach
    params.update(extra or {})
    previous = conference.last_callback
    owner = participant.call if participant is not None else None
    if owner is not None:
        owner.pending_callbacks += 1  # counted at once: the call is not settled until it is sent
    conference.last_callback = t.sb.spawn(
        _send(t, url, conference.status_callback_method, params, previous, owner, event)
    )


async def _send(
    t: Telephony,
    url: str,
    method: str,
    params: dict[str, str],
    previous: asyncio.Task[None] | None,
    owner: Call | None,
    event: str,
) -> None:
    try:
        if previous is not None:
            await asyncio.wait({previous})
        await t.sb.webhook(url, params, method, what=f"conference {event}", call=owner)
    finally:
        if owner is not None:
            owner.pending_callbacks -= 1


def _flag(value: bool) -> str:
    return "true" if value else "false"


# -- joining, leaving, ending ------------------------------------------------------------------


def enter(t: Telephony, conference: Conference, participant: Participant) -> None:
    """The participant is in: ``participant-join``, then ``conference-start`` if it starts now."""
    participant.joined = True
    conference.joined_once = True
    participant.touch()
    conference.participants.pop(participant.call.sid, None)
    conference.participants[participant.call.sid] = participant
    conference.date_updated = utcnow()
    participant.call.note("joined conference", conference_sid=conference.sid, name=conference.friendly_name)
    notify(t, conference, "participant-join", participant)
    present = conference.present()
    if (
        conference.status == "init"
        and len(present) >= 2
        and any(p.start_conference_on_enter for p in present)
    ):
        conference.status = "in-progress"
        notify(t, conference, "conference-start")
    if conference.status == "init" and participant.wait_url:
        waiting = play_while(
            t,
            participant,
            participant.wait_url,
            participant.wait_method,
            "conference wait",
            lambda: conference.status == "init",
        )
        t.sb.spawn(waiting, name=f"conference wait {participant.call.sid}")


def leave(
    t: Telephony, conference: Conference, participant: Participant, reason: str, kicked: bool = False
) -> None:
    """The participant leaves (hung up, kicked, redirected, time limit); the conference may end."""
    if participant.left.is_set():
        return
    participant.leave_reason = reason
    participant.left.set()
    participant.touch()
    if not participant.joined:
        # Kept: the API's dialled call finds it and joins nothing. A room nobody ever entered
        # and nobody is being dialled into was never a conference at Twilio: it is forgotten.
        dialling = any(not p.left.is_set() for p in conference.participants.values())
        if not conference.joined_once and not dialling:
            t.sb.conferences.pop(conference.sid, None)
        return
    conference.participants.pop(participant.call.sid, None)
    participant.call.note("left conference", conference_sid=conference.sid, reason=reason)
    notify(t, conference, "participant-leave", participant, {"Reason": reason})
    if not conference.active:
        return
    if participant.end_conference_on_exit:
        how = "kicked" if kicked else "left"
        end(t, conference, f"participant-with-end-conference-on-exit-{how}", participant)
    elif not conference.present():
        end(t, conference, "last-participant-kicked" if kicked else "last-participant-left", participant)


def end(t: Telephony, conference: Conference, reason: str, by: Participant | None = None) -> None:
    """The conference is over: everyone still in leaves (and goes on after its Dial), calls the
    API is still dialling into it are hung up, then ``conference-end``."""
    if not conference.active:
        return
    conference.status = "completed"
    conference.reason_ended = reason
    conference.call_sid_ending = by.call.sid if by is not None else None
    conference.date_updated = utcnow()
    for participant in list(conference.participants.values()):
        if participant.left.is_set():
            continue
        leave(t, conference, participant, "conference ended")
        if not participant.joined:
            t.hangup(participant.call, by="conference", status="canceled")
    extra = {"ReasonConferenceEnded": reason, "Reason": _reason_text(reason, by)}
    if by is not None:
        extra["CallSidEndingConference"] = by.call.sid
        if by.label:
            extra["ParticipantLabelEndingConference"] = by.label
    notify(t, conference, "conference-end", None, extra)


def _reason_text(reason: str, by: Participant | None) -> str:
    who = f"Participant {by.call.sid}" if by is not None else "Conference"
    return {
        "conference-ended-via-api": "Conference ended via API",
        "last-participant-left": "Last participant left",
        "last-participant-kicked": "Last participant kicked",
    }.get(reason, f"{who} with endConferenceOnExit left the conference")


# -- the <Conference> noun ---------------------------------------------------------------------


def _participant_from_noun(call: Call, noun: Verb, doc_url: str | None) -> Participant:
    return Participant(
        wait_url=resolve(doc_url, noun.get("waitUrl")),
        wait_method=noun.get("waitMethod", "POST").upper(),
        call=call,
        label=noun.get("participantLabel") or None,
        muted=noun.flag("muted"),
        coaching=bool(noun.get("coach")),
        call_sid_to_coach=noun.get("coach") or None,
        start_conference_on_enter=noun.flag("startConferenceOnEnter", True),
        end_conference_on_exit=noun.flag("endConferenceOnExit"),
    )


def _pending(t: Telephony, call: Call) -> tuple[Conference, Participant] | None:
    """The participant the API is dialling on ``call``, with its conference."""
    for conference in t.sb.conferences.values():
        participant = conference.participants.get(call.sid)
        if participant is not None and not participant.joined and participant.call is call:
            return conference, participant
    return None


async def join(
    t: Telephony, call: Call, noun: Verb, doc_url: str | None, time_limit: float
) -> tuple[str, CallInterrupted | None]:
    """``<Dial><Conference>``: stay in the room until hung up, kicked, redirected, the conference
    ends or the time limit; the Dial's outcome (DialCallStatus) and any interruption."""
    pending = _pending(t, call)
    if pending is not None:
        conference, participant = pending
    elif is_conference_sid(noun.text):
        # The API dialled this call into that conference, which let it go before it answered.
        call.note("conference over", conference_sid=noun.text)
        return "failed", None
    else:
        conference = room(t, noun.text)
        participant = _participant_from_noun(call, noun, doc_url)
        events = noun.get("statusCallbackEvent")
        adopt_settings(
            conference,
            resolve(doc_url, noun.get("statusCallback")),
            noun.get("statusCallbackMethod", "POST").upper(),
            frozenset(events.replace(",", " ").split()) & CONFERENCE_EVENTS if events else None,
            int(noun.number("maxParticipants", MAX_PARTICIPANTS)),
        )
        if noun.get("record") or noun.get("beep"):
            call.note("not simulated", detail="conference beeps and recording")
    if not conference.active or participant.left.is_set():
        call.note("conference over", conference_sid=conference.sid)
        return "failed", None
    if len(conference.present()) >= conference.max_participants:
        call.note("conference full", conference_sid=conference.sid, max=conference.max_participants)
        leave(t, conference, participant, "conference full")
        return "failed", None
    coached = participant.call_sid_to_coach
    if participant.coaching and (coached is None or conference.find(coached) is None):
        call.note("coach ignored", detail=f"{coached} is not in the conference")
        participant.coaching, participant.call_sid_to_coach = False, None
    enter(t, conference, participant)
    try:
        if not await t.wait(call, time_limit, participant.left):
            leave(t, conference, participant, "time limit reached")
    except CallInterrupted as exc:
        what = exc.interrupt
        leave(
            t,
            conference,
            participant,
            "participant hung up" if what.kind == "hangup" else "participant modified",
        )
        return "answered", exc
    return "answered", None


# -- changes through the API ---------------------------------------------------------------------


def change(
    t: Telephony,
    conference: Conference,
    participant: Participant,
    *,
    muted: bool | None = None,
    hold: bool | None = None,
    hold_music: tuple[str, str] | None = None,
    coaching: bool | None = None,
    call_sid_to_coach: str | None = None,
    end_conference_on_exit: bool | None = None,
) -> None:
    """``POST Participants/{CallSid}.json``: mute, hold, coach; each change is announced
    (``participant-mute``/``-unmute``, ``-hold``/``-unhold``, ``-modify``) once it is made."""
    will_coach = coaching if coaching is not None else participant.coaching
    if will_coach and (coaching or call_sid_to_coach is not None):
        coached = call_sid_to_coach or participant.call_sid_to_coach
        if coached is None:
            raise TwilioApiError(20001, "CallSidToCoach is required when Coaching is true")
        target = conference.find(coached)
        if target is None or target is participant:
            raise TwilioApiError(
                20001, f"CallSidToCoach {coached} is not another participant of the conference"
            )
        call_sid_to_coach = target.call.sid
    if hold_music is not None:  # checked: now the change is made
        participant.hold_url, participant.hold_method = hold_music
    announced = participant.joined
    if muted is not None and muted != participant.muted:
        participant.muted = muted
        if announced:
            notify(t, conference, "participant-mute" if muted else "participant-unmute", participant)
    if hold is not None and hold != participant.hold:
        participant.hold = hold
        if announced:
            notify(t, conference, "participant-hold" if hold else "participant-unhold", participant)
        if hold and announced and participant.hold_url:
            music = play_while(
                t,
                participant,
                participant.hold_url,
                participant.hold_method,
                "hold music",
                lambda: participant.hold,
            )
            t.sb.spawn(music, name=f"hold {participant.call.sid}")
    modified = False
    if coaching is not None and coaching != participant.coaching:
        participant.coaching, modified = coaching, True
        if not coaching:
            participant.call_sid_to_coach = None
    if (
        call_sid_to_coach is not None
        and participant.coaching
        and call_sid_to_coach != participant.call_sid_to_coach
    ):
        participant.call_sid_to_coach, modified = call_sid_to_coach, True
    if end_conference_on_exit is not None and end_conference_on_exit != participant.end_conference_on_exit:
        participant.end_conference_on_exit, modified = end_conference_on_exit, True
    if modified and announced:
        notify(t, conference, "participant-modify", participant)
    participant.touch()


def kick(t: Telephony, conference: Conference, participant: Participant) -> None:
    """``DELETE Participants/{CallSid}.json``: out of the room (its TwiML goes on after the
    ``<Dial>``); one the API is still dialling is hung up."""
    if participant.joined:
        leave(t, conference, participant, "participant kicked", kicked=True)
        return
    leave(t, conference, participant, "participant kicked")
    t.hangup(participant.call, by="api", status="canceled")


async def follow_dialled(t: Telephony, conference: Conference, participant: Participant) -> None:
    """An API-dialled participant whose call ends before it joins (busy, unanswered) is gone."""
    await participant.call.ended.wait()
    if not participant.joined:
        leave(t, conference, participant, "call ended")


async def announce(
    t: Telephony, conference: Conference, url: str, method: str, participant: Participant | None = None
) -> None:
    """An ``AnnounceUrl``: its TwiML is requested (signed) and "played", then ``announcement-end``
    (``announcement-fail`` when the request fails)."""
    params = {"AccountSid": conference.account_sid, "ConferenceSid": conference.sid}
    if participant is not None:
        params["CallSid"] = participant.call.sid
    owner = participant.call if participant is not None else None
    result = await t.sb.webhook(url, params, method, what="conference announcement", call=owner)
    if result.ok:
        await t.sb.sleep(t.sb.config.play_seconds)
    event = "announcement-end" if result.ok else "announcement-fail"
    notify(t, conference, event, participant, {"AnnounceUrl": url})
