"""The Twilio channel: voice webhooks in, TwiML out, and the REST gateway for calls and SMS.

Channel checklist (voice):
- [x] Every webhook is authenticated at the edge (X-Twilio-Signature against the public URL) and
      refused with 403 before any work when it fails; the refusal is logged.
- [x] The wire format is parsed into crm_core DTOs in one module (``voice_params``); nothing past
      it sees Twilio parameter names.
- [x] A recorded fixture for every payload shape, plus unknown and malformed ones
      (tests/fixtures/twilio/voice, replayed by tests/integration/test_voice_fixtures.py).
- [x] Each event has a natural key (CallSid; status by SequenceNumber); a second delivery changes
      nothing; out-of-order delivery never moves state backwards.
- [x] Library and network errors are translated at the edge (``GatewayError``).
- [x] Outbound requests: a real timeout and a connect timeout; 429/20429 retried with capped
      backoff and jitter; every failure says whether the request was not sent (no connection:
      safe to send again), may have been sent (unconfirmed: never repeated blindly) or refused.
- [ ] Outbound sends through the outbox (comes with SMS and the dialer).
- [x] Integration tests against the Twilio sandbox over HTTP (tests/integration/test_sandbox_*.py).
- [x] A benchmark (benchmarks/screen_pop.py); its targets are not met yet (docs/performance.md).
"""
