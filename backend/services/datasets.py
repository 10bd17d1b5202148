"""Registered datasets: image folders decoded by `trainboard dataset add` (worker/folders.py), listed, registered,
and checked when runs name them.

The spec (trainboard/spec.py) takes any well-formed dataset name: only the database knows which are registered.
So queue_runs calls `check_specs`, which refuses an unknown name (422 at `dataset.name`, listing what exists),
tells the spec module the registered datasets' shapes, and validates each spec again with them (the conv stack
that shrinks the images to nothing, a torchvision model on images under 32x32, the parameter budget...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import ValidationError
from sqlmodel import Session, col, select

from backend.services.errors import Conflict, Invalid
from backend.tables import Dataset
from trainboard.schemas import DatasetCreate, DatasetPublic, DatasetsPublic
from trainboard.spec import (
    BUILTIN_DATASETS,
    CLASS_NAMES,
    RegisteredDataset,
    RunSpec,
    error_field,
    set_registered,
)


def public(row: Dataset) -> DatasetPublic:
    return DatasetPublic(
        name=row.name,
        classes=list(row.classes),
        image_size=row.image_size,
        channels=row.channels,  # 1 or 3, as registered
        train_count=row.train_count,
        test_count=row.test_count,
        fingerprint=row.fingerprint,
        created_at=row.created_at,
    )


def list_datasets(session: Session) -> DatasetsPublic:
    rows = session.exec(select(Dataset).order_by(col(Dataset.name))).all()
    return DatasetsPublic(data=[public(r) for r in rows], count=len(rows), builtin=list(BUILTIN_DATASETS))


def register(session: Session, body: DatasetCreate, replace: bool = False) -> tuple[Dataset, bool]:
    """Register (or with `replace`, re-register) a decoded dataset; (the row, whether anything changed).

    The same name with the same description is the same dataset: nothing to do. Another one is refused
    (Conflict) unless `replace`: runs already trained on the old files would no longer match their data."""
    if body.name in BUILTIN_DATASETS:
        raise Invalid("name", f"{body.name} is a built-in dataset: choose another name", "builtin_dataset")
    row = session.exec(select(Dataset).where(Dataset.name == body.name)).first()
    if row is not None:
        if public(row).model_dump(exclude={"created_at"}) == body.model_dump():
            return row, False
        if not replace:
            raise Conflict(
                f"dataset {body.name!r} is already registered with other files (fingerprint {row.fingerprint[:12]}, "
                f"{row.train_count} + {row.test_count} images): use --replace to replace it"
            )
        for key, value in body.model_dump().items():
            setattr(row, key, value)
    else:
        row = Dataset(**body.model_dump())
    session.add(row)
    session.commit()
    session.refresh(row)
    return row, True


def known(session: Session) -> dict[str, RegisteredDataset]:
    rows = session.exec(select(Dataset)).all()
    return {
        r.name: RegisteredDataset(
            channels=r.channels, size=r.image_size, classes=tuple(r.classes), images=r.train_count + r.test_count
        )
        for r in rows
    }


def sync(session: Session) -> dict[str, RegisteredDataset]:
    """Tell the spec module (this process) the registered datasets, as the database has them now."""
    found = known(session)
    set_registered(found)
    return found


def check_specs(session: Session, specs: Sequence[RunSpec]) -> list[RunSpec]:
    """The specs, validated again with the registered datasets known; Invalid for an unknown dataset name or a
    spec that does not fit its registered dataset."""
    if all(spec.dataset.name in BUILTIN_DATASETS for spec in specs):
        return list(specs)  # the spec checked these in full already
    found = sync(session)
    checked = []
    for spec in specs:
        name = spec.dataset.name
        if name not in BUILTIN_DATASETS and name not in found:
            choices = ", ".join(map(repr, [*BUILTIN_DATASETS, *sorted(found)]))
            raise Invalid("dataset.name", f"no dataset named {name!r}: the datasets are {choices}", "unknown_dataset")
        try:
            checked.append(RunSpec.model_validate(spec.model_dump()))
        except ValidationError as exc:
            error = exc.errors()[0]
            message = str(error["msg"]).removeprefix("Value error, ")
            field = error_field(error["loc"], str(error["msg"]))
            raise Invalid(field, message.removeprefix(f"{field.rsplit('.', 1)[-1]}: "), "spec") from exc
    return checked


def class_names(session: Session, name: str) -> list[str]:
    """A dataset's class names in label order (built-in or registered); [] for a name no longer registered."""
    if name in CLASS_NAMES:
        return CLASS_NAMES[name]
    row = session.exec(select(Dataset).where(Dataset.name == name)).first()
    return [] if row is None else list(row.classes)


class SchemaMismatch(RuntimeError):
    """The database is not at this trainboard's schema (`trainboard db upgrade`)."""


def register_at(
    database_url: str, body: DatasetCreate, replace: bool, write_files: Callable[[], object]
) -> tuple[DatasetPublic, bool]:
    """`trainboard dataset add`'s registration, straight in the database at `database_url`: refused (Conflict)
    before `write_files` runs when the name is registered with other files and not `replace`."""
    from backend import schema
    from backend.db import make_engine

    engine = make_engine(database_url)
    try:
        if schema.current(engine) != schema.head():
            raise SchemaMismatch(database_url)
        with Session(engine) as session:
            row = session.exec(select(Dataset).where(Dataset.name == body.name)).first()
            if row is not None and public(row).model_dump(exclude={"created_at"}) != body.model_dump() and not replace:
                register(session, body, replace)  # raises the Conflict
            write_files()
            row, changed = register(session, body, replace)
            return public(row), changed
    finally:
        engine.dispose()
