"""Seeds, sweeps and a study's summary and report, on SQLite and PostgreSQL: repeats as consecutive seeds
under one label with mean ± std as numpy computes it, a grid as a study (order, labels, size limit,
preview), the summary exports and report.md."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pytest

from tests.backend.api.test_runs import claim
from tests.conftest import API, WORKER, epoch_record

BASE = {
    "dataset": {"name": "digits"},
    "model": {"arch": "mlp", "hidden": [16]},
    "epochs": 2,
    "seed": 7,
    "device": "cpu",
}


def post(client: Any, url: str, body: dict[str, Any], code: int = 201) -> dict[str, Any]:
    response = client.post(url, json=body, headers=API)
    assert response.status_code == code, response.text
    return dict(response.json())


def finish(client: Any, run_id: int, accs: list[float], seconds: float, early: bool = False) -> None:
    attempt, lease = claim(client, run_id)
    for epoch, acc in enumerate(accs, start=1):
        record = epoch_record(epoch, test_acc=acc) | {"per_class_acc": [acc - i / 100 for i in range(10)]}
        body = {"attempt": attempt, "lease": lease, "record": record}
        assert client.post(f"/api/runs/{run_id}/epochs", json=body, headers=WORKER).status_code == 200
    result = {"stopped": "early_stopped" if early else "completed", "epochs_run": len(accs), "total_seconds": seconds}
    if early:
        result["stop_reason"] = "no improvement"
    assert (
        client.post(
            f"/api/runs/{run_id}/finish", json={"attempt": attempt, "lease": lease, "result": result}, headers=WORKER
        ).status_code
        == 200
    )


def test_repeats_queue_consecutive_seeds_under_one_label(client: Any) -> None:
    created = post(
        client,
        "/api/studies",
        {
            "name": "seeds",
            "base": BASE,
            "repeats": 2,
            "variants": [{"label": "three", "repeats": 3}, {"label": "default"}, {"label": "one", "repeats": 1}],
        },
    )
    runs = created["data"]
    assert [(r["label"], r["repeat"], r["spec"]["seed"]) for r in runs] == [
        ("three", 0, 7),
        ("three", 1, 8),
        ("three", 2, 9),
        ("default", 0, 7),
        ("default", 1, 8),
        ("one", 0, 7),
    ]
    assert [(g["label"], len(g["run_ids"]), g["succeeded"], g["best_test_acc"]) for g in created["groups"]] == [
        ("three", 3, 0, None),
        ("default", 2, 0, None),
        ("one", 1, 0, None),
    ]
    one = client.get(f"/api/runs/{runs[1]['id']}", headers=API).json()
    assert (one["label"], one["repeat"]) == ("three", 1)


def test_repeats_over_the_run_limit_are_refused(client: Any) -> None:
    body = {"name": "big", "base": BASE, "repeats": 20, "variants": [{"label": f"v{i}"} for i in range(11)]}
    response = client.post("/api/studies", json=body, headers=API)
    assert response.status_code == 422
    assert "220 runs" in response.json()["detail"][0]["msg"] and "limit is 200" in response.json()["detail"][0]["msg"]
    assert (
        client.post(
            "/api/studies", json={"name": "x", "base": BASE, "variants": [{"label": "a", "repeats": 21}]}, headers=API
        ).status_code
        == 422
    )


def test_study_means_and_stds_equal_numpy_over_the_stored_numbers(client: Any) -> None:
    created = post(
        client,
        "/api/studies",
        {"name": "seeds", "base": BASE, "variants": [{"label": "seeded", "repeats": 3}, {"label": "single"}]},
    )
    ids = [r["id"] for r in created["data"]]
    finish(client, ids[0], [0.61, 0.83], 12.5)
    finish(client, ids[1], [0.72, 0.79], 11.0)
    finish(client, ids[2], [0.64, 0.91], 14.25, early=True)
    finish(client, ids[3], [0.5, 0.55], 9.0)
    detail = client.get(f"/api/studies/{created['id']}", headers=API).json()
    runs = {r["id"]: r["summary"] for r in detail["data"]}
    seeded, single = detail["groups"]
    for field in ("best_test_acc", "final_test_acc", "total_seconds"):
        stored = [runs[i][field] for i in ids[:3]]
        assert seeded[field]["mean"] == pytest.approx(np.mean(stored))
        assert seeded[field]["std"] == pytest.approx(np.std(stored, ddof=1))
        assert seeded[field]["n"] == 3
    assert single["best_test_acc"] == {"mean": 0.55, "std": None, "n": 1}  # one seed: no spread

    summary = client.get(f"/api/studies/{created['id']}/summary?summary=best", headers=API).json()
    assert [(row["label"], row["n"], row["early_stops"]) for row in summary["rows"]] == [
        ("seeded", 3, 1),
        ("single", 1, 0),
    ]
    assert summary["rows"][0]["test_acc"]["std"] == pytest.approx(np.std([0.83, 0.79, 0.91], ddof=1))
    assert summary["rows"][0]["run_ids"] == ids[:3] and "mean ± sample std" in summary["caption"]

    text = client.get(f"/api/studies/{created['id']}/summary?format=csv&summary=last", headers=API)
    assert text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.text)))
    assert [row["Version"] for row in rows] == ["seeded", "single"]
    # Percent, as the header says, to two decimals; one run (`single`) has no std: empty, not 0.
    assert float(rows[0]["Test acc (%)"]) == round(100 * np.mean([0.83, 0.79, 0.91]), 2) == 84.33
    assert float(rows[0]["Test acc (%) std"]) == round(100 * np.std([0.83, 0.79, 0.91], ddof=1), 2)
    assert (float(rows[1]["Test acc (%)"]), rows[1]["Test acc (%) std"], rows[1]["Epochs std"]) == (55.0, "", "")
    assert (rows[0]["n"], rows[1]["n"], float(rows[1]["Time (s)"]), rows[1]["Time (s) std"]) == (
        "3",
        "1",
        9.0,
        "",  # one run: no std
    )

    mean, std = 100 * np.mean([0.83, 0.79, 0.91]), 100 * np.std([0.83, 0.79, 0.91], ddof=1)
    md = client.get(f"/api/studies/{created['id']}/summary?format=md", headers=API).text
    assert f"| seeded | 3 | {mean:.2f} ± {std:.2f} | 2.0 ± 0.0 | 1 | 12.6 ± 1.6 | 1,000 ± 0 |" in md
    assert "| single | 1 | 55.00 | 2 | 0 | 9.0 |" in md
    tex = client.get(f"/api/studies/{created['id']}/summary?format=tex", headers=API).text
    assert f"seeded & 3 & {mean:.2f} ± {std:.2f} & 2.0 ± 0.0 & 1" in tex

    report = client.get(f"/api/studies/{created['id']}/report.md", headers=API)
    assert report.headers["content-type"].startswith("text/markdown")
    assert report.text.startswith("# seeds\n") and f"| seeded | 3 | {mean:.2f} ± {std:.2f} |" in report.text
    assert "| Class | seeded (%) | single (%) |" in report.text  # the unit in the header, cells bare
    assert f"| 1 | {100 * np.mean([0.82, 0.78, 0.90]):.2f} | 54.00 |" in report.text  # class 1: acc - 0.01


def test_a_preset_study_summary_gives_the_reported_figures(client: Any) -> None:
    created = post(client, "/api/studies", {"preset": "mnist-ablations", "set": {"epochs": 1}})
    rows = client.get(f"/api/studies/{created['id']}/summary", headers=API).json()["rows"]
    assert rows[0]["label"] == "Basic FC" and (rows[0]["reported_test_acc"], rows[0]["reported_seconds"]) == (
        0.96,
        115.84,
    )
    assert rows[0]["n"] == 0 and rows[0]["test_acc"] is None
    md = client.get(f"/api/studies/{created['id']}/summary?format=md", headers=API).text
    assert "| Basic FC | 0 | – | – | 0 | – | – | 96.00 | 115.8 |" in md


def test_a_sweep_is_the_cartesian_product_in_order(client: Any) -> None:
    body = {
        "name": "lr x batch",
        "base": BASE,
        "grid": {"optimizer.lr": [0.1, 0.01], "batch_size": [32, 64, 128]},
        "repeats": 2,
    }
    preview = post(client, "/api/sweeps/preview", body, 200)
    labels = [f"optimizer.lr={lr}, batch_size={b}" for lr in ("0.1", "0.01") for b in (32, 64, 128)]
    assert (preview["count"], preview["points"], preview["repeats"], preview["labels"]) == (12, 6, 2, labels)
    # every planned run, as a study's preview lists them: the label and seed of each, its settings in words
    assert [(r["label"], r["repeat"], r["spec"]["seed"]) for r in preview["data"][:2]] == [
        (labels[0], 0, 7),
        (labels[0], 1, 8),
    ]
    assert [r["label"] for r in preview["data"]] == [label for label in labels for _ in range(2)]
    assert preview["name"] == "lr x batch" and preview["preset"] is None
    assert preview["data"][0]["settings"]["training"].startswith("sgd lr 0.1")
    assert client.get("/api/studies", headers=API).json()["count"] == 0  # the preview queued nothing

    created = post(client, "/api/sweeps", body)
    runs = created["data"]
    assert created["name"] == "lr x batch" and len(runs) == 12
    assert [r["label"] for r in runs] == [label for label in labels for _ in range(2)]
    assert [(r["spec"]["optimizer"]["lr"], r["spec"]["batch_size"], r["spec"]["seed"]) for r in runs[:4]] == [
        (0.1, 32, 7),
        (0.1, 32, 8),
        (0.1, 64, 7),
        (0.1, 64, 8),
    ]
    assert runs[-1]["spec"]["optimizer"]["lr"] == 0.01 and runs[-1]["spec"]["batch_size"] == 128


def test_a_sweep_over_the_limit_is_a_clear_422_and_queues_nothing(client: Any) -> None:
    body = {
        "name": "big",
        "base": BASE,
        "grid": {"optimizer.lr": [0.1] * 1 + [0.01, 0.001, 0.2, 0.3], "batch_size": list(range(8, 28))},
        "repeats": 3,
    }
    for url in ("/api/sweeps", "/api/sweeps/preview"):
        detail = post(client, url, body, 422)["detail"]
        assert detail == [
            {
                "variant": None,
                "label": None,
                "field": "grid",
                "type": "too_many_runs",
                "msg": "the study would queue 300 runs (100 points x 3 repeats); the limit is 200",
            }
        ]
    assert client.get("/api/runs", headers=API).json()["count"] == 0


@pytest.mark.parametrize(
    ("grid", "words"),
    [
        ({"optimizer.lr": []}, "at least 1"),
        ({"batch_size": list(range(51))}, "at most 50"),
        ({"not a path": [1]}, "not a dotted spec path"),
    ],
)
def test_bad_grids_are_422(client: Any, grid: dict[str, Any], words: str) -> None:
    response = client.post("/api/sweeps/preview", json={"name": "g", "base": BASE, "grid": grid}, headers=API)
    assert response.status_code == 422 and words in response.text


@pytest.mark.parametrize("url", ["/api/sweeps", "/api/sweeps/preview"])
def test_every_point_is_validated_before_any_is_queued(client: Any, url: str) -> None:
    body = {"name": "bad", "base": BASE, "grid": {"optimizer.lr": [0.1, -1.0]}}
    detail = post(client, url, body, 422)["detail"]
    assert [(e["variant"], e["label"], e["field"]) for e in detail] == [(1, "optimizer.lr=-1", "optimizer.lr")]
    assert client.get("/api/runs", headers=API).json()["count"] == 0


def test_sweep_and_summary_routes_are_in_openapi(client: Any) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/api/sweeps",
        "/api/sweeps/preview",
        "/api/studies/{study_id}/summary",
        "/api/studies/{study_id}/report.md",
    } <= set(paths)
    assert "422" in paths["/api/sweeps"]["post"]["responses"]
