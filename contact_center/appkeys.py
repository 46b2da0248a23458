"""Every typed key the aiohttp application and its requests carry, in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import Redis

from channels.twilio.gateway import TwilioGateway
from contact_center.auth.credentials import Identity
from contact_center.auth.passwords import Argon2Hasher
from contact_center.bus import EventBus
from contact_center.jobs import Jobs
from contact_center.rate_limit import RateLimiter
from contact_center.routing.free_agents import FreeAgents
from contact_center.routing.presence import PresenceStore
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.ports import Clock
from crm_core.services.tickets import SlaPolicy


@dataclass(slots=True)
class Runtime:
    """What request handlers need, built once at start-up by :func:`contact_center.app.create_app`."""

    settings: Settings
    uow: UnitOfWorkFactory
    bus: EventBus
    hasher: Argon2Hasher
    limiter: RateLimiter
    redis: Redis | None
    sla: SlaPolicy
    presence: PresenceStore
    twilio: TwilioGateway
    jobs: Jobs
    # The one listener to "an agent is free": capabilities register their takers with it.
    free_agents: FreeAgents
    # The time: desks, routing, jobs and the services they call ask it here (a simulated clock in
    # a simulation or a test, the real one otherwise).
    clock: Clock
    # The clock rate-limit windows are counted on (seconds since the epoch): the clock's unless
    # the app was given one of its own (tests move rate windows alone).
    rate_clock: Callable[[], float]

    @property
    def region(self) -> str:
        return self.settings.crm.default_region


SETTINGS = web.AppKey("settings", Settings)
RUNTIME = web.AppKey("runtime", Runtime)

IDENTITY = web.RequestKey("identity", Identity)
