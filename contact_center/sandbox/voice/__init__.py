"""Voice: inbound and outbound calls, the TwiML they run, browser clients, queues and bridges.

- ``calls``: :class:`Telephony`, every leg's life (start, ring, answer, machine detection, agent
  browsers, hang-up, live update) and the wait every verb makes;
- ``callbacks``: status callbacks and the one-off ones (AMD, recordings);
- ``runner``: requesting TwiML documents and executing their verbs; ``flow``: where the TwiML
  continues (:class:`~contact_center.sandbox.voice.flow.Next`) and what every verb shares;
- the verbs: ``prompts`` (Say, Play, Pause, Redirect, Hangup, Reject), ``gather``, ``record``,
  ``dial`` (ringing legs, bridges, dequeuing) and ``queues`` (Enqueue and its waitUrl loop).
"""

from __future__ import annotations

from contact_center.sandbox.voice.calls import OutboundRequest, Telephony, is_phone_number
from contact_center.sandbox.voice.flow import resolve

__all__ = ["OutboundRequest", "Telephony", "is_phone_number", "resolve"]
