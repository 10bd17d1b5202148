"""worker/data.py: datasets read from files in their real on-disk formats, limits, offline errors, and
the computed normalisation (numpy's mean/std of the full training split, cached in the data directory).

The files are tiny but byte-for-byte in the formats torchvision and the dataset sites use (idx,
gzip'd idx, CIFAR-10 and CIFAR-100 python pickles). Every test runs without network (`no_network`), so a
download attempt fails as it would on an air-gapped machine.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from tests.datafiles import IDX_FILES, IDX_FOLDERS, idx_bytes, write_cifar10, write_idx_dataset
from trainboard.spec import CLASS_NAMES, DatasetSpec
from worker.data import (
    PUBLISHED_MEAN_STD,
    STATS_CHUNK,
    Dataset,
    DatasetUnavailable,
    load_dataset,
    mean_std,
    to_device,
)

pytestmark = pytest.mark.usefixtures("no_network")


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
    pixels = digits.train_x.numpy() / 255
    # numpy's std: the population std (ddof=0), what a hand-written "computed" normalisation uses.
    assert digits.mean == pytest.approx((pixels.mean(),), rel=1e-12)
    assert digits.std == pytest.approx((pixels.std(),), rel=1e-12)
    assert 0.2 < digits.mean[0] < 0.4  # most of an 8x8 digit is background

    limited = load_dataset(DatasetSpec(name="digits", train_limit=10, test_limit=3), Path("/nonexistent"))
    assert limited.mean == digits.mean and limited.std == digits.std
    assert torch.equal(limited.train_x, digits.train_x[:10]) and torch.equal(limited.test_y, digits.test_y[:3])
    computed = load_dataset(DatasetSpec(name="digits", normalize="computed"), Path("/nonexistent"))
    assert (computed.mean, computed.std) == (digits.mean, digits.std)  # nothing published: standard is computed


def test_mean_std_equals_numpy_exactly_on_three_channels() -> None:
    generator = torch.Generator().manual_seed(3)
    # Skewed per channel, and more images than one STATS_CHUNK, so the chunks are summed too.
    images = torch.randint(0, 256, (STATS_CHUNK + 37, 3, 5, 4), dtype=torch.uint8, generator=generator)
    images[:, 1] //= 4
    images[:, 2] = 255 - images[:, 2] // 2

    mean, std = mean_std(images)

    pixels = images.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(mean, pixels.mean(axis=(0, 2, 3)), rtol=1e-12, atol=1e-6)
    np.testing.assert_allclose(std, pixels.std(axis=(0, 2, 3)), rtol=1e-12, atol=1e-6)
    assert mean[1] < 0.2 and mean[2] > 0.7


def test_computed_normalisation_is_numpys_over_the_full_training_split_and_cached(tmp_path: Path) -> None:
    batches = write_cifar10(tmp_path, protocol=4)
    train = np.concatenate([batch["data"] for batch in batches[:5]]).reshape(-1, 3, 32, 32) / 255

    data = load_dataset(DatasetSpec(name="cifar10", normalize="computed", train_limit=4), tmp_path)

    np.testing.assert_allclose(data.mean, train.mean(axis=(0, 2, 3)), rtol=0, atol=1e-6)
    np.testing.assert_allclose(data.std, train.std(axis=(0, 2, 3)), rtol=0, atol=1e-6)
    assert len(data.train_x) == 4  # the limit applies to the images, not to the statistics
    cache = json.loads((tmp_path / "cifar10.mean_std.json").read_text())
    assert (tuple(cache["mean"]), tuple(cache["std"])) == (data.mean, data.std)
    assert cache["images"] == 12
    assert sorted(cache["files"]) == [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)]


def test_the_cached_mean_std_is_read_back_until_the_files_change(tmp_path: Path) -> None:
    write_cifar10(tmp_path, protocol=4)
    spec = DatasetSpec(name="cifar10", normalize="computed")
    first = load_dataset(spec, tmp_path)
    cache_path = tmp_path / "cifar10.mean_std.json"
    cache = json.loads(cache_path.read_text())
    cache["mean"] = [0.25, 0.5, 0.75]  # a marker: only a read of the cache can return it
    cache_path.write_text(json.dumps(cache))

    assert load_dataset(spec, tmp_path).mean == (0.25, 0.5, 0.75)

    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    entry = pickle.loads(batch.read_bytes())
    entry["data"] = entry["data"][:1]
    entry["labels"] = entry["labels"][:1]
    batch.write_bytes(pickle.dumps(entry))  # another file set: recomputed
    recomputed = load_dataset(spec, tmp_path)
    assert recomputed.mean != (0.25, 0.5, 0.75) and recomputed.mean != first.mean
    assert json.loads(cache_path.read_text())["images"] == 11


def test_an_unwritable_data_dir_still_gets_computed_statistics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar10(tmp_path, protocol=4)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr("worker.data.tempfile.NamedTemporaryFile", refuse)
    data = load_dataset(DatasetSpec(name="cifar10", normalize="computed"), tmp_path)

    assert len(data.mean) == 3 and not (tmp_path / "cifar10.mean_std.json").exists()


def test_computed_normalisation_of_idx_files(tmp_path: Path) -> None:
    arrays = write_idx_dataset(tmp_path, "MNIST", n_train=7, n_test=2, gz=True)

    data = load_dataset(DatasetSpec(name="mnist", normalize="computed"), tmp_path)

    pixels = arrays["train-images-idx3-ubyte"] / 255
    np.testing.assert_allclose(data.mean + data.std, (pixels.mean(), pixels.std()), rtol=0, atol=1e-6)
    assert (tmp_path / "mnist.mean_std.json").is_file()


def write_cifar100(root: Path, *, n_train: int, n_test: int) -> dict[str, dict]:
    """cifar-100-python/{train,test,meta}: the format of the official archive (100 fine, 20 coarse labels)."""
    rng = np.random.default_rng(11)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    splits = {}
    for name, n in (("train", n_train), ("test", n_test)):
        splits[name] = {
            "filenames": [f"image_{i}.png" for i in range(n)],
            "batch_label": f"{name}ing batch 1 of 1",
            "fine_labels": rng.integers(0, 100, n).tolist(),
            "coarse_labels": rng.integers(0, 20, n).tolist(),
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        }
        (folder / name).write_bytes(pickle.dumps(splits[name], protocol=2))
    meta = {"fine_label_names": CLASS_NAMES["cifar100"], "coarse_label_names": [f"c{i}" for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return splits


def test_cifar100_files_on_disk_are_read_without_network(tmp_path: Path, no_network: list[str]) -> None:
    splits = write_cifar100(tmp_path, n_train=30, n_test=7)

    data = load_dataset(DatasetSpec(name="cifar100", test_limit=5), tmp_path)

    assert data.train_x.shape == (30, 3, 32, 32) and data.test_x.shape == (5, 3, 32, 32)
    assert np.array_equal(data.train_x.flatten(1).numpy(), splits["train"]["data"])
    assert data.train_y.tolist() == splits["train"]["fine_labels"]  # the 100 fine classes, not the 20 coarse
    assert data.test_y.tolist() == splits["test"]["fine_labels"][:5]
    assert (data.mean, data.std) == PUBLISHED_MEAN_STD["cifar100"]
    assert data.classes == tuple(CLASS_NAMES["cifar100"]) and data.num_classes == 100
    assert no_network == []


def test_cifar100_labels_out_of_range_are_refused(tmp_path: Path) -> None:
    write_cifar100(tmp_path, n_train=3, n_test=2)
    test = tmp_path / "cifar-100-python" / "test"
    entry = pickle.loads(test.read_bytes())
    entry["fine_labels"] = [0, 100]
    test.write_bytes(pickle.dumps(entry))

    with pytest.raises(ValueError, match=r"labels must be in 0\.\.99, found 0\.\.100"):
        load_dataset(DatasetSpec(name="cifar100"), tmp_path)


def test_missing_cifar100_without_network_says_what_and_where(tmp_path: Path, no_network: list[str]) -> None:
    with pytest.raises(DatasetUnavailable) as caught:
        load_dataset(DatasetSpec(name="cifar100"), tmp_path)

    message = str(caught.value)
    assert f"Missing: {tmp_path / 'cifar-100-python' / 'train'}, {tmp_path / 'cifar-100-python' / 'test'}." in message
    url = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    assert f"put cifar-100-python.tar.gz from {url} in {tmp_path}, or its extracted cifar-100-python/" in message
    assert no_network, "the loader should have tried to download"


def test_to_device_keeps_values_and_dtypes(digits: Dataset) -> None:
    moved = to_device(digits, torch.device("cpu"))

    assert torch.equal(moved.train_x, digits.train_x) and moved.train_x.dtype == torch.uint8
    assert torch.equal(moved.test_y, digits.test_y) and moved.test_y.dtype == torch.int64
    assert moved.mean == digits.mean and moved.classes == digits.classes


def test_explicit_normalisation_is_the_specs_values_as_given(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path, "MNIST", n_train=2, n_test=2, gz=False)
    normalize = {"mean": [0.1307], "std": [0.3081]}

    data = load_dataset(DatasetSpec.model_validate({"name": "mnist", "normalize": normalize}), tmp_path)

    assert (data.mean, data.std) == ((0.1307,), (0.3081,))
    assert not (tmp_path / "mnist.mean_std.json").exists()  # nothing computed
