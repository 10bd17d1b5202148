"""What a checkpoint costs: its size, the time saving it adds to an epoch (the engine waits for the write;
hashing and the upload run on a thread beside training), and the time loading it back takes when a lost
run resumes. For an MLP on the 8x8 digits and a ResNet18 on CIFAR-sized images, on the CPU, with Adam
(two moments per parameter: the largest optimizer state trainboard has).

The epoch it is compared with is measured in the same process: the MLP's real digits epoch, and for the
ResNet18 an epoch of CIFAR-10 (50,000 images) extrapolated from timed batches of 64 random images.

    .venv/bin/python benchmarks/checkpoints.py            # prints a table, writes --out as JSON
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from trainboard.spec import DatasetSpec, RunSpec
from worker.checkpoints import TrainingState, load_checkpoint, save_checkpoint
from worker.data import load_dataset
from worker.early_stopping import EarlyStopping
from worker.engine import fit
from worker.finetune import param_groups
from worker.models import build_model
from worker.optimizers import build_optimizer

CASES: dict[str, dict[str, Any]] = {
    "mlp-digits": {"dataset": {"name": "digits"}, "model": {"arch": "mlp", "hidden": [256, 128]}},
    "resnet18-cifar10": {"dataset": {"name": "cifar10"}, "model": {"arch": "resnet18"}},
}
REPEATS = 5


def spec_of(case: str) -> RunSpec:
    return RunSpec.model_validate(
        CASES[case] | {"optimizer": {"name": "adam", "lr": 1e-3}, "device": "cpu", "batch_size": 64,
                       "early_stopping": {"patience": 3}}
    )  # fmt: skip


def epoch_seconds(case: str, spec: RunSpec) -> float:
    if case == "mlp-digits":
        digits = load_dataset(DatasetSpec(name="digits"), Path("/nonexistent"))
        one = spec.model_copy(update={"epochs": 1})
        records: list[Any] = []
        fit(one, data_dir=Path("/nonexistent"), on_epoch=records.append, dataset=digits)
        return float(records[0].seconds)
    model = build_model(spec)
    optimizer = build_optimizer(spec.optimizer, param_groups(model, spec))
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    times = []
    for _ in range(6):
        started = time.perf_counter()
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:]) * 50_000 / 64


def measure(case: str, folder: Path) -> dict[str, Any]:
    spec = spec_of(case)
    torch.manual_seed(0)
    model = build_model(spec)
    optimizer = build_optimizer(spec.optimizer, param_groups(model, spec))
    shape = (8, 64) if case == "mlp-digits" else (8, 3, 32, 32)
    F.cross_entropy(model(torch.randn(*shape)), torch.randint(0, 10, (8,))).backward()
    optimizer.step()  # Adam's moments exist now, as after any epoch
    assert spec.early_stopping is not None
    stopper = EarlyStopping(spec.early_stopping)
    stopper.update(1, 0.5, model)  # the best weights are kept too (restore_best), as in a run that improved
    state = TrainingState(1, model, optimizer, torch.Generator(), torch.Generator(), stopper)
    spec_dict = spec.model_dump(mode="json")
    path = folder / f"{case}.safetensors"
    saves, loads = [], []
    for _ in range(REPEATS):
        started = time.perf_counter()
        save_checkpoint(path, state, spec_dict)
        saves.append(time.perf_counter() - started)
        fresh_model = build_model(spec)
        fresh = TrainingState(
            0, fresh_model, build_optimizer(spec.optimizer, param_groups(fresh_model, spec)),
            torch.Generator(), torch.Generator(), EarlyStopping(spec.early_stopping),
        )  # fmt: skip
        started = time.perf_counter()
        load_checkpoint(path, fresh, spec_dict, None)
        loads.append(time.perf_counter() - started)
    epoch = epoch_seconds(case, spec)
    save = statistics.median(saves)
    return {
        "case": case,
        "parameters": sum(p.numel() for p in model.parameters()),
        "checkpoint_bytes": path.stat().st_size,
        "save_seconds": save,
        "load_seconds": statistics.median(loads),
        "epoch_seconds": epoch,
        "save_share_of_epoch": save / epoch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cpu_checkpoints.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(case, Path(tmp)) for case in CASES]
    print(
        f"{'case':<18} {'params':>11} {'checkpoint':>11} {'save s':>8} {'load s':>8} {'epoch s':>9} {'save/epoch':>10}"
    )
    for r in rows:
        print(
            f"{r['case']:<18} {r['parameters']:>11,} {r['checkpoint_bytes'] / 1e6:>9.1f}MB {r['save_seconds']:>8.3f} "
            f"{r['load_seconds']:>8.3f} {r['epoch_seconds']:>9.2f} {r['save_share_of_epoch']:>9.2%}"
        )
    meta = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
