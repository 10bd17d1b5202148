"""A run's files over HTTP: the worker uploads checkpoints and final weights (streamed, sha256 checked) and
fetches the checkpoint a resumed attempt goes on from; users list them and download the weights.

Uploads are raw bodies with the attempt's envelope in headers (trainboard/protocol.py), exempt from the
JSON routes' body limit and request deadline (backend/middleware.py); their own limit is
TRAINBOARD_ARTIFACT_MAX_BYTES. The run is checked before a byte is stored and again, under its row lock,
before the file is renamed into place: a run deleted or requeued meanwhile keeps no file.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from backend.deps import FeedDep, RunDep, RunId, SessionDep, SettingsDep, require_user, require_worker
from backend.responses import COMMON, CONFLICT, NOT_FOUND, USER, Responses
from backend.services import artifacts, lifecycle, runs
from backend.services.errors import NotFound, TooLarge
from backend.tables import Artifact
from trainboard.protocol import (
    ARTIFACT_NAME,
    ATTEMPT_HEADER,
    EPOCH_HEADER,
    LEASE_HEADER,
    LEASE_LENGTH,
    MAX_EPOCH,
    MAX_ID,
    SHA256,
    SHA256_HEADER,
    ArtifactAnswer,
)
from trainboard.schemas import ArtifactsPublic
from trainboard.settings import Settings

worker_router = APIRouter(
    prefix="/api/runs/{run_id}",
    tags=["worker"],
    dependencies=[Depends(require_worker)],
    responses=COMMON | NOT_FOUND | CONFLICT,
)
router = APIRouter(prefix="/api/runs/{run_id}", tags=["runs"], dependencies=[Depends(require_user)], responses=USER)

ArtifactName = Annotated[
    str, PathParam(pattern=ARTIFACT_NAME, description="checkpoint-<epoch> or weights, .safetensors")
]
Attempt = Annotated[int, Header(alias=ATTEMPT_HEADER, ge=1, le=MAX_ID)]
Lease = Annotated[str, Header(alias=LEASE_HEADER, min_length=1, max_length=LEASE_LENGTH)]
SAFETENSORS: Responses = {200: {"content": {"application/octet-stream": {}}, "description": "The file (safetensors)"}}


def _hold(engine: Engine, run_id: int, attempt: int, lease: str) -> None:
    with Session(engine) as session:
        lifecycle.hold_attempt(session, runs.get_run(session, run_id), attempt, lease)
        session.commit()


def _register(
    engine: Engine,
    settings: Settings,
    run_id: int,
    attempt: int,
    lease: str,
    name: str,
    epoch: int,
    received: artifacts.Received,
    sha256: str,
) -> ArtifactAnswer:
    root = settings.artifacts_dir
    try:
        with Session(engine) as session:
            run = runs.get_run(session, run_id)
            lifecycle.hold_attempt(session, run, attempt, lease)
            artifact = artifacts.register(
                session, root, run, attempt, name, epoch, received, sha256, settings.keep_checkpoints
            )
            answer = ArtifactAnswer(name=artifact.name, size=artifact.size, sha256=artifact.sha256)
            session.commit()
            artifacts.remove_unlisted(session, root, run_id)  # the checkpoints it replaced
            return answer
    except Exception:
        received.part.unlink(missing_ok=True)
        artifacts.remove_if_orphaned(engine, root, run_id)
        raise


@worker_router.put(
    "/artifacts/{name}", response_model=ArtifactAnswer, openapi_extra={"requestBody": {"content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}, "required": True}}
)  # fmt: skip
async def upload_artifact(
    request: Request,
    run_id: RunId,
    name: ArtifactName,
    attempt: Attempt,
    lease: Lease,
    epoch: Annotated[int, Header(alias=EPOCH_HEADER, ge=1, le=MAX_EPOCH)],
    sha256: Annotated[str, Header(alias=SHA256_HEADER, pattern=SHA256)],
    settings: SettingsDep,
    feed: FeedDep,
) -> ArtifactAnswer:
    """A checkpoint or the final weights of the attempt, as the raw body. 413 over the size limit; 422 when
    the body's sha256 is not the header's (nothing is kept); 409 when the attempt is no longer current."""
    engine: Engine = request.app.state.engine
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.artifact_max_bytes:  # before a byte is read or sent
        raise TooLarge(f"{name} is {declared} bytes, over the limit of {settings.artifact_max_bytes} bytes "
                       "(TRAINBOARD_ARTIFACT_MAX_BYTES)")  # fmt: skip
    await run_in_threadpool(_hold, engine, run_id, attempt, lease)
    received = await artifacts.receive(
        request.stream(), settings.artifacts_dir, run_id, name, settings.artifact_max_bytes
    )
    answer = await run_in_threadpool(_register, engine, settings, run_id, attempt, lease, name, epoch, received, sha256)
    feed.notify(run_id)
    return answer


@worker_router.get("/checkpoints/{name}", response_class=FileResponse, responses=SAFETENSORS)
def download_checkpoint(
    run: RunDep, name: ArtifactName, attempt: Attempt, lease: Lease, session: SessionDep, settings: SettingsDep
) -> FileResponse:
    """The checkpoint the claim named, for the attempt that resumes from it."""
    lifecycle.hold_attempt(session, run, attempt, lease)
    session.commit()
    assert run.id is not None
    found = artifacts.named(session, run.id, name)
    return FileResponse(artifacts.existing_file(settings.artifacts_dir, found), media_type="application/octet-stream")


@router.get("/artifacts", response_model=ArtifactsPublic, responses=NOT_FOUND)
def list_artifacts(run: RunDep, session: SessionDep) -> ArtifactsPublic:
    """What the run keeps: its newest checkpoint(s) and its final weights, with size and sha256."""
    assert run.id is not None
    found = [artifacts.public(a) for a in artifacts.of_run(session, run.id)]
    return ArtifactsPublic(run_id=run.id, data=found, total_bytes=sum(a.size for a in found))


@router.get("/artifacts/{name}", response_class=FileResponse, responses=NOT_FOUND | SAFETENSORS)
def download_artifact(run: RunDep, name: ArtifactName, session: SessionDep, settings: SettingsDep) -> FileResponse:
    assert run.id is not None
    found = artifacts.named(session, run.id, name)
    return _file(settings, found, f"run-{run.id}-{found.name}")


@router.get("/weights", response_class=FileResponse, responses=NOT_FOUND | SAFETENSORS)
def download_weights(run: RunDep, session: SessionDep, settings: SettingsDep) -> FileResponse:
    """The run's final weights (the restored best epoch's, for early stopping) as safetensors, with the spec in
    its metadata: `trainboard.weights.load_model(path)` builds the model and loads them. 404 until the run
    has finished."""
    assert run.id is not None
    found = artifacts.weights(session, run.id)
    if found is None:
        raise NotFound(f"run {run.id} has no final weights (yet): they are kept when a run finishes")
    return _file(settings, found, f"run-{run.id}-weights.safetensors")


def _file(settings: Settings, artifact: Artifact, filename: str) -> FileResponse:
    return FileResponse(
        artifacts.existing_file(settings.artifacts_dir, artifact),
        media_type="application/octet-stream",
        filename=filename,
        headers={"X-Trainboard-Sha256": artifact.sha256},
    )
