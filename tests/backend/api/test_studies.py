"""The studies REST API on SQLite and PostgreSQL: variants by dotted path or whole spec, a global override,
presets, one 422 naming every bad variant with nothing queued, limits, listing with counts, preview, auth."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import API, API_TOKEN, WORKER
from trainboard.presets import presets

BASE = {
    "dataset": {"name": "digits"},
    "model": {"arch": "cnn", "channels": [8, 16], "kernel_sizes": [3, 3]},
    "epochs": 3,
    "device": "cpu",
}


def study(**body: Any) -> dict[str, Any]:
    return {"name": "kernels", "base": BASE} | body


def create(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/studies", json=body, headers=API)
    assert response.status_code == 201, response.text
    return dict(response.json())


def counts(client: Any) -> tuple[int, int]:
    """(studies, runs) in the database."""
    studies = client.get("/api/studies", headers=API).json()["count"]
    return studies, client.get("/api/runs", headers=API).json()["count"]


def test_dotted_sets_make_each_variant_in_order(client: Any) -> None:
    created = create(
        client,
        study(
            description="kernel sizes",
            variants=[
                {"label": "k3"},
                {"label": "kernel=5", "set": {"model.kernel_sizes": [5, 5]}},
                {"label": "FC", "set": {"model": {"arch": "mlp", "hidden": [32]}}},
                {"label": "patient", "set": {"early_stopping.patience": 5, "optimizer.lr": 0.1}},
            ],
        ),
    )
    assert (created["name"], created["description"], created["preset"]) == ("kernels", "kernel sizes", None)
    assert created["runs"] == 4
    assert created["counts"] == {"queued": 4, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
    runs = created["data"]
    assert [r["label"] for r in runs] == ["k3", "kernel=5", "FC", "patient"]
    assert [r["name"] for r in runs] == ["k3", "kernel=5", "FC", "patient"]  # runs are named after their labels
    assert [r["id"] for r in runs] == sorted(r["id"] for r in runs)
    assert {r["study_id"] for r in runs} == {created["id"]}
    assert {r["status"] for r in runs} == {"queued"}
    k3, k5, fc, patient = (r["spec"] for r in runs)
    assert (k3["model"]["kernel_sizes"], k5["model"]["kernel_sizes"]) == ([3, 3], [5, 5])
    assert k5["model"]["channels"] == [8, 16]  # the rest of the base model stays
    assert fc["model"] == {"arch": "mlp", "hidden": [32], "batch_norm": False, "dropout": 0.0}  # "model" replaces it
    assert patient["early_stopping"] == {"metric": "test_acc", "patience": 5, "min_delta": 0.0, "restore_best": True}
    assert patient["optimizer"]["lr"] == 0.1 and k3["optimizer"]["lr"] == 0.01
    assert k3["early_stopping"] is None and {s["epochs"] for s in (k3, k5, fc, patient)} == {3}
    one = client.get(f"/api/runs/{runs[1]['id']}", headers=API).json()
    assert (one["study_id"], one["label"]) == (created["id"], "kernel=5")


def test_whole_spec_variants_and_the_global_override_applied_last(client: Any) -> None:
    whole = {"name": "own-name", "dataset": {"name": "digits"}, "model": {"arch": "mlp", "hidden": [16]}, "epochs": 7}
    created = create(
        client,
        study(
            variants=[
                {"label": "base", "set": {"optimizer.lr": 0.5}},
                {"label": "whole", "spec": whole, "set": {"optimizer.lr": 0.5, "batch_size": 16}},
                {"label": "unnamed", "spec": whole | {"name": ""}},
            ],
            set={"epochs": 2, "optimizer.lr": 0.05},
        ),
    )
    base, own, unnamed = (r["spec"] for r in created["data"])
    assert own["model"]["arch"] == "mlp" and own["name"] == "own-name" and unnamed["name"] == "unnamed"
    assert own["batch_size"] == 16 and base["batch_size"] == 64
    assert {s["epochs"] for s in (base, own, unnamed)} == {2}  # the global override wins over the variant's spec
    assert {s["optimizer"]["lr"] for s in (base, own, unnamed)} == {0.05}  # ...and over the variant's own set
    assert created["overrides"] == {"epochs": 2, "optimizer.lr": 0.05}


def test_every_bad_variant_is_named_in_one_422_and_nothing_is_queued(client: Any) -> None:
    response = client.post(
        "/api/studies",
        headers=API,
        json=study(
            variants=[
                {"label": "fine"},
                {"label": "one kernel", "set": {"model.kernel_sizes": [3]}},
                {"label": "two errors", "set": {"optimizer.lr": -1, "model.hidden": [0, 8]}},
                {"label": "into a number", "set": {"epochs.value": 3}},
                {"label": "into a list", "set": {"model.channels.first": 3}},
                {"label": "bad group", "set": {"finetune.train": ["fc"]}},
            ]
        ),
    )
    assert response.status_code == 422
    errors = [(e["variant"], e["label"], e["field"]) for e in response.json()["detail"]]
    assert errors == [
        (1, "one kernel", "model"),
        (2, "two errors", "model.hidden.0"),
        (2, "two errors", "optimizer.lr"),
        (3, "into a number", "epochs.value"),
        (4, "into a list", "model.channels.first"),
        (5, "bad group", "finetune.train"),
    ]
    detail = response.json()["detail"]
    assert "one kernel size per conv layer" in detail[0]["msg"]
    assert detail[3]["msg"] == "epochs is a number (3), not an object: cannot set epochs.value"
    assert detail[3]["type"] == "path"
    assert detail[4]["msg"] == "model.channels is a list, not an object: cannot set model.channels.first"
    assert "'fc' not in cnn's groups: features, classifier" in detail[5]["msg"]
    assert counts(client) == (0, 0)


def test_a_bad_global_override_path_is_one_error(client: Any) -> None:
    response = client.post(
        "/api/studies",
        headers=API,
        json=study(variants=[{"label": "a"}, {"label": "b"}], set={"model..x": 1, "epochs": 1}),
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["variant"], error["label"], error["field"], error["type"]) == (None, None, "set.model..x", "path")
    assert "not a dotted spec path" in error["msg"]
    assert counts(client) == (0, 0)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (study(variants=[{"label": f"v{i}"} for i in range(201)]), "variants", "at most 200 items"),
        (study(variants=[{"label": "x" * 81}]), "variants.0.label", "at most 80 characters"),
        (study(variants=[{"label": " "}]), "variants.0.label", "at least 1 character"),
        (
            study(variants=[{"label": "a"}, {"label": "b"}, {"label": "a"}]),
            "variants",
            "label 'a' is used by variants 0 and 2",
        ),
        (study(variants=[]), "variants", "at least 1 item"),
        (study(name="", variants=[{"label": "a"}]), "name", "needs a name"),
        ({"name": "x", "base": BASE}, "variants", "give the study's variants"),
        ({"preset": "mnist-ablations", "variants": [{"label": "a"}]}, "preset", "not both"),
        (study(variants=[{"label": "a", "set": {f"k{i}": 1 for i in range(65)}}]), "variants.0.set", "at most 64"),
        (study(variants=[{"label": "a", "sett": {}}]), "variants.0.sett", "Extra inputs"),
    ],
)
def test_limits_and_malformed_bodies_are_422(client: Any, body: dict[str, Any], field: str, words: str) -> None:
    response = client.post("/api/studies", json=body, headers=API)
    assert response.status_code == 422
    assert any(e["field"] == field and words in e["msg"] for e in response.json()["detail"]), response.json()
    assert counts(client) == (0, 0)


def test_two_hundred_variants_are_queued(client: Any) -> None:
    created = create(client, study(variants=[{"label": f"seed {i}", "set": {"seed": i}} for i in range(200)]))
    assert created["runs"] == 200
    assert [r["spec"]["seed"] for r in created["data"]] == list(range(200))


def test_a_preset_with_a_global_override(client: Any) -> None:
    overrides = {"epochs": 1, "dataset.train_limit": 512, "dataset.test_limit": 256}
    created = create(client, {"preset": "mnist-ablations", "set": overrides})
    preset = presets()["mnist-ablations"]
    assert (created["preset"], created["name"], created["overrides"]) == ("mnist-ablations", preset.title, overrides)
    assert created["description"] == preset.description
    assert [r["label"] for r in created["data"]] == [v.label for v in preset.variants]
    assert {(r["spec"]["epochs"], r["spec"]["dataset"]["train_limit"]) for r in created["data"]} == {(1, 512)}
    assert created["reported"]["Basic FC"] == {"test_acc": 0.96, "seconds": 115.84, "note": ""}
    assert created["reported"]["Base CNN lr=0.1"]["note"] == "99% already after epoch 1"
    named = create(client, {"preset": "mnist-ablations", "name": "my smoke test", "description": "tiny"})
    assert (named["name"], named["description"], named["overrides"]) == ("my smoke test", "tiny", {})


@pytest.mark.parametrize("name", ["mnist-ablations", "cifar10-models", "resnet18-finetune"])
def test_every_preset_queues_as_is_and_with_a_smoke_test_override(client: Any, name: str) -> None:
    as_is = create(client, {"preset": name})
    smoke = create(
        client, {"preset": name, "set": {"epochs": 1, "dataset.train_limit": 512, "dataset.test_limit": 256}}
    )
    count = len(presets()[name].variants)
    assert (
        as_is["runs"]
        == smoke["runs"]
        == count
        == {"mnist-ablations": 18, "cifar10-models": 12, "resnet18-finetune": 18}[name]
    )
    assert [r["spec"]["epochs"] for r in smoke["data"]] == [1] * count
    assert {r["spec"]["epochs"] for r in as_is["data"]} <= {10, 15, 20, 30}


def test_an_unknown_preset_is_422_listing_the_presets(client: Any) -> None:
    response = client.post("/api/studies", json={"preset": "imagenet-sota"}, headers=API)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["field"] == "preset"
    assert error["msg"] == (
        "unknown preset 'imagenet-sota'; the presets are: mnist-ablations, cifar10-models, resnet18-finetune"
    )


def test_studies_are_listed_newest_first_with_counts_by_status(client: Any) -> None:
    first = create(client, study(name="first", variants=[{"label": "a"}, {"label": "b"}, {"label": "c"}]))
    second = create(client, study(name="second", variants=[{"label": "only"}]))
    running = first["data"][0]["id"]
    assert client.post(f"/api/runs/{running}/claim", json={"worker": "t:1"}, headers=WORKER).status_code == 200
    assert client.post(f"/api/runs/{first['data'][1]['id']}/cancel", headers=API).status_code == 200

    listed = client.get("/api/studies", headers=API).json()
    assert listed["count"] == 2
    assert [s["name"] for s in listed["data"]] == ["second", "first"]
    assert listed["data"][1]["counts"] == {"queued": 1, "running": 1, "succeeded": 0, "failed": 0, "cancelled": 1}
    assert listed["data"][1]["runs"] == 3 and listed["data"][0]["runs"] == 1
    assert "data" not in listed["data"][0]  # the list does not carry every run
    page = client.get("/api/studies?offset=1&limit=1", headers=API).json()
    assert [s["id"] for s in page["data"]] == [first["id"]] and page["count"] == 2

    detail = client.get(f"/api/studies/{first['id']}", headers=API).json()
    statuses = [(r["label"], r["status"]) for r in detail["data"]]
    assert statuses == [("a", "running"), ("b", "cancelled"), ("c", "queued")]
    assert detail["data"][0]["progress"] == {"epoch": 0, "batch": 0, "batches": 0}
    assert detail["data"][0]["summary"]["epochs_done"] == 0
    assert client.get(f"/api/studies/{second['id']}", headers=API).json()["counts"]["queued"] == 1


def test_an_unknown_study_is_404(client: Any) -> None:
    response = client.get("/api/studies/999", headers=API)
    assert response.status_code == 404
    assert response.json() == {"detail": "study 999 not found"}
    assert client.get("/api/studies/0", headers=API).status_code == 404  # names no study, like any unknown id


def test_preview_resolves_every_run_and_queues_nothing(client: Any) -> None:
    response = client.post(
        "/api/studies/preview", json={"preset": "resnet18-finetune", "set": {"epochs": 1}}, headers=API
    )
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["count"] == len(preview["data"]) == 18 and preview["preset"] == "resnet18-finetune"
    fc_l4 = next(run for run in preview["data"] if run["label"] == "FC + L4")
    assert fc_l4["spec"]["finetune"]["train"] == ["fc", "layer4"] and fc_l4["spec"]["epochs"] == 1
    assert fc_l4["settings"] == {
        "data": "cifar10 32x32, normalize explicit: mean 0.4914, 0.4822, 0.4465; std 0.2023, 0.1994, 0.201, "
        "augment random_crop + hflip",
        "model": "resnet18 pretrained, mlp head 256, dropout 0.5",
        "training": "adam lr 0.0001; trains fc, layer4; lr fc 0.01, layer4 0.0001; cosine",
        "epochs": "1 epoch, batch 64",
    }
    assert fc_l4["parameters"] == 11_176_512 + (512 * 256 + 256) + (256 * 10 + 10)
    assert fc_l4["reported"] == {"test_acc": 0.66, "seconds": 285.3, "note": "the best of three lr pairs"}
    resized = next(run for run in preview["data"] if run["label"] == "R224 FC + L4 + early stopping")
    assert resized["settings"]["data"].startswith("cifar10 224x224 (resized)")
    assert resized["settings"]["epochs"] == "1 epoch, batch 64, early stopping on test_acc (patience 3)"

    bad = client.post("/api/studies/preview", json=study(variants=[{"label": "x", "set": {"epochs": 0}}]), headers=API)
    assert bad.status_code == 422
    assert [(e["variant"], e["field"]) for e in bad.json()["detail"]] == [(0, "epochs")]
    assert counts(client) == (0, 0)


def test_presets_are_listed_with_reported_figures_and_readable_in_full(client: Any) -> None:
    listed = client.get("/api/presets", headers=API).json()
    assert [(p["name"], p["runs"]) for p in listed["data"]] == [
        ("mnist-ablations", 18),
        ("cifar10-models", 12),
        ("resnet18-finetune", 18),
    ]
    cifar = listed["data"][1]
    assert cifar["table"] == "Table 2: CIFAR-10"
    assert cifar["variants"][3] == {"label": "ResNet18", "reported": {"test_acc": 0.81, "seconds": 300.29, "note": ""}}
    full = client.get("/api/presets/cifar10-models", headers=API).json()
    assert full["base"]["optimizer"] == {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0001}
    assert full["variants"][1]["set"] == {"scheduler": {"name": "multistep", "milestones": [10, 15], "gamma": 0.1}}
    missing = client.get("/api/presets/nope", headers=API)
    assert missing.status_code == 404 and missing.json() == {"detail": "preset 'nope' not found"}


def test_study_routes_need_the_api_token_or_a_session_with_csrf(client: Any) -> None:
    body = study(variants=[{"label": "a"}])
    for method, path in [
        ("GET", "/api/studies"),
        ("GET", "/api/studies/1"),
        ("POST", "/api/studies"),
        ("POST", "/api/studies/preview"),
        ("GET", "/api/presets"),
        ("GET", "/api/presets/x"),
    ]:
        response = client.request(method, path, json=body if method == "POST" else None)
        assert response.status_code == 401, path
    login = client.get(f"/?token={API_TOKEN}", follow_redirects=False)
    client.cookies.update(login.cookies)
    assert client.get("/api/studies").status_code == 200  # a logged-in browser reads
    assert client.post("/api/studies", json=body).status_code == 403  # but writes only with the CSRF header
    assert client.post("/api/studies/preview", json=body).status_code == 403
    match = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/studies/new").text)
    assert match
    assert client.post("/api/studies", json=body, headers={"X-CSRF-Token": match.group(1)}).status_code == 201


def test_openapi_documents_the_study_routes_with_examples(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    create_op = schema["paths"]["/api/studies"]["post"]
    examples = create_op["requestBody"]["content"]["application/json"]["examples"]
    assert examples["preset"]["value"] == {
        "preset": "mnist-ablations",
        "set": {"epochs": 1, "dataset.train_limit": 512, "dataset.test_limit": 256},
    }
    assert "variants" in examples
    assert "422" in create_op["responses"] and "201" in create_op["responses"]
    for path in ("/api/studies/{study_id}", "/api/studies/preview", "/api/presets", "/api/presets/{name}"):
        assert path in schema["paths"]
    assert schema["components"]["schemas"]["StudyCreate"]["examples"]


def test_outsized_documents_and_error_floods_are_bounded(client: Any) -> None:
    huge = {"dataset": {"name": "digits"}, "model": {"arch": "mlp"}, "notes": "x" * 70_000}
    response = client.post(
        "/api/studies", json={"name": "big", "base": huge, "variants": [{"label": "a"}]}, headers=API
    )
    assert response.status_code == 422 and "over the limit of 65,536" in response.text
    bad_base = {"dataset": {"name": "digits"}, "model": {"arch": "mlp"}} | {f"typo{i}": 1 for i in range(30)}
    variants = [{"label": f"v{i}"} for i in range(20)]
    flood = client.post("/api/studies", json={"name": "flood", "base": bad_base, "variants": variants}, headers=API)
    assert flood.status_code == 422
    errors = flood.json()["detail"]
    assert len(errors) == 101 and errors[-1]["type"] == "too_many_errors"
    assert "stopped checking with 16 variant(s) left" in errors[-1]["msg"]
    assert client.get("/api/studies", headers=API).json()["count"] == 0


def test_the_runs_list_filters_by_study(client: Any) -> None:
    base = {"dataset": {"name": "digits"}, "model": {"arch": "mlp", "hidden": [8]}}
    first = client.post(
        "/api/studies", json={"name": "one", "base": base, "variants": [{"label": "a"}, {"label": "b"}]}, headers=API
    ).json()
    client.post("/api/studies", json={"name": "two", "base": base, "variants": [{"label": "c"}]}, headers=API)
    listed = client.get(f"/api/runs?study={first['id']}", headers=API).json()
    assert listed["count"] == 2 and {r["label"] for r in listed["data"]} == {"a", "b"}
    page = client.get(f"/?study={first['id']}&token={API_TOKEN}", follow_redirects=True)
    assert page.status_code == 200 and "2 runs match" in page.text
