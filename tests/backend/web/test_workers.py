"""The Workers page without a browser: every worker with its device and slots, and what to do when none listens."""

from __future__ import annotations

from typing import Any

from tests.backend.api.test_runs import create
from tests.backend.api.test_workers import beat, silence
from tests.conftest import tiny_spec


def test_the_workers_page_lists_live_and_gone_workers(browser: Any) -> None:
    page = browser.get("/workers")
    assert page.status_code == 200 and "No worker takes new runs" in page.text
    beat(browser, "gpu0@lab", running=[7])
    beat(browser, "old@lab")
    silence(browser, "old@lab", 10_000)
    page = browser.get("/workers").text
    assert "No worker takes new runs" not in page
    assert 'data-worker="gpu0@lab"' in page and 'href="/runs/7"' in page and "NVIDIA H100 80GB HBM3 (GPU 0)" in page
    assert "80 GiB" in page and "1 live of" in page
    assert 'class="badge worker-status-gone"' in page


def test_the_runs_list_and_run_page_say_a_queued_run_has_no_worker(browser: Any) -> None:
    run = create(browser)
    message = "no live worker listens on queue default"
    assert message in browser.get("/").text and message in browser.get(f"/runs/{run['id']}").text
    beat(browser)
    assert message not in browser.get("/").text


def test_the_workers_page_shows_each_queue_with_its_waiting_runs_and_a_draining_worker(browser: Any) -> None:
    create(browser, tiny_spec(device="cuda"))
    create(browser, tiny_spec())
    beat(browser, "cpu@lab", device={"kind": "cpu", "name": "Xeon", "cores": 2}, state="draining")
    page = browser.get("/workers").text
    assert "0 live, 1 draining of" in page and "No worker takes new runs (the draining ones" in page
    assert 'class="badge worker-status-draining"' in page and "nothing left to finish" in page
    assert page.count("no live worker takes these runs") == 1 and "no live worker with a GPU takes" in page
    beat(browser, "gpu@lab")
    page = browser.get("/workers").text
    default, gpu = page.split('data-queue="default"')[1], page.split('data-queue="default.cuda"')[1]
    assert "gpu@lab</td>" in gpu.split("</tr>")[0] and "gpu@lab</td>" in default.split("</tr>")[0]
