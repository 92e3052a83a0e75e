"""The patient's way in and the live waiting room in real Chromium, with a fake camera and microphone.

The patient opens the link from the invitation e-mail (sent through a real SMTP
server on loopback), confirms identity, consents,
passes the device check and waits; the practitioner, signed in through the real
login form in another browser context, sees them arrive without a reload (list,
tab-title count) and lets them in; the patient's page moves to the call page.
Every request either page makes goes to the live server, nowhere else.
"""
from __future__ import annotations

import datetime as dt
import json
import re

import pyotp
import pytest
from playwright.sync_api import expect

from browser import chromium, live_server, until_true
from smtp_helpers import smtp_server
from conftest import HX, PASSWORD, login_as, make_app, make_appointment, make_patient, make_practice, make_user, text_of
from webapp import events, notify
from webapp.models import Appointment, db
from webapp.access import IDENTITY_COOKIE, link_expires_at, patient_link_url
from webapp.tokens import make_identity_cookie

DOCTOR = "doc@cabinet.example.org"
DOCTOR_TOTP = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"      # the doctor's authenticator app, already set up


@pytest.fixture
def served(tmp_path):
    app = make_app(tmp_path, WTF_CSRF_ENABLED=True)
    with app.app_context():
        make_practice()
        doctor = make_user("practitioner", email=DOCTOR, name="Dr Navigateur", totp_secret=DOCTOR_TOTP)
        appt = make_appointment(doctor, starts_in=dt.timedelta(minutes=5),
                                patient=make_patient(first_name="Lucie", last_name="Vidal",
                                                     birth_date=dt.date(1980, 4, 2)))
        db.close()
    with live_server(app) as url:
        yield app, url, appt


def invitation_link(app, url, appt) -> str:
    """The link the patient receives, pointed at the live server instead of the tests' PUBLIC_URL."""
    with app.test_request_context():
        link = patient_link_url(Appointment.get_by_id(appt.id))
    db.close()
    return link.replace("https://cabinet.test", url)


class Watched:
    """A browser context whose every request, websocket and page error is recorded."""

    def __init__(self, browser, url, **options):
        self.url = url
        self.context = browser.new_context(locale="en-GB", **options)
        self.requests, self.problems = [], []
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.context.on("page", self._watch)

    def _watch(self, page):
        page.on("websocket", lambda ws: self.requests.append(ws.url))
        page.on("pageerror", lambda e: self.problems.append(str(e)))
        page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)

    def new_page(self):
        return self.context.new_page()

    def off_server(self) -> list[str]:
        origin = re.escape(self.url.split("://", 1)[1])
        return [u for u in self.requests if not re.match(rf"(https?|wss?)://{origin}/", u)]


def sign_in(page, url):
    """Through the real login form, then to the day by the menu (a boosted link: the page must load in full)."""
    page.goto(f"{url}/login?next=/agenda/")
    page.fill("#email", DOCTOR)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/login/code")
    page.fill("#code", pyotp.TOTP(DOCTOR_TOTP).now())
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/agenda/")
    page.click("header nav >> text=Today")
    page.wait_for_url(f"{url}/today/")


def wait_for_live_socket(page):
    """The live page's websocket is open (htmx's ws extension fires htmx:wsOpen).

    Selectors, not wait_for_function: polling a string predicate needs eval, which the CSP forbids.
    """
    page.wait_for_selector("html[data-ws-open]", state="attached", timeout=5000)


# Counts what the practitioner's page does when a patient arrives: notifications shown, sounds started.
COUNT_ALERTS = """
window.__notified = []; window.__sounds = 0;
const RealNotification = window.Notification;
window.Notification = function (title, options) { window.__notified.push(title); return new RealNotification(title, options); };
Object.defineProperty(window.Notification, "permission", { get: () => RealNotification.permission });
window.Notification.requestPermission = RealNotification.requestPermission.bind(RealNotification);
const start = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) { if (this.context.state === "running") window.__sounds += 1; return start.apply(this, args); };
"""


