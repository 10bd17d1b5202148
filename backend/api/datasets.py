"""REST routes for datasets: the registered image-folder datasets (`trainboard dataset add`) and registering one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from backend.deps import SessionDep, require_user
from backend.responses import USER, Responses, _error
from backend.services import datasets
from trainboard.schemas import DatasetCreate, DatasetPublic, DatasetsPublic

router = APIRouter(prefix="/api/datasets", tags=["datasets"], dependencies=[Depends(require_user)], responses=USER)

REGISTERED_ELSEWHERE: Responses = {
    200: {"model": DatasetPublic, "description": "Registered already, exactly so: nothing changed"},
    409: _error("The name is registered with other files: pass replace=true to replace it"),
}


@router.get("", response_model=DatasetsPublic)
def read_datasets(session: SessionDep) -> DatasetsPublic:
    """The registered datasets (by name), and the names of the built-in ones: what `dataset.name` may be."""
    return datasets.list_datasets(session)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetPublic, responses=REGISTERED_ELSEWHERE)
def register_dataset(
    body: DatasetCreate,
    session: SessionDep,
    response: Response,
    replace: Annotated[bool, Query(description="Replace a registration of the same name with other files")] = False,
) -> DatasetPublic:
    """Register a dataset decoded by `trainboard dataset add` (its arrays must be in each training worker's
    DATA_DIR/datasets/<name>/). The same name and fingerprint again is a no-op (200)."""
    row, changed = datasets.register(session, body, replace)
    if not changed:
        response.status_code = status.HTTP_200_OK
    return datasets.public(row)
