"""The worker's process model (worker/process.py, worker/pool.py) with real `trainboard worker` processes: a warm
worker still trains each run in a fresh process that exits after it, gives the same numbers as a cold one,
trains as many runs at once as it has slots (none claimed twice), and starts every run process pinned to
its GPU with its share of the cores."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from backend.tables import Run
from tests.conftest import REPO, LiveServer, WorkerProcess, live_settings, tiny_spec, wait_for
from trainboard.protocol import MEASURED_FIELDS
from worker.process import Placement

pytestmark = pytest.mark.queue

LONG = tiny_spec(
    name="long",
    epochs=1000,
    dataset={"name": "digits"},
    batch_size=16,
    model={"arch": "cnn", "channels": [16, 32], "hidden": [64]},
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(live_settings(tmp_path)).start()
    yield live
    live.stop()


def submit(server: LiveServer, spec: dict[str, Any]) -> int:
    with server.api() as api:
        response = api.post("/api/runs", json=spec)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])


def read(server: LiveServer, path: str) -> Any:
    with server.api() as api:
        return api.get(path).json()


def ended(server: LiveServer, run_id: int, worker: WorkerProcess, timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        run = read(server, f"/api/runs/{run_id}")
        return run if run["status"] in ("succeeded", "failed", "cancelled") else None

    try:
        return dict(wait_for(done, timeout, 0.1, f"run {run_id} to end"))
    except AssertionError:
        raise AssertionError(f"run {run_id} did not end:\n{worker.log()[-4000:]}") from None


def claimed_by(server: LiveServer, run_id: int) -> int:
    """The pid of the process that claimed the run (the claim names it host:pid)."""
    with Session(server.server.config.app.state.engine) as session:
        run = session.get(Run, run_id)
        assert run is not None and run.worker is not None
        return int(run.worker.rsplit(":", 1)[1])


def environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def metrics(server: LiveServer, run_id: int) -> list[dict[str, Any]]:
    """What a seeded run computes, without its timings."""
    data = read(server, f"/api/runs/{run_id}/metrics")["data"]
    return [{k: v for k, v in m.items() if k not in MEASURED_FIELDS} for m in data]


def test_a_pinned_worker_trains_its_slots_at_once_each_run_in_a_fresh_pinned_process(
    server: LiveServer, tmp_path: Path
) -> None:
    worker = WorkerProcess(
        server.settings, "pinned", tmp_path / "pinned.log", "--slots", "2", "--gpu", "3", "--cores", "2"
    )
    try:
        first, second = submit(server, LONG), submit(server, LONG)
        # Both slots train at once.
        wait_for(
            lambda: all(read(server, f"/api/runs/{i}")["status"] == "running" for i in (first, second)),
            120,
            0.1,
            f"both runs running:\n{worker.log()[-3000:]}",
        )
        pids = {claimed_by(server, first), claimed_by(server, second)}
        assert len(pids) == 2 and worker.process.pid not in pids  # a process of its own for each run
        for pid in pids:  # pinned to GPU 3, one core each (2 cores, 2 slots), as the worker started them
            env = environment(pid)
            assert (env["CUDA_VISIBLE_DEVICES"], env["TRAINBOARD_TORCH_THREADS"], env["OMP_NUM_THREADS"]) == (
                "3",
                "1",
                "1",
            )
        # The worker tells the API what it is and what its slots train.
        listed = wait_for(
            lambda: [w for w in read(server, "/api/workers")["data"] if len(w["running"]) == 2],
            30,
            0.2,
            "the worker to announce both runs",
        )
        (pinned,) = listed
        assert pinned["name"].startswith("pinned@") and pinned["status"] == "live" and pinned["slots"] == 2
        assert (pinned["device"]["kind"], pinned["device"]["gpu"], pinned["device"]["cores"]) == ("cuda", 3, 2)
        assert sorted(pinned["running"]) == sorted([first, second])
        with server.api() as api:
            for run_id in (first, second):
                assert api.post(f"/api/runs/{run_id}/cancel").status_code == 200
        for run_id in (first, second):
            assert ended(server, run_id, worker, 30)["status"] == "cancelled"
            assert read(server, f"/api/runs/{run_id}")["attempt"] == 1  # claimed once
        wait_for(lambda: not any(alive(pid) for pid in pids), 20, 0.1, "the run processes to exit")
        assert alive(worker.process.pid)  # the worker stays, ready to fork the next ones
    finally:
        worker.stop()
    stopped = wait_for(
        lambda: [w for w in read(server, "/api/workers")["data"] if w["status"] == "stopped"],
        10,
        0.2,
        "the worker's goodbye",
    )
    assert stopped[0]["running"] == []


def test_a_warm_worker_gives_the_numbers_of_a_cold_one_and_a_fresh_process_per_run(
    server: LiveServer, tmp_path: Path
) -> None:
    spec = tiny_spec(epochs=2, augment={"hflip": {"p": 0.5}}, model={"arch": "mlp", "hidden": [32], "dropout": 0.2})
    numbers, pids = [], []
    for kind, args in (("warm", ()), ("cold", ("--no-preload",))):
        worker = WorkerProcess(server.settings, kind, tmp_path / f"{kind}.log", "--cores", "2", *args)
        try:
            runs = [submit(server, spec), submit(server, spec)]
            for run_id in runs:
                assert ended(server, run_id, worker)["status"] == "succeeded"
                numbers.append(metrics(server, run_id))
                pids.append(claimed_by(server, run_id))
        finally:
            worker.stop()
    assert all(n == numbers[0] for n in numbers)  # warm or cold, first or second: the same seeded run
    assert len(set(pids)) == 4  # every run in a process of its own


def test_a_warm_worker_imports_the_engine_without_starting_a_thread_or_cuda() -> None:
    probe = (
        "import os, sys\n"
        "threads = lambda: len(os.listdir('/proc/self/task'))\n"
        "import numpy  # its BLAS pool, which is fork-safe (atfork handlers), is there before any of ours\n"
        "before = threads()\n"
        "from worker.process import preload\n"
        "preload()\n"
        "import torch\n"
        "assert 'worker.engine' in sys.modules and 'torchvision' in sys.modules\n"
        "print(threads() - before, torch.cuda.is_initialized())\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    # No thread started: no OpenMP or MKL pool, nothing a fork could leave half-held; no CUDA context.
    assert out.stdout.split() == ["0", "False"]


def test_placement_splits_the_cores_and_pins_the_gpu() -> None:
    assert Placement(slots=4, cores=16).threads == 4
    assert Placement(slots=3, cores=2).threads == 1  # at least one each
    env = Placement(slots=2, gpu=1, cores=8).environment()
    assert env == {
        "TRAINBOARD_TORCH_THREADS": "4",
        "OMP_NUM_THREADS": "4",
        "MKL_NUM_THREADS": "4",
        "CUDA_VISIBLE_DEVICES": "1",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    assert "CUDA_VISIBLE_DEVICES" not in Placement(slots=1, cores=8).environment()
    assert os.cpu_count() is not None
