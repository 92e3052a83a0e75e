"""The lost-link page: the same answer for everyone, a message only on a match, to the contact on file."""
from __future__ import annotations

import datetime as dt
import re

import pytest

from conftest import HX, make_app, make_appointment, make_patient, make_practice, text_of
from smtp_helpers import smtp_server
from webapp import notify
from webapp.auth import limiter
from webapp.models import Appointment, AuditEvent, Message, db

BASE = "https://cabinet.test"


def without_csrf(response) -> str:
    """The page as sent, less the CSRF token, which is signed with the time of each request."""
    return re.sub(r'"X-CSRFToken": "[^"]*"', "", response.get_data(as_text=True))


def ask(client, contact, **headers):
    return client.post("/lost-link", data={"contact": contact}, headers=headers)


def test_the_page_has_a_form(client):
    page = client.get("/lost-link")
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    assert "Lost your link?" in text_of(page) and 'name="contact"' in page.get_data(as_text=True)


def test_a_match_and_no_match_get_the_same_page(app, client):
    appt = make_appointment(patient=make_patient(email="marie.curie@example.org"), starts_in=dt.timedelta(days=1))
    matched = ask(client, "marie.curie@example.org")
    unmatched = ask(client, "nobody@example.org")
    assert matched.status_code == unmatched.status_code == 200
    assert without_csrf(matched) == without_csrf(unmatched)
    assert "we have sent its link again to the contact details your practice has on file" in text_of(matched)
    [m] = Message.select()
    assert (m.kind, m.channel, m.recipient, m.appointment_id) == ("link_resent", "email", appt.contact_email, appt.id)
    assert AuditEvent.select().where(AuditEvent.action == "patient.link_resent_requested").count() == 1


def test_fragment_for_htmx(client):
    response = ask(client, "nobody@example.org", **HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body and 'id="lost-link"' in body


def test_it_goes_to_the_contact_on_file_spelled_as_on_file(app, client):
    appt = make_appointment(patient=make_patient(email="Jean.Dupont@Example.org", phone="+33611223344"),
                            starts_in=dt.timedelta(hours=3))
    ask(client, "  jean.dupont@EXAMPLE.org ")
    ask(client, "06 11 22 33 44")
    rows = {m.channel: m.recipient for m in Message.select()}
    assert rows == {"email": "Jean.Dupont@Example.org", "sms": "+33611223344"}
    assert all(m.appointment_id == appt.id for m in Message.select())


def test_the_old_link_keeps_working(app, client):
    appt = make_appointment(starts_in=dt.timedelta(days=2), notify_sms=False)
    ask(client, appt.contact_email)
    assert Appointment.get_by_id(appt.id).link_version == appt.link_version
    [m] = Message.select()
    link = next(w for w in m.body.split() if w.startswith(BASE + "/p/"))
    assert app.test_client().get(link.removeprefix(BASE)).status_code == 302


@pytest.mark.parametrize("fields", [
    {"status": "cancelled"},
    {"status": "closed"},
    {"starts_in": dt.timedelta(hours=-3)},           # long past the join window
])
def test_no_message_for_appointments_that_are_over(app, client, fields):
    appt = make_appointment(**{"starts_in": dt.timedelta(days=1), **fields})
    response = ask(client, appt.contact_email)
    assert response.status_code == 200 and not Message.select().exists()


def test_an_appointment_still_in_its_window_matches(app, client):
    appt = make_appointment(starts_in=dt.timedelta(minutes=-20), notify_sms=False)
    ask(client, appt.contact_email)
    assert Message.select().count() == 1


def test_another_practice_contact_never_matches_and_asking_twice_sends_once(app, client):
    appt = make_appointment(starts_in=dt.timedelta(days=1))
    ask(client, appt.contact_email)
    ask(client, appt.contact_email)
    assert Message.select().where(Message.channel == "email").count() == 1


@pytest.mark.parametrize("contact, error", [
    ("", "Enter your e-mail address or mobile number."),
    ("   ", "Enter your e-mail address or mobile number."),
    ("marie@", "Enter a valid e-mail address, like name@example.fr."),
    ("@example.org", "Enter a valid e-mail address, like name@example.fr."),
    ("12", "Enter a valid e-mail address or mobile number, like 06 12 34 56 78."),
    ("marie curie", "Enter a valid e-mail address or mobile number, like 06 12 34 56 78."),
    ("x" * 300 + "@example.org", "At most 254 characters."),
])
def test_bad_contact_input(app, client, contact, error):
    make_appointment(starts_in=dt.timedelta(days=1))
    response = ask(client, contact, **HX)
    assert response.status_code == 422
    assert error in text_of(response)
    assert not Message.select().exists()


def test_link_problem_page_points_to_the_lost_link_page(client):
    page = client.get("/p/not-a-token")
    assert page.status_code == 404
    assert 'href="/lost-link"' in page.get_data(as_text=True)


def test_lost_link_end_to_end_through_smtp(app, client):
    appt = make_appointment(starts_in=dt.timedelta(days=1), notify_sms=False)
    with smtp_server() as smtp:
        app.config.update(smtp.config)
        ask(client, appt.contact_email)
        with app.app_context():
            assert notify.send_due()["sent"] == 1
        mail = smtp.wait_for(1)[0]
    assert smtp.collector.envelopes[0][1] == [appt.contact_email]
    assert mail["Subject"] == "Your link for the teleconsultation with Cabinet des Tilleuls"
    link = smtp.link_in(mail)
    assert app.test_client().get(link.removeprefix(BASE)).headers["Location"] == f"/v/{appt.ref}/"


def test_rate_limited(tmp_path):
    app = make_app(tmp_path, RATELIMIT_ENABLED=True)
    try:
        make_practice()
        limiter.reset()
        client = app.test_client()
        answers = [ask(client, f"nobody{i}@example.org").status_code for i in range(6)]
        assert answers == [200] * 5 + [429]
        assert client.get("/lost-link").status_code == 200          # reading the page is not limited
        assert not Message.select().exists()
    finally:
        limiter.reset()
        db.close()
