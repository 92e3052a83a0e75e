"""Closing a visit: the checklist, its items, waivers, bad input, the one-transaction close, addenda."""
from __future__ import annotations

import datetime as dt
import io
import threading

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from webapp.models import (
    Act, Addendum, Appointment, AuditEvent, Document, Incident, Message, Payment, Report, VisitAct, Waiver, utcnow,
)
from webapp.storage import documents

from conftest import HX, login_as, make_appointment, make_user, text_of

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


@pytest.fixture
def visit(app):
    """A finished video visit: consent given, admitted, call ended, one incident, one file from the patient."""
    now = utcnow()
    appt = make_appointment(starts_in=-dt.timedelta(minutes=30), status="in_call",
                            admitted_at=now - dt.timedelta(minutes=28), call_ended_at=now - dt.timedelta(minutes=5),
                            consent_at=now - dt.timedelta(minutes=29), consent_version="2026-01", consent_locale="en")
    Incident.create(appointment=appt, kind="reconnecting", role="patient", detail="ice restart")
    with app.app_context():
        key = documents().store(PNG)
    Document.create(appointment=appt, source="call", kind="other", author="patient", filename="rash-photo.png",
                    content_type="image/png", size=len(PNG), sha256="0" * 64, storage_key=key)
    return appt


@pytest.fixture
def doctor(client, visit):
    return login_as(client, visit.practitioner)


def url(appt, what="close", **kw):
    return f"/visits/{appt.id}/{what}"


def fill_checklist(client, appt):
    """Do every item, as a practitioner would without JavaScript."""
    assert client.post(url(appt, "report"), data={"findings": "Éruption cutanée", "decisions": "Crème",
                                                  "prescriptions": ""}).status_code == 302
    assert client.post(url(appt, "documents"), data={"kind": "prescription", "file": (io.BytesIO(PDF), "ordo.pdf")},
                       content_type="multipart/form-data").status_code == 302
    assert client.post(url(appt, "acts"), data={"code": "TC", "fee": ""}).status_code == 302
    assert client.post(url(appt, "payment"), data={"amount": "25,50"}).status_code == 302


# The page.

def test_checklist_shows_traceability_and_what_is_missing(client, doctor, visit, app):
    response = client.get(url(visit))
    text = text_of(response)
    assert response.status_code == 200
    assert f"Cabinet {app.config['VERSION']}" in text
    assert "text version 2026-01" in text and "English" in text
    assert "Reconnecting · patient: ice restart" in text
    assert "rash-photo.png" in text
    assert "Still missing: Report, Documents sent, Act coded, Payment requested." in text
    assert AuditEvent.select().where(AuditEvent.action == "visit.checklist_viewed").count() == 1


def test_traceability_missing_until_the_call_ended(client, doctor, visit):
    Appointment.update(call_ended_at=None).where(Appointment.id == visit.id).execute()
    text = text_of(client.get(url(visit)))
    assert "the call has not ended" in text
    assert "Still missing: Traceability," in text


def test_incident_note_added(client, doctor, visit):
    response = client.post(url(visit, "incidents"), data={"detail": "Patient's sound cut for a minute"}, headers=HX)
    assert response.status_code == 200
    assert "Patient&#39;s sound cut for a minute" in response.get_data(as_text=True)
    note = Incident.get(Incident.kind == "note")
    assert note.user_id == doctor.id and note.appointment_id == visit.id
    assert client.post(url(visit, "incidents"), data={"detail": "  "}).status_code == 422


def test_another_practitioner_cannot_see_it_and_a_secretary_cannot_change_it(client, visit):
    login_as(client, "practitioner")
    assert client.get(url(visit)).status_code == 404
    login_as(client, "secretary")
    assert client.get(url(visit)).status_code == 200
    assert client.post(url(visit, "report"), data={"findings": "x"}).status_code == 403
    assert client.post(url(visit), data={}).status_code == 403
    assert Report.select().count() == 0


# The report and its autosave.

