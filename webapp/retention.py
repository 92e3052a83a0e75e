"""Retention: what ``flask purge`` deletes, and when (French guidance by default).

- Medical records: a patient's visits with everything kept with them (documents,
  reports and addenda, chat, coded acts, payments, messages, incidents, waivers),
  and the patient, ``RETENTION_RECORDS_YEARS`` (20) after the patient's last visit.
  A visit without a patient (an instant visit) counts from its own time.
- Audit events: after ``RETENTION_AUDIT_DAYS`` (365).
- Outbox messages: their texts (body, HTML, .ics) are blanked after
  ``RETENTION_MESSAGE_BODY_DAYS`` (30) once sent or failed; the row stays (who,
  when, status) as long as its visit.

Everything is deleted in one transaction; the encrypted files go after the commit,
so a failure leaves the records and their documents as they were.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import fn

from .models import (
    Addendum, Appointment, AuditEvent, ChatLine, Document, Incident, Message, Patient, Payment, Report,
    VisitAct, Waiver, db,
)

# What is counted, in the order printed; each with the model whose rows go with a visit.
VISIT_PARTS = (("documents", Document), ("reports", Report), ("addenda", Addendum), ("chat lines", ChatLine),
               ("coded acts", VisitAct), ("payments", Payment), ("messages", Message), ("incidents", Incident),
               ("waivers", Waiver))


@dataclass
class Cutoffs:
    records: datetime
    audit: datetime
    message_bodies: datetime

    @classmethod
    def at(cls, now: datetime, records_years: int, audit_days: int, message_body_days: int):
        # A year is 365.25 days here: "20 years" never ends a day early across leap years.
        return cls(now - timedelta(days=round(365.25 * records_years)), now - timedelta(days=audit_days),
                   now - timedelta(days=message_body_days))


def expired_patients(cutoff: datetime):
    """Patients with no visit since ``cutoff`` (and on file since before it)."""
    recent = Appointment.select(Appointment.id).where(Appointment.patient == Patient.id,
                                                      Appointment.starts_at >= cutoff)
    return Patient.select(Patient.id).where(Patient.created_at < cutoff, ~fn.EXISTS(recent))


def expired_visits(cutoff: datetime):
    return Appointment.select(Appointment.id).where(
        (Appointment.patient.in_(expired_patients(cutoff)))
        | (Appointment.patient.is_null() & (Appointment.starts_at < cutoff)))


def expired_bodies(cutoff: datetime):
    return Message.select(Message.id).where(Message.created_at < cutoff, Message.status != "pending",
                                            (Message.body != "") | (Message.html != "") | (Message.ics != ""))


def purge(cutoffs: Cutoffs, dry_run: bool, delete_file) -> dict:
    """Counts of what goes (or would go), per kind; ``delete_file(storage_key)`` after the commit.

    The rows are chosen by subqueries, never by lists of ids, so a large purge stays one
    statement per table (and within SQLite's limit on parameters).
    """
    visits, patients = expired_visits(cutoffs.records), expired_patients(cutoffs.records)
    audit = AuditEvent.select(AuditEvent.id).where((AuditEvent.at < cutoffs.audit) | AuditEvent.appointment.in_(visits)
                                                   | AuditEvent.patient.in_(patients))
    bodies = expired_bodies(cutoffs.message_bodies).where(Message.appointment.is_null()
                                                          | Message.appointment.not_in(visits))
    with db.atomic():
        counts = {"patients": patients.count(), "visits": visits.count()}
        counts.update({label: model.select().where(model.appointment.in_(visits)).count()
                       for label, model in VISIT_PARTS})
        counts["audit events"] = audit.count()
        counts["message texts blanked"] = bodies.count()
        if dry_run:
            return counts
        keys = [d.storage_key for d in Document.select(Document.storage_key).where(Document.appointment.in_(visits))]
        Message.update(body="", html="", ics="").where(Message.id.in_(bodies)).execute()
        AuditEvent.delete().where(AuditEvent.id.in_(audit)).execute()
        for _label, model in VISIT_PARTS:
            model.delete().where(model.appointment.in_(visits)).execute()
        Appointment.delete().where(Appointment.id.in_(visits)).execute()
        # Still the same patients: what chose them (no visit since the cutoff) did not change.
        Patient.delete().where(Patient.id.in_(patients)).execute()
    for key in keys:
        delete_file(key)
    return counts
