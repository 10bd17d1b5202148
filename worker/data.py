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
- `cifar100`: the same format in `root/cifar-100-python/` (`train`, `test`; labels under
  `fine_labels`, the 100 classes), or the `cifar-100-python.tar.gz` archive in `root`.

Normalisation (`DatasetSpec.normalize`): `{"mean": [...], "std": [...]}` is used exactly as given;
`standard` is the usual published mean/std (digits has none published: its own training split's, as
`computed`); `computed` is the per-channel mean and
std (population std, numpy's `ddof=0`) of the FULL training split, before any `train_limit`, so a
smoke test on 512 images normalises exactly like the full run it stands in for. It is computed
exactly (integer sums, see `mean_std`) once and cached as `<name>.mean_std.json` in the data
directory next to the files, recomputed when those files change (size or mtime) or the cache is
unreadable. digits' statistics are not cached: they take microseconds.

Decoded splits are kept in the data directory and read back in milliseconds by the next run
(worker/dataset_cache.py), keyed by the files they were decoded from. Files already on disk are used
without touching the network; only missing files are downloaded,
through torchvision (which checks each download's md5). When that download fails, `DatasetUnavailable`
says which files are missing and where to put them.
"""

from __future__ import annotations

import fcntl
import gzip
import importlib.util
import json
import logging
import math
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
from torchvision.datasets import CIFAR10, CIFAR100, MNIST, FashionMNIST

from trainboard.spec import CLASS_NAMES, DatasetSpec, NormalizeValues, add_registered, dataset_classes, dataset_shape
from worker import dataset_cache, folders

# The usual published statistics of pixels scaled to [0, 1], per channel.
PUBLISHED_MEAN_STD: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

log = logging.getLogger(__name__)

# mean_std reads this many images at a time: 4096 CIFAR images are 100 MB as int64, whatever the dataset size.
STATS_CHUNK = 4096

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
    mean: tuple[float, ...]  # per channel, of pixels in [0, 1]; 0 when normalize="none"; the spec's when explicit
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
    train_files: tuple[Path, ...] = ()  # what the training split was read from: the stats cache's key


def load_dataset(spec: DatasetSpec, root: Path) -> Dataset:
    """Read (or download into `root`) the dataset, with its limits applied as first-N subsets.

    Workers sharing a data directory take turns: a file lock per dataset keeps a second worker from
    reading (or downloading over) files the first is still writing.
    """
    root = Path(root)
    with _dataset_lock(root, spec.name):
        splits = _read_splits(spec.name, root)
        mean, std = _normalization(spec, splits, root)  # under the lock: it may write the stats cache
    return Dataset(
        train_x=splits.train_x[: spec.train_limit],
        train_y=splits.train_y[: spec.train_limit],
        test_x=splits.test_x[: spec.test_limit],
        test_y=splits.test_y[: spec.test_limit],
        mean=mean,
        std=std,
        classes=tuple(CLASS_NAMES[spec.name] if spec.name in CLASS_NAMES else dataset_classes(spec.name)),
    )


def know_dataset(spec: DatasetSpec, root: Path) -> None:
    """Make a registered dataset's shape and classes known to the spec (what building its model reads), from its
    description in `root`; folders.DatasetMissing (which dataset, where it looked) when this worker lacks it."""
    if spec.name not in _LOADERS:
        add_registered(spec.name, folders.info(folders.read_meta(Path(root), spec.name)))


def _read_splits(name: str, root: Path) -> _Splits:
    """The whole splits: from the decoded cache when its source files are unchanged (worker/dataset_cache.py),
    else decoded (downloaded first if they must be) and cached for the next run."""
    if name not in _LOADERS:  # a registered image-folder dataset (`trainboard dataset add`), decoded already
        info, arrays, paths = folders.load(root, name)
        add_registered(name, info)  # what the spec's input_shape and num_classes read for this dataset
        train_x, train_y, test_x, test_y = dataset_cache.arrays_to_splits(arrays)
        return _Splits(train_x, train_y, test_x, test_y, train_files=(paths[0],))
    sources = _SOURCES[name](root)
    if all(path.is_file() for path in sources):
        cached = dataset_cache.load(root, name, sources)
        if cached is not None:
            return _Splits(*cached, train_files=tuple(p for p in sources if p.name.startswith(_TRAIN_PREFIXES)))
    splits = _LOADERS[name](root)
    sources = _SOURCES[name](root)  # what the loader read (it may have just downloaded or unpacked them)
    if all(path.is_file() for path in sources):
        dataset_cache.store(root, name, sources, (splits.train_x, splits.train_y, splits.test_x, splits.test_y))
    return splits


@contextmanager
def _dataset_lock(root: Path, name: str) -> Iterator[None]:
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


MeanStd = tuple[tuple[float, ...], tuple[float, ...]]


def _normalization(spec: DatasetSpec, splits: _Splits, root: Path) -> MeanStd:
    if isinstance(spec.normalize, NormalizeValues):  # exactly what the spec says (one value per channel, checked)
        return tuple(spec.normalize.mean), tuple(spec.normalize.std)
    shape = dataset_shape(spec.name)
    channels = shape[0] if shape is not None else int(splits.train_x.shape[1])
    if spec.normalize == "none":
        return (0.0,) * channels, (1.0,) * channels
    if spec.normalize == "standard" and spec.name in PUBLISHED_MEAN_STD:
        return PUBLISHED_MEAN_STD[spec.name]
    if spec.name == "digits":  # nothing published, nothing to cache: 1438 8x8 images take microseconds
        return mean_std(splits.train_x)
    return _cached_mean_std(spec.name, splits, root)


def mean_std(images: torch.Tensor) -> MeanStd:
    """Per-channel mean and std (population, like numpy's default ddof=0) of uint8 images scaled to [0, 1].

    Exact: a histogram of the 256 pixel values per channel gives the sums of x and x**2 as integers
    (Python ints, no overflow), and var = (n * sum(x**2) - sum(x)**2) / (n * 255)**2 is one correctly
    rounded division, with no float sums over CIFAR's 51M pixels per channel. A float64 copy of the
    whole set would take 1.2 GB; this reads STATS_CHUNK images at a time (1 s for CIFAR-10 on 2 cores).
    """
    channels = images.shape[1]
    offsets = (torch.arange(channels) * 256).view(1, -1, 1, 1)  # channel c counts into bins c*256 .. c*256+255
    counts = torch.zeros(channels * 256, dtype=torch.int64)
    for start in range(0, len(images), STATS_CHUNK):
        chunk = images[start : start + STATS_CHUNK].cpu().long() + offsets
        counts += torch.bincount(chunk.flatten(), minlength=channels * 256)
    values = range(256)
    means, stds = [], []
    for histogram in counts.view(channels, 256).tolist():
        n = sum(histogram)
        total = sum(v * k for v, k in zip(values, histogram, strict=True))
        squares = sum(v * v * k for v, k in zip(values, histogram, strict=True))
        means.append(total / (255 * n))
        stds.append(math.sqrt((n * squares - total * total) / (255 * n) ** 2))
    return tuple(means), tuple(stds)


def _cached_mean_std(name: str, splits: _Splits, root: Path) -> MeanStd:
    """mean_std of the full training split, from `<name>.mean_std.json` in root when it still matches the files."""
    path = root / f"{name}.mean_std.json"
    key = {
        "images": len(splits.train_x),
        "files": {str(f.relative_to(root)): [f.stat().st_size, f.stat().st_mtime_ns] for f in splits.train_files},
    }
    try:
        cached = json.loads(path.read_text())
        if {k: cached[k] for k in key} == key:
            return tuple(cached["mean"]), tuple(cached["std"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent, unreadable, or from other files: compute it again
    mean, std = mean_std(splits.train_x)
    entry = {
        "dataset": name,
        "mean": mean,
        "std": std,
        **key,
        "about": "per-channel mean and population std of the full training split, pixels scaled to [0, 1]",
    }
    try:  # write-then-rename: a reader never sees half a file
        with tempfile.NamedTemporaryFile("w", dir=root, suffix=".tmp", delete=False) as out:
            json.dump(entry, out, indent=1)
        os.replace(out.name, path)
    except OSError as err:  # a read-only data directory: the cache only saves time
        log.warning("could not cache %s's mean/std in %s: %s", name, path, err)
    return mean, std


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
    train_files = tuple(raw / name for name in names if name.startswith("train"))
    return _Splits(train.data.unsqueeze(1), train.targets, test.data.unsqueeze(1), test.targets, train_files)


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


# --- CIFAR-10 and CIFAR-100 ---------------------------------------------------------------------

# Everything a CIFAR batch pickle may name: numpy's array reconstructors (pickle protocols 2-5;
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
    return _load_cifar(CIFAR10, root, dataset="CIFAR-10", label_key="labels", classes=10)


def _load_cifar100(root: Path) -> _Splits:
    # Each image also has a `coarse_labels` entry (the 20 superclasses); the run trains on the 100 fine ones.
    return _load_cifar(CIFAR100, root, dataset="CIFAR-100", label_key="fine_labels", classes=100)


def _load_cifar(kind: type[CIFAR10], root: Path, *, dataset: str, label_key: str, classes: int) -> _Splits:
    """Read the CIFAR pickle batches ourselves; let torchvision download them when missing.

    torchvision's CIFAR10/CIFAR100 md5-check every batch each time they are constructed, even with
    download=False, so any copy whose bytes differ from the official files (re-pickled, or written
    by a test) is refused. We read the documented format directly and check shapes and label range
    instead; the download path is untouched: torchvision still verifies the archive's md5. The
    `meta` / `batches.meta` file (class names) is not read: spec.CLASS_NAMES has them.
    """
    folder = root / kind.base_folder
    train_files = [folder / name for name, _ in kind.train_list]
    test_files = [folder / name for name, _ in kind.test_list]
    missing = [path for path in train_files + test_files if not path.is_file()]
    if missing:
        _download(
            lambda: kind(root, train=True, download=True),
            dataset=dataset,
            missing=missing,
            hint=f"put {kind.filename} from {kind.url} in {root}, or its extracted {kind.base_folder}/ folder",
        )
    train_x, train_y = _read_cifar_batches(train_files, label_key, classes)
    test_x, test_y = _read_cifar_batches(test_files, label_key, classes)
    return _Splits(train_x, train_y, test_x, test_y, tuple(train_files))


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _CIFAR_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"a CIFAR batch may not reference {module}.{name}")
        return super().find_class(module, name)


def _read_cifar_batches(paths: list[Path], label_key: str, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
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
        labels.append(torch.tensor(np.asarray(_field(entry, label_key, path), dtype=np.int64)))
        if len(labels[-1]) != len(images[-1]):
            raise ValueError(f"{path}: {len(images[-1])} images but {len(labels[-1])} labels")
    x, y = torch.cat(images), torch.cat(labels)
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
        raise ValueError(f"{paths[0].parent}: labels must be in 0..{classes - 1}, found {int(y.min())}..{int(y.max())}")
    return x, y


def _field(entry: object, key: str, path: Path) -> object:
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: expected a pickled dict, found {type(entry).__name__}")
    for candidate in (key, key.encode()):
        if candidate in entry:
            return entry[candidate]
    raise ValueError(f"{path}: no '{key}' entry; is this a CIFAR python batch?")


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


# --- the files each dataset is decoded from: the decoded cache's key -------------------------------

_TRAIN_PREFIXES = ("train", "data_batch")


def _digits_sources(_root: Path) -> list[Path]:
    """scikit-learn's bundled digits file, found without importing scikit-learn (a second of start-up)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return [Path("sklearn is not installed")]
    return [Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"]


def _idx_sources(kind: type[MNIST]) -> Callable[[Path], list[Path]]:
    def sources(root: Path) -> list[Path]:
        return [root / kind.__name__ / "raw" / archive.removesuffix(".gz") for archive, _ in kind.resources]

    return sources


def _cifar_sources(kind: type[CIFAR10]) -> Callable[[Path], list[Path]]:
    def sources(root: Path) -> list[Path]:
        return [root / kind.base_folder / name for name, _ in kind.train_list + kind.test_list]

    return sources


_SOURCES: dict[str, Callable[[Path], list[Path]]] = {
    "digits": _digits_sources,
    "mnist": _idx_sources(MNIST),
    "fashion_mnist": _idx_sources(FashionMNIST),
    "cifar10": _cifar_sources(CIFAR10),
    "cifar100": _cifar_sources(CIFAR100),
}

_LOADERS: dict[str, Callable[[Path], _Splits]] = {
    "digits": _load_digits,
    "mnist": _load_mnist,
    "fashion_mnist": _load_fashion_mnist,
    "cifar10": _load_cifar10,
    "cifar100": _load_cifar100,
}
