"""CUDA-graphed training steps (RunSpec.cuda_graphs): capture one step, replay it for every full batch.

At batch 64 a training step is launch-bound: on an H100 it cost ~1.7 ms of host time whatever the
batch size (README, benchmarks/engine_overhead.py), hundreds of kernel launches for a few hundred
microseconds of GPU work. A CUDA graph replays the whole step (preprocessing and augmentation,
forward, backward, optimizer step) with one launch. `graphed_step` wraps the engine's eager step
(worker/engine.py `train_step`) and keeps the run what it would be eagerly:

- Static inputs: a captured graph reads and writes fixed addresses, so each batch is copied into
  the static uint8 image and label buffers it was captured with, and the loss and logits it leaves
  in its static outputs are cloned out before the next replay overwrites them.
- One graph, for the run's batch size. Any other batch (the epoch's last, partial one) runs eagerly:
  one batch per epoch, where a padded and masked batch would change the loss it averages.
- Warm-up: torch's docs require a few iterations on a side stream before a capture (cuBLAS and
  cuDNN workspaces, cudnn.benchmark's algorithm search, the optimizer's lazily made state). Here they
  are the run's first full batches, trained eagerly on that stream: real steps, not extra ones, so
  the run trains on the same batches in the same order as without graphs.
- Learning rates: the optimizer's groups keep their float rates (schedulers step them, EpochRecord
  and checkpoints read them as always); the capture reads a float32 tensor per group instead, which
  each replay refills from the float when a scheduler changed it. Schedules and per-group rates
  need no recapture.
- `capturable`: Adam and AdamW refuse a capture unless their groups say `capturable`. The flag is
  set for the capture only: the fused steps the engine uses on CUDA (worker/optimizers.py) keep the
  step count and read the rate on the device either way, so it changes no arithmetic, and eager
  steps do not meet torch's warning about capturable optimizers stepped outside a capture. SGD's
  fused step captures as it is. An unfused optimizer is not graphed (its step may read the rate on
  the host).
- Random numbers: dropout draws from the default CUDA generator, which every capture registers;
  augmentation's own generator is registered with the graph (`register_generator_state`), so each
  replay draws afresh and the generator's state (which checkpoints save) moves on as it does eagerly.
- autocast's weight-cast cache is off in the graphed steps (`autocast_cache=False`): a cast cached
  during the capture would be freed at its end while the graph still reads it.

Where graphs cannot be used (not CUDA, an unfused optimizer, no full batch) the run trains eagerly
and says why in one log line; a capture that raises does the same from that batch on. Graphs never
fail a run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch

log = logging.getLogger(__name__)

TrainStep = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""One optimizer step on a batch: (uint8 images, labels) -> (loss, logits), detached, the caller's to keep."""

Route = Literal["eager", "warm-up", "capture", "replay"]

# Eager steps on the side stream before the capture; torch's whole-network example takes 3 (11 under DDP).
WARMUP_STEPS = 3


def unsupported_reason(
    device: torch.device, optimizer: torch.optim.Optimizer, batch_size: int, train_images: int
) -> str | None:
    """Why this run's steps cannot be graphed, in words for the log; None when they can."""
    if device.type != "cuda":
        return f"the run is on {device}, and CUDA graphs need a CUDA device"
    if not all(group.get("fused") for group in optimizer.param_groups):
        return f"{type(optimizer).__name__} is not fused, and only its fused step reads the learning rate on the device"
    if train_images < batch_size:
        return f"no full batch to capture: {train_images} training images, batch_size {batch_size}"
    return None


def route(batch_images: int, batch_size: int, warmed_up: int, captured: bool, failed: bool) -> Route:
    """Where a batch of `batch_images` goes, after `warmed_up` warm-up steps (and a capture, or a failed one)."""
    if failed or batch_images != batch_size:
        return "eager"
    if captured:
        return "replay"
    return "warm-up" if warmed_up < WARMUP_STEPS else "capture"


def graphed_step(
    eager: TrainStep,
    *,
    device: torch.device,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    train_images: int,
    generators: Sequence[torch.Generator] = (),
) -> TrainStep:
    """`eager` (with autocast's cache off) as a CUDA-graphed step where it can be; else `eager` itself,
    after one log line saying why. `generators`: the ones the step draws from besides the default one."""
    reason = unsupported_reason(device, optimizer, batch_size, train_images)
    if reason is not None:
        log.warning("cuda_graphs: training eagerly: %s", reason)
        return eager
    return GraphedStep(eager, optimizer, batch_size, generators, device)


