"""The Workers page without a browser: every worker with its device and slots, and what to do when none listens."""

from __future__ import annotations

from typing import Any

from tests.backend.api.test_runs import create
from tests.backend.api.test_workers import beat, silence


def test_the_workers_page_lists_live_and_gone_workers(browser: Any) -> None:
    page = browser.get("/workers")
    assert page.status_code == 200 and "No worker is listening on queue" in page.text
    beat(browser, "gpu0@lab", running=[7])
    beat(browser, "old@lab")
    silence(browser, "old@lab", 10_000)
    page = browser.get("/workers").text
    assert "No worker is listening" not in page
    assert 'data-worker="gpu0@lab"' in page and 'href="/runs/7"' in page and "NVIDIA H100 80GB HBM3 (GPU 0)" in page
    assert "80 GiB" in page and "1 live of" in page
    assert 'class="badge worker-status-gone"' in page


def test_the_runs_list_and_run_page_say_a_queued_run_has_no_worker(browser: Any) -> None:
    run = create(browser)
    message = f"no worker is listening on queue {browser.app.state.settings.queue}"
    assert message in browser.get("/").text and message in browser.get(f"/runs/{run['id']}").text
    beat(browser)
    assert message not in browser.get("/").text
