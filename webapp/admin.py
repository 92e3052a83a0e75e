"""The practice's administration: staff accounts and settings, practitioners' availability and the
practice's visit types and online booking."""
from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit
from zoneinfo import available_timezones

from flask import Blueprint, abort, current_app, g, redirect, request, url_for
from flask_babel import gettext as _, lazy_gettext as _l, lazy_ngettext
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, IntegerField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, ValidationError

from .answers import after_change, form_status, render
from .answers import no_store
from .auth import MIN_PASSWORD, hash_password, keep_this_session, long_enough, staff_required
from .availability import (BookingSettingsForm, ExceptionForm, HoursForm, add_exception as add_hours_exception,
                           availability_context, remove_exception as remove_hours_exception, save_booking_settings,
                           save_hours, save_visit_type, visit_type_form, visit_type_rows)
from .forms import (FIRST_DAY, LAST_DAY, ascii_number, day_out_of_range, locale_options, options, parse_day, strip,
                    valid_email)
from .i18n import local_to_utc
from .models import Appointment, AuditEvent, HoursException, Patient, User, VisitType, db, utcnow
from .money import MAX_CENTS, parse_cents, typed
from .profiles import ProfileForm, missing_for_prescription, save_profile

bp = Blueprint("admin", __name__, url_prefix="/admin")

AUDIT_PER_PAGE = 50
MAX_PAGE = 100_000


def role_names():
    return {"admin": _l("Administrator"), "practitioner": _l("Practitioner"), "secretary": _l("Secretary")}


class StaffForm(FlaskForm):
    name = StringField(_l("Name"), filters=[strip], validators=[
        DataRequired(_l("Enter the name.")), Length(max=200, message=_l("At most 200 characters."))])
    email = EmailField(_l("E-mail"), validators=[InputRequired(_l("Enter the e-mail address.")), valid_email])
    role = SelectField(_l("Role"))
    locale = SelectField(_l("Language"))
    password = PasswordField(_l("Password"), validators=[long_enough])
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
            raise ValidationError(lazy_ngettext("Choose a password of at least %(num)d character.",
                                                 "Choose a password of at least %(num)d characters.", MIN_PASSWORD))


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
            # Stored in cents; shown in euros as the reader types them, "25, 17.50" in English and
            # "25, 17,50" in French (as the French hint writes it: the list splits on ", ").
            self.payment_presets.data = ", ".join(typed(c) for c in kwargs["obj"].preset_amounts)

    def validate_payment_presets(self, field):
        try:
            cents = [parse_cents(p) for p in (field.data or "").replace(";", " ").replace(", ", " ").split()]
        except ValueError:
            cents = None
        if cents is None or len(cents) > 8 or not all(1 <= c <= MAX_CENTS for c in cents):
            # Translators: amounts are separated by ", " (comma and space); a decimal comma is followed by no space, as in "25, 30, 17,50"
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
    """Staff accounts of the practice, and the relay workers' load (when there are workers to show)."""
    staff = User.select().where(User.practice == g.practice).order_by(User.active.desc(), User.name)
    relay = current_app.extensions["relay"].health()      # asks each worker its load (GET /load)
    return render("admin/index.html", staff=list(staff), roles=role_names(), relay_workers=relay.get("workers", []))


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
    upcoming = []
    if form.validate_on_submit():
        if member.id == g.user.id and (form.role.data != "admin" or not form.active.data):
            form.role.errors = [_l("You cannot remove your own administrator access.")]
        elif _leaves_the_agenda(member, form) and (upcoming := _upcoming_visits(member)):
            # Once they cannot sign in (or are no longer a practitioner), their agenda leaves every
            # list: patients would come to a waiting room nobody watches, and no one could move or
            # cancel those visits.
            form.active.errors = [_l("They still have upcoming teleconsultations: move them to another "
                                     "practitioner or cancel them first.")]
        else:
            return _save_staff(form, member)
    return render("admin/staff.html", "admin/_staff_form.html", form=form, member=member, upcoming=upcoming,
                  status=form_status(form))


def _leaves_the_agenda(member, form) -> bool:
    """Whether this change takes an active practitioner out of the practice's agendas."""
    return (member.role == "practitioner" and member.active
            and (not form.active.data or form.role.data != "practitioner"))


def _upcoming_visits(member) -> list:
    """A practitioner's visits still to come (neither cancelled nor closed, not yet over), and
    those under way whatever their planned end (a patient waiting late, a call running over)."""
    now = utcnow()
    rows = (Appointment.select().where(Appointment.practitioner == member,
                                       Appointment.status.not_in(("cancelled", "closed")),
                                       (Appointment.starts_at > now - dt.timedelta(hours=12))
                                       | Appointment.status.in_(("waiting", "in_call")))
            .order_by(Appointment.starts_at))
    return [appt for appt in rows if appt.ends_at > now or appt.status == "waiting"
            or (appt.status == "in_call" and appt.call_ended_at is None)]


