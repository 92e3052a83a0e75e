"""The patient's way in over HTTP: language, identity, consent, device check, waiting room, admission."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from conftest import HX, db_snapshot, holding_link, login_as, make_appointment, make_patient, make_user, text_of
from webapp import events
from webapp.models import Appointment, AuditEvent, User, WayInOver
from webapp.access import patient_link_url
from webapp.visit.bridge import end_call


@pytest.fixture
def appt(app):
    return make_appointment(starts_in=dt.timedelta(minutes=5),
                            patient=make_patient(first_name="Lucie", last_name="Vidal", birth_date=dt.date(1980, 4, 2)))


@pytest.fixture
def patient(app, appt):
    """A test client holding the patient's cookie for ``appt``."""
    return holding_link(app, appt)


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


@pytest.mark.parametrize("data, field", [
    ({"birth_date": "1980-04-02"}, "confirm"),
    ({"confirm": "y", "birth_date": ""}, "birth_date"),
    ({"confirm": "y", "birth_date": "1980-04-03"}, "birth_date"),
])
def test_an_identity_error_is_linked_to_its_field(patient, appt, data, field):
    """A screen reader on the field hears that it is wrong and why; the other field is left alone."""
    html = patient.post(f"{base(appt)}/identity", data=data).get_data(as_text=True)
    named = re.search(r"<input[^>]*\bname=\"%s\"[^>]*>" % field, html).group(0)
    other = re.search(r"<input[^>]*\bname=\"%s\"[^>]*>" % ({"confirm", "birth_date"} - {field}).pop(), html).group(0)
    assert 'aria-invalid="true"' in named and f"{field}-error" in named and 'aria-invalid' not in other
    assert re.search(r'<p class="error" id="%s-error" role="alert">' % field, html)


def test_a_wrong_birth_date_says_how_many_tries_are_left(patient, appt):
    first = patient.post(f"{base(appt)}/identity", data={"confirm": "y", "birth_date": "1999-01-01"})
    assert "You have 2 tries left before this link is locked." in text_of(first)
    second = patient.post(f"{base(appt)}/identity", data={"confirm": "y", "birth_date": "1999-01-01"})
    assert "You have 1 try left before this link is locked." in text_of(second)


def test_tries_left_in_french(app, appt):
    Appointment.update(locale="fr").where(Appointment.id == appt.id).execute()
    patient = holding_link(app, appt)
    response = patient.post(f"{base(appt)}/identity", data={"confirm": "y", "birth_date": "1999-01-01"})
    assert "Il vous reste 2 essais avant que ce lien soit bloqué." in text_of(response)


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
    with events.subscribe(events.today_channel(appt.practitioner_id)) as day:
        declined = patient.post(f"{base(appt)}/consent", data={"decline": "1"})
        assert day.get(timeout=1) == events.REFRESH          # the practitioner's open day page re-renders now
    assert "No teleconsultation without your consent" in text_of(declined)
    assert "sees on their screen that you declined" in text_of(declined)
    assert reload(appt).consent_declined
    assert patient.get(f"{base(appt)}/check").headers["Location"].endswith("/consent")
    staff = app.test_client()
    login_as(staff, appt.practitioner)
    assert "consent declined" in text_of(staff.get("/today/"))
    day = reload(appt).starts_at.date().isoformat()
    assert "Consent declined" in text_of(staff.get(f"/agenda/?view=day&date={day}"))


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


# Once the patient is let in, the way in is part of the visit's record; once closed, the link opens the space.

def admitted(app, patient, appt):
    walk_to_waiting_room(patient, appt)
    staff = app.test_client()
    login_as(staff, appt.practitioner)
    assert staff.post(f"/today/{appt.id}/admit").status_code == 302
    return reload(appt)


def way_in_record(appt):
    stored = reload(appt)
    return (stored.identity_confirmed_at, stored.identity_failures, stored.consent_at, stored.consent_version,
            stored.consent_locale, stored.device_check)


def patient_actions(appt):
    return [e.action for e in AuditEvent.select().where(AuditEvent.appointment == appt.id, AuditEvent.actor == "patient")]


