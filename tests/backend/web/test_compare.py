"""The compare page's shell without a browser: which runs it was asked for, or why it can't compare them."""

from __future__ import annotations

import json
import re
from typing import Any

from backend.web.compare import parse_run_ids
from tests.conftest import API_TOKEN


def test_parse_run_ids() -> None:
    assert parse_run_ids("3,1, 2,3,") == ([3, 1, 2], None)  # in the order given, once each
    assert parse_run_ids("") == ([], None)
    assert parse_run_ids("1,x")[1] == "Run ids are numbers separated by commas, as in /compare?runs=1,2,3."
    assert parse_run_ids("1,-2")[0] == []
    assert (
        parse_run_ids(",".join(str(i) for i in range(1, 52)))[1]
        == "At most 50 runs can be compared at once; 51 were given."
    )


def test_compare_page_needs_a_session_and_embeds_the_ids(client: Any) -> None:
    answer = client.get("/compare?runs=1,2", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=%2Fcompare%3Fruns%3D1%2C2"
    client.cookies.update(client.get(f"/?token={API_TOKEN}", follow_redirects=False).cookies)

    page = client.get("/compare?runs=2,1,2").text
    data = re.search(r'<script type="application/json" id="compare-data">(.*?)</script>', page)
    assert data and json.loads(data.group(1))["runs"] == [2, 1]
    assert '<script type="module" src="/static/compare.js">' in page
    assert '<a href="/compare" aria-current="page">Compare</a>' in page

    for query, text in (
        ("", "Pick at least two runs"),
        ("?runs=7", "Only run 7 was given"),
        ("?runs=1,a", "Run ids are numbers separated by commas"),
    ):
        page = client.get(f"/compare{query}").text
        assert text in page and "compare.js" not in page and "plotly.min.js" not in page, query
