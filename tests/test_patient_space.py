"""The patient's space after a closed visit: documents, payment, chat; nothing of another visit; closes in time."""
from __future__ import annotations

import datetime as dt
import html
import time

import pytest

from conftest import holding_link, make_appointment, make_patient, make_practice, text_of
from webapp.models import Appointment, AuditEvent, ChatLine, Document, Payment, Waiver, utcnow
from webapp.access import COOKIE, patient_link_url
from webapp.storage import documents
from webapp.tokens import make_patient_cookie


def add_document(app, appt, data: bytes, filename: str, kind="other", source="closing",
                 content_type="application/pdf", locale=""):
    with app.app_context():
        key = documents().store(data)
    return Document.create(appointment=appt, source=source, kind=kind, author="practitioner", filename=filename,
                           content_type=content_type, size=len(data), sha256="0" * 64, storage_key=key,
                           locale=locale)


def close(appt, when=None):
    Appointment.update(status="closed", closed_at=when or utcnow()).where(Appointment.id == appt.id).execute()


@pytest.fixture
def visit(app):
    """A visit that happened an hour ago, with a patient holding its link, not yet closed."""
    make_practice().__class__.update(payment_instructions="Virement : FR76 3000 1007 9412 3456 7890 185\n"
                                                          "Référence : votre nom").execute()
    appt = make_appointment(starts_in=-dt.timedelta(hours=1), status="in_call", admitted_at=utcnow(),
                            patient=make_patient(first_name="Zoë", last_name="Ærø"))
    return appt


def test_closed_visit_opens_the_space(app, visit):
    patient = holding_link(app, visit)
    close(visit)
    response = patient.get(f"/v/{visit.ref}/")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/v/{visit.ref}/space")
    page = patient.get(f"/v/{visit.ref}/space")
    assert page.status_code == 200 and "Your documents" in text_of(page)
    assert AuditEvent.select().where(AuditEvent.action == "patient.space_viewed",
                                     AuditEvent.appointment == visit.id).exists()


def test_space_not_open_before_the_visit_is_closed(app, visit):
    patient = holding_link(app, visit)
    prescription = add_document(app, visit, b"%PDF-1.4 early", "ordonnance.pdf", source="call")
    response = patient.get(f"/v/{visit.ref}/space")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/v/{visit.ref}/")
    response = patient.get(f"/v/{visit.ref}/space/documents/{prescription.id}")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/v/{visit.ref}/")
    # A future visit's link still shows the "come back later" page, as before.
    future = make_appointment(starts_in=dt.timedelta(days=2))
    later = holding_link(app, future)
    assert later.get(f"/v/{future.ref}/space").headers["Location"].endswith(f"/v/{future.ref}/")
    assert "It is a little early" in text_of(later.get(f"/v/{future.ref}/"))


def test_patient_downloads_their_documents_and_their_copy_of_the_report(app, visit):
    patient = holding_link(app, visit)
    scan = add_document(app, visit, b"\x89PNG\r\n\x1a\n photo", "photo éruption.png", source="call",
                        content_type="image/png")
    prescription = add_document(app, visit, b"%PDF-1.4 prescription", "ordonnance.pdf", kind="prescription")
    theirs = add_document(app, visit, b"%PDF-1.4 patient copy", "compte-rendu.pdf", kind="patient_report",
                          source="report", locale="en")
    practice_copy = add_document(app, visit, b"%PDF-1.4 practice copy", "report-practice.pdf", kind="report",
                                 source="report", locale="fr")
    close(visit)
    page = text_of(patient.get(f"/v/{visit.ref}/space"))
    assert "photo éruption.png" in page and "ordonnance.pdf" in page
    assert "Report of your teleconsultation" in page and "report-practice.pdf" not in page
    for doc, data in ((scan, b"\x89PNG\r\n\x1a\n photo"), (prescription, b"%PDF-1.4 prescription"),
                      (theirs, b"%PDF-1.4 patient copy")):
        response = patient.get(f"/v/{visit.ref}/space/documents/{doc.id}")
        assert response.status_code == 200 and response.get_data() == data
        assert response.headers["Content-Type"] == doc.content_type
        assert response.headers["Content-Disposition"].startswith("attachment;")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "no-store" in response.headers["Cache-Control"]
    assert "photo%20%C3%A9ruption.png" in patient.get(
        f"/v/{visit.ref}/space/documents/{scan.id}").headers["Content-Disposition"]
    # The practice's copy of the report is not the patient's to download.
    assert patient.get(f"/v/{visit.ref}/space/documents/{practice_copy.id}").status_code == 404
    downloads = AuditEvent.select().where(AuditEvent.action == "patient.document_downloaded",
                                          AuditEvent.appointment == visit.id).count()
    assert downloads == 4


