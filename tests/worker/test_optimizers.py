"""worker/optimizers.py: optimizer hyperparameters, and the learning rate fit records for each schedule."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from trainboard.protocol import EpochRecord
from trainboard.spec import OptimizerSpec, RunSpec
from worker.data import Dataset
from worker.engine import fit
from worker.optimizers import build_optimizer


def groups(model: torch.nn.Module) -> list[dict[str, Any]]:
    return [{"params": list(model.parameters()), "name": "all"}]


def test_build_optimizer_passes_the_hyperparameters() -> None:
    model = torch.nn.Linear(2, 2)
    sgd = build_optimizer(
        OptimizerSpec(name="sgd", lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.01), groups(model)
    )
    adam = build_optimizer(OptimizerSpec(name="adam", lr=0.002, weight_decay=0.5), groups(model))
    adamw = build_optimizer(OptimizerSpec(name="adamw", lr=0.003, weight_decay=0.05), groups(model))

    assert type(sgd) is torch.optim.SGD and type(adam) is torch.optim.Adam and type(adamw) is torch.optim.AdamW
    hyperparameters = {k: sgd.param_groups[0][k] for k in ("lr", "momentum", "nesterov", "weight_decay", "fused")}
    assert hyperparameters == {"lr": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01, "fused": None}
    assert {k: adam.param_groups[0][k] for k in ("lr", "weight_decay")} == {"lr": 0.002, "weight_decay": 0.5}
    assert {k: adamw.param_groups[0][k] for k in ("lr", "weight_decay")} == {"lr": 0.003, "weight_decay": 0.05}


def test_a_param_groups_own_rate_wins_over_the_optimizers() -> None:
    first, second = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    optimizer = build_optimizer(
        OptimizerSpec(name="adamw", lr=0.1),
        [{"params": list(first.parameters()), "lr": 0.5}, {"params": list(second.parameters())}],
    )

    assert [group["lr"] for group in optimizer.param_groups] == [0.5, 0.1]


# -- schedules, as fit records them ----------------------------------------------------------------


def recorded_lrs(digits: Dataset, epochs: int, scheduler: dict[str, Any], **fields: Any) -> list[list[float]]:
    small = dataclasses.replace(
        digits,
        train_x=digits.train_x[:64],
        train_y=digits.train_y[:64],
        test_x=digits.test_x[:32],
        test_y=digits.test_y[:32],
    )
    spec = RunSpec.model_validate(
        {
            "dataset": {"name": "digits"},
            "model": {"arch": "mlp", "hidden": [8]},
            "device": "cpu",
            "epochs": epochs,
            "batch_size": 32,
            "optimizer": {"name": "sgd", "lr": 0.1},
            "scheduler": scheduler,
        }
        | fields
    )
    records: list[EpochRecord] = []
    fit(spec, data_dir=Path("/nonexistent"), on_epoch=records.append, dataset=small)
    return [record.lr for record in records]


def test_multistep_drops_right_after_each_milestone(digits: Dataset) -> None:
    lrs = recorded_lrs(digits, 9, {"name": "multistep", "milestones": [2, 5, 7], "gamma": 0.1})

    expected = [0.1] * 2 + [0.01] * 3 + [0.001] * 2 + [0.0001] * 2
    assert [lr for [lr] in lrs] == pytest.approx(expected, rel=1e-9)


def test_cosine_reaches_eta_min_at_t_max(digits: Dataset) -> None:
    lrs = recorded_lrs(digits, 6, {"name": "cosine", "t_max": 5, "eta_min": 0.001})

    closed_form = [0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * t / 5)) / 2 for t in range(6)]
    assert [lr for [lr] in lrs] == pytest.approx(closed_form, rel=1e-9)
    assert lrs[0] == [0.1] and lrs[5] == [pytest.approx(0.001, rel=1e-12)]  # epoch t_max + 1 trains at eta_min


def test_cosine_stays_at_eta_min_after_t_max(digits: Dataset) -> None:
    lrs = recorded_lrs(digits, 7, {"name": "cosine", "t_max": 3, "eta_min": 0.002})

    # PyTorch's CosineAnnealingLR would climb back to 0.1 by epoch 7 (it is periodic).
    assert [lr for [lr] in lrs[3:]] == pytest.approx([0.002] * 4, rel=1e-12)


def test_cosine_t_max_defaults_to_the_runs_epochs(digits: Dataset) -> None:
    lrs = recorded_lrs(digits, 4, {"name": "cosine"})

    assert [lr for [lr] in lrs] == pytest.approx([0.1 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(4)])


def test_step_schedule(digits: Dataset) -> None:
    lrs = recorded_lrs(digits, 5, {"name": "step", "step_size": 2, "gamma": 0.5})

    assert [lr for [lr] in lrs] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_no_schedule_keeps_the_rate(digits: Dataset) -> None:
    assert recorded_lrs(digits, 3, {"name": "none"}) == [[0.1]] * 3


def test_every_param_groups_rate_is_recorded_and_scheduled(digits: Dataset) -> None:
    finetune = {"train": ["hidden", "classifier"], "lr": {"hidden": 0.02}}
    lrs = recorded_lrs(digits, 3, {"name": "multistep", "milestones": [1], "gamma": 0.5}, finetune=finetune)

    assert lrs == [[0.02, 0.1], [0.01, 0.05], [0.01, 0.05]]
