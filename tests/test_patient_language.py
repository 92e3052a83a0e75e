"""The patient's language: chosen on their pages, learnt from their browser, set by staff; used by
every page, e-mail, SMS, the closing message and the patient's copy of the report."""
from __future__ import annotations

import datetime as dt
import io

import pytest
from pypdf import PdfReader

from conftest import db_snapshot, holding_link, login_as, make_appointment, make_patient, make_user, text_of
from smtp_helpers import smtp_server
from webapp.access import patient_link_url
from webapp.models import Appointment, AuditEvent, Document, Message, Patient, Practice, utcnow
from webapp.storage import documents

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def french_practice(app):
    Practice.update(default_locale="fr").execute()
    return app


def reload(appt):
    return Appointment.get_by_id(appt.id)


def booked(**fields):
    """A French practice's appointment in 24 hours whose patient has no language on file yet."""
    fields.setdefault("patient", make_patient(first_name="Amira", last_name="Haddad", locale=""))
    fields.setdefault("locale", "")
    return make_appointment(practitioner=fields.pop("practitioner", None) or make_user(name="Dr Claire Martin"),
                            starts_in=dt.timedelta(days=1), notify_sms=False,
                            created_at=utcnow() - dt.timedelta(days=10), **fields)


def open_link(app, appt, **headers):
    """A browser that opens the patient's link (sending ``headers``), holding its cookie after."""
    browser = app.test_client()
    with app.test_request_context():
        link = patient_link_url(appt).replace("https://cabinet.test", "")
    assert browser.get(link, headers=headers).status_code == 302
    return browser


def pdf_text(document) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(documents().load(document.storage_key))).pages)


def close_the_visit(client, appt):
    """The practitioner fills the checklist, as without JavaScript, and closes the visit."""
    url = f"/visits/{appt.id}"
    assert client.post(f"{url}/report", data={"findings": "Toux", "decisions": "Repos", "prescriptions": ""}
                       ).status_code == 302
    assert client.post(f"{url}/documents", data={"kind": "prescription", "file": (io.BytesIO(PDF), "ordo.pdf")},
                       content_type="multipart/form-data").status_code == 302
    assert client.post(f"{url}/acts", data={"code": "TC", "fee": ""}).status_code == 302
    assert client.post(f"{url}/payment", data={"amount": "25"}).status_code == 302
    assert client.post(f"{url}/close").status_code == 302


def test_a_patient_who_switches_to_english_gets_everything_in_english(french_practice, client, runner, clock):
    app = french_practice
    doctor = make_user("practitioner", name="Dr Claire Martin", locale="fr")
    appt = booked(practitioner=doctor)
    patient = open_link(app, appt)
    assert "Il est un peu tôt" in text_of(patient.get(f"/v/{appt.ref}/"))       # the practice's language
    switched = patient.post(f"/v/{appt.ref}/language", data={"locale": "en", "next": f"/v/{appt.ref}/"})
    assert switched.status_code == 302 and switched.headers["Location"] == f"/v/{appt.ref}/"
    assert "It is a little early" in text_of(patient.get(f"/v/{appt.ref}/"))
    stored = reload(appt)
    assert (stored.locale, stored.locale_source) == ("en", "patient")
    assert Patient.get_by_id(appt.patient_id).locale == "en"          # their next appointment starts in English
    assert AuditEvent.select().where(AuditEvent.action == "patient.locale_chosen",
                                     AuditEvent.appointment == appt).count() == 1

    with smtp_server() as smtp:
        app.config.update(smtp.config)
        # The background sender's pass, without a request: the 24-hour reminder.
        result = runner.invoke(args=["send-due"])
        assert result.exit_code == 0 and "Reminders queued: 1; sent: 1;" in result.output, result.output
        reminder = smtp.wait_for(1)[0]
        assert reminder["Content-Language"] == "en"
        assert reminder["Subject"].startswith("Reminder: teleconsultation with Dr Claire Martin (Cabinet des Tilleuls)")
        assert "This is a reminder of your teleconsultation" in smtp.text_of(reminder)

        # The visit, then its closing by the practitioner, who works in French.
        clock.shift(dt.timedelta(days=1, minutes=-5))
        ref = f"/v/{appt.ref}"
        patient.post(f"{ref}/identity", data={"confirm": "y", "birth_date": "1970-05-17"})
        assert "I agree" in text_of(patient.get(f"{ref}/consent"))
        patient.post(f"{ref}/consent", data={"agree": "y"})
        patient.post(f"{ref}/check", data={"camera": "ok", "microphone": "ok", "speaker": "ok", "network": "good"})
        assert patient.get(f"{ref}/waiting").status_code == 200
        visit = reload(appt)
        assert (visit.status, visit.consent_locale) == ("waiting", "en")
        visit.admit(doctor)
        clock.shift(dt.timedelta(minutes=20))
        visit.end_call(doctor)
        login_as(client, doctor)
        close_the_visit(client, visit)
        closed = Message.get(Message.appointment == appt, Message.kind == "closed")
        assert closed.locale == "en"
        assert runner.invoke(args=["send-due"]).exit_code == 0
        mail = smtp.wait_for(2)[1]
    assert mail["Content-Language"] == "en" and mail["Subject"] == "Your documents from Cabinet des Tilleuls"
    assert "Your documents and the payment request are waiting in your personal space" in smtp.text_of(mail)

    copies = {d.kind: d for d in Document.select().where(Document.appointment == appt, Document.source == "report")}
    assert (copies["patient_report"].locale, copies["report"].locale) == ("en", "fr")
    with app.app_context():
        theirs, ours = pdf_text(copies["patient_report"]), pdf_text(copies["report"])
    assert "Teleconsultation report" in theirs and "Compte rendu" not in theirs
    assert "Compte rendu de téléconsultation" in ours and "Teleconsultation report" not in ours


