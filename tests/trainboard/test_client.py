"""trainboard/client.py: a create is retried while the server is away or busy, always with one Idempotency-Key."""

from __future__ import annotations

import httpx
import pytest

from trainboard import client as client_module
from trainboard.client import Client, ClientError


def test_a_create_is_retried_with_one_key_until_the_server_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module.time, "sleep", lambda _s: None)
    keys: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["idempotency-key"])
        if len(keys) == 1:
            raise httpx.ConnectError("connection refused")
        if len(keys) == 2:
            return httpx.Response(503, json={"detail": "the database is unreachable"})
        return httpx.Response(201, json={"id": 7, "status": "queued"})

    with Client("http://trainboard.test", "token", transport=httpx.MockTransport(server)) as api:
        assert api.create_run({"dataset": {"name": "digits"}})["id"] == 7
    assert len(keys) == 3 and len(set(keys)) == 1  # one key: the server makes the run once


def test_a_create_gives_up_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module.time, "sleep", lambda _s: None)
    transport = httpx.MockTransport(lambda _r: httpx.Response(503, json={"detail": "the database is unreachable"}))
    with Client("http://trainboard.test", "token", transport=transport) as api:
        with pytest.raises(ClientError, match="HTTP 503: the database is unreachable"):
            api.create_study({"preset": "mnist-ablations"})


def test_a_run_is_created_in_its_queue_with_its_priority() -> None:
    seen: list[httpx.URL] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(201, json={"id": 8, "status": "queued"})

    with Client("http://trainboard.test", "token", transport=httpx.MockTransport(server)) as api:
        api.create_run({"dataset": {"name": "digits"}}, queue="a100", priority=5)
        api.create_run({"dataset": {"name": "digits"}})
    assert [(url.path, dict(url.params)) for url in seen] == [
        ("/api/runs", {"queue": "a100", "priority": "5"}),
        ("/api/runs", {"queue": "default", "priority": "0"}),
    ]
