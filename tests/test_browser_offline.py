"""The service worker in real Chromium: it keeps the call's files and shows a page when offline."""
from __future__ import annotations

import datetime as dt

import pytest

from browser import chromium, live_server, until_true
from conftest import make_app, make_appointment, make_patient, make_practice
from webapp.access import patient_link_url
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
            until_true(page, "navigator.serviceWorker.controller !== null", timeout=15)
            # Every one of the call's modules, or the call page would fetch the missing ones first.
            wanted = [f"/static/{name}" for name in SHELL_STATIC if name.startswith("js/call/")]
            wanted += ["/static/css/call.css", "/offline?lang=en", "/offline?lang=fr"]
            # Kept under their versioned addresses (?v=); an unversioned module import finds them too.
            kept = page.evaluate("ps => Promise.all(ps.map(p => caches.match(p, {ignoreSearch: !p.startsWith('/offline')})"
                                 ".then(r => r ? r.status : 0)))", wanted)
            assert "/static/js/call/main.js" in wanted and kept == [200] * len(wanted)
            preload = page.evaluate("navigator.serviceWorker.ready.then(r => r.navigationPreload.getState())")
            assert preload["enabled"] is True
            page.goto(f"{url}/login")          # through navigation preload, from the server
            assert page.locator("#email").count() == 1
        page.goto(f"{url}/login")              # the server is gone
        assert page.locator("h1").inner_text() == "You are offline"
        assert page.locator("html").get_attribute("lang") == "en"
        assert page.locator("a[data-retry]").inner_text() == "Try again"
        assert problems == []


def test_the_offline_page_speaks_the_language_of_the_last_page(tmp_path):
    """An English browser on a French patient's pages: offline, the page is French too."""
    app = make_app(tmp_path)
    with app.app_context():
        make_practice()
        appt = make_appointment(starts_in=dt.timedelta(minutes=5), patient=make_patient(locale="fr"))
        with app.test_request_context():
            link = patient_link_url(appt).replace("https://cabinet.test", "")
        db.close()
    with chromium() as browser:
        page = browser.new_page(locale="en-GB")
        with live_server(app) as url:
            page.goto(url + link)
            until_true(page, "navigator.serviceWorker.controller !== null", timeout=15)
            page.reload()                      # through the worker, which notes the page's language
            assert page.locator("html").get_attribute("lang") == "fr"
        page.goto(f"{url}/v/{appt.ref}/identity")       # the server is gone
        assert page.locator("h1").inner_text() == "Vous êtes hors ligne"
        assert page.locator("a[data-retry]").inner_text() == "Réessayer"
