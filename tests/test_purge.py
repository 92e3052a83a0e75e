"""flask purge: medical records 20 years after the patient's last visit, audit events after a year,
message texts after 30 days; --dry-run counts and changes nothing."""
from __future__ import annotations

import datetime as dt

import pytest

from conftest import db_snapshot, make_app, make_appointment, make_patient, make_user
from webapp.models import (
    Appointment, AuditEvent, ChatLine, Document, Message, Patient, Payment, Report, db,
)
from webapp.storage import DocumentMissing, documents
from webapp.uploads import store_document

PDF = b"%PDF-1.4 ordonnance"
TWENTY_YEARS = dt.timedelta(days=round(365.25 * 20) + 1)


def visit_with_record(app, patient, doctor):
    with app.app_context():
        appt = make_appointment(practitioner=doctor, patient=patient, starts_in=dt.timedelta(0))
        doc = store_document(appt, PDF, filename="o.pdf", content_type="application/pdf", source="closing",
                             kind="prescription", author="practitioner", audit=(doctor, "document.sent"))
        Report.create(appointment=appt, findings="Otite")
        ChatLine.create(appointment=appt, author="patient", text="Bonjour")
        Payment.create(appointment=appt, amount_cents=2500)
        Message.create(appointment=appt, channel="email", kind="closed", recipient=patient.email if patient else "x@y.z",
                       body="Votre compte rendu", html="<p>Votre compte rendu</p>", ics="BEGIN:VCALENDAR",
                       status="sent")
        return appt, doc.storage_key


@pytest.fixture
def records(app, clock):
    doctor = make_user("practitioner")
    gone = make_patient(last_name="Oubliée")
    kept = make_patient(last_name="Revenue")
    old = {"gone": visit_with_record(app, gone, doctor), "kept": visit_with_record(app, kept, doctor),
           "instant": visit_with_record(app, None, doctor)}
    clock.shift(TWENTY_YEARS)
    recent = visit_with_record(app, kept, doctor)          # the last visit restarts the patient's 20 years
    AuditEvent.record(doctor, "patient.viewed", patient=kept)
    return {"old": old, "recent": recent, "gone": gone, "kept": kept}


def test_dry_run_counts_and_changes_nothing(app, runner, records):
    before = db_snapshot()
    result = runner.invoke(args=["purge", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dry run, nothing changed" in result.output
    for line in ("patients: 1", "visits: 2", "documents: 2", "reports: 2", "chat lines: 2", "payments: 2",
                 "messages: 2", "message texts blanked: 1"):
        assert f"  {line}\n" in result.output
    assert "Oubliée" not in result.output and "Otite" not in result.output and "Revenue" not in result.output
    assert db_snapshot() == before
    with app.app_context():
        assert documents().load(records["old"]["gone"][1]) == PDF


def test_purge_deletes_old_records_audit_and_texts_then_their_files(app, runner, records):
    old_audit = AuditEvent.select().where(AuditEvent.at < records["recent"][0].created_at).count()
    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert "Deleted:" in result.output and "  visits: 2\n" in result.output
    assert f"  audit events: {old_audit}\n" in result.output
    (gone_visit, gone_key), (kept_visit, kept_key) = records["old"]["gone"], records["old"]["kept"]
    instant_key = records["old"]["instant"][1]
    assert Patient.get_or_none(Patient.id == records["gone"].id) is None
    assert {a.id for a in Appointment.select()} == {kept_visit.id, records["recent"][0].id}
    assert Document.select().count() == 2 and Report.select().count() == 2 and ChatLine.select().count() == 2
    assert Payment.select().count() == 2
    with app.app_context():
        for key in (gone_key, instant_key):
            with pytest.raises(DocumentMissing):
                documents().load(key)
        assert documents().load(kept_key) == PDF      # the patient came back: the whole record stays
    # A year of audit trail stays; older events go, whoever they are about.
    assert AuditEvent.select().where(AuditEvent.at < records["recent"][0].created_at).count() == 0
    assert AuditEvent.select().where(AuditEvent.action == "patient.viewed").count() == 1
    # The kept old visit's message keeps its row, not its texts; the recent one keeps both.
    old_message = Message.get(Message.appointment == kept_visit)
    assert (old_message.body, old_message.html, old_message.ics, old_message.status) == ("", "", "", "sent")
    assert Message.get(Message.appointment == records["recent"][0]).body == "Votre compte rendu"
    assert "  visits: 0\n" in runner.invoke(args=["purge"]).output


def test_pending_message_keeps_its_text_and_settings_move_the_cutoffs(tmp_path, clock):
    app = make_app(tmp_path, RETENTION_MESSAGE_BODY_DAYS=2, RETENTION_AUDIT_DAYS=400)
    try:
        appt = make_appointment()
        Message.create(appointment=appt, channel="sms", kind="reminder", recipient="+33600000000", body="Rappel")
        Message.create(appointment=appt, channel="sms", kind="invitation", recipient="+33600000000", body="Lien",
                       status="sent")
        AuditEvent.record("system", "test")
        clock.shift(dt.timedelta(days=3))
        output = app.test_cli_runner().invoke(args=["purge"]).output
        assert "  message texts blanked: 1\n" in output and "  audit events: 0\n" in output
        assert {m.body for m in Message.select()} == {"Rappel", ""}
    finally:
        db.close()