def track_socket(page):
    page.add_init_script(
        "document.addEventListener('htmx:wsOpen', () => { document.documentElement.dataset.wsOpen = '1'; });")


def emailed_link(app, url, appt) -> str:
    """The invitation goes out through a real SMTP server (aiosmtpd); the patient's link is read from it."""
    with smtp_server() as smtp:
        app.config.update(smtp.config, PUBLIC_URL=url)
        with app.app_context():
            notify.queue(Appointment.get_by_id(appt.id), "invitation", channels=["email"])
            assert notify.send_due()["sent"] == 1
            db.close()
        mail = smtp.wait_for(1)[0]
    assert smtp.collector.envelopes[0][1] == [appt.contact_email]
    return smtp.link_in(mail)


@pytest.mark.browser
def test_patient_walks_in_and_is_admitted_live(served):
    app, url, appt = served
    link = emailed_link(app, url, appt)
    assert link.startswith(f"{url}/p/")
    with chromium() as browser:
        staff = Watched(browser, url, permissions=["notifications"])
        doctor = staff.new_page()
        track_socket(doctor)
        doctor.add_init_script(COUNT_ALERTS)
        sign_in(doctor, url)
        wait_for_live_socket(doctor)
        assert "Nobody is waiting" in doctor.inner_text("#today-day")
        assert not doctor.title().startswith("(")
        doctor.click("h1")   # the practitioner has touched the page: the browser lets it play sounds
        doctor.evaluate("window.__sameDocument = true")

        patients = Watched(browser, url)
        page = patients.new_page()
        page.goto(link)
        page.wait_for_url(f"{url}/v/{appt.ref}/identity")
        assert "/p/" not in page.url                       # the token left the address bar
        assert "I am Lucie Vidal" in page.inner_text("main")
        page.check("input[name=confirm]")
        page.fill("#birth_date", "1980-04-02")
        page.click("main button[type=submit]")

        page.wait_for_url(f"{url}/v/{appt.ref}/consent")
        page.check("input[name=agree]")
        page.click("text=I agree, continue")

        page.wait_for_url(f"{url}/v/{appt.ref}/check")
        page.click("[data-start]")
        page.wait_for_selector('[data-item="camera"] [data-result].is-ok', timeout=8000)
        page.wait_for_selector('[data-item="microphone"] [data-result].is-ok', timeout=8000)
        page.wait_for_selector('[data-item="network"] [data-result].is-ok', timeout=8000)
        assert page.evaluate("document.querySelector('[data-preview]').videoWidth") > 0   # the fake camera shows
        # On a 390 px phone the preview stays inside its card, and the page is no wider than the screen.
        page.set_viewport_size({"width": 390, "height": 844})
        fits = page.evaluate("""() => { const v = document.querySelector('[data-preview]').getBoundingClientRect(),
            c = document.getElementById('device-check').getBoundingClientRect();
            return [v.left >= c.left, v.right <= c.right, document.documentElement.scrollWidth <= innerWidth]; }""")
        assert fits == [True, True, True]
        page.click("[data-play]")
        page.click("[data-heard-yes]")
        assert page.inner_text('[data-item="speaker"] [data-result]') == "Works"
        assert all(page.is_hidden(f"[data-fix='{fix}']") for fix in ("denied", "missing", "busy", "silent", "poor"))
        track_socket(page)
        page.click("[data-continue]")

        page.wait_for_url(f"{url}/v/{appt.ref}/waiting")
        wait_for_live_socket(page)
        assert "You are in the waiting room" in page.inner_text("#waiting-status")
        with app.app_context():
            stored = Appointment.get_by_id(appt.id)
            assert stored.status == "waiting" and stored.consent_version == "2026-11"
            results = stored.device_results
            db.close()
        assert {k: results[k] for k in ("camera", "microphone", "speaker", "network")} == \
            {"camera": "ok", "microphone": "ok", "speaker": "ok", "network": "good"}

        # The practitioner's day changed by itself: the patient, the page open, the count in the title.
        doctor.wait_for_selector("#today-day [data-waiting] >> text=Lucie Vidal", timeout=5000)
        doctor.wait_for_selector("#today-day [data-waiting] >> text=page open", timeout=5000)
        assert "1 patient waiting" in doctor.inner_text("#today-day h2")
        expect(doctor).to_have_title(re.compile(r"^\(1\) Today · "), timeout=2000)
        assert doctor.evaluate("window.__notified") == ["A patient is waiting"]
        assert doctor.evaluate("window.__sounds") == 1
        assert doctor.evaluate("window.__sameDocument") is True

        # The call pages belong to the visit; only the way there is checked here.
        assert patients.problems == [] and staff.problems == [], (patients.problems, staff.problems)
        # The waiting room opened the camera the call will use, and shows its picture.
        page.wait_for_selector("#waiting-preview video", state="visible", timeout=5000)
        page.evaluate("window.__sameDocument = true")
        doctor.click("#today-day [data-waiting] button:has-text('Let in')")
        doctor.wait_for_url(f"{url}/today/{appt.id}/call")
        page.wait_for_url(f"{url}/v/{appt.ref}/call", timeout=5000)
        # Let in without a new page load on either side (the patient's camera stays open, the
        # practitioner's starts at the click): the call page is swapped in, and runs.
        until_true(page, "!!(window.cabinetCall && window.cabinetCall.stats)", timeout=5)
        assert page.evaluate("window.__sameDocument") is True
        assert doctor.evaluate("window.__sameDocument") is True
        assert doctor.locator("#today-day").count() == 0 and doctor.locator("#call").count() == 1
        # The peer connections made before the call pages were in carry the call: pictures both ways.
        for side in (page, doctor):
            until_true(side, "window.cabinetCall.stats().then(s => s.framesDecoded > 0)", timeout=10)
        assert page.locator("#waiting-room").count() == 0 and page.title() == "Teleconsultation"
        with app.app_context():
            assert Appointment.get_by_id(appt.id).status == "in_call"
            db.close()

        assert patients.off_server() == [] and staff.off_server() == []
        assert any(u.startswith(f"ws://{url[7:]}/v/{appt.ref}/live") for u in patients.requests)
        assert any(u.startswith(f"ws://{url[7:]}/today/live") for u in staff.requests)


