"""Models of your own: classes installed on the worker, offered by TRAINBOARD_MODELS, named by a spec.

A worker offers `TRAINBOARD_MODELS=mypkg.nets:SmallNet,mypkg.nets:WideNet` (import paths: the code is installed
on the worker, never uploaded); a spec names one by its class name, `{"arch": "custom", "name": "SmallNet",
"kwargs": {...}}`. The constructor contract:

- the class is an `nn.Module` subclass, called with keyword arguments only: the spec's `kwargs`, plus
  `num_classes` (int), `in_channels` (int) and `image_size` ((height, width), after dataset.resize), each passed
  only if the constructor names that parameter (a `**kwargs` catch-all does not count);
- `forward` takes a float batch (N, in_channels, height, width), normalised (channels_last on a GPU), and
  returns logits (N, num_classes);
- its parameter groups, for `finetune.train` and `finetune.lr`, are its top-level children that have
  parameters (`named_children`), by attribute name.

The run fails before its first epoch, saying which class and what went wrong, when the class is not offered,
does not import, does not build with these arguments, or fails on one training batch (`probe`, which also
measures its memory: see `probe` for the method).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainboard.memory import FLOAT, GB, MemoryEstimate
from trainboard.spec import CustomModelSpec

# The arguments the worker passes itself, when the constructor names them.
CONTRACT = ("num_classes", "in_channels", "image_size")


class CustomModelError(ValueError):
    """A custom model that cannot train here: the message says which class and why."""


def load_class(name: str, offered: Mapping[str, str]) -> type[nn.Module]:
    """The class `name` of TRAINBOARD_MODELS, imported."""
    path = offered.get(name)
    if path is None:
        listed = ", ".join(sorted(offered)) or "none (TRAINBOARD_MODELS is empty)"
        raise CustomModelError(f"model.name: {name!r} is not offered by this worker; it offers: {listed}")
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise CustomModelError(f"model {name} ({path}): import failed: {type(exc).__name__}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise CustomModelError(f"model {name} ({path}): module {module_name} has no {class_name}")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise CustomModelError(f"model {name} ({path}): {class_name} is not a torch.nn.Module subclass")
    return cls


def build_custom(
    spec: CustomModelSpec, input_shape: tuple[int, int, int], classes: int, offered: Mapping[str, str]
) -> nn.Module:
    """`spec`'s class, built as the module docstring says."""
    cls = load_class(spec.name, offered)
    channels, height, width = input_shape
    given: dict[str, Any] = {"num_classes": classes, "in_channels": channels, "image_size": (height, width)}
    parameters: Mapping[str, inspect.Parameter]
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # no signature to read (a C extension's): pass the spec's kwargs only
        parameters = {}
    named = {
        p.name
        for p in parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    arguments = dict(spec.kwargs) | {key: value for key, value in given.items() if key in named}
    call = ", ".join(f"{key}={value!r}" for key, value in arguments.items())
    if parameters:
        try:
            inspect.signature(cls).bind(**arguments)
        except TypeError as exc:
            raise CustomModelError(f"model {spec.name}: cannot be called as {spec.name}({call}): {exc}") from exc
    try:
        model = cls(**arguments)
    except Exception as exc:
        raise CustomModelError(f"model {spec.name}: {spec.name}({call}) failed: {type(exc).__name__}: {exc}") from exc
    if not any(True for _ in model.parameters()):
        raise CustomModelError(f"model {spec.name}: has no parameters to train")
    return model


def probe(
    model: nn.Module,
    name: str,
    x: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    optimizer_states: int,
    data_bytes: int,
) -> MemoryEstimate:
    """Run one training batch (`x`, already preprocessed) forward and backward, as training will, and measure
    its memory; the model's weights, buffers (batch-norm statistics), gradients and the random state are as
    they were before. CustomModelError when the batch fails or its output is not (N, num_classes).

    The figure has the parts of trainboard/memory.py's estimate: the weights, the trained parameters' gradients
    and optimizer state (`optimizer_states` buffers each) counted from the model, `data_bytes` (the dataset as
    held on the device and an epoch's logits), the framework allowance, and the activations, measured:
    - on CUDA, the peak allocated during the batch (torch.cuda.max_memory_allocated) over what was allocated
      before it, less the gradients (counted apart);
    - on the CPU, the tensors autograd saves for the backward pass (saved_tensors_hooks, each storage once, the
      parameters not counted), twice: as much again for the gradients flowing back through them."""
    device = x.device
    trained = [p for p in model.parameters() if p.requires_grad]
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    gradients = sum(p.numel() * p.element_size() for p in trained)
    kept = {key: value.detach().clone() for key, value in model.state_dict().items()}
    grads_before = [p.grad for p in model.parameters()]
    own = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in own:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    model.train()
    try:
        with torch.random.fork_rng(devices=[device] if cuda else []):
            autocast = (
                torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
            )  # as worker/engine.py trains
            with autocast, torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
                logits = model(x)
            if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (len(x), num_classes):
                got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
                raise CustomModelError(
                    f"model {name}: returned {got} for a batch of shape {tuple(x.shape)}; "
                    f"expected logits of shape ({len(x)}, {num_classes}), one score per class"
                )
            loss = F.cross_entropy(logits.float(), labels)
            if trained:
                torch.autograd.backward(loss)
            if cuda:
                torch.cuda.synchronize(device)
    except CustomModelError:
        raise
    except Exception as exc:
        raise CustomModelError(
            f"model {name}: one training batch of shape {tuple(x.shape)} failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        model.load_state_dict(kept)
        for p, grad in zip(model.parameters(), grads_before, strict=True):
            p.grad = grad
    if cuda:
        activations = max(torch.cuda.max_memory_allocated(device) - before - gradients, 0)
    else:
        activations = 2 * sum(saved.values())
    return MemoryEstimate(
        weights=weights,
        gradients=gradients,
        optimizer=optimizer_states * gradients,
        activations=activations,
        data=data_bytes,
    )


def check_budget(name: str, found: MemoryEstimate, batch: int, device: torch.device, budget_gb: float) -> None:
    """CustomModelError when the measured figure is over the memory budget."""
    if found.total <= budget_gb * GB:
        return
    how = "peak CUDA allocation" if device.type == "cuda" else "tensors kept for backward"
    raise CustomModelError(
        f"model {name}: this run needs {found.describe()}, measured on one batch of {batch} images ({how}), over "
        f"the memory budget of {budget_gb:g} GB (TRAINBOARD_MEMORY_BUDGET_GB): lower batch_size or dataset.resize, "
        "or raise the budget"
    )


def logits_bytes(images: int, classes: int) -> int:
    """An epoch's logits, kept on the device until it ends (worker/engine.py)."""
    return images * classes * FLOAT
