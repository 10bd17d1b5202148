"""The comparison's own rules: the config diff, downsampled curves."""

from __future__ import annotations

import random

import pytest

from backend.services import comparison
from tests.backend.services.test_statistics import records


def test_diff_hides_equal_fields_and_compares_nested_fields_and_lists() -> None:
    a = {"epochs": 10, "model": {"arch": "cnn", "kernel_sizes": [3, 3], "pool": "max"}, "optimizer": {"lr": 0.01}}
    b = {"epochs": 10, "model": {"arch": "cnn", "kernel_sizes": [3, 9], "pool": "max"}, "optimizer": {"lr": 0.01}}
    c = {"epochs": 10, "model": {"arch": "mlp", "hidden": [64]}, "optimizer": {"lr": 0.01}}
    assert comparison.config_diff([a, b]) == {"model.kernel_sizes": [[3, 3], [3, 9]]}
    diff = comparison.config_diff([a, b, c])
    assert diff == {
        "model.arch": ["cnn", "cnn", "mlp"],
        "model.hidden": [None, None, [64]],
        "model.kernel_sizes": [[3, 3], [3, 9], None],
        "model.pool": ["max", "max", None],
    }
    everything = comparison.config_diff([a, b], only_differences=False)
    assert everything["epochs"] == [10, 10] and everything["optimizer.lr"] == [0.01, 0.01]


@pytest.mark.parametrize("n,limit", [(10, 500), (1000, 100), (1001, 37), (5000, 4), (7, 3)])
def test_downsampling_keeps_first_last_min_max_and_the_limit(n: int, limit: int) -> None:
    rng = random.Random(n)
    xs = [float(i) for i in range(n)]
    ys = [rng.gauss(0, 1) for _ in range(n)]
    out_x, out_y = comparison.downsample(xs, ys, limit)
    assert len(out_x) == len(out_y) <= limit
    assert out_x == sorted(out_x)
    assert out_x[0] == xs[0] and out_x[-1] == xs[-1]
    if n > limit >= 4:
        windows = limit // 4
        for w in range(windows):  # every window keeps its own extremes
            window = ys[w * n // windows : (w + 1) * n // windows]
            assert min(window) in out_y and max(window) in out_y
    if n <= limit:
        assert (out_x, out_y) == (xs, ys)
    assert max(ys) in out_y or limit < 4
    assert all(y == ys[int(x)] for x, y in zip(out_x, out_y, strict=True))


def test_series_against_epoch_or_elapsed_seconds() -> None:
    data = records([0.7, 0.9, 0.85])
    assert comparison.series(data, "test_acc", "epoch", 500) == {"x": [1.0, 2.0, 3.0], "y": [0.7, 0.9, 0.85]}
    assert comparison.series(data, "lr", "seconds", 500) == {"x": [2.0, 4.0, 6.0], "y": [0.1, 0.05, 0.1 / 3]}


def test_the_diff_tells_apart_runs_made_on_other_data_or_software() -> None:
    from datetime import UTC, datetime

    from trainboard.protocol import Environment, Progress, RunInfo
    from trainboard.schemas import ProgressBar, RunPublic, Summary

    def made(data: str, torch_version: str) -> RunPublic:
        environment = Environment(
            trainboard="0.1.0", python="3.11.7", torch=torch_version, torchvision="0.29.1", device_name="cpu", host="h"
        )
        info = RunInfo(
            train_images=1, test_images=1, image_size=[1, 8, 8], mean=[0.5], std=[0.2], normalize="standard",
            parameters=1, trainable_parameters=1, environment=environment, data_sha256=data * 64,
        )  # fmt: skip
        return RunPublic(
            id=1, study_id=None, label=None, repeat=0, name="r", dataset="digits", arch="mlp", status="succeeded",
            attempt=1, spec={"epochs": 3}, created_at=datetime.now(UTC), started_at=None, finished_at=None,
            progress=Progress(epoch=0, batch=0, batches=0), progress_bar=ProgressBar(percent=100, label="epoch 0/3"),
            cancel_requested=False, device=None, error=None, info=info, tags=[], notes="",
            summary=Summary(
                best_test_acc=None, best_epoch=None, final_test_acc=None, epochs_done=0, total_seconds=None
            ),
        )  # fmt: skip

    diff = comparison.config_diff([comparison.as_made(r) for r in (made("a", "2.14.1"), made("b", "2.13.0"))])
    assert diff == {"made.data_sha256": ["a" * 64, "b" * 64], "made.torch": ["2.14.1", "2.13.0"]}
    assert comparison.config_diff([comparison.as_made(made("a", "2.14.1"))] * 2) == {}
