"""Editing availability: a practitioner's weekly hours, the exceptions to them, the practice's visit
types, and its online-booking settings. The forms, their checks and the audited saves.

Shared by the practitioner's own pages (``profile``) and the administrators' (``admin``), which
edits them for any practitioner; what the hours mean for free slots is ``webapp.slots``.
"""
from __future__ import annotations

import datetime as dt
import json
import re

from babel.dates import get_day_names
from flask import g
from flask_babel import get_locale, lazy_gettext as _l, lazy_pgettext
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, RadioField, SelectField, StringField
from wtforms.validators import InputRequired, Length, NumberRange, ValidationError

from .forms import LocalDateField, LocalTimeField, options, strip
from .i18n import available_locales, local_to_utc, locale_name, utc_to_local
from .models import Act, AuditEvent, HoursException, User, VisitType, WeeklyHours, db, utcnow
from .money import MAX_CENTS, parse_cents, typed

RANGES_PER_DAY = 6
LONGEST_EXCEPTION = dt.timedelta(days=366)
_TIME = r"(\d{1,2})(?:[:hH.](\d{2})?)?"
_RANGE = re.compile(rf"^{_TIME}\s*[-–]\s*{_TIME}$")


def day_names() -> list[str]:
    """Monday to Sunday in the reader's language (Babel's CLDR names: nothing to translate)."""
    names = get_day_names("wide", locale=get_locale() or "en")
    return [names[i][:1].upper() + names[i][1:] for i in range(7)]


def _minute(hours: str, minutes: str | None) -> int | None:
    h, m = int(hours), int(minutes or 0)
    if m > 59 or h > 24 or (h == 24 and m):
        return None
    return h * 60 + m


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def parse_ranges(text: str) -> list[tuple[int, int]]:
    """ "09:00-12:00, 14h-18h30" → [(540, 720), (840, 1110)], in order; ValueError with a message
    people can read for anything else (a malformed time, an end before its start, two ranges that overlap)."""
    ranges = []
    for piece in re.split(r"[,;]", text or ""):
        piece = piece.strip()
        if not piece:
            continue
        match = _RANGE.match(piece) if piece.isascii() or "–" in piece else None
        start = match and _minute(match.group(1), match.group(2))
        end = match and _minute(match.group(3), match.group(4))
        if start is None or end is None or start == 1440:
            raise ValueError(_l("Write each range like 09:00-12:00, separated by commas."))
        if end <= start:
            raise ValueError(_l("%(range)s ends before it starts.", range=f"{hhmm(start)}-{hhmm(end)}"))
        ranges.append((start, end))
    ranges.sort()
    for (s1, e1), (s2, e2) in zip(ranges, ranges[1:]):
        if s2 < e1:
            raise ValueError(_l("%(first)s and %(second)s overlap.", first=f"{hhmm(s1)}-{hhmm(e1)}",
                                second=f"{hhmm(s2)}-{hhmm(e2)}"))
    if len(ranges) > RANGES_PER_DAY:
        raise ValueError(_l("At most %(n)s ranges a day.", n=RANGES_PER_DAY))
    return ranges


class HoursForm(FlaskForm):
    """Seven text fields, Monday to Sunday: "09:00-12:00, 14:00-18:00", or empty for a day off."""
    day_0 = StringField(filters=[strip])
    day_1 = StringField(filters=[strip])
    day_2 = StringField(filters=[strip])
    day_3 = StringField(filters=[strip])
    day_4 = StringField(filters=[strip])
    day_5 = StringField(filters=[strip])
    day_6 = StringField(filters=[strip])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ranges: dict[int, list[tuple[int, int]]] = {}
        for weekday, name in enumerate(day_names()):
            self.day(weekday).label.text = name

    def day(self, weekday: int):
        return self[f"day_{weekday}"]

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        for weekday in range(7):
            field = self.day(weekday)
            try:
                self.ranges[weekday] = parse_ranges((field.data or "")[:300])
            except ValueError as error:
                field.errors = [*field.errors, error.args[0]]
                ok = False
        return ok

    @classmethod
    def of(cls, practitioner):
        by_day: dict[int, list[str]] = {}
        for row in WeeklyHours.of(practitioner.id):
            by_day.setdefault(row.weekday, []).append(f"{hhmm(row.start_minute)}-{hhmm(row.end_minute)}")
        return cls(formdata=None, data={f"day_{d}": ", ".join(r) for d, r in by_day.items()})


def save_hours(practitioner, ranges: dict[int, list[tuple[int, int]]], actor) -> None:
    """Replace the practitioner's weekly hours, audited (who and whose, no times)."""
    with db.atomic():
        WeeklyHours.delete().where(WeeklyHours.practitioner == practitioner.id).execute()
        rows = [{"practitioner": practitioner.id, "weekday": d, "start_minute": s, "end_minute": e}
                for d, day in sorted(ranges.items()) for s, e in day]
        if rows:
            WeeklyHours.insert_many(rows).execute()
        AuditEvent.record(actor, "availability.hours_saved", detail=f"user:{practitioner.id}")


