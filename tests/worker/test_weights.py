"""worker/weights.py: pretrained weights from a torch hub cache the test writes, and the air-gapped error.

Each test points torch.hub at its own temporary directory (and restores it after), so nothing is
read from or written to the real cache, and nothing is downloaded.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torchvision

from trainboard.spec import RunSpec
from worker.engine import fit
from worker.models import build_model
from worker.weights import WeightsUnavailable, pretrained_state_dict, weights_path, weights_url

URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "alexnet": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
}


@pytest.fixture
def hub_dir(tmp_path: Path) -> Iterator[Path]:
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        yield tmp_path / "hub"
    finally:
        torch.hub.set_dir(previous)


def pretrained(arch: str) -> RunSpec:
    return RunSpec.model_validate(
        {"dataset": {"name": "cifar10"}, "model": {"arch": arch, "pretrained": True}, "device": "cpu", "epochs": 1}
    )


@pytest.mark.parametrize("arch", list(URLS))
def test_the_file_is_where_torch_hub_keeps_torchvisions_weights(arch: str, hub_dir: Path) -> None:
    assert weights_url(arch) == URLS[arch]
    assert weights_path(URLS[arch]) == hub_dir / "checkpoints" / URLS[arch].rsplit("/", 1)[1]


def test_a_weights_file_in_the_cache_is_loaded_as_it_is(hub_dir: Path, no_network: list[str]) -> None:
    torch.manual_seed(123)
    saved = torchvision.models.resnet18().state_dict()
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save(saved, hub_dir / "checkpoints" / "resnet18-f37072fd.pth")

    torch.manual_seed(0)  # other initial weights than the saved ones
    model = build_model(pretrained("resnet18"))

    loaded = model.state_dict()
    body = [name for name in saved if not name.startswith("fc.")]
    assert len(body) == len(saved) - 2 and all(torch.equal(loaded[name], saved[name]) for name in body)
    assert loaded["fc.weight"].shape == (10, 512)  # the new head, for CIFAR-10's 10 classes
    assert no_network == []


@pytest.mark.parametrize("arch", list(URLS))
def test_missing_weights_without_network_fail_at_once_saying_what_and_where(
    arch: str, hub_dir: Path, no_network: list[str]
) -> None:
    with pytest.raises(WeightsUnavailable) as caught:
        build_model(pretrained(arch))

    message = str(caught.value)
    file = URLS[arch].rsplit("/", 1)[1]
    assert f"Missing: {hub_dir / 'checkpoints' / file}." in message
    assert f"download {URLS[arch]} elsewhere and put the file (named {file}) in {hub_dir / 'checkpoints'}" in message
    assert "download.pytorch.org" in no_network[0], "it should have tried to download"
    assert list((hub_dir / "checkpoints").iterdir()) == []  # no partial file left behind


def test_fit_fails_on_missing_weights_before_looking_for_the_dataset(hub_dir: Path, no_network: list[str]) -> None:
    records: list[object] = []

    with pytest.raises(WeightsUnavailable, match=r"resnet18-f37072fd\.pth"):
        fit(pretrained("resnet18"), data_dir=hub_dir / "no-datasets-here", on_epoch=records.append)

    assert records == [] and not (hub_dir / "no-datasets-here").exists()


class _RunsCode:
    calls: ClassVar[list[str]] = []

    def __reduce__(self) -> tuple:
        return (_RunsCode.calls.append, ("ran",))


def test_a_weights_file_cannot_run_code(hub_dir: Path) -> None:
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save({"conv1.weight": _RunsCode()}, hub_dir / "checkpoints" / "resnet18-f37072fd.pth")

    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        pretrained_state_dict("resnet18")
    assert _RunsCode.calls == []
