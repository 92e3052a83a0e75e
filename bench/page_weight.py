"""Bytes on the wire and requests for a patient's first load, and for the call page.

Real headless Chromium on the real pages, served by the app itself (gzip from the app, as
without a proxy). Four loads, each from a fresh browser profile ("cold") and then again in
the same profile once the service worker holds its shell ("warm"):

- first load: the patient's link (``/p/<token>``), redirected to the identity page;
- call page: the same link for a patient already let in, which leads to the call page.

For each: requests made by the page, bytes received for them (headers and compressed bodies, as
Chromium counts them, including the worker's navigation preloads), how many the service worker
answered from its cache, and requests to any other host (there must be none). The worker's
own fetches (its shell, after the page loaded; sw.js update checks) are counted apart, as
"in the background". Target: first load under 40 KB. Run it in a loopback-only
namespace:

    tests/isolated.sh .venv/bin/python bench/page_weight.py
"""
from __future__ import annotations

import datetime as dt
import logging
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from browser import chromium, live_server  # noqa: E402
from webapp.access import patient_link_url  # noqa: E402
from webapp.app import create_app  # noqa: E402
from webapp.auth import hash_password  # noqa: E402
from webapp.models import Appointment, Patient, Practice, User, db, utcnow  # noqa: E402

TARGET = 40 * 1024


def make_visits(app, url):
    """A patient due in five minutes (first load), and one already let in (call page)."""
    with app.app_context():
        practice = Practice.create(name="Cabinet des Tilleuls", timezone="Europe/Paris", default_locale="en")
        doctor = User.create(practice=practice, email="bench@example.org", name="Dr Bench", role="practitioner",
                             password_hash=hash_password("bench-password"), locale="en")
        links = {}
        for kind in ("first load", "call page"):
            patient = Patient.create(practice=practice, first_name="Bench", last_name=kind, email="p@example.org",
                                     birth_date=dt.date(1970, 1, 1), locale="en")
            appt = Appointment.create(practice=practice, practitioner=doctor, patient=patient,
                                      contact_email=patient.email, starts_at=utcnow() + dt.timedelta(minutes=5),
                                      duration_minutes=15, locale="en")
            if kind == "call page":
                appt.confirm_identity()
                appt.give_consent("1", "en")
                appt.record_device_check('{"camera": "ok", "microphone": "ok"}')
                appt.enter_waiting_room()
                appt.admit(doctor)
            with app.test_request_context():
                links[kind] = patient_link_url(appt).replace("https://cabinet.test", url)
        db.close()
    return links


def on_the_wire(request, response) -> int:
    """Bytes received for one request: headers and (compressed) body, as Chromium counted them.

    For a page the worker fetched through navigation preload (and the redirect before it),
    Playwright never gives sizes (sizes() and headers_array() wait forever): there, the headers
    as received and the body's Content-Length (the app always sends it) are counted instead."""
    if response is None:
        return 0
    if request.headers.get("service-worker-navigation-preload") or 300 <= response.status < 400:
        headers = response.headers
        return (len(f"HTTP/1.1 {response.status} {response.status_text}\r\n\r\n")
                + sum(len(name) + len(value) + 4 for name, value in headers.items())
                + int(headers.get("content-length", 0)))
    sizes = request.sizes()
    return max(0, sizes["responseHeadersSize"]) + max(0, sizes["responseBodySize"])


def measure(context, link, origin):
    """Open ``link`` in a new tab of ``context``; what went over the wire until the page settled."""
    seen = []

    def keep(request):
        seen.append(request)
    context.on("requestfinished", keep)
    context.on("requestfailed", keep)
    page = context.new_page()
    page.goto(link, wait_until="load")
    page.wait_for_load_state("networkidle")
    time.sleep(0.5)
    landed = urlsplit(page.url).path
    figures = {"page": [0, 0], "service worker": [0, 0], "from the worker's cache": 0, "other hosts": 0}
    for request in seen:
        if urlsplit(request.url).scheme not in ("http", "https"):
            continue
        if f"{urlsplit(request.url).scheme}://{urlsplit(request.url).netloc}" != origin:
            figures["other hosts"] += 1
        response = request.response()
        if response is not None and response.from_service_worker:
            figures["from the worker's cache"] += 1      # answered without the network (or refetched below)
            continue
        wire = on_the_wire(request, response)
        # The worker's navigation preloads (and their redirects) are the page's own loads; its
        # other fetches (installing the shell, checking sw.js) happen in the background.
        for_page = not request.service_worker or request.headers.get("service-worker-navigation-preload") \
            or 300 <= response.status < 400
        side = "page" if for_page else "service worker"
        figures[side][0] += 1
        figures[side][1] += wire
    context.remove_listener("requestfinished", keep)
    context.remove_listener("requestfailed", keep)
    page.close()
    return landed, figures


def report(name, landed, figures):
    count, size = figures["page"]
    sw_count, sw_size = figures["service worker"]
    cached = figures["from the worker's cache"]
    print(f"{name:<18} {landed:<40} {count:3d} requests {size / 1024:5.1f} KB "
          f"| from the worker's cache {cached:2d} "
          f"| in the background {sw_count:2d} ({sw_size / 1024:.1f} KB) | other hosts {figures['other hosts']}")
    return size


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)     # no line per request
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"INSTANCE_PATH": tmp, "RATELIMIT_ENABLED": False,
                          "ENV": {"DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3", "SECRET_KEY": "bench-secret",
                                  "PUBLIC_URL": "https://cabinet.test"}})
        with live_server(app) as url, chromium() as browser:
            links = make_visits(app, url)
            results = {}
            for kind, link in links.items():
                context = browser.new_context(locale="en-GB")
                try:
                    for state in ("cold", "warm"):
                        landed, figures = measure(context, link, url)
                        results[(kind, state)] = report(f"{kind}, {state}", landed, figures)
                        if figures["other hosts"]:
                            raise SystemExit(f"{kind}: {figures['other hosts']} requests to other hosts")
                finally:
                    context.close()
        app.extensions["relay"].stop()
    first = results[("first load", "cold")]
    verdict = "met" if first < TARGET else "MISSED"
    print(f"first load (link → identity page), cold: {first / 1024:.1f} KB on the wire; "
          f"target < {TARGET // 1024} KB {verdict}")


if __name__ == "__main__":
    main()
