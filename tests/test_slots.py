"""Free slots (webapp/slots.py): weekly hours minus closures, plus extra openings, minus appointments,
minus notice and horizon, in Europe/Paris across both daylight-saving changes of 2036; and taking a
slot with two takers at once (run on PostgreSQL too: tests/with_postgres.sh)."""
from __future__ import annotations

import datetime as dt
import json
import threading
from zoneinfo import ZoneInfo

import pytest

from webapp.models import Appointment, AuditEvent, HoursException, VisitType, WeeklyHours, db
from webapp.slots import SlotUnavailable, free_slots, next_free_slots, take_slot, wall_to_utc

from conftest import FROZEN_AT, make_appointment, make_practice, make_user

PARIS = ZoneInfo("Europe/Paris")
NOW = FROZEN_AT.replace(tzinfo=None)          # Tuesday 2036-06-10, 10:00 in Paris


def last_sunday(year: int, month: int) -> dt.date:
    """The European Union changes the clocks on the last Sunday of March and of October."""
    day = dt.date(year, month + 1, 1) - dt.timedelta(days=1)
    return day - dt.timedelta(days=(day.weekday() - 6) % 7)


SPRING, AUTUMN = last_sunday(2036, 3), last_sunday(2036, 10)


def hours(practitioner, *ranges):
    """Weekly ranges as (weekday, "HH:MM", "HH:MM")."""
    def minute(text):
        h, m = text.split(":")
        return int(h) * 60 + int(m)
    for weekday, start, end in ranges:
        WeeklyHours.create(practitioner=practitioner, weekday=weekday, start_minute=minute(start),
                           end_minute=minute(end))


def every_day(practitioner, *spans):
    hours(practitioner, *[(d, s, e) for d in range(7) for s, e in spans])


def visit_type(minutes=30, notice=0, horizon=365, **fields):
    return VisitType.create(practice=make_practice(), names=json.dumps({"en": "Follow-up", "fr": "Suivi"}),
                            duration_minutes=minutes, notice_minutes=notice, horizon_days=horizon, **fields)


