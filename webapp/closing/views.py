"""The checklist page, its items' forms, the close, the addenda, and the visits still to close."""
from __future__ import annotations

import datetime as dt

from flask import abort, current_app, g, redirect, request, url_for
from flask_babel import force_locale, gettext as _

from ..access import appointment_or_404, may_read_clinical, may_resume, readable_visit_or_404, \
    visible_practitioners
from ..answers import no_store, render, wants_fragment
from ..auth import staff_required
from ..cooperative import offload
from ..events import announce
from ..i18n import local_to_utc, utc_to_local
from ..models import Act, Addendum, Appointment, AuditEvent, Document, Incident, Payment, Report, VisitAct, \
    Waiver, db, utcnow
from ..outcomes import end_sources, outcome_titles
from ..payments_providers import DEFAULT_PROVIDER, provider_for
from ..uploads import audited_download, clean_filename, dated_filename, sniff, store_document
from . import bp
from .checklist import ITEMS, WAIVABLE, Checklist, item_titles, outcome_sentence, state_names
from .forms import ActForm, AddendumForm, CloseForm, IncidentForm, OutcomeForm, PaymentForm, PrescriptionForm, \
    ReportForm, UploadForm, WaiverForm
from ..money import plain as euros
from .pdf import _incident_label as incident_label, _role_label as role_label
from .prescription import render_prescription
from .acts import offered, preselected
from ..profiles import missing_for_prescription
from .service import AlreadyClosed, close_visit


REPORT_FIELDS = ("findings", "decisions", "prescriptions")


# Loading, checking and answering, shared by every view below.

def _visit(appointment_id: int, edit: bool = True) -> Appointment:
    """The visit, if the user may see it; to change it, they must be its practitioner.

    Seeing it is not reading its clinical side: the page hides that from whoever may not
    (``may_read_clinical``), and the documents refuse them.
    """
    appt = appointment_or_404(appointment_id) if edit else readable_visit_or_404(appointment_id)
    if appt.status == "cancelled":
        abort(404)
    if edit and appt.practitioner_id != g.user.id:
        abort(403)
    return appt


def _forms(cl: Checklist, given: dict) -> dict:
    payment = cl.payment if cl.payment is not None and cl.payment.status == "requested" else None
    forms = {
        "report": ReportForm(formdata=None, obj=cl.report),
        "incident": IncidentForm(formdata=None),
        "upload": UploadForm(formdata=None),
        "prescription": PrescriptionForm(formdata=None),
        "act": ActForm(formdata=None),
        "payment": PaymentForm(formdata=None, data={"amount": euros(payment.amount_cents) if payment else ""}),
        "addendum": AddendumForm(formdata=None),
        "outcome": OutcomeForm(formdata=None, data={"outcome": cl.appt.outcome_shown or None,
                                                    "reason": cl.appt.outcome_reason,
                                                    "phone_time": _hhmm(cl.appt.outcome_at)
                                                    if cl.appt.outcome == "phone" else ""}),
        "close": CloseForm(formdata=None),
        "waivers": {item: WaiverForm(formdata=None, prefix=item) for item in WAIVABLE},
    }
    waiver = given.pop("waiver", None)
    if waiver is not None:
        forms["waivers"][waiver[0]] = waiver[1]
    forms.update(given)
    return forms


def _page(appt, section: str | None = None, status: int = 200, error: str | None = None,
          fragment: str | None = None, **given):
    """The checklist page, or one item's fragment for htmx (with the badges and summary out of band)."""
    cl = Checklist(appt)
    fragment = fragment or (f"closing/_{section}.html" if section else None)
    partial = wants_fragment() and fragment is not None    # a whole page (e.g. after closing) has nothing out of band
    closed = appt.closed_at is not None
    return render("closing/checklist.html", fragment, status=status, appt=appt, cl=cl, error=error,
                  forms=_forms(cl, given), titles=item_titles(), states=state_names(), partial=partial,
                  closed=closed, can_edit=not closed and appt.practitioner_id == g.user.id,
                  clinical=may_read_clinical(appt),
                  presets=_presets(), **_acts_and_profile(appt, given),
                  version=current_app.config["VERSION"], incident_label=incident_label, role_label=role_label,
                  addenda=list(appt.addenda.order_by(Addendum.at)), outcome_titles=outcome_titles(),
                  end_sources=end_sources(), outcome_text=outcome_sentence(appt, _hhmm),
                  call_running=_call_running(appt), patient_phone=_phone(appt), resumable=may_resume(appt))


