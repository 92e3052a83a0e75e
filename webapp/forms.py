"""Form fields and validators shared by the staff forms, with translated messages."""
from __future__ import annotations

import datetime as dt

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l
from wtforms import DateField, StringField, TimeField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import StopValidation, ValidationError

from .i18n import available_locales, locale_name

# The largest row id: SQLite's INTEGER and PostgreSQL's bigint stop at 2^63 - 1, and a larger
# number overflows the database driver (a 500) instead of simply finding nothing.
MAX_ID = 2**63 - 1
# The days anyone may ask for: every birth date and every booking fits, and they stay far enough
# from the ends of Python's calendar (years 1 and 9999) that a week's arithmetic or a time-zone
# shift never overflows.
FIRST_DAY = dt.date(1900, 1, 1)
LAST_DAY = dt.date(2999, 12, 31)


def row_id(raw) -> int | None:
    """A row id typed in a form or a query string ("42"), or None: only ASCII digits, 1 to MAX_ID.

    (``str.isdigit`` also says yes to "²", which ``int`` refuses.)"""
    raw = raw.strip() if isinstance(raw, str) else ""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(MAX_ID)):
        return None
    number = int(raw)
    return number if 1 <= number <= MAX_ID else None


def ascii_number(raw: str) -> int | None:
    """A count typed by a person ("15"), or None when it is not only ASCII digits (at most 9)."""
    raw = raw.strip()
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else None


def day_out_of_range():
    return _l("Enter a date between %(first)s and %(last)s.", first=FIRST_DAY.isoformat(), last=LAST_DAY.isoformat())


def parse_day(raw: str | None) -> dt.date | None:
    """A date typed as YYYY-MM-DD; None when unreadable. Out-of-range days are the caller's to judge."""
    try:
        return dt.date.fromisoformat(raw.strip()) if raw else None
    except ValueError:
        return None


def clamp_day(day: dt.date) -> dt.date:
    return min(max(day, FIRST_DAY), LAST_DAY)


def _blank(field, valuelist) -> bool:
    """Nothing typed (or only spaces): empty is for InputRequired to judge, not a format error."""
    if valuelist and valuelist[0].strip():
        return False
    field.data = None
    field.raw_data = [""] if valuelist else valuelist   # spaces count as empty for InputRequired too
    return True


class LocalDateField(DateField):
    """A date typed as YYYY-MM-DD (what <input type=date> sends), from FIRST_DAY to LAST_DAY, with our messages."""

    def process_formdata(self, valuelist):
        if _blank(self, valuelist):
            return
        try:
            super().process_formdata(valuelist)
        except ValueError:
            self.data = None
            raise ValueError(_l("Enter a date like 2026-03-31.")) from None
        if not FIRST_DAY <= self.data <= LAST_DAY:
            self.data = None
            raise ValueError(day_out_of_range())


class LocalTimeField(TimeField):
    """A time typed as HH:MM, with our own message."""

    def process_formdata(self, valuelist):
        if _blank(self, valuelist):
            return
        try:
            super().process_formdata(valuelist)
        except ValueError:
            self.data = None
            raise ValueError(_l("Enter a time like 14:30.")) from None


class PhoneField(StringField):
    """A mobile number, stored in international (E.164) form."""

    def __init__(self, *args, region: str = "FR", **kwargs):
        super().__init__(*args, **kwargs)
        self.region = region


def normalize_phone(raw: str, region: str = "FR") -> str | None:
    """``raw`` as E.164 (+33612345678), or None when it is not a valid number."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def can_receive_sms(e164: str) -> bool:
    """Whether a number (E.164) is a mobile one; a landline stays fine for a visit held by telephone."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.number_type(number) in (phonenumbers.PhoneNumberType.MOBILE,
                                                phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def valid_mobile(form, field):
    """After ``valid_phone``: a number SMS cannot reach is refused, with why."""
    if field.data and not can_receive_sms(field.data):
        raise StopValidation(_l("This is a landline number: SMS cannot reach it. Give a mobile number."))


def valid_phone(form, field):
    """Replace the typed number by its international form, or say it is not a number."""
    if not field.data:
        field.data = ""
        return
    normalized = normalize_phone(field.data.strip(), getattr(field, "region", "FR"))
    if normalized is None:
        raise StopValidation(_l("Enter a valid phone number, like 06 12 34 56 78 or +33 6 12 34 56 78."))
    field.data = normalized


def valid_email(form, field):
    """Normalize the e-mail address, or say it is not one."""
    if not field.data:
        field.data = ""
        return
    try:
        field.data = validate_email(field.data.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise StopValidation(_l("Enter a valid e-mail address, like name@example.fr.")) from None


def past_birth_date(form, field):
    if field.data and not dt.date(1900, 1, 1) <= field.data <= dt.date.today():
        raise ValidationError(_l("The birth date must be in the past."))


def strip(value):
    return value.strip() if isinstance(value, str) else value


def options(pairs) -> list[SelectChoice]:
    """(value, label) pairs as the choices WTForms wants."""
    return [SelectChoice(value, label) for value, label in pairs]


def locale_options(with_default: bool = True, default_label=None) -> list[SelectChoice]:
    """The languages Cabinet speaks, each in its own name; optionally "practice default" (or
    ``default_label``) first, with the value ""."""
    pairs = [(code, locale_name(code)) for code in available_locales()]
    return options(([("", default_label or _l("Practice default"))] if with_default else []) + pairs)


def known_locale(form, field):
    """A language Cabinet speaks, or "" (none chosen); for a SelectField with ``validate_choice=False``."""
    if field.data and field.data not in available_locales():
        raise StopValidation(_l("Choose a language from the list."))
