"""README.md's "Your own models" example runs as written: its mynets.py, offered by its TRAINBOARD_MODELS line,
trains its spec on the CPU, fine-tuning the group the spec names."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from trainboard.protocol import EpochRecord, RunInfo
from trainboard.settings import Settings
from trainboard.spec import RunSpec
from worker.data import Dataset
from worker.engine import fit

README = Path(__file__).resolve().parents[2] / "README.md"


def block(name: str) -> str:
    """The code block after `<!-- readme-test: NAME -->`."""
    found = re.search(rf"<!-- readme-test: {re.escape(name)} -->\n```\w*\n(.*?)```", README.read_text(), re.S)
    assert found is not None, f"README.md has no block marked readme-test: {name}"
    return found.group(1)


def test_the_readme_custom_model_example_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digits: Dataset
) -> None:
    (tmp_path / "mynets.py").write_text(block("mynets.py"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mynets", raising=False)
    command = block("worker").strip()
    setting = re.match(r"TRAINBOARD_MODELS=(\S+) trainboard worker$", command)
    assert setting is not None, command
    models = Settings(models=setting.group(1)).offered_models  # type: ignore[arg-type]
    spec = RunSpec.model_validate(json.loads(block("spec")))

    records: list[EpochRecord] = []
    infos: list[RunInfo] = []
    fit(
        spec,
        data_dir=tmp_path,
        on_epoch=records.append,
        on_prepared=infos.append,
        dataset=digits,
        models=models,
        memory_budget_gb=16,
    )
    assert len(records) == spec.epochs and records[-1].test_acc > 0.5
    assert infos[0].lr_groups == ["head"] and infos[0].trainable_parameters < infos[0].parameters
