"""The call in real Chromium with fake devices: both sides decode each other's video through the relay.

Practitioner and patient are two browser contexts: the practitioner signed in
(session cookie), the patient with the cookie their link gives. The appointment
is put in the call by the model's own steps, skipping the way in.
Run through tests/isolated.sh (a loopback-only network namespace).
"""
from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from browser import chromium, live_server
from conftest import make_app, make_appointment, make_patient, make_practice, make_user, signed_in
from relay_helpers import start_worker_process, stop_worker_process
from webapp.models import Document, Incident, db
from webapp.access import patient_link_url

# No dates involved (the visit is admitted directly). On the frozen clock, stopping the embedded
# relay after a call waited forever for aiortc's peer connections to close: real clock here.
pytestmark = [pytest.mark.browser, pytest.mark.real_clock]

PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)


def in_call_appointment():
    doctor = make_user("practitioner", name="Dr Navigateur")
    appt = make_appointment(doctor, starts_in=dt.timedelta(minutes=2),
                            patient=make_patient(first_name="Lucie", last_name="Vidal"))
    appt.confirm_identity()
    appt.give_consent("1", "en")
    appt.record_device_check('{"camera": "ok", "microphone": "ok"}')
    appt.enter_waiting_room()
    appt.admit(doctor)
    return doctor, appt


@pytest.fixture
def call_app(tmp_path):
    """An app with an appointment in the call; yields a function that serves it."""
    made = {}

    def serve(**config):
        app = make_app(tmp_path, **config)
        with app.app_context():
            make_practice()
            made["doctor"], made["appt"] = in_call_appointment()
            with app.test_request_context():
                made["link"] = patient_link_url(made["appt"])
            made["session"] = app.session_interface.get_signing_serializer(app).dumps(signed_in(made["doctor"]))
            db.close()
        made["app"] = app
        return app, made
    yield serve
    if "app" in made:
        made["app"].extensions["relay"].stop()


# werkzeug's development server (these tests' live server, not a production one) writes an HTTP
# status line on a websocket the server side has just closed; Chromium reports it as a failed frame.
DEV_SERVER_CLOSE = re.compile(r"^WebSocket connection to '.*' failed: Invalid frame header$")


class Side:
    """One person's page, with its errors recorded."""

    def __init__(self, browser, url):
        self.context = browser.new_context(locale="en-GB", viewport={"width": 800, "height": 900})
        self.page = self.context.new_page()
        self.problems = []
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.on("console", lambda m: self.problems.append(m.text) if m.type == "error"
                     and not DEV_SERVER_CLOSE.search(m.text) else None)

    def frames(self) -> int:
        return self.page.evaluate("window.cabinetCall ? window.cabinetCall.stats().then(s => s.framesDecoded) : 0")

    def wait_decoding(self, timeout=15.0) -> float:
        """Wait until remote video frames are being decoded (the count rises); return the time it took."""
        start = time.monotonic()
        first = None
        while time.monotonic() - start < timeout:
            n = self.frames()
            if n > 0 and first is not None and n > first:
                return time.monotonic() - start
            if n > 0 and first is None:
                first = n
            time.sleep(0.2)
        raise AssertionError(f"no remote video decoded in {timeout} s (frames: {self.frames()})")


def open_both(browser, url, made):
    doctor = Side(browser, url)
    doctor.context.add_cookies([{"name": "session", "value": made["session"], "url": url}])
    doctor.page.goto(f"{url}/today/{made['appt'].id}/call")
    patient = Side(browser, url)
    patient.page.goto(made["link"].replace("https://cabinet.test", url))
    patient.page.wait_for_url(f"**/v/{made['appt'].ref}/call")
    return doctor, patient