def _hhmm(value) -> str:
    """A UTC time as the practice reads it on a clock: HH:MM."""
    return utc_to_local(value, g.practice.timezone).strftime("%H:%M") if value else ""


def _phone(appt) -> str:
    return appt.contact_phone or (appt.patient.phone if appt.patient_id else "")


# A call whose media the relay saw this recently is still going on (it notes media every 30 s).
RUNNING_WITHIN = dt.timedelta(seconds=90)


def _call_running(appt) -> bool:
    """In call, not ended, with media seen just now: a call in progress (or resumed) is not closed."""
    return (appt.status == "in_call" and appt.admitted_at is not None and appt.call_ended_at is None
            and appt.media_seen_at is not None and utcnow() - appt.media_seen_at < RUNNING_WITHIN)


def _acts_and_profile(appt, given: dict) -> dict:
    """The practitioner's acts first, one chosen already: the visit type's, or when the choice is
    plain; what their prescriptions lack."""
    own, others = offered(g.practice, appt.practitioner)
    booked_as = appt.visit_type.act_code if appt.visit_type_id else ""
    if "act" in given:
        act_code = given["act"].code.data
    elif booked_as and any(act.code == booked_as for act in own + others):
        act_code = booked_as
    else:
        act_code = preselected(appt.practitioner, own)
    return {"acts": own, "other_acts": others, "act_code": act_code,
            "profile_missing": missing_for_prescription(appt.practitioner)}


def _presets() -> list[int]:
    return [int(p) for p in g.practice.payment_presets.split(",") if p.strip().isdigit() and int(p) > 0]


def _saved(appt, section: str):
    """After a change: the item's fragment for htmx, a redirect back to it otherwise."""
    if wants_fragment():     # the item and, out of band, the badges and summary: more than after_change swaps
        return _page(appt, section)
    return redirect(url_for("closing.checklist", appointment_id=appt.id, _anchor=f"item-{section}"))


def _refused(appt, section: str | None = None):
    """409: the visit is closed, its checklist no longer changes."""
    message = _("This visit is closed: its checklist can no longer change. Add an addendum to the report instead.")
    appt = Appointment.get_by_id(appt.id)      # it may have been closed while this request waited
    return _page(appt, section if wants_fragment() else None, status=409, error=message)


def _store(appt, data: bytes, kind: str, filename: str, content_type: str, locale: str = "") -> Document:
    return store_document(appt, data, filename=filename, content_type=content_type, source="closing", kind=kind,
                          author="practitioner", user=g.user, locale=locale, audit=(g.user, "document.sent"))


# The page.

@bp.route("/<int:appointment_id>/close")
@staff_required()
@no_store
def checklist(appointment_id):
    """The closing checklist: what is done, missing or waived."""
    appt = _visit(appointment_id, edit=False)
    AuditEvent.record(g.user, "visit.checklist_viewed", appt)
    return _page(appt)


@bp.route("/<int:appointment_id>/report", methods=["POST"])
@staff_required()
@no_store
def save_report(appointment_id):
    """Save the report (autosaved while typing, or with the button)."""
    appt = _visit(appointment_id)
    form = ReportForm()
    if not form.validate():
        return _page(appt, "report_saved", status=422, report=form)
    if appt.closed_at or not _write_report(appt, form):
        return _frozen(appt, form)
    return _saved(appt, "report_saved") if wants_fragment() else _saved(appt, "report")


def _frozen(appt, form):
    """An autosave that arrives after the close it was sent with finds the same words frozen: fine.
    Different words are refused (409): the report no longer changes."""
    report = Report.get(Report.appointment == appt)
    if all((getattr(form, name).data or "") == getattr(report, name) for name in REPORT_FIELDS):
        return _page(Appointment.get_by_id(appt.id), "report_saved")
    return _refused(appt, "report_saved")


def _write_report(appt, form) -> bool:
    """Save the report unless it is frozen (False then).

    The UPDATE comes first, so SQLite takes the write lock at once: an autosave that arrives while
    the visit is being closed waits for the close, then finds the report frozen and changes nothing.
    """
    fields = {name: getattr(form, name).data or "" for name in REPORT_FIELDS}
    with db.atomic():
        if (Report.update(**fields, updated_at=utcnow())
                .where(Report.appointment == appt, Report.frozen_at.is_null()).execute()):
            return True
        if Report.select().where(Report.appointment == appt).exists():
            return False
        Report.create(appointment=appt, **fields)
    return True


