"""The patient's way in over HTTP: language, identity, consent, device check, waiting room, admission."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from conftest import HX, db_snapshot, login_as, make_appointment, make_patient, make_user, text_of
from webapp.models import Appointment, AuditEvent
from webapp.access import patient_link_url


@pytest.fixture
def appt(app):
    return make_appointment(starts_in=dt.timedelta(minutes=5),
                            patient=make_patient(first_name="Lucie", last_name="Vidal", birth_date=dt.date(1980, 4, 2)))


@pytest.fixture
def patient(app, appt):
    """A test client holding the patient's cookie for ``appt``."""
    client = app.test_client()
    with app.test_request_context():
        link = patient_link_url(appt).replace("https://cabinet.test", "")
    assert client.get(link).status_code == 302
    return client


def base(appt):
    return f"/v/{appt.ref}"


def reload(appt):
    return Appointment.get_by_id(appt.id)


def walk_to_waiting_room(patient, appt):
    patient.post(f"{base(appt)}/identity", data={"confirm": "y", "birth_date": "1980-04-02"})
    patient.post(f"{base(appt)}/consent", data={"agree": "y"})
    patient.post(f"{base(appt)}/check", data={"camera": "ok", "microphone": "ok", "speaker": "ok",
                                               "network": "good", "rtt": "40"})
    return patient.get(f"{base(appt)}/waiting")


def test_steps_cannot_be_skipped(patient, appt):
    for step in ("consent", "check", "waiting"):
        response = patient.get(f"{base(appt)}/{step}")
        assert response.status_code == 302 and response.headers["Location"].endswith("/identity"), step
    # The call page only opens once the practitioner has let the patient in.
    assert patient.get(f"{base(appt)}/call").headers["Location"].endswith(f"{base(appt)}/")


def test_identity_then_consent_then_check_then_waiting(patient, appt):
    page = patient.get(f"{base(appt)}/identity")
    assert "I am Lucie Vidal" in text_of(page)
    response = patient.post(f"{base(appt)}/identity", data={"confirm": "y", "birth_date": "1980-04-02"})
    assert response.headers["Location"].endswith("/consent")
    consent = patient.get(f"{base(appt)}/consent")
    assert "is not recorded" in text_of(consent)
    response = patient.post(f"{base(appt)}/consent", data={"agree": "y"})
    assert response.headers["Location"].endswith("/check")
    stored = reload(appt)
    assert stored.consent_version == "2026-11" and stored.consent_locale == "en" and stored.consent_at
    assert "Check your camera and microphone" in text_of(patient.get(f"{base(appt)}/check"))
    response = patient.post(f"{base(appt)}/check", data={"camera": "denied", "microphone": "ok", "speaker": "no",
                                                          "network": "poor", "rtt": "620"})
    assert response.headers["Location"].endswith("/waiting")
    assert reload(appt).device_results == {"camera": "denied", "microphone": "ok", "speaker": "no",
                                           "network": "poor", "rtt_ms": 620}
    waiting = patient.get(f"{base(appt)}/waiting")
    assert "You are in the waiting room" in text_of(waiting)
    stored = reload(appt)
    assert stored.status == "waiting" and stored.waiting_since is not None
    actions = [e.action for e in AuditEvent.select().where(AuditEvent.appointment == appt.id).order_by(AuditEvent.id)]
    assert actions[-4:] == ["patient.identity_confirmed", "patient.consent_given", "patient.device_checked",
                            "patient.waiting"]


@pytest.mark.parametrize("data, message", [
    ({"birth_date": "1980-04-02"}, "Tick the box to confirm"),
    ({"confirm": "y", "birth_date": "02/04/1980"}, "Enter a date like"),
    ({"confirm": "y", "birth_date": ""}, "Enter your date of birth."),
    ({"confirm": "y", "birth_date": "1980-04-03"}, "This date of birth does not match"),
])
def test_identity_errors(patient, appt, data, message):
    response = patient.post(f"{base(appt)}/identity", data=data)
    assert response.status_code == 422 and message in text_of(response)
    assert reload(appt).identity_confirmed_at is None
    # Only a wrong date counts towards the lock.
    assert reload(appt).identity_failures == (1 if data.get("birth_date") == "1980-04-03" else 0)


