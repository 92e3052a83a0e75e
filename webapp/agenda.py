"""The agenda: day and week views per practitioner, booking, moving, cancelling, links."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from urllib.parse import urlencode

from babel.dates import format_date, format_interval, format_time
from flask import Blueprint, abort, current_app, g, make_response, redirect, request, url_for
from flask_babel import force_locale, get_locale, gettext, lazy_gettext as _l, pgettext
from icalendar import Calendar, Event
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, RadioField, SelectField, StringField, TextAreaField
from werkzeug.datastructures import MultiDict
from wtforms.validators import InputRequired, Length

from . import events, notify
from .access import appointment_or_404, patient_link_url, visible_practitioners
from .answers import after_change, form_status, go_to, no_store, render
from .auth import staff_required
from .forms import (LocalDateField, LocalTimeField, PatientForm, PhoneField, can_receive_sms, clamp_day, known_locale,
                    locale_options, options, parse_day, row_id, strip, valid_email, valid_mobile, valid_phone)
from .i18n import local_to_utc, reader_dates_locale, utc_to_local
from .models import Appointment, AuditEvent, Patient, User, VisitType, WeeklyHours, db, utcnow
from .slots import free_slots, next_free_slots
from .tokens import FeedKey, read_feed_token

bp = Blueprint("agenda", __name__, url_prefix="/agenda")

DURATIONS = (10, 15, 20, 30, 45, 60)
# A booking a few minutes in the past is a slip of the clock, not a mistake.
PAST_GRACE = dt.timedelta(minutes=5)


def _mode_choices():
    return options([("video", _l("Video")), ("audio", _l("Audio only"))])


class AppointmentForm(FlaskForm):
    patient_id = StringField(filters=[strip])
    patient_query = StringField(_l("Patient"), filters=[strip])
    practitioner = SelectField(_l("Practitioner"), coerce=int)
    date = LocalDateField(_l("Date"), validators=[InputRequired(_l("Enter the date."))])
    time = LocalTimeField(_l("Time"), validators=[InputRequired(_l("Enter the time."))])
    duration = SelectField(_l("Duration"), coerce=int, default=15,
                           # Translators: a visit's length in minutes, abbreviated ("20 min")
                           choices=options((m, _l("%(n)s min", n=m)) for m in DURATIONS))
    motive = TextAreaField(_l("Motive"), filters=[strip], default="",
                           validators=[Length(max=500, message=_l("At most 500 characters."))])
    mode = RadioField(_l("Mode"), choices=_mode_choices(), default="video")
    send_by = RadioField(_l("Send the link by"), default="both", choices=options([
        ("both", _l("E-mail and SMS")), ("email", _l("E-mail only")), ("sms", _l("SMS only"))]))
    language = SelectField(_l("Language"), default="", validate_choice=False, validators=[known_locale])
    confirm_overlap = BooleanField(_l("Book anyway, despite the overlap"))
    # Kept on the visit, whose closing then offers that type's act; a free slot's link (next-free)
    # chooses it. Choosing one in the form sets its length and mode (js/app.js).
    visit_type = SelectField(_l("Visit type"), default="", validate_choice=False)


class InstantForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[valid_email])
    phone = PhoneField(_l("Mobile phone"), validators=[valid_phone, valid_mobile])
    practitioner = SelectField(_l("Practitioner"), coerce=int)
    mode = RadioField(_l("Mode"), choices=_mode_choices(), default="video")
    language = SelectField(_l("Language"), default="", validate_choice=False, validators=[known_locale])

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        if ok and not self.email.data and not self.phone.data:
            self.email.errors.append(_l("Enter an e-mail address or a mobile number."))
            ok = False
        return ok


def _parse_time(raw: str | None) -> dt.time | None:
    """A time given as HH:MM in the address (a free slot of the grid); None when unreadable."""
    try:
        return dt.time.fromisoformat(raw) if raw and len(raw) == 5 else None
    except ValueError:
        return None


def _chosen_practitioner(practitioners, wanted):
    by_id = {p.id: p for p in practitioners}
    if wanted in by_id:
        return by_id[wanted]
    if g.user.id in by_id:
        return by_id[g.user.id]
    return practitioners[0] if practitioners else None


def _local_today() -> dt.date:
    return utc_to_local(utcnow(), g.practice.timezone).date()


def _parse_day(raw: str | None) -> dt.date:
    """The day asked for in the address: today when unreadable, the nearest day we show when out of range."""
    day = parse_day(raw)
    return clamp_day(day) if day else _local_today()


def _days(view: str, day: dt.date) -> list[dt.date]:
    if view == "week":
        monday = day - dt.timedelta(days=day.weekday())
        return [monday + dt.timedelta(days=i) for i in range(7)]
    return [day]


# The time grid. Rows are 5 minutes of wall-clock time in the practice's time zone; a column is a
# day (week view) or a practitioner (day view). Positions are classes (r<row>, s<span>, l<lane>,
# w<width>) from static/css/agenda.css: the CSP allows no style attribute.
STEP = 5                                    # minutes per grid row
CELL = dt.timedelta(minutes=15)             # a free cell
WORKING_HOURS = (dt.time(8), dt.time(19))   # local; the grid shows at least these hours
MAX_LANES = 4                               # side-by-side overlapping visits in one column
ROWS_PER_HOUR = 60 // STEP


def free_cells(practitioner, start_utc: dt.datetime, end_utc: dt.datetime, now: dt.datetime) -> list[tuple]:
    """The grid's free cells of ``practitioner`` between ``start_utc`` and ``end_utc``, as (start, end)
    in naive UTC: their free slots inside their opening hours (``slots.free_slots``). A practitioner
    with no opening hours yet, whom staff book by phone, gets every 15-minute cell of 08:00-19:00
    local that no active visit overlaps and that has not begun."""
    if WeeklyHours.select().where(WeeklyHours.practitioner == practitioner.id).exists():
        return [(slot.starts_at, slot.ends_at) for slot in free_slots(practitioner, start_utc, end_utc, now=now)]
    tz = g.practice.timezone
    taken = [(start, start + dt.timedelta(minutes=minutes)) for start, minutes in
             Appointment.select(Appointment.starts_at, Appointment.duration_minutes)
             .where(Appointment.practitioner == practitioner.id, Appointment.status != "cancelled",
                    Appointment.starts_at >= start_utc - dt.timedelta(hours=12), Appointment.starts_at < end_utc)
             .tuples()]
    found = []
    day = utc_to_local(start_utc, tz).date()
    while local_to_utc(dt.datetime.combine(day, dt.time()), tz) < end_utc:
        cell = dt.datetime.combine(day, WORKING_HOURS[0])
        while cell.time() < WORKING_HOURS[1] and cell.date() == day:
            start, end = local_to_utc(cell, tz), local_to_utc(cell + CELL, tz)
            if start >= max(now, start_utc) and end <= end_utc and \
                    not any(s < end and start < e for s, e in taken):
                found.append((start, end))
            cell += CELL
        day += dt.timedelta(days=1)
    return found


@dataclass
class Column:
    """One column of the grid: the visits placed in it and its free cells."""
    day: dt.date
    practitioner: User
    title: str
    placed: list = field(default_factory=list)      # (appt, row, span, lane, width, start label)
    free: list = field(default_factory=list)        # (row, span, date, time, time label)
    lanes: int = 1
    now_row: int | None = None


def _minutes(local: dt.datetime, day: dt.date) -> int:
    """Wall-clock minutes of ``local`` from the start of ``day`` (past midnight: more than 1440)."""
    return (local.date() - day).days * 1440 + local.hour * 60 + local.minute


def _lay_out(column: Column, entries: list) -> None:
    """Lanes for overlapping visits: each visit takes the first free lane of its cluster, and the
    last one of a cluster stretches over the lanes its cluster leaves empty."""
    clusters, current, ends, cluster_end = [], [], [], -1
    for entry in entries:           # (appt, first row, span, label), sorted by start
        row, span = entry[1], entry[2]
        if current and row >= cluster_end:
            clusters.append((current, len(ends)))
            current, ends = [], []
        lane = next((i for i, end in enumerate(ends) if end <= row), None)
        if lane is None:
            lane = min(len(ends), MAX_LANES - 1)
            if lane == len(ends):
                ends.append(0)
        ends[lane] = max(ends[lane], row + span)
        cluster_end = max(cluster_end, row + span) if current else row + span
        current.append((entry, lane))
    if current:
        clusters.append((current, len(ends)))
    column.lanes = max((width for _, width in clusters), default=1)
    for members, width in clusters:
        for (appt, row, span, label), lane in members:
            stretch = column.lanes - lane if lane == width - 1 else 1
            column.placed.append((appt, row, span, lane, stretch, label))


class Clock:
    """Short times in the user's language, each formatted once per render (Babel is slow per call)."""

    def __init__(self):
        self.locale = reader_dates_locale()
        self.cache = {}

    def __call__(self, t: dt.time) -> str:
        if t not in self.cache:
            self.cache[t] = format_time(t, "short", locale=self.locale)
        return self.cache[t]