@bp.route("/<int:appointment_id>/incidents", methods=["POST"])
@staff_required()
@no_store
def add_incident(appointment_id):
    """Add the practitioner's note to the call's incidents."""
    appt = _visit(appointment_id)
    if appt.closed_at:
        return _refused(appt, "traceability")
    form = IncidentForm()
    if not form.validate():
        return _page(appt, "traceability", status=422, incident=form)
    Incident.create(appointment=appt, kind="note", role="practitioner", detail=form.detail.data, user=g.user)
    return _saved(appt, "traceability")


@bp.route("/<int:appointment_id>/documents", methods=["POST"])
@staff_required()
@no_store
def upload(appointment_id):
    """Send the patient a PDF, JPEG or PNG, recognised by its content."""
    appt = _visit(appointment_id)
    if appt.closed_at:
        return _refused(appt, "documents")
    form = UploadForm()
    data, error = _read_upload(request.files.get("file"))
    if not form.validate() or error:
        if error:
            form.file.errors = [*form.file.errors, error]
        return _page(appt, "documents", status=422, upload=form)
    content_type, ext = sniff(data, heic=False)
    _store(appt, data, form.kind.data, clean_filename(request.files["file"].filename, ext), content_type)
    return _saved(appt, "documents")


def _read_upload(upload):
    """(bytes, None), or (None, the reason it cannot be sent)."""
    limit = g.practice.max_upload_mb * 1024 * 1024
    data = upload.stream.read(limit + 1) if upload is not None else b""
    if not data:
        return None, _("The file is empty.") if upload is not None and upload.filename else _("Choose a file to send.")
    if len(data) > limit:
        return None, _("The file is larger than %(mb)s MB.", mb=g.practice.max_upload_mb)
    if sniff(data, heic=False) is None:
        return None, _("Only PDF, JPEG and PNG files can be sent. This file is none of them.")
    return data, None


@bp.route("/<int:appointment_id>/prescription", methods=["POST"])
@staff_required()
@no_store
def write_prescription(appointment_id):
    """Render the prescription typed in the form as a PDF, sent to the patient."""
    appt = _visit(appointment_id)
    if appt.closed_at:
        return _refused(appt, "documents")
    form = PrescriptionForm()
    if not form.validate():
        return _page(appt, "documents", status=422, prescription=form)
    locale = appt.effective_locale(g.practice.default_locale)
    data = offload(render_prescription, appt, g.user, form.text.data, locale, weight_kg=form.weight.kg)
    today = utc_to_local(utcnow(), g.practice.timezone)       # the practice's date, not UTC's
    with force_locale(locale):        # the file's name in the language of its text
        # Translators: a word in a PDF's file name (prescription-2036-06-10.pdf): lowercase
        name = dated_filename(_("prescription"), today, "pdf")
    _store(appt, data, "prescription", name, "application/pdf", locale)
    return _saved(appt, "documents")


@bp.route("/<int:appointment_id>/documents/<int:document_id>")
@staff_required()
@no_store
def document(appointment_id, document_id):
    """Download one of the visit's documents: clinical content, for who may read it."""
    appt = _visit(appointment_id, edit=False)
    if not may_read_clinical(appt):
        abort(403)
    doc = Document.get_or_none(Document.id == document_id, Document.appointment == appt) or abort(404)
    return audited_download(doc, appt, g.user)


@bp.route("/<int:appointment_id>/acts", methods=["POST"])
@staff_required()
@no_store
def add_act(appointment_id):
    """Code an act from the practice's active catalogue; its fee may be changed for this visit."""
    appt = _visit(appointment_id)
    if appt.closed_at:
        return _refused(appt, "acts")
    form = ActForm()
    code = (form.code.data or "").upper()
    act = Act.catalogue(g.practice, active_only=True).where(Act.code == code).first() if code else None
    ok = form.validate()
    if act is None:
        form.code.errors.append(_("Unknown act code “%(code)s”: choose an act from the catalogue.", code=code)
                                if code else _("Choose an act."))
    elif VisitAct.select().where(VisitAct.appointment == appt, VisitAct.code == act.code).exists():
        form.code.errors.append(_("This act is already coded for this visit."))
    if not ok or form.code.errors:
        return _page(appt, "acts", status=422, act=form)
    fee = act.fee_cents if form.fee.cents is None else form.fee.cents
    VisitAct.create(appointment=appt, act=act, code=act.code, label=act.label, fee_cents=fee)
    return _saved(appt, "acts")