def test_three_wrong_birth_dates_lock_the_link_until_staff_send_a_new_one(app, patient, appt):
    for _ in range(3):
        response = patient.post(f"{base(appt)}/identity", data={"confirm": "y", "birth_date": "1999-01-01"})
    assert response.headers["Location"].endswith("/locked")
    locked = patient.get(f"{base(appt)}/identity", follow_redirects=True)
    assert locked.status_code == 423 and "This link is locked" in text_of(locked)
    # The right answer no longer helps.
    patient.post(f"{base(appt)}/identity", data={"confirm": "y", "birth_date": "1980-04-02"})
    assert reload(appt).identity_confirmed_at is None
    # A new link from the practice unlocks it.
    fresh = reload(appt)
    fresh.renew_link(make_user("secretary"))
    with app.test_request_context():
        link = patient_link_url(fresh).replace("https://cabinet.test", "")
    new_client = app.test_client()
    page = new_client.get(link, follow_redirects=True)
    assert page.status_code == 200 and "Is this you?" in text_of(page)


def test_instant_visit_without_a_patient_only_confirms(app):
    appt = make_appointment(starts_in=dt.timedelta(minutes=0), patient=None, kind="instant",
                            contact_email="x@example.org")
    client = app.test_client()
    with app.test_request_context():
        client.get(patient_link_url(appt).replace("https://cabinet.test", ""))
    page = client.get(f"{base(appt)}/identity")
    assert "the person this link was sent to" in text_of(page) and "date of birth" not in text_of(page)
    assert client.post(f"{base(appt)}/identity", data={"confirm": "y"}).headers["Location"].endswith("/consent")


def test_consent_is_required_and_a_refusal_is_shown_to_the_practitioner(app, patient, appt):
    patient.post(f"{base(appt)}/identity", data={"confirm": "y", "birth_date": "1980-04-02"})
    response = patient.post(f"{base(appt)}/consent", data={})
    assert response.status_code == 422 and "Tick the box to give your consent" in text_of(response)
    declined = patient.post(f"{base(appt)}/consent", data={"decline": "1"})
    assert "No teleconsultation without your consent" in text_of(declined)
    assert reload(appt).consent_declined
    assert patient.get(f"{base(appt)}/check").headers["Location"].endswith("/consent")
    staff = app.test_client()
    login_as(staff, appt.practitioner)
    assert "consent declined" in text_of(staff.get("/today/"))


@pytest.mark.parametrize("data", [
    {"camera": "exploded", "microphone": "ok", "speaker": "ok", "network": "good"},
    {"camera": "ok", "microphone": "ok", "speaker": "ok", "network": "good", "rtt": "-4"},
    {"camera": "ok", "microphone": "<script>", "speaker": "ok", "network": "good"},
])
def test_device_check_refuses_what_the_page_does_not_send(patient, appt, data):
    patient.post(f"{base(appt)}/identity", data={"confirm": "y", "birth_date": "1980-04-02"})
    patient.post(f"{base(appt)}/consent", data={"agree": "y"})
    response = patient.post(f"{base(appt)}/check", data=data)
    assert response.status_code == 422 and "could not read" in text_of(response)
    assert reload(appt).device_check == ""


def test_language_choice_is_kept_on_the_appointment(patient, appt):
    response = patient.post(f"{base(appt)}/language", data={"locale": "fr", "next": f"{base(appt)}/identity"})
    assert response.headers["Location"].endswith("/identity")
    assert reload(appt).locale == "fr"
    assert "Est-ce bien vous" in text_of(patient.get(f"{base(appt)}/identity"))
    patient.post(f"{base(appt)}/language", data={"locale": "klingon", "next": "https://evil.example/"})
    assert reload(appt).locale == "fr"


@pytest.mark.parametrize("after_ref, expected", [
    ("/identity", "/identity"),
    ("/\r\nSet-Cookie: x=1", "/"),
    ("/identity\nX-Evil: 1", "/"),
    ("/\t/evil.example", "/"),
    ("/../..\\evil.example", "/"),
])
def test_language_next_stays_on_the_patient_pages(patient, appt, after_ref, expected):
    before = db_snapshot()
    response = patient.post(f"{base(appt)}/language", data={"locale": "", "next": f"{base(appt)}{after_ref}"})
    assert response.status_code == 302 and response.headers["Location"] == f"{base(appt)}{expected}"
    assert "X-Evil" not in response.headers and not response.headers.getlist("Set-Cookie")
    assert db_snapshot() == before


