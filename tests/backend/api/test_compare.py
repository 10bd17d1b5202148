"""GET /api/compare and its summary export, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pytest

from tests.backend.api.test_runs import claim, create
from tests.conftest import API, WORKER, epoch_record, tiny_spec


def trained(client: Any, accs: list[float], **spec: Any) -> int:
    run = create(client, tiny_spec(**spec))
    attempt, lease = claim(client, run["id"])
    for epoch, acc in enumerate(accs, start=1):
        body = {"attempt": attempt, "lease": lease, "record": epoch_record(epoch, test_acc=acc)}
        assert client.post(f"/api/runs/{run['id']}/epochs", json=body, headers=WORKER).status_code == 200
    result = {"stopped": "completed", "epochs_run": len(accs), "total_seconds": 10.0 * len(accs)}
    client.post(
        f"/api/runs/{run['id']}/finish", json={"attempt": attempt, "lease": lease, "result": result}, headers=WORKER
    )
    return int(run["id"])


def test_compare_three_runs(client: Any) -> None:
    a = trained(client, [0.6, 0.8, 0.7], name="lr-0.1", optimizer={"name": "sgd", "lr": 0.1})
    b = trained(client, [0.5, 0.6], name="lr-0.01", optimizer={"name": "sgd", "lr": 0.01})
    c = trained(client, [0.7, 0.75, 0.9, 0.85], name="adam", optimizer={"name": "adam", "lr": 0.001})
    body = client.get(f"/api/compare?runs={a},{b},{c}&summary=best", headers=API).json()
    assert [r["id"] for r in body["runs"]] == [a, b, c]
    assert body["diff"] == {
        "name": ["lr-0.1", "lr-0.01", "adam"],
        "optimizer.lr": [0.1, 0.01, 0.001],
        "optimizer.name": ["sgd", "sgd", "adam"],
    }
    assert [row["test_acc"] for row in body["summary"]] == [0.8, 0.6, 0.9]
    assert body["best"]["test_acc"] == [2] and body["best"]["total_seconds"] == [1]
    assert body["caption"].startswith("Test accuracy at each run's best epoch")
    assert [len(s["x"]) for s in body["series"]["test_acc"]] == [3, 2, 4]
    assert body["series"]["test_acc"][2]["y"] == [0.7, 0.75, 0.9, 0.85]
    last = client.get(f"/api/compare?runs={a},{b},{c}&summary=last", headers=API).json()
    assert [row["test_acc"] for row in last["summary"]] == [0.7, 0.6, 0.85]


def test_compare_downsamples_curves_but_not_the_table(client: Any) -> None:
    accs = [0.5 + 0.4 * (i % 7) / 7 for i in range(60)]
    run_id = trained(client, accs)
    body = client.get(f"/api/compare?runs={run_id}&max_points=12", headers=API).json()
    assert len(body["series"]["test_acc"][0]["x"]) <= 12
    assert body["summary"][0]["best_test_acc"] == max(accs) and body["summary"][0]["epochs_run"] == 60


def test_after_answers_only_the_new_points_and_a_downsampled_curve_whole(client: Any) -> None:
    a = trained(client, [0.6, 0.8, 0.7])
    b = trained(client, [0.5, 0.6])
    long = trained(client, [0.5 + i / 100 for i in range(30)])
    body = client.get(f"/api/compare?runs={a},{b},{long}&max_points=12&after={a}:1,{long}:20", headers=API).json()
    by_run = {s["run_id"]: s for s in body["series"]["test_acc"]}
    assert (by_run[a]["after"], by_run[a]["x"], by_run[a]["y"]) == (1, [2.0, 3.0], [0.8, 0.7])
    assert (by_run[b]["after"], by_run[b]["x"]) == (0, [1.0, 2.0])  # not asked: whole
    assert by_run[long]["after"] == 0 and by_run[long]["x"][-1] == 30.0  # past max_points: whole, downsampled
    assert body["summary"][0]["epochs_run"] == 3  # the tables stay whole
    seconds = client.get(f"/api/compare?runs={a},{b}&x=seconds&after={a}:2", headers=API).json()
    assert seconds["series"]["test_acc"][0]["x"] == [1.5]  # 3 epochs of 0.5 s: elapsed time counts from the first
    for bad in (f"{a}", f"{a}:x", f"{a}:1;{b}:2"):
        assert client.get(f"/api/compare?runs={a},{b}&after={bad}", headers=API).status_code == 422, bad


def test_the_answer_carries_each_runs_confusion_matrix(client: Any) -> None:
    a = trained(client, [0.6])
    running = create(client, tiny_spec())
    body = client.get(f"/api/compare?runs={a},{running['id']}", headers=API).json()
    assert [c["run_id"] for c in body["confusion"]] == [a, running["id"]]
    assert body["confusion"][1]["matrix"] is None
    assert body["confusion"][0] == client.get(f"/api/runs/{a}/confusion", headers=API).json()


def test_summary_exports(client: Any) -> None:
    a = trained(client, [0.6, 0.8], name="k_3")
    b = trained(client, [0.7, 0.75], name="k_5")
    response = client.get(f"/api/compare/summary?runs={a},{b}&format=csv", headers=API)
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="trainboard-summary.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["Run"], float(r["Test acc (%)"])) for r in rows] == [("k_3", 80.0), ("k_5", 75.0)]  # percent
    tex = client.get(f"/api/compare/summary?runs={a},{b}&format=tex", headers=API).text
    assert r"k\_3 & 80.00 & 2" in tex
    md = client.get(f"/api/compare/summary?runs={a},{b}&format=md&summary=last", headers=API).text
    assert md.startswith("Test accuracy at each run's last epoch.") and "| k_5 | 75.00 | 2 |" in md


def test_compare_errors(client: Any) -> None:
    a = trained(client, [0.6])
    missing = client.get(f"/api/compare?runs={a},999", headers=API)
    assert missing.status_code == 404 and missing.json()["detail"] == "runs not found: 999"
    for bad in ("", "1,x", ",".join(["1"] * 51)):
        assert client.get(f"/api/compare?runs={bad}", headers=API).status_code == 422, bad
    assert client.get(f"/api/compare?runs={a}&format=pdf").status_code == 401  # auth first for GETs
    assert client.get(f"/api/compare/summary?runs={a}&format=pdf", headers=API).status_code == 422


def test_all_fields_lists_the_equal_fields_too(client: Any) -> None:
    a = trained(client, [0.6], name="a", optimizer={"name": "sgd", "lr": 0.1})
    b = trained(client, [0.7], name="b", optimizer={"name": "sgd", "lr": 0.01})
    differing = client.get(f"/api/compare?runs={a},{b}", headers=API).json()["diff"]
    everything = client.get(f"/api/compare?runs={a},{b}&all_fields=true", headers=API).json()["diff"]
    assert set(differing) == {"name", "optimizer.lr"}
    assert set(differing) < set(everything)
    assert everything["optimizer.name"] == ["sgd", "sgd"] and everything["epochs"] == [3, 3]
    assert everything["optimizer.lr"] == [0.1, 0.01]


def test_per_class_is_the_latest_epoch_of_each_run(client: Any) -> None:
    a = trained(client, [0.6, 0.8])
    b = create(client, tiny_spec(name="not started"))["id"]
    body = client.get(f"/api/compare?runs={a},{b}", headers=API).json()
    assert body["per_class"] == [
        {"run_id": a, "epoch": 2, "classes": [str(i) for i in range(10)], "accuracy": [0.8] * 10},
        {"run_id": b, "epoch": None, "classes": [str(i) for i in range(10)], "accuracy": []},
    ]


def test_only_runs_that_succeeded_compete_for_best(client: Any) -> None:
    done = trained(client, [0.6, 0.7])
    running = create(client, tiny_spec(name="still-running"))
    attempt, lease = claim(client, running["id"])
    body = {"attempt": attempt, "lease": lease, "record": epoch_record(1, test_acc=0.95)}
    client.post(f"/api/runs/{running['id']}/epochs", json=body, headers=WORKER)
    result = client.get(f"/api/compare?runs={done},{running['id']}", headers=API).json()
    assert [row["test_acc"] for row in result["summary"]] == [0.7, 0.95]
    assert result["best"]["test_acc"] == [0]  # 95 % so far, but the run has not finished
    assert result["best"]["total_seconds"] == [0]


def test_seed_repeats_of_a_study_variant_are_grouped(client: Any) -> None:
    from tests.backend.api.test_study_repeats import BASE, finish

    created = client.post(
        "/api/studies",
        json={
            "name": "seeds",
            "base": BASE,
            "repeats": 3,
            "variants": [{"label": "seeded"}, {"label": "single", "repeats": 1}],
        },
        headers=API,
    ).json()
    ids = [r["id"] for r in created["data"]]
    curves = [[0.61, 0.83, 0.8], [0.72, 0.79], [0.64, 0.91, 0.9]]
    seconds = [12.5, 11.0, 14.25]
    for run_id, accs, secs in zip(ids[:3], curves, seconds, strict=True):
        finish(client, run_id, accs, secs)
    other = trained(client, [0.5, 0.6])
    body = client.get(f"/api/compare?runs={','.join(map(str, ids))},{other}&summary=best", headers=API).json()
    assert len(body["summary"]) == 5 and len(body["series"]["test_acc"]) == 5  # the single runs stay
    [group] = body["groups"]
    assert (group["study_id"], group["label"], group["run_ids"], group["n"]) == (created["id"], "seeded", ids[:3], 3)
    rows = {row["run_id"]: row for row in body["summary"]}
    for field in ("test_acc", "best_test_acc", "final_test_acc", "total_seconds"):
        values = [rows[i][field] for i in ids[:3]]
        assert group[field]["mean"] == pytest.approx(np.mean(values)), field
        assert group[field]["std"] == pytest.approx(np.std(values, ddof=1)), field
        assert group[field]["n"] == 3
    assert group["test_acc"]["mean"] == pytest.approx(np.mean([0.83, 0.79, 0.91]))
    band = group["series"]["test_acc"]
    assert band["x"] == [1.0, 2.0]  # only the epochs every run has
    for k, epoch_values in enumerate([[0.61, 0.72, 0.64], [0.83, 0.79, 0.91]]):
        assert band["mean"][k] == pytest.approx(np.mean(epoch_values))
        assert band["std"][k] == pytest.approx(np.std(epoch_values, ddof=1))
    assert set(group["series"]) == set(body["series"])
    alone = client.get(f"/api/compare?runs={ids[0]},{other}", headers=API).json()
    assert alone["groups"] == []


def test_each_number_is_one_column_in_each_summary_mode(client: Any) -> None:
    """At the best epoch the test accuracy is the best accuracy: the table and its files show it once; at the
    epoch a run ended with it is the final accuracy."""
    a = trained(client, [0.6, 0.8, 0.7], name="k_3")
    keys = {
        mode: [c["key"] for c in client.get(f"/api/compare?runs={a}&summary={mode}", headers=API).json()["columns"]]
        for mode in ("best", "last", "stop")
    }
    assert "best_test_acc" not in keys["best"] and "best_epoch" not in keys["best"]
    assert {"test_acc", "summary_epoch", "final_test_acc"} <= set(keys["best"])
    assert {"test_acc", "best_test_acc", "best_epoch", "final_test_acc"} <= set(keys["last"])
    assert "final_test_acc" not in keys["stop"] and "best_test_acc" in keys["stop"]
    header = client.get(f"/api/compare/summary?runs={a}&format=csv", headers=API).text.splitlines()[0]
    assert header == "Run,Test acc (%),Epoch,Final acc (%),Epochs,Early stop,Time (s),Images/s"  # the unit once
    row = client.get(f"/api/compare?runs={a}", headers=API).json()["summary"][0]
    assert (row["test_acc"], row["best_test_acc"], row["summary_epoch"], row["best_epoch"]) == (0.8, 0.8, 2, 2)
