"""The compare page in a real browser: picking runs in the list, overlaid curves that grow live, the config
diff, the summary table with its mode and exports, per-class bars and confusion matrices.

Three runs, as a stand-in worker reports them: two finished (sgd lr 0.1 and 0.01) and one still running (adam).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.frontend.conftest import epoch_record
from tests.frontend.test_pages_browser import create_run

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.conftest import LiveServer
    from tests.frontend.conftest import Worker

    MakeWorker = Callable[[int], Worker]

pytestmark = pytest.mark.browser

METRICS = ["train_loss", "test_loss", "train_acc", "test_acc", "lr"]
CONFUSION_A = [[90 if true == pred else 1 for pred in range(10)] for true in range(10)]
CONFUSION_B = [[80 if true == pred else 2 for pred in range(10)] for true in range(10)]
# Per run: its losses are conftest's epoch_record's times this factor; its learning rate (the first run's
# drops tenfold at epoch 3, as a MultiStepLR would).
LOSS_SCALE = {"sgd-0.1": 1.0, "sgd-0.01": 1.3, "adam": 0.8}
LR = {"sgd-0.1": 0.1, "sgd-0.01": 0.01, "adam": 0.001}


@dataclass
class Runs:
    a: int  # sgd lr 0.1, succeeded: test acc 0.6, 0.8, 0.7 in 4.5 s
    b: int  # sgd lr 0.01, succeeded: test acc 0.5, 0.65, 0.75 in 6.0 s
    c: int  # adam, 4 epochs planned, running: test acc 0.7 after its first epoch
    running: Worker

    @property
    def ids(self) -> str:
        return f"{self.a},{self.b},{self.c}"


def report(run: Worker, name: str, epoch: int, test_acc: float) -> None:
    record = epoch_record(epoch, test_acc)
    record["train_loss"] = round(record["train_loss"] * LOSS_SCALE[name], 4)
    record["test_loss"] = round(record["test_loss"] * LOSS_SCALE[name], 4)
    record["lr"] = [LR[name] * (0.1 if name == "sgd-0.1" and epoch >= 3 else 1)]
    response = run.client.post("/epochs", json={"attempt": run.attempt, "lease": run.lease, "record": record})
    assert response.json() == {"created": True}


def finish(run: Worker, epochs_run: int, confusion: list[list[int]], seconds: float) -> None:
    result = {
        "stopped": "completed",
        "epochs_run": epochs_run,
        "confusion": confusion,
        "total_seconds": seconds,
        "device": "cpu",
    }
    response = run.client.post("/finish", json={"attempt": run.attempt, "lease": run.lease, "result": result})
    assert response.json() == {"status": "succeeded"}


@pytest.fixture
def runs(api: httpx.Client, worker: MakeWorker) -> Runs:
    ids = []
    for name, optimizer, accs, confusion, seconds in (
        ("sgd-0.1", {"name": "sgd", "lr": 0.1}, [0.6, 0.8, 0.7], CONFUSION_A, 4.5),
        ("sgd-0.01", {"name": "sgd", "lr": 0.01}, [0.5, 0.65, 0.75], CONFUSION_B, 6.0),
    ):
        run_id = create_run(api, name=name, optimizer=optimizer)["id"]
        run = worker(run_id)
        run.claim()
        for epoch, acc in enumerate(accs, start=1):
            report(run, name, epoch, acc)
        finish(run, len(accs), confusion, seconds)
        ids.append(run_id)
    running_id = create_run(api, name="adam", optimizer={"name": "adam", "lr": 0.001}, epochs=4)["id"]
    running = worker(running_id)
    running.claim()
    report(running, "adam", 1, 0.7)
    return Runs(a=ids[0], b=ids[1], c=running_id, running=running)


def traces(page: Page, chart_id: str) -> list[dict[str, Any]]:
    return page.evaluate(  # type: ignore[no-any-return]
        """id => document.getElementById(id).data.map(t => ({
            name: t.name, x: Array.from(t.x), y: Array.from(t.y), color: t.line?.color ?? t.marker?.color }))""",
        chart_id,
    )


def wait_drawn(page: Page, chart_id: str, lengths: list[int]) -> None:
    """Until the chart has one trace per run with these point counts."""
    page.wait_for_function(
        "([id, n]) => { const d = document.getElementById(id).data;"
        " return d?.length === n.length && d.every((t, i) => t.x.length === n[i]); }",
        arg=[chart_id, lengths],
    )


def summary_cell(page: Page, run_id: int, column: str) -> Any:
    return page.locator(f'#summary-table tr[data-run-id="{run_id}"] td[data-column="{column}"]')


def summary_heads(page: Page) -> list[str]:
    return page.eval_on_selector_all("#summary-table thead th", "ths => ths.map(th => th.textContent)")  # type: ignore[no-any-return]


def config_fields(page: Page) -> list[str]:
    return page.locator("#config-table tbody th.field-name").all_inner_texts()


def open_compare(page: Page, runs: Runs, query: str = "") -> None:
    page.goto(f"/compare?runs={runs.ids}{query}")
    wait_drawn(page, "chart-test_acc", [3, 3, 1])


def test_pick_three_runs_in_the_list_and_compare_them(
    page: Page, runs: Runs, api: httpx.Client, live_server: LiveServer, screenshots: Path
) -> None:
    page.goto("/")
    button = page.locator("#compare-selected")
    expect(button).to_be_disabled()
    page.get_by_label(f"Select run {runs.c} to compare").check()
    expect(button).to_be_disabled()  # one run is not a comparison
    page.get_by_label(f"Select run {runs.a} to compare").check()
    expect(button).to_be_enabled()
    expect(button).to_have_text("Compare selected (2)")
    page.get_by_label(f"Select run {runs.b} to compare").check()
    runs.running.progress(epoch=2, batch=3, batches=10)  # a live row update keeps its tick
    expect(page.locator(f'tr[data-run-id="{runs.c}"] .progress-label')).to_have_text("epoch 2/4 · batch 3/10")
    expect(page.get_by_label(f"Select run {runs.c} to compare")).to_be_checked()
    page.screenshot(path=screenshots / "compare-select.png", animations="disabled")
    button.click()

    expect(page).to_have_url(f"{live_server.url}/compare?runs={runs.ids}")
    expect(page.get_by_role("link", name="Compare", exact=True)).to_have_attribute("aria-current", "page")
    names = ["sgd-0.1", "sgd-0.01", "adam"]
    for metric in METRICS:
        wait_drawn(page, f"chart-{metric}", [3, 3, 1])
        drawn = traces(page, f"chart-{metric}")
        assert [t["name"] for t in drawn] == names
        assert len({t["color"] for t in drawn}) == 3  # one colour per run, the same in every chart
    assert traces(page, "chart-test_acc")[0]["color"] == traces(page, "chart-lr")[0]["color"]
    assert traces(page, "chart-test_acc")[0]["y"] == pytest.approx([60.0, 80.0, 70.0])
    assert traces(page, "chart-test_loss")[1]["y"] == pytest.approx([2.6, 1.3, 0.8667], abs=1e-4)
    assert traces(page, "chart-lr")[0]["y"] == pytest.approx([0.1, 0.1, 0.01])
    expect(page.locator("#run-keys li")).to_have_count(3)

    # The config table: only the fields that differ, one column per run; the toggle shows every field.
    expected = api.get(f"/api/compare?runs={runs.ids}").json()["diff"]
    assert {"name", "epochs", "optimizer.name", "optimizer.lr"} <= set(expected)
    assert "dataset.name" not in expected and "batch_size" not in expected
    expect(page.locator("#config-table tbody tr")).to_have_count(len(expected))
    assert config_fields(page) == list(expected)
    lr_row = page.locator('#config-table tr[data-field="optimizer.lr"] td')
    expect(lr_row).to_have_text(["0.1", "0.01", "0.001"])
    expect(page.locator("#config-table thead th")).to_have_text(["Field", *names])
    expect(page.locator("#config-note")).to_have_text(f"only the {len(expected)} fields that differ")

    page.get_by_label("show all fields").check()
    expect(page.locator('#config-table tr[data-field="dataset.name"] td')).to_have_text(["digits"] * 3)
    every = config_fields(page)
    assert set(expected) < set(every) and "batch_size" in every
    differing = page.locator("#config-table tr.differs th.field-name").all_inner_texts()
    assert sorted(differing) == sorted(expected)
    expect(page).to_have_url(re.compile(r"all_fields=true"))
    page.get_by_label("show all fields").uncheck()
    expect(page.locator("#config-table tbody tr")).to_have_count(len(expected))


def test_ticks_survive_a_new_run_arriving_in_the_list(page: Page, runs: Runs, api: httpx.Client) -> None:
    page.goto("/")
    page.get_by_label(f"Select run {runs.a} to compare").check()
    page.get_by_label(f"Select run {runs.b} to compare").check()
    newest = create_run(api, name="newest")["id"]
    expect(page.locator("tbody tr").first).to_have_attribute("data-run-id", str(newest))
    expect(page.get_by_label(f"Select run {newest} to compare")).not_to_be_checked()
    expect(page.get_by_label(f"Select run {runs.a} to compare")).to_be_checked()
    expect(page.locator("#compare-selected")).to_have_text("Compare selected (2)")
    page.get_by_label(f"Select run {runs.a} to compare").uncheck()
    expect(page.locator("#compare-selected")).to_be_disabled()


def test_a_running_run_grows_live_with_one_event_stream(page: Page, runs: Runs, screenshots: Path) -> None:
    streams: list[str] = []
    fetches: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if "/api/events" in r.url else None)
    page.on("request", lambda r: fetches.append(r.url) if "/api/compare?" in r.url else None)
    open_compare(page, runs)
    expect(page.locator("#live-badge")).to_be_visible()
    expect(summary_cell(page, runs.c, "epochs_run")).to_have_text("1")
    page.evaluate("window.notReloaded = true")

    # A heartbeat moves the run's progress bar; it changes nothing the comparison shows, so no refetch.
    before = len(fetches)
    runs.running.progress(epoch=2, batch=5, batches=10)
    expect(page.locator(f'#run-keys li[data-run-id="{runs.c}"] .progress-label')).to_have_text("epoch 2/4 · batch 5/10")
    page.wait_for_timeout(300)
    assert len(fetches) == before

    report(runs.running, "adam", 2, 0.85)
    wait_drawn(page, "chart-test_acc", [3, 3, 2])
    assert traces(page, "chart-test_acc")[2]["y"] == pytest.approx([70.0, 85.0])
    expect(summary_cell(page, runs.c, "epochs_run")).to_have_text("2")
    expect(summary_cell(page, runs.c, "test_acc")).to_have_text("85.00 %")
    # 85 % is the highest, but only runs that succeeded compete: a running run's numbers are partial.
    expect(summary_cell(page, runs.c, "test_acc")).not_to_have_class(re.compile(r"\bbest\b"))
    expect(summary_cell(page, runs.a, "test_acc")).to_have_class(re.compile(r"\bbest\b"))
    report(runs.running, "adam", 3, 0.86)
    wait_drawn(page, "chart-train_loss", [3, 3, 3])
    assert page.evaluate("window.notReloaded") is True
    page.locator("#confusion-grid .plot .main-svg").nth(1).wait_for()
    page.screenshot(path=screenshots / "compare-live.png", full_page=True, animations="disabled")
    page.screenshot(path=screenshots / "compare-live-top.png", animations="disabled")

    finish(runs.running, 3, CONFUSION_A, 5.0)
    expect(page.locator("#live-badge")).to_be_hidden()
    expect(page.locator("#confusion-grid .plot")).to_have_count(3)
    expect(page.locator(f'#run-keys li[data-run-id="{runs.c}"] .badge')).to_have_text("succeeded")
    expect(summary_cell(page, runs.c, "total_seconds")).to_have_text("5.0 s")
    assert page.evaluate("window.notReloaded") is True
    assert len(streams) == 1, streams  # one EventSource for all the runs
    page.set_viewport_size({"width": 1024, "height": 768})  # a small laptop
    page.reload()
    page.locator("#confusion-grid .plot .main-svg").nth(2).wait_for()
    page.locator("#confusion-diff .main-svg").first.wait_for()
    page.screenshot(path=screenshots / "compare-finished-1024.png", full_page=True, animations="disabled")


def test_summary_mode_caption_and_exports(page: Page, runs: Runs, api: httpx.Client) -> None:
    open_compare(page, runs)
    caption = page.locator("#summary-caption")
    expect(caption).to_have_text(re.compile(r"^Test accuracy at each run's best epoch"))
    expect(summary_cell(page, runs.a, "test_acc")).to_have_text("80.00 %")
    expect(summary_cell(page, runs.a, "summary_epoch")).to_have_text("2")
    # Best mode: the best accuracy and its epoch are the test accuracy and its epoch, shown once; the unit is
    # in the cells ("80.00 %"), never again in the header.
    assert summary_heads(page) == ["Run", "Test acc", "Epoch", "Final acc", "Epochs", "Time", "Images/s"]
    expect(summary_cell(page, runs.a, "best_test_acc")).to_have_count(0)
    expect(summary_cell(page, runs.a, "test_acc")).to_have_class(re.compile(r"\bbest\b"))
    expect(summary_cell(page, runs.a, "total_seconds")).to_have_text("4.5 s")
    expect(summary_cell(page, runs.b, "total_seconds")).to_have_text("6.0 s")
    # Least time among the runs that succeeded (the running one's 1.5 s is partial).
    expect(page.locator('#summary-table td.best[data-column="total_seconds"]')).to_have_text("4.5 s")

    page.get_by_label("Each run's accuracy at").select_option("last")
    expect(caption).to_have_text("Test accuracy at each run's last epoch.")
    expect(summary_cell(page, runs.a, "test_acc")).to_have_text("70.00 %")
    expect(summary_cell(page, runs.a, "summary_epoch")).to_have_text("3")
    assert summary_heads(page)[1:5] == ["Test acc", "Epoch", "Best acc", "Best epoch"]  # the best differs now
    expect(summary_cell(page, runs.a, "best_test_acc")).to_have_text("80.00 %")
    expect(summary_cell(page, runs.b, "test_acc")).to_have_class(re.compile(r"\bbest\b"))  # 75 beats 70
    expect(page).to_have_url(re.compile(r"summary=last"))
    # Per-class accuracy follows the mode too: A's last epoch now.
    page.wait_for_function("() => document.getElementById('per-class-chart').data?.[0]?.y?.[0] < 70")
    assert traces(page, "per-class-chart")[0]["y"] == pytest.approx([(0.7 + (k - 5) / 100) * 100 for k in range(10)])

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename == "trainboard-summary.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [(r["Run"], float(r["Test acc (%)"]), r["Epoch"]) for r in rows] == [
        ("sgd-0.1", 70.0, "3"),  # percent, as the header says
        ("sgd-0.01", 75.0, "3"),
        ("adam", 70.0, "1"),
    ]

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy Markdown").click()
    expect(page.locator("#copy-status")).to_have_text("Copied Markdown")
    markdown = api.get(f"/api/compare/summary?runs={runs.ids}&summary=last&format=md").text
    assert markdown.startswith("Test accuracy at each run's last epoch.") and "| sgd-0.01 | 75.00 | 3 |" in markdown
    assert page.evaluate("navigator.clipboard.readText()") == markdown

    page.reload()  # the mode is in the address: a reload or a shared link shows the same table
    expect(caption).to_have_text("Test accuracy at each run's last epoch.")
    expect(page.get_by_label("Each run's accuracy at")).to_have_value("last")


def test_curve_toggles_x_axis_log_and_smoothing(page: Page, runs: Runs) -> None:
    open_compare(page, runs)
    page.get_by_label("x axis").select_option("seconds")
    page.wait_for_function("() => document.getElementById('chart-test_acc').data[0].x[2] === 4.5")
    assert traces(page, "chart-test_acc")[0]["x"] == [1.5, 3.0, 4.5]  # 1.5 s an epoch, summed
    assert page.evaluate("document.getElementById('chart-test_acc').layout.xaxis.title.text") == "elapsed time (s)"

    page.get_by_label("log y").check()
    assert page.evaluate("document.getElementById('chart-test_loss').layout.yaxis.type") == "log"

    page.locator("#smoothing").fill("0.5")
    expect(page.locator("#smoothing-value")).to_have_text("0.50")
    assert traces(page, "chart-test_acc")[0]["y"] == pytest.approx([60.0, 70.0, 70.0])  # EMA: 60, 60/2+80/2, 70/2+70/2
    assert traces(page, "chart-test_acc")[2]["y"] == pytest.approx([70.0])
    expect(page).to_have_url(re.compile(r"x=seconds.*log=1.*smooth=0.5"))


def test_the_machine_figures_compare_as_curves_and_a_chart_without_any_stays_hidden(page: Page, runs: Runs) -> None:
    open_compare(page, runs)
    page.wait_for_function("() => document.getElementById('chart-rss_bytes').data?.length === 3")
    assert traces(page, "chart-rss_bytes")[0]["y"] == pytest.approx([301.0, 302.0, 303.0])  # MB, not bytes
    assert page.evaluate("document.getElementById('chart-rss_bytes').layout.yaxis.title.text") == "memory (MB)"
    assert traces(page, "chart-cpu_seconds")[1]["y"] == pytest.approx([2.5, 2.5, 2.5])
    assert traces(page, "chart-images_per_s")[2]["y"] == pytest.approx([4000.0])
    expect(page.locator("#chart-gpu_allocated_bytes")).to_be_hidden()  # CPU runs: no GPU figure to draw


def test_per_class_bars_and_confusion_matrices(page: Page, runs: Runs, screenshots: Path) -> None:
    open_compare(page, runs)
    wait_drawn(page, "per-class-chart", [10, 10, 10])
    bars = traces(page, "per-class-chart")
    assert [t["name"] for t in bars] == ["sgd-0.1", "sgd-0.01", "adam"]
    assert bars[0]["x"] == [str(k) for k in range(10)]
    # Each run at the epoch its summary row stands for (best by default): A's epoch 2, not its last.
    assert bars[0]["y"] == pytest.approx([(0.8 + (k - 5) / 100) * 100 for k in range(10)])
    assert bars[1]["y"] == pytest.approx([(0.75 + (k - 5) / 100) * 100 for k in range(10)])
    table = page.locator("#per-class-table")
    expect(table.locator("tbody tr")).to_have_count(10)
    expect(table.locator("tbody tr").nth(9).locator("td")).to_have_text(["84.00 %", "79.00 %", "74.00 %"])
    expect(table.locator("tbody tr").nth(9).locator("td.best")).to_have_text("84.00 %")

    grid = page.locator("#confusion-grid")
    expect(grid.locator(".plot")).to_have_count(2)
    expect(grid.locator(".chart-empty")).to_have_text("Shown when the run ends.")
    page.wait_for_function("() => document.getElementById('confusion-diff').data?.length === 1")
    diff = page.evaluate("document.getElementById('confusion-diff').data[0]")
    pairs = zip(CONFUSION_A, CONFUSION_B, strict=True)
    assert diff["z"] == [[a - b for a, b in zip(ra, rb, strict=True)] for ra, rb in pairs]
    assert diff["zmid"] == 0
    page.get_by_label("Run A", exact=True).select_option(str(runs.b))
    page.get_by_label("Run B", exact=True).select_option(str(runs.a))
    page.wait_for_function("() => document.getElementById('confusion-diff').data[0].z[0][0] === -10")

    page.get_by_label("% of each true class").check()
    page.wait_for_function("() => document.getElementById('confusion-diff').data[0].z[0][0] !== -10")
    first = page.evaluate("document.getElementById('confusion-diff').data[0].z[0]")
    assert first[0] == pytest.approx(round(80 / 98 * 100, 1) - round(90 / 99 * 100, 1), abs=0.11)
    page.locator("#per-class-table").scroll_into_view_if_needed()
    page.locator("section[aria-labelledby='per-class-title']").screenshot(path=screenshots / "compare-per-class.png")
    page.locator("section[aria-labelledby='confusion-title']").screenshot(path=screenshots / "compare-confusion.png")

    # Plotly's own export: PNG from the mode bar's camera, SVG from the button this page adds next to it.
    page.locator("#per-class-chart").hover()
    with page.expect_download() as download:
        page.locator('#per-class-chart .modebar-btn[data-title="Download plot as SVG"]').click()
    assert download.value.suggested_filename == f"compare-{runs.a}-{runs.b}-{runs.c}-per-class.svg"
    assert Path(download.value.path()).read_text().startswith("<svg")


def test_empty_and_error_states(page: Page, runs: Runs, screenshots: Path) -> None:
    page.goto("/compare")
    empty = page.locator("#compare-empty")
    expect(empty.get_by_role("heading")).to_have_text("Pick at least two runs")
    expect(empty).to_contain_text("Compare selected")
    expect(empty.get_by_role("link", name="Runs list")).to_have_attribute("href", "/")
    page.screenshot(path=screenshots / "compare-empty.png", full_page=True, animations="disabled")

    page.goto(f"/compare?runs={runs.a}")
    expect(empty).to_contain_text(f"Only run {runs.a} was given")
    page.goto("/compare?runs=1,two")
    expect(empty.get_by_role("alert")).to_have_text(
        "Run ids are numbers separated by commas, as in /compare?runs=1,2,3."
    )

    page.goto(f"/compare?runs={runs.a},999,998")
    expect(page.locator("#compare-error")).to_contain_text("Could not compare these runs: runs not found: 999, 998.")
    expect(page.locator("#compare-body")).to_be_hidden()


def test_seed_repeats_show_as_mean_and_std(page: Page, api: httpx.Client, worker: MakeWorker) -> None:
    base = {
        "dataset": {"name": "digits"},
        "model": {"arch": "mlp", "hidden": [16]},
        "epochs": 2,
        "seed": 7,
        "device": "cpu",
    }
    created = api.post(
        "/api/studies", json={"name": "seeds", "base": base, "repeats": 3, "variants": [{"label": "seeded"}]}
    )
    assert created.status_code == 201, created.text
    ids = [r["id"] for r in created.json()["data"]]
    for run_id, accs, seconds in zip(ids, ([0.6, 0.8], [0.7, 0.75], [0.65, 0.9]), (4.0, 5.0, 6.0), strict=True):
        run = worker(run_id)
        run.claim()
        for epoch, acc in enumerate(accs, start=1):
            run.epoch(epoch, acc)
        finish(run, len(accs), CONFUSION_A, seconds)
    single = create_run(api, name="single")["id"]
    page.goto(f"/compare?runs={','.join(map(str, ids))},{single}")
    group = page.locator("#summary-table tr.group-row")
    expect(group).to_have_count(1)
    expect(group.locator("th")).to_have_text("seeded")
    expect(group.locator('td[data-column="n"]')).to_have_text("3 of 3")
    expect(group.locator('td[data-column="test_acc"]')).to_have_text("81.67 % ± 7.64 %")
    expect(group.locator('td[data-column="total_seconds"]')).to_have_text("5.0 s ± 1.0 s")
    for run_id in [*ids, single]:  # the single runs stay listed and linked
        expect(page.locator(f'#summary-table tr[data-run-id="{run_id}"] a')).to_have_attribute(
            "href", f"/runs/{run_id}"
        )
    count_bands = "id => document.getElementById(id).data.filter(t => t.fill === 'tonexty').length"
    page.wait_for_function(f"() => ({count_bands})('chart-test_acc') === 1")
    bands = page.evaluate(
        """id => document.getElementById(id).data.map(t => ({
        name: t.name, y: Array.from(t.y), fill: t.fill ?? null, hoverinfo: t.hoverinfo ?? null }))""",
        "chart-test_acc",
    )
    assert [t["name"] for t in bands] == ["single", "seeded − std", "seeded + std", "seeded (mean of 3)"]
    assert bands[3]["y"] == pytest.approx([65.0, 81.6667], abs=1e-3)
    assert bands[2]["y"][1] == pytest.approx(81.6667 + 7.6376, abs=1e-3)
    assert bands[2]["fill"] == "tonexty" and bands[2]["hoverinfo"] == "skip"
    for metric in METRICS:
        assert page.evaluate(count_bands, f"chart-{metric}") == 1, metric

    toggle = page.get_by_label("Show seed groups as mean ± std")
    expect(toggle).to_be_checked()
    toggle.uncheck()
    wait_drawn(page, "chart-test_acc", [2, 2, 2, 0])
    assert page.evaluate(count_bands, "chart-test_acc") == 0
    toggle.check()
    page.wait_for_function(f"() => ({count_bands})('chart-test_acc') === 1")
