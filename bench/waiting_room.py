"""Waiting room latency: a patient enters, how long until every practitioner page shows them.

A live server (werkzeug, threaded, as in the browser tests) holds 50 waiting
patients, each with their waiting-room websocket open, and 10 "today" pages
watching that practitioner's day (real websockets to /today/live, each with
its own staff session cookie: the practitioner and nine secretaries).
Each measured entry is a patient's GET /v/<ref>/waiting over HTTP; the clock
stops when a practitioner socket receives the day fragment listing that
patient. The pages' sockets live in a child process, as browsers live elsewhere. Between entries one waiting patient leaves, so 50 stay waiting.
Prints the median and p95 per (entry, page) and for the slowest page of each
entry. Target: p95 under 100 ms.

    .venv/bin/python bench/waiting_room.py [--waiting 50] [--pages 10] [--entries 100]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import queue
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from simple_websocket import Client, ConnectionClosed  # noqa: E402

from browser import live_server  # noqa: E402
from webapp.app import create_app  # noqa: E402
from webapp.auth import hash_password, staff_session  # noqa: E402
from webapp.models import Appointment, Patient, Practice, User, db, utcnow  # noqa: E402
from webapp.access import COOKIE, IDENTITY_COOKIE, link_expires_at, patient_link_url  # noqa: E402
from webapp.tokens import make_identity_cookie  # noqa: E402
from webapp.events import announce  # noqa: E402

DEVICES = json.dumps({"camera": "ok", "microphone": "ok", "speaker": "ok", "network": "good"})


def fill(count: int):
    """One practitioner, ``count`` patients ready to wait (identity, consent, check done) for now."""
    practice = Practice.create(name="Bench", timezone="Europe/Paris", default_locale="en")
    doctor = User.create(practice=practice, email="bench@example.org", name="Dr Bench", role="practitioner",
                         password_hash=hash_password("bench-password"), locale="en")
    starts = (utcnow() + dt.timedelta(minutes=5)).replace(second=0, microsecond=0)
    appointments = []
    for i in range(count):
        patient = Patient.create(practice=practice, first_name="Patient", last_name=f"N{i}",
                                 birth_date=dt.date(1960, 1, 1), email=f"p{i}@example.org", locale="en")
        appt = Appointment.create(practice=practice, practitioner=doctor, patient=patient, contact_email=patient.email,
                                  starts_at=starts, duration_minutes=20, motive="Suivi", mode="video", locale="en")
        appt.confirm_identity()
        appt.give_consent("2026-11", "en")
        appt.record_device_check(DEVICES)
        appointments.append(appt)
    return doctor, appointments


def patient_cookie(app, appt) -> str:
    """The patient's Cookie header: the link's cookie, got the real way (by opening the link), and
    the identity cookie of a browser that confirmed the birth date (identity is asked per browser:
    without it the waiting room sends the patient to the identity step, and nobody ever enters)."""
    client = app.test_client()
    with app.test_request_context():
        link = patient_link_url(appt).split("://", 1)[1].split("/", 1)[1]
    response = client.get(f"/{link}")
    assert response.status_code == 302, response.status_code
    identity = make_identity_cookie(app.config["SECRET_KEY"], appt.id, appt.link_version, link_expires_at(appt))
    return f"{COOKIE}={client.get_cookie(COOKIE, path=f'/v/{appt.ref}/').value}; {IDENTITY_COOKIE}={identity}"


def staff_cookie(app, user) -> str:
    client = app.test_client()
    with client.session_transaction() as session:
        session.update(staff_session(user, second_factor_done=True))
    return client.get_cookie(app.config.get("SESSION_COOKIE_NAME", "session")).value


WAITING_ID = re.compile(r'data-waiting="(\d+)"')


def site_origin(url: str) -> str:
    """The Origin the server accepts from this client: browsers always send one, and the server
    compares it with the Host header, which simple-websocket's client sends without the port."""
    return "http://" + url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]


def watch_pages(ws_url, cookie_name, cookies, out):
    """The practitioners' pages, in a process of their own as browsers would be: every message
    each socket receives goes to ``out`` as (page, arrival time, ids of the patients it lists)."""
    def read(index, ws):
        try:
            while True:
                message = ws.receive()
                out.put((index, time.perf_counter(), frozenset(int(i) for i in WAITING_ID.findall(message))))
        except ConnectionClosed:
            pass

    origin = site_origin(ws_url)
    sockets = [Client.connect(ws_url, headers={"Cookie": f"{cookie_name}={cookie}", "Origin": origin})
               for cookie in cookies]
    threads = [threading.Thread(target=read, args=(i, ws), daemon=True) for i, ws in enumerate(sockets)]
    for thread in threads:
        thread.start()
    out.put("ready")
    for thread in threads:
        thread.join()


