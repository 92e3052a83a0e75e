"""Every visit ends with an honest outcome: held, by telephone, no-show, ended outside Cabinet, left
early; each closes with the items that apply, and traceability (page and PDF) says what happened.
Also: resuming a call ended by mistake, and the visits still to close, grouped by why."""
from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from flask_babel import force_locale
from pypdf import PdfReader

from webapp import events
from webapp.models import Appointment, AuditEvent, ChatLine, Document, Message, Payment, Practice, Waiver, utcnow
from webapp.patient.waiting import status_fragment
from webapp.storage import documents

from conftest import FROZEN_AT, HX, db_snapshot, holding_link, login_as, make_appointment, make_user, text_of

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
# The frozen clock says 08:00 UTC, 10:00 in Paris; each visit below started at 09:30 Paris time.
AGO = dt.timedelta(minutes=30)


def minutes_ago(n: int) -> dt.datetime:
    """Minutes before the test's start (the clock ticks on: two readings of "now" may differ)."""
    return FROZEN_AT.replace(tzinfo=None) - dt.timedelta(minutes=n)


def consented(**fields) -> dict:
    return {"consent_at": minutes_ago(29), "consent_version": "2026-01", "consent_locale": "en", **fields}


def admitted(**fields) -> dict:
    """A patient who came, consented and was let in; the call has not ended unless a field says so."""
    return consented(status="in_call", waiting_since=minutes_ago(29), admitted_at=minutes_ago(28), **fields)


@pytest.fixture
def doctor(client):
    return login_as(client, "practitioner")


def visit(doctor, **fields):
    return make_appointment(practitioner=doctor, starts_in=-AGO, **fields)


def url(appt, what="close"):
    return f"/visits/{appt.id}/{what}"


def fresh(appt) -> Appointment:
    return Appointment.get_by_id(appt.id)


def record(client, appt, outcome, **form):
    return client.post(url(appt, "outcome"), data={"outcome": outcome, **form})


def fill_checklist(client, appt):
    assert client.post(url(appt, "report"), data={"findings": "Toux", "decisions": "Repos"}).status_code == 302
    assert client.post(url(appt, "documents"), data={"kind": "other", "file": (io.BytesIO(PDF), "note.pdf")},
                       content_type="multipart/form-data").status_code == 302
    assert client.post(url(appt, "acts"), data={"code": "TC", "fee": ""}).status_code == 302
    assert client.post(url(appt, "payment"), data={"amount": "25"}).status_code == 302


def close(client, appt, **form):
    response = client.post(url(appt), data=form)
    assert response.status_code == 302, text_of(response)
    assert fresh(appt).status == "closed"


def report_text(app, appt, kind="report") -> str:
    doc = Document.get(Document.appointment == appt, Document.kind == kind)
    with app.app_context():
        data = documents().load(doc.storage_key)
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    return re.sub(r"\s+", " ", text)


def snapshot(client, appt) -> dict:
    """The database once the page was seen (its first view seeds the act catalogue)."""
    client.get(url(appt))
    return db_snapshot()


def states(client, appt) -> str:
    """The summary's items and their states, as the page shows them."""
    html = client.get(url(appt)).get_data(as_text=True)
    start = html.index(">", html.index('id="closing-summary"')) + 1
    summary = html[start:html.index("</ul>", start)]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", summary)).strip()


# Held: the automatic outcome.

def test_a_call_held_in_cabinet_is_held_without_asking(client, doctor, app):
    appt = visit(doctor, **admitted(call_ended_at=minutes_ago(5)))
    text = text_of(client.get(url(appt)))
    assert "Outcome Held. Held in Cabinet by video." in text
    assert "(ended in Cabinet by the practitioner)" in text
    fill_checklist(client, appt)
    close(client, appt)
    pdf = report_text(app, appt)
    assert "Outcome Held. Held in Cabinet by video." in pdf
    assert "Consent Given on" in pdf and "(ended in Cabinet by the practitioner)" in pdf
    assert [m.kind for m in Message.select()] == ["closed", "closed"]      # e-mail and SMS, as before