def test_another_patients_document_is_a_plain_404(app, visit):
    patient = holding_link(app, visit)
    other = make_appointment(starts_in=-dt.timedelta(hours=2), status="closed", closed_at=utcnow(),
                             patient=make_patient(first_name="Secret", last_name="Voisin"))
    theirs = add_document(app, other, b"%PDF-1.4 someone else", "voisin-ordonnance.pdf", kind="prescription")
    close(visit)
    response = patient.get(f"/v/{visit.ref}/space/documents/{theirs.id}")
    missing = patient.get(f"/v/{visit.ref}/space/documents/987654")
    assert response.status_code == 404 and missing.status_code == 404
    body = response.get_data(as_text=True)
    # The same page as for an id that does not exist (the CSRF token aside, which changes with time).
    assert text_of(response) == text_of(missing) and "This page does not exist." in text_of(response)
    assert "voisin" not in body.lower() and "Secret" not in body and "someone else" not in body
    # Nor through the other appointment's address: this cookie does not open it.
    response = patient.get(f"/v/{other.ref}/space/documents/{theirs.id}")
    assert response.status_code == 403 and b"someone else" not in response.get_data()
    assert "voisin" not in text_of(patient.get(f"/v/{visit.ref}/space")).lower()


def test_space_shows_the_payment_and_the_instructions(app, visit):
    patient = holding_link(app, visit)
    payment = Payment.create(appointment=visit, amount_cents=2500)
    close(visit)
    text = text_of(patient.get(f"/v/{visit.ref}/space"))
    assert "€25.00" in text and "Requested" in text
    assert "FR76 3000 1007 9412 3456 7890 185" in text and "Référence : votre nom" in text
    Payment.update(status="paid", paid_at=utcnow()).where(Payment.id == payment.id).execute()
    text = text_of(patient.get(f"/v/{visit.ref}/space"))
    assert "Paid" in text and "your payment has been received" in text and "FR76" not in text


def test_space_says_when_nothing_is_to_pay(app, visit):
    patient = holding_link(app, visit)
    Waiver.create(appointment=visit, item="payment", reason="tiers payant")
    close(visit)
    text = text_of(patient.get(f"/v/{visit.ref}/space"))
    assert "Nothing to pay for this teleconsultation." in text and "tiers payant" not in text


def test_space_shows_the_chat_of_this_visit_only(app, visit):
    patient = holding_link(app, visit)
    ChatLine.create(appointment=visit, author="practitioner", user=visit.practitioner,
                    text="Montrez-moi la zone, s'il vous plaît.")
    ChatLine.create(appointment=visit, author="patient", text="Voilà <b>ici</b>")
    other = make_appointment(starts_in=-dt.timedelta(hours=3), status="closed", closed_at=utcnow())
    ChatLine.create(appointment=other, author="patient", text="Message d'un autre patient")
    close(visit)
    response = patient.get(f"/v/{visit.ref}/space")
    text = html.unescape(text_of(response))
    assert "Montrez-moi la zone, s'il vous plaît." in text and f"{visit.practitioner.name}" in text
    assert "You" in text and "Voilà <b>ici</b>" not in response.get_data(as_text=True)   # escaped
    assert "Voilà &lt;b&gt;ici&lt;/b&gt;" in response.get_data(as_text=True)
    assert "autre patient" not in text


