"""The practice's administration: staff accounts and settings."""
from __future__ import annotations

from urllib.parse import urlsplit
from zoneinfo import available_timezones

from flask import Blueprint, abort, current_app, g, redirect, url_for
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, IntegerField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, ValidationError

from .answers import form_status, render
from .auth import hash_password, keep_this_session, staff_required
from .forms import ascii_number, locale_options, options, strip, valid_email
from .models import AuditEvent, User, db
from .money import MAX_CENTS, parse_cents, typed

bp = Blueprint("admin", __name__, url_prefix="/admin")

MIN_PASSWORD = 10


def role_names():
    return {"admin": _l("Administrator"), "practitioner": _l("Practitioner"), "secretary": _l("Secretary")}


class StaffForm(FlaskForm):
    name = StringField(_l("Name"), filters=[strip], validators=[
        DataRequired(_l("Enter the name.")), Length(max=200, message=_l("At most 200 characters."))])
    email = EmailField(_l("E-mail"), validators=[InputRequired(_l("Enter the e-mail address.")), valid_email])
    role = SelectField(_l("Role"))
    locale = SelectField(_l("Language"))
    password = PasswordField(_l("Password"))
    active = BooleanField(_l("Can sign in"), default=True)

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.role.choices = options(role_names().items())
        self.locale.choices = locale_options()

    def validate_email(self, field):
        other = User.by_email(field.data or "")
        if other is not None and (self.user is None or other.id != self.user.id):
            raise ValidationError(_l("Another account already uses this e-mail address."))

    def validate_password(self, field):
        if self.user is None and not field.data:
            raise ValidationError(_l("Choose a password of at least %(n)s characters.", n=MIN_PASSWORD))
        if field.data and len(field.data) < MIN_PASSWORD:
            raise ValidationError(_l("At least %(n)s characters.", n=MIN_PASSWORD))