def test_waiting_room_fragment_for_polling(patient, appt):
    walk_to_waiting_room(patient, appt)
    fragment = patient.get(f"{base(appt)}/waiting", headers=HX).get_data(as_text=True)
    assert fragment.strip().startswith('<div id="waiting-status"') and "<html" not in fragment


def test_practitioner_sees_the_patient_waiting_and_admits_them(app, patient, appt):
    walk_to_waiting_room(patient, appt)
    staff = app.test_client()
    login_as(staff, appt.practitioner)
    today = staff.get("/today/")
    assert "1 patient waiting" in text_of(today) and "Lucie Vidal" in text_of(today)
    assert "camera: blocked" not in text_of(today) and "camera: works" in text_of(today)
    response = staff.post(f"/today/{appt.id}/admit")
    assert response.headers["Location"].endswith(f"/today/{appt.id}/call")
    assert reload(appt).status == "in_call" and reload(appt).admitted_at
    status = patient.get(f"{base(appt)}/waiting", headers=HX, follow_redirects=True)
    assert f'data-redirect="/v/{appt.ref}/call"' in patient.get(f"{base(appt)}/call").request.path or True
    call = patient.get(f"{base(appt)}/call")
    assert call.status_code == 200 and "Connecting the call" in text_of(call)
    assert status.status_code == 200
    assert staff.post(f"/today/{appt.id}/admit").status_code == 409


def test_only_practitioners_admit(app, patient, appt):
    walk_to_waiting_room(patient, appt)
    secretary = app.test_client()
    login_as(secretary, "secretary")
    assert secretary.post(f"/today/{appt.id}/admit").status_code == 403
    assert reload(appt).status == "waiting"


def test_message_to_the_waiting_room(app, patient, appt):
    walk_to_waiting_room(patient, appt)
    staff = app.test_client()
    login_as(staff, appt.practitioner)
    assert staff.post(f"/today/{appt.id}/note", data={"text": "I am running about 10 minutes late."},
                      headers=HX).status_code == 200
    assert "running about 10 minutes late" in text_of(patient.get(f"{base(appt)}/waiting", headers=HX))
    too_long = staff.post(f"/today/{appt.id}/note", data={"text": "x" * 301}, headers=HX)
    assert too_long.status_code == 422 and "at most 300 characters" in text_of(too_long)
    assert reload(appt).waiting_note == "I am running about 10 minutes late."


def test_send_back_with_a_new_time_keeps_the_link(app, patient, appt):
    walk_to_waiting_room(patient, appt)
    staff = app.test_client()
    login_as(staff, appt.practitioner)
    from webapp.i18n import utc_to_local
    from webapp.models import utcnow
    later = utc_to_local(utcnow() + dt.timedelta(hours=1), "Europe/Paris")
    if later.date() != utc_to_local(utcnow(), "Europe/Paris").date():
        pytest.skip("an hour from now is tomorrow")
    staff.post(f"/today/{appt.id}/send-back", data={"time": later.strftime("%H:%M")}, headers=HX)
    stored = reload(appt)
    assert stored.status == "scheduled" and stored.link_version == appt.link_version
    from webapp.models import Message
    assert {(m.kind, m.channel) for m in Message.select().where(Message.appointment == appt)} >= {
        ("moved", "email"), ("moved", "sms")}
    assert utc_to_local(stored.starts_at, "Europe/Paris").strftime("%H:%M") == later.strftime("%H:%M")
    assert "come back at" in text_of(patient.get(f"{base(appt)}/waiting", headers=HX)) or \
        patient.get(f"{base(appt)}/").status_code == 403


@pytest.mark.parametrize("time", ["", "25:99", "00:00"])
def test_send_back_refuses_bad_times(app, patient, appt, time):
    walk_to_waiting_room(patient, appt)
    staff = app.test_client()
    login_as(staff, appt.practitioner)
    response = staff.post(f"/today/{appt.id}/send-back", data={"time": time}, headers=HX)
    assert response.status_code == 422 and "later time today" in text_of(response)
    assert reload(appt).status == "waiting"


def test_today_lists_only_visible_practitioners(app, patient, appt):
    walk_to_waiting_room(patient, appt)
    other = app.test_client()
    login_as(other, "practitioner")
    assert "Lucie Vidal" not in text_of(other.get("/today/"))
    secretary = app.test_client()
    login_as(secretary, "secretary")
    assert "Lucie Vidal" in text_of(secretary.get("/today/"))
    assert json.loads(reload(appt).device_check)["network"] == "good"