def test_after_admission_identity_consent_and_check_are_frozen(app, patient, appt):
    admitted(app, patient, appt)
    before, actions = way_in_record(appt), patient_actions(appt)
    for step in ("identity", "consent", "check", "waiting"):
        response = patient.get(f"{base(appt)}/{step}")
        assert response.status_code == 302 and response.headers["Location"].endswith(f"{base(appt)}/call"), step
    for step, data in [("consent", {"decline": "1"}), ("consent", {"agree": "y"}),
                       ("identity", {"confirm": "y", "birth_date": "1999-01-01"}),
                       ("check", {"camera": "denied", "microphone": "ok", "speaker": "ok", "network": "poor"})]:
        response = patient.post(f"{base(appt)}/{step}", data=data)
        assert response.status_code == 302 and response.headers["Location"].endswith(f"{base(appt)}/call"), step
    assert patient_actions(appt) == actions
    assert "Connecting the call" in text_of(patient.get(f"{base(appt)}/consent", follow_redirects=True))
    assert way_in_record(appt) == before     # the call page itself is audited (visit.call_viewed)


def test_closed_visit_link_opens_only_the_space_and_changes_nothing(app, patient, appt):
    admitted(app, patient, appt).close(appt.practitioner)
    before, actions = way_in_record(appt), patient_actions(appt)
    assert before[3] == "2026-11"
    # The finding: declining consent on a closed visit, inside the link's window, replaced the record.
    declined = patient.post(f"{base(appt)}/consent", data={"decline": "1"})
    assert declined.status_code == 409 and "No teleconsultation without your consent" not in text_of(declined)
    for step, data in [("identity", {"confirm": "y", "birth_date": "1999-01-01"}), ("consent", {"agree": "y"}),
                       ("check", {"camera": "ok", "microphone": "ok", "speaker": "ok", "network": "good"}),
                       ("files", {})]:
        assert patient.post(f"{base(appt)}/{step}", data=data).status_code == 409, step
    for path in ("identity", "consent", "check", "waiting", "locked", "ping", "call", "files/1", ""):
        response = patient.get(f"{base(appt)}/{path}")
        assert response.status_code == 302 and response.headers["Location"].endswith(f"{base(appt)}/space"), path
    space = patient.get(f"{base(appt)}/consent", follow_redirects=True)
    assert space.status_code == 200 and space.request.path == f"{base(appt)}/space"
    assert way_in_record(appt) == before and reload(appt).status == "closed"
    assert [a for a in patient_actions(appt) if a != "patient.space_viewed"] == actions
    # The space still speaks the patient's language.
    patient.post(f"{base(appt)}/language", data={"locale": "fr", "next": f"{base(appt)}/space"})
    assert reload(appt).locale == "fr"


def test_the_model_refuses_to_rewrite_the_way_in_once_admitted(app, patient, appt):
    walk_to_waiting_room(patient, appt)
    stale = reload(appt)                      # loaded before the practitioner lets the patient in
    reload(appt).admit(appt.practitioner)
    before = way_in_record(appt)
    for step in (lambda: stale.decline_consent("en"), lambda: stale.give_consent("x", "en"),
                 lambda: stale.record_device_check("{}"), stale.confirm_identity, stale.fail_identity):
        with pytest.raises(WayInOver):
            step()
    assert way_in_record(appt) == before
    assert stale.status == "in_call"          # the refused object now shows the row as it is
    assert stale.choose_locale("fr") and reload(appt).locale == "fr"   # not part of the record