def identity_mark(appt) -> dict:
    """The cookie of a browser that already confirmed the patient's identity (asked of each browser)."""
    value = make_identity_cookie("test-secret", appt.id, appt.link_version, link_expires_at(appt))
    return {"name": IDENTITY_COOKIE, "value": value, "path": f"/v/{appt.ref}/"}


def confirmed_here(watched, url, *appts):
    """This browser context already confirmed identity for these appointments."""
    watched.context.add_cookies([{**identity_mark(a), "domain": "127.0.0.1"} for a in appts])
    return watched


def ready_to_wait(app, appt):
    """Identity, consent and device check already done: the link leads straight to the waiting room."""
    with app.app_context():
        stored = Appointment.get_by_id(appt.id)
        stored.confirm_identity()
        stored.give_consent("2026-11", "en")
        stored.record_device_check(json.dumps({"camera": "ok", "microphone": "ok", "speaker": "ok",
                                               "network": "good"}))
        db.close()


@pytest.mark.browser
def test_a_second_tab_takes_over_and_the_first_says_so(served):
    app, url, appt = served
    ready_to_wait(app, appt)
    link = invitation_link(app, url, appt)
    with chromium() as browser:
        patients = confirmed_here(Watched(browser, url), url, appt)
        first = patients.new_page()
        track_socket(first)
        first.goto(link)
        first.wait_for_url(f"{url}/v/{appt.ref}/waiting")
        wait_for_live_socket(first)

        second = patients.new_page()
        track_socket(second)
        second.goto(f"{url}/v/{appt.ref}/waiting")
        wait_for_live_socket(second)
        first.wait_for_selector("#waiting-status[data-status=takeover]", timeout=5000)
        assert "This page is open in another tab" in first.inner_text("#waiting-status")
        assert "You are in the waiting room" in second.inner_text("#waiting-status")

        # The newer tab keeps working: a message from the practitioner reaches it, not the older one.
        from webapp.events import announce
        with app.app_context():
            stored = Appointment.get_by_id(appt.id)
            stored.leave_note(stored.practitioner, "I am running about 10 minutes late.")
            announce(stored)
            db.close()
        second.wait_for_selector("#waiting-status >> text=running about 10 minutes late", timeout=5000)
        assert "open in another tab" in first.inner_text("#waiting-status")
        assert "running about" not in first.inner_text("#waiting-status")
        first.wait_for_timeout(1500)   # htmx would have reconnected by now (its first retry is under 1 s)
        assert [u for u in patients.requests if u.startswith("ws://")] == [f"ws://{url[7:]}/v/{appt.ref}/live"] * 2
        assert patients.off_server() == []
        # A websocket closed cleanly under werkzeug's development server is followed by the
        # server's stray HTTP status line, which Chromium reports (and htmx logs) once; the
        # socket stays closed, as the assertion above shows. Any other error counts.
        quirk = ("Invalid frame header", "[object Event]")
        assert [p for p in patients.problems if not any(q in p for q in quirk)] == [], patients.problems


