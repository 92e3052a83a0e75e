"""Free slots: opening hours, plus extra openings, minus closures, minus appointments, minus the
visit type's notice and beyond its horizon, in the practice's time zone; and taking one without
double booking. Pure functions and queries; no views.

Times go in and come out as naive UTC, as the database stores them; each ``Slot`` also carries its
wall-clock times in the practice's zone, for pages to show.

Daylight saving. Weekly hours are wall-clock times: a 09:00-12:00 range is 09:00-12:00 local on the
Sunday the clocks change too. Each range's two ends become UTC instants (a time that occurs twice,
in autumn, is its first occurrence; a time that does not exist, in spring's gap, is the instant the
clocks jumped), and slots are laid from its start in UTC, each as long as the visit. So a range
across spring's 02:00-03:00 is an hour shorter, one across autumn's an hour longer, and no slot
starts or ends at a time that does not exist or lasts more or less than its visit.

The grid: slots start at the opening range's start, one after the other; an appointment or a
closure blocks the slots it overlaps and does not shift the others.
"""
from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from .models import Appointment, AuditEvent, HoursException, User, VisitType, WeeklyHours, db, utcnow

UTC = dt.timezone.utc
DEFAULT_MINUTES = 15
# An appointment starting this long before a window can still reach into it (the agenda's longest is 60 min).
LONGEST_APPOINTMENT = dt.timedelta(hours=24)
# How far next_free_slots looks without a visit type's horizon.
DEFAULT_HORIZON_DAYS = 42


@dataclass(frozen=True)
class Slot:
    """A free time of one practitioner: UTC (``starts_at``, ``ends_at``) and wall-clock
    (``local_start``, ``local_end``, in the practice's zone), all naive."""
    practitioner_id: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    local_start: dt.datetime
    local_end: dt.datetime


class SlotUnavailable(Exception):
    """The slot asked for is not free (taken meanwhile, outside the hours, too soon or too far);
    ``next_slots`` are the practitioner's next free ones, to offer instead."""

    def __init__(self, next_slots: list[Slot]):
        super().__init__("slot unavailable")
        self.next_slots = next_slots


