"""The training loop: `fit` trains one RunSpec and reports each epoch through a callback.

Plain PyTorch, read top to bottom: `train_one_epoch`, `evaluate`, and `fit` looping over epochs.
It knows nothing about HTTP, Celery or the database: the caller passes `on_epoch` (one EpochRecord per
finished epoch), `progress` (called once per batch; the caller rate-limits what it sends),
`should_stop` (checked once per batch; cooperative cancellation), `on_prepared` (one RunInfo before
the first epoch) and `files` (where checkpoints and the final weights go: worker/checkpoints.py).
`resume_from` continues a run from a checkpoint of an earlier attempt, exactly.

The pieces a spec configures live in a module each: worker/data.py (datasets, normalisation
statistics), worker/preprocess.py (resize, normalise, channel repeat), worker/augment.py (training
augmentation), worker/models.py and worker/weights.py (models, pretrained weights),
worker/finetune.py (frozen groups, per-group learning rates), worker/optimizers.py (optimizer and
schedule), worker/early_stopping.py.

Where the speed comes from (the old runs were loader-bound at ~5k images/s whatever the model):

- The whole dataset is one uint8 tensor on the training device: a batch is an index into it, the
  shuffle is one `torch.randperm` per epoch, and resize, augmentation and normalisation run on the
  whole batch on the device. No DataLoader, no worker processes, no per-image PIL work.
- Metrics stay on the device: per batch the loss and logits tensors are only kept (no kernel, no
  sync; the logits of an epoch are N x classes values, 2.4 MB for MNIST); the sums, argmax and
  bincount run once at the end, followed by the one device-to-host transfer. An `.item()` per
  batch would stall the GPU queue once per batch.
- On CUDA: bf16 autocast (`_autocast`), channels_last for conv models (see `fit`), and
  cudnn.benchmark (`_configure`); with `spec.cuda_graphs`, each full batch's step replayed as one
  CUDA graph (worker/graphs.py).

A seeded CPU run is bit-reproducible: the seed fixes the initial weights and dropout
(`torch.manual_seed`), every epoch's order and every augmentation draw (a `torch.Generator` each,
so nothing else that draws random numbers can shift them). CUDA runs are not bit-reproducible
(cuDNN algorithm choice, atomics).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from trainboard.protocol import EpochRecord, Progress, RunInfo, RunResult, StopState
from trainboard.spec import CustomModelSpec, RunSpec, TorchvisionSpec
from worker.augment import Augment
from worker.checkpoints import TrainingState, load_checkpoint, save_checkpoint, save_weights
from worker.custom_models import check_budget, logits_bytes, probe
from worker.data import Dataset, know_dataset, load_dataset, to_device
from worker.early_stopping import EarlyStopping
from worker.finetune import freeze, frozen_batch_norms, param_groups
from worker.graphs import TrainStep, graphed_step
from worker.interrupt import Stopped, until_stopped
from worker.models import build_model, model_channels
from worker.optimizers import build_optimizer, build_scheduler, lrs
from worker.preprocess import Preprocess
from worker.system import EpochMeter, data_fingerprint, environment
from worker.weights import ensure_downloaded


class RunFiles(Protocol):
    """Where the engine's files go: it writes each into `folder`, then hands it over (the caller uploads it)."""

    folder: Path

    def checkpoint(self, path: Path, epoch: int) -> None: ...

    def weights(self, path: Path, epoch: int) -> None: ...


EpochFn = Callable[[EpochRecord], None]
ProgressFn = Callable[[Progress], None]
StopFn = Callable[[], bool]

