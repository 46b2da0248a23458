"""The sandbox's smaller resources, driven by the official twilio-python client and checked against
Twilio's published description: a call's recordings started, paused, resumed and stopped mid-call
(and ``Record=true``), queues and their members, a text's media; and how a new call's
ApplicationSid, SendDigits and ``<Reject reason>`` behave."""

from __future__ import annotations

import asyncio
import functools
import re
from typing import Any

from twilio.rest import Client

from contact_center.sandbox import CallOutcomes, SandboxConfig
from contact_center.sandbox.model import Queue
from tests.integration.test_sandbox_oai import Recorder
from tests.support.sandbox_harness import CALLER, NUMBER, SID, TOKEN, TWIML, sandbox_env
from tests.support.waiting import until

LIVE = TWIML.format('<Pause length="600"/>')
CALL_RECORDINGS = "Calls/{CallSid}/Recordings.json"
TALKATIVE = CallOutcomes(human=1, machine=0, busy=0, no_answer=0, failed=0, talk_seconds=(3600, 3600))
CALL_RECORDING = "Calls/{CallSid}/Recordings/{Sid}.json"


def _current_recording_to(client: Client, sid: str, status: str) -> Any:
    return client.calls(sid).recordings("Twilio.CURRENT").update(status=status)


def _waiting(queues: dict[str, Queue], name: str) -> int:
    return len(queues[name].members) if name in queues else 0


async def test_a_recording_started_mid_call_is_paused_resumed_stopped_and_served_as_mp3() -> None:
    # A millisecond is a second here, so the recording lasts more than one; the callee stays on.
    async with sandbox_env(time_scale=0.001, outcomes=TALKATIVE) as env:
        env.fake.answer("/talk", LIVE)
        rest = Recorder(env)
        call = await asyncio.to_thread(
            lambda: rest.client.calls.create(to=CALLER, from_=NUMBER, url=env.fake.url("/talk"))
        )
        sid = str(call.sid)
        await until(lambda: env.sandbox.calls[sid].status == "in-progress", what="answered")
        callback = env.fake.url("/recording-status")

        def start(c: Client) -> Any:
            return c.calls(sid).recordings.create(
                recording_status_callback=callback,
                recording_status_callback_event=["in-progress", "completed"],
            )

        started = await rest("recordings.create", CALL_RECORDINGS, "post", 201, start)
        assert started.status == "in-progress" and started.source == "StartCallRecordingAPI"
        assert started.duration == "-1"  # not over yet
        recording = str(started.sid)
        listed = await rest(
            "recordings.list", CALL_RECORDINGS, "get", 200, lambda c: c.calls(sid).recordings.list()
        )
        assert [r.sid for r in listed] == [recording]
        for status in ("paused", "in-progress"):
            changed = await rest(
                f"recordings.update {status}",
                CALL_RECORDING,
                "post",
                200,
                functools.partial(_current_recording_to, sid=sid, status=status),
            )
            assert changed.sid == recording and changed.status == status
        stopped = await rest(
            "recordings.update stopped",
            CALL_RECORDING,
            "post",
            200,
            lambda c: c.calls(sid).recordings(recording).update(status="stopped"),
        )
        assert stopped.status == "stopped"
        hooks = await env.fake.wait_for("/recording-status", 2)
        assert [h.params["RecordingStatus"] for h in hooks] == ["in-progress", "completed"]
        assert hooks[1].params["RecordingSource"] == "StartCallRecordingAPI"
        done = await rest(
            "recordings.fetch",
            CALL_RECORDING,
            "get",
            200,
            lambda c: c.calls(sid).recordings(recording).fetch(),
        )
        assert done.status == "completed" and int(done.duration) >= 0
        await rest(
            "account recordings.fetch",
            "Recordings/{Sid}.json",
            "get",
            200,
            lambda c: c.recordings(recording).fetch(),
        )
        mp3 = await env.client.get(env.api(f"Recordings/{recording}.mp3"), headers=env.auth_header)
        assert mp3.status == 200 and mp3.content_type == "audio/mpeg"
        assert (await mp3.read())[:2] == b"\xff\xfb"
        assert await rest(
            "recordings.delete",
            CALL_RECORDING,
            "delete",
            204,
            lambda c: c.calls(sid).recordings(recording).delete(),
        )
        await asyncio.to_thread(lambda: rest.client.calls(sid).update(status="completed"))
        await env.settled(sid)
        refused, body = await env.rest("POST", f"Calls/{sid}/Recordings.json", data={})
        assert (refused, body["code"]) == (400, 21220)
        rest.check()


async def test_record_true_records_the_call_from_its_answer_to_its_end() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/talk", TWIML.format('<Pause length="3"/><Hangup/>'))
        rest = Recorder(env)
        call = await asyncio.to_thread(
            lambda: rest.client.calls.create(
                to=CALLER,
                from_=NUMBER,
                url=env.fake.url("/talk"),
                record=True,
                recording_status_callback=env.fake.url("/recording-status"),
            )
        )
        await env.settled(str(call.sid))
        (hook,) = await env.fake.wait_for("/recording-status")
        assert (
            hook.params["RecordingStatus"] == "completed" and hook.params["RecordingSource"] == "OutboundAPI"
        )
        (recording,) = await rest(
            "recordings.list", CALL_RECORDINGS, "get", 200, lambda c: c.calls(call.sid).recordings.list()
        )
        assert recording.status == "completed" and int(recording.duration) >= 2
        rest.check()