def test_the_browser_fills_an_empty_appointment_language(french_practice):
    appt = booked()
    patient = open_link(french_practice, appt, **{"Accept-Language": "en-GB,en;q=0.9,fr;q=0.5"})
    stored = reload(appt)
    assert (stored.locale, stored.locale_source, stored.locale_origin) == ("en", "browser", "browser")
    assert stored.effective_locale("fr") == "en"
    assert Patient.get_by_id(appt.patient_id).locale == ""       # a guess, not the patient's choice
    assert AuditEvent.select().where(AuditEvent.action == "patient.locale_detected").count() == 1
    # Another browser later asks for French: the appointment keeps the language it learnt first.
    open_link(french_practice, appt, **{"Accept-Language": "fr"})
    assert reload(appt).locale == "en"
    assert "It is a little early" in text_of(patient.get(f"/v/{appt.ref}/", headers={"Accept-Language": "fr"}))
    # The patient's record, once it has a language, comes before the browser's guess.
    Patient.update(locale="fr").where(Patient.id == appt.patient_id).execute()
    assert reload(appt).effective_locale("en") == "fr" and reload(appt).locale_origin == "record"


@pytest.mark.parametrize("appointment, record, asked, kept", [
    ({"locale": "fr", "locale_source": "staff"}, "", "en", ("fr", "staff")),   # staff chose
    ({}, "fr", "en", ("", "")),                                                # the record has one
    ({}, "", "qaa-QA,qaa;q=0.9", ("", "")),                                    # a private-use tag: no catalogue ever
])
def test_the_browser_does_not_override_a_language_on_file(french_practice, appointment, record, asked, kept):
    appt = booked(patient=make_patient(locale=record), **appointment)
    open_link(french_practice, appt, **{"Accept-Language": asked})
    stored = reload(appt)
    assert (stored.locale, stored.locale_source) == kept
    assert not AuditEvent.select().where(AuditEvent.action == "patient.locale_detected").exists()


def edit_form(appt, **extra):
    local = (appt.starts_at + dt.timedelta(hours=2))         # Paris in summer
    return {"patient_id": str(appt.patient_id), "practitioner": str(appt.practitioner_id),
            "date": local.date().isoformat(), "time": local.strftime("%H:%M"), "duration": "20", "mode": "video",
            "send_by": "email", "motive": "Suivi", **extra}


