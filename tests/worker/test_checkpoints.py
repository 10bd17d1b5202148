"""worker/checkpoints.py through worker/engine.py: a run resumed from the checkpoint of epoch k is exactly the
run that was not interrupted (CPU, same torch and threads), and a file that is not the run's is refused."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tests.worker.test_engine import run as train
from tests.worker.test_engine import untimed
from trainboard.spec import RunSpec
from worker.checkpoints import CheckpointMismatch, checkpoint_epoch, spec_hash
from worker.data import Dataset
from worker.models import build_model

# The cases of issue 11: an MLP with dropout and Adam; a CNN with augmentation, a step schedule and early
# stopping that restores the best weights (patience high enough that it runs to the end).
CASES: dict[str, dict[str, Any]] = {
    "mlp": {
        "model": {"arch": "mlp", "hidden": [32], "dropout": 0.2},
        "optimizer": {"name": "adam", "lr": 0.003},
        "scheduler": {"name": "cosine"},
    },
    "cnn": {
        "model": {"arch": "custom_cnn", "blocks": [8, 16], "dropout": 0.1, "hidden": [32]},  # batch norm too
        "augment": {"random_crop": {"size": 8, "padding": 1}, "hflip": {"p": 0.5}},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "scheduler": {"name": "step", "step_size": 2, "gamma": 0.5},
        "early_stopping": {"patience": 10, "restore_best": True},
    },
}


def make_spec(case: str, **fields: Any) -> RunSpec:
    base: dict[str, Any] = {
        "dataset": {"name": "digits", "train_limit": 600},
        "epochs": 5,
        "batch_size": 32,
        "seed": 3,
        "device": "cpu",
        "checkpoint": {"min_seconds": 0},
    }
    return RunSpec.model_validate(base | CASES[case] | fields)


@dataclass
class Files:
    """The engine's RunFiles, keeping what it hands over."""

    folder: Path
    checkpoints: dict[int, Path] = field(default_factory=dict)
    final: list[tuple[Path, int]] = field(default_factory=list)

    def checkpoint(self, path: Path, epoch: int) -> None:
        kept = path.with_name(f"kept-{epoch}.safetensors")
        path.rename(kept)  # the engine reuses nothing, but the test keeps every one
        self.checkpoints[epoch] = kept

    def weights(self, path: Path, epoch: int) -> None:
        self.final.append((path, epoch))


@pytest.mark.parametrize("case", list(CASES))
def test_a_run_resumed_from_epoch_k_is_bit_identical_to_the_uninterrupted_run(
    case: str, digits: Dataset, tmp_path: Path
) -> None:
    spec = make_spec(case)
    files = Files(tmp_path)
    whole, whole_result = train(spec, digits, files=files)
    assert sorted(files.checkpoints) == [1, 2, 3, 4]  # every epoch but the last (the weights follow it)
    for k in (1, 3):
        resumed, result = train(spec, digits, resume_from=files.checkpoints[k])
        assert [r.epoch for r in resumed] == list(range(k + 1, spec.epochs + 1))
        assert untimed(resumed) == untimed(whole[k:])  # losses, accuracies, per-class, learning rates: exact
        assert result.confusion == whole_result.confusion and result.final_epoch == whole_result.final_epoch
    assert len({tuple(r.lr) for r in whole}) > 1  # the schedule did change the rates


def test_checkpoints_follow_every_epochs_and_min_seconds(digits: Dataset, tmp_path: Path) -> None:
    files = Files(tmp_path)
    train(make_spec("mlp", checkpoint={"every_epochs": 2, "min_seconds": 0}), digits, files=files)
    assert sorted(files.checkpoints) == [2, 4]
    files = Files(tmp_path / "slow")
    train(make_spec("mlp", checkpoint={"min_seconds": 3600}), digits, files=files)
    assert files.checkpoints == {} and [epoch for _, epoch in files.final] == [5]
    files = Files(tmp_path / "off")
    train(make_spec("mlp", checkpoint={"enabled": False}), digits, files=files)
    assert files.checkpoints == {} and len(files.final) == 1


def test_the_final_weights_are_the_restored_ones_with_the_spec_beside_them(digits: Dataset, tmp_path: Path) -> None:
    spec = make_spec("cnn", early_stopping={"patience": 1, "restore_best": True}, epochs=8)
    files = Files(tmp_path)
    records, result = train(spec, digits, files=files)
    [(path, epoch)] = files.final
    best = max(records, key=lambda r: r.test_acc).epoch
    assert epoch == (result.final_epoch or result.epochs_run) == best
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    assert RunSpec.model_validate(json.loads(metadata["spec"])) == spec
    model = build_model(spec)
    model.load_state_dict(load_file(path))  # the model the spec builds takes the file as it is