def test_video_chat_and_files_between_practitioner_and_patient(call_app, tmp_path):
    app, made = call_app()
    with live_server(app) as url, chromium() as browser:
        doctor, patient = open_both(browser, url, made)
        doctor.wait_decoding()
        patient.wait_decoding()
        assert doctor.page.locator("#call-status").inner_text() == "Connected"

        # Chat: sent by one, seen by the other (a dot on the hidden panel's button), still there after a reload.
        patient.page.click("#btn-panel")
        patient.page.fill("#chat-text", "J'ai mal au genou")
        patient.page.click("#chat-form button")
        doctor.page.wait_for_selector("#chat-unread", state="visible")
        doctor.page.click("#btn-panel")
        assert doctor.page.locator("#chat-unread").is_hidden()
        doctor.page.wait_for_selector("#chat-lines >> text=J'ai mal au genou")
        doctor.page.reload()
        doctor.page.click("#btn-panel")
        doctor.page.wait_for_selector("#chat-lines >> text=J'ai mal au genou")
        assert doctor.page.locator(".chat-line .who").first.inner_text() == "Patient"

        # A file from the patient appears for the practitioner at once, with a link that works.
        photo = tmp_path / "genou.png"
        photo.write_bytes(PNG)
        patient.page.set_input_files("#file-input", str(photo))
        patient.page.click("#file-form button")
        link = doctor.page.wait_for_selector("#chat-lines a >> text=genou.png")
        response = doctor.context.request.get(url + link.get_attribute("href"))
        assert response.status == 200 and response.body() == PNG
        doctor.wait_decoding()     # the reload got its video back
        assert doctor.problems == [] and patient.problems == []

        # The patient's phone goes into a tunnel: nothing closes, media just stops. The practitioner
        # is told within 5 s (ICE alone would say so after ~30 s), and the visit keeps the incident.
        patient.page.evaluate("document.getElementById('local-video').srcObject.getTracks().forEach(t => t.stop())")
        doctor.page.wait_for_selector("#call-status[data-state=otherLost]", timeout=5000)
        assert doctor.page.locator("#call-status").inner_text() == "The patient’s connection was lost, waiting…"
    with app.app_context():
        assert [d.filename for d in Document.select()] == ["genou.png"]
        assert ("media_lost", "patient") in {(i.kind, i.role) for i in Incident.select()}


def test_both_sides_recover_when_the_worker_is_killed_and_restarted(call_app):
    worker, relay_url = start_worker_process()
    port = relay_url.rsplit(":", 1)[1]
    try:
        app, made = call_app(RELAY_URLS=[relay_url], RELAY_BACKOFF_SECONDS=(0.1, 0.2, 0.3) + (0.5,) * 20)
        with live_server(app) as url, chromium() as browser:
            doctor, patient = open_both(browser, url, made)
            doctor.wait_decoding()
            patient.wait_decoding()

            os.kill(worker.pid, signal.SIGKILL)
            worker.communicate(timeout=5)       # reaped, its pipes closed
            doctor.page.wait_for_selector("#call-status[data-state=reconnecting]", timeout=5000)
            worker, _ = start_worker_process("--port", port)
            started = time.monotonic()
            doctor.wait_decoding(timeout=10)
            patient.wait_decoding(timeout=max(1, 10 - (time.monotonic() - started)))
            assert doctor.problems == [] and patient.problems == []
        with app.app_context():
            kinds = {(i.kind, i.role) for i in Incident.select()}
            assert ("relay_lost", "practitioner") in kinds and ("relay_lost", "patient") in kinds
    finally:
        stop_worker_process(worker)


BLACKOUT = """table inet gap {
  chain input { type filter hook input priority 0; meta l4proto udp drop; }
  chain output { type filter hook output priority 0; meta l4proto udp drop; }
}"""


def decoding_again(sides, timeout: float) -> dict[str, float]:
    """Seconds until each side decodes new frames again (a restarted peer connection counts from 0)."""
    start = time.monotonic()
    base = {name: side.frames() for name, side in sides.items()}
    back = {}
    while time.monotonic() - start < timeout and len(back) < len(sides):
        for name, side in sides.items():
            n = side.frames()
            if n < base[name]:
                base[name] = n
            elif name not in back and n > base[name] + 2:
                back[name] = time.monotonic() - start
        time.sleep(0.05)
    return back


