"""Datasets as uint8 tensors: reading them from disk (downloading them when missing) and moving them.

The engine trains on one uint8 tensor per split held on the training device, so this module turns
every dataset into the same `Dataset`: images uint8 [N, C, H, W], labels int64 [N], the per-channel
mean/std that `normalize="standard"` uses, and the class names. Pixels are normalised later, in
batches on the device, never here.

Where each dataset comes from:

- `digits`: scikit-learn's bundled 8x8 digits (1797 images, no network ever). Pixel values 0..16 are
  scaled to 0..255. Split: `numpy.random.RandomState(0).permutation(1797)`, the last 20% (359 images)
  is the test set, the first 1438 the training set. RandomState's stream is frozen by NumPy's
  compatibility policy, so the split is the same on every machine and NumPy version.
  Its mean/std are computed from that training split (not published anywhere), before any limit.
- `mnist`, `fashion_mnist`: torchvision's MNIST/FashionMNIST files under `root/MNIST/raw/` and
  `root/FashionMNIST/raw/`: the four idx files, uncompressed or as the `.gz` archives the mirrors
  serve (we unpack those ourselves, see `_unpack_idx_archives`).
- `cifar10`: the python-pickle batches in `root/cifar-10-batches-py/` (`data_batch_1..5`,
  `test_batch`), or the `cifar-10-python.tar.gz` archive in `root`.

Files already on disk are used without touching the network; only missing files are downloaded,
through torchvision (which checks each download's md5). When that download fails, `DatasetUnavailable`
says which files are missing and where to put them.
"""

from __future__ import annotations

import fcntl
import gzip
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch
from torchvision.datasets import CIFAR10, MNIST, FashionMNIST

from trainboard.spec import CLASS_NAMES, DATASET_SHAPES, DatasetSpec

# The usual published statistics of pixels scaled to [0, 1], per channel.
PUBLISHED_MEAN_STD: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 5  # the last 1/5 of the permutation is the test set


class DatasetUnavailable(RuntimeError):
    """The dataset's files are not on disk and could not be downloaded."""


@dataclass(frozen=True)
class Dataset:
    train_x: torch.Tensor  # uint8 [N, C, H, W]
    train_y: torch.Tensor  # int64 [N]
    test_x: torch.Tensor  # uint8 [M, C, H, W]
    test_y: torch.Tensor  # int64 [M]
    mean: tuple[float, ...]  # per channel, of pixels in [0, 1]; 0 when normalize="none"
    std: tuple[float, ...]  # per channel; 1 when normalize="none"
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class _Splits:
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def load_dataset(spec: DatasetSpec, root: Path) -> Dataset:
    """Read (or download into `root`) the dataset, with its limits applied as first-N subsets.

    Workers sharing a data directory take turns: a file lock per dataset keeps a second worker from
    reading (or downloading over) files the first is still writing.
    """
    with _dataset_lock(Path(root), spec.name):
        splits = _LOADERS[spec.name](Path(root))
    channels = DATASET_SHAPES[spec.name][0]
    if spec.normalize == "none":
        mean, std = (0.0,) * channels, (1.0,) * channels
    elif spec.name == "digits":
        # Computed before the limit, so a smaller train_limit does not change the normalisation.
        mean, std = _mean_std(splits.train_x)
    else:
        mean, std = PUBLISHED_MEAN_STD[spec.name]
    return Dataset(
        train_x=splits.train_x[: spec.train_limit],
        train_y=splits.train_y[: spec.train_limit],
        test_x=splits.test_x[: spec.test_limit],
        test_y=splits.test_y[: spec.test_limit],
        mean=mean,
        std=std,
        classes=tuple(CLASS_NAMES[spec.name]),
    )


@contextmanager
def _dataset_lock(root: Path, name: str) -> Iterator[None]:
    if name == "digits":  # bundled with scikit-learn: nothing is written
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def to_device(dataset: Dataset, device: torch.device) -> Dataset:
    """The same dataset with its four tensors on `device` (a no-op for tensors already there)."""
    return replace(
        dataset,
        train_x=dataset.train_x.to(device),
        train_y=dataset.train_y.to(device),
        test_x=dataset.test_x.to(device),
        test_y=dataset.test_y.to(device),
    )


