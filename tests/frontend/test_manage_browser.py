"""Run management in a real browser: delete through the confirm page (no file left behind), a deleted run
leaving an open runs list, archive from the selection with the archived filter and restore, retry from a
run's page (its buttons following the live status), and "Retry failed runs" on a study's page."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Page, expect
from sqlmodel import Session

from backend.tables import Artifact
from tests.conftest import tiny_spec

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.frontend.conftest import Worker

    MakeWorker = Callable[[int], Worker]

pytestmark = pytest.mark.browser


def create(api: httpx.Client, **spec: Any) -> int:
    response = api.post("/api/runs", json=tiny_spec(**spec))
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def fail(worker: Worker, error: str = "RuntimeError: the data went missing\n\nTraceback ...") -> None:
    worker.claim()
    worker.epoch(1, 0.5)
    answer = worker._post("/finish", {"attempt": worker.attempt, "lease": worker.lease, "error": error})
    assert answer["status"] == "failed"


def with_files(app: FastAPI, run_id: int) -> Path:
    folder = Path(app.state.settings.artifacts_dir) / str(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weights.safetensors").write_bytes(b"w" * 2_500_000)
    (folder / "checkpoint-1.safetensors.part").write_bytes(b"half an upload")
    with Session(app.state.engine) as session:
        session.add(
            Artifact(
                run_id=run_id,
                kind="weights",
                name="weights.safetensors",
                attempt=1,
                epoch=1,
                size=2_500_000,
                sha256="0" * 64,
            )
        )
        session.commit()
    return folder


def test_a_run_is_deleted_from_its_page_through_the_confirm_page(
    page: Page, api: httpx.Client, app: FastAPI, worker: MakeWorker
) -> None:
    run_id, other = create(api, name="to-delete"), create(api, name="kept")
    fail(worker(run_id))
    folder = with_files(app, run_id)
    page.goto(f"/runs/{run_id}")
    expect(page.locator("#run-disk")).to_have_text("2.5 MB")
    page.locator("#delete-run").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Delete run {run_id}?")
    expect(page.locator("#confirm-runs")).to_contain_text("to-delete")
    expect(page.locator(".confirm-delete")).to_contain_text("2.5 MB of checkpoints and weights")
    page.locator("#confirm-delete").click()
    page.wait_for_url("**/")
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    expect(page.locator(f'#runs tr[data-run-id="{other}"]')).to_be_visible()
    assert api.get(f"/api/runs/{run_id}").status_code == 404
    assert not folder.exists()  # no file left behind, the upload cut short included


def test_a_run_deleted_elsewhere_leaves_an_open_runs_list_and_ends_its_page(
    page: Page, context: Any, api: httpx.Client
) -> None:
    run_id, other = create(api), create(api)
    run_page = context.new_page()
    run_page.goto(f"/runs/{run_id}")
    expect(run_page.locator(".run-meta .badge").first).to_have_text("queued")
    page.goto("/")
    expect(page.locator("#runs tbody tr")).to_have_count(2)
    expect(page.locator("#runs-count")).to_have_text("2 runs")
    assert api.delete(f"/api/runs/{run_id}").status_code == 204
    expect(page.locator(f'#runs tr[data-run-id="{run_id}"]')).to_have_count(0)
    expect(page.locator("#runs-count")).to_have_text("1 run")
    expect(page.locator(f'#runs tr[data-run-id="{other}"]')).to_be_visible()
    expect(run_page.locator("#run-notice")).to_have_text("This run was deleted.")
    run_page.close()


def test_runs_are_archived_from_the_selection_found_with_the_filter_and_restored(page: Page, api: httpx.Client) -> None:
    a, b, c = create(api, name="a"), create(api, name="b"), create(api, name="c")
    page.goto("/")
    expect(page.locator("#archive-selected")).to_be_disabled()  # nothing ticked yet
    page.locator(f'#runs tr[data-run-id="{a}"] .select-run').check()
    page.locator(f'#runs tr[data-run-id="{c}"] .select-run').check()
    expect(page.locator("#archive-selected")).to_be_enabled()
    page.locator("#archive-selected").click()
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    expect(page.locator(f'#runs tr[data-run-id="{b}"]')).to_be_visible()
    page.locator('#runs-filters select[name="archived"]').select_option("only")
    page.wait_for_url("**/?archived=only")
    expect(page.locator("#runs tbody tr")).to_have_count(2)
    expect(page.locator("#runs .badge.archived")).to_have_count(2)
    expect(page.locator("#archive-selected")).to_have_count(0)
    page.locator(f'#runs tr[data-run-id="{c}"] .select-run').check()
    page.locator("#restore-selected").click()
    page.wait_for_url("**/?archived=only")
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    page.goto("/")
    expect(page.locator("#runs tbody tr")).to_have_count(2)
    # Archived on its own page: it stays reachable by URL and says so, and Restore brings it back.
    page.goto(f"/runs/{a}")
    expect(page.locator("#run-archived")).to_have_text("archived")
    page.locator("#restore-run").click()
    expect(page.locator("#archive-run")).to_be_visible()
    assert api.get(f"/api/runs/{a}").json()["archived_at"] is None


def test_a_failed_run_is_retried_from_its_page_and_its_buttons_follow_the_status(
    page: Page, api: httpx.Client, worker: MakeWorker
) -> None:
    run_id = create(api)
    first = worker(run_id)
    fail(first)
    page.goto(f"/runs/{run_id}")
    expect(page.locator("#run-error")).to_contain_text("the data went missing")
    expect(page.locator("#retry-run")).to_be_visible()
    page.locator("#retry-run").click()
    expect(page.locator(".run-meta .badge").first).to_have_text("queued")
    expect(page.locator("#retry-run")).to_be_hidden()
    expect(page.locator("#run-error")).to_be_hidden()  # the last attempt's error is cleared
    assert first.claim() == 2  # a new attempt of the same run; the page follows it live
    expect(page.locator(".run-meta .badge").first).to_have_text("running")
    expect(page.locator("#delete-run")).to_be_hidden()  # a running run is cancelled before it is deleted
    expect(page.locator("#cancel-run")).to_be_visible()


def test_retry_failed_runs_on_a_study_page(page: Page, api: httpx.Client, worker: MakeWorker) -> None:
    body = {
        "name": "flaky",
        "base": tiny_spec(),
        "variants": [{"label": "fine"}, {"label": "flaky", "set": {"seed": 1}}],
    }
    study = api.post("/api/studies", json=body).json()
    fine, flaky = (run["id"] for run in study["data"])
    fail(worker(flaky), "ValueError: out of luck\nmore detail")
    page.goto(f"/studies/{study['id']}")
    failed = page.locator("#failed-runs")
    expect(failed).to_contain_text("1 failed run")
    expect(failed.locator(".failed-reason")).to_have_text("ValueError: out of luck")
    expect(failed.get_by_role("link", name="flaky")).to_have_attribute("href", f"/runs/{flaky}")
    page.locator("#retry-failed").click()
    expect(page.locator("#failed-runs")).to_have_count(0)
    expect(page.locator(f'#study-runs tr[data-run-id="{flaky}"] .badge').first).to_have_text("queued")
    assert api.get(f"/api/runs/{fine}").json()["status"] == "queued"
    assert api.get(f"/api/runs/{flaky}").json()["attempt"] == 1


def test_a_run_deleted_before_its_page_could_follow_it_says_so(page: Page, context: Any, api: httpx.Client) -> None:
    """The stream cannot say `deleted` when the run is gone before it connects (its stream answers 404): the
    page asks once the browser gives up on the stream, instead of reconnecting for ever."""
    assert page  # logs the context in
    run_id = create(api)
    run_page = context.new_page()
    run_page.route("**/api/runs/*/events*", lambda route: route.fulfill(status=404, body="{}"))
    run_page.goto(f"/runs/{run_id}")
    expect(run_page.locator("#run-notice")).to_have_text("Live updates interrupted: reconnecting…")
    assert api.delete(f"/api/runs/{run_id}").status_code == 204
    expect(run_page.locator("#run-notice")).to_have_text("This run was deleted.", timeout=15_000)
    run_page.close()
