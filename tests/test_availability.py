"""Editing availability: a practitioner's own hours, exceptions and visit types (/profile/...), an
admin's for any practitioner and the practice's online booking (/admin/...); bad input is a
translated 422 that saves nothing; the staff's next-free-slot search and its links to book."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from webapp.models import Act, AuditEvent, HoursException, Practice, VisitType, WeeklyHours

from conftest import HX, db_snapshot, login_as, make_appointment, make_practice, make_user, text_of

EMPTY_WEEK = {f"day_{d}": "" for d in range(7)}


def week(**days) -> dict:
    return {**EMPTY_WEEK, **{f"day_{d[-1]}": v for d, v in days.items()}}


def saved_hours(user) -> list[tuple[int, int, int]]:
    return [(h.weekday, h.start_minute, h.end_minute) for h in WeeklyHours.of(user.id)]


def test_a_practitioner_saves_their_week(client):
    doctor = login_as(client, "practitioner")
    response = client.post("/profile/availability/hours", data=week(day_0="09:00-12:00, 14h-18h30", day_4="8h30-12h"))
    assert response.status_code == 302 and response.headers["Location"].endswith("/profile/availability?saved=hours")
    assert saved_hours(doctor) == [(0, 540, 720), (0, 840, 1110), (4, 510, 720)]
    page = client.get("/profile/availability?saved=hours")
    assert "Opening hours saved." in text_of(page)
    assert 'value="09:00-12:00, 14:00-18:30"' in page.get_data(as_text=True)
    event = AuditEvent.select().where(AuditEvent.action == "availability.hours_saved").get()
    assert event.detail == f"user:{doctor.id}"
    # With htmx, the form comes back in place, saved.
    response = client.post("/profile/availability/hours", data=week(day_1="10:00-11:00"), headers=HX)
    assert response.status_code == 200 and "Opening hours saved." in text_of(response)
    assert saved_hours(doctor) == [(1, 600, 660)]


@pytest.mark.parametrize("typed, error", [
    ("9-", "Write each range like 09:00-12:00, separated by commas."),
    ("09:00-12:75", "Write each range like 09:00-12:00, separated by commas."),
    ("nine to noon", "Write each range like 09:00-12:00, separated by commas."),
    ("25:00-26:00", "Write each range like 09:00-12:00, separated by commas."),
    ("14:00-12:00", "14:00-12:00 ends before it starts."),
    ("10:00-10:00", "10:00-10:00 ends before it starts."),
    ("09:00-12:00, 11:00-13:00", "09:00-12:00 and 11:00-13:00 overlap."),
    ("1-2, 3-4, 5-6, 7-8, 9-10, 11-12, 13-14", "At most 6 ranges a day."),
])
def test_bad_hours_are_refused_and_nothing_changes(client, typed, error):
    doctor = login_as(client, "practitioner")
    WeeklyHours.create(practitioner=doctor, weekday=2, start_minute=540, end_minute=600)
    before = db_snapshot()
    for headers in ({}, HX):
        response = client.post("/profile/availability/hours", data=week(day_0="09:00-10:00", day_3=typed),
                               headers=headers)
        assert response.status_code == 422
        assert error in text_of(response)
        assert ("<html" in response.get_data(as_text=True)) == (headers == {})     # htmx gets the form alone
    assert db_snapshot() == before


def test_the_error_is_in_french_for_a_french_reader(client):
    login_as(client, "practitioner", locale="fr")
    response = client.post("/profile/availability/hours", data=week(day_0="14:00-12:00"))
    assert response.status_code == 422 and "14:00-12:00 se termine avant de commencer." in text_of(response)


def test_exceptions_are_added_listed_and_removed(client):
    doctor = login_as(client, "practitioner")
    response = client.post("/profile/availability/exceptions", data={
        "kind": "closed", "start_date": "2036-07-14", "start_time": "", "end_date": "2036-07-18", "end_time": "",
        "note": "Congés"})
    assert response.status_code == 302
    row = HoursException.get()
    # Whole days in Paris (UTC+2 in July): from the 14th at midnight to the 19th at midnight.
    assert (row.kind, row.starts_at, row.ends_at, row.note) == (
        "closed", dt.datetime(2036, 7, 13, 22, 0), dt.datetime(2036, 7, 18, 22, 0), "Congés")
    response = client.post("/profile/availability/exceptions", data={
        "kind": "open", "start_date": "2036-06-12", "start_time": "18:00", "end_time": "20:00"}, headers=HX)
    assert response.status_code == 200 and "Extra opening" in text_of(response) and "Congés" in text_of(response)
    assert HoursException.select().count() == 2
    response = client.post(f"/profile/availability/exceptions/{row.id}/delete", headers=HX)
    assert response.status_code == 200 and "Congés" not in text_of(response)
    assert [e.action for e in AuditEvent.select().order_by(AuditEvent.id)] == [
        "availability.exception_added", "availability.exception_added", "availability.exception_removed"]
    # Another practitioner's exception is not theirs to remove.
    other = HoursException.create(practitioner=make_user(), starts_at=dt.datetime(2036, 7, 1),
                                  ends_at=dt.datetime(2036, 7, 2))
    assert client.post(f"/profile/availability/exceptions/{other.id}/delete").status_code == 404


@pytest.mark.parametrize("fields, error", [
    ({"start_date": ""}, "Enter the date."),
    ({"start_date": "14/07/2036"}, "Enter a date like 2026-03-31."),
    ({"start_time": "25:00"}, "Enter a time like 14:30."),
    ({"end_date": "2036-07-13"}, "The end must be after the start."),
    ({"start_time": "14:00", "end_time": "12:00"}, "The end must be after the start."),
    ({"end_date": "2038-01-01"}, "At most a year at a time."),
    ({"start_date": "2036-06-01", "end_date": "2036-06-02"}, "This time has already passed."),
    ({"kind": "maybe"}, "Not a valid choice."),
    ({"note": "x" * 101}, "At most 100 characters."),
])
def test_bad_exceptions_are_refused(client, fields, error):
    login_as(client, "practitioner")
    before = db_snapshot()
    response = client.post("/profile/availability/exceptions", data={
        "kind": "closed", "start_date": "2036-07-14", "start_time": "", "end_date": "", "end_time": "", **fields})
    assert response.status_code == 422 and error in text_of(response)
    assert db_snapshot() == before


VISIT_TYPE = {"name_en": "Follow-up", "name_fr": "Suivi", "duration_minutes": "20", "mode": "audio", "act_code": "TC",
              "fee": "25", "online": "y", "confirmation": "staff", "notice_minutes": "120", "horizon_days": "42",
              "active": "y"}


def test_a_practitioner_adds_a_visit_type_of_their_own(client):
    doctor = login_as(client, "practitioner")
    assert client.get("/profile/visit-types/new").status_code == 200
    response = client.post("/profile/visit-types/new", data=VISIT_TYPE)
    assert response.status_code == 302
    vt = VisitType.get()
    assert (vt.practitioner_id, json.loads(vt.names), vt.duration_minutes, vt.mode, vt.act_code, vt.fee_cents,
            vt.online, vt.new_patients, vt.confirmation, vt.notice_minutes, vt.horizon_days) == (
        doctor.id, {"en": "Follow-up", "fr": "Suivi"}, 20, "audio", "TC", 2500, True, False, "staff", 120, 42)
    assert "Follow-up" in text_of(client.get("/profile/availability"))
    response = client.post(f"/profile/visit-types/{vt.id}", data={**VISIT_TYPE, "duration_minutes": "30"})
    assert response.status_code == 302 and VisitType.get_by_id(vt.id).duration_minutes == 30
    # Shown in the reader's language, else the practice's.
    assert vt.name_in("fr") == "Suivi" and vt.name_in("de", "en") == "Follow-up"
    # Another practitioner's visit type, or the practice's, is not theirs to edit.
    theirs = VisitType.create(practice=make_practice(), practitioner=make_user(), names='{"en": "Theirs"}')
    everyone = VisitType.create(practice=make_practice(), names='{"en": "Everyone"}')
    assert client.get(f"/profile/visit-types/{theirs.id}").status_code == 404
    assert client.get(f"/profile/visit-types/{everyone.id}").status_code == 404
    page = text_of(client.get("/profile/availability"))
    assert "Everyone" in page and "Theirs" not in page


@pytest.mark.parametrize("fields, error", [
    ({"name_en": ""}, "Give the name in English."),
    ({"duration_minutes": "0"}, "Between 5 and 240 minutes."),
    ({"duration_minutes": "abc"}, "Not a valid integer value."),
    ({"notice_minutes": "-5"}, "Between 0 and 43200 minutes (30 days)."),
    ({"horizon_days": "0"}, "Between 1 and 365 days."),
    ({"fee": "25 euros"}, "Give an amount between 0 and 1000 €, like 25 or 17.50."),
    ({"fee": "5000"}, "Give an amount between 0 and 1000 €, like 25 or 17.50."),
    ({"mode": "fax"}, "Not a valid choice."),
    ({"act_code": "XYZ"}, "Not a valid choice."),
    ({"name_fr": "x" * 101}, "At most 100 characters."),
])
def test_bad_visit_types_are_refused(client, fields, error):
    login_as(client, "practitioner")
    Act.seed(make_practice())       # the catalogue seeds itself on first use: not what is tested here
    before = db_snapshot()
    response = client.post("/profile/visit-types/new", data={**VISIT_TYPE, **fields}, headers=HX)
    assert response.status_code == 422 and error in text_of(response)
    assert db_snapshot() == before


def test_an_admin_edits_any_practitioners_hours_and_the_practice_visit_types(client):
    admin = login_as(client, "admin")
    doctor = make_user("practitioner")
    assert "Availability of" in text_of(client.get(f"/admin/staff/{doctor.id}/availability"))
    response = client.post(f"/admin/staff/{doctor.id}/availability/hours", data=week(day_2="09:00-12:00"))
    assert response.status_code == 302 and saved_hours(doctor) == [(2, 540, 720)]
    assert client.post(f"/admin/staff/{admin.id}/availability/hours", data=EMPTY_WEEK).status_code == 404
    response = client.post(f"/admin/staff/{doctor.id}/availability/hours", data=week(day_2="12:00-09:00"))
    assert response.status_code == 422 and saved_hours(doctor) == [(2, 540, 720)]
    response = client.post(f"/admin/staff/{doctor.id}/availability/exceptions", data={
        "kind": "closed", "start_date": "2036-08-01"})
    assert response.status_code == 302 and HoursException.get().practitioner_id == doctor.id
    # A visit type for everyone, then one for this practitioner only.
    assert client.post("/admin/visit-types/new", data={**VISIT_TYPE, "practitioner": ""}).status_code == 302
    assert client.post("/admin/visit-types/new", data={**VISIT_TYPE, "name_en": "Mine",
                                                        "practitioner": str(doctor.id)}).status_code == 302
    assert [(v.practitioner_id, v.name_in("en")) for v in VisitType.select().order_by(VisitType.id)] == [
        (None, "Follow-up"), (doctor.id, "Mine")]
    page = text_of(client.get("/admin/booking"))
    assert "Follow-up" in page and "Mine" in page and doctor.name in page
    bad = client.post("/admin/visit-types/new", data={**VISIT_TYPE, "practitioner": str(admin.id)})
    assert bad.status_code == 422 and VisitType.select().count() == 2


def test_the_practice_switches_online_booking(client):
    login_as(client, "admin")
    practice = make_practice()
    assert (practice.online_booking, practice.patient_change_notice_hours) == (False, 24)
    response = client.post("/admin/booking", data={"online_booking": "y", "patient_change_notice_hours": "48"})
    assert response.status_code == 302
    assert (lambda p: (p.online_booking, p.patient_change_notice_hours))(Practice.get_by_id(practice.id)) == (True, 48)
    response = client.post("/admin/booking", data={"patient_change_notice_hours": "12"})     # off, at once
    assert response.status_code == 302 and Practice.get_by_id(practice.id).online_booking is False
    before = db_snapshot()
    for typed, error in (("-1", "Between 0 and 720 hours."), ("", "Enter a number of hours.")):
        response = client.post("/admin/booking", data={"online_booking": "y", "patient_change_notice_hours": typed})
        assert response.status_code == 422 and error in text_of(response)
    assert db_snapshot() == before
    assert [e.detail for e in AuditEvent.select().where(AuditEvent.action == "practice.booking_saved")] == [
        "online:on", "online:off"]


def test_next_free_slots_link_to_a_prefilled_booking(client):
    secretary = login_as(client, "secretary")
    doctor, nurse = make_user("practitioner", name="Dr Claire"), make_user("practitioner", name="Julien")
    for who in (doctor, nurse):
        for day in range(7):
            WeeklyHours.create(practitioner=who, weekday=day, start_minute=14 * 60, end_minute=15 * 60 + 15)
    make_appointment(practitioner=doctor, starts_at=dt.datetime(2036, 6, 10, 12, 0), duration_minutes=30)
    vt = VisitType.create(practice=secretary.practice, names='{"en": "Follow-up"}', duration_minutes=25,
                          notice_minutes=0, mode="audio")
    page = client.get(f"/agenda/next-free?visit_type={vt.id}")
    assert page.status_code == 200
    text = text_of(page)
    # It is 10:00 in Paris; the doctor is busy 14:00-14:30, which blocks the 14:00 and 14:25 slots.
    assert "Dr Claire Tuesday 10 June, 14:50" in text and "Julien Tuesday 10 June, 14:00" in text
    html = page.get_data(as_text=True)
    link = f"/agenda/new?practitioner={doctor.id}&amp;date=2036-06-10&amp;time=14:50&amp;visit_type={vt.id}"
    assert link in html
    form = client.get(link.replace("&amp;", "&")).get_data(as_text=True)
    assert 'value="14:50"' in form and 'value="2036-06-10"' in form
    assert '<option selected value="25">' in form and '<input checked id="mode-1" name="mode" type="radio" value="audio">' in form
    assert client.get(f"/agenda/next-free?visit_type={vt.id}", headers=HX).get_data(as_text=True).startswith(
        '<section id="next-free"')
