"""The practice's patient records: search, create, edit.

(The patient's own side of a visit, reached through their link, is ``webapp/patient/``.)
"""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, g, redirect, request, url_for
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from .answers import form_status, no_store, render
from .auth import staff_required
from .forms import (LocalDateField, PhoneField, locale_options, normalize_phone, past_birth_date, strip,
                    valid_email, valid_phone)
from .models import AuditEvent, Patient, db

bp = Blueprint("records", __name__, url_prefix="/patients")


class PatientForm(FlaskForm):
    first_name = StringField(_l("First name"), filters=[strip], validators=[
        DataRequired(_l("Enter the first name.")), Length(max=100, message=_l("At most 100 characters."))])
    last_name = StringField(_l("Last name"), filters=[strip], validators=[
        DataRequired(_l("Enter the last name.")), Length(max=100, message=_l("At most 100 characters."))])
    birth_date = LocalDateField(_l("Birth date"), validators=[InputRequired(_l("Enter the birth date.")),
                                                              past_birth_date])
    email = EmailField(_l("E-mail"), default="", validators=[Optional(), valid_email])
    phone = PhoneField(_l("Mobile phone"), validators=[valid_phone])
    locale = SelectField(_l("Language"))


def patient_or_404(patient_id: int) -> Patient:
    patient = Patient.get_or_none(Patient.id == patient_id, Patient.practice == g.practice)
    if patient is None:
        abort(404)
    return patient


def _search_args():
    text = request.args.get("q", "").strip()[:100]
    try:
        birth = dt.date.fromisoformat(request.args.get("birth", "")) if request.args.get("birth") else None
    except ValueError:
        birth = None
    phone = request.args.get("phone", "").strip()[:30]
    phone = (normalize_phone(phone) or "".join(c for c in phone if c.isdigit() or c == "+")) if phone else ""
    return text, birth, phone


@bp.route("/")
@staff_required()
@no_store
def index():
    """Search patients by name, birth date or phone."""
    text, birth, phone = _search_args()
    found = list(Patient.search(g.practice, text, birth, phone))
    return render("records/index.html", "records/_results.html", patients=found, q=text, birth=birth, phone=phone)


@bp.route("/choices")
@staff_required()
@no_store
def choices():
    """The patients matching what is typed in a booking form, as choices to pick."""
    text = request.args.get("patient_query", "").strip()[:100]
    found = list(Patient.search(g.practice, text, limit=10)) if text else []
    return render("agenda/_patient_choices.html", patients=found, chosen="")


def _save(form, patient):
    with db.atomic():
        form.populate_obj(patient)
        patient.practice = g.practice
        patient.save()
        AuditEvent.record(g.user, "patient.saved", patient=patient)
    return redirect(url_for("records.index", q=patient.last_name))


@bp.route("/new", methods=["GET", "POST"])
@staff_required()
@no_store
def new():
    """Add a patient."""
    form = PatientForm()
    form.locale.choices = locale_options()
    if form.validate_on_submit():
        return _save(form, Patient())
    return render("records/form.html", "records/_form.html", form=form, patient=None, status=form_status(form))


@bp.route("/<int:patient_id>", methods=["GET", "POST"])
@staff_required()
@no_store
def edit(patient_id):
    """A patient's details, to read or change."""
    patient = patient_or_404(patient_id)
    form = PatientForm(obj=patient)
    form.locale.choices = locale_options()
    if form.validate_on_submit():
        return _save(form, patient)
    if request.method == "GET":
        AuditEvent.record(g.user, "patient.viewed", patient=patient)
    return render("records/form.html", "records/_form.html", form=form, patient=patient, status=form_status(form))
