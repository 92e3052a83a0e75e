"""The practice's patient records: search, create (with a warning on duplicates), the record
itself (the patient's whole history with the practice), edit, and merging two records.

(The patient's own side of a visit, reached through their link, is ``webapp/patient/``.)
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from flask import Blueprint, abort, g, redirect, request, url_for
from flask_babel import gettext as _, lazy_gettext as _l, lazy_pgettext, pgettext
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired

from .access import may_read_clinical, readable_visit_or_404, visible_practitioners
from .answers import form_status, no_store, render
from .auth import staff_required
from .forms import (FIRST_DAY, LAST_DAY, PatientForm, day_out_of_range, format_nir, locale_options, mask_nir,
                    normalize_phone, parse_day, row_id)
from .i18n import local_to_utc
from .models import (JOIN, Addendum, Appointment, AuditEvent, Document, Message, Patient, Payment, Practice, Report,
                     User, db, utcnow)
from .outcomes import outcome_titles
from .uploads import audited_download

bp = Blueprint("records", __name__, url_prefix="/patients")


class MergeForm(FlaskForm):
    other = StringField(validators=[DataRequired(_l("Choose the record to merge into this one."))])


def patient_or_404(patient_id: int) -> Patient:
    """The practice's patient; a record merged into another is gone from every page but its own."""
    patient = Patient.get_or_none(Patient.id == patient_id, Patient.practice == g.practice)
    if patient is None or patient.merged_into_id:
        abort(404)
    return patient


def nir_whole() -> bool:
    """Practitioners read the social-security number whole; other staff see it masked."""
    return g.user.role == "practitioner"


def shown_nir(patient: Patient) -> str:
    return format_nir(patient.nir) if nir_whole() else mask_nir(patient.nir)


def visit_outcome(appt: Appointment, now: dt.datetime) -> str:
    """What became of a visit, in a few words: its outcome once it has one (recorded at closing, or
    "held" when the call ran in Cabinet), else where it stands."""
    if appt.status == "cancelled":
        return pgettext("visit status", "Cancelled")
    if appt.outcome_shown:
        return str(outcome_titles()[appt.outcome_shown])
    if appt.status == "closed":
        return pgettext("visit outcome", "Held") if appt.call_ended_at or appt.admitted_at else _("Closed without a call")
    if appt.status == "in_call":
        return _("Call ended, to close") if appt.call_ended_at else _("In call")
    if appt.status == "waiting":
        return _("Patient waiting")
    return _("Not held") if appt.ends_at < now else _("Upcoming")


STATUS_LABELS = {"scheduled": lazy_pgettext("visit status", "Scheduled"),
                 "waiting": lazy_pgettext("visit status", "Waiting"), "in_call": _l("In call"),
                 "closed": lazy_pgettext("visit status", "Closed"), "cancelled": lazy_pgettext("visit status", "Cancelled"),
                 "requested": _l("Awaiting approval")}


def _search_args():
    text = request.args.get("q", "").strip()[:100]
    try:
        birth = dt.date.fromisoformat(request.args.get("birth", "")) if request.args.get("birth") else None
    except ValueError:
        birth = None
    phone = request.args.get("phone", "").strip()[:30]
    phone = (normalize_phone(phone) or "".join(c for c in phone if c.isdigit() or c == "+")) if phone else ""
    return text, birth, phone


@bp.route("/")
@staff_required()
@no_store
def index():
    """Search patients by name, birth date or phone."""
    text, birth, phone = _search_args()
    found = list(Patient.search(g.practice, text, birth, phone))
    return render("records/index.html", "records/_results.html", patients=found, q=text, birth=birth, phone=phone)


@bp.route("/choices")
@staff_required()
@no_store
def choices():
    """The patients matching what is typed in a booking form, as choices to pick."""
    text = request.args.get("patient_query", "").strip()[:100]
    found = list(Patient.search(g.practice, text, limit=10)) if text else []
    return render("agenda/_patient_choices.html", patients=found, chosen="")


def _save(form, patient, keep_nir: bool = False):
    with db.atomic():
        kept = patient.nir
        form.populate_obj(patient)
        if keep_nir and not form.nir.data:      # left blank by staff who saw it masked: unchanged
            patient.nir = kept
        patient.practice = g.practice
        patient.save()
        AuditEvent.record(g.user, "patient.saved", patient=patient)
    return redirect(url_for("records.record", patient_id=patient.id))


def _form_page(form, patient, status=None, duplicates=()):
    return render("records/form.html", "records/_form.html", form=form, patient=patient, duplicates=duplicates,
                  status=status or form_status(form), masked_nir=mask_nir(patient.nir) if patient else "")


