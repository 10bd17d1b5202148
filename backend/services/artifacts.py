"""A run's files: training checkpoints and final weights, kept under DATA_DIR/artifacts/<run_id>/.

The rule: a file is a run's artifact once its `artifact` row exists, and the row is written only after
the whole file has arrived, its sha256 matched and it was renamed into place. So a reader never sees a
half file, and a folder may hold files without rows (an upload cut short, a run deleted meanwhile),
which `collect_garbage` removes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy import func
from sqlmodel import Session, col, delete, select

from backend.tables import Artifact, Run

CHECKPOINT = "checkpoint"
WEIGHTS = "weights"


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


def remove_run_files(root: Path, run_ids: Iterable[int]) -> None:
    """Delete the folders of runs that are gone (call after the rows' deletion is committed)."""
    for run_id in run_ids:
        shutil.rmtree(folder(root, run_id), ignore_errors=True)


def remove_unlisted(session: Session, root: Path, run_id: int) -> int:
    """Delete the files of `run_id`'s folder that no artifact row names (bytes freed). Partial uploads
    (`*.part`) of a run that is still uploading are left alone: the upload renames or removes them itself."""
    run_folder = folder(root, run_id)
    if not run_folder.is_dir():
        return 0
    listed = {a.name for a in of_run(session, run_id)}
    freed = 0
    for file in run_folder.iterdir():
        if file.name in listed or file.suffix == ".part":
            continue
        freed += file.stat().st_size
        file.unlink(missing_ok=True)
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
            freed += remove_unlisted(session, root, run_id)
    return freed
