"""The runs list page reads its view from the URL as the API does: filters, sort, page and page size; a value
the API would refuse falls back to its default (never a 422 or 500), and the links carry the view along."""

from __future__ import annotations

import re
from typing import Any

import pytest

from backend.web import forms
from backend.web.runs_view import MAX_COLUMNS, RunsView, spec_value
from tests.backend.web.conftest import csrf_of
from tests.conftest import API, WORKER, tiny_spec
from trainboard.spec import SPEC_FIELDS


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-run-id="(\d+)"', html)]


def count_line(html: str) -> str:
    match = re.search(r'<p class="muted" id="runs-count"[^>]*>(.*?)</p>', html, re.S)
    assert match
    return match.group(1).strip()


@pytest.fixture
def runs(browser: Any) -> Any:
    """Seven runs: ids 1..7, names run-1..run-7; run 3 tagged "keep" with a note; run 5 on the cnn."""
    for i in range(1, 8):
        spec = tiny_spec() | {"name": f"run-{i}"}
        if i == 5:
            spec["model"] = {"arch": "cnn"}
        assert browser.post("/api/runs", json=spec, headers=API).status_code == 201
    patched = browser.patch("/api/runs/3", json={"tags": ["keep"], "notes": "the Baseline one"}, headers=API)
    assert patched.status_code == 200
    return browser


def test_default_view_is_newest_first_with_everything(runs: Any) -> None:
    html = runs.get("/").text
    assert row_ids(html) == [7, 6, 5, 4, 3, 2, 1]
    assert count_line(html) == "7 runs"
    assert 'data-default-view="true"' in html
    assert '<a class="chip" href="/?tag=keep">keep</a>' in html


@pytest.mark.parametrize(
    "query",
    [
        "per_page=7",
        "per_page=abc",
        "page=0",
        "page=-1",
        "page=x",
        "page=99999999999",
        "sort=bogus",
        "sort=-id",
        "status=exploded",
        "tag=Not%20A%20Tag",
        "q=" + "x" * 201,
        "dataset=" + "d" * 41,
        "arch=" + "a" * 41,
        "per_page=50&page=1&sort=-created",
    ],
)
def test_bad_or_default_params_fall_back_to_the_default_view(runs: Any, query: str) -> None:
    response = runs.get(f"/?{query}")
    assert response.status_code == 200
    assert row_ids(response.text) == [7, 6, 5, 4, 3, 2, 1]
    assert 'data-default-view="true"' in response.text


def test_filters_sort_and_search_narrow_the_rows(runs: Any) -> None:
    assert row_ids(runs.get("/?sort=name").text) == [1, 2, 3, 4, 5, 6, 7]
    assert row_ids(runs.get("/?sort=created").text) == [1, 2, 3, 4, 5, 6, 7]
    assert row_ids(runs.get("/?arch=cnn").text) == [5]
    assert row_ids(runs.get("/?tag=keep").text) == [3]
    searched = runs.get("/?q=baseline").text  # case-insensitive, in the notes
    assert row_ids(searched) == [3]
    assert count_line(searched) == "1 run matches"
    assert 'data-default-view="false"' in searched
    assert 'value="baseline"' in searched  # the search box shows what was searched
    assert row_ids(runs.get("/?q=run-6").text) == [6]  # in the name
    nothing = runs.get("/?status=succeeded").text
    assert row_ids(nothing) == [] and count_line(nothing) == "0 runs match"
    assert '<section class="empty card" id="no-match" >' in nothing


def test_a_page_past_the_end_shows_the_last_page(runs: Any) -> None:
    for i in range(8, 56):
        runs.post("/api/runs", json=tiny_spec() | {"name": f"run-{i}"}, headers=API)
    first = runs.get("/").text
    assert row_ids(first) == list(range(55, 5, -1)) and count_line(first) == "1–50 of 55 runs"
    second = runs.get("/?page=2").text
    assert row_ids(second) == [5, 4, 3, 2, 1] and count_line(second) == "51–55 of 55 runs"
    assert row_ids(runs.get("/?page=9").text) == [5, 4, 3, 2, 1]
    assert 'href="/?page=2"' in first and 'rel="prev" href="/"' in second


def test_links_keep_the_view_and_drop_defaults() -> None:
    view = RunsView.from_query({"q": " loss ", "tag": "Keep", "sort": "name", "page": "3", "per_page": "100"})
    assert view.filter.q == "loss" and view.filter.tag == "keep" and view.offset == 200
    assert view.query(page=1) == "tag=keep&q=loss&sort=name&per_page=100"
    assert view.query(sort="-created", page=1, per_page=50) == "tag=keep&q=loss"
    assert view.api_query() == "tag=keep&q=loss&sort=name&offset=200&limit=100"
    assert RunsView.from_query({}).query() == ""


def test_the_run_page_offers_its_weights_and_says_where_it_resumed(browser: Any) -> None:
    from tests.backend.api.test_artifacts import report, upload
    from tests.backend.api.test_runs import claim, create
    from tests.conftest import WORKER

    run = create(browser)
    attempt, lease = claim(browser, run["id"])
    page = browser.get(f"/runs/{run['id']}").text
    assert "download-weights" not in page and "run-resumed" not in page
    for epoch in (1, 2):
        report(browser, run["id"], attempt, lease, epoch)
    upload(browser, run["id"], attempt, lease, "checkpoint-2.safetensors", b"c" * 100, 2)
    killed = {"attempt": attempt, "lease": lease, "signal": 9}
    browser.post(f"/api/runs/{run['id']}/killed", json=killed, headers=WORKER)
    attempt, lease = claim(browser, run["id"])
    upload(browser, run["id"], attempt, lease, "weights.safetensors", b"w" * 2048, 2)
    page = browser.get(f"/runs/{run['id']}").text
    assert "resumed from epoch 2 (attempt 2)" in page
    assert f'href="/api/runs/{run["id"]}/weights"' in page and "Download weights (2.0 kB)" in page
    download = browser.get(f"/api/runs/{run['id']}/weights")  # with the browser's session, as the link does
    assert download.status_code == 200 and download.content == b"w" * 2048


