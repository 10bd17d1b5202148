"""Custom models at the API: workers advertise the names they offer with their heartbeat (stored, listed), and
a run or a study naming a custom model no live worker offers is refused with 422 on `model.name`, listing the
names they do; a name a live worker offers is queued."""

from __future__ import annotations

from typing import Any

from tests.backend.api.test_workers import beat, listed, silence
from tests.conftest import API, tiny_spec

CUSTOM = tiny_spec(model={"arch": "custom", "name": "SmallNet", "kwargs": {"width": 4}})


def test_the_heartbeat_carries_the_offered_models_and_the_list_shows_them(client: Any) -> None:
    beat(client, models=["SmallNet", "WideNet"])
    (worker,) = listed(client)
    assert worker["models"] == ["SmallNet", "WideNet"]
    beat(client, models=[])  # the next heartbeat says what it offers now
    assert listed(client)[0]["models"] == []


def test_a_heartbeat_with_a_bad_model_name_is_refused(client: Any) -> None:
    body = {"models": ["mypkg.nets:SmallNet"]}
    response = client.post("/api/workers/heartbeat", json=body, headers=API)
    assert response.status_code in (401, 403, 422)  # not even a worker's token
    from tests.conftest import WORKER, ghost_heartbeat

    bad = client.post("/api/workers/heartbeat", json=ghost_heartbeat(1, models=["a.b:C"]), headers=WORKER)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"].startswith("models")
    many = client.post(
        "/api/workers/heartbeat", json=ghost_heartbeat(1, models=[f"M{i}" for i in range(65)]), headers=WORKER
    )
    assert many.status_code == 422


def test_a_run_naming_a_model_no_live_worker_offers_is_422_on_model_name(client: Any) -> None:
    none = client.post("/api/runs", json=CUSTOM, headers=API)
    assert none.status_code == 422, none.text
    (error,) = none.json()["detail"]
    assert error["field"] == "model.name"
    assert "no live worker offers a model named 'SmallNet'; live workers offer: none" in error["msg"]

    beat(client, models=["TinyNet", "WideNet"])
    other = client.post("/api/runs", json=CUSTOM, headers=API)
    assert other.status_code == 422
    assert other.json()["detail"][0]["msg"].endswith("live workers offer: TinyNet, WideNet")

    beat(client, "cpu1@lab", models=["SmallNet"])
    made = client.post("/api/runs", json=CUSTOM, headers=API)
    assert made.status_code == 201, made.text
    assert made.json()["spec"]["model"] == {"arch": "custom", "name": "SmallNet", "kwargs": {"width": 4}}

    silence(client, "cpu1@lab", 10_000)  # gone: its models are no longer on offer
    assert client.post("/api/runs", json=CUSTOM, headers=API).status_code == 422
    assert client.get("/api/runs", headers=API).json()["count"] == 1


def test_a_study_names_each_variant_whose_model_no_live_worker_offers(client: Any) -> None:
    beat(client, models=["SmallNet"])
    body = {
        "name": "mine",
        "base": CUSTOM,
        "variants": [{"label": "ok"}, {"label": "other", "set": {"model.name": "WideNet"}}],
    }
    for route in ("/api/studies/preview", "/api/studies"):
        response = client.post(route, json=body, headers=API)
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert (error["variant"], error["label"], error["field"]) == (1, "other", "model.name")
        assert "'WideNet'" in error["msg"] and "live workers offer: SmallNet" in error["msg"]
    body["variants"] = [{"label": "ok"}]
    preview = client.post("/api/studies/preview", json=body, headers=API)
    assert preview.status_code == 200, preview.text
    assert preview.json()["data"][0]["settings"]["model"] == "custom SmallNet, width 4"
