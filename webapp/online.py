"""Online booking's shared rules: what a patient may book, see, cancel and move on their own, the
one-time code, and which record a booking belongs to.

The floor under the public booking pages (``booking/``) and the patient's own pages (``patient/``),
which both show a week of free slots and change appointments by the same rules. Slots themselves
are ``slots.py``'s.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import unicodedata
from zoneinfo import ZoneInfo

import phonenumbers

from .models import Appointment, Patient, User, VisitType, db, fn, utcnow
from .slots import (SlotUnavailable, compute_slots, free_slots, next_free_slots, opening_intervals, utc_to_wall,
                    wall_to_utc)

# How a slot is named in an address: its UTC start to the minute, "2036-06-12T07:30".
AT_FORMAT = "%Y-%m-%dT%H:%M"
NEXT_COUNT = 3


# What a patient may book.

def bookable_types(practice, practitioner: User) -> list[VisitType]:
    """The visit types patients may book online with this practitioner."""
    return [t for t in VisitType.offered(practice, practitioner.id) if t.online]


def bookable_practitioners(practice) -> list[User]:
    """The practitioners of the practice with at least one visit type bookable online."""
    return [p for p in User.practitioners(practice) if bookable_types(practice, p)]


def format_at(starts_at: dt.datetime) -> str:
    return starts_at.strftime(AT_FORMAT)


def parse_at(raw: str | None) -> dt.datetime | None:
    """A slot's start from an address or a form, or None when it is not one (any other shape, a
    year outside 2000-2999, seconds)."""
    try:
        value = dt.datetime.strptime((raw or "").strip(), AT_FORMAT)
    except ValueError:
        return None
    return value if 2000 <= value.year <= 2999 else None


def week_monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def week_of_slots(practitioner: User, visit_type: VisitType, monday: dt.date, now: dt.datetime | None = None):
    """The free slots of the local week starting ``monday``, as [(day, [Slot, ...]), ...] for its 7 days."""
    tz = ZoneInfo(practitioner.practice.timezone)
    start = wall_to_utc(dt.datetime.combine(monday, dt.time()), tz)
    end = wall_to_utc(dt.datetime.combine(monday + dt.timedelta(days=7), dt.time()), tz)
    by_day: dict[dt.date, list] = {monday + dt.timedelta(days=i): [] for i in range(7)}
    for slot in free_slots(practitioner, start, end, visit_type, now):
        by_day.setdefault(slot.local_start.date(), []).append(slot)
    return sorted(by_day.items())


def week_nav(practice, visit_type: VisitType, monday: dt.date, now: dt.datetime | None = None) -> dict:
    """The weeks a page may go to from ``monday``: the previous one unless it is this week, the next
    one while it starts before the visit type's horizon; ISO Mondays, "" when there is none."""
    now = now or utcnow()
    this_week = week_monday(local_today(practice, now))
    last = local_today(practice, now + dt.timedelta(days=visit_type.horizon_days))
    following = monday + dt.timedelta(days=7)
    return {"earlier": (monday - dt.timedelta(days=7)).isoformat() if monday > this_week else "",
            "later": following.isoformat() if following <= last else ""}


def practice_phones(practitioners) -> list[tuple[str, str]]:
    """The practice's phone numbers as its practitioners' profiles give them: (E.164, as dialled at home)."""
    found = []
    for number in dict.fromkeys(p.practice_phone for p in practitioners if p.practice_phone):
        try:
            shown = phonenumbers.format_number(phonenumbers.parse(number, None),
                                               phonenumbers.PhoneNumberFormat.NATIONAL)
        except phonenumbers.NumberParseException:
            shown = number
        found.append((number, shown))
    return found


def local_today(practice, now: dt.datetime | None = None) -> dt.date:
    return utc_to_wall(now or utcnow(), ZoneInfo(practice.timezone)).date()


def is_free(practitioner: User, visit_type: VisitType, starts_at: dt.datetime, now: dt.datetime | None = None) -> bool:
    """Whether ``starts_at`` is a free slot of this visit type now."""
    found = free_slots(practitioner, starts_at, starts_at + dt.timedelta(minutes=1), visit_type, now)
    return bool(found) and found[0].starts_at == starts_at


