"""A finished run's weights, back in a model: `load_model` reads the safetensors file that
`GET /api/runs/{id}/weights` downloads (its metadata holds the spec), builds the model the spec describes and
loads the weights into it; `accuracy_on_test_set` evaluates it on the run's test set as the run did.

    from worker.trained import load_model
    model, spec = load_model("run-7-weights.safetensors")
    logits = model(images)  # images preprocessed as the run's: see RunInfo.mean/std on the run page

Loading never runs code from the file (safetensors, never pickle); a file that is not trainboard weights, or
whose tensors do not fit the spec's model, is refused (CheckpointMismatch).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from trainboard.settings import get_settings
from trainboard.spec import RunSpec, TorchvisionSpec
from worker.checkpoints import WEIGHTS_FORMAT, CheckpointMismatch, read_metadata
from worker.data import load_dataset, to_device
from worker.engine import EVAL_BATCH_PIXELS, evaluate, resolve_device
from worker.models import build_model, model_channels
from worker.preprocess import Preprocess


def load_model(
    path: str | Path, device: str = "cpu", models: Mapping[str, str] | None = None
) -> tuple[nn.Module, RunSpec]:
    """The model of the run that wrote `path`, with its final weights, in eval mode, and the run's spec.
    `models`: where a custom model's class is (name -> module:Class); None: TRAINBOARD_MODELS."""
    path = Path(path)
    metadata = read_metadata(path)
    if metadata.get("format") != WEIGHTS_FORMAT:
        raise CheckpointMismatch(f"{path.name} is not a trainboard weights file (format {metadata.get('format')!r})")
    spec = RunSpec.model_validate(json.loads(metadata["spec"]))
    if isinstance(spec.model, TorchvisionSpec) and spec.model.pretrained:
        spec = spec.model_copy(update={"model": spec.model.model_copy(update={"pretrained": False})})
    offered = get_settings().offered_models if models is None else models
    model = build_model(spec, offered)  # random weights first (no download: the file has them all)
    state = load_file(path, device="cpu")
    expected = model.state_dict()
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in state):
        raise CheckpointMismatch(f"{path.name}: its tensors do not fit the model of its spec")
    model.load_state_dict(state)
    return model.to(torch.device(device)).eval(), spec


def accuracy_on_test_set(model: nn.Module, spec: RunSpec, data_dir: Path, device: str = "cpu") -> float:
    """Accuracy on the spec's test set (its limits applied), preprocessed as the run was."""
    target = resolve_device(device)
    data = to_device(load_dataset(spec.dataset, data_dir), target)
    preprocess = Preprocess(data.mean, data.std, target, size=spec.dataset.resize, channels=model_channels(spec))
    batch = max(spec.batch_size, EVAL_BATCH_PIXELS // math.prod(spec.dataset.image_size))
    return evaluate(model, data.test_x, data.test_y, preprocess, data.num_classes, batch).accuracy
