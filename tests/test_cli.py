"""Command line: init-db, create-user, demo."""
from __future__ import annotations

import datetime as dt

from conftest import make_app
from test_acts import SEEDED, fees
from webapp.forms import normalize_nir
from webapp.models import (Appointment, Document, Message, Patient, Payment, Practice, Report, User, VisitType, db,
                           utcnow)
from webapp.profiles import rpps_valid
from webapp.slots import next_free_slots


def test_init_db_is_repeatable(runner):
    assert "Database ready" in runner.invoke(args=["init-db"]).output
    assert runner.invoke(args=["init-db"]).exit_code == 0


def test_init_db_names_the_practice_or_says_it_has_no_name(tmp_path):
    app = make_app(tmp_path)
    try:
        unnamed = app.test_cli_runner().invoke(args=["init-db"])
        assert unnamed.exit_code == 0 and "The practice has no name yet" in unnamed.output
        assert Practice.get().name == "Cabinet" and not Practice.get().named
        named = app.test_cli_runner().invoke(args=["init-db", "--practice-name", "Maison de santé des Lilas"])
        assert named.exit_code == 0 and "no name yet" not in named.output
        assert [p.name for p in Practice.select()] == ["Maison de santé des Lilas"]
    finally:
        db.close()


def test_create_user(runner):
    result = runner.invoke(args=["create-user", "--email", "Dr@Cabinet.example.org", "--name", "Dr Who",
                                 "--role", "practitioner", "--password", "ten chars ok"])
    assert result.exit_code == 0, result.output
    user = User.get(User.email == "Dr@cabinet.example.org")
    assert user.role == "practitioner" and user.password_hash.startswith("$argon2")
    again = runner.invoke(args=["create-user", "--email", "dr@cabinet.example.org", "--name", "X",
                                "--role", "admin", "--password", "ten chars ok"])
    assert again.exit_code != 0 and "already" in again.output
    bad = runner.invoke(args=["create-user", "--email", "nope", "--name", "X", "--role", "admin",
                              "--password", "ten chars ok"])
    assert bad.exit_code != 0
    short = runner.invoke(args=["create-user", "--email", "s@cabinet.example.org", "--name", "X", "--role", "admin",
                                "--password", "short"])
    assert short.exit_code != 0 and User.select().where(User.email == "s@cabinet.example.org").count() == 0


def test_demo(runner, app):
    """The demo a newcomer explores: staff with profiles, patients with records, last week closed with
    every outcome (and some left to close), today's visits with one about to start, the catalogue."""
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0 and "demo-cabinet" in result.output
    assert User.select().count() == 4
    assert {u.role for u in User.select()} == {"admin", "practitioner", "secretary"}
    assert all(rpps_valid(u.rpps) for u in User.select().where(User.role == "practitioner"))
    assert Patient.select().count() == 12
    nirs = [p.nir for p in Patient.select() if p.nir]
    assert len(nirs) >= 6 and all(normalize_nir(n) == n for n in nirs)
    assert any(n[5:7] == "2A" for n in nirs)
    assert fees() == SEEDED

    now = utcnow()
    closed = list(Appointment.select().where(Appointment.status == "closed"))
    assert {a.outcome_shown for a in closed} == set(Appointment.OUTCOMES)
    assert all(a.starts_at < now for a in closed)
    for appt in closed:
        assert Report.get(Report.appointment == appt).frozen_at is not None
        assert {d.kind for d in Document.select().where(Document.appointment == appt)} >= {"report", "patient_report"}
    assert Document.select().where(Document.kind == "prescription").count() > 0
    assert {p.status for p in Payment.select()} >= {"paid", "requested"}
    assert Message.select().where(Message.status == "pending").count() == 0     # nothing sent at start

    left = Appointment.unclosed([u.id for u in User.select()], now)
    assert any(a.call_ended for a in left) and any(a.status == "scheduled" for a in left)
    for doctor in User.select().where(User.role == "practitioner"):
        soon = Appointment.select().where(Appointment.practitioner == doctor, Appointment.starts_at > now,
                                          Appointment.starts_at <= now + dt.timedelta(minutes=10))
        assert soon.count() == 1
    assert Appointment.select().where(Appointment.starts_at > now + dt.timedelta(days=1)).count() >= 10
    # Opening hours and visit types, so the next free slots show something.
    assert VisitType.select().count() == 3
    for doctor, slots in next_free_slots(VisitType.select().where(VisitType.practitioner.is_null()).get(),
                                         User.select().where(User.role == "practitioner")):
        assert len(slots) == 3, doctor.name
    # Online booking on, one patient's request waiting for staff.
    assert Practice.get().online_booking
    requested = Appointment.get(Appointment.status == "requested")
    assert requested.booked_online and requested.visit_type.confirmation == "staff" and requested.starts_at > now
    assert "already" in runner.invoke(args=["demo"]).output


