"""A whole study through the product: a preset (default: the MNIST table, 18 runs) queued on a real
`trainboard serve`, timed from the POST to the last run's finish.

It writes random images in the dataset's real file format (MNIST / Fashion-MNIST idx files) into a data
directory of its own — no download, no new dataset name — starts `python -m trainboard serve` there with
the workers and slots asked for, queues the study through the REST API, waits for every run to end, and
prints:

- wall time (first POST to the last finish) and the sum of the runs' epoch seconds;
- per-run overhead: claim to first batch, and last epoch to finished (from the server's timestamps);
- mean training images/s; and, for the full-size table (10 epochs, 60k images), the ratio to the
  2,300 s the study behind trainboard spent on it by hand.

    .venv/bin/python benchmarks/study.py --train-limit 2048 --epochs 1             # a quick CPU run
    .venv/bin/python benchmarks/study.py --dataset digits --runs 6 --epochs 1      # six 1-epoch digits runs
    .venv/bin/python benchmarks/study.py --device cuda --slots 8                   # the full table on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
REPORTED_SECONDS = 2300.0  # the study's MNIST table (18 runs x 10 epochs), by hand
IDX_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
TOKEN = "study-benchmark-token-0123456789"


def write_idx(root: Path, dataset: str, n_train: int, n_test: int) -> None:
    """Random 28x28 uint8 images and labels as the four idx files torchvision reads (`root/MNIST/raw/`)."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    raw = root / IDX_FOLDERS[dataset] / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
        (raw / name).write_bytes(header + array.tobytes())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_serve(data_dir: Path, port: int, args: argparse.Namespace, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "trainboard", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    command += ["--workers", str(args.workers)] + (["--slots", str(args.slots)] if args.slots > 1 else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINBOARD_")}
    env |= {"TRAINBOARD_API_TOKEN": TOKEN, "TRAINBOARD_WORKER_TOKEN": TOKEN + "-worker", "PYTHONUNBUFFERED": "1"}
    if args.broker:
        env |= {"TRAINBOARD_BROKER_URL": args.broker, "TRAINBOARD_QUEUE": f"study-benchmark-{os.getpid()}"}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wait_until_up(api: httpx.Client, serve: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if serve.poll() is not None:
            raise SystemExit(f"serve exited with {serve.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if api.get("/api/runs?limit=1").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("serve did not start within 120 s")


def wait_for_workers(api: httpx.Client, expected: int) -> None:
    """Until every embedded worker has announced itself (when the server lists workers), so the timing
    measures training runs, not a worker's start-up."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        response = api.get("/api/workers")
        if response.status_code == 404:  # a trainboard without a Workers API: give its workers time to boot
            time.sleep(10)
            return
        live = [w for w in response.json()["data"] if w["status"] != "gone"]
        if sum(w["slots"] for w in live) >= expected:
            return
        time.sleep(0.2)
    raise SystemExit("the workers did not announce themselves within 120 s")


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def measure(data_dir: Path, runs: list[dict[str, Any]], started: float) -> dict[str, Any]:
    """Timings from the run rows and, for when each epoch arrived, the embedded SQLite database."""
    with sqlite3.connect(data_dir / "trainboard.db") as db:
        epochs = {
            (run_id, epoch): (datetime.fromisoformat(created + "+00:00").timestamp(), seconds, speed)
            for run_id, epoch, created, seconds, speed in db.execute(
                "SELECT run_id, epoch, created_at, seconds, images_per_s FROM epoch_metric"
            )
        }
    claim_to_first, last_to_finish, speeds = [], [], []
    for run in runs:
        done = run["summary"]["epochs_done"]
        if not done or run["started_at"] is None:
            continue
        arrived, seconds, _ = epochs[(run["id"], 1)]
        claim_to_first.append(arrived - seconds - parse_time(run["started_at"]))  # epoch 1 began at arrival - seconds
        last_to_finish.append(parse_time(run["finished_at"]) - epochs[(run["id"], done)][0])
    speeds = [speed for _, _, speed in epochs.values()]
    return {
        "runs": len(runs),
        "succeeded": sum(run["status"] == "succeeded" for run in runs),
        "wall_seconds": max(parse_time(run["finished_at"]) for run in runs) - started,
        "epoch_seconds": sum(seconds for _, seconds, _ in epochs.values()),
        "claim_to_first_batch_s": statistics.median(claim_to_first) if claim_to_first else None,
        "last_epoch_to_finished_s": statistics.median(last_to_finish) if last_to_finish else None,
        "mean_images_per_s": statistics.fmean(speeds) if speeds else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="mnist-ablations")
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist", "digits"])
    parser.add_argument("--runs", type=int, default=0, help="only the first N variants (0: all)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-images", type=int, default=60_000, help="images in the written training split")
    parser.add_argument("--train-limit", type=int, default=0, help="train on the first N images only (0: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--slots", type=int, default=1, help="runs at once per worker")
    parser.add_argument("--broker", default="", help="a broker URL (default: the embedded SQLite broker)")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a fresh temporary directory")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="trainboard-study-"))
    if args.dataset != "digits":
        write_idx(data_dir / "datasets", args.dataset, args.train_images, 10_000)
    overrides: dict[str, Any] = {"epochs": args.epochs, "dataset.name": args.dataset, "device": args.device}
    if args.train_limit:
        overrides["dataset.train_limit"] = args.train_limit
    port = free_port()
    log = data_dir / "serve.log"
    serve = start_serve(data_dir, port, args, log)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    try:
        wait_until_up(api, serve, log)
        wait_for_workers(api, args.workers * args.slots)
        preset = api.get(f"/api/presets/{args.preset}").json()
        body: dict[str, Any] = {"preset": args.preset, "set": overrides}
        if args.runs:
            body = {"name": preset["title"], "base": preset["base"], "variants": preset["variants"][: args.runs],
                    "set": overrides}  # fmt: skip
        started = time.time()
        created = api.post("/api/studies", json=body)
        if created.status_code != 201:
            raise SystemExit(f"the study was refused: {created.text}")
        study_id = created.json()["id"]
        while True:
            study = api.get(f"/api/studies/{study_id}").json()
            if all(run["status"] in ("succeeded", "failed", "cancelled") for run in study["data"]):
                break
            time.sleep(0.05)
        figures = measure(data_dir, study["data"], started)
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            serve.kill()
    full = args.epochs == 10 and args.train_images == 60_000 and not args.train_limit and not args.runs
    figures |= {
        "preset": args.preset, "dataset": args.dataset, "epochs": args.epochs, "device": args.device,
        "workers": args.workers, "slots": args.slots, "train_images": args.train_limit or args.train_images,
        "ratio_to_report": REPORTED_SECONDS / figures["wall_seconds"] if full else None,
    }  # fmt: skip
    print(json.dumps(figures, indent=2))
    print(
        f"{figures['runs']} runs ({figures['succeeded']} succeeded) in {figures['wall_seconds']:.1f} s wall, "
        f"{figures['epoch_seconds']:.1f} s of epochs; per run: claim to first batch "
        f"{figures['claim_to_first_batch_s']:.2f} s, "
        f"last epoch to finished {figures['last_epoch_to_finished_s']:.2f} s; "
        f"{figures['mean_images_per_s']:,.0f} images/s"
        + (f"; {figures['ratio_to_report']:.1f}x the report's 2,300 s" if figures["ratio_to_report"] else "")
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
