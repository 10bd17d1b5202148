"""Deleting, archiving and retrying runs and studies over REST, on SQLite and PostgreSQL: what goes (rows,
epochs, artifact rows and files), what a running run refuses (409), the archived filters, retries with a
fresh lost-run budget and `?from=start` dropping checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from backend.db import utcnow
from backend.services import lifecycle
from backend.tables import Artifact, EpochMetric, Run
from tests.conftest import API, WORKER, epoch_record, tiny_spec
from trainboard.schemas import RunStatus

CHECKPOINT_BYTES = b"c" * 1000
WEIGHTS_BYTES = b"w" * 234


def create(client: Any, **spec: Any) -> int:
    response = client.post("/api/runs", json=tiny_spec(**spec), headers=API)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def claim(client: Any, run_id: int) -> tuple[int, str]:
    response = client.post(f"/api/runs/{run_id}/claim", json={"worker": "test:1"}, headers=WORKER)
    assert response.status_code == 200, response.text
    return int(response.json()["attempt"]), str(response.json()["lease"])


def epoch(client: Any, run_id: int, attempt: int, lease: str, n: int) -> None:
    body = {"attempt": attempt, "lease": lease, "record": epoch_record(n)}
    assert client.post(f"/api/runs/{run_id}/epochs", json=body, headers=WORKER).status_code == 200


def fail(client: Any, run_id: int, error: str = "RuntimeError: boom\n\nTraceback ...") -> None:
    attempt, lease = claim(client, run_id)
    epoch(client, run_id, attempt, lease, 1)
    body = {"attempt": attempt, "lease": lease, "error": error}
    assert client.post(f"/api/runs/{run_id}/finish", json=body, headers=WORKER).json()["status"] == "failed"


def artifacts_root(client: Any) -> Path:
    return Path(client.app.state.settings.artifacts_dir)


def add_artifacts(client: Any, run_id: int) -> Path:
    """A checkpoint and final weights for the run, as rows and files (as the upload leaves them), plus a
    partial upload; returns the run's folder."""
    folder = artifacts_root(client) / str(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "checkpoint-1.safetensors").write_bytes(CHECKPOINT_BYTES)
    (folder / "weights.safetensors").write_bytes(WEIGHTS_BYTES)
    (folder / "checkpoint-2.pt.part").write_bytes(b"half")
    with Session(client.app.state.engine) as session:
        for kind, name, size in (
            ("checkpoint", "checkpoint-1.safetensors", len(CHECKPOINT_BYTES)),
            ("weights", "weights.safetensors", len(WEIGHTS_BYTES)),
        ):
            session.add(Artifact(run_id=run_id, kind=kind, name=name, attempt=1, epoch=1, size=size, sha256="0" * 64))
        session.commit()
    return folder


def rows(client: Any, table: type[Any], run_id: int) -> list[Any]:
    with Session(client.app.state.engine) as session:
        return list(session.exec(select(table).where(table.run_id == run_id)).all())


def listed(client: Any, query: str = "") -> list[int]:
    response = client.get(f"/api/runs{query}", headers=API)
    assert response.status_code == 200, response.text
    return [run["id"] for run in response.json()["data"]]


# -- delete ---------------------------------------------------------------------------------------


def test_deleting_a_run_removes_its_rows_epochs_artifacts_and_files(client: Any) -> None:
    run_id, other = create(client), create(client)
    fail(client, run_id)
    folder = add_artifacts(client, run_id)
    other_folder = add_artifacts(client, other)
    assert client.delete(f"/api/runs/{run_id}", headers=API).status_code == 204
    assert client.get(f"/api/runs/{run_id}", headers=API).status_code == 404
    assert rows(client, EpochMetric, run_id) == [] and rows(client, Artifact, run_id) == []
    assert not folder.exists()  # no file left behind, the partial upload included
    assert listed(client) == [other]
    assert len(rows(client, Artifact, other)) == 2 and len(list(other_folder.iterdir())) == 3  # untouched
    assert client.delete(f"/api/runs/{run_id}", headers=API).status_code == 404


