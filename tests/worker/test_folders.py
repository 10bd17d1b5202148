"""Image-folder datasets decoded with Pillow from real files the tests write: both layouts, channels, resizing,
and every bad input refused with what is wrong (worker/folders.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.datafiles import write_image_folder
from trainboard.spec import DatasetSpec, RunSpec, set_registered
from worker import folders
from worker.data import load_dataset


def test_a_train_test_layout_is_decoded_at_the_size_with_sorted_class_names(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "train", {"dog": 3, "cat": 4}, size=(20, 14))
    write_image_folder(tmp_path / "test", {"dog": 2, "cat": 1}, size=(9, 9))  # mixed sizes: all resized
    decoded = folders.decode(tmp_path, size=16)
    assert decoded.classes == ["cat", "dog"]
    assert decoded.channels == 3
    assert decoded.train_x.shape == (7, 3, 16, 16) and decoded.train_x.dtype == np.uint8
    assert decoded.test_x.shape == (3, 3, 16, 16)
    assert decoded.train_y.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert decoded.test_y.tolist() == [0, 1, 1]
    # cat (label 0) is the darker class as written: the pixels are the files', not zeros
    assert decoded.train_x[decoded.train_y == 0].mean() < decoded.train_x[decoded.train_y == 1].mean() - 50


def test_one_folder_of_classes_gets_a_seeded_test_fraction_of_each_class(tmp_path: Path) -> None:
    write_image_folder(tmp_path, {"a": 10, "b": 5, "c": 5}, mode="L", fmt="JPEG")
    first = folders.decode(tmp_path, size=8, test_fraction=0.2)
    again = folders.decode(tmp_path, size=8, test_fraction=0.2)
    assert first.channels == 1  # all grayscale: one channel
    assert (len(first.train_x), len(first.test_x)) == (16, 4)
    assert sorted(first.test_y.tolist()) == [0, 0, 1, 2]
    assert first.fingerprint == again.fingerprint  # the same split every time
    assert folders.decode(tmp_path, size=8, test_fraction=0.2, seed=5).fingerprint != first.fingerprint


def test_a_stored_dataset_loads_through_the_worker_and_fixes_the_spec_shape(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "images", {"x": 6, "y": 6}, mode="L")
    decoded = folders.decode(tmp_path / "images", size=10, test_fraction=0.5)
    root = tmp_path / "datasets"
    folders.store(root, "shapes", decoded)
    assert json.loads((root / "shapes" / "dataset.json").read_text())["fingerprint"] == decoded.fingerprint
    set_registered({})
    try:
        data = load_dataset(DatasetSpec(name="shapes", normalize="computed"), root)
        assert data.classes == ("x", "y")
        assert data.train_x.shape == (6, 1, 10, 10)
        assert np.array_equal(data.test_x.numpy(), decoded.test_x)
        spec = RunSpec.model_validate({"dataset": {"name": "shapes"}, "model": {"arch": "mlp"}})
        assert spec.input_shape == (1, 10, 10) and spec.num_classes == 2 and spec.class_names == ["x", "y"]
    finally:
        set_registered({})


def test_a_worker_without_the_files_says_which_dataset_and_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(folders.DatasetMissing, match=r"'flowers'.*" + str(tmp_path / "flowers" / "dataset.json")):
        load_dataset(DatasetSpec(name="flowers"), tmp_path)


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(folders.FolderError, match="no such folder"):
        folders.decode(tmp_path / "nowhere")


def test_a_class_folder_without_images_is_refused_by_name(tmp_path: Path) -> None:
    write_image_folder(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(folders.FolderError, match=r"no \.png/\.jpg/\.jpeg images: empty"):
        folders.decode(tmp_path)


def test_unreadable_files_are_skipped_and_listed_up_to_one_percent(tmp_path: Path) -> None:
    write_image_folder(tmp_path, {"a": 100, "b": 100}, size=(8, 8))
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    decoded = folders.decode(tmp_path, size=8)
    assert decoded.unreadable == [tmp_path / "a" / "broken.png"]
    assert len(decoded.train_x) + len(decoded.test_x) == 200
    for i in range(3):  # 4 of 204: over 1 %
        (tmp_path / "b" / f"broken{i}.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(folders.FolderError, match=r"4 of 204 images are unreadable \(more than 1 %\)"):
        folders.decode(tmp_path, size=8)


def test_a_dataset_over_the_memory_budget_is_refused_with_the_figures(tmp_path: Path) -> None:
    write_image_folder(tmp_path, {"a": 3, "b": 3})
    assert folders.estimate_bytes(6, 512, 3) == 6 * 512 * 512 * 3
    with pytest.raises(folders.FolderError, match=r"6 images of 3x512x512 take 0.00 GB, over the memory budget"):
        folders.decode(tmp_path, size=512, memory_budget_gb=1e-6)
    assert len(folders.decode(tmp_path, size=512, memory_budget_gb=1).train_x) > 0
