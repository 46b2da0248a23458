"""The agent console in a real Chromium against the running service and its Twilio sandbox:
sign in, go available, the caller's card pops with their history, answer, hang up, record the
outcome, and find the call on the customer's timeline; unknown callers get a "new customer" card."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from crm_core.db import UnitOfWorkFactory
from crm_core.models import Customer, Interaction, utcnow
from crm_core.services.interactions import log_interaction
from crm_core.types import Channel, Direction
from tests.browser import LiveService, signed_in_page
from tests.conftest import Staff
from tests.support.waiting import eventually

CALLER = "+12025550143"
UNKNOWN_CALLER = "+12025550178"


async def _known_customer(live: LiveService, uow_factory: UnitOfWorkFactory, owner_id: int) -> dict[str, Any]:
    admin = await live.api("admin")
    try:
        status, customer = await admin.call(
            "POST",
            "/customers",
            {
                "display_name": "Ada Lovelace",
                "company": "Analytical Engines",
                "phones": [CALLER],
                "emails": ["ada@example.com"],
                "tags": ["vip"],
                "owner_id": owner_id,
            },
        )
        assert status == 201, customer
        status, ticket = await admin.call(
            "POST", "/tickets", {"customer_id": customer["id"], "subject": "Engine plans overdue"}
        )
        assert status == 201, ticket
    finally:
        await admin.close()
    async with uow_factory() as uow:
        await log_interaction(
            uow,
            channel=Channel.EMAIL,
            direction=Direction.INBOUND,
            customer_id=customer["id"],
            external_id="<plans@example.com>",
            subject="Where are my plans?",
            started_at=utcnow() - timedelta(hours=3),
        )
        await uow.commit()
    return dict(customer)


async def test_a_popped_call_is_answered_hung_up_and_its_outcome_lands_on_the_timeline(
    live: LiveService,
    chromium: Any,
    staff: Staff,
    uow_factory: UnitOfWorkFactory,
) -> None:
    customer = await _known_customer(live, uow_factory, staff.red_1.id)
    page = await signed_in_page(chromium, live.base, staff.red_1.login)

    await page.get_by_label("Available").check()
    await page.wait_for_selector("#presence-state .badge-available")
    await page.reload()  # the presence survives a reload (it lives in the service)
    await page.wait_for_selector("body[data-ready=true]")
    assert await page.get_by_label("Available").is_checked()

    call_sid = await live.sandbox_call(CALLER)  # how fast it pops is benchmarks/screen_pop.py's to say
    await page.wait_for_selector("#card-name:has-text('Ada Lovelace')", timeout=15_000)
    card = page.locator("#pop-card")
    assert "Analytical Engines" in await card.inner_text()
    assert await card.locator(".owner").inner_text() == staff.red_1.display_name
    assert "Engine plans overdue" in await card.locator(".open-tickets").inner_text()
    history = card.locator(".history li")
    texts = await history.all_inner_texts()
    assert any("Where are my plans?" in t for t in texts), texts
    assert await card.locator(".history .channel-email").count() == 1
    assert await page.locator("#call-status").inner_text() == "Incoming call from Ada Lovelace"

    await page.keyboard.press("a")  # answer, through the sandbox's simulated browser
    await page.wait_for_selector("body[data-call=connected]")
    state = await eventually(lambda: _bridged(live, call_sid), timeout=5)
    assert state["status"] == "in-progress"
    await page.wait_for_selector("#presence-state .badge-on-call")

    await page.keyboard.press("h")  # hang up
    await page.wait_for_selector("#outcome-form:not([hidden])")
    await page.wait_for_selector("#presence-state .badge-wrap-up")
    await page.select_option("#disposition", "follow-up")
    await page.fill("#outcome-note", "Promised the plans by Friday")
    await page.click("#outcome-form button[type=submit]")
    await page.wait_for_selector("#notice:has-text('Outcome saved')")
    await page.click("#end-wrap-up")  # ready for the next call before the wrap-up runs out
    await page.wait_for_selector("#presence-state .badge-available")
    assert await page.locator("#end-wrap-up").is_hidden()

    async with uow_factory() as uow:
        row = await uow.session.scalar(select(Interaction).where(Interaction.external_id == call_sid))
        assert row is not None
        assert row.meta["disposition"] == "follow-up"
        assert row.summary == "Promised the plans by Friday"
        assert row.agent_id == staff.red_1.id

    await page.goto(f"/customers/{customer['id']}")
    await page.wait_for_selector("body[data-ready=true]")
    entry = page.locator(f"#timeline-list li[data-interaction='{row.id}']")
    await entry.wait_for()
    text = await entry.inner_text()
    assert "Promised the plans by Friday" in text and "follow-up" in text
    await page.check("#timeline-channel-email")  # the channel filter leaves only the email
    await page.wait_for_selector(f"#timeline-list li[data-interaction='{row.id}']", state="detached")
    assert await page.locator("#timeline-list li[data-channel=email]").count() == 1
    assert page.script_errors == []
    await page.context.close()


async def _bridged(live: LiveService, call_sid: str) -> dict[str, Any] | None:
    state = await live.sandbox_state(call_sid)
    return state if state["bridged_with"] else None


async def test_an_unknown_caller_pops_a_new_customer_card_that_saves_the_customer(
    live: LiveService,
    chromium: Any,
    staff: Staff,
    uow_factory: UnitOfWorkFactory,
) -> None:
    page = await signed_in_page(chromium, live.base, staff.blue_1.login)
    await page.get_by_label("Available").check()
    await page.wait_for_selector("#presence-state .badge-available")

    await live.sandbox_call(UNKNOWN_CALLER)
    form = page.locator("form.new-customer")
    await form.wait_for(timeout=5000)
    assert await form.locator(".number").inner_text() == UNKNOWN_CALLER
    await page.fill("#new-name", "Charles Babbage")
    await page.fill("#new-company", "Difference Engines")
    await page.click("form.new-customer button[type=submit]")
    await page.wait_for_selector("#card-name:has-text('Charles Babbage')")
    assert await page.locator("#pop-card .owner").inner_text() == staff.blue_1.display_name

    async with uow_factory() as uow:
        saved = await uow.session.scalar(select(Customer).where(Customer.display_name == "Charles Babbage"))
        assert saved is not None
        assert (saved.company, saved.owner_id) == ("Difference Engines", staff.blue_1.id)
    assert page.script_errors == []
    await page.context.close()
