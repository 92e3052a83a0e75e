"""The call's layout in real Chromium, on the screens it is used on: a phone held upright and on its
side (the patient), a laptop and a tablet (the practitioner). One call serves every size.

Run through tests/isolated.sh. With CALL_SCREENSHOTS=<folder>, each size is also saved as a PNG
to look at.
"""
from __future__ import annotations

import os
import time

import pytest

from browser import chromium, live_server
from test_browser_call import Side, call_app, open_both  # noqa: F401  (call_app is a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.real_clock]

PHONE = [(360, 640), (640, 360)]
STAFF = [(1366, 768), (1280, 800)]

# What a person sees of the page: its width against the viewport's, the other side's video, and
# each control's box (hidden ones left out).
MEASURE = """() => {
  const box = el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  return {
    w: innerWidth, h: innerHeight, scrollW: document.documentElement.scrollWidth,
    scrollH: document.documentElement.scrollHeight,
    video: box(document.getElementById("remote-video")),
    controls: [...document.querySelectorAll(".call-controls button, .call-side button, .call-side input")]
      .filter(b => b.offsetParent !== null).map(b => [b.id || b.textContent.trim() || b.name, box(b)]),
  };
}"""


def look(side, size, name):
    side.page.set_viewport_size({"width": size[0], "height": size[1]})
    side.page.wait_for_timeout(150)              # one layout after the resize
    folder = os.environ.get("CALL_SCREENSHOTS")
    if folder:
        side.page.screenshot(path=os.path.join(folder, f"{name}-{size[0]}x{size[1]}.png"))
    return side.page.evaluate(MEASURE)


def inside(box, w, h):
    left, top, right, bottom = box
    return left >= 0 and top >= 0 and right <= w + 0.5 and bottom <= h + 0.5


def assert_fits(m, what):
    assert m["scrollW"] <= m["w"] and m["scrollH"] <= m["h"], (what, m)
    outside = [name for name, box in m["controls"] if not inside(box, m["w"], m["h"])]
    assert outside == [], (what, outside)


def test_the_call_fits_phones_laptops_and_tablets(call_app):
    app, made = call_app()
    with live_server(app) as url, chromium() as browser:
        doctor, patient = open_both(browser, url, made)
        doctor.wait_decoding()
        patient.wait_decoding()

        for size in PHONE:
            m = look(patient, size, "patient")
            assert_fits(m, size)
            left, top, right, bottom = m["video"]
            assert (right - left) * (bottom - top) >= 0.75 * m["w"] * m["h"], (size, m["video"])
            assert {"btn-mic", "btn-cam", "btn-hangup", "btn-panel"} <= {name for name, _ in m["controls"]}
        # The chat opens as a sheet over the video; the controls stay where they were.
        patient.page.click("#btn-panel")
        m = look(patient, PHONE[0], "patient-chat")
        assert_fits(m, "chat")
        assert patient.page.locator("#chat-text").is_visible()
        patient.page.click("#btn-panel-close")

        for size in STAFF:
            m = look(doctor, size, "practitioner")
            assert_fits(m, size)
            names = {name for name, _ in m["controls"]}
            assert {"btn-mic", "btn-cam", "btn-ask-back", "btn-ask-zoom", "btn-hangup", "chat-text",
                    "file-input"} <= names, names
        # The side panel can be hidden: the video takes its room.
        wide = m["video"][2] - m["video"][0]
        doctor.page.click("#btn-panel")
        assert not doctor.page.locator("#chat-text").is_visible()
        m = look(doctor, STAFF[1], "practitioner-no-panel")
        assert m["video"][2] - m["video"][0] > wide

        # The practitioner's request comes to the patient's phone as a dialog that takes the focus.
        patient.page.set_viewport_size({"width": 360, "height": 640})
        patient.page.focus("#btn-mic")
        doctor.page.click("#btn-ask-back")
        patient.page.wait_for_selector("#camera-request[open] >> text=Your practitioner asks you to switch to the back camera.")
        assert patient.page.evaluate("document.getElementById('camera-request').contains(document.activeElement)")
        look(patient, (360, 640), "patient-request")
        patient.page.click("#btn-camera-accept")
        # Chromium's fake camera has no back camera: the practitioner is told so, not that the patient refused.
        doctor.page.wait_for_selector("#call-peer-note >> text=The patient’s device has no back camera.")

        # The patient leaves: the practitioner's status line says so, not "Connected".
        patient.page.click("#btn-hangup")
        doctor.page.wait_for_selector("#call-status[data-state=otherLeft] >> text=The patient left the call.")
        look(doctor, STAFF[0], "practitioner-patient-left")
        assert doctor.problems == [] and patient.problems == []


def test_an_audio_only_visit_shows_a_calm_screen_on_a_phone(call_app):
    app, made = call_app()
    with app.app_context():
        made["appt"].mode = "audio"
        made["appt"].save()
    with live_server(app) as url, chromium() as browser:
        doctor, patient = open_both(browser, url, made)
        patient.page.wait_for_selector("#call-status[data-state=connected]", timeout=15000)
        deadline = time.monotonic() + 5
        while patient.page.inner_text("#call-timer") == "0:00" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert patient.page.inner_text("#call-timer") != "0:00"          # the timer runs
        m = look(patient, PHONE[0], "patient-audio")
        assert_fits(m, "audio")
        screen = patient.page.inner_text(".audio-screen")
        assert "Dr Navigateur" in screen and "Audio-only visit" in screen
        assert patient.page.locator("#btn-cam, #btn-flip, #local-video").count() == 0
        # The status and the quality are stacked above the screen's text, never over each other.
        boxes = patient.page.evaluate("""() => [...document.querySelectorAll('.call-top > :not([hidden]), .audio-screen > *')]
            .filter(el => el.offsetParent !== null && el.textContent.trim()).map(el => { const r = el.getBoundingClientRect();
            return [r.left, r.top, r.right, r.bottom]; })""")
        overlaps = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:]
                    if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]
        assert overlaps == []
        assert doctor.problems == [] and patient.problems == []
