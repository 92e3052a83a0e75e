"""The PDF report of a closed visit: its text, read back with pypdf, in English, in French, in other scripts."""
from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from pypdf import PdfReader

from conftest import make_appointment, make_patient, make_practice, make_user
from webapp.closing.pdf import build_report, new_pdf
from webapp.models import Addendum, Document, Incident, Payment, Practice, Report, VisitAct, Waiver

# 09:00 UTC on 10 March 2026 is 10:00 in Paris (winter time).
START = dt.datetime(2026, 3, 10, 9, 0)


def text_of_pdf(data: bytes) -> str:
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    text = "\n".join(page.extract_text() for page in reader.pages)
    return re.sub(r"[ \u00a0\u202f]+", " ", text)


def closed_visit(first_name="Zoë", last_name="Ærø", **patient):
    Practice.update(address="12 rue des Lilas\n75011 Paris").execute()
    make_practice()
    doctor = make_user("practitioner", name="Dr Alice Martin")
    appt = make_appointment(
        practitioner=doctor, patient=make_patient(first_name=first_name, last_name=last_name,
                                                  birth_date=dt.date(1970, 5, 17), **patient),
        starts_at=START, duration_minutes=20, mode="video", status="closed",
        consent_at=START - dt.timedelta(minutes=3), consent_version="2026-11", consent_locale="fr",
        admitted_at=START + dt.timedelta(minutes=2), call_ended_at=START + dt.timedelta(minutes=17),
        closed_at=START + dt.timedelta(minutes=25), closed_by=doctor)
    Incident.create(appointment=appt, at=START + dt.timedelta(minutes=6), kind="reconnecting", role="patient",
                    detail="ice restart")
    Report.create(appointment=appt, findings="Toux sèche depuis 3 jours, pas de fièvre.",
                  decisions="Repos, revoir si fièvre.", prescriptions="Paracétamol 1 g, 3 fois par jour.",
                  frozen_at=appt.closed_at)
    Addendum.create(appointment=appt, user=doctor, text="Résultats reçus : normaux.",
                    at=START + dt.timedelta(days=1))
    for source, kind, name in (("call", "other", "photo-gorge.jpg"), ("closing", "prescription", "ordonnance.pdf"),
                               ("report", "report", "compte-rendu-cabinet.pdf")):
        Document.create(appointment=appt, source=source, kind=kind, author="practitioner", filename=name,
                        content_type="application/pdf", size=10, sha256="0" * 64, storage_key=f"{len(name):x}ab")
    VisitAct.create(appointment=appt, code="TC", label="Téléconsultation", fee_cents=2500)
    VisitAct.create(appointment=appt, code="MCX", label="Majoration", fee_cents=500)
    Payment.create(appointment=appt, amount_cents=3000, status="requested")
    return appt


def build(app, appt, locale):
    with app.test_request_context():
        return text_of_pdf(build_report(appt, locale))


def test_english_report_holds_every_field(app):
    text = build(app, closed_visit(), "en")
    for expected in (
        "Cabinet des Tilleuls", "12 rue des Lilas", "75011 Paris", "Teleconsultation report",
        "Zoë Ærø", "17 May 1970", "Dr Alice Martin",
        "Cabinet 0.1.0", "Video",
        # Consent: time in Paris, text version, language.
        "10 Mar 2026, 09:57:00", "2026-11", "Français",
        # Scheduled 10:00-10:20 Paris, actual 10:02-10:17.
        "10 Mar 2026, 10:00:00 to 10:20", "10 Mar 2026, 10:02:00", "10 Mar 2026, 10:17:00",
        "10 Mar 2026, 10:06:00 — Reconnecting — patient — ice restart",
        "Toux sèche depuis 3 jours, pas de fièvre.", "Repos, revoir si fièvre.", "Paracétamol 1 g, 3 fois par jour.",
        "Addenda", "Résultats reçus : normaux.",
        "photo-gorge.jpg", "ordonnance.pdf",
        "TC", "Téléconsultation — €25.00", "MCX", "Total €30.00", "€30.00 — Requested",
        "Closed on", "10 Mar 2026, 10:25:00", "Closed by Dr Alice Martin",
    ):
        assert expected in text, expected
    # The report does not list itself among the documents.
    assert "compte-rendu-cabinet.pdf" not in text


