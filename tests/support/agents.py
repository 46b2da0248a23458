"""Agents made available to take work, as the presence store of the app behind a test client
knows them."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from contact_center.appkeys import RUNTIME
from contact_center.routing.presence import AgentState
from crm_core.models import Agent


async def available(client: TestClient[Any, Any], *agents: Agent) -> None:
    for agent in agents:
        await client.app[RUNTIME].presence.set(agent.id, AgentState.AVAILABLE)
