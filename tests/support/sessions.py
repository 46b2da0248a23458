"""Signing in over the API as a browser does: the session cookie and the CSRF token it gets."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from crm_core.models import Agent

# Every agent the tests create has this password.
PASSWORD = "correct horse battery"


class Session:
    """A signed-in API caller: sends the session cookie and the CSRF header."""

    def __init__(self, client: TestClient[Any, Any], csrf: str, cookie: str) -> None:
        self.client = client
        self.cookie = cookie
        self.headers = {"X-CSRF-Token": csrf, "Cookie": f"cc_session={cookie}"}

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Any:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> Any:
        return await self.request("PUT", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> Any:
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Any:
        return await self.request("DELETE", path, **kwargs)


async def signed_in(client: TestClient[Any, Any], who: Agent | str, password: str = PASSWORD) -> Session:
    """Signs ``who`` (an agent or a login) in; the client's cookie jar is left empty, so that each
    caller sends only its own session."""
    login = who if isinstance(who, str) else who.login
    resp = await client.post("/api/v1/auth/login", json={"login": login, "password": password})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    cookie = resp.cookies["cc_session"].value
    client.session.cookie_jar.clear()
    return Session(client, body["csrf_token"], cookie)
