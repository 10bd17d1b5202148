"""The pages in a real browser: login, the runs list and the run page updating live, the run form.

A stand-in worker (conftest.Worker) reports over HTTP, so each test decides when an epoch lands and
then checks what the page shows, without reloading it. The last test trains with a real worker process.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect
from sqlmodel import Session

from backend.services import exports, lifecycle
from backend.services.recovery import RecoveryLoop
from tests.conftest import WorkerProcess
from trainboard.spec import CLASS_NAMES, RunSpec

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

    from tests.conftest import LiveServer
    from tests.frontend.conftest import Worker

    MakeWorker = Callable[[int], Worker]

pytestmark = pytest.mark.browser

SPEC = {"name": "live-cnn", "dataset": {"name": "digits"}, "model": {"arch": "cnn"}, "epochs": 3}


def create_run(api: httpx.Client, **overrides: Any) -> dict[str, Any]:
    response = api.post("/api/runs", json=SPEC | overrides)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def row(page: Page, run_id: int) -> Locator:
    return page.locator(f'tr[data-run-id="{run_id}"]')


def status_badge(page: Page) -> Locator:
    return page.locator('.run-meta [data-field="status"] .badge').first


def chart_data(page: Page, chart_id: str) -> list[dict[str, list[Any]]]:
    return page.evaluate(  # type: ignore[no-any-return]
        "id => document.getElementById(id).data.map(t => ({x: Array.from(t.x), y: Array.from(t.y)}))", chart_id
    )


def wait_points(page: Page, chart_id: str, count: int) -> None:
    page.wait_for_function(
        "([id, n]) => document.getElementById(id).data?.every(t => t.x.length === n)", arg=[chart_id, count]
    )


# --- login ---------------------------------------------------------------------------------------------


def test_login_redirects_refuses_a_wrong_token_and_accepts_the_right_one(
    anonymous_page: Page, live_server: LiveServer, api_token: str, screenshots: Path
) -> None:
    page = anonymous_page
    page.goto("/runs/new")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fruns%2Fnew$"))
    expect(page.get_by_text("trainboard token")).to_be_visible()

    page.get_by_label("API token").fill("not-the-token")
    with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Log in").click()
    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_have_text("Wrong token.")
    expect(page.get_by_label("API token")).to_have_attribute("aria-invalid", "true")
    page.screenshot(path=screenshots / "login-wrong-token.png", full_page=True, animations="disabled")

    page.get_by_label("API token").fill(api_token)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/runs/new")  # back where the redirect came from
    expect(page.get_by_role("heading", name="New run", exact=True)).to_be_visible()


def test_token_link_logs_in_and_drops_the_token_from_the_url(
    anonymous_page: Page, live_server: LiveServer, api_token: str
) -> None:
    page = anonymous_page
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto(f"/?token={api_token}")
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
    expect(page.locator('meta[name="csrf-token"]')).to_have_attribute("content", re.compile(r"^[0-9a-f]{64}$"))

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{live_server.url}/login")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))


# --- runs list -----------------------------------------------------------------------------------------


def test_runs_list_shows_new_runs_status_and_progress_live(
    page: Page, live_server: LiveServer, api: httpx.Client, worker: MakeWorker, screenshots: Path
) -> None:
    page.goto("/")
    empty = page.locator("#empty-state")
    expect(empty).to_be_visible()
    expect(empty.get_by_role("link", name="New run")).to_have_attribute("href", "/runs/new")
    expect(empty.locator("code")).to_contain_text(f"curl -X POST {live_server.url}/api/runs")
    expect(page.locator("#runs-count")).to_have_text("0 runs")
    page.screenshot(path=screenshots / "runs-empty.png", full_page=True, animations="disabled")

    page.evaluate("window.notReloaded = true")
    first = create_run(api)
    line = row(page, first["id"])
    expect(line.locator('[data-field="name"]')).to_have_text("live-cnn")
    expect(line.locator('[data-field="name"]')).to_have_attribute("href", f"/runs/{first['id']}")
    expect(line.locator('[data-field="dataset"]')).to_have_text("digits")
    expect(line.locator('[data-field="arch"]')).to_have_text("cnn")
    expect(line.locator(".badge[class*='status-']")).to_have_text("queued")
    # No worker has announced itself (the fake one below never does): the queued run says why it waits.
    expect(line.locator(".badge.waiting")).to_have_text("no live worker listens on queue default")
    expect(line.locator(".progress-label")).to_have_text("epoch 0/3")
    expect(empty).to_be_hidden()
    expect(page.locator("#runs-count")).to_have_text("1 run")

    run = worker(first["id"])
    run.claim()
    expect(line.locator(".badge[class*='status-']")).to_have_text("running")
    expect(line.locator(".badge.waiting")).to_have_count(0)  # it is no longer waiting for anyone
    run.progress(epoch=1, batch=5, batches=10)
    expect(line.locator(".progress-label")).to_have_text("epoch 1/3 · batch 5/10")
    track = line.locator(".progress-track")
    expect(track).to_have_attribute("aria-valuenow", "16.7")  # half of the first of three epochs
    run.epoch(1, test_acc=0.8125)
    expect(line.locator('[data-field="best"]')).to_have_text("81.25 %")
    expect(line.locator('[data-field="time"]')).to_have_text("1.5 s")
    expect(line.locator(".progress-label")).to_have_text("epoch 1/3")
    run.progress(epoch=2, batch=10, batches=10)
    expect(track).to_have_attribute("aria-valuenow", "66.7")

    second = create_run(api, name="second")
    expect(page.locator("tbody tr").first).to_have_attribute("data-run-id", str(second["id"]))
    expect(page.locator("tbody tr")).to_have_count(2)
    expect(page.locator("#runs-count")).to_have_text("2 runs")
    assert page.evaluate("window.notReloaded") is True
    live_text = line.inner_text()
    page.screenshot(path=screenshots / "runs-live.png", full_page=True, animations="disabled")

    page.reload()  # the server renders the same row the live updates built
    assert row(page, first["id"]).inner_text() == live_text
    expect(row(page, first["id"]).locator(".progress-track")).to_have_attribute("aria-valuenow", "66.7")
    expect(row(page, first["id"]).locator(".progress-fill")).to_have_attribute("style", "width: 66.7%")


def test_runs_list_rerenders_on_reload_event(page: Page, app: FastAPI, api: httpx.Client) -> None:
    first = create_run(api)
    held: list[Any] = []
    page.route(
        "**/api/events?*", lambda route: held.append(route)
    )  # hold the live stream until the page has fallen behind
    page.goto("/")
    expect(row(page, first["id"])).to_be_visible()
    for _ in range(100):  # route handlers run while the page is waited on
        if held:
            break
        page.wait_for_timeout(20)
    assert held, "the page did not open /api/events"

    second = create_run(api, name="while-away")
    feed = app.state.feed
    for _ in range(5000):  # more changes than the feed remembers: the stream must say `reload`
        feed.notify(first["id"])
    with page.expect_response(lambda r: "/api/runs?sort=-created&offset=0&limit=50" in r.url) as reloaded:
        held[0].continue_()
    assert reloaded.value.status == 200
    expect(row(page, second["id"]).locator('[data-field="name"]')).to_have_text("while-away")
    expect(page.locator("tbody tr").first).to_have_attribute("data-run-id", str(second["id"]))
    expect(page.locator("#runs-count")).to_have_text("2 runs")


def test_runs_list_renders_the_newest_200_and_keeps_200_live(  # the largest page size
    page: Page, app: FastAPI, api: httpx.Client, worker: MakeWorker
) -> None:
    spec = RunSpec.model_validate(SPEC)
    with Session(app.state.engine) as session:
        for _ in range(205):
            lifecycle.create_runs(session, [spec])
    page.goto("/?per_page=200")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(200)
    expect(rows.first).to_have_attribute("data-run-id", "205")
    expect(rows.last).to_have_attribute("data-run-id", "6")
    expect(page.locator("#runs-count")).to_have_text("1–200 of 205 runs")

    worker(1).claim()  # a change to a run below the newest 200 does not pull it into the list
    newest = create_run(api, name="newest")
    expect(rows.first).to_have_attribute("data-run-id", str(newest["id"]))
    expect(rows).to_have_count(200)
    expect(rows.last).to_have_attribute("data-run-id", "7")
    expect(page.locator('tr[data-run-id="1"]')).to_have_count(0)
    expect(page.locator("#runs-count")).to_have_text("1–200 of 206 runs")


# --- the run form --------------------------------------------------------------------------------------


def test_form_shows_only_the_chosen_arch_and_keeps_values_on_error(page: Page, screenshots: Path) -> None:
    page.goto("/runs/new")
    expect(page.get_by_label("Architecture")).to_have_value("cnn")
    expect(page.get_by_label("Conv channels")).to_be_visible()
    expect(page.get_by_label("Batch norm after each hidden layer")).to_be_hidden()
    page.screenshot(path=screenshots / "run-form.png", full_page=True, animations="disabled")

    page.get_by_label("Architecture").select_option("mlp")
    expect(page.get_by_label("Conv channels")).to_be_hidden()
    expect(page.get_by_label("Conv channels")).to_be_disabled()  # disabled: not posted
    expect(page.get_by_label("Batch norm after each hidden layer")).to_be_enabled()
    expect(page.locator("#f-model-hidden-hint")).to_have_text(re.compile("one per hidden layer"))
    page.get_by_label("Name").fill("wide-mlp")
    page.get_by_label("Hidden layers").fill("0, x")
    page.get_by_label("Batch norm after each hidden layer").check()
    with page.expect_response(lambda r: r.url.endswith("/runs/new") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Queue run").click()
    assert answer.value.status == 422
    posted = answer.value.request.post_data or ""
    assert "model.channels" not in posted and "model.batch_norm=true" in posted

    hidden = page.get_by_label("Hidden layers")
    expect(hidden).to_have_value("0, x")
    expect(hidden).to_have_attribute("aria-invalid", "true")
    expect(hidden).to_have_attribute("aria-describedby", "f-model-hidden-error f-model-hidden-hint")
    expect(page.locator("#f-model-hidden-error")).to_have_text(
        "item 1 (0): must be at least 1; item 2 (x): must be a whole number, like 10"
    )
    expect(page.locator("#form-errors")).to_contain_text("Fix the 1 field marked below.")
    expect(page.get_by_label("Name")).to_have_value("wide-mlp")
    expect(page.get_by_label("Architecture")).to_have_value("mlp")
    expect(page.get_by_label("Batch norm after each hidden layer")).to_be_checked()
    expect(page.get_by_label("Conv channels")).to_be_hidden()
    page.screenshot(path=screenshots / "run-form-errors.png", full_page=True, animations="disabled")


def test_form_shows_model_and_whole_spec_errors(page: Page) -> None:
    page.goto("/runs/new")
    page.get_by_label("Kernel sizes").fill("3")  # channels has two entries
    page.get_by_role("button", name="Queue run").click()
    expect(page.locator("#error-model")).to_have_text(
        "kernel_sizes has 1 entries but channels has 2: give one kernel size per conv layer"
    )

    page.get_by_label("Conv channels").fill("4, 4, 4, 4, 4, 4, 4, 4")
    page.get_by_label("Kernel sizes").fill("2, 2, 2, 2, 2, 2, 2, 2")  # 8x8 digits shrink to nothing
    page.get_by_role("button", name="Queue run").click()
    expect(page.locator("#error-model")).to_have_text(
        "the conv stack reduces the 8x8 images of digits to nothing; use fewer layers, smaller kernel_sizes or "
        "dilation, or dataset.resize"
    )
    expect(page.locator("#error-spec")).to_have_count(0)


def test_clone_prefills_the_form_with_the_runs_spec(page: Page, api: httpx.Client) -> None:
    source = create_run(
        api,
        name="to-clone",
        model={"arch": "mlp", "hidden": [256, 32], "batch_norm": True},
        optimizer={"name": "adam", "lr": 0.001},
    )
    page.goto(f"/runs/{source['id']}")
    page.get_by_role("link", name="Clone").click()
    expect(page).to_have_url(re.compile(rf"/runs/new\?clone={source['id']}$"))
    expect(page.get_by_label("Name")).to_have_value("to-clone")
    expect(page.get_by_label("Architecture")).to_have_value("mlp")
    expect(page.get_by_label("Hidden layers")).to_have_value("256, 32")
    expect(page.get_by_label("Batch norm after each hidden layer")).to_be_checked()
    expect(page.get_by_label("Optimizer")).to_have_value("adam")
    expect(page.get_by_label("Learning rate")).to_have_value("0.001")


def test_a_cloned_run_queues_the_same_spec(page: Page, api: httpx.Client) -> None:
    source = create_run(
        api,
        name="no-hidden",
        model={"arch": "cnn", "channels": [8], "kernel_sizes": [5], "pool": "avg", "hidden": []},
        batch_size=32,
    )
    page.goto(f"/runs/new?clone={source['id']}")
    expect(page.get_by_label("Hidden layers")).to_have_value("")  # no hidden layers, not "the default"
    page.get_by_role("button", name="Queue run").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    clone_id = int(page.url.rsplit("/", 1)[1])
    assert clone_id != source["id"]
    assert api.get(f"/api/runs/{clone_id}").json()["spec"] == source["spec"]


# --- the run page --------------------------------------------------------------------------------------


def test_run_from_the_form_trains_live_on_its_page(
    page: Page, live_server: LiveServer, api: httpx.Client, worker: MakeWorker, screenshots: Path
) -> None:
    page.goto("/runs/new")
    page.get_by_label("Name").fill("fashion-cnn")
    page.get_by_label("Dataset").select_option("fashion_mnist")
    page.get_by_label("Epochs").fill("3")
    page.get_by_label("Architecture").select_option("cnn")
    page.get_by_label("Conv channels").fill("16, 32")
    page.get_by_role("button", name="Queue run").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    assert api.get(f"/api/runs/{run_id}").json()["spec"]["model"]["channels"] == [16, 32]

    expect(page.get_by_role("heading", name="fashion-cnn")).to_be_visible()
    expect(status_badge(page)).to_have_text("queued")
    expect(page.get_by_role("button", name="Cancel run")).to_be_visible()
    expect(page.get_by_role("link", name="Clone")).to_have_attribute("href", f"/runs/new?clone={run_id}")
    expect(page.locator("table.spec")).to_contain_text("model.channels")
    wait_points(page, "loss-chart", 0)
    page.evaluate("window.notReloaded = true")

    run = worker(run_id)
    run.claim()
    expect(status_badge(page)).to_have_text("running")
    expect(page.locator('[data-field="attempt"]')).to_have_text("1")

    first = run.epoch(1, test_acc=0.71)
    wait_points(page, "loss-chart", 1)
    assert chart_data(page, "loss-chart") == [
        {"x": [1], "y": [first["train_loss"]]},
        {"x": [1], "y": [first["test_loss"]]},
    ]
    run.progress(epoch=2, batch=3, batches=12)
    expect(page.locator(".progress-label")).to_have_text("epoch 2/3 · batch 3/12")
    second = run.epoch(2, test_acc=0.84)
    wait_points(page, "loss-chart", 2)
    wait_points(page, "acc-chart", 2)
    acc = chart_data(page, "acc-chart")
    assert acc[1]["x"] == [1, 2]
    assert acc[1]["y"] == pytest.approx([71.0, 84.0])
    bars = chart_data(page, "per-class-chart")[0]
    assert bars["x"] == CLASS_NAMES["fashion_mnist"]
    assert bars["y"] == pytest.approx([v * 100 for v in second["per_class_acc"]])
    expect(page.locator("#per-class-title")).to_have_text("Per-class test accuracy (epoch 2)")
    expect(page.locator('[data-field="best"]')).to_have_text("84.00 %")
    expect(page.locator('[data-field="best-epoch"]')).to_have_text("2")
    expect(page.locator('[data-field="epochs-done"]')).to_have_text("2 of 3")
    expect(page.locator('[data-field="time"]')).to_have_text("3.0 s")
    expect(page.locator("#confusion-empty")).to_have_text("Shown when the run ends.")
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=screenshots / "run-live.png", full_page=True, animations="disabled")

    run.epoch(3, test_acc=0.83)
    confusion = [[90 if true == pred else 1 for pred in range(10)] for true in range(10)]
    assert run.finish(epochs_run=3, confusion=confusion) == "succeeded"
    expect(status_badge(page)).to_have_text("succeeded")
    expect(page.locator("#confusion-chart")).to_be_visible()
    heatmap = page.evaluate("() => document.getElementById('confusion-chart').data[0]")
    assert heatmap["type"] == "heatmap" and heatmap["z"] == confusion
    assert heatmap["x"] == CLASS_NAMES["fashion_mnist"]
    expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
    expect(page.locator(".progress-track")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator('[data-field="final"]')).to_have_text("83.00 %")
    expect(page.locator('[data-field="device"]')).to_have_text("cpu")
    expect(page.locator('[data-field="time"]')).to_have_text("4.3 s")  # the worker's total wins at the end
    expect(page.locator('[data-field="finished"] time')).to_be_visible()
    wait_points(page, "loss-chart", 3)
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=screenshots / "run-finished.png", full_page=True, animations="disabled")
    page.set_viewport_size({"width": 1024, "height": 768})  # a small laptop
    page.reload()
    page.locator("#confusion-chart .main-svg").first.wait_for()
    page.screenshot(path=screenshots / "run-finished-1024.png", full_page=True, animations="disabled")


def test_finished_run_page_draws_everything_on_load(page: Page, api: httpx.Client, worker: MakeWorker) -> None:
    run_id = create_run(api, name="done")["id"]
    run = worker(run_id)
    run.claim()
    run.epoch(1, test_acc=0.5)
    run.epoch(2, test_acc=0.6)
    run.finish(epochs_run=2, confusion=[[5, 1], [2, 4]])
    page.goto(f"/runs/{run_id}")
    wait_points(page, "loss-chart", 2)
    expect(page.locator("#confusion-chart")).to_be_visible()
    assert page.evaluate("() => document.getElementById('confusion-chart').data[0].z") == [[5, 1], [2, 4]]
    expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
    expect(page.locator('[data-field="best"]')).to_have_text("60.00 %")


def test_the_run_page_shows_how_the_run_was_made_and_what_its_last_epoch_cost(
    page: Page, api: httpx.Client, worker: MakeWorker
) -> None:
    run_id = create_run(api, name="made")["id"]
    run = worker(run_id)
    run.claim()
    page.goto(f"/runs/{run_id}")
    expect(page.locator("#run-made")).to_be_hidden()  # nothing recorded yet
    environment = {
        "trainboard": "0.1.0", "git_commit": "0123456789abcdef0123", "python": "3.11.7", "torch": "2.14.1",
        "torchvision": "0.29.1", "cuda": None, "cudnn": None, "device_name": "AMD EPYC 9654",
        "device_memory_bytes": 24_000_000_000, "host": "lab-1",
    }  # fmt: skip
    info = {
        "train_images": 1437, "test_images": 360, "image_size": [1, 8, 8], "mean": [0.3], "std": [0.4],
        "normalize": "standard", "parameters": 100, "trainable_parameters": 100, "environment": environment,
        "data_sha256": "ab" * 32,
    }  # fmt: skip
    run.client.post("/info", json={"attempt": run.attempt, "lease": run.lease, "info": info}).raise_for_status()
    run.epoch(1, test_acc=0.5)  # live, over the stream
    expect(page.locator('[data-field="made-torch"]')).to_have_text("2.14.1 / 0.29.1")
    expect(page.locator('[data-field="made-trainboard"]')).to_have_text("0.1.0 (0123456789ab)")
    expect(page.locator('[data-field="made-device"]')).to_have_text("AMD EPYC 9654 (24.00 GB)")
    expect(page.locator('[data-field="made-data"]')).to_have_text("ab" * 32)
    expect(page.locator('[data-field="system-epoch"]')).to_have_text("1")
    expect(page.locator('[data-field="system-rss"]')).to_have_text("301.0 MB")
    expect(page.locator('[data-field="system-cpu"]')).to_have_text("2.50 s")
    expect(page.locator('[data-field="system-gpu-util"]')).to_have_text("—")
    page.reload()  # and the same from the server's page
    expect(page.locator('[data-field="made-cuda"]')).to_have_text("—")
    expect(page.locator('[data-field="made-host"]')).to_have_text("lab-1")
    expect(page.locator('[data-field="system-rss"]')).to_have_text("301.0 MB")


def test_an_early_stopped_run_shows_the_per_class_accuracy_of_its_restored_epoch(
    page: Page, api: httpx.Client, worker: MakeWorker
) -> None:
    run_id = create_run(api, name="stopped early")["id"]
    run = worker(run_id)
    run.claim()
    for epoch, acc in ((1, 0.47), (2, 0.2), (3, 0.08)):
        run.epoch(epoch, test_acc=acc)
    result = {
        "stopped": "early_stopped",
        "epochs_run": 3,
        "final_epoch": 1,
        "stop_reason": "test_acc did not improve for 2 epochs; best 0.4700 at epoch 1, weights restored",
        "total_seconds": 1.5,
    }
    assert run._post("/finish", {"attempt": run.attempt, "lease": run.lease, "result": result})["status"] == "succeeded"
    page.goto(f"/runs/{run_id}")
    wait_points(page, "loss-chart", 3)
    expect(page.locator("#per-class-title")).to_have_text("Per-class test accuracy (epoch 1)")
    expected = [(0.47 + (k - 5) / 100) * 100 for k in range(10)]  # the frontend epoch_record spreads the classes
    assert chart_data(page, "per-class-chart")[0]["y"] == pytest.approx(expected)  # not epoch 3 (8 %)


def test_failed_run_shows_its_error(page: Page, api: httpx.Client, worker: MakeWorker) -> None:
    run_id = create_run(api, name="broken")["id"]
    run = worker(run_id)
    run.claim()
    page.goto(f"/runs/{run_id}")
    expect(status_badge(page)).to_have_text("running")
    traceback = 'Traceback (most recent call last):\n  File "engine.py", line 3\nRuntimeError: CUDA out of memory <&>'
    response = run.client.post("/finish", json={"attempt": run.attempt, "lease": run.lease, "error": traceback})
    assert response.json() == {"status": "failed"}
    expect(status_badge(page)).to_have_text("failed")
    expect(page.locator("#run-error-title")).to_have_text("Error")
    expect(page.locator("#run-error pre")).to_have_text(traceback)
    expect(page.locator("#run-charts")).to_be_hidden()  # no epoch: no empty charts (test_outcomes_browser.py)


def test_cancel_button_posts_with_csrf_and_shows_the_request(page: Page, api: httpx.Client, worker: MakeWorker) -> None:
    run_id = create_run(api)["id"]
    run = worker(run_id)
    run.claim()
    page.goto(f"/runs/{run_id}")
    expect(status_badge(page)).to_have_text("running")
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_response(f"**/api/runs/{run_id}/cancel") as answer:
        page.get_by_role("button", name="Cancel run").click()
    assert answer.value.status == 200
    assert answer.value.request.headers["x-csrf-token"] == csrf
    expect(page.locator(".run-meta .cancel-requested")).to_have_text("cancel requested")
    expect(page.get_by_role("button", name="Cancel requested")).to_be_disabled()
    expect(page.locator("#run-notice")).to_contain_text("Cancel requested")
    assert api.get(f"/api/runs/{run_id}").json()["cancel_requested"] is True

    assert run.progress(epoch=1, batch=1, batches=10) is True  # the worker hears it at its next heartbeat
    assert run.finish(epochs_run=0, confusion=[], stopped="cancelled") == "cancelled"
    expect(status_badge(page)).to_have_text("cancelled")
    expect(page.locator("#cancel-run")).to_be_hidden()


def test_cancel_without_confirmation_does_nothing(page: Page, api: httpx.Client) -> None:
    run_id = create_run(api)["id"]
    page.goto(f"/runs/{run_id}")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Cancel run").click()
    expect(page.get_by_role("button", name="Cancel run")).to_be_enabled()
    assert api.get(f"/api/runs/{run_id}").json()["status"] == "queued"


def test_a_requeued_run_reloads_its_page(page: Page, app: FastAPI, api: httpx.Client, worker: MakeWorker) -> None:
    run_id = create_run(api)["id"]
    run = worker(run_id)
    run.claim()
    run.epoch(1, test_acc=0.4)
    page.goto(f"/runs/{run_id}")
    wait_points(page, "loss-chart", 1)
    page.evaluate("window.notReloaded = true")

    state = app.state
    found = RecoveryLoop(
        state.engine, state.dispatcher, state.feed, lost_after_seconds=1e-6, max_attempts=3
    ).check_lost()
    assert found.requeue == [run_id]
    expect(status_badge(page)).to_have_text("queued")
    expect(page.locator("#run-error-title")).to_have_text("Earlier attempt")
    expect(page.locator("#run-error pre")).to_contain_text("attempt 1 lost")

    assert run.claim() == 2  # attempt 2 starts over: the page reloads and drops attempt 1's curve
    page.wait_for_function("() => window.notReloaded === undefined")
    expect(page.locator('[data-field="attempt"]')).to_have_text("2")
    wait_points(page, "loss-chart", 0)


# --- with a real worker ---------------------------------------------------------------------------------


@pytest.mark.queue
def test_a_real_worker_trains_a_run_from_the_form(
    page: Page, live_server: LiveServer, api: httpx.Client, tmp_path: Path, screenshots: Path
) -> None:
    trainer = WorkerProcess(live_server.settings, "browser", tmp_path / "worker.log")
    try:
        page.goto("/runs/new")
        page.get_by_label("Name").fill("real-mlp")
        page.get_by_label("Epochs").fill("3")
        page.get_by_label("Device").fill("cpu")
        page.get_by_label("Training images").fill("512")
        page.get_by_label("Test images").fill("256")
        page.get_by_label("Architecture").select_option("mlp")
        page.get_by_label("Hidden layers").fill("32")
        page.get_by_label("Learning rate").fill("0.1")
        page.get_by_role("button", name="Queue run").click()
        expect(page).to_have_url(re.compile(r"/runs/\d+$"))
        run_id = int(page.url.rsplit("/", 1)[1])
        expect(status_badge(page)).to_have_text("succeeded", timeout=120_000)
    except AssertionError:
        raise AssertionError(f"the run did not succeed; worker log:\n{trainer.log()[-3000:]}") from None
    finally:
        trainer.stop()
    wait_points(page, "loss-chart", 3)
    metrics = api.get(f"/api/runs/{run_id}/metrics").json()["data"]
    assert chart_data(page, "loss-chart")[1]["y"] == [m["test_loss"] for m in metrics]
    assert len(chart_data(page, "per-class-chart")[0]["y"]) == 10
    expect(page.locator("#confusion-chart")).to_be_visible()
    matrix = page.evaluate("() => document.getElementById('confusion-chart').data[0].z")
    assert sum(map(sum, matrix)) == 256  # every test image once
    expect(page.locator('[data-field="device"]')).to_have_text("cpu")
    expect(page.locator('[data-field="final"]')).to_have_text(f"{exports.percent(metrics[-1]['test_acc']):.2f} %")
    page.screenshot(path=screenshots / "run-real-worker.png", full_page=True, animations="disabled")
