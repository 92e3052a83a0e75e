"""Free slots over 6 weeks for 10 practitioners with 10,000 appointments (webapp/slots.py).

Each practitioner opens 09:00-12:00 and 14:00-18:00 on weekdays, has a closed afternoon and a week
off in the window, and 1,000 appointments over a year centred on today (the window gets its share,
about 120 each). One measure is one ``free_slots`` call: one practitioner, six weeks, 30-minute
visits with 2 h notice and a 42-day horizon (queries included: hours, exceptions, appointments).
Also ``next_free_slots`` for all ten. Prints median and p95; target p95 under 50 ms. SQLite by
default, DATABASE_URL when set. Timings on a shared machine are noisy: compare medians.

    .venv/bin/python bench/slots.py [--appointments 10000] [--runs 200]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from webapp.app import create_app  # noqa: E402
from webapp.models import (Appointment, HoursException, Practice, User, VisitType, WeeklyHours,  # noqa: E402
                           db, utcnow)
from webapp.slots import free_slots, next_free_slots  # noqa: E402

PRACTITIONERS = 10


def fill(count: int):
    rng = random.Random(12)
    practice = Practice.create(name="Bench", timezone="Europe/Paris")
    staff = [User.create(practice=practice, email=f"p{i}@example.org", name=f"Dr {i}", role="practitioner",
                         password_hash="x") for i in range(PRACTITIONERS)]
    now = utcnow().replace(second=0, microsecond=0)
    hours, exceptions, rows = [], [], []
    for n, doctor in enumerate(staff):
        hours += [{"practitioner": doctor.id, "weekday": d, "start_minute": s, "end_minute": e}
                  for d in range(5) for s, e in ((540, 720), (840, 1080))]
        exceptions += [
            {"practitioner": doctor.id, "kind": "closed", "starts_at": now + dt.timedelta(days=3 + n, hours=4),
             "ends_at": now + dt.timedelta(days=3 + n, hours=10), "note": "afternoon"},
            {"practitioner": doctor.id, "kind": "closed", "starts_at": now + dt.timedelta(days=14 + n),
             "ends_at": now + dt.timedelta(days=21 + n), "note": "week off"},
            {"practitioner": doctor.id, "kind": "open", "starts_at": now + dt.timedelta(days=5, hours=10),
             "ends_at": now + dt.timedelta(days=5, hours=12), "note": "evening"}]
        for i in range(count // PRACTITIONERS):
            start = now + dt.timedelta(minutes=15 * rng.randrange(-35_000, 35_000))
            rows.append({"ref": f"{n:04x}{i:020x}", "practice": practice.id, "practitioner": doctor.id,
                         "starts_at": start, "duration_minutes": rng.choice((15, 20, 30)),
                         "status": "cancelled" if i % 10 == 0 else "scheduled"})
    with db.atomic():
        WeeklyHours.insert_many(hours).execute()
        HoursException.insert_many(exceptions).execute()
        for start in range(0, len(rows), 500):
            Appointment.insert_many(rows[start:start + 500]).execute()
    visit_type = VisitType.create(practice=practice, names=json.dumps({"en": "Follow-up"}), duration_minutes=30,
                                  notice_minutes=120, horizon_days=42, online=True)
    return staff, visit_type


def timed(call, runs):
    call()
    times = []
    for i in range(runs):
        start = time.perf_counter()
        result = call(i)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)], result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appointments", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("DATABASE_URL") or f"sqlite:///{tmp}/bench.sqlite3"
        app = create_app({"INSTANCE_PATH": tmp, "ENV": {"DATABASE_URL": url, "SECRET_KEY": "bench"}})
        with app.app_context():
            staff, visit_type = fill(args.appointments)
            now = utcnow()
            end = now + dt.timedelta(weeks=6)
            in_window = Appointment.select().where(Appointment.starts_at >= now, Appointment.starts_at < end).count()
            print(f"{args.appointments} appointments, {PRACTITIONERS} practitioners ({in_window} in the 6 weeks), "
                  f"{args.runs} runs, {url.split(':')[0]}")
            median, p95, slots = timed(lambda i=0: free_slots(staff[i % PRACTITIONERS], now, end, visit_type), args.runs)
            print(f"free_slots, one practitioner, 6 weeks: median {median:.2f} ms, p95 {p95:.2f} ms "
                  f"({len(slots)} slots)")
            median, p95, found = timed(lambda i=0: next_free_slots(visit_type, staff, 3), max(20, args.runs // 4))
            print(f"next_free_slots, 3 each for {PRACTITIONERS} practitioners: median {median:.2f} ms, "
                  f"p95 {p95:.2f} ms")
            median, p95, every = timed(lambda i=0: [free_slots(d, now, end, visit_type) for d in staff],
                                       max(20, args.runs // 10))
            print(f"free_slots, all {PRACTITIONERS} practitioners, 6 weeks: median {median:.2f} ms, p95 {p95:.2f} ms "
                  f"({sum(map(len, every))} slots)")
        db.close()


if __name__ == "__main__":
    main()
