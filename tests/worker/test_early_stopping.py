"""worker/early_stopping.py and fit's use of it: stop after `patience` epochs without improvement, restore the best.

fit's evaluations are scripted (worker.engine.evaluate replaced by a fake that returns the next
metric of a list and keeps a copy of the weights it was called with), so each test knows exactly
when the run must stop and which weights it must end with.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from trainboard.protocol import EpochRecord, RunResult
from trainboard.spec import EarlyStoppingSpec, RunSpec
from worker import engine
from worker.data import Dataset
from worker.early_stopping import EarlyStopping
from worker.engine import EvalStats


class ScriptedEvaluation:
    """Stands in for engine.evaluate: the i-th call returns the i-th (accuracy, loss) of the script."""

    def __init__(self, script: list[tuple[float, float]]):
        self.script = script
        self.weights: list[dict[str, torch.Tensor]] = []  # the model's state at each call

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *args: Any) -> EvalStats:
        call = len(self.weights)
        self.weights.append({name: t.clone() for name, t in model.state_dict().items()})
        accuracy, loss = self.script[call] if call < len(self.script) else (0.0, 9.0)
        confusion = [[call] * 10 for _ in range(10)]  # marks which call produced it
        return EvalStats(loss=loss, accuracy=accuracy, per_class_accuracy=[accuracy] * 10, confusion=confusion)


def scripted_fit(
    monkeypatch: pytest.MonkeyPatch,
    digits: Dataset,
    script: list[tuple[float, float]],
    early_stopping: dict[str, Any],
    epochs: int = 10,
) -> tuple[list[EpochRecord], RunResult, ScriptedEvaluation]:
    evaluation = ScriptedEvaluation(script)
    monkeypatch.setattr(engine, "evaluate", evaluation)
    spec = RunSpec.model_validate(
        {
            "dataset": {"name": "digits"},
            "model": {"arch": "mlp", "hidden": [8]},
            "device": "cpu",
            "epochs": epochs,
            "batch_size": 32,
            "optimizer": {"name": "sgd", "lr": 0.1},
            "early_stopping": early_stopping,
        }
    )
    small = dataclasses.replace(digits, train_x=digits.train_x[:64], train_y=digits.train_y[:64])
    records: list[EpochRecord] = []
    result = engine.fit(spec, data_dir=Path("/nonexistent"), on_epoch=records.append, dataset=small)
    return records, result, evaluation


def accuracies(*values: float) -> list[tuple[float, float]]:
    return [(value, 1.0) for value in values]


def test_stops_after_patience_epochs_without_improvement_and_restores_the_best(
    monkeypatch: pytest.MonkeyPatch, digits: Dataset
) -> None:
    # Best at epoch 2; epoch 4 only equals it, which is not "better by more than 0".
    script = accuracies(0.50, 0.70, 0.65, 0.70, 0.69, 0.99)

    records, result, evaluation = scripted_fit(monkeypatch, digits, script, {"metric": "test_acc", "patience": 3})

    assert [r.epoch for r in records] == [1, 2, 3, 4, 5]
    assert [r.test_acc for r in records] == [0.5, 0.7, 0.65, 0.7, 0.69]
    assert (result.stopped, result.epochs_run, result.final_epoch) == ("early_stopped", 5, 2)
    assert result.stop_reason == (
        "test_acc did not improve by more than 0 for 3 epochs; best 0.7000 at epoch 2, weights restored"
    )
    # A sixth evaluation, of the restored weights: exactly those evaluated after epoch 2, not epoch 5's.
    assert len(evaluation.weights) == 6 and result.confusion == [[5] * 10] * 10
    restored, best, last = evaluation.weights[5], evaluation.weights[1], evaluation.weights[4]
    assert all(torch.equal(restored[name], best[name]) for name in best)
    assert not all(torch.equal(restored[name], last[name]) for name in last)


def test_loss_with_min_delta_and_no_restore(monkeypatch: pytest.MonkeyPatch, digits: Dataset) -> None:
    # 0.95 and 0.93 beat 1.0, but not by more than min_delta 0.1; 0.5 comes too late.
    script = [(0.1, 1.0), (0.2, 0.95), (0.3, 0.93), (0.4, 0.5)]
    spec = {"metric": "test_loss", "patience": 2, "min_delta": 0.1, "restore_best": False}

    records, result, evaluation = scripted_fit(monkeypatch, digits, script, spec)

    assert (result.stopped, result.epochs_run, len(records), result.final_epoch) == ("early_stopped", 3, 3, None)
    assert result.stop_reason == "test_loss did not improve by more than 0.1 for 2 epochs; best 1.0000 at epoch 1"
    assert len(evaluation.weights) == 3 and result.confusion == [[2] * 10] * 10  # the last epoch's, no re-evaluation


def test_a_run_that_never_stops_still_ends_with_the_best_weights(
    monkeypatch: pytest.MonkeyPatch, digits: Dataset
) -> None:
    records, result, evaluation = scripted_fit(
        monkeypatch, digits, accuracies(0.5, 0.8, 0.7, 0.6), {"patience": 5}, epochs=4
    )

    assert (result.stopped, result.epochs_run, len(records)) == ("completed", 4, 4)
    assert result.stop_reason == "ran every epoch; best test_acc 0.8000 at epoch 2, weights restored"
    assert result.confusion == [[4] * 10] * 10
    assert all(torch.equal(evaluation.weights[4][n], evaluation.weights[1][n]) for n in evaluation.weights[1])


def test_a_run_whose_last_epoch_is_best_needs_no_restore(monkeypatch: pytest.MonkeyPatch, digits: Dataset) -> None:
    _, result, evaluation = scripted_fit(monkeypatch, digits, accuracies(0.5, 0.6, 0.7), {"patience": 2}, epochs=3)

    assert (result.stopped, result.stop_reason, len(evaluation.weights)) == ("completed", "", 3)


def test_improvement_rules() -> None:
    model = nn.Linear(1, 1)
    accuracy = EarlyStopping(EarlyStoppingSpec(metric="test_acc", patience=2, min_delta=0.01))
    assert [accuracy.update(e, v, model) for e, v in enumerate([0.5, 0.505, 0.52, 0.52, 0.529], 1)] == [
        False,
        False,
        False,
        False,
        True,
    ]
    assert (accuracy.best, accuracy.best_epoch) == (0.52, 3)

    loss = EarlyStopping(EarlyStoppingSpec(metric="test_loss", patience=1, restore_best=False))
    assert [loss.update(e, v, model) for e, v in enumerate([2.0, 1.5, 1.5], 1)] == [False, False, True]
    assert loss.best_state is None and not loss.restore(model, 3)
