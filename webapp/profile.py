"""A practitioner's own profile: what their prescriptions say of them, their signature, and the
calendar feed of their agenda (its secret address, renewed or turned off here)."""
from __future__ import annotations

import io

from flask import Blueprint, abort, g, redirect, request, send_file, url_for

from .access import feed_url
from .answers import form_status, no_store, render, wants_fragment
from .auth import staff_required
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
