"""Who is asking, and may they see this appointment? What is this appointment's link?

The floor every feature stands on: staff lookups that enforce what a signed-in
user may see, the patient's cookie (the link exchanged for a credential scoped
to one appointment) and the link itself. Features import from here, never from
each other.
"""
from __future__ import annotations

import datetime as dt
import time
from urllib.parse import urlsplit

from flask import abort, current_app, g, make_response, redirect, render_template, request, url_for

from .i18n import best_browser_locale
from .models import Appointment, Practice, User, utcnow
from .tokens import (
    TokenProblem, make_feed_token, make_identity_cookie, make_patient_cookie, make_patient_token, read_identity_cookie,
    read_patient_cookie,
)

COOKIE = "cabinet_visit"
# Identity is confirmed per browser: a second browser holding the same link asks again.
IDENTITY_COOKIE = "cabinet_identity"
# Which appointment this browser last opened, read only by ``/v/`` (the patient app's start page):
# its ref, which opens nothing without the cookie above.
LAST_VISIT_COOKIE = "cabinet_last_visit"


# Staff.

def visible_practitioners() -> list[User]:
    """Practitioners whose agenda the current user may see: their own, or everyone's for staff."""
    query = User.practitioners(g.practice)
    if g.user.role == "practitioner":
        query = query.where(User.id == g.user.id)
    return list(query)


def appointment_or_404(appointment_id: int) -> Appointment:
    """The practice's appointment, if the signed-in user may see its practitioner's agenda."""
    appt = Appointment.get_or_none(Appointment.id == appointment_id, Appointment.practice == g.practice)
    if appt is None or appt.practitioner_id not in {p.id for p in visible_practitioners()}:
        abort(404)
    return appt


def own_visit_or_403(appointment_id: int) -> Appointment:
    """The visit, for its own practitioner only: the staff side of its call (socket, page, files).

    Someone who may not see the appointment at all gets 404, as everywhere; staff who see it in
    the agenda (a secretary, an admin) already know it exists, so they get an honest 403. A
    replacement practitioner opens the call only after an explicit hand-over (``Appointment.hand_over``).
    """
    appt = appointment_or_404(appointment_id)
    if appt.practitioner_id != g.user.id:
        abort(403)
    return appt


# Clinical content: a visit's report, chat, documents and prescriptions.

def may_read_clinical(appt: Appointment, user: User | None = None) -> bool:
    """Whether ``user`` (the signed-in one by default) reads this visit's clinical content: its own
    practitioner, or another practitioner of the practice when the practice shares records.
    Secretaries and admins manage the agenda, patients' details, messages and payments, not this."""
    user = g.user if user is None else user
    if user is None or user.practice_id != appt.practice_id:
        return False
    if user.id == appt.practitioner_id:
        return True
    return user.role == "practitioner" and user.active and appt.practice.share_records


def readable_visit_or_404(appointment_id: int) -> Appointment:
    """The visit, for staff who see it in the agenda or may read its clinical content (shared records)."""
    appt = Appointment.get_or_none(Appointment.id == appointment_id, Appointment.practice == g.practice)
    if appt is None or not may_read_clinical(appt):
        return appointment_or_404(appointment_id)
    return appt


# The patient's link and cookie.

def link_expires_at(appt: Appointment) -> float:
    """When links to this appointment stop working: the end of the patient space."""
    end = appt.ends_at + dt.timedelta(days=appt.practice.patient_space_days)
    return end.replace(tzinfo=dt.timezone.utc).timestamp()


def site_url(practice: Practice) -> str:
    """The address every link to patients starts with: PUBLIC_URL, else the one the practice learnt
    (or its admin typed); "" while unknown."""
    return current_app.config.get("PUBLIC_URL") or practice.site_url


def learn_site_url() -> None:
    """Without PUBLIC_URL, the first signed-in staff request teaches the site its address, so that
    links built later without a request (reminders from the background sender) match the ones
    built in requests. The admin page shows it, and it can be corrected there."""
    practice, user = g.get("practice"), g.get("user")
    if practice is None or user is None or site_url(practice):
        return
    address = request.host_url.rstrip("/")
    Practice.update(site_url=address).where(Practice.id == practice.id, Practice.site_url == "").execute()
    practice.site_url = address


def patient_link_url(appt: Appointment) -> str:
    """The link the patient receives, absolute, with a token for the current link version."""
    token = make_patient_token(current_app.config["SECRET_KEY"], appt.id, appt.link_version, link_expires_at(appt))
    base = site_url(appt.practice)
    if base:
        return f"{base}{url_for('patient.open_link', token=token)}"
    return url_for("patient.open_link", token=token, _external=True)