@bp.route("/staff/<int:user_id>/second-factor/reset", methods=["POST"])
@staff_required("admin")
def reset_second_factor(user_id):
    """Forget a staff member's lost second factor: they set up a new one at their next sign-in."""
    member = User.get_or_none(User.id == user_id, User.practice == g.practice) or abort(404)
    if member.id == g.user.id:
        abort(403)          # an admin's own factor is reset by another admin, never by the session it guards
    member.reset_second_factor(g.user)
    return redirect(url_for("admin.edit_staff", user_id=member.id, reset=1))


@bp.route("/staff/<int:user_id>/profile", methods=["GET", "POST"])
@staff_required("admin")
def staff_profile(user_id):
    """A practitioner's profession, specialty, RPPS and AM numbers and practice address, as their
    prescriptions carry them (their signature is theirs to upload)."""
    member = User.get_or_none(User.id == user_id, User.practice == g.practice,
                              User.role == "practitioner") or abort(404)
    form = ProfileForm(obj=member)
    if form.validate_on_submit():
        save_profile(member, form, g.user)
        return redirect(url_for("admin.staff_profile", user_id=member.id, saved=1))
    return render("admin/staff_profile.html", "admin/_staff_profile_form.html", form=form, member=member,
                  missing=missing_for_prescription(member), status=form_status(form))


@bp.route("/practice", methods=["GET", "POST"])
@staff_required("admin")
def practice():
    """The practice's name, address, time zone, language, link window and reminders."""
    form = PracticeForm(obj=g.practice)
    if current_app.config.get("PUBLIC_URL"):
        del form.site_url                   # set by the server's configuration, not here
    if form.validate_on_submit():
        with db.atomic():
            before = {name: getattr(g.practice, name) for name in form.data if hasattr(g.practice, name)}
            form.populate_obj(g.practice)
            g.practice.save()
            changed = sorted(n for n, v in before.items() if getattr(g.practice, n) != v)   # names, not values
            AuditEvent.record(g.user, "practice.saved", detail=",".join(changed)[:200])
        return redirect(url_for("admin.practice", saved=1))
    return render("admin/practice.html", "admin/_practice_form.html", form=form, status=form_status(form))


# The audit trail: read-only, for administrators.

def actor_names():
    return {"patient": _l("The patient"), "system": _l("Cabinet itself"), "anonymous": _l("Someone not signed in")}


def _audit_day(name: str, errors: dict) -> dt.date | None:
    raw = request.args.get(name, "").strip()
    day = parse_day(raw) if raw else None
    if raw and day is None:
        errors[name] = _("Enter a date as YYYY-MM-DD.")
    elif day is not None and not FIRST_DAY <= day <= LAST_DAY:
        errors[name], day = str(day_out_of_range()), None
    return day


def _audit_visit(raw: str, errors: dict) -> Appointment | None:
    """A visit by its reference (as in its links) or its number (as in staff addresses)."""
    if not raw:
        return None
    number = ascii_number(raw)
    where = (Appointment.id == number) if number is not None and number < 2**31 else (Appointment.ref == raw)
    appt = Appointment.get_or_none(where, Appointment.practice == g.practice)
    if appt is None:
        errors["visit"] = _("No visit has this reference or number.")
    return appt


def _audit_filters() -> tuple[dict, dict]:
    """The trail's filters from the query string, and the errors found."""
    errors: dict = {}
    staff = list(User.select().where(User.practice == g.practice).order_by(User.name, User.id))
    wanted = request.args.get("person", "")
    person = next((u for u in staff if str(u.id) == wanted), None)
    if wanted and person is None:
        errors["person"] = _("Choose a person from the list.")
    patient = request.args.get("patient", "").strip()[:100]
    visit = request.args.get("visit", "").strip()[:100]
    start, end = _audit_day("start", errors), _audit_day("end", errors)
    if start and end and start > end:
        errors["end"] = _("The end date must not be before the start date.")
    page = ascii_number(request.args.get("page", "1")) or 1
    return {"staff": staff, "person": person, "patient": patient, "visit": visit, "appointment":
            _audit_visit(visit, errors), "start": start, "end": end, "page_number": max(1, min(page, MAX_PAGE))}, errors


def _audit_events(f: dict) -> tuple[list, bool]:
    """One page of matching events, newest first, and whether an older page follows."""
    tz = g.practice.timezone
    patient_ids = None
    if f["patient"]:
        patient_ids = [p.id for p in Patient.search(g.practice, f["patient"], limit=500)]
    query = AuditEvent.search(
        user_id=f["person"].id if f["person"] else None, patient_ids=patient_ids,
        appointment_id=f["appointment"].id if f["appointment"] else None,
        start=f["start"] and local_to_utc(dt.datetime.combine(f["start"], dt.time()), tz),
        end=f["end"] and local_to_utc(dt.datetime.combine(f["end"] + dt.timedelta(days=1), dt.time()), tz))
    rows = list(query.offset((f["page_number"] - 1) * AUDIT_PER_PAGE).limit(AUDIT_PER_PAGE + 1))
    return rows[:AUDIT_PER_PAGE], len(rows) > AUDIT_PER_PAGE


