"""backend/api/artifacts.py on SQLite and PostgreSQL: a worker's upload is kept only whole and with the sha256 it
announced, under its attempt's lease and within the size limit; only the newest checkpoints stay; the claim of
a later attempt resumes from the newest checkpoint whose epochs are stored and drops what came after it;
users list and download what a run keeps."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.backend.api.test_runs import claim, create
from tests.conftest import API, WORKER, epoch_record


def upload(
    client: Any, run_id: int, attempt: int, lease: str, name: str, body: bytes, epoch: int = 1, **kw: Any
) -> Any:
    headers = WORKER | {
        "X-Trainboard-Attempt": str(attempt),
        "X-Trainboard-Lease": lease,
        "X-Trainboard-Epoch": str(epoch),
        "X-Trainboard-Sha256": kw.get("sha256", hashlib.sha256(body).hexdigest()),
        "Content-Type": "application/octet-stream",
    }
    return client.put(f"/api/runs/{run_id}/artifacts/{name}", content=body, headers=headers)


def report(client: Any, run_id: int, attempt: int, lease: str, epoch: int) -> None:
    body = {"attempt": attempt, "lease": lease, "record": epoch_record(epoch)}
    assert client.post(f"/api/runs/{run_id}/epochs", json=body, headers=WORKER).status_code == 200


def folder(client: Any, run_id: int) -> Path:
    return Path(client.app.state.settings.artifacts_dir) / str(run_id)


def test_an_upload_is_kept_with_its_size_and_hash_and_only_the_newest_checkpoint_stays(client: Any) -> None:
    run = create(client)
    attempt, lease = claim(client, run["id"])
    for epoch in (1, 2):
        report(client, run["id"], attempt, lease, epoch)
        answer = upload(client, run["id"], attempt, lease, f"checkpoint-{epoch}.safetensors", b"c" * epoch, epoch)
        assert answer.status_code == 200, answer.text
    assert upload(client, run["id"], attempt, lease, "weights.safetensors", b"w" * 10, 2).status_code == 200
    listed = client.get(f"/api/runs/{run['id']}/artifacts", headers=API).json()
    assert [(a["name"], a["size"], a["epoch"]) for a in listed["data"]] == [
        ("checkpoint-2.safetensors", 2, 2),
        ("weights.safetensors", 10, 2),
    ]
    assert listed["total_bytes"] == 12
    assert sorted(p.name for p in folder(client, run["id"]).iterdir()) == [
        "checkpoint-2.safetensors",
        "weights.safetensors",
    ]  # checkpoint 1 is gone from the disk too
    weights = client.get(f"/api/runs/{run['id']}/weights", headers=API)
    assert weights.status_code == 200 and weights.content == b"w" * 10
    assert weights.headers["x-trainboard-sha256"] == hashlib.sha256(b"w" * 10).hexdigest()
    assert 'filename="run-' in weights.headers["content-disposition"]
    assert client.get(f"/api/runs/{run['id']}/artifacts/checkpoint-2.safetensors", headers=API).content == b"cc"


def test_a_bad_hash_an_oversized_file_a_stale_lease_and_a_bad_name_keep_nothing(client: Any) -> None:
    run = create(client)
    attempt, lease = claim(client, run["id"])
    bad = upload(client, run["id"], attempt, lease, "weights.safetensors", b"abc", sha256="0" * 64)
    assert bad.status_code == 422 and "sha256" in bad.json()["detail"][0]["msg"]
    client.app.state.settings.artifact_max_bytes = 1024
    big = upload(client, run["id"], attempt, lease, "weights.safetensors", b"x" * 5000)
    assert big.status_code == 413 and "TRAINBOARD_ARTIFACT_MAX_BYTES" in big.json()["detail"]
    stale = upload(client, run["id"], attempt, "not-the-lease", "weights.safetensors", b"abc")
    assert stale.status_code == 409
    assert upload(client, run["id"], attempt, lease, "..%2F..%2Fetc.safetensors", b"abc").status_code in (404, 405, 422)
    assert upload(client, run["id"], attempt, lease, "model.pt", b"abc").status_code == 422
    assert client.get(f"/api/runs/{run['id']}/artifacts", headers=API).json()["data"] == []
    assert not folder(client, run["id"]).exists() or list(folder(client, run["id"]).iterdir()) == []
    missing = client.get(f"/api/runs/{run['id']}/weights", headers=API)
    assert missing.status_code == 404 and "no final weights" in missing.json()["detail"]


def test_a_later_attempt_resumes_from_the_newest_checkpoint_and_drops_what_came_after(client: Any) -> None:
    run = create(client)
    run_id = run["id"]
    attempt, lease = claim(client, run_id)
    for epoch in (1, 2, 3):
        report(client, run_id, attempt, lease, epoch)
    assert upload(client, run_id, attempt, lease, "checkpoint-2.safetensors", b"two", 2).status_code == 200
    # The worker is lost: the run is requeued (as the recovery loop does) and claimed again.
    killed = {"attempt": attempt, "lease": lease, "signal": 9}
    assert client.post(f"/api/runs/{run_id}/killed", json=killed, headers=WORKER).json()["status"] == "queued"
    answer = client.post(f"/api/runs/{run_id}/claim", json={"worker": "test:2"}, headers=WORKER).json()
    assert answer["attempt"] == 2
    assert answer["resume"] == {
        "epoch": 2,
        "name": "checkpoint-2.safetensors",
        "sha256": hashlib.sha256(b"two").hexdigest(),
        "size": 3,
    }
    now = client.get(f"/api/runs/{run_id}", headers=API).json()
    assert now["resumed_from"] == 2 and now["summary"]["epochs_done"] == 2
    assert [m["epoch"] for m in client.get(f"/api/runs/{run_id}/metrics", headers=API).json()["data"]] == [1, 2]
    headers = WORKER | {"X-Trainboard-Attempt": "2", "X-Trainboard-Lease": answer["lease"]}
    fetched = client.get(f"/api/runs/{run_id}/checkpoints/checkpoint-2.safetensors", headers=headers)
    assert fetched.status_code == 200 and fetched.content == b"two"
    old = WORKER | {"X-Trainboard-Attempt": "1", "X-Trainboard-Lease": lease}
    assert client.get(f"/api/runs/{run_id}/checkpoints/checkpoint-2.safetensors", headers=old).status_code == 409
    # The claim's answer, lost and asked for again, names the same checkpoint.
    again = client.post(f"/api/runs/{run_id}/claim", json={"worker": "test:2"}, headers=WORKER).json()
    assert again["resume"] == answer["resume"]
    # Its time is the kept epochs' (2 x 0.5 s) plus the new attempt's.
    lease = again["lease"]
    report(client, run_id, 2, lease, 3)
    result = {"stopped": "completed", "epochs_run": 3, "total_seconds": 4.0}
    body = {"attempt": 2, "lease": lease, "result": result}
    assert client.post(f"/api/runs/{run_id}/finish", json=body, headers=WORKER).json()["status"] == "succeeded"
    ended = client.get(f"/api/runs/{run_id}", headers=API).json()
    assert ended["summary"]["total_seconds"] == 5.0 and ended["summary"]["epochs_done"] == 3


def test_a_checkpoint_ahead_of_the_stored_epochs_is_not_resumed_from(client: Any) -> None:
    run = create(client)
    attempt, lease = claim(client, run["id"])
    report(client, run["id"], attempt, lease, 1)
    assert upload(client, run["id"], attempt, lease, "checkpoint-3.safetensors", b"3", 3).status_code == 200
    killed = {"attempt": attempt, "lease": lease, "signal": 9}
    client.post(f"/api/runs/{run['id']}/killed", json=killed, headers=WORKER)
    answer = client.post(f"/api/runs/{run['id']}/claim", json={"worker": "w:2"}, headers=WORKER).json()
    assert answer["resume"] is None  # epochs 2 and 3 never arrived: it starts over
    assert client.get(f"/api/runs/{run['id']}/artifacts", headers=API).json()["data"] == []


def test_a_row_whose_file_is_gone_is_404_and_not_resumed_from(client: Any) -> None:
    """A database restored without its artifacts volume: rows without files."""
    run = create(client)
    attempt, lease = claim(client, run["id"])
    for epoch in (1, 2):
        report(client, run["id"], attempt, lease, epoch)
        upload(client, run["id"], attempt, lease, f"checkpoint-{epoch}.safetensors", b"c", epoch)
    client.app.state.settings.keep_checkpoints = 2
    upload(client, run["id"], attempt, lease, "checkpoint-1.safetensors", b"c", 1)
    (folder(client, run["id"]) / "checkpoint-2.safetensors").unlink()
    gone = client.get(f"/api/runs/{run['id']}/artifacts/checkpoint-2.safetensors", headers=API)
    assert gone.status_code == 404 and "is missing" in gone.json()["detail"]
    killed = {"attempt": attempt, "lease": lease, "signal": 9}
    client.post(f"/api/runs/{run['id']}/killed", json=killed, headers=WORKER)
    answer = client.post(f"/api/runs/{run['id']}/claim", json={"worker": "w:2"}, headers=WORKER).json()
    assert answer["resume"]["name"] == "checkpoint-1.safetensors"  # the newest one that is there


def test_an_upload_declared_over_the_limit_is_refused_before_its_body(client: Any) -> None:
    run = create(client)
    attempt, lease = claim(client, run["id"])
    client.app.state.settings.artifact_max_bytes = 1024
    headers = WORKER | {
        "X-Trainboard-Attempt": str(attempt),
        "X-Trainboard-Lease": lease,
        "X-Trainboard-Epoch": "1",
        "X-Trainboard-Sha256": "0" * 64,
        "Content-Length": "5000",
    }
    response = client.put(f"/api/runs/{run['id']}/artifacts/weights.safetensors", content=b"x" * 5000, headers=headers)
    assert response.status_code == 413 and "is 5000 bytes" in response.json()["detail"]
    assert not folder(client, run["id"]).exists()  # nothing was written


def test_gc_removes_a_stale_partial_upload_and_leaves_a_young_file(client: Any) -> None:
    import os
    import time

    from sqlmodel import Session

    from backend.services import artifacts

    run = create(client)
    run_folder = folder(client, run["id"])
    run_folder.mkdir(parents=True)
    stale, young, old = (
        run_folder / name for name in (".w.abc.part", "checkpoint-9.safetensors", "weights.safetensors")
    )
    for file in (stale, young, old):
        file.write_bytes(b"12345")
    day_ago = time.time() - 25 * 3600
    os.utime(stale, (day_ago, day_ago))
    os.utime(old, (day_ago, day_ago))
    with Session(client.app.state.engine) as session:
        freed = artifacts.collect_garbage(session, Path(client.app.state.settings.artifacts_dir))
    assert freed == 10 and sorted(p.name for p in run_folder.iterdir()) == ["checkpoint-9.safetensors"]


@pytest.mark.parametrize("when", ["before its body", "after its body"])
def test_a_run_deleted_during_an_upload_keeps_no_file_and_no_row(
    client: Any, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """A worker's upload has passed its lease check when the run is deleted (its worker reported killed, the user
    deletes the failed run): the upload is refused and leaves neither the file nor the folder it made, nor a row.
    Before its body, the upload makes the run's folder again after the delete removed it: only the upload's own
    cleanup (`remove_if_orphaned`) removes it. After its body, both the delete and that cleanup would."""
    from anyio import to_thread
    from sqlmodel import Session, select

    from backend.services import artifacts, lifecycle, management
    from backend.tables import Artifact, Run

    run = create(client)
    run_id = run["id"]
    attempt, lease = claim(client, run_id)
    report(client, run_id, attempt, lease, 1)
    app = client.app
    received = artifacts.receive

    def delete_the_run() -> None:
        with Session(app.state.engine) as session:
            found = session.get(Run, run_id)
            assert found is not None
            lifecycle.run_killed(session, found, attempt, lease, signal=9, max_attempts=1)  # failed: deletable
            management.delete_runs(session, Path(app.state.settings.artifacts_dir), app.state.feed, [run_id])

    async def receive_with_a_delete(*args: Any, **kwargs: Any) -> artifacts.Received:
        if when == "before its body":
            await to_thread.run_sync(delete_the_run)
        result = await received(*args, **kwargs)
        assert result.part.is_file()  # the whole body arrived in the run's folder
        if when == "after its body":
            await to_thread.run_sync(delete_the_run)
        return result

    monkeypatch.setattr(artifacts, "receive", receive_with_a_delete)
    answer = upload(client, run_id, attempt, lease, "checkpoint-1.safetensors", b"c" * 1000)

    assert answer.status_code == 404 and answer.json()["detail"] == f"run {run_id} not found"
    assert not folder(client, run_id).exists()  # no file, partial or whole, and no folder
    with Session(app.state.engine) as session:
        assert session.exec(select(Artifact).where(Artifact.run_id == run_id)).all() == []
        assert session.get(Run, run_id) is None
