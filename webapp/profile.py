"""A practitioner's own profile: what their prescriptions say of them, their signature, their
availability (opening hours, exceptions, visit types), and the calendar feed of their agenda (its
secret address, renewed or turned off here)."""
from __future__ import annotations

import io

from flask import Blueprint, abort, g, redirect, request, send_file, url_for

from .access import feed_url
from .answers import after_change, form_status, no_store, render, wants_fragment
from .auth import staff_required
from .availability import (ExceptionForm, HoursForm, add_exception as add_hours_exception, availability_context,
                           remove_exception as remove_hours_exception, save_hours, save_visit_type, visit_type_form)
from .models import HoursException, VisitType
from .profiles import (ProfileForm, SIGNATURE_MAX_BYTES, missing_for_prescription, profession_name, read_signature,
                       remove_signature, save_profile, save_signature, signature_image)

bp = Blueprint("profile", __name__, url_prefix="/profile")


def _page(status: int = 200, form=None, signature_error: str | None = None, fragment: str | None = None):
    form = form or ProfileForm(formdata=None, obj=g.user)
    return render("profile/edit.html", fragment, status=status, form=form, member=g.user,
                  missing=missing_for_prescription(g.user), signature_error=signature_error,
                  max_kb=SIGNATURE_MAX_BYTES // 1024, profession_name=profession_name,
                  feed=feed_url(g.user) if g.user.feed_on else None)


@bp.route("/", methods=["GET", "POST"])
@staff_required("practitioner")
@no_store
def edit():
    """Profession, specialty, RPPS and AM numbers, practice address and phone."""
    form = ProfileForm(obj=g.user)
    if form.validate_on_submit():
        save_profile(g.user, form, g.user)
        return redirect(url_for("profile.edit", saved=1))
    return _page(form_status(form), form, fragment="profile/_form.html")


@bp.route("/signature", methods=["POST"])
@staff_required("practitioner")
@no_store
def upload_signature():
    """Keep a new signature image (PNG or JPEG), encrypted; it replaces the previous one."""
    data, content_type, error = read_signature(request.files.get("signature"))
    if error:
        return _page(422, signature_error=error, fragment="profile/_signature.html")
    save_signature(g.user, data, content_type, g.user)
    return _signature_changed()


@bp.route("/signature/delete", methods=["POST"])
@staff_required("practitioner")
@no_store
def delete_signature():
    """Remove the signature: prescriptions go out unsigned until a new one is uploaded."""
    remove_signature(g.user, g.user)
    return _signature_changed()


def _signature_changed():
    if wants_fragment():
        return _page(fragment="profile/_signature.html")
    return redirect(url_for("profile.edit", _anchor="signature"))


@bp.route("/signature")
@staff_required("practitioner")
@no_store
def signature():
    """The signature image itself, for its owner to check."""
    data = signature_image(g.user)
    if data is None:
        abort(404)
    response = send_file(io.BytesIO(data), mimetype=g.user.signature_type, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# Availability: the practitioner's own opening hours, exceptions and visit types.

def _availability_urls() -> dict:
    return {"hours": url_for("profile.hours"), "exceptions": url_for("profile.add_exception"),
            "remove_exception": lambda row_id: url_for("profile.remove_exception", exception_id=row_id),
            "new_visit_type": url_for("profile.new_visit_type"),
            "edit_visit_type": lambda row: url_for("profile.edit_visit_type", visit_type_id=row.id)
            if row.practitioner_id == g.user.id else None,
            "page": url_for("profile.availability")}


def _availability(fragment=None, status=200, **forms):
    return render("profile/availability.html", fragment, status=status,
                  **availability_context(g.user, _availability_urls(), **forms))


@bp.route("/availability")
@staff_required("practitioner")
def availability():
    """My opening hours for teleconsultations, their exceptions, and my visit types."""
    return _availability()


@bp.route("/availability/hours", methods=["POST"])
@staff_required("practitioner")
def hours():
    """Replace my weekly hours."""
    form = HoursForm()
    if not form.validate_on_submit():
        return _availability("availability/_hours.html", 422, hours_form=form)
    save_hours(g.user, form.ranges, g.user)
    return after_change(url_for("profile.availability", saved="hours"), "profile/availability.html",
                        "availability/_hours.html", **availability_context(g.user, _availability_urls(), saved=True))


@bp.route("/availability/exceptions", methods=["POST"])
@staff_required("practitioner")
def add_exception():
    """Add a closure or an extra opening."""
    form = ExceptionForm()
    if not form.validate_on_submit():
        return _availability("availability/_exceptions.html", 422, exception_form=form)
    add_hours_exception(g.user, form, g.user)
    return _exceptions_changed()


@bp.route("/availability/exceptions/<int:exception_id>/delete", methods=["POST"])
@staff_required("practitioner")
def remove_exception(exception_id):
    """Remove one of my exceptions."""
    row = HoursException.get_or_none(HoursException.id == exception_id, HoursException.practitioner == g.user.id)
    if row is None:
        abort(404)
    remove_hours_exception(row, g.user)
    return _exceptions_changed()


def _exceptions_changed():
    return after_change(url_for("profile.availability", _anchor="exceptions"), "profile/availability.html",
                        "availability/_exceptions.html", **availability_context(g.user, _availability_urls()))


def _own_visit_type(visit_type_id):
    return VisitType.get_or_none(VisitType.id == visit_type_id, VisitType.practice == g.practice,
                                 VisitType.practitioner == g.user.id) or abort(404)


@bp.route("/visit-types/new", methods=["GET", "POST"])
@staff_required("practitioner")
def new_visit_type():
    """A visit type of my own."""
    return _visit_type(None)


@bp.route("/visit-types/<int:visit_type_id>", methods=["GET", "POST"])
@staff_required("practitioner")
def edit_visit_type(visit_type_id):
    """Change one of my visit types."""
    return _visit_type(_own_visit_type(visit_type_id))


def _visit_type(visit_type):
    form = visit_type_form(g.practice, visit_type)
    if form.validate_on_submit():
        save_visit_type(g.practice, visit_type, form, g.user, practitioner=g.user.id)
        return redirect(url_for("profile.availability", _anchor="visit-types"))
    return render("availability/visit_type.html", "availability/_visit_type_form.html", status=form_status(form),
                  form=form, visit_type=visit_type, back=url_for("profile.availability"),
                  action=request.path)
@bp.route("/calendar/renew", methods=["POST"])
@staff_required("practitioner")
@no_store
def renew_feed():
    """Turn the calendar feed on, under a new secret address (any older one stops working)."""
    g.user.renew_feed(g.user)
    return _feed_changed()


@bp.route("/calendar/revoke", methods=["POST"])
@staff_required("practitioner")
@no_store
def revoke_feed():
    """Turn the calendar feed off: phones subscribed to it get nothing more."""
    g.user.revoke_feed(g.user)
    return _feed_changed()


@bp.route("/calendar/names", methods=["POST"])
@staff_required("practitioner")
@no_store
def feed_names():
    """Whether the feed shows patients' names and motives, or only initials and times."""
    g.user.show_names_in_feed(g.user, request.form.get("names") == "1")
    return _feed_changed()


def _feed_changed():
    if wants_fragment():
        return _page(fragment="profile/_feed.html")
    return redirect(url_for("profile.edit", _anchor="calendar-feed"))
