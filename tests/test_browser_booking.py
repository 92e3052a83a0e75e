"""A patient books online on a phone (360x640) in real Chromium: the practice's page, a free slot, their
details, then the code read from a real SMTP server (aiosmtpd on loopback); the appointment exists only
after the code. Every request the page makes goes to the live server, and nothing scrolls sideways."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from playwright.sync_api import expect

from browser import chromium, live_server
from conftest import make_app, make_practice, make_user
from smtp_helpers import smtp_server
from webapp import notify
from webapp.models import Appointment, Practice, VisitType, WeeklyHours, db

pytestmark = pytest.mark.browser


def test_a_patient_books_on_a_phone_with_the_code_from_the_email(tmp_path):
    with smtp_server() as smtp:
        app = make_app(tmp_path, WTF_CSRF_ENABLED=True, **smtp.config)
        with app.app_context():
            Practice.update(online_booking=True).where(Practice.id == make_practice().id).execute()
            doctor = make_user("practitioner", name="Dr Mobile")
            for weekday in range(5):
                WeeklyHours.create(practitioner=doctor, weekday=weekday, start_minute=9 * 60, end_minute=12 * 60)
            VisitType.create(practice=make_practice(), names=json.dumps({"en": "Follow-up"}), duration_minutes=20,
                             online=True, new_patients=True, notice_minutes=120)
            db.close()
        with live_server(app) as url, chromium() as browser:
            context = browser.new_context(locale="en-GB", viewport={"width": 360, "height": 640}, is_mobile=True,
                                          has_touch=True)
            elsewhere = []
            context.on("request", lambda r: None if r.url.startswith(url) else elsewhere.append(r.url))
            page = context.new_page()
            page.goto(f"{url}/book")
            page.get_by_role("link", name="Dr Mobile").click()
            expect(page.locator("#booking-week h3").first).to_have_text("Wednesday 11 June")
            page.locator("a.slot").first.click()
            page.fill("#first_name", "Élodie")
            page.fill("#last_name", "Dupont")
            page.fill("#birth_date", "1984-05-02")
            page.fill("#email", "elodie@example.org")
            page.fill("#phone", "06 12 34 56 78")
            page.check("#terms")
            assert page.evaluate("document.documentElement.scrollWidth") <= 360
            page.get_by_role("button", name="Send me a code").click()
            page.wait_for_url(re.compile(r".*/book/code/\w+$"))
            with app.app_context():
                assert not Appointment.select().exists()
                notify.send_due()
                db.close()
            code = re.search(r"\b(\d{6})\b", smtp.text_of(smtp.wait_for(1)[0])).group(1)
            page.fill("#code", code)
            page.get_by_role("button", name="Confirm").click()
            expect(page.locator("h1")).to_have_text("Your appointment is booked")
            assert page.evaluate("document.documentElement.scrollWidth") <= 360
            assert not elsewhere
            context.close()
    with app.app_context():
        appt = Appointment.get()
        assert (appt.starts_at, appt.status, appt.booked_online) == (dt.datetime(2036, 6, 11, 7, 0), "scheduled", True)
        assert appt.patient.full_name == "Élodie Dupont"
        db.close()