@bp.route("/<int:appointment_id>/acts/<int:visit_act_id>/delete", methods=["POST"])
@staff_required()
@no_store
def remove_act(appointment_id, visit_act_id):
    """Remove an act coded by mistake."""
    appt = _visit(appointment_id)
    if appt.closed_at:
        return _refused(appt, "acts")
    VisitAct.delete().where(VisitAct.id == visit_act_id, VisitAct.appointment == appt).execute()
    return _saved(appt, "acts")


@bp.route("/<int:appointment_id>/payment", methods=["POST"])
@staff_required()
@no_store
def request_payment(appointment_id):
    """Ask the patient for an amount, from the presets or typed."""
    appt = _visit(appointment_id)
    if appt.closed_at:
        return _refused(appt, "payment")
    form = PaymentForm()
    if request.form.get("preset"):
        form.amount.data = request.form["preset"]
    if not form.validate():
        return _page(appt, "payment", status=422, payment=form)
    with db.atomic():         # a new amount replaces the request: the old one is cancelled
        _drop_payment_waiver(appt)
        _cancel_requests(appt)
        provider_for(DEFAULT_PROVIDER).request(appt, form.amount.cents, g.user)
    return _saved(appt, "payment")


def _cancel_requests(appt) -> None:
    for old in Payment.select().where(Payment.appointment == appt, Payment.status == "requested"):
        provider_for(old).cancel(old, g.user)


def _drop_payment_waiver(appt) -> None:
    Waiver.delete().where(Waiver.appointment == appt, Waiver.item == "payment").execute()
    Payment.delete().where(Payment.appointment == appt, Payment.status == "waived").execute()


@bp.route("/<int:appointment_id>/waivers/<item>", methods=["POST"])
@staff_required()
@no_store
def waive(appointment_id, item):
    """Waive a checklist item, with a reason."""
    appt = _visit(appointment_id)
    if item not in ITEMS:
        abort(404)
    if appt.closed_at:
        return _refused(appt, item)
    form = WaiverForm(prefix=item)
    if item not in WAIVABLE:
        return _page(appt, item, status=422,
                     error=_("Traceability is recorded by Cabinet and cannot be waived."))
    if not form.validate():
        return _page(appt, item, status=422, waiver=(item, form))
    with db.atomic():
        Waiver.delete().where(Waiver.appointment == appt, Waiver.item == item).execute()
        Waiver.create(appointment=appt, item=item, reason=form.reason.data, user=g.user)
        if item == "payment":
            _waive_payment(appt, form.reason.data)
        AuditEvent.record(g.user, "checklist.waived", appt, detail=item)
    return _saved(appt, item)


def _waive_payment(appt, reason: str) -> None:
    """No payment asked: any request is cancelled, and the payments list shows it waived."""
    _cancel_requests(appt)
    Payment.delete().where(Payment.appointment == appt, Payment.status == "waived").execute()
    Payment.create(appointment=appt, amount_cents=0, status="waived", provider="offline", note=reason[:300],
                   updated_by=g.user)


@bp.route("/<int:appointment_id>/waivers/<item>/delete", methods=["POST"])
@staff_required()
@no_store
def unwaive(appointment_id, item):
    """Take a waiver back: the item is missing again until done."""
    appt = _visit(appointment_id)
    if item not in WAIVABLE:
        abort(404)
    if appt.closed_at:
        return _refused(appt, item)
    with db.atomic():
        if item == "payment":
            _drop_payment_waiver(appt)
        Waiver.delete().where(Waiver.appointment == appt, Waiver.item == item).execute()
        AuditEvent.record(g.user, "checklist.unwaived", appt, detail=item)
    return _saved(appt, item)


# How the visit ended.

