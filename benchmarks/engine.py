"""How fast the engine trains, against a bare PyTorch loop and a DataLoader + PIL pipeline.

Three ways to train the same model (same initial weights, optimizer, seed and batch size) on the
same images; only training epochs are timed, evaluation is left out of all three:

- engine: `worker.engine.fit` for one epoch, with a rate-limited progress callback and a
  should_stop check per batch, as the Celery task calls it. Its time is the training time fit
  reports in the EpochRecord (fit stops that clock after a CUDA synchronize).
- bare loop: the ideal hand-written loop over the same device-resident uint8 tensor: same randperm
  shuffle, index slicing, fused normalisation, and bf16 autocast + channels_last on CUDA, but no
  metrics, no callbacks, nothing kept per batch. bare time / engine time is the engine's
  efficiency; the target is >= 0.97.
- engine, cuda_graphs (with `--graphs`): the engine with RunSpec.cuda_graphs on (worker/graphs.py).
  Its time is the second epoch of a 2-epoch fit: the first holds the warm-up steps and the capture,
  once per run, as the eager engine's first round holds cuDNN's autotuning. The table's last line
  gives its images/s against the eager engine's.
- DataLoader+PIL: what users write by hand: a Dataset that makes a PIL image per sample (as
  torchvision's MNIST and CIFAR10 do), ToTensor + Normalize, a shuffling DataLoader (pinned memory
  and worker processes on CUDA), each batch copied to the device. Its time / engine time is how
  much slower than the engine it is.

The pipelines take turns, one epoch each per round, so a change in background load hits all three
alike; `--warmup` rounds are untimed, the table shows the median of the `--epochs` timed rounds
(ratios and images/s are of medians) and the best round, which other load on a shared machine
disturbs least.

The images are random (fixed seed) in the dataset's real shape and number, so nothing is
downloaded; `--dataset digits` uses the real bundled digits (needs scikit-learn).

    python benchmarks/engine.py                       # CPU: mlp on 60000 MNIST-shaped images
    python benchmarks/engine.py --device cuda --json engine-h100.json
    python benchmarks/engine.py --device cuda --arch mlp cnn --graphs      # eager vs CUDA graphs, batch 64
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout, installed or not

from trainboard.protocol import EpochRecord, Progress
from trainboard.spec import CLASS_NAMES, DATASET_SHAPES, DatasetSpec, RunSpec
from worker.data import PUBLISHED_MEAN_STD, Dataset, load_dataset, to_device
from worker.engine import fit, resolve_device
from worker.finetune import param_groups
from worker.models import build_model
from worker.optimizers import build_optimizer

# spec.py's default models: mlp 128-64; cnn with 32 and 64 3x3 convs, 2x2 max pool, then 128-64.
MODELS: dict[str, dict[str, str]] = {"mlp": {"arch": "mlp"}, "cnn": {"arch": "cnn"}}
REAL_SIZES = {"mnist": (60_000, 10_000), "fashion_mnist": (60_000, 10_000), "cifar10": (50_000, 10_000)}
EFFICIENCY_TARGET = 0.97
GRAPHS = "engine, cuda_graphs"

EpochTimer = Callable[[], float]  # runs one training epoch, returns its seconds


@dataclass
class Row:
    arch: str
    pipeline: str
    epoch_seconds: float  # median over the timed rounds
    best_seconds: float  # the fastest timed round: less sensitive to other load on a shared machine
    images_per_s: float  # at the median
    time_vs_engine: float  # this pipeline's median epoch time / the engine's


def main() -> None:
    args = parse_args()
    device = resolve_device(args.device)
    data = make_dataset(args.dataset, args.train_size, args.test_size, seed=args.seed)
    archs = args.arch or (["mlp"] if device.type == "cpu" else ["mlp", "cnn"])
    workers = args.workers if args.workers is not None else (0 if device.type == "cpu" else 4)
    info = setup(args, device, data, workers)
    print(header(info), flush=True)

    rows: list[Row] = []
    for arch in archs:
        spec = RunSpec(
            dataset={"name": args.dataset},
            model=MODELS[arch],
            epochs=1,
            batch_size=args.batch_size,
            seed=args.seed,
            device=str(device),
        )
        pipelines = {
            "engine": engine_epoch(spec, data),
            "bare loop": bare_loop_epoch(spec, data, device),
            f"DataLoader+PIL, {workers} workers": dataloader_epoch(spec, data, device, workers),
        }
        if args.graphs:
            pipelines[GRAPHS] = engine_epoch(spec.model_copy(update={"cuda_graphs": True}), data, epochs=2)
        seconds = take_turns(pipelines, args.warmup, args.epochs)
        engine_seconds = statistics.median(seconds["engine"])
        for pipeline, times in seconds.items():
            median = statistics.median(times)
            rows.append(Row(arch, pipeline, median, min(times), len(data.train_x) / median, median / engine_seconds))
        print_table([row for row in rows if row.arch == arch])

    if args.json:
        results: dict[str, object] = {"setup": asdict(info), "rows": [asdict(row) for row in rows]}
        if args.graphs:
            results["graphs_speedup"] = {row.arch: 1 / row.time_vs_engine for row in rows if row.pipeline == GRAPHS}
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dataset", choices=list(DATASET_SHAPES), default="mnist")
    parser.add_argument("--arch", choices=list(MODELS), nargs="+", help="default: mlp on cpu, mlp and cnn on cuda")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per pipeline (the median is shown)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs first (allocator, cuDNN autotune)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-size", type=int, help="training images (default: the dataset's real number)")
    parser.add_argument("--test-size", type=int, help="test images fit evaluates, untimed (default: real number)")
    parser.add_argument("--workers", type=int, help="DataLoader worker processes (default: 0 on cpu, 4 on cuda)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the setup and results to this file")
    parser.add_argument("--graphs", action="store_true", help="also time the engine with cuda_graphs on (CUDA)")
    args = parser.parse_args()
    if args.epochs < 1 or args.warmup < 0 or args.batch_size < 1:
        parser.error("--epochs and --batch-size must be >= 1, --warmup >= 0")
    return args


def make_dataset(name: str, train_size: int | None, test_size: int | None, *, seed: int) -> Dataset:
    """Random uint8 images and labels in the dataset's shape (for `digits`, the real dataset)."""
    if name == "digits":
        return load_dataset(DatasetSpec(name="digits", train_limit=train_size, test_limit=test_size), Path("."))
    channels, height, width, classes = DATASET_SHAPES[name]
    generator = torch.Generator().manual_seed(seed)

    def images(n: int) -> torch.Tensor:
        return torch.randint(0, 256, (n, channels, height, width), dtype=torch.uint8, generator=generator)

    def labels(n: int) -> torch.Tensor:
        return torch.randint(0, classes, (n,), generator=generator)

    n_train, n_test = train_size or REAL_SIZES[name][0], test_size or REAL_SIZES[name][1]
    mean, std = PUBLISHED_MEAN_STD[name]
    names = tuple(CLASS_NAMES[name])
    return Dataset(images(n_train), labels(n_train), images(n_test), labels(n_test), mean, std, names)


