"""The study pages in a real browser: a study's table updating live beside the reported figures, and the
new-study page from a preset through the preview to the queued study, with errors next to their variant."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from trainboard.presets import presets

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.conftest import LiveServer
    from tests.frontend.conftest import Worker

    MakeWorker = Callable[[int], Worker]

pytestmark = pytest.mark.browser


def create_study(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post("/api/studies", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def row(page: Page, run_id: int) -> Locator:
    return page.locator(f'#study-runs tr[data-run-id="{run_id}"]')


def test_the_study_page_shows_its_table_live_beside_the_reported_figures(
    page: Page, api: httpx.Client, worker: MakeWorker, screenshots: Path
) -> None:
    study = create_study(api, {"preset": "mnist-ablations", "set": {"epochs": 2, "dataset.train_limit": 512}})
    runs = study["data"]
    page.goto(f"/studies/{study['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text(presets()["mnist-ablations"].title)
    expect(page.locator("#study-runs tbody tr")).to_have_count(18)
    expect(page.locator("#study-counts")).to_have_text("18 runs: 18 queued")
    expect(page.locator("#override-note")).to_contain_text("epochs = 2")
    expect(page.locator("#override-note")).to_contain_text("dataset.train_limit = 512")
    first = row(page, runs[0]["id"])
    expect(first.locator('[data-field="label"]')).to_have_text("Basic FC")
    expect(first.locator('[data-field="label"]')).to_have_attribute("href", f"/runs/{runs[0]['id']}")
    expect(first.locator("td.reported")).to_have_text(["96 %", "115.84 s"])
    expect(row(page, runs[12]["id"]).locator(".variant-note")).to_have_text("99% already after epoch 1")
    expect(page.get_by_role("link", name="Compare runs")).to_have_attribute(
        "href", "/compare?runs=" + ",".join(str(r["id"]) for r in runs)
    )
    page.evaluate("window.notReloaded = true")

    basic = worker(runs[0]["id"])
    basic.claim()
    expect(first.locator(".badge[class*='status-']")).to_have_text("running")
    basic.progress(epoch=1, batch=4, batches=8)
    expect(first.locator(".progress-label")).to_have_text("epoch 1/2 · batch 4/8")
    basic.epoch(1, test_acc=0.9)
    expect(first.locator('[data-field="best"]')).to_have_text("90.00 %")
    basic.epoch(2, test_acc=0.875)
    result = {
        "stopped": "early_stopped",
        "stop_reason": "test_acc did not improve for 1 epoch; best at epoch 1",
        "epochs_run": 2,
        "confusion": [],
        "total_seconds": 3.4,
        "device": "cpu",
    }
    assert (
        basic.client.post(
            "/finish", json={"attempt": basic.attempt, "lease": basic.lease, "result": result}
        ).status_code
        == 200
    )
    expect(first.locator(".badge[class*='status-']")).to_have_text("succeeded")
    expect(first.locator('[data-field="final"]')).to_have_text("87.50 %")
    expect(first.locator('[data-field="time"]')).to_have_text("3.4 s")
    expect(first.locator('[data-field="stop-reason"]')).to_have_text(result["stop_reason"])
    norm = worker(runs[1]["id"])
    norm.claim()
    expect(page.locator("#study-counts")).to_have_text("18 runs: 1 succeeded, 1 running, 16 queued")
    assert api.post(f"/api/runs/{runs[2]['id']}/cancel").status_code == 200
    expect(row(page, runs[2]["id"]).locator(".badge[class*='status-']")).to_have_text("cancelled")
    expect(page.locator("#study-counts")).to_have_text("18 runs: 1 succeeded, 1 running, 15 queued, 1 cancelled")
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=screenshots / "study-live.png", full_page=True, animations="disabled")

    live_text = first.inner_text()
    page.reload()  # the server renders the row the live updates built
    assert row(page, runs[0]["id"]).inner_text() == live_text

    first.locator('[data-field="label"]').click()  # the run's page says which study it belongs to
    expect(page.locator("#run-label")).to_have_text("Basic FC")
    expect(page.locator("#run-study")).to_have_attribute("href", f"/studies/{study['id']}")
    expect(page.locator("#stop-note")).to_contain_text("Stopped early: test_acc did not improve for 1 epoch")

    page.goto("/studies")
    listed = page.locator(f'#studies tr[data-study-id="{study["id"]}"]')
    expect(listed.locator(".counts-text")).to_have_text("1 succeeded · 1 running · 15 queued · 1 cancelled")
    expect(listed.locator("code")).to_have_text("mnist-ablations")
    page.screenshot(path=screenshots / "studies.png", full_page=True, animations="disabled")


def test_a_preset_study_from_the_new_study_page(page: Page, api: httpx.Client, screenshots: Path) -> None:
    page.goto("/studies")
    expect(page.locator("#empty-state")).to_contain_text("No studies yet")
    page.get_by_role("link", name="New study").first.click()
    expect(page).to_have_url(re.compile(r"/studies/new$"))
    page.get_by_label("Preset").select_option("cifar10-models")
    info = page.locator("#preset-variants tbody tr")
    expect(info).to_have_count(12)
    expect(info.nth(6)).to_contain_text("Aug: FC CosineAnnealing")
    expect(info.nth(6)).to_contain_text("51 %")
    expect(info.nth(6)).to_contain_text("1,333.23 s")
    expect(info.nth(6)).to_contain_text("unbalanced classes")
    expect(page.locator("#editor")).not_to_have_attribute("open", "")  # the table shows it; the editor is folded
    expect(page.get_by_label("Name")).to_have_value(presets()["cifar10-models"].title)
    page.screenshot(path=screenshots / "study-new-preset.png", full_page=True, animations="disabled")

    page.get_by_label("Applied to every variant").fill('{"epochs": 1, "dataset.train_limit": 256}')
    with page.expect_response("**/api/studies/preview") as previewed:
        page.get_by_role("button", name="Preview").click()
    assert json.loads(previewed.value.request.post_data or "{}") == {
        "preset": "cifar10-models",
        "name": presets()["cifar10-models"].title,
        "description": presets()["cifar10-models"].description,
        "set": {"epochs": 1, "dataset.train_limit": 256},
    }
    planned = page.locator("#preview-table tbody tr")
    expect(planned).to_have_count(12)
    expect(page.locator("#preview-summary")).to_contain_text("12 runs would be queued")
    expect(planned.nth(7)).to_contain_text("custom_cnn blocks 64, 128")
    expect(planned.nth(9)).to_contain_text("vgg16 pretrained, linear head")
    expect(planned.nth(0)).to_contain_text("1 epoch, batch 64")
    expect(planned.nth(0)).to_contain_text("first 256/all train/test images")
    page.screenshot(path=screenshots / "study-new-preview.png", full_page=True, animations="disabled")
    assert api.get("/api/studies").json()["count"] == 0  # a preview queues nothing

    page.get_by_role("button", name="Queue study").click()
    expect(page).to_have_url(re.compile(r"/studies/\d+$"))
    study = api.get(f"/api/studies/{page.url.rsplit('/', 1)[1]}").json()
    assert (study["preset"], study["overrides"], study["runs"]) == (
        "cifar10-models",
        {"epochs": 1, "dataset.train_limit": 256},
        12,
    )
    expect(page.locator("#study-runs tbody tr")).to_have_count(12)
    expect(page.locator("#study-runs tbody tr").nth(3).locator("td.reported")).to_have_text(["81 %", "300.29 s"])


def test_a_study_of_your_own_with_errors_next_to_their_variant(
    page: Page, api: httpx.Client, screenshots: Path
) -> None:
    page.goto("/studies/new")
    expect(page.locator("#editor")).to_have_attribute("open", "")
    expect(page.locator("#variants > li")).to_have_count(2)  # an example to start from
    page.get_by_label("Name", exact=True).fill("digits kernels")
    page.get_by_label("Overrides of variant 2").fill('{"model.kernel_sizes": [3]}')
    page.get_by_role("button", name="Add variant").click()
    expect(page.get_by_label("Label of variant 3")).to_be_focused()
    page.get_by_label("Label of variant 3").fill("mlp")
    page.get_by_label("Overrides of variant 3").fill('{"model": {"arch": "mlp", "hidden": [0]}}')
    page.get_by_role("button", name="Add variant").click()
    page.get_by_label("Label of variant 4").fill("broken json")
    page.get_by_label("Overrides of variant 4").fill('{"epochs": ')

    page.get_by_role("button", name="Preview").click()  # invalid JSON is caught before anything is sent
    fourth = page.locator("#variants > li").nth(3)
    expect(fourth.locator(".v-errors")).to_contain_text("Not valid JSON")
    expect(page.locator("#study-errors")).to_contain_text("Nothing was sent")
    fourth.get_by_role("button", name="Remove variant").click()
    expect(page.locator("#variants > li")).to_have_count(3)

    with page.expect_response("**/api/studies/preview") as answer:
        page.get_by_role("button", name="Preview").click()
    assert answer.value.status == 422
    rows = page.locator("#variants > li")
    expect(rows.nth(0).locator(".v-errors")).to_have_text("")
    expect(rows.nth(1)).to_have_class(re.compile(r"\binvalid\b"))
    expect(rows.nth(1).locator(".v-errors")).to_have_text(
        "model: kernel_sizes has 1 entries but channels has 2: give one kernel size per conv layer"
    )
    expect(rows.nth(2).locator(".v-errors")).to_have_text("model.hidden.0: Input should be greater than or equal to 1")
    expect(page.locator("#study-errors")).to_contain_text("Nothing was queued: 2 errors")
    expect(page.locator("#study-errors")).to_contain_text("Variant 3 (mlp): model.hidden.0")
    expect(page.locator("#preview-section")).to_be_hidden()
    page.screenshot(path=screenshots / "study-new-errors.png", full_page=True, animations="disabled")

    page.get_by_label("Overrides of variant 2").fill('{"model.kernel_sizes": [5, 5]}')
    page.get_by_label("Overrides of variant 3").fill('{"model": {"arch": "mlp", "hidden": [32]}}')
    page.get_by_label("Applied to every variant").fill('{"epochs": 2}')
    page.get_by_role("button", name="Queue study").click()
    expect(page).to_have_url(re.compile(r"/studies/\d+$"))
    study = api.get(f"/api/studies/{page.url.rsplit('/', 1)[1]}").json()
    assert study["preset"] is None and study["name"] == "digits kernels"
    assert [(r["label"], r["spec"]["model"]["arch"], r["spec"]["epochs"]) for r in study["data"]] == [
        ("kernel=3", "cnn", 2),
        ("kernel=5", "cnn", 2),
        ("mlp", "mlp", 2),
    ]
    assert study["data"][1]["spec"]["model"]["kernel_sizes"] == [5, 5]
    expect(page.locator("#study-runs th.reported")).to_have_count(0)  # no reported figures, no such columns


def test_an_edited_preset_is_queued_as_a_study_of_your_own_keeping_the_reported_figures(
    page: Page, api: httpx.Client, live_server: LiveServer
) -> None:
    page.goto("/studies/new?preset=mnist-ablations")
    expect(page.get_by_label("Preset")).to_have_value("mnist-ablations")
    page.locator("#editor-summary").click()
    for index in range(17, 2, -1):  # keep the first three variants
        page.locator("#variants > li").nth(index).get_by_role("button", name="Remove variant").click()
    expect(page.locator("#editor-summary")).to_have_text("Base spec and variants (3 variants)")
    page.get_by_label("Applied to every variant").fill('{"epochs": 1}')
    with page.expect_response("**/api/studies") as answer:
        page.get_by_role("button", name="Queue study").click()
    body = json.loads(answer.value.request.post_data or "{}")
    assert "preset" not in body and [v["label"] for v in body["variants"]] == ["Basic FC", "Norm", "Larger FC"]
    expect(page).to_have_url(re.compile(r"/studies/\d+$"))
    study = api.get(f"/api/studies/{page.url.rsplit('/', 1)[1]}").json()
    assert study["preset"] is None and study["runs"] == 3
    assert study["reported"]["Norm"]["test_acc"] == 0.97
    expect(page.locator("#study-runs tbody tr").nth(1).locator("td.reported")).to_have_text(["97 %", "122.81 s"])


PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}


def values(inputs: Locator) -> list[str]:
    """The values of these inputs, in order (what the page wrote into them on the last input event)."""
    return inputs.evaluate_all("(inputs) => inputs.map((input) => input.value)")  # type: ignore[no-any-return]


def fits(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_the_sweep_preview_lists_the_planned_runs_and_their_count(
    page: Page, api: httpx.Client, screenshots: Path
) -> None:
    page.goto("/studies/new")
    page.get_by_label("Sweep: a grid over spec fields").check()
    expect(page.locator("#sweep-count")).to_have_text("2 runs (2 points × 1 repeat)")
    page.get_by_role("button", name="Add field").click()
    page.locator("#g-path-1").fill("batch_size")
    page.locator("#g-values-1").fill("32, 64")
    page.get_by_label("Repeats (seeds per point)").fill("2")
    expect(page.locator("#sweep-count")).to_have_text("8 runs (4 points × 2 repeats)")
    page.get_by_label("Name", exact=True).fill("lr x batch")
    with page.expect_response("**/api/sweeps/preview") as previewed:
        page.get_by_role("button", name="Preview").click()
    assert previewed.value.status == 200
    planned = page.locator("#preview-table tbody tr")
    expect(planned).to_have_count(8)  # every run, a point's repeats one after the other
    expect(page.locator("#preview-summary")).to_have_text("8 runs would be queued as “lr x batch”.")
    expect(planned.locator("td.label")).to_have_text(
        [f"optimizer.lr={lr}, batch_size={b}" for lr in ("0.1", "0.01") for b in (32, 64) for _ in range(2)]
    )
    expect(planned.nth(0)).to_contain_text("sgd lr 0.1")
    expect(planned.nth(7)).to_contain_text("sgd lr 0.01")
    expect(planned.nth(7)).to_contain_text("batch 64")
    for width, viewport in (("1440", DESKTOP), ("390", PHONE)):
        page.set_viewport_size(viewport)
        assert fits(page), f"the sweep preview scrolls sideways at {width} px"
        page.screenshot(path=screenshots / f"study-new-sweep-{width}.png", full_page=True, animations="disabled")
    assert api.get("/api/studies").json()["count"] == 0  # a preview queues nothing

    page.get_by_label("Repeats (seeds per point)").fill("20")
    page.locator("#g-values-1").fill(", ".join(str(b) for b in range(8, 28)))
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#study-errors")).to_contain_text("the limit is 200")
    expect(page.locator("#preview-section")).to_be_hidden()  # no preview of a sweep that would be refused


def test_the_variants_fields_table_and_their_json_stay_in_step(
    page: Page, api: httpx.Client, screenshots: Path
) -> None:
    page.goto("/studies/new")
    expect(page.locator('#spec-fields option[value="optimizer.lr"]')).to_have_count(1)  # the fields offered
    second = page.locator("#variants > li").nth(1)
    fields = second.locator(".v-fields tbody tr")
    expect(fields).to_have_count(1)  # the example's {"model.kernel_sizes": [5, 5]}, as a row
    expect(fields.locator(".o-path")).to_have_value("model.kernel_sizes")
    expect(fields.locator(".o-value")).to_have_value("[5, 5]")
    expect(fields.locator(".o-path")).to_have_attribute("list", "spec-fields")

    # a row added in the table goes into the JSON, its value read as JSON when it reads as JSON
    page.get_by_role("button", name="Add a field to variant 2").click()
    expect(page.get_by_label("Field 2 of variant 2", exact=True)).to_be_focused()
    page.get_by_label("Field 2 of variant 2", exact=True).fill("optimizer.lr")
    page.get_by_label("Value 2 of variant 2", exact=True).fill("0.05")
    overrides = page.get_by_label("Overrides of variant 2")
    assert json.loads(overrides.input_value()) == {"model.kernel_sizes": [5, 5], "optimizer.lr": 0.05}
    page.get_by_role("button", name="Add a field to variant 1").click()
    page.get_by_label("Field 1 of variant 1", exact=True).fill("optimizer.name")
    page.get_by_label("Value 1 of variant 1", exact=True).fill("adam")  # not JSON: a string
    assert json.loads(page.get_by_label("Overrides of variant 1").input_value()) == {"optimizer.name": "adam"}

    # the JSON edited goes into the table; invalid JSON is said and leaves the table as it was
    page.get_by_label("Overrides of variant 1").fill('{"epochs": 3, "optimizer.nesterov": true, "name": "0.5"}')
    first = page.locator("#variants > li").nth(0)
    assert values(first.locator(".o-path")) == ["epochs", "optimizer.nesterov", "name"]
    assert values(first.locator(".o-value")) == ["3", "true", '"0.5"']  # a string that reads as a number
    page.get_by_label("Overrides of variant 1").fill('{"epochs": ')
    expect(first.locator(".v-json-error")).to_contain_text("Not valid JSON")
    assert values(first.locator(".o-path")) == ["epochs", "optimizer.nesterov", "name"]
    page.get_by_role("button", name="Remove field 3 of variant 1").click()  # the table writes valid JSON again
    expect(first.locator(".v-json-error")).to_be_hidden()
    expect(page.get_by_role("button", name="Add a field to variant 1")).to_be_focused()  # focus is not lost
    assert json.loads(page.get_by_label("Overrides of variant 1").input_value()) == {
        "epochs": 3,
        "optimizer.nesterov": True,
    }
    page.get_by_label("Value 2 of variant 1", exact=True).fill("false")
    page.get_by_label("Field 2 of variant 1", exact=True).fill("optimizer.momentum")
    page.get_by_label("Value 2 of variant 1", exact=True).fill("0.9")
    for width, viewport in (("1440", DESKTOP), ("390", PHONE)):
        page.set_viewport_size(viewport)
        assert fits(page), f"the variants editor scrolls sideways at {width} px"
        page.screenshot(path=screenshots / f"study-new-fields-{width}.png", full_page=True, animations="disabled")
    page.set_viewport_size(DESKTOP)

    page.get_by_label("Name", exact=True).fill("fields")
    with page.expect_response("**/api/studies/preview") as previewed:
        page.get_by_role("button", name="Preview").click()
    body = json.loads(previewed.value.request.post_data or "{}")
    assert [v["set"] for v in body["variants"]] == [
        {"epochs": 3, "optimizer.momentum": 0.9},
        {"model.kernel_sizes": [5, 5], "optimizer.lr": 0.05},
    ]
    planned = page.locator("#preview-table tbody tr")
    expect(planned.nth(0)).to_contain_text("sgd lr 0.01 momentum 0.9")
    expect(planned.nth(0)).to_contain_text("3 epochs")
    expect(planned.nth(1)).to_contain_text("sgd lr 0.05")

    page.get_by_role("button", name="Queue study").click()
    expect(page).to_have_url(re.compile(r"/studies/\d+$"))
    study = api.get(f"/api/studies/{page.url.rsplit('/', 1)[1]}").json()
    specs = [r["spec"] for r in study["data"]]
    assert (specs[0]["epochs"], specs[0]["optimizer"]["momentum"]) == (3, 0.9)
    assert (specs[1]["optimizer"]["lr"], specs[1]["model"]["kernel_sizes"]) == (0.05, [5, 5])