class Pages:
    """The child process holding the pages' websockets, and what they received.

    time.perf_counter() is the system's monotonic clock, the same in both processes."""

    def __init__(self, ws_url, cookie_name, cookies):
        context = multiprocessing.get_context("spawn")
        self.out, self.count = context.Queue(), len(cookies)
        self.process = context.Process(target=watch_pages, args=(ws_url, cookie_name, cookies, self.out), daemon=True)
        self.process.start()
        assert self.out.get(timeout=60) == "ready"

    def wait_all(self, predicate, timeout=10.0) -> list[float]:
        """When each page first received a message whose listed ids match ``predicate``."""
        deadline, arrived = time.perf_counter() + timeout, {}
        while len(arrived) < self.count:
            index, at, ids = self.out.get(timeout=max(0.0, deadline - time.perf_counter()))
            if index not in arrived and predicate(ids):
                arrived[index] = at
        return [arrived[i] for i in range(self.count)]

    def drain(self):
        while True:
            try:
                self.out.get(timeout=0.05)
            except queue.Empty:
                return

    def close(self):
        self.process.terminate()
        self.process.join(5)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None     # a redirect (to the identity step, say) is a failed entry, not a page to follow


def get(url, cookie_header):
    request = urllib.request.Request(url, headers={"Cookie": cookie_header})
    try:
        with urllib.request.build_opener(NoRedirect).open(request) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * len(ordered))) - 1)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=50)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--entries", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        url = os.environ.get("DATABASE_URL") or f"sqlite:///{tmp}/bench.sqlite3"
        app = create_app({"INSTANCE_PATH": tmp, "RATELIMIT_ENABLED": False,
                          "ENV": {"DATABASE_URL": url, "SECRET_KEY": "bench"}})
        with app.app_context():
            doctor, appointments = fill(args.waiting + 1)
            cookies = {a.ref: patient_cookie(app, a) for a in appointments}
            # Ten people watching the practitioner's day: the practitioner and nine secretaries,
            # each with their own session (so their own CSRF tokens and renders).
            secretaries = [User.create(practice=doctor.practice, email=f"s{i}@example.org", name=f"Secretary {i}",
                                       role="secretary", password_hash=doctor.password_hash, locale="en")
                           for i in range(args.pages - 1)]
            sessions = [staff_cookie(app, user) for user in [doctor, *secretaries]]
            db.close()
        session_name = app.config.get("SESSION_COOKIE_NAME", "session")
        with live_server(app) as base:
            ws_base = base.replace("http://", "ws://")
            # 50 patients in the waiting room, each with their live page open.
            patients = []
            for appt in appointments[:args.waiting]:
                assert get(f"{base}/v/{appt.ref}/waiting", cookies[appt.ref]) == 200
                patients.append(Client.connect(f"{ws_base}/v/{appt.ref}/live",
                                               headers={"Cookie": cookies[appt.ref], "Origin": site_origin(base)}))
            pages = Pages(f"{ws_base}/today/live", session_name, sessions)
            time.sleep(1.0)
            pages.drain()

            waiting = list(appointments[:args.waiting])
            outside = appointments[args.waiting]
            each, slowest, gets, cpu = [], [], [], []
            for n in range(args.entries):
                start, cpu_start = time.perf_counter(), time.process_time()
                assert get(f"{base}/v/{outside.ref}/waiting", cookies[outside.ref]) == 200
                gets.append(time.perf_counter() - start)
                arrivals = [at - start for at in pages.wait_all(lambda ids: outside.id in ids)]
                each.extend(arrivals)
                slowest.append(max(arrivals))
                cpu.append(time.process_time() - cpu_start)
                # One waiting patient leaves (back to scheduled), so 50 keep waiting.
                leaving = waiting.pop(0)
                with app.app_context():
                    Appointment.update(status="scheduled", waiting_since=None).where(  # the patient left
                        Appointment.id == leaving.id).execute()
                    announce(leaving)
                    db.close()
                pages.wait_all(lambda ids: leaving.id not in ids)
                pages.drain()
                waiting.append(outside)
                outside = leaving

            for ws in patients:
                ws.close()
            pages.close()
            time.sleep(1.5)   # the server's socket loops notice and let go of the database
    ms = lambda values: [v * 1000 for v in values]  # noqa: E731
    each, slowest, gets, cpu = ms(each), ms(slowest), ms(gets), ms(cpu)
    print(f"{args.waiting} patients waiting, {args.pages} practitioner pages, {args.entries} entries, "
          f"{url.split(':')[0]}")
    print(f"  entry -> one page's fragment   median {statistics.median(each):6.1f} ms   "
          f"p95 {percentile(each, 95):6.1f} ms   max {max(each):6.1f} ms")
    print(f"  entry -> all {args.pages} pages updated   median {statistics.median(slowest):6.1f} ms   "
          f"p95 {percentile(slowest, 95):6.1f} ms   max {max(slowest):6.1f} ms")
    print(f"  (the patient's GET itself          median {statistics.median(gets):6.1f} ms   "
          f"p95 {percentile(gets, 95):6.1f} ms)")
    # Wall-clock figures depend on what else the machine runs; the CPU spent per entry does much less.
    print(f"  server CPU per entry              median {statistics.median(cpu):6.1f} ms   "
          f"p95 {percentile(cpu, 95):6.1f} ms   (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
