"""The patient's link: exchanged for a cookie scoped to one appointment, then the way to the right page.

A valid link sets the cookie and redirects to a URL without the token; the
language the browser asks for becomes the appointment's when neither it nor
the patient's record has one (``Appointment.effective_locale``). Every
failure has its own page, but none says whether an appointment exists unless
the visitor holds a valid signed token for it.
"""
from __future__ import annotations

import datetime as dt

import re

from flask import current_app, redirect, render_template, request, url_for

from ..access import (
    LAST_VISIT_COOKIE, current_appointment, identity_confirmed_here, link_problem, link_state, set_patient_cookie,
    window,
)
from ..auth import limiter
from ..i18n import browser_locale
from ..models import Appointment, AuditEvent
from ..online import may_cancel
from ..tokens import TokenProblem, read_patient_token
from . import bp


@bp.route("/p/<token>")
@limiter.limit("30 per minute")
def open_link(token):
    """Exchange the link's token for a cookie, then drop the token from the address bar."""
    link = read_patient_token(current_app.config["SECRET_KEY"], token)
    if link is TokenProblem.EXPIRED:
        return link_problem("expired")
    if isinstance(link, TokenProblem):
        return link_problem("invalid", status=404)
    appt = Appointment.get_or_none(Appointment.id == link.appointment_id)
    if appt is None:
        return link_problem("invalid", status=404)
    problem = link_state(appt, link.version)
    if problem:
        return link_problem(problem, appt)
    AuditEvent.record("patient", "patient.link_opened", appt)
    asked = browser_locale()
    if asked:
        appt.learn_browser_locale(asked)      # only when neither the appointment nor the record has one
    return set_patient_cookie(redirect(url_for(first_page(appt), ref=appt.ref)), appt)


def first_page(appt: Appointment) -> str:
    """Where the link leads: the step due now, in one redirect, or the visit's page (closed, too
    early, too late), which decides in a second one.

    The identity cookie is scoped to the visit's pages, so this browser's is unknown here: once
    someone confirmed the identity, the visit's page (which reads it) decides."""
    if appt.status == "closed" or window(appt) != "open":
        return "patient.visit"
    step = next_step(appt, identity_here=False)
    return "patient.visit" if step == "patient.identity" and appt.identity_confirmed_at else step


def next_step(appt: Appointment, identity_here: bool | None = None) -> str:
    """The endpoint of the first step of the way in that this browser has not done yet.

    Identity is asked of each browser (``identity_here``: known already, else read from its cookie);
    the appointment keeps the first confirmation's time.
    """
    if appt.locked:
        return "patient.locked"
    if appt.admitted:
        return "visit.patient_call"   # the way in is over; the call page shows its end too
    if not (identity_confirmed_here(appt) if identity_here is None else identity_here):
        return "patient.identity"
    if not appt.consented:
        return "patient.consent"
    if not appt.device_check:
        return "patient.check"
    return "patient.waiting"


# A ref as new_ref makes it: anything else in the cookie is not followed.
REF = re.compile(r"[A-Za-z0-9_-]{1,32}")


@bp.route("/v/")
def app_entry():
    """The patient app's start page: the visit this browser last opened, or how to open one."""
    ref = request.cookies.get(LAST_VISIT_COOKIE, "")
    if REF.fullmatch(ref):
        return redirect(url_for("patient.visit", ref=ref))
    return link_problem("needed", status=200)


@bp.route("/v/<ref>/")
def visit(ref):
    """The patient's page for one appointment: come back later, or the next step of the way in."""
    appt = current_appointment(ref, closed_ok=True)
    if appt.status == "closed":
        return redirect(url_for("patient.space", ref=ref))
    if appt.status == "requested":      # booked online, the practice has not confirmed it yet
        return render_template("patient/requested.html", appt=appt, may_change=may_cancel(appt)), 403
    state = window(appt)
    if state == "open":
        return redirect(url_for(next_step(appt), ref=ref))
    opens_at = appt.starts_at - dt.timedelta(minutes=appt.practice.link_opens_minutes_before)
    return render_template(f"patient/{state}.html", appt=appt, opens_at=opens_at,
                           may_change=state == "early" and may_cancel(appt)), 403