@bp.route("/new", methods=["GET", "POST"])
@staff_required()
@no_store
def new():
    """Add a patient; one with the same names and birth date as a record on file asks first."""
    form = PatientForm()
    form.locale.choices = locale_options()
    if not form.validate_on_submit():
        return _form_page(form, None)
    duplicates = list(Patient.duplicates(g.practice, form.first_name.data, form.last_name.data,
                                         form.birth_date.data))
    if duplicates and not form.create_anyway.data:
        return _form_page(form, None, status=409, duplicates=duplicates)
    return _save(form, Patient())


@bp.route("/<int:patient_id>/edit", methods=["GET", "POST"])
@staff_required()
@no_store
def edit(patient_id):
    """A patient's details, to change."""
    patient = patient_or_404(patient_id)
    hidden = bool(patient.nir) and not nir_whole()
    form = PatientForm(obj=patient)
    form.locale.choices = locale_options()
    if form.validate_on_submit():
        return _save(form, patient, keep_nir=hidden)
    if request.method == "GET":
        if hidden:
            form.nir.data = ""
        AuditEvent.record(g.user, "patient.viewed", patient=patient)
    return _form_page(form, patient)


# The record: the patient's history with the practice.

@dataclass
class History:
    """A patient's visits that the user may see, within the filters, and what hangs from them.

    Every visit the user sees in the agenda (or reads, when records are shared) is listed with its
    administrative side (outcome, consent, payments, messages); reports, addenda and documents only
    of the visits whose clinical content the user may read (``access.may_read_clinical``)."""
    visits: list
    clinical_ids: set
    practitioners: list
    agenda_ids: set              # the practitioners whose agenda the user sees: their visits link there
    reports: list = field(default_factory=list)
    addenda: dict = field(default_factory=dict)
    documents: list = field(default_factory=list)
    payments: list = field(default_factory=list)
    messages: list = field(default_factory=list)

    @classmethod
    def of(cls, patient: Patient, practitioner_id=None, start=None, end=None) -> "History":
        query = (Appointment.select(Appointment, User, Practice)
                 .join(User, on=(Appointment.practitioner == User.id)).switch(Appointment).join(Practice)
                 .where(Appointment.patient == patient, Appointment.practice == g.practice)
                 .order_by(Appointment.starts_at.desc(), Appointment.id.desc()))
        agenda = {p.id for p in visible_practitioners()}
        seen = [v for v in query if v.practitioner_id in agenda or may_read_clinical(v)]
        practitioners = sorted({v.practitioner for v in seen}, key=lambda u: (u.name, u.id))
        tz = g.practice.timezone
        low = local_to_utc(dt.datetime.combine(start, dt.time()), tz) if start else None
        high = local_to_utc(dt.datetime.combine(end + dt.timedelta(days=1), dt.time()), tz) if end else None
        visits = [v for v in seen if (practitioner_id is None or v.practitioner_id == practitioner_id)
                  and (low is None or v.starts_at >= low) and (high is None or v.starts_at < high)]
        history = cls(visits, {v.id for v in visits if may_read_clinical(v)}, practitioners, agenda)
        history._load({v.id: v for v in visits})
        return history

    def _load(self, by_id: dict) -> None:
        ids, clinical = list(by_id), list(self.clinical_ids)
        if clinical:
            self.reports = _with_visits(Report.select().where(Report.appointment.in_(clinical),
                                                              Report.frozen_at.is_null(False))
                                        .order_by(Report.frozen_at.desc()), by_id)
            addenda = (Addendum.select(Addendum, User)
                       .join(User, JOIN.LEFT_OUTER, on=(Addendum.user == User.id))
                       .where(Addendum.appointment.in_(clinical)).order_by(Addendum.at, Addendum.id))
            for addendum in addenda:
                self.addenda.setdefault(addendum.appointment_id, []).append(addendum)
            # A visit closed with nothing written (a no-show) froze an empty report: nothing to read.
            self.reports = [r for r in self.reports if r.appointment_id in self.addenda
                            or any(t.strip() for t in (r.findings, r.decisions, r.prescriptions))]
            self.documents = _with_visits(Document.select().where(Document.appointment.in_(clinical))
                                          .order_by(Document.created_at.desc(), Document.id.desc()), by_id)
        if ids:
            self.payments = _with_visits(Payment.select().where(Payment.appointment.in_(ids))
                                         .order_by(Payment.requested_at.desc(), Payment.id.desc()), by_id)
            self.messages = _with_visits(Message.select().where(Message.appointment.in_(ids))
                                         .order_by(Message.created_at.desc(), Message.id.desc()), by_id)

    @property
    def consents(self) -> list:
        return [v for v in self.visits if v.consent_at is not None]


def _with_visits(rows, by_id: dict) -> list:
    """The rows, each given its visit already loaded (one query for the lot, not one per row)."""
    rows = list(rows)
    for row in rows:
        row.appointment = by_id[row.appointment_id]
    return rows


