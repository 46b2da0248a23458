"""Wiring of campaigns: the campaign desk, built at start-up on the runtime's units of work and
clock with the account's numbers."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from contact_center.appkeys import RUNTIME
from contact_center.campaigns.desk import CampaignDesk, account_numbers
from contact_center.campaigns.routes import CAMPAIGN_DESK
from contact_center.late import Late


def setup_campaigns(app: web.Application) -> None:
    """Build the desk the campaign routes use; must come after the runtime in ``cleanup_ctx``."""
    desk: Late[CampaignDesk] = Late("the campaign desk")
    app[CAMPAIGN_DESK] = desk

    async def _desk_ctx(app: web.Application) -> AsyncIterator[None]:
        runtime = app[RUNTIME]
        desk.set(CampaignDesk(runtime.uow, runtime.clock, runtime.region, account_numbers(runtime.settings)))
        try:
            yield
        finally:
            desk.clear()

    app.cleanup_ctx.append(_desk_ctx)
