"""worker/data.py: datasets read from files in their real on-disk formats, limits, and offline errors.

The files are tiny but byte-for-byte in the formats torchvision and the dataset sites use (idx,
gzip'd idx, CIFAR-10 python pickles). Every test runs without network (`no_network`), so a
download attempt fails as it would on an air-gapped machine.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from trainboard.spec import CLASS_NAMES, DatasetSpec
from worker.data import PUBLISHED_MEAN_STD, Dataset, DatasetUnavailable, load_dataset, to_device

pytestmark = pytest.mark.usefixtures("no_network")

IDX_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx format: 0, 0, type code (0x08 = uint8), number of dims, big-endian int32 sizes, data."""
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx_dataset(root: Path, folder: str, *, n_train: int, n_test: int, gz: bool, seed: int = 1) -> dict:
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


@pytest.mark.parametrize("gz", [True, False], ids=["gz-archives", "unpacked"])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_files_on_disk_are_read_without_network(tmp_path: Path, name: str, gz: bool, no_network: list[str]) -> None:
    arrays = write_idx_dataset(tmp_path, IDX_FOLDERS[name], n_train=9, n_test=4, gz=gz)

    data = load_dataset(DatasetSpec(name=name), tmp_path)

    assert data.train_x.dtype == torch.uint8 and data.train_x.shape == (9, 1, 28, 28)
    assert data.test_x.dtype == torch.uint8 and data.test_x.shape == (4, 1, 28, 28)
    assert data.train_y.dtype == torch.int64 and data.test_y.dtype == torch.int64
    assert np.array_equal(data.train_x[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(data.test_x[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    assert data.train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert data.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert (data.mean, data.std) == PUBLISHED_MEAN_STD[name]
    assert data.classes == tuple(CLASS_NAMES[name])
    assert no_network == []


def test_gz_archives_are_unpacked_next_to_themselves(tmp_path: Path) -> None:
    arrays = write_idx_dataset(tmp_path, "MNIST", n_train=3, n_test=2, gz=True)

    load_dataset(DatasetSpec(name="mnist"), tmp_path)

    raw = tmp_path / "MNIST" / "raw"
    assert sorted(os.listdir(raw)) == sorted(IDX_FILES + [f"{name}.gz" for name in IDX_FILES])
    assert (raw / "t10k-labels-idx1-ubyte").read_bytes() == idx_bytes(arrays["t10k-labels-idx1-ubyte"])


def test_limits_take_the_first_images(tmp_path: Path) -> None:
    arrays = write_idx_dataset(tmp_path, "MNIST", n_train=10, n_test=6, gz=True)

    data = load_dataset(DatasetSpec(name="mnist", train_limit=4, test_limit=100), tmp_path)

    assert np.array_equal(data.train_x[:, 0].numpy(), arrays["train-images-idx3-ubyte"][:4])
    assert data.train_y.tolist() == arrays["train-labels-idx1-ubyte"][:4].tolist()
    assert len(data.test_x) == len(data.test_y) == 6  # a limit above the size keeps everything


def test_normalize_none_means_pixels_in_0_1(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path, "FashionMNIST", n_train=2, n_test=2, gz=False)

    data = load_dataset(DatasetSpec(name="fashion_mnist", normalize="none"), tmp_path)

    assert (data.mean, data.std) == ((0.0,), (1.0,))


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_missing_idx_files_without_network_say_what_and_where(tmp_path: Path, name: str, no_network: list[str]) -> None:
    with pytest.raises(DatasetUnavailable) as caught:
        load_dataset(DatasetSpec(name=name), tmp_path)

    message = str(caught.value)
    raw = tmp_path / IDX_FOLDERS[name] / "raw"
    assert all(str(raw / file) in message for file in IDX_FILES)
    assert f"into {raw}" in message
    assert no_network, "the loader should have tried to download"


def test_only_the_missing_idx_files_are_listed(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path, "MNIST", n_train=2, n_test=2, gz=True)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()

    with pytest.raises(DatasetUnavailable) as caught:
        load_dataset(DatasetSpec(name="mnist"), tmp_path)

    message = str(caught.value)
    assert "Missing: " + str(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte") + "." in message


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_batches_on_disk_are_read_without_network(tmp_path: Path, protocol: int, no_network: list[str]) -> None:
    batches = write_cifar10(tmp_path, protocol=protocol)

    data = load_dataset(DatasetSpec(name="cifar10"), tmp_path)

    assert data.train_x.dtype == torch.uint8 and data.train_x.shape == (3 + 2 + 4 + 1 + 2, 3, 32, 32)
    assert data.test_x.shape == (5, 3, 32, 32) and data.test_y.dtype == torch.int64
    # Batches in order 1..5; each 3072-byte row is the red, green, then blue 32x32 plane, row-major.
    rows = np.concatenate([batch["data"] for batch in batches[:5]])
    assert data.train_x[4, 1, 2, 3].item() == rows[4, 1 * 1024 + 2 * 32 + 3]
    assert np.array_equal(data.train_x.flatten(1).numpy(), rows)
    assert np.array_equal(data.test_x.flatten(1).numpy(), batches[5]["data"])
    assert data.train_y.tolist() == [label for batch in batches[:5] for label in batch["labels"]]
    assert data.test_y.tolist() == batches[5]["labels"]
    assert (data.mean, data.std) == PUBLISHED_MEAN_STD["cifar10"]
    assert no_network == []


def test_cifar10_limits(tmp_path: Path) -> None:
    batches = write_cifar10(tmp_path, protocol=4)

    data = load_dataset(DatasetSpec(name="cifar10", train_limit=5, test_limit=2), tmp_path)

    assert data.train_y.tolist() == (batches[0]["labels"] + batches[1]["labels"])[:5]
    assert np.array_equal(data.test_x.flatten(1).numpy(), batches[5]["data"][:2])


def test_missing_cifar10_without_network_says_what_and_where(tmp_path: Path, no_network: list[str]) -> None:
    with pytest.raises(DatasetUnavailable) as caught:
        load_dataset(DatasetSpec(name="cifar10"), tmp_path)

    message = str(caught.value)
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in message
    assert str(tmp_path / "cifar-10-batches-py" / "test_batch") in message
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert f"put cifar-10-python.tar.gz from {url} in {tmp_path}, or its extracted cifar-10-batches-py/" in message
    assert no_network, "the loader should have tried to download"


class _RunsCode:
    calls: ClassVar[list[str]] = []

    def __reduce__(self) -> tuple:
        return (_RunsCode.calls.append, ("ran",))


def test_a_cifar10_batch_cannot_run_code(tmp_path: Path) -> None:
    write_cifar10(tmp_path, protocol=4)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps({"data": _RunsCode()}))

    with pytest.raises(pickle.UnpicklingError, match="may not reference"):
        load_dataset(DatasetSpec(name="cifar10"), tmp_path)
    assert _RunsCode.calls == []


def test_a_cifar10_batch_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    write_cifar10(tmp_path, protocol=4)
    bad = {"data": np.zeros((2, 1024), dtype=np.uint8), "labels": [0, 1]}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(bad))

    with pytest.raises(ValueError, match=r"test_batch: 'data' has shape \(2, 1024\)"):
        load_dataset(DatasetSpec(name="cifar10"), tmp_path)


def test_digits_split_and_scaling(digits: Dataset) -> None:
    from sklearn.datasets import load_digits

    assert digits.train_x.shape == (1438, 1, 8, 8) and digits.test_x.shape == (359, 1, 8, 8)
    assert digits.train_x.dtype == torch.uint8 and digits.train_y.dtype == torch.int64
    # The split is RandomState(0).permutation(1797): the first 1438 train, the last 359 test.
    order = np.random.RandomState(0).permutation(1797)
    source = load_digits()
    assert digits.train_y.tolist() == source.target[order[:1438]].tolist()
    assert digits.test_y.tolist() == source.target[order[1438:]].tolist()
    # 0..16 scaled to 0..255 and rounded: 16 -> 255, 8 -> 128 (127.5 rounds to even), 1 -> 16.
    expected = np.rint(source.images[order[1438:]] * 255 / 16).astype(np.uint8)
    assert np.array_equal(digits.test_x[:, 0].numpy(), expected)
    levels = {0, 16, 32, 48, 64, 80, 96, 112, 128, 143, 159, 175, 191, 207, 223, 239, 255}
    assert set(digits.train_x.unique().tolist()) == levels
    assert digits.classes == tuple(str(i) for i in range(10))


def test_digits_mean_std_come_from_the_full_training_split(digits: Dataset) -> None:
    pixels = digits.train_x.double() / 255
    assert digits.mean == pytest.approx((pixels.mean().item(),), rel=1e-12)
    assert digits.std == pytest.approx((pixels.std().item(),), rel=1e-12)
    assert 0.2 < digits.mean[0] < 0.4  # most of an 8x8 digit is background

    limited = load_dataset(DatasetSpec(name="digits", train_limit=10, test_limit=3), Path("/nonexistent"))
    assert limited.mean == digits.mean and limited.std == digits.std
    assert torch.equal(limited.train_x, digits.train_x[:10]) and torch.equal(limited.test_y, digits.test_y[:3])


def test_to_device_keeps_values_and_dtypes(digits: Dataset) -> None:
    moved = to_device(digits, torch.device("cpu"))

    assert torch.equal(moved.train_x, digits.train_x) and moved.train_x.dtype == torch.uint8
    assert torch.equal(moved.test_y, digits.test_y) and moved.test_y.dtype == torch.int64
    assert moved.mean == digits.mean and moved.classes == digits.classes