def exception_kinds():
    return {"closed": _l("Closed (holidays, an afternoon off)"), "open": _l("Extra opening")}


class ExceptionForm(FlaskForm):
    kind = RadioField(_l("Kind"), default="closed", choices=options(exception_kinds().items()))
    start_date = LocalDateField(lazy_pgettext("date range", "From"), validators=[InputRequired(_l("Enter the date."))])
    start_time = LocalTimeField(_l("at (empty: the whole day)"))
    end_date = LocalDateField(_l("To (empty: the same day)"))
    end_time = LocalTimeField(_l("at (empty: the end of the day)"))
    note = StringField(_l("Note for staff (optional)"), filters=[strip], default="",
                       validators=[Length(max=100, message=_l("At most 100 characters."))])

    def times(self, tz: str) -> tuple[dt.datetime, dt.datetime]:
        """The exception's start and end, UTC."""
        start = dt.datetime.combine(self.start_date.data, self.start_time.data or dt.time())
        end_day = self.end_date.data or self.start_date.data
        end = dt.datetime.combine(end_day, self.end_time.data) if self.end_time.data else \
            dt.datetime.combine(end_day + dt.timedelta(days=1), dt.time())
        return local_to_utc(start, tz), local_to_utc(end, tz)

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        if ok:
            start, end = self.times(g.practice.timezone)
            if end <= start:
                self.end_date.errors = [_l("The end must be after the start.")]
                return False
            if end - start > LONGEST_EXCEPTION:
                self.end_date.errors = [_l("At most a year at a time.")]
                return False
            if end <= utcnow():
                self.end_date.errors = [_l("This time has already passed.")]
                return False
        return ok


def add_exception(practitioner, form, actor) -> HoursException:
    start, end = form.times(g.practice.timezone)
    with db.atomic():
        row = HoursException.create(practitioner=practitioner.id, kind=form.kind.data, starts_at=start, ends_at=end,
                                    note=form.note.data)
        AuditEvent.record(actor, "availability.exception_added", detail=f"user:{practitioner.id}")
    return row


def remove_exception(row: HoursException, actor) -> None:
    with db.atomic():
        row.delete_instance()
        AuditEvent.record(actor, "availability.exception_removed", detail=f"user:{row.practitioner_id}")


def upcoming_exceptions(practitioner) -> list[dict]:
    """The exceptions not over yet, with their local times, for the list."""
    tz = g.practice.timezone
    return [{"row": row, "start": utc_to_local(row.starts_at, tz), "end": utc_to_local(row.ends_at, tz)}
            for row in HoursException.of(practitioner.id, start=utcnow())]


# Visit types.

def mode_names():
    return {"video": _l("Video"), "audio": _l("Audio only")}


def confirmation_names():
    return {"auto": _l("Confirmed at once"), "staff": _l("Confirmed by staff")}


class VisitTypeForm(FlaskForm):
    """A visit type; its name fields (one per language, ``name_<code>``) are added by ``visit_type_form``."""
    duration_minutes = IntegerField(_l("Duration (minutes)"), default=15, validators=[
        InputRequired(_l("Enter a number of minutes.")), NumberRange(5, 240, _l("Between 5 and 240 minutes."))])
    mode = RadioField(_l("Mode"), default="video", choices=options(mode_names().items()))
    act_code = SelectField(_l("Act it usually codes"), default="")
    fee = StringField(_l("Fee (€, optional)"), filters=[strip])
    online = BooleanField(_l("Patients may book it online"))
    new_patients = BooleanField(_l("Open to new patients"))
    confirmation = RadioField(_l("Online bookings are"), default="auto", choices=options(confirmation_names().items()))
    notice_minutes = IntegerField(_l("Minimum notice (minutes)"), default=120, validators=[
        InputRequired(_l("Enter a number of minutes.")),
        NumberRange(0, 60 * 24 * 30, _l("Between 0 and 43200 minutes (30 days)."))])
    horizon_days = IntegerField(_l("Bookable up to (days ahead)"), default=42, validators=[
        InputRequired(_l("Enter a number of days.")), NumberRange(1, 365, _l("Between 1 and 365 days."))])
    practitioner = SelectField(_l("Offered by"), default="")
    active = BooleanField(_l("Offered"), default=True)

    def name_fields(self):
        return [self[f"name_{code}"] for code in self.locales]

    def validate_fee(self, field):
        if not field.data:
            field.cents = None
            return
        try:
            field.cents = parse_cents(field.data)
        except ValueError:
            field.cents = None
        if field.cents is None or not 0 <= field.cents <= MAX_CENTS:
            raise ValidationError(_l("Give an amount between 0 and 1000 €, like 25 or 17.50."))

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        first = self[f"name_{self.practice_locale}"]
        if not first.data:
            first.errors = [*first.errors, _l("Give the name in %(language)s.",
                                              language=locale_name(self.practice_locale))]
            ok = False
        return ok

    @property
    def names(self) -> dict:
        return {code: self[f"name_{code}"].data for code in self.locales if self[f"name_{code}"].data}