# The browser's own refusal, as Chromium reports it when the person blocks the camera and microphone.
DENY_DEVICES = """
if (navigator.mediaDevices) {
  navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
}
"""


NO_MEDIA_DEVICES = """
Object.defineProperty(Navigator.prototype, "mediaDevices", { get: () => undefined });
"""

RECORD_CONSTRAINTS = """
window.__asked = [];
if (navigator.mediaDevices) {   // absent from frames that are not secure contexts
  const realGetUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (constraints) => { window.__asked.push(constraints); return realGetUserMedia(constraints); };
}
"""


@pytest.mark.browser
def test_device_check_explains_a_blocked_camera_and_audio_only_skips_it(served):
    app, url, appt = served
    with app.app_context():
        stored = Appointment.get_by_id(appt.id)
        audio = make_appointment(stored.practitioner, starts_in=dt.timedelta(minutes=5), mode="audio",
                                 patient=make_patient(birth_date=None))
        db.close()
    for one in (appt, audio):
        with app.app_context():
            stored = Appointment.get_by_id(one.id)
            stored.confirm_identity()
            stored.give_consent("2026-11", "en")
            db.close()
    with chromium() as browser:
        blocked = confirmed_here(Watched(browser, url), url, appt)
        blocked.context.add_init_script(DENY_DEVICES)
        page = blocked.new_page()
        page.goto(invitation_link(app, url, appt))
        page.wait_for_url(f"{url}/v/{appt.ref}/check")
        page.click("[data-start]")
        for item in ("camera", "microphone"):
            fix = page.wait_for_selector(f'[data-item="{item}"] [data-fix="denied"]', state="visible", timeout=5000)
            assert "Android (Chrome)" in fix.inner_text() and "iPhone (Safari)" in fix.inner_text()
            assert page.inner_text(f'[data-item="{item}"] [data-result]') == "Problem"
        page.wait_for_selector('[data-item="network"] [data-result].is-ok', timeout=8000)
        page.click("[data-continue]")                  # a failed check does not stop the patient
        page.wait_for_url(f"{url}/v/{appt.ref}/waiting")

        # A browser inside another app (mail, messages) often has no camera access at all.
        in_app = confirmed_here(Watched(browser, url), url, appt)
        in_app.context.add_init_script(NO_MEDIA_DEVICES)
        page = in_app.new_page()
        page.goto(invitation_link(app, url, appt))
        page.goto(f"{url}/v/{appt.ref}/check")         # the check again, from the waiting room
        page.click("[data-start]")
        fix = page.wait_for_selector('[data-item="camera"] [data-fix="unsupported"]', state="visible", timeout=5000)
        assert "open it in Chrome (Android) or Safari (iPhone)" in fix.inner_text()
        assert page.is_visible('[data-item="microphone"] [data-fix="unsupported"]')
        assert in_app.problems == [], in_app.problems

        fine = confirmed_here(Watched(browser, url), url, audio)
        fine.context.add_init_script(RECORD_CONSTRAINTS)
        page = fine.new_page()
        page.goto(invitation_link(app, url, audio))
        page.wait_for_url(f"{url}/v/{audio.ref}/check")
        assert "Check your microphone and sound" in page.inner_text("h1")
        assert page.query_selector('[data-item="camera"]') is None
        page.click("[data-start]")
        page.wait_for_selector('[data-item="microphone"] [data-result].is-ok', timeout=8000)
        assert page.evaluate("window.__asked") == [{"audio": True, "video": False}]   # the camera is never opened
        page.click("[data-continue]")
        page.wait_for_url(f"{url}/v/{audio.ref}/waiting")
        assert blocked.off_server() == [] and fine.off_server() == []
        assert fine.problems == [], fine.problems
    with app.app_context():
        assert Appointment.get_by_id(appt.id).device_results["camera"] == "denied"
        assert Appointment.get_by_id(appt.id).device_results["microphone"] == "denied"
        assert Appointment.get_by_id(audio.id).device_results["camera"] == "skipped"
        assert Appointment.get_by_id(audio.id).device_results["microphone"] == "ok"
        db.close()


