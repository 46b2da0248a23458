"""Wiring of the knowledge base: its desk, built at start-up on the runtime's units of work and
clock, and the public help centre's pages."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from contact_center.appkeys import RUNTIME
from contact_center.knowledge import help_centre
from contact_center.knowledge.desk import KnowledgeDesk
from contact_center.knowledge.routes import KNOWLEDGE_DESK
from contact_center.late import Late


def setup_knowledge(app: web.Application) -> None:
    """The desk the API and the help centre use; must come after the runtime in ``cleanup_ctx``."""
    desk: Late[KnowledgeDesk] = Late("the knowledge desk")
    app[KNOWLEDGE_DESK] = desk
    app.router.add_routes(help_centre.routes)

    async def _desk_ctx(app: web.Application) -> AsyncIterator[None]:
        runtime = app[RUNTIME]
        desk.set(KnowledgeDesk(runtime.uow, runtime.clock))
        try:
            yield
        finally:
            desk.clear()

    app.cleanup_ctx.append(_desk_ctx)
