"""Training checkpoints and final weights as safetensors files: what a resumed run needs to be *exactly* the
run that would have happened, and nothing that could run code when loaded.

A checkpoint holds, after epoch k:

- the model's state (parameters and buffers: batch-norm statistics too), as tensors `model.<name>`;
- the optimizer's per-parameter state (momentum buffers, Adam's moments and step counts) as tensors
  `optimizer.<index>.<name>`, and its param groups (learning rates, betas...) in the JSON metadata;
- early stopping's best weights (`early_stopping.<name>`) and counters (metadata);
- every random state: torch's CPU generator (dropout), each CUDA device's, the shuffle's and the
  augmentation's generators (`rng.*`);
- the epoch, the last confusion matrix, the learning rates after the schedule's step, and the sha256
  of the spec it was trained from (metadata).

The learning-rate schedule is not stored: it is rebuilt and stepped k times (every schedule here is a
pure function of its step count), then checked against the stored rates. Loading refuses a file whose
spec hash, tensor names or shapes differ from the run's (`CheckpointMismatch`), before touching anything.
Files are written to a temporary name and renamed, so a crash never leaves half a file under the name.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import trainboard
from worker.early_stopping import EarlyStopping

FORMAT = "trainboard-checkpoint/1"
WEIGHTS_FORMAT = "trainboard-weights/1"


class CheckpointMismatch(ValueError):
    """The file is not a checkpoint of this run (another spec, other tensors): refused, nothing loaded."""


def spec_hash(spec: dict[str, Any]) -> str:
    """sha256 of the spec as JSON with sorted keys: the same spec always hashes the same."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# Spec fields added after checkpoints existed, at their defaults: a checkpoint an earlier trainboard wrote
# hashed the spec without them, and still belongs to the same run (their defaults change nothing it did).
ADDED_LATER: dict[str, Any] = {"cuda_graphs": False}


def accepted_hashes(spec: dict[str, Any]) -> set[str]:
    """The spec hashes a checkpoint of this run may carry: this spec's, and the one an earlier trainboard
    gave it before fields of ADDED_LATER existed (when they are at their defaults)."""
    earlier = {key: value for key, value in spec.items() if key not in ADDED_LATER or ADDED_LATER[key] != value}
    return {spec_hash(spec), spec_hash(earlier)}


@dataclass
class TrainingState:
    """Everything of a run that changes from epoch to epoch, besides what the spec fixes."""

    epoch: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    shuffle: torch.Generator
    augment: torch.Generator
    stopper: EarlyStopping | None
    confusion: list[list[int]] = field(default_factory=list)


