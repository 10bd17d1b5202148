"""Models of your own (worker/custom_models.py): a class offered by TRAINBOARD_MODELS, built with the spec's
kwargs, trained by the engine, fine-tuned by its own top-level children, refused before training with a clear
error when it cannot train here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from trainboard.protocol import EpochRecord, RunInfo
from trainboard.settings import Settings
from trainboard.spec import RunSpec
from worker.custom_models import CustomModelError
from worker.data import Dataset
from worker.engine import fit
from worker.models import build_model

from .custom_models import SmallNet

NO_DATA_DIR = Path("/nonexistent/trainboard-data")
MODULE = "tests.worker.custom_models"
OFFERED = {
    name: f"{MODULE}:{name}" for name in ("SmallNet", "ClassesOnly", "BuildFails", "ForwardFails", "WrongOutput")
}


def custom_spec(name: str = "SmallNet", **extra: Any) -> RunSpec:
    model = {"arch": "custom", "name": name} | extra.pop("model", {})
    return RunSpec.model_validate(
        {"dataset": {"name": "digits"}, "model": model, "epochs": 2, "batch_size": 32, "device": "cpu"} | extra
    )


def train(spec: RunSpec, digits: Dataset, **kwargs: Any) -> tuple[list[EpochRecord], list[RunInfo]]:
    records: list[EpochRecord] = []
    infos: list[RunInfo] = []
    kwargs.setdefault("models", OFFERED)
    fit(spec, data_dir=NO_DATA_DIR, on_epoch=records.append, on_prepared=infos.append, dataset=digits, **kwargs)
    return records, infos


def test_a_custom_model_trains_on_digits(digits: Dataset) -> None:
    records, infos = train(custom_spec(model={"kwargs": {"width": 4}}, epochs=3), digits, memory_budget_gb=16)

    assert [r.epoch for r in records] == [1, 2, 3]
    assert records[-1].test_acc > 0.8  # it learns: 10 classes, chance is 0.1
    assert infos[0].parameters == 4 * 9 + 4 + 2 * 4 + 4 * 64 * 10 + 10


def test_kwargs_reach_the_constructor_and_the_contract_arguments_only_where_named() -> None:
    model = build_model(custom_spec(model={"kwargs": {"width": 5}}), OFFERED)
    assert isinstance(model, SmallNet) and model.width == 5
    assert model.head[1].out_features == 10 and model.features[0].in_channels == 1  # num_classes, in_channels
    assert model.head[1].in_features == 5 * 8 * 8  # image_size (8, 8)

    lazy = build_model(custom_spec("ClassesOnly"), OFFERED)  # takes num_classes only: given nothing else
    assert lazy.out.out_features == 10


def test_a_seeded_custom_run_repeats_exactly(digits: Dataset) -> None:
    # The one-batch check before training draws no random number and leaves the weights as they were.
    first, _ = train(custom_spec(), digits)
    again, _ = train(custom_spec(), digits)
    assert [r.test_loss for r in first] == [r.test_loss for r in again]


def test_fine_tuning_trains_only_the_named_child(digits: Dataset) -> None:
    spec = custom_spec(finetune={"train": ["head"], "lr": {"head": 0.05}})
    torch.manual_seed(spec.seed)
    before = build_model(spec, OFFERED).state_dict()

    weights: dict[str, torch.Tensor] = {}

    class Keep:
        folder = Path("/tmp")

        def checkpoint(self, path: Path, epoch: int) -> None: ...

        def weights(self, path: Path, epoch: int) -> None: ...

    import worker.engine as engine

    real = engine.save_weights

    def capture(path: Path, model: torch.nn.Module, spec_dict: object, epoch: int) -> None:
        weights.update({k: v.clone() for k, v in model.state_dict().items()})

    engine.save_weights = capture  # type: ignore[assignment]
    try:
        _, infos = train(spec, digits, files=Keep())
    finally:
        engine.save_weights = real
    assert infos[0].lr_groups == ["head"]
    assert infos[0].trainable_parameters == 8 * 64 * 10 + 10
    changed = {k.split(".")[0] for k in before if k.endswith("weight") and not torch.equal(before[k], weights[k])}
    assert changed == {"head"}


def test_an_unknown_group_names_the_models_groups(digits: Dataset) -> None:
    with pytest.raises(ValueError, match=r"finetune.train: 'body' not a group of SmallNet; .*: features, head"):
        train(custom_spec(finetune={"train": ["body"]}), digits)
    with pytest.raises(ValueError, match=r"finetune.lr: 'body' not a group of SmallNet"):
        train(custom_spec(finetune={"lr": {"body": 0.1}}), digits)


@pytest.mark.parametrize(
    ("name", "offered", "message"),
    [
        ("WideNet", OFFERED, r"model.name: 'WideNet' is not offered by this worker; it offers: BuildFails, "),
        ("SmallNet", {}, r"'SmallNet' is not offered by this worker; it offers: none \(TRAINBOARD_MODELS is empty\)"),
        ("Gone", {"Gone": "tests.worker.no_such_module:Gone"}, r"model Gone \(.*\): import failed: ModuleNotFound"),
        ("Nope", {"Nope": f"{MODULE}:Nope"}, r"model Nope .*: module tests.worker.custom_models has no Nope"),
        ("NOT_A_MODULE", {"NOT_A_MODULE": f"{MODULE}:NOT_A_MODULE"}, r"not a torch.nn.Module subclass"),
        ("BuildFails", OFFERED, r"model BuildFails: BuildFails\(num_classes=10\) failed: RuntimeError: no weights"),
        ("ForwardFails", OFFERED, r"model ForwardFails: one training batch of shape \(32, 1, 8, 8\) failed: Runtime"),
        ("WrongOutput", OFFERED, r"model WrongOutput: returned \(32, 3\) .*expected logits of shape \(32, 10\)"),
    ],
)
def test_a_model_that_cannot_train_fails_before_the_first_epoch(
    name: str, offered: dict[str, str], message: str, digits: Dataset
) -> None:
    with pytest.raises(CustomModelError, match=message):
        train(custom_spec(name), digits, models=offered)


def test_kwargs_the_constructor_does_not_take_are_a_clear_error() -> None:
    with pytest.raises(CustomModelError, match=r"model SmallNet: cannot be called as SmallNet\(depth=3, .*depth"):
        build_model(custom_spec(model={"kwargs": {"depth": 3}}), OFFERED)


def test_over_the_memory_budget_is_refused_with_the_measured_figure(digits: Dataset) -> None:
    with pytest.raises(
        CustomModelError,
        match=r"model SmallNet: this run needs about 0\.5 GB \(activations .*"
        r"measured on one batch of 32 images .*over the memory budget of 0\.4 GB",
    ):
        train(custom_spec(), digits, memory_budget_gb=0.4)


def test_the_measured_activations_grow_with_the_batch(digits: Dataset) -> None:
    from worker.custom_models import probe

    model = build_model(custom_spec(model={"kwargs": {"width": 16}}), OFFERED)
    x = digits.train_x[:64].float().unsqueeze(1) if digits.train_x.dim() == 3 else digits.train_x[:64].float()
    y = digits.train_y[:64]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small = probe(model, "SmallNet", x[:8], y[:8], 10, optimizer_states=1, data_bytes=0)
    large = probe(model, "SmallNet", x, y, 10, optimizer_states=1, data_bytes=0)
    # Each image keeps its conv, batch-norm and ReLU outputs (16 x 8 x 8 float32 each) at least.
    assert large.activations >= 64 * 3 * 16 * 64 * 4 > small.activations > 0
    assert large.weights == small.weights == sum(p.numel() * 4 for p in model.parameters())
    assert large.optimizer == large.gradients == large.weights
    assert all(p.grad is None for p in model.parameters())  # the probe leaves no gradient behind
    after = model.state_dict()  # nor moved batch norm's running statistics
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_worker_setting_lists_import_paths() -> None:
    settings = Settings(models="tests.worker.custom_models:SmallNet, pkg.nets:WideNet")  # type: ignore[arg-type]
    assert settings.offered_models == {"SmallNet": f"{MODULE}:SmallNet", "WideNet": "pkg.nets:WideNet"}
    with pytest.raises(ValueError, match="not an import path"):
        Settings(models="pkg/nets.py:SmallNet")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="two models named SmallNet"):
        Settings(models="a:SmallNet,b:SmallNet")  # type: ignore[arg-type]