@bp.route("/audit")
@staff_required("admin")
@no_store
def audit():
    """The audit trail: who did what, when and from where; searched by person, patient, visit and dates."""
    filters, errors = _audit_filters()
    events, more = ([], False) if errors else _audit_events(filters)
    AuditEvent.record(g.user, "audit.viewed")     # the trail names patients: reading it is audited too
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render("admin/audit.html", "admin/_audit_results.html", status=422 if errors else 200, events=events,
                  more=more, errors=errors, actors=actor_names(), args=args, **filters)


# Availability: any practitioner's hours and exceptions, the practice's visit types and online booking.

def _practitioner_or_404(user_id):
    return User.get_or_none(User.id == user_id, User.practice == g.practice, User.role == "practitioner") or abort(404)


def _availability_urls(member) -> dict:
    return {"hours": url_for("admin.staff_hours", user_id=member.id),
            "exceptions": url_for("admin.staff_add_exception", user_id=member.id),
            "remove_exception": lambda row_id: url_for("admin.staff_remove_exception", user_id=member.id,
                                                       exception_id=row_id),
            "new_visit_type": url_for("admin.new_visit_type"),
            "edit_visit_type": lambda row: url_for("admin.edit_visit_type", visit_type_id=row.id),
            "page": url_for("admin.staff_availability", user_id=member.id)}


def _availability(member, fragment=None, status=200, **forms):
    return render("admin/availability.html", fragment, status=status,
                  **availability_context(member, _availability_urls(member), **forms))


@bp.route("/staff/<int:user_id>/availability")
@staff_required("admin")
def staff_availability(user_id):
    """A practitioner's opening hours, exceptions and visit types."""
    return _availability(_practitioner_or_404(user_id))


@bp.route("/staff/<int:user_id>/availability/hours", methods=["POST"])
@staff_required("admin")
def staff_hours(user_id):
    """Replace a practitioner's weekly hours."""
    member = _practitioner_or_404(user_id)
    form = HoursForm()
    if not form.validate_on_submit():
        return _availability(member, "availability/_hours.html", 422, hours_form=form)
    save_hours(member, form.ranges, g.user)
    return after_change(url_for("admin.staff_availability", user_id=member.id, saved="hours"),
                        "admin/availability.html", "availability/_hours.html",
                        **availability_context(member, _availability_urls(member), saved=True))


@bp.route("/staff/<int:user_id>/availability/exceptions", methods=["POST"])
@staff_required("admin")
def staff_add_exception(user_id):
    """Add a closure or an extra opening to a practitioner's hours."""
    member = _practitioner_or_404(user_id)
    form = ExceptionForm()
    if not form.validate_on_submit():
        return _availability(member, "availability/_exceptions.html", 422, exception_form=form)
    add_hours_exception(member, form, g.user)
    return _exceptions_changed(member)


@bp.route("/staff/<int:user_id>/availability/exceptions/<int:exception_id>/delete", methods=["POST"])
@staff_required("admin")
def staff_remove_exception(user_id, exception_id):
    """Remove an exception from a practitioner's hours."""
    member = _practitioner_or_404(user_id)
    row = HoursException.get_or_none(HoursException.id == exception_id, HoursException.practitioner == member.id)
    if row is None:
        abort(404)
    remove_hours_exception(row, g.user)
    return _exceptions_changed(member)


def _exceptions_changed(member):
    return after_change(url_for("admin.staff_availability", user_id=member.id, _anchor="exceptions"),
                        "admin/availability.html", "availability/_exceptions.html",
                        **availability_context(member, _availability_urls(member)))


@bp.route("/booking", methods=["GET", "POST"])
@staff_required("admin")
def booking():
    """Online booking on or off, the notice patients give to cancel or move, and the visit types."""
    form = BookingSettingsForm(obj=g.practice)
    if form.validate_on_submit():
        save_booking_settings(g.practice, form, g.user)
        return redirect(url_for("admin.booking", saved=1))
    return render("admin/booking.html", "admin/_booking_form.html", status=form_status(form), form=form,
                  visit_types=visit_type_rows(g.practice), practitioners=list(User.practitioners(g.practice)),
                  urls={"new_visit_type": url_for("admin.new_visit_type"),
                        "edit_visit_type": lambda row: url_for("admin.edit_visit_type", visit_type_id=row.id)})


@bp.route("/visit-types/new", methods=["GET", "POST"])
@staff_required("admin")
def new_visit_type():
    """A visit type for every practitioner of the practice, or for one."""
    return _visit_type(None)


@bp.route("/visit-types/<int:visit_type_id>", methods=["GET", "POST"])
@staff_required("admin")
def edit_visit_type(visit_type_id):
    """Change a visit type of the practice."""
    return _visit_type(VisitType.get_or_none(VisitType.id == visit_type_id, VisitType.practice == g.practice)
                       or abort(404))


def _visit_type(visit_type):
    form = visit_type_form(g.practice, visit_type, practitioners=list(User.practitioners(g.practice)))
    if form.validate_on_submit():
        save_visit_type(g.practice, visit_type, form, g.user)
        return redirect(url_for("admin.booking", _anchor="visit-types"))
    return render("availability/visit_type.html", "availability/_visit_type_form.html", status=form_status(form),
                  form=form, visit_type=visit_type, back=url_for("admin.booking"), action=request.path)
