"""Notifications: the outbox, e-mail through a real SMTP server, SMS backends, retries, reminders."""
from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
import urllib.parse

import pytest
from icalendar import Calendar

from conftest import HX, login_as, make_app, make_appointment, make_patient, make_practice, make_user, text_of, signed_in
from smtp_helpers import free_port, smtp_server
from webapp import config as settings, notify
from webapp.notify import outbox
from webapp.models import Appointment, AuditEvent, Message, Practice, db, utcnow

MOTIVE = "Douleur thoracique"
BASE = "https://cabinet.test"
# A fixed future slot: Tuesday 5 March 2030, 09:00 UTC, 10:00 in Paris.
START = dt.datetime(2030, 3, 5, 9, 0)


def plain(text: str) -> str:
    """Babel's narrow no-break spaces (10:00 AM) as plain ones, for readable asserts."""
    return text.replace("\u202f", " ").replace("\xa0", " ")


def book(app, **fields):
    fields.setdefault("motive", MOTIVE)
    fields.setdefault("practitioner", make_user("practitioner", name="Dr Claire Martin"))
    return make_appointment(**fields)


def queue(app, appt, kind, **kwargs):
    with app.app_context():
        return notify.queue(Appointment.get_by_id(appt.id), kind, **kwargs)


def send_due(app, now=None):
    with app.app_context():
        return notify.send_due(now)


def reminders(app, now):
    with app.app_context():
        return notify.queue_due_reminders(now)


def message(m) -> Message:
    return Message.get_by_id(m.id)


# The invitation, end to end through a real SMTP server.

def test_booking_sends_an_invitation_the_patient_can_open(app, client):
    me = login_as(client, "practitioner", name="Dr Claire Martin")
    patient = make_patient(first_name="Sidonie", last_name="Vasseur")
    local = dt.date.today() + dt.timedelta(days=3)
    with smtp_server() as smtp:
        app.config.update(smtp.config)
        response = client.post("/agenda/new", data={
            "patient_id": str(patient.id), "practitioner": str(me.id), "date": local.isoformat(), "time": "10:00",
            "duration": "20", "mode": "video", "motive": MOTIVE})
        assert response.status_code == 302
        appt = Appointment.get(Appointment.patient == patient)
        queued = list(Message.select().where(Message.appointment == appt).order_by(Message.channel))
        assert [(m.channel, m.kind, m.status) for m in queued] == [("email", "invitation", "pending"),
                                                                  ("sms", "invitation", "pending")]
        assert send_due(app)["sent"] == 2
        mail = smtp.wait_for(1)[0]
    assert len(smtp.messages) == 1
    assert smtp.collector.envelopes[0][1] == [patient.email]
    assert mail["Subject"].startswith("Your teleconsultation with Dr Claire Martin (Cabinet des Tilleuls) on ")
    assert mail["Content-Language"] == "en" and mail["From"] == "Cabinet des Tilleuls <cabinet@localhost>"
    text, html = smtp.text_of(mail), smtp.html_of(mail)
    for part in (mail["Subject"], text, html):
        assert MOTIVE not in part and "Vasseur" not in part and "Sidonie" not in part
    link = smtp.link_in(mail)
    assert link.startswith(BASE + "/p/") and link in html
    # The link opens the patient's page, in a browser that has nothing but the link.
    opened = app.test_client().get(link.removeprefix(BASE))
    assert opened.status_code == 302 and opened.headers["Location"] == f"/v/{appt.ref}/"
    # The calendar file: the right time, the practice, the link; no medical data.
    cal = Calendar.from_ical(smtp.attachment(mail))
    assert str(cal["METHOD"]) == "REQUEST"
    event = cal.walk("VEVENT")[0]
    assert event.decoded("DTSTART") == appt.starts_at.replace(tzinfo=dt.timezone.utc)
    assert event.decoded("DTEND") - event.decoded("DTSTART") == dt.timedelta(minutes=20)
    assert str(event["SUMMARY"]) == "Teleconsultation with Cabinet des Tilleuls"
    assert MOTIVE not in cal.to_ical().decode() and "Vasseur" not in cal.to_ical().decode()
    assert str(event["URL"]) == link
    # Both rows are done; the SMS waits in the outbox for staff to copy.
    rows = {m.channel: m for m in Message.select()}
    assert rows["email"].status == "sent" and rows["email"].sent_at is not None
    assert rows["sms"].status == "sent" and rows["sms"].recipient == patient.phone
    assert link.split("/p/")[0] in rows["sms"].body and "Vasseur" not in rows["sms"].body
    assert MOTIVE not in rows["sms"].body


