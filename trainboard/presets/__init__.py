"""Built-in studies: one JSON file per table of the motivating study (../shared/STUDY.md), shipped in
this package and checked when first loaded — a preset whose variants do not all expand to valid
specs is an error naming its file, raised at the API's start-up.
"""

from __future__ import annotations

import functools
from importlib import resources
from importlib.resources.abc import Traversable

from pydantic import Field, ValidationError

from trainboard.presets.variants import StudyDefinition, StudyInvalid, expand


class Preset(StudyDefinition):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="What `POST /api/studies` calls it.")
    title: str = Field(min_length=1, max_length=120)
    table: str = Field("", max_length=120, description="The table of the study it reproduces.")
    description: str = Field("", max_length=5000, description="Its settings, and every assumption it makes.")


class PresetError(Exception):
    """A preset file that does not load: its name and what is wrong."""


def load_presets_from(folder: Traversable) -> dict[str, Preset]:
    """Every `*.json` preset in `folder`, each one checked; by name, in the order of their tables."""
    loaded = [_load(entry) for entry in folder.iterdir() if entry.name.endswith(".json")]
    return {preset.name: preset for preset in sorted(loaded, key=lambda p: (p.table, p.name))}


def _load(entry: Traversable) -> Preset:
    try:
        preset = Preset.model_validate_json(entry.read_text(encoding="utf-8"))
        expand(preset.base, preset.variants)
    except (ValidationError, StudyInvalid, UnicodeDecodeError) as exc:
        raise PresetError(f"preset file {entry.name}: {exc}") from exc
    if f"{preset.name}.json" != entry.name:
        raise PresetError(f"preset file {entry.name}: its name is {preset.name!r}; the file must be {preset.name}.json")
    return preset


@functools.cache
def presets() -> dict[str, Preset]:
    """The built-in presets, loaded once."""
    return load_presets_from(resources.files(__name__))
