"""The practice's payments: requests, their status, and the CSV export of coded acts.

The export is for French spreadsheets and billing software: semicolon-separated,
UTF-8 with a byte order mark, amounts with a decimal comma, dates as YYYY-MM-DD.
Names are typed by people, so every cell that a spreadsheet would read as a formula
is defused (see ``spreadsheet_text``).
"""
from __future__ import annotations

import csv
import datetime as dt
import io

from flask import Blueprint, abort, g, make_response, redirect, request, url_for
from flask_babel import gettext as _, ngettext

from .access import visible_practitioners
from .answers import render, wants_fragment
from .uploads import content_disposition
from .auth import staff_required
from .forms import FIRST_DAY, LAST_DAY, day_out_of_range, parse_day
from .i18n import local_to_utc, utc_to_local
from .money import with_comma
from .models import JOIN, Appointment, AuditEvent, Patient, Payment, User, VisitAct, Waiver, utcnow
from .payments_providers import STATUS_LABELS, STATUSES, PaymentError, current_payment, provider_for

bp = Blueprint("payments", __name__, url_prefix="/payments")

DEFAULT_DAYS = 30
MAX_EXPORT_DAYS = 366
# What makes a spreadsheet read a cell as a formula (OWASP, "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(cell: str) -> str:
    """``cell`` as a spreadsheet shows it, never runs it: a leading quote before a formula's first sign.

    No cell loses a meaning by it: the amounts are never negative (``parse_cents`` takes no sign)
    and are written "25,00", dates start with a digit and act codes with a letter or a digit;
    only text people typed (a name, an instant visit's "+33..." number) can start so.
    """
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def _day(name: str, default: dt.date | None, errors: dict) -> dt.date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    day = parse_day(raw)
    if day is None:
        errors[name] = _("Enter a date as YYYY-MM-DD.")
    elif not FIRST_DAY <= day <= LAST_DAY:
        errors[name] = str(day_out_of_range())
    else:
        return day
    return default


def _filters() -> tuple[dict, dict]:
    """The list's filters from the query string, with defaults, and the errors found."""
    errors: dict = {}
    today = utc_to_local(utcnow(), g.practice.timezone).date()
    start = _day("start", today - dt.timedelta(days=DEFAULT_DAYS), errors)
    end = _day("end", today, errors)
    if start and end and start > end:
        errors["end"] = _("The end date must not be before the start date.")
    practitioners = visible_practitioners()
    wanted = request.args.get("practitioner", "")
    chosen = next((p for p in practitioners if str(p.id) == wanted), None)
    if wanted and chosen is None:
        errors["practitioner"] = _("Choose a practitioner from the list.")
    status = request.args.get("status", "")
    if status and status not in STATUSES:
        errors["status"] = _("Choose a status from the list.")
        status = ""
    return {"start": start, "end": end, "practitioner": chosen, "chosen_status": status,
            "practitioners": practitioners}, errors