def save_checkpoint(path: Path, state: TrainingState, spec: dict[str, Any]) -> None:
    tensors: dict[str, torch.Tensor] = {}
    _put(tensors, "model.", state.model.state_dict())
    optimizer = state.optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in optimizer["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                # On the CPU and contiguous: a channels_last conv model's momentum is not, and safetensors
                # refuses such a tensor.
                tensors[f"optimizer.{index}.{name}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    stopping: dict[str, Any] | None = None
    if state.stopper is not None:
        stopper = state.stopper
        stopping = {
            "best": stopper.best,
            "best_epoch": stopper.best_epoch,
            "epochs_without_improvement": stopper.epochs_without_improvement,
            "has_best_state": stopper.best_state is not None,
        }
        if stopper.best_state is not None:
            _put(tensors, "early_stopping.", stopper.best_state)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        for device, rng in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{device}"] = rng
    tensors["rng.shuffle"] = state.shuffle.get_state()
    tensors["rng.augment"] = state.augment.get_state()
    metadata = {
        "format": FORMAT,
        "trainboard": trainboard.__version__,
        "torch": torch.__version__,
        "epoch": str(state.epoch),
        "device_type": state.shuffle.device.type,
        "spec_sha256": spec_hash(spec),
        "param_groups": json.dumps(optimizer["param_groups"]),
        "optimizer_scalars": json.dumps(scalars),
        "early_stopping": json.dumps(stopping),
        "lr": json.dumps([float(group["lr"]) for group in state.optimizer.param_groups]),
        "confusion": json.dumps(state.confusion),
    }
    _write(path, tensors, metadata)


def load_checkpoint(
    path: Path, state: TrainingState, spec: dict[str, Any], scheduler: torch.optim.lr_scheduler.LRScheduler | None
) -> None:
    """Put the run back where the checkpoint left it: `state` (freshly built from the spec, as an
    uninterrupted run starts) is updated in place; `state.epoch` becomes the checkpoint's epoch."""
    metadata = read_metadata(path)
    if metadata.get("format") != FORMAT:
        raise CheckpointMismatch(f"{path.name} is not a trainboard checkpoint (format {metadata.get('format')!r})")
    if metadata.get("spec_sha256") not in accepted_hashes(spec):
        raise CheckpointMismatch(f"{path.name} was written for another spec than this run's: not resuming from it")
    written_on = metadata.get("device_type", "cpu")
    if written_on != state.shuffle.device.type:
        raise CheckpointMismatch(
            f"{path.name} was written by a run on {written_on}, this attempt trains on {state.shuffle.device.type}: "
            'its random states cannot carry over (give the run a device, e.g. "device": "cuda")'
        )
    tensors = load_file(path, device="cpu")
    model_state = _take(tensors, "model.")
    _check_shapes("model", model_state, state.model.state_dict())
    epoch = int(metadata["epoch"])

    # The schedule first, on the fresh optimizer: stepping it k times gives the rates of epoch k + 1
    # (warnings: it is stepped without optimizer steps, on purpose).
    if scheduler is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(epoch):
                scheduler.step()
    if [float(group["lr"]) for group in state.optimizer.param_groups] != json.loads(metadata["lr"]):
        raise CheckpointMismatch(f"{path.name}: the learning rates it stored differ from this run's schedule")
    state.model.load_state_dict(model_state)
    per_param: dict[int, dict[str, Any]] = {}
    for name in [key for key in tensors if key.startswith("optimizer.")]:
        _, index, entry = name.split(".", 2)
        per_param.setdefault(int(index), {})[entry] = tensors.pop(name)
    for index, values in json.loads(metadata["optimizer_scalars"]).items():
        per_param.setdefault(int(index), {}).update(values)
    groups = json.loads(metadata["param_groups"])
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in state.optimizer.param_groups]:
        raise CheckpointMismatch(f"{path.name}: its optimizer has other parameter groups than this run's")
    state.optimizer.load_state_dict({"state": per_param, "param_groups": groups})

    stopping = json.loads(metadata["early_stopping"])
    if (stopping is None) != (state.stopper is None):
        raise CheckpointMismatch(f"{path.name}: early stopping differs from this run's spec")
    if state.stopper is not None and stopping is not None:
        state.stopper.best = stopping["best"]
        state.stopper.best_epoch = stopping["best_epoch"]
        state.stopper.epochs_without_improvement = stopping["epochs_without_improvement"]
        if stopping["has_best_state"]:
            best = _take(tensors, "early_stopping.")
            _check_shapes("early_stopping", best, model_state)
            device = next(iter(state.model.state_dict().values())).device
            state.stopper.best_state = {name: t.to(device) for name, t in best.items()}

    torch.set_rng_state(tensors.pop("rng.torch"))
    cuda = sorted((key for key in tensors if key.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available():
        for key in cuda[: torch.cuda.device_count()]:
            torch.cuda.set_rng_state(tensors.pop(key), int(key.rsplit(".", 1)[1]))
    state.shuffle.set_state(tensors.pop("rng.shuffle"))
    state.augment.set_state(tensors.pop("rng.augment"))
    state.epoch = epoch
    state.confusion = json.loads(metadata["confusion"])


def save_weights(path: Path, model: nn.Module, spec: dict[str, Any], epoch: int) -> None:
    """The run's final weights (the restored ones, for early stopping), with the spec in the metadata: what
    `trainboard.weights.load_model` needs to build the model again."""
    tensors: dict[str, torch.Tensor] = {}
    _put(tensors, "", model.state_dict())
    metadata = {
        "format": WEIGHTS_FORMAT,
        "trainboard": trainboard.__version__,
        "torch": torch.__version__,
        "epoch": str(epoch),
        "spec": json.dumps(spec, sort_keys=True),
    }
    _write(path, tensors, metadata)


def checkpoint_epoch(path: Path) -> int:
    return int(read_metadata(path)["epoch"])


def read_metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types for a damaged header
        raise CheckpointMismatch(f"{path.name} is not a readable safetensors file: {exc}") from exc


def _put(tensors: dict[str, torch.Tensor], prefix: str, state: dict[str, torch.Tensor]) -> None:
    """Add `state` under `prefix`, on the CPU; safetensors refuses tensors sharing memory, so a shared one is
    copied."""
    seen: set[int] = set()
    for name, tensor in state.items():
        value = tensor.detach().to("cpu").contiguous()
        pointer = value.untyped_storage().data_ptr()
        if pointer in seen:
            value = value.clone()
        seen.add(pointer)
        tensors[prefix + name] = value


def _take(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {name[len(prefix) :]: tensors.pop(name) for name in [k for k in tensors if k.startswith(prefix)]}


def _check_shapes(what: str, found: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    if set(found) != set(expected):
        missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
        raise CheckpointMismatch(
            f"{what} tensors differ from this run's model: missing {missing[:5]}, extra {extra[:5]}"
        )
    for name, tensor in found.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointMismatch(
                f"{what} tensor {name} has shape {list(tensor.shape)}, this run's model {list(expected[name].shape)}"
            )


def _write(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    save_file(tensors, str(partial), metadata=metadata)
    os.replace(partial, path)