def test_a_running_run_must_be_cancelled_before_it_is_deleted(client: Any) -> None:
    run_id = create(client)
    claim(client, run_id)
    response = client.delete(f"/api/runs/{run_id}", headers=API)
    assert response.status_code == 409
    assert response.json()["detail"] == f"run {run_id} is running: cancel it first"
    assert client.get(f"/api/runs/{run_id}", headers=API).status_code == 200


def test_a_deleted_queued_run_is_nothing_to_do_for_the_worker_that_receives_it(client: Any) -> None:
    run_id = create(client)
    assert client.delete(f"/api/runs/{run_id}", headers=API).status_code == 204
    response = client.post(f"/api/runs/{run_id}/claim", json={"worker": "late:1"}, headers=WORKER)
    assert response.status_code == 404
    assert response.json()["detail"] == f"run {run_id} not found"


def test_bulk_delete_is_all_or_nothing_and_names_the_running_runs(client: Any) -> None:
    done, running, also_running, queued = (create(client) for _ in range(4))
    fail(client, done)
    claim(client, running)
    claim(client, also_running)
    folder = add_artifacts(client, done)
    response = client.post("/api/runs/delete", json={"run_ids": [done, running, also_running, queued]}, headers=API)
    assert response.status_code == 409
    assert response.json()["detail"] == f"runs {running}, {also_running} are running: cancel them first"
    assert sorted(listed(client)) == sorted([done, running, also_running, queued])  # nothing went
    assert folder.exists()
    response = client.post("/api/runs/delete", json={"run_ids": [queued, done, done, 999]}, headers=API)
    assert response.status_code == 200
    assert response.json() == {"run_ids": [done, queued], "not_found": [999]}
    assert sorted(listed(client)) == sorted([running, also_running])
    assert not folder.exists()


def test_bulk_requests_are_bounded(client: Any) -> None:
    for body in ({"run_ids": []}, {"run_ids": list(range(1, 502))}, {"run_ids": [0]}, {"ids": [1]}):
        for route in ("delete", "archive", "restore"):
            assert client.post(f"/api/runs/{route}", json=body, headers=API).status_code == 422, (route, body)


def test_deleting_a_study_deletes_its_runs_and_their_files(client: Any) -> None:
    body = {
        "name": "two",
        "base": tiny_spec(),
        "variants": [{"label": "a"}, {"label": "b", "set": {"optimizer.lr": 0.01}}],
    }
    study = client.post("/api/studies", json=body, headers=API).json()
    first, second = (run["id"] for run in study["data"])
    loose = create(client)
    claim(client, first)
    folder = add_artifacts(client, second)
    response = client.delete(f"/api/studies/{study['id']}", headers=API)
    assert response.status_code == 409
    assert response.json()["detail"] == f"run {first} is running: cancel it first"
    client.post(f"/api/runs/{first}/cancel", headers=API)  # a running run is cancelled cooperatively...
    with Session(client.app.state.engine) as session:  # ...and stops: its worker's finish, in short
        run = session.get(Run, first)
        assert run is not None
        run.status, run.finished_at = RunStatus.cancelled, utcnow()
        session.add(run)
        session.commit()
    assert client.delete(f"/api/studies/{study['id']}", headers=API).status_code == 204
    assert client.get(f"/api/studies/{study['id']}", headers=API).status_code == 404
    assert listed(client, "?archived=include") == [loose]
    assert not folder.exists()
    assert client.delete(f"/api/studies/{study['id']}", headers=API).status_code == 404


def test_a_retried_create_whose_run_was_deleted_is_a_conflict_not_an_error(client: Any) -> None:
    key = {"Idempotency-Key": "made-then-deleted"}
    run_id = client.post("/api/runs", json=tiny_spec(), headers=API | key).json()["id"]
    client.delete(f"/api/runs/{run_id}", headers=API)
    response = client.post("/api/runs", json=tiny_spec(), headers=API | key)
    assert response.status_code == 409
    assert "deleted since" in response.json()["detail"]


# -- archive --------------------------------------------------------------------------------------