def test_space_closes_after_its_time(app, visit):
    """The practice shortened the space to one day after this link's cookie was given out 3 days ago."""
    patient = holding_link(app, visit)
    doc = add_document(app, visit, b"%PDF-1.4 old", "ordonnance.pdf", kind="prescription")
    three_days_ago = utcnow() - dt.timedelta(days=3)
    Appointment.update(starts_at=three_days_ago, status="closed",
                       closed_at=three_days_ago + dt.timedelta(minutes=30)).where(Appointment.id == visit.id).execute()
    visit.practice.__class__.update(patient_space_days=1).execute()
    response = patient.get(f"/v/{visit.ref}/space")
    assert response.status_code == 410
    assert "The space of this teleconsultation has closed" in text_of(response)
    assert "ordonnance.pdf" not in text_of(response)
    response = patient.get(f"/v/{visit.ref}/space/documents/{doc.id}")
    assert response.status_code == 410 and response.get_data() != b"%PDF-1.4 old"


def test_link_and_cookie_expire_with_the_space(app):
    """Long after the visit, the link says it has expired and an old cookie no longer opens anything."""
    long_ago = utcnow() - dt.timedelta(days=40)
    appt = make_appointment(starts_at=long_ago.replace(second=0, microsecond=0), status="closed",
                            closed_at=long_ago + dt.timedelta(minutes=25))
    client = app.test_client()
    with app.test_request_context():
        link = patient_link_url(appt).replace("https://cabinet.test", "")
    response = client.get(link)
    assert response.status_code == 410 and "This link has expired" in text_of(response)
    # A cookie signed when the space was open, replayed after: refused.
    stale = make_patient_cookie(app.config["SECRET_KEY"], appt.id, appt.link_version, time.time() - 60)
    client.set_cookie(COOKIE, stale, path=f"/v/{appt.ref}/")
    response = client.get(f"/v/{appt.ref}/space")
    assert response.status_code == 403 and "Your documents" not in text_of(response)


def test_the_call_route_serves_the_patient_only_the_calls_files(app, visit):
    """/v/<ref>/files/<id> is the call's download: the report's practice copy, and what was sent at
    closing, are not the patient's to take there (the space serves what is theirs)."""
    patient = holding_link(app, visit)
    photo = add_document(app, visit, b"\x89PNG\r\n\x1a\n photo", "photo.png", source="call",
                         content_type="image/png")
    prescription = add_document(app, visit, b"%PDF-1.4 prescription", "ordonnance.pdf", kind="prescription")
    practice_copy = add_document(app, visit, b"%PDF-1.4 practice copy", "report-practice.pdf", kind="report",
                                 source="report", locale="fr")
    theirs = add_document(app, visit, b"%PDF-1.4 patient copy", "compte-rendu.pdf", kind="patient_report",
                          source="report", locale="en")
    assert patient.get(f"/v/{visit.ref}/files/{photo.id}").get_data() == b"\x89PNG\r\n\x1a\n photo"
    missing = patient.get(f"/v/{visit.ref}/files/987654")
    for doc in (practice_copy, prescription, theirs):
        response = patient.get(f"/v/{visit.ref}/files/{doc.id}")
        assert response.status_code == 404 and b"%PDF" not in response.get_data()
        assert text_of(response) == text_of(missing)
    # Once closed, the link opens only the space: the call's route leads there.
    close(visit)
    assert patient.get(f"/v/{visit.ref}/files/{photo.id}").headers["Location"].endswith(f"/v/{visit.ref}/space")
    # The practice's copy is refused by every patient route; the rest is in the space.
    assert patient.get(f"/v/{visit.ref}/space/documents/{practice_copy.id}").status_code == 404
    assert patient.get(f"/v/{visit.ref}/space/documents/{theirs.id}").status_code == 200
    downloads = [(e.action, e.detail) for e in AuditEvent.select().where(AuditEvent.actor == "patient",
                                                                        AuditEvent.action.contains("downloaded"))]
    assert downloads == [("document.downloaded", f"document {photo.id}"),
                         ("patient.document_downloaded", f"document {theirs.id}")]


def test_one_rule_says_which_documents_the_patient_may_download(app, visit):
    made = {(source, kind): add_document(app, visit, b"%PDF-1.4", f"{source}-{kind}.pdf", kind=kind, source=source)
            for source, kind in (("call", "other"), ("closing", "prescription"), ("report", "report"),
                                 ("report", "patient_report"))}
    assert {d.id for d in Document.for_patient(visit)} == {
        made[k].id for k in (("call", "other"), ("closing", "prescription"), ("report", "patient_report"))}
    assert [d.id for d in Document.for_patient(visit, call_only=True)] == [made[("call", "other")].id]
