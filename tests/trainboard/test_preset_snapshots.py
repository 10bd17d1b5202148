"""Every preset's expanded specs, committed: a change of the spec's defaults (or of a preset) that would
change what a preset runs shows in the diff of tests/snapshots/presets.json. The presets state the
settings of the study they reproduce, so a new default must not move them. Regenerate on purpose with
UPDATE_SNAPSHOTS=1 and review the diff."""

from __future__ import annotations

import json
import os
from pathlib import Path

from trainboard.presets import presets
from trainboard.presets.variants import expand

SNAPSHOT = Path(__file__).parents[1] / "snapshots" / "presets.json"


def expanded_presets() -> str:
    """Each preset's runs as the worker would get them: every field, defaults included, by label."""
    document = {
        name: {
            variant.label: spec.model_dump(mode="json")
            for variant, spec in zip(preset.variants, expand(preset.base, preset.variants), strict=True)
        }
        for name, preset in presets().items()
    }
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def test_the_presets_expand_to_the_snapshot() -> None:
    current = expanded_presets()
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(current)
    assert current == SNAPSHOT.read_text(), "a preset's expanded specs changed: run with UPDATE_SNAPSHOTS=1 and review"


def test_the_snapshot_holds_every_run_of_every_preset() -> None:
    """The snapshot is not empty or partial: every variant of every preset, with its defaults spelled out."""
    document = json.loads(SNAPSHOT.read_text())
    assert {name: len(runs) for name, runs in document.items()} == {
        name: len(preset.variants) for name, preset in presets().items()
    }
    basic = document["mnist-ablations"]["Basic CNN"]
    assert basic["optimizer"] == {"name": "sgd", "lr": 0.01, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}
    assert (basic["epochs"], basic["batch_size"], basic["seed"]) == (10, 64, 0)
