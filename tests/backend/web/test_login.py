"""Logging in: a wrong token slows the next tries down, and no token is carried into a redirect."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from backend.auth import LoginThrottle
from tests.conftest import API_TOKEN, WORKER_TOKEN


def test_repeated_wrong_tokens_must_wait_longer_and_longer(client: Any) -> None:
    for _ in range(LoginThrottle.FREE_FAILURES):
        assert client.post("/login", data={"token": "wrong", "next": "/"}).status_code == 401
    refused = client.post("/login", data={"token": API_TOKEN, "next": "/"}, follow_redirects=False)
    assert refused.status_code == 429 and "Too many wrong tokens" in refused.text
    assert int(refused.headers["retry-after"]) >= 1


def test_the_throttle_doubles_its_wait_and_forgets_a_success() -> None:
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for _ in range(LoginThrottle.FREE_FAILURES):
        assert throttle.wait_seconds("a") == 0
        throttle.failed("a")
    assert throttle.wait_seconds("a") == 1.0 and throttle.wait_seconds("b") == 0
    now[0] = 1.0
    throttle.failed("a")
    assert throttle.wait_seconds("a") == 2.0
    throttle.succeeded("a")
    assert throttle.wait_seconds("a") == 0


def test_a_stale_or_worker_token_in_a_link_is_not_carried_to_the_login_page(client: Any) -> None:
    for token in (WORKER_TOKEN, "stale-token", "%74oken"):
        response = client.get(f"/runs/1?token={token}&tab=x", follow_redirects=False)
        assert response.status_code == 303
        location = response.headers["location"]
        assert token not in location and "token" not in parse_qs(urlsplit(location).query)["next"][0]
    encoded = client.get(f"/runs/1?%74oken={WORKER_TOKEN}", follow_redirects=False)
    assert WORKER_TOKEN not in encoded.headers["location"]


def test_the_token_link_logs_in_however_its_name_is_encoded(client: Any) -> None:
    response = client.get(f"/?%74oken={API_TOKEN}&page=2", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/?page=2"
    assert "trainboard_session=" in response.headers["set-cookie"]
