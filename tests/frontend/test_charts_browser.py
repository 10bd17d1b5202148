"""Every chart, as a new user meets it, in a real browser: no page asks any host but the server; no modebar
button shares to a cloud or selects; run names with markup are text in legends; a downloaded picture is
white and titled; epoch axes tick whole epochs; per-class axes name every class; log axes are readable;
axis titles clear their ticks; the A−B colour bar sits by its heatmap; a live compare page appends.

Runs are CIFAR-10 (named classes), reported by the stand-in worker: two finished, a third running.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Request, expect

from tests.frontend.test_pages_browser import create_run
from trainboard.spec import CLASS_NAMES

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.conftest import LiveServer
    from tests.frontend.conftest import Worker

    MakeWorker = Callable[[int], Worker]

pytestmark = pytest.mark.browser

MARKUP = "<b>bold</b><a href=x>l</a>"
CIFAR = {"dataset": {"name": "cifar10"}, "model": {"arch": "cnn"}, "epochs": 3, "device": "cpu"}
CONFUSION_A = [[90 if t == p else 1 for p in range(10)] for t in range(10)]
CONFUSION_B = [[80 if t == p else 2 for p in range(10)] for t in range(10)]
MODEBAR = ["Download plot as PNG", "Download plot as SVG", "Zoom", "Reset axes"]


@dataclass
class Charts:
    a: int  # named MARKUP, succeeded after 3 epochs
    b: int  # succeeded after 3 epochs
    c: int  # running: 1 of 3 epochs
    running: Worker
    study: int  # two variants of two epochs, succeeded

    @property
    def ids(self) -> str:
        return f"{self.a},{self.b},{self.c}"


@pytest.fixture
def charts(api: httpx.Client, worker: MakeWorker) -> Charts:
    ids = []
    for name, confusion, accs in ((MARKUP, CONFUSION_A, [0.6, 0.7, 0.8]), ("plain", CONFUSION_B, [0.5, 0.6, 0.7])):
        run = worker(create_run(api, **CIFAR, name=name)["id"])
        run.claim()
        for epoch, acc in enumerate(accs, start=1):
            run.epoch(epoch, acc)
        assert run.finish(3, confusion) == "succeeded"
        ids.append(run.run_id)
    running = worker(create_run(api, **CIFAR, name="running")["id"])
    running.claim()
    running.epoch(1, 0.4)
    response = api.post(
        "/api/studies",
        json={"name": "report", "base": CIFAR | {"epochs": 2}, "variants": [{"label": MARKUP}, {"label": "k5"}]},
    )
    assert response.status_code == 201, response.text
    study = response.json()
    for index, member in enumerate(study["data"]):
        w = worker(member["id"])
        w.claim()
        w.epoch(1, 0.5 + index / 20)
        w.epoch(2, 0.7 + index / 20)
        assert w.finish(2, confusion=[]) == "succeeded"
    return Charts(a=ids[0], b=ids[1], c=running.run_id, running=running, study=study["id"])


def open_compare(page: Page, charts: Charts, query: str = "") -> None:
    page.goto(f"/compare?runs={charts.ids}{query}")
    page.wait_for_function("() => document.getElementById('chart-test_acc').data?.length === 3")
    expect(page.locator("#confusion-diff .main-svg").first).to_be_attached()


def open_run(page: Page, run_id: int) -> None:
    page.goto(f"/runs/{run_id}")
    expect(page.locator("#confusion-chart .main-svg").first).to_be_attached()


def open_report(page: Page, charts: Charts) -> None:
    page.goto(f"/studies/{charts.study}/report")
    expect(page.locator("body[data-report-ready=true]")).to_have_count(1)


def tick_labels(page: Page, chart: str, axis: str) -> list[str]:
    return page.locator(f"#{chart} .{axis}tick text").all_text_contents()


def test_no_page_asks_any_host_but_the_server(page: Page, charts: Charts, live_server: LiveServer) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    pages = [
        ("/", "#runs"),
        (f"/runs/{charts.a}", "#confusion-chart .main-svg"),
        (f"/runs/{charts.c}", "#acc-chart .main-svg"),
        (f"/compare?runs={charts.ids}", "#confusion-diff .main-svg"),
        ("/studies", "main"),
        (f"/studies/{charts.study}", "#study-runs"),
        (f"/studies/{charts.study}/report", "body[data-report-ready=true]"),
        ("/runs/new", "#run-form"),
        ("/studies/new", "#study-form"),
        ("/workers", "main"),
        ("/docs", "#swagger-ui .info"),
    ]
    server = urlsplit(live_server.url).netloc
    for path, ready in pages:
        requests.clear()
        page.goto(path)
        expect(page.locator(ready).first).to_be_attached()
        page.wait_for_timeout(200)  # what the page asks for once drawn
        assert requests, path
        others = [url for url in requests if urlsplit(url).scheme not in ("data", "blob")]
        assert [url for url in others if urlsplit(url).netloc != server] == [], path
        if path.startswith("/compare"):  # one request answers everything: no per-run confusion matrices
            assert [url for url in requests if "/api/" in url and "/api/events" not in url] == [
                url for url in requests if "/api/compare?" in url
            ]


def test_every_modebar_offers_downloads_zoom_and_reset_only(page: Page, charts: Charts) -> None:
    def buttons() -> list[list[str]]:
        return page.evaluate(  # type: ignore[no-any-return]
            """() => [...document.querySelectorAll('.js-plotly-plot')].map((gd) =>
                [...gd.querySelectorAll('.modebar-btn')].map((b) => b.dataset.title))"""
        )

    def attrs() -> list[str]:
        return page.evaluate(  # type: ignore[no-any-return]
            "() => [...document.querySelectorAll('.modebar-btn')].map((b) => `${b.dataset.attr} ${b.dataset.val}`)"
        )

    for open_page in (
        lambda: open_compare(page, charts),
        lambda: open_run(page, charts.a),
        lambda: open_report(page, charts),
    ):
        open_page()
        seen = buttons()
        assert len(seen) >= 3
        assert all(chart == MODEBAR for chart in seen), seen
        assert not [a for a in attrs() if re.search(r"cloud|share|studio|select|lasso", a, re.I)]
        assert page.locator(".modebar-btn[data-title*=Share], .modebar-btn[data-title*=Cloud]").count() == 0
        assert page.locator(".modebar .plotlyjsicon, a[href*='plot.ly'], a[href*='plotly.com']").count() == 0


def test_run_names_with_markup_are_text_in_legends(page: Page, charts: Charts) -> None:
    open_compare(page, charts)
    for chart in ("chart-test_acc", "per-class-chart"):
        legend = page.locator(f"#{chart} .legend")
        names = legend.locator("text.legendtext").all_text_contents()
        assert MARKUP in names, names
        assert legend.locator("a").count() == 0
        assert legend.locator("text.legendtext[style*=bold], tspan[style*=bold]").count() == 0
    open_report(page, charts)
    for chart in ("report-test_acc", "report-per-class"):
        names = page.locator(f"#{chart} .legend text.legendtext").all_text_contents()
        assert MARKUP in names, names
        assert page.locator(f"#{chart} .legend a").count() == 0


EXPORT = """async ([id, format]) => {
    const { exportFigure } = await import('/static/charts.js');
    const gd = document.getElementById(id);
    const figure = exportFigure(gd);
    return Plotly.toImage(figure, { format, width: figure.layout.width, height: figure.layout.height });
}"""

CORNER = """async (url) => {
    const image = new Image();
    image.src = url;
    await image.decode();
    const canvas = document.createElement('canvas');
    canvas.width = image.width;
    canvas.height = image.height;
    const context = canvas.getContext('2d');
    context.drawImage(image, 0, 0);
    return Array.from(context.getImageData(2, 2, 1, 1).data);
}"""


def test_a_downloaded_chart_is_white_and_titled(page: Page, charts: Charts) -> None:
    open_compare(page, charts)
    png = page.evaluate(EXPORT, ["chart-test_acc", "png"])
    assert png.startswith("data:image/png;base64,")
    assert page.evaluate(CORNER, png) == [255, 255, 255, 255]
    svg_url = page.evaluate(EXPORT, ["chart-test_acc", "svg"])
    svg = svg_url.split(",", 1)[1]
    text = base64.b64decode(svg).decode() if ";base64" in svg_url.split(",", 1)[0] else unquote(svg)
    assert "Test accuracy" in text
    # The legend comes along, its markup as text (an SVG entity, not an element).
    assert "&#60;b&#62;bold&#60;/b&#62;" in text or "&lt;b&gt;bold&lt;/b&gt;" in text
    assert "<b>" not in text
    assert re.search(r'class="bg"[^>]*fill: ?rgb\(255, 255, 255\)|fill="#ffffff"|rgb\(255, 255, 255\)', text)
    # The download buttons draw that same figure: white paper, the chart's title above.
    open_run(page, charts.a)
    figure = page.evaluate(
        """async () => { const { exportFigure } = await import('/static/charts.js');
        const f = exportFigure(document.getElementById('acc-chart'));
        return { title: f.layout.title.text, paper: f.layout.paper_bgcolor, plot: f.layout.plot_bgcolor }; }"""
    )
    assert figure == {
        "title": f"Run {charts.a} (&lt;b&gt;bold&lt;/b&gt;&lt;a href=x&gt;l&lt;/a&gt;): accuracy",
        "paper": "#ffffff",
        "plot": "#ffffff",
    }


def test_epoch_axes_tick_whole_epochs(page: Page, charts: Charts) -> None:
    open_report(page, charts)
    for chart in ("report-test_acc", "report-train_loss", "report-test_loss"):
        assert tick_labels(page, chart, "x") == ["1", "2"]
    open_compare(page, charts)
    assert tick_labels(page, "chart-test_loss", "x") == ["1", "2", "3"]
    page.goto(f"/runs/{charts.c}")
    expect(page.locator("#acc-chart .main-svg").first).to_be_attached()
    assert tick_labels(page, "acc-chart", "x") == ["1", "2", "3"]


def test_per_class_axes_name_every_class(page: Page, charts: Charts) -> None:
    names = CLASS_NAMES["cifar10"]
    open_compare(page, charts)
    assert tick_labels(page, "per-class-chart", "x") == names
    assert tick_labels(page, "confusion-diff", "x") == names
    assert tick_labels(page, "confusion-diff", "y") == names
    open_report(page, charts)
    assert tick_labels(page, "report-per-class", "x") == names
    open_run(page, charts.a)
    assert tick_labels(page, "per-class-chart", "x") == names
    assert tick_labels(page, "confusion-chart", "y") == names


def test_log_axes_label_numbers_not_lone_digits(page: Page, charts: Charts) -> None:
    open_compare(page, charts, "&log=1")
    for chart in ("chart-test_loss", "chart-lr", "chart-test_acc"):
        labels = [label.replace("\u2212", "-").replace(",", "") for label in tick_labels(page, chart, "y")]
        assert len(labels) >= 2, (chart, labels)
        values = [float(label.removesuffix(" %")) for label in labels]  # plain numbers: no "10²", no "×10"
        assert values == sorted(values)
        # Each label is its value, written out, rising: not Plotly's lone digits "2 3 ... 9" between powers.
        assert len(set(values)) == len(values) <= 12, labels


def boxes(page: Page, selector: str) -> list[dict[str, float]]:
    return page.evaluate(  # type: ignore[no-any-return]
        "s => [...document.querySelectorAll(s)].map((e) => e.getBoundingClientRect().toJSON())", selector
    )


def test_axis_titles_clear_their_ticks_and_the_colour_bar_sits_by_its_heatmap(page: Page, charts: Charts) -> None:
    open_run(page, charts.a)
    for chart in ("acc-chart", "loss-chart", "per-class-chart"):
        (title,) = boxes(page, f"#{chart} .g-ytitle text")
        ticks = boxes(page, f"#{chart} .ytick text")
        assert title["right"] <= min(t["left"] for t in ticks), chart
        (xtitle,) = boxes(page, f"#{chart} .g-xtitle text")
        assert xtitle["top"] >= max(t["bottom"] for t in boxes(page, f"#{chart} .xtick text")), chart
    open_compare(page, charts)
    (heatmap,) = boxes(page, "#confusion-diff .heatmaplayer")
    (bar,) = boxes(page, "#confusion-diff .colorbar")
    assert 0 <= bar["left"] - heatmap["right"] <= 40


def test_a_live_compare_page_appends_the_new_points(page: Page, charts: Charts) -> None:
    compares: list[str] = []

    def log(request: Request) -> None:
        if "/api/compare?" in request.url:
            compares.append(request.url)
        assert not request.url.endswith("/confusion"), request.url

    page.on("request", log)
    open_compare(page, charts)
    page.evaluate("document.getElementById('chart-test_acc').dataset.mark = 'first draw'")
    charts.running.epoch(2, 0.55)
    page.wait_for_function("() => document.getElementById('chart-test_acc').data[2].x.length === 2")
    assert page.evaluate("Array.from(document.getElementById('chart-test_acc').data[2].y)") == pytest.approx(
        [40.0, 55.0]
    )
    assert "after=" not in compares[0]
    assert f"after={charts.a}:3,{charts.b}:3,{charts.c}:1" in compares[-1]
    answer = page.evaluate("url => fetch(url).then((r) => r.json())", compares[-1])
    assert [len(s["x"]) for s in answer["series"]["test_acc"]] == [0, 0, 1]
    assert [s["after"] for s in answer["series"]["test_acc"]] == [3, 3, 1]
    assert [c["matrix"] is not None for c in answer["confusion"]] == [True, True, False]


def test_screenshots_at_desktop_and_phone_widths(page: Page, charts: Charts, screenshots: Path) -> None:
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 900})
        open_compare(page, charts)
        page.screenshot(path=str(screenshots / f"charts-compare-{width}.png"), full_page=True)
        open_report(page, charts)
        page.screenshot(path=str(screenshots / f"charts-report-{width}.png"), full_page=True)
        open_run(page, charts.a)
        page.screenshot(path=str(screenshots / f"charts-run-{width}.png"), full_page=True)
        overflow: Any = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, width