def _utc_range(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    tz = g.practice.timezone
    return (local_to_utc(dt.datetime.combine(start, dt.time()), tz),
            local_to_utc(dt.datetime.combine(end + dt.timedelta(days=1), dt.time()), tz))


def _scope(query, start: dt.date, end: dt.date, practitioner=None):
    """Appointments of the practice, of practitioners this user may see, starting in the range."""
    ids = [practitioner.id] if practitioner else [p.id for p in visible_practitioners()]
    low, high = _utc_range(start, end)
    return query.where(Appointment.practice == g.practice, Appointment.practitioner.in_(ids),
                       Appointment.starts_at >= low, Appointment.starts_at < high)


def _payments(filters):
    query = (Payment.select(Payment, Appointment, Patient, User)
             .join(Appointment).join(Patient, JOIN.LEFT_OUTER, on=(Appointment.patient == Patient.id))
             .switch(Appointment).join(User, on=(Appointment.practitioner == User.id)))
    query = _scope(query, filters["start"], filters["end"], filters["practitioner"])
    if filters["chosen_status"]:
        query = query.where(Payment.status == filters["chosen_status"])
    return list(query.order_by(Appointment.starts_at.desc(), Payment.id.desc()).limit(500))


@bp.route("/")
@staff_required()
def index():
    """Payment requests, filtered by date, practitioner and status."""
    filters, errors = _filters()
    payments = [] if errors else _payments(filters)
    totals: dict = {}
    for p in payments:
        totals[p.status] = totals.get(p.status, 0) + p.amount_cents
    return render("payments/index.html", "payments/_results.html", status=422 if errors else 200,
                  payments=payments, totals=totals, errors=errors, labels=STATUS_LABELS, statuses=STATUSES,
                  **filters)


def _payment_or_404(payment_id: int) -> Payment:
    payment = Payment.get_or_none(Payment.id == payment_id)
    visible = {p.id for p in visible_practitioners()}
    if payment is None or payment.appointment.practice_id != g.practice.id \
            or payment.appointment.practitioner_id not in visible:
        abort(404)
    return payment


def _change(payment_id: int, change: str):
    payment = _payment_or_404(payment_id)
    error = ""
    try:
        provider = provider_for(payment)
        payment = provider.mark_paid(payment, g.user) if change == "paid" else provider.cancel(payment, g.user)
    except PaymentError:
        payment = Payment.get_by_id(payment.id)
        error = _("Nothing was changed: this request is already marked “%(status)s”.", status=STATUS_LABELS[payment.status])
    if wants_fragment():
        return render("payments/_payment_row.html", payment=payment, row_error=error, labels=STATUS_LABELS,
                      status=409 if error else 200)
    if error:
        return render("payments/conflict.html", payment=payment, row_error=error, status=409)
    back = {k: v for k, v in request.form.items() if k in ("start", "end", "practitioner", "status") and v}
    return redirect(url_for("payments.index", **back))


@bp.route("/<int:payment_id>/paid", methods=["POST"])
@staff_required()
def mark_paid(payment_id):
    """Record that the patient paid (offline: bank transfer, cheque, card at the desk)."""
    return _change(payment_id, "paid")


@bp.route("/<int:payment_id>/cancel", methods=["POST"])
@staff_required()
def cancel(payment_id):
    """Withdraw a payment request."""
    return _change(payment_id, "cancel")


def export_rows(start: dt.date, end: dt.date, practitioner=None) -> list[list[str]]:
    """The CSV's rows: one per closed visit with coded acts, in the order of the visits."""
    query = (Appointment.select(Appointment, Patient, User)
             .join(Patient, JOIN.LEFT_OUTER, on=(Appointment.patient == Patient.id))
             .switch(Appointment).join(User, on=(Appointment.practitioner == User.id)))
    visits = list(_scope(query, start, end, practitioner).where(Appointment.status == "closed").order_by(Appointment.starts_at))
    acts: dict = {}
    for act in VisitAct.select().where(VisitAct.appointment.in_([v.id for v in visits])).order_by(VisitAct.id):
        acts.setdefault(act.appointment_id, []).append(act)
    waived = {w.appointment_id for w in Waiver.select().where(Waiver.item == "payment",
                                                             Waiver.appointment.in_([v.id for v in visits]))}
    rows = []
    for visit in (v for v in visits if v.id in acts):
        payment = current_payment(visit)
        status = str(STATUS_LABELS[payment.status]) if payment else (
            str(STATUS_LABELS["waived"]) if visit.id in waived else _("Not requested"))
        patient = visit.patient if visit.patient_id else None
        rows.append([utc_to_local(visit.starts_at, g.practice.timezone).date().isoformat(), visit.practitioner.name,
                     visit.patient_name, patient.birth_date.isoformat() if patient and patient.birth_date else "",
                     patient.nir if patient else "",
                     "+".join(a.code for a in acts[visit.id]), with_comma(sum(a.fee_cents for a in acts[visit.id])),
                     status])
    return rows


@bp.route("/acts.csv")
@staff_required()
def acts_csv():
    """Coded acts of closed visits over a date range, for the practice's billing software."""
    filters, errors = _filters()
    start, end = filters["start"], filters["end"]
    if not errors and (end - start).days >= MAX_EXPORT_DAYS:
        errors["end"] = ngettext("Export at most %(num)d day at a time.", "Export at most %(num)d days at a time.",
                                 MAX_EXPORT_DAYS)
    if errors:
        return render("payments/index.html", status=422, payments=[], totals={}, errors=errors,
                      labels=STATUS_LABELS, statuses=STATUSES, **filters)
    rows = export_rows(start, end, filters["practitioner"])
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([_("Date"), _("Practitioner"), _("Patient"), _("Birth date"), _("Social security number"),
                     _("Act codes"), _("Fees"), _("Payment status")])
    writer.writerows([spreadsheet_text(cell) for cell in row] for row in rows)
    AuditEvent.record(g.user, "payments.acts_exported", detail=f"{start.isoformat()}..{end.isoformat()} "
                                                                f"{len(rows)} rows")
    response = make_response("\ufeff" + out.getvalue())
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    # Translators: a word in a file name (acts-2036-06-01-2036-06-30.csv): lowercase, spaces become hyphens
    name = "-".join(_("acts").split()) + f"-{start.isoformat()}-{end.isoformat()}.csv"
    response.headers["Content-Disposition"] = content_disposition(name)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