def test_today_rows_kept_between_renders_still_show_every_change(app, client):
    """The day's rows are rendered once per what they show: a note, the patient's page, a new arrival all show."""
    doctor = login_as(client, "practitioner")
    first, second = (make_appointment(doctor, starts_in=dt.timedelta(minutes=5)) for _ in range(2))
    first.enter_waiting_room()

    def day():
        return text_of(client.get("/today/", headers=HX))

    assert "1 patient waiting" in day() and "page closed" in day()
    assert client.post(f"/today/{first.id}/note", data={"text": "Five more minutes"}, headers=HX).status_code == 200
    assert 'value="Five more minutes"' in client.get("/today/", headers=HX).get_data(as_text=True)
    subscription = events.subscribe("test")
    events.patient_tabs.claim(first.ref, subscription)
    try:
        assert "page open" in day()
    finally:
        events.patient_tabs.release(first.ref, subscription)
        subscription.close()
    assert "page closed" in day()
    second.enter_waiting_room()
    assert "2 patients waiting" in day() and second.patient_name in day()


def test_a_patient_sent_back_stays_out_until_they_come_back(app, client):
    """Sent back to a time inside the link's window, the waiting room's poll must not bring them back in."""
    from webapp.i18n import utc_to_local
    from webapp.models import utcnow
    doctor = login_as(client, "practitioner")
    appt = make_appointment(doctor, starts_in=dt.timedelta(minutes=5))
    ready_to_wait(app, appt)
    patient = app.test_client()
    with app.test_request_context():
        assert patient.get(patient_link_url(appt).replace("https://cabinet.test", "")).status_code == 302
    mark = identity_mark(appt)
    patient.set_cookie(mark["name"], mark["value"], path=mark["path"])
    assert "You are in the waiting room" in text_of(patient.get(f"/v/{appt.ref}/waiting"))
    soon = utc_to_local(utcnow() + dt.timedelta(minutes=10), "Europe/Paris")
    if soon.date() != utc_to_local(utcnow(), "Europe/Paris").date():
        pytest.skip("ten minutes from now is tomorrow")
    assert client.post(f"/today/{appt.id}/send-back", data={"time": soon.strftime("%H:%M")},
                       headers=HX).status_code == 200

    polled = patient.get(f"/v/{appt.ref}/waiting", headers=HX)
    assert polled.status_code == 200 and "Please come back at" in text_of(polled) and "I am back" in text_of(polled)
    assert "data-redirect" not in polled.get_data(as_text=True)
    assert Appointment.get_by_id(appt.id).status == "scheduled"
    back = patient.get(f"/v/{appt.ref}/", follow_redirects=True)   # the patient chooses to come back
    assert "You are in the waiting room" in text_of(back)
    assert Appointment.get_by_id(appt.id).status == "waiting"
