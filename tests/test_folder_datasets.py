"""Your own image folders for real: `trainboard dataset add` (a process) decodes real Pillow-written files into the
data directory and registers them; the live API lists them and queues runs on them; a real worker trains one and
its per-class results carry the folder names. Bad input is one line on stderr and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import API_TOKEN, REPO, LiveServer, WorkerProcess, live_settings, wait_for
from tests.datafiles import write_image_folder

pytestmark = pytest.mark.queue


@dataclass
class Stack:
    server: LiveServer
    worker: WorkerProcess
    data_dir: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("folders")
    settings = live_settings(data_dir)
    server = LiveServer(settings).start()
    worker = WorkerProcess(settings, "w0", data_dir / "worker.log")
    yield Stack(server, worker, data_dir)
    worker.stop()
    server.stop()


def add(data_dir: Path, *args: object) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"TRAINBOARD_DATA_DIR": str(data_dir)}
    env.pop("TRAINBOARD_DATABASE_URL", None)
    command = [sys.executable, "-m", "trainboard", "dataset", "add", *map(str, args)]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def folder_spec(name: str, **overrides: Any) -> dict[str, Any]:
    spec = {
        "name": f"mlp-{name}",
        "dataset": {"name": name},
        "model": {"arch": "mlp", "hidden": [16]},
        "optimizer": {"name": "sgd", "lr": 0.05},
        "epochs": 2,
        "batch_size": 8,
        "device": "cpu",
    }
    return spec | overrides


def test_a_train_test_folder_is_registered_listed_and_trained_with_its_class_names(
    stack: Stack, tmp_path: Path
) -> None:
    write_image_folder(tmp_path / "pets" / "train", {"cat": 12, "dog": 12, "emu": 12})
    write_image_folder(tmp_path / "pets" / "test", {"cat": 4, "dog": 4, "emu": 4}, seed=3)
    added = add(stack.data_dir, "pets", tmp_path / "pets", "--size", "16")
    assert added.returncode == 0, added.stderr
    assert "dataset pets registered: 3 classes, 36 train + 12 test images, 3x16x16" in added.stdout
    assert (stack.data_dir / "datasets" / "pets" / "train_x.npy").is_file()
    with stack.server.api() as api:
        listed = api.get("/api/datasets").json()
        assert "digits" in listed["builtin"]
        pets = next(d for d in listed["data"] if d["name"] == "pets")
        assert (pets["classes"], pets["image_size"], pets["channels"]) == (["cat", "dog", "emu"], 16, 3)
        assert (pets["train_count"], pets["test_count"], len(pets["fingerprint"])) == (36, 12, 64)
        response = api.post("/api/runs", json=folder_spec("pets"))
        assert response.status_code == 201, response.text
        run_id = response.json()["id"]

        def ended() -> dict[str, Any] | None:
            run = dict(api.get(f"/api/runs/{run_id}").json())
            return run if run["status"] in ("succeeded", "failed", "cancelled") else None

        run = wait_for(ended, 120, 0.2, f"run {run_id} to end")
        assert run["status"] == "succeeded", f"{run['error']}\n{stack.worker.log()[-3000:]}"
        assert run["info"]["image_size"] == [3, 16, 16]
        confusion = api.get(f"/api/runs/{run_id}/confusion").json()
        assert confusion["classes"] == ["cat", "dog", "emu"]
        assert sum(map(sum, confusion["matrix"])) == 12  # every test image of the folder, once
        per_class = api.get("/api/compare", params={"runs": str(run_id)}).json()["per_class"][0]
        assert per_class["classes"] == ["cat", "dog", "emu"] and len(per_class["accuracy"]) == 3
    with httpx.Client(base_url=stack.server.url, timeout=30) as browser:  # the run page, logged in
        assert browser.post("/login", data={"token": API_TOKEN, "next": "/"}).status_code == 303
        page = browser.get(f"/runs/{run_id}")
    assert page.status_code == 200
    assert '<script type="application/json" id="class-names">["cat", "dog", "emu"]' in page.text


def test_one_folder_of_classes_gets_a_test_fraction_and_grayscale_stays_one_channel(
    stack: Stack, tmp_path: Path
) -> None:
    write_image_folder(tmp_path / "marks", {"circle": 10, "cross": 10}, mode="L", fmt="JPEG")
    added = add(stack.data_dir, "marks", tmp_path / "marks", "--size", "8", "--test-fraction", "0.3")
    assert added.returncode == 0, added.stderr
    assert "2 classes, 14 train + 6 test images, 1x8x8" in added.stdout
    with stack.server.api() as api:
        marks = next(d for d in api.get("/api/datasets").json()["data"] if d["name"] == "marks")
    assert (marks["channels"], marks["classes"]) == (1, ["circle", "cross"])


def test_re_registering_other_files_is_refused_unless_replace(stack: Stack, tmp_path: Path) -> None:
    write_image_folder(tmp_path / "v1", {"a": 5, "b": 5})
    write_image_folder(tmp_path / "v2", {"a": 6, "b": 6}, seed=9)
    assert add(stack.data_dir, "versions", tmp_path / "v1", "--size", "8").returncode == 0
    same = add(stack.data_dir, "versions", tmp_path / "v1", "--size", "8")
    assert same.returncode == 0 and "dataset versions unchanged" in same.stdout
    refused = add(stack.data_dir, "versions", tmp_path / "v2", "--size", "8")
    assert refused.returncode == 2
    assert (
        refused.stderr.strip().splitlines() == [refused.stderr.strip().splitlines()[0]]
        and "already registered with other files" in refused.stderr
        and "--replace" in refused.stderr
    )
    with stack.server.api() as api:
        before = next(d for d in api.get("/api/datasets").json()["data"] if d["name"] == "versions")
        assert before["train_count"] == 8  # the refused files were not written or registered
    replaced = add(stack.data_dir, "versions", tmp_path / "v2", "--size", "8", "--replace")
    assert replaced.returncode == 0, replaced.stderr
    with stack.server.api() as api:
        after = next(d for d in api.get("/api/datasets").json()["data"] if d["name"] == "versions")
    assert after["train_count"] == 10 and after["fingerprint"] != before["fingerprint"]


def test_the_rest_route_refuses_another_fingerprint_with_409(stack: Stack) -> None:
    body = {
        "name": "remote",
        "classes": ["x", "y"],
        "image_size": 8,
        "channels": 1,
        "train_count": 4,
        "test_count": 2,
        "fingerprint": "a" * 64,
    }
    with stack.server.api() as api:
        assert api.post("/api/datasets", json=body).status_code == 201
        assert api.post("/api/datasets", json=body).status_code == 200  # the same: nothing to do
        other = body | {"fingerprint": "b" * 64}
        conflict = api.post("/api/datasets", json=other)
        assert conflict.status_code == 409 and "replace" in conflict.json()["detail"]
        assert api.post("/api/datasets", params={"replace": "true"}, json=other).status_code == 201
        assert api.post("/api/datasets", json=body | {"name": "cifar10"}).status_code == 422
        # the same fingerprint with another description is not the same registration either
        assert api.post("/api/datasets", json=other | {"test_count": 9}).status_code == 409
        assert api.post("/api/datasets", json=body | {"name": "twice", "classes": ["x", "x"]}).status_code == 422


def test_an_unknown_dataset_name_is_a_422_naming_the_field_and_listing_the_datasets(stack: Stack) -> None:
    with stack.server.api() as api:
        response = api.post("/api/runs", json=folder_spec("nosuchdata"))
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["field"] == "dataset.name"
    assert "'nosuchdata'" in error["msg"] and "digits" in error["msg"] and "cifar100" in error["msg"]


def test_a_spec_that_does_not_fit_a_registered_dataset_is_a_422(stack: Stack, tmp_path: Path) -> None:
    write_image_folder(tmp_path / "small", {"a": 5, "b": 5})
    assert add(stack.data_dir, "small", tmp_path / "small", "--size", "16").returncode == 0
    with stack.server.api() as api:
        response = api.post("/api/runs", json=folder_spec("small", model={"arch": "resnet18"}))
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["field"] == "model" and "at least 32x32" in error["msg"]


def test_a_worker_without_the_files_fails_the_run_saying_where_it_looked(stack: Stack) -> None:
    with stack.server.api() as api:  # registered (as from another machine), but no files in this data directory
        body = {
            "name": "elsewhere",
            "classes": ["x", "y"],
            "image_size": 8,
            "channels": 1,
            "train_count": 4,
            "test_count": 2,
            "fingerprint": "c" * 64,
        }
        assert api.post("/api/datasets", json=body).status_code == 201
        run_id = api.post("/api/runs", json=folder_spec("elsewhere")).json()["id"]
        run = wait_for(
            lambda: (r := api.get(f"/api/runs/{run_id}").json())["status"] in ("failed", "succeeded") and r,
            120,
            0.2,
            "the run to fail",
        )
    assert run["status"] == "failed"
    assert "'elsewhere'" in run["error"] and str(stack.data_dir / "datasets" / "elsewhere") in run["error"]


@pytest.mark.parametrize(
    "case",
    ["missing folder", "empty class", "unreadable", "over budget", "built-in name", "bad name"],
)
def test_bad_input_is_one_line_and_exit_2(stack: Stack, tmp_path: Path, case: str) -> None:
    root = tmp_path / "data"
    name, size, expected = "bad", 8, ""
    if case == "missing folder":
        expected = "no such folder"
    else:
        write_image_folder(root, {"a": 20, "b": 20})
    if case == "empty class":
        (root / "c").mkdir()
        expected = "class folder(s) with no .png/.jpg/.jpeg images: c"
    if case == "unreadable":
        (root / "a" / "x.png").write_bytes(b"garbage")
        expected = "1 of 41 images are unreadable (more than 1 %)"
    if case == "over budget":
        size, expected = 512, "over the memory budget"
    if case == "built-in name":
        name, expected = "mnist", "mnist is a built-in dataset"
    if case == "bad name":
        name, expected = "Bad-Name", "lowercase letters"
    env_budget = {"TRAINBOARD_MEMORY_BUDGET_GB": "0.01"} if case == "over budget" else {}
    os.environ.update(env_budget)
    try:
        result = add(stack.data_dir, name, root, "--size", size)
    finally:
        for key in env_budget:
            os.environ.pop(key)
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert not (stack.data_dir / "datasets" / name).exists()


def test_a_study_on_a_registered_dataset_is_planned_with_its_shape_and_an_unknown_one_refused(
    stack: Stack, tmp_path: Path
) -> None:
    write_image_folder(tmp_path / "tiles", {"a": 5, "b": 5, "c": 5})
    assert add(stack.data_dir, "tiles", tmp_path / "tiles", "--size", "12").returncode == 0
    base = folder_spec("tiles")
    variants = [{"label": "narrow", "set": {"model.hidden": [4]}}, {"label": "wide", "set": {"model.hidden": [8]}}]
    with stack.server.api() as api:
        preview = api.post("/api/studies/preview", json={"name": "s", "base": base, "variants": variants})
        assert preview.status_code == 200, preview.text
        # an MLP on 3x12x12 images with 3 classes: (432 * 4 + 4) + (4 * 3 + 3) parameters
        assert [run["parameters"] for run in preview.json()["data"]] == [432 * 4 + 4 + 15, 432 * 8 + 8 + 27]
        unknown = api.post(
            "/api/studies/preview", json={"name": "s", "base": folder_spec("nothere"), "variants": variants}
        )
    assert unknown.status_code == 422
    assert {(e["label"], e["field"]) for e in unknown.json()["detail"]} == {
        ("narrow", "dataset.name"),
        ("wide", "dataset.name"),
    }


def test_the_new_run_form_offers_the_registered_datasets_after_the_built_in_ones(stack: Stack, tmp_path: Path) -> None:
    write_image_folder(tmp_path / "leaves", {"oak": 4, "elm": 4})
    assert add(stack.data_dir, "leaves", tmp_path / "leaves", "--size", "8").returncode == 0
    with httpx.Client(base_url=stack.server.url, timeout=30) as browser:
        assert browser.post("/login", data={"token": API_TOKEN, "next": "/"}).status_code == 303
        form = browser.get("/runs/new").text
    choices = form[form.index('name="dataset.name"') : form.index("</select>", form.index('name="dataset.name"'))]
    offered = [part.split('"')[0] for part in choices.split('<option value="')[1:]]
    assert offered[:5] == ["digits", "mnist", "fashion_mnist", "cifar10", "cifar100"]
    assert "leaves" in offered[5:]