def test_a_checkpoint_of_another_spec_or_with_other_shapes_is_refused(digits: Dataset, tmp_path: Path) -> None:
    spec = make_spec("mlp")
    files = Files(tmp_path)
    train(spec, digits, files=files)
    checkpoint = files.checkpoints[2]
    assert checkpoint_epoch(checkpoint) == 2
    with pytest.raises(CheckpointMismatch, match="another spec"):
        train(make_spec("mlp", seed=4), digits, resume_from=checkpoint)

    # Same spec hash, a tensor of another shape: refused before anything is loaded.
    with safe_open(str(checkpoint), framework="pt") as f:
        metadata = dict(f.metadata())
    tensors = load_file(checkpoint)
    name = next(k for k in tensors if k.startswith("model.") and k.endswith("weight"))
    tensors[name] = tensors[name][:1].clone()
    forged = tmp_path / "forged.safetensors"
    save_file(tensors, str(forged), metadata=metadata | {"spec_sha256": spec_hash(spec.model_dump(mode="json"))})
    with pytest.raises(CheckpointMismatch, match="has shape"):
        train(spec, digits, resume_from=forged)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x80\x04not a safetensors file")  # a pickle header: never unpickled
    with pytest.raises(CheckpointMismatch, match="not a readable safetensors file"):
        train(spec, digits, resume_from=garbage)


def test_a_channels_last_model_with_momentum_checkpoints_and_resumes(digits: Dataset, tmp_path: Path) -> None:
    """On CUDA conv models train channels_last, so their momentum buffers are not contiguous: saved anyway."""
    import torch

    from worker.checkpoints import TrainingState, load_checkpoint, save_checkpoint

    spec = make_spec("cnn")
    model = build_model(spec).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(4, 1, 8, 8).to(memory_format=torch.channels_last)
    model(x).sum().backward()
    optimizer.step()
    assert any(not t.is_contiguous() for s in optimizer.state.values() for t in s.values() if t.dim() == 4)
    state = TrainingState(1, model, optimizer, torch.Generator(), torch.Generator(), None)
    save_checkpoint(tmp_path / "c.safetensors", state, spec.model_dump(mode="json"))
    fresh = build_model(spec).to(memory_format=torch.channels_last)
    again = TrainingState(0, fresh, torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9), torch.Generator(),
                          torch.Generator(), None)  # fmt: skip
    load_checkpoint(tmp_path / "c.safetensors", again, spec.model_dump(mode="json"), None)
    before, after = optimizer.state_dict()["state"], again.optimizer.state_dict()["state"]
    assert before.keys() == after.keys()
    for index in before:
        assert torch.equal(before[index]["momentum_buffer"], after[index]["momentum_buffer"])


def test_a_checkpoint_of_another_device_or_schedule_is_refused(digits: Dataset, tmp_path: Path) -> None:
    spec = make_spec("mlp")
    files = Files(tmp_path)
    train(spec, digits, files=files)
    checkpoint = files.checkpoints[2]
    with safe_open(str(checkpoint), framework="pt") as f:
        metadata = dict(f.metadata())
    tensors = load_file(checkpoint)
    for change, message in (({"device_type": "cuda"}, "written by a run on cuda"), ({"lr": "[0.5]"}, "learning rates")):
        forged = tmp_path / "forged.safetensors"
        save_file(tensors, str(forged), metadata=metadata | change)
        with pytest.raises(CheckpointMismatch, match=message):
            train(spec, digits, resume_from=forged)


def test_a_checkpoint_written_before_a_later_spec_field_still_resumes_its_run(digits: Dataset, tmp_path: Path) -> None:
    """A run checkpointed by a trainboard without `cuda_graphs` (its spec hashed without the field) resumes
    after the upgrade; the same checkpoint with the switch on is another spec."""
    spec = make_spec("mlp")
    files = Files(tmp_path)
    train(spec, digits, files=files)
    checkpoint = files.checkpoints[2]
    with safe_open(str(checkpoint), framework="pt") as f:
        metadata = dict(f.metadata())
    earlier = {k: v for k, v in spec.model_dump(mode="json").items() if k != "cuda_graphs"}
    older = tmp_path / "older.safetensors"
    save_file(load_file(checkpoint), str(older), metadata=metadata | {"spec_sha256": spec_hash(earlier)})
    records, _ = train(spec, digits, resume_from=older)
    assert [r.epoch for r in records] == list(range(3, spec.epochs + 1))
    with pytest.raises(CheckpointMismatch, match="another spec"):
        train(spec.model_copy(update={"cuda_graphs": True}), digits, resume_from=older)
