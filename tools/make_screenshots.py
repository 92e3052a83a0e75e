"""Takes the manifests' screenshots: a patient's identity page, on a phone and on a computer.

    tests/isolated.sh .venv/bin/python tools/make_screenshots.py

Real headless Chromium on the real page, with a made-up patient (no real data in the images).
The files are committed; run this again when the patient's pages change a lot.
"""
from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from browser import chromium, live_server  # noqa: E402
from webapp.access import patient_link_url  # noqa: E402
from webapp.app import create_app  # noqa: E402
from webapp.models import Appointment, Patient, Practice, User, db, utcnow  # noqa: E402

# Sizes as the manifest declares them (webapp/site.py SCREENSHOTS).
SHOTS = {"screenshot-narrow.png": (540, 960), "screenshot-wide.png": (1280, 800)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"INSTANCE_PATH": tmp, "RATELIMIT_ENABLED": False,
                          "ENV": {"DATABASE_URL": f"sqlite:///{tmp}/shots.sqlite3", "SECRET_KEY": "shots-secret",
                                  "PUBLIC_URL": "https://cabinet.test"}})
        with app.app_context():
            practice = Practice.create(name="Cabinet des Tilleuls", timezone="Europe/Paris", default_locale="en")
            doctor = User.create(practice=practice, email="dr@example.org", name="Dr Claire Martin",
                                 role="practitioner", password_hash="x", locale="en")
            patient = Patient.create(practice=practice, first_name="Jeanne", last_name="Exemple",
                                     birth_date=dt.date(1970, 5, 17), email="jeanne@example.org", locale="en")
            appt = Appointment.create(practice=practice, practitioner=doctor, patient=patient,
                                      contact_email=patient.email, starts_at=utcnow() + dt.timedelta(minutes=5),
                                      duration_minutes=20, locale="en")
            with app.test_request_context():
                path = patient_link_url(appt).replace("https://cabinet.test", "")
            db.close()
        with live_server(app) as url, chromium() as browser:
            for name, (width, height) in SHOTS.items():
                context = browser.new_context(locale="en-GB", viewport={"width": width, "height": height})
                page = context.new_page()
                page.goto(url + path, wait_until="networkidle")
                page.screenshot(path=str(ROOT / "static" / "icons" / name))
                context.close()
        app.extensions["relay"].stop()


if __name__ == "__main__":
    main()