# Evaluation keeps no activations for backward, so it can take bigger batches than training:
# fewer, larger kernels. 1024 images of 3x32x32 are 12 MB as float32; larger images get batches of
# the same number of pixels (20 images at 224x224), but never fewer than a training batch.
EVAL_BATCH_SIZE = 1024
EVAL_BATCH_PIXELS = EVAL_BATCH_SIZE * 32 * 32


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; no later epoch can recover from that."""


@dataclass(frozen=True)
class TrainStats:
    loss: float  # mean cross-entropy over the images trained on
    accuracy: float  # of the training-mode predictions made while training, like most loops report
    images: int
    seconds: float


@dataclass(frozen=True)
class EvalStats:
    loss: float  # mean cross-entropy over the test images
    accuracy: float
    per_class_accuracy: list[float]  # 0.0 for a class with no test image: nothing to get right
    confusion: list[list[int]]  # confusion[true][predicted]


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    preprocess: Preprocess,
    *,
    batch_size: int,
    generator: torch.Generator,
    augment: Augment | None = None,
    frozen_batch_norm: Sequence[nn.Module] = (),
    epoch: int = 1,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    skip_single_image_batch: bool = False,
    step: TrainStep | None = None,
) -> TrainStats | None:
    """One pass over `images` (uint8, on the device) in a fresh random order; None if stopped early.

    `augment`: applied to every batch (after the resize, before the normalisation).
    `frozen_batch_norm`: batch-norm layers kept in eval mode (fine-tuning's frozen_bn_eval).
    `skip_single_image_batch`: drop a last batch of exactly one image (BatchNorm cannot normalise a
    batch of one in training mode); that image is still trained on in epochs where it lands elsewhere.
    `step`: what trains on each batch instead of `train_step` (fit passes worker/graphs.py's graphed one).
    """
    device = images.device
    model.train()
    for layer in frozen_batch_norm:
        layer.eval()
    n = len(images)
    batches = count_batches(n, batch_size, skip_single_image_batch)
    train_on = step if step is not None else partial(train_step, model, optimizer, preprocess, augment)
    started = time.perf_counter()
    order = torch.randperm(n, generator=generator, device=device)
    # Each batch's mean loss and logits, detached and left on the device: no sync inside the loop.
    losses: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []
    for batch in range(batches):
        if should_stop is not None and should_stop():
            return None
        index = order[batch * batch_size : (batch + 1) * batch_size]
        loss, logits = train_on(images[index], labels[index])
        losses.append(loss)
        outputs.append(logits)
        if progress is not None:
            progress(Progress(epoch=epoch, batch=batch + 1, batches=batches))

    seen = min(batches * batch_size, n)
    batch_sizes = torch.full((batches,), batch_size, dtype=torch.float32, device=device)
    batch_sizes[-1] = seen - (batches - 1) * batch_size
    loss_sum = (torch.stack(losses) * batch_sizes).sum()
    correct = (torch.cat(outputs).argmax(dim=1) == labels[order[:seen]]).sum()
    _wait_for(device)  # so the clock includes the last optimizer step, which the metrics don't wait on
    seconds = time.perf_counter() - started
    loss_sum_value, correct_value = torch.stack([loss_sum.double(), correct.double()]).tolist()  # the one sync
    return TrainStats(loss=loss_sum_value / seen, accuracy=correct_value / seen, images=seen, seconds=seconds)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    preprocess: Preprocess,
    augment: Augment | None,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    autocast_cache: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a uint8 batch: preprocess (and augment), forward, backward, step.
    Returns the batch's mean loss and its logits, detached (kept on the device, no sync).

    `autocast_cache`: off for a step captured as a CUDA graph (worker/graphs.py)."""
    x = preprocess(images, augment)
    with _autocast(images.device, cache=autocast_cache):
        logits = model(x)
        loss = F.cross_entropy(logits, labels)  # autocast computes cross-entropy in float32
    optimizer.zero_grad(set_to_none=True)
    torch.autograd.backward(loss)
    optimizer.step()
    return loss.detach(), logits.detach()


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    preprocess: Preprocess,
    num_classes: int,
    batch_size: int = EVAL_BATCH_SIZE,
) -> EvalStats:
    """Loss, accuracy, per-class accuracy and confusion matrix on `images`, in one device sync."""
    device = images.device
    model.eval()
    n = len(images)
    outputs: list[torch.Tensor] = []
    for start in range(0, n, batch_size):
        with _autocast(device):
            outputs.append(model(preprocess(images[start : start + batch_size])))
    logits = torch.cat(outputs).float()
    loss_sum = F.cross_entropy(logits, labels, reduction="sum")
    predictions = logits.argmax(dim=1)
    # Row = true class, column = predicted class; bincount of true * C + predicted counts each pair.
    confusion = torch.bincount(labels * num_classes + predictions, minlength=num_classes**2)
    confusion = confusion.view(num_classes, num_classes)
    per_class = confusion.diagonal() / confusion.sum(dim=1).clamp(min=1)  # absent class: 0 / 1 = 0.0
    # float64 holds counts exactly up to 2**53; one transfer brings loss, accuracies and counts.
    values = torch.cat([loss_sum.double().view(1), per_class.double(), confusion.flatten().double()]).tolist()
    counts = [int(v) for v in values[1 + num_classes :]]
    rows = [counts[row * num_classes : (row + 1) * num_classes] for row in range(num_classes)]
    return EvalStats(
        loss=values[0] / max(n, 1),
        accuracy=sum(rows[c][c] for c in range(num_classes)) / max(n, 1),
        per_class_accuracy=values[1 : 1 + num_classes],
        confusion=rows,
    )


def fit(
    spec: RunSpec,
    *,
    data_dir: Path,
    on_epoch: EpochFn,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    dataset: Dataset | None = None,
    on_prepared: Callable[[RunInfo], None] | None = None,
    files: RunFiles | None = None,
    resume_from: Path | None = None,
    models: Mapping[str, str] | None = None,
    memory_budget_gb: float | None = None,
) -> RunResult:
    """Train `spec` for its epochs, calling `on_epoch` after each; stop early when `should_stop` says so
    or when early stopping does.

    `dataset`: one already loaded for `spec.dataset` (limits applied), to skip loading it again.
    A cancelled run returns the epochs it finished; the epoch it was in is not reported.
    Raises TrainingDiverged when an epoch ends with a NaN or infinite loss (that epoch is not reported),
    worker.weights.WeightsUnavailable when pretrained weights are missing and cannot be downloaded,
    worker.checkpoints.CheckpointMismatch when `resume_from` is not a checkpoint of this spec.

    `files`: checkpoints at the end of epochs as `spec.checkpoint` says, and the final weights of a run
    that ends (not cancelled). `resume_from`: a checkpoint written after epoch k by an earlier attempt; the
    run goes on with epoch k + 1, bit-identical on the CPU to the run that was not interrupted.

    `models`: the custom models this worker offers (TRAINBOARD_MODELS, name -> module:Class). A custom model is
    built from them and run on one training batch before the first epoch (worker/custom_models.py probe):
    CustomModelError when it is not offered, fails to import, build or train on that batch, or when its measured
    memory is over `memory_budget_gb` (None: not checked).
    """
    started = time.perf_counter()
    device = resolve_device(spec.device)
    _configure(device)
    # The model first: missing pretrained weights fail the run before any dataset is loaded or downloaded.
    # Downloads and decoding can take minutes: a cancel meanwhile ends the run at once (worker/interrupt.py).
    try:
        if isinstance(spec.model, TorchvisionSpec) and spec.model.pretrained:
            until_stopped(lambda: ensure_downloaded(spec.model.arch), should_stop)
        know_dataset(spec.dataset, data_dir)  # a registered dataset's shape; a worker without its files fails here
        torch.manual_seed(spec.seed)  # the initial weights (and, later, dropout)
        model = build_model(spec, models).to(device)
        loaded = (
            dataset if dataset is not None else until_stopped(lambda: load_dataset(spec.dataset, data_dir), should_stop)
        )
    except Stopped:
        return _result(StopState.cancelled, 0, [], started, device)
    data = to_device(loaded, device)
    # cuDNN's tensor-core convolutions work in NHWC; with NCHW tensors every conv would transpose
    # its input and output. Linear layers gain nothing from it, so the MLP keeps the default layout.
    channels_last = device.type == "cuda" and spec.model.arch != "mlp"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    batch_norm = any(isinstance(layer, _BatchNorm) for layer in model.modules())
    if batch_norm and min(spec.batch_size, len(data.train_x)) < 2:
        raise ValueError("batch_norm needs at least 2 images per training batch: raise batch_size or train_limit")
    freeze(model, spec)
    optimizer = build_optimizer(spec.optimizer, param_groups(model, spec))
    scheduler = build_scheduler(spec.scheduler, optimizer, spec.epochs)
    frozen_batch_norm = frozen_batch_norms(model, spec)
    stopper = EarlyStopping(spec.early_stopping) if spec.early_stopping is not None else None
    shuffle = torch.Generator(device=device).manual_seed(spec.seed)
    augment = Augment(spec.augment, spec.seed, device)
    preprocess = Preprocess(
        data.mean,
        data.std,
        device,
        channels_last=channels_last,
        size=spec.dataset.resize,
        channels=model_channels(spec),
    )
    if isinstance(spec.model, CustomModelSpec):
        _probe_custom(spec, model, data, preprocess, memory_budget_gb)
    eval_batch_size = max(spec.batch_size, EVAL_BATCH_PIXELS // math.prod(spec.dataset.image_size))
    spec_dict = spec.model_dump(mode="json")
    state = TrainingState(0, model, optimizer, shuffle, augment.generator, stopper)
    if resume_from is not None:
        load_checkpoint(resume_from, state, spec_dict, scheduler)
    step = None
    if spec.cuda_graphs:  # eager, with one log line saying why, where graphs cannot be used
        eager = partial(train_step, model, optimizer, preprocess, augment if augment else None, autocast_cache=False)
        generators = [augment.generator] if augment else []
        step = graphed_step(
            eager,
            device=device,
            optimizer=optimizer,
            batch_size=spec.batch_size,
            train_images=len(data.train_x),
            generators=generators,
        )
    if on_prepared is not None:
        on_prepared(_run_info(spec, data, model, optimizer, device, fingerprint=data_fingerprint(loaded)))

    confusion: list[list[int]] = state.confusion
    epoch, stopped = state.epoch, StopState.completed
    last_checkpoint = time.perf_counter()
    meter = EpochMeter(device)
    for epoch in range(state.epoch + 1, spec.epochs + 1):
        lr = lrs(optimizer)
        meter.start()
        train = train_one_epoch(
            model,
            optimizer,
            data.train_x,
            data.train_y,
            preprocess,
            batch_size=spec.batch_size,
            generator=shuffle,
            augment=augment if augment else None,
            frozen_batch_norm=frozen_batch_norm,
            epoch=epoch,
            progress=progress,
            should_stop=should_stop,
            skip_single_image_batch=batch_norm,
            step=step,
        )
        if train is None:
            return _result(StopState.cancelled, epoch - 1, confusion, started, device)
        eval_started = time.perf_counter()
        test = evaluate(model, data.test_x, data.test_y, preprocess, data.num_classes, eval_batch_size)
        if not (math.isfinite(train.loss) and math.isfinite(test.loss)):
            # Stop here: NaN is not valid JSON, so such a record could never be stored anyway.
            raise TrainingDiverged(
                f"epoch {epoch}: train loss {train.loss}, test loss {test.loss}; lower the learning rate (lr={lr})"
            )
        on_epoch(
            EpochRecord(
                epoch=epoch,
                train_loss=train.loss,
                train_acc=train.accuracy,
                test_loss=test.loss,
                test_acc=test.accuracy,
                per_class_acc=test.per_class_accuracy,
                lr=lr,
                seconds=train.seconds + time.perf_counter() - eval_started,
                images_per_s=train.images / max(train.seconds, 1e-9),
                system=meter.figures(),
            )
        )
        confusion = test.confusion
        if scheduler is not None:
            scheduler.step()  # once per epoch: the next epoch's rates
        if stopper is not None:
            metric = test.accuracy if stopper.spec.metric == "test_acc" else test.loss
            if stopper.update(epoch, metric, model):
                stopped = StopState.early_stopped
                break
        if files is not None and _checkpoint_due(spec, epoch, time.perf_counter() - last_checkpoint):
            state.epoch, state.confusion = epoch, confusion
            path = files.folder / f"checkpoint-{epoch}.safetensors"
            save_checkpoint(path, state, spec_dict)
            files.checkpoint(path, epoch)
            last_checkpoint = time.perf_counter()

    stop_reason, final_epoch = "", None
    if stopper is not None:
        restored = stopper.restore(model, epoch)
        final_epoch = stopper.best_epoch if restored else None
        if restored:  # the run ends with the best epoch's weights: its confusion matrix is theirs
            best = evaluate(model, data.test_x, data.test_y, preprocess, data.num_classes, eval_batch_size)
            confusion = best.confusion
        if stopped == StopState.early_stopped or restored:
            stop_reason = stopper.reason(stopped == StopState.early_stopped, restored)
    if files is not None and epoch > 0:
        path = files.folder / "weights.safetensors"
        save_weights(path, model, spec_dict, final_epoch or epoch)
        files.weights(path, final_epoch or epoch)
    return _result(stopped, epoch, confusion, started, device, stop_reason, final_epoch)


def _probe_custom(
    spec: RunSpec,
    model: nn.Module,
    data: Dataset,
    preprocess: Preprocess,
    memory_budget_gb: float | None,
) -> None:
    """One training batch through a custom model before the first epoch: fails the run, saying why, if it does
    not train or does not fit the memory budget. Draws no random number the training will."""
    assert isinstance(spec.model, CustomModelSpec)
    batch = min(spec.batch_size, len(data.train_x))
    images = data.train_x[:batch]
    x = preprocess(images)  # not augmented: that would draw from the augmentation's generator (same shape)
    states = 2 if spec.optimizer.name in ("adam", "adamw") else (1 if spec.optimizer.momentum else 0)
    held = sum(t.numel() * t.element_size() for t in (data.train_x, data.train_y, data.test_x, data.test_y))
    found = probe(
        model,
        spec.model.name,
        x,
        data.train_y[:batch],
        data.num_classes,
        optimizer_states=states,
        data_bytes=held + logits_bytes(len(data.train_x) + len(data.test_x), data.num_classes),
    )
    if memory_budget_gb is not None:
        check_budget(spec.model.name, found, batch, images.device, memory_budget_gb)


def _checkpoint_due(spec: RunSpec, epoch: int, seconds_since_last: float) -> bool:
    """After `epoch`: is a checkpoint due? Never after the last epoch (the final weights follow at once)."""
    every = spec.checkpoint
    due = every.enabled and epoch % every.every_epochs == 0 and seconds_since_last >= every.min_seconds
    return due and epoch < spec.epochs


def _run_info(
    spec: RunSpec,
    data: Dataset,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    fingerprint: str,
) -> RunInfo:
    """`fingerprint`: of the dataset as loaded on the CPU (hashing it there spares a copy back from the GPU)."""
    _, height, width = spec.input_shape
    return RunInfo(
        train_images=len(data.train_x),
        test_images=len(data.test_x),
        image_size=[model_channels(spec), height, width],
        mean=list(data.mean),
        std=list(data.std),
        normalize=spec.dataset.normalize,
        parameters=sum(p.numel() for p in model.parameters()),
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        lr_groups=[str(group["name"]) for group in optimizer.param_groups],
        device=str(device),
        environment=environment(device),
        data_sha256=fingerprint,
    )


def resolve_device(name: str) -> torch.device:
    """'auto': the first GPU if there is one, else the CPU; otherwise the device named."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def count_batches(n: int, batch_size: int, skip_single_image_batch: bool = False) -> int:
    """Batches in an epoch of n images: the last one is partial, or dropped if asked and it has 1 image."""
    full, rest = divmod(n, batch_size)
    keep_rest = rest > 1 or (rest == 1 and not skip_single_image_batch)
    return full + int(keep_rest)


def _result(
    stopped: StopState,
    epochs_run: int,
    confusion: list[list[int]],
    started: float,
    device: torch.device,
    stop_reason: str = "",
    final_epoch: int | None = None,
) -> RunResult:
    total_seconds = time.perf_counter() - started
    return RunResult(
        stopped=stopped,
        stop_reason=stop_reason,
        epochs_run=epochs_run,
        confusion=confusion,
        total_seconds=total_seconds,
        device=str(device),
        final_epoch=final_epoch,
    )


def _configure(device: torch.device) -> None:
    if device.type == "cuda":
        # Every training batch has the same shape (only an epoch's last batch differs), so cuDNN's
        # one-off search for the fastest conv algorithm per shape (milliseconds) is repaid over the
        # thousands of identical batches that follow. Process-wide, which is fine: a worker process
        # runs one task at a time (and CUDA ones are recycled after each run).
        torch.backends.cudnn.benchmark = True


def _autocast(device: torch.device, cache: bool = True) -> AbstractContextManager[object]:
    """bf16 autocast on CUDA: tensor-core matmuls and convs, half the activation memory, and unlike
    fp16 no loss scaling (bf16 has fp32's exponent range). Nothing on CPU, where bf16 is slow on
    most processors; a disabled torch.autocast would still cost ~3 us per batch.
    `cache`: keep each weight's bf16 cast for the rest of the region (off under CUDA-graph capture)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=cache)
    return contextlib.nullcontext()


def _wait_for(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
