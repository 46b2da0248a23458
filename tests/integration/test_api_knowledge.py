"""Knowledge base over HTTP: who may read and write on every route, drafts kept from readers,
Markdown rendered with script stripped, search in English and Chinese, suggestions and "solved by"
on a ticket, and the public help centre (pages and the widget's JSON search, rate limited) that
never shows an internal article or a draft."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from contact_center.knowledge.help_centre import SEARCHES_PER_MINUTE
from crm_core.db import UnitOfWorkFactory
from crm_core.services.customers import create_customer
from crm_core.services.tickets import SlaPolicy, open_ticket
from tests.conftest import SignIn, Staff
from tests.support.clock import FakeClock

API = "/api/v1"
OWN_SITE = "http://127.0.0.1:8080"  # server.public_base_url: the widget's own origin
XSS = (
    "# Reset 重置\n\n<script>alert('x')</script>\n\n[click](javascript:alert(1)) "
    "<img src=x onerror=alert(2)> [site](https://example.com)\n\nPress **reset** for 5 s."
)


async def ok(resp: ClientResponse, status: int = 200) -> Any:
    body = await resp.json() if resp.status != 204 else None
    assert resp.status == status, body
    return body


async def refused(resp: ClientResponse, status: int) -> None:
    body = await resp.json()
    assert resp.status == status, body


async def test_roles_drafts_markdown_and_search(sign_in: SignIn, staff: Staff) -> None:
    lead, agent, admin = await sign_in(staff.red_lead), await sign_in(staff.red_1), await sign_in(staff.admin)
    category = await ok(await lead.post(f"{API}/kb/categories", json={"name": "Router 路由器"}), 201)
    await refused(await agent.post(f"{API}/kb/categories", json={"name": "Mine"}), 403)
    await refused(await lead.post(f"{API}/kb/categories", json={"name": "Router 路由器"}), 409)
    await refused(await agent.patch(f"{API}/kb/categories/{category['id']}", json={"name": "x"}), 403)
    other = await ok(await lead.post(f"{API}/kb/categories", json={"name": "Modem", "position": 1}), 201)
    await refused(await lead.patch(f"{API}/kb/categories/{other['id']}", json={"name": "Router 路由器"}), 409)
    renamed = await ok(
        await lead.patch(f"{API}/kb/categories/{other['id']}", json={"name": "Modem 调制解调器"})
    )
    assert renamed["name"] == "Modem 调制解调器"
    await ok(await lead.delete(f"{API}/kb/categories/{other['id']}"), 204)
    await refused(await agent.delete(f"{API}/kb/categories/{category['id']}"), 403)
    assert [c["name"] for c in (await ok(await agent.get(f"{API}/kb/categories")))["items"]] == [
        "Router 路由器"
    ]

    new = {"title": "Router reset", "body": XSS, "visibility": "public", "category_id": category["id"]}
    await refused(await agent.post(f"{API}/kb/articles", json=new), 403)
    created = await ok(await lead.post(f"{API}/kb/articles", json=new), 201)
    aid = created["id"]
    assert created["status"] == "draft" and created["version"] == 1
    html = created["html"]
    # Raw HTML is shown as text, never as tags; a javascript: link is no link.
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;" in html
    assert '<a href="https://example.com"' in html and "<strong>reset</strong>" in html and "重置" in html
    # A draft: agents neither list, read nor find it.
    await refused(await agent.get(f"{API}/kb/articles/{aid}"), 404)
    assert (await ok(await agent.get(f"{API}/kb/articles")))["total"] == 0
    assert (await ok(await agent.get(f"{API}/kb/search", params={"q": "router"})))["items"] == []
    await refused(await agent.post(f"{API}/kb/articles/{aid}/publish"), 403)
    await ok(await lead.post(f"{API}/kb/articles/{aid}/publish"))
    seen = await ok(await agent.get(f"{API}/kb/articles/{aid}"))
    assert seen["title"] == "Router reset" and seen["draft_body"] is None

    await refused(await agent.patch(f"{API}/kb/articles/{aid}", json={"title": "x"}), 403)
    edited = await ok(await lead.patch(f"{API}/kb/articles/{aid}", json={"title": "Modem reset 调制解调器"}))
    assert edited["unpublished_changes"] and edited["version"] == 2 and edited["title"] == "Router reset"
    assert (await ok(await agent.get(f"{API}/kb/articles/{aid}")))["title"] == "Router reset"
    assert (await ok(await agent.get(f"{API}/kb/search", params={"q": "modem"})))["items"] == []
    await ok(await admin.post(f"{API}/kb/articles/{aid}/publish"))
    hits = (await ok(await agent.get(f"{API}/kb/search", params={"q": "调制"})))["items"]
    assert [h["id"] for h in hits] == [aid] and hits[0]["title"] == "Modem reset 调制解调器"
    assert (await ok(await agent.get(f"{API}/kb/articles", params={"category_id": category["id"]})))[
        "total"
    ] == 1
    assert (await ok(await lead.get(f"{API}/kb/articles", params={"status": "published"})))["total"] == 1

    await refused(await agent.post(f"{API}/kb/articles/{aid}/withdraw"), 403)
    await ok(await lead.post(f"{API}/kb/articles/{aid}/withdraw"))
    await refused(await agent.get(f"{API}/kb/articles/{aid}"), 404)
    await refused(await agent.delete(f"{API}/kb/articles/{aid}"), 403)
    await ok(await lead.delete(f"{API}/kb/articles/{aid}"), 204)
    await ok(await lead.delete(f"{API}/kb/categories/{category['id']}"), 204)
    await refused(await lead.get(f"{API}/kb/articles/{aid}"), 404)


async def test_suggestions_and_solved_by_on_a_ticket_the_agent_sees(
    sign_in: SignIn, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    lead, agent, other = (
        await sign_in(staff.red_lead),
        await sign_in(staff.red_1),
        await sign_in(staff.blue_1),
    )
    ids = []
    for title in ("Voicemail PIN reset", "语音信箱密码"):
        made = await ok(await lead.post(f"{API}/kb/articles", json={"title": title, "body": "Steps."}), 201)
        await ok(await lead.post(f"{API}/kb/articles/{made['id']}/publish"))
        ids.append(made["id"])
    async with uow_factory() as uow:
        customer = await create_customer(uow, None, region="US", display_name="Li Wei")
        ticket = await open_ticket(
            uow,
            None,
            customer_id=customer.id,
            subject="Forgot my voicemail PIN 忘记语音信箱密码",
            sla=SlaPolicy(),
            assignee_id=staff.red_1.id,
            team_id=staff.red.id,
        )
        await uow.commit()
    base = f"{API}/kb/tickets/{ticket.id}"
    suggested = (await ok(await agent.get(f"{base}/suggestions")))["items"]
    assert {s["id"] for s in suggested} == set(ids)
    await refused(await other.get(f"{base}/suggestions"), 404)  # not a ticket blue-1 may see
    await refused(await other.put(f"{base}/solutions/{ids[0]}"), 404)
    marked = await ok(await agent.put(f"{base}/solutions/{ids[0]}"), 201)
    assert [a["id"] for a in marked["items"]] == [ids[0]] and marked["items"][0]["solved_count"] == 1
    await ok(await agent.put(f"{base}/solutions/{ids[0]}"), 200)
    assert (await ok(await agent.get(f"{API}/kb/articles/{ids[0]}")))["solved_count"] == 1
    assert [s["id"] for s in (await ok(await agent.get(f"{base}/suggestions")))["items"]] == [ids[1]]
    await ok(await agent.delete(f"{base}/solutions/{ids[0]}"), 204)
    assert (await ok(await agent.get(f"{base}/solutions")))["items"] == []
    assert (await ok(await agent.get(f"{API}/kb/articles/{ids[0]}")))["solved_count"] == 0


async def test_the_help_centre_shows_public_articles_only(
    client: TestClient[Any, Any], sign_in: SignIn, staff: Staff, rate_clock: FakeClock
) -> None:
    lead = await sign_in(staff.red_lead)
    await refused(await client.get(f"{API}/kb/search", params={"q": "x"}), 401)
    await refused(await client.get(f"{API}/kb/articles"), 401)
    made: dict[str, int] = {}
    for key, title, visibility, publish in (
        ("public", "Billing cycle 账单周期", "public", True),
        ("internal", "Billing escalation 账单升级", "internal", True),
        ("draft", "Billing draft 账单草稿", "public", False),
    ):
        article = await ok(
            await lead.post(
                f"{API}/kb/articles", json={"title": title, "body": XSS, "visibility": visibility}
            ),
            201,
        )
        if publish:
            await ok(await lead.post(f"{API}/kb/articles/{article['id']}/publish"))
        made[key] = article["id"]

    home = await client.get("/help")
    page = await home.text()
    assert home.status == 200 and "script-src" not in home.headers["Content-Security-Policy"]
    assert "Billing cycle" in page and "escalation" not in page and "draft" not in page
    found = await (await client.get("/help", params={"q": "账单"})).text()
    assert f"/help/articles/{made['public']}" in found and "升级" not in found and "草稿" not in found
    article = await client.get(f"/help/articles/{made['public']}")
    text = await article.text()
    assert (
        article.status == 200 and "<script" not in text and 'href="javascript' not in text and "重置" in text
    )
    for hidden in (made["internal"], made["draft"]):
        assert (await client.get(f"/help/articles/{hidden}")).status == 404

    search = await client.get("/help/search.json", params={"q": "billing"}, headers={"Origin": OWN_SITE})
    assert search.status == 200 and search.headers["Access-Control-Allow-Origin"] == OWN_SITE
    elsewhere = await client.get(
        "/help/search.json", params={"q": "billing"}, headers={"Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in elsewhere.headers
    assert [i["id"] for i in (await search.json())["items"]] == [made["public"]]
    assert (await (await client.get("/help/search.json", params={"q": "账单"})).json())["items"][0][
        "url"
    ] == (f"/help/articles/{made['public']}")
    for _ in range(SEARCHES_PER_MINUTE):
        last = await client.get("/help/search.json", params={"q": "cycle"})
    assert last.status == 429 and (await last.json())["error"]["code"] == "too_many_requests"
    limited = await client.get("/help", params={"q": "cycle"})
    assert limited.status == 429 and "help-limited" in await limited.text()
    rate_clock.advance(61)
    assert (await client.get("/help/search.json", params={"q": "cycle"})).status == 200
