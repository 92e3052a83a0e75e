"""The patient cancels or moves their own appointment from their link, up to the practice's notice
(``Practice.patient_change_notice_hours``) before it, while the practice takes online bookings.

A move goes only to a free slot of the same visit type (``online.move_to``, atomic like a booking);
either change is audited with the patient as actor, the practitioner's day updates live, and the
patient gets the usual message ("moved", "cancelled"). A move makes a new link version (older links
stop working): this browser gets the new cookie at once, and the message carries the new link.
"""
from __future__ import annotations

import datetime as dt

from flask import redirect, render_template, request, url_for

from .. import events, notify, online
from ..access import current_appointment, set_patient_cookie
from ..auth import limiter
from ..forms import parse_day
from ..slots import SlotUnavailable
from . import bp


def _week(appt) -> dt.date:
    """The Monday of the week of slots shown: asked for in the address, else this week; never earlier."""
    this_week = online.week_monday(online.local_today(appt.practice))
    asked = parse_day(request.args.get("week"))
    return max(online.week_monday(asked), this_week) if asked else this_week


def _page(appt, status: int = 200, **extra):
    context = {"appt": appt, "may_cancel": online.may_cancel(appt), "may_move": online.may_move(appt),
               "deadline": online.change_deadline(appt), "days": [], "monday": None, **extra}
    if context["may_move"]:
        monday = _week(appt)
        context.update(monday=monday, days=online.week_of_slots(appt.practitioner, appt.visit_type, monday),
                       **online.week_nav(appt.practice, appt.visit_type, monday))
    return render_template("patient/change.html", **context), status


@bp.route("/v/<ref>/change")
def change(ref):
    """Cancel this appointment, or choose another free time for it."""
    return _page(current_appointment(ref))


@bp.route("/v/<ref>/cancel", methods=["POST"])
@limiter.limit("10 per minute")
def cancel_own(ref):
    """The patient cancels; the slot is free again and the practice's day shows it at once."""
    appt = current_appointment(ref)
    if not online.may_cancel(appt) or not appt.cancel_by_patient():
        return _page(appt, 409, refused="cancel")
    notify.queue(appt, "cancelled")
    events.announce(appt)
    return redirect(url_for("patient.visit", ref=ref), 303)


@bp.route("/v/<ref>/move", methods=["POST"])
@limiter.limit("10 per minute")
def move_own(ref):
    """The patient moves to another free slot of the same visit type."""
    appt = current_appointment(ref)
    starts_at = online.parse_at(request.form.get("at"))
    if starts_at is None:
        return _page(appt, 400, refused="unreadable")
    if not online.may_move(appt):
        return _page(appt, 409, refused="move")
    try:
        online.move_to(appt, starts_at)
    except SlotUnavailable as taken:
        return _page(appt, 409, refused=online.why_not_free(appt.practitioner, appt.visit_type, starts_at),
                     instead=taken.next_slots)
    notify.queue(appt, "moved" if appt.status == "scheduled" else "requested")
    events.announce(appt)
    return set_patient_cookie(redirect(url_for("patient.visit", ref=ref), 303), appt)
