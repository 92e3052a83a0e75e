"""Patient links: every token case, the cookie exchange, the window, and no leaks."""
from __future__ import annotations

import datetime as dt
import time

import pytest

from conftest import make_appointment, make_user, text_of
from webapp import tokens
from webapp.models import Appointment, AuditEvent, utcnow
from webapp.access import COOKIE, patient_link_url

SECRET = "test-secret"


def path_of(link: str) -> str:
    return link.replace("https://cabinet.test", "")


# Pure token functions.

def test_token_round_trip():
    token = tokens.make_patient_token(SECRET, 12, 3, time.time() + 60)
    assert tokens.read_patient_token(SECRET, token) == tokens.PatientLink(12, 3)


@pytest.mark.parametrize("token, problem", [
    (tokens.make_patient_token(SECRET, 1, 1, time.time() - 1), tokens.TokenProblem.EXPIRED),
    (tokens.make_patient_token("another-secret", 1, 1, time.time() + 60), tokens.TokenProblem.MALFORMED),
    (tokens.make_patient_cookie(SECRET, 1, 1, time.time() + 60), tokens.TokenProblem.MALFORMED),   # wrong purpose
    (tokens.make_room_ticket(SECRET, "room", "patient", "p1"), tokens.TokenProblem.MALFORMED),     # wrong purpose
    ("", tokens.TokenProblem.MALFORMED),
    ("x" * 600, tokens.TokenProblem.MALFORMED),
    ("not.a.token", tokens.TokenProblem.MALFORMED),
])
def test_token_problems(token, problem):
    assert tokens.read_patient_token(SECRET, token) is problem


def test_tampered_token_is_refused():
    token = tokens.make_patient_token(SECRET, 1, 1, time.time() + 60)
    payload, signature = token.rsplit(".", 1)
    forged = tokens.make_patient_token(SECRET, 2, 1, time.time() + 60).rsplit(".", 1)[0] + "." + signature
    assert tokens.read_patient_token(SECRET, forged) is tokens.TokenProblem.MALFORMED
    flipped = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    assert tokens.read_patient_token(SECRET, flipped) is tokens.TokenProblem.MALFORMED


def test_room_ticket_expires_quickly():
    ticket = tokens.make_room_ticket(SECRET, "r1", "practitioner", "u1", now=1000)
    assert tokens.read_room_ticket(SECRET, ticket, now=1001) == tokens.RoomTicket("r1", "practitioner", "u1")
    assert tokens.read_room_ticket(SECRET, ticket, now=1000 + tokens.TICKET_SECONDS) is tokens.TokenProblem.EXPIRED


# Through the app.

def open_link(client, appt):
    return client.get(path_of(patient_link_url(appt)))


def test_valid_link_is_exchanged_for_a_cookie_and_a_clean_address(app, client):
    appt = make_appointment(starts_in=dt.timedelta(minutes=5))
    with app.test_request_context():
        link = patient_link_url(appt)
    assert link.startswith("https://cabinet.test/p/")
    response = client.get(path_of(link))
    assert response.status_code == 302
    assert response.headers["Location"] == f"/v/{appt.ref}/identity"      # the step due, in one redirect
    assert response.headers["Referrer-Policy"] == "no-referrer"
    cookie = client.get_cookie(COOKIE, path=f"/v/{appt.ref}/")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    page = client.get(response.headers["Location"])
    assert page.status_code == 200 and page.request.path == f"/v/{appt.ref}/identity"
    assert appt.practitioner.name in text_of(page)
    assert AuditEvent.get(AuditEvent.action == "patient.link_opened").appointment_id == appt.id


def test_cookie_does_not_open_another_appointment(app, client):
    mine = make_appointment(starts_in=dt.timedelta(minutes=5))
    other = make_appointment(starts_in=dt.timedelta(minutes=5))
    with app.test_request_context():
        client.get(path_of(patient_link_url(mine)))
    # Same cookie value sent to the other appointment's address.
    value = client.get_cookie(COOKIE, path=f"/v/{mine.ref}/").value
    client.set_cookie(COOKIE, value, path=f"/v/{other.ref}/")
    response = client.get(f"/v/{other.ref}/")
    assert response.status_code == 403
    assert other.practitioner.name not in text_of(response)


def test_unknown_and_known_addresses_without_cookie_look_the_same(client):
    appt = make_appointment(starts_in=dt.timedelta(minutes=5))
    known, unknown = client.get(f"/v/{appt.ref}/"), client.get("/v/0123456789abcdef01234567/")
    assert known.status_code == unknown.status_code == 403
    assert text_of(known) == text_of(unknown)
    assert "open the link" in text_of(known)


