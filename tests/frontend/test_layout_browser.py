"""Every page on a phone (390 px): nothing scrolls sideways, the nav folds into a menu, the runs list keeps
status, name and accuracy; dates in the user's locale and time zone, the zone stated once; the runs list's
extra columns (a study's labels and spec fields, `?cols=`). The other browser tests stay at desktop width."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import WORKER
from tests.frontend.test_pages_browser import SPEC, create_run

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.conftest import LiveServer
    from tests.frontend.conftest import Worker

    MakeWorker = Callable[[int], Worker]

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
CONFUSION = [[9 if t == p else 0 for p in range(10)] for t in range(10)]
SWEEP = {
    "name": "lr sweep",
    "base": SPEC | {"epochs": 2},
    "variants": [
        {"label": "lr=0.1", "set": {"optimizer.lr": 0.1, "batch_size": 32}},
        {"label": "lr=0.01", "set": {"optimizer.lr": 0.01}},
    ],
}


def finished_run(api: httpx.Client, worker: MakeWorker, **overrides: Any) -> int:
    run_id = int(create_run(api, **overrides)["id"])
    run = worker(run_id)
    run.claim()
    run.epoch(1, test_acc=0.8)
    run.epoch(2, test_acc=0.9)
    assert run.finish(2, CONFUSION) == "succeeded"
    return run_id


def study(api: httpx.Client) -> dict[str, Any]:
    response = api.post("/api/studies", json=SWEEP)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def announce_workers(server: LiveServer) -> None:
    """Two workers on the Workers page: a CPU one that is draining, and one on a named queue."""
    cpu = {"kind": "cpu", "name": "Intel(R) Xeon(R) Platinum 8480+", "memory_bytes": 2**37, "cores": 16}
    for name, queues, state in (
        ("cpu0@lab-server-with-a-long-name", ["default"], "draining"),
        ("a100@lab", ["a100"], "up"),
    ):
        beat = {
            "name": name,
            "host": name.split("@")[1],
            "pid": 4242,
            "version": "0.1.0",
            "queues": queues,
            "device": cpu,
            "slots": 4,
            "running": [],
            "state": state,
        }
        response = httpx.post(f"{server.url}/api/workers/heartbeat", json=beat, headers=WORKER, timeout=30)
        assert response.status_code == 200, response.text


def fits(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


# What sticks out past the window's right edge, outside any box that scrolls or clips (to name in a failure).
STICKING_OUT = """() => [...document.querySelectorAll("body *")].filter((e) => {
  if (e.getBoundingClientRect().right <= innerWidth + 1) return false;
  for (let p = e.parentElement; p; p = p.parentElement) if (getComputedStyle(p).overflowX !== "visible") return false;
  return true;
}).slice(0, 5).map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.getAttribute("class")}`)"""


def settle(page: Page, url: str) -> None:
    """Open `url` and wait until what its scripts draw is there (charts, tables)."""
    page.goto(url)
    if url.startswith("/runs/") and url != "/runs/new":
        page.locator("#acc-chart .main-svg").first.wait_for()
    elif url.startswith("/compare"):
        page.locator("#chart-test_acc .main-svg").first.wait_for()
    elif url.endswith("/report"):
        page.locator("body[data-report-ready]").wait_for()
    elif url == "/docs":
        page.locator(".swagger-ui").first.wait_for()
    page.wait_for_timeout(300)  # a last layout pass (Plotly's resize)


def test_every_page_fits_a_phone_without_sideways_scrolling(
    page: Page, api: httpx.Client, worker: MakeWorker, browser: Browser, live_server: LiveServer, screenshots: Path
) -> None:
    a = finished_run(api, worker, name="a-rather-long-run-name-that-would-push-the-table-wide")
    b = finished_run(api, worker, name="b")
    made = study(api)
    announce_workers(live_server)
    create_run(api, device="cuda")  # waits for a GPU worker: the Workers page's Queues table says so
    pages = [
        "/",
        f"/runs/{a}",
        "/runs/new",
        f"/compare?runs={a},{b}",
        "/studies",
        f"/studies/{made['id']}",
        f"/studies/{made['id']}/report",
        "/studies/new",
        "/studies/new?preset=resnet18-finetune",  # the preset's table of its variants
        "/workers",
        "/docs",
    ]
    page.set_viewport_size(PHONE)
    wide = []
    for url in pages:
        settle(page, url)
        if not fits(page):
            wide.append((url, page.evaluate("document.documentElement.scrollWidth"), page.evaluate(STICKING_OUT)))
    assert wide == [], f"these pages scroll sideways at 390 px: {wide}"

    # The login page, logged out.
    context = browser.new_context(base_url=live_server.url, viewport=PHONE)
    try:
        login = context.new_page()
        login.goto("/login")
        expect(login.get_by_role("heading", level=1)).to_be_visible()
        assert fits(login)
    finally:
        context.close()

    # The before/after pictures of the issue: the runs list, the run page and the compare page at both widths.
    for width, viewport in (("390", PHONE), ("1440", DESKTOP)):
        page.set_viewport_size(viewport)
        shown = (("runs", "/"), ("run", f"/runs/{a}"), ("compare", f"/compare?runs={a},{b}"), ("workers", "/workers"))
        for name, url in shown:
            settle(page, url)
            page.screenshot(path=screenshots / f"layout-{name}-{width}.png", full_page=True, animations="disabled")


def test_the_nav_folds_into_a_menu_on_a_phone(page: Page) -> None:
    page.set_viewport_size(PHONE)
    page.goto("/")
    menu = page.get_by_role("button", name="Menu")
    runs_link = page.get_by_role("navigation", name="Main").get_by_role("link", name="Studies")
    expect(menu).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(runs_link).to_be_hidden()
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(runs_link).to_be_visible()
    assert fits(page)
    runs_link.click()
    expect(page).to_have_url(re.compile(r"/studies$"))

    page.set_viewport_size(DESKTOP)  # a desktop shows the nav itself, no menu
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Workers")).to_be_visible()


def test_the_runs_list_keeps_status_name_and_accuracy_on_a_phone(
    page: Page, api: httpx.Client, worker: MakeWorker
) -> None:
    run_id = finished_run(api, worker, name="phone-run")
    page.set_viewport_size(PHONE)
    page.goto("/")
    row = page.locator(f'tr[data-run-id="{run_id}"]')
    for field in ("name", "status", "best"):
        cell = row.locator(f'[data-field="{field}"]').first
        expect(cell).to_be_visible()
        box = cell.bounding_box()
        assert box is not None and box["x"] + box["width"] <= PHONE["width"], (field, box)  # in view, not scrolled to
    expect(row.locator('[data-field="best"]')).to_have_text("90.00 %")
    for field in ("dataset", "arch", "time", "created"):  # the lesser columns are hidden
        expect(row.locator(f'[data-field="{field}"]')).to_be_hidden()
    page.set_viewport_size(DESKTOP)
    expect(row.locator('[data-field="created"]')).to_be_visible()


def test_dates_are_in_the_users_locale_and_time_zone_on_every_page(
    browser: Browser, live_server: LiveServer, api: httpx.Client, worker: MakeWorker, page: Page
) -> None:
    """A German browser in Berlin: every date reads the same way, in Berlin time, and the footer says so once."""
    run_id = finished_run(api, worker)
    made = study(api)
    cookies = page.context.cookies()
    context = browser.new_context(
        base_url=live_server.url, viewport=DESKTOP, locale="de-DE", timezone_id="Europe/Berlin"
    )
    context.add_cookies(cookies)  # type: ignore[arg-type]
    try:
        german = context.new_page()
        pattern = re.compile(r"^\d{1,2}\. \w+\.? \d{4}(,| um) \d{2}:\d{2}:\d{2}$")
        for url, selector in (
            ("/", f'tr[data-run-id="{run_id}"] [data-field="created"] time'),
            (f"/runs/{run_id}", '[data-field="finished"] time'),
            ("/studies", "#studies time"),
            (f"/studies/{made['id']}", "time"),
        ):
            german.goto(url)
            time = german.locator(selector).first
            expect(time).to_have_text(pattern)
            iso = time.get_attribute("datetime")
            assert iso is not None
            berlin = datetime.fromisoformat(iso).astimezone(ZoneInfo("Europe/Berlin"))
            assert time.inner_text().endswith(berlin.strftime("%H:%M:%S")), (url, time.inner_text(), iso)
            assert str(berlin.year) in time.inner_text()
            expect(german.locator("#time-zone")).to_have_text("Europe/Berlin")  # stated once, in the footer
            expect(german.get_by_text("UTC")).to_have_count(0)  # no server-side UTC left on the page
    finally:
        context.close()


def test_the_runs_list_shows_a_sweep_as_a_table_of_its_chosen_fields(
    page: Page, api: httpx.Client, worker: MakeWorker
) -> None:
    made = study(api)
    first, second = (run["id"] for run in made["data"])
    page.goto("/")
    page.locator("#columns-pick summary").click()
    for name in ("study", "optimizer.lr", "batch_size"):
        page.locator(f'#columns-pick input[value="{name}"]').check()
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"\?cols=study%2Coptimizer\.lr%2Cbatch_size$"))
    heads = page.eval_on_selector_all("#runs thead th.col-extra", "ths => ths.map(th => th.textContent.trim())")
    assert heads == ["Study · label", "optimizer.lr", "batch_size"]
    row = page.locator(f'tr[data-run-id="{first}"]')
    expect(row.locator('[data-field="study"]')).to_have_text(f"study {made['id']} · lr=0.1")
    expect(row.locator('[data-spec="optimizer.lr"]')).to_have_text("0.1")
    expect(row.locator('[data-spec="batch_size"]')).to_have_text("32")
    expect(page.locator(f'tr[data-run-id="{second}"] [data-spec="batch_size"]')).to_have_text("64")

    run = worker(first)  # a live row update keeps the extra columns
    run.claim()
    run.epoch(1, test_acc=0.8)
    expect(row.locator('[data-field="best"]')).to_have_text("80.00 %")
    expect(row.locator('[data-spec="optimizer.lr"]')).to_have_text("0.1")
    expect(row.locator('[data-field="study"]')).to_have_text(f"study {made['id']} · lr=0.1")

    # A new run arriving live has them too; an unknown field is ignored with a note, never refused.
    page.goto("/?cols=optimizer.lr,no.such.field,optimizer.lr")
    expect(page.locator("#columns-note")).to_contain_text("no.such.field")
    added = create_run(api, name="live", optimizer={"name": "sgd", "lr": 0.05})["id"]
    expect(page.locator(f'tr[data-run-id="{added}"] [data-spec="optimizer.lr"]')).to_have_text("0.05")
    expect(page.locator("#runs thead th.col-extra")).to_have_count(1)
