"""The project's own Twilio: a REST API and a phone network on loopback, so nothing needs an account.

Simulated
- REST 2010-04-01 with Basic auth (AccountSid:AuthToken; 401/20003, wrong account 404/20404):
  ``Calls.json`` create/list, ``Calls/{Sid}.json`` fetch/update (Url, Twiml, Status=canceled|completed)
  /delete, ``Messages.json`` create/list, ``Messages/{Sid}.json`` fetch/redact (``Body=""``)/delete,
  ``Recordings.json`` list, ``Recordings/{Sid}(.json|.wav|.mp3)`` fetch/delete (deleting a call or
  text not over: 409/20009), ``Calls/{Sid}/Recordings.json`` start mid-call/list and
  ``Calls/{Sid}/Recordings/{Sid|Twilio.CURRENT}.json`` fetch/pause/resume/stop/delete (``Record=true``
  on create records from the answer; ``duration`` -1 until over), ``Queues.json``,
  ``Queues/{Sid}.json``, ``Queues/{Sid}/Members(/{CallSid|Front}).json`` list/fetch and dequeue to a
  ``Url``, ``Messages/{Sid}/Media(/{Sid}).json`` list/fetch; a create with ``ApplicationSid`` runs
  the TwiML App's URL (``client_voice_url``; none: 21205), ``SendDigits`` turns machine detection
  off; ``<Reject>`` ends the call no-answer, ``reason="busy"`` busy;
  Twilio's JSON shapes (``duration`` empty for an unanswered call, ``start_time`` from when it was
  dialled, segments as Twilio counts them), 201 on create, 204 on delete, errors ``{code, message,
  more_info, status}`` (21211 invalid To, 21610 opted out, 21602/21603/21604/21606/21617, 20404,
  405/20004, Twilio's magic +1500555000x numbers).
- Inbound calls (``POST /sandbox/calls``): signed voice webhooks, TwiML Say, Play, Pause, Gather
  (digits or ``speech:`` text, with barge-in), Dial with Client/Number (simultaneous ringing, action,
  DialCallStatus/DialCallSid/DialCallDuration/DialBridged, timeLimit, noun statusCallback), Dial
  Queue (dequeue), Enqueue (waitUrl loop with queue parameters, Leave, action with QueueResult),
  Record (action, recordingStatusCallback), Redirect, Hangup, Reject; relative URLs resolved
  against the document's URL; end of document hangs up. Any answer but Reject picks the call up
  (an empty one too); a document breaking TwiML's schema (unknown verb, ``<say>``, a verb where a
  noun belongs) runs none of its verbs: 12200 in the debugger, and the call ends as on a 12100.
- Conferences: ``<Dial><Conference>`` (startConferenceOnEnter, endConferenceOnExit, muted, coach,
  participantLabel, maxParticipants, waitUrl (requested while the room waits to start),
  statusCallback with the events start end join leave mute hold modify announcement; beep and
  record accepted, not heard) and the REST ``Conferences.json`` list, ``Conferences/{Sid}.json``
  fetch, ``Status=completed`` and AnnounceUrl, ``Participants.json`` list and create (dials a
  number or client like ``Calls.json``: pace, outcomes, AMD; then joins it),
  ``Participants/{CallSid|Label}.json`` fetch, update (Muted, Hold with HoldUrl requested while
  held, Coaching, CallSidToCoach, EndConferenceOnExit, AnnounceUrl) and delete. A room starts
  (``init`` -> ``in-progress``) once two are in it and one starts it on enter; it ends when the
  last leaves, one with endConferenceOnExit leaves or is kicked, or through the API; a participant
  that leaves goes on after its Dial (action DialCallStatus ``answered``). Conference status
  callbacks are signed, in order, SequenceNumber from 1.
- Status callbacks for the requested events (a number's: the final one, as at Twilio, unless its
  ``voice_status_events`` says otherwise) with SequenceNumber, Timestamp, CallDuration,
  SipResponseCode, CallbackSource; optionally jittered so they arrive out of order.
- Outbound calls: outcomes from seeded probabilities (human, machine, fax, busy, no-answer,
  failed) or scripted per number, ring/talk/detection/greeting durations from lognormal laws;
  API-created calls start at the account's calls-per-second rate (the others wait ``queued``,
  ``queue_time`` says how long) and a create can be refused with 429 / 20429; MachineDetection
  (sync AnsweredBy or AsyncAmd callback) answers every AnsweredBy value, with the configured
  mistakes, ``DetectMessageEnd`` after the greeting, ``unknown`` at MachineDetectionTimeout, and
  MachineDetectionDuration; calls to ``client:<identity>`` ring the simulated browser.
- Agent browsers: ``/sandbox/clients/{identity}/ringing|answer|reject|calls``; hang up either side.
- Driving it (JSON under ``/sandbox/``): ``POST calls`` {from, to, digits?, hangup_after_seconds?,
  caller_name?, record_seconds?}, ``GET calls``, ``GET calls/{sid}`` (state and event log),
  ``POST calls/{sid}/hangup`` {side?: caller|agent}, ``POST calls/{sid}/digits``, ``POST sms``
  {from, to, body, media_urls?}, ``GET messages[/{sid}]``, ``POST messages/outcomes`` {to, outcome,
  error_code?} (how texts to a number end), ``POST calls/outcomes`` {to, outcome, answered_by?}
  (how calls to a number end), ``POST calls/throttle`` {count} (the next creates answer 20429),
  ``GET queues``, ``GET conferences``, ``GET debugger``,
  ``POST reset`` {seed?}, ``GET /sandbox`` (account, numbers, REST base URL). Every ``/sandbox/``
  route needs the control token (``Authorization: Bearer`` or ``X-Sandbox-Token``;
  ``SandboxConfig.control_token``) or a grant of the mounting application's sign-in
  (``create_sandbox_app(config, authorize)``): everything, or one agent browser's own calls.
- Messages: queued (accepted with a MessagingServiceSid) -> sent -> delivered / undelivered /
  failed with ErrorCode, one signed status callback per status (optionally newest first); inbound
  SMS webhooks with media, STOP/START/HELP keywords tracked per sender, ``<Message>`` replies.
- Every webhook is form-encoded and signed (``X-Twilio-Signature`` by twilio's RequestValidator);
  failures (refused, 4xx/5xx, timeout, bad TwiML) are logged on the call and in
  ``/sandbox/debugger`` as 11200/12100/12200, and the call hangs up. Waits are scaled by ``time_scale``.

Not simulated
- Sip, Connect/Stream, Pay, Refer, Start/Siprec, Sms inside voice TwiML, audio,
  transcription, Dial ``record``/``hangupOnStar``/``answerOnBridge`` and the nouns' ``url``
  whispers (Client, Number, Queue), TaskRouter, FallbackUrl, webhook retries and ``#ct=..``
  connection overrides, SharedKey HMAC-SHA256 signatures, API keys as credentials, Messaging
  Service sender pools (the first configured number sends), scheduled texts, creating or deleting
  queues, media content, the digits SendDigits plays, conference audio (beeps, speaker events,
  recording), messaging rate limits, prices.
- Timestamps are real UTC time; durations are simulated seconds.

A package of its own: it imports nothing of ``crm_core``, ``channels`` or the rest of
``contact_center`` (an import-linter contract holds it). The service adapts its settings into a
:class:`SandboxConfig` and mounts it (``contact_center.twilio_account``); ``contact-center
sandbox serve|call|sms`` is ``contact_center.sandbox_cli``.
"""

from __future__ import annotations

from contact_center.sandbox.app import create_sandbox_app
from contact_center.sandbox.config import (
    CallOutcomes,
    Duration,
    Lognormal,
    MessageOutcomes,
    NumberConfig,
    SandboxConfig,
)
from contact_center.sandbox.engine import Sandbox
from contact_center.sandbox.keys import SANDBOX

__all__ = [
    "SANDBOX",
    "CallOutcomes",
    "Duration",
    "Lognormal",
    "MessageOutcomes",
    "NumberConfig",
    "Sandbox",
    "SandboxConfig",
    "create_sandbox_app",
]