def test_runs_view_columns_are_known_spec_fields_at_most_eight() -> None:
    view = RunsView.from_query({"cols": "optimizer.lr, batch_size,bogus,optimizer.lr,study"})
    assert view.columns == ("optimizer.lr", "batch_size", "study")
    assert view.ignored_columns == ("bogus",)
    assert view.query() == "cols=optimizer.lr%2Cbatch_size%2Cstudy"
    many = RunsView.from_query(
        {"cols": "epochs,batch_size,seed,device,name,optimizer.lr,optimizer.name,model.arch,dataset.name"}
    )
    assert len(many.columns) == MAX_COLUMNS and many.ignored_columns == ("dataset.name",)
    assert spec_value({"optimizer": {"lr": 0.1}, "model": {"hidden": [8]}}, "optimizer.lr") == 0.1
    assert spec_value({"model": {"hidden": [8]}}, "model.channels") is None
    assert "optimizer.lr" in SPEC_FIELDS and "model.head.kind" in SPEC_FIELDS and "scheduler.gamma" in SPEC_FIELDS


REPORT_NORMALIZE = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}


def post_info(browser: Any, run_id: int, normalize: Any, mean: list[float], std: list[float]) -> None:
    """What a worker sends once it has prepared the run (trainboard/protocol.py RunInfo)."""
    claim = browser.post(f"/api/runs/{run_id}/claim", json={"worker": "test:1"}, headers=WORKER).json()
    info = {
        "train_images": 50000,
        "test_images": 10000,
        "image_size": [3, 32, 32],
        "mean": mean,
        "std": std,
        "normalize": normalize,
        "parameters": 10,
        "trainable_parameters": 10,
    }
    body = {"attempt": claim["attempt"], "lease": claim["lease"], "info": info}
    assert browser.post(f"/api/runs/{run_id}/info", json=body, headers=WORKER).status_code == 200


def test_the_run_page_shows_the_explicit_normalisation_used_and_an_older_runs_mode(browser: Any) -> None:
    explicit = tiny_spec(dataset={"name": "cifar10", "normalize": REPORT_NORMALIZE})
    assert browser.post("/api/runs", json=explicit, headers=API).status_code == 201
    assert browser.post("/api/runs", json=tiny_spec(), headers=API).status_code == 201
    post_info(browser, 1, REPORT_NORMALIZE, REPORT_NORMALIZE["mean"], REPORT_NORMALIZE["std"])
    post_info(browser, 2, "standard", [0.4914, 0.4822, 0.4465], [0.247, 0.2435, 0.2616])  # as recorded before

    page = browser.get("/runs/1").text
    shown = 'data-field="info-normalize">explicit: mean 0.4914, 0.4822, 0.4465; std 0.2023, 0.1994, 0.201</dd>'
    assert shown in page
    assert 'data-field="info-std">0.2023, 0.1994, 0.2010</dd>' in page
    assert browser.get("/api/runs/1", headers=API).json()["info"]["normalize"] == REPORT_NORMALIZE
    assert 'data-field="info-normalize">standard</dd>' in browser.get("/runs/2").text


def test_the_form_queues_explicit_values_and_a_clone_shows_them_again(browser: Any) -> None:
    form = forms.form_defaults() | {
        "dataset.name": "cifar10",
        "dataset.normalize": "explicit",
        "dataset.normalize.mean": "0.4914, 0.4822, 0.4465",
        "dataset.normalize.std": "0.2023,0.1994, 0.2010",
        "model.arch": "mlp",
    }
    token = csrf_of(browser.get("/runs/new").text)
    queued = browser.post("/runs/new", data=form | {"csrf": token}, follow_redirects=False)
    assert queued.status_code == 303, queued.text
    assert browser.get("/api/runs/1", headers=API).json()["spec"]["dataset"]["normalize"] == REPORT_NORMALIZE

    clone = browser.get("/runs/new?clone=1").text
    assert '<option value="explicit" selected>' in clone
    assert 'name="dataset.normalize.mean" type="text" value="0.4914, 0.4822, 0.4465"' in clone
    assert 'name="dataset.normalize.std" type="text" value="0.2023, 0.1994, 0.201"' in clone
    explicit_part = re.search(r'data-when="dataset.normalize=explicit"([^>]*)>', clone)
    assert explicit_part and "hidden" not in explicit_part.group(1)  # shown, as the chosen option's part
    default = re.search(r'data-when="dataset.normalize=explicit"([^>]*)>', browser.get("/runs/new").text)
    assert default and "hidden disabled" in default.group(1)  # standard by default: no value inputs posted


def test_a_wrong_explicit_normalisation_is_said_beside_its_field(browser: Any) -> None:
    form = forms.form_defaults() | {
        "dataset.name": "cifar10",
        "dataset.normalize": "explicit",
        "dataset.normalize.mean": "0.5",
        "dataset.normalize.std": "0.2, 0.2, 0.2",
        "model.arch": "mlp",
    }
    token = csrf_of(browser.get("/runs/new").text)
    page = browser.post("/runs/new", data=form | {"csrf": token})
    assert page.status_code == 422
    error = re.search(r'<p class="error" id="f-dataset-normalize-mean-error">([^<]*)</p>', page.text)
    assert error and "cifar10 has 3 channels: give 3 values" in error.group(1), page.text
    assert 'name="dataset.normalize.mean" type="text" value="0.5"' in page.text  # kept to correct