# Held by telephone.

def test_held_by_telephone_records_when_and_why_and_shows_the_number(client, doctor, app):
    appt = visit(doctor, **admitted())
    page = text_of(client.get(url(appt)))
    assert "The patient's telephone number: +33612345678" in page
    response = record(client, appt, "phone", phone_time="09:50", reason="Camera failed on the patient's phone")
    assert response.status_code == 302
    appt = fresh(appt)
    assert (appt.outcome, appt.outcome_at, appt.outcome_reason) == (
        "phone", minutes_ago(10), "Camera failed on the patient's phone")
    assert appt.call_ended_at == appt.admitted_at and appt.call_end_source == "start"   # nothing after admission
    assert "Traceability Done" in states(client, appt)
    fill_checklist(client, appt)
    close(client, appt)
    pdf = report_text(app, appt, "patient_report")
    assert "Outcome Held by telephone. Held by telephone at 09:50. Why: Camera failed on the patient's phone" in pdf
    event = AuditEvent.get(AuditEvent.action == "visit.outcome_recorded")
    assert (event.user_id, event.detail) == (doctor.id, "phone")       # no patient data, no reason


@pytest.mark.parametrize("form, message", [
    ({"phone_time": "", "reason": "No video"}, "Enter the time of the telephone call, like 14:30 (not later than now)."),
    ({"phone_time": "25:61", "reason": "No video"}, "Enter the time of the telephone call"),
    ({"phone_time": "10:30", "reason": "No video"}, "Enter the time of the telephone call"),    # still to come
    ({"phone_time": "09:50", "reason": ""}, "Say why the visit was held by telephone."),
])
def test_telephone_outcome_refused_without_a_past_time_or_a_reason(client, doctor, form, message):
    appt = visit(doctor, **admitted())
    before = snapshot(client, appt)
    response = record(client, appt, "phone", **form)
    assert response.status_code == 422 and message in text_of(response)
    assert db_snapshot() == before


def test_an_unknown_outcome_is_refused(client, doctor):
    appt = visit(doctor, **admitted())
    before = snapshot(client, appt)
    response = record(client, appt, "vanished")
    assert response.status_code == 422 and "Not a valid choice" in text_of(response)
    assert db_snapshot() == before


# The patient did not come.

def test_no_show_needs_no_report_and_sends_nothing(client, doctor, app):
    appt = visit(doctor)
    assert record(client, appt, "no_show").status_code == 302
    summary = states(client, appt)
    assert summary == ("Traceability Done Report Not needed Documents sent Not needed Act coded Not needed "
                       "Payment requested Waived")
    assert Waiver.get(Waiver.appointment == appt).reason == "No fee: the patient did not come."
    assert Payment.get(Payment.appointment == appt).status == "waived"
    page = text_of(client.get(url(appt)))
    assert "Unless you tick it, nothing is sent to the patient." in page
    assert "Consent none: the patient did not come" in page
    close(client, appt)
    assert Message.select().count() == 0
    pdf = report_text(app, appt)
    assert "Outcome Patient did not come. The patient did not come: they never entered the waiting room" in pdf
    assert "Consent none: the patient did not come" in pdf and "Actual start no call took place" in pdf
    assert "Actual end" not in pdf


def test_the_practice_s_french_copy_says_the_patient_did_not_come(client, doctor, app):
    Practice.update(default_locale="fr").execute()
    appt = visit(doctor)
    client.post(url(appt, "no-show"))
    pdf = report_text(app, appt)
    assert "Issue Patient non venu. Le patient n’est pas venu : il n’est jamais entré en salle d’attente" in pdf
    assert "Consentement aucun : le patient n’est pas venu" in pdf


def test_no_show_message_sent_when_staff_choose_it(client, doctor):
    appt = visit(doctor)
    record(client, appt, "no_show")
    close(client, appt, tell_patient="y")
    sent = list(Message.select().order_by(Message.channel))
    assert [(m.kind, m.channel) for m in sent] == [("missed", "email"), ("missed", "sms")]
    assert "You did not join your teleconsultation" in sent[0].body
    assert appt.patient.last_name not in sent[0].body + sent[1].body


