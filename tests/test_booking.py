"""Online booking by patients (webapp/booking/, webapp/online.py, webapp/patient/change.py): the public
pages from a free slot to the appointment, the one-time code (read from a real SMTP server), matching
a record without telling anyone whether it matched, staff approval, the patient's own cancel and move,
the switch, bad input and rate limits."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from conftest import (FROZEN_AT, HX, db_snapshot, holding_link, login_as, make_app, make_appointment, make_patient,
                      make_practice, make_user, text_of)
from smtp_helpers import smtp_server
from webapp import events, notify
from webapp.auth import limiter
from webapp.models import (Appointment, AuditEvent, BookingRequest, HoursException, Message, Patient, Practice,
                           VisitType, WeeklyHours, db)

NOW = FROZEN_AT.replace(tzinfo=None)          # Tuesday 2036-06-10, 10:00 in Paris
# Wednesday 2036-06-11: 09:00 and 09:20 in Paris (UTC+2), the first two slots of the morning.
FIRST = "2036-06-11T07:00"
SECOND = "2036-06-11T07:20"
CODE = re.compile(r"\b(\d{6})\b")


def open_practice(**fields):
    practice = make_practice()
    Practice.update(online_booking=True, **fields).where(Practice.id == practice.id).execute()
    return Practice.get_by_id(practice.id)


def bookable(practitioner=None, **fields):
    """A practitioner seeing patients 09:00-12:00 on weekdays, and a 20-minute online video visit type."""
    open_practice()
    practitioner = practitioner or make_user("practitioner", practice_phone="+33145678910")
    for weekday in range(5):
        WeeklyHours.create(practitioner=practitioner, weekday=weekday, start_minute=9 * 60, end_minute=12 * 60)
    kind = VisitType.create(practice=make_practice(), names=json.dumps({"en": "Follow-up", "fr": "Suivi"}),
                            duration_minutes=20, online=True, **{"new_patients": True, "confirmation": "auto",
                                                                 "notice_minutes": 120, "horizon_days": 42, **fields})
    return practitioner, kind


DETAILS = {"first_name": "Élodie", "last_name": "Dupont", "birth_date": "1984-05-02",
           "email": "elodie@example.org", "phone": "06 12 34 56 78", "send_code_by": "email", "terms": "y"}


def details_url(doctor, kind, at=FIRST):
    return f"/book/{doctor.id}/details?type={kind.id}&at={at}"


def ask_code(client, doctor, kind, at=FIRST, address="127.0.0.1", **changes):
    return client.post(details_url(doctor, kind, at), data={**DETAILS, **changes},
                       environ_base={"REMOTE_ADDR": address})


def last_code() -> str:
    message = Message.select().where(Message.kind == "booking_code").order_by(Message.id.desc()).first()
    return CODE.search(message.body).group(1)


def book(client, doctor, kind, at=FIRST, **changes):
    """The whole flow through the code; the answer to the right code."""
    answer = ask_code(client, doctor, kind, at, **changes)
    assert answer.status_code == 303, answer.status_code
    return client.post(answer.headers["Location"], data={"code": last_code()})


def test_booking_end_to_end_with_the_code_read_from_a_real_smtp_server(app, client):
    doctor, kind = bookable()
    start = client.get("/book")
    assert start.status_code == 200 and doctor.name in text_of(start)
    week = client.get(f"/book/{doctor.id}")           # one visit type: chosen already
    assert week.status_code == 200
    assert details_url(doctor, kind).replace("&", "&amp;") in week.get_data(as_text=True)
    assert "Wednesday 11 June" in text_of(week) and "9:00" in text_of(week)
    form = client.get(details_url(doctor, kind))
    assert form.status_code == 200 and "Terms of online booking" in text_of(form)

    with smtp_server() as smtp:
        app.config.update(smtp.config)
        answer = ask_code(client, doctor, kind)
        assert answer.status_code == 303
        code_page = answer.headers["Location"]
        with app.app_context():
            assert notify.send_due()["sent"] == 1
        mail = smtp.wait_for(1)[0]
    assert smtp.collector.envelopes[0][1] == ["elodie@example.org"]
    assert mail["Subject"] == "Your booking code for Cabinet des Tilleuls"
    body = smtp.text_of(mail)
    assert "Dupont" not in body and "Élodie" not in body and "Follow-up" not in body
    code = CODE.search(body).group(1)
    assert not Appointment.select().exists()
    stored = BookingRequest.get()
    assert code not in stored.code_hash and len(stored.code_hash) == 64

    wrong = client.post(code_page, data={"code": f"{(int(code) + 1) % 10**6:06d}"})
    assert wrong.status_code == 422
    assert "This code is not the right one." in text_of(wrong) and "4 tries left." in text_of(wrong)
    done = client.post(code_page, data={"code": code})
    assert done.status_code == 200 and "Your appointment is booked" in text_of(done)

    appt = Appointment.get()
    assert (appt.status, appt.booked_online, appt.visit_type_id, appt.duration_minutes) == ("scheduled", True,
                                                                                             kind.id, 20)
    assert appt.starts_at == dt.datetime(2036, 6, 11, 7, 0)
    assert (appt.contact_email, appt.contact_phone) == ("elodie@example.org", "+33612345678")
    patient = appt.patient
    assert (patient.first_name, patient.last_name, patient.needs_check) == ("Élodie", "Dupont", True)
    assert {(m.kind, m.channel) for m in Message.select().where(Message.appointment == appt)} == {
        ("invitation", "email"), ("invitation", "sms")}
    assert AuditEvent.get(AuditEvent.action == "appointment.created").actor == "patient"
    assert AuditEvent.select().where(AuditEvent.action == "patient.created_online").count() == 1
    left = BookingRequest.get()
    assert (left.appointment_id, left.first_name, left.email, left.code_hash) == (appt.id, "", "", "")
    assert client.post(code_page, data={"code": code}).status_code == 200       # a reload books nothing more
    assert Appointment.select().count() == 1


def test_the_week_moves_with_htmx_and_without(app, client):
    doctor, kind = bookable()
    plain = client.get(f"/book/{doctor.id}?type={kind.id}&week=2036-06-16")
    fragment = client.get(f"/book/{doctor.id}?type={kind.id}&week=2036-06-16", headers=HX)
    assert "Monday 16 June" in text_of(plain) and "<header" in plain.get_data(as_text=True)
    assert fragment.get_data(as_text=True).lstrip().startswith('<section id="booking-week"')
    assert "Monday 16 June" in text_of(fragment)
    # Without a week, the first with a free slot: this one, until it is full.
    assert "Week of 9 June" in text_of(client.get(f"/book/{doctor.id}?type={kind.id}"))
    HoursException.create(practitioner=doctor, kind="closed", starts_at=NOW, ends_at=dt.datetime(2036, 6, 16))
    assert "Week of 16 June" in text_of(client.get(f"/book/{doctor.id}?type={kind.id}"))
    # A week before this one shows this one; far beyond the horizon, the horizon's last week.
    assert "Week of 9 June" in text_of(client.get(f"/book/{doctor.id}?type={kind.id}&week=2030-01-01"))
    assert "Week of 21 July" in text_of(client.get(f"/book/{doctor.id}?type={kind.id}&week=2099-01-01"))


def test_an_existing_record_is_matched_and_nobody_can_tell(app, client):
    doctor, kind = bookable()
    known = make_patient(first_name="Elodie", last_name="DUPONT", birth_date=dt.date(1984, 5, 2),
                         email="Elodie@Example.org", phone="+33699999999")
    first = book(client, doctor, kind)
    matched = Appointment.get()
    assert matched.patient_id == known.id and not Patient.get_by_id(known.id).needs_check
    assert Patient.select().count() == 1
    first_code = Message.select().where(Message.kind == "booking_code").first()

    other = book(client, doctor, kind, at=SECOND, first_name="Elodie", last_name="Dupont",
                 email="someone.else@example.org", phone="")
    unmatched = Appointment.get(Appointment.id != matched.id)
    assert unmatched.patient_id != known.id and unmatched.patient.needs_check
    second_code = Message.select().where(Message.kind == "booking_code").order_by(Message.id.desc()).first()
    # The same pages and the same code message, whoever it is.
    assert first.status_code == other.status_code == 200
    assert text_of(first).replace("09:00", "X") == text_of(other).replace("09:20", "X")
    assert CODE.sub("C", first_code.body) == CODE.sub("C", second_code.body)
    assert first_code.subject == second_code.subject


def test_not_open_to_new_patients_the_page_says_the_same_either_way(app, client):
    doctor, kind = bookable(new_patients=False)
    make_patient(first_name="Élodie", last_name="Dupont", birth_date=dt.date(1984, 5, 2), email="elodie@example.org")
    known = book(client, doctor, kind)
    stranger = book(client, doctor, kind, at=SECOND, first_name="Anne", email="anne@example.org", phone="")
    assert text_of(known).replace("09:00", "X") == text_of(stranger).replace("09:20", "X")
    assert "A message is on its way to you" in text_of(known)
    statuses = {a.patient.first_name: a.status for a in Appointment.select()}
    assert statuses == {"Élodie": "scheduled", "Anne": "requested"}     # staff decide for the stranger


def test_staff_approve_or_decline_and_the_patient_is_told(app, client):
    doctor, kind = bookable(confirmation="staff")
    assert "Your request is sent" in text_of(book(client, doctor, kind))
    book(client, doctor, kind, at=SECOND, first_name="Anne", email="anne@example.org", phone="")
    first, second = Appointment.select().order_by(Appointment.starts_at)
    assert first.status == second.status == "requested"
    assert [m.kind for m in Message.select().where(Message.appointment == first, Message.channel == "email")] == [
        "requested"]
    # A requested slot is not free for anyone else.
    assert client.get(details_url(doctor, kind)).status_code == 409

    staff = app.test_client()
    login_as(staff, "secretary")
    listing = staff.get("/booking/requests")
    assert "Waiting for approval" in text_of(listing) and "Dupont" in text_of(listing)
    assert "new record, to check" in text_of(listing)
    assert "Awaiting approval" in text_of(staff.get("/agenda/?date=2036-06-11"))
    assert staff.post(f"/booking/requests/{first.id}/approve").status_code == 302
    assert staff.post(f"/booking/requests/{second.id}/decline", headers=HX).status_code == 200
    assert Appointment.get_by_id(first.id).status == "scheduled"
    assert Appointment.get_by_id(second.id).status == "cancelled"
    assert {m.kind for m in Message.select().where(Message.appointment == first)} >= {"invitation"}
    declined = Message.get(Message.appointment == second, Message.kind == "declined")
    assert "could not accept" in declined.body and "Anne" not in declined.body
    assert staff.post(f"/booking/requests/{second.id}/approve").status_code == 409
    assert {e.action for e in AuditEvent.select().where(AuditEvent.actor == "staff")} >= {
        "appointment.approved", "appointment.declined"}
    # The declined slot is free again.
    assert client.get(details_url(doctor, kind, SECOND)).status_code == 200
    # The new records: checked once.
    patient = first.patient
    assert "Made by an online booking" in text_of(staff.get(f"/patients/{patient.id}"))
    assert staff.post(f"/booking/patients/{patient.id}/checked").status_code == 302
    assert not Patient.get_by_id(patient.id).needs_check


def test_the_staff_header_counts_what_waits_for_them(app, client):
    """The secretary sees from any page that online bookings wait: for approval, or a new record to check."""
    doctor, kind = bookable(confirmation="staff")
    secretary, colleague = app.test_client(), app.test_client()
    login_as(secretary, "secretary")
    login_as(colleague, "practitioner")

    def badge(staff) -> int:
        header = staff.get("/agenda/").get_data(as_text=True)
        link = re.search(r'<a id="nav-online-bookings"[^>]*>(.*?)</a>', header, re.S).group(1)
        found = re.search(r'<span class="badge">(\d+)</span>', link)
        return int(found.group(1)) if found else 0

    assert badge(secretary) == 0
    book(client, doctor, kind)                      # a new patient: a request, and a record to check
    assert (badge(secretary), badge(colleague)) == (2, 1)    # another practitioner's request is not theirs
    first = Appointment.get()
    answer = secretary.post(f"/booking/requests/{first.id}/approve", headers=HX).get_data(as_text=True)
    link = re.search(r'<a id="nav-online-bookings"[^>]*hx-swap-oob="true"[^>]*>(.*?)</a>', answer, re.S)
    assert link and '<span class="badge">1</span>' in link.group(1)     # htmx swaps the list, and the count
    assert badge(secretary) == 1
    secretary.post(f"/booking/patients/{first.patient_id}/checked")
    assert badge(secretary) == 0 and "Online bookings" in text_of(secretary.get("/agenda/"))


@pytest.mark.parametrize("at, status, message", [
    ("tomorrow", 400, "This time could not be read."),
    ("2036-13-01T07:00", 400, "This time could not be read."),
    ("2036-06-11T07:00:00", 400, "This time could not be read."),
    ("2036-06-10T06:00", 409, "This time has already passed."),
    ("2036-06-10T08:20", 409, "This time is too close"),
    ("2036-06-11T05:00", 409, "This is not a time the practitioner sees patients."),
    ("2036-06-11T07:10", 409, "This is not a time the practitioner sees patients."),   # between two slots
    ("2036-06-14T07:00", 409, "This is not a time the practitioner sees patients."),   # a Saturday
    ("2036-08-20T07:00", 409, "This time is too far ahead"),
])
def test_a_time_that_is_not_a_free_slot_is_refused_and_nothing_is_kept(app, client, at, status, message):
    doctor, kind = bookable()
    before = db_snapshot()
    for answer in (client.get(details_url(doctor, kind, at)), ask_code(client, doctor, kind, at)):
        assert answer.status_code == status
        assert message in text_of(answer)
    assert db_snapshot() == before


def test_a_taken_slot_offers_the_next_free_ones(app, client):
    doctor, kind = bookable()
    make_appointment(practitioner=doctor, starts_at=dt.datetime(2036, 6, 11, 7, 0), duration_minutes=20)
    answer = ask_code(client, doctor, kind)
    assert answer.status_code == 409 and "This time has just been taken." in text_of(answer)
    assert details_url(doctor, kind, SECOND).replace("&", "&amp;") in answer.get_data(as_text=True)
    assert not BookingRequest.select().exists() and not Message.select().exists()


def test_a_slot_taken_while_the_code_travels_is_not_booked_twice(app, client):
    doctor, kind = bookable()
    answer = ask_code(client, doctor, kind)
    make_appointment(practitioner=doctor, starts_at=dt.datetime(2036, 6, 11, 7, 0), duration_minutes=20)
    before = Patient.select().count()
    taken = client.post(answer.headers["Location"], data={"code": last_code()})
    assert taken.status_code == 409 and "This time has just been taken." in text_of(taken)
    assert Appointment.select().where(Appointment.booked_online).count() == 0
    assert Patient.select().count() == before                       # the new record went with it


@pytest.mark.parametrize("changes, field_error", [
    ({"first_name": ""}, "Enter your first name."),
    ({"birth_date": "02/05/1984"}, "Enter a date like 2026-03-31."),
    ({"birth_date": "2090-01-01"}, "The birth date must be in the past."),
    ({"email": "elodie@"}, "Enter a valid e-mail address"),
    ({"phone": "01 45 67 89 10"}, "This is a landline number: SMS cannot reach it."),
    ({"phone": "12"}, "Enter a valid phone number"),
    ({"email": "", "phone": ""}, "Enter an e-mail address or a mobile number."),
    ({"email": "", "send_code_by": "email"}, "Enter your e-mail address, or choose SMS."),
    ({"send_code_by": "sms"}, "Not a valid choice."),           # no SMS gateway: codes go by e-mail
    ({"terms": ""}, "Accept the terms to book."),
])
def test_bad_details_are_refused_with_a_clear_message(app, client, changes, field_error):
    doctor, kind = bookable()
    before = db_snapshot()
    answer = ask_code(client, doctor, kind, **changes)
    assert answer.status_code == 422
    assert field_error in text_of(answer)
    assert db_snapshot() == before


def test_the_code_can_go_by_sms_through_a_gateway_but_never_to_a_landline(tmp_path):
    app = make_app(tmp_path, SMS_BACKEND="http", SMS_HTTP_URL="http://127.0.0.1:9/")
    try:
        doctor, kind = bookable()
        client = app.test_client()
        landline = ask_code(client, doctor, kind, phone="01 45 67 89 10", send_code_by="sms")
        assert landline.status_code == 422 and "landline" in text_of(landline)
        assert ask_code(client, doctor, kind, send_code_by="sms").status_code == 303
        message = Message.get(Message.kind == "booking_code")
        assert (message.channel, message.recipient) == ("sms", "+33612345678")
        assert re.fullmatch(r"Cabinet des Tilleuls: your booking code is \d{6}\. It is valid for 10 minutes\.",
                            message.body)
    finally:
        db.close()


def test_a_code_expires_after_ten_minutes_and_five_tries(app, client, clock):
    doctor, kind = bookable()
    page = ask_code(client, doctor, kind).headers["Location"]
    code = last_code()
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    answers = [client.post(page, data={"code": wrong}) for _ in range(5)]
    assert [a.status_code for a in answers] == [422, 422, 422, 422, 410]
    assert "1 try left." in text_of(answers[3]) and "This code no longer works" in text_of(answers[4])
    assert client.post(page, data={"code": code}).status_code == 410       # even the right one, now

    later = ask_code(client, doctor, kind, at=SECOND).headers["Location"]
    clock.shift(dt.timedelta(minutes=10, seconds=1))
    assert client.post(later, data={"code": last_code()}).status_code == 410
    assert not Appointment.select().exists()
    assert client.post(later, data={"code": "12ab56"}).status_code == 410
    assert client.get("/book/code/nothing-like-this").status_code == 404


def test_a_malformed_code_costs_no_try(app, client):
    doctor, kind = bookable()
    page = ask_code(client, doctor, kind).headers["Location"]
    answer = client.post(page, data={"code": "12a456"})
    assert answer.status_code == 422 and "The code has 6 digits." in text_of(answer)
    assert BookingRequest.get().tries == 0


def test_switching_online_booking_off_closes_every_page_at_once(app, client):
    doctor, kind = bookable()
    page = ask_code(client, doctor, kind).headers["Location"]
    code = last_code()
    Practice.update(online_booking=False).execute()
    before = db_snapshot()
    for answer in (client.get("/book"), client.get(f"/book/{doctor.id}"), client.get(details_url(doctor, kind)),
                   ask_code(client, doctor, kind), client.post(page, data={"code": code})):
        assert answer.status_code == 503
        assert "Online booking is closed" in text_of(answer)
        assert "01 45 67 89 10" in text_of(answer)
    assert db_snapshot() == before


def test_the_pages_speak_the_patients_language(app, client):
    doctor, kind = bookable()
    french = client.get(f"/book/{doctor.id}", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert "Prendre rendez-vous avec" in text_of(french) and "Suivi" in text_of(french)
    picked = client.post("/book/language", data={"locale": "de", "next": f"/book/{doctor.id}"})
    assert picked.status_code == 303 and picked.headers["Location"] == f"/book/{doctor.id}"
    assert client.get(f"/book/{doctor.id}").headers["Content-Language"] == "de"
    assert client.post("/book/language", data={"locale": "xx", "next": "https://evil.example/"}).headers[
        "Location"] == "/book"
    book(client, doctor, kind)
    appt = Appointment.get()
    assert (appt.locale, appt.locale_source) == ("de", "patient")
    assert Message.get(Message.kind == "booking_code").locale == "de"


def test_an_unknown_practitioner_or_visit_type_is_not_found(app, client):
    doctor, kind = bookable()
    secretary = make_user("secretary")
    offline = VisitType.create(practice=make_practice(), names="{}", online=False)
    assert client.get(f"/book/{secretary.id}").status_code == 404
    assert client.get(f"/book/{doctor.id}?type={offline.id}").status_code == 404
    assert client.get(f"/book/{doctor.id}/details?type={offline.id}&at={FIRST}").status_code == 404


# The patient's own cancel and move.

def booked_online(doctor, kind, starts_at=dt.datetime(2036, 6, 12, 7, 0), status="scheduled"):
    return make_appointment(practitioner=doctor, starts_at=starts_at, duration_minutes=20, visit_type=kind,
                            booked_online=True, status=status)


def test_the_patient_moves_their_appointment_and_the_day_page_hears_of_it(app, client):
    doctor, kind = bookable()
    appt = booked_online(doctor, kind)
    patient = holding_link(app, appt)
    page = patient.get(f"/v/{appt.ref}/")
    assert f"/v/{appt.ref}/change" in page.get_data(as_text=True)
    change = patient.get(f"/v/{appt.ref}/change")
    assert change.status_code == 200 and "Move it to another time" in text_of(change)
    with app.app_context(), events.subscribe(events.today_channel(doctor.id)) as day:
        moved = patient.post(f"/v/{appt.ref}/move", data={"at": FIRST})
        assert day.get(timeout=1) == events.REFRESH
    assert moved.status_code == 303
    appt = Appointment.get_by_id(appt.id)
    assert appt.starts_at == dt.datetime(2036, 6, 11, 7, 0) and appt.link_version == 2
    assert patient.get(f"/v/{appt.ref}/").status_code == 403          # the new cookie: the "early" page
    assert Message.select().where(Message.appointment == appt, Message.kind == "moved").count() == 2
    assert AuditEvent.get(AuditEvent.action == "appointment.moved").actor == "patient"
    # The old time is bookable again.
    assert app.test_client().get(details_url(doctor, kind, "2036-06-12T07:00")).status_code == 200


def test_a_move_to_a_time_that_is_not_free_is_refused(app, client):
    doctor, kind = bookable()
    appt = booked_online(doctor, kind)
    make_appointment(practitioner=doctor, starts_at=dt.datetime(2036, 6, 11, 7, 0), duration_minutes=20)
    patient = holding_link(app, appt)
    before = db_snapshot()
    taken = patient.post(f"/v/{appt.ref}/move", data={"at": FIRST})
    assert taken.status_code == 409 and "This time has just been taken." in text_of(taken)
    assert "The next free times" in text_of(taken)
    unreadable = patient.post(f"/v/{appt.ref}/move", data={"at": "soon"})
    assert unreadable.status_code == 400 and "could not be read" in text_of(unreadable)
    assert db_snapshot() == before


def test_the_patient_cancels_up_to_the_notice_and_not_after(app, client):
    doctor, kind = bookable()
    appt = booked_online(doctor, kind)
    patient = holding_link(app, appt)
    with app.app_context(), events.subscribe(events.today_channel(doctor.id)) as day:
        assert patient.post(f"/v/{appt.ref}/cancel").status_code == 303
        assert day.get(timeout=1) == events.REFRESH
    assert Appointment.get_by_id(appt.id).status == "cancelled"
    assert patient.get(f"/v/{appt.ref}/").status_code == 410
    assert Message.select().where(Message.appointment == appt, Message.kind == "cancelled").exists()
    event = AuditEvent.get(AuditEvent.action == "appointment.cancelled")
    assert (event.actor, event.detail) == ("patient", "by the patient")

    soon = booked_online(doctor, kind, starts_at=NOW + dt.timedelta(hours=23))      # inside the 24 h notice
    patient = holding_link(app, soon)
    assert "can no longer be changed online" in text_of(patient.get(f"/v/{soon.ref}/change"))
    before = db_snapshot()
    refused = patient.post(f"/v/{soon.ref}/cancel")
    assert refused.status_code == 409 and "can no longer be cancelled online" in text_of(refused)
    assert patient.post(f"/v/{soon.ref}/move", data={"at": FIRST}).status_code == 409
    assert db_snapshot() == before


def test_a_requested_appointment_does_not_open_the_way_in(app, client):
    doctor, kind = bookable(confirmation="staff")
    appt = booked_online(doctor, kind, starts_at=NOW + dt.timedelta(minutes=5), status="requested")
    patient = holding_link(app, appt)
    page = patient.get(f"/v/{appt.ref}/")
    assert page.status_code == 403 and "Your request is waiting for the practice" in text_of(page)
    assert patient.get(f"/v/{appt.ref}/identity").status_code == 302


# Abuse.

def test_rate_limits_per_client_and_per_contact(tmp_path):
    app = make_app(tmp_path, RATELIMIT_ENABLED=True)
    try:
        doctor, kind = bookable()
        limiter.reset()
        one = app.test_client()
        # The same contact from different clients: three codes in ten minutes, then no more; typing
        # mistakes do not count.
        mistakes = [ask_code(one, doctor, kind, terms="", address=f"10.0.0.{i}").status_code for i in range(3)]
        answers = [ask_code(one, doctor, kind, at=at, address=f"10.0.1.{i}").status_code
                   for i, at in enumerate((FIRST, SECOND, "2036-06-11T07:40", "2036-06-11T08:00"))]
        assert mistakes == [422] * 3 and answers == [303, 303, 303, 429]
        # One client, different contacts: five a minute.
        limiter.reset()
        answers = [ask_code(one, doctor, kind, email=f"p{i}@example.org", phone="").status_code for i in range(6)]
        assert answers == [303] * 5 + [429]
        assert BookingRequest.select().count() == 8
        # Guessing codes: ten tries a minute from one client, whatever the requests.
        limiter.reset()
        guesses = [one.post(f"/book/code/{b.token}", data={"code": "000000"}).status_code
                   for b in list(BookingRequest.select().limit(3)) for _ in range(4)]
        assert guesses[-1] == 429 and 429 not in guesses[:10]
    finally:
        limiter.reset()
        db.close()