def _history_filters() -> tuple[dict, dict]:
    """The record's filters from the query string, and the errors found (a bad filter is ignored)."""
    errors, days = {}, {}
    for name in ("start", "end"):
        raw = request.args.get(name, "").strip()
        day = parse_day(raw)
        if raw and day is None:
            errors[name] = _("Enter a date as YYYY-MM-DD.")
        elif day is not None and not FIRST_DAY <= day <= LAST_DAY:
            errors[name] = str(day_out_of_range())
        else:
            days[name] = day
    if days.get("start") and days.get("end") and days["start"] > days["end"]:
        errors["end"] = _("The end date must not be before the start date.")
        days["end"] = None
    raw = request.args.get("practitioner", "")
    practitioner_id = row_id(raw)
    if raw and practitioner_id is None:
        errors["practitioner"] = _("Choose a practitioner from the list.")
    return {"practitioner_id": practitioner_id, "start": days.get("start"), "end": days.get("end")}, errors


@bp.route("/<int:patient_id>")
@staff_required()
@no_store
def record(patient_id):
    """The patient's history with the practice, filtered by practitioner and dates."""
    patient = Patient.get_or_none(Patient.id == patient_id, Patient.practice == g.practice) or abort(404)
    if patient.merged_into_id:
        return redirect(url_for("records.record", patient_id=patient.merged_into_id))
    filters, errors = _history_filters()
    history = History.of(patient, **filters)
    AuditEvent.record(g.user, "patient.viewed", patient=patient,
                      detail="record with clinical content" if history.clinical_ids else "record")
    return render("records/record.html", "records/_history.html", status=422 if errors else 200,
                  patient=patient, history=history, filters=filters, errors=errors, nir=shown_nir(patient),
                  now=utcnow(), outcome=visit_outcome, statuses=STATUS_LABELS)


@bp.route("/<int:patient_id>/documents/<int:document_id>")
@staff_required()
@no_store
def document(patient_id, document_id):
    """Download a document of one of the patient's visits: clinical content, for who may read it."""
    patient = patient_or_404(patient_id)
    doc = (Document.select().join(Appointment)
           .where(Document.id == document_id, Appointment.patient == patient).first()) or abort(404)
    appt = readable_visit_or_404(doc.appointment_id)
    if not may_read_clinical(appt):
        abort(403)
    return audited_download(doc, appt, g.user)


# Merging two records of the same person.

def merge_preview(keep: Patient, other: Patient) -> dict:
    """What a merge of ``other`` into ``keep`` moves, counted, and which details it fills in."""
    visits = Appointment.select(Appointment.id).where(Appointment.patient == other)
    return {
        "visits": visits.count(),
        "documents": Document.select().where(Document.appointment.in_(visits)).count(),
        "payments": Payment.select().where(Payment.appointment.in_(visits)).count(),
        "messages": Message.select().where(Message.appointment.in_(visits)).count(),
        "consents": visits.where(Appointment.consent_at.is_null(False)).count(),
        "events": AuditEvent.select().where(AuditEvent.patient == other).count(),
        "fills": [name for name in Patient.MERGE_FILLS if not getattr(keep, name) and getattr(other, name)],
    }


def _other_or_none(keep: Patient, raw) -> Patient | None:
    other_id = row_id(raw)
    if other_id is None or other_id == keep.id:
        return None
    return Patient.get_or_none(Patient.id == other_id, Patient.practice == g.practice,
                               Patient.merged_into.is_null())


def _merge_page(keep, form, other=None, status=200, error=""):
    text = request.args.get("q", "").strip()[:100]
    found = [p for p in Patient.search(g.practice, text, limit=20) if p.id != keep.id] if text and not other else []
    if not text and not other:      # the likeliest: records of the same person under the same names
        found = list(Patient.duplicates(g.practice, keep.first_name, keep.last_name, keep.birth_date,
                                        exclude_id=keep.id))
    return render("records/merge.html", "records/_merge.html", status=status, patient=keep, other=other, form=form,
                  found=found, q=text, error=error, preview=merge_preview(keep, other) if other else None,
                  shown_nir=shown_nir)


@bp.route("/<int:patient_id>/merge", methods=["GET", "POST"])
@staff_required()
@no_store
def merge(patient_id):
    """Merge another record of the same person into this one: choose it, see what moves, confirm."""
    keep = patient_or_404(patient_id)
    form = MergeForm()
    if request.method == "GET":
        return _merge_page(keep, form, other=_other_or_none(keep, request.args.get("other", "")))
    other = _other_or_none(keep, form.other.data) if form.validate_on_submit() else None
    if other is None:
        return _merge_page(keep, form, status=422,
                           error=_("Choose another record of this practice, not yet merged, to merge into this one."))
    keep.merge(other, g.user)
    return redirect(url_for("records.record", patient_id=keep.id, merged=other.id))
