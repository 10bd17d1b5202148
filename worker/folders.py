"""Image-folder datasets: a folder of class folders decoded once into uint8 arrays the worker loads like any other.

`trainboard dataset add NAME PATH` calls `decode` and `store` (here, on the worker side: it needs Pillow and
numpy, not the database) and then registers the result in the database. Two layouts are read:

- `PATH/train/<class>/*.png|jpg|jpeg` and `PATH/test/<class>/...` (the same class folders in both), or
- `PATH/<class>/...`: the test set is a seeded `test_fraction` of each class (numpy's RandomState(seed),
  whose stream is frozen, so the split is the same everywhere).

Classes are the sorted folder names (label i is the i-th). Every image is converted to grayscale when all of
them are grayscale (Pillow's `L` or `1` modes: 1 channel), else to RGB (3), and resized to size x size (bilinear).
Unreadable files are skipped and listed; more than 1 % of them refuses the folder.

What is stored, in `DATA_DIR/datasets/<name>/`: the four arrays of worker/dataset_cache.py's format
(`train_x.npy` uint8 [N, C, H, W], `train_y.npy` int64 [N], `test_x.npy`, `test_y.npy`) and `dataset.json`
(classes, size, channels, counts, the sha256 fingerprint of the arrays). Written to a staging folder renamed
into place: a worker never reads half a dataset.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainboard.spec import BUILTIN_DATASETS, RegisteredDataset

EXTENSIONS = (".png", ".jpg", ".jpeg")
GRAYSCALE_MODES = ("1", "L")
MAX_UNREADABLE = 0.01  # more than 1 % unreadable files: refuse the folder, something is wrong with it
ARRAYS = ("train_x", "train_y", "test_x", "test_y")  # as worker/dataset_cache.py names them
META = "dataset.json"


class FolderError(ValueError):
    """The folder cannot be made a dataset; the message says why in one line."""


class DatasetMissing(RuntimeError):
    """A registered dataset whose decoded files this worker does not have."""


@dataclass
class Decoded:
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: list[str]
    size: int
    channels: int
    unreadable: list[Path] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.train_x, self.train_y, self.test_x, self.test_y, self.classes)


def fingerprint(*arrays_and_classes: object) -> str:
    """sha256 of the four arrays (dtype, shape, bytes) and the class names: what tells one decoding from another."""
    *arrays, classes = arrays_and_classes
    digest = hashlib.sha256(b"trainboard-folder-dataset:1")
    for array in arrays:
        assert isinstance(array, np.ndarray)
        digest.update(f"\0{array.dtype.str}{array.shape}\0".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps(classes).encode())
    return digest.hexdigest()


def estimate_bytes(images: int, size: int, channels: int) -> int:
    """The decoded images' size in memory (uint8): what the memory budget is checked against."""
    return images * size * size * channels


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)


def _class_folders(folder: Path) -> dict[str, list[Path]]:
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise FolderError(f"{folder}: needs at least 2 class folders (one per class), found {len(classes)}")
    found = {c.name: _images_in(c) for c in classes}
    empty = [name for name, files in found.items() if not files]
    if empty:
        raise FolderError(f"{folder}: class folder(s) with no .png/.jpg/.jpeg images: {', '.join(empty)}")
    return found


def _split_layout(
    path: Path, test_fraction: float, seed: int
) -> tuple[list[str], list[tuple[Path, int]], list[tuple[Path, int]]]:
    """(classes, train files with labels, test files with labels) of either layout."""
    if not path.is_dir():
        raise FolderError(f"{path}: no such folder")
    train_dir, test_dir = path / "train", path / "test"
    if train_dir.is_dir() and test_dir.is_dir():
        train, test = _class_folders(train_dir), _class_folders(test_dir)
        if sorted(train) != sorted(test):
            only = sorted(set(train) ^ set(test))
            raise FolderError(
                f"{path}: train/ and test/ must hold the same class folders; only in one: {', '.join(only)}"
            )
        classes = sorted(train)
        return (
            classes,
            [(f, i) for i, c in enumerate(classes) for f in train[c]],
            [(f, i) for i, c in enumerate(classes) for f in test[c]],
        )
    if not 0 < test_fraction < 1:
        raise FolderError(f"--test-fraction must be between 0 and 1, not {test_fraction}")
    found = _class_folders(path)
    classes = sorted(found)
    random = np.random.RandomState(seed)
    train_files: list[tuple[Path, int]] = []
    test_files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        files = found[name]
        order = random.permutation(len(files))
        n_test = round(len(files) * test_fraction)
        test_files += [(files[i], label) for i in sorted(order[:n_test])]
        train_files += [(files[i], label) for i in sorted(order[n_test:])]
    if not test_files:
        raise FolderError(
            f"{path}: too few images for a test set of {test_fraction:g}; add images or use train/ and test/"
        )
    return classes, train_files, test_files


