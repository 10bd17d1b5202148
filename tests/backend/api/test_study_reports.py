"""One rule everywhere (backend/services/statistics.py), on SQLite and PostgreSQL: the report page's data and
report.md give the same numbers for a study with a failed repeat, and an early-stopped run that restored its
best weights is summarised by that epoch — per-class accuracy included — on every route."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from tests.backend.api.test_runs import claim
from tests.backend.api.test_study_repeats import BASE, post
from tests.conftest import API, WORKER, epoch_record


def train(client: Any, run_id: int, accs: list[float], *, fail: bool = False, restore_epoch: int | None = None) -> None:
    """Report one epoch per accuracy (class c gets acc - c/100), then finish (or fail) the run."""
    attempt, lease = claim(client, run_id)
    for epoch, acc in enumerate(accs, start=1):
        record = epoch_record(epoch, test_acc=acc) | {"per_class_acc": [round(acc - c / 100, 4) for c in range(10)]}
        body = {"attempt": attempt, "lease": lease, "record": record}
        assert client.post(f"/api/runs/{run_id}/epochs", json=body, headers=WORKER).status_code == 200
    if fail:
        finish: dict[str, Any] = {"attempt": attempt, "lease": lease, "error": "RuntimeError: boom"}
    else:
        result: dict[str, Any] = {"stopped": "completed", "epochs_run": len(accs), "total_seconds": 1.0}
        if restore_epoch is not None:
            result |= {
                "stopped": "early_stopped",
                "final_epoch": restore_epoch,
                "stop_reason": f"no improvement for 2 epochs; best at epoch {restore_epoch}, weights restored",
            }
        finish = {"attempt": attempt, "lease": lease, "result": result}
    assert client.post(f"/api/runs/{run_id}/finish", json=finish, headers=WORKER).status_code == 200


def test_the_report_page_data_and_report_md_agree_for_a_study_with_a_failed_repeat(client: Any) -> None:
    study = post(client, "/api/studies", {"name": "seeds", "base": BASE, "variants": [{"label": "v", "repeats": 3}]})
    a, b, c = (run["id"] for run in study["data"])
    train(client, a, [0.5, 0.7])
    train(client, b, [0.2, 0.1], fail=True)  # a failed repeat: it counts nowhere while others succeeded
    train(client, c, [0.6, 0.9])
    report = client.get(f"/api/studies/{study['id']}/report", headers=API).json()
    (label,) = report["labels"]
    assert label["n"] == 2 and label["run_ids"] == [a, b, c]
    curve = label["curves"]["test_acc"]
    assert curve["x"] == [1.0, 2.0] and curve["mean"] == pytest.approx([0.55, 0.8])
    assert curve["std"] == pytest.approx([np.std([0.5, 0.6], ddof=1), np.std([0.7, 0.9], ddof=1)])
    best = [0.7 - k / 100 for k in range(10)], [0.9 - k / 100 for k in range(10)]  # each run at its best epoch
    assert label["per_class"] == pytest.approx(list(np.mean(best, axis=0)))
    row = report["summary"]["rows"][0]
    assert (row["n"], row["succeeded"]) == (2, 2)
    assert row["test_acc"]["mean"] == pytest.approx(0.8) and row["test_acc"]["std"] == pytest.approx(
        np.std([0.7, 0.9], ddof=1)
    )

    md = client.get(f"/api/studies/{study['id']}/report.md", headers=API).text
    mean, std = 100 * row["test_acc"]["mean"], 100 * row["test_acc"]["std"]
    assert f"| v | 2 | {mean:.2f} ± {std:.2f} |" in md
    per_class_rows = re.findall(r"^\| (\d) \| ([\d.]+) \|$", md, re.MULTILINE)
    assert [float(value) for _, value in per_class_rows] == pytest.approx(
        [round(100 * v, 2) for v in label["per_class"]]
    )


def test_an_early_stopped_restored_run_is_its_restored_epoch_everywhere(client: Any) -> None:
    study = post(client, "/api/studies", {"name": "es", "base": BASE | {"epochs": 3}, "variants": [{"label": "es"}]})
    run_id = study["data"][0]["id"]
    train(client, run_id, [0.47, 0.2, 0.08], restore_epoch=1)
    restored = [round(0.47 - k / 100, 4) for k in range(10)]
    run = client.get(f"/api/runs/{run_id}", headers=API).json()
    assert (run["summary"]["final_epoch"], run["summary"]["final_test_acc"]) == (1, 0.47)

    for mode in ("stop", "best"):  # best: test_acc's best epoch is the restored one here
        compared = client.get(f"/api/compare?runs={run_id}&summary={mode}", headers=API).json()
        assert compared["per_class"][0]["epoch"] == 1 and compared["per_class"][0]["accuracy"] == restored
        assert compared["summary"][0]["test_acc"] == 0.47
        report = client.get(f"/api/studies/{study['id']}/report?summary={mode}", headers=API).json()
        assert report["labels"][0]["per_class"] == pytest.approx(restored)
        md = client.get(f"/api/studies/{study['id']}/report.md?summary={mode}", headers=API).text
        assert "| 0 | 47.00 |" in md and "| 9 | 38.00 |" in md  # epoch 1's per-class, not epoch 3's (8 %)
    last = client.get(f"/api/compare?runs={run_id}&summary=last", headers=API).json()
    assert last["per_class"][0]["epoch"] == 3 and last["summary"][0]["test_acc"] == 0.08  # asked for: the last one