class LearningRates:
    """A float32 tensor per param group holding its rate, for a captured optimizer step to read on the device.

    float32 because the fused CUDA steps read a tensor rate as float, which is what they make of a
    float rate too. The groups keep their Python floats; `refresh` copies them into the tensors.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, device: torch.device):
        self.optimizer = optimizer
        self.values = [float(group["lr"]) for group in optimizer.param_groups]
        self.tensors = [torch.tensor(value, dtype=torch.float32, device=device) for value in self.values]

    def refresh(self) -> None:
        """Each group's current rate into its tensor, where it changed (a scheduler's step, a resumed run)."""
        for index, group in enumerate(self.optimizer.param_groups):
            lr = float(group["lr"])
            if lr != self.values[index]:
                self.tensors[index].fill_(lr)  # a kernel on the stream, ordered before the next replay
                self.values[index] = lr

    @contextmanager
    def in_optimizer(self) -> Iterator[None]:
        """While capturing: the tensors as the groups' rates, and `capturable` set where a group has the flag.
        Afterwards the groups are as they were."""
        self.refresh()
        groups = self.optimizer.param_groups
        keys = ("lr", "capturable")
        saved: list[dict[str, Any]] = [{key: group[key] for key in keys if key in group} for group in groups]
        try:
            for group, tensor in zip(groups, self.tensors, strict=True):
                group["lr"] = tensor
                if "capturable" in group:
                    group["capturable"] = True
            yield
        finally:
            for group, values in zip(groups, saved, strict=True):
                group.update(values)


class GraphedStep:
    """The training step for full batches as one CUDA graph: warm-up, capture, then replays (module docstring)."""

    def __init__(
        self,
        eager: TrainStep,
        optimizer: torch.optim.Optimizer,
        batch_size: int,
        generators: Sequence[torch.Generator],
        device: torch.device,
    ):
        self.eager = eager
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.generators = list(generators)
        self.rates = LearningRates(optimizer, device)
        self.side_stream = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]
        self.warmed_up = 0
        self.failed = False
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self.outputs: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        where = route(len(images), self.batch_size, self.warmed_up, self.graph is not None, self.failed)
        if where == "warm-up":
            return self._warm_up(images, labels)
        if where == "capture" and not self._capture(images, labels):
            where = "eager"
        if where == "eager":
            return self.eager(images, labels)
        return self._replay(images, labels)

    def _warm_up(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        current = torch.cuda.current_stream()
        self.side_stream.wait_stream(current)
        with torch.cuda.stream(self.side_stream):
            loss, logits = self.eager(images, labels)
        current.wait_stream(self.side_stream)
        self.warmed_up += 1
        return loss, logits

    def _capture(self, images: torch.Tensor, labels: torch.Tensor) -> bool:
        """Capture the step with `images` and `labels` as its static inputs (nothing runs yet); False if it raised."""
        inputs = (images.clone(), labels.clone())
        graph = torch.cuda.CUDAGraph()
        try:
            for generator in self.generators:
                graph.register_generator_state(generator)
            # The eager step sets the grads to None before its backward, so in the capture backward allocates them
            # in the graph's pool and each replay writes them afresh (no zero_grad between replays).
            # thread_local: the worker's other threads (reports, uploads) never use this stream; under the global
            # mode an innocent CUDA call of theirs during the capture would fail.
            with self.rates.in_optimizer(), torch.cuda.graph(graph, capture_error_mode="thread_local"):
                outputs = self.eager(*inputs)
        except Exception as error:  # any failure of the capture: the run goes on eagerly, never fails for it
            self.failed = True
            reason = f"{type(error).__name__}: {error}"
            log.warning("cuda_graphs: training eagerly from here on: the capture raised %s", reason)
            return False
        self.graph, self.inputs, self.outputs = graph, inputs, outputs
        return True

    def _replay(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.graph is not None and self.inputs is not None and self.outputs is not None
        static_images, static_labels = self.inputs
        static_images.copy_(images)
        static_labels.copy_(labels)
        self.rates.refresh()
        self.graph.replay()
        loss, logits = self.outputs
        return loss.clone(), logits.clone()  # the next replay overwrites the static outputs
