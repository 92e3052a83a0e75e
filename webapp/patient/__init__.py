"""The patient's way in: the link is exchanged for a cookie scoped to one appointment.

A valid link sets the cookie and redirects to a URL without the token. Every
failure has its own page, but none says whether an appointment exists unless
the visitor holds a valid signed token for it.
"""
from __future__ import annotations

import datetime as dt
import time

from flask import Blueprint, abort, current_app, g, make_response, redirect, render_template, request, url_for

from ..auth import limiter
from ..i18n import best_browser_locale
from ..models import Appointment, AuditEvent, utcnow
from ..tokens import TokenProblem, make_patient_cookie, make_patient_token, read_patient_cookie, read_patient_token

bp = Blueprint("patient", __name__)

COOKIE = "cabinet_visit"


def link_expires_at(appt: Appointment) -> float:
    """When links to this appointment stop working: the end of the patient space."""
    end = appt.ends_at + dt.timedelta(days=appt.practice.patient_space_days)
    return end.replace(tzinfo=dt.timezone.utc).timestamp()


def patient_link_url(appt: Appointment) -> str:
    """The link the patient receives, absolute, with a token for the current link version."""
    token = make_patient_token(current_app.config["SECRET_KEY"], appt.id, appt.link_version, link_expires_at(appt))
    path = url_for("patient.open_link", token=token)
    base = current_app.config.get("PUBLIC_URL")
    return f"{base}{path}" if base else url_for("patient.open_link", token=token, _external=True)


def link_state(appt: Appointment, version: int) -> str | None:
    """Why a link or cookie of this version no longer opens the appointment, or None."""
    if appt.status == "cancelled":
        return "cancelled"
    if version != appt.link_version:
        return "replaced"
    return None


def window(appt: Appointment, now: dt.datetime | None = None) -> str:
    """Whether the join flow is open: "early", "open" or "late"."""
    now = now or utcnow()
    practice = appt.practice
    if now < appt.starts_at - dt.timedelta(minutes=practice.link_opens_minutes_before):
        return "early"
    if now > appt.starts_at + dt.timedelta(minutes=practice.link_closes_minutes_after):
        return "late"
    return "open"


def _problem(kind: str, appt: Appointment | None = None, status: int = 410):
    if appt is not None:
        g.locale = appt.effective_locale(best_browser_locale(appt.practice.default_locale))
    return make_response(render_template("patient/link_problem.html", problem=kind, appt=appt), status)


@bp.route("/p/<token>")
@limiter.limit("30 per minute")
def open_link(token):
    """Exchange the link's token for a cookie, then drop the token from the address bar."""
    secret = current_app.config["SECRET_KEY"]
    link = read_patient_token(secret, token)
    if link is TokenProblem.EXPIRED:
        return _problem("expired")
    if isinstance(link, TokenProblem):
        return _problem("invalid", status=404)
    appt = Appointment.get_or_none(Appointment.id == link.appointment_id)
    if appt is None:
        return _problem("invalid", status=404)
    problem = link_state(appt, link.version)
    if problem:
        return _problem(problem, appt)
    AuditEvent.record("patient", "patient.link_opened", appt)
    response = redirect(url_for("patient.visit", ref=appt.ref))
    expires = link_expires_at(appt)
    response.set_cookie(COOKIE, make_patient_cookie(secret, appt.id, appt.link_version, expires),
                        max_age=max(0, int(expires - time.time())), path=url_for("patient.visit", ref=appt.ref),
                        secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True, samesite="Lax")
    return response


def current_appointment(ref: str) -> Appointment:
    """The appointment the patient's cookie opens at this address; a generic page otherwise."""
    link = read_patient_cookie(current_app.config["SECRET_KEY"], request.cookies.get(COOKIE, ""))
    appt = None if isinstance(link, TokenProblem) else Appointment.get_or_none(Appointment.id == link.appointment_id)
    if appt is None or appt.ref != ref:
        abort(_problem("needed", status=403))
    problem = link_state(appt, link.version)
    if problem:
        abort(_problem(problem, appt))
    g.locale = appt.effective_locale(best_browser_locale(appt.practice.default_locale))
    return appt


def next_step(appt: Appointment) -> str:
    """The endpoint of the first step of the way in that the patient has not done yet."""
    if appt.locked:
        return "patient.locked"
    if appt.identity_confirmed_at is None:
        return "patient.identity"
    if not appt.consented:
        return "patient.consent"
    if not appt.device_check:
        return "patient.check"
    if appt.status == "in_call":
        return "patient.call"
    return "patient.waiting"


@bp.route("/v/<ref>/")
def visit(ref):
    """The patient's page for one appointment: come back later, or the next step of the way in."""
    appt = current_appointment(ref)
    if appt.status == "closed":
        return redirect(url_for("patient.space", ref=ref))
    state = window(appt)
    if state == "open":
        return redirect(url_for(next_step(appt), ref=ref))
    opens_at = appt.starts_at - dt.timedelta(minutes=appt.practice.link_opens_minutes_before)
    return render_template(f"patient/{state}.html", appt=appt, opens_at=opens_at), 403


from . import join, lost, space, waiting  # noqa: E402,F401 - their routes live on this blueprint