def test_french_report_formats_dates_and_amounts_in_french(app):
    text = build(app, closed_visit(), "fr")
    for expected in ("17 mai 1970", "10 mars 2026, 10:00:00", "10:20", "25,00 €", "30,00 €", "Zoë Ærø",
                     "Paracétamol 1 g"):
        assert expected in text, expected
    assert "€30.00" not in text and "May 17" not in text


def test_french_report_labels(app):
    """The report's headings and labels in French."""
    text = build(app, closed_visit(), "fr")
    for expected in ("Compte rendu de téléconsultation", "Traçabilité", "Date de naissance", "Constatations",
                     "Prescriptions", "Actes et honoraires", "Demandé", "Clôturé par Dr Alice Martin"):
        assert expected in text, expected
    assert "Teleconsultation report" not in text


@pytest.mark.parametrize("first_name, last_name", [
    ("Дмитрий", "Иванов"),
    ("Νίκος", "Παπαδόπουλος"),
    ("Łukasz", "Żółć-Øster"),
])
def test_non_latin_names_are_in_the_text(app, first_name, last_name):
    text = build(app, closed_visit(first_name=first_name, last_name=last_name), "en")
    assert f"{first_name} {last_name}" in text


def test_arabic_name_is_shaped_and_read_in_order(app):
    """uharfbuzz joins the letters and orders the run: the name reads back as typed, not reversed."""
    text = build(app, closed_visit(first_name="سارة", last_name="حداد"), "en")
    assert "سارة حداد" in text and "ةراس" not in text


@pytest.mark.parametrize("locale", ["ar", "he"])
def test_right_to_left_report_is_shaped(app, locale):
    """A report in a right-to-left language builds, its right-to-left words shaped and in reading order."""
    appt = closed_visit(first_name="שרה", last_name="כהן")
    with app.test_request_context():
        data = build_report(appt, locale)
    assert "שרה כהן" in text_of_pdf(data)


def test_shaping_only_for_right_to_left_text(app):
    pdf = new_pdf()
    pdf.add_page()
    pdf.multi_cell(0, 6, "Ordonnance — Paracétamol", new_x="LMARGIN", new_y="NEXT")
    assert not pdf.text_shaping
    pdf.multi_cell(0, 6, "باراسيتامول 1 غ", new_x="LMARGIN", new_y="NEXT")
    assert pdf.text_shaping
    pdf.cell(0, 6, "Latin again")
    assert not pdf.text_shaping
    assert "باراسيتامول" in text_of_pdf(bytes(pdf.output()))   # pypdf sets the number apart, in visual order


def test_report_without_acts_or_payment_says_why(app):
    appt = closed_visit()
    VisitAct.delete().execute()
    Payment.delete().execute()
    Waiver.create(appointment=appt, item="payment", reason="Tiers payant intégral")
    text = build(app, appt, "en")
    assert "No act coded." in text and "Waived: Tiers payant intégral" in text


def test_new_pdf_writes_unicode(app):
    pdf = new_pdf()
    pdf.add_page()
    pdf.multi_cell(0, 6, "Ordonnance — Зоя Ærø, 1 g × 3")
    assert "Ordonnance — Зоя Ærø, 1 g × 3" in text_of_pdf(bytes(pdf.output()))


def test_instant_visit_without_patient_record(app):
    """An instant visit knows only a phone number: the report still builds and says what is missing."""
    appt = make_appointment(patient=None, contact_phone="+33699887766", starts_at=START, status="closed",
                            mode="audio", closed_at=START + dt.timedelta(minutes=10))
    text = build(app, appt, "en")
    assert "+33699887766" in text and "Audio only" in text and "Birth date not recorded" in text
    assert "Consent not recorded" in text and "Incidents None" in text and "No payment requested." in text
