"""The client's own address when requests come through reverse proxies (``X-Forwarded-For``).

Per-address rate limits and chat address blocks need the visitor's address, not the proxy's.
Only proxies listed in ``server.trusted_proxies`` are believed: from the right of their
``X-Forwarded-For`` list, the first address that is not itself a trusted proxy is the client's.
A header from any other peer could be forged, so it is ignored (and said once in the log: it
usually means a proxy that should be listed).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

log = logging.getLogger(__name__)

FORWARDED_FOR = "X-Forwarded-For"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str | None:
    """``peer``, or when it is a trusted proxy, the right-most entry of ``forwarded_for`` (the
    headers' values in order) that is not one (kept as written, at most 64 characters, should a
    proxy have put something else than an address there)."""
    peer_address = _address(peer) if peer else None
    if peer_address is None or not any(peer_address in net for net in trusted):
        return peer
    hops = [hop.strip()[:64] for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return hop
        if not any(address in net for net in trusted):
            return str(address)
    return hops[0] if hops else peer


def client_address_middleware(trusted: Sequence[Network]) -> Middleware:
    warned: list[str] = []  # said once per process: it is a hint about the set-up

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        forwarded = request.headers.getall(FORWARDED_FOR, [])
        if not forwarded:
            return await handler(request)
        peer = request.remote
        client = client_address(peer, forwarded, trusted)
        if client is None or client == peer:
            if peer is not None and not warned:
                warned.append(peer)
                log.warning(
                    "%s from %s, which is not in server.trusted_proxies, is ignored: if a proxy of "
                    "ours sends it, list the proxy there, else every client has its address",
                    FORWARDED_FOR,
                    peer,
                )
            return await handler(request)
        return await handler(request.clone(remote=client))

    return middleware
