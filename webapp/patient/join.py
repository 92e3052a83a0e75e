"""The patient's way in: language, identity, consent, device check.

Each step is one page with a form that works without JavaScript; a step can
be reached only once the steps before it are done, and the link's time window
applies to all of them.
"""
from __future__ import annotations

import json

from flask import g, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l, ngettext
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField

from ..access import current_appointment, set_identity_cookie, window
from ..answers import full_page_load, same_site_path
from ..events import announce
from ..forms import LocalDateField, ascii_number
from ..i18n import available_locales
from ..models import WayInOver
from . import bp
from .entry import next_step

STEPS = ["patient.identity", "patient.consent", "patient.check", "patient.waiting"]
CONSENT_VERSION = "2026-11"
DEVICE_RESULTS = {
    "camera": {"ok", "denied", "missing", "busy", "error", "unsupported", "skipped", "unknown"},
    "microphone": {"ok", "denied", "missing", "busy", "silent", "error", "unsupported", "unknown"},
    "speaker": {"ok", "no", "unknown"},
    "network": {"good", "fair", "poor", "offline", "unknown"},
}


def step_appointment(ref: str, endpoint: str):
    """The appointment, when this step may be shown now; otherwise a redirect to where the patient belongs."""
    appt = current_appointment(ref)
    if appt.admitted:  # identity, consent and device check are frozen once the patient was let in
        return appt, redirect(url_for("visit.patient_call", ref=ref))
    if window(appt) != "open" or appt.status == "requested":
        return appt, redirect(url_for("patient.visit", ref=ref))
    due = next_step(appt)
    if due in ("patient.locked", "visit.patient_call") and endpoint != due:
        return appt, redirect(url_for(due, ref=ref))
    if due in STEPS and endpoint in STEPS and STEPS.index(endpoint) > STEPS.index(due):
        return appt, redirect(url_for(due, ref=ref))
    return appt, None


@bp.errorhandler(WayInOver)
def way_in_over(error):
    """The patient was let in between loading the page and writing the step: nothing was written."""
    return redirect(url_for("patient.visit", ref=request.view_args["ref"]))


@bp.route("/v/<ref>/language", methods=["POST"])
def language(ref):
    """Keep the patient's language on the appointment, for every page and message after."""
    appt = current_appointment(ref, closed_ok=True)   # the space speaks the patient's language too
    chosen = request.form.get("locale", "")
    back = same_site_path(request.form.get("next")) or ""
    back = back if back.startswith(f"/v/{ref}/") else url_for("patient.visit", ref=ref)
    if chosen and chosen not in available_locales():
        return render_template("patient/language_refused.html", appt=appt, language_next=back), 422
    if chosen and (chosen, "patient") != (appt.locale, appt.locale_source):
        appt.choose_locale(chosen)
    return redirect(back)


class IdentityForm(FlaskForm):
    confirm = BooleanField()
    birth_date = LocalDateField(_l("Your date of birth"))


@bp.route("/v/<ref>/identity", methods=["GET", "POST"])
def identity(ref):
    """The patient confirms the name on the appointment and their birth date."""
    appt, elsewhere = step_appointment(ref, "patient.identity")
    if elsewhere:
        return elsewhere
    form = IdentityForm()
    patient = appt.patient
    error, error_field = None, "birth_date"     # the field the error is linked to (aria-describedby)
    if form.validate_on_submit():
        if not form.confirm.data:
            error, error_field = _l("Tick the box to confirm that you are this person."), "confirm"
        elif patient and patient.birth_date and form.birth_date.data is None:
            error = _l("Enter your date of birth.")
        elif patient and patient.birth_date and form.birth_date.data != patient.birth_date:
            appt.fail_identity()  # counted in the database; ``locked`` is then the row's, not this request's
            if appt.locked:
                return redirect(url_for("patient.locked", ref=ref))
            left = appt.IDENTITY_TRIES - appt.identity_failures
            error = " ".join((str(_l("This date of birth does not match. Please check it and try again.")),
                              ngettext("You have %(num)d try left before this link is locked.",
                                       "You have %(num)d tries left before this link is locked.", left)))
        else:
            if not appt.confirm_identity():  # another request locked the link meanwhile
                return redirect(url_for(next_step(appt), ref=ref))
            return set_identity_cookie(redirect(url_for(next_step(appt, identity_here=True), ref=ref)), appt)
    elif request.method == "POST":
        error = form.birth_date.errors[0] if form.birth_date.errors else None
    status = 422 if error else 200
    asks_birth_date = bool(patient and patient.birth_date)
    return render_template("patient/identity.html", appt=appt, form=form, error=error,
                           error_field=error_field if asks_birth_date else "confirm",
                           asks_birth_date=asks_birth_date), status


