"""worker/finetune.py: frozen groups, per-group learning rates, batch norm kept in eval mode in frozen groups."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainboard.spec import RunSpec
from worker.engine import train_one_epoch
from worker.finetune import freeze, frozen_batch_norms, model_groups, param_groups
from worker.models import build_model
from worker.optimizers import build_optimizer
from worker.preprocess import Preprocess


def resnet_spec(finetune: dict[str, Any], optimizer: dict[str, Any] | None = None) -> RunSpec:
    return RunSpec.model_validate(
        {
            "dataset": {"name": "cifar10"},
            "model": {"arch": "resnet18"},
            "finetune": finetune,
            "optimizer": optimizer or {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        }
    )


def prepared(spec: RunSpec) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = build_model(spec)
    freeze(model, spec)
    return model, build_optimizer(spec.optimizer, param_groups(model, spec))


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in module.state_dict().items()}


def test_exactly_the_requested_groups_require_grad() -> None:
    model, _ = prepared(resnet_spec({"train": ["fc", "layer2"]}))

    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    frozen = {name.split(".")[0] for name, p in model.named_parameters() if not p.requires_grad}
    assert trainable == {"fc", "layer2"}
    assert frozen == {"conv1", "bn1", "layer1", "layer3", "layer4"}


def test_train_all_trains_every_parameter_in_one_group() -> None:
    model, optimizer = prepared(resnet_spec({"train": "all"}))

    assert all(p.requires_grad for p in model.parameters())
    assert [(group["name"], group["lr"]) for group in optimizer.param_groups] == [("all", 0.1)]
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(list(model.parameters()))


def test_each_trained_group_gets_a_param_group_with_its_learning_rate() -> None:
    spec = resnet_spec({"train": ["fc", "layer4"], "lr": {"fc": 0.01, "layer4": 0.0001}}, {"name": "adam", "lr": 0.5})
    model, optimizer = prepared(spec)

    assert [(group["name"], group["lr"]) for group in optimizer.param_groups] == [("fc", 0.01), ("layer4", 0.0001)]
    assert isinstance(optimizer, torch.optim.Adam)
    groups = model_groups(model)
    for group in optimizer.param_groups:
        assert [id(p) for p in group["params"]] == [id(p) for p in groups[group["name"]].parameters()]


def test_a_group_without_its_own_rate_uses_the_optimizers() -> None:
    spec = resnet_spec({"train": "all", "lr": {"fc": 0.5}})
    _, optimizer = prepared(spec)

    rates = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert rates == {"conv1": 0.1, "bn1": 0.1, "layer1": 0.1, "layer2": 0.1, "layer3": 0.1, "layer4": 0.1, "fc": 0.5}


def test_one_step_changes_the_trained_weights_and_leaves_frozen_ones_bit_identical() -> None:
    model, optimizer = prepared(resnet_spec({"train": ["fc", "layer4"], "lr": {"layer4": 0.05}}))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))

    model.train()
    F.cross_entropy(model(images), torch.tensor([0, 1, 2, 3])).backward()
    optimizer.step()

    for name, p in model.named_parameters():
        if name.startswith(("fc.", "layer4.")):
            assert not torch.equal(p, before[name]), f"{name} did not train"
        else:
            assert p.grad is None and torch.equal(p, before[name]), f"{name} changed"


def test_unknown_group_is_refused() -> None:
    spec = resnet_spec({"train": ["fc"]})
    model = nn.Sequential()
    model.add_module("head", nn.Linear(2, 2))  # a model out of step with MODEL_GROUPS

    with pytest.raises(ValueError, match=r"finetune.train: .fc. not a group of resnet18; its groups \(.*\): head"):
        freeze(model, spec)


@pytest.mark.parametrize("frozen_bn_eval", [True, False])
def test_frozen_bn_eval_keeps_the_running_statistics_of_frozen_groups(frozen_bn_eval: bool) -> None:
    spec = resnet_spec({"train": ["fc", "layer4"], "frozen_bn_eval": frozen_bn_eval})
    model, optimizer = prepared(spec)
    frozen_bn = frozen_batch_norms(model, spec)
    before = snapshot(model)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    preprocess = Preprocess((0.5,) * 3, (0.25,) * 3, torch.device("cpu"))

    for _ in range(2):  # train_one_epoch puts the model in training mode at the start of every epoch
        train_one_epoch(
            model,
            optimizer,
            images,
            torch.arange(8),
            preprocess,
            batch_size=4,
            generator=torch.Generator(),
            frozen_batch_norm=frozen_bn,
        )

    after = snapshot(model)
    frozen_stats = [n for n in before if n.startswith(("bn1.", "layer1.")) and "running_mean" in n]
    trained_stats = [n for n in before if n.startswith("layer4.") and "running_mean" in n]
    if frozen_bn_eval:
        assert len(frozen_bn) == 1 + 4 + 5 + 5  # bn1; 2 per block in layer1..3, and the downsample BNs of 2 and 3
        assert all(torch.equal(after[n], before[n]) for n in frozen_stats)
    else:
        assert frozen_bn == []
        assert all(not torch.equal(after[n], before[n]) for n in frozen_stats)  # moved, though frozen
    assert all(not torch.equal(after[n], before[n]) for n in trained_stats)
    assert model.layer4.training and model.bn1.training != frozen_bn_eval