SUBJECTS = [
    "Your teleconsultation with Cabinet des Tilleuls on Tuesday, March 5, 2030",     # fits a line of its own
    "Your teleconsultation with Cabinet des Tilleuls on Wednesday, December 2, 2026",
    "Votre téléconsultation avec Cabinet des Tilleuls le mardi 5 mars 2030 à 10:00\u202f",
    "موعد الاستشارة عن بعد مع عيادة الزيزفون يوم الثلاثاء 5 مارس 2030",
    "Ihre Videosprechstunde bei der Gemeinschaftspraxis Dr. Müller-Lüdenscheidt am Dienstag",
]


@pytest.mark.parametrize("subject", SUBJECTS + ["x" * n for n in range(60, 90)] + ["é" * n for n in (30, 66, 70)])
def test_the_subject_a_mail_client_reads_is_the_subject_written(subject):
    """Whatever its length or script, the Subject never starts on a folded line (a leading space)."""
    import email
    import email.policy
    import io
    from email.generator import BytesGenerator
    from types import SimpleNamespace

    from webapp.notify.deliver import build_email
    message = SimpleNamespace(recipient="jeanne@example.org", subject=subject, body="Bonjour", html="", ics="",
                              locale="fr")
    mail = build_email(message, "cabinet@localhost", "Cabinet des Tilleuls")
    wire = io.BytesIO()
    BytesGenerator(wire, policy=mail.policy.clone(linesep="\r\n")).flatten(mail)   # as smtplib sends it
    raw = wire.getvalue()
    assert raw.startswith(b"Subject: ") or b"\r\nSubject: " in raw
    assert b"Subject:\r\n" not in raw
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    received = email.message_from_bytes(raw, policy=email.policy.default)
    assert received["Subject"] == subject


def test_email_text_in_english_names_the_date_time_and_practice(app):
    appt = book(app, starts_at=START, duration_minutes=15)
    email, sms = queue(app, appt, "invitation")
    assert plain(email.subject) == ("Your teleconsultation with Dr Claire Martin (Cabinet des Tilleuls) "
                                    "on Tuesday, 5 March 2030")      # English as written in France
    assert ("Cabinet des Tilleuls has booked a teleconsultation for you with Dr Claire Martin on Tuesday, "
            "5 March 2030 at 10:00.") \
        in plain(email.body)
    assert plain(sms.body).startswith("Cabinet des Tilleuls: teleconsultation with Dr Claire Martin on 5 Mar 2030 "
                                      "at 10:00. "
                                      "Your link: https://cabinet.test/p/")
    assert email.locale == "en" and sms.subject == "" and email.ics and not sms.ics


def test_french_patient_gets_french_messages(app):
    """A French patient's invitation is written in French, dates included."""
    appt = book(app, starts_at=START, patient=make_patient(locale="fr"))
    email, sms = queue(app, appt, "invitation")
    assert email.locale == "fr"
    assert plain(email.subject) == "Votre téléconsultation avec Dr Claire Martin (Cabinet des Tilleuls) le mardi 5 mars 2030"
    assert "10:00" in sms.body and "Votre lien" in sms.body


@pytest.mark.parametrize("kind, words, has_link, ics_method", [
    ("reminder", "This is a reminder of your teleconsultation", True, "REQUEST"),
    ("moved", "has moved to Tuesday, 5 March 2030 at 10:00", True, "REQUEST"),
    ("link_resent", "Here is your link for the teleconsultation", True, None),
    ("cancelled", "on Tuesday, 5 March 2030 at 10:00 is cancelled", False, "CANCEL"),
    ("closed", "Your documents and the payment request are waiting in your personal space", True, None),
])
def test_each_kind_says_what_happened(app, kind, words, has_link, ics_method):
    appt = book(app, starts_at=START)
    email, sms = queue(app, appt, kind)
    assert words in plain(email.body)
    assert ("/p/" in email.body) is has_link and ("/p/" in sms.body) is has_link
    assert MOTIVE not in email.body + email.html + sms.body + email.ics
    assert appt.patient.last_name not in sms.body
    if ics_method is None:
        assert email.ics == ""
    else:
        cal = Calendar.from_ical(email.ics)
        assert str(cal["METHOD"]) == ics_method
        assert cal.walk("VEVENT")[0].decoded("DTSTART") == START.replace(tzinfo=dt.timezone.utc)


def test_cancel_withdraws_the_same_calendar_event(app):
    appt = book(app, starts_at=START)
    invitation = queue(app, appt, "invitation", channels=("email",))[0]
    cancel = queue(app, appt, "cancelled", channels=("email",))[0]
    first, last = (Calendar.from_ical(m.ics).walk("VEVENT")[0] for m in (invitation, cancel))
    assert first["UID"] == last["UID"] and str(appt.id) not in str(first["UID"])
    assert last["SEQUENCE"] > first["SEQUENCE"] and str(last["STATUS"]) == "CANCELLED"


