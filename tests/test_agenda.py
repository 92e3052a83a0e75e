"""The agenda: views with and without htmx, booking, editing, moving, cancelling, instant visits."""
from __future__ import annotations

import datetime as dt
import re

import pytest

from conftest import HX, db_snapshot, login_as, make_appointment, make_patient, make_user, text_of
from webapp.i18n import local_to_utc, utc_to_local
from webapp.models import Appointment, AuditEvent, Message, Patient, utcnow


def local_tomorrow(hour=10, minute=0):
    day = utc_to_local(utcnow(), "Europe/Paris").date() + dt.timedelta(days=1)
    return day, dt.time(hour, minute)


def booking(who, patient, on_day=None, at=None, **extra):
    on_day, at = local_tomorrow() if on_day is None else (on_day, at)
    return {"patient_id": str(patient.id), "practitioner": str(who.id), "date": on_day.isoformat(),
            "time": at.strftime("%H:%M"), "duration": "20", "mode": "video", "motive": "Suivi", **extra}


def test_anonymous_is_sent_to_sign_in(client):
    response = client.get("/agenda/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_day_view_full_page_and_fragment(client):
    me = login_as(client, "practitioner")
    appt = make_appointment(practitioner=me, starts_in=dt.timedelta(minutes=30))
    full = client.get("/agenda/")
    assert full.status_code == 200
    assert "<html" in full.get_data(as_text=True)
    assert appt.patient.full_name in text_of(full)
    fragment = client.get("/agenda/", headers=HX)
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and 'id="agenda"' in body
    assert appt.patient.full_name in body
    assert "HX-Request" in fragment.headers["Vary"]


def test_boosted_navigation_gets_the_whole_page(client):
    login_as(client, "practitioner")
    response = client.get("/agenda/", headers={**HX, "HX-Boosted": "true"})
    assert "<html" in response.get_data(as_text=True)


def test_week_view_lists_the_whole_week_in_the_practice_time_zone(client):
    me = login_as(client, "practitioner")
    day, _ = local_tomorrow()
    monday = day - dt.timedelta(days=day.weekday())
    # 23:30 on Sunday in Paris is already Monday in UTC for part of the year: it must stay on Sunday.
    sunday_late = local_to_utc(dt.datetime.combine(monday + dt.timedelta(days=6), dt.time(23, 30)), "Europe/Paris")
    inside = make_appointment(practitioner=me, starts_at=sunday_late, patient=make_patient(last_name="Dimanche"))
    outside = make_appointment(practitioner=me, patient=make_patient(last_name="Suivante"),
                               starts_at=local_to_utc(dt.datetime.combine(monday + dt.timedelta(days=7), dt.time(9)),
                                                      "Europe/Paris"))
    text = text_of(client.get(f"/agenda/?view=week&date={day.isoformat()}", headers=HX))
    assert inside.patient.last_name in text
    assert outside.patient.last_name not in text
    assert "23:30" in text        # the practitioner reads English, as written in France


def test_practitioner_sees_only_their_own_agenda(client):
    me = login_as(client, "practitioner")
    other = make_user("practitioner", name="Dr Autre")
    theirs = make_appointment(practitioner=other, starts_in=dt.timedelta(minutes=30))
    assert theirs.patient.last_name not in text_of(client.get(f"/agenda/?practitioner={other.id}"))
    assert client.get(f"/agenda/{theirs.id}").status_code == 404


def test_secretary_switches_between_practitioners(client):
    """A secretary's day opens on the practice's practitioners side by side; one can be chosen."""
    login_as(client, "secretary")
    first, second = make_user("practitioner", name="Dr Aa"), make_user("practitioner", name="Dr Bb")
    appt = make_appointment(practitioner=second, starts_in=dt.timedelta(minutes=30))
    page = client.get("/agenda/")
    assert 'class="tg cols-2' in page.get_data(as_text=True)
    assert appt.patient.last_name in text_of(page)
    assert appt.patient.last_name not in text_of(client.get(f"/agenda/?practitioner={first.id}", headers=HX))
    assert appt.patient.last_name in text_of(client.get(f"/agenda/?practitioner={second.id}", headers=HX))


def test_book_without_javascript_redirects_to_the_appointment(client):
    me = login_as(client, "practitioner")
    patient = make_patient()
    response = client.post("/agenda/new", data=booking(me, patient))
    assert response.status_code == 302
    appt = Appointment.get(Appointment.patient == patient)
    assert response.headers["Location"].endswith(f"/agenda/{appt.id}")
    day, time = local_tomorrow()
    assert appt.starts_at == local_to_utc(dt.datetime.combine(day, time), "Europe/Paris")
    assert appt.contact_email == patient.email and appt.status == "scheduled"
    assert AuditEvent.get(AuditEvent.action == "appointment.created").appointment_id == appt.id
    detail = client.get(response.headers["Location"])
    assert "https://cabinet.test/p/" in detail.get_data(as_text=True)


def test_book_with_htmx_returns_the_panel_and_refreshes_the_agenda(client):
    me = login_as(client, "practitioner")
    response = client.post("/agenda/new", data=booking(me, make_patient()), headers=HX)
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "agenda-changed"
    body = response.get_data(as_text=True)
    assert "<html" not in body and "https://cabinet.test/p/" in body


def test_new_form_fragment_and_page(client):
    login_as(client, "secretary")
    make_user("practitioner")
    assert "<html" not in client.get("/agenda/new", headers=HX).get_data(as_text=True)
    assert "<html" in client.get("/agenda/new").get_data(as_text=True)


def test_patient_search_inside_the_booking_form(client):
    me = login_as(client, "practitioner")
    make_patient(last_name="Zébulon")
    make_patient(last_name="Autre")
    choices = client.get("/patients/choices?patient_query=zébu", headers=HX)
    assert "Zébulon" in text_of(choices) and "Autre" not in text_of(choices)
    # Without JavaScript, the Search button re-renders the form with the matches and saves nothing.
    data = booking(me, make_patient(), patient_id="", patient_query="zébu", search="1")
    response = client.post("/agenda/new", data=data)
    assert response.status_code == 200 and "Zébulon" in text_of(response)
    assert Appointment.select().count() == 0


def _visit_types():
    import json
    from conftest import make_practice
    from webapp.models import VisitType
    follow_up = VisitType.create(practice=make_practice(), names=json.dumps({"en": "Follow-up", "fr": "Suivi"}),
                                 duration_minutes=30, mode="audio", act_code="TCG")
    first = VisitType.create(practice=make_practice(), names=json.dumps({"en": "First visit"}),
                             duration_minutes=45, mode="video", act_code="TC")
    return follow_up, first


def visit_type_option(html, kind) -> str:
    """The visit-type field's option for ``kind`` (a VisitType), as the form renders it."""
    field = re.search(r'<select[^>]*name="visit_type".*?</select>', html, re.S).group(0)
    return re.search(rf'<option[^>]*value="{kind.id}"[^>]*>[^<]*', field).group(0)


def test_a_visit_booked_from_a_visit_type_s_free_slot_keeps_that_type(client):
    """The next-free page's links carry the visit type: the form shows it chosen, its length and mode
    fill the form, and the visit keeps the type (its closing offers the type's act)."""
    me = login_as(client, "practitioner")
    follow_up, first = _visit_types()
    form = client.get(f"/agenda/new?visit_type={follow_up.id}").get_data(as_text=True)
    chosen = visit_type_option(form, follow_up)
    assert "selected" in chosen and 'data-duration="30"' in chosen and 'data-mode="audio"' in chosen
    assert chosen.endswith("Follow-up · 30 min") and visit_type_option(form, first).endswith("First visit · 45 min")
    assert '<option selected value="30">' in form and 'checked id="mode-1" name="mode" type="radio" value="audio"' in form
    patient = make_patient()
    assert client.post("/agenda/new", data=booking(me, patient, visit_type=str(follow_up.id))).status_code == 302
    assert Appointment.get(Appointment.patient == patient).visit_type_id == follow_up.id


def test_a_secretary_chooses_the_visit_type_when_booking_and_may_change_it_later(client):
    login_as(client, "secretary")
    doctor = make_user("practitioner")
    follow_up, first = _visit_types()
    blank = client.get(f"/agenda/new?practitioner={doctor.id}").get_data(as_text=True)
    assert re.search(r'<option selected value="">None</option>', blank)     # none until chosen
    patient = make_patient()
    assert client.post("/agenda/new", data=booking(doctor, patient, visit_type=str(first.id), duration="45")).status_code == 302
    appt = Appointment.get(Appointment.patient == patient)
    assert appt.visit_type_id == first.id and appt.duration_minutes == 45
    edit = client.get(f"/agenda/{appt.id}/edit").get_data(as_text=True)
    assert "selected" in visit_type_option(edit, first)
    first.active = False                           # no longer offered: the visit keeps it on edit
    first.save()
    local = utc_to_local(appt.starts_at, "Europe/Paris")
    same = booking(doctor, patient, local.date(), local.time(), visit_type=str(first.id), duration="45")
    assert client.post(f"/agenda/{appt.id}/edit", data=same).status_code == 302
    assert Appointment.get_by_id(appt.id).visit_type_id == first.id
    changed = dict(same, visit_type=str(follow_up.id), duration="30")
    assert client.post(f"/agenda/{appt.id}/edit", data=changed).status_code == 302
    assert Appointment.get_by_id(appt.id).visit_type_id == follow_up.id
    assert client.post(f"/agenda/{appt.id}/edit", data=dict(same, visit_type="")).status_code == 302
    assert Appointment.get_by_id(appt.id).visit_type_id is None


@pytest.mark.parametrize("given, message", [
    ("other practice's", "Choose a visit type from the list."),
    ("x1", "Choose a visit type from the list."),
    ("999999", "Choose a visit type from the list."),
    ("no longer offered", "Choose a visit type from the list."),
    ("another practitioner's", "This visit type is offered by another practitioner"),
])
def test_a_visit_type_that_cannot_be_chosen_is_refused_and_nothing_is_booked(client, given, message):
    import json
    from conftest import make_practice
    from webapp.models import Practice, VisitType
    me = login_as(client, "practitioner")
    follow_up, _ = _visit_types()
    values = {
        "other practice's": VisitType.create(practice=Practice.create(name="Ailleurs"), names="{}").id,
        "no longer offered": VisitType.create(practice=make_practice(), names="{}", active=False).id,
        "another practitioner's": VisitType.create(practice=make_practice(), names=json.dumps({"en": "Theirs"}),
                                                   practitioner=make_user("practitioner")).id}
    patient = make_patient()
    before = db_snapshot()
    response = client.post("/agenda/new", data=booking(me, patient, visit_type=str(values.get(given, given))))
    assert response.status_code == 422 and message in text_of(response)
    assert db_snapshot() == before


@pytest.mark.parametrize("change, field_message", [
    ({"patient_id": ""}, "Choose a patient from the list."),
    ({"patient_id": "999999"}, "Choose a patient from the list."),
    ({"patient_id": "abc"}, "Choose a patient from the list."),
    ({"date": ""}, "Enter the date."),
    ({"date": "31/02/2026"}, "Enter a date like 2026-03-31."),
    ({"date": "2026-02-31"}, "Enter a date like 2026-03-31."),
    ({"time": "25:00"}, "Enter a time like 14:30."),
    ({"time": ""}, "Enter the time."),
    ({"date": "2020-01-01", "time": "10:00"}, "This time has already passed."),
    ({"motive": "x" * 501}, "At most 500 characters."),
    ({"mode": "hologram"}, "Not a valid choice"),
    ({"duration": "7"}, "Not a valid choice"),
    ({"practitioner": "424242"}, "Not a valid choice"),
])
def test_booking_validation(client, change, field_message):
    me = login_as(client, "practitioner")
    data = booking(me, make_patient(), **change)
    for headers, status in (({}, 422), (HX, 422)):
        response = client.post("/agenda/new", data=data, headers=headers)
        assert response.status_code == status
        assert field_message in text_of(response)
    assert Appointment.select().count() == 0


def test_patient_without_contact_details_cannot_be_booked(client):
    me = login_as(client, "practitioner")
    response = client.post("/agenda/new", data=booking(me, make_patient(email="", phone="")))
    assert response.status_code == 422
    assert "no e-mail address or mobile number" in text_of(response)
    assert Appointment.select().count() == 0


def test_patient_of_another_practice_is_unknown(client):
    from webapp.models import Practice
    me = login_as(client, "practitioner")
    elsewhere = make_patient(practice=Practice.create(name="Autre cabinet"))
    response = client.post("/agenda/new", data=booking(me, elsewhere))
    assert response.status_code == 422 and Appointment.select().count() == 0


def test_overlap_is_shown_before_saving_and_needs_confirmation(client):
    me = login_as(client, "practitioner")
    day, time = local_tomorrow(10, 0)
    make_appointment(practitioner=me, starts_at=local_to_utc(dt.datetime.combine(day, time), "Europe/Paris"),
                     duration_minutes=30)
    live = client.get(f"/agenda/overlaps?practitioner={me.id}&date={day}&time=10:15&duration=15", headers=HX)
    assert "overlaps another teleconsultation" in text_of(live)
    clear = client.get(f"/agenda/overlaps?practitioner={me.id}&date={day}&time=10:30&duration=15", headers=HX)
    assert "overlaps" not in text_of(clear)
    data = booking(me, make_patient(), day, dt.time(10, 15))
    refused = client.post("/agenda/new", data=data, headers=HX)
    assert refused.status_code == 409 and "Book anyway" in text_of(refused)
    assert Appointment.select().count() == 1
    accepted = client.post("/agenda/new", data={**data, "confirm_overlap": "y"}, headers=HX)
    assert accepted.status_code == 200 and Appointment.select().count() == 2


def test_cancelled_appointments_do_not_overlap(client):
    me = login_as(client, "practitioner")
    day, time = local_tomorrow(11, 0)
    make_appointment(practitioner=me, starts_at=local_to_utc(dt.datetime.combine(day, time), "Europe/Paris"),
                     status="cancelled")
    response = client.post("/agenda/new", data=booking(me, make_patient(), day, time))
    assert response.status_code == 302


def test_edit_keeps_the_link_and_move_revokes_it(client):
    me = login_as(client, "practitioner")
    appt = make_appointment(practitioner=me, starts_in=dt.timedelta(days=2))
    local = utc_to_local(appt.starts_at, "Europe/Paris")
    data = booking(me, appt.patient, local.date(), local.time(), motive="Nouveau motif")
    edit = client.post(f"/agenda/{appt.id}/edit", data=data, headers=HX)
    assert edit.status_code == 200
    appt = Appointment.get_by_id(appt.id)
    assert appt.motive == "Nouveau motif" and appt.link_version == 1
    later = local + dt.timedelta(hours=3)
    moved = client.post(f"/agenda/{appt.id}/edit", data=booking(me, appt.patient, later.date(), later.time()))
    assert moved.status_code == 302
    appt = Appointment.get_by_id(appt.id)
    assert utc_to_local(appt.starts_at, "Europe/Paris") == later and appt.link_version == 2
    assert [e.action for e in AuditEvent.select().order_by(AuditEvent.id)][-2:] == [
        "appointment.edited", "appointment.moved"]


def test_edit_form_is_prefilled(client):
    me = login_as(client, "practitioner")
    appt = make_appointment(practitioner=me, motive="Contrôle tension")
    body = client.get(f"/agenda/{appt.id}/edit", headers=HX).get_data(as_text=True)
    assert "Contrôle tension" in body and appt.patient.full_name in body


def test_move_into_the_past_is_refused_and_nothing_changes(client):
    me = login_as(client, "practitioner")
    appt = make_appointment(practitioner=me)
    before = appt.starts_at
    response = client.post(f"/agenda/{appt.id}/edit",
                           data=booking(me, appt.patient, dt.date(2020, 1, 1), dt.time(9)), headers=HX)
    assert response.status_code == 422 and "already passed" in text_of(response)
    assert Appointment.get_by_id(appt.id).starts_at == before


def test_cancel(client):
    me = login_as(client, "practitioner")
    appt = make_appointment(practitioner=me)
    response = client.post(f"/agenda/{appt.id}/cancel", headers=HX)
    assert response.status_code == 200 and "cancelled" in text_of(response)
    assert Appointment.get_by_id(appt.id).status == "cancelled"
    assert client.post(f"/agenda/{appt.id}/edit", data={}).status_code == 409


def test_new_link_revokes_the_old_one(client):
    me = login_as(client, "practitioner")
    appt = make_appointment(practitioner=me)
    old = client.get(f"/agenda/{appt.id}", headers=HX).get_data(as_text=True)
    new = client.post(f"/agenda/{appt.id}/link", headers=HX).get_data(as_text=True)
    link = lambda html: html.split("https://cabinet.test/p/")[1].split('"')[0]  # noqa: E731
    assert link(old) != link(new)
    assert Appointment.get_by_id(appt.id).link_version == 2


def test_instant_visit_from_a_phone_number_alone(client):
    me = login_as(client, "practitioner")
    response = client.post("/agenda/instant", data={"phone": "06 12 34 56 78", "practitioner": me.id,
                                                    "mode": "video"}, headers=HX)
    assert response.status_code == 200 and "https://cabinet.test/p/" in response.get_data(as_text=True)
    appt = Appointment.get()
    assert appt.kind == "instant" and appt.patient is None and appt.contact_phone == "+33612345678"
    assert abs((appt.starts_at - utcnow()).total_seconds()) < 120


@pytest.mark.parametrize("data, message", [
    ({}, "Enter an e-mail address or a mobile number."),
    ({"email": "not-an-address"}, "Enter a valid e-mail address"),
    ({"phone": "12"}, "Enter a valid phone number"),
    ({"phone": "01 42 34 56 78"}, "This is a landline number: SMS cannot reach it."),
])
def test_instant_visit_validation(client, data, message):
    me = login_as(client, "practitioner")
    response = client.post("/agenda/instant", data={"practitioner": me.id, "mode": "video", **data}, headers=HX)
    assert response.status_code == 422 and message in text_of(response)
    assert Appointment.select().count() == 0


@pytest.mark.parametrize("send_by", ["sms", "both"])
def test_a_landline_is_refused_for_sms_and_kept_for_the_telephone(client, send_by):
    """The patient's landline stays on file (a visit can be held by telephone), but no SMS is queued to it."""
    me = login_as(client, "practitioner")
    patient = make_patient(phone="+33142345678")
    refused = client.post("/agenda/new", data=booking(me, patient, send_by=send_by), headers=HX)
    assert refused.status_code == 422
    assert "This patient's number is a landline: SMS cannot reach it. Choose e-mail only." in text_of(refused)
    assert Appointment.select().count() == 0 and Message.select().count() == 0
    booked = client.post("/agenda/new", data=booking(me, patient, send_by="email"))
    assert booked.status_code == 302
    assert [(m.channel, m.recipient) for m in Message.select()] == [("email", patient.email)]
    assert Patient.get_by_id(patient.id).phone == "+33142345678"


def test_forms_are_in_the_staff_language(client):
    me = login_as(client, "practitioner", locale="fr")
    response = client.post("/agenda/new", data=booking(me, make_patient(), date=""), headers=HX)
    assert "Saisissez la date." in text_of(response)


# Handing a visit over to a replacement practitioner.

def in_call(practitioner):
    return make_appointment(practitioner=practitioner, starts_in=-dt.timedelta(minutes=5), status="in_call",
                            admitted_at=utcnow())


def test_an_admin_hands_a_live_visit_over_and_only_the_new_practitioner_opens_the_call(client):
    away, stand_in = make_user("practitioner", name="Dr Absent"), make_user("practitioner", name="Dr Relais")
    appt = in_call(away)
    admin = login_as(client, "admin")
    page = client.get(f"/agenda/{appt.id}").get_data(as_text=True)
    assert f'action="/agenda/{appt.id}/hand-over"' in page and 'name="csrf_token"' in page
    assert f'<option value="{stand_in.id}">Dr Relais</option>' in page
    assert f'<option value="{away.id}">' not in page                 # not to the one who has it
    response = client.post(f"/agenda/{appt.id}/hand-over", data={"practitioner": stand_in.id})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/agenda/{appt.id}")
    assert Appointment.get_by_id(appt.id).practitioner_id == stand_in.id
    event = AuditEvent.get(AuditEvent.action == "appointment.handed_over")
    assert (event.user_id, event.appointment_id, event.detail) == (
        admin.id, appt.id, f"practitioner {away.id} -> {stand_in.id}")
    assert "Dr Relais" in text_of(client.get(f"/agenda/{appt.id}"))
    assert client.get(f"/today/{appt.id}/call").status_code == 403    # the admin still cannot open it
    login_as(client, stand_in)
    assert client.get(f"/today/{appt.id}/call").status_code == 200
    login_as(client, away)
    assert client.get(f"/today/{appt.id}/call").status_code == 404    # no longer theirs to see


def test_the_practitioner_hands_their_own_visit_over_with_htmx(client):
    me = login_as(client, "practitioner")
    colleague = make_user("practitioner", name="Dr Relais")
    appt = in_call(me)
    response = client.post(f"/agenda/{appt.id}/hand-over", data={"practitioner": colleague.id}, headers=HX)
    assert response.status_code == 200 and response.headers["HX-Redirect"] == "/agenda/"
    assert Appointment.get_by_id(appt.id).practitioner_id == colleague.id
    assert client.get(f"/agenda/{appt.id}").status_code == 404


def test_a_secretary_cannot_hand_a_visit_over(client):
    doctor, other = make_user("practitioner"), make_user("practitioner")
    appt = in_call(doctor)
    login_as(client, "secretary")
    assert "hand-over" not in client.get(f"/agenda/{appt.id}").get_data(as_text=True)
    assert client.post(f"/agenda/{appt.id}/hand-over", data={"practitioner": other.id}).status_code == 403
    assert Appointment.get_by_id(appt.id).practitioner_id == doctor.id
    assert not AuditEvent.select().where(AuditEvent.action == "appointment.handed_over").exists()


@pytest.mark.parametrize("target", ["secretary", "same", "inactive", "other practice", "none"])
def test_hand_over_only_to_another_active_practitioner_of_the_practice(client, target):
    from webapp.models import Practice
    doctor = make_user("practitioner")
    appt = in_call(doctor)
    login_as(client, "admin")
    chosen = {"secretary": lambda: make_user("secretary").id, "same": lambda: doctor.id,
              "inactive": lambda: make_user("practitioner", active=False).id,
              "other practice": lambda: make_user("practitioner", practice=Practice.create(name="Autre")).id,
              "none": lambda: ""}[target]()
    response = client.post(f"/agenda/{appt.id}/hand-over", data={"practitioner": chosen}, headers=HX)
    assert response.status_code == 422
    assert "Choose another practitioner of the practice." in text_of(response)
    assert Appointment.get_by_id(appt.id).practitioner_id == doctor.id
    assert not AuditEvent.select().where(AuditEvent.action == "appointment.handed_over").exists()


@pytest.mark.parametrize("status", ["cancelled", "closed"])
def test_a_cancelled_or_closed_visit_is_not_handed_over(client, status):
    doctor, other = make_user("practitioner"), make_user("practitioner")
    appt = make_appointment(practitioner=doctor, status=status)
    login_as(client, "admin")
    assert "hand-over" not in client.get(f"/agenda/{appt.id}").get_data(as_text=True)
    assert client.post(f"/agenda/{appt.id}/hand-over", data={"practitioner": other.id}).status_code == 409
    assert Appointment.get_by_id(appt.id).practitioner_id == doctor.id


def test_editing_a_started_visit_cannot_change_its_practitioner(client):
    doctor, other = make_user("practitioner"), make_user("practitioner")
    appt = in_call(doctor)
    login_as(client, "secretary")
    local = utc_to_local(appt.starts_at, "Europe/Paris")
    response = client.post(f"/agenda/{appt.id}/edit", headers=HX,
                           data=booking(other, appt.patient, local.date(), local.time()))
    assert response.status_code == 422 and "The visit has started" in text_of(response)
    assert Appointment.get_by_id(appt.id).practitioner_id == doctor.id
    same = client.post(f"/agenda/{appt.id}/edit", data=booking(doctor, appt.patient, local.date(), local.time(),
                                                               motive="Suivi tension"))
    assert same.status_code == 302 and Appointment.get_by_id(appt.id).motive == "Suivi tension"


def test_hand_over_needs_the_csrf_token(tmp_path):
    from conftest import make_app
    app = make_app(tmp_path / "csrf", WTF_CSRF_ENABLED=True)
    doctor, other = make_user("practitioner"), make_user("practitioner")
    appt = in_call(doctor)
    client = app.test_client()
    login_as(client, "admin")
    response = client.post(f"/agenda/{appt.id}/hand-over", data={"practitioner": other.id})
    # (refused before the user is loaded, so in the default language)
    assert response.status_code == 400 and "Ce formulaire a expiré" in text_of(response)
    assert Appointment.get_by_id(appt.id).practitioner_id == doctor.id


def test_the_appointment_leads_to_the_patient_record(client):
    login_as(client, "secretary")
    appt = make_appointment()
    body = client.get(f"/agenda/{appt.id}", headers=HX).get_data(as_text=True)
    assert f'href="/patients/{appt.patient_id}"' in body
    record = client.get(f"/patients/{appt.patient_id}")
    assert record.status_code == 200 and appt.patient.last_name in text_of(record)


def test_the_visit_type_chosen_comes_back_after_the_new_patient_step(client):
    login_as(client, "secretary")
    doctor = make_user("practitioner")
    follow_up, _ = _visit_types()
    typed = {**booking(doctor, make_patient()), "patient_id": "", "patient_query": "Nouvelle",
             "visit_type": str(follow_up.id), "duration": "30", "mode": "audio"}
    step = client.post("/agenda/patient", data={**typed, "start": "1"}, headers=HX)
    assert f'<input type="hidden" name="visit_type" value="{follow_up.id}">' in step.get_data(as_text=True)
    back = client.post("/agenda/patient", headers=HX, data={**typed, "back": "1"})
    assert "selected" in visit_type_option(back.get_data(as_text=True), follow_up)


def test_the_panel_says_a_call_ended_outside_cabinet_is_over_and_left_to_close(client):
    """The patient's phone died mid-call: the call is over (ended outside Cabinet), the visit still
    open. The panel said "In call", as if someone were still talking."""
    me = login_as(client, "practitioner")
    appt = make_appointment(practitioner=me, starts_in=dt.timedelta(minutes=-10), status="in_call",
                            admitted_at=utcnow() - dt.timedelta(minutes=9))
    assert "Status In call" in text_of(client.get(f"/agenda/{appt.id}", headers=HX))
    Appointment.update(call_ended_at=utcnow(), call_end_source="media").where(Appointment.id == appt.id).execute()
    assert "Status Call ended, to close" in text_of(client.get(f"/agenda/{appt.id}", headers=HX))


def test_a_visit_keeps_a_type_it_can_no_longer_be_booked_with_and_still_moves(client):
    """A practitioner's own type on a visit handed to a colleague, or a type since switched off
    with an unusual length: the visit still moves to a new time with its type and length."""
    import json
    from conftest import make_practice
    from webapp.models import VisitType
    login_as(client, "secretary")
    first, second = make_user("practitioner"), make_user("practitioner")
    theirs = VisitType.create(practice=make_practice(), names=json.dumps({"en": "Theirs"}), practitioner=first,
                              duration_minutes=20)
    odd = VisitType.create(practice=make_practice(), names=json.dumps({"en": "Odd"}), duration_minutes=25,
                           active=False)
    handed = make_appointment(practitioner=second, starts_in=dt.timedelta(days=2), visit_type=theirs)
    switched_off = make_appointment(practitioner=first, starts_in=dt.timedelta(days=3), visit_type=odd,
                                    duration_minutes=25)
    for appt, who in ((handed, second), (switched_off, first)):
        later = utc_to_local(appt.starts_at + dt.timedelta(hours=1), "Europe/Paris")
        moved = client.post(f"/agenda/{appt.id}/move", data={"slot": f"{who.id}|{later.date()}|{later:%H:%M}"})
        assert moved.status_code in (200, 302), text_of(moved)
        kept = Appointment.get_by_id(appt.id)
        assert kept.starts_at == appt.starts_at + dt.timedelta(hours=1)
        assert (kept.visit_type_id, kept.duration_minutes) == (appt.visit_type_id, appt.duration_minutes)