def decode(
    path: Path, *, size: int = 64, test_fraction: float = 0.2, seed: int = 0, memory_budget_gb: float | None = None
) -> Decoded:
    """Read the folder's images as uint8 arrays (see the module's docstring); FolderError says what is wrong."""
    from PIL import Image, UnidentifiedImageError

    if not 8 <= size <= 512:
        raise FolderError(f"--size must be between 8 and 512 (the spec's resize bounds), not {size}")
    path = Path(path)
    classes, train_files, test_files = _split_layout(path, test_fraction, seed)
    files = train_files + test_files
    unreadable: list[Path] = []
    modes: dict[Path, str] = {}
    for file, _ in files:  # headers only: decides the channels and finds most unreadable files cheaply
        try:
            with Image.open(file) as image:
                modes[file] = image.mode
        except (OSError, UnidentifiedImageError, ValueError):
            unreadable.append(file)
    channels = 1 if modes and all(m in GRAYSCALE_MODES for m in modes.values()) else 3
    readable = len(files) - len(unreadable)
    if memory_budget_gb is not None:
        needed = estimate_bytes(readable, size, channels)
        if needed > memory_budget_gb * 2**30:
            raise FolderError(
                f"{path}: {readable:,} images of {channels}x{size}x{size} take {needed / 2**30:.2f} GB, over the "
                f"memory budget of {memory_budget_gb:g} GB (TRAINBOARD_MEMORY_BUDGET_GB): "
                "use a smaller --size or fewer images"
            )
    mode = "L" if channels == 1 else "RGB"

    def read(split: list[tuple[Path, int]]) -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        for file, label in split:
            if file not in modes:
                continue
            try:
                with Image.open(file) as image:
                    pixels = np.asarray(image.convert(mode).resize((size, size), Image.Resampling.BILINEAR))
            except (OSError, UnidentifiedImageError, ValueError):
                unreadable.append(file)
                continue
            images.append(pixels.reshape(size, size, channels).transpose(2, 0, 1))
            labels.append(label)
        x = np.stack(images) if images else np.zeros((0, channels, size, size), np.uint8)
        return np.ascontiguousarray(x, dtype=np.uint8), np.asarray(labels, dtype=np.int64)

    train_x, train_y = read(train_files)
    test_x, test_y = read(test_files)
    if len(unreadable) > MAX_UNREADABLE * len(files):
        shown = ", ".join(str(p) for p in unreadable[:5]) + (" ..." if len(unreadable) > 5 else "")
        raise FolderError(f"{path}: {len(unreadable)} of {len(files)} images are unreadable (more than 1 %): {shown}")
    if not len(train_x) or not len(test_x):
        raise FolderError(f"{path}: no readable {'training' if not len(train_x) else 'test'} images")
    return Decoded(train_x, train_y, test_x, test_y, classes, size, channels, unreadable)


def folder(root: Path, name: str) -> Path:
    """Where a registered dataset's decoded arrays are: `DATA_DIR/datasets/<name>/` (root is DATA_DIR/datasets)."""
    return Path(root) / name


def store(root: Path, name: str, decoded: Decoded) -> Path:
    """Write the decoded dataset to `folder(root, name)`, replacing what was there (staging folder, then rename)."""
    if name in BUILTIN_DATASETS:
        raise FolderError(f"{name} is a built-in dataset: choose another name")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        for array, values in zip(
            ARRAYS, (decoded.train_x, decoded.train_y, decoded.test_x, decoded.test_y), strict=True
        ):
            np.save(staging / f"{array}.npy", values, allow_pickle=False)
        meta = {
            "name": name,
            "classes": decoded.classes,
            "size": decoded.size,
            "channels": decoded.channels,
            "train_count": len(decoded.train_x),
            "test_count": len(decoded.test_x),
            "fingerprint": decoded.fingerprint,
        }
        (staging / META).write_text(json.dumps(meta, indent=1))
        target = folder(root, name)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}-old-", dir=root))
            target.rename(old / name)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def read_meta(root: Path, name: str) -> dict[str, object]:
    path = folder(root, name) / META
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DatasetMissing(
            f"dataset {name!r} is not built in and this worker has no decoded copy of it: looked for {path} "
            f"({err.__class__.__name__}). Register it on this machine with `trainboard dataset add {name} PATH`, "
            f"or copy {folder(root, name)} from the machine where it was added"
        ) from err
    if not isinstance(meta, dict):
        raise DatasetMissing(f"dataset {name!r}: {path} is not a dataset description")
    return meta


def info(meta: dict[str, object]) -> RegisteredDataset:
    classes = meta["classes"]
    assert isinstance(classes, list)
    return RegisteredDataset(
        channels=int(str(meta["channels"])),
        size=int(str(meta["size"])),
        classes=tuple(str(c) for c in classes),
        images=int(str(meta["train_count"])) + int(str(meta["test_count"])),
    )


def load(root: Path, name: str) -> tuple[RegisteredDataset, list[np.ndarray], list[Path]]:
    """The registered dataset's description, its four arrays and the files they were read from."""
    meta = read_meta(root, name)
    paths = [folder(root, name) / f"{array}.npy" for array in ARRAYS]
    try:
        arrays = [np.load(p, allow_pickle=False) for p in paths]
    except (OSError, ValueError) as err:
        raise DatasetMissing(f"dataset {name!r}: could not read its arrays in {folder(root, name)}: {err}") from err
    return info(meta), arrays, paths