def test_channels_follow_the_choice_and_the_contacts_on_file(app):
    assert [m.channel for m in queue(app, book(app, notify_sms=False), "invitation")] == ["email"]
    assert [m.channel for m in queue(app, book(app, patient=make_patient(email="")), "invitation")] == ["sms"]
    assert queue(app, book(app, notify_email=False, notify_sms=False), "invitation") == []
    with pytest.raises(ValueError):
        queue(app, book(app), "birthday")


# Sending: retries, back-off, exactly once.

def test_smtp_down_then_back_delivers_exactly_once(app):
    port = free_port()
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)
    appt = book(app, notify_sms=False)
    [queued] = queue(app, appt, "invitation")
    now = utcnow()
    assert send_due(app, now) == {"sent": 0, "retry": 1, "failed": 0, "skipped": 0}
    m = message(queued)
    assert (m.status, m.attempts) == ("pending", 1)
    assert "ConnectionRefusedError" in m.last_error and appt.contact_email not in m.last_error
    assert m.next_attempt_at == now + dt.timedelta(minutes=1)
    # Not due yet: nothing happens.
    assert send_due(app, now + dt.timedelta(seconds=30))["retry"] == 0
    with smtp_server(port) as smtp:
        assert send_due(app, now + dt.timedelta(minutes=1))["sent"] == 1
        assert send_due(app, now + dt.timedelta(hours=2)) == {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
        smtp.wait_for(1)
        time.sleep(0.2)
        assert len(smtp.messages) == 1
    m = message(queued)
    assert (m.status, m.attempts, m.last_error) == ("sent", 2, "")


def test_concurrent_senders_deliver_each_message_once(app):
    appts = [book(app, notify_sms=False) for _ in range(6)]
    for appt in appts:
        queue(app, appt, "invitation")
    with smtp_server() as smtp:
        app.config.update(smtp.config)
        results = []

        def worker():
            with app.app_context(), db.connection_context():
                results.append(notify.send_due()["sent"])

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        smtp.wait_for(6)
        time.sleep(0.2)
        assert len(smtp.messages) == 6 and sum(results) == 6
    assert sorted(rcpt[0] for _f, rcpt in smtp.collector.envelopes) == sorted(a.contact_email for a in appts)


def test_failures_back_off_then_fail_and_staff_retry(app, client):
    app.config.update(SMTP_HOST="")          # nowhere to send: every attempt fails
    me = login_as(client, "secretary")
    appt = book(app, notify_sms=False)
    [queued] = queue(app, appt, "invitation")
    now = utcnow()
    waits = []
    for _ in range(outbox.MAX_ATTEMPTS):
        send_due(app, now)
        m = message(queued)
        waits.append(m.next_attempt_at - now)
        now = m.next_attempt_at
    assert [w // dt.timedelta(minutes=1) for w in waits[:-1]] == [1, 5, 15, 60]
    assert (m.status, m.attempts, m.last_error) == ("failed", outbox.MAX_ATTEMPTS, "SMTP_HOST is not set")
    assert send_due(app, now + dt.timedelta(days=1))["retry"] == 0      # failed stays failed
    page = client.get(f"/agenda/{appt.id}")
    assert "Failed" in text_of(page) and "SMTP_HOST is not set" in text_of(page)
    assert "Retry" in text_of(page) and me is not None
    fragment = client.post(f"/agenda/{appt.id}/messages/{queued.id}/retry", headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.get_data(as_text=True)
    assert "Pending" in text_of(fragment) and "Retry" not in text_of(fragment)
    m = message(queued)
    assert (m.status, m.attempts) == ("pending", 0) and m.next_attempt_at <= utcnow()
    # Retrying what is not failed is refused and changes nothing.
    assert client.post(f"/agenda/{appt.id}/messages/{queued.id}/retry").status_code == 409


def test_retry_is_for_staff_who_see_the_appointment(app, client):
    appt = book(app, notify_sms=False)
    [queued] = queue(app, appt, "invitation")
    Message.update(status="failed").where(Message.id == queued.id).execute()
    assert client.post(f"/agenda/{appt.id}/messages/{queued.id}/retry").status_code == 302   # to sign-in
    login_as(client, "practitioner")                                                          # not theirs
    assert client.post(f"/agenda/{appt.id}/messages/{queued.id}/retry").status_code == 404
    assert message(queued).status == "failed"


def test_detail_shows_the_sms_text_to_copy(app, client):
    me = login_as(client, "practitioner")
    appt = book(app, practitioner=me)
    queue(app, appt, "invitation")
    send_due(app)
    page = client.get(f"/agenda/{appt.id}")
    body, text = page.get_data(as_text=True), text_of(page)
    assert "To copy and send" in text and "Invitation" in text
    sms = Message.get(Message.channel == "sms")
    assert 'data-copy="#sms-%d"' % sms.id in body and sms.body.replace("&", "&amp;") in body


# Reminders with a controllable clock.

def test_reminders_fire_at_the_practice_times_once_each(app):
    appt = book(app, starts_at=START, created_at=START - dt.timedelta(days=10))
    at = lambda minutes: START - dt.timedelta(minutes=minutes)  # noqa: E731
    assert reminders(app, at(1441)) == 0
    assert reminders(app, at(1440)) == 2                 # e-mail and SMS, 24 h before
    assert reminders(app, at(1439)) == 0 and reminders(app, at(600)) == 0
    assert reminders(app, at(16)) == 0
    assert reminders(app, at(15)) == 2                   # 15 min before
    assert reminders(app, at(1)) == 0 and reminders(app, START) == 0
    rows = list(Message.select().where(Message.kind == "reminder").order_by(Message.id))
    assert len(rows) == 4 and {r.appointment_id for r in rows} == {appt.id}
    email = rows[0] if rows[0].channel == "email" else rows[1]
    assert plain(email.subject) == ("Reminder: teleconsultation with Dr Claire Martin (Cabinet des Tilleuls) "
                                    "on Tuesday, 5 March 2030 at 10:00")


def test_french_reminder(app):
    """A French patient's reminder is written in French."""
    book(app, starts_at=START, created_at=START - dt.timedelta(days=10), patient=make_patient(locale="fr"),
         notify_sms=False)
    reminders(app, START - dt.timedelta(minutes=15))
    assert Message.get(Message.kind == "reminder").subject.startswith("Rappel")


def test_missed_reminders_are_not_sent_late_on_top(app):
    book(app, starts_at=START, created_at=START - dt.timedelta(days=10), notify_sms=False)
    assert reminders(app, START - dt.timedelta(minutes=10)) == 1      # only the 15-minute one
    assert reminders(app, START - dt.timedelta(minutes=5)) == 0
    assert Message.get(Message.kind == "reminder").dedupe_key.split(":")[2] == "15"


@pytest.mark.parametrize("fields, minutes_before", [
    ({"created_at": START - dt.timedelta(hours=2)}, 1440),             # booked after the 24 h mark
    ({"created_at": START - dt.timedelta(minutes=10)}, 15),            # booked after the 15 min mark
    ({"status": "cancelled"}, 1440),
    ({"status": "closed"}, 15),
    ({"status": "waiting"}, 15),                                       # already there
])
def test_no_reminder_when_it_makes_no_sense(app, fields, minutes_before):
    book(app, starts_at=START, **{"created_at": START - dt.timedelta(days=10), **fields})
    assert reminders(app, START - dt.timedelta(minutes=minutes_before)) == 0
    assert not Message.select().exists()


def test_no_reminder_right_after_the_patient_got_the_new_link(app):
    appt = book(app, starts_at=START, created_at=START - dt.timedelta(days=10))
    queue(app, appt, "moved", now=START - dt.timedelta(hours=3))     # moved into the last day
    assert reminders(app, START - dt.timedelta(hours=2)) == 0
    assert reminders(app, START - dt.timedelta(minutes=15)) == 2     # the next one still comes


def test_a_new_link_version_gets_its_own_reminders_and_old_ones_are_skipped(app):
    appt = book(app, starts_at=START, created_at=START - dt.timedelta(days=10), notify_sms=False)
    reminders(app, START - dt.timedelta(minutes=15))
    Appointment.update(link_version=Appointment.link_version + 1).where(Appointment.id == appt.id).execute()
    assert send_due(app, START - dt.timedelta(minutes=14))["skipped"] == 1
    old = Message.get(Message.kind == "reminder")
    assert old.status == "skipped" and old.last_error == "the link has been replaced since"
    assert reminders(app, START - dt.timedelta(minutes=14)) == 1


def test_reminder_for_an_appointment_cancelled_meanwhile_is_not_sent(app):
    appt = book(app, starts_at=START, created_at=START - dt.timedelta(days=10), notify_sms=False)
    reminders(app, START - dt.timedelta(minutes=15))
    Appointment.update(status="cancelled").where(Appointment.id == appt.id).execute()
    assert send_due(app, START - dt.timedelta(minutes=15)) == {"sent": 0, "retry": 0, "failed": 0, "skipped": 1}


def test_practice_without_reminders(app):
    Practice.update(reminder_minutes="").execute()
    book(app, starts_at=START, created_at=START - dt.timedelta(days=10))
    assert reminders(app, START - dt.timedelta(minutes=15)) == 0


# Agenda hooks.

def booking_form(me, patient, **extra):
    day = dt.date.today() + dt.timedelta(days=2)
    return {"patient_id": str(patient.id), "practitioner": str(me.id), "date": day.isoformat(), "time": "11:00",
            "duration": "20", "mode": "video", "motive": MOTIVE, **extra}


@pytest.mark.parametrize("send_by, patient_fields, channels", [
    (None, {}, ["email", "sms"]),
    ("both", {"phone": ""}, ["email"]),
    ("email", {}, ["email"]),
    ("sms", {}, ["sms"]),
])
def test_booking_channels(app, client, send_by, patient_fields, channels):
    me = login_as(client, "practitioner")
    patient = make_patient(**patient_fields)
    data = booking_form(me, patient, **({"send_by": send_by} if send_by else {}))
    assert client.post("/agenda/new", data=data).status_code == 302
    assert sorted(m.channel for m in Message.select().where(Message.kind == "invitation")) == channels


@pytest.mark.parametrize("send_by, patient_fields, error", [
    ("sms", {"phone": ""}, "This patient has no mobile number: choose e-mail."),
    ("email", {"email": ""}, "This patient has no e-mail address: choose SMS."),
    ("pigeon", {}, "Not a valid choice"),
])
def test_booking_channel_errors(app, client, send_by, patient_fields, error):
    me = login_as(client, "practitioner")
    response = client.post("/agenda/new", data=booking_form(me, make_patient(**patient_fields), send_by=send_by),
                           headers=HX)
    assert response.status_code == 422 and error in text_of(response)
    assert not Appointment.select().exists() and not Message.select().exists()


def test_moving_cancelling_and_a_new_link_tell_the_patient(app, client):
    me = login_as(client, "practitioner")
    appt = book(app, practitioner=me, starts_in=dt.timedelta(days=2), notify_sms=False)
    edit = booking_form(me, appt.patient, time="15:00", send_by="email")
    assert client.post(f"/agenda/{appt.id}/edit", data=edit).status_code == 302
    assert client.post(f"/agenda/{appt.id}/edit", data=edit).status_code == 302      # same time: not a move
    assert client.post(f"/agenda/{appt.id}/link").status_code == 302
    assert client.post(f"/agenda/{appt.id}/cancel").status_code == 302
    assert client.post(f"/agenda/{appt.id}/cancel").status_code == 302               # already cancelled
    kinds = [m.kind for m in Message.select().order_by(Message.id)]
    assert kinds == ["moved", "link_resent", "cancelled"]
    moved, resent = Message.select().order_by(Message.id)[:2]
    appt = Appointment.get_by_id(appt.id)
    assert "15:00" in utc_local_hint(moved) and f"{BASE}/p/" in resent.body
    # The re-sent link is the current one: it opens; the one in the "moved" message was replaced.
    link_of = lambda m: next(w for w in m.body.split() if w.startswith(BASE + "/p/"))  # noqa: E731
    assert app.test_client().get(link_of(moved).removeprefix(BASE)).status_code == 410
    assert app.test_client().get(link_of(resent).removeprefix(BASE)).status_code == 410   # cancelled since


def utc_local_hint(m) -> str:
    """The message's text with 24-hour times, whatever the locale's clock (3:00 PM → 15:00)."""
    text = plain(m.body)
    return text.replace("3:00 PM", "15:00")


def test_instant_visit_sends_its_link_to_what_was_typed(app, client):
    me = login_as(client, "practitioner")
    response = client.post("/agenda/instant", data={"email": "Someone@Example.org", "phone": "", "mode": "video",
                                                    "practitioner": str(me.id)})
    appt = Appointment.get(Appointment.kind == "instant")
    assert response.status_code == 302
    [m] = Message.select()
    assert (m.kind, m.channel, m.recipient) == ("invitation", "email", appt.contact_email)
    assert "invites you to a teleconsultation now" in m.body and m.ics == ""


def test_closing_tells_the_patient_their_space_waits(app):
    appt = book(app, starts_at=START, status="closed")
    email, sms = queue(app, appt, "closed")
    assert email.subject == "Your documents from Cabinet des Tilleuls"
    assert f"{BASE}/p/" in email.body and f"{BASE}/p/" in sms.body
    assert "payment request" in sms.body


# The http SMS backend, against a real HTTP server on loopback.

class Gateway(http.server.BaseHTTPRequestHandler):
    answer = 200
    received: list = []

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        type(self).received.append({"method": self.command, "path": self.path, "body": body,
                                    "headers": dict(self.headers)})
        self.send_response(type(self).answer)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = do_PUT = _handle

    def log_message(self, *args):
        pass


@pytest.fixture
def gateway():
    Gateway.received, Gateway.answer = [], 200
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_http_sms_backend_posts_json(app, gateway):
    port = gateway.server_address[1]
    app.config.update(SMS_BACKEND="http", SMS_HTTP_URL=f"http://127.0.0.1:{port}/sms?key=k", SMS_HTTP_METHOD="POST",
                      SMS_HTTP_BODY='{"to": "{to}", "message": "{text}"}', SMS_HTTP_USER="cabinet",
                      SMS_HTTP_PASSWORD="s3cret")
    appt = book(app, notify_email=False)
    [sms] = queue(app, appt, "invitation")
    assert send_due(app)["sent"] == 1
    [call] = Gateway.received
    assert call["method"] == "POST" and call["path"] == "/sms?key=k"
    assert call["headers"]["Content-Type"].startswith("application/json")
    assert call["headers"]["Authorization"] == "Basic Y2FiaW5ldDpzM2NyZXQ="
    payload = json.loads(call["body"])
    assert payload == {"to": appt.contact_phone, "message": sms.body}
    assert message(sms).status == "sent"


def test_http_sms_backend_form_and_get(app, gateway):
    port = gateway.server_address[1]
    app.config.update(SMS_BACKEND="http", SMS_HTTP_URL=f"http://127.0.0.1:{port}/send", SMS_HTTP_METHOD="PUT",
                      SMS_HTTP_BODY="number={to}&msg={text}", SMS_HTTP_USER="")
    appt = book(app, notify_email=False)
    [sms] = queue(app, appt, "link_resent")
    send_due(app)
    form = urllib.parse.parse_qs(Gateway.received[0]["body"])
    assert form == {"number": [appt.contact_phone], "msg": [sms.body]}
    assert "Authorization" not in Gateway.received[0]["headers"]
    app.config.update(SMS_HTTP_URL=f"http://127.0.0.1:{port}/send?to={{to}}&text={{text}}", SMS_HTTP_METHOD="GET")
    [again] = queue(app, appt, "reminder")
    send_due(app)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(Gateway.received[1]["path"]).query)
    assert Gateway.received[1]["method"] == "GET" and query == {"to": [appt.contact_phone], "text": [again.body]}


def test_http_sms_gateway_error_keeps_the_message(app, gateway):
    port = gateway.server_address[1]
    app.config.update(SMS_BACKEND="http", SMS_HTTP_URL=f"http://127.0.0.1:{port}/sms", SMS_HTTP_BODY="t={to}&m={text}")
    Gateway.answer = 503
    appt = book(app, notify_email=False)
    [sms] = queue(app, appt, "invitation")
    send_due(app)
    m = message(sms)
    assert (m.status, m.attempts, m.last_error) == ("pending", 1, "SMS gateway answered HTTP 503")
    app.config.update(SMS_HTTP_URL=f"http://127.0.0.1:{free_port()}/sms")
    send_due(app, m.next_attempt_at)
    m = message(sms)
    assert m.attempts == 2 and m.last_error.startswith("SMS gateway unreachable")
    assert appt.contact_phone not in m.last_error


# Settings, the sender thread and the command.

@pytest.mark.parametrize("env, error", [
    ({"SMS_BACKEND": "pigeon"}, "SMS_BACKEND must be one of outbox, http"),
    ({"SMS_BACKEND": "http"}, "SMS_HTTP_URL must be set"),
    ({"SMS_BACKEND": "http", "SMS_HTTP_URL": "ftp://gw"}, "SMS_HTTP_URL must start with http"),
    ({"SMS_HTTP_URL": "gw.example.org"}, "SMS_HTTP_URL must start with http"),
    ({"SMS_BACKEND": "http", "SMS_HTTP_URL": "https://gw", "SMS_HTTP_METHOD": "DELETE"}, "SMS_HTTP_METHOD"),
    ({"SMS_BACKEND": "http", "SMS_HTTP_URL": "https://gw", "SMS_HTTP_BODY": "to={to}"}, "must contain {text}"),
    ({"NOTIFY_SENDER": "maybe"}, "NOTIFY_SENDER must be true or false"),
])
def test_bad_settings_stop_the_start(tmp_path, env, error):
    with pytest.raises(settings.ConfigError, match=error):
        settings.from_environment(tmp_path, {"SECRET_KEY": "x", **env})


def test_good_sms_settings(tmp_path):
    read = settings.from_environment(tmp_path, {"SECRET_KEY": "x", "SMS_BACKEND": "http",
                                                "SMS_HTTP_URL": "https://gw.example.org/send",
                                                "SMS_HTTP_METHOD": "get", "NOTIFY_SENDER": "false"})
    assert (read["SMS_HTTP_METHOD"], read["NOTIFY_SENDER"], read["SMS_HTTP_BODY"]) == ("GET", False,
                                                                                       "to={to}&text={text}")


def test_sender_thread_not_started_in_tests(app):
    assert "notify_sender" not in app.extensions


def test_sender_thread_delivers_and_starts_once(tmp_path):
    with smtp_server() as smtp:
        app = make_app(tmp_path, TESTING=False, NOTIFY_INTERVAL_SECONDS=0.1, **smtp.config)
        try:
            sender = app.extensions["notify_sender"]
            assert sender.alive and notify.sender.start(app) is sender
            make_practice()
            appt = make_appointment(notify_sms=False)
            with app.app_context():
                notify.queue(appt, "invitation")
            smtp.wait_for(1)
        finally:
            app.extensions["notify_sender"].stop()
            db.close()
    assert not sender.thread.is_alive()
    assert Message.get().status == "sent"


def test_sender_thread_off_by_setting(tmp_path):
    app = make_app(tmp_path, TESTING=False, NOTIFY_SENDER=False)
    assert "notify_sender" not in app.extensions
    db.close()


def test_send_due_command(app, runner):
    with smtp_server() as smtp:
        app.config.update(smtp.config)
        book(app, starts_at=START, created_at=START - dt.timedelta(days=10), notify_sms=False)
        appt = book(app, notify_sms=False)
        queue(app, appt, "invitation")
        result = runner.invoke(args=["send-due"])
        assert result.exit_code == 0, result.output
        assert "Reminders queued: 0; sent: 1;" in result.output
        smtp.wait_for(1)


# One address for every link, woken sender.

def test_an_invitation_goes_out_at_once_not_at_the_next_pass(tmp_path):
    """The sender sleeps an hour between passes, yet the instant visit's link is delivered now."""
    with smtp_server() as smtp:
        app = make_app(tmp_path, TESTING=False, NOTIFY_INTERVAL_SECONDS=3600, **smtp.config)
        try:
            make_practice()
            client = app.test_client()
            me = login_as(client, "practitioner")
            time.sleep(0.2)     # the sender's first pass (nothing to do) is over: it sleeps now
            response = client.post("/agenda/instant", data={"email": "jeanne@example.org",
                                                            "practitioner": str(me.id), "mode": "video"})
            assert response.status_code == 302
            mail = smtp.wait_for(1, timeout=10)[0]
            assert smtp.link_in(mail).startswith(BASE + "/p/")
            detail = client.get(response.headers["Location"])
            assert "Sent" in text_of(detail)
        finally:
            app.extensions["notify_sender"].stop()
            db.close()


def test_the_messages_panel_asks_again_while_a_message_is_on_its_way(app, client):
    me = login_as(client, "practitioner")
    appt = book(app, practitioner=me, notify_sms=False)
    queue(app, appt, "invitation")
    waiting = client.get(f"/agenda/{appt.id}/messages", headers=HX).get_data(as_text=True)
    assert f'hx-get="/agenda/{appt.id}/messages"' in waiting and "Pending" in waiting
    Message.update(status="sent", attempts=1).execute()
    done = client.get(f"/agenda/{appt.id}/messages", headers=HX).get_data(as_text=True)
    assert "hx-get" not in done.split(">", 3)[2] and "Sent" in done


def sign_in_at(client, role, base_url):
    """Sign in on a given host (the session cookie belongs to it)."""
    user = make_user(role)
    with client.session_transaction(base_url=base_url) as session:
        session.update(signed_in(user))
    return user


def no_public_url_app(tmp_path):
    app = make_app(tmp_path, ENV={"DATABASE_URL": f"sqlite:///{tmp_path / 'site.sqlite3'}",
                                  "SECRET_KEY": "test-secret"})
    make_practice()
    return app


def test_without_public_url_reminders_carry_the_host_of_the_invitation(tmp_path):
    """The sender builds reminders without a request: they use the address staff reached the site at."""
    app = no_public_url_app(tmp_path)
    try:
        client = app.test_client()
        me = sign_in_at(client, "practitioner", "https://visio.cabinet-tilleuls.fr")
        tomorrow = dt.date(2036, 6, 11)
        response = client.post("/agenda/new", base_url="https://visio.cabinet-tilleuls.fr", data={
            "patient_id": str(make_patient().id), "practitioner": str(me.id), "date": tomorrow.isoformat(),
            "time": "10:00", "duration": "20", "mode": "video", "motive": MOTIVE, "send_by": "email"})
        assert response.status_code == 302
        assert Practice.get().site_url == "https://visio.cabinet-tilleuls.fr"
        appt = Appointment.get(Appointment.motive == MOTIVE)
        assert reminders(app, appt.starts_at - dt.timedelta(minutes=15)) == 1     # no request here
        invitation, reminder = (Message.get(Message.kind == kind) for kind in ("invitation", "reminder"))
        link = lambda m: next(w for w in m.body.split() if "/p/" in w)   # noqa: E731
        assert link(invitation).startswith("https://visio.cabinet-tilleuls.fr/p/")
        assert link(reminder).startswith("https://visio.cabinet-tilleuls.fr/p/")
    finally:
        db.close()


def test_the_admin_sees_the_learnt_address_and_can_correct_it(tmp_path):
    app = no_public_url_app(tmp_path)
    try:
        client = app.test_client()
        sign_in_at(client, "admin", "http://10.0.0.5:8000")
        assert Practice.get().site_url == ""
        page = client.get("/admin/practice", base_url="http://10.0.0.5:8000")
        assert "learnt from the first staff sign-in" in text_of(page)
        assert 'value="http://10.0.0.5:8000"' in page.get_data(as_text=True)
        assert Practice.get().site_url == "http://10.0.0.5:8000"
        data = {"name": "Cabinet des Tilleuls", "address": "", "timezone": "Europe/Paris", "default_locale": "en",
                "link_opens_minutes_before": "15", "link_closes_minutes_after": "60", "patient_space_days": "15",
                "reminder_minutes": "1440, 15", "max_upload_mb": "10", "payment_presets": "25",
                "payment_instructions": ""}
        refused = client.post("/admin/practice", base_url="http://10.0.0.5:8000",
                              data={**data, "site_url": "visio.cabinet.fr"})
        assert refused.status_code == 422 and "like https://visio.my-practice.fr" in text_of(refused)
        assert Practice.get().site_url == "http://10.0.0.5:8000"
        saved = client.post("/admin/practice", base_url="http://10.0.0.5:8000",
                            data={**data, "site_url": "https://visio.cabinet.fr/"})
        assert saved.status_code == 302 and Practice.get().site_url == "https://visio.cabinet.fr"
    finally:
        db.close()


def test_the_secretary_finds_every_sms_to_copy_in_one_place(app, client):
    """With the outbox backend, SMS wait for staff: one list, a count in the header, marked once sent."""
    desk = login_as(client, "secretary")
    first = book(app, notify_email=False)
    second = book(app, notify_email=False)
    for appt in (first, second):
        queue(app, appt, "invitation")
    send_due(app)
    page = client.get("/messages/sms")
    assert page.status_code == 200
    text = text_of(page)
    assert "SMS to send 2" in text and text.count("Mark as sent") == 2
    assert "Cabinet des Tilleuls: teleconsultation with Dr Claire Martin" in plain(text)
    one = Message.get(Message.appointment == first.id)
    done = client.post(f"/messages/{one.id}/copied", headers=HX)
    assert done.status_code == 200 and text_of(done).count("Mark as sent") == 1
    assert Message.get_by_id(one.id).copied_at is not None
    assert AuditEvent.get(AuditEvent.action == "message.copied").user_id == desk.id
    assert client.post(f"/messages/{one.id}/copied").status_code == 404          # already sent
    assert "SMS to send 1" in text_of(client.get("/agenda/"))
    assert "Sent from the practice's phone" in text_of(client.get(f"/agenda/{first.id}"))


def test_no_sms_list_when_a_gateway_sends_them(app, client):
    app.config["SMS_BACKEND"] = "http"
    login_as(client, "secretary")
    assert client.get("/messages/sms").status_code == 404
    assert "SMS to send" not in text_of(client.get("/agenda/"))


@pytest.mark.parametrize("locale, name", [("fr", "téléconsultation.ics"), ("en", "teleconsultation.ics"),
                                          ("ar", "استشارة-عن-بعد.ics")])
def test_the_calendar_file_is_named_in_the_reader_s_language(app, locale, name):
    """Mail apps show the attachment's name: it was "invitation.ics" in every language."""
    import email
    import email.policy
    from webapp.notify.deliver import build_email
    appt = book(app, starts_at=START, duration_minutes=15, locale=locale)
    message, _ = queue(app, appt, "invitation")
    with app.app_context():
        raw = build_email(message, "cabinet@localhost", "Cabinet des Tilleuls").as_bytes()
    received = email.message_from_bytes(raw, policy=email.policy.default)
    files = [part.get_filename() for part in received.iter_attachments()]
    assert files == [name]
