"""The agenda in real Chromium: htmx fragments, CSRF on htmx requests, no reloads, no CSP violations."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from browser import TOTP_SECRET, chromium, live_server, sign_in_with_code
from conftest import PASSWORD, make_app, make_patient, make_practice, make_user
from webapp.i18n import utc_to_local
from webapp.models import Appointment, VisitType, db, utcnow

pytestmark = pytest.mark.browser


@pytest.fixture
def served(tmp_path):
    app = make_app(tmp_path, WTF_CSRF_ENABLED=True)
    with app.app_context():
        make_practice()
        doctor = make_user("practitioner", email="doc@cabinet.example.org", totp_secret=TOTP_SECRET, name="Dr Navigateur")
        make_patient(first_name="Berthe", last_name="Lachaise")
        VisitType.create(practice=make_practice(), names=json.dumps({"en": "Follow-up"}), duration_minutes=30,
                         mode="audio", act_code="TCG")
        db.close()
    with live_server(app) as url:
        yield app, url, doctor


def test_book_and_cancel_without_a_page_reload(served):
    app, url, doctor = served
    tomorrow = utc_to_local(utcnow(), "Europe/Paris").date() + dt.timedelta(days=1)
    with chromium() as browser:
        page = browser.new_page(locale="en-GB")
        problems = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        sign_in_with_code(page, url, "doc@cabinet.example.org", PASSWORD)
        page.wait_for_url(f"{url}/agenda/")
        page.evaluate("window.__sameDocument = true")

        page.click("text=New teleconsultation")
        page.wait_for_selector("#appointment-form")
        page.fill("#patient_query", "lach")
        page.wait_for_selector("text=Berthe Lachaise")
        page.fill("#date", tomorrow.isoformat())
        page.fill("#time", "10:30")
        # Choosing the visit type sets its length and mode (still the secretary's to change).
        assert page.input_value("#duration") == "15" and page.is_checked("#mode-0")
        page.select_option("#visit_type", label="Follow-up · 30 min")
        assert page.input_value("#duration") == "30" and page.is_checked("#mode-1")
        page.click("#appointment-form button.primary")
        link_box = page.wait_for_selector(".link-box")
        assert link_box.input_value().startswith("https://cabinet.test/p/")   # PUBLIC_URL of the tests

        # The agenda refreshes itself; move to tomorrow without leaving the page.
        page.click("#agenda a[rel=next]")
        page.wait_for_selector("#agenda .ev >> text=Berthe Lachaise")
        assert page.evaluate("window.__sameDocument") is True

        # A form error comes back as a fragment (422) next to its field.
        # The panel still shows the visit just booked: wait for the clicked block's own answer, or
        # "Cancel" could be pressed on the old panel while the new one replaces it (its answer then
        # lands in a detached element and nothing changes on the screen).
        with page.expect_response(lambda r: re.search(r"/agenda/\d+$", r.url) and r.request.method == "GET"):
            page.click("#agenda .ev")
        page.wait_for_selector(".detail")
        page.once("dialog", lambda d: d.accept())
        page.click("text=Cancel the teleconsultation")
        page.wait_for_selector("text=its link no longer works")
        assert page.evaluate("window.__sameDocument") is True
    with app.app_context():
        appt = Appointment.get()
        assert appt.status == "cancelled" and appt.practitioner_id == doctor.id
        assert (appt.visit_type.name_in("en"), appt.duration_minutes, appt.mode) == ("Follow-up", 30, "audio")
    assert problems == []


def test_validation_errors_show_inline(served):
    app, url, _ = served
    with chromium() as browser:
        page = browser.new_page(locale="en-GB")
        sign_in_with_code(page, url, "doc@cabinet.example.org", PASSWORD)
        page.wait_for_url(f"{url}/agenda/")
        page.evaluate("window.__sameDocument = true")
        page.click("text=Instant visit")
        page.wait_for_selector("#instant-form")
        page.fill("#phone", "12")
        page.click("#instant-form button.primary")
        page.wait_for_selector("#phone-field .error")
        assert "valid phone number" in page.inner_text("#phone-field .error")
        assert page.evaluate("window.__sameDocument") is True
    with app.app_context():
        assert Appointment.select().count() == 0
