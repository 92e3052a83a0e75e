"""Staff's side of online booking: the bookings waiting for approval (approve or decline, the patient
is told either way) and the records online bookings created, for staff to check."""
from __future__ import annotations

from flask import abort, g, url_for

from .. import events, notify
from ..access import appointment_or_404, visible_practitioners
from ..answers import after_change, render
from ..auth import staff_required
from ..models import Appointment, Patient, utcnow
from . import bp


def _waiting():
    """The online bookings waiting for the signed-in user (their practitioners'), and the records
    online bookings created that nobody checked yet."""
    ids = [p.id for p in visible_practitioners()]
    requested = (Appointment.select().where(Appointment.practice == g.practice, Appointment.status == "requested",
                                            Appointment.practitioner.in_(ids), Appointment.starts_at > utcnow())
                 .order_by(Appointment.starts_at))
    to_check = (Patient.select().where(Patient.practice == g.practice, Patient.needs_check,
                                       Patient.merged_into.is_null()).order_by(Patient.created_at, Patient.id))
    return requested, to_check


def _context() -> dict:
    requested, to_check = _waiting()
    return {"requested": list(requested), "to_check": list(to_check)}


def waiting_count() -> int:
    """For the staff header's badge: what the requests page lists, counted."""
    if g.get("practice") is None or g.get("user") is None or not g.practice.online_booking:
        return 0
    requested, to_check = _waiting()
    return requested.count() + to_check.count()


@bp.route("/booking/requests")
@staff_required()
def requests():
    """Online bookings waiting for staff, and the records online bookings created, to check."""
    return render("booking/requests.html", "booking/_requests.html", **_context())


def _decided(appt, kind: str):
    notify.queue(appt, kind)
    events.announce(appt)
    return after_change(url_for("booking.requests"), "booking/requests.html", "booking/_requests.html",
                        nav_changed=True, **_context())


@bp.route("/booking/requests/<int:appointment_id>/approve", methods=["POST"])
@staff_required()
def approve(appointment_id):
    """Accept an online booking: the patient gets the usual invitation with their link."""
    appt = appointment_or_404(appointment_id)
    if not appt.approve(g.user):
        abort(409)
    return _decided(appt, "invitation")


@bp.route("/booking/requests/<int:appointment_id>/decline", methods=["POST"])
@staff_required()
def decline(appointment_id):
    """Refuse an online booking: the slot is free again and the patient is told."""
    appt = appointment_or_404(appointment_id)
    if not appt.decline(g.user):
        abort(409)
    return _decided(appt, "declined")


@bp.route("/booking/patients/<int:patient_id>/checked", methods=["POST"])
@staff_required()
def checked(patient_id):
    """Staff checked a record an online booking created (merged it, or found it right)."""
    patient = Patient.get_or_none(Patient.id == patient_id, Patient.practice == g.practice)
    if patient is None:
        abort(404)
    patient.mark_checked(g.user)
    return after_change(url_for("booking.requests"), "booking/requests.html", "booking/_requests.html",
                        nav_changed=True, **_context())