def link_page(app, client, appt):
    with app.test_request_context():
        first = open_link(client, appt)
    if first.status_code != 302:
        return first
    return client.get(first.headers["Location"], follow_redirects=True)


@pytest.mark.parametrize("starts_in, status, shown", [
    (dt.timedelta(minutes=10), 200, "Is this you?"),            # inside the window
    (dt.timedelta(minutes=-50), 200, "Is this you?"),           # still inside
    (dt.timedelta(minutes=16), 403, "It is a little early"),           # too early
    (dt.timedelta(days=3), 403, "It is a little early"),
    (dt.timedelta(minutes=-61), 403, "has passed"),                     # too late
])
def test_window(app, client, starts_in, status, shown):
    appt = make_appointment(starts_in=starts_in)
    response = link_page(app, client, appt)
    assert response.status_code == status
    assert shown in text_of(response)


def test_too_early_page_says_when_to_come_back(app, client):
    appt = make_appointment(starts_in=dt.timedelta(hours=3))
    text = text_of(link_page(app, client, appt))
    opens = (appt.starts_at - dt.timedelta(minutes=15)).replace(tzinfo=dt.timezone.utc)
    paris = opens.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert paris.strftime("%H:%M").lstrip("0") in text or paris.strftime("%H:%M") in text


def test_practice_window_settings_apply(app, client):
    appt = make_appointment(starts_in=dt.timedelta(minutes=25))
    appt.practice.link_opens_minutes_before = 30
    appt.practice.save()
    assert "Is this you?" in text_of(link_page(app, client, appt))


def test_expired_link(app, client):
    appt = make_appointment(starts_in=dt.timedelta(days=-30))
    response = link_page(app, client, appt)
    assert response.status_code == 410 and "expired" in text_of(response)


def test_replaced_link_and_its_cookie_stop_working(app, client):
    appt = make_appointment(starts_in=dt.timedelta(minutes=5))
    with app.test_request_context():
        old = path_of(patient_link_url(appt))
    assert client.get(old).status_code == 302
    appt.renew_link(make_user("secretary"))
    replaced = client.get(old)
    assert replaced.status_code == 410 and "replaced" in text_of(replaced)
    via_cookie = client.get(f"/v/{appt.ref}/")
    assert via_cookie.status_code == 410 and "newer link" in text_of(via_cookie)


def test_cancelled_link(app, client):
    appt = make_appointment(starts_in=dt.timedelta(minutes=5))
    appt.cancel(make_user("secretary"))
    response = link_page(app, client, appt)
    assert response.status_code == 410 and "cancelled" in text_of(response)


@pytest.mark.parametrize("token", ["garbage", "a" * 100, "eyJhIjoxLCJ2IjoxLCJlIjo5OTk5OTk5OTk5fQ.forged"])
def test_forged_link_reveals_nothing(client, token):
    make_appointment(starts_in=dt.timedelta(minutes=5))
    response = client.get(f"/p/{token}")
    assert response.status_code == 404
    assert "does not work" in text_of(response)
    assert client.get_cookie(COOKIE) is None


def test_token_of_a_deleted_appointment_looks_forged(client):
    token = tokens.make_patient_token(SECRET, 987654, 1, time.time() + 3600)
    response = client.get(f"/p/{token}")
    assert response.status_code == 404 and "does not work" in text_of(response)


def test_patient_pages_speak_the_patient_language(app, client):
    appt = make_appointment(starts_in=dt.timedelta(minutes=5))
    appt.locale = "fr"
    appt.save()
    assert "Votre téléconsultation" in text_of(link_page(app, client, appt))
    english = make_appointment(starts_in=dt.timedelta(hours=5))
    assert "It is a little early" in text_of(link_page(app, client, english))


def test_problem_pages_follow_the_browser_language(client):
    response = client.get("/p/garbage", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert "Ce lien ne fonctionne pas" in text_of(response)
    response = client.get("/p/garbage", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "This link does not work" in text_of(response)


def test_link_window_is_measured_from_utc(app):
    from webapp.access import window
    appt = make_appointment(starts_in=dt.timedelta(hours=1))
    assert window(appt, appt.starts_at - dt.timedelta(minutes=16)) == "early"
    assert window(appt, appt.starts_at - dt.timedelta(minutes=15)) == "open"
    assert window(appt, appt.starts_at + dt.timedelta(minutes=60)) == "open"
    assert window(appt, appt.starts_at + dt.timedelta(minutes=61)) == "late"
    assert Appointment.get_by_id(appt.id).status == "scheduled"
    assert utcnow() < appt.starts_at
