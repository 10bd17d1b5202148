"""The optimizer (sgd, adam, adamw) and its learning-rate schedule (none, multistep, cosine, step).

Schedules are stepped once per epoch, after it: the lr an epoch trains with is the one `lrs` reads
before it starts, and EpochRecord.lr records exactly that, one value per param group. With
PyTorch's schedulers stepped that way:

- multistep(milestones, gamma): epochs 1..m1 use lr, epochs m1+1..m2 lr * gamma, and so on
  (the drop comes right after each milestone epoch);
- cosine(t_max, eta_min): epoch e uses eta_min + (lr - eta_min) * (1 + cos(pi * (e - 1) / t_max)) / 2,
  so epoch 1 uses lr and epoch t_max + 1 eta_min; t_max defaults to the run's epochs, so the last
  epoch is one step short of eta_min, as with CosineAnnealingLR(T_max=epochs) in a hand-written loop;
  after epoch t_max + 1 it stays at eta_min (PyTorch's CosineAnnealingLR would climb back up: it is
  periodic; "epochs to the minimum" means the minimum is where it stays);
- step(step_size, gamma): lr * gamma ** ((e - 1) // step_size).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, MultiStepLR, StepLR

from trainboard.spec import CosineSchedule, MultiStepSchedule, OptimizerSpec, SchedulerSpec, StepSchedule


def build_optimizer(spec: OptimizerSpec, param_groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """`param_groups` as worker/finetune.py makes them: each with its params and lr."""
    # On CUDA the fused step updates every parameter in one kernel instead of a few per tensor: at
    # batch 64 a step is launch-bound, and on an H100 this made the MNIST MLP epoch 8-10% faster
    # (benchmarks/engine_overhead.py). The CPU keeps the default step, so CPU runs stay bit-reproducible.
    first = param_groups[0]["params"][0]
    fused: bool | None = True if first.is_cuda else None
    if spec.name == "sgd":
        return torch.optim.SGD(
            param_groups,
            lr=spec.lr,
            momentum=spec.momentum,
            nesterov=spec.nesterov,
            weight_decay=spec.weight_decay,
            fused=fused,
        )
    if spec.name == "adam":
        return torch.optim.Adam(param_groups, lr=spec.lr, weight_decay=spec.weight_decay, fused=fused)
    # AdamW decays the weights directly instead of adding weight_decay * w to the gradient (Adam's L2).
    return torch.optim.AdamW(param_groups, lr=spec.lr, weight_decay=spec.weight_decay, fused=fused)


def build_scheduler(spec: SchedulerSpec, optimizer: torch.optim.Optimizer, epochs: int) -> LRScheduler | None:
    if isinstance(spec, MultiStepSchedule):
        return MultiStepLR(optimizer, milestones=spec.milestones, gamma=spec.gamma)
    if isinstance(spec, CosineSchedule):
        return _cosine_then_hold(optimizer, spec.t_max or epochs, spec.eta_min)
    if isinstance(spec, StepSchedule):
        return StepLR(optimizer, step_size=spec.step_size, gamma=spec.gamma)
    return None  # "none": the rates stay as set


def lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    """The learning rate of each param group, in order."""
    return [float(group["lr"]) for group in optimizer.param_groups]


def _cosine_then_hold(optimizer: torch.optim.Optimizer, t_max: int, eta_min: float) -> LambdaLR:
    """Cosine from each group's lr down to eta_min over t_max steps, then eta_min from there on."""

    def factor(base: float) -> Any:
        def at(step: int) -> float:
            cosine = (1 + math.cos(math.pi * min(step, t_max) / t_max)) / 2
            return (eta_min + (base - eta_min) * cosine) / base

        return at

    return LambdaLR(optimizer, [factor(group["lr"]) for group in optimizer.param_groups])
