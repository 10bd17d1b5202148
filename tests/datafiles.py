"""Dataset files in their real on-disk formats, tiny: MNIST-style idx files and CIFAR-10 python pickles.

Byte-for-byte what torchvision and the dataset sites ship, so a test can put a dataset where the
engine looks for it (`DATA_DIR/datasets`) and train on it without network. Used by the engine's
data tests and by the studies' end-to-end test.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

from trainboard.spec import CLASS_NAMES

IDX_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx format: 0, 0, type code (0x08 = uint8), number of dims, big-endian int32 sizes, data."""
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx_dataset(root: Path, folder: str, *, n_train: int, n_test: int, gz: bool, seed: int = 1) -> dict:
    """Random 28x28 images and labels as `root/folder/raw/<the four idx files>` (gzip'd if `gz`)."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for name, array in arrays.items():
        if gz:
            with gzip.open(raw / f"{name}.gz", "wb") as f:
                f.write(idx_bytes(array))
        else:
            (raw / name).write_bytes(idx_bytes(array))
    return arrays


def cifar_batch(rng: np.random.Generator, n: int, name: str) -> dict:
    return {
        "batch_label": name,
        "labels": rng.integers(0, 10, n).tolist(),
        "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        "filenames": [f"image_{i}.png" for i in range(n)],
    }


def write_cifar10(root: Path, *, protocol: int, sizes: tuple[int, ...] = (3, 2, 4, 1, 2, 5)) -> list[dict]:
    """data_batch_1..5 then test_batch (with `sizes` images each), and batches.meta."""
    rng = np.random.default_rng(7)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches = [cifar_batch(rng, n, name) for name, n in zip(names, sizes, strict=True)]
    for name, batch in zip(names, batches, strict=True):
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    meta = {"label_names": CLASS_NAMES["cifar10"], "num_cases_per_batch": 10000, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return batches


def write_image_folder(
    root: Path,
    classes: dict[str, int],
    *,
    mode: str = "RGB",
    size: tuple[int, int] = (12, 10),
    fmt: str = "PNG",
    seed: int = 2,
) -> Path:
    """Real image files written with Pillow: `root/<class>/<i>.png` (or .jpg), `classes[name]` images each, each
    class a different mean brightness so a model can tell them apart."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    suffix = ".png" if fmt == "PNG" else ".jpg"
    channels = 1 if mode == "L" else 3
    for label, (name, count) in enumerate(sorted(classes.items())):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            base = 40 + 170 * label // max(len(classes) - 1, 1)
            pixels = np.clip(rng.normal(base, 20, (size[1], size[0], channels)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode).save(folder / f"{i}{suffix}", fmt)
    return root
