"""What the study's features cost per epoch, and a pass of each through `fit` on the device.

Each case is one `worker.engine.fit` run on random images in CIFAR-10's shape (nothing is
downloaded; pretrained weights are off: the accuracy is meaningless, the speed is not), timed by
the engine's own clock (EpochRecord.images_per_s: training only, after a CUDA synchronize). The
first epoch of each case is a warm-up (cuDNN autotune, allocator); the table shows the last.

- augmentation: the study's baseline CNN at batch 64, without augmentation, with crop+flip, and with
  crop+flip+ColorJitter+rotation (the study found ColorJitter+rotation multiplied its epoch time by
  ~5 with PIL transforms);
- models: custom CNN, 10-layer MLP with batch norm, ResNet18/VGG16/AlexNet at 32x32;
- fine-tuning: ResNet18 training fc+layer4 only (per-group rates, AdamW, cosine, early stopping);
- resize: ResNet18 at 224x224 (the study's R224 runs).

    python benchmarks/engine_features.py --device cuda --json engine-features.json
    python benchmarks/engine_features.py --train-size 256 --test-size 64   # a quick CPU pass
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout, installed or not

from trainboard.protocol import EpochRecord, RunInfo
from trainboard.spec import CLASS_NAMES, AugmentSpec, RunSpec
from worker.augment import Augment
from worker.data import PUBLISHED_MEAN_STD, Dataset
from worker.engine import fit, resolve_device
from worker.preprocess import Preprocess

CROP_FLIP = {"random_crop": {"size": 32, "padding": 4}, "hflip": {"p": 0.5}}
HEAVY = CROP_FLIP | {
    "color_jitter": {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.1},
    "rotation": {"degrees": 15},
}
BASELINE_CNN = {"arch": "cnn", "channels": [32, 64], "kernel_sizes": [3, 3], "pool": "max", "hidden": [128, 64]}
SGD = {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4}

# label -> the spec's fields besides dataset, device, epochs and seed; "images" scales the train size.
CASES: dict[str, dict[str, Any]] = {
    "cnn, no augmentation": {"model": BASELINE_CNN, "optimizer": SGD},
    "cnn, crop+flip": {"model": BASELINE_CNN, "optimizer": SGD, "augment": CROP_FLIP},
    "cnn, crop+flip+jitter+rotation": {"model": BASELINE_CNN, "optimizer": SGD, "augment": HEAVY},
    "custom cnn, crop+flip": {"model": {"arch": "custom_cnn"}, "optimizer": SGD, "augment": CROP_FLIP},
    "10-layer mlp + bn, crop+flip": {
        "model": {"arch": "mlp", "hidden": [512] * 9, "batch_norm": True},
        "optimizer": SGD,
        "augment": CROP_FLIP,
    },
    "resnet18": {"model": {"arch": "resnet18"}, "optimizer": SGD, "augment": CROP_FLIP},
    "vgg16": {"model": {"arch": "vgg16"}, "optimizer": SGD, "augment": CROP_FLIP},
    "alexnet": {"model": {"arch": "alexnet"}, "optimizer": SGD | {"nesterov": True}, "augment": CROP_FLIP},
    "resnet18 fc+layer4, adamw": {
        "model": {"arch": "resnet18", "head": {"kind": "mlp", "hidden": 256}},
        "finetune": {"train": ["fc", "layer4"], "lr": {"fc": 0.01, "layer4": 0.0001}, "frozen_bn_eval": True},
        "optimizer": {"name": "adamw", "lr": 0.0001},
        "scheduler": {"name": "cosine"},
        "augment": CROP_FLIP,
        "early_stopping": {"patience": 5},
    },
    "resnet18 at 224": {
        "dataset": {"resize": 224},
        "model": {"arch": "resnet18"},
        "optimizer": SGD,
        "augment": {"random_crop": {"size": 224, "padding": 4}, "hflip": {"p": 0.5}},
        "images": 0.125,
    },
}


@dataclass
class Row:
    case: str
    images: int
    epoch_seconds: float  # the last epoch: training and evaluation
    images_per_s: float  # training only
    test_acc: float
    model_input: list[int]
    trainable_parameters: int
    lr: list[float]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-size", type=int, default=50_000)
    parser.add_argument("--test-size", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2, help="the last one is shown; the others warm up")
    parser.add_argument("--case", nargs="+", choices=list(CASES), help="default: all")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name}, torch {torch.__version__}, batch {args.batch_size}, random CIFAR-10-shaped images", flush=True)
    check_device(device)
    print(f"{'case':<32} {'images':>7} {'epoch s':>8} {'images/s':>9} {'input':>10} {'trainable':>11}  lr")
    rows = []
    for label in args.case or list(CASES):
        fields = dict(CASES[label])
        images = max(args.batch_size, int(args.train_size * fields.pop("images", 1.0)))
        row = run_case(label, fields, images, args, device)
        rows.append(row)
        shape = "x".join(map(str, row.model_input))
        print(
            f"{label:<32} {row.images:>7} {row.epoch_seconds:>8.2f} {row.images_per_s:>9,.0f} {shape:>10} "
            f"{row.trainable_parameters:>11,}  {[f'{lr:.2g}' for lr in row.lr]}",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "rows": [asdict(r) for r in rows]}, indent=2) + "\n")


def run_case(label: str, fields: dict[str, Any], images: int, args: argparse.Namespace, device: torch.device) -> Row:
    dataset = {"name": "cifar10"} | fields.pop("dataset", {})
    spec = RunSpec.model_validate(
        {"dataset": dataset, "device": str(device), "epochs": args.epochs, "batch_size": args.batch_size, "seed": 0}
        | fields
    )
    data = random_cifar(images, args.test_size, device)
    records: list[EpochRecord] = []
    infos: list[RunInfo] = []
    result = fit(spec, data_dir=Path("."), on_epoch=records.append, dataset=data, on_prepared=infos.append)
    last = records[-1]
    assert result.epochs_run == len(records) and math.isfinite(last.train_loss), label
    assert sum(map(sum, result.confusion)) == args.test_size, label
    return Row(
        label,
        images,
        last.seconds,
        last.images_per_s,
        last.test_acc,
        infos[0].image_size,
        infos[0].trainable_parameters,
        last.lr,
    )


def check_device(device: torch.device) -> None:
    """The batched transforms on `device` against the CPU: the same resize and normalisation, and
    augmentation that repeats with its seed and changes from one epoch to the next."""
    batch = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    on_device = Preprocess(mean, std, device, size=224, channels_last=device.type == "cuda")(batch.to(device))
    on_cpu = Preprocess(mean, std, torch.device("cpu"), size=224)(batch)
    assert torch.allclose(on_device.cpu(), on_cpu, atol=1e-4), (on_device.cpu() - on_cpu).abs().max()
    spec = AugmentSpec.model_validate(HEAVY)
    first, again = Augment(spec, 0, device), Augment(spec, 0, device)
    x = batch.to(device).float()
    epoch_1, epoch_2 = first(x), first(x)
    assert torch.equal(epoch_1, again(x)) and not torch.equal(epoch_1, epoch_2) and epoch_1.shape == x.shape
    print(f"{device}: resize+normalise match the CPU; augmentation repeats with its seed", flush=True)


def random_cifar(train: int, test: int, device: torch.device) -> Dataset:
    generator = torch.Generator().manual_seed(0)

    def images(n: int) -> torch.Tensor:
        return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator).to(device)

    def labels(n: int) -> torch.Tensor:
        return torch.randint(0, 10, (n,), generator=generator).to(device)

    mean, std = PUBLISHED_MEAN_STD["cifar10"]
    return Dataset(images(train), labels(train), images(test), labels(test), mean, std, tuple(CLASS_NAMES["cifar10"]))


if __name__ == "__main__":
    main()