def why_not_free(practitioner: User, visit_type: VisitType, starts_at: dt.datetime,
                 now: dt.datetime | None = None) -> str:
    """Why a start is not a free slot: "past", "too_soon", "too_far", "taken" (a slot of the hours,
    booked or closed) or "hours" (not a slot of the practitioner's hours at all)."""
    now = now or utcnow()
    if starts_at <= now:
        return "past"
    if starts_at < now + dt.timedelta(minutes=visit_type.notice_minutes):
        return "too_soon"
    if starts_at >= now + dt.timedelta(days=visit_type.horizon_days):
        return "too_far"
    local = utc_to_wall(starts_at, ZoneInfo(practitioner.practice.timezone)).date()
    grid = _grid_starts(practitioner, visit_type, local)
    return "taken" if starts_at in grid else "hours"


def _grid_starts(practitioner: User, visit_type: VisitType, day: dt.date) -> set[dt.datetime]:
    """The starts the day's opening hours offer this visit type, free or not: the slots of an
    empty day, computed without appointments, closures, notice or horizon."""
    tz = ZoneInfo(practitioner.practice.timezone)
    weekly = [(h.weekday, h.start_minute, h.end_minute) for h in practitioner.weekly_hours]
    opening = opening_intervals(weekly, [], tz, day, day)
    found = compute_slots(practitioner.id, opening, [], visit_type.duration_minutes, dt.datetime.min,
                                dt.datetime.max, tz)
    return {s.starts_at for s in found}


def next_slots(practitioner: User, visit_type: VisitType, now: dt.datetime | None = None):
    """The practitioner's next free slots of this visit type, to offer instead of a refused one."""
    return [s for _, found in next_free_slots(visit_type, [practitioner], NEXT_COUNT, now) for s in found]


# What a patient may change on their own.

def change_deadline(appt: Appointment) -> dt.datetime:
    return appt.starts_at - dt.timedelta(hours=appt.practice.patient_change_notice_hours)


def may_cancel(appt: Appointment, now: dt.datetime | None = None) -> bool:
    """Whether the patient may cancel from their link: the practice takes online bookings, the visit
    is booked (or requested) and not instant, and its start is further than the practice's notice."""
    return (appt.practice.online_booking and appt.status in ("requested", "scheduled") and appt.kind != "instant"
            and (now or utcnow()) < change_deadline(appt))


def may_move(appt: Appointment, now: dt.datetime | None = None) -> bool:
    """Whether the patient may also move it: to another free slot of its visit type, when that is
    one patients book online."""
    kind = appt.visit_type
    return may_cancel(appt, now) and kind is not None and kind.online and kind.active


def move_to(appt: Appointment, starts_at: dt.datetime, now: dt.datetime | None = None) -> None:
    """Move the patient's appointment to a free slot of its visit type, atomically (as ``take_slot``
    takes one); ``SlotUnavailable`` with the next free slots when it is not free."""
    now = now or utcnow()
    practitioner = appt.practitioner
    with db.atomic():
        # Hold the practitioner's bookings first, as take_slot does: a write to their row.
        User.update(session_version=User.session_version).where(User.id == practitioner.id).execute()
        if is_free(practitioner, appt.visit_type, starts_at, now):
            appt.reschedule("patient", starts_at, appt.visit_type.duration_minutes)
            return
    raise SlotUnavailable(next_slots(practitioner, appt.visit_type, now))


# The one-time code.

def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def code_hash(secret: str, token: str, code: str) -> str:
    """The code as stored: an HMAC under the app's secret, salted by the request's token."""
    return hmac.new(secret.encode(), f"booking-code:{token}:{code}".encode(), hashlib.sha256).hexdigest()


def code_matches(secret: str, token: str, code: str, stored: str) -> bool:
    return bool(stored) and hmac.compare_digest(code_hash(secret, token, code), stored)


# Which record a booking belongs to.

def fold(text: str) -> str:
    """A name or address as compared: accents, case and extra spaces or hyphens do not count."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    bare = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join(bare.replace("-", " ").replace("'", " ").replace("’", " ").split())


def matching_patient(practice, first_name: str, last_name: str, birth_date: dt.date, email: str,
                     phone: str) -> Patient | None:
    """The practice's record with these names and birth date and one of these contacts (accents and
    case aside), the oldest when several; None when none has them all."""
    names = (fold(first_name), fold(last_name))
    query = Patient.select().where(Patient.practice == practice, Patient.merged_into.is_null(),
                                   Patient.birth_date == birth_date)
    if email or phone:
        contacts = []
        if email:
            contacts.append(fn.lower(Patient.email) == email.lower())
        if phone:
            contacts.append(Patient.phone == phone)
        query = query.where(contacts[0] | contacts[1] if len(contacts) == 2 else contacts[0])
    else:
        return None
    for patient in query.order_by(Patient.id):
        if (fold(patient.first_name), fold(patient.last_name)) == names:
            return patient
    return None