def test_archived_runs_leave_the_default_list_and_come_back_when_restored(client: Any) -> None:
    kept, archived = create(client, name="kept"), create(client, name="old")
    response = client.post(f"/api/runs/{archived}/archive", headers=API)
    assert response.status_code == 200
    first_archived_at = response.json()["archived_at"]
    assert first_archived_at is not None
    assert listed(client) == [kept]
    assert client.get("/api/runs", headers=API).json()["count"] == 1
    assert listed(client, "?archived=include") == [archived, kept]
    assert listed(client, "?archived=only") == [archived]
    assert listed(client, "?archived=only&q=kept") == []
    assert client.get(f"/api/runs/{archived}", headers=API).json()["archived_at"] == first_archived_at  # by URL
    again = client.post(f"/api/runs/{archived}/archive", headers=API).json()
    assert again["archived_at"] == first_archived_at  # archiving twice keeps the first time
    assert client.get("/api/runs?archived=maybe", headers=API).status_code == 422
    restored = client.post(f"/api/runs/{archived}/restore", headers=API).json()
    assert restored["archived_at"] is None
    assert listed(client) == [archived, kept]
    assert client.post("/api/runs/999/archive", headers=API).status_code == 404


def test_bulk_archive_and_restore(client: Any) -> None:
    a, b, c = create(client), create(client), create(client)
    response = client.post("/api/runs/archive", json={"run_ids": [a, c, 12345]}, headers=API)
    assert response.json() == {"run_ids": [a, c], "not_found": [12345]}
    assert listed(client) == [b]
    assert client.post("/api/runs/restore", json={"run_ids": [c]}, headers=API).json()["run_ids"] == [c]
    assert listed(client) == [c, b]


def test_archiving_a_study_archives_its_runs_and_restoring_restores_them(client: Any) -> None:
    body = {"name": "s", "base": tiny_spec(), "variants": [{"label": "a"}, {"label": "b", "set": {"seed": 1}}]}
    study = client.post("/api/studies", json=body, headers=API).json()
    other = client.post("/api/studies", json=body | {"name": "t"}, headers=API).json()
    answer = client.post(f"/api/studies/{study['id']}/archive", headers=API)
    assert answer.status_code == 200 and answer.json()["archived_at"] is not None
    assert answer.json()["runs"] == 2
    studies = client.get("/api/studies", headers=API).json()
    assert [s["id"] for s in studies["data"]] == [other["id"]] and studies["count"] == 1
    only = client.get("/api/studies?archived=only", headers=API).json()["data"]
    assert [s["id"] for s in only] == [study["id"]]
    assert len(client.get("/api/studies?archived=include", headers=API).json()["data"]) == 2
    assert client.get(f"/api/studies/{study['id']}", headers=API).status_code == 200  # still reachable
    assert listed(client, f"?study={study['id']}") == []
    assert len(listed(client, f"?study={study['id']}&archived=only")) == 2
    client.post(f"/api/studies/{study['id']}/restore", headers=API)
    assert len(listed(client, f"?study={study['id']}")) == 2
    assert client.post("/api/studies/999/archive", headers=API).status_code == 404


# -- retry ----------------------------------------------------------------------------------------


def test_retry_queues_a_failed_run_as_a_new_attempt_with_a_fresh_lost_budget(client: Any) -> None:
    run_id = create(client)
    fail(client, run_id)
    before = rows(client, EpochMetric, run_id)
    response = client.post(f"/api/runs/{run_id}/retry", headers=API)
    assert response.status_code == 200, response.text
    run = response.json()
    assert (run["status"], run["attempt"], run["error"], run["finished_at"]) == ("queued", 1, None, None)
    assert len(rows(client, EpochMetric, run_id)) == len(before) == 1  # kept until the claim decides
    with Session(client.app.state.engine) as session:
        stored = session.get(Run, run_id)
        assert stored is not None and stored.attempt_base == 1
    attempt, _ = claim(client, run_id)
    assert attempt == 2  # the attempt number keeps growing
    # Lost at attempt 2 with max_attempts=2: the budget counts from the retry, so it is requeued once more...
    with Session(client.app.state.engine) as session:
        stored = session.get(Run, run_id)
        assert stored is not None
        stored.heartbeat_at = utcnow().replace(year=2000)
        session.add(stored)
        session.commit()
        found = lifecycle.recover_lost_runs(session, lost_after_seconds=60, max_attempts=2)
        assert found.requeue == [run_id]
    attempt, _ = claim(client, run_id)
    assert attempt == 3
    with Session(client.app.state.engine) as session:  # ...and given up on after two attempts since the retry
        stored = session.get(Run, run_id)
        assert stored is not None
        stored.heartbeat_at = utcnow().replace(year=2000)
        session.add(stored)
        session.commit()
        assert lifecycle.recover_lost_runs(session, lost_after_seconds=60, max_attempts=2).requeue == []
        session.refresh(stored)
        assert stored.status == "failed" and "attempt 2 of 2" in (stored.error or "")


