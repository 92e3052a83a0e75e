"""The checklist's forms; every message translated."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l, lazy_ngettext
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Regexp

from ..forms import options, strip
from ..money import MAX_CENTS
from ..profiles import profession_names
from .inputs import MoneyField, WeightField

REPORT_MAX = 20_000


def at_most(maximum: int):
    """The message of a too-long text field, in the plural form the language needs for this number."""
    return lazy_ngettext("At most %(num)d character.", "At most %(num)d characters.", maximum)


def _text(label, required_message=None, maximum=300):
    validators = [Length(max=maximum, message=at_most(maximum))]
    if required_message:
        validators.insert(0, DataRequired(required_message))
    return TextAreaField(label, filters=[strip], validators=validators)


class ReportForm(FlaskForm):
    findings = _text(_l("Findings"), maximum=REPORT_MAX)
    decisions = _text(_l("Decisions"), maximum=REPORT_MAX)
    prescriptions = _text(_l("Prescriptions"), maximum=REPORT_MAX)


class IncidentForm(FlaskForm):
    detail = StringField(_l("Add to the incidents"), filters=[strip], validators=[
        DataRequired(_l("Describe the incident.")), Length(max=300, message=at_most(300))])


class UploadForm(FlaskForm):
    kind = RadioField(_l("Kind"), default="prescription",
                      choices=options([("prescription", _l("Prescription")), ("other", _l("Other document"))]))
    file = FileField(_l("File (PDF, JPEG or PNG)"))


class PrescriptionForm(FlaskForm):
    text = _text(_l("Write a prescription"), _l("Write the prescription."), maximum=5000)
    weight = WeightField(_l("Patient's weight (kg, optional)"))


class ActForm(FlaskForm):
    code = StringField(_l("Act"), filters=[strip])
    fee = MoneyField(_l("Fee (€, leave empty for the catalogue's)"), minimum=0, required=False)


class PaymentForm(FlaskForm):
    amount = MoneyField(_l("Amount (€)"))


class WaiverForm(FlaskForm):
    reason = StringField(_l("Reason"), filters=[strip], validators=[
        DataRequired(_l("Give a reason for waiving this item.")),
        Length(max=300, message=at_most(300))])


class AddendumForm(FlaskForm):
    text = _text(_l("Addendum"), _l("Write the addendum."), maximum=5000)


class ActCatalogueForm(FlaskForm):
    code = StringField(_l("Code"), filters=[strip, lambda v: v.upper() if isinstance(v, str) else v], validators=[
        DataRequired(_l("Enter the code.")), Length(max=16, message=at_most(16)),
        Regexp(r"^[A-Z0-9][A-Z0-9+._-]*$", message=_l("Letters, digits and + . _ - only, like TCG."))])
    label = StringField(_l("Label"), filters=[strip], validators=[
        DataRequired(_l("Enter the label.")), Length(max=200, message=at_most(200))])
    fee = MoneyField(_l("Default fee (€)"), minimum=0, maximum=MAX_CENTS,
                     description=_l("A default, shown when coding the act: update it when the tariffs change."))
    profession = SelectField(_l("For"), default="")
    active = BooleanField(_l("Offered when closing a visit"), default=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.profession.choices = options([("", _l("Every profession"))] + list(profession_names().items()))

class OutcomeForm(FlaskForm):
    """How the visit ended; what each outcome needs is checked against the visit in the view."""
    outcome = RadioField(_l("How did the visit end?"), choices=options([
        ("held", _l("Held: the call ran in Cabinet until the end")),
        ("phone", _l("Held by telephone: the call failed or the patient had no video, and I phoned them")),
        ("no_show", _l("Patient did not come")),
        ("outside", _l("Ended outside Cabinet: the patient's page closed or their device stopped")),
        ("left_early", _l("Patient left early")),
    ]), validators=[DataRequired(_l("Choose how the visit ended."))])
    phone_time = StringField(_l("Time of the telephone call (HH:MM)"), filters=[strip])
    reason = StringField(_l("Why, or what happened"), filters=[strip], validators=[
        Length(max=300, message=at_most(300))])


class CloseForm(FlaskForm):
    tell_patient = BooleanField(_l("Send the patient a message that they missed the visit (e-mail/SMS)"),
                                default=False)
