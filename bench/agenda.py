"""Render time of the agenda's week and day views with 10,000 appointments for one practitioner,
and of the week's time grid with 200 appointments in that one week.

Prints the median and p95 over repeated renders through the test client (the
whole Flask stack: session, database query, templates), on SQLite by default or
on DATABASE_URL when set. Targets: median under 30 ms; the busy week's grid p95 under 50 ms.

    .venv/bin/python bench/agenda.py [--appointments 10000] [--week 200] [--runs 200]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from webapp.app import create_app  # noqa: E402
from webapp.auth import hash_password, staff_session  # noqa: E402
from webapp.models import Appointment, Patient, Practice, User, db, utcnow  # noqa: E402


def fill(count: int):
    practice = Practice.create(name="Bench", timezone="Europe/Paris")
    doctor = User.create(practice=practice, email="bench@example.org", name="Dr Bench", role="practitioner",
                         password_hash=hash_password("bench-password"), locale="fr")
    patients = [Patient.create(practice=practice, first_name="Patient", last_name=f"N{i}",
                               birth_date=dt.date(1960, 1, 1), email=f"p{i}@example.org") for i in range(200)]
    # Eight 20-minute visits a day, every day, centred on today: about 3.5 years of agenda.
    first_day = utcnow().replace(hour=7, minute=0, second=0, microsecond=0) - dt.timedelta(days=count // 16)
    rows = []
    for i in range(count):
        day, slot = divmod(i, 8)
        patient = patients[i % len(patients)]
        rows.append({"ref": f"{i:024x}", "practice": practice.id, "practitioner": doctor.id, "patient": patient.id,
                     "contact_email": patient.email, "starts_at": first_day + dt.timedelta(days=day, minutes=45 * slot),
                     "duration_minutes": 20, "motive": "Suivi", "mode": "video"})
    with db.atomic():
        for start in range(0, len(rows), 500):
            Appointment.insert_many(rows[start:start + 500]).execute()
    return doctor


def fill_week(practice, count: int):
    """A second practitioner with ``count`` visits in this week: 15-minute visits from 08:00, two
    at a time when the day is full, so the grid lays out lanes too."""
    doctor = User.create(practice=practice, email="busy@example.org", name="Dr Busy", role="practitioner",
                         password_hash=hash_password("bench-password"), locale="fr")
    patient = Patient.create(practice=practice, first_name="Patient", last_name="Busy",
                             birth_date=dt.date(1960, 1, 1), email="busy-patient@example.org")
    today = utcnow().date()
    monday = dt.datetime.combine(today - dt.timedelta(days=today.weekday()), dt.time(6))   # 08:00 in Paris, summer
    per_day = -(-count // 7)
    rows = [{"ref": f"w{i:023x}", "practice": practice.id, "practitioner": doctor.id, "patient": patient.id,
             "contact_email": patient.email, "duration_minutes": 20, "motive": "Suivi", "mode": "video",
             "status": "cancelled" if i % 9 == 0 else "scheduled",
             "starts_at": monday + dt.timedelta(days=i // per_day,
                                                minutes=15 * ((i % per_day) % 44) + 5 * ((i % per_day) // 44))}
            for i in range(count)]
    with db.atomic():
        Appointment.insert_many(rows).execute()
    return doctor


def measure(client, url, runs, headers):
    client.get(url, headers=headers)    # warm the template cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appointments", type=int, default=10_000)
    parser.add_argument("--week", type=int, default=200)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("DATABASE_URL") or f"sqlite:///{tmp}/bench.sqlite3"
        app = create_app({"INSTANCE_PATH": tmp, "ENV": {"DATABASE_URL": url, "SECRET_KEY": "bench"}})
        with app.app_context():
            doctor = fill(args.appointments)
            busy = fill_week(doctor.practice, args.week)
            in_week = Appointment.select().where(
                Appointment.starts_at >= utcnow() - dt.timedelta(days=3),
                Appointment.starts_at < utcnow() + dt.timedelta(days=4)).count()
        client = app.test_client()
        with client.session_transaction() as session:
            session.update(staff_session(doctor, second_factor_done=True))
        print(f"{args.appointments} appointments for one practitioner ({in_week} around this week), "
              f"{args.runs} renders each, {url.split(':')[0]}")
        for label, path, headers in (("week view, full page", "/agenda/?view=week", {}),
                                     ("week view, htmx fragment", "/agenda/?view=week", {"HX-Request": "true"}),
                                     ("day view, full page", "/agenda/", {}),
                                     ("day view, htmx fragment", "/agenda/", {"HX-Request": "true"})):
            median, p95 = measure(client, path, args.runs, headers)
            print(f"  {label:<26} median {median:6.2f} ms   p95 {p95:6.2f} ms")
        busy_client = app.test_client()
        with busy_client.session_transaction() as session:
            session.update(staff_session(busy, second_factor_done=True))
        print(f"{args.week} appointments in this week for another practitioner (the time grid)")
        for label, headers in (("week grid, full page", {}), ("week grid, htmx fragment", {"HX-Request": "true"})):
            median, p95 = measure(busy_client, "/agenda/?view=week", args.runs, headers)
            print(f"  {label:<26} median {median:6.2f} ms   p95 {p95:6.2f} ms   (target p95 < 50 ms)")


if __name__ == "__main__":
    main()