def local_day(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The UTC bounds of one local day in Paris."""
    midnight = dt.datetime.combine(day, dt.time())
    return wall_to_utc(midnight, PARIS), wall_to_utc(midnight + dt.timedelta(days=1), PARIS)


def starts(slots) -> list[str]:
    return [s.local_start.strftime("%H:%M") for s in slots]


def test_the_dst_sundays_are_the_last_of_march_and_october():
    assert (SPRING, AUTUMN) == (dt.date(2036, 3, 30), dt.date(2036, 10, 26))
    assert SPRING.weekday() == AUTUMN.weekday() == 6


@pytest.mark.parametrize("day, expected_local, first_utc", [
    # The Sunday before: Paris is UTC+1.
    (SPRING - dt.timedelta(days=7), ["01:00", "01:30", "02:00", "02:30", "03:00", "03:30"], "00:00"),
    # Spring: 02:00-03:00 does not exist; the night range loses that hour, and no slot lives in it.
    (SPRING, ["01:00", "01:30", "03:00", "03:30"], "00:00"),
    # Autumn: 02:00-03:00 happens twice; the night range gains an hour (each half-hour slot really lasts one).
    (AUTUMN, ["01:00", "01:30", "02:00", "02:30", "02:00", "02:30", "03:00", "03:30"], "23:00"),
    # The Sunday after: Paris is UTC+1 again.
    (AUTUMN + dt.timedelta(days=7), ["01:00", "01:30", "02:00", "02:30", "03:00", "03:30"], "00:00"),
], ids=["before-spring", "spring", "autumn", "after-autumn"])
def test_a_night_range_across_the_change(app, day, expected_local, first_utc):
    doctor = make_user()
    hours(doctor, (6, "01:00", "04:00"))
    slots = free_slots(doctor, *local_day(day), visit_type(30), now=dt.datetime(2036, 1, 1))
    assert starts(slots) == expected_local
    assert slots[0].starts_at.strftime("%H:%M") == first_utc
    for slot in slots:
        assert slot.ends_at - slot.starts_at == dt.timedelta(minutes=30)        # real minutes
        assert wall_to_utc(slot.local_start, PARIS) == slot.starts_at or day == AUTUMN   # every time exists
        back = slot.starts_at.replace(tzinfo=dt.timezone.utc).astimezone(PARIS).replace(tzinfo=None)
        assert back == slot.local_start
    assert len({s.starts_at for s in slots}) == len(slots)                      # none twice


@pytest.mark.parametrize("day, utc_hours", [
    (SPRING - dt.timedelta(days=7), ["08:00", "09:00", "10:00"]),
    (SPRING, ["07:00", "08:00", "09:00"]),
    (AUTUMN, ["08:00", "09:00", "10:00"]),
    (AUTUMN - dt.timedelta(days=7), ["07:00", "08:00", "09:00"]),
])
def test_a_morning_stays_nine_to_noon_local_on_the_dst_sundays(app, day, utc_hours):
    doctor = make_user()
    hours(doctor, (6, "09:00", "12:00"))
    slots = free_slots(doctor, *local_day(day), visit_type(60), now=dt.datetime(2036, 1, 1))
    assert starts(slots) == ["09:00", "10:00", "11:00"]
    assert [s.starts_at.strftime("%H:%M") for s in slots] == utc_hours
    assert slots[-1].local_end.strftime("%H:%M") == "12:00"


def test_a_range_starting_in_the_spring_gap_opens_when_the_clocks_jump(app):
    doctor = make_user()
    hours(doctor, (6, "02:30", "04:00"))
    slots = free_slots(doctor, *local_day(SPRING), visit_type(30), now=dt.datetime(2036, 1, 1))
    assert starts(slots) == ["03:00", "03:30"]


def test_closures_and_extra_openings(app):
    doctor = make_user()
    every_day(doctor, ("09:00", "12:00"), ("14:00", "16:00"))
    monday = dt.date(2036, 6, 16)

    def at(day, text):
        return wall_to_utc(dt.datetime.combine(day, dt.time.fromisoformat(text)), PARIS)
    HoursException.create(practitioner=doctor, kind="closed", starts_at=at(monday, "10:00"),
                          ends_at=at(monday, "11:10"), note="Réunion")                       # part of a morning
    HoursException.create(practitioner=doctor, kind="closed", starts_at=at(monday, "14:00"),
                          ends_at=at(monday, "17:00"))                                       # the afternoon off
    HoursException.create(practitioner=doctor, kind="open", starts_at=at(monday, "18:00"),
                          ends_at=at(monday, "19:00"))                                       # an extra evening
    HoursException.create(practitioner=doctor, kind="closed", starts_at=at(monday + dt.timedelta(days=1), "00:00"),
                          ends_at=at(monday + dt.timedelta(days=3), "00:00"), note="Congés")  # two days off
    HoursException.create(practitioner=doctor, kind="open", starts_at=at(monday, "16:30"),
                          ends_at=at(monday, "17:30"))               # a closure wins over an opening it meets
    vt = visit_type(30)
    assert starts(free_slots(doctor, *local_day(monday), vt)) == [
        "09:00", "09:30", "11:30", "17:00", "18:00", "18:30"]          # the 11:00 slot ends after the closure starts
    assert free_slots(doctor, local_day(monday + dt.timedelta(days=1))[0],
                      local_day(monday + dt.timedelta(days=2))[1], vt) == []
    assert starts(free_slots(doctor, *local_day(monday + dt.timedelta(days=3)), vt)) == [
        "09:00", "09:30", "10:00", "10:30", "11:00", "11:30", "14:00", "14:30", "15:00", "15:30"]


def test_appointments_block_the_slots_they_overlap_and_cancelled_ones_do_not(app):
    doctor = make_user()
    every_day(doctor, ("14:00", "15:00"))
    day = dt.date(2036, 6, 12)
    start = wall_to_utc(dt.datetime(2036, 6, 12, 14, 10), PARIS)
    make_appointment(practitioner=doctor, starts_at=start, duration_minutes=20)          # 14:10-14:30
    make_appointment(practitioner=doctor, starts_at=start + dt.timedelta(minutes=35), status="cancelled")
    other = make_user()
    make_appointment(practitioner=other, starts_at=start + dt.timedelta(minutes=35))      # someone else's
    assert starts(free_slots(doctor, *local_day(day), visit_type(15))) == ["14:30", "14:45"]
    # An appointment from the evening before reaching past midnight still blocks.
    every_day(other, ("00:00", "01:00"))
    late = wall_to_utc(dt.datetime(2036, 6, 12, 23, 30), PARIS)
    make_appointment(practitioner=other, starts_at=late, duration_minutes=60)
    assert starts(free_slots(other, *local_day(dt.date(2036, 6, 13)), visit_type(15))) == ["00:30", "00:45"]


def test_notice_and_horizon(app):
    doctor = make_user()
    every_day(doctor, ("09:00", "17:00"))
    vt = visit_type(60, notice=120, horizon=42)
    today = free_slots(doctor, *local_day(dt.date(2036, 6, 10)), vt, now=NOW)
    assert starts(today) == ["12:00", "13:00", "14:00", "15:00", "16:00"]    # it is 10:00: two hours' notice
    assert starts(free_slots(doctor, *local_day(dt.date(2036, 6, 10)), visit_type(60), now=NOW)) == [
        "10:00", "11:00", "12:00", "13:00", "14:00", "15:00", "16:00"]        # no notice: from now on
    horizon = NOW + dt.timedelta(days=42)                                      # 2036-07-22 10:00 in Paris
    assert starts(free_slots(doctor, *local_day(horizon.date()), vt, now=NOW)) == ["09:00"]
    assert free_slots(doctor, *local_day(horizon.date() + dt.timedelta(days=1)), vt, now=NOW) == []
    assert free_slots(doctor, *local_day(dt.date(2036, 6, 9)), visit_type(60), now=NOW) == []      # yesterday


def test_a_visit_type_of_another_practitioner_offers_nothing(app):
    doctor, nurse = make_user(), make_user()
    every_day(doctor, ("09:00", "17:00"))
    theirs = visit_type(30, practitioner=nurse)
    assert free_slots(doctor, *local_day(dt.date(2036, 6, 11)), theirs) == []
    assert free_slots(doctor, *local_day(dt.date(2036, 6, 11)), visit_type(30, active=False)) == []
    assert len(free_slots(doctor, *local_day(dt.date(2036, 6, 11)), visit_type(30, practitioner=doctor))) == 16


def test_next_free_slots_gives_each_practitioners_first(app):
    doctor, nurse, idle = make_user(name="A"), make_user(name="B"), make_user(name="C")
    every_day(doctor, ("09:00", "10:00"))
    hours(nurse, (4, "14:00", "15:00"))                   # Fridays only
    vt = visit_type(30, notice=120)
    found = next_free_slots(vt, [doctor, nurse, idle], count=3)
    assert [(p.name, [s.local_start.isoformat(" ", "minutes") for s in slots]) for p, slots in found] == [
        ("A", ["2036-06-11 09:00", "2036-06-11 09:30", "2036-06-12 09:00"]),
        ("B", ["2036-06-13 14:00", "2036-06-13 14:30", "2036-06-20 14:00"]),
        ("C", []),
    ]


def test_taking_a_slot_books_it_once(app):
    doctor = make_user()
    every_day(doctor, ("09:00", "10:00"))
    vt = visit_type(30, mode="audio")
    slot = free_slots(doctor, *local_day(dt.date(2036, 6, 11)), vt)[0]
    appt = take_slot(doctor, slot.starts_at, vt, actor="patient", contact_email="a@example.org")
    assert (appt.starts_at, appt.duration_minutes, appt.mode, appt.visit_type_id) == (
        slot.starts_at, 30, "audio", vt.id)
    assert AuditEvent.get(AuditEvent.appointment == appt).action == "appointment.created"
    with pytest.raises(SlotUnavailable) as refused:
        take_slot(doctor, slot.starts_at, vt, actor="patient")
    assert [s.local_start.strftime("%d %H:%M") for s in refused.value.next_slots] == ["11 09:30", "12 09:00",
                                                                                        "12 09:30"]
    for outside in (slot.starts_at + dt.timedelta(minutes=10),        # off the grid
                    slot.starts_at - dt.timedelta(hours=3),           # before the hours
                    NOW - dt.timedelta(days=1)):                      # in the past
        with pytest.raises(SlotUnavailable):
            take_slot(doctor, outside, vt, actor="patient")
    assert Appointment.select().count() == 1


def test_two_takers_of_the_same_slot_at_once_exactly_one_wins(app):
    doctor = make_user()
    every_day(doctor, ("09:00", "10:00"))
    vt = visit_type(30)
    slot = free_slots(doctor, *local_day(dt.date(2036, 6, 11)), vt)[0]
    db.close()
    barrier, results = threading.Barrier(4), []

    def take(n):
        with db.connection_context():
            barrier.wait()
            try:
                results.append(("won", take_slot(doctor, slot.starts_at, vt, actor="patient",
                                                 contact_email=f"p{n}@example.org").id))
            except SlotUnavailable as refused:
                results.append(("lost", [s.starts_at for s in refused.next_slots]))

    threads = [threading.Thread(target=take, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(r[0] for r in results) == ["lost", "lost", "lost", "won"]
    assert Appointment.select().where(Appointment.starts_at == slot.starts_at).count() == 1
    for outcome, next_slots in results:
        if outcome == "lost":
            assert next_slots and slot.starts_at not in next_slots
            assert next_slots[0] == slot.starts_at + dt.timedelta(minutes=30)
