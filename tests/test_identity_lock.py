"""The birth-date lock under concurrency: every wrong answer counts, and none is judged once locked.

Runs on the test database of the run (a real SQLite file, or PostgreSQL with TEST_DATABASE_URL),
from real threads, each with its own connection, as the web server's threads would.
"""
from __future__ import annotations

import datetime as dt
import threading

from conftest import holding_link, make_appointment, make_patient, text_of
from webapp.models import Appointment, AuditEvent

GUESSES = 40


def test_parallel_wrong_birth_dates_lock_after_three_and_judge_no_more(app):
    appt = make_appointment(starts_in=dt.timedelta(minutes=5), patient=make_patient(birth_date=dt.date(1980, 4, 2)))
    clients = [holding_link(app, appt) for _ in range(GUESSES)]
    start, answers, errors = threading.Barrier(GUESSES), [None] * GUESSES, []

    def guess(i):
        try:
            start.wait(10)
            response = clients[i].post(f"/v/{appt.ref}/identity", data={"confirm": "y", "birth_date": "1999-01-01"})
            answers[i] = (response.status_code, response.headers.get("Location", ""), text_of(response))
        except Exception as e:  # noqa: BLE001 - reported below, with the thread's answer
            errors.append(repr(e))

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(GUESSES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []

    # The database: exactly three wrong answers were counted, and the link is locked.
    stored = Appointment.get_by_id(appt.id)
    assert stored.identity_failures == Appointment.IDENTITY_TRIES == 3 and stored.locked
    assert stored.identity_confirmed_at is None
    judged = AuditEvent.select().where(AuditEvent.appointment == appt.id,
                                       AuditEvent.action == "patient.identity_failed").count()
    assert judged == 3
    # What the patients saw: the first two counted answers were told the date does not match, the
    # third counted answer and every other request (which found the link locked) went to the locked page.
    mismatch = [a for a in answers if a[0] == 422]
    to_locked = [a for a in answers if a[0] == 302 and a[1].endswith(f"/v/{appt.ref}/locked")]
    assert len(mismatch) == 2 and all("does not match" in a[2] for a in mismatch)
    assert len(to_locked) == GUESSES - 2


def test_a_row_loaded_before_the_lock_cannot_confirm_or_count(app):
    appt = make_appointment(starts_in=dt.timedelta(minutes=5))
    stale = Appointment.get_by_id(appt.id)            # a request loaded the row, then others locked it
    for _ in range(3):
        assert Appointment.get_by_id(appt.id).fail_identity()
    assert stale.identity_failures == 0 and not stale.locked
    assert stale.confirm_identity() is False and stale.locked
    assert stale.fail_identity() is False
    stored = Appointment.get_by_id(appt.id)
    assert stored.identity_failures == 3 and stored.identity_confirmed_at is None
    assert not AuditEvent.select().where(AuditEvent.appointment == appt.id,
                                         AuditEvent.action == "patient.identity_confirmed").exists()