def test_a_no_show_fee_may_be_requested_instead(client, doctor, app):
    appt = visit(doctor)
    record(client, appt, "no_show")
    assert client.post(url(appt, "payment"), data={"amount": "15"}).status_code == 302
    assert "Payment requested Done" in states(client, appt)
    close(client, appt)
    assert "15.00" in report_text(app, appt)


@pytest.mark.parametrize("fields, message", [
    (lambda: {"waiting_since": minutes_ago(25), "status": "waiting"}, "The patient came (at 09:35)"),
    (consented, "The patient came (at 09:31)"),
])
def test_no_show_refused_for_a_patient_who_came(client, doctor, fields, message):
    appt = visit(doctor, **fields())        # times on the frozen clock, not the collecting one
    before = snapshot(client, appt)
    response = record(client, appt, "no_show")
    assert response.status_code == 422 and message in text_of(response)
    assert db_snapshot() == before


def test_no_show_refused_before_the_start(client, doctor):
    appt = make_appointment(practitioner=doctor, starts_in=dt.timedelta(minutes=10))
    response = record(client, appt, "no_show")
    assert response.status_code == 422 and "too early to say" in text_of(response)


# Ended outside Cabinet, and the best time known for its end.

def test_ended_outside_cabinet_ends_at_the_last_media_seen(client, doctor, app):
    appt = visit(doctor, **admitted(media_seen_at=minutes_ago(12)))
    ChatLine.create(appointment=appt, author="patient", text="hello", at=minutes_ago(20))
    assert record(client, appt, "outside", reason="Tab closed").status_code == 302
    appt = fresh(appt)
    assert (appt.call_ended_at, appt.call_end_source, appt.outcome) == (minutes_ago(12), "media", "outside")
    page = text_of(client.get(url(appt)))
    assert "The call ended outside Cabinet at 09:48 (the last media Cabinet" in page
    fill_checklist(client, appt)
    close(client, appt)
    assert "Ended outside Cabinet. The call ended outside Cabinet at 09:48 (the last media" in report_text(app, appt)


def test_without_media_the_last_chat_line_says_when_it_ended(client, doctor):
    appt = visit(doctor, **admitted())
    ChatLine.create(appointment=appt, author="patient", text="hello", at=minutes_ago(20))
    record(client, appt, "outside")
    appt = fresh(appt)
    assert (appt.call_ended_at, appt.call_end_source) == (minutes_ago(20), "activity")


def test_a_call_still_running_cannot_be_said_to_have_ended_outside(client, doctor):
    appt = visit(doctor, **admitted(media_seen_at=utcnow() - dt.timedelta(seconds=20)))
    page = text_of(client.get(url(appt)))
    assert "The call is still going on: the relay saw media at" in page
    before = snapshot(client, appt)
    response = record(client, appt, "outside")
    assert response.status_code == 422 and "The call is still going on" in text_of(response)
    assert client.post(url(appt)).status_code == 409
    assert db_snapshot() == before


def test_ended_outside_refused_when_it_ended_in_cabinet_or_never_started(client, doctor):
    ended = visit(doctor, **admitted(call_ended_at=minutes_ago(5)))
    assert "the visit was held" in text_of(record(client, ended, "outside"))
    never = visit(doctor)
    assert "never admitted" in text_of(record(client, never, "outside"))


# Left early.

def test_patient_left_early(client, doctor, app):
    appt = visit(doctor, **admitted(call_ended_at=minutes_ago(20)))
    assert record(client, appt, "left_early", reason="Felt unwell").status_code == 302
    record(client, appt, "left_early", reason="Felt unwell, will call back")
    assert [e.action for e in AuditEvent.select().where(AuditEvent.action.startswith("visit.outcome"))
            .order_by(AuditEvent.id)] == ["visit.outcome_recorded", "visit.outcome_changed"]
    fill_checklist(client, appt)
    close(client, appt)
    pdf = report_text(app, appt)
    assert ("Outcome Patient left early. The patient left early; the call ended at 09:40 (ended in Cabinet by the "
            "practitioner). Why: Felt unwell, will call back") in pdf