def take_turns(pipelines: dict[str, EpochTimer], warmup: int, epochs: int) -> dict[str, list[float]]:
    seconds: dict[str, list[float]] = {name: [] for name in pipelines}
    for round_ in range(warmup + epochs):
        for name, run_epoch in pipelines.items():
            elapsed = run_epoch()
            if round_ >= warmup:
                seconds[name].append(elapsed)
    return seconds


# --- the three pipelines --------------------------------------------------------------------------


def engine_epoch(spec: RunSpec, data: Dataset, epochs: int = 1) -> EpochTimer:
    """A fit of `epochs` epochs; the time of its last."""
    device = resolve_device(spec.device)
    on_device = to_device(data, device)  # fit's own to_device is then a no-op, as for a cached dataset
    spec = spec.model_copy(update={"epochs": epochs})

    def run() -> float:
        records: list[EpochRecord] = []
        fit(
            spec,
            data_dir=Path("."),
            on_epoch=records.append,
            progress=rate_limited_heartbeat(),
            should_stop=lambda: False,
            dataset=on_device,
        )
        return len(data.train_x) / records[-1].images_per_s

    return run


def rate_limited_heartbeat(interval_s: float = 1.0) -> Callable[[Progress], None]:
    """What the worker passes as `progress`: keep the step, send at most one per interval."""
    last_sent = 0.0
    sent: list[Progress] = []

    def progress(step: Progress) -> None:
        nonlocal last_sent
        now = time.monotonic()
        if now - last_sent >= interval_s:
            last_sent = now
            sent.append(step)

    return progress


def bare_loop_epoch(spec: RunSpec, data: Dataset, device: torch.device) -> EpochTimer:
    model, optimizer, memory_format = fresh_model(spec, device)
    images, labels = data.train_x.to(device), data.train_y.to(device)
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    scale, shift = 1 / (255 * std), -mean / std
    generator = torch.Generator(device=device).manual_seed(spec.seed)
    n, batch_size = len(images), spec.batch_size

    def epoch() -> None:
        model.train()
        order = torch.randperm(n, generator=generator, device=device)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            x = torch.addcmul(shift, images[index], scale).contiguous(memory_format=memory_format)
            train_step(model, optimizer, x, labels[index], device)

    return lambda: timed(epoch, device)


