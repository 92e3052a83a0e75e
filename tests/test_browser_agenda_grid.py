"""The time grid in real Chromium, on a tablet (768 px, by touch) and a 1366x768 laptop: no sideways
scroll, a tapped free cell opens the booking form filled in, navigation swaps the agenda only."""
from __future__ import annotations

import datetime as dt

import pytest

from browser import chromium, live_server
from conftest import make_app, make_appointment, make_practice, make_user, signed_in
from webapp.i18n import local_to_utc
from webapp.models import db

pytestmark = pytest.mark.browser

WEDNESDAY = dt.date(2036, 6, 11)


@pytest.fixture
def served(tmp_path):
    app = make_app(tmp_path, WTF_CSRF_ENABLED=True)
    with app.app_context():
        make_practice()
        doctor = make_user("practitioner", name="Dr Grille")
        for day in range(9, 16):            # a full week, overlapping visits included
            for hour, minute in ((9, 0), (9, 10), (14, 30)):
                make_appointment(practitioner=doctor, duration_minutes=30, starts_at=local_to_utc(
                    dt.datetime(2036, 6, day, hour, minute), "Europe/Paris"))
        session = app.session_interface.get_signing_serializer(app).dumps(signed_in(doctor))
        db.close()
    with live_server(app) as url:
        yield url, session


def test_week_grid_on_a_tablet_and_a_laptop(served):
    url, session = served
    with chromium() as browser:
        for width, height, touch in ((768, 1024, True), (1366, 768, False)):
            context = browser.new_context(viewport={"width": width, "height": height}, has_touch=touch,
                                          locale="en-GB")
            context.add_cookies([{"name": "session", "value": session, "url": url}])
            page = context.new_page()
            problems = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(f"{url}/agenda/?view=week&date={WEDNESDAY}")
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            assert page.locator(".tg-col").count() == 7
            cell = page.locator(f'.tg .free[data-slot$="|{WEDNESDAY}|11:00"]')
            cell.tap() if touch else cell.click()
            page.wait_for_selector("#panel #appointment-form")
            assert page.input_value("#time") == "11:00" and page.input_value("#date") == WEDNESDAY.isoformat()
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            # Next week: the agenda is swapped in place (one header, one agenda), the address follows.
            page.click("#agenda a[rel=next]")
            page.wait_for_url("**date=2036-06-18**")
            page.wait_for_selector('#agenda .tg-title a[href*="date=2036-06-21"]')
            assert page.locator("header.topbar").count() == 1 and page.locator("#agenda").count() == 1
            assert problems == []
            context.close()