def test_left_the_waiting_room_before_being_admitted(client, doctor, app):
    appt = visit(doctor, **consented(waiting_since=minutes_ago(29)))
    record(client, appt, "left_early", reason="Gone before I could admit")
    assert "Traceability Done" in states(client, appt)
    for item in ("report", "documents", "acts", "payment"):
        client.post(url(appt, f"waivers/{item}"), data={f"{item}-reason": "Not seen"})
    close(client, appt)
    assert "The patient left the waiting room before being admitted." in report_text(app, appt)


# Resuming a call ended by mistake.

def test_resume_then_end_again(client, doctor, app):
    appt = visit(doctor, **admitted(call_ended_at=minutes_ago(1)))
    patient = holding_link(app, appt)
    assert "The visit has ended" in text_of(patient.get(f"/v/{appt.ref}/call"))
    assert client.get(f"/today/{appt.id}/call").headers["Location"].endswith(url(appt))
    assert "Resume the call" in text_of(client.get(url(appt)))
    assert "Resume the call" in text_of(client.get("/today/"))
    with events.subscribe(events.waiting_channel(appt)) as heard:
        response = client.post(f"/today/{appt.id}/resume")
        assert response.status_code == 302 and response.headers["Location"].endswith(f"/today/{appt.id}/call")
        assert heard.get(timeout=1) == events.REFRESH
    appt = fresh(appt)
    assert appt.call_ended_at is None and appt.resumed_at is not None
    assert AuditEvent.get(AuditEvent.action == "call.resumed").user_id == doctor.id
    # The patient's ended page, pushed again live, offers to rejoin; on reload they are in the call.
    with app.test_request_context(), force_locale("en"):
        fragment = status_fragment(appt, oob=True)
    assert "Rejoin the call" in fragment and "data-redirect" not in fragment
    assert 'id="call"' in patient.get(f"/v/{appt.ref}/call").get_data(as_text=True)
    # Closing waits for the call to end again.
    refused = client.post(url(appt))
    assert refused.status_code == 409 and "The call is still going on (or was resumed)" in text_of(refused)
    appt.end_call(doctor)
    fill_checklist(client, appt)
    close(client, appt)
    assert "Resumed" in report_text(app, appt)


def test_resume_refused_once_the_link_closed_or_the_outcome_says_otherwise(client, doctor):
    # The link's window closes 60 minutes after the start: this visit began 2 hours ago.
    late = make_appointment(practitioner=doctor, starts_in=-dt.timedelta(hours=2), **admitted(
        call_ended_at=minutes_ago(1)))
    assert "Resume the call" not in text_of(client.get(url(late)))
    response = client.post(f"/today/{late.id}/resume")
    assert response.status_code == 409 and "can no longer be resumed" in text_of(response)
    assert fresh(late).call_ended_at is not None
    appt = visit(doctor, **admitted(call_ended_at=minutes_ago(1)))
    record(client, appt, "left_early")
    assert client.post(f"/today/{appt.id}/resume").status_code == 409
    assert not AuditEvent.select().where(AuditEvent.action == "call.resumed").exists()


def test_another_practitioner_cannot_resume(client, app):
    appt = visit(make_user("practitioner"), **admitted(call_ended_at=minutes_ago(1)))
    login_as(client, "practitioner")
    assert client.post(f"/today/{appt.id}/resume").status_code in (403, 404)
    assert fresh(appt).call_ended_at is not None


# Ending asks first.

def test_end_the_visit_asks_in_a_dialog(client, doctor):
    appt = make_appointment(practitioner=doctor, starts_in=-AGO, **admitted())
    html = client.get(f"/today/{appt.id}/call").get_data(as_text=True)
    assert 'aria-haspopup="dialog" aria-controls="end-dialog"' in html
    dialog = html[html.index('<dialog id="end-dialog"'):html.index("</dialog>")]
    assert "End the visit?" in dialog and "Keep the call going" in dialog and 'id="btn-end-confirm"' in dialog
    assert "You can resume the call while the patient’s link is open." in dialog