def test_report_autosave_with_htmx_answers_the_saved_time(client, doctor, visit):
    response = client.post(url(visit, "report"), data={"findings": "Toux sèche", "decisions": "", "prescriptions": ""},
                           headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.lstrip().startswith('<span id="report-saved"')
    assert "Saved at" in html
    assert 'id="state-report"' in html and "Done" in html      # the badge, out of band
    assert "HX-Request" in response.headers["Vary"]
    assert Report.get(Report.appointment == visit).findings == "Toux sèche"


def test_report_saved_without_javascript_redirects_back(client, doctor, visit):
    response = client.post(url(visit, "report"), data={"findings": "A", "decisions": "B", "prescriptions": "C"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/visits/{visit.id}/close#item-report")
    report = Report.get(Report.appointment == visit)
    assert (report.findings, report.decisions, report.prescriptions) == ("A", "B", "C")
    assert "Saved at" in text_of(client.get(url(visit)))


def test_report_too_long_is_refused_and_changes_nothing(client, doctor, visit):
    response = client.post(url(visit, "report"), data={"findings": "x" * 20_001}, headers=HX)
    assert response.status_code == 422
    assert "Not saved" in text_of(response)
    assert Report.select().count() == 0


# Documents.

@pytest.mark.parametrize("name, data, kind, stored_name, content_type", [
    ("ordonnance.pdf", PDF, "prescription", "ordonnance.pdf", "application/pdf"),
    ("photo.JPG", JPEG, "other", "photo.jpg", "image/jpeg"),
    ("scan", PNG, "other", "scan.png", "image/png"),
    ("../../etc/passwd.pdf", PDF, "other", "passwd.pdf", "application/pdf"),
    ('<script>alert(1)</script>".png', PNG, "other", "script.png", "image/png"),
    ("résultat\t\x07.exe", PDF, "other", "résultat.pdf", "application/pdf"),
    ("", PDF, "prescription", "document.pdf", "application/pdf"),
    ("....", PNG, "other", "document.png", "image/png"),
    ("photo\u202egnp.exe", PNG, "other", "photognp.png", "image/png"),
    ("a" * 300 + ".pdf", PDF, "other", "a" * 100 + ".pdf", "application/pdf"),
])
def test_upload_kept_by_content_with_a_safe_name(client, doctor, visit, app, name, data, kind, stored_name,
                                                 content_type):
    response = client.post(url(visit, "documents"), data={"kind": kind, "file": (io.BytesIO(data), name)},
                           content_type="multipart/form-data", headers=HX)
    assert response.status_code == 200
    doc = Document.get(Document.source == "closing")
    assert (doc.filename, doc.content_type, doc.kind, doc.author, doc.size) == (
        stored_name, content_type, kind, "practitioner", len(data))
    with app.app_context():
        assert documents().load(doc.storage_key) == data


@pytest.mark.parametrize("name, data, message", [
    ("virus.pdf", b"MZ\x90\x00 this is an executable", "Only PDF, JPEG and PNG files can be sent."),
    ("page.png", b"<html><script>alert(1)</script></html>", "Only PDF, JPEG and PNG files can be sent."),
    ("empty.pdf", b"", "The file is empty."),
    ("big.pdf", b"%PDF-" + b"0" * (1024 * 1024), "The file is larger than 1 MB."),
    (None, None, "Choose a file to send."),
])
def test_upload_refused(client, doctor, visit, name, data, message):
    visit.practice.max_upload_mb = 1
    visit.practice.save()
    form = {"kind": "other"}
    if name is not None:
        form["file"] = FileStorage(io.BytesIO(data), name)
    # Encoded here, in memory: the test client would spool a big body to a file it never closes.
    boundary, body = encode_multipart(form)
    response = client.post(url(visit, "documents"), data=body,
                           content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 422
    assert message in text_of(response)
    assert Document.select().where(Document.source == "closing").count() == 0


def test_prescription_written_becomes_a_pdf(client, doctor, visit, app):
    response = client.post(url(visit, "prescription"), data={"text": "Paracétamol 1 g, 3 fois par jour — 5 jours"},
                           headers=HX)
    assert response.status_code == 200
    doc = Document.get(Document.source == "closing")
    assert doc.kind == "prescription" and doc.content_type == "application/pdf"
    import pypdf
    with app.app_context():
        text = pypdf.PdfReader(io.BytesIO(documents().load(doc.storage_key))).pages[0].extract_text()
    patient = visit.patient      # the surname in capitals, as French prescriptions write it
    assert "Paracétamol 1 g" in text and f"{patient.first_name} {patient.last_name.upper()}" in text
    assert doctor.name in text
    assert client.post(url(visit, "prescription"), data={"text": ""}).status_code == 422


def test_file_names_carry_the_practice_s_date_not_utc_s(client, doctor, visit, clock):
    """At 00:30 in Paris it is still the day before in UTC: the patient's files are named for Paris."""
    clock.move_to(dt.datetime(2036, 6, 11, 22, 30, tzinfo=dt.timezone.utc))      # 12 June, 00:30 in Paris
    login_as(client, doctor)            # a day and a half later, yesterday's session has ended
    client.post(url(visit, "prescription"), data={"text": "Paracétamol 1 g"})
    for item in ("report", "acts", "payment"):
        client.post(url(visit, f"waivers/{item}"), data={f"{item}-reason": "Non applicable"})
    assert client.post(url(visit)).status_code == 302
    names = sorted(d.filename for d in Document.select().where(Document.source != "call"))
    assert names == ["patient-report-2036-06-12-en.pdf", "prescription-2036-06-12.pdf", "report-2036-06-12-en.pdf"]


def test_document_download_only_for_the_visits_staff(client, doctor, visit, app):
    doc = Document.get(Document.source == "call")
    response = client.get(url(visit, f"documents/{doc.id}"))
    assert response.status_code == 200 and response.data == PNG
    other = make_appointment(visit.practitioner)
    assert client.get(url(other, f"documents/{doc.id}")).status_code == 404


# Acts.

def test_act_coded_from_the_catalogue_with_its_default_or_a_changed_fee(client, doctor, visit):
    assert client.post(url(visit, "acts"), data={"code": "tc"}, headers=HX).status_code == 200
    assert client.post(url(visit, "acts"), data={"code": "TLS", "fee": "8,50"}, headers=HX).status_code == 200
    rows = [(a.code, a.fee_cents) for a in VisitAct.select().order_by(VisitAct.id)]
    assert rows == [("TC", 2500), ("TLS", 850)]
    assert VisitAct.get(VisitAct.code == "TC").label == "Téléconsultation du médecin spécialiste"


@pytest.mark.parametrize("form, message", [
    ({"code": "XYZ"}, "Unknown act code “XYZ”: choose an act from the catalogue."),
    ({"code": ""}, "Choose an act."),
    ({"code": "TC", "fee": "-5"}, "Enter an amount in euros like 25 or 25,50."),
    ({"code": "TC", "fee": "5000"}, "At most 1000 €."),
    ({"code": "TC", "fee": "abc"}, "Enter an amount in euros like 25 or 25,50."),
])
def test_act_refused(client, doctor, visit, form, message):
    response = client.post(url(visit, "acts"), data=form, headers=HX)
    assert response.status_code == 422
    assert message in text_of(response)
    assert VisitAct.select().count() == 0


def test_inactive_act_and_duplicate_refused(client, doctor, visit):
    Act.catalogue(visit.practice)
    Act.update(active=False).where(Act.code == "TCG").execute()
    assert client.post(url(visit, "acts"), data={"code": "TCG"}).status_code == 422
    assert client.post(url(visit, "acts"), data={"code": "TC"}).status_code == 302
    response = client.post(url(visit, "acts"), data={"code": "TC"})
    assert response.status_code == 422 and "already coded" in text_of(response)
    assert VisitAct.select().count() == 1


# Payment.

@pytest.mark.parametrize("amount, cents", [
    ("25", 2500), ("25,50", 2550), ("25.5", 2550), ("25,50 €", 2550), ("1000", 100_000), ("0,01", 1),
])
def test_payment_requested(client, doctor, visit, amount, cents):
    assert client.post(url(visit, "payment"), data={"amount": amount}, headers=HX).status_code == 200
    payment = Payment.get(Payment.appointment == visit, Payment.status == "requested")
    assert (payment.amount_cents, payment.provider) == (cents, "offline")


@pytest.mark.parametrize("amount, message", [
    ("", "Enter an amount."),
    ("-25", "Enter an amount in euros like 25 or 25,50."),
    ("0", "The amount must be more than 0 €."),
    ("0,00", "The amount must be more than 0 €."),
    ("1000,01", "At most 1000 €."),
    ("99999999", "Enter an amount in euros like 25 or 25,50."),
    ("25,555", "Enter an amount in euros like 25 or 25,50."),
    ("1e3", "Enter an amount in euros like 25 or 25,50."),
    ("NaN", "Enter an amount in euros like 25 or 25,50."),
    ("vingt", "Enter an amount in euros like 25 or 25,50."),
])
def test_payment_amount_refused(client, doctor, visit, amount, message):
    response = client.post(url(visit, "payment"), data={"amount": amount}, headers=HX)
    assert response.status_code == 422
    assert message in text_of(response)
    assert Payment.select().count() == 0


def test_payment_preset_and_a_new_amount_replaces_the_request(client, doctor, visit):
    assert "25,00" in text_of(client.get(url(visit))) or "25.00" in text_of(client.get(url(visit)))
    client.post(url(visit, "payment"), data={"preset": "30.00", "amount": ""})
    client.post(url(visit, "payment"), data={"amount": "15"})
    assert [(p.amount_cents, p.status) for p in Payment.select().order_by(Payment.id)] == [
        (3000, "cancelled"), (1500, "requested")]


# Waivers.

@pytest.mark.parametrize("item, reason, status, message", [
    ("payment", "Tiers payant intégral", 200, "Waived: Tiers payant intégral"),
    ("report", "Renouvellement simple", 200, "Waived: Renouvellement simple"),
    ("documents", "Aucun document nécessaire", 200, "Waived: Aucun document nécessaire"),
    ("acts", "Acte non facturé", 200, "Waived: Acte non facturé"),
    ("payment", "", 422, "Give a reason for waiving this item."),
    ("report", "   ", 422, "Give a reason for waiving this item."),
    ("acts", "x" * 301, 422, "At most 300 characters."),
    ("traceability", "Pas besoin", 422, "Traceability is recorded by Cabinet and cannot be waived."),
])
def test_waivers(client, doctor, visit, item, reason, status, message):
    response = client.post(url(visit, f"waivers/{item}"), data={f"{item}-reason": reason}, headers=HX)
    assert response.status_code == status
    assert message in text_of(response)
    waiver = Waiver.get_or_none(Waiver.appointment == visit, Waiver.item == item)
    assert (waiver is not None) == (status == 200)
    if status == 200:
        assert waiver.reason == reason and waiver.user_id == doctor.id


def test_unknown_item_is_not_found(client, doctor, visit):
    assert client.post(url(visit, "waivers/coffee"), data={"coffee-reason": "x"}).status_code == 404


def test_payment_waiver_shows_in_payments_and_can_be_taken_back(client, doctor, visit):
    client.post(url(visit, "payment"), data={"amount": "25"})
    client.post(url(visit, "waivers/payment"), data={"payment-reason": "Tiers payant"})
    assert [(p.status, p.note) for p in Payment.select().order_by(Payment.id)] == [
        ("cancelled", ""), ("waived", "Tiers payant")]
    assert "Waived: Tiers payant" in text_of(client.get(url(visit)))
    client.post(url(visit, "waivers/payment/delete"))
    assert Waiver.select().count() == 0
    assert [p.status for p in Payment.select()] == ["cancelled"]
    assert "Payment requested" in text_of(client.get(url(visit))).split("Still missing:")[1]


# Closing.

def test_closing_blocked_while_items_are_missing(client, doctor, visit):
    client.post(url(visit, "report"), data={"findings": "Vu"})
    response = client.post(url(visit))
    assert response.status_code == 422
    assert "The visit cannot be closed yet. Missing: Documents sent, Act coded, Payment requested." in text_of(response)
    visit = Appointment.get_by_id(visit.id)
    assert visit.closed_at is None and visit.status == "in_call"
    assert Document.select().where(Document.source == "report").count() == 0


def test_the_whole_closing_flow(client, doctor, visit, app):
    fill_checklist(client, visit)
    assert "Still missing" not in text_of(client.get(url(visit)))
    response = client.post(url(visit))
    assert response.status_code == 302
    closed = Appointment.get_by_id(visit.id)
    assert closed.status == "closed" and closed.closed_by_id == doctor.id and closed.closed_at is not None
    assert Report.get(Report.appointment == visit).frozen_at == closed.closed_at
    reports = {d.kind: d for d in Document.select().where(Document.source == "report")}
    assert set(reports) == {"report", "patient_report"}
    assert reports["report"].locale == "en" and reports["patient_report"].locale == "en"
    with app.app_context():
        assert documents().load(reports["patient_report"].storage_key).startswith(b"%PDF-")
    assert AuditEvent.select().where(AuditEvent.action == "appointment.closed").count() == 1
    assert Message.select().where(Message.appointment == visit, Message.kind == "closed").count() >= 1
    text = text_of(client.get(url(visit)))
    assert "Closed on" in text and "Close the visit" not in text


def test_patient_copy_in_the_patients_language(client, doctor, visit):
    visit.practice.default_locale = "fr"
    visit.practice.save()
    Appointment.update(locale="en").where(Appointment.id == visit.id).execute()
    fill_checklist(client, visit)
    assert client.post(url(visit)).status_code == 302
    locales = {d.kind: d.locale for d in Document.select().where(Document.source == "report")}
    assert locales == {"report": "fr", "patient_report": "en"}


def test_closing_with_everything_waived(client, doctor, visit):
    for item in ("report", "documents", "acts", "payment"):
        client.post(url(visit, f"waivers/{item}"), data={f"{item}-reason": "Consultation interrompue"})
    assert client.post(url(visit)).status_code == 302
    assert Appointment.get_by_id(visit.id).closed_at is not None
    assert Report.get(Report.appointment == visit).frozen_at is not None


def test_report_typed_just_before_closing_is_kept(client, doctor, visit):
    for item in ("documents", "acts", "payment"):
        client.post(url(visit, f"waivers/{item}"), data={f"{item}-reason": "Non applicable"})
    response = client.post(url(visit), data={"findings": "Dernière phrase tapée", "decisions": "", "prescriptions": ""},
                           headers=HX)
    assert response.status_code == 302      # htmx follows it to the closed checklist
    assert Report.get(Report.appointment == visit).findings == "Dernière phrase tapée"
    assert Appointment.get_by_id(visit.id).closed_at is not None


def test_double_submit_closes_once(client, doctor, visit):
    fill_checklist(client, visit)
    assert client.post(url(visit)).status_code == 302
    second = client.post(url(visit))
    assert second.status_code == 409
    assert "This visit is already closed. Nothing was changed." in text_of(second)
    assert Document.select().where(Document.source == "report").count() == 2
    assert AuditEvent.select().where(AuditEvent.action == "appointment.closed").count() == 1
    assert Message.select().where(Message.kind == "closed").count() == \
        len({m.channel for m in Message.select().where(Message.kind == "closed")})


def test_two_tabs_closing_at_the_same_moment_close_once(app, doctor, visit):
    clients = [app.test_client() for _ in range(2)]
    for c in clients:
        login_as(c, doctor)
    fill_checklist(clients[0], visit)
    barrier, answers = threading.Barrier(2), []

    def close(c):
        barrier.wait()
        answers.append(c.post(url(visit)).status_code)

    threads = [threading.Thread(target=close, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(answers) == [302, 409]
    assert Document.select().where(Document.source == "report").count() == 2
    assert AuditEvent.select().where(AuditEvent.action == "appointment.closed").count() == 1


def test_a_failing_pdf_store_saves_nothing_half_way(client, doctor, visit, app, monkeypatch):
    fill_checklist(client, visit)
    store = app.extensions["documents"]
    real, calls = store.store, []

    def store_once_then_fail(data):
        calls.append(real(data))
        if len(calls) == 2:
            raise OSError("disk full")
        return calls[-1]

    monkeypatch.setattr(store, "store", store_once_then_fail)
    response = client.post(url(visit))
    assert response.status_code == 500
    assert "the visit was not closed" in text_of(response)
    visit = Appointment.get_by_id(visit.id)
    assert visit.closed_at is None and visit.status == "in_call"
    assert Report.get(Report.appointment == visit).frozen_at is None
    assert Document.select().where(Document.source == "report").count() == 0
    assert AuditEvent.select().where(AuditEvent.action == "appointment.closed").count() == 0
    assert not (store.root / calls[0][:2] / calls[0]).exists()      # the first copy was removed
    monkeypatch.undo()
    assert client.post(url(visit)).status_code == 302                # and a retry closes it


# After closing.

def test_report_frozen_after_closing_and_addendum_added(client, doctor, visit):
    fill_checklist(client, visit)
    client.post(url(visit))
    response = client.post(url(visit, "report"), data={"findings": "Changé après coup"}, headers=HX)
    assert response.status_code == 409
    assert "Add an addendum" in text_of(response)
    late = client.post(url(visit, "report"), data={"findings": "Éruption cutanée", "decisions": "Crème",
                                                   "prescriptions": ""}, headers=HX)
    assert late.status_code == 200          # an autosave of the very words frozen, arriving late, is fine
    assert Report.get(Report.appointment == visit).findings == "Éruption cutanée"
    for what, data in (("acts", {"code": "TCG"}), ("payment", {"amount": "10"}),
                       ("waivers/acts", {"acts-reason": "x"}), ("incidents", {"detail": "x"})):
        assert client.post(url(visit, what), data=data).status_code == 409
    response = client.post(url(visit, "addenda"), data={"text": "Résultats reçus : normaux."}, headers=HX)
    assert response.status_code == 200
    assert "Résultats reçus : normaux." in text_of(response)
    addendum = Addendum.get(Addendum.appointment == visit)
    assert addendum.user_id == doctor.id and addendum.at >= Appointment.get_by_id(visit.id).closed_at
    assert client.post(url(visit, "addenda"), data={"text": ""}).status_code == 422


def test_addendum_refused_before_closing(client, doctor, visit):
    assert client.post(url(visit, "addenda"), data={"text": "Trop tôt"}).status_code == 409
    assert Addendum.select().count() == 0


# The visits to close.

def test_unclosed_lists_past_and_admitted_visits_oldest_first(client, app):
    doctor = make_user("practitioner", name="Dr Zoé")
    now = utcnow()
    old = make_appointment(doctor, starts_in=-dt.timedelta(days=2))
    admitted = make_appointment(doctor, starts_in=dt.timedelta(minutes=3), status="in_call", admitted_at=now)
    make_appointment(doctor, starts_in=dt.timedelta(hours=3))                               # future
    make_appointment(doctor, starts_in=-dt.timedelta(days=1), status="cancelled")
    make_appointment(doctor, starts_in=-dt.timedelta(days=1), status="closed", closed_at=now)
    running = make_appointment(doctor, starts_in=-dt.timedelta(minutes=5))                  # not over yet
    someone_else = make_appointment(starts_in=-dt.timedelta(days=1))
    login_as(client, doctor)
    html = client.get("/visits/open").get_data(as_text=True)
    links = [f"/visits/{a.id}/close" for a in (old, admitted)]
    assert all(link in html for link in links)
    assert html.index(links[0]) < html.index(links[1])
    assert f"/visits/{running.id}/close" not in html and f"/visits/{someone_else.id}/close" not in html
    assert html.count("/close\"") == 2
    login_as(client, "secretary")
    assert f"/visits/{someone_else.id}/close" in client.get("/visits/open").get_data(as_text=True)


def test_agenda_detail_links_to_the_checklist_of_a_visit_in_call(client, doctor, visit):
    html = client.get(f"/agenda/{visit.id}").get_data(as_text=True)
    assert f'href="/visits/{visit.id}/close"' in html and "Close the visit" in html
    scheduled = make_appointment(visit.practitioner)
    assert "/close" not in client.get(f"/agenda/{scheduled.id}").get_data(as_text=True)


@pytest.mark.browser
def test_in_chromium_the_report_autosaves_and_closing_keeps_the_last_words(tmp_path):
    from browser import TOTP_SECRET, chromium, live_server, sign_in_with_code
    from conftest import PASSWORD, make_app, make_practice
    app = make_app(tmp_path, WTF_CSRF_ENABLED=True)
    now = utcnow()
    with app.app_context():
        make_practice()
        doctor = make_user("practitioner", email="doc@cabinet.example.org", totp_secret=TOTP_SECRET)
        appt = make_appointment(doctor, starts_in=-dt.timedelta(minutes=30), status="in_call",
                                admitted_at=now - dt.timedelta(minutes=28), call_ended_at=now,
                                consent_at=now - dt.timedelta(minutes=29), consent_version="1", consent_locale="en")
    with live_server(app) as base, chromium() as browser:
        page = browser.new_page(locale="en-GB")
        problems = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        sign_in_with_code(page, base, "doc@cabinet.example.org", PASSWORD)
        page.wait_for_url(f"{base}/agenda/**")
        page.goto(f"{base}/visits/{appt.id}/close")
        page.evaluate("window.__sameDocument = true")

        page.type("#findings", "Toux depuis 3 jours")          # no click on Save: the autosave does it
        page.wait_for_selector("#report-saved >> text=Saved at")
        assert Report.get(Report.appointment == appt).findings == "Toux depuis 3 jours"
        assert page.inner_text("#state-report") == "Done"

        for item in ("documents", "acts", "payment"):
            page.click(f"#item-{item} details.waive summary")
            page.fill(f"#{item}-reason", "Non applicable")
            page.click(f"#item-{item} details.waive button[type=submit]")
            page.wait_for_selector(f"#state-{item} >> text=Waived")
        page.fill("#decisions", "Sirop")                      # and close at once, before the autosave
        page.click("#closing-summary button.primary")
        page.wait_for_timeout(1500)                           # the autosave still on its way arrives late
        page.wait_for_selector("#closing-summary >> text=Closed on")
        assert page.query_selector("#closing-summary .error") is None
        assert page.evaluate("window.__sameDocument") is True
        assert problems == []
    report = Report.get(Report.appointment == appt)
    assert report.decisions == "Sirop" and report.frozen_at is not None
    assert Appointment.get_by_id(appt.id).status == "closed"


# Clinical content: the visit's practitioner's (and the practice's practitioners' when it shares records).

@pytest.fixture
def closed_visit(client, doctor, visit):
    """The visit closed by its practitioner, with a report, a prescription, a PDF report and an addendum."""
    fill_checklist(client, visit)
    assert client.post(url(visit)).status_code == 302
    assert client.post(url(visit, "addenda"), data={"text": "Résultats reçus : normaux."}).status_code == 302
    return Appointment.get_by_id(visit.id)


CLINICAL_WORDS = ("Éruption cutanée", "Crème", "Résultats reçus", "rash-photo.png", "ordo.pdf", ".pdf")


@pytest.mark.parametrize("role", ["secretary", "admin"])
def test_a_secretary_or_an_admin_sees_the_record_without_its_clinical_content(client, closed_visit, role):
    login_as(client, role)
    response = client.get(url(closed_visit))
    text, html = text_of(response), response.get_data(as_text=True)
    assert response.status_code == 200
    # The administrative side stays: traceability, coded acts, payment, who closed it.
    assert "Technical incidents" in text and "Reconnecting · patient: ice restart" in text
    assert "TC" in text and "€25.50" in text and "Closed on" in text
    assert text.count("Clinical content: for the visit's practitioner only.") == 2
    assert not [word for word in CLINICAL_WORDS if word in text]
    assert f"/visits/{closed_visit.id}/documents/" not in html
    assert "Findings" not in text and "Addenda" not in text


@pytest.mark.parametrize("role", ["secretary", "admin"])
def test_a_secretary_or_an_admin_cannot_download_the_visits_documents(client, closed_visit, role):
    docs = list(Document.select().where(Document.appointment == closed_visit))
    assert {d.kind for d in docs} >= {"other", "prescription", "report", "patient_report"}
    login_as(client, role)
    for doc in docs:
        response = client.get(url(closed_visit, f"documents/{doc.id}"))
        assert response.status_code == 403 and "You are not allowed to see this page." in text_of(response)
        assert b"%PDF" not in response.data and b"PNG" not in response.data
    assert not AuditEvent.select().where(AuditEvent.action == "document.downloaded").exists()


def test_the_practitioner_still_reads_and_downloads_everything(client, doctor, closed_visit):
    text = text_of(client.get(url(closed_visit)))
    assert "Éruption cutanée" in text and "Résultats reçus : normaux." in text and "rash-photo.png" in text
    assert "Clinical content: for the visit's practitioner only." not in text
    for doc in list(Document.select().where(Document.appointment == closed_visit)):
        assert client.get(url(closed_visit, f"documents/{doc.id}")).status_code == 200


def test_other_practitioners_read_the_record_only_when_the_practice_shares_records(client, closed_visit):
    from webapp.models import Practice
    colleague = login_as(client, "practitioner")
    doc = Document.get(Document.appointment == closed_visit, Document.kind == "prescription")
    assert client.get(url(closed_visit)).status_code == 404                     # off: not even seen
    assert client.get(url(closed_visit, f"documents/{doc.id}")).status_code == 404
    Practice.update(share_records=True).execute()
    response = client.get(url(closed_visit))
    assert response.status_code == 200 and "Éruption cutanée" in text_of(response)
    assert "Only the visit's practitioner can close it." not in text_of(response)   # it is closed
    download = client.get(url(closed_visit, f"documents/{doc.id}"))
    assert download.status_code == 200 and download.data.startswith(b"%PDF")
    assert AuditEvent.get(AuditEvent.action == "document.downloaded").user_id == colleague.id
    # Reading is not writing: the record stays its practitioner's.
    assert client.post(url(closed_visit, "addenda"), data={"text": "Avis du confrère"}).status_code == 404
    assert Addendum.select().count() == 1
    # Nor does sharing reach the agenda or the call's staff side.
    assert client.get(f"/agenda/{closed_visit.id}").status_code == 404
    assert client.get(f"/today/{closed_visit.id}/files/{doc.id}").status_code == 404
    # Secretaries still do not read it.
    login_as(client, "secretary")
    assert "Éruption cutanée" not in text_of(client.get(url(closed_visit)))
    assert client.get(url(closed_visit, f"documents/{doc.id}")).status_code == 403


def test_an_open_visit_hides_its_report_from_a_secretary_too(client, doctor, visit):
    client.post(url(visit, "report"), data={"findings": "Toux sèche", "decisions": "", "prescriptions": ""})
    login_as(client, "secretary")
    text = text_of(client.get(url(visit)))
    assert "Toux sèche" not in text and "rash-photo.png" not in text
    assert "Only the visit's practitioner can close it." in text and "Done" in text    # the report's badge