def grid_context(view: str, day: dt.date, practitioners: list, columns_of: str) -> dict:
    """Columns, rows and hour labels of the time grid for the days and practitioners shown."""
    tz = g.practice.timezone
    days = _days(view, day)
    start = local_to_utc(dt.datetime.combine(days[0], dt.time()), tz)
    end = local_to_utc(dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time()), tz)
    clock = Clock()
    if columns_of == "day":
        columns = [Column(d, practitioners[0], "") for d in days]
    else:
        columns = [Column(day, p, p.name) for p in practitioners]
    index = {(c.day, c.practitioner.id): c for c in columns}
    first = WORKING_HOURS[0].hour * 60
    last = WORKING_HOURS[1].hour * 60
    entries = {key: [] for key in index}
    for appt in Appointment.on_grid([p.id for p in practitioners], start, end):
        local = utc_to_local(appt.starts_at, tz)
        key = (local.date(), appt.practitioner_id)
        if key not in entries:
            continue
        begin = _minutes(local, local.date())
        finish = max(_minutes(utc_to_local(appt.ends_at, tz), local.date()), begin + STEP)
        first, last = min(first, begin), max(last, finish)
        entries[key].append((appt, begin, finish, clock(local.time())))
    first = first // 60 * 60
    last = min(-(-last // 60) * 60, 24 * 60)
    for key, found in entries.items():
        placed = [(appt, (begin - first) // STEP + 1, max(1, -(-(min(finish, last) - begin) // STEP)), label)
                  for appt, begin, finish, label in found]
        _lay_out(index[key], placed)
    now = utcnow()
    for p in practitioners:
        for slot_start, slot_end in free_cells(p, start, end, now):
            local, local_end = utc_to_local(slot_start, tz), utc_to_local(slot_end, tz)
            column = index.get((local.date(), p.id))
            begin = _minutes(local, local.date())
            if column is None or begin < first:
                continue
            span = max(1, (min(_minutes(local_end, local.date()), last) - begin) // STEP)
            column.free.append(((begin - first) // STEP + 1, span, local.date(), local.time(), clock(local.time())))
    local_now = utc_to_local(now, tz)
    for column in columns:
        minute = _minutes(local_now, column.day)
        if first <= minute < last:
            column.now_row = (minute - first) // STEP + 1
    hours = [((h * 60 - first) // STEP + 1, clock(dt.time(h))) for h in range(first // 60, last // 60)]
    _ready(columns)
    return {"columns": columns, "rows": (last - first) // STEP, "hours": hours, "grid_start": first,
            "now_minute": _minutes(local_now, local_now.date()) - first}


def _ready(columns: list) -> None:
    """Classes, addresses and labels of every cell, made here rather than in the template: a busy
    week has hundreds of cells, and Jinja calls (url_for, gettext) cost ten times a Python one."""
    new_url = url_for("agenda.new")
    book, move_here = gettext("Book at %(time)s"), gettext("Move here: %(time)s")
    metas = {}
    for column in columns:
        suffix = f" · {column.title}" if column.title else ""
        cells = []
        for row, span, on, at, label in column.free:
            query = {"practitioner": column.practitioner.id, "date": on.isoformat(), "time": f"{at:%H:%M}"}
            cells.append((f"free r{row} s{span}", "|".join(map(str, query.values())),
                          f"{new_url}?{urlencode(query, safe=':')}",       # url_for once, not per cell
                          book % {"time": label} + suffix, move_here % {"time": label} + suffix, label))
        column.free = cells
        placed = []
        for appt, row, span, lane, width, label in column.placed:
            key = (appt.duration_minutes, appt.mode, appt.status, appt.consent_declined)
            if key not in metas:
                metas[key] = " · ".join(filter(None, (
                    gettext("%(n)s min", n=appt.duration_minutes),
                    gettext("Audio only") if appt.mode == "audio" else gettext("Video"),
                    pgettext("visit status", "Cancelled") if appt.status == "cancelled" else
                    gettext("Awaiting approval") if appt.status == "requested" else
                    gettext("Consent declined") if appt.consent_declined else "")))
            size = " short" if span < 5 else " medium" if span < 6 else ""
            placed.append((appt, f"ev r{row} s{span} l{lane} w{width} status-{appt.status} mode-{appt.mode}{size}",
                           label, metas[key]))
        column.placed = placed


def agenda_context(view: str, day: dt.date, practitioner_id: int | None, everyone: bool = False,
                   moving: Appointment | None = None) -> dict:
    """Everything the agenda fragment needs for one view, day and practitioner(s)."""
    practitioners = visible_practitioners()
    practitioner = _chosen_practitioner(practitioners, practitioner_id)
    # A day view of the whole practice side by side: what a secretary or an admin opens on.
    side_by_side = view == "day" and len(practitioners) > 1 and (everyone or (
        practitioner_id is None and g.user.role != "practitioner"))
    shown = practitioners if side_by_side else [practitioner] if practitioner else []
    step = dt.timedelta(days=7 if view == "week" else 1)
    context = {"view": view, "day": day, "days": _days(view, day), "today": _local_today(),
               "practitioners": practitioners, "practitioner": None if side_by_side else practitioner,
               "everyone": side_by_side, "previous": day - step, "next": day + step, "moving": moving,
               "range_title": _range_title(_days(view, day))}
    if shown:
        context.update(grid_context(view, day, shown, "practitioner" if side_by_side else "day"))
    return context


def _range_title(days: list[dt.date]) -> str:
    """"8 – 14 June 2036": the days shown, as the user's language writes a range."""
    if len(days) == 1:
        return format_date(days[0], "full", locale=reader_dates_locale())
    return format_interval(days[0], days[-1], "yMMMd", locale=reader_dates_locale())


def _agenda_args():
    """View, day, practitioner and the whole-practice switch, as the address asks."""
    view = "week" if request.args.get("view") == "week" else "day"
    wanted = request.args.get("practitioner", "")
    return (view, _parse_day(request.args.get("date")), row_id(wanted) if wanted != "all" else None,
            wanted == "all")


@bp.route("/")
@staff_required()
def index():
    """The day or week time grid: one practitioner's, or the whole practice's day side by side."""
    view, day, practitioner_id, everyone = _agenda_args()
    moving = request.args.get("move", type=row_id)
    moving = appointment_or_404(moving) if moving else None
    if moving is not None and not moving.is_active:
        moving = None
    context = agenda_context(view, day, practitioner_id, everyone, moving)
    return render("agenda/index.html", "agenda/_agenda.html", **context)


@bp.route("/today")
@staff_required()
def today():
    """Today's agenda for the signed-in practitioner (or the first one, for other staff)."""
    return redirect(url_for("agenda.index"))


# Booking and editing.

def _practitioner_choices(form, appt=None):
    form.practitioner.choices = options((p.id, p.name) for p in visible_practitioners())
    types = list(VisitType.offered(g.practice))
    if "visit_type" in form:
        form.visit_type.choices = _visit_type_choices(types, appt)
    if "duration" in form:      # the usual lengths, those of the practice's visit types, the visit's own
        lengths = set(DURATIONS) | {t.duration_minutes for t in types}
        if appt is not None:
            lengths |= {appt.duration_minutes} | ({appt.visit_type.duration_minutes} if appt.visit_type_id else set())
        lengths = sorted(lengths)
        form.duration.choices = options((m, _l("%(n)s min", n=m)) for m in lengths)
    if not form.practitioner.choices:
        abort(403)
    if "language" in form:
        form.language.choices = locale_options(default_label=_l("Automatic"))


def _chosen_language(appt) -> str:
    """The language staff or the patient chose for the appointment, as the form shows it ("" when
    none was: the one a browser asked for is not a choice)."""
    return appt.locale if appt.locale_source != "browser" else ""


def _language(form) -> dict:
    return {"locale": form.language.data, "locale_source": "staff" if form.language.data else ""}


def _patient_choices(form) -> list[Patient]:
    if form.patient_query.data:
        return list(Patient.search(g.practice, form.patient_query.data, limit=10))
    if row_id(form.patient_id.data):
        return list(Patient.select().where(Patient.practice == g.practice, Patient.id == row_id(form.patient_id.data)))
    return []


def _chosen_patient(form) -> Patient | None:
    wanted = row_id(form.patient_id.data)
    patient = wanted and Patient.get_or_none(Patient.id == wanted, Patient.practice == g.practice)
    if not patient:
        form.patient_query.errors = [_l("Choose a patient from the list.")]
        return None
    if not (patient.email or patient.phone):
        form.patient_query.errors = [_l("This patient has no e-mail address or mobile number to send the link to.")]
        return None
    if form.send_by.data == "email" and not patient.email:
        form.send_by.errors = [_l("This patient has no e-mail address: choose SMS.")]
        return None
    if form.send_by.data == "sms" and not patient.phone:
        form.send_by.errors = [_l("This patient has no mobile number: choose e-mail.")]
        return None
    if form.send_by.data in ("sms", "both") and patient.phone and not can_receive_sms(patient.phone):
        form.send_by.errors = [_l("This patient's number is a landline: SMS cannot reach it. Choose e-mail only.")]
        return None
    return patient


def _channels(form) -> dict:
    """The channels chosen for invitations and reminders (only those with a contact are used)."""
    return {"notify_email": form.send_by.data in ("both", "email"), "notify_sms": form.send_by.data in ("both", "sms")}


def _slot(form, appt: Appointment | None):
    """The form's start time in UTC, or None with an error on the field."""
    starts_at = local_to_utc(dt.datetime.combine(form.date.data, form.time.data), g.practice.timezone)
    moved = appt is None or starts_at != appt.starts_at
    if moved and starts_at < utcnow() - PAST_GRACE:
        form.time.errors = [_l("This time has already passed.")]
        return None
    return starts_at


def _overlaps(form, starts_at, appt):
    ends_at = starts_at + dt.timedelta(minutes=form.duration.data)
    return Appointment.overlapping(form.practitioner.data, starts_at, ends_at, appt.id if appt else None)


def _visit_type_choices(offered: list, appt=None) -> list:
    """The practice's active visit types (``offered``; and the visit's own, even if no longer
    offered), each with its length and mode for the form's script; a practitioner's own type says
    whose it is."""
    types = list(offered)
    if appt is not None and appt.visit_type_id and all(t.id != appt.visit_type_id for t in types):
        types.append(appt.visit_type)
    if not types:
        return []
    locale = str(get_locale())
    choices = [("", _l("None"), {})]
    for t in types:
        label = f"{t.name_in(locale, g.practice.default_locale)} · {gettext('%(n)s min', n=t.duration_minutes)}"
        if t.practitioner_id:
            label += f" · {t.practitioner.name}"
        choices.append((str(t.id), label, {"data-duration": t.duration_minutes, "data-mode": t.mode}))
    return choices


def _chosen_visit_type(form, appt=None):
    """The visit type chosen in the form; False (with the field's error) when it cannot be one."""
    raw = form.visit_type.data or ""
    if not raw:
        return None
    chosen = _booked_as(raw)
    if chosen is None or (not chosen.active and (appt is None or chosen.id != appt.visit_type_id)):
        form.visit_type.errors = [_l("Choose a visit type from the list.")]
        return False
    unchanged = (appt is not None and chosen.id == appt.visit_type_id
                 and form.practitioner.data == appt.practitioner_id)   # kept as it was (a hand-over, say)
    if chosen.practitioner_id and chosen.practitioner_id != form.practitioner.data and not unchanged:
        form.visit_type.errors = [_l("This visit type is offered by another practitioner: choose theirs, or another type.")]
        return False
    return chosen


def _render_form(form, appt=None, overlaps=(), status=None):
    return render("agenda/form.html", "agenda/_form.html", form=form, appt=appt,
                  patients=_patient_choices(form), overlaps=overlaps,
                  status=status or form_status(form))


def _saved(appt):
    """After a save: the appointment's panel; htmx also refreshes the agenda it came from."""
    return after_change(url_for("agenda.detail", appointment_id=appt.id), "agenda/detail.html",
                        "agenda/_detail.html", trigger="agenda-changed", appt=appt, **_detail_context(appt))


def _validated_booking(form, appt):
    """Patient, slot, visit type and overlaps checked; (patient, starts_at, visit type, overlaps)
    or None on errors."""
    if "search" in request.form or not form.validate_on_submit():
        return None
    patient = _chosen_patient(form)
    starts_at = _slot(form, appt)
    visit_type = _chosen_visit_type(form, appt)
    if patient is None or starts_at is None or visit_type is False:
        return None
    return patient, starts_at, visit_type, _overlaps(form, starts_at, appt)


@bp.route("/new", methods=["GET", "POST"])
@staff_required()
def new():
    """Book a teleconsultation."""
    form = AppointmentForm(practitioner=request.args.get("practitioner", type=row_id) or g.user.id,
                           date=_parse_day(request.args.get("date")), patient_id=request.args.get("patient", ""),
                           **_prefill())
    _practitioner_choices(form)
    checked = _validated_booking(form, None)
    if checked is None:
        return _render_form(form)
    patient, starts_at, visit_type, overlaps = checked
    if overlaps and not form.confirm_overlap.data:
        return _render_form(form, overlaps=overlaps, status=409)
    with db.atomic():
        appt = Appointment.create(
            practice=g.practice, practitioner=form.practitioner.data, patient=patient,
            contact_email=patient.email, contact_phone=patient.phone, starts_at=starts_at,
            duration_minutes=form.duration.data, motive=form.motive.data, mode=form.mode.data,
            visit_type=visit_type, **_language(form), **_channels(form))
        AuditEvent.record(g.user, "appointment.created", appt)
        notify.queue(appt, "invitation")
    return _saved(appt)


def _booked_as(raw) -> VisitType | None:
    """The practice's visit type with this id (from the address or the form), if there is one."""
    wanted = row_id(raw)
    return VisitType.get_or_none(VisitType.id == wanted, VisitType.practice == g.practice) if wanted else None


def _prefill() -> dict:
    """A time and a visit type's length and mode from the address (a free slot's link), when readable."""
    fields = {"time": _parse_time(request.args.get("time"))}
    visit_type = _booked_as(request.args.get("visit_type"))
    if visit_type:
        fields.update(duration=visit_type.duration_minutes, mode=visit_type.mode, visit_type=str(visit_type.id))
    return fields


def _as_booked(appt) -> dict:
    """The edit form's fields as the appointment stands."""
    local = utc_to_local(appt.starts_at, g.practice.timezone)
    return {"patient_id": str(appt.patient_id or ""), "practitioner": appt.practitioner_id,
            "date": local.date(), "time": local.time(), "duration": appt.duration_minutes,
            "motive": appt.motive, "mode": appt.mode, "language": _chosen_language(appt),
            "visit_type": str(appt.visit_type_id or ""),
            "send_by": "both" if appt.notify_email and appt.notify_sms else "sms" if appt.notify_sms else "email"}


def _change(form, appt):
    """Check and save an edit (or a move from the grid): the same checks, audit and message to the patient."""
    _practitioner_choices(form, appt)
    checked = _validated_booking(form, appt)
    if checked is None:
        return _render_form(form, appt)
    patient, starts_at, visit_type, overlaps = checked
    if appt.admitted_at and form.practitioner.data != appt.practitioner_id:
        # Past admission the practitioner holds the call and its record: changing them is a hand-over.
        form.practitioner.errors = [_l("The visit has started: use “Hand the visit over” to change its practitioner.")]
        return _render_form(form, appt, status=422)
    if overlaps and not form.confirm_overlap.data:
        return _render_form(form, appt, overlaps=overlaps, status=409)
    with db.atomic():
        if form.language.data != _chosen_language(appt):
            appt.set_locale(g.user, form.language.data)     # before "moved", which then speaks it
        moved = appt.reschedule(g.user, starts_at, form.duration.data, patient=patient,
                                practitioner=form.practitioner.data, contact_email=patient.email,
                                contact_phone=patient.phone, motive=form.motive.data, mode=form.mode.data,
                                visit_type=visit_type, **_channels(form))
        if moved:
            notify.queue(appt, "moved")
    return _saved(appt)


def _active_or_409(appointment_id):
    appt = appointment_or_404(appointment_id)
    if not appt.is_active:
        abort(409)
    return appt


@bp.route("/<int:appointment_id>/edit", methods=["GET", "POST"])
@staff_required()
def edit(appointment_id):
    """Edit or move a teleconsultation; a new time revokes the old link."""
    appt = _active_or_409(appointment_id)
    return _change(AppointmentForm(obj=None, data=None if request.method == "POST" else _as_booked(appt)), appt)


@bp.route("/<int:appointment_id>/move", methods=["POST"])
@staff_required()
def move(appointment_id):
    """Move a teleconsultation to a slot chosen on the grid ("practitioner|YYYY-MM-DD|HH:MM"),
    through the edit form's checks: an overlap or a bad slot shows that form, with the new time."""
    appt = _active_or_409(appointment_id)
    parts = request.form.get("slot", "")[:40].split("|")
    practitioner, day, time = parts if len(parts) == 3 else ("", "", "")
    booked = {**_as_booked(appt), "practitioner": practitioner, "date": day, "time": time}
    data = MultiDict({key: value if isinstance(value, str) else
                      value.strftime("%H:%M") if isinstance(value, dt.time) else str(value)
                      for key, value in booked.items()})
    for key in ("csrf_token", "confirm_overlap"):
        if key in request.form:
            data[key] = request.form[key]
    return _change(AppointmentForm(formdata=data), appt)


# A new patient while booking: a step inside the booking form, which then comes back with the
# patient chosen and everything else as it was typed.
BOOKING_FIELDS = ("patient_id", "patient_query", "practitioner", "date", "time", "duration", "motive", "mode",
                  "send_by", "language", "confirm_overlap", "appointment", "visit_type")


def _carried() -> dict:
    """The booking form's fields as typed, carried through the patient step in hidden inputs."""
    return {name: request.form[name][:500] for name in BOOKING_FIELDS if name in request.form}


def _back_to_booking(booking: dict, patient_id=None):
    appt = appointment_or_404(row_id(booking["appointment"])) if booking.get("appointment") else None
    data = MultiDict({k: v for k, v in booking.items() if k != "appointment"})
    if patient_id:
        data["patient_id"], data["patient_query"] = str(patient_id), ""
    form = AppointmentForm(formdata=data)
    _practitioner_choices(form, appt)
    return _render_form(form, appt, status=200)


@bp.route("/patient", methods=["POST"])
@staff_required()
@no_store
def new_patient():
    """Create a patient from inside the booking form, then return to the booking with them chosen."""
    booking = _carried()
    if "back" in request.form:
        return _back_to_booking(booking)
    chosen = row_id(request.form.get("use"))
    if chosen and Patient.get_or_none(Patient.id == chosen, Patient.practice == g.practice):
        return _back_to_booking(booking, chosen)        # a duplicate on file: that record, not a new one
    form = PatientForm(formdata=None if "start" in request.form else request.form,
                       data={"last_name": booking.get("patient_query", "")[:100]})
    form.locale.choices = locale_options()
    if "start" in request.form or not form.validate_on_submit():
        return _patient_step(form, booking, status=200 if "start" in request.form else form_status(form))
    duplicates = list(Patient.duplicates(g.practice, form.first_name.data, form.last_name.data, form.birth_date.data))
    if duplicates and not form.create_anyway.data:
        return _patient_step(form, booking, status=409, duplicates=duplicates)
    with db.atomic():
        patient = Patient(practice=g.practice)
        form.populate_obj(patient)
        patient.save()
        AuditEvent.record(g.user, "patient.saved", patient=patient)
    return _back_to_booking(booking, patient.id)


def _patient_step(form, booking, status, duplicates=()):
    return render("agenda/patient_step.html", "agenda/_patient_step.html", form=form, booking=booking,
                  duplicates=duplicates, status=status)


@bp.route("/overlaps")
@staff_required()
def overlaps():
    """The overlap warning for a slot being typed, shown before saving."""
    form = AppointmentForm(formdata=request.args, meta={"csrf": False})
    _practitioner_choices(form)
    found = []
    if form.date.validate(form) and form.time.validate(form) and form.duration.validate(form) \
            and form.practitioner.validate(form) and form.date.data and form.time.data:
        starts_at = local_to_utc(dt.datetime.combine(form.date.data, form.time.data), g.practice.timezone)
        found = _overlaps(form, starts_at, Appointment.get_or_none(
            Appointment.id == (request.args.get("appointment", type=row_id) or 0)))
    return render("agenda/_overlaps.html", overlaps=found)


@bp.route("/instant", methods=["GET", "POST"])
@staff_required()
def instant():
    """Start a visit now, from an e-mail address or a phone number alone."""
    form = InstantForm(practitioner=g.user.id)
    _practitioner_choices(form)
    if not form.validate_on_submit():
        return render("agenda/instant.html", "agenda/_instant_form.html", form=form,
                      status=form_status(form))
    with db.atomic():
        appt = Appointment.create(
            practice=g.practice, practitioner=form.practitioner.data, kind="instant",
            contact_email=form.email.data, contact_phone=form.phone.data,
            starts_at=utcnow().replace(second=0, microsecond=0), duration_minutes=15, mode=form.mode.data,
            **_language(form))
        AuditEvent.record(g.user, "appointment.created", appt, detail="instant")
        notify.queue(appt, "invitation")
    return _saved(appt)


# The practitioner's calendar feed, for a phone's calendar to subscribe to.

FEED_PAST, FEED_AHEAD = dt.timedelta(days=30), dt.timedelta(days=366)


def _initials(appt) -> str:
    """"J. D.": what the feed says of a patient unless the practitioner chose names."""
    if appt.patient is None:
        return str(_l("Instant visit"))
    return " ".join(f"{name.strip()[:1].upper()}." for name in (appt.patient.first_name, appt.patient.last_name)
                    if name.strip())


def _feed_event(appt, details: bool, stamp: dt.datetime) -> Event:
    event = Event()
    event.add("uid", f"appointment-{appt.id}@cabinet")     # not the ref: that one is in the patient's link
    event.add("dtstamp", stamp.replace(tzinfo=dt.timezone.utc))
    event.add("dtstart", appt.starts_at.replace(tzinfo=dt.timezone.utc))
    event.add("dtend", appt.ends_at.replace(tzinfo=dt.timezone.utc))
    mode = _l("Audio only") if appt.mode == "audio" else _l("Video")
    event.add("summary", f"{appt.patient_name if details else _initials(appt)} · {mode}")
    if details and appt.motive:
        event.add("description", appt.motive)
    return event


@bp.route("/feed/<token>.ics")
def feed(token):
    """A practitioner's agenda as iCalendar: times and initials, names and motives only if they opted in."""
    key = read_feed_token(current_app.config["SECRET_KEY"], token)
    user = User.get_or_none(User.id == key.user_id) if isinstance(key, FeedKey) else None
    if user is None or not (user.active and user.feed_on and user.feed_version == key.version
                            and user.role == "practitioner"):
        abort(404)
    now = utcnow()
    calendar = Calendar()
    calendar.add("prodid", "-//Cabinet//Agenda//EN")
    calendar.add("version", "2.0")
    with force_locale(user.locale or user.practice.default_locale):
        calendar.add("x-wr-calname", f"{user.practice.name} · {user.name}")
        for appt in Appointment.in_range([user.id], now - FEED_PAST, now + FEED_AHEAD):
            if appt.status != "cancelled":
                calendar.add_component(_feed_event(appt, user.feed_details, now))
    AuditEvent.record(user, "calendar_feed.read", detail="names" if user.feed_details else "initials")
    response = make_response(calendar.to_ical())
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.headers["Cache-Control"] = "private, no-store"
    return response


# One appointment.

def _detail_context(appt, hand_over_error=None):
    return {"link": patient_link_url(appt) if appt.is_active else None,
            "local_start": utc_to_local(appt.starts_at, g.practice.timezone),
            "messages": notify.messages_of(appt), "successors": _successors(appt),
            "hand_over_error": hand_over_error}


# Who may hand a visit over: a practitioner (in practice the visit's own, the only one who sees it)
# or an admin. Not a secretary: the hand-over decides who reads the visit's clinical record.
HAND_OVER_ROLES = ("practitioner", "admin")


def _successors(appt) -> list:
    """The practitioners the signed-in user may hand this visit over to (none when they may not)."""
    if g.user.role not in HAND_OVER_ROLES or not appt.is_active:
        return []
    return [p for p in User.practitioners(g.practice) if p.id != appt.practitioner_id]


@bp.route("/<int:appointment_id>")
@staff_required()
@no_store
def detail(appointment_id):
    """One teleconsultation: who, when, its patient link, and what can be done with it."""
    appt = appointment_or_404(appointment_id)
    AuditEvent.record(g.user, "appointment.viewed", appt)
    return render("agenda/detail.html", "agenda/_detail.html", appt=appt, **_detail_context(appt))


@bp.route("/<int:appointment_id>/cancel", methods=["POST"])
@staff_required()
def cancel(appointment_id):
    """Cancel a teleconsultation; its link then shows a "cancelled" page."""
    appt = appointment_or_404(appointment_id)
    if appt.is_active:
        appt.cancel(g.user)
        notify.queue(appt, "cancelled")
    return _saved(appt)


@bp.route("/<int:appointment_id>/link", methods=["POST"])
@staff_required()
def renew_link(appointment_id):
    """Make a new patient link; every older link stops working."""
    appt = appointment_or_404(appointment_id)
    if not appt.is_active:
        abort(409)
    appt.renew_link(g.user)
    notify.queue(appt, "link_resent")
    return _saved(appt)


@bp.route("/<int:appointment_id>/hand-over", methods=["POST"])
@staff_required(*HAND_OVER_ROLES)
def hand_over(appointment_id):
    """Give the visit to another practitioner of the practice, who may then open its call."""
    appt = appointment_or_404(appointment_id)
    if not appt.is_active:
        abort(409)
    chosen = request.form.get("practitioner", type=int)
    successor = next((p for p in _successors(appt) if p.id == chosen), None)
    if successor is None:
        return render("agenda/detail.html", "agenda/_detail.html", status=422, appt=appt,
                      **_detail_context(appt, _l("Choose another practitioner of the practice.")))
    previous = appt.practitioner_id
    appt.hand_over(g.user, successor)
    events.handed_over(appt, previous)
    if appt.practitioner_id not in {p.id for p in visible_practitioners()}:
        return go_to(url_for("agenda.index"))     # a practitioner who handed it away no longer sees it
    return _saved(appt)


# The next free slots: for a visit type, the first free ones of each practitioner.

NEXT_FREE_COUNT = 5


@bp.route("/next-free")
@staff_required()
def next_free():
    """For a visit type, the first free slots of each practitioner, each one a link to book it."""
    visit_types = list(VisitType.offered(g.practice))
    wanted = request.args.get("visit_type", type=row_id)
    chosen = next((t for t in visit_types if t.id == wanted), None)
    found = next_free_slots(chosen, visible_practitioners(), NEXT_FREE_COUNT) if chosen or not visit_types else []
    locale = str(get_locale() or g.practice.default_locale)
    names = {t.id: t.name_in(locale, g.practice.default_locale) for t in visit_types}
    return render("agenda/next_free.html", "agenda/_next_free.html", visit_types=visit_types, names=names,
                  chosen=chosen, found=found)
