"""worker/engine.py: fit on the digits dataset (CPU, seconds), its reports, reproducibility, stopping."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from trainboard.protocol import MEASURED_FIELDS, EpochRecord, Progress, RunInfo, RunResult
from trainboard.spec import NormalizeValues, RunSpec
from worker import engine
from worker.data import Dataset
from worker.engine import (
    TrainingDiverged,
    count_batches,
    evaluate,
    fit,
    resolve_device,
    train_one_epoch,
)
from worker.models import build_model
from worker.preprocess import Preprocess

MODELS: dict[str, dict[str, Any]] = {
    "mlp": {"arch": "mlp", "hidden": [32]},
    "cnn": {"arch": "cnn", "channels": [8, 16], "kernel_sizes": [3, 3], "hidden": [32]},
}
NO_DATA_DIR = Path("/nonexistent/trainboard-data")  # the tests pass the dataset in


def make_spec(model: dict[str, Any] = MODELS["mlp"], **fields: Any) -> RunSpec:
    defaults: dict[str, Any] = {
        "epochs": 2,
        "batch_size": 32,
        "seed": 0,
        "device": "cpu",
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    }
    return RunSpec.model_validate({"dataset": {"name": "digits"}, "model": model} | defaults | fields)


def run(spec: RunSpec, dataset: Dataset, **callbacks: Any) -> tuple[list[EpochRecord], RunResult]:
    records: list[EpochRecord] = []
    result = fit(spec, data_dir=NO_DATA_DIR, on_epoch=records.append, dataset=dataset, **callbacks)
    return records, result


def untimed(records: list[EpochRecord]) -> list[dict[str, Any]]:
    return [record.model_dump(exclude=set(MEASURED_FIELDS)) for record in records]


@pytest.mark.parametrize("arch", list(MODELS))
def test_fit_trains_and_reports_each_epoch(arch: str, digits: Dataset) -> None:
    records, result = run(make_spec(MODELS[arch]), digits)

    assert [r.epoch for r in records] == [1, 2]
    assert records[1].train_loss < records[0].train_loss
    assert records[1].test_loss < records[0].test_loss
    assert records[1].test_acc > 0.8  # chance is 0.1
    assert all(r.lr == [0.05] for r in records)
    assert all(r.seconds > 0 and r.images_per_s > 0 for r in records)
    assert result.stopped == "completed" and result.epochs_run == 2 and result.device == "cpu"
    assert result.total_seconds >= sum(r.seconds for r in records)

    # The last record and the confusion matrix describe the same evaluation.
    confusion = torch.tensor(result.confusion)
    assert confusion.shape == (10, 10) and confusion.sum().item() == len(digits.test_y)
    assert confusion.sum(dim=1).tolist() == torch.bincount(digits.test_y, minlength=10).tolist()
    assert records[-1].per_class_acc == pytest.approx((confusion.diagonal() / confusion.sum(dim=1)).tolist())
    assert records[-1].test_acc == pytest.approx(confusion.trace().item() / len(digits.test_y))


def test_same_seed_gives_identical_records(digits: Dataset) -> None:
    first, first_result = run(make_spec(MODELS["cnn"], seed=5), digits)
    second, second_result = run(make_spec(MODELS["cnn"], seed=5), digits)

    assert untimed(first) == untimed(second)
    assert first_result.confusion == second_result.confusion


def test_another_seed_gives_other_records(digits: Dataset) -> None:
    first, _ = run(make_spec(seed=1), digits)
    second, _ = run(make_spec(seed=2), digits)

    assert first[0].train_loss != second[0].train_loss
    assert untimed(first) != untimed(second)


def test_should_stop_cancels_within_the_batch_and_keeps_finished_epochs(digits: Dataset) -> None:
    spec = make_spec(epochs=3)
    batches = count_batches(len(digits.train_x), spec.batch_size)  # 45 batches of 32 (the last has 30)
    calls = 0

    def should_stop() -> bool:
        nonlocal calls
        calls += 1
        return calls > batches + 5  # 5 batches into epoch 2

    steps: list[Progress] = []
    records, result = run(spec, digits, should_stop=should_stop, progress=steps.append)

    assert result.stopped == "cancelled" and result.epochs_run == 1
    assert [r.epoch for r in records] == [1]  # the partial epoch 2 is not reported
    assert calls == batches + 6  # checked once per batch, and nothing ran after it said stop
    assert (steps[-1].epoch, steps[-1].batch) == (2, 5)
    confusion = torch.tensor(result.confusion)  # from epoch 1's evaluation
    assert records[0].test_acc == pytest.approx(confusion.trace().item() / len(digits.test_y))


def test_stop_before_the_first_batch_returns_no_epochs(digits: Dataset) -> None:
    records, result = run(make_spec(), digits, should_stop=lambda: True)

    assert records == []
    assert (result.stopped, result.epochs_run, result.confusion) == ("cancelled", 0, [])


def test_progress_counts_batches_within_each_epoch(digits: Dataset) -> None:
    spec = make_spec(batch_size=100)
    steps: list[Progress] = []

    run(spec, digits, progress=steps.append)

    batches = 15  # 1438 images: 14 of 100 and one of 38
    assert [(p.epoch, p.batch, p.batches) for p in steps] == [
        (epoch, batch, batches) for epoch in (1, 2) for batch in range(1, batches + 1)
    ]


def test_train_loss_and_accuracy_are_means_over_images(digits: Dataset) -> None:
    """With lr=0 the model never changes, so the epoch's numbers must equal one evaluation of it."""
    spec = make_spec(MODELS["cnn"])
    torch.manual_seed(0)
    model = build_model(spec)
    preprocess = Preprocess(digits.mean, digits.std, torch.device("cpu"))
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)

    train = train_one_epoch(
        model, frozen, digits.train_x, digits.train_y, preprocess, batch_size=100, generator=torch.Generator()
    )
    reference = evaluate(model, digits.train_x, digits.train_y, preprocess, num_classes=10)

    assert train is not None and train.images == 1438  # 14 batches of 100 and one of 38, weighted by size
    assert train.loss == pytest.approx(reference.loss, rel=1e-5)
    assert train.accuracy == pytest.approx(reference.accuracy)