@bp.route("/v/<ref>/locked")
def locked(ref):
    """Too many wrong answers: the link waits for the practice to send a new one."""
    appt = current_appointment(ref)
    if not appt.locked:
        return redirect(url_for("patient.visit", ref=ref))
    return render_template("patient/locked.html", appt=appt), 423


class ConsentForm(FlaskForm):
    agree = BooleanField()
    decision = HiddenField()


@bp.route("/v/<ref>/consent", methods=["GET", "POST"])
def consent(ref):
    """The consent text in the patient's language; the record keeps its version, language and time."""
    appt, elsewhere = step_appointment(ref, "patient.consent")
    if elsewhere:
        return elsewhere
    form = ConsentForm()
    error = None
    if form.validate_on_submit():
        if request.form.get("decline"):
            appt.decline_consent(str(g.locale))
            announce(appt)          # the practitioner's day shows it at once, as the page tells the patient
            return render_template("patient/consent_declined.html", appt=appt)
        if form.agree.data:
            appt.give_consent(CONSENT_VERSION, str(g.locale))
            return redirect(url_for(next_step(appt), ref=ref))
        error = _l("Tick the box to give your consent, or choose “I do not agree”.")
    return render_template("patient/consent.html", appt=appt, form=form, error=error,
                           version=CONSENT_VERSION), 422 if error else 200


def device_summary(form) -> str | None:
    """The device check's results as stored JSON, or None when they are not what the page sends."""
    results = {}
    for name, allowed in DEVICE_RESULTS.items():
        value = form.get(name, "unknown")
        if value not in allowed:
            return None
        results[name] = value
    rtt = form.get("rtt", "")
    if rtt:
        rtt_ms = ascii_number(rtt)
        if rtt_ms is None or rtt_ms > 60000:
            return None
        results["rtt_ms"] = rtt_ms
    return json.dumps(results, sort_keys=True)


@bp.route("/v/<ref>/check", methods=["GET", "POST"])
def check(ref):
    """Camera, microphone, speaker and network, with a plain fix for whatever fails."""
    appt, elsewhere = step_appointment(ref, "patient.check")
    if elsewhere:
        return elsewhere
    if request.method == "POST":
        summary = device_summary(request.form)
        if summary is None:
            return render_template("patient/check.html", appt=appt,
                                   error=_l("The check sent results we could not read. Please run it again.")), 422
        appt.record_device_check(summary)
        return redirect(url_for(next_step(appt), ref=ref))
    return full_page_load() or render_template("patient/check.html", appt=appt, error=None)


@bp.route("/v/<ref>/device-test")
def device_test(ref):
    """The device check on its own, any time the link works: a patient can test the day before."""
    appt = current_appointment(ref)
    return full_page_load() or render_template("patient/check.html", appt=appt, error=None, trial=True)


@bp.route("/v/<ref>/ping")
def ping(ref):
    """A tiny answer the device check times, to judge the connection."""
    current_appointment(ref)
    return "", 204, {"Cache-Control": "no-store"}