class PILImages(torch.utils.data.Dataset):
    """Like torchvision's MNIST/CIFAR10 __getitem__: a PIL image per sample, then the transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable[[Image.Image], torch.Tensor]):
        hwc = images.permute(0, 2, 3, 1).contiguous().numpy()
        # HxW arrays for one channel ("L" images), HxWx3 for RGB, as torchvision keeps them.
        self.images = hwc[..., 0].copy() if hwc.shape[-1] == 1 else hwc
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def dataloader_epoch(spec: RunSpec, data: Dataset, device: torch.device, workers: int) -> EpochTimer:
    model, optimizer, memory_format = fresh_model(spec, device)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(data.mean, data.std)])
    loader = DataLoader(
        PILImages(data.train_x, data.train_y, transform),
        batch_size=spec.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(spec.seed),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,  # no process start-up in every epoch
    )

    def epoch() -> None:
        model.train()
        for x, y in loader:
            x = x.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            train_step(model, optimizer, x, y.to(device, non_blocking=True), device)

    return lambda: timed(epoch, device)


def fresh_model(spec: RunSpec, device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer, torch.memory_format]:
    """The engine's model and optimizer for `spec`, seeded and laid out as fit does it."""
    channels_last = device.type == "cuda" and spec.model.arch != "mlp"
    torch.manual_seed(spec.seed)
    model = build_model(spec).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return model, build_optimizer(spec.optimizer, param_groups(model, spec)), memory_format


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, device: torch.device
) -> None:
    with torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext():
        loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def timed(epoch: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    started = time.perf_counter()
    epoch()
    synchronize(device)  # CUDA runs asynchronously: wait for the last step before stopping the clock
    return time.perf_counter() - started


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- output ---------------------------------------------------------------------------------------


@dataclass
class Setup:
    device: str
    torch_threads: int
    torch: str
    python: str
    dataset: str
    random_images: bool
    image_shape: list[int]
    train_images: int
    batch_size: int
    warmup_epochs: int
    timed_epochs: int
    dataloader_workers: int


def setup(args: argparse.Namespace, device: torch.device, data: Dataset, workers: int) -> Setup:
    return Setup(
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {os.cpu_count()} cores",
        torch_threads=torch.get_num_threads(),
        torch=torch.__version__,
        python=platform.python_version(),
        dataset=args.dataset,
        random_images=args.dataset != "digits",
        image_shape=list(data.train_x.shape[1:]),
        train_images=len(data.train_x),
        batch_size=args.batch_size,
        warmup_epochs=args.warmup,
        timed_epochs=args.epochs,
        dataloader_workers=workers,
    )


def header(info: Setup) -> str:
    kind = "random images" if info.random_images else "real images"
    shape = "x".join(map(str, info.image_shape))
    return (
        f"{info.dataset} ({kind}, {info.train_images} x {shape}), batch {info.batch_size}, "
        f"median of {info.timed_epochs} epochs after {info.warmup_epochs} warm-up\n"
        f"{info.device}, {info.torch_threads} torch threads, torch {info.torch}, python {info.python}"
    )


def print_table(rows: list[Row]) -> None:
    print(f"\n{'arch':<5} {'pipeline':<28} {'epoch s':>8} {'best s':>8} {'images/s':>10} {'time / engine':>14}")
    for row in rows:
        seconds, best = f"{row.epoch_seconds:.3f}", f"{row.best_seconds:.3f}"
        speed, ratio = f"{row.images_per_s:,.0f}", f"{row.time_vs_engine:.2f}"
        print(f"{row.arch:<5} {row.pipeline:<28} {seconds:>8} {best:>8} {speed:>10} {ratio:>14}")
    bare = next(row for row in rows if row.pipeline == "bare loop")
    verdict = "meets" if bare.time_vs_engine >= EFFICIENCY_TARGET else "misses"
    efficiency = f"{bare.time_vs_engine:.3f}, {verdict} the {EFFICIENCY_TARGET} target"
    print(f"engine efficiency (bare time / engine time): {efficiency}", flush=True)
    graphs = next((row for row in rows if row.pipeline == GRAPHS), None)
    if graphs is not None:
        engine = next(row for row in rows if row.pipeline == "engine")
        speedup = f"{engine.epoch_seconds / graphs.epoch_seconds:.2f}x the eager engine's"
        print(f"cuda graphs: {graphs.images_per_s:,.0f} images/s, eager {engine.images_per_s:,.0f}: {speedup}")
    print(flush=True)


if __name__ == "__main__":
    main()
