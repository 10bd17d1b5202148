"""worker/dataset_cache.py through worker/data.py: the first run decodes and caches the whole splits, later
runs read them back without decoding, limits slice them, and changed source files invalidate them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from tests.datafiles import IDX_FOLDERS, write_cifar10, write_idx_dataset
from trainboard.spec import DatasetSpec
from worker import data, dataset_cache

pytestmark = pytest.mark.usefixtures("no_network")


def entries(root: Path, name: str) -> list[Path]:
    return sorted(dataset_cache.cache_dir(root).glob(f"{name}-*"))


def refuse_decoding(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    def decode(_root: Path) -> None:
        raise AssertionError(f"{name} was decoded again instead of read from the cache")

    monkeypatch.setitem(data._LOADERS, name, decode)


def same(a: data.Dataset, b: data.Dataset) -> bool:
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("train_x", "train_y", "test_x", "test_y")) and (
        a.mean,
        a.std,
    ) == (b.mean, b.std)


def test_decoded_idx_splits_are_cached_and_read_back_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_idx_dataset(tmp_path, IDX_FOLDERS["mnist"], n_train=12, n_test=5, gz=False)
    spec = DatasetSpec(name="mnist", normalize="computed")
    first = data.load_dataset(spec, tmp_path)
    (entry,) = entries(tmp_path, "mnist")
    assert sorted(p.name for p in entry.iterdir()) == [
        "about.json",
        "test_x.npy",
        "test_y.npy",
        "train_x.npy",
        "train_y.npy",
    ]
    refuse_decoding(monkeypatch, "mnist")
    again = data.load_dataset(spec, tmp_path)
    assert same(first, again) and again.train_x.dtype == torch.uint8 and again.train_y.dtype == torch.int64
    limited = data.load_dataset(DatasetSpec(name="mnist", normalize="computed", train_limit=3, test_limit=2), tmp_path)
    assert torch.equal(limited.train_x, first.train_x[:3]) and torch.equal(limited.test_y, first.test_y[:2])
    assert (limited.mean, limited.std) == (first.mean, first.std)  # of the full training split, as before


def test_a_changed_source_file_is_decoded_again_and_the_stale_entry_removed(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path, IDX_FOLDERS["fashion_mnist"], n_train=8, n_test=4, gz=False, seed=1)
    spec = DatasetSpec(name="fashion_mnist")
    first = data.load_dataset(spec, tmp_path)
    (old,) = entries(tmp_path, "fashion_mnist")
    raw = tmp_path / IDX_FOLDERS["fashion_mnist"] / "raw"
    for path in raw.iterdir():
        path.unlink()
    os.rmdir(raw)
    write_idx_dataset(tmp_path, IDX_FOLDERS["fashion_mnist"], n_train=8, n_test=4, gz=False, seed=2)  # other images
    second = data.load_dataset(spec, tmp_path)
    assert not torch.equal(first.train_x, second.train_x)
    (new,) = entries(tmp_path, "fashion_mnist")
    assert new != old and not old.exists()


def test_cifar_batches_are_cached_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar10(tmp_path, protocol=2)
    first = data.load_dataset(DatasetSpec(name="cifar10"), tmp_path)
    refuse_decoding(monkeypatch, "cifar10")
    assert same(first, data.load_dataset(DatasetSpec(name="cifar10"), tmp_path))
    assert not entries(tmp_path, "cifar100")  # another dataset's entries are its own


def test_digits_read_from_the_cache_never_import_scikit_learn(tmp_path: Path) -> None:
    data.load_dataset(DatasetSpec(name="digits"), tmp_path)  # decodes (scikit-learn), then caches
    probe = (
        "import sys\nfrom pathlib import Path\n"
        "from trainboard.spec import DatasetSpec\nfrom worker.data import load_dataset\n"
        f"d = load_dataset(DatasetSpec(name='digits'), Path({str(tmp_path)!r}))\n"
        "print(len(d.train_x), len(d.test_x), 'sklearn' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1438", "359", "False"]


def test_a_cache_that_cannot_be_written_only_costs_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setattr(dataset_cache, "cache_dir", lambda _root: blocked)
    loaded = data.load_dataset(DatasetSpec(name="digits"), tmp_path)
    assert len(loaded.train_x) == 1438
    assert "could not cache the decoded digits" in caplog.text
    assert np.array_equal(loaded.train_y.numpy(), data.load_dataset(DatasetSpec(name="digits"), tmp_path).train_y)