def visit_type_form(practice, visit_type: VisitType | None, practitioners=None, **kwargs) -> VisitTypeForm:
    """The form for a new or existing visit type: one name field per language (the practice's first),
    the practice's acts, and (``practitioners``: an admin's form) who offers it."""
    locales = [practice.default_locale] + [c for c in available_locales() if c != practice.default_locale]

    class Form(VisitTypeForm):
        pass
    for code in locales:
        setattr(Form, f"name_{code}", StringField(locale_name(code), filters=[strip], default="", validators=[
            Length(max=100, message=_l("At most 100 characters."))]))
    data = None
    if visit_type is not None:
        data = {f"name_{c}": n for c, n in visit_type.name_map.items()}
        data.update({name: getattr(visit_type, name) for name in (
            "duration_minutes", "mode", "act_code", "online", "new_patients", "confirmation", "notice_minutes",
            "horizon_days", "active")})
        data["fee"] = typed(visit_type.fee_cents) if visit_type.fee_cents is not None else ""
        data["practitioner"] = str(visit_type.practitioner_id or "")
    form = Form(data=data, **kwargs)
    form.locales, form.practice_locale = locales, practice.default_locale
    form.act_code.choices = options([("", _l("None"))] + [(a.code, f"{a.code} · {a.label}")
                                                          for a in Act.catalogue(practice, active_only=True)])
    if practitioners is None:
        del form.practitioner
    else:
        form.practitioner.choices = options([("", _l("Every practitioner"))] + [(str(p.id), p.name)
                                                                               for p in practitioners])
    return form


def save_visit_type(practice, visit_type: VisitType | None, form, actor, practitioner=None) -> VisitType:
    """Create or update a visit type from its form, audited. ``practitioner``: whose it is, when the
    form does not say (a practitioner's own); an admin's form says it."""
    visit_type = visit_type or VisitType(practice=practice)
    if "practitioner" in form:
        visit_type.practitioner = int(form.practitioner.data) if form.practitioner.data else None
    elif practitioner is not None:
        visit_type.practitioner = practitioner
    visit_type.names = json.dumps(form.names, ensure_ascii=False)
    for name in ("duration_minutes", "mode", "act_code", "online", "new_patients", "confirmation", "notice_minutes",
                 "horizon_days", "active"):
        setattr(visit_type, name, getattr(form, name).data)
    visit_type.fee_cents = form.fee.cents
    with db.atomic():
        visit_type.save()
        AuditEvent.record(actor, "visit_type.saved", detail=f"visit_type:{visit_type.id}")
    return visit_type


def visit_type_rows(practice, practitioner_id=None) -> list[dict]:
    """Visit types for a list, named in the reader's language (all, or those open to one practitioner)."""
    names = {u.id: u.name for u in User.select(User.id, User.name).where(User.practice == practice)}
    locale = str(get_locale() or practice.default_locale)
    return [{"row": vt, "name": vt.name_in(locale, practice.default_locale), "who": names.get(vt.practitioner_id),
             "mode": mode_names().get(vt.mode, vt.mode)}
            for vt in VisitType.offered(practice, practitioner_id, active_only=False)]


# The practice's online-booking settings.

class BookingSettingsForm(FlaskForm):
    online_booking = BooleanField(_l("Patients may book online (off: the booking pages close at once)"))
    patient_change_notice_hours = IntegerField(_l("Patients may cancel or move a visit up to (hours before)"),
                                               default=24, validators=[
        InputRequired(_l("Enter a number of hours.")), NumberRange(0, 720, _l("Between 0 and 720 hours."))])


def save_booking_settings(practice, form, actor) -> None:
    with db.atomic():
        practice.online_booking = form.online_booking.data
        practice.patient_change_notice_hours = form.patient_change_notice_hours.data
        practice.save()
        AuditEvent.record(actor, "practice.booking_saved",
                          detail=f"online:{'on' if practice.online_booking else 'off'}")


# The page, as both blueprints show it.

def availability_context(practitioner, urls: dict, hours_form=None, exception_form=None, **extra) -> dict:
    """What the page of a practitioner's hours, exceptions and visit types shows; ``urls`` says
    where its forms post (the practitioner's own pages, or the admin's)."""
    return {"member": practitioner, "urls": urls, "hours_form": hours_form or HoursForm.of(practitioner),
            "exception_form": exception_form or ExceptionForm(formdata=None),
            "exceptions": upcoming_exceptions(practitioner), "kinds": exception_kinds(),
            "visit_types": visit_type_rows(g.practice, practitioner.id), **extra}