# The media the relay sees, noted for the end of a call lost outside Cabinet.

def test_media_seen_is_noted_at_most_every_30_seconds(client, doctor, clock):
    appt = visit(doctor, **admitted())
    assert appt.saw_media() is True
    first = fresh(appt).media_seen_at
    clock.shift(dt.timedelta(seconds=10))
    assert appt.saw_media() is False and fresh(appt).media_seen_at == first
    clock.shift(dt.timedelta(seconds=25))
    assert appt.saw_media() is True and fresh(appt).media_seen_at > first


def test_the_bridge_notes_media_while_it_flows(app, doctor):
    from webapp.relay import protocol as p
    from webapp.visit.bridge import Bridge
    appt = visit(doctor, **admitted())
    with app.test_request_context():
        bridge = Bridge(None, appt, "patient", None)
    bridge._own_state("connected")
    assert fresh(appt).media_seen_at is None
    bridge._stats(p.Stats("patient", received={"audio": 10, "video": 10}))
    assert fresh(appt).media_seen_at is not None


# The visits still to close, grouped by why.

def test_visits_to_close_grouped_with_a_one_click_no_show(client, doctor, app):
    names = {}
    for key, fields in (("no_show", {}), ("waited", consented(waiting_since=minutes_ago(29), status="waiting")),
                        ("lost", admitted()), ("ended", admitted(call_ended_at=minutes_ago(3)))):
        appt = visit(doctor, **fields)
        names[key] = appt
    text = text_of(client.get("/visits/open"))
    order = [text.index(t) for t in ("Did not come: never reached the waiting room (1)",
                                     "Never started: the patient came but was not admitted (1)",
                                     "Call not ended in Cabinet (page closed, device stopped?) (1)",
                                     "Call ended: checklist to finish (1)")]
    assert order == sorted(order)
    groups = re.split(r"Did not come|Never started|Call not ended in Cabinet|Call ended:", text)[1:]
    for group, key in zip(groups, ("no_show", "waited", "lost", "ended")):
        assert names[key].patient.last_name in group
    assert "Close as “did not come”…" in text and "Yes, close it" in text
    assert text.count("Yes, close it") == 1                         # only the visit nobody came to
    # The patient who waited is no no-show: refused, nothing changed.
    before = snapshot(client, names["waited"])
    refused = client.post(url(names["waited"], "no-show"))
    assert refused.status_code == 422 and "This patient came" in text_of(refused)
    assert db_snapshot() == before
    response = client.post(url(names["no_show"], "no-show"))
    assert response.status_code == 302 and response.headers["Location"].endswith("/visits/open")
    closed = fresh(names["no_show"])
    assert (closed.status, closed.outcome) == ("closed", "no_show")
    assert Message.select().count() == 0
    assert Payment.get(Payment.appointment == closed).status == "waived"
    assert "Patient did not come" in report_text(app, closed)
    assert "Did not come: never reached" not in text_of(client.get("/visits/open"))


def test_one_click_no_show_may_tell_the_patient(client, doctor):
    appt = visit(doctor)
    client.post(url(appt, "no-show"), data={"tell_patient": "y"})
    assert {m.kind for m in Message.select()} == {"missed"}


def test_the_list_no_longer_suggests_cancelling(client, doctor):
    visit(doctor)
    assert "Cancel it from the agenda" not in text_of(client.get("/visits/open"))


def test_with_htmx_an_outcome_answers_the_traceability_item(client, doctor):
    appt = visit(doctor, **admitted(call_ended_at=minutes_ago(2)))
    response = client.post(url(appt, "outcome"), data={"outcome": "left_early"}, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and html.lstrip().startswith('<section id="item-traceability"')
    assert 'id="closing-summary"' in html and "hx-swap-oob" in html
