"""The pages' management forms: archive, restore, retry and delete a run or a study, the runs list's selection,
the confirm page, the archived filter, sizes on disk, a study's failed runs. Every form carries its CSRF field."""

from __future__ import annotations

import re
from typing import Any

from tests.backend.api.test_manage import add_artifacts, create, fail
from tests.backend.web.conftest import csrf_of
from tests.conftest import API


def csrf(browser: Any, page: str = "/") -> str:
    return csrf_of(browser.get(page).text)


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-run-id="(\d+)"', html)]


def test_every_management_form_needs_its_csrf_field(browser: Any) -> None:
    run_id = create(browser)
    fail(browser, run_id)
    for path in (
        f"/runs/{run_id}/archive",
        f"/runs/{run_id}/restore",
        f"/runs/{run_id}/retry",
        "/runs/delete",
        "/runs/selected",
    ):
        response = browser.post(path, data={"csrf": "forged", "run_ids": str(run_id), "action": "archive"})
        assert response.status_code == 403, path
    assert browser.get(f"/api/runs/{run_id}", headers=API).json()["status"] == "failed"


def test_the_run_page_archives_and_restores(browser: Any) -> None:
    run_id = create(browser)
    page = browser.get(f"/runs/{run_id}").text
    assert 'id="archive-run"' in page and 'id="run-archived"' not in page
    response = browser.post(f"/runs/{run_id}/archive", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/runs/{run_id}"
    page = browser.get(f"/runs/{run_id}").text  # still reachable by URL
    assert 'id="run-archived"' in page and 'id="restore-run"' in page
    assert run_id not in row_ids(browser.get("/").text)
    assert run_id in row_ids(browser.get("/?archived=only").text)
    browser.post(f"/runs/{run_id}/restore", data={"csrf": csrf_of(page)})
    assert run_id in row_ids(browser.get("/").text)


def test_retry_shows_for_a_failed_run_and_queues_it(browser: Any) -> None:
    run_id = create(browser)
    page = browser.get(f"/runs/{run_id}").text
    assert re.search(r'<form method="post" action="/runs/\d+/retry" data-show-when="failed cancelled" hidden>', page)
    fail(browser, run_id)
    add_artifacts(browser, run_id)
    page = browser.get(f"/runs/{run_id}").text
    assert 'id="retry-run"' in page and 'id="retry-from-start"' in page  # it has a checkpoint
    assert re.search(r'<form method="post" action="/runs/\d+/retry" data-show-when="failed cancelled" >', page)
    assert 'id="run-disk">1.2 kB<' in page
    response = browser.post(
        f"/runs/{run_id}/retry", data={"csrf": csrf_of(page), "from": "start"}, follow_redirects=False
    )
    assert response.status_code == 303
    run = browser.get(f"/api/runs/{run_id}", headers=API).json()
    assert (run["status"], run["error"]) == ("queued", None)
    again = browser.post(f"/runs/{run_id}/retry", data={"csrf": csrf_of(page)})
    assert again.status_code == 409 and "only a failed or cancelled run can be retried" in again.text


def test_deleting_a_run_asks_first_then_removes_it_and_its_files(browser: Any) -> None:
    run_id = create(browser)
    fail(browser, run_id)
    folder = add_artifacts(browser, run_id)
    confirm = browser.get(f"/runs/{run_id}/delete")
    assert confirm.status_code == 200
    assert f'<a href="/runs/{run_id}">run {run_id}</a>' in confirm.text
    assert "1.2 kB of checkpoints and weights" in confirm.text
    assert browser.get(f"/api/runs/{run_id}", headers=API).status_code == 200  # nothing happened yet
    form = {"csrf": csrf_of(confirm.text), "run_ids": str(run_id), "next": "/"}
    response = browser.post("/runs/delete", data=form, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert browser.get(f"/api/runs/{run_id}", headers=API).status_code == 404
    assert not folder.exists()
    assert browser.get(f"/runs/{run_id}").status_code == 404


def test_a_running_run_cannot_be_deleted_from_the_confirm_page(browser: Any) -> None:
    from tests.backend.api.test_manage import claim

    run_id = create(browser)
    claim(browser, run_id)
    confirm = browser.get(f"/runs/{run_id}/delete").text
    assert "is running: cancel it first" in confirm
    assert re.search(r'id="confirm-delete" disabled', confirm)
    response = browser.post("/runs/delete", data={"csrf": csrf_of(confirm), "run_ids": str(run_id)})
    assert response.status_code == 409 and "cancel it first" in response.text


def test_the_runs_list_selection_archives_restores_and_deletes(browser: Any) -> None:
    a, b, c = create(browser), create(browser), create(browser)
    add_artifacts(browser, b)
    page = browser.get("/").text
    assert '<td class="num col-disk col-minor">1.2 kB</td>' in page
    assert 'name="run_ids" form="selected-actions"' in page
    token = csrf_of(page)
    response = browser.post(
        "/runs/selected",
        data={"csrf": token, "action": "archive", "run_ids": [str(a), str(c)], "next": "/?sort=name"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/?sort=name"
    assert row_ids(browser.get("/").text) == [b]
    only = browser.get("/?archived=only").text
    assert row_ids(only) == [c, a] and 'id="restore-selected"' in only and 'id="archive-selected"' not in only
    assert '<option value="only" selected>only</option>' in only
    browser.post("/runs/selected", data={"csrf": token, "action": "restore", "run_ids": [str(c)]})
    assert row_ids(browser.get("/").text) == [c, b]
    confirm = browser.post("/runs/selected", data={"csrf": token, "action": "delete", "run_ids": [str(b), str(c)]})
    assert confirm.status_code == 200 and "Delete 2 runs?" in confirm.text
    assert row_ids(browser.get("/").text) == [c, b]  # asked, not done
    hidden = re.findall(r'<input type="hidden" name="run_ids" value="(\d+)">', confirm.text)
    browser.post("/runs/delete", data={"csrf": token, "run_ids": hidden, "next": "/"})
    assert row_ids(browser.get("/?archived=include").text) == [a]
    nothing = browser.post("/runs/selected", data={"csrf": token, "action": "delete"}, follow_redirects=False)
    assert nothing.status_code == 303  # nothing ticked: back to the list


def study_with_failures(browser: Any) -> tuple[int, list[int]]:
    body = {
        "name": "with failures",
        "base": {"dataset": {"name": "digits"}, "model": {"arch": "mlp"}, "epochs": 1},
        "variants": [{"label": "ok"}, {"label": "broken", "set": {"seed": 1}}],
    }
    study = browser.post("/api/studies", json=body, headers=API).json()
    ids = [run["id"] for run in study["data"]]
    fail(browser, ids[1], "\nFileNotFoundError: dataset missing at /data/x\n\nTraceback (most recent call last): ...")
    return study["id"], ids


def test_the_study_page_lists_failed_runs_in_one_line_and_retries_them(browser: Any) -> None:
    study_id, (_ok, broken) = study_with_failures(browser)
    page = browser.get(f"/studies/{study_id}").text
    section = page[page.index('id="failed-runs"') :]
    assert "1 failed run<" in section
    assert f'<a href="/runs/{broken}">broken</a>:' in section
    assert '<span class="failed-reason">FileNotFoundError: dataset missing at /data/x</span>' in section
    assert "Traceback" not in section[: section.index("</section>")]
    response = browser.post(f"/studies/{study_id}/retry", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/studies/{study_id}"
    assert browser.get(f"/api/runs/{broken}", headers=API).json()["status"] == "queued"
    assert 'id="failed-runs"' not in browser.get(f"/studies/{study_id}").text


def test_a_study_is_archived_restored_and_deleted_from_its_page(browser: Any) -> None:
    study_id, ids = study_with_failures(browser)
    folder = add_artifacts(browser, ids[1])
    token = csrf(browser, f"/studies/{study_id}")
    browser.post(f"/studies/{study_id}/archive", data={"csrf": token})
    assert f'data-study-id="{study_id}"' not in browser.get("/studies").text
    assert f'data-study-id="{study_id}"' in browser.get("/studies?archived=only").text
    page = browser.get(f"/studies/{study_id}").text
    assert 'id="study-archived"' in page and 'id="restore-study"' in page
    assert row_ids(browser.get("/").text) == []  # its runs went with it
    browser.post(f"/studies/{study_id}/restore", data={"csrf": token})
    assert f'data-study-id="{study_id}"' in browser.get("/studies").text
    confirm = browser.get(f"/studies/{study_id}/delete").text
    assert f"Delete study {study_id} (with failures) and its 2 runs?" in confirm
    response = browser.post(f"/studies/{study_id}/delete", data={"csrf": token}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/studies"
    assert browser.get(f"/studies/{study_id}").status_code == 404
    assert row_ids(browser.get("/?archived=include").text) == []
    assert not folder.exists()