def test_staff_see_and_change_the_language(french_practice, client):
    appt = booked()
    secretary = login_as(client, "secretary", locale="en")
    assert "Language Français · the practice's, until the patient opens the link" in text_of(
        client.get(f"/agenda/{appt.id}"))
    assert '<option selected value="">Automatic</option>' in client.get(f"/agenda/{appt.id}/edit").get_data(
        as_text=True)
    response = client.post(f"/agenda/{appt.id}/edit", data=edit_form(appt, language="en"))
    assert response.status_code == 302
    assert "Language English · chosen by the practice" in text_of(client.get(f"/agenda/{appt.id}"))
    stored = reload(appt)
    assert (stored.locale, stored.locale_source, stored.starts_at) == ("en", "staff", appt.starts_at)
    changed = AuditEvent.get(AuditEvent.action == "appointment.language_changed")
    assert changed.user_id == secretary.id and changed.appointment_id == appt.id and changed.detail == ""
    # Used: the next message to the patient is in English, though the practice speaks French.
    assert client.post(f"/agenda/{appt.id}/link").status_code == 302
    resent = Message.get(Message.kind == "link_resent")
    assert resent.locale == "en" and resent.subject.startswith("Your link for the teleconsultation")
    assert Patient.get_by_id(appt.patient_id).locale == ""          # the record is the patient's to set

    # The patient then picks French on their page: their choice comes after, and wins.
    patient = holding_link(french_practice, reload(appt))
    patient.post(f"/v/{appt.ref}/language", data={"locale": "fr", "next": f"/v/{appt.ref}/"})
    assert "Language Français · chosen by the patient" in text_of(client.get(f"/agenda/{appt.id}"))
    # Saving the form unchanged keeps the patient's choice as theirs, and records no change.
    before = AuditEvent.select().where(AuditEvent.action == "appointment.language_changed").count()
    assert client.post(f"/agenda/{appt.id}/edit", data=edit_form(appt, language="fr")).status_code == 302
    assert (reload(appt).locale, reload(appt).locale_source) == ("fr", "patient")
    assert AuditEvent.select().where(AuditEvent.action == "appointment.language_changed").count() == before
    # Back to automatic: the record, else the browser, else the practice.
    assert client.post(f"/agenda/{appt.id}/edit", data=edit_form(appt, language="")).status_code == 302
    assert (reload(appt).locale, reload(appt).locale_source) == ("", "")
    assert reload(appt).effective_locale("fr") == "fr" and reload(appt).locale_origin == "record"


def test_a_booking_and_an_instant_visit_take_the_language_chosen(french_practice, client):
    me = login_as(client, "practitioner", locale="en")
    patient = make_patient(locale="fr")
    day = (utcnow() + dt.timedelta(days=2)).date()
    assert client.post("/agenda/new", data={
        "patient_id": str(patient.id), "practitioner": str(me.id), "date": day.isoformat(), "time": "10:00",
        "duration": "20", "mode": "video", "send_by": "email", "motive": "", "language": "en"}).status_code == 302
    appt = Appointment.get(Appointment.patient == patient)
    assert (appt.locale, appt.locale_source) == ("en", "staff")
    assert Message.get(Message.appointment == appt).locale == "en"
    assert client.post("/agenda/instant", data={"email": "now@example.org", "practitioner": str(me.id),
                                                "mode": "video", "language": ""}).status_code == 302
    instant = Appointment.get(Appointment.kind == "instant")
    assert (instant.locale, instant.locale_source) == ("", "")
    assert Message.get(Message.appointment == instant).locale == "fr"        # the practice's


@pytest.mark.parametrize("value", ["xx", "klingon", "en-US", "fr\n", "<script>"])
def test_staff_bad_language_refused_and_nothing_changed(french_practice, client, value):
    appt = booked()
    me = login_as(client, appt.practitioner)
    before = db_snapshot()
    for url, data in [(f"/agenda/{appt.id}/edit", edit_form(appt, language=value)),
                      ("/agenda/new", edit_form(appt, practitioner=str(me.id), language=value)),
                      ("/agenda/instant", {"email": "now@example.org", "practitioner": str(me.id), "mode": "video",
                                           "language": value})]:
        response = client.post(url, data=data)
        assert response.status_code == 422, url
        assert "Choose a language from the list." in text_of(response), url
    assert db_snapshot() == before


@pytest.mark.parametrize("value", ["xx", "klingon", "en-US", "../fr", "fr\r\nX: 1"])
def test_patient_bad_language_refused_and_nothing_changed(french_practice, value):
    appt = booked()
    patient = holding_link(french_practice, appt)
    before = db_snapshot()
    response = patient.post(f"/v/{appt.ref}/language", data={"locale": value, "next": f"/v/{appt.ref}/"})
    assert response.status_code == 422
    text = text_of(response)
    assert "Cette langue n’est pas disponible" in text and "Rien n’a été modifié" in text
    # The language list on the page sends the patient back where they were, not to this answer.
    assert f'name="next" value="/v/{appt.ref}/"' in response.get_data(as_text=True)
    assert db_snapshot() == before
