"""Fixtures of the page tests: the test client logged in like a browser."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import API_TOKEN


@pytest.fixture
def browser(client: Any) -> Any:
    """The test client logged in like a browser (session cookie), on SQLite and PostgreSQL."""
    response = client.get(f"/?token={API_TOKEN}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    client.cookies.update(response.cookies)
    return client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "the page carries no CSRF token"
    return match.group(1)