def test_evaluate_matches_a_plain_computation(digits: Dataset) -> None:
    spec = make_spec(MODELS["mlp"])
    torch.manual_seed(4)
    model = build_model(spec).eval()
    preprocess = Preprocess(digits.mean, digits.std, torch.device("cpu"))

    stats = evaluate(model, digits.test_x, digits.test_y, preprocess, num_classes=10, batch_size=50)

    mean = torch.tensor(digits.mean).view(1, -1, 1, 1)
    std = torch.tensor(digits.std).view(1, -1, 1, 1)
    with torch.no_grad():
        logits = model((digits.test_x.float() / 255 - mean) / std)
    predicted = logits.argmax(dim=1)
    assert stats.loss == pytest.approx(F.cross_entropy(logits, digits.test_y).item(), rel=1e-5)
    assert stats.accuracy == pytest.approx((predicted == digits.test_y).float().mean().item())
    expected = [[0] * 10 for _ in range(10)]
    for true, pred in zip(digits.test_y.tolist(), predicted.tolist(), strict=True):
        expected[true][pred] += 1
    assert stats.confusion == expected


def test_a_class_missing_from_the_test_set_gets_zero_accuracy(digits: Dataset) -> None:
    spec = make_spec(MODELS["mlp"])
    torch.manual_seed(0)
    model = build_model(spec)
    preprocess = Preprocess(digits.mean, digits.std, torch.device("cpu"))
    keep = digits.test_y != 3

    stats = evaluate(model, digits.test_x[keep], digits.test_y[keep], preprocess, num_classes=10)

    assert len(stats.per_class_accuracy) == 10
    assert stats.per_class_accuracy[3] == 0.0 and stats.confusion[3] == [0] * 10
    assert sum(map(sum, stats.confusion)) == int(keep.sum())


def test_a_nan_loss_stops_the_run_with_a_clear_error(digits: Dataset) -> None:
    # A std of 1e-38 makes the normalisation scale overflow to inf, and 0 * inf is NaN.
    broken = dataclasses.replace(digits, std=(1e-38,))
    records: list[EpochRecord] = []

    with pytest.raises(TrainingDiverged, match=r"epoch 1: train loss nan, test loss nan; lower the learning rate"):
        fit(make_spec(), data_dir=NO_DATA_DIR, on_epoch=records.append, dataset=broken)
    assert records == []


def test_batch_norm_skips_a_last_batch_of_one_image(digits: Dataset) -> None:
    spec = make_spec({"arch": "mlp", "hidden": [16], "batch_norm": True}, batch_size=32)
    small = dataclasses.replace(digits, train_x=digits.train_x[:65], train_y=digits.train_y[:65])
    steps: list[Progress] = []

    records, result = run(spec, small, progress=steps.append)

    assert result.epochs_run == 2 and len(records) == 2
    assert {p.batches for p in steps} == {2}  # 32 + 32; the 65th image would be a batch of one


