"""worker/graphs.py on the CPU: the switch falls back to eager with one log line and changes nothing, which
batches would be replayed, when graphs cannot be used, and the learning rates a captured step reads.

The captures themselves need a GPU: benchmarks/graphs_check.py compares graphed and eager runs there."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.optim.lr_scheduler import MultiStepLR

from trainboard.protocol import MEASURED_FIELDS, EpochRecord, RunResult
from trainboard.spec import RunSpec
from worker.data import Dataset
from worker.engine import fit
from worker.graphs import WARMUP_STEPS, LearningRates, graphed_step, route, unsupported_reason

NO_DATA_DIR = Path("/nonexistent/trainboard-data")  # the tests pass the dataset in
CUDA = torch.device("cuda")  # only named: nothing here runs on it


def make_spec(**fields: Any) -> RunSpec:
    """Every random draw the engine makes: shuffle, dropout, crop and flip; and a schedule that moves the rate."""
    spec: dict[str, Any] = {
        "dataset": {"name": "digits", "train_limit": 300, "test_limit": 100},
        "model": {"arch": "mlp", "hidden": [32], "batch_norm": True, "dropout": 0.2},
        "augment": {"random_crop": {"padding": 1}, "hflip": {"p": 0.5}},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "scheduler": {"name": "multistep", "milestones": [1], "gamma": 0.5},
        "epochs": 2,
        "batch_size": 64,  # 300 images: 4 full batches and a partial one of 44
        "device": "cpu",
    }
    return RunSpec.model_validate(spec | fields)


def run(spec: RunSpec, dataset: Dataset) -> tuple[list[dict[str, Any]], RunResult]:
    records: list[EpochRecord] = []
    result = fit(spec, data_dir=NO_DATA_DIR, on_epoch=records.append, dataset=dataset)
    return [record.model_dump(exclude=set(MEASURED_FIELDS)) for record in records], result


def graph_log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "worker.graphs"]


def test_cuda_graphs_on_the_cpu_train_eagerly_bit_identical_and_say_why_once(
    digits: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="worker.graphs")
    eager_records, eager_result = run(make_spec(), digits)
    assert graph_log_lines(caplog) == []  # the switch off says nothing

    graphed_records, graphed_result = run(make_spec(cuda_graphs=True), digits)

    assert graph_log_lines(caplog) == [
        "cuda_graphs: training eagerly: the run is on cpu, and CUDA graphs need a CUDA device"
    ]
    assert [r["lr"] for r in graphed_records] == [[0.05], [0.025]]
    assert graphed_records == eager_records  # every loss, accuracy and per-class accuracy, to the bit
    assert graphed_result.confusion == eager_result.confusion
    assert graphed_result.epochs_run == 2


@pytest.mark.parametrize(
    ("batch_images", "warmed_up", "captured", "failed", "expected"),
    [
        (64, 0, False, False, "warm-up"),
        (64, WARMUP_STEPS - 1, False, False, "warm-up"),
        (64, WARMUP_STEPS, False, False, "capture"),
        (64, WARMUP_STEPS, True, False, "replay"),
        (44, WARMUP_STEPS, True, False, "eager"),  # the epoch's partial last batch: never captured
        (44, 0, False, False, "eager"),  # nor counted as a warm-up of the full batch's step
        (64, WARMUP_STEPS, False, True, "eager"),  # after a capture that raised: eager for the rest of the run
        (64, WARMUP_STEPS, True, True, "eager"),
    ],
)
def test_route(batch_images: int, warmed_up: int, captured: bool, failed: bool, expected: str) -> None:
    assert route(batch_images, 64, warmed_up, captured, failed) == expected


def sgd(fused: bool | None = None) -> torch.optim.SGD:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.1, momentum=0.9, fused=fused)


def test_unsupported_reason() -> None:
    assert unsupported_reason(torch.device("cpu"), sgd(), 64, 1000) == (
        "the run is on cpu, and CUDA graphs need a CUDA device"
    )
    # The foreach and single-tensor SGD steps may read a tensor learning rate on the host: not capturable.
    assert unsupported_reason(CUDA, sgd(), 64, 1000) == (
        "SGD is not fused, and only its fused step reads the learning rate on the device"
    )
    assert unsupported_reason(CUDA, sgd(fused=True), 64, 63) == (
        "no full batch to capture: 63 training images, batch_size 64"
    )
    assert unsupported_reason(CUDA, sgd(fused=True), 64, 64) is None


def test_graphed_step_where_graphs_cannot_be_used_is_the_eager_step_itself(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="worker.graphs")

    def eager(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return images, labels

    step = graphed_step(eager, device=CUDA, optimizer=sgd(), batch_size=64, train_images=1000)

    assert step is eager
    assert graph_log_lines(caplog) == [
        "cuda_graphs: training eagerly: SGD is not fused, and only its fused step reads the learning rate on the device"
    ]


def test_learning_rates_follow_the_schedule_per_group_without_a_recapture() -> None:
    """A step that reads its rates from the tensors (as a captured one does) trains like one reading the floats,
    through a schedule's drops, per param group. Rates that float32 holds exactly make it bit-identical."""
    torch.manual_seed(0)
    start = [torch.randn(4), torch.randn(2)]

    def optimizer() -> tuple[torch.optim.SGD, list[torch.nn.Parameter]]:
        params = [torch.nn.Parameter(p.clone()) for p in start]
        groups = [{"params": [params[0]], "lr": 0.5}, {"params": [params[1]], "lr": 0.125}]
        return torch.optim.SGD(groups, lr=0.5, momentum=0.9), params

    reference, reference_params = optimizer()
    graphed, graphed_params = optimizer()
    reference_schedule = MultiStepLR(reference, milestones=[1, 2], gamma=0.5)
    graphed_schedule = MultiStepLR(graphed, milestones=[1, 2], gamma=0.5)
    rates = LearningRates(graphed, torch.device("cpu"))

    seen: list[list[float]] = []
    for epoch in range(4):
        for batch in range(2):
            grads = [torch.full_like(p, float(epoch + batch + 1)) for p in start]
            for params in (reference_params, graphed_params):
                for param, grad in zip(params, grads, strict=True):
                    param.grad = grad.clone()
            reference.step()
            rates.refresh()  # what each replay does
            with rates.in_optimizer():
                assert all(isinstance(group["lr"], torch.Tensor) for group in graphed.param_groups)
                graphed.step()
        seen.append([tensor.item() for tensor in rates.tensors])
        reference_schedule.step()
        graphed_schedule.step()

    assert seen == [[0.5, 0.125], [0.25, 0.0625], [0.125, 0.03125], [0.125, 0.03125]]
    assert [group["lr"] for group in graphed.param_groups] == [0.125, 0.03125]  # floats again, for records
    assert all(type(group["lr"]) is float for group in graphed.param_groups)
    for mine, theirs in zip(graphed_params, reference_params, strict=True):
        assert torch.equal(mine, theirs)


def test_capturable_is_set_for_the_capture_only() -> None:
    adam = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=0.001)
    rates = LearningRates(adam, torch.device("cpu"))

    with rates.in_optimizer():
        assert adam.param_groups[0]["capturable"] is True
        assert adam.param_groups[0]["lr"] is rates.tensors[0]
    assert adam.param_groups[0]["capturable"] is False and adam.param_groups[0]["lr"] == 0.001

    with pytest.raises(RuntimeError, match="in the capture"), rates.in_optimizer():
        raise RuntimeError("in the capture")
    assert adam.param_groups[0]["capturable"] is False and adam.param_groups[0]["lr"] == 0.001
