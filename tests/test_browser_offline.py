"""The service worker in real Chromium: it keeps the call's files and shows a page when offline."""
from __future__ import annotations

import pytest

from browser import chromium, live_server
from conftest import make_app, make_practice
from webapp.models import db
from webapp.site import SHELL_STATIC

pytestmark = pytest.mark.browser


def test_the_shell_is_kept_and_the_offline_page_shows_without_the_server(tmp_path):
    app = make_app(tmp_path)
    with app.app_context():
        make_practice()
        db.close()
    with chromium() as browser:
        page = browser.new_page(locale="en-GB")
        problems = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        with live_server(app) as url:
            page.goto(f"{url}/login")
            page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=15_000)
            # Every one of the call's modules, or the call page would fetch the missing ones first.
            wanted = [f"/static/{name}" for name in SHELL_STATIC if name.startswith("js/call/")]
            wanted += ["/static/css/call.css", "/offline"]
            kept = page.evaluate("ps => Promise.all(ps.map(p => caches.match(p).then(r => r ? r.status : 0)))",
                                 wanted)
            assert "/static/js/call/main.js" in wanted and kept == [200] * len(wanted)
            preload = page.evaluate("navigator.serviceWorker.ready.then(r => r.navigationPreload.getState())")
            assert preload["enabled"] is True
            page.goto(f"{url}/login")          # through navigation preload, from the server
            assert page.locator("#email").count() == 1
        page.goto(f"{url}/login")              # the server is gone
        assert page.locator("h1").inner_text() == "You are offline"
        assert problems == []