def _mean_std(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    pixels = images.double().div(255).transpose(0, 1).flatten(1)  # [C, N*H*W]
    return tuple(pixels.mean(1).tolist()), tuple(pixels.std(1).tolist())


# --- digits ---------------------------------------------------------------------------------------


def _load_digits(root: Path) -> _Splits:
    # Imported here: scikit-learn takes about a second to import and only this dataset needs it.
    from sklearn.datasets import load_digits

    digits = load_digits()  # images: float64 [1797, 8, 8] holding the integers 0..16
    images = torch.from_numpy(np.rint(digits.images * (255 / 16)).astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    order = torch.from_numpy(np.random.RandomState(DIGITS_SPLIT_SEED).permutation(len(images)))
    n_test = len(images) // DIGITS_TEST_FRACTION
    train, test = order[:-n_test], order[-n_test:]
    return _Splits(images[train], labels[train], images[test], labels[test])


# --- MNIST and Fashion-MNIST ----------------------------------------------------------------------


def _load_mnist(root: Path) -> _Splits:
    return _load_idx_dataset(MNIST, root)


def _load_fashion_mnist(root: Path) -> _Splits:
    return _load_idx_dataset(FashionMNIST, root)


def _load_idx_dataset(kind: type[MNIST], root: Path) -> _Splits:
    """torchvision's MNIST reader, which takes the four uncompressed idx files in raw/ as they are.

    torchvision counts the dataset as present when the uncompressed files exist (it checks md5 only
    on the .gz archives it downloads), so files a user copied in are read without any network.
    """
    raw = root / kind.__name__ / "raw"
    names = [archive.removesuffix(".gz") for archive, _ in kind.resources]
    _unpack_idx_archives(raw, names)
    missing = [raw / name for name in names if not (raw / name).is_file()]
    if missing:
        _download(
            lambda: kind(root, train=True, download=True),
            dataset=kind.__name__,
            missing=missing,
            hint=f"copy the four idx files (or their .gz archives) from {kind.mirrors[0]} into {raw}",
        )
    train = kind(root, train=True, download=False)
    test = kind(root, train=False, download=False)
    return _Splits(train.data.unsqueeze(1), train.targets, test.data.unsqueeze(1), test.targets)


def _unpack_idx_archives(raw: Path, names: list[str]) -> None:
    """Unpack `name.gz` to `name` where only the archive is there.

    torchvision only unpacks archives it has just downloaded, and it would re-download an archive
    whose md5 differs from the official one (a re-compressed copy, a test file): unpacking here
    keeps every archive already on disk usable offline. The write goes to a temporary file that is
    renamed into place, so a concurrent reader never sees half a file.
    """
    for name in names:
        target, archive = raw / name, raw / f"{name}.gz"
        if target.is_file() or not archive.is_file():
            continue
        with gzip.open(archive, "rb") as source, tempfile.NamedTemporaryFile(dir=raw, delete=False) as out:
            shutil.copyfileobj(source, out)
        os.replace(out.name, target)


# --- CIFAR-10 -------------------------------------------------------------------------------------

# Everything a CIFAR-10 batch pickle may name: numpy's array reconstructors (pickle protocols 2-5;
# `numpy.core` in files written by NumPy 1, `numpy._core` by NumPy 2) and the bytes helper of
# protocol 2. Nothing else is importable from the file, unlike a plain pickle.load.
_CIFAR_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


def _load_cifar10(root: Path) -> _Splits:
    """Read the CIFAR-10 pickle batches ourselves; let torchvision download them when missing.

    torchvision's CIFAR10 md5-checks every batch each time it is constructed, even with
    download=False, so any copy whose bytes differ from the official files (re-pickled, or written
    by a test) is refused. We read the documented format directly and check shapes and label range
    instead; the download path is untouched: torchvision still verifies the archive's md5.
    """
    folder = root / CIFAR10.base_folder
    train_names = [name for name, _ in CIFAR10.train_list]
    test_names = [name for name, _ in CIFAR10.test_list]
    missing = [folder / name for name in train_names + test_names if not (folder / name).is_file()]
    if missing:
        _download(
            lambda: CIFAR10(root, train=True, download=True),
            dataset="CIFAR-10",
            missing=missing,
            hint=f"put {CIFAR10.filename} from {CIFAR10.url} in {root}, or its extracted {CIFAR10.base_folder}/ folder",
        )
    train_x, train_y = _read_cifar_batches([folder / name for name in train_names])
    test_x, test_y = _read_cifar_batches([folder / name for name in test_names])
    return _Splits(train_x, train_y, test_x, test_y)


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _CIFAR_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"a CIFAR-10 batch may not reference {module}.{name}")
        return super().find_class(module, name)


def _read_cifar_batches(paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for path in paths:
        with open(path, "rb") as f:
            # latin1: the official batches were pickled by Python 2 (keys and pixel data are str there).
            entry = _CifarUnpickler(f, encoding="latin1").load()
        data = np.asarray(_field(entry, "data", path), dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"{path}: 'data' has shape {data.shape}, expected [N, 3072] (3x32x32 per row)")
        # Each row holds the red plane, then green, then blue, row-major: [N, 3, 32, 32] as it is.
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        labels.append(torch.tensor(list(_field(entry, "labels", path)), dtype=torch.int64))
        if len(labels[-1]) != len(images[-1]):
            raise ValueError(f"{path}: {len(images[-1])} images but {len(labels[-1])} labels")
    x, y = torch.cat(images), torch.cat(labels)
    if len(y) and (int(y.min()) < 0 or int(y.max()) > 9):
        raise ValueError(f"{paths[0].parent}: CIFAR-10 labels must be in 0..9, found {int(y.min())}..{int(y.max())}")
    return x, y


def _field(entry: object, key: str, path: Path) -> object:
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: expected a pickled dict, found {type(entry).__name__}")
    for candidate in (key, key.encode()):
        if candidate in entry:
            return entry[candidate]
    raise ValueError(f"{path}: no '{key}' entry; is this a CIFAR-10 python batch?")


# --- downloading ----------------------------------------------------------------------------------


def _download(fetch: Callable[[], object], *, dataset: str, missing: list[Path], hint: str) -> None:
    """Run torchvision's download; on failure say what is missing and how to supply it offline."""
    try:
        fetch()
    # URLError and socket errors are OSErrors; torchvision's MNIST wraps each mirror's failure in
    # a RuntimeError, and a download whose md5 is wrong is a RuntimeError too.
    except (URLError, OSError, RuntimeError) as err:
        files = ", ".join(str(path) for path in missing)
        raise DatasetUnavailable(
            f"{dataset} is not on disk and could not be downloaded. Missing: {files}. "
            f"Without network access, {hint}. The download failed with: {err}"
        ) from err


_LOADERS: dict[str, Callable[[Path], _Splits]] = {
    "digits": _load_digits,
    "mnist": _load_mnist,
    "fashion_mnist": _load_fashion_mnist,
    "cifar10": _load_cifar10,
}