@bp.route("/<int:appointment_id>/outcome", methods=["POST"])
@staff_required()
@no_store
def record_outcome(appointment_id):
    """Say how the visit ended: held, by telephone, no-show, ended outside Cabinet, left early."""
    appt = _visit(appointment_id)
    if appt.closed_at:
        return _refused(appt, "traceability")
    form = OutcomeForm()
    at = _check_outcome(appt, form) if form.validate() else None
    if form.errors:
        return _page(appt, "traceability", status=422, outcome=form)
    with db.atomic():
        appt.record_outcome(g.user, form.outcome.data, at, form.reason.data or "")
        if form.outcome.data == "no_show":
            _no_fee(appt)
    announce(appt)
    return _saved(appt, "traceability")


def _check_outcome(appt, form):
    """The time the outcome refers to (the telephone call), with any refusal added to the form's errors."""
    outcome, at = form.outcome.data, None

    def refuse(field, message):
        field.errors = [*field.errors, message]

    arrived = appt.waiting_since or appt.consent_at or appt.identity_confirmed_at
    if outcome != "no_show" and outcome != "held" and _call_running(appt):
        refuse(form.outcome, _("The call is still going on: media was seen at %(time)s. End it from the call page "
                               "first.", time=_hhmm(appt.media_seen_at)))
    elif outcome == "held" and appt.outcome_shown != "held" and not (
            appt.consented and appt.admitted_at and appt.call_ended_at and not appt.call_end_source):
        refuse(form.outcome, _("The call did not run in Cabinet from consent to its end: choose what happened."))
    elif outcome == "phone":
        at = _phone_time(appt, form.phone_time.data or "")
        if at is None:
            refuse(form.phone_time, _("Enter the time of the telephone call, like 14:30 (not later than now)."))
        if not form.reason.data:
            refuse(form.reason, _("Say why the visit was held by telephone."))
    elif outcome == "no_show" and (appt.admitted_at or arrived):
        refuse(form.outcome, _("The patient came (at %(time)s): choose “Patient left early” or “Held by "
                               "telephone”.", time=_hhmm(appt.admitted_at or arrived)))
    elif outcome == "no_show" and utcnow() < appt.starts_at:
        refuse(form.outcome, _("The visit has not started yet: it is too early to say the patient did not come."))
    elif outcome == "outside" and appt.admitted_at is None:
        refuse(form.outcome, _("The patient was never admitted: the call never started."))
    elif outcome == "outside" and appt.call_ended_at and not appt.call_end_source:
        refuse(form.outcome, _("The call ended in Cabinet at %(time)s: the visit was held.",
                               time=_hhmm(appt.call_ended_at)))
    elif outcome == "left_early" and not (appt.admitted_at or arrived):
        refuse(form.outcome, _("The patient never arrived: choose “Patient did not come”."))
    return at


def _phone_time(appt, text: str):
    """HH:MM on the visit's day in the practice's time zone, as UTC; None when unreadable or to come."""
    try:
        clock = dt.datetime.strptime(text, "%H:%M").time()
    except ValueError:
        return None
    tz = g.practice.timezone
    at = local_to_utc(dt.datetime.combine(utc_to_local(appt.starts_at, tz).date(), clock), tz)
    return at if at <= utcnow() else None


def _no_fee(appt) -> None:
    """A patient who did not come is asked nothing unless the practitioner requests a fee afterwards."""
    if Checklist(appt).done("payment") or Waiver.select().where(Waiver.appointment == appt,
                                                                 Waiver.item == "payment").exists():
        return
    reason = _("No fee: the patient did not come.")
    Waiver.create(appointment=appt, item="payment", reason=reason, user=g.user)
    _waive_payment(appt, reason)
    AuditEvent.record(g.user, "checklist.waived", appt, detail="payment")


# Closing, and after.

