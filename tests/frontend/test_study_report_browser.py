"""Sweeps and study reports in a real browser: the sweep mode's live count before queueing, and a study
with seeds whose report draws a mean curve with a ± std band beside a single run, per-class bars and the
summary table, and whose study page folds the seeds under one row."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from playwright.sync_api import Page, expect

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.frontend.conftest import Worker

    MakeWorker = Callable[[int], Worker]

pytestmark = pytest.mark.browser
BASE = {"dataset": {"name": "digits"}, "model": {"arch": "mlp", "hidden": [16]}, "epochs": 2, "device": "cpu"}


def test_sweep_mode_counts_the_grid_live_then_queues_it(page: Page, api: httpx.Client) -> None:
    page.goto("/studies/new")
    page.get_by_label("Sweep: a grid over spec fields").check()
    expect(page.locator("#sweep-count")).to_have_text("2 runs (2 points × 1 repeat)")
    page.get_by_role("button", name="Add field").click()
    page.locator("#g-path-1").fill("batch_size")
    page.locator("#g-values-1").fill("32, 64, 128")
    page.get_by_label("Repeats (seeds per point)").fill("2")
    expect(page.locator("#sweep-count")).to_have_text("12 runs (6 points × 2 repeats)")
    expect(page.locator("#sweep-labels li").first).to_have_text("optimizer.lr=0.1, batch_size=32")
    page.get_by_label("Repeats (seeds per point)").fill("20")
    expect(page.locator("#sweep-count")).to_have_text("120 runs (6 points × 20 repeats)")
    page.locator("#g-values-1").fill(", ".join(str(b) for b in range(8, 28)))
    expect(page.locator("#sweep-count")).to_contain_text("800 runs (40 points x 20 repeats); the limit is 200")
    assert api.get("/api/studies").json()["count"] == 0  # counting queued nothing

    page.get_by_label("Repeats (seeds per point)").fill("1")
    page.locator("#g-values-1").fill("32, 64")
    expect(page.locator("#sweep-count")).to_have_text("4 runs (4 points × 1 repeat)")
    page.get_by_label("Name").fill("lr x batch")
    page.get_by_role("button", name="Queue study").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("lr x batch")
    expect(page.locator("#study-runs tbody tr")).to_have_count(4)
    expect(page.locator('#study-runs [data-field="label"]').last).to_have_text("optimizer.lr=0.01, batch_size=64")


def test_the_report_draws_mean_curves_with_a_band_and_per_class_bars(
    page: Page, api: httpx.Client, worker: MakeWorker, screenshots: Path
) -> None:
    response = api.post(
        "/api/studies",
        json={
            "name": "seeded",
            "base": BASE,
            "variants": [{"label": "three seeds", "repeats": 3}, {"label": "single"}],
        },
    )
    assert response.status_code == 201, response.text
    study = response.json()
    for index, run in enumerate(study["data"]):
        w = worker(run["id"])
        w.claim()
        w.epoch(1, test_acc=0.6 + index / 50)
        w.epoch(2, test_acc=0.8 + index / 50)
        assert w.finish(2, confusion=[]) == "succeeded"

    page.goto(f"/studies/{study['id']}")
    group = page.locator("#study-runs tr.group-row")
    expect(group).to_have_count(1)
    expect(group.locator('[data-field="best"]')).to_have_text("82.00 % ± 2.00 % (3)")
    expect(page.locator("#study-runs tr.repeat-row").first).to_be_hidden()
    group.get_by_role("button").click()
    expect(page.locator("#study-runs tr.repeat-row")).to_have_count(3)
    expect(page.locator("#study-runs tr.repeat-row").nth(2)).to_be_visible()
    expect(page.locator("#study-runs tr.repeat-row").nth(2)).to_contain_text("three seeds · seed 2")

    page.get_by_role("link", name="Report").click()
    expect(page).to_have_url(f"{page.url.split('/studies')[0]}/studies/{study['id']}/report")
    expect(page.locator("body[data-report-ready=true]")).to_have_count(1)
    expect(page.locator("#report-summary tbody tr")).to_have_count(2)
    expect(page.locator("#report-summary tbody tr").first).to_contain_text("82.00 % ± 2.00 %")
    # One rule for every table on a page: the unit in each cell ("82.00 %"), never also in the header.
    heads = page.eval_on_selector_all("#report-summary thead th", "ths => ths.map(th => th.textContent)")
    assert "Test acc" in heads and "Time" in heads and not any("(" in head for head in heads), heads
    for metric in ("test_acc", "train_loss", "test_loss"):
        names = page.evaluate(f"document.getElementById('report-{metric}').data.map((t) => t.name)")
        assert names == ["three seeds − std", "three seeds + std", "three seeds (mean of 3)", "single"]
    mean = page.evaluate("document.getElementById('report-test_acc').data[2].y")
    assert mean == pytest.approx([0.62, 0.82])
    bars = page.evaluate("document.getElementById('report-per-class').data.map((t) => [t.name, t.y.length])")
    assert bars == [["three seeds", 10], ["single", 10]]
    expect(page.locator("#report-test_acc .scatterlayer .trace")).to_have_count(4)
    page.screenshot(path=screenshots / "study-report.png", full_page=True, animations="disabled")


def test_the_report_page_shows_the_numbers_report_md_gives_for_a_study_with_a_failed_repeat(
    page: Page, api: httpx.Client, worker: MakeWorker
) -> None:
    study = api.post(
        "/api/studies", json={"name": "with a failure", "base": BASE, "variants": [{"label": "v", "repeats": 3}]}
    )
    assert study.status_code == 201, study.text
    for index, run in enumerate(study.json()["data"]):
        w = worker(run["id"])
        w.claim()
        w.epoch(1, test_acc=0.2 if index == 1 else 0.6 + index / 20)
        if index == 1:  # the failed repeat: it trained one epoch far worse, then broke
            w._post("/finish", {"attempt": w.attempt, "lease": w.lease, "error": "RuntimeError: out of memory"})
            continue
        w.epoch(2, test_acc=0.8 + index / 20)
        assert w.finish(2, confusion=[]) == "succeeded"
    study_id = study.json()["id"]
    markdown = api.get(f"/api/studies/{study_id}/report.md").text
    assert "| v | 2 | 85.00 ± 7.07 |" in markdown  # the two succeeded seeds: 0.8 and 0.9

    page.goto(f"/studies/{study_id}/report")
    expect(page.locator("body[data-report-ready=true]")).to_have_count(1)
    expect(page.locator("#report-summary tbody tr").first).to_contain_text("85.00 % ± 7.07 %")
    names = page.evaluate("document.getElementById('report-test_acc').data.map((t) => t.name)")
    assert names[-1] == "v (mean of 2)"
    assert page.evaluate("document.getElementById('report-test_acc').data.at(-1).y") == pytest.approx([0.65, 0.85])


def test_the_study_page_shows_the_servers_mean_and_std_of_a_group_live(
    page: Page, api: httpx.Client, worker: MakeWorker
) -> None:
    response = api.post("/api/studies", json={"name": "live", "base": BASE, "variants": [{"label": "s", "repeats": 2}]})
    assert response.status_code == 201, response.text
    study = response.json()
    page.goto(f"/studies/{study['id']}")
    group = page.locator("#study-runs tr.group-row")
    expect(group.locator('[data-field="best"]')).to_have_text("—")
    for index, run in enumerate(study["data"]):
        w = worker(run["id"])
        w.claim()
        w.epoch(1, test_acc=0.7 + index / 10)
        assert w.finish(1, confusion=[]) == "succeeded"
        expected = "70.00 % (1)" if index == 0 else "75.00 % ± 7.07 % (2)"
        expect(group.locator('[data-field="best"]')).to_have_text(expected)
        expect(group.locator('[data-field="group-status"]')).to_have_text(f"{index + 1}/2 succeeded")