def wall_to_utc(wall: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """A naive wall-clock time in ``tz`` as naive UTC. Twice-occurring (autumn): the first occurrence.
    Non-existent (spring's gap): the instant the clocks jumped, which is where such a time "is"."""
    offset, other = tz.utcoffset(wall), tz.utcoffset(wall.replace(fold=1))
    if offset == other:
        return wall - offset
    first, second = wall - offset, wall - other
    if utc_to_wall(first, tz) == wall:           # it exists, twice: the earlier one
        return min(first, second)
    low, high = min(first, second), max(first, second)     # the jump lies between them
    before = tz.utcoffset(utc_to_wall(low, tz))
    while high - low > dt.timedelta(minutes=1):
        middle = low + (high - low) / 2
        if middle.replace(tzinfo=UTC).astimezone(tz).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high.replace(second=0, microsecond=0)


def utc_to_wall(value: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    return value.replace(tzinfo=UTC).astimezone(tz).replace(tzinfo=None)


def _merged(intervals: list[tuple[dt.datetime, dt.datetime]]) -> list[tuple[dt.datetime, dt.datetime]]:
    merged: list[list[dt.datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def opening_intervals(weekly: list[tuple[int, int, int]], extra: list[tuple[dt.datetime, dt.datetime]],
                      tz: ZoneInfo, first_day: dt.date, last_day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
    """The UTC intervals open from local ``first_day`` to ``last_day`` (inclusive): the weekly
    ranges ((weekday, start minute, end minute)) of each day, and the extra openings, merged."""
    by_weekday: dict[int, list[tuple[int, int]]] = {}
    for weekday, start, end in weekly:
        by_weekday.setdefault(weekday, []).append((start, end))
    intervals = list(extra)
    day = first_day
    while day <= last_day:
        midnight = dt.datetime.combine(day, dt.time())
        for start, end in by_weekday.get(day.weekday(), ()):
            utc_start = wall_to_utc(midnight + dt.timedelta(minutes=start), tz)
            utc_end = wall_to_utc(midnight + dt.timedelta(minutes=end), tz)
            if utc_end > utc_start:
                intervals.append((utc_start, utc_end))
        day += dt.timedelta(days=1)
    return _merged(intervals)


class _Busy:
    """Times that block a slot (appointments, closures): "does [start, end) overlap any?" in log time."""

    def __init__(self, intervals):
        ordered = sorted(intervals)
        self.starts = [s for s, _ in ordered]
        self.reach = []          # the latest end among the intervals up to each one
        latest = None
        for _, end in ordered:
            latest = end if latest is None or end > latest else latest
            self.reach.append(latest)

    def overlaps(self, start: dt.datetime, end: dt.datetime) -> bool:
        before_end = bisect.bisect_left(self.starts, end)
        return before_end > 0 and self.reach[before_end - 1] > start


def compute_slots(practitioner_id: int, opening, busy, minutes: int, earliest: dt.datetime,
                  latest: dt.datetime, tz: ZoneInfo) -> list[Slot]:
    """Slots of ``minutes`` laid from the start of each opening interval, starting in
    [earliest, latest), that no busy interval overlaps. Pure: the queries are the caller's."""
    step = dt.timedelta(minutes=minutes)
    blocked = _Busy(busy)
    slots = []
    for open_start, open_end in opening:
        start = open_start
        if start < earliest:            # skip ahead on the grid, whole steps only
            start += step * -(-(earliest - start) // step)
        # One offset for the whole interval unless the clocks change inside it (twice a year).
        offset = _offset(start, tz)
        steady = offset == _offset(open_end, tz)
        while start + step <= open_end and start < latest:
            end = start + step
            if not blocked.overlaps(start, end):
                if steady:
                    slots.append(Slot(practitioner_id, start, end, start + offset, end + offset))
                else:
                    slots.append(Slot(practitioner_id, start, end, utc_to_wall(start, tz), utc_to_wall(end, tz)))
            start = end
    return slots


def _offset(utc: dt.datetime, tz: ZoneInfo) -> dt.timedelta:
    return utc.replace(tzinfo=UTC).astimezone(tz).utcoffset()


def _practitioner(practitioner) -> User:
    return practitioner if isinstance(practitioner, User) else User.get_by_id(practitioner)


def bounds(visit_type: VisitType | None, start_utc: dt.datetime, end_utc: dt.datetime,
           now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The window slots may start in: [start, end) cut by now plus the notice, and by the horizon."""
    notice = dt.timedelta(minutes=visit_type.notice_minutes if visit_type else 0)
    earliest = max(start_utc, now + notice)
    latest = end_utc if visit_type is None else min(end_utc, now + dt.timedelta(days=visit_type.horizon_days))
    return earliest, latest


def offers(visit_type: VisitType | None, practitioner: User) -> bool:
    """Whether the practitioner offers this visit type (one of the practice's, for everyone or for them)."""
    if visit_type is None:
        return True
    return (visit_type.practice_id == practitioner.practice_id and visit_type.active
            and visit_type.practitioner_id in (None, practitioner.id))


def free_slots(practitioner, start_utc: dt.datetime, end_utc: dt.datetime, visit_type: VisitType | None = None,
               now: dt.datetime | None = None) -> list[Slot]:
    """The practitioner's free slots starting in [start_utc, end_utc), in order: their weekly hours and
    extra openings, minus closures and live (non-cancelled) appointments, none in the past nor closer
    than the visit type's notice nor beyond its horizon. Slots last the visit type's duration (15 min
    without one)."""
    practitioner = _practitioner(practitioner)
    if not offers(visit_type, practitioner):
        return []
    now = now or utcnow()
    earliest, latest = bounds(visit_type, start_utc, end_utc, now)
    if earliest >= latest:
        return []
    minutes = visit_type.duration_minutes if visit_type else DEFAULT_MINUTES
    tz = ZoneInfo(practitioner.practice.timezone)
    weekly = list(WeeklyHours.select(WeeklyHours.weekday, WeeklyHours.start_minute, WeeklyHours.end_minute)
                  .where(WeeklyHours.practitioner == practitioner.id).tuples())
    extra, closed = [], []
    for kind, start, end in (HoursException.select(HoursException.kind, HoursException.starts_at,
                                                   HoursException.ends_at)
                             .where(HoursException.practitioner == practitioner.id,
                                    HoursException.ends_at > earliest,
                                    HoursException.starts_at < latest + dt.timedelta(minutes=minutes)).tuples()):
        (extra if kind == "open" else closed).append((start, end))
    if not weekly and not extra:
        return []
    opening = opening_intervals(weekly, extra, tz, utc_to_wall(earliest, tz).date() - dt.timedelta(days=1),
                                utc_to_wall(latest, tz).date())
    reach = latest + dt.timedelta(minutes=minutes)
    taken = [(s, s + dt.timedelta(minutes=d)) for s, d in
             Appointment.select(Appointment.starts_at, Appointment.duration_minutes)
             .where(Appointment.practitioner == practitioner.id, Appointment.status != "cancelled",
                    Appointment.starts_at < reach, Appointment.starts_at > earliest - LONGEST_APPOINTMENT).tuples()]
    return compute_slots(practitioner.id, opening, closed + taken, minutes, earliest, latest, tz)


def next_free_slots(visit_type: VisitType | None, practitioners, count: int = 3,
                    now: dt.datetime | None = None) -> list[tuple[User, list[Slot]]]:
    """For a visit type, the first ``count`` free slots of each practitioner who offers it (as far
    as its horizon), in the order given; a practitioner with none has an empty list."""
    now = now or utcnow()
    horizon = now + dt.timedelta(days=visit_type.horizon_days if visit_type else DEFAULT_HORIZON_DAYS)
    found = []
    for practitioner in map(_practitioner, practitioners):
        if not offers(visit_type, practitioner):
            continue
        slots: list[Slot] = []
        start = now
        while len(slots) < count and start < horizon:      # a week at a time: the first free ones are near
            end = min(start + dt.timedelta(days=7), horizon)
            slots += free_slots(practitioner, start, end, visit_type, now)
            start = end
        found.append((practitioner, slots[:count]))
    return found


def _hold(practitioner_id: int) -> None:
    """Hold the practitioner's bookings until the transaction ends: a write to their row, the first
    statement of the transaction. On PostgreSQL it locks the row (a second taker waits for the first
    to commit, then sees its appointment); on SQLite any write takes the database's write lock."""
    User.update(session_version=User.session_version).where(User.id == practitioner_id).execute()


def take_slot(practitioner, starts_at: dt.datetime, visit_type: VisitType | None = None, *, actor,
              now: dt.datetime | None = None, **fields) -> Appointment:
    """Book the free slot starting at ``starts_at`` (UTC) as an appointment, atomically: two takers
    of the same slot at once, exactly one gets it; the other gets ``SlotUnavailable`` with the next
    free slots. Refused too when the slot is outside the hours, too soon or beyond the horizon.

    ``fields`` are the appointment's other columns (patient, contact_email, motive, ...). Staff
    booking in the agenda does not come here: it may overlap, after a warning.
    """
    practitioner = _practitioner(practitioner)
    now = now or utcnow()
    minutes = visit_type.duration_minutes if visit_type else DEFAULT_MINUTES
    with db.atomic():
        _hold(practitioner.id)
        free = free_slots(practitioner, starts_at, starts_at + dt.timedelta(minutes=1), visit_type, now)
        if free and free[0].starts_at == starts_at:
            defaults = {"mode": visit_type.mode} if visit_type else {}
            appt = Appointment.create(practice=practitioner.practice_id, practitioner=practitioner.id,
                                      starts_at=starts_at, duration_minutes=minutes, visit_type=visit_type,
                                      **{**defaults, **fields})
            AuditEvent.record(actor, "appointment.created", appt, detail="slot")
            return appt
    raise SlotUnavailable([slot for _, slots in next_free_slots(visit_type, [practitioner], 3, now)
                           for slot in slots])