class PracticeForm(FlaskForm):
    name = StringField(_l("Name of the practice"), filters=[strip], validators=[
        DataRequired(_l("Enter the name of the practice.")), Length(max=200, message=_l("At most 200 characters."))])
    address = TextAreaField(_l("Address"), filters=[strip], validators=[Length(max=500)])
    timezone = SelectField(_l("Time zone"))
    default_locale = SelectField(_l("Default language"))
    link_opens_minutes_before = IntegerField(_l("Link opens (minutes before the start)"), validators=[
        InputRequired(_l("Enter a number of minutes.")), NumberRange(0, 1440, _l("Between 0 and 1440 minutes."))])
    link_closes_minutes_after = IntegerField(_l("Link closes (minutes after the start)"), validators=[
        InputRequired(_l("Enter a number of minutes.")), NumberRange(0, 1440, _l("Between 0 and 1440 minutes."))])
    patient_space_days = IntegerField(_l("Patient space stays open (days)"), validators=[
        InputRequired(_l("Enter a number of days.")), NumberRange(1, 365, _l("Between 1 and 365 days."))])
    reminder_minutes = StringField(_l("Reminders (minutes before, separated by commas)"), filters=[strip])
    max_upload_mb = IntegerField(_l("Largest file patients and staff may send (MB)"), validators=[
        InputRequired(_l("Enter a number of megabytes.")), NumberRange(1, 25, _l("Between 1 and 25 MB."))])
    payment_presets = StringField(_l("Amounts offered when requesting a payment (€, separated by commas)"),
                                  filters=[strip])
    payment_instructions = TextAreaField(_l("How patients pay (shown with the payment request)"), filters=[strip],
                                         validators=[Length(max=1000, message=_l("At most 1000 characters."))])
    site_url = StringField(_l("Address of this site (the start of every link sent to patients)"),
                           filters=[strip, lambda v: (v or "").rstrip("/")])
    share_records = BooleanField(_l("The practice's practitioners share their patients' clinical records"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timezone.choices = options((tz, tz) for tz in sorted(available_timezones()))
        self.default_locale.choices = locale_options(with_default=False)
        if not self.is_submitted() and kwargs.get("obj") is not None:
            # Stored in cents; shown in euros as the practice types them.
            self.payment_presets.data = ", ".join(typed(c) for c in kwargs["obj"].preset_amounts)

    def validate_payment_presets(self, field):
        try:
            cents = [parse_cents(p) for p in (field.data or "").replace(";", " ").replace(", ", " ").split()]
        except ValueError:
            cents = None
        if cents is None or len(cents) > 8 or not all(1 <= c <= MAX_CENTS for c in cents):
            raise ValidationError(_l("Give up to 8 amounts between 0.01 and 1000 €, like 25, 30, 17.50."))
        field.data = ",".join(str(c) for c in cents)

    def validate_site_url(self, field):
        parts = urlsplit(field.data or "")
        if field.data and (parts.scheme not in ("http", "https") or not parts.hostname or parts.query
                           or parts.fragment or len(field.data) > 300):
            raise ValidationError(_l("Give the address patients open, like https://visio.my-practice.fr"))

    def validate_reminder_minutes(self, field):
        parts = [p.strip() for p in (field.data or "").split(",") if p.strip()]
        minutes = [ascii_number(p) for p in parts]
        if not all(m is not None and 1 <= m <= 10080 for m in minutes) or len(parts) > 5:
            raise ValidationError(_l("Give up to 5 numbers of minutes between 1 and 10080, like 1440, 15."))
        field.data = ",".join(str(m) for m in minutes)


@bp.route("/")
@staff_required("admin")
def index():
    """Staff accounts of the practice."""
    staff = User.select().where(User.practice == g.practice).order_by(User.active.desc(), User.name)
    return render("admin/index.html", staff=list(staff), roles=role_names())


def _save_staff(form, user):
    with db.atomic():
        password = form.password.data
        for name in ("name", "email", "role", "locale", "active"):
            setattr(user, name, getattr(form, name).data)
        if password:
            user.password_hash = hash_password(password)
        user.practice = g.practice
        user.save()
        if password:
            user.end_sessions()         # a new password signs the account out everywhere…
            keep_this_session(user)     # …but not the admin who just changed their own
        AuditEvent.record(g.user, "staff.saved", detail=f"user:{user.id}")
    return redirect(url_for("admin.index"))


@bp.route("/staff/new", methods=["GET", "POST"])
@staff_required("admin")
def new_staff():
    """Add a staff account."""
    form = StaffForm()
    if form.validate_on_submit():
        return _save_staff(form, User())
    return render("admin/staff.html", "admin/_staff_form.html", form=form, member=None, status=form_status(form))


@bp.route("/staff/<int:user_id>", methods=["GET", "POST"])
@staff_required("admin")
def edit_staff(user_id):
    """Change a staff account; an admin cannot lock themselves out."""
    member = User.get_or_none(User.id == user_id, User.practice == g.practice) or abort(404)
    form = StaffForm(obj=member, user=member)
    if form.validate_on_submit():
        if member.id == g.user.id and (form.role.data != "admin" or not form.active.data):
            form.role.errors = [_l("You cannot remove your own administrator access.")]
        else:
            return _save_staff(form, member)
    return render("admin/staff.html", "admin/_staff_form.html", form=form, member=member, status=form_status(form))


@bp.route("/staff/<int:user_id>/second-factor/reset", methods=["POST"])
@staff_required("admin")
def reset_second_factor(user_id):
    """Forget a staff member's lost second factor: they set up a new one at their next sign-in."""
    member = User.get_or_none(User.id == user_id, User.practice == g.practice) or abort(404)
    if member.id == g.user.id:
        abort(403)          # an admin's own factor is reset by another admin, never by the session it guards
    member.reset_second_factor(g.user)
    return redirect(url_for("admin.edit_staff", user_id=member.id, reset=1))


@bp.route("/practice", methods=["GET", "POST"])
@staff_required("admin")
def practice():
    """The practice's name, address, time zone, language, link window and reminders."""
    form = PracticeForm(obj=g.practice)
    if current_app.config.get("PUBLIC_URL"):
        del form.site_url                   # set by the server's configuration, not here
    if form.validate_on_submit():
        with db.atomic():
            form.populate_obj(g.practice)
            g.practice.save()
            AuditEvent.record(g.user, "practice.saved")
        return redirect(url_for("admin.practice", saved=1))
    return render("admin/practice.html", "admin/_practice_form.html", form=form, status=form_status(form))
