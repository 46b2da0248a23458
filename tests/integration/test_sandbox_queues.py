"""<Enqueue> in the sandbox: the waitUrl loop, leaving by REST redirect, dequeue, Leave and hang-up."""

from __future__ import annotations

import re

from tests.support.sandbox_harness import TWIML, events, sandbox_env

ENQUEUE = TWIML.format(
    '<Enqueue action="/queue-done" waitUrl="/hold">support</Enqueue><Say>After queue</Say>'
)


async def test_wait_url_then_redirect_by_rest_update() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/voice", ENQUEUE)
        env.fake.answer("/hold", TWIML.format("<Say>Please hold</Say>"))
        env.fake.answer("/agent-found", TWIML.format("<Say>Connecting</Say><Hangup/>"))
        first = await env.call({})
        holds = await env.fake.wait_for("/hold", 2)
        params = holds[0].params
        assert params["CallSid"] == first
        assert params["QueuePosition"] == "1"
        assert params["CurrentQueueSize"] == "1"
        assert re.match(r"^QU[0-9a-f]{32}$", params["QueueSid"])
        assert {"QueueTime", "AvgQueueTime", "MaxQueueSize"} <= set(params)

        second = await env.call({})
        state = await env.until(second, lambda s: s["queue_position"] == 2)
        assert state["queue"] == "support"
        await env.fake.wait_for("/hold", 3)
        seconds = [w for w in env.fake.at("/hold") if w.params["CallSid"] == second]
        assert seconds and seconds[0].params["QueuePosition"] == "2"
        assert seconds[0].params["CurrentQueueSize"] == "2"

        status, body = await env.rest(
            "POST", f"Calls/{first}.json", data={"Url": env.fake.url("/agent-found")}
        )
        assert status == 200 and body["sid"] == first
        state = await env.settled(first)
        (done,) = env.fake.at("/queue-done")
        assert done.params["QueueResult"] == "redirected"
        assert done.params["QueueSid"] == params["QueueSid"]
        assert int(done.params["QueueTime"]) >= 0
        assert len(env.fake.at("/agent-found")) == 1
        assert [e["text"] for e in events(state, "say")][-1] == "Connecting"
        assert "After queue" not in [e["text"] for e in events(state, "say")]
        assert (await env.state(second))["queue_position"] == 1

        await env.sim("POST", f"calls/{second}/hangup", {})
        await env.settled(second)
        results = [w.params["QueueResult"] for w in env.fake.at("/queue-done")]
        assert results == ["redirected", "hangup"]


async def test_agent_browser_dequeues_the_caller_with_dial_queue() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/voice", ENQUEUE)
        env.fake.answer("/hold", TWIML.format('<Play loop="0">http://example.invalid/music.mp3</Play>'))
        env.fake.answer("/queue-done", TWIML.format("<Say>Thanks for calling</Say>"))
        env.fake.answer(
            "/client", TWIML.format('<Dial action="/agent-dial-done"><Queue>support</Queue></Dial>')
        )
        caller = await env.call({})
        await env.fake.wait_for("/hold")

        status, answer = await env.sim(
            "POST", "clients/alice/calls", {"to": "support", "params": {"Agent": "7"}}
        )
        assert status == 201
        agent = answer["call_sid"]
        (client,) = await env.fake.wait_for("/client")
        assert client.params["From"] == "client:alice" and client.params["Agent"] == "7"
        await env.until(caller, lambda s: s["bridged_with"] == agent)

        await env.sim("POST", f"calls/{caller}/hangup", {"side": "agent"})
        state = await env.settled(caller)
        (done,) = env.fake.at("/queue-done")
        assert done.params["QueueResult"] == "bridged"
        assert [e["text"] for e in events(state, "say")] == ["Thanks for calling"]  # action replaces the rest
        (dial_done,) = await env.fake.wait_for("/agent-dial-done")
        assert dial_done.params["DialCallStatus"] == "completed"
        assert dial_done.params["DialCallSid"] == caller
        await env.settled(agent)


async def test_leave_and_hangup_from_the_wait_url() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/voice", ENQUEUE)
        env.fake.answer("/hold", TWIML.format("<Say>Nobody here</Say><Leave/>"))
        state = await env.settled(await env.call({}))
        (done,) = env.fake.at("/queue-done")
        assert done.params["QueueResult"] == "leave"
        assert state["status"] == "completed"

        env.fake.answer("/hold", TWIML.format("<Hangup/>"))
        state = await env.settled(await env.call({}))
        assert env.fake.at("/queue-done")[-1].params["QueueResult"] == "hangup"
        assert "After queue" not in [e["text"] for e in events(state, "say")]


async def test_full_queue() -> None:
    async with sandbox_env(max_queue_size=1) as env:
        env.fake.answer("/voice", ENQUEUE)
        env.fake.answer("/hold", TWIML.format('<Pause length="600"/>'))
        first = await env.call({})
        await env.fake.wait_for("/hold")
        second = await env.call({})
        await env.settled(second)
        (done,) = env.fake.at("/queue-done")
        assert done.params["CallSid"] == second and done.params["QueueResult"] == "queue-full"
        await env.sim("POST", f"calls/{first}/hangup", {})
        await env.settled(first)


async def test_gather_in_the_wait_url() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/voice", ENQUEUE)
        env.fake.answer(
            "/hold", TWIML.format('<Gather action="/hold-key" numDigits="1"><Say>Press 1</Say></Gather>')
        )
        env.fake.answer("/hold-key", TWIML.format("<Say>Leaving</Say><Leave/>"))
        await env.settled(await env.call({"digits": "1"}))
        (key,) = env.fake.at("/hold-key")
        assert key.params["Digits"] == "1"
        assert env.fake.at("/queue-done")[0].params["QueueResult"] == "leave"