def feed_url(user: User) -> str:
    """The practitioner's calendar-feed address, absolute, for their phone to subscribe to."""
    token = make_feed_token(current_app.config["SECRET_KEY"], user.id, user.feed_version)
    base = site_url(user.practice)
    if base:
        return f"{base}{url_for('agenda.feed', token=token)}"
    return url_for("agenda.feed", token=token, _external=True)


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


def may_resume(appt: Appointment) -> bool:
    """Whether the practitioner may resume a call they ended (by mistake): it ended in Cabinet, its
    outcome says nothing else, the visit is not closed and the patient's link window is still open."""
    return (appt.status == "in_call" and appt.call_ended_at is not None and not appt.call_end_source
            and appt.outcome in ("", "held") and appt.closed_at is None and window(appt) == "open")


def link_problem(kind: str, appt: Appointment | None = None, status: int = 410):
    """The page for a link or cookie that does not open the appointment (in the patient's language)."""
    if appt is not None:
        g.locale = appt.effective_locale(best_browser_locale(appt.practice.default_locale))
    return make_response(render_template("patient/link_problem.html", problem=kind, appt=appt), status)


def set_patient_cookie(response, appt: Appointment):
    """Give the browser the credential for this appointment, scoped to its pages."""
    expires = link_expires_at(appt)
    response.set_cookie(COOKIE, make_patient_cookie(current_app.config["SECRET_KEY"], appt.id, appt.link_version,
                                                    expires),
                        max_age=max(0, int(expires - time.time())), path=url_for("patient.visit", ref=appt.ref),
                        secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True, samesite="Lax")
    response.set_cookie(LAST_VISIT_COOKIE, appt.ref, max_age=max(0, int(expires - time.time())),
                        path=url_for("patient.app_entry"), secure=current_app.config["SESSION_COOKIE_SECURE"],
                        httponly=True, samesite="Lax")
    return response


def set_identity_cookie(response, appt: Appointment):
    """Remember that this browser confirmed the patient's identity (for this link version only)."""
    expires = link_expires_at(appt)
    response.set_cookie(IDENTITY_COOKIE, make_identity_cookie(current_app.config["SECRET_KEY"], appt.id,
                                                              appt.link_version, expires),
                        max_age=max(0, int(expires - time.time())), path=url_for("patient.visit", ref=appt.ref),
                        secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True, samesite="Lax")
    return response


def identity_confirmed_here(appt: Appointment) -> bool:
    """Whether this browser confirmed the patient's identity for the appointment's current link."""
    mark = read_identity_cookie(current_app.config["SECRET_KEY"], request.cookies.get(IDENTITY_COOKIE, ""))
    return not isinstance(mark, TokenProblem) and (mark.appointment_id, mark.version) == (appt.id, appt.link_version)


def current_appointment(ref: str, closed_ok: bool = False) -> Appointment:
    """The appointment the patient's cookie opens at this address; a generic page otherwise.

    Once the visit is closed the link opens only the patient's space: unless ``closed_ok``,
    a GET is sent there and anything else is refused (409), so nothing of the visit changes.
    """
    link = read_patient_cookie(current_app.config["SECRET_KEY"], request.cookies.get(COOKIE, ""))
    appt = None if isinstance(link, TokenProblem) else Appointment.get_or_none(Appointment.id == link.appointment_id)
    if appt is None or appt.ref != ref:
        abort(link_problem("needed", status=403))
    problem = link_state(appt, link.version)
    if problem:
        abort(link_problem(problem, appt))
    g.locale = appt.effective_locale(best_browser_locale(appt.practice.default_locale))
    if appt.status == "closed" and not closed_ok:
        abort(redirect(url_for("patient.space", ref=ref)) if request.method in ("GET", "HEAD") else 409)
    return appt


# Websockets.

def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


def origin_allowed(origin: str | None) -> bool:
    """Whether a websocket handshake's ``Origin`` is this site: a page of another site must not
    open a socket with the browser's cookies (cross-site websocket hijacking; SameSite=Lax does not
    cover a websocket). Allowed: the site's own address (``site_url``: PUBLIC_URL or the learnt one)
    and the host the request was sent to. For the latter only the host is compared, not the scheme:
    behind a proxy that ends TLS without ProxyFix, the app sees http while the page is https.
    Browsers always send an Origin on a websocket handshake; a handshake without one is refused."""
    if not origin or origin == "null":
        return False
    wanted = _origin_of(origin)
    practice = g.get("practice")
    site = site_url(practice) if practice is not None else current_app.config.get("PUBLIC_URL", "")
    if site and wanted == _origin_of(site):
        return True
    return bool(wanted) and urlsplit(wanted).netloc == request.host.lower()
