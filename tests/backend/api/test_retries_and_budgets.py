"""Creating runs safely, on SQLite and PostgreSQL: an Idempotency-Key makes a retried create return what the
first one made; a run whose training memory is over the budget is refused with the figures; a worker's
messages must carry its claim's lease."""

from __future__ import annotations

from typing import Any

import pytest

from tests.backend.api.test_runs import claim, create
from tests.conftest import API, WORKER, epoch_record, tiny_spec

VGG_224 = {"dataset": {"name": "cifar10", "resize": 224}, "model": {"arch": "vgg16"}, "batch_size": 256}


def test_a_retried_create_with_the_same_key_makes_nothing_new(client: Any) -> None:
    headers = API | {"Idempotency-Key": "3f1c-retry"}
    first = client.post("/api/runs", json=tiny_spec(), headers=headers)
    again = client.post("/api/runs", json=tiny_spec(), headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert client.get("/api/runs", headers=API).json()["count"] == 1
    other = client.post("/api/runs", json=tiny_spec(epochs=2), headers=headers)
    assert other.status_code == 409 and "used before for a different request" in other.json()["detail"]
    assert client.post("/api/runs", json=tiny_spec(), headers=API).json()["id"] != first.json()["id"]  # no key: new


def test_a_retried_study_or_sweep_is_made_once(client: Any) -> None:
    base = {"dataset": {"name": "digits"}, "model": {"arch": "mlp"}}
    study = {"name": "s", "base": base, "variants": [{"label": "a"}, {"label": "b"}]}
    sweep = {"name": "w", "base": base, "grid": {"epochs": [1, 2]}}
    for route, body in (("/api/studies", study), ("/api/sweeps", sweep)):
        headers = API | {"Idempotency-Key": f"key-{route[5:]}"}
        first, again = (client.post(route, json=body, headers=headers) for _ in range(2))
        assert first.status_code == again.status_code == 201
        assert again.json()["id"] == first.json()["id"]
        assert [r["id"] for r in again.json()["data"]] == [r["id"] for r in first.json()["data"]]
    assert client.get("/api/studies", headers=API).json()["count"] == 2
    assert client.get("/api/runs", headers=API).json()["count"] == 4
    bad = client.post("/api/runs", json=tiny_spec(), headers=API | {"Idempotency-Key": "spaces are not allowed"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "Idempotency-Key"


def test_a_run_over_the_memory_budget_is_refused_with_the_figures(client: Any) -> None:
    response = client.post("/api/runs", json=VGG_224, headers=API)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert (error["field"], error["type"]) == ("batch_size", "memory_budget")
    assert "this run needs about 39.0 GB" in error["msg"] and "the memory budget of 16 GB" in error["msg"]
    assert client.get("/api/runs", headers=API).json()["count"] == 0
    assert client.post("/api/runs", json=VGG_224 | {"batch_size": 32}, headers=API).status_code == 201


def test_a_study_names_each_variant_over_the_memory_budget(client: Any) -> None:
    body = {"name": "big", "base": VGG_224, "variants": [{"label": "ok", "set": {"batch_size": 16}}, {"label": "huge"}]}
    for route in ("/api/studies/preview", "/api/studies"):
        response = client.post(route, json=body, headers=API)
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert (error["variant"], error["label"], error["field"]) == (1, "huge", "batch_size")


@pytest.mark.parametrize("field,value", [("epochs", True), ("optimizer", {"lr": False}), ("batch_size", False)])
def test_true_and_false_are_not_numbers(client: Any, field: str, value: Any) -> None:
    response = client.post("/api/runs", json=tiny_spec() | {field: value}, headers=API)
    assert response.status_code == 422
    assert "must be a number, not true or false" in response.json()["detail"][0]["msg"]


def test_a_worker_message_without_its_claims_lease_is_refused(client: Any) -> None:
    run = create(client)
    attempt, lease = claim(client, run["id"])
    record = epoch_record(1)
    missing = client.post(f"/api/runs/{run['id']}/epochs", json={"attempt": attempt, "record": record}, headers=WORKER)
    assert missing.status_code == 422 and missing.json()["detail"][0]["field"] == "lease"
    forged = {"attempt": attempt, "lease": "guessed", "record": record}
    response = client.post(f"/api/runs/{run['id']}/epochs", json=forged, headers=WORKER)
    assert response.status_code == 409 and "does not carry the lease" in response.json()["detail"]
    cancelled = {
        "attempt": attempt,
        "lease": lease,
        "result": {"stopped": "cancelled", "epochs_run": 0, "total_seconds": 1},
    }
    refused = client.post(f"/api/runs/{run['id']}/finish", json=cancelled, headers=WORKER)
    assert refused.status_code == 409 and "nobody asked to cancel it" in refused.json()["detail"]
    assert client.get(f"/api/runs/{run['id']}", headers=API).json()["status"] == "running"


def test_the_health_route_answers_when_the_database_does(client: Any) -> None:
    assert client.get("/api/health", headers=API).json()["status"] == "ok"
