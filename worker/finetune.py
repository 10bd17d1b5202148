"""Fine-tuning: which parameter groups train, their learning rates, and batch norm in frozen groups.

A group is one of the model's top-level children that holds parameters, by the model's own name
(`fc`, `layer4`, `features`, `classifier`...): spec.MODEL_GROUPS lists them per architecture and
worker/models.py builds every model so that they match. `finetune.train` names the groups that
train; every other parameter gets requires_grad=False, so autograd neither computes nor stores its
gradient (training only `fc` skips the backward pass through the whole body) and the optimizer
never sees it.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from trainboard.spec import CustomModelSpec, RunSpec


def model_groups(model: nn.Module) -> dict[str, nn.Module]:
    """The model's parameter groups: its top-level children that have parameters, by name, in order."""
    return {name: child for name, child in model.named_children() if any(True for _ in child.parameters())}


def trained_groups(model: nn.Module, spec: RunSpec) -> list[str]:
    """The groups that train: finetune.train's, or with `all` every group of the model (a custom model's own
    children, which spec.py cannot know)."""
    if isinstance(spec.model, CustomModelSpec) and spec.finetune.train == "all":
        return list(model_groups(model))
    return spec.trained_groups


def freeze(model: nn.Module, spec: RunSpec) -> None:
    """requires_grad=True on the parameters of the trained groups, False on all others."""
    groups = model_groups(model)
    trained = trained_groups(model, spec)
    # spec.py refuses unknown groups of its own architectures (a builder out of step with MODEL_GROUPS would land
    # here); a custom model's are checked only here.
    what = spec.model.name if isinstance(spec.model, CustomModelSpec) else spec.model.arch
    for field, names in (("finetune.train", trained), ("finetune.lr", list(spec.finetune.lr))):
        unknown = [name for name in names if name not in groups]
        if unknown:
            raise ValueError(
                f"{field}: {', '.join(map(repr, unknown))} not a group of {what}; its groups (top-level children "
                f"with parameters): {', '.join(groups) or 'none'}"
            )
    model.requires_grad_(False)
    for name in trained:
        groups[name].requires_grad_(True)


def param_groups(model: nn.Module, spec: RunSpec) -> list[dict[str, Any]]:
    """The optimizer's param groups: one per trained group, with finetune.lr's rate or optimizer.lr.

    Training everything with no per-group rate is one group ("all"): nothing tells the groups apart,
    and the run's records then carry one learning rate, not one per layer.
    """
    finetune = spec.finetune
    if finetune.train == "all" and not finetune.lr:
        return [{"params": list(model.parameters()), "lr": spec.optimizer.lr, "name": "all"}]
    groups = model_groups(model)
    return [
        {"params": list(groups[name].parameters()), "lr": finetune.lr.get(name, spec.optimizer.lr), "name": name}
        for name in trained_groups(model, spec)
    ]


def frozen_batch_norms(model: nn.Module, spec: RunSpec) -> list[nn.Module]:
    """The batch-norm layers of the frozen groups, when finetune.frozen_bn_eval asks to keep them in eval
    mode: in training mode they would still move their running mean/var to the new dataset's statistics
    (and normalise with batch statistics) even though their weights are frozen."""
    if not spec.finetune.frozen_bn_eval:
        return []
    trained = set(trained_groups(model, spec))
    return [
        module
        for name, group in model_groups(model).items()
        if name not in trained
        for module in group.modules()
        if isinstance(module, _BatchNorm)
    ]
