"""backend/middleware.py: only this server's host names are answered (DNS rebinding), every answer carries the
security headers, bodies are capped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.middleware import CONTENT_SECURITY_POLICY, host_name
from tests.conftest import API, make_settings


@pytest.fixture
def app(tmp_path: Path) -> Any:
    from backend.app import create_app

    return create_app(
        make_settings(tmp_path, allowed_hosts=["lab.example.org", "testserver"], api_url="http://api:8000")
    )


@pytest.mark.parametrize(
    "host,allowed",
    [
        ("evil.example", False),
        ("localhost:8000", True),
        ("127.0.0.1:8000", True),
        ("[::1]:8000", True),
        ("192.168.1.20:8000", True),
        ("api:8000", True),
        ("lab.example.org", True),
        ("LAB.example.org:80", True),
        ("lab.example.org.evil.example", False),
        ("", False),
    ],
)
def test_only_this_servers_host_names_are_answered(app: Any, host: str, allowed: bool) -> None:
    with TestClient(app) as client:
        response = client.get("/api/runs", headers=API | {"host": host})
    if allowed:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 400
        assert "add it to TRAINBOARD_ALLOWED_HOSTS" in response.json()["detail"]


def test_a_star_answers_any_host(tmp_path: Path) -> None:
    from backend.app import create_app

    with TestClient(create_app(make_settings(tmp_path, allowed_hosts=["*"]))) as client:
        assert client.get("/api/runs", headers=API | {"host": "anything.example"}).status_code == 200


def test_every_answer_carries_the_security_headers(app: Any) -> None:
    with TestClient(app) as client:
        for response in (
            client.get("/login"),
            client.get("/api/runs"),
            client.get("/static/app.css"),
            client.get("/", headers={"host": "evil.example"}),
        ):
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY and "script-src 'self';" in CONTENT_SECURITY_POLICY


def test_host_names_lose_their_port() -> None:
    assert [host_name(h) for h in ("a:1", "A", "[::1]:80", "::1", "")] == ["a", "a", "::1", "::1", ""]


def test_the_api_docs_are_served_from_the_installed_package(app: Any) -> None:
    with TestClient(app) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and "cdn" not in page.text.lower()
        assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
        assert client.get("/docs/assets/swagger-ui.css").status_code == 200
        schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["APIToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The API token (`trainboard token`)",
    }