def test_identity_is_confirmed_per_browser(app, patient, appt, clock):
    walk_to_waiting_room(patient, appt)
    first = reload(appt).identity_confirmed_at
    clock.shift(dt.timedelta(minutes=2))
    # The same link opened in another browser: its holder must say who they are again.
    other = app.test_client()
    with app.test_request_context():
        assert other.get(patient_link_url(appt).replace("https://cabinet.test", "")).status_code == 302
    entry = other.get(f"{base(appt)}/", follow_redirects=True)
    assert entry.request.path == f"{base(appt)}/identity" and "I am Lucie Vidal" in text_of(entry)
    for step in ("consent", "check", "waiting"):
        assert other.get(f"{base(appt)}/{step}").headers["Location"].endswith("/identity"), step
    wrong = other.post(f"{base(appt)}/identity", data={"confirm": "y", "birth_date": "1999-01-01"})
    assert wrong.status_code == 422 and reload(appt).identity_failures == 1
    right = other.post(f"{base(appt)}/identity", data={"confirm": "y", "birth_date": "1980-04-02"})
    assert right.headers["Location"].endswith("/waiting")   # consent and check were already given
    # The appointment keeps the first confirmation's time; each confirmation is in the audit trail.
    assert reload(appt).identity_confirmed_at == first
    assert patient_actions(appt).count("patient.identity_confirmed") == 2
    # The first browser is not asked again.
    assert "You are in the waiting room" in text_of(patient.get(f"{base(appt)}/waiting"))


def test_identity_mark_of_another_appointment_or_link_version_does_not_count(app, patient, appt):
    from webapp.access import IDENTITY_COOKIE, link_expires_at
    from webapp.tokens import make_identity_cookie
    other = make_appointment(starts_in=dt.timedelta(minutes=5))
    for appointment_id, version in ((other.id, appt.link_version), (appt.id, appt.link_version + 1)):
        patient.set_cookie(IDENTITY_COOKIE, make_identity_cookie("test-secret", appointment_id, version,
                                                                 link_expires_at(appt)), path=f"{base(appt)}/")
        assert patient.get(f"{base(appt)}/consent").headers["Location"].endswith("/identity")


def test_the_device_check_can_be_run_the_day_before(app):
    appt = make_appointment(starts_in=dt.timedelta(days=1))
    patient = holding_link(app, appt)
    early = patient.get(f"{base(appt)}/")
    assert early.status_code == 403 and "It is a little early" in text_of(early)
    assert f'href="{base(appt)}/device-test"' in early.get_data(as_text=True)

    before = db_snapshot()
    page = patient.get(f"{base(appt)}/device-test")
    text = text_of(page)
    assert page.status_code == 200 and "Check your camera and microphone" in text
    assert "A test only: nothing is sent to your practitioner" in text
    assert "Continue to the waiting room" not in text and "Step 3 of 3" not in text
    assert patient.get(f"{base(appt)}/ping").status_code == 204      # the connection test answers too
    assert db_snapshot() == before
    # The way in itself still waits for its window.
    assert patient.get(f"{base(appt)}/check").headers["Location"].endswith(f"{base(appt)}/")


def test_today_shows_an_ended_call_as_ended(app, client, appt):
    doctor = login_as(client, appt.practitioner)
    appt.confirm_identity()
    appt.give_consent("1", "en")
    appt.record_device_check('{"camera": "ok"}')
    appt.enter_waiting_room()
    appt.admit(doctor)
    assert "Lucie Vidal In call" in text_of(client.get("/today/"))

    with events.subscribe(events.today_channel(doctor.id)) as day:
        end_call(appt.id, doctor.id)             # the practitioner hung up, from the call's socket
        assert day.get(timeout=1) == events.REFRESH      # an open "today" page re-renders now
    text = text_of(client.get("/today/"))
    assert "Lucie Vidal Call ended" in text and "In call" not in text


def test_the_practice_phone_is_there_when_the_patient_may_need_it(app, patient, appt):
    """Waiting, checking the camera, a link that no longer works: 'call the practice', with its
    number as a link a phone dials (the practitioner's profile gives it). Without one, no line."""
    assert "Call the practice" not in text_of(walk_to_waiting_room(patient, appt))
    User.update(practice_phone="+33478123456").where(User.id == appt.practitioner_id).execute()
    for page in (patient.get(f"{base(appt)}/waiting"), patient.get(f"{base(appt)}/check")):
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and "Need help? Call the practice: 04 78 12 34 56" in text_of(page)
        assert 'href="tel:+33478123456"' in html
    appt.cancel(make_user("secretary"))
    cancelled = patient.get(f"{base(appt)}/")
    assert cancelled.status_code == 410 and "Call the practice: 04 78 12 34 56" in text_of(cancelled)
