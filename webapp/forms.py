"""Form fields and validators shared by the staff forms, with translated messages."""
from __future__ import annotations

import datetime as dt

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, EmailField, SelectField, StringField, TimeField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional, StopValidation, ValidationError

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


# The French social-security number (NIR): sex, year and month of birth, place of birth (two
# characters: a département, "2A"/"2B" for Corsica, 99 abroad), commune, order, then a two-digit
# key. The key is 97 - (the 13-character number mod 97), Corsica's 2A and 2B counted as 19 and 18.
NIR_GROUPS = (1, 2, 2, 2, 3, 3, 2)
NIR_FIRST_DIGITS = "123478"      # 1/2 men/women; 3/4 and 7/8 the temporary numbers of people born abroad


def nir_key(number: str) -> int:
    """The key of the first 13 characters of a NIR (already checked as digits, or 2A/2B at 6-7)."""
    numeric = number[:5] + {"2A": "19", "2B": "18"}.get(number[5:7], number[5:7]) + number[7:13]
    return 97 - int(numeric) % 97


def normalize_nir(raw: str) -> str | None:
    """A NIR as typed (spaces allowed, 2a/2b in any case) in its stored form of 15 characters, or None
    when it is not one: wrong length, letters other than Corsica's, a wrong first digit or key."""
    nir = "".join(raw.split()).upper()
    if len(nir) != 15 or not nir.isascii() or nir[0] not in NIR_FIRST_DIGITS:
        return None
    corsica = nir[5:7] in ("2A", "2B")
    if not (nir[:5] + ("00" if corsica else nir[5:7]) + nir[7:]).isdigit():
        return None
    return nir if nir_key(nir) == int(nir[13:]) else None


def _groups(nir: str) -> list[str]:
    groups, at = [], 0
    for size in NIR_GROUPS:
        groups.append(nir[at:at + size])
        at += size
    return groups


def format_nir(nir: str) -> str:
    """A stored NIR as people read it: "2 84 05 2A 123 456 42"."""
    return " ".join(_groups(nir)) if nir else ""


def mask_nir(nir: str) -> str:
    """A stored NIR for staff who do not need it whole: sex, year of birth and key only,
    "2 84 ** ** *** *** 42", enough to tell two records apart at the desk."""
    if not nir:
        return ""
    groups = _groups(nir)
    return " ".join(groups[:2] + ["*" * len(g) for g in groups[2:-1]] + groups[-1:])


def valid_nir(form, field):
    """Replace the typed NIR by its stored form, or say what is wrong with it."""
    if not field.data or not field.data.strip():
        field.data = ""
        return
    normalized = normalize_nir(field.data)
    if normalized is None:
        raise StopValidation(_l("Enter a valid social security number: 13 digits and a 2-digit key, "
                                "like 2 84 05 75 123 456 72."))
    field.data = normalized


# A patient's record, as staff fill it in: the records' pages, and the booking form's "New patient" step.
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
    nir = StringField(_l("Social security number (optional)"), default="", validators=[valid_nir])
    create_anyway = BooleanField(_l("This is another person: create a new record anyway"))
