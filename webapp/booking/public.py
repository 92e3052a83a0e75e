"""The public booking pages: a practitioner, a visit type, a free slot in a week, the patient's
details, then the one-time code; only then the appointment.

Stable addresses a practice links from its website: ``/book`` (the practice) and ``/book/<id>``
(one practitioner). In the patient's language (the picker, else the browser's). The answers never
say whether the person is already a patient of the practice: the pages and messages before the
appointment are the same whoever types what, and the last page depends only on the visit type.
When the practice switches online booking off, every page says so at once (``closed``).
"""
from __future__ import annotations

import datetime as dt
import functools

from flask import abort, current_app, g, redirect, render_template, request, url_for
from flask_limiter.util import get_remote_address
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, RadioField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, ValidationError

from .. import events, notify, online
from ..answers import form_status, render, same_site_path
from ..auth import limiter
from ..forms import (LocalDateField, PhoneField, normalize_phone, options, parse_day, past_birth_date, row_id, strip,
                     valid_email, valid_mobile, valid_phone)
from ..i18n import available_locales, best_browser_locale
from ..models import AuditEvent, BookingRequest, Patient, User, db, utcnow
from ..slots import SlotUnavailable, take_slot
from . import bp

LANGUAGE_COOKIE = "cabinet_booking_lang"


def _locale() -> tuple[str, str]:
    """The page's language and where it comes from: the picker's cookie ("patient") or the browser."""
    chosen = request.cookies.get(LANGUAGE_COOKIE, "")
    if chosen in available_locales():
        return chosen, "patient"
    return best_browser_locale(g.practice.default_locale if g.practice else None), "browser"


def public(view):
    """A public booking page: in the patient's language, and closed while the practice takes no
    online bookings (then nothing is read or written)."""
    @functools.wraps(view)
    def page(*args, **kwargs):
        g.locale = _locale()[0]
        if g.practice is None or not g.practice.online_booking:
            return render_template("booking/closed.html"), 503
        return view(*args, **kwargs)
    return page


@bp.context_processor
def _phones():
    def practice_phones(practitioner=None):      # asked only by the "closed" page
        people = [practitioner] if practitioner else list(User.practitioners(g.practice)) if g.practice else []
        return online.practice_phones(people)
    return {"practice_phones": practice_phones}


def _refused(message, status: int = 400):
    return render_template("booking/refused.html", message=message), status


def _practitioner_or_404(practitioner_id: int) -> User:
    found = next((p for p in online.bookable_practitioners(g.practice) if p.id == practitioner_id), None)
    if found is None:
        abort(404)
    return found


def _visit_type(practitioner: User, required: bool):
    types = online.bookable_types(g.practice, practitioner)
    wanted = request.args.get("type", type=row_id)
    chosen = next((t for t in types if t.id == wanted), None)
    if chosen is None and not wanted and len(types) == 1:
        chosen = types[0]
    if chosen is None and (required or wanted):
        abort(404)
    return types, chosen


@bp.route("/book")
@limiter.limit("60 per minute")
@public
def start():
    """The practice's booking page: its practitioners who take online bookings."""
    return render_template("booking/start.html", practitioners=online.bookable_practitioners(g.practice))


def _week(raw: str | None, person: User, visit_type) -> dt.date | None:
    """The Monday of the week asked for, kept between this week and the visit type's horizon; by
    default the week of the first free slot (a Friday evening opens on next week, not an empty one)."""
    this_week = online.week_monday(online.local_today(g.practice))
    if not raw:
        first = online.next_slots(person, visit_type)[:1]
        return online.week_monday(first[0].local_start.date()) if first else this_week
    day = parse_day(raw)
    if day is None:
        return None
    last = online.week_monday(online.local_today(g.practice, utcnow() + dt.timedelta(days=visit_type.horizon_days)))
    return min(max(online.week_monday(day), this_week), last)


@bp.route("/book/<int:practitioner_id>")
@limiter.limit("60 per minute")
@public
def practitioner(practitioner_id):
    """One practitioner: their visit types, and a week of free slots of the one chosen."""
    person = _practitioner_or_404(practitioner_id)
    types, chosen = _visit_type(person, required=False)
    context = {"person": person, "types": types, "chosen": chosen, "days": [], "monday": None}
    if chosen is not None:
        monday = _week(request.args.get("week"), person, chosen)
        if monday is None:
            return _refused(_l("This date could not be read. Choose a week with the buttons."))
        context.update(monday=monday, days=online.week_of_slots(person, chosen, monday),
                       **online.week_nav(g.practice, chosen, monday))
    return render("booking/practitioner.html", "booking/_week.html", **context)


# The patient's details.

def _channel_choices():
    pairs = [("email", _l("E-mail"))]
    if notify.sms_possible():
        pairs.append(("sms", _l("SMS")))
    return options(pairs)