def test_batch_norm_with_batches_of_one_is_refused(digits: Dataset) -> None:
    with pytest.raises(ValueError, match="batch norm needs at least 2 images per batch"):
        make_spec({"arch": "mlp", "hidden": [16], "batch_norm": True}, batch_size=1)  # the spec says no
    for model in ({"arch": "custom_cnn"}, {"arch": "resnet18"}):  # batch norm in every block
        with pytest.raises(ValueError, match="batch norm needs at least 2 images per batch"):
            make_spec(model, batch_size=1, dataset={"name": "digits", "resize": 32})
    with pytest.raises(ValueError, match="batch norm needs at least 2 images per batch"):
        make_spec({"arch": "mlp", "hidden": [16], "batch_norm": True}, dataset={"name": "digits", "train_limit": 1})
    one_image = make_spec({"arch": "mlp", "hidden": [16], "batch_norm": True})
    tiny = dataclasses.replace(digits, train_x=digits.train_x[:1], train_y=digits.train_y[:1])

    with pytest.raises(ValueError, match="at least 2 images per training batch"):
        run(one_image, tiny)  # the engine says no when the data itself has one image


def test_adam_and_weight_decay_train(digits: Dataset) -> None:
    spec = make_spec(optimizer={"name": "adam", "lr": 0.003, "weight_decay": 1e-4})

    records, _ = run(spec, digits)

    assert records[1].train_loss < records[0].train_loss
    assert records[0].lr == [0.003]


def test_count_batches() -> None:
    assert count_batches(64, 32) == 2
    assert count_batches(65, 32) == 3
    assert count_batches(65, 32, skip_single_image_batch=True) == 2
    assert count_batches(66, 32, skip_single_image_batch=True) == 3
    assert count_batches(5, 100) == 1


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


# -- what the spec adds to a run: resize, augmentation, computed normalisation, fine-tuning --------

AUGMENT = {
    "random_crop": {"padding": 2},
    "hflip": {"p": 0.5},
    "color_jitter": {"brightness": 0.3, "contrast": 0.3},
    "rotation": {"degrees": 10},
}


class InputRecorder:
    """Wraps build_model so the built model records what it is given, in training and in eval mode."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.train: list[torch.Tensor] = []
        self.eval: list[torch.Tensor] = []
        real = build_model

        def build(spec: RunSpec, *models: Any) -> torch.nn.Module:
            model = real(spec, *models)
            model.register_forward_pre_hook(self.record)
            return model

        monkeypatch.setattr("worker.engine.build_model", build)

    def record(self, model: torch.nn.Module, inputs: tuple[torch.Tensor]) -> None:
        (self.train if model.training else self.eval).append(inputs[0].clone())


def test_training_batches_are_augmented_and_test_batches_only_resized_and_normalised(
    digits: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_spec(dataset={"name": "digits", "resize": 12}, augment=AUGMENT, epochs=2)
    recorder = InputRecorder(monkeypatch)

    records, _ = run(spec, digits)

    plain = Preprocess(digits.mean, digits.std, torch.device("cpu"), size=12)
    # Evaluation: the test set in order, in one batch per epoch, exactly as Preprocess makes it without augmentation.
    assert len(recorder.eval) == 2 and all(torch.equal(batch, plain(digits.test_x)) for batch in recorder.eval)
    assert all(batch.shape[1:] == (1, 12, 12) for batch in recorder.train)
    # Training: the same images, shuffled identically in both runs below, but augmented.
    unaugmented = InputRecorder(monkeypatch)
    run(make_spec(dataset={"name": "digits", "resize": 12}, epochs=2), digits)
    assert not torch.equal(recorder.train[0], unaugmented.train[0])
    assert records[1].test_acc > 0.5  # it still learns (chance is 0.1)


def test_augmented_runs_repeat_with_the_same_seed(digits: Dataset) -> None:
    first, _ = run(make_spec(augment=AUGMENT, seed=3, epochs=1), digits)
    second, _ = run(make_spec(augment=AUGMENT, seed=3, epochs=1), digits)
    plain, _ = run(make_spec(seed=3, epochs=1), digits)

    assert untimed(first) == untimed(second)
    assert first[0].train_loss != plain[0].train_loss


def test_prepared_describes_what_the_model_sees(digits: Dataset) -> None:
    """A fine-tuned ResNet18 on 1-channel digits resized to 32: 3 channels, computed mean/std, fc+layer4 trained."""
    spec = make_spec(
        {"arch": "resnet18", "head": {"kind": "mlp", "hidden": 16}},
        dataset={"name": "digits", "resize": 32, "normalize": "computed"},
        finetune={"train": ["fc", "layer4"], "lr": {"fc": 0.01, "layer4": 0.001}},
        optimizer={"name": "adam", "lr": 0.0001},
        epochs=1,
        batch_size=4,
    )
    tiny = dataclasses.replace(
        digits,
        train_x=digits.train_x[:8],
        train_y=digits.train_y[:8],
        test_x=digits.test_x[:4],
        test_y=digits.test_y[:4],
    )
    infos: list[RunInfo] = []

    records, result = run(spec, tiny, on_prepared=infos.append)

    [info] = infos
    assert info.image_size == [3, 32, 32] and (info.train_images, info.test_images) == (8, 4)
    assert (tuple(info.mean), tuple(info.std)) == (digits.mean, digits.std) and info.normalize == "computed"
    torch.manual_seed(0)
    model = build_model(spec)
    assert info.parameters == sum(p.numel() for p in model.parameters())
    trained = sum(p.numel() for p in [*model.fc.parameters(), *model.layer4.parameters()])
    assert info.trainable_parameters == trained < info.parameters
    assert info.lr_groups == ["fc", "layer4"] and records[0].lr == [0.01, 0.001]
    assert result.epochs_run == 1 and torch.tensor(result.confusion).sum() == 4


def test_a_cancel_while_the_dataset_loads_ends_the_run_without_waiting_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dataset download can take minutes: the cancel, not the download, decides when the run ends."""
    from worker import engine

    release = threading.Event()
    monkeypatch.setattr(engine, "load_dataset", lambda *_args: release.wait(60))  # a download that never ends
    asked = threading.Event()
    threading.Timer(0.3, asked.set).start()  # the cancel arrives (with a heartbeat's answer) meanwhile
    records: list[EpochRecord] = []
    result = engine.fit(make_spec(), data_dir=NO_DATA_DIR, on_epoch=records.append, should_stop=asked.is_set)
    assert (result.stopped, result.epochs_run, records) == ("cancelled", 0, [])
    assert not release.is_set()  # it returned while the "download" still hung
    release.set()


