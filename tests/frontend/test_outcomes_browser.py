"""How runs and studies end, in a real browser, and a newcomer's first visit: a cancel notice gives way to
the final state, an ended run's progress says how it ended (list and run page alike), a failed run shows its
error first and no empty charts, a study whose runs all failed says so with the reasons, the run page puts
the curves under the summary cards, and an empty runs list says what to do and works from the keyboard."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.frontend.conftest import Worker

    MakeWorker = Callable[[int], Worker]

pytestmark = pytest.mark.browser
SPEC = {"dataset": {"name": "digits"}, "model": {"arch": "mlp", "hidden": [16]}, "epochs": 3, "device": "cpu"}
CONFUSION = [[1 if i == j else 0 for j in range(10)] for i in range(10)]


def create_run(api: httpx.Client, **overrides: Any) -> int:
    response = api.post("/api/runs", json=SPEC | overrides)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def fail(run: Worker, error: str) -> None:
    response = run.client.post("/finish", json={"attempt": run.attempt, "lease": run.lease, "error": error})
    assert response.json() == {"status": "failed"}


def top(locator: Locator) -> float:
    box = locator.bounding_box()
    assert box is not None
    return float(box["y"])


def test_the_cancel_notice_gives_way_to_the_final_state_live(page: Page, api: httpx.Client, worker: MakeWorker) -> None:
    run = worker(create_run(api, name="to-cancel"))
    run.claim()
    run.epoch(1, 0.5)
    page.goto(f"/runs/{run.run_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator("#run-notice")).to_contain_text("Cancel requested")
    assert run.progress(epoch=2, batch=3, batches=10) is True
    assert run.finish(epochs_run=1, confusion=CONFUSION, stopped="cancelled") == "cancelled"
    expect(page.locator("#run-notice")).to_have_text("Run cancelled: the epochs it finished are kept.")
    expect(page.locator("#run-progress-label")).to_have_text("cancelled after epoch 1/3")


def test_an_ended_run_shows_how_it_ended_in_the_list_and_on_its_page(
    page: Page, api: httpx.Client, worker: MakeWorker
) -> None:
    good, bad = worker(create_run(api, name="good")), worker(create_run(api, name="bad"))
    for run in (good, bad):
        run.claim()
        run.epoch(1, 0.6)
    page.goto("/")
    good_bar = page.locator(f'tr[data-run-id="{good.run_id}"] .progress')
    bad_bar = page.locator(f'tr[data-run-id="{bad.run_id}"] .progress')
    good.epoch(2, 0.7)
    good.epoch(3, 0.8)
    good.progress(epoch=3, batch=17, batches=23)  # a last heartbeat from inside the last epoch
    expect(good_bar.locator(".progress-label")).to_have_text("epoch 3/3")
    good.finish(epochs_run=3, confusion=CONFUSION)
    fail(bad, "RuntimeError: boom")
    expect(good_bar.locator(".progress-label")).to_have_text("finished: 3 epochs")  # live
    expect(good_bar.locator(".progress-track")).to_have_attribute("aria-valuenow", "100")
    expect(bad_bar.locator(".progress-label")).to_have_text("failed after epoch 1/3")
    page.reload()  # the server renders the same
    expect(good_bar.locator(".progress-label")).to_have_text("finished: 3 epochs")
    expect(bad_bar.locator(".progress-label")).to_have_text("failed after epoch 1/3")
    page.goto(f"/runs/{good.run_id}")
    expect(page.locator("#run-progress-label")).to_have_text("finished: 3 epochs")
    expect(page.locator('[data-field="progress"] .progress-fill')).to_have_attribute("style", "width: 100%")


def test_the_run_page_puts_the_curves_under_the_summary_cards(
    page: Page, api: httpx.Client, worker: MakeWorker
) -> None:
    run = worker(create_run(api))
    run.claim()
    run.epoch(1, 0.6)
    run.finish(epochs_run=1, confusion=CONFUSION)
    page.goto(f"/runs/{run.run_id}")
    page.wait_for_function("() => document.getElementById('loss-chart').data?.length === 2")
    summary, charts = page.locator("dl.summary"), page.locator("#run-charts")
    assert top(summary) < top(charts) < top(page.locator("#run-annotations")) < top(page.locator("section.details"))
    expect(page.locator("#charts-none")).to_be_hidden()


def test_a_failed_run_shows_its_error_first_and_no_empty_charts(
    page: Page, api: httpx.Client, worker: MakeWorker
) -> None:
    run = worker(create_run(api, name="broken"))
    run.claim()
    page.goto(f"/runs/{run.run_id}")
    expect(page.locator("#run-charts")).to_be_visible()  # running: the charts wait for its epochs
    fail(run, "Traceback (most recent call last):\nRuntimeError: CUDA out of memory")
    expect(page.locator("#run-charts")).to_be_hidden()  # live
    expect(page.locator("#charts-none")).to_have_text("No epoch was recorded, so there are no curves to draw.")
    page.reload()
    expect(page.locator("#run-error pre")).to_contain_text("CUDA out of memory")
    expect(page.locator("#run-charts")).to_be_hidden()
    expect(page.locator("#charts-none")).to_be_visible()
    assert top(page.locator("#run-error")) < top(page.locator("dl.summary"))  # the error first
    expect(page.locator("#run-progress-label")).to_have_text("failed before epoch 1")


def test_a_study_whose_runs_all_failed_says_no_run_succeeded_with_the_reasons(
    page: Page, api: httpx.Client, worker: MakeWorker
) -> None:
    study = api.post(
        "/api/studies", json={"name": "doomed", "base": SPEC, "variants": [{"label": "wide"}, {"label": "deep"}]}
    )
    assert study.status_code == 201, study.text
    study_id = study.json()["id"]
    runs = api.get(f"/api/studies/{study_id}").json()["data"]
    for member in runs:
        run = worker(member["id"])
        run.claim()
        fail(run, f"ValueError: no memory for {member['label']}\n  more detail")
    page.goto(f"/studies/{study_id}")
    expect(page.locator("#failed-title")).to_have_text("No run succeeded: 2 failed runs")
    expect(page.locator("#failed-runs .failed-reason")).to_have_text(
        ["ValueError: no memory for wide", "ValueError: no memory for deep"]
    )
    page.goto(f"/studies/{study_id}/report")
    page.wait_for_selector("body[data-report-ready=true]")
    expect(page.locator("#report-none")).to_be_visible()
    expect(page.locator("#report-none-title")).to_have_text("No run succeeded")
    expect(page.locator("#report-failures li")).to_have_text(
        ["wide: ValueError: no memory for wide", "deep: ValueError: no memory for deep"]
    )
    expect(page.locator("#report-curves")).to_be_hidden()  # no axes from -1 to 6 around nothing
    expect(page.locator("#report-per-class-section")).to_be_hidden()
    markdown = api.get(f"/api/studies/{study_id}/report.md").text
    assert f"- wide (run {runs[0]['id']}): ValueError: no memory for wide" in markdown


def focused(page: Page) -> str:
    return str(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))


def outline(page: Page) -> tuple[str, float]:
    style, width = page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]; })()"
    )
    return str(style), float(str(width).removesuffix("px"))


def test_a_first_visit_says_what_to_do_and_works_from_the_keyboard(page: Page, api: httpx.Client) -> None:
    page.goto("/")
    empty = page.locator("#empty-state")
    expect(empty.locator("h2")).to_have_text("No runs yet: three ways to start one")
    expect(empty.locator("#start-form a.button")).to_have_attribute("href", "/runs/new")
    expect(empty.locator("#start-preset a")).to_have_count(3)
    expect(empty.locator("#start-preset a").first).to_have_attribute("href", "/studies/new?preset=mnist-ablations")
    expect(empty.locator("#start-api code")).to_contain_text("api/runs")
    expect(page.locator("#runs-wrap")).to_be_hidden()  # no empty table
    page.goto("/studies")
    expect(page.locator("#empty-state #start-preset a")).to_have_count(3)

    # From the keyboard: tab to the empty state's "New run", see where the focus is, open the form, queue a run.
    page.goto("/")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('#start-form') !== null"):
            break
    else:
        pytest.fail("Tab never reached the empty state's New run button")
    assert outline(page)[0] != "none" and outline(page)[1] >= 2  # a visible focus ring
    page.keyboard.press("Enter")
    expect(page).to_have_url("/runs/new")
    page.keyboard.press("Tab")
    while page.evaluate("document.activeElement.closest('#run-form') === null"):
        page.keyboard.press("Tab")
    assert focused(page) == "f-name"
    assert outline(page)[0] != "none" and outline(page)[1] >= 2
    page.keyboard.type("from-the-keyboard")
    page.keyboard.press("Enter")  # submits the form
    expect(page.locator("#run-name")).to_have_text("from-the-keyboard")
    assert api.get("/api/runs").json()["data"][0]["name"] == "from-the-keyboard"


def test_the_new_run_form_uses_the_width_of_a_desktop_screen(page: Page) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto("/runs/new")
    box = page.locator("#run-form").bounding_box()
    assert box is not None and box["width"] > 1250  # main's 1360 px less its padding; it was held to 960 px
