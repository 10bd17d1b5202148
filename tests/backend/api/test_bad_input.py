"""Hostile and out-of-range input, on SQLite and PostgreSQL alike: ids past the 32-bit columns, NUL characters,
outsized sweep values. Each was a 500 on PostgreSQL (or on both stores) before; each is now a clear 4xx."""

from __future__ import annotations

from typing import Any

import pytest

from tests.backend.api.test_runs import claim, create
from tests.conftest import API, WORKER, epoch_record

BIG = 2**31  # one past the largest 32-bit id


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", f"/api/runs/{BIG}"),
        ("GET", f"/api/runs/{10**30}"),
        ("GET", "/api/runs/0"),
        ("PATCH", f"/api/runs/{BIG}"),
        ("POST", f"/api/runs/{BIG}/cancel"),
        ("GET", f"/api/runs/{BIG}/metrics"),
        ("GET", f"/api/runs/{BIG}/confusion"),
        ("GET", f"/api/runs/{BIG}/events"),
        ("GET", f"/api/studies/{BIG}"),
        ("GET", f"/api/studies/{BIG}/summary"),
        ("GET", f"/api/studies/{BIG}/report"),
        ("GET", f"/api/studies/{BIG}/report.md"),
    ],
)
def test_an_id_past_the_columns_is_an_unknown_one(client: Any, method: str, path: str) -> None:
    response = client.request(method, path, headers=API, json={} if method == "PATCH" else None)
    assert response.status_code == 404, response.text
    assert "not found" in response.json()["detail"]


@pytest.mark.parametrize("path", [f"/api/runs/{BIG}/claim", f"/api/runs/{BIG}/progress"])
def test_a_worker_message_for_an_id_past_the_columns_is_404(client: Any, path: str) -> None:
    body = (
        {"worker": "w:1"}
        if path.endswith("claim")
        else {"attempt": 1, "lease": "x", "progress": {"epoch": 0, "batch": 0, "batches": 0}}
    )
    assert client.post(path, json=body, headers=WORKER).status_code == 404


@pytest.mark.parametrize(
    "path,field",
    [
        (f"/api/runs?study={BIG}", "study"),
        (f"/api/compare?runs=1,{BIG}", "runs"),
        (f"/api/compare/summary?runs={BIG}", "runs"),
        ("/api/runs/1/events?after=100001", "after"),
    ],
)
def test_a_query_value_past_the_bounds_is_422_naming_it(client: Any, path: str, field: str) -> None:
    create(client)
    response = client.get(path, headers=API)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["detail"]] == [field]


def test_an_attempt_past_the_columns_is_422(client: Any) -> None:
    run = create(client)
    claim(client, run["id"])
    body = {"attempt": 1_099_511_627_776, "lease": "x", "record": epoch_record(1)}
    response = client.post(f"/api/runs/{run['id']}/epochs", json=body, headers=WORKER)
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "attempt"


@pytest.mark.parametrize(
    "method,path,body,field",
    [
        ("POST", "/api/runs", {"name": "a\x00b", "dataset": {"name": "digits"}, "model": {"arch": "mlp"}}, "name"),
        ("PATCH", "/api/runs/1", {"notes": "x\x00"}, "notes"),
        (
            "POST",
            "/api/studies",
            {
                "name": "s\x00",
                "variants": [{"label": "a"}],
                "base": {"dataset": {"name": "digits"}, "model": {"arch": "mlp"}},
            },
            "name",
        ),
        (
            "POST",
            "/api/studies",
            {
                "name": "s",
                "description": "\x00",
                "variants": [{"label": "a"}],
                "base": {"dataset": {"name": "digits"}, "model": {"arch": "mlp"}},
            },
            "description",
        ),
        (
            "POST",
            "/api/studies",
            {
                "name": "s",
                "variants": [{"label": "a\x00"}],
                "base": {"dataset": {"name": "digits"}, "model": {"arch": "mlp"}},
            },
            "variants.0.label",
        ),
        (
            "POST",
            "/api/sweeps",
            {
                "name": "s",
                "base": {"dataset": {"name": "digits"}, "model": {"arch": "mlp"}},
                "grid": {"name": ["a\x00"]},
            },
            "grid.label",
        ),
    ],
)
def test_a_nul_character_in_user_text_is_422_naming_the_field(
    client: Any, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    create(client)
    response = client.request(method, path, json=body, headers=API)
    assert response.status_code == 422, response.text
    fields = [e["field"] for e in response.json()["detail"]]
    assert field in fields, fields
    assert any("NUL" in e["msg"] for e in response.json()["detail"])


@pytest.mark.parametrize("parameter", ["q", "dataset", "arch"])
def test_a_nul_character_in_a_filter_is_422(client: Any, parameter: str) -> None:
    response = client.get("/api/runs", params={parameter: "a\x00"}, headers=API)
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == parameter


def test_text_a_worker_sends_is_cleaned_not_refused(client: Any) -> None:
    run = create(client)
    response = client.post(f"/api/runs/{run['id']}/claim", json={"worker": "host\x00:1"}, headers=WORKER)
    assert response.status_code == 200
    attempt, lease = response.json()["attempt"], response.json()["lease"]
    finish = {"attempt": attempt, "lease": lease, "error": "RuntimeError: bad\x00byte"}
    assert client.post(f"/api/runs/{run['id']}/finish", json=finish, headers=WORKER).json()["status"] == "failed"
    assert client.get(f"/api/runs/{run['id']}", headers=API).json()["error"] == "RuntimeError: bad\ufffdbyte"


@pytest.mark.parametrize("route", ["/api/sweeps/preview", "/api/sweeps"])
def test_an_outsized_sweep_value_is_422_with_its_path(client: Any, route: str) -> None:
    body = {
        "name": "s",
        "base": {"dataset": {"name": "digits"}, "model": {"arch": "mlp"}},
        "grid": {"name": ["x" * 70_000]},
    }
    response = client.post(route, json=body, headers=API)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["field"] == "grid.name.0" and "over the limit of 4,096" in error["msg"]
    assert client.get("/api/studies", headers=API).json()["count"] == 0
