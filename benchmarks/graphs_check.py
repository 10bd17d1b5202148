"""On a GPU: does `cuda_graphs: true` train like the eager loop? (RunSpec.cuda_graphs, worker/graphs.py)

Trains each case twice through `worker.engine.fit` on the same seeded, MNIST-shaped synthetic data,
eagerly and with CUDA graphs, and compares the per-epoch curves. The data is learnable (each class
a random 28x28 template, each image its class's template plus noise), so the curves fall as a real
run's do; the training set is not a multiple of the batch size, so every epoch also ends with an
eager, partial batch.

- mlp, Adam, dropout, a multistep schedule: the capturable flag, rate tensors that a schedule moves,
  the default generator (dropout) under replay;
- cnn, SGD with momentum, crop + flip augmentation, a multistep schedule: the fused SGD step and
  the augmentation generator registered with the graph;
- cnn as above with a capture that raises (a host sync inside the step, as a model that calls
  .item() would make): the run must log why, go on eagerly and train alike.

Tolerance: CUDA runs are not bit-reproducible, not even eager against eager (cuDNN picks algorithms
by timing, backward reductions use atomics), and under bf16 autocast (8 significant bits: each cast
rounds by up to 2^-9, ~0.2 %) such differences are amplified over hundreds of steps. A replay runs the
same kernels with the same random offsets (graph-safe RNG hands each kernel the offset the eager step
would have drawn), so graphs add no difference of their own: each epoch's train and test loss must
agree within 3 % relative (plus 0.01 absolute for losses near 0), and test accuracy within 0.02 —
several times the spread of two eager runs, which is measured and reported too, and far below what a
real bug (a stale learning rate, a frozen augmentation, outputs overwritten by the next replay)
does to these curves within one epoch.

Prints one JSON document and writes it to OUT/graphs_check.json; exit 0 if every case agrees and its
graph was replayed for every full batch after the warm-up, 1 on any mismatch, 2 without CUDA.

    python benchmarks/graphs_check.py --out gpu-out
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout, installed or not

from trainboard.protocol import EpochRecord
from trainboard.spec import CLASS_NAMES, RunSpec
from worker import engine, graphs
from worker.data import PUBLISHED_MEAN_STD, Dataset

RELATIVE_TOLERANCE = 0.03
ABSOLUTE_TOLERANCE = 0.01
ACCURACY_TOLERANCE = 0.02
BATCH_SIZE = 64

CASES: dict[str, dict[str, Any]] = {
    "mlp, adam, dropout, multistep": {
        "model": {"arch": "mlp", "hidden": [256, 128], "dropout": 0.1},
        "optimizer": {"name": "adam", "lr": 0.001},
        "scheduler": {"name": "multistep", "milestones": [2], "gamma": 0.3},
    },
    "cnn, sgd momentum, crop+flip, multistep": {
        "model": {"arch": "cnn", "channels": [32, 64], "kernel_sizes": [3, 3], "hidden": [128]},
        "augment": {"random_crop": {"padding": 2}, "hflip": {"p": 0.5}},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "scheduler": {"name": "multistep", "milestones": [2], "gamma": 0.3},
    },
}
FAILING_CAPTURE = "cnn, a capture that raises"


def synthetic_mnist(train: int, test: int, seed: int) -> Dataset:
    """Learnable MNIST-shaped uint8 data: a random template per class, each image template + noise."""
    generator = torch.Generator().manual_seed(seed)
    templates = torch.rand(10, 1, 28, 28, generator=generator) * 255

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 10, (n,), generator=generator)
        noise = torch.randn(n, 1, 28, 28, generator=generator) * 80
        return (templates[labels] + noise).clamp(0, 255).to(torch.uint8), labels

    (train_x, train_y), (test_x, test_y) = split(train), split(test)
    mean, std = PUBLISHED_MEAN_STD["mnist"]
    return Dataset(train_x, train_y, test_x, test_y, mean, std, tuple(CLASS_NAMES["mnist"]))


@contextmanager
def counted_replays() -> Iterator[list[int]]:
    """Counts GraphedStep replays while it is open: [count]."""
    count = [0]
    original = graphs.GraphedStep._replay

    def replay(self: graphs.GraphedStep, images: torch.Tensor, labels: torch.Tensor) -> Any:
        count[0] += 1
        return original(self, images, labels)

    graphs.GraphedStep._replay = replay  # type: ignore[method-assign]
    try:
        yield count
    finally:
        graphs.GraphedStep._replay = original  # type: ignore[method-assign]


@contextmanager
def capture_that_raises() -> Iterator[None]:
    """The engine's step with a host sync while a capture is under way (as `.item()` in a model would be)."""
    original = engine.train_step

    def step(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        loss, logits = original(*args, **kwargs)
        if loss.is_cuda and torch.cuda.is_current_stream_capturing():
            loss.item()  # raises: a sync is not allowed in a capture
        return loss, logits

    engine.train_step = step
    try:
        yield
    finally:
        engine.train_step = original


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def train(case: dict[str, Any], data: Dataset, epochs: int, cuda_graphs: bool, device: str = "cuda") -> dict[str, Any]:
    spec = RunSpec.model_validate(
        {"dataset": {"name": "mnist"}, "epochs": epochs, "batch_size": BATCH_SIZE, "seed": 0, "device": device}
        | case
        | {"cuda_graphs": cuda_graphs}
    )
    lines = Lines()
    logging.getLogger("worker.graphs").addHandler(lines)
    records: list[EpochRecord] = []
    try:
        with counted_replays() as replays:
            engine.fit(spec, data_dir=Path("."), on_epoch=records.append, dataset=data)
    finally:
        logging.getLogger("worker.graphs").removeHandler(lines)
    return {
        "train_loss": [r.train_loss for r in records],
        "test_loss": [r.test_loss for r in records],
        "test_acc": [r.test_acc for r in records],
        "lr": [r.lr for r in records],
        "images_per_s": [round(r.images_per_s) for r in records],
        "replays": replays[0],
        "log": lines.lines,
    }


def loss_gap(a: float, b: float) -> float:
    """|a - b| in units of the tolerance: <= 1 agrees."""
    return abs(a - b) / (ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * abs(b))


def compare(graphed: dict[str, Any], eager: dict[str, Any]) -> dict[str, float]:
    """The worst gap of each curve, in units of its tolerance (<= 1 agrees)."""
    return {
        "train_loss": max(loss_gap(g, e) for g, e in zip(graphed["train_loss"], eager["train_loss"], strict=True)),
        "test_loss": max(loss_gap(g, e) for g, e in zip(graphed["test_loss"], eager["test_loss"], strict=True)),
        "test_acc": max(
            abs(g - e) / ACCURACY_TOLERANCE for g, e in zip(graphed["test_acc"], eager["test_acc"], strict=True)
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-out"), help="folder for graphs_check.json")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=8192 + 37, help="not a multiple of 64: a partial batch")
    parser.add_argument("--test-size", type=int, default=2048)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("graphs_check: needs a CUDA GPU (torch.cuda.is_available() is False); nothing was checked")
        return 2

    data = synthetic_mnist(args.train_size, args.test_size, seed=0)
    full_batches = args.train_size // BATCH_SIZE
    expected_replays = args.epochs * full_batches - graphs.WARMUP_STEPS
    results: dict[str, Any] = {
        "setup": {
            "gpu": torch.cuda.get_device_name(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "python": platform.python_version(),
            "train_images": args.train_size,
            "test_images": args.test_size,
            "batch_size": BATCH_SIZE,
            "epochs": args.epochs,
            "tolerance": {
                "loss_relative": RELATIVE_TOLERANCE,
                "loss_absolute": ABSOLUTE_TOLERANCE,
                "test_acc_absolute": ACCURACY_TOLERANCE,
            },
        },
        "cases": {},
    }
    failures: list[str] = []
    cases = [*((name, case, False) for name, case in CASES.items()), (FAILING_CAPTURE, CASES[list(CASES)[1]], True)]
    for name, case, failing in cases:
        eager = train(case, data, args.epochs, cuda_graphs=False)
        eager_again = train(case, data, args.epochs, cuda_graphs=False)
        if failing:
            with capture_that_raises():
                graphed = train(case, data, args.epochs, cuda_graphs=True)
        else:
            graphed = train(case, data, args.epochs, cuda_graphs=True)
        gaps = compare(graphed, eager)
        problems = [f"{curve} off by {gap:.2f}x its tolerance" for curve, gap in gaps.items() if gap > 1]
        if not all(math.isfinite(v) for v in graphed["train_loss"] + graphed["test_loss"]):
            problems.append("a loss is not finite")
        if graphed["lr"] != eager["lr"]:
            problems.append(f"learning rates {graphed['lr']} != eager {eager['lr']}")
        if failing:
            raised = [line for line in graphed["log"] if "the capture raised" in line]
            if len(raised) != 1 or graphed["replays"] != 0:
                problems.append(f"expected one 'capture raised' line and no replay: {graphed['log']}")
        elif graphed["replays"] != expected_replays or graphed["log"]:
            problems.append(f"{graphed['replays']} replays (expected {expected_replays}), log {graphed['log']}")
        results["cases"][name] = {
            "eager": eager,
            "graphs": graphed,
            "gap_in_tolerances": gaps,
            "eager_vs_eager_gap_in_tolerances": compare(eager_again, eager),
            "passed": not problems,
            "problems": problems,
        }
        failures += [f"{name}: {problem}" for problem in problems]
        print(f"{name}: {'ok' if not problems else '; '.join(problems)}", file=sys.stderr, flush=True)

    results["passed"] = not failures
    document = json.dumps(results, indent=2)
    print(document)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "graphs_check.json").write_text(document + "\n")
    print("GRAPHS CHECK OK" if not failures else "GRAPHS CHECK FAILED:\n" + "\n".join(failures), file=sys.stderr)
    return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
