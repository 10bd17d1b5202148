"""The training loop: `fit` trains one RunSpec and reports each epoch through a callback.

Plain PyTorch, read top to bottom: `train_one_epoch`, `evaluate`, and `fit` looping over epochs.
It knows nothing about HTTP, Celery or the database: the caller passes `report` (one EpochRecord per
finished epoch), `progress` (called once per batch; the caller rate-limits what it sends) and
`should_stop` (checked once per batch; cooperative cancellation).

Where the speed comes from (the old runs were loader-bound at ~5k images/s whatever the model):

- The whole dataset is one uint8 tensor on the training device: a batch is an index into it, the
  shuffle is one `torch.randperm` per epoch, and normalisation is one fused multiply-add per batch
  on the device. No DataLoader, no worker processes, no per-image PIL work.
- Metrics stay on the device: per batch the loss and logits tensors are only kept (no kernel, no
  sync; the logits of an epoch are N x classes values, 2.4 MB for MNIST); the sums, argmax and
  bincount run once at the end, followed by the one device-to-host transfer. An `.item()` per
  batch would stall the GPU queue once per batch.
- On CUDA: bf16 autocast (`_autocast`), channels_last for conv models (see `fit`), and
  cudnn.benchmark (`_configure`).

A seeded CPU run is bit-reproducible: the seed fixes the initial weights (`torch.manual_seed`) and
every epoch's order (a `torch.Generator` of its own, so nothing else that draws random numbers can
shift the shuffle). CUDA runs are not bit-reproducible (cuDNN algorithm choice, atomics).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from trainboard.reports import EpochRecord, Progress, RunInfo, RunResult
from trainboard.spec import CNNSpec, MLPSpec, OptimizerSpec, RunSpec
from worker.data import Dataset, load_dataset, to_device
from worker.models import build_model

ReportFn = Callable[[EpochRecord], None]
ProgressFn = Callable[[Progress], None]
StopFn = Callable[[], bool]

# Evaluation keeps no activations for backward, so it can take bigger batches than training:
# fewer, larger kernels. 1024 images of the largest spec'd inputs (3x32x32) are 12 MB as float32.
EVAL_BATCH_SIZE = 1024


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


class Normalize:
    """uint8 [B, C, H, W] -> float32 (x / 255 - mean) / std, as one fused multiply-add on the device.

    x * (1 / (255 * std)) + (-mean / std) is the same affine map; addcmul also does the uint8 to
    float conversion in that one kernel.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device, channels_last: bool):
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.scale = 1 / (255 * std_t)
        self.shift = -mean_t / std_t
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, images, self.scale).contiguous(memory_format=self.memory_format)


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    normalize: Normalize,
    *,
    batch_size: int,
    generator: torch.Generator,
    epoch: int = 1,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    skip_single_image_batch: bool = False,
) -> TrainStats | None:
    """One pass over `images` (uint8, on the device) in a fresh random order; None if stopped early.

    `skip_single_image_batch`: drop a last batch of exactly one image (BatchNorm cannot normalise a
    batch of one in training mode); that image is still trained on in epochs where it lands elsewhere.
    """
    device = images.device
    model.train()
    n = len(images)
    batches = count_batches(n, batch_size, skip_single_image_batch)
    started = time.perf_counter()
    order = torch.randperm(n, generator=generator, device=device)
    # Each batch's mean loss and logits, detached and left on the device: no sync inside the loop.
    losses: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []
    for batch in range(batches):
        if should_stop is not None and should_stop():
            return None
        index = order[batch * batch_size : (batch + 1) * batch_size]
        x, y = normalize(images[index]), labels[index]
        with _autocast(device):
            logits = model(x)
            loss = F.cross_entropy(logits, y)  # autocast computes cross-entropy in float32
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
        outputs.append(logits.detach())
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


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    normalize: Normalize,
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
            outputs.append(model(normalize(images[start : start + batch_size])))
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
    report: ReportFn,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    dataset: Dataset | None = None,
    prepared: Callable[[RunInfo], None] | None = None,
) -> RunResult:
    """Train `spec` for its epochs, calling `report` after each; stop early when `should_stop` says so.

    `dataset`: one already loaded for `spec.dataset` (limits applied), to skip loading it again.
    A cancelled run returns the epochs it finished; the epoch it was in is not reported.
    Raises TrainingDiverged when an epoch ends with a NaN or infinite loss (that epoch is not reported).
    """
    started = time.perf_counter()
    device = resolve_device(spec.device)
    _configure(device)
    data = to_device(dataset if dataset is not None else load_dataset(spec.dataset, data_dir), device)
    # cuDNN's tensor-core convolutions work in NHWC; with NCHW tensors every conv would transpose
    # its input and output. Linear layers gain nothing from it, so the MLP keeps the default layout.
    channels_last = device.type == "cuda" and isinstance(spec.model, CNNSpec)
    batch_norm = isinstance(spec.model, MLPSpec) and spec.model.batch_norm
    if batch_norm and min(spec.batch_size, len(data.train_x)) < 2:
        raise ValueError("batch_norm needs at least 2 images per training batch: raise batch_size or train_limit")

    torch.manual_seed(spec.seed)  # the initial weights
    model = build_model(spec).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(spec.optimizer, model)
    shuffle = torch.Generator(device=device).manual_seed(spec.seed)
    normalize = Normalize(data.mean, data.std, device, channels_last)
    if prepared is not None:
        prepared(_run_info(spec, data, model, device))

    confusion: list[list[int]] = []
    for epoch in range(1, spec.epochs + 1):
        lr = [group["lr"] for group in optimizer.param_groups]
        train = train_one_epoch(
            model,
            optimizer,
            data.train_x,
            data.train_y,
            normalize,
            batch_size=spec.batch_size,
            generator=shuffle,
            epoch=epoch,
            progress=progress,
            should_stop=should_stop,
            skip_single_image_batch=batch_norm,
        )
        if train is None:
            return _result("cancelled", epoch - 1, confusion, started, device)
        eval_started = time.perf_counter()
        test = evaluate(model, data.test_x, data.test_y, normalize, data.num_classes)
        if not (math.isfinite(train.loss) and math.isfinite(test.loss)):
            # Stop here: NaN is not valid JSON, so such a record could never be stored anyway.
            raise TrainingDiverged(
                f"epoch {epoch}: train loss {train.loss}, test loss {test.loss}; lower the learning rate (lr={lr})"
            )
        report(
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
            )
        )
        confusion = test.confusion
    return _result("completed", spec.epochs, confusion, started, device)


