"""Resume time after a kill: a run on a real `trainboard serve` (SQLite broker, warm embedded worker) whose
training process is killed with kill -9 right after its checkpoint of epoch 2 is acknowledged, timed from the
kill to the new attempt's claim, to its resume (checkpoint downloaded and loaded: its first progress report),
and to its first new epoch, beside the time the same epoch took in the first attempt.

    .venv/bin/python benchmarks/resume.py                  # an MLP on the digits, 5 runs; JSON to --out
    .venv/bin/python benchmarks/resume.py --arch custom_cnn   # a CNN with batch norm
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.study import TOKEN, free_port, start_serve, wait_for_workers, wait_until_up

SPECS: dict[str, dict[str, Any]] = {
    # Epochs of about a second on 2 cores: long enough to kill the run between two checkpoints.
    "mlp": {"model": {"arch": "mlp", "hidden": [512, 256]}, "batch_size": 2},
    "custom_cnn": {"model": {"arch": "custom_cnn", "blocks": [32, 64], "hidden": [128]}, "batch_size": 16},
}


def until(condition: Any, what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.005)
    raise SystemExit(f"timed out waiting for {what}")


def one(api: httpx.Client, data_dir: Path, arch: str) -> dict[str, float]:
    spec = {"dataset": {"name": "digits"}, "epochs": 8, "device": "cpu", "checkpoint": {"min_seconds": 0}}
    run_id = api.post("/api/runs", json=spec | SPECS[arch]).json()["id"]

    def checkpoint_of_2() -> bool:
        listed = api.get(f"/api/runs/{run_id}/artifacts").json()["data"]
        return any(a["kind"] == "checkpoint" and a["epoch"] >= 2 for a in listed)

    until(checkpoint_of_2, "a checkpoint of epoch 2")
    with sqlite3.connect(data_dir / "trainboard.db") as db:
        (worker,) = db.execute("SELECT worker FROM run WHERE id = ?", (run_id,)).fetchone()
    killed = time.monotonic()
    os.kill(int(worker.rsplit(":", 1)[1]), signal.SIGKILL)
    claimed = until(lambda: api.get(f"/api/runs/{run_id}").json()["attempt"] == 2 and time.monotonic(), "attempt 2")
    resumed_at = until(
        lambda: api.get(f"/api/runs/{run_id}").json()["progress"]["epoch"] > 0 and time.monotonic(), "training"
    )
    run = api.get(f"/api/runs/{run_id}").json()
    k = run["resumed_from"]
    first_new = until(
        lambda: (
            any(m["epoch"] == k + 1 for m in api.get(f"/api/runs/{run_id}/metrics").json()["data"]) and time.monotonic()
        ),
        "a new epoch",
    )
    until(lambda: api.get(f"/api/runs/{run_id}").json()["status"] == "succeeded", "the end")
    epoch_seconds = [m["seconds"] for m in api.get(f"/api/runs/{run_id}/metrics").json()["data"]]
    return {
        "kill_to_claim_s": claimed - killed,
        "kill_to_training_s": resumed_at - killed,
        "kill_to_first_new_epoch_s": first_new - killed,
        "epoch_s": statistics.median(epoch_seconds),
        "resumed_from": float(k),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=list(SPECS), default="mlp")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.workers, args.slots, args.broker = 1, 1, None
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, port = Path(tmp), free_port()
        serve = start_serve(data_dir, port, args, data_dir / "serve.log")
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            wait_until_up(api, serve, data_dir / "serve.log")
            wait_for_workers(api, 1)
            rows = [one(api, data_dir, args.arch) for _ in range(args.runs)]
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=30)
    summary = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
    for key, value in summary.items():
        print(f"{key:<28} {value:8.3f}")
    out = args.out or Path(f"benchmarks/results/cpu_resume_{args.arch}.json")
    out.write_text(json.dumps({"arch": args.arch, "median": summary, "runs": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
