"""/docs on an air-gapped machine: Swagger UI comes from the installed swagger-ui-py package (Swagger UI 5), so with
every other host blocked the page still renders the API's operations, and its Authorize dialog offers the
bearer scheme /openapi.json declares (APIToken)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from tests.conftest import LiveServer

pytestmark = pytest.mark.browser


def test_docs_render_with_the_network_blocked_and_authorize_lists_the_api_token(
    anonymous_page: Page, live_server: LiveServer
) -> None:
    page = anonymous_page
    ours = urlsplit(live_server.url).netloc
    elsewhere: list[str] = []

    def only_our_server(route: Route) -> None:
        if urlsplit(route.request.url).netloc == ours or route.request.url.startswith("data:"):
            route.continue_()
        else:  # a CDN, a validator badge, fonts: what an air-gapped machine cannot reach
            elsewhere.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", only_our_server)
    page.goto("/docs")
    expect(page.get_by_text("Unable to render this definition")).to_have_count(0)
    runs = page.locator(".opblock", has=page.locator(".opblock-summary-path", has_text="/api/runs"))
    expect(runs.first).to_be_visible()
    assert page.locator(".opblock").count() > 20  # every operation, not a blank page
    expect(page.locator(".opblock-summary-path[data-path='/api/runs/{run_id}/cancel']")).to_have_count(1)

    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".dialog-ux .modal-ux")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading", name="APIToken (http, Bearer)")).to_be_visible()
    expect(dialog).to_contain_text("The API token (trainboard token)")
    dialog.locator("input").first.fill("a-token")
    dialog.locator("button.authorize", has_text="Authorize").first.click()
    expect(dialog.locator("button", has_text="Logout").first).to_be_visible()  # the token is taken
    assert elsewhere == []