async def test_queues_and_members_are_listed_fetched_and_a_member_is_dequeued_to_new_twiml() -> None:
    async with sandbox_env() as env:
        env.fake.answer(
            "/voice", TWIML.format('<Enqueue action="/queue-done" waitUrl="/hold">support</Enqueue>')
        )
        env.fake.answer("/hold", LIVE)
        env.fake.answer("/moved", TWIML.format("<Say>Hello</Say>"))
        rest = Recorder(env)
        first = await env.call({})
        second = await env.call({})
        await until(lambda: _waiting(env.sandbox.queues, "support") == 2, what="two callers queued")
        (queue,) = await rest("queues.list", "Queues.json", "get", 200, lambda c: c.queues.list())
        assert queue.friendly_name == "support" and queue.current_size == 2
        await rest("queues.fetch", "Queues/{Sid}.json", "get", 200, lambda c: c.queues(queue.sid).fetch())
        members = await rest(
            "members.list",
            "Queues/{QueueSid}/Members.json",
            "get",
            200,
            lambda c: c.queues(queue.sid).members.list(),
        )
        assert [(m.call_sid, m.position) for m in members] == [(first, 1), (second, 2)]
        member = "Queues/{QueueSid}/Members/{CallSid}.json"
        front = await rest(
            "members.fetch front", member, "get", 200, lambda c: c.queues(queue.sid).members("Front").fetch()
        )
        assert front.call_sid == first
        moved = env.fake.url("/moved")
        await rest(
            "members.update",
            member,
            "post",
            200,
            lambda c: c.queues(queue.sid).members(first).update(url=moved),
        )
        await env.settled(first)
        assert env.fake.at("/moved") and env.fake.at("/queue-done")[0].params["QueueResult"] == "redirected"
        await env.sim("POST", f"calls/{second}/hangup", {})
        await env.settled(second)
        rest.check()


async def test_a_texts_media_are_listed_and_fetched() -> None:
    async with sandbox_env() as env:
        rest = Recorder(env)
        urls = ["https://example.com/a.jpg", "https://example.com/b.png"]
        status, sent = await env.sim(
            "POST", "sms", {"from": CALLER, "to": NUMBER, "body": "Photos", "media_urls": urls}
        )
        assert status in (200, 201), sent
        sid = sent["message_sid"]
        media = await rest(
            "media.list",
            "Messages/{MessageSid}/Media.json",
            "get",
            200,
            lambda c: c.messages(sid).media.list(),
        )
        assert [m.content_type for m in media] == ["image/jpeg", "image/png"]
        one = await rest(
            "media.fetch",
            "Messages/{MessageSid}/Media/{Sid}.json",
            "get",
            200,
            lambda c: c.messages(sid).media(media[1].sid).fetch(),
        )
        assert one.parent_sid == sid and re.fullmatch(r"ME[0-9a-f]{32}", one.sid)
        rest.check()


async def test_application_sid_send_digits_and_reject_reasons_behave_as_at_twilio() -> None:
    async with sandbox_env() as env:
        rest = Recorder(env)
        env.fake.answer("/client", TWIML.format("<Hangup/>"))
        app_sid = "AP" + "0" * 32
        by_app = await asyncio.to_thread(
            lambda: rest.client.calls.create(to=CALLER, from_=NUMBER, application_sid=app_sid)
        )
        await env.settled(str(by_app.sid))
        assert env.fake.at("/client")[0].params["CallSid"] == by_app.sid
        digits = await asyncio.to_thread(
            lambda: rest.client.calls.create(
                to=CALLER,
                from_=NUMBER,
                twiml="<Response><Hangup/></Response>",
                send_digits="1234#",
                machine_detection="Enable",
            )
        )
        await env.settled(str(digits.sid))
        assert env.sandbox.calls[str(digits.sid)].answered_by is None  # no detection with SendDigits
        for reason, ended in (
            ("", "no-answer"),
            (' reason="rejected"', "no-answer"),
            (' reason="busy"', "busy"),
        ):
            env.fake.answer("/voice", TWIML.format(f"<Reject{reason}/>"))
            call = await env.call({})
            assert (await env.settled(call))["status"] == ended
    async with sandbox_env(client_voice_url="") as env:
        refused, body = await env.rest(
            "POST", "Calls.json", data={"To": CALLER, "From": NUMBER, "ApplicationSid": "AP" + "0" * 32}
        )
        assert (refused, body["code"]) == (400, 21205)
    assert re.fullmatch(r"AC[0-9a-f]{32}", SandboxConfig().account_sid)
    assert SID and TOKEN


async def test_a_recording_stopped_within_a_second_is_absent() -> None:
    quick = CallOutcomes(
        human=1, machine=0, busy=0, no_answer=0, failed=0, ring_seconds=(0.1, 0.1), talk_seconds=(600, 600)
    )
    async with sandbox_env(time_scale=1.0, outcomes=quick) as env:  # real time: stopped at once
        env.fake.answer("/talk", LIVE)
        client = Recorder(env).client
        call = await asyncio.to_thread(
            lambda: client.calls.create(to=CALLER, from_=NUMBER, url=env.fake.url("/talk"))
        )
        sid = str(call.sid)
        await until(lambda: env.sandbox.calls[sid].status == "in-progress", what="answered")
        callback = env.fake.url("/recording-status")
        started = await asyncio.to_thread(
            lambda: client.calls(sid).recordings.create(
                recording_status_callback=callback, recording_status_callback_event=["completed", "absent"]
            )
        )
        await asyncio.to_thread(lambda: client.calls(sid).recordings(started.sid).update(status="stopped"))
        (hook,) = await env.fake.wait_for("/recording-status")
        assert hook.params["RecordingStatus"] == "absent"
        await asyncio.to_thread(lambda: client.calls(sid).update(status="completed"))
