"""A TCP proxy on a loopback port in front of one server (PostgreSQL, Redis).

The service is configured with the proxy's port. A test stops the proxy to make the server
unreachable (new connections are refused, open ones dropped) and starts it again on the same port,
as a network outage or a failover would look to the service; the service has no test code in it.
"""

from __future__ import annotations

from tests.support.round_robin_proxy import RoundRobinProxy


class TcpProxy(RoundRobinProxy):
    """Relays every connection to the one server at ``upstream_host:upstream_port`` while started."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        super().__init__([upstream_port], host=upstream_host)
