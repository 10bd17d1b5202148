"""The runs REST API on SQLite and PostgreSQL: create, list, read, metrics, confusion, cancel, errors, auth."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import API, WORKER, epoch_record, tiny_spec


def create(client: Any, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post("/api/runs", json=spec or tiny_spec(), headers=API)
    assert response.status_code == 201, response.text
    return dict(response.json())


def claim(client: Any, run_id: int) -> tuple[int, str]:
    """Claim the run as a worker would: (the attempt, its lease), which every later message carries."""
    response = client.post(f"/api/runs/{run_id}/claim", json={"worker": "test:1"}, headers=WORKER)
    assert response.status_code == 200, response.text
    return int(response.json()["attempt"]), str(response.json()["lease"])


def test_create_fills_defaults_and_queues(client: Any) -> None:
    run = create(client, {"dataset": {"name": "digits"}, "model": {"arch": "mlp"}})
    assert run["status"] == "queued"
    assert run["attempt"] == 0
    assert run["name"] == "mlp-digits"
    assert run["spec"]["epochs"] == 10
    assert run["spec"]["optimizer"] == {
        "name": "sgd",
        "lr": 0.01,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 0.0,
    }
    assert run["spec"]["model"] == {"arch": "mlp", "hidden": [128, 64], "batch_norm": False, "dropout": 0.0}
    assert run["spec"]["scheduler"] == {"name": "none"}
    assert run["spec"]["early_stopping"] is None
    assert run["summary"]["best_test_acc"] is None


def test_list_newest_first_with_count_and_paging(client: Any) -> None:
    ids = [create(client, tiny_spec(name=f"run-{i}"))["id"] for i in range(3)]
    body = client.get("/api/runs", headers=API).json()
    assert body["count"] == 3
    assert [r["id"] for r in body["data"]] == ids[::-1]
    page = client.get("/api/runs?offset=1&limit=1", headers=API).json()
    assert [r["name"] for r in page["data"]] == ["run-1"]


def test_read_run_and_unknown_run(client: Any) -> None:
    run = create(client)
    assert client.get(f"/api/runs/{run['id']}", headers=API).json()["name"] == "tiny-mlp"
    for path in ("", "/metrics", "/confusion", "/events"):
        response = client.get(f"/api/runs/999{path}", headers=API)
        assert response.status_code == 404, path
        assert response.json()["detail"] == "run 999 not found"
    assert client.post("/api/runs/999/cancel", headers=API).status_code == 404


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"dataset": {"name": "digits"}}, "model", "Field required"),
        ({"dataset": {"name": "imagenet"}, "model": {"arch": "mlp"}}, "dataset.name", "'digits'"),
        (
            {"dataset": {"name": "digits"}, "model": {"arch": "mlp", "hidden": [64, 0]}},
            "model.hidden.1",
            "greater than or equal to 1",
        ),
        (
            {"dataset": {"name": "digits"}, "model": {"arch": "cnn", "channels": [8, "x"]}},
            "model.channels.1",
            "valid integer",
        ),
        (
            {"dataset": {"name": "digits"}, "model": {"arch": "mlp"}, "epochs": 100000},
            "epochs",
            "less than or equal to 1000",
        ),
        (
            {"dataset": {"name": "digits"}, "model": {"arch": "mlp"}, "batch_size": 0},
            "batch_size",
            "greater than or equal to 1",
        ),
        (
            {"dataset": {"name": "digits"}, "model": {"arch": "mlp"}, "optimizer": {"lr": -1}},
            "optimizer.lr",
            "greater than 0",
        ),
        ({"dataset": {"name": "digits"}, "model": {"arch": "mlp"}, "epoch": 3}, "epoch", "Extra inputs"),
        (
            {"dataset": {"name": "digits"}, "model": {"arch": "transformer"}},
            "model",
            "does not match any of the expected tags",
        ),
        ({"dataset": {"name": "digits"}, "model": {"arch": "mlp", "hidden": [8192] * 16}}, "model", "over the limit"),
        (
            {"dataset": {"name": "digits"}, "model": {"arch": "mlp", "batch_norm": True}, "batch_size": 1},
            "batch_size",
            "batch norm needs at least 2",
        ),
        (
            {"dataset": {"name": "digits"}, "model": {"arch": "cnn", "kernel_sizes": [3]}},
            "model",
            "one kernel size per conv",
        ),
        ({"dataset": {"name": "digits"}, "model": {"arch": "mlp"}, "device": "tpu"}, "device", "pattern"),
        (
            {"dataset": {"name": "cifar10"}, "model": {"arch": "resnet18"}, "finetune": {"train": ["fc", "fc"]}},
            "finetune.train",
            "'fc' named more than once",
        ),
        (
            {"dataset": {"name": "digits", "train_limit": 1}, "model": {"arch": "mlp", "batch_norm": True}},
            "batch_size",
            "batch norm needs at least 2 images per batch",
        ),
    ],
)
def test_bad_spec_is_422_with_field_path(client: Any, spec: dict[str, Any], field: str, words: str) -> None:
    response = client.post("/api/runs", json=spec, headers=API)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(e["field"] == field and words in e["msg"] for e in errors), errors
    assert client.get("/api/runs", headers=API).json()["count"] == 0


def test_cnn_that_shrinks_images_to_nothing_is_refused(client: Any) -> None:
    # An even kernel loses one pixel per conv ('same' padding needs an odd one): 8 convs take 8x8 digits to 0x0
    # but leave 28x28 MNIST at 20x20 (10x10 after pooling).
    model = {"arch": "cnn", "channels": [4] * 8, "kernel_sizes": [2] * 8}
    response = client.post("/api/runs", json={"dataset": {"name": "digits"}, "model": model}, headers=API)
    assert response.status_code == 422
    assert "reduces the 8x8 images of digits to nothing" in response.text
    assert client.post("/api/runs", json={"dataset": {"name": "mnist"}, "model": model}, headers=API).status_code == 201


def test_metrics_and_summary_follow_reported_epochs(client: Any) -> None:
    run = create(client)
    attempt, lease = claim(client, run["id"])
    for epoch, acc in ((1, 0.6), (2, 0.8), (3, 0.7)):
        body = {"attempt": attempt, "lease": lease, "record": epoch_record(epoch, test_acc=acc)}
        assert client.post(f"/api/runs/{run['id']}/epochs", json=body, headers=WORKER).json() == {"created": True}
    metrics = client.get(f"/api/runs/{run['id']}/metrics", headers=API).json()
    assert [m["epoch"] for m in metrics["data"]] == [1, 2, 3]
    assert metrics["data"][1]["per_class_acc"] == [0.8] * 10
    summary = client.get(f"/api/runs/{run['id']}", headers=API).json()["summary"]
    assert summary == {
        "best_test_acc": 0.8,
        "best_epoch": 2,
        "final_test_acc": 0.7,
        "final_epoch": None,  # set when the run ends
        "epochs_done": 3,
        "total_seconds": 1.5,
        "stop_reason": None,
    }


def test_confusion_is_null_until_finished(client: Any) -> None:
    run = create(client)
    attempt, lease = claim(client, run["id"])
    assert client.get(f"/api/runs/{run['id']}/confusion", headers=API).json()["matrix"] is None
    matrix = [[5 if i == j else 0 for j in range(10)] for i in range(10)]
    result = {"stopped": "completed", "epochs_run": 1, "confusion": matrix, "total_seconds": 3.0, "device": "cpu"}
    client.post(
        f"/api/runs/{run['id']}/finish", json={"attempt": attempt, "lease": lease, "result": result}, headers=WORKER
    )
    body = client.get(f"/api/runs/{run['id']}/confusion", headers=API).json()
    assert body["matrix"] == matrix
    assert body["classes"] == [str(i) for i in range(10)]


def test_cancel_queued_run_is_immediate(client: Any) -> None:
    run = create(client)
    cancelled = client.post(f"/api/runs/{run['id']}/cancel", headers=API).json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["finished_at"] is not None
    # A worker that receives the message afterwards cannot claim it.
    assert client.post(f"/api/runs/{run['id']}/claim", json={"worker": "w"}, headers=WORKER).status_code == 409
    again = client.post(f"/api/runs/{run['id']}/cancel", headers=API)
    assert again.status_code == 409
    assert "already ended" in again.json()["detail"]


def test_cancel_running_run_is_cooperative(client: Any) -> None:
    run = create(client)
    attempt, lease = claim(client, run["id"])
    flagged = client.post(f"/api/runs/{run['id']}/cancel", headers=API).json()
    assert (flagged["status"], flagged["cancel_requested"]) == ("running", True)
    beat = {"attempt": attempt, "lease": lease, "progress": {"epoch": 1, "batch": 3, "batches": 8}}
    assert client.post(f"/api/runs/{run['id']}/progress", json=beat, headers=WORKER).json() == {"cancel": True}
    result = {"stopped": "cancelled", "epochs_run": 0, "total_seconds": 1.0}
    done = client.post(
        f"/api/runs/{run['id']}/finish", json={"attempt": attempt, "lease": lease, "result": result}, headers=WORKER
    )
    assert done.json() == {"status": "cancelled"}


def test_api_needs_a_token(client: Any) -> None:
    assert client.get("/api/runs").status_code == 401
    assert client.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/api/runs", json=tiny_spec(), headers=WORKER).status_code == 401
    assert client.get("/api/runs", headers=API).status_code == 200


def test_openapi_documents_the_spec(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    assert "/api/runs" in schema["paths"]
    assert "RunSpec" in schema["components"]["schemas"]
    assert schema["components"]["schemas"]["RunSpec"]["examples"][0]["name"] == "basic-cnn"


def test_oversized_bodies_are_refused_before_parsing(client: Any) -> None:
    huge = b'{"name": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    response = client.post("/api/runs", content=huge, headers=API | {"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "over the limit" in response.json()["detail"]

    def chunks() -> Any:  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b"x" * (1024 * 1024)

    streamed = client.post("/api/runs", content=chunks(), headers=API | {"Content-Type": "application/json"})
    assert streamed.status_code == 413


def test_a_repeated_epoch_report_changes_nothing(client: Any) -> None:
    run = create(client)
    attempt, lease = claim(client, run["id"])
    body = {"attempt": attempt, "lease": lease, "record": epoch_record(1)}
    assert client.post(f"/api/runs/{run['id']}/epochs", json=body, headers=WORKER).json() == {"created": True}
    retry = body | {"record": epoch_record(1, test_acc=0.9)}
    assert client.post(f"/api/runs/{run['id']}/epochs", json=retry, headers=WORKER).json() == {"created": False}
    metrics = client.get(f"/api/runs/{run['id']}/metrics", headers=API).json()
    assert metrics["count"] == 1 and metrics["data"][0]["test_acc"] == 0.5
    summary = client.get(f"/api/runs/{run['id']}", headers=API).json()["summary"]
    assert (summary["total_seconds"], summary["epochs_done"], summary["best_test_acc"]) == (0.5, 1, 0.5)


def test_a_nan_epoch_is_refused_not_stored_as_null(client: Any) -> None:
    run = create(client)
    attempt, lease = claim(client, run["id"])
    record = epoch_record(1) | {"train_loss": "NaN"}
    response = client.post(
        f"/api/runs/{run['id']}/epochs", json={"attempt": attempt, "lease": lease, "record": record}, headers=WORKER
    )
    assert response.status_code == 422
    assert client.get(f"/api/runs/{run['id']}/metrics", headers=API).json()["count"] == 0


def test_a_winning_worker_may_claim_again_a_loser_may_not(client: Any) -> None:
    run = create(client)
    first = client.post(f"/api/runs/{run['id']}/claim", json={"worker": "a:1"}, headers=WORKER).json()
    again = client.post(f"/api/runs/{run['id']}/claim", json={"worker": "a:1"}, headers=WORKER)
    assert again.status_code == 200 and again.json()["attempt"] == first["attempt"] == 1
    assert client.post(f"/api/runs/{run['id']}/claim", json={"worker": "b:2"}, headers=WORKER).status_code == 409


def test_non_ascii_credentials_are_refused_not_500(client: Any) -> None:
    # Raw latin-1 bytes, as any client may send them: the server sees non-ASCII text.
    assert (
        client.get(
            "/api/runs", headers={"Cookie": "trainboard_session=sid.\u00e9t\u00e9".encode("latin-1")}
        ).status_code
        == 401
    )
    assert client.get("/api/runs", headers={"Authorization": "Bearer \u00e9".encode("latin-1")}).status_code == 401


def test_run_info_is_stored_for_the_current_attempt(client: Any) -> None:
    run = create(client)
    attempt, lease = claim(client, run["id"])
    info = {
        "train_images": 512,
        "test_images": 256,
        "image_size": [1, 8, 8],
        "mean": [0.3],
        "std": [0.4],
        "normalize": "computed",
        "parameters": 2410,
        "trainable_parameters": 2410,
        "device": "cpu",
    }
    stale = client.post(
        f"/api/runs/{run['id']}/info", json={"attempt": attempt + 1, "lease": lease, "info": info}, headers=WORKER
    )
    assert stale.status_code == 409
    assert (
        client.post(
            f"/api/runs/{run['id']}/info", json={"attempt": attempt, "lease": lease, "info": info}, headers=WORKER
        ).status_code
        == 200
    )
    stored = client.get(f"/api/runs/{run['id']}", headers=API).json()
    assert stored["info"] == info | {"lr_groups": [], "environment": None, "data_sha256": None}
    assert stored["device"] == "cpu"


def test_list_filters_searches_sorts_and_pages(client: Any) -> None:
    ids = {}
    for name, dataset, arch in (("alpha", "digits", "mlp"), ("beta", "mnist", "cnn"), ("gamma", "digits", "cnn")):
        model = {"arch": arch} if arch == "cnn" else {"arch": "mlp", "hidden": [16]}
        ids[name] = create(client, tiny_spec(name=name, dataset={"name": dataset}, model=model))["id"]
    client.patch(
        f"/api/runs/{ids['beta']}", json={"tags": ["baseline", "fast"], "notes": "Lower LR next time"}, headers=API
    )
    client.patch(f"/api/runs/{ids['gamma']}", json={"tags": ["fast-ish"]}, headers=API)
    client.post(f"/api/runs/{ids['alpha']}/cancel", headers=API)

    def names(query: str) -> list[str]:
        body = client.get(f"/api/runs?{query}", headers=API).json()
        assert body["count"] == len(body["data"]) or "limit" in query
        return [r["name"] for r in body["data"]]

    assert names("") == ["gamma", "beta", "alpha"]
    assert names("sort=created") == ["alpha", "beta", "gamma"]
    assert names("sort=-name") == ["gamma", "beta", "alpha"]
    assert names("dataset=digits") == ["gamma", "alpha"]
    assert names("arch=cnn&dataset=digits") == ["gamma"]
    assert names("status=cancelled") == ["alpha"]
    assert names("tag=fast") == ["beta"]  # not "fast-ish"
    assert names("q=lower%20lr") == ["beta"]  # notes, case-insensitive
    assert names("q=AMM") == ["gamma"]
    page = client.get("/api/runs?limit=1&offset=1&sort=name", headers=API).json()
    assert (page["count"], [r["name"] for r in page["data"]]) == (3, ["beta"])
    assert client.get("/api/runs?sort=secret", headers=API).status_code == 422
    assert client.get("/api/runs?tag=Bad%20Tag", headers=API).status_code == 422


def test_tags_and_notes_are_edited_and_validated(client: Any) -> None:
    run = create(client)
    updated = client.patch(f"/api/runs/{run['id']}", json={"tags": ["b", "a", "b"], "notes": "first try"}, headers=API)
    assert (updated.json()["tags"], updated.json()["notes"]) == (["a", "b"], "first try")
    assert client.patch(f"/api/runs/{run['id']}", json={"notes": "second"}, headers=API).json()["tags"] == ["a", "b"]
    bad = client.patch(f"/api/runs/{run['id']}", json={"tags": ["UPPER"]}, headers=API)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "tags.0"


CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]


@pytest.mark.parametrize(
    ("normalize", "field", "words"),
    [
        ({"mean": [0.5], "std": CIFAR_STD}, "dataset.normalize.mean", "cifar10 has 3 channels: give 3 values"),
        ({"mean": CIFAR_MEAN, "std": [0.2, 0.2]}, "dataset.normalize.std", "give 3 values, one per channel, not 2"),
        ({"mean": CIFAR_MEAN, "std": [0.2, 0.0, 0.2]}, "dataset.normalize.std.1", "greater than or equal to 0.001"),
        ({"mean": CIFAR_MEAN, "std": [0.2, 0.2, -0.2]}, "dataset.normalize.std.2", "greater than or equal to 0.001"),
        ({"mean": [0.5, float("nan"), 0.5], "std": CIFAR_STD}, "dataset.normalize.mean.1", "finite number"),
        ({"mean": CIFAR_MEAN, "std": [float("nan")] * 3}, "dataset.normalize.std.0", "finite number"),
        ({"mean": CIFAR_MEAN, "std": [0.2, "Infinity", 0.2]}, "dataset.normalize.std.1", "finite number"),
        ({"mean": ["nan", 0.5, 0.5], "std": CIFAR_STD}, "dataset.normalize.mean.0", "finite number"),
        ({"mean": [0.5] * 5, "std": CIFAR_STD}, "dataset.normalize.mean", "at most 4 items"),
        ({"mean": CIFAR_MEAN}, "dataset.normalize.std", "Field required"),
        ({"mean": CIFAR_MEAN, "std": CIFAR_STD, "max": 1}, "dataset.normalize.max", "Extra inputs"),
        ("exact", "dataset.normalize", "'none', 'standard' or 'computed'"),
    ],
)
def test_explicit_normalisation_is_checked_per_channel(client: Any, normalize: Any, field: str, words: str) -> None:
    spec = {"dataset": {"name": "cifar10", "normalize": normalize}, "model": {"arch": "mlp"}}
    # NaN goes as the NaN that Python's JSON writes and reads (not standard JSON, which has none)
    body = json.dumps(spec, allow_nan=True)
    response = client.post("/api/runs", content=body, headers=API | {"Content-Type": "application/json"})
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(e["field"] == field and words in e["msg"] for e in errors), errors
    assert client.get("/api/runs", headers=API).json()["count"] == 0


def test_explicit_normalisation_is_stored_as_given_and_one_channel_takes_one_value(client: Any) -> None:
    normalize = {"mean": CIFAR_MEAN, "std": CIFAR_STD}
    run = create(client, {"dataset": {"name": "cifar10", "normalize": normalize}, "model": {"arch": "mlp"}})
    assert run["spec"]["dataset"]["normalize"] == normalize
    assert client.get(f"/api/runs/{run['id']}", headers=API).json()["spec"]["dataset"]["normalize"] == normalize
    digits = {"name": "digits", "normalize": {"mean": [0.3], "std": [0.2]}}
    assert create(client, {"dataset": digits, "model": {"arch": "mlp"}})["spec"]["dataset"] == digits | {
        "resize": None,
        "train_limit": None,
        "test_limit": None,
    }
    three = {"name": "digits", "normalize": normalize}
    response = client.post("/api/runs", json={"dataset": three, "model": {"arch": "mlp"}}, headers=API)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "dataset.normalize.mean"
    assert "digits has 1 channel: give 1 value, one per channel, not 3" in response.json()["detail"][0]["msg"]
