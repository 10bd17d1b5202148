"""Decoded datasets kept in the data directory as uint8 arrays that load in milliseconds.

Decoding a dataset is slow next to a short run: scikit-learn's import alone is ~1 s for digits, and the
CIFAR pickles or MNIST idx files take a second or more to parse. The first run decodes the whole splits
as usual; they are then saved as four `.npy` files under `DATA_DIR/datasets/.cache/<name>-<key>/`, and
every later run reads those. The key is a hash of the files the dataset was decoded from (their paths,
sizes and modification times): replacing a file changes the key, so the stale entry is never read again
and is removed when the new one is written. Limits (`train_limit`, `test_limit`) slice the cached whole
splits, so one entry serves every run of that dataset.

Writes go to a temporary folder renamed into place (a crash never leaves half an entry), under the
dataset's file lock that worker/data.py holds. A cache that cannot be written (a read-only data
directory) only costs time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

VERSION = 1  # bump when the cached layout (or how a dataset is decoded) changes
ARRAYS = ("train_x", "train_y", "test_x", "test_y")

Splits = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def cache_dir(root: Path) -> Path:
    return root / ".cache"


def key(name: str, sources: Sequence[Path]) -> str:
    """What identifies a decoded dataset: its name and its source files as they are on disk now."""
    digest = hashlib.sha256(f"trainboard-dataset-cache:{VERSION}:{name}".encode())
    for path in sorted(sources):
        stat = path.stat()
        digest.update(f"\0{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def entry(root: Path, name: str, sources: Sequence[Path]) -> Path:
    return cache_dir(root) / f"{name}-{key(name, sources)}"


def load(root: Path, name: str, sources: Sequence[Path]) -> Splits | None:
    """The cached splits decoded from `sources`, or None (no entry for these files, or an unreadable one)."""
    folder = entry(root, name, sources)
    try:
        arrays = [np.load(folder / f"{array}.npy", allow_pickle=False) for array in ARRAYS]
    except (OSError, ValueError):
        return None
    return arrays_to_splits(arrays)


def arrays_to_splits(arrays: Sequence[np.ndarray]) -> Splits:
    train_x, train_y, test_x, test_y = (torch.from_numpy(a) for a in arrays)
    return train_x, train_y, test_x, test_y


def store(root: Path, name: str, sources: Sequence[Path], splits: Splits) -> None:
    """Save the decoded splits for `sources`, replacing any older entry of `name`."""
    target = entry(root, name, sources)
    try:
        cache_dir(root).mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache_dir(root)))
        for array, tensor in zip(ARRAYS, splits, strict=True):
            np.save(staging / f"{array}.npy", tensor.contiguous().numpy(), allow_pickle=False)
        (staging / "about.json").write_text(
            json.dumps({"dataset": name, "version": VERSION, "sources": [str(p) for p in sources]}, indent=1)
        )
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except OSError as err:
        log.warning("could not cache the decoded %s in %s: %s", name, cache_dir(root), err)
        return
    for stale in cache_dir(root).glob(f"{name}-*"):
        if stale != target and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