def _run_info(spec: RunSpec, data: Dataset, model: nn.Module, device: torch.device) -> RunInfo:
    return RunInfo(
        train_images=len(data.train_x), test_images=len(data.test_x), image_size=list(spec.input_shape),
        mean=list(data.mean), std=list(data.std), normalize=spec.dataset.normalize,
        parameters=sum(p.numel() for p in model.parameters()),
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad), device=str(device),
    )


def resolve_device(name: str) -> torch.device:
    """'auto': the first GPU if there is one, else the CPU; otherwise the device named."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_optimizer(spec: OptimizerSpec, model: nn.Module) -> torch.optim.Optimizer:
    # On CUDA the fused step updates every parameter in one kernel instead of a few per tensor: at
    # batch 64 a step is launch-bound, and on an H100 this made the MNIST MLP epoch 8-10% faster
    # (benchmarks/engine_overhead.py). The CPU keeps the default step, so CPU runs stay bit-reproducible.
    fused = {"fused": True} if next(model.parameters()).is_cuda else {}
    if spec.name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum,
                               weight_decay=spec.weight_decay, **fused)
    return torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay, **fused)


def count_batches(n: int, batch_size: int, skip_single_image_batch: bool = False) -> int:
    """Batches in an epoch of n images: the last one is partial, or dropped if asked and it has 1 image."""
    full, rest = divmod(n, batch_size)
    keep_rest = rest > 1 or (rest == 1 and not skip_single_image_batch)
    return full + int(keep_rest)


def _result(
    stopped: str, epochs_run: int, confusion: list[list[int]], started: float, device: torch.device
) -> RunResult:
    total_seconds = time.perf_counter() - started
    return RunResult(
        stopped=stopped, epochs_run=epochs_run, confusion=confusion, total_seconds=total_seconds, device=str(device)
    )


def _configure(device: torch.device) -> None:
    if device.type == "cuda":
        # Every training batch has the same shape (only an epoch's last batch differs), so cuDNN's
        # one-off search for the fastest conv algorithm per shape (milliseconds) is repaid over the
        # thousands of identical batches that follow. Process-wide, which is fine: a worker process
        # runs one task at a time (and CUDA ones are recycled after each run).
        torch.backends.cudnn.benchmark = True


def _autocast(device: torch.device) -> AbstractContextManager[object]:
    """bf16 autocast on CUDA: tensor-core matmuls and convs, half the activation memory, and unlike
    fp16 no loss scaling (bf16 has fp32's exponent range). Nothing on CPU, where bf16 is slow on
    most processors; a disabled torch.autocast would still cost ~3 us per batch."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _wait_for(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
