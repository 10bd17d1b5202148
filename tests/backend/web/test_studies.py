"""The study pages without a browser: sessions, 404s, escaping, and what the server renders."""

from __future__ import annotations

import json
import re
from typing import Any

from markupsafe import escape

from tests.conftest import API
from trainboard.spec import SPEC_FIELDS


def test_study_pages_need_a_session(client: Any) -> None:
    for path in ("/studies", "/studies/new?preset=mnist-ablations", "/studies/1"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=%2Fstudies"), path


def test_an_unknown_study_page_is_an_html_404(browser: Any) -> None:
    response = browser.get("/studies/999")
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"] and "study 999 not found" in response.text


def test_the_study_page_escapes_what_users_typed(browser: Any) -> None:
    evil = "<script>alert('x')</script>"
    body = {
        "name": evil,
        "description": evil,
        "base": {"dataset": {"name": "digits"}, "model": {"arch": "mlp"}},
        "variants": [{"label": evil, "reported": {"test_acc": 0.5, "note": evil}}],
        "set": {"epochs": 1},
    }
    study_id = browser.post("/api/studies", json=body, headers=API).json()["id"]
    page = browser.get(f"/studies/{study_id}").text
    assert evil not in page
    assert page.count(str(escape(evil))) >= 3  # the name (title and heading), the description, the label
    data = re.search(r'<script type="application/json" id="study-data">(.*?)</script>', page, re.S)
    assert data and "<script>" not in data.group(1)  # the embedded JSON cannot close its script element
    assert json.loads(data.group(1))["data"][0]["label"] == evil
    listing = browser.get("/studies").text
    assert evil not in listing and "1 queued" in listing


def test_the_study_page_shows_reported_columns_only_for_reported_figures(browser: Any) -> None:
    plain = browser.post(
        "/api/studies",
        headers=API,
        json={
            "name": "plain",
            "base": {"dataset": {"name": "digits"}, "model": {"arch": "mlp"}},
            "variants": [{"label": "a"}],
        },
    ).json()
    assert "Reported acc" not in browser.get(f"/studies/{plain['id']}").text
    preset = browser.post("/api/studies", headers=API, json={"preset": "resnet18-finetune"}).json()
    page = browser.get(f"/studies/{preset['id']}").text
    assert "Reported acc" in page and "2,266.31 s" in page and "95 %" in page
    assert 'id="override-note"' not in page  # queued as the preset says: nothing to warn about
    assert "/compare?runs=" + ",".join(str(r["id"]) for r in preset["data"]) in page


def test_the_new_study_page_carries_the_presets_with_their_overrides_in_order(browser: Any) -> None:
    page = browser.get("/studies/new?preset=resnet18-finetune").text
    assert '<option value="resnet18-finetune" selected>' in page
    data = re.search(r'<script type="application/json" id="presets-data">(.*?)</script>', page, re.S)
    assert data
    presets = json.loads(data.group(1))
    assert [p["name"] for p in presets] == ["mnist-ablations", "cifar10-models", "resnet18-finetune"]
    r224 = presets[2]["variants"][8]
    assert r224["label"] == "R224 FC modified"
    assert list(r224["set"]) == [
        "dataset.resize",
        "model.head",
        "finetune.train",
        "optimizer",
        "scheduler",
    ]  # as the file gives them
    unknown = browser.get("/studies/new?preset=nope").text
    assert "selected>" not in unknown.split('id="f-preset"')[1].split("</select>")[0]  # nothing chosen


def test_the_new_study_page_offers_every_dotted_spec_field(browser: Any) -> None:
    page = browser.get("/studies/new").text
    datalist = re.search(r'<datalist id="spec-fields">(.*?)</datalist>', page, re.S)
    assert datalist
    assert re.findall(r'<option value="([^"]+)">', datalist.group(1)) == list(SPEC_FIELDS)
    assert "optimizer.lr" in SPEC_FIELDS and 'list="spec-fields"' in page  # the variants' and the grid's fields


def test_a_run_page_links_to_its_study(browser: Any) -> None:
    study = browser.post("/api/studies", headers=API, json={"preset": "mnist-ablations"}).json()
    run = study["data"][4]
    page = browser.get(f"/runs/{run['id']}").text
    assert f'<a href="/studies/{study["id"]}" id="run-study">' in page
    assert '<strong id="run-label">Deeper Norm</strong>' in page
