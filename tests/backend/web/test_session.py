"""The HTML side without a browser: login, the token link, CSRF on forms, HTML error pages, form defaults."""

from __future__ import annotations

from typing import Any

from backend.web import forms
from tests.backend.web.conftest import csrf_of
from tests.conftest import API, API_TOKEN, tiny_spec


def test_pages_need_a_session(client: Any) -> None:
    response = client.get("/runs/new?clone=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fruns%2Fnew%3Fclone%3D1"
    assert client.get("/login").status_code == 200
    wrong = client.post("/login", data={"token": "nope", "next": "/"}, follow_redirects=False)
    assert wrong.status_code == 401 and "Wrong token." in wrong.text


def test_login_goes_back_but_never_off_site(client: Any) -> None:
    for next_url, landing in (("/runs/new", "/runs/new"), ("//evil.example/x", "/"), ("https://evil.example", "/")):
        response = client.post("/login", data={"token": API_TOKEN, "next": next_url}, follow_redirects=False)
        assert response.headers["location"] == landing
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_form_post_needs_the_session_csrf_token(browser: Any) -> None:
    form = forms.form_defaults() | {"dataset.name": "digits", "model.arch": "mlp"}
    refused = browser.post("/runs/new", data=form | {"csrf": "forged"}, follow_redirects=False)
    assert refused.status_code == 403
    token = csrf_of(browser.get("/runs/new").text)
    queued = browser.post("/runs/new", data=form | {"csrf": token}, follow_redirects=False)
    assert queued.status_code == 303 and queued.headers["location"] == "/runs/1"
    assert browser.get("/api/runs/1").json()["spec"]["model"] == {
        "arch": "mlp",
        "hidden": [128, 64],
        "batch_norm": False,
        "dropout": 0.0,
    }


def test_cookie_writes_to_the_api_need_the_csrf_header(browser: Any) -> None:
    run_id = browser.post("/api/runs", json=tiny_spec(), headers=API).json()["id"]
    assert browser.post(f"/api/runs/{run_id}/cancel").status_code == 403  # cookie alone: refused
    token = csrf_of(browser.get(f"/runs/{run_id}").text)
    response = browser.post(f"/api/runs/{run_id}/cancel", headers={"X-CSRF-Token": token})
    assert response.status_code == 200 and response.json()["status"] == "cancelled"


def test_missing_pages_are_html_and_missing_api_objects_json(browser: Any) -> None:
    page = browser.get("/runs/999")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "run 999 not found" in page.text
    api = browser.get("/api/runs/999")
    assert api.status_code == 404 and api.json() == {"detail": "run 999 not found"}


def test_logout_needs_csrf_and_ends_the_browser_session(browser: Any) -> None:
    token = csrf_of(browser.get("/").text)
    assert browser.post("/logout", data={"csrf": "forged"}, follow_redirects=False).status_code == 403
    cookie = browser.cookies["trainboard_session"]
    response = browser.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert response.status_code == 303 and 'trainboard_session=""' in response.headers["set-cookie"]
    # The server ended it: the same cookie, kept by a browser (or stolen), opens nothing any more.
    browser.cookies.clear()
    browser.cookies.set("trainboard_session", cookie)
    assert browser.get("/", follow_redirects=False).status_code == 303
    assert browser.get("/api/runs").status_code == 401


def test_a_session_expires_on_the_server_whatever_the_cookie_says(browser: Any) -> None:
    from datetime import timedelta

    from sqlmodel import Session, select

    from backend.db import utcnow
    from backend.tables import BrowserSession

    assert browser.get("/", follow_redirects=False).status_code == 200
    with Session(browser.app.state.engine) as session:
        (row,) = session.exec(select(BrowserSession)).all()
        assert timedelta(days=29) < row.expires_at - utcnow() <= timedelta(days=30)
        row.expires_at = utcnow() - timedelta(seconds=1)  # 30 days later
        session.add(row)
        session.commit()
    assert browser.get("/", follow_redirects=False).status_code == 303  # to the login page
    assert browser.get("/api/runs").status_code == 401


def test_sessions_work_across_api_processes(browser: Any, tmp_path: Any) -> None:
    """Another API process on the same database (same tokens) knows the session, and its logout."""
    from fastapi.testclient import TestClient

    from backend.app import create_app

    settings = browser.app.state.settings
    with TestClient(create_app(settings)) as other:
        other.cookies.set("trainboard_session", browser.cookies["trainboard_session"])
        assert other.get("/", follow_redirects=False).status_code == 200
        token = csrf_of(other.get("/").text)
        assert other.post("/logout", data={"csrf": token}, follow_redirects=False).status_code == 303
    assert browser.get("/", follow_redirects=False).status_code == 303  # ended in the first process too


def test_plotly_is_served_locally(browser: Any) -> None:
    response = browser.get("/static/vendor/plotly.min.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert len(response.content) > 1_000_000 and b"plotly" in response.content[:2000].lower()
