"""A run's files: training checkpoints and final weights, kept under DATA_DIR/artifacts/<run_id>/.

The rule: a file is a run's artifact once its `artifact` row exists, and the row is written only after
the whole file has arrived, its sha256 matched and it was renamed into place. So a reader never sees a
half file, and a folder may hold files without rows (an upload cut short, a run deleted meanwhile),
which `collect_garbage` removes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from anyio import to_thread
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from backend import schema
from backend.db import make_engine
from backend.services.errors import Invalid, NotFound, TooLarge
from backend.tables import Artifact, Run
from trainboard.protocol import ResumePoint
from trainboard.schemas import ArtifactPublic

CHECKPOINT = "checkpoint"
WEIGHTS = "weights"


# An upload's temporary file older than this is one a crash cut short (8 GB at 10 MB/s take 14 minutes).
PART_MAX_AGE_S = 24 * 3600.0
# `trainboard gc` leaves files younger than this: an upload renames its file into place just before its row
# is committed.
GC_GRACE_S = 600.0

# Writes go to disk in pieces of this size, in the thread pool: the event loop never waits on the disk.
WRITE_CHUNK = 4 * 1024 * 1024


def public(artifact: Artifact) -> ArtifactPublic:
    return ArtifactPublic(
        name=artifact.name,
        kind=artifact.kind,
        epoch=artifact.epoch,
        attempt=artifact.attempt,
        size=artifact.size,
        sha256=artifact.sha256,
        created_at=artifact.created_at,
    )


def kind_of(name: str) -> str:
    return WEIGHTS if name == "weights.safetensors" else CHECKPOINT


def folder(root: Path, run_id: int) -> Path:
    return root / str(int(run_id))


def path(root: Path, artifact: Artifact) -> Path:
    return folder(root, artifact.run_id) / artifact.name


def of_run(session: Session, run_id: int) -> list[Artifact]:
    """A run's artifacts, oldest first."""
    query = select(Artifact).where(Artifact.run_id == run_id).order_by(col(Artifact.epoch), col(Artifact.id))
    return list(session.exec(query).all())


def latest_checkpoint(session: Session, run_id: int) -> Artifact | None:
    query = (
        select(Artifact)
        .where(Artifact.run_id == run_id, Artifact.kind == CHECKPOINT)
        .order_by(col(Artifact.epoch).desc(), col(Artifact.id).desc())
    )
    return session.exec(query).first()


def named(session: Session, run_id: int, name: str) -> Artifact:
    found = session.exec(select(Artifact).where(Artifact.run_id == run_id, Artifact.name == name)).first()
    if found is None:
        raise NotFound(f"run {run_id} has no artifact {name!r}")
    return found


def weights(session: Session, run_id: int) -> Artifact | None:
    query = select(Artifact).where(Artifact.run_id == run_id, Artifact.kind == WEIGHTS)
    return session.exec(query).first()


def resume_point(session: Session, run: Run, through_epoch: int, root: Path | None = None) -> ResumePoint | None:
    """The newest checkpoint a new attempt of `run` can go on from: one whose epoch and every epoch before it
    are stored (`through_epoch`: the last epoch stored with none missing before it), and, given `root`, whose
    file is there (a database restored without its artifacts volume has rows without files)."""
    query = (
        select(Artifact)
        .where(Artifact.run_id == run.id, Artifact.kind == CHECKPOINT, col(Artifact.epoch) <= through_epoch)
        .order_by(col(Artifact.epoch).desc())
    )
    for found in session.exec(query):
        if root is None or path(root, found).is_file():
            return ResumePoint(epoch=found.epoch, name=found.name, sha256=found.sha256, size=found.size)
    return None


def existing_file(root: Path, artifact: Artifact) -> Path:
    """The artifact's file; NotFound (404) when its row outlived it."""
    file = path(root, artifact)
    if not file.is_file():
        raise NotFound(f"run {artifact.run_id}: the file of {artifact.name} is missing from {root} (restore it, "
                       "or `trainboard gc`)")  # fmt: skip
    return file


def drop_after(session: Session, run_id: int, epoch: int) -> None:
    """A new attempt goes on from `epoch`: the files of later epochs, and the last attempt's final weights, are
    no longer the run's (their files go with `remove_unlisted`). Not committed."""
    session.exec(
        delete(Artifact).where(
            col(Artifact.run_id) == run_id, (col(Artifact.epoch) > epoch) | (col(Artifact.kind) == WEIGHTS)
        )
    )


@dataclass(frozen=True)
class Received:
    part: Path
    size: int
    sha256: str


async def receive(chunks: AsyncIterator[bytes], root: Path, run_id: int, name: str, max_bytes: int) -> Received:
    """Stream an upload into a temporary file of the run's folder, counting and hashing as it arrives, never
    holding more than WRITE_CHUNK in memory. TooLarge past `max_bytes` (the partial file is removed)."""
    run_folder = folder(root, run_id)
    await to_thread.run_sync(functools.partial(run_folder.mkdir, parents=True, exist_ok=True))
    part = run_folder / f".{name}.{secrets.token_hex(6)}.part"
    digest, size, pending = hashlib.sha256(), 0, bytearray()
    f = await to_thread.run_sync(part.open, "wb")
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"{name} is over the limit of {max_bytes} bytes (TRAINBOARD_ARTIFACT_MAX_BYTES)")
            digest.update(chunk)
            pending += chunk
            if len(pending) >= WRITE_CHUNK:
                await to_thread.run_sync(f.write, bytes(pending))
                pending.clear()
        if pending:
            await to_thread.run_sync(f.write, bytes(pending))
        await to_thread.run_sync(f.close)
    except BaseException:
        f.close()
        part.unlink(missing_ok=True)
        raise
    return Received(part, size, digest.hexdigest())


