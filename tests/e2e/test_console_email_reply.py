"""The console's ticket page in Chromium: an agent answers an email ticket from the reply box
(found through the OpenAPI document), the customer's mail server (aiosmtpd) receives the reply and
the page shows its delivery state as the outbox reports it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

from crm_core.db import UnitOfWorkFactory
from crm_core.services.customers import create_customer
from crm_core.services.tickets import SlaPolicy, open_ticket
from crm_core.types import Channel
from tests.browser import LiveService, signed_in_page
from tests.conftest import Staff, isolated_settings
from tests.email_servers import SmtpSink
from tests.support.waiting import free_port

TIMEOUT_MS = 10_000


@pytest_asyncio.fixture(loop_scope="session")
async def mail_live(
    settings: Any, uow_factory: UnitOfWorkFactory, staff: Staff, smtp_sink: SmtpSink, tmp_path: Path
) -> AsyncIterator[LiveService]:
    port = free_port()
    site = isolated_settings(settings).with_overrides(
        server={"public_base_url": f"http://127.0.0.1:{port}"},
        email={
            "mailboxes": [
                {
                    "name": "support",
                    "address": "support@example.com",
                    "display_name": "Example Support",
                    "imap_host": "127.0.0.1",
                    "imap_port": free_port(),  # nothing listens: this test only sends
                    "imap_tls": "none",
                    "login": "support",
                }
            ],
            "smtp": {"host": smtp_sink.host, "port": smtp_sink.port, "tls": "none"},
            "attachment_dir": str(tmp_path / "mail"),
            "reconnect_min_seconds": 30,
            "outbox_poll_seconds": 0.2,
        },
    )
    service = LiveService(site, port)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def test_an_agent_replies_to_an_email_ticket_and_the_customer_receives_it(
    mail_live: LiveService, chromium: Any, staff: Staff, uow_factory: UnitOfWorkFactory, smtp_sink: SmtpSink
) -> None:
    from playwright.async_api import expect

    async with uow_factory() as uow:
        customer = await create_customer(
            uow,
            None,
            region="US",
            display_name="Ana Lima",
            emails=["ana@example.org"],
            owner_id=staff.red_1.id,
        )
        ticket = await open_ticket(
            uow,
            None,
            customer_id=customer.id,
            subject="Invoice is wrong",
            sla=SlaPolicy(),
            assignee_id=staff.red_1.id,
            source_channel=Channel.EMAIL,
        )
        await uow.commit()

    page = await signed_in_page(chromium, mail_live.base, staff.red_1.login, f"/tickets/{ticket.id}")
    await expect(page.locator("#reply-title")).to_have_text("Reply by Email", timeout=TIMEOUT_MS)
    await page.fill("#reply-text", "We corrected the invoice <b>today</b>.")
    await page.click("form:has(#reply-text) button[type=submit]")

    (mail,) = await smtp_sink.wait_for(1)
    assert mail.recipients == ["ana@example.org"]
    message = mail.message
    assert re.fullmatch(r"Re: Invoice is wrong \[#\d+\]", str(message["Subject"]))
    assert message["From"].addresses[0].addr_spec == "support@example.com"
    body = message.get_body(("plain",))
    assert body is not None and "We corrected the invoice <b>today</b>." in body.get_content()

    reply = page.locator("li[data-channel=email].interaction-outbound")
    await expect(reply.locator(".delivery")).to_have_attribute("data-delivery", "sent", timeout=TIMEOUT_MS)
    await expect(reply.locator(".text")).to_have_text("We corrected the invoice <b>today</b>.")
    assert page.script_errors == []