class DetailsForm(FlaskForm):
    first_name = StringField(_l("First name"), filters=[strip], validators=[
        InputRequired(_l("Enter your first name.")), Length(max=100, message=_l("At most 100 characters."))])
    last_name = StringField(_l("Last name"), filters=[strip], validators=[
        InputRequired(_l("Enter your last name.")), Length(max=100, message=_l("At most 100 characters."))])
    birth_date = LocalDateField(_l("Date of birth"), validators=[InputRequired(_l("Enter your date of birth.")),
                                                                 past_birth_date])
    email = EmailField(_l("E-mail"), filters=[strip], validators=[Length(max=254, message=_l("At most 254 characters.")),
                                                                  valid_email])
    phone = PhoneField(_l("Mobile phone"), filters=[strip], validators=[valid_phone, valid_mobile])
    send_code_by = RadioField(_l("Send me the code by"), default="email")
    terms = BooleanField(_l("I accept the terms of online booking"),
                         validators=[DataRequired(_l("Accept the terms to book."))])

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        if ok and not self.email.data and not self.phone.data:
            self.email.errors.append(_l("Enter an e-mail address or a mobile number."))
            ok = False
        if ok and self.send_code_by.data == "email" and not self.email.data:
            self.send_code_by.errors.append(_l("Enter your e-mail address, or choose SMS."))
            ok = False
        if ok and self.send_code_by.data == "sms" and not self.phone.data:
            self.send_code_by.errors.append(_l("Enter your mobile number, or choose e-mail."))
            ok = False
        return ok


def _contact_key() -> str:
    """Rate-limit key of the contact typed, so one address or number meets a limit from any client
    (none typed: the client's own, never one key shared by everyone who forgot it)."""
    email = (request.form.get("email") or "").strip().lower()[:254]
    phone = normalize_phone((request.form.get("phone") or "").strip()[:40]) or ""
    return "booking-contact:" + (email or phone or get_remote_address())


def _code_sent(response) -> bool:
    """Only codes actually sent count against a contact: typing mistakes do not lock anyone out."""
    return response.status_code == 303


def _slot(person: User, visit_type):
    """The slot asked for in the address: its start, or an answer refusing it (with the next free ones)."""
    starts_at = online.parse_at(request.args.get("at"))
    if starts_at is None:
        return None, _refused(_l("This time could not be read. Choose a time from the list of free slots."))
    if not online.is_free(person, visit_type, starts_at):
        return None, _unavailable(person, visit_type, online.why_not_free(person, visit_type, starts_at))
    return starts_at, None


def _unavailable(person, visit_type, reason: str):
    return render_template("booking/unavailable.html", person=person, chosen=visit_type, reason=reason,
                           slots=online.next_slots(person, visit_type)), 409


@bp.route("/book/<int:practitioner_id>/details", methods=["GET", "POST"])
@limiter.limit("60 per minute", methods=["GET"])
@limiter.limit("5 per minute; 20 per hour", methods=["POST"])
@limiter.limit("3 per 10 minutes; 10 per day", methods=["POST"], key_func=_contact_key,
               deduct_when=_code_sent)
@public
def details(practitioner_id):
    """The patient's names, birth date and contacts for the slot chosen; then the code is sent."""
    person = _practitioner_or_404(practitioner_id)
    _, chosen = _visit_type(person, required=True)
    starts_at, refusal = _slot(person, chosen)
    if refusal:
        return refusal
    form = DetailsForm()
    form.send_code_by.choices = _channel_choices()
    if not form.validate_on_submit():
        return render("booking/details.html", "booking/_details_form.html", form=form, person=person,
                      chosen=chosen, starts_at=starts_at, status=form_status(form))
    booking = _ask_for_code(person, chosen, starts_at, form)
    return redirect(url_for("booking.code", token=booking.token), 303)


def _ask_for_code(person, visit_type, starts_at, form) -> BookingRequest:
    """Keep the booking, waiting for its code, and send the code."""
    now, code = utcnow(), online.new_code()
    locale, source = _locale()
    channel = form.send_code_by.data
    with db.atomic():
        # Yesterday's unconfirmed bookings are of no use to anyone: they go as new ones come.
        BookingRequest.delete().where(BookingRequest.expires_at < now - dt.timedelta(days=1),
                                      BookingRequest.confirmed_at.is_null()).execute()
        booking = BookingRequest.create(
            practice=g.practice, practitioner=person, visit_type=visit_type, starts_at=starts_at,
            first_name=form.first_name.data, last_name=form.last_name.data, birth_date=form.birth_date.data,
            email=form.email.data, phone=form.phone.data, locale=locale, locale_source=source, channel=channel,
            expires_at=now + dt.timedelta(minutes=BookingRequest.CODE_MINUTES))
        booking.code_hash = online.code_hash(current_app.config["SECRET_KEY"], booking.token, code)
        booking.save()
        notify.queue_code(g.practice, channel, form.email.data if channel == "email" else form.phone.data, locale,
                          code, BookingRequest.CODE_MINUTES)
    return booking