def test_retry_refuses_runs_that_did_not_fail_or_were_not_cancelled(client: Any) -> None:
    queued, running, succeeded = create(client), create(client), create(client)
    claim(client, running)
    attempt, lease = claim(client, succeeded)
    result = {"stopped": "completed", "epochs_run": 0, "total_seconds": 1.0}
    client.post(
        f"/api/runs/{succeeded}/finish", json={"attempt": attempt, "lease": lease, "result": result}, headers=WORKER
    )
    for run_id, status in ((queued, "queued"), (running, "running"), (succeeded, "succeeded")):
        response = client.post(f"/api/runs/{run_id}/retry", headers=API)
        assert response.status_code == 409, status
        assert response.json()["detail"] == f"run {run_id} is {status}: only a failed or cancelled run can be retried"
    assert client.post("/api/runs/999/retry", headers=API).status_code == 404
    assert client.post(f"/api/runs/{queued}/retry?from=middle", headers=API).status_code == 422


def test_retry_of_a_cancelled_run_clears_the_cancel(client: Any) -> None:
    run_id = create(client)
    client.post(f"/api/runs/{run_id}/cancel", headers=API)
    run = client.post(f"/api/runs/{run_id}/retry", headers=API).json()
    assert (run["status"], run["cancel_requested"]) == ("queued", False)
    attempt, _ = claim(client, run_id)  # claimable again (a cancelled run is not)
    assert attempt == 1


def test_retry_keeps_checkpoints_by_default_and_from_start_drops_them_and_their_files(client: Any) -> None:
    run_id = create(client)
    fail(client, run_id)
    folder = add_artifacts(client, run_id)
    client.post(f"/api/runs/{run_id}/retry", headers=API)
    assert {a.kind for a in rows(client, Artifact, run_id)} == {"checkpoint", "weights"}
    assert (folder / "checkpoint-1.safetensors").exists()
    fail(client, run_id)  # its claim (a new attempt) drops the earlier attempt's weights, rows and files
    assert [a.kind for a in rows(client, Artifact, run_id)] == ["checkpoint"]
    response = client.post(f"/api/runs/{run_id}/retry?from=start", headers=API)
    assert response.status_code == 200 and response.json()["status"] == "queued"
    assert rows(client, Artifact, run_id) == []
    assert sorted(f.name for f in folder.iterdir()) == ["checkpoint-2.pt.part"]  # an upload under way stays


def test_retry_failed_runs_of_a_study(client: Any) -> None:
    body = {
        "name": "three",
        "base": tiny_spec(),
        "variants": [{"label": "a"}, {"label": "b", "set": {"seed": 1}}, {"label": "c", "set": {"seed": 2}}],
    }
    study = client.post("/api/studies", json=body, headers=API).json()
    a, b, c = (run["id"] for run in study["data"])
    fail(client, a)
    fail(client, c, "ValueError: no data")
    response = client.post(f"/api/studies/{study['id']}/retry", headers=API)
    assert response.status_code == 200
    assert response.json() == {"run_ids": [a, c], "not_found": []}
    statuses = {r["id"]: r["status"] for r in client.get(f"/api/studies/{study['id']}", headers=API).json()["data"]}
    assert statuses == {a: "queued", b: "queued", c: "queued"}
    assert client.post(f"/api/studies/{study['id']}/retry", headers=API).json()["run_ids"] == []  # none failed now
    assert client.post("/api/studies/999/retry", headers=API).status_code == 404


def test_management_routes_need_a_token(client: Any) -> None:
    for method, path in (
        ("DELETE", "/api/runs/1"),
        ("POST", "/api/runs/delete"),
        ("POST", "/api/runs/1/retry"),
        ("POST", "/api/runs/1/archive"),
        ("DELETE", "/api/studies/1"),
        ("POST", "/api/studies/1/retry"),
    ):
        assert client.request(method, path).status_code == 401, path
