"""Blocking web chat visitors, and the addresses they come from, at an agent's request.

A blocked visitor's token is refused for good; an address block (an IPv4 address, or an IPv6
address's /64) lasts a number of hours, so a new visitor token from there is refused too while it
runs. Both are audited on the conversation they came from. Every function is told the time
(``now``, from the caller's clock), so block expiry follows a simulated clock as well as the real one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import UnitOfWork
from crm_core.errors import NotFound
from crm_core.models import Agent, ChatBlockedAddress, ChatConversation, ChatVisitor
from crm_core.services.audit import audit
from crm_core.services.chat import agent_names
from crm_core.sql import insert_ignore


async def block_visitor(
    uow: UnitOfWork, conversation: ChatConversation, agent_id: int, reason: str | None, *, now: datetime
) -> ChatVisitor:
    """Block the visitor of ``conversation`` (audited on the conversation)."""
    visitor = await uow.session.get_one(ChatVisitor, conversation.visitor_id)
    if visitor.blocked_at is None:
        visitor.blocked_at = now
        visitor.blocked_by_id = agent_id
        visitor.block_reason = (reason or "").strip()[:300] or None
        audit(
            uow.session,
            "chat",
            conversation.id,
            "visitor-blocked",
            agent_id,
            {"visitor_id": visitor.id, "reason": visitor.block_reason},
        )
    return visitor


# --- address blocks ----------------------------------------------------------------------------

# An IPv6 host picks new addresses inside its network at will (privacy extensions): the block
# covers the /64, the usual network of one subscriber or LAN.
_IPV6_BLOCK_PREFIX = 64


def address_key(ip: str | None) -> str | None:
    """What an address block is kept under: an IPv4 address itself, an IPv6 address's /64
    network address; None for anything that is not an IP address."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((int(address), _IPV6_BLOCK_PREFIX), strict=False)  # no %zone
        return str(network.network_address)
    return str(address)


async def address_blocked(session: AsyncSession, ip: str | None, *, now: datetime) -> bool:
    """Whether ``ip`` is blocked at ``now`` (one primary-key lookup; expired blocks do not count)."""
    key = address_key(ip)
    if key is None:
        return False
    until = await session.scalar(select(ChatBlockedAddress.until).where(ChatBlockedAddress.ip == key))
    return until is not None and until > now


async def block_address(
    uow: UnitOfWork,
    conversation: ChatConversation,
    ip: str | None,
    agent_id: int,
    reason: str | None,
    hours: float,
    *,
    now: datetime,
) -> ChatBlockedAddress | None:
    """Block ``ip`` (where ``conversation`` came from) for ``hours`` from now, audited on the
    conversation. A block of that address already running longer keeps its end (and who set it,
    and why): blocking again extends, never shortens. Expired blocks are deleted on the way.
    None when there is no address or ``hours`` is 0."""
    key = address_key(ip)
    if key is None or hours <= 0:
        return None
    session = uow.session
    until = now + timedelta(hours=hours)
    await session.execute(
        delete(ChatBlockedAddress)
        .where(ChatBlockedAddress.until <= now)
        .execution_options(synchronize_session=False)
    )
    values = {
        "ip": key,
        "until": until,
        "blocked_at": now,
        "blocked_by_id": agent_id,
        "conversation_id": conversation.id,
        "reason": (reason or "").strip()[:300] or None,
    }
    inserted = await insert_ignore(session, ChatBlockedAddress, values, ["ip"]) is not None
    block = await session.get_one(ChatBlockedAddress, key, with_for_update=True, populate_existing=True)
    if not inserted and block.until < until:
        for name, value in values.items():
            setattr(block, name, value)
    audit(
        session,
        "chat",
        conversation.id,
        "address-blocked",
        agent_id,
        {"ip": key, "until": block.until.isoformat(), "reason": values["reason"]},
    )
    await session.flush()
    return block


@dataclass(frozen=True, slots=True)
class AddressBlock:
    """A block in force and the name of the agent who set it."""

    block: ChatBlockedAddress
    blocked_by_name: str | None


async def address_blocks(
    session: AsyncSession, *, now: datetime, limit: int, offset: int = 0
) -> list[AddressBlock]:
    """The blocks in force at ``now``, the latest first."""
    rows = await session.execute(
        select(ChatBlockedAddress, Agent.display_name)
        .outerjoin(Agent, Agent.id == ChatBlockedAddress.blocked_by_id)
        .where(ChatBlockedAddress.until > now)
        .order_by(ChatBlockedAddress.blocked_at.desc(), ChatBlockedAddress.ip)
        .limit(limit)
        .offset(offset)
    )
    return [AddressBlock(block, name) for block, name in rows.tuples()]


async def lift_address_block(uow: UnitOfWork, ip: str, agent_id: int, *, now: datetime) -> AddressBlock:
    """End the block of ``ip`` (any address of a blocked IPv6 /64 will do), audited on the chat it
    came from; NotFound when none is in force. The blocked visitor's token stays blocked."""
    key = address_key(ip)
    block = None if key is None else await uow.session.get(ChatBlockedAddress, key, with_for_update=True)
    if block is None or block.until <= now:
        raise NotFound(f"the address {ip[:64]!r} is not blocked")
    await uow.session.delete(block)
    audit(
        uow.session,
        "chat",
        block.conversation_id or 0,
        "address-unblocked",
        agent_id,
        {"ip": block.ip, "until": block.until.isoformat()},
    )
    await uow.session.flush()
    names = await agent_names(uow.session, [block.blocked_by_id] if block.blocked_by_id else [])
    return AddressBlock(block, names.get(block.blocked_by_id or 0))
