"""The public help centre ignores whatever credentials a request carries; the API still refuses
bad ones."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from contact_center.auth.middleware import is_public_page

pytestmark = pytest.mark.asyncio(loop_scope="session")
BAD = ["Basic dXNlcjpwYXNz", "Bearer not-a-token", "Bearer", "garbage"]


async def test_public_pages_answer_requests_with_bad_credentials(client: TestClient[Any, Any]) -> None:
    for header in BAD:
        for path, params in [
            ("/help", {}),
            ("/help", {"q": "账单"}),
            ("/help/search.json", {"q": "billing"}),
        ]:
            response = await client.get(path, params=params, headers={"Authorization": header})
            assert response.status == 200, (header, path)
        missing = await client.get("/help/articles/999999", headers={"Authorization": header})
        assert missing.status == 404, header
        refused = await client.get("/api/v1/kb/articles", headers={"Authorization": header})
        assert refused.status == 401, header


async def test_only_the_help_centre_is_public() -> None:
    assert (
        is_public_page("/help") and is_public_page("/help/articles/7") and is_public_page("/help/search.json")
    )
    assert not is_public_page("/helpdesk") and not is_public_page("/api/v1/help") and not is_public_page("/")
