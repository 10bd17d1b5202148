"""REST routes for the built-in presets: one study per table of the motivating study."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from backend.deps import require_user
from backend.responses import NOT_FOUND, USER
from backend.services.errors import NotFound
from trainboard.presets import Preset, presets
from trainboard.schemas import PresetsPublic, PresetSummary, PresetVariant

router = APIRouter(prefix="/api/presets", tags=["studies"], dependencies=[Depends(require_user)], responses=USER)


@router.get("", response_model=PresetsPublic)
def read_presets() -> PresetsPublic:
    """The built-in studies: one per table of the motivating study, each variant with its reported figures."""
    data = [
        PresetSummary(
            name=p.name,
            title=p.title,
            table=p.table,
            description=p.description,
            runs=len(p.variants),
            variants=[PresetVariant(label=v.label, reported=v.reported) for v in p.variants],
        )
        for p in presets().values()
    ]
    return PresetsPublic(data=data, count=len(data))


@router.get("/{name}", response_model=Preset, responses=NOT_FOUND)
def read_preset(name: Annotated[str, Path(max_length=64)]) -> Preset:
    """A preset in full: its base spec and every variant, as `POST /api/studies` takes them."""
    preset = presets().get(name)
    if preset is None:
        raise NotFound(f"preset {name!r} not found")
    return preset