# The code.

class CodeForm(FlaskForm):
    code = StringField(_l("The 6-digit code"), filters=[lambda v: "".join(v.split()) if isinstance(v, str) else v],
                       validators=[InputRequired(_l("Enter the code."))],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": 12})

    def validate_code(self, field):
        if not (field.data.isascii() and field.data.isdigit() and len(field.data) == 6):
            raise ValidationError(_l("The code has 6 digits."))


def _booking_or_404(token: str) -> BookingRequest:
    booking = BookingRequest.get_or_none(BookingRequest.token == token[:32], BookingRequest.practice == g.practice)
    if booking is None:
        abort(404)
    return booking


def _code_contact() -> str:
    token = (request.view_args or {}).get("token", "")[:32]
    booking = BookingRequest.get_or_none(BookingRequest.token == token)
    return "booking-code:" + ((booking.email or booking.phone) if booking else f"unknown:{token}")


@bp.route("/book/code/<token>", methods=["GET", "POST"])
@limiter.limit("10 per minute; 30 per hour", methods=["POST"])
@limiter.limit("10 per hour", methods=["POST"], key_func=_code_contact)
@public
def code(token):
    """Type the code sent; the right one books the slot, five wrong ones or ten minutes end the request."""
    booking, now = _booking_or_404(token), utcnow()
    if booking.appointment_id:
        return _done(booking)
    if booking.confirmed_at or booking.expires_at <= now or not booking.tries_left:
        return render_template("booking/expired.html", booking=booking), 410
    form = CodeForm()
    if form.validate_on_submit():
        if not booking.spend_try(now):
            return render_template("booking/expired.html", booking=booking), 410
        if online.code_matches(current_app.config["SECRET_KEY"], booking.token, form.code.data, booking.code_hash):
            return _confirm(booking, now) if booking.claim(now) else redirect(url_for("booking.code", token=token), 303)
        if not booking.tries_left:
            return render_template("booking/expired.html", booking=booking), 410
        form.code.errors.append(_l("This code is not the right one."))
    return render_template("booking/code.html", form=form, booking=booking), form_status(form)


def _confirm(booking: BookingRequest, now: dt.datetime):
    """The code was right: the appointment, in the record that matches (or a new one staff check)."""
    visit_type, person = booking.visit_type, booking.practitioner
    patient = online.matching_patient(g.practice, booking.first_name, booking.last_name, booking.birth_date,
                                      booking.email, booking.phone)
    confirmed = visit_type.confirmation == "auto" and (patient is not None or visit_type.new_patients)
    try:
        with db.atomic():
            if patient is None:
                patient = _new_patient(booking)
            appt = take_slot(person, booking.starts_at, visit_type, actor="patient", now=now, patient=patient,
                             status="scheduled" if confirmed else "requested", booked_online=True,
                             contact_email=booking.email, contact_phone=booking.phone, locale=booking.locale,
                             locale_source=booking.locale_source, notify_email=bool(booking.email),
                             notify_sms=bool(booking.phone))
            booking.done(appt)
            notify.queue(appt, "invitation" if confirmed else "requested")
    except SlotUnavailable as taken:
        return render_template("booking/unavailable.html", person=person, chosen=visit_type, reason="taken",
                               slots=taken.next_slots), 409
    events.announce(appt)
    return _done(booking)


def _new_patient(booking: BookingRequest) -> Patient:
    patient = Patient.create(practice=g.practice, first_name=booking.first_name, last_name=booking.last_name,
                             birth_date=booking.birth_date, email=booking.email, phone=booking.phone,
                             locale=booking.locale if booking.locale_source == "patient" else "", needs_check=True)
    AuditEvent.record("patient", "patient.created_online", patient=patient)
    return patient


def _done(booking: BookingRequest):
    """The last page: what it says depends on the visit type only, never on who booked."""
    appt = booking.appointment
    return render_template("booking/done.html", appt=appt, visit_type=booking.visit_type,
                           person=booking.practitioner)


@bp.route("/book/language", methods=["POST"])
def language():
    """The booking pages' language, kept in a cookie for the next pages (and the booking's messages)."""
    chosen = request.form.get("locale", "")
    back = same_site_path(request.form.get("next")) or ""
    back = back if back.startswith("/book") else url_for("booking.start")
    response = redirect(back, 303)
    if chosen in available_locales():
        response.set_cookie(LANGUAGE_COOKIE, chosen, max_age=365 * 24 * 3600, path="/book", httponly=True,
                            samesite="Lax", secure=current_app.config["SESSION_COOKIE_SECURE"])
    return response
