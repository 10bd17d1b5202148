"""Where the engine's epoch time goes against a bare loop, on one persistent model (no fit set-up).

Variants, interleaved epoch by epoch so background load hits them alike:
  bare                 the benchmark's bare loop
  loop                 worker.engine.train_one_epoch without callbacks
  loop+callbacks       with the progress/should_stop callbacks the worker passes
  fit (fresh model)    a whole fit() of one epoch: model, optimizer, generator built anew, as the benchmark times it
  bare fused / loop fused   the same with a fused optimizer step (CUDA only)

    python benchmarks/engine_overhead.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from trainboard.protocol import EpochRecord, Progress
from trainboard.spec import RunSpec
from worker import engine
from worker.data import Dataset, to_device
from worker.models import build_model
from worker.preprocess import Preprocess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-size", type=int, default=60_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    spec = RunSpec.model_validate(
        {
            "dataset": {"name": "mnist"},
            "model": {"arch": "mlp"},
            "device": args.device,
            "batch_size": args.batch_size,
            "epochs": 1,
        }
    )
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.train_size, 1, 28, 28), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (args.train_size,), generator=gen)
    data = to_device(
        Dataset(images, labels, images[:1000], labels[:1000], (0.13,), (0.31,), tuple("0123456789")), device
    )
    engine._configure(device)
    normalize = Preprocess(data.mean, data.std, device)

    def persistent(fused: bool) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.Generator]:
        torch.manual_seed(0)
        model = build_model(spec).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, **({"fused": True} if fused else {}))
        return model, optimizer, torch.Generator(device=device).manual_seed(0)

    def bare(fused: bool) -> Callable[[], None]:
        model, optimizer, generator = persistent(fused)

        def epoch() -> None:
            model.train()
            order = torch.randperm(len(data.train_x), generator=generator, device=device)
            for start in range(0, len(order), args.batch_size):
                index = order[start : start + args.batch_size]
                with engine._autocast(device):
                    loss = F.cross_entropy(model(normalize(data.train_x[index])), data.train_y[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        return epoch

    def loop(fused: bool, callbacks: bool) -> Callable[[], None]:
        model, optimizer, generator = persistent(fused)
        sent: list[Progress] = []
        extra = {"progress": sent.append, "should_stop": lambda: False} if callbacks else {}

        def epoch() -> None:
            engine.train_one_epoch(
                model,
                optimizer,
                data.train_x,
                data.train_y,
                normalize,
                batch_size=args.batch_size,
                generator=generator,
                **extra,
            )
            sent.clear()

        return epoch

    def fit() -> None:
        records: list[EpochRecord] = []
        engine.fit(spec, data_dir=Path("."), on_epoch=records.append, dataset=data)

    variants: dict[str, Callable[[], None]] = {
        "bare": bare(False),
        "loop": loop(False, False),
        "loop+callbacks": loop(False, True),
        "fit (fresh model)": fit,
    }
    if device.type == "cuda":
        variants |= {"bare fused": bare(True), "loop fused": loop(True, False)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(args.epochs + 1):
        for name, run in variants.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if round_:
                times[name].append(time.perf_counter() - started)
    base = statistics.median(times["bare"])
    batches = -(-args.train_size // args.batch_size)
    print(f"{device}, {args.train_size} images, batch {args.batch_size}, median of {args.epochs} epochs")
    print(f"{'variant':<20} {'epoch s':>8} {'us/batch':>9} {'bare/this':>10}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<20} {median:8.3f} {median / batches * 1e6:9.1f} {base / median:10.3f}")


if __name__ == "__main__":
    main()