def register(
    session: Session,
    root: Path,
    run: Run,
    attempt: int,
    name: str,
    epoch: int,
    received: Received,
    sha256: str,
    keep_checkpoints: int,
) -> Artifact:
    """A complete upload becomes the run's artifact: its sha256 checked, renamed into place, its row written,
    and checkpoints beyond the newest `keep_checkpoints` removed. The caller has checked the attempt's lease
    (and holds the run's row lock). Invalid (and nothing kept) on a hash mismatch."""
    assert run.id is not None
    if received.sha256 != sha256:
        received.part.unlink(missing_ok=True)
        raise Invalid(
            "sha256", f"{name}: the file's sha256 is {received.sha256}, its upload said {sha256}: not kept", "sha256"
        )
    target = folder(root, run.id) / name
    os.replace(received.part, target)
    existing = session.exec(select(Artifact).where(Artifact.run_id == run.id, Artifact.name == name)).first()
    artifact = existing or Artifact(
        run_id=run.id, kind=kind_of(name), name=name, attempt=attempt, epoch=epoch, size=0, sha256=""
    )
    artifact.attempt, artifact.epoch, artifact.size, artifact.sha256 = attempt, epoch, received.size, sha256
    session.add(artifact)
    session.flush()
    checkpoints = session.exec(
        select(Artifact)
        .where(Artifact.run_id == run.id, Artifact.kind == CHECKPOINT)
        .order_by(col(Artifact.epoch).desc())
    ).all()
    for old in checkpoints[keep_checkpoints:]:
        session.delete(old)
    return artifact


def sizes(session: Session, run_ids: Sequence[int]) -> dict[int, int]:
    """Bytes on disk per run, for the runs of `run_ids` that have any artifact (one query)."""
    if not run_ids:
        return {}
    query = (
        select(Artifact.run_id, func.sum(Artifact.size))
        .where(col(Artifact.run_id).in_(list(run_ids)))
        .group_by(col(Artifact.run_id))
    )
    return {run_id: int(total) for run_id, total in session.exec(query).all()}


def drop_checkpoints(session: Session, root: Path, run_id: int) -> None:
    """Forget a run's checkpoints (its next attempt starts from the first epoch); the files go after commit
    via `remove_unlisted`. Not committed."""
    session.exec(delete(Artifact).where(col(Artifact.run_id) == run_id, col(Artifact.kind) == CHECKPOINT))


def remove_if_orphaned(engine: Engine, root: Path, run_id: int) -> None:
    """After a refused upload: a run that no longer exists keeps no folder (the upload may have made it)."""
    with Session(engine) as session:
        if session.get(Run, run_id) is None:
            remove_run_files(root, [run_id])


def remove_run_files(root: Path, run_ids: Iterable[int]) -> None:
    """Delete the folders of runs that are gone (call after the rows' deletion is committed)."""
    for run_id in run_ids:
        shutil.rmtree(folder(root, run_id), ignore_errors=True)


def remove_unlisted(session: Session, root: Path, run_id: int, older_than: float = 0.0) -> int:
    """Delete the files of `run_id`'s folder that no artifact row names (bytes freed), if last changed more than
    `older_than` seconds ago. Partial uploads (`*.part`) are left alone unless older than PART_MAX_AGE_S (an
    upload under way renames or removes its own; one an API crash cut short stays behind)."""
    run_folder = folder(root, run_id)
    if not run_folder.is_dir():
        return 0
    listed = {a.name for a in of_run(session, run_id)}
    now, freed = time.time(), 0
    for file in run_folder.iterdir():
        try:
            info = file.stat()
        except FileNotFoundError:  # removed meanwhile (a parallel cleanup)
            continue
        age = now - info.st_mtime
        if file.name in listed or age < older_than or (file.suffix == ".part" and age < PART_MAX_AGE_S):
            continue
        file.unlink(missing_ok=True)
        freed += info.st_size
    return freed


def collect_garbage(session: Session, root: Path) -> int:
    """Remove the folders of deleted runs and every file no artifact row names; bytes freed."""
    if not root.is_dir():
        return 0
    existing = set(session.exec(select(Run.id)).all())
    freed = 0
    for entry in root.iterdir():
        run_id = int(entry.name) if entry.is_dir() and entry.name.isdigit() else None
        if run_id is None:
            continue
        if run_id not in existing:
            freed += sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
            shutil.rmtree(entry, ignore_errors=True)
        else:
            # A file renamed into place a moment ago may be waiting for its row's commit: leave young ones.
            freed += remove_unlisted(session, root, run_id, older_than=GC_GRACE_S)
    return freed


class SchemaMismatch(RuntimeError):
    """The database is not at this trainboard's schema: its rows cannot say which files are kept."""


def collect_garbage_at(database_url: str, root: Path) -> int:
    """`collect_garbage` on the database at `database_url` (`trainboard gc`); SchemaMismatch if it is not
    at this trainboard's revision."""
    engine = make_engine(database_url)
    try:
        if schema.current(engine) != schema.head():
            raise SchemaMismatch(database_url)
        with Session(engine) as session:
            return collect_garbage(session, root)
    finally:
        engine.dispose()
