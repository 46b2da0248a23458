"""The public help centre in a real Chromium, signed out: the home page lists public articles by
category, the search box finds English and Chinese (two characters too), an article page shows
its Markdown formatted with nothing of the script it carried running, and internal articles and
drafts are nowhere to be seen."""

from __future__ import annotations

from typing import Any

from tests.browser import VIEWPORT, LiveService
from tests.conftest import Staff

BODY = (
    "## Steps 步骤\n\n1. Unplug the **router**.\n2. Wait 10 s.\n\n"
    '<script>window.__pwned = true</script><img src=x onerror="window.__pwned = true">'
    "[more](javascript:window.__pwned=true)"
)


async def test_a_visitor_searches_and_reads_public_articles(
    live: LiveService, chromium: Any, staff: Staff
) -> None:
    lead = await live.api(staff.red_lead.login)
    made = {}
    try:
        status, category = await lead.call("POST", "/kb/categories", {"name": "Internet 网络"})
        assert status == 201, category
        for key, title, visibility, publish in (
            ("public", "Restart the router 重启路由器", "public", True),
            ("internal", "Router escalation 内部升级", "internal", True),
            ("draft", "Router draft 草稿", "public", False),
        ):
            body = {"title": title, "body": BODY, "visibility": visibility, "category_id": category["id"]}
            status, article = await lead.call("POST", "/kb/articles", body)
            assert status == 201, article
            if publish:
                status, _ = await lead.call("POST", f"/kb/articles/{article['id']}/publish")
                assert status == 200
            made[key] = article["id"]
    finally:
        await lead.close()

    context = await chromium.new_context(viewport=VIEWPORT, base_url=live.base)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        await page.goto("/help")
        assert await page.locator("h2").all_inner_texts() == ["Internet 网络"]
        assert await page.locator(".help-category a").all_inner_texts() == ["Restart the router 重启路由器"]

        for query in ("router", "路由", "重启路由器"):
            await page.fill("#help-q", query)
            await page.click(".help-search button")
            await page.wait_for_selector("#help-results, #help-empty")
            assert await page.locator("#help-results a").all_inner_texts() == [
                "Restart the router 重启路由器"
            ]
        await page.fill("#help-q", "escalation")
        await page.click(".help-search button")
        await page.wait_for_selector("#help-empty")

        await page.goto("/help")
        await page.click(".help-category a")
        await page.wait_for_selector("#article-title")
        assert await page.inner_text("#article-title") == "Restart the router 重启路由器"
        assert await page.locator("#article-body strong").inner_text() == "router"
        assert await page.locator("#article-body ol li").count() == 2
        assert await page.locator("#article-body script, #article-body img").count() == 0
        assert await page.locator("#article-body a").count() == 0
        assert await page.evaluate("() => window.__pwned === undefined")

        for hidden in (made["internal"], made["draft"]):
            response = await page.goto(f"/help/articles/{hidden}")
            assert response is not None and response.status == 404
        assert errors == []
    finally:
        await context.close()
