"""Early stopping: stop when the test metric has not improved for `patience` epochs, keep the best weights.

After each epoch's evaluation the metric (test accuracy: higher is better; test loss: lower) is
compared with the best so far; an improvement is a change in the right direction by more than
min_delta. When `restore_best` is set, the best epoch's weights (the whole state_dict, batch-norm
statistics included) are copied on the device at each improvement: one copy, 45 MB for ResNet18,
540 MB for VGG16. The engine loads them back at the end and evaluates once more, so the run's
confusion matrix is the best epoch's.
"""

from __future__ import annotations

import torch
from torch import nn

from trainboard.spec import EarlyStoppingSpec


class EarlyStopping:
    def __init__(self, spec: EarlyStoppingSpec):
        self.spec = spec
        self.best: float | None = None
        self.best_epoch = 0
        self.epochs_without_improvement = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, value: float, model: nn.Module) -> bool:
        """Record epoch's metric; True when the run should stop now."""
        if self.best is None or self._improves(value):
            self.best, self.best_epoch, self.epochs_without_improvement = value, epoch, 0
            if self.spec.restore_best:
                self.best_state = {name: t.detach().clone() for name, t in model.state_dict().items()}
        else:
            self.epochs_without_improvement += 1
        return self.epochs_without_improvement >= self.spec.patience

    def _improves(self, value: float) -> bool:
        assert self.best is not None
        if self.spec.metric == "test_loss":
            return value < self.best - self.spec.min_delta
        return value > self.best + self.spec.min_delta

    def restore(self, model: nn.Module, last_epoch: int) -> bool:
        """Load the best epoch's weights if asked and they are not the last epoch's; True if it did."""
        if self.best_state is None or self.best_epoch == last_epoch:
            return False
        model.load_state_dict(self.best_state)
        return True

    def reason(self, stopped: bool, restored: bool) -> str:
        """In words, e.g. 'test_acc did not improve by more than 0 for 3 epochs; best 0.9712 at epoch 5,
        weights restored'. A run that went the distance says which epoch's weights it ends with."""
        spec = self.spec
        if stopped:
            why = f"{spec.metric} did not improve by more than {spec.min_delta:g} for {spec.patience} epochs; "
            best = f"best {self.best:.4f} at epoch {self.best_epoch}"
        else:
            why, best = "ran every epoch; ", f"best {spec.metric} {self.best:.4f} at epoch {self.best_epoch}"
        return why + best + (", weights restored" if restored else "")
