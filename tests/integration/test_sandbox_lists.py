"""The sandbox's Calls and Messages lists answer the official twilio-python client as Twilio does:
every filter honoured (To, From, Status, the times with their < and > forms), on every page (the
next page's link keeps the filters)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

from contact_center.sandbox.model import Message, new_sid
from tests.support.sandbox_harness import NUMBER, SID, TWIML, sandbox_env, twilio_client
from tests.support.waiting import until

HANGUP = TWIML.format("<Hangup/>")
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
ALICE, BOB = "+12025550143", "+12025550144"


async def test_calls_list_honours_every_filter_on_every_page() -> None:
    async with sandbox_env() as env:
        sids: dict[str, list[str]] = {ALICE: [], BOB: []}
        for index in range(7):
            to = ALICE if index % 3 else BOB
            status, body = await env.rest(
                "POST", "Calls.json", data={"To": to, "From": NUMBER, "Twiml": HANGUP}
            )
            assert status == 201, body
            sids[to].append(body["sid"])
        calls = env.sandbox.calls
        await until(lambda: all(calls[sid].is_final for sid in sids[ALICE] + sids[BOB]), what="calls end")
        # Known times and outcomes: call i started i * 10 hours after T0 and lasted a minute.
        for index, sid in enumerate(sorted(sids[ALICE] + sids[BOB], key=list(calls).index)):
            call = calls[sid]
            call.start_time = T0 + timedelta(hours=10 * index)
            call.end_time = call.start_time + timedelta(minutes=1)
            call.status = "completed" if index % 2 else "busy"

        def listed(**filters: Any) -> list[str]:
            return [c.sid for c in twilio_client(env).calls.list(page_size=2, **filters)]

        def newest_first(chosen: list[str]) -> list[str]:
            return sorted(chosen, key=list(env.sandbox.calls).index, reverse=True)

        alice, bob, calls = sids[ALICE], sids[BOB], env.sandbox.calls
        assert await asyncio.to_thread(listed, to=ALICE) == newest_first(alice)  # across 3 pages
        assert await asyncio.to_thread(listed, to=BOB) == newest_first(bob)
        assert await asyncio.to_thread(listed, from_=NUMBER) == newest_first(alice + bob)
        completed = [s for s in alice if calls[s].status == "completed"]
        assert await asyncio.to_thread(listed, to=ALICE, status="completed") == newest_first(completed)
        hours = [T0 + timedelta(hours=h) for h in range(60)]
        cases: list[tuple[dict[str, Any], list[int]]] = [
            ({"start_time_after": hours[20]}, [2, 3, 4, 5, 6]),
            ({"start_time_before": hours[20]}, [0, 1, 2]),
            ({"start_time": date(2024, 5, 2)}, [2, 3]),
            ({"start_time": "2024-05-03"}, [4, 5, 6]),
            ({"start_time_after": hours[10], "start_time_before": hours[40]}, [1, 2, 3, 4]),
            ({"end_time_after": hours[50]}, [5, 6]),
            ({"end_time_before": "2024-05-01"}, [0, 1]),
            ({"end_time": date(2024, 5, 3)}, [4, 5, 6]),
            ({"start_time_after": date(2024, 5, 4)}, []),
            ({"to": BOB, "start_time_after": hours[20]}, [3, 6]),
        ]
        ordered = sorted(alice + bob, key=list(calls).index)
        for filters, indexes in cases:
            expected = newest_first([ordered[i] for i in indexes])
            assert await asyncio.to_thread(listed, **filters) == expected, filters


async def test_messages_list_honours_recipient_sender_and_sent_dates_on_every_page() -> None:
    async with sandbox_env() as env:
        sent: list[str] = []
        for index in range(6):
            to = ALICE if index % 2 else BOB
            status, body = await env.rest(
                "POST", "Messages.json", data={"To": to, "From": NUMBER, "Body": f"#{index}"}
            )
            assert status == 201, body
            sent.append(body["sid"])
        messages = env.sandbox.messages
        final = {"delivered", "undelivered", "failed"}
        await until(lambda: all(messages[sid].status in final for sid in sent), what="texts delivered")
        for index, sid in enumerate(sent):
            messages[sid].date_sent = T0 + timedelta(days=index // 2, hours=index)
        # One still queued at Twilio: not sent, so no sent-date filter finds it.
        late = Message(new_sid("SM"), SID, NUMBER, ALICE, "late", "outbound-api", "queued")
        messages[late.sid] = late
        queued = late.sid

        def listed(**filters: Any) -> list[str]:
            return [m.sid for m in twilio_client(env).messages.list(page_size=2, **filters)]

        def newest_first(indexes: list[int]) -> list[str]:
            return [sent[i] for i in sorted(indexes, reverse=True)]

        assert await asyncio.to_thread(listed, to=ALICE) == [queued, *newest_first([1, 3, 5])]
        assert await asyncio.to_thread(listed, to=BOB, from_=NUMBER) == newest_first([0, 2, 4])
        assert await asyncio.to_thread(listed, from_=ALICE) == []
        assert await asyncio.to_thread(listed, date_sent=date(2024, 5, 2)) == newest_first([2, 3])
        assert await asyncio.to_thread(listed, date_sent_after=date(2024, 5, 2)) == newest_first([2, 3, 4, 5])
        assert await asyncio.to_thread(listed, date_sent_before="2024-05-01") == newest_first([0, 1])
        assert await asyncio.to_thread(listed, date_sent_before=date(2024, 5, 1)) == []  # its midnight
        after = T0 + timedelta(days=1, hours=3)  # message 3's very second
        assert await asyncio.to_thread(listed, to=ALICE, date_sent_after=after) == newest_first([3, 5])
        assert await asyncio.to_thread(listed, to=ALICE, date_sent=after) == newest_first([3])
        assert await asyncio.to_thread(listed, date_sent_before=after, date_sent_after=T0) == newest_first(
            [0, 1, 2, 3]
        )


async def test_a_page_link_keeps_the_filters_and_the_page_token() -> None:
    async with sandbox_env() as env:
        for _ in range(3):
            await env.rest("POST", "Messages.json", data={"To": ALICE, "From": NUMBER, "Body": "hi"})
        await env.rest("POST", "Messages.json", data={"To": BOB, "From": NUMBER, "Body": "hi"})
        status, first = await env.rest("GET", "Messages.json?To=%2B12025550143&PageSize=2")
        assert status == 200 and len(first["messages"]) == 2
        link = first["next_page_uri"]
        assert "To=%2B12025550143" in link and "PageSize=2" in link and "PageToken=PA" in link
        resp = await env.client.get(link, headers=env.auth_header)
        second = await resp.json()
        assert [m["to"] for m in second["messages"]] == [ALICE]
        assert second["next_page_uri"] is None
        status, body = await env.rest("GET", "Messages.json?DateSent%3E=not-a-date")
        assert status == 400 and body["code"] == 20001
