"""The runs list at scale in a real browser: pages, sorting by a column, filters and search kept in the URL,
tag chips; and the run page's tags and notes, saved with PATCH and found again from the list.

Sixty runs are queued over REST; a stand-in worker finishes three of them with known accuracies.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.frontend.test_pages_browser import create_run

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.conftest import LiveServer
    from tests.frontend.conftest import Worker

    MakeWorker = Callable[[int], Worker]

pytestmark = pytest.mark.browser

FINISHED = {10: 0.7, 20: 0.9, 30: 0.8}  # run id -> best test accuracy


def ids(page: Page) -> list[int]:
    return [int(i) for i in page.locator("#runs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.runId)")]


@pytest.fixture
def sixty(api: httpx.Client, worker: MakeWorker) -> None:
    for i in range(1, 61):
        assert create_run(api, name=f"run-{i:02d}")["id"] == i
    for run_id, acc in FINISHED.items():
        run = worker(run_id)
        run.claim()
        run.epoch(1, test_acc=acc)
        assert run.finish(1, [[1]]) == "succeeded"
    for run_id, tags, notes in (
        (7, ["baseline"], "A Baseline for the lr sweep"),
        (12, ["baseline"], ""),
        (20, ["baseline", "sgd"], "best so far"),
    ):
        assert api.patch(f"/api/runs/{run_id}", json={"tags": tags, "notes": notes}).status_code == 200


def test_pages_show_the_right_slice_and_count(page: Page, sixty: None, live_server: LiveServer) -> None:
    page.goto("/")
    expect(page.locator("#runs tbody tr")).to_have_count(50)
    assert ids(page) == list(range(60, 10, -1))
    expect(page.locator("#runs-count")).to_have_text("1–50 of 60 runs")
    expect(page.locator("#page-of")).to_have_text("page 1 of 2")

    page.get_by_role("link", name="Next →").click()
    expect(page).to_have_url(f"{live_server.url}/?page=2")
    expect(page.locator("#runs tbody tr")).to_have_count(10)
    assert ids(page) == list(range(10, 0, -1))
    expect(page.locator("#runs-count")).to_have_text("51–60 of 60 runs")

    page.get_by_label("Per page").select_option("100")  # applies at once, back to the first page
    expect(page).to_have_url(f"{live_server.url}/?per_page=100")
    expect(page.locator("#runs tbody tr")).to_have_count(60)
    expect(page.locator("#runs-count")).to_have_text("60 runs")
    expect(page.locator("#pager")).to_have_count(0)


def test_sort_filter_and_search_live_in_the_url(
    page: Page, sixty: None, api: httpx.Client, live_server: LiveServer, screenshots: Path
) -> None:
    page.goto("/")
    header = page.locator("#runs thead th", has_text="Best test acc")
    header.get_by_role("link").click()
    expect(page).to_have_url(f"{live_server.url}/?sort=-best_test_acc")
    expect(header).to_have_attribute("aria-sort", "descending")
    assert ids(page)[:4] == [20, 30, 10, 60]  # best first; runs without an accuracy last
    header.get_by_role("link").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    assert ids(page)[:3] == [10, 30, 20]

    page.get_by_label("Status").select_option("succeeded")
    expect(page).to_have_url(f"{live_server.url}/?status=succeeded&sort=best_test_acc")
    assert ids(page) == [10, 30, 20]
    expect(page.locator("#runs-count")).to_have_text("3 runs match")
    expect(page.locator('tr[data-run-id="20"] .chip')).to_have_text(["baseline", "sgd"])

    created = create_run(api, name="after")  # a filtered view says so instead of inserting the row
    expect(page.locator("#new-runs")).to_be_visible()
    expect(page.locator(f'tr[data-run-id="{created["id"]}"]')).to_have_count(0)
    page.screenshot(path=screenshots / "runs-filters.png", full_page=True, animations="disabled")

    page.reload()  # the same view from the URL alone
    expect(page.get_by_label("Status")).to_have_value("succeeded")
    assert ids(page) == [10, 30, 20]
    expect(page.locator("#runs thead th", has_text="Best test acc")).to_have_attribute("aria-sort", "ascending")

    page.goto("/")
    page.get_by_role("searchbox", name="Search").fill("baseline")  # in the notes, any case
    page.get_by_role("searchbox", name="Search").press("Enter")
    expect(page).to_have_url(f"{live_server.url}/?q=baseline")
    assert ids(page) == [7]
    page.reload()
    expect(page.get_by_role("searchbox", name="Search")).to_have_value("baseline")
    assert ids(page) == [7]

    page.locator('tr[data-run-id="7"] .chip', has_text="baseline").click()  # a chip filters by its tag
    expect(page).to_have_url(f"{live_server.url}/?tag=baseline")
    assert ids(page) == [20, 12, 7]
    expect(page.get_by_label("Tag")).to_have_value("baseline")
    page.get_by_role("link", name="Clear filters").click()
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.locator("#runs tbody tr")).to_have_count(50)


def test_run_page_tags_and_notes_persist_and_filter_the_list(
    page: Page, api: httpx.Client, live_server: LiveServer, screenshots: Path
) -> None:
    other = create_run(api, name="other")
    run = create_run(api, name="tagged")
    page.goto(f"/runs/{run['id']}")
    chips = page.locator("#run-tags .chip")
    expect(chips).to_have_count(0)

    page.get_by_label("New tag").fill("Warmup")  # lowercased before it is sent
    page.get_by_role("button", name="Add tag").click()
    expect(chips).to_have_text(["warmup×"])
    page.get_by_label("New tag").fill("bad tag!")
    page.get_by_role("button", name="Add tag").click()
    expect(page.locator("#tag-error")).to_contain_text('Could not save tag "bad tag!": String should match pattern')
    expect(page.get_by_label("New tag")).to_have_value("bad tag!")
    page.get_by_label("New tag").fill("lr.sweep-2")
    page.get_by_role("button", name="Add tag").click()
    expect(chips).to_have_text(["lr.sweep-2×", "warmup×"])
    expect(page.locator("#tag-error")).to_be_hidden()

    page.get_by_role("textbox", name="Notes").fill("Tried a cosine schedule.")
    page.get_by_role("button", name="Save notes").click()
    expect(page.locator("#notes-status")).to_have_text("Saved")
    assert api.get(f"/api/runs/{run['id']}").json()["notes"] == "Tried a cosine schedule."

    page.get_by_role("button", name="Remove tag lr.sweep-2").click()
    expect(chips).to_have_text(["warmup×"])
    # Changed elsewhere: the page follows the run's stream.
    api.patch(f"/api/runs/{run['id']}", json={"tags": ["warmup", "from-api"]})
    expect(chips).to_have_text(["from-api×", "warmup×"])
    page.screenshot(path=screenshots / "run-tags-notes.png", animations="disabled")

    page.reload()
    expect(chips).to_have_text(["from-api×", "warmup×"])
    expect(page.get_by_role("textbox", name="Notes")).to_have_value("Tried a cosine schedule.")

    page.goto("/?tag=warmup")
    assert ids(page) == [run["id"]]
    expect(page.locator(f'tr[data-run-id="{run["id"]}"] .chip')).to_have_text(["from-api", "warmup"])
    page.goto("/?q=cosine")
    assert ids(page) == [run["id"]]
    assert other["id"] not in ids(page)