def test_video_comes_back_soon_after_a_3_s_gap(call_app):
    """A tunnel, a Wi-Fi handover: every media packet is lost for 3 s, the signaling socket (TCP)
    stays. Video came back about 7 s after the link did (issue 15); now within about a second
    (0.4-0.9 s measured here, both sides), without the page reconnecting. Bound: 3 s."""
    if [name for _, name in socket.if_nameindex()] != ["lo"]:
        pytest.skip("drops every UDP packet: only in a loopback-only namespace (tests/isolated.sh)")
    app, made = call_app()
    with live_server(app) as url, chromium() as browser:
        doctor, patient = open_both(browser, url, made)
        doctor.wait_decoding()
        patient.wait_decoding()
        subprocess.run(["nft", "-f", "-"], input=BLACKOUT, text=True, check=True)
        try:
            time.sleep(3)
        finally:
            subprocess.run(["nft", "delete", "table", "inet", "gap"], check=True)
        back = decoding_again({"practitioner": doctor, "patient": patient}, timeout=10)
        print(f"\nvideo back after a 3 s gap: {back}")
        assert set(back) == {"practitioner", "patient"}, back
        assert max(back.values()) < 3, back
        assert doctor.problems == [] and patient.problems == []


def test_the_controls_reach_the_other_side(call_app):
    app, made = call_app()
    with live_server(app) as url, chromium() as browser:
        doctor, patient = open_both(browser, url, made)
        doctor.wait_decoding()
        patient.wait_decoding()

        doctor.page.click("#btn-mic")
        assert doctor.page.locator("#btn-mic").get_attribute("aria-pressed") == "true"
        patient.page.wait_for_selector("#call-peer-note >> text=Your practitioner’s microphone is off.")
        doctor.page.click("#btn-mic")
        patient.page.wait_for_selector("#call-peer-note", state="hidden")

        # The fake camera has no zoom: accepting still answers that it could not.
        doctor.page.click("#btn-ask-zoom")
        patient.page.wait_for_selector("#camera-request-text >> text=Your practitioner asks you to zoom in.")
        patient.page.click("#btn-camera-refuse")
        doctor.page.wait_for_selector("#call-peer-note >> text=The patient refused.")

        patient.page.click("#btn-hangup")
        patient.page.wait_for_selector("#call-status[data-state=youLeft]")
        doctor.page.wait_for_selector("#call-status[data-state=otherLeft] >> text=The patient left the call.")
        assert doctor.problems == [] and patient.problems == []


def test_ending_asks_first_and_a_call_ended_by_mistake_is_resumed(call_app):
    app, made = call_app()
    with live_server(app) as url, chromium() as browser:
        doctor, patient = open_both(browser, url, made)
        doctor.wait_decoding()
        patient.wait_decoding()

        doctor.page.click("#btn-hangup")
        dialog = doctor.page.locator("#end-dialog")
        assert dialog.is_visible() and "End the visit?" in dialog.inner_text()
        doctor.page.keyboard.press("Escape")           # a modal dialog: Escape keeps the call going
        assert not dialog.is_visible()
        patient.wait_decoding()

        doctor.page.click("#btn-hangup")
        doctor.page.click("#btn-end-confirm")
        doctor.page.wait_for_url(f"**/visits/{made['appt'].id}/close")
        # How the end reaches the patient's call page is tested elsewhere; here their ended page is opened.
        patient.page.goto(f"{url}/v/{made['appt'].ref}/call")
        patient.page.wait_for_selector("h1 >> text=The visit has ended")

        doctor.page.click("form.resume button")
        doctor.page.wait_for_url(f"**/today/{made['appt'].id}/call")
        patient.page.click("text=Rejoin the call")      # offered live, without a reload
        patient.page.wait_for_url(f"**/v/{made['appt'].ref}/call")
        doctor.wait_decoding()
        patient.wait_decoding()
        assert doctor.problems == [] and patient.problems == []
