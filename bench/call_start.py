"""Time from "admit" to the first remote video frame decoded on both sides, on loopback.

Real headless Chromium with fake devices, the real pages and the embedded relay
worker: the patient waits on the live waiting room page, the practitioner
presses "Let in" on the day's page (a POST to /today/<id>/admit); the clock
stops when both pages have decoded a remote video frame (``framesDecoded`` > 0,
read through ``window.cabinetCall.stats()``). Prints each run and the median.
Target: median under 1 s. Run it in a loopback-only namespace:

    tests/isolated.sh .venv/bin/python bench/call_start.py [--runs 10]
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from browser import chromium, live_server  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.auth import hash_password  # noqa: E402
from webapp.models import Appointment, Patient, Practice, User, db, utcnow  # noqa: E402
from webapp.patient import patient_link_url  # noqa: E402


def waiting_patient(practice, doctor, n) -> Appointment:
    patient = Patient.create(practice=practice, first_name="Bench", last_name=f"P{n}",
                             birth_date=dt.date(1970, 1, 1), email=f"p{n}@example.org", locale="en")
    appt = Appointment.create(practice=practice, practitioner=doctor, patient=patient,
                              contact_email=patient.email, starts_at=utcnow() + dt.timedelta(minutes=1),
                              duration_minutes=15, locale="en")
    appt.confirm_identity()
    appt.give_consent("1", "en")
    appt.record_device_check('{"camera": "ok", "microphone": "ok"}')
    return appt


VERBOSE = False


def decoded(page) -> bool:
    return page.evaluate("window.cabinetCall ? window.cabinetCall.stats().then(s => s.framesDecoded > 0) : false")


def one_run(browser, app, url, practice, doctor, session, n) -> float:
    with app.app_context():
        appt = waiting_patient(practice, doctor, n)
        with app.test_request_context():
            link = patient_link_url(appt).replace("https://cabinet.test", url)
        db.close()
    patient_ctx = browser.new_context(locale="en-GB")
    doctor_ctx = browser.new_context(locale="en-GB")
    try:
        patient = patient_ctx.new_page()
        patient.goto(link)
        patient.wait_for_url(f"**/v/{appt.ref}/waiting")
        doctor_ctx.add_cookies([{"name": "session", "value": session, "url": url}])
        doctor = doctor_ctx.new_page()
        doctor.goto(f"{url}/today/")
        button = doctor.wait_for_selector(f"form[action='/today/{appt.id}/admit'] button")
        started = time.monotonic()
        button.click()
        doctor.wait_for_url(f"**/today/{appt.id}/call", wait_until="commit")
        marks = {"doctor page": time.monotonic() - started}
        patient.wait_for_url(f"**/v/{appt.ref}/call", wait_until="commit")
        marks["patient page"] = time.monotonic() - started
        pending = {"doctor": doctor, "patient": patient}
        while pending:
            for name, page in list(pending.items()):
                if decoded(page):
                    del pending[name]
                    marks[f"{name} video"] = time.monotonic() - started
            if time.monotonic() - started > 20:
                raise RuntimeError(f"no video after 20 s on {', '.join(pending)}")
        if VERBOSE:
            print("   ", ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in marks.items()), flush=True)
            for name, page in (("doctor", doctor), ("patient", patient)):
                steps = page.evaluate("window.cabinetCall.stats().then(s => s.marks)")
                print(f"    {name} page (ms since its start):", steps, flush=True)
        return time.monotonic() - started
    finally:
        patient_ctx.close()
        doctor_ctx.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--verbose", action="store_true", help="print when each page loaded and decoded")
    args = parser.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"INSTANCE_PATH": tmp, "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False,
                          "ENV": {"DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3", "SECRET_KEY": "bench-secret",
                                  "PUBLIC_URL": "https://cabinet.test"}})
        with app.app_context():
            practice = Practice.create(name="Bench", timezone="Europe/Paris", default_locale="en")
            doctor = User.create(practice=practice, email="bench@example.org", name="Dr Bench",
                                 role="practitioner", password_hash=hash_password("bench-password"), locale="en")
            session = app.session_interface.get_signing_serializer(app).dumps({"uid": doctor.id})
            db.close()
        app.extensions["relay"].embedded()      # started with the app, as in production after the first call
        times = []
        with live_server(app) as url, chromium() as browser:
            for n in range(args.runs):
                elapsed = one_run(browser, app, url, practice, doctor, session, n)
                times.append(elapsed)
                print(f"run {n + 1:2d}: {elapsed * 1000:6.0f} ms", flush=True)
        app.extensions["relay"].stop()
    print(f"admit → first remote frame decoded on both sides: median {statistics.median(times) * 1000:.0f} ms, "
          f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms over {len(times)} runs (target < 1000 ms)")


if __name__ == "__main__":
    main()
