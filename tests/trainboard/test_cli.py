"""The command line as a user runs it: `trainboard serve` with an embedded worker, `submit --watch`, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, free_port, tiny_spec, wait_for

pytestmark = pytest.mark.queue


def processes_using(data_dir: Path) -> list[int]:
    """Pids whose environment names this data directory: what `serve` started and must stop."""
    marker = f"TRAINBOARD_DATA_DIR={data_dir}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def trainboard(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainboard", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )


def test_serve_submit_watch_and_ctrl_c(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINBOARD_")}
    env |= {"TRAINBOARD_DATA_DIR": str(data_dir), "TRAINBOARD_HEARTBEAT_SECONDS": "0.2"}
    serve = subprocess.Popen(
        [sys.executable, "-m", "trainboard", "serve", "--port", str(port), "--workers", "1"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(server), 60, 0.2, "trainboard serve to answer")
        token = trainboard("token", env=env).stdout.strip()
        assert token == json.loads((data_dir / "secrets.json").read_text())["api_token"]
        login = httpx.get(f"{server}/runs/new?token={token}", follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"] == "/runs/new"
        assert oct((data_dir / "secrets.json").stat().st_mode & 0o777) == "0o600"

        spec_file = tmp_path / "spec.json"
        spec_file.write_text(json.dumps(tiny_spec(epochs=2)))
        done = trainboard("submit", str(spec_file), "--server", server, "--watch", env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "run 1 queued" in done.stdout
        assert "epoch   2/2" in done.stderr and "run 1 succeeded: best test acc" in done.stderr

        bad_file = tmp_path / "bad.json"
        bad_file.write_text(json.dumps({"dataset": {"name": "digits"}, "model": {"arch": "mlp", "hidden": [0]}}))
        bad = trainboard("submit", str(bad_file), "--server", server, env=env)
        assert bad.returncode == 2
        assert "model.hidden.0: Input should be greater than or equal to 1" in bad.stderr
        assert len(processes_using(data_dir)) >= 2  # serve and its worker
    finally:
        serve.send_signal(signal.SIGINT)  # Ctrl-C
        output, _ = serve.communicate(timeout=60)
    assert f"open http://127.0.0.1:{port}/?token={token}" in output
    assert output.count(token) == 1, "the access log must not repeat the token"
    assert "GET /runs/new?token=*** HTTP/1.1" in output
    wait_for(lambda: not processes_using(data_dir), 30, 0.2, "every process serve started to stop")


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/login", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_db_upgrade_brings_a_lab_database_to_the_schema_and_says_so(tmp_path: Path) -> None:
    from backend import schema

    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINBOARD_")}
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    env["TRAINBOARD_DATABASE_URL"] = url
    first = trainboard("db", "upgrade", "--data-dir", str(tmp_path), env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"{url}: upgraded from revision none (a new database) to {schema.head()}"
    again = trainboard("db", "upgrade", "--data-dir", str(tmp_path), env=env)
    assert again.stdout.strip() == f"{url}: already at revision {schema.head()}"
    with sqlite3.connect(tmp_path / "old.db") as old:
        old.execute("CREATE TABLE run (id INTEGER PRIMARY KEY)")
    refused = trainboard("db", "upgrade", env=env | {"TRAINBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'old.db'}"})
    assert refused.returncode == 2 and "older than its first migration" in refused.stderr


def test_serve_places_its_embedded_workers_one_per_gpu_sharing_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainboard import embedded
    from worker.process import Placement

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert embedded.placements(workers=2, slots=4, gpus=None) == [Placement(slots=4, cores=8)] * 2
    gpus = embedded.placements(workers=1, slots=3, gpus="0,1")
    assert [(p.gpu, p.slots, p.cores, p.threads) for p in gpus] == [(0, 3, 8, 2), (1, 3, 8, 2)]
    assert embedded.placements(workers=0, slots=1, gpus=None) == []
    with pytest.raises(ValueError, match="GPU numbers separated by commas"):
        embedded.placements(workers=1, slots=1, gpus="zero")


def test_gc_removes_the_files_of_deleted_runs_and_unlisted_files(tmp_path: Path) -> None:
    from sqlmodel import Session

    from backend import schema
    from backend.db import make_engine
    from backend.services import lifecycle
    from backend.tables import Artifact
    from trainboard.spec import RunSpec

    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINBOARD_")}
    refused = trainboard("gc", "--data-dir", str(tmp_path), env=env)  # no database yet: nothing is guessed
    assert refused.returncode == 2 and "trainboard db upgrade" in refused.stderr
    engine = make_engine(f"sqlite:///{tmp_path / 'trainboard.db'}")
    schema.upgrade(engine)
    with Session(engine) as session:
        run = lifecycle.create_runs(session, [RunSpec.model_validate(tiny_spec())])[0]
        assert run.id is not None
        session.add(
            Artifact(
                run_id=run.id, kind="weights", name="weights.safetensors", attempt=1, epoch=1, size=5, sha256="0" * 64
            )
        )
        session.commit()
        run_id = run.id
    engine.dispose()
    root = tmp_path / "artifacts"
    kept = root / str(run_id)
    kept.mkdir(parents=True)
    (kept / "weights.safetensors").write_bytes(b"12345")
    (kept / "checkpoint-1.pt").write_bytes(b"x" * 100)  # superseded: no row names it (for over gc's grace time)
    hour_ago = time.time() - 3600
    os.utime(kept / "checkpoint-1.pt", (hour_ago, hour_ago))
    (kept / "checkpoint-2.pt.part").write_bytes(b"y" * 7)  # an upload under way: left alone
    gone = root / str(run_id + 1)
    gone.mkdir()
    (gone / "weights.safetensors").write_bytes(b"z" * 1000)
    result = trainboard("gc", "--data-dir", str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{root}: 1,100 bytes freed"
    assert sorted(f.name for f in kept.iterdir()) == ["checkpoint-2.pt.part", "weights.safetensors"]
    assert not gone.exists()


def test_serve_refuses_several_api_processes_where_the_setup_cannot_carry_them(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINBOARD_")} | {
        "TRAINBOARD_DATA_DIR": str(tmp_path)
    }
    sqlite = trainboard("serve", "--api-processes", "2", "--workers", "0", env=env)
    assert sqlite.returncode == 2
    assert "--api-processes 2: several API processes need PostgreSQL" in sqlite.stderr
    postgres = env | {"TRAINBOARD_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    no_redis = trainboard("serve", "--api-processes", "2", "--workers", "0", env=postgres)  # the SQLite broker
    assert no_redis.returncode == 2
    assert "need a Redis broker (TRAINBOARD_BROKER_URL=redis://...)" in no_redis.stderr
    assert not (tmp_path / "trainboard.db").exists()  # refused before anything started


@pytest.mark.postgres
def test_serve_runs_several_api_processes_on_one_address(
    tmp_path: Path, postgres_server_url: str, redis_url: str
) -> None:
    from backend import schema
    from backend.db import make_engine
    from tests.conftest import API, API_TOKEN, SESSION, WORKER_TOKEN, reset_database

    reset_database(postgres_server_url)
    engine = make_engine(postgres_server_url)
    schema.upgrade(engine)
    engine.dispose()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINBOARD_")} | {
        "TRAINBOARD_DATA_DIR": str(tmp_path),
        "TRAINBOARD_DATABASE_URL": postgres_server_url,
        "TRAINBOARD_BROKER_URL": redis_url,
        "TRAINBOARD_QUEUE": f"trainboard-cli-{SESSION}",
        "TRAINBOARD_API_TOKEN": API_TOKEN,
        "TRAINBOARD_WORKER_TOKEN": WORKER_TOKEN,
    }
    serve = subprocess.Popen(
        [sys.executable, "-m", "trainboard", "serve", "--api-processes", "2", "--workers", "0", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    seen: set[bool] = set()

    def both_answered() -> bool:
        try:  # a new connection each time: the kernel hands it to either process
            answer = httpx.get(f"http://127.0.0.1:{port}/api/health", headers=API, timeout=5)
            seen.add(bool(answer.json()["leader"]))
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        return seen == {True, False}

    try:
        wait_for(both_answered, 60, 0.05, "both API processes (the leader and the other) to answer")
    finally:
        serve.send_signal(signal.SIGINT)
        output, _ = serve.communicate(timeout=60)
    assert "2 API process(es)" in output.decode()
    assert serve.returncode == 0, output.decode()[-2000:]