@bp.route("/<int:appointment_id>/close", methods=["POST"])
@staff_required()
@no_store
def close(appointment_id):
    """Close the visit once every item is done or waived: one transaction, once."""
    appt = _visit(appointment_id)
    if appt.closed_at:
        return _already_closed(appt)
    if appt.status == "in_call" and appt.call_ended_at is None and appt.outcome_shown not in ("phone", "left_early"):
        return _page(appt, status=409, error=_("The call is still going on (or was resumed): end it from the call "
                                               "page, or say how it ended, before closing the visit."))
    if any(name in request.form for name in REPORT_FIELDS):
        form = ReportForm()           # the report as typed just before clicking: nothing is lost
        if not form.validate():
            return _page(appt, status=422, report=form, error=_("The report could not be saved."))
        if not _write_report(appt, form):
            return _already_closed(appt)
    missing = Checklist(appt).missing
    if missing:
        names = ", ".join(str(i.title) for i in missing)
        return _page(appt, status=422, error=_("The visit cannot be closed yet. Missing: %(items)s. "
                                               "Complete or waive each of them.", items=names))
    try:
        close_visit(appt, g.user, _message(appt, CloseForm()))
    except AlreadyClosed:
        return _already_closed(appt)
    except Exception as exc:  # a PDF or the store failed: the transaction rolled back
        current_app.logger.error("closing visit %s failed: %s", appt.id, type(exc).__name__)
        return _page(Appointment.get_by_id(appt.id), status=500,
                     error=_("The PDF report could not be made, so the visit was not closed. "
                             "Nothing was lost: please try again."))
    return redirect(url_for("closing.checklist", appointment_id=appt.id))


def _message(appt, form) -> str | None:
    """What the patient is told: their documents, or, after a no-show, nothing unless staff chose to."""
    if appt.outcome_shown == "no_show":
        return "missed" if form.tell_patient.data else None
    return "closed"


def _already_closed(appt):
    appt = Appointment.get_by_id(appt.id)
    return _page(appt, status=409, error=_("This visit is already closed. Nothing was changed."))


@bp.route("/<int:appointment_id>/addenda", methods=["POST"])
@staff_required()
@no_store
def add_addendum(appointment_id):
    """Add to a closed visit's report, with its own time and author."""
    appt = _visit(appointment_id)
    if not appt.closed_at:
        return _page(appt, "addenda" if wants_fragment() else None, status=409,
                     error=_("The visit is still open: write in the report itself."))
    form = AddendumForm()
    if not form.validate():
        return _page(appt, "addenda", status=422, addendum=form)
    with db.atomic():
        Addendum.create(appointment=appt, user=g.user, text=form.text.data)
        AuditEvent.record(g.user, "report.addendum", appt)
    return _saved(appt, "addenda")


@bp.route("/open")
@staff_required()
@no_store
def unclosed(status: int = 200, error: str | None = None):
    """Visits not yet closed, grouped by why, so none is forgotten and a day is cleared in a minute."""
    visits = Appointment.unclosed([p.id for p in visible_practitioners()], utcnow())
    groups = {key: [] for key in UNCLOSED_GROUPS}
    for appt in visits:
        groups[_group(appt)].append(appt)
    return render("closing/unclosed.html", status=status, error=error, groups=groups, titles=unclosed_titles(),
                  outcome_titles=outcome_titles(), visits=visits, now=utcnow(), form=CloseForm(formdata=None))


UNCLOSED_GROUPS = ("no_show", "never_started", "in_call", "call_ended")


def unclosed_titles() -> dict:
    return {"no_show": _("Did not come: never reached the waiting room"),
            "never_started": _("Never started: the patient came but was not admitted"),
            "in_call": _("Call not ended in Cabinet (page closed, device stopped?)"),
            "call_ended": _("Call ended: checklist to finish")}


def _group(appt) -> str:
    if appt.admitted_at is None:
        came = appt.waiting_since or appt.consent_at or appt.identity_confirmed_at
        return "never_started" if came or appt.outcome not in ("", "no_show") else "no_show"
    return "call_ended" if appt.call_ended_at else "in_call"


@bp.route("/<int:appointment_id>/no-show", methods=["POST"])
@staff_required()
@no_store
def close_no_show(appointment_id):
    """Close a visit the patient never came to, in one step from the list: no fee, no message unless chosen."""
    appt = _visit(appointment_id)
    if appt.closed_at:
        return unclosed(status=409, error=_("This visit is already closed. Nothing was changed."))
    came = appt.admitted_at or appt.waiting_since or appt.consent_at or appt.identity_confirmed_at
    if came or utcnow() < appt.starts_at:
        return unclosed(status=422, error=_("This patient came, or the visit has not started: open its checklist "
                                            "to say how it ended."))
    try:
        with db.atomic():
            appt.record_outcome(g.user, "no_show")
            _no_fee(appt)
            close_visit(appt, g.user, _message(appt, CloseForm()))
    except AlreadyClosed:
        return unclosed(status=409, error=_("This visit is already closed. Nothing was changed."))
    announce(appt)
    return redirect(url_for("closing.unclosed"))