def test_a_cuda_out_of_memory_error_reads_as_one() -> None:
    from worker.tasks import failure_text

    class OutOfMemoryError(RuntimeError):  # torch.cuda.OutOfMemoryError, by name
        pass

    text = failure_text(OutOfMemoryError("Tried to allocate 2.00 GiB"), "Traceback ...")
    assert text.startswith("CUDA out of memory: this run needs more GPU memory than was free. Lower batch_size")
    assert "Tried to allocate 2.00 GiB" in text and text.endswith("Traceback ...")
    assert failure_text(ValueError("bad"), "tb").startswith("ValueError: bad\n\n")


def test_each_epoch_reports_its_system_figures_and_the_run_how_it_was_made(digits: Dataset) -> None:
    import platform

    import torchvision

    prepared: list[RunInfo] = []
    records, _ = run(make_spec(), digits, on_prepared=prepared.append)
    for record in records:
        assert record.system is not None
        assert record.system.rss_bytes > 10 * 2**20  # a process with torch loaded: tens of MB at least
        assert record.system.cpu_seconds > 0
        assert record.system.gpu_allocated_bytes is None and record.system.gpu_utilization is None  # CPU: null
    (info,) = prepared
    assert info.environment is not None
    assert (info.environment.torch, info.environment.torchvision) == (torch.__version__, torchvision.__version__)
    assert info.environment.python == platform.python_version() and info.environment.cuda is None
    assert info.environment.host and info.environment.device_name
    # The fingerprint is of the tensors trained on: the same data hashes the same, other data otherwise.
    again: list[RunInfo] = []
    run(make_spec(epochs=1), digits, on_prepared=again.append)
    fewer: list[RunInfo] = []
    smaller = dataclasses.replace(digits, train_x=digits.train_x[:100], train_y=digits.train_y[:100])
    run(make_spec(epochs=1), smaller, on_prepared=fewer.append)
    assert info.data_sha256 == again[0].data_sha256 != fewer[0].data_sha256


def test_a_run_with_explicit_normalisation_trains_on_exactly_those_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the engine from the spec: the dataset is loaded (not passed in), every batch the model sees is
    (x / 255 - mean) / std with the spec's values, and the run records them."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    class Watched(Preprocess):
        def __call__(self, images: torch.Tensor, augment: Any = None) -> torch.Tensor:
            out = super().__call__(images, augment)
            seen.append((images.clone(), out.clone()))
            return out

    monkeypatch.setattr(engine, "Preprocess", Watched)
    spec = make_spec(dataset={"name": "digits", "normalize": {"mean": [0.3], "std": [0.2]}, "train_limit": 256})
    infos: list[RunInfo] = []
    records: list[EpochRecord] = []

    result = fit(spec, data_dir=tmp_path, on_epoch=records.append, on_prepared=infos.append)

    assert result.stopped == "completed" and len(records) == 2 and records[-1].test_acc > 0.5
    (info,) = infos
    assert (info.mean, info.std) == ([0.3], [0.2])
    assert info.normalize == NormalizeValues(mean=[0.3], std=[0.2])
    assert seen
    for images, out in seen:
        assert torch.allclose(out, (images.float() / 255 - 0.3) / 0.2, atol=1e-5)
