"""Peewee models, their query helpers, and the state changes that audit themselves.

Times are stored as naive UTC datetimes; pages convert to the practice's time
zone at the edge (``webapp.i18n``: ``utc_to_local``, ``local_to_utc``).
"""
from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta, timezone

from flask import has_request_context, request
from peewee import (
    BooleanField, CharField, DatabaseProxy, DateField, DateTimeField, ForeignKeyField,
    JOIN, IntegerField, Model, ModelUpdate, TextField, Value, fn,
)

db = DatabaseProxy()

ROLES = ("admin", "practitioner", "secretary")


def utcnow() -> datetime:
    """Now, as the naive UTC datetime the database stores."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_ref() -> str:
    return secrets.token_hex(12)


class WayInOver(Exception):
    """The patient was admitted or the visit closed: identity, consent and device check are frozen."""


class BaseModel(Model):
    class Meta:
        database = db


class Practice(BaseModel):
    # What `init-db` names a practice until someone gives its real name (which every message carries).
    PLACEHOLDER_NAME = "Cabinet"

    name = CharField(max_length=200)
    address = TextField(default="")
    timezone = CharField(max_length=64, default="Europe/Paris")
    default_locale = CharField(max_length=16, default="fr")
    link_opens_minutes_before = IntegerField(default=15)
    link_closes_minutes_after = IntegerField(default=60)
    patient_space_days = IntegerField(default=15)
    reminder_minutes = CharField(max_length=100, default="1440,15")
    created_at = DateTimeField(default=utcnow)
    # Files exchanged during a call or sent at closing.
    max_upload_mb = IntegerField(default=10)
    # Payment requests: amounts offered as presets (cents, comma-separated) and what the patient reads.
    payment_presets = CharField(max_length=200, default="2500,3000,1500")
    payment_instructions = TextField(default="")
    # Clinical content (report, chat, documents) of a visit is its practitioner's; with this on, the
    # practice's other practitioners read it too (never secretaries or admins).
    share_records = BooleanField(default=False)
    # Where patients' links point when PUBLIC_URL is not set: learned from the first staff
    # request, shown (and correctable) on the admin page. "" while unknown.
    site_url = CharField(max_length=300, default="")
    # Online booking (schema 14): off until the practice switches it on, and off again at once when
    # it switches it off; how long before a visit patients may still cancel or move it themselves.
    online_booking = BooleanField(default=False)
    patient_change_notice_hours = IntegerField(default=24)

    @property
    def named(self) -> bool:
        """Whether the practice has its real name yet (not the placeholder init-db gave it)."""
        return bool(self.name) and self.name != self.PLACEHOLDER_NAME

    @property
    def preset_amounts(self) -> list[int]:
        """Payment amounts offered as presets, in cents."""
        return [int(c) for c in self.payment_presets.split(",") if c.strip().isdigit()]

    @property
    def reminders(self) -> list[int]:
        return sorted({int(m) for m in self.reminder_minutes.split(",") if m.strip()}, reverse=True)


class User(BaseModel):
    practice = ForeignKeyField(Practice, backref="staff", on_delete="CASCADE")
    email = CharField(max_length=254, unique=True)
    name = CharField(max_length=200)
    role = CharField(max_length=20)
    password_hash = CharField(max_length=200)
    locale = CharField(max_length=16, default="")
    active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)
    # Every session carries the version it was made under; raising it ends them all.
    session_version = IntegerField(default=1)
    # None: the role decides (practitioners and admins must have one); True/False: said explicitly.
    second_factor_required = BooleanField(null=True)
    totp_secret = CharField(max_length=64, default="")
    totp_last_step = IntegerField(default=0)            # a code's time step is never accepted twice
    totp_enrolled_at = DateTimeField(null=True)
    # A practitioner's professional identity, as their prescriptions carry it (schema 12).
    profession = CharField(max_length=20, default="")      # webapp.profiles.PROFESSIONS, "" while unsaid
    specialty = CharField(max_length=100, default="")
    rpps = CharField(max_length=11, default="")            # 11 digits, Luhn-checked
    am_number = CharField(max_length=9, default="")        # health-insurance (Assurance maladie) number
    practice_address = TextField(default="")
    practice_phone = CharField(max_length=20, default="")  # E.164
    # The signature image, encrypted in the document store under this key ("" when none).
    signature_key = CharField(max_length=100, default="")
    signature_type = CharField(max_length=20, default="")  # image/png or image/jpeg
    # The calendar feed: 0 while none is on; renewing or revoking moves it past every address given out.
    feed_version = IntegerField(default=0)
    feed_on = BooleanField(default=False)
    feed_details = BooleanField(default=False)            # patient names and motives in the feed (opt-in)

    ROLES_WITH_SECOND_FACTOR = ("practitioner", "admin")

    @property
    def has_second_factor(self) -> bool:
        return bool(self.totp_secret)

    @property
    def needs_second_factor(self) -> bool:
        """Whether this account must enrol a second factor before it sees any staff page."""
        if self.second_factor_required is not None:
            return self.second_factor_required
        return self.role in self.ROLES_WITH_SECOND_FACTOR

    def renew_feed(self, actor):
        """Turn the calendar feed on under a new address; every address given out before stops working."""
        with db.atomic():
            User.update(feed_version=User.feed_version + 1, feed_on=True).where(User.id == self.id).execute()
            self.feed_version, self.feed_on = User.get_by_id(self.id).feed_version, True
            AuditEvent.record(actor, "calendar_feed.renewed", detail=f"user {self.id}")

    def revoke_feed(self, actor):
        """Turn the calendar feed off: its address stops working, and a new one will differ."""
        with db.atomic():
            User.update(feed_version=User.feed_version + 1, feed_on=False).where(User.id == self.id).execute()
            self.feed_version, self.feed_on = User.get_by_id(self.id).feed_version, False
            AuditEvent.record(actor, "calendar_feed.revoked", detail=f"user {self.id}")

    def show_names_in_feed(self, actor, on: bool):
        """Whether the feed names patients and motives (off by default: initials and times only)."""
        if self.feed_details == on:
            return
        with db.atomic():
            self.feed_details = on
            self.save(only=[User.feed_details])
            AuditEvent.record(actor, "calendar_feed.names_shown" if on else "calendar_feed.names_hidden",
                              detail=f"user {self.id}")

    def end_sessions(self):
        """Every session of this user, on every browser, stops working at its next request."""
        User.update(session_version=User.session_version + 1).where(User.id == self.id).execute()
        self.session_version = User.get_by_id(self.id).session_version

    def enrol_second_factor(self, secret: str, step: int, recovery_hashes: list[str]):
        """Keep the confirmed TOTP secret and fresh recovery codes (hashed); audited."""
        with db.atomic():
            User.update(totp_secret=secret, totp_last_step=step, totp_enrolled_at=utcnow()).where(
                User.id == self.id).execute()
            RecoveryCode.delete().where(RecoveryCode.user == self.id).execute()
            RecoveryCode.insert_many([{"user": self.id, "code_hash": h} for h in recovery_hashes]).execute()
            self.totp_secret, self.totp_last_step = secret, step
            AuditEvent.record(self, "staff.second_factor_enrolled", detail=f"user:{self.id}")

    def reset_second_factor(self, by):
        """Forget the factor (lost phone): the user enrols again at next sign-in; their sessions end."""
        with db.atomic():
            User.update(totp_secret="", totp_last_step=0, totp_enrolled_at=None).where(User.id == self.id).execute()
            RecoveryCode.delete().where(RecoveryCode.user == self.id).execute()
            self.end_sessions()
            self.totp_secret, self.totp_last_step, self.totp_enrolled_at = "", 0, None
            AuditEvent.record(by, "staff.second_factor_reset", detail=f"user:{self.id}")

    def use_totp_step(self, step: int) -> bool:
        """Claim a code's time step; False when it (or a later one) was already used."""
        claimed = User.update(totp_last_step=step).where(
            User.id == self.id, User.totp_last_step < step).execute()
        if claimed:
            self.totp_last_step = step
        return bool(claimed)

    def second_factor_failed(self):
        AuditEvent.record(self, "staff.second_factor_failed", detail=f"user:{self.id}")

    @classmethod
    def by_email(cls, email: str):
        return cls.get_or_none(fn.lower(cls.email) == email.strip().lower())

    @classmethod
    def practitioners(cls, practice):
        return (cls.select().where(cls.practice == practice, cls.role == "practitioner", cls.active)
                .order_by(cls.name))


class Patient(BaseModel):
    practice = ForeignKeyField(Practice, backref="patients", on_delete="CASCADE")
    first_name = CharField(max_length=100)
    last_name = CharField(max_length=100)
    birth_date = DateField(null=True)
    email = CharField(max_length=254, default="")
    phone = CharField(max_length=20, default="")
    locale = CharField(max_length=16, default="")
    created_at = DateTimeField(default=utcnow)
    nir = CharField(max_length=15, default="")          # French social-security number, 15 characters, or ""
    # A record merged into another keeps its row (nothing typed is lost) but leaves every list; it goes
    # with the record it was merged into (a purge never brings it back as a patient of its own).
    merged_into = ForeignKeyField("self", null=True, on_delete="CASCADE", column_name="merged_into_id")
    merged_at = DateTimeField(null=True)
    # Created by a patient booking online (schema 16) without matching a record: staff check it
    # (a duplicate to merge, a typo) and clear the flag.
    needs_check = BooleanField(default=False)

    # Details a merge copies from the merged-away record where the kept one has none.
    MERGE_FILLS = ("birth_date", "email", "phone", "locale", "nir")

    class Meta:
        indexes = ((("practice", "last_name", "first_name"), False), (("practice", "phone"), False))

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @classmethod
    def duplicates(cls, practice, first_name: str, last_name: str, birth_date, exclude_id=None) -> list:
        """Records of the practice with the same names (whatever the case) and birth date."""
        query = cls.select().where(cls.practice == practice, cls.merged_into.is_null(), cls.birth_date == birth_date,
                                   cls.id != (exclude_id or 0))
        # Compared here, not in SQL: SQLite's lower() folds only ASCII letters ("É" stays "É").
        names = (first_name.strip().casefold(), last_name.strip().casefold())
        return [p for p in query.order_by(cls.id) if (p.first_name.strip().casefold(),
                                                      p.last_name.strip().casefold()) == names]

    def merge(self, other: "Patient", actor) -> dict[str, int]:
        """Merge ``other`` into this record, in one transaction: every row that points at it (its
        visits, and through them their documents, payments, messages and consents; its audit events;
        records merged into it earlier) points here instead; details this record lacks are taken from
        it; it stays, marked merged. Returns how many rows of each table moved."""
        with db.atomic():
            moved = {}
            for field, model in Patient._meta.backrefs.items():
                # A query-level update: AuditEvent.update refuses, and re-pointing an event at the
                # record it now belongs to changes nothing of what it says happened.
                count = ModelUpdate(model, {field: self.id}).where(field == other.id).execute()
                moved[model.__name__] = moved.get(model.__name__, 0) + count
            for name in self.MERGE_FILLS:
                if not getattr(self, name) and getattr(other, name):
                    setattr(self, name, getattr(other, name))
            self.save()
            Patient.update(merged_into=self.id, merged_at=utcnow()).where(Patient.id == other.id).execute()
            AuditEvent.record(actor, "patient.merged", patient=self, detail=f"patient {other.id} into {self.id}")
        return moved

    @classmethod
    def search(cls, practice, text: str = "", birth_date=None, phone: str = "", limit: int = 50):
        """Patients of the practice matching every given criterion, by name (merged-away records left out)."""
        query = cls.select().where(cls.practice == practice, cls.merged_into.is_null())
        for word in text.lower().split():
            query = query.where(fn.lower(cls.first_name).contains(word)
                                | fn.lower(cls.last_name).contains(word)
                                | fn.lower(cls.email).contains(word))
        if birth_date:
            query = query.where(cls.birth_date == birth_date)
        if phone:
            query = query.where(cls.phone.contains(phone))
        return query.order_by(cls.last_name, cls.first_name).limit(limit)

    def mark_checked(self, actor) -> bool:
        """Staff checked a record made by an online booking; False when someone already had."""
        with db.atomic():
            done = Patient.update(needs_check=False).where(Patient.id == self.id, Patient.needs_check).execute()
            if done:
                self.needs_check = False
                AuditEvent.record(actor, "patient.checked", patient=self)
        return bool(done)


# Availability (schema 14): when each practitioner sees patients, and what kinds of visits they offer.

class WeeklyHours(BaseModel):
    """One range of a practitioner's weekly opening hours for teleconsultations, in the practice's
    wall-clock time (09:00 stays 09:00 across daylight-saving changes). Several ranges a day."""
    practitioner = ForeignKeyField(User, backref="weekly_hours", on_delete="CASCADE")
    weekday = IntegerField()                 # 0 Monday .. 6 Sunday
    start_minute = IntegerField()            # minutes after local midnight, 0..1439
    end_minute = IntegerField()              # after start_minute, at most 1440

    class Meta:
        indexes = ((("practitioner", "weekday", "start_minute"), False),)

    @classmethod
    def of(cls, practitioner_id):
        return cls.select().where(cls.practitioner == practitioner_id).order_by(cls.weekday, cls.start_minute)


class HoursException(BaseModel):
    """An exception to the weekly hours: closed (a holiday, an afternoon off) or an extra opening."""
    KINDS = ("closed", "open")

    practitioner = ForeignKeyField(User, backref="hours_exceptions", on_delete="CASCADE")
    kind = CharField(max_length=8, default="closed")
    starts_at = DateTimeField()              # UTC
    ends_at = DateTimeField()                # UTC, after starts_at
    note = CharField(max_length=100, default="")    # staff's word for it ("Holidays"); never patient data

    class Meta:
        indexes = ((("practitioner", "ends_at"), False),)

    @classmethod
    def of(cls, practitioner_id, start=None, end=None):
        """The practitioner's exceptions that meet [start, end), by time."""
        query = cls.select().where(cls.practitioner == practitioner_id)
        if start is not None:
            query = query.where(cls.ends_at > start)
        if end is not None:
            query = query.where(cls.starts_at < end)
        return query.order_by(cls.starts_at, cls.id)


class VisitType(BaseModel):
    """A kind of visit the practice offers (all its practitioners, or one): its name in each language,
    its length and mode, the act it usually codes and its fee, and the rules of online booking."""
    MODES = ("video", "audio")
    CONFIRMATIONS = ("auto", "staff")        # online bookings confirmed at once, or after staff approve

    practice = ForeignKeyField(Practice, backref="visit_types", on_delete="CASCADE")
    practitioner = ForeignKeyField(User, backref="visit_types", null=True, on_delete="CASCADE")
    names = TextField(default="{}")          # JSON {"fr": "Consultation de suivi", "en": "Follow-up"}
    duration_minutes = IntegerField(default=15)
    mode = CharField(max_length=10, default="video")
    act_code = CharField(max_length=16, default="")       # an Act.code of the practice, or ""
    fee_cents = IntegerField(null=True)
    online = BooleanField(default=False)     # patients may book it on the public page
    new_patients = BooleanField(default=False)
    confirmation = CharField(max_length=8, default="auto")
    notice_minutes = IntegerField(default=120)    # no booking closer to now than this
    horizon_days = IntegerField(default=42)        # nor further ahead than this
    active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)

    @property
    def name_map(self) -> dict:
        try:
            names = json.loads(self.names or "{}")
        except ValueError:
            return {}
        return {k: v for k, v in names.items() if isinstance(k, str) and isinstance(v, str) and v} \
            if isinstance(names, dict) else {}

    def name_in(self, locale: str, fallback: str = "") -> str:
        """The name in ``locale``, else in ``fallback`` (the practice's language), else any."""
        names = self.name_map
        for code in (str(locale or ""), str(locale or "").split("_")[0], fallback):
            if code and names.get(code):
                return names[code]
        return next(iter(names.values()), "")

    @classmethod
    def offered(cls, practice, practitioner_id=None, active_only: bool = True):
        """The practice's visit types; with ``practitioner_id``, those open to that practitioner
        (the practice-wide ones and their own)."""
        query = cls.select().where(cls.practice == practice)
        if practitioner_id is not None:
            query = query.where(cls.practitioner.is_null() | (cls.practitioner == practitioner_id))
        if active_only:
            query = query.where(cls.active)
        return query.order_by(cls.duration_minutes, cls.id)


class Appointment(BaseModel):
    """One teleconsultation. Its ``status`` moves only through the methods below, each audited:

        scheduled --enter_waiting_room--> waiting --admit--> in_call --end_call--> (call ended)
        (call ended) --resume_call--> in_call again (while the link's window is open, before closing)
        waiting --send_back--> scheduled (a new time today)
        scheduled | waiting | in_call --cancel--> cancelled (its links stop working)
        requested --approve--> scheduled; requested --decline--> cancelled (an online booking staff confirm)
        requested | scheduled --cancel_by_patient / move_by_patient--> cancelled / moved (the patient's own
            link, up to the practice's notice before the start)
        any live visit --record_outcome--> (outcome recorded; may end a call that ended outside Cabinet)
        in_call, or a past visit --close--> closed (the closing checklist is done)

    "The call has ended" is a state derived from the fields, not a status of its own:
    ``call_ended`` (in_call with ``call_ended_at`` set): the practitioner hung up and the
    visit waits for its closing checklist; the patient's page shows that the visit is over.
    ``call_end_source`` says where that time comes from: "" when the practitioner hung up in
    Cabinet, else the best truthful time known when the call ended outside Cabinet ("media": the
    last media the relay saw, kept in ``media_seen_at``; "activity": the last chat line, file or
    incident; "start": nothing after the admission).

    Every visit ends with an outcome (``OUTCOMES``): "held" goes without saying once consent,
    admission and an end in Cabinet exist (``outcome_shown``); the others are recorded by the
    practitioner with ``record_outcome``: the time they refer to (``outcome_at``: the telephone
    call, the patient's leaving) and a reason (``outcome_reason``).
    """

    # "requested": booked online, waiting for staff to approve; it holds its slot meanwhile.
    STATUSES = ("requested", "scheduled", "waiting", "in_call", "closed", "cancelled")

    ref = CharField(max_length=32, unique=True, default=new_ref)
    practice = ForeignKeyField(Practice, backref="appointments", on_delete="CASCADE")
    practitioner = ForeignKeyField(User, backref="appointments", on_delete="RESTRICT")
    patient = ForeignKeyField(Patient, backref="appointments", null=True, on_delete="RESTRICT")
    contact_email = CharField(max_length=254, default="")
    contact_phone = CharField(max_length=20, default="")
    starts_at = DateTimeField(index=True)
    duration_minutes = IntegerField(default=15)
    motive = TextField(default="")
    mode = CharField(max_length=10, default="video")
    kind = CharField(max_length=10, default="scheduled")      # or "instant"
    status = CharField(max_length=12, default="scheduled")
    link_version = IntegerField(default=1)
    # The appointment's language and who chose it: see ``effective_locale``.
    locale = CharField(max_length=16, default="")
    locale_source = CharField(max_length=10, default="")   # "patient", "staff", "browser"; "" before it was kept
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    # Channels chosen at booking for invitations and reminders.
    notify_email = BooleanField(default=True)
    notify_sms = BooleanField(default=True)
    # The patient's way in: identity check, consent, device check, waiting room.
    identity_failures = IntegerField(default=0)
    identity_confirmed_at = DateTimeField(null=True)
    consent_at = DateTimeField(null=True)
    consent_version = CharField(max_length=32, default="")
    consent_locale = CharField(max_length=16, default="")
    device_check = TextField(default="")              # JSON summary of the last device check
    waiting_since = DateTimeField(null=True)
    waiting_note = CharField(max_length=300, default="")   # the practitioner's message to the waiting room
    admitted_at = DateTimeField(null=True)
    # The call and its closing.
    call_ended_at = DateTimeField(null=True)          # the practitioner hung up (actual end)
    closed_at = DateTimeField(null=True)
    closed_by = ForeignKeyField(User, null=True, on_delete="SET NULL", column_name="closed_by_id")
    # How the visit ended (schema 10).
    call_end_source = CharField(max_length=12, default="")     # "" (hung up in Cabinet), media, activity, start
    media_seen_at = DateTimeField(null=True)          # the relay last saw media flow (every MEDIA_SEEN_EVERY)
    resumed_at = DateTimeField(null=True)             # the practitioner last resumed a call ended by mistake
    outcome = CharField(max_length=12, default="")    # "" until recorded: see OUTCOMES
    outcome_at = DateTimeField(null=True)             # the telephone call, the patient's leaving
    outcome_reason = CharField(max_length=300, default="")
    # What kind of visit it was booked as (schema 14); None for visits booked without one.
    visit_type = ForeignKeyField(VisitType, null=True, on_delete="SET NULL")
    # Booked by the patient on the public page (schema 16).
    booked_online = BooleanField(default=False)
    # The relay worker (one of RELAY_URLS) the call is pinned to, until it dies (schema 17; None: not yet,
    # or the embedded relay). Set by ``pin_relay`` only, so that both sides agree.
    relay_url = CharField(max_length=200, null=True)

    OUTCOMES = ("held", "phone", "no_show", "outside", "left_early")
    # Media seen is written at most this often: the end of a call lost outside Cabinet is known to this.
    MEDIA_SEEN_EVERY = timedelta(seconds=30)

    class Meta:
        indexes = ((("practitioner", "starts_at"), False),)

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.duration_minutes)

    @property
    def patient_name(self) -> str:
        if self.patient_id:
            return self.patient.full_name
        return self.contact_email or self.contact_phone

    @property
    def call_ended(self) -> bool:
        """The practitioner ended the call (the visit may not be closed yet)."""
        return self.call_ended_at is not None

    @property
    def outcome_shown(self) -> str:
        """The recorded outcome, else "held" when the call ran in Cabinet from consent to hang-up."""
        if self.outcome:
            return self.outcome
        if self.consented and self.admitted_at and self.call_ended_at and not self.call_end_source:
            return "held"
        return ""

    @property
    def is_active(self) -> bool:
        return self.status not in ("cancelled", "closed")

    @classmethod
    def in_range(cls, practitioner_ids, start: datetime, end: datetime):
        """Appointments starting in [start, end) for the given practitioners, in order."""
        return (cls.select(cls, Patient).join(Patient, join_type=JOIN.LEFT_OUTER, on=(cls.patient == Patient.id))
                .where(cls.practitioner.in_(list(practitioner_ids)), cls.starts_at >= start, cls.starts_at < end)
                .order_by(cls.starts_at))

    @classmethod
    def on_grid(cls, practitioner_ids, start: datetime, end: datetime):
        """``in_range`` with only what the agenda's grid shows: a busy week renders in a few
        milliseconds instead of hydrating every column of every visit and its patient."""
        return (cls.select(cls.id, cls.practitioner, cls.patient, cls.starts_at, cls.duration_minutes, cls.status,
                           cls.mode, cls.kind, cls.contact_email, cls.contact_phone, cls.consent_version,
                           Patient.id, Patient.first_name, Patient.last_name)
                .join(Patient, join_type=JOIN.LEFT_OUTER, on=(cls.patient == Patient.id))
                .where(cls.practitioner.in_(list(practitioner_ids)), cls.starts_at >= start, cls.starts_at < end)
                .order_by(cls.starts_at))

    @classmethod
    def overlapping(cls, practitioner_id, start: datetime, end: datetime, exclude_id=None,
                    longest_minutes: int = 24 * 60):
        """Live appointments of this practitioner that share some time with [start, end)."""
        query = cls.select().where(
            cls.practitioner == practitioner_id,
            cls.status.not_in(("cancelled",)),
            cls.starts_at < end,
            cls.starts_at > start - timedelta(minutes=longest_minutes),
        )
        if exclude_id:
            query = query.where(cls.id != exclude_id)
        return [a for a in query.order_by(cls.starts_at) if a.ends_at > start]

    LOCALE_SOURCES = ("patient", "staff", "browser")

    def effective_locale(self, default: str) -> str:
        """The language of the patient's pages, messages and copy of the report.

        First the one chosen for this appointment, by the patient on their pages or by staff
        (whoever chose last: a patient's switch replaces the practice's choice, and staff change
        it only deliberately, on the appointment's form); then the patient record's; then the
        one the patient's browser asked for on their first visit (kept only when the appointment
        and the record had none); then ``default`` (the browser's now, or the practice's).
        """
        origin = self.locale_origin
        if origin == "default":
            return default
        return self.patient.locale if origin == "record" else self.locale

    @property
    def locale_origin(self) -> str:
        """Where ``effective_locale`` takes the language from: "patient", "staff", "appointment"
        (chosen before the source was kept), "record", "browser" or "default"."""
        if self.locale and self.locale_source != "browser":
            return self.locale_source or "appointment"
        if self.patient_id and self.patient.locale:
            return "record"
        return "browser" if self.locale else "default"

    # State changes: one method each, each writes its audit event.

    def reschedule(self, actor, starts_at: datetime, duration_minutes: int, **fields):
        """Move or edit the appointment; a new time revokes older links."""
        moved = starts_at != self.starts_at
        with db.atomic():
            for name, value in fields.items():
                setattr(self, name, value)
            self.starts_at, self.duration_minutes = starts_at, duration_minutes
            if moved:
                self.link_version += 1
            self.updated_at = utcnow()
            self.save()
            AuditEvent.record(actor, "appointment.moved" if moved else "appointment.edited", self)
        return moved

    def cancel(self, actor):
        """Cancel the appointment; its links stop working."""
        with db.atomic():
            self.status = "cancelled"
            self.updated_at = utcnow()
            self.save()
            AuditEvent.record(actor, "appointment.cancelled", self)

    def approve(self, actor) -> bool:
        """requested → scheduled: staff accept an online booking. False when it was no longer requested."""
        return self._staff_decides(actor, "scheduled", "appointment.approved")

    def decline(self, actor) -> bool:
        """requested → cancelled: staff refuse an online booking; its slot is free again."""
        return self._staff_decides(actor, "cancelled", "appointment.declined")

    def _staff_decides(self, actor, status: str, action: str) -> bool:
        now = utcnow()
        with db.atomic():
            done = Appointment.update(status=status, updated_at=now).where(
                Appointment.id == self.id, Appointment.status == "requested").execute()
            if done:
                self.status, self.updated_at = status, now
                AuditEvent.record(actor, action, self)
        return bool(done)

    def cancel_by_patient(self) -> bool:
        """The patient cancels from their link (the caller checked the notice). False when it was
        no longer requested or scheduled (staff or another tab got there first)."""
        now = utcnow()
        with db.atomic():
            done = Appointment.update(status="cancelled", updated_at=now).where(
                Appointment.id == self.id, Appointment.status.in_(("requested", "scheduled"))).execute()
            if done:
                self.status, self.updated_at = "cancelled", now
                AuditEvent.record("patient", "appointment.cancelled", self, detail="by the patient")
        return bool(done)

    def renew_link(self, actor):
        """Make a new link version, which revokes every older link and cookie (and unlocks it)."""
        with db.atomic():
            self.link_version += 1
            self.identity_failures = 0
            self.updated_at = utcnow()
            self.save()
            AuditEvent.record(actor, "appointment.link_renewed", self)

    def hand_over(self, actor, practitioner) -> None:
        """Give the visit to another practitioner: from now on they, not the previous one, open its
        call and its clinical record. Audited with both practitioners' ids (no patient data)."""
        previous = self.practitioner_id
        with db.atomic():
            self.practitioner, self.updated_at = practitioner, utcnow()
            self.save()
            AuditEvent.record(actor, "appointment.handed_over", self,
                              detail=f"practitioner {previous} -> {practitioner.id}")

    # The patient's way in.

    IDENTITY_TRIES = 3

    @property
    def locked(self) -> bool:
        return self.identity_failures >= self.IDENTITY_TRIES

    @property
    def device_results(self) -> dict:
        """The last device check, e.g. {"camera": "ok", "microphone": "denied", ...}."""
        try:
            return json.loads(self.device_check) if self.device_check else {}
        except ValueError:
            return {}

    @property
    def consented(self) -> bool:
        return self.consent_at is not None and self.consent_version != "declined"

    @property
    def consent_declined(self) -> bool:
        return self.consent_version == "declined"

    @property
    def admitted(self) -> bool:
        """The patient was let in (or the visit is closed): their way in is over and stays as recorded."""
        return self.admitted_at is not None or self.status in ("in_call", "closed")

    def _patient_step(self, action, fields: dict, *conditions, frozen: bool = True) -> bool:
        """Write one step of the way in, audited, if the row still allows it; False when it did not.

        The conditions go into the UPDATE, so what decides is the row in the database, not
        this object, which another request may have made stale: once the patient is admitted
        (``frozen``) identity, consent and device check are never rewritten, whoever asks.
        """
        now = utcnow()
        where = [Appointment.id == self.id, *conditions]
        if frozen:
            where += [Appointment.admitted_at.is_null(), Appointment.status.not_in(("in_call", "closed"))]
        with db.atomic():
            done = Appointment.update(**fields, updated_at=now).where(*where).execute()
            self.__data__.update(Appointment.get_by_id(self.id).__data__)
            self._dirty.clear()
            if done:
                AuditEvent.record("patient", action, self)
        if not done and frozen and self.admitted:
            raise WayInOver(self.id)
        return bool(done)

    def confirm_identity(self) -> bool:
        """Record the identity check; the row keeps the first time, later confirmations are audited only."""
        return self._patient_step("patient.identity_confirmed",
                                  {"identity_confirmed_at": fn.COALESCE(Appointment.identity_confirmed_at, Value(
                                      utcnow(), converter=Appointment.identity_confirmed_at.db_value))},
                                  Appointment.identity_failures < self.IDENTITY_TRIES)

    def fail_identity(self) -> bool:
        """Count a wrong answer; the third locks the link until staff send a new one.

        False when the link was already locked: the answer was not judged.
        """
        return self._patient_step("patient.identity_failed",
                                  {"identity_failures": Appointment.identity_failures + 1},
                                  Appointment.identity_failures < self.IDENTITY_TRIES)

    def give_consent(self, version: str, locale: str) -> bool:
        return self._patient_step("patient.consent_given", {"consent_at": utcnow(), "consent_version": version,
                                                            "consent_locale": locale})

    def decline_consent(self, locale: str) -> bool:
        return self._patient_step("patient.consent_declined", {"consent_at": utcnow(), "consent_version": "declined",
                                                               "consent_locale": locale})

    def record_device_check(self, summary: str) -> bool:
        return self._patient_step("patient.device_checked", {"device_check": summary})

    def choose_locale(self, locale: str) -> bool:
        """The patient's explicit choice, on their pages: this appointment's language, and their
        record's, so that their next appointment starts in it."""
        with db.atomic():
            # Not frozen: the language of pages and messages, never part of the visit's record.
            done = self._patient_step("patient.locale_chosen", {"locale": locale, "locale_source": "patient"},
                                      frozen=False)
            if done and self.patient_id:
                Patient.update(locale=locale).where(Patient.id == self.patient_id).execute()
                self.__rel__.pop("patient", None)       # read the record again when asked
        return done

    def learn_browser_locale(self, locale: str) -> bool:
        """On the patient's first visit, the language their browser asks for becomes the
        appointment's, but only when neither the appointment nor the patient's record has one."""
        if self.locale or (self.patient_id and self.patient.locale):
            return False
        return self._patient_step("patient.locale_detected", {"locale": locale, "locale_source": "browser"},
                                  Appointment.locale == "", frozen=False)

    def set_locale(self, actor, locale: str) -> bool:
        """Staff set (or, with "", clear) the appointment's language; False when it was already that."""
        if locale == self.locale and (not locale or self.locale_source == "staff"):
            return False
        with db.atomic():
            self.locale, self.locale_source, self.updated_at = locale, "staff" if locale else "", utcnow()
            self.save()
            AuditEvent.record(actor, "appointment.language_changed", self)
        return True

    def enter_waiting_room(self):
        """scheduled → waiting; entering again keeps the first arrival time."""
        if self.status == "scheduled":
            self._patient_step("patient.waiting", {"status": "waiting", "waiting_since": utcnow()},
                               Appointment.status == "scheduled")

    # The practitioner's side of the waiting room.

    def admit(self, actor):
        """waiting → in_call."""
        with db.atomic():
            self.status, self.admitted_at, self.updated_at = "in_call", utcnow(), utcnow()
            self.save()
            AuditEvent.record(actor, "appointment.admitted", self)

    def send_back(self, actor, starts_at: datetime):
        """Back to scheduled at a new time; the patient's link stays valid."""
        with db.atomic():
            self.status, self.starts_at, self.waiting_since = "scheduled", starts_at, None
            self.updated_at = utcnow()
            self.save()
            AuditEvent.record(actor, "appointment.sent_back", self)

    def end_call(self, actor) -> bool:
        """in_call → call ended, once: the practitioner hung up, for both sides. False if it had ended.

        The conditional UPDATE makes a second hang-up (another tab, a retry) change nothing.
        """
        now = utcnow()
        with db.atomic():
            done = (Appointment.update(call_ended_at=now, updated_at=now)
                    .where(Appointment.id == self.id, Appointment.call_ended_at.is_null()).execute())
            if not done:
                self.call_ended_at = Appointment.get_by_id(self.id).call_ended_at
                return False
            self.call_ended_at, self.updated_at = now, now
            AuditEvent.record(actor, "call.ended", self)
        return True

    def resume_call(self, actor) -> bool:
        """(call ended) → in_call again: a call ended by mistake. False when it had not ended, was
        closed, or its outcome says it did not end in Cabinet. The caller checks the link's window."""
        now = utcnow()
        with db.atomic():
            done = (Appointment.update(call_ended_at=None, call_end_source="", outcome="", outcome_at=None,
                                       outcome_reason="", resumed_at=now, updated_at=now)
                    .where(Appointment.id == self.id, Appointment.status == "in_call",
                           Appointment.call_ended_at.is_null(False), Appointment.closed_at.is_null(),
                           Appointment.outcome.in_(("", "held"))).execute())
            if done:
                AuditEvent.record(actor, "call.resumed", self)
            self.__data__.update(Appointment.get_by_id(self.id).__data__)
            self._dirty.clear()
        return bool(done)

    def save(self, force_insert=False, only=None):
        """An update writes every field but ``relay_url``, which ``pin_relay`` alone changes: a visit
        loaded before a re-pin and saved after (a hand-over mid-call) must not bring the dead worker back."""
        if only is None and not force_insert and self._pk is not None:
            only = [f for f in self._meta.sorted_fields if f is not Appointment.relay_url]
        return super().save(force_insert=force_insert, only=only)

    @classmethod
    def pin_relay(cls, appointment_id: int, url: str, replacing: str | None = None) -> str | None:
        """Pin the visit to the worker ``url`` if it is still pinned to ``replacing`` (None: to none);
        returns the pin the visit holds afterwards, the other side's choice when it came first.
        One conditional UPDATE: two web processes re-pinning at once cannot part the two sides.
        Technical, not audited (like ``saw_media``)."""
        current = cls.relay_url.is_null() if replacing is None else (cls.relay_url == replacing)
        if cls.update(relay_url=url).where(cls.id == appointment_id, current).execute():
            return url
        return cls.select(cls.relay_url).where(cls.id == appointment_id).scalar()

    def saw_media(self, now: datetime | None = None) -> bool:
        """The relay reports media flowing: kept at most every MEDIA_SEEN_EVERY (technical, not audited)."""
        now = now or utcnow()
        return bool(Appointment.update(media_seen_at=now).where(
            Appointment.id == self.id,
            Appointment.media_seen_at.is_null() | (Appointment.media_seen_at <= now - self.MEDIA_SEEN_EVERY)).execute())

    def last_sign_of_call(self) -> tuple[datetime | None, str]:
        """The best truthful time for the end of a call that ended outside Cabinet, and what it is:
        ("media", the relay last saw media), ("activity", the last chat line, file or incident),
        ("start", only the admission is known), or (None, "") when the patient was never admitted."""
        if self.admitted_at is None:
            return None, ""
        after = self.admitted_at
        activity = [t for t in (
            ChatLine.select(fn.MAX(ChatLine.at)).where(ChatLine.appointment == self).scalar(),
            Document.select(fn.MAX(Document.created_at)).where(Document.appointment == self,
                                                               Document.source == "call").scalar(),
            Incident.select(fn.MAX(Incident.at)).where(Incident.appointment == self, Incident.user.is_null()).scalar(),
        ) if t is not None and t >= after]
        media = self.media_seen_at if self.media_seen_at and self.media_seen_at >= after else None
        latest = max(activity, default=None)
        if media and (latest is None or media >= latest):
            return media, "media"
        if latest:
            return latest, "activity"
        return after, "start"

    def record_outcome(self, actor, outcome: str, at: datetime | None = None, reason: str = "") -> None:
        """Say how the visit ended (audited: recorded or changed). A call still open in the record
        (it ended outside Cabinet) ends at the last sign of it, and says which sign that is."""
        if outcome not in self.OUTCOMES:
            raise ValueError(outcome)
        changed = bool(self.outcome)
        with db.atomic():
            if self.admitted_at is not None and self.call_ended_at is None and outcome != "held":
                self.call_ended_at, self.call_end_source = self.last_sign_of_call()
            self.outcome, self.outcome_at, self.outcome_reason = outcome, at, reason[:300]
            self.updated_at = utcnow()
            self.save()
            AuditEvent.record(actor, "visit.outcome_changed" if changed else "visit.outcome_recorded", self,
                              detail=outcome)

    def leave_note(self, actor, text: str):
        """The practitioner's message to the waiting room (replaces the previous one)."""
        with db.atomic():
            self.waiting_note, self.updated_at = text, utcnow()
            self.save()
            AuditEvent.record(actor, "appointment.waiting_note", self)

    # Closing.

    def close(self, actor) -> bool:
        """in_call (or a past visit) → closed, once: False when another request closed it first.

        The conditional UPDATE is the guard against two tabs or a double submit; call it first
        inside the caller's transaction so the rest of the close rides on the same lock.
        """
        now = utcnow()
        with db.atomic():
            done = (Appointment.update(closed_at=now, closed_by=actor, status="closed", updated_at=now)
                    .where(Appointment.id == self.id, Appointment.closed_at.is_null()).execute())
            if not done:
                return False
            self.closed_at, self.closed_by, self.status, self.updated_at = now, actor, "closed", now
            AuditEvent.record(actor, "appointment.closed", self)
        return True

    @classmethod
    def unclosed(cls, practitioner_ids, now: datetime, limit: int = 500):
        """Visits not closed whose time has passed or that were admitted, oldest first."""
        rows = (cls.select(cls, Patient).join(Patient, join_type=JOIN.LEFT_OUTER, on=(cls.patient == Patient.id))
                .where(cls.practitioner.in_(list(practitioner_ids)), cls.closed_at.is_null(),
                       cls.status.not_in(("cancelled", "closed")),
                       (cls.starts_at < now) | cls.admitted_at.is_null(False))
                .order_by(cls.starts_at, cls.id).limit(limit))
        return [a for a in rows if a.admitted_at is not None or a.ends_at <= now]

    @classmethod
    def for_today(cls, practitioner_ids, start: datetime, end: datetime):
        """The day's live appointments: who waits first (longest first), then by time."""
        rows = list(cls.in_range(practitioner_ids, start, end).where(cls.status != "cancelled"))
        waiting = sorted((a for a in rows if a.status == "waiting"), key=lambda a: a.waiting_since)
        return waiting + [a for a in rows if a.status != "waiting"]


class AuditTrailIsAppendOnly(Exception):
    """Raised on any attempt to change or delete an audit event through the model."""


class AuditEvent(BaseModel):
    """Who did what to which appointment or patient, when, and from where. No patient data in ``detail``.

    The trail is append-only: ``record`` adds events, and no route changes or deletes one.
    ``save()`` of an event already written, ``delete_instance()`` and ``update()`` raise
    ``AuditTrailIsAppendOnly``. The one documented exception is retention: ``purge`` removes
    events older than the retention period with a query-level ``AuditEvent.delete().where(...)``,
    which is deliberately left open. (Deleting an appointment or a patient row also removes its
    events, by the foreign keys' ON DELETE CASCADE: only ``purge`` deletes those rows.) Merging two
    patient records (``Patient.merge``) re-points the merged record's events at the kept one, also by
    query: who did what and when stays as written.
    """
    at = DateTimeField(default=utcnow, index=True)
    user = ForeignKeyField(User, null=True, on_delete="SET NULL")
    actor = CharField(max_length=20)                    # "staff", "patient", "system" or "anonymous"
    action = CharField(max_length=64)
    appointment = ForeignKeyField(Appointment, null=True, on_delete="CASCADE")
    patient = ForeignKeyField(Patient, null=True, on_delete="CASCADE")
    detail = CharField(max_length=200, default="")
    # The client's address as the app sees it: ``request.remote_addr``, which is the proxy's
    # unless werkzeug's ProxyFix is configured to trust its X-Forwarded-For.
    address = CharField(max_length=64, default="")

    @classmethod
    def record(cls, actor, action, appointment=None, patient=None, detail=""):
        """Write one event; ``actor`` is a User, or the string "patient", "system" or "anonymous".
        In a request (a page or a websocket), the client's address is recorded with it."""
        user = actor if isinstance(actor, User) else None
        if appointment is not None and patient is None:
            patient = appointment.patient_id
        address = (request.remote_addr or "")[:64] if has_request_context() else ""
        return cls.create(user=user, actor="staff" if user else str(actor), action=action,
                          appointment=appointment, patient=patient, detail=detail, address=address)

    def save(self, force_insert=False, only=None):
        if self._pk is not None and not force_insert:
            raise AuditTrailIsAppendOnly("an audit event is never changed")
        return super().save(force_insert=force_insert, only=only)

    def delete_instance(self, *args, **kwargs):
        raise AuditTrailIsAppendOnly("an audit event is never deleted (purge removes expired ones by query)")

    @classmethod
    def update(cls, *args, **kwargs):
        raise AuditTrailIsAppendOnly("audit events are never changed")

    @classmethod
    def search(cls, user_id=None, patient_ids=None, appointment_id=None, start=None, end=None):
        """Events matching every given criterion, newest first. ``user_id`` matches what that
        staff member did and the failed sign-ins on their account (``detail`` "user:<id>")."""
        query = cls.select(cls, User, Patient, Appointment).join(User, JOIN.LEFT_OUTER).switch(cls) \
            .join(Patient, JOIN.LEFT_OUTER).switch(cls).join(Appointment, JOIN.LEFT_OUTER).switch(cls)
        if user_id is not None:
            query = query.where((cls.user == user_id) | (cls.detail == f"user:{user_id}"))
        if patient_ids is not None:
            query = query.where(cls.patient.in_(patient_ids))
        if appointment_id is not None:
            query = query.where(cls.appointment == appointment_id)
        if start is not None:
            query = query.where(cls.at >= start)
        if end is not None:
            query = query.where(cls.at < end)
        return query.order_by(cls.at.desc(), cls.id.desc())


class RecoveryCode(BaseModel):
    """One of a user's one-time recovery codes, kept only as an argon2 hash."""
    user = ForeignKeyField(User, backref="recovery_codes", on_delete="CASCADE")
    code_hash = CharField(max_length=200)
    used_at = DateTimeField(null=True)

    @classmethod
    def unused(cls, user):
        return cls.select().where(cls.user == user, cls.used_at.is_null())

    def use(self) -> bool:
        """Spend this code; False if another request spent it first."""
        return bool(RecoveryCode.update(used_at=utcnow()).where(
            RecoveryCode.id == self.id, RecoveryCode.used_at.is_null()).execute())


class BookingRequest(BaseModel):
    """A booking started on the public page (schema 16): the slot and the details typed, waiting for
    the one-time code sent to the e-mail address or mobile given. The code is kept only as an HMAC;
    the row is found by its random ``token`` (in the confirmation page's address). Once confirmed
    it points at the appointment and its details are blanked; unconfirmed ones are deleted a day
    after they expire."""
    CODE_MINUTES = 10
    MAX_TRIES = 5

    token = CharField(max_length=32, unique=True, default=new_ref)
    practice = ForeignKeyField(Practice, on_delete="CASCADE")
    practitioner = ForeignKeyField(User, on_delete="CASCADE")
    visit_type = ForeignKeyField(VisitType, on_delete="CASCADE")
    starts_at = DateTimeField()                          # UTC
    first_name = CharField(max_length=100, default="")
    last_name = CharField(max_length=100, default="")
    birth_date = DateField(null=True)
    email = CharField(max_length=254, default="")
    phone = CharField(max_length=20, default="")
    locale = CharField(max_length=16, default="")
    locale_source = CharField(max_length=10, default="")
    channel = CharField(max_length=8, default="email")  # where the code went: "email" or "sms"
    code_hash = CharField(max_length=64, default="")
    tries = IntegerField(default=0)
    expires_at = DateTimeField(index=True)
    created_at = DateTimeField(default=utcnow)
    confirmed_at = DateTimeField(null=True)
    appointment = ForeignKeyField(Appointment, null=True, on_delete="SET NULL")

    @property
    def tries_left(self) -> int:
        return max(0, self.MAX_TRIES - self.tries)

    def spend_try(self, now: datetime) -> bool:
        """Count one try at the code, if any is left and the code is still valid; False otherwise.
        The condition is in the UPDATE: two guesses at once cannot both take the last try."""
        done = BookingRequest.update(tries=BookingRequest.tries + 1).where(
            BookingRequest.id == self.id, BookingRequest.tries < self.MAX_TRIES, BookingRequest.expires_at > now,
            BookingRequest.confirmed_at.is_null()).execute()
        self.tries = BookingRequest.get_by_id(self.id).tries
        return bool(done)

    def claim(self, now: datetime) -> bool:
        """The right code: take the request for confirming, once (a double submit confirms nothing twice)."""
        done = BookingRequest.update(confirmed_at=now).where(
            BookingRequest.id == self.id, BookingRequest.confirmed_at.is_null()).execute()
        if done:
            self.confirmed_at = now
        return bool(done)

    def done(self, appointment) -> None:
        """Confirmed: keep the appointment, forget the details (the record and the appointment hold them)."""
        BookingRequest.update(appointment=appointment, first_name="", last_name="", birth_date=None, email="",
                              phone="", code_hash="").where(BookingRequest.id == self.id).execute()
        self.appointment = appointment


class Message(BaseModel):
    """One e-mail or SMS in the outbox. Never deleted on failure: retried, then shown to staff."""
    appointment = ForeignKeyField(Appointment, backref="messages", null=True, on_delete="CASCADE")
    channel = CharField(max_length=8)                   # "email" or "sms"
    kind = CharField(max_length=20)                     # invitation, reminder, link_resent, moved, cancelled, closed,
    #                                                     missed (a no-show, only when staff choose to tell)
    recipient = CharField(max_length=254)
    locale = CharField(max_length=16, default="fr")
    subject = CharField(max_length=200, default="")
    body = TextField(default="")
    html = TextField(default="")
    ics = TextField(default="")
    status = CharField(max_length=8, default="pending", index=True)   # pending, sent, failed
    attempts = IntegerField(default=0)
    last_error = CharField(max_length=300, default="")
    next_attempt_at = DateTimeField(default=utcnow, index=True)
    dedupe_key = CharField(max_length=100, null=True, unique=True)  # e.g. one reminder per time and link version
    created_at = DateTimeField(default=utcnow)
    sent_at = DateTimeField(null=True)
    # With the "outbox" SMS backend, "sent" means handed to staff: they copy the text into a phone.
    copied_at = DateTimeField(null=True)

    @classmethod
    def sms_to_copy(cls, practice):
        """SMS waiting for staff to copy and send (the "outbox" backend), oldest first."""
        return (cls.select(cls, Appointment).join(Appointment)
                .where(Appointment.practice == practice, cls.channel == "sms", cls.status == "sent",
                       cls.copied_at.is_null())
                .order_by(cls.created_at, cls.id))

    def mark_copied(self, actor) -> bool:
        """Staff copied this SMS into a phone and sent it; False when someone already had."""
        now = utcnow()
        with db.atomic():
            done = Message.update(copied_at=now).where(Message.id == self.id, Message.copied_at.is_null()).execute()
            if done:
                self.copied_at = now
                AuditEvent.record(actor, "message.copied", self.appointment, detail=f"{self.kind}:sms")
        return bool(done)


# The call (schema 3).

class ChatLine(BaseModel):
    """One chat line of a visit, saved before anyone else sees it."""
    appointment = ForeignKeyField(Appointment, backref="chat_lines", on_delete="CASCADE")
    author = CharField(max_length=20)                  # "practitioner" or "patient"
    user = ForeignKeyField(User, null=True, on_delete="SET NULL")
    text = TextField()
    at = DateTimeField(default=utcnow, index=True)

    @classmethod
    def of(cls, appointment):
        return cls.select().where(cls.appointment == appointment).order_by(cls.at, cls.id)


class Document(BaseModel):
    """A file of a visit: exchanged during the call, sent at closing, or the PDF report.

    The bytes live in the document store (``webapp.storage``), encrypted, under ``storage_key``.
    """
    appointment = ForeignKeyField(Appointment, backref="documents", on_delete="CASCADE")
    source = CharField(max_length=12)                  # "call", "closing" or "report"
    kind = CharField(max_length=20, default="other")   # prescription, other, report, patient_report
    author = CharField(max_length=20)                  # "practitioner", "patient" or "system"
    user = ForeignKeyField(User, null=True, on_delete="SET NULL")
    filename = CharField(max_length=200)               # cleaned, for display and download
    content_type = CharField(max_length=100)
    size = IntegerField()
    sha256 = CharField(max_length=64)
    storage_key = CharField(max_length=100, unique=True)
    locale = CharField(max_length=16, default="")      # for reports: the language it is written in
    created_at = DateTimeField(default=utcnow, index=True)

    @classmethod
    def of(cls, appointment):
        return cls.select().where(cls.appointment == appointment).order_by(cls.created_at, cls.id)

    @classmethod
    def for_patient(cls, appointment, call_only: bool = False):
        """What the visit's patient may download, the one rule for every patient route: never the
        practice's copy of the report; through the call's page (``call_only``), only the call's files."""
        query = cls.of(appointment).where(cls.kind != "report")
        return query.where(cls.source == "call") if call_only else query


class Incident(BaseModel):
    """A technical incident of a call, for the traceability record."""
    appointment = ForeignKeyField(Appointment, backref="incidents", on_delete="CASCADE")
    at = DateTimeField(default=utcnow, index=True)
    kind = CharField(max_length=32)      # connection_failed, reconnecting, media_stall, relay_lost, ... or "note"
    role = CharField(max_length=20, default="")        # whose connection: "practitioner", "patient" or ""
    detail = CharField(max_length=300, default="")     # technical words only, never patient data
    user = ForeignKeyField(User, null=True, on_delete="SET NULL")   # set when staff added it by hand

    @classmethod
    def of(cls, appointment):
        return cls.select().where(cls.appointment == appointment).order_by(cls.at, cls.id)


# Closing a visit (schema 4).

class Act(BaseModel):
    """An act of the practice's catalogue, e.g. TC (teleconsultation), with its default fee."""
    practice = ForeignKeyField(Practice, backref="acts", on_delete="CASCADE")
    code = CharField(max_length=16)
    label = CharField(max_length=200)
    fee_cents = IntegerField(default=0)
    profession = CharField(max_length=20, default="")  # "doctor", "nurse", ... ("" for any)
    active = BooleanField(default=True)

    class Meta:
        indexes = ((("practice", "code"), True),)

    # The French teleconsultation codes (NGAP), as the health insurance (Assurance maladie) lists them:
    # doctors bill TCG (general practitioner) or TC (other specialists; their usual majorations are
    # added by hand); nurses bill accompanying the patient through a teleconsultation: during care
    # already planned (TLS), in a place set up for teleconsultations (TLL) or at home on a visit made
    # for it (TLD). Fees are the national tariffs as known when seeded (2025): defaults only, which
    # the practice's administrator corrects on the catalogue page when the tariffs change.
    SEED = (
        ("TC", "Téléconsultation du médecin spécialiste", 2500, "doctor"),
        ("TCG", "Téléconsultation du médecin généraliste", 2500, "doctor"),
        ("TLD", "Accompagnement infirmier d'une téléconsultation, à domicile (déplacement dédié)", 1500, "nurse"),
        ("TLS", "Accompagnement infirmier d'une téléconsultation, lors d'un soin prévu", 1000, "nurse"),
        ("TLL", "Accompagnement infirmier d'une téléconsultation, dans un lieu dédié", 1200, "nurse"),
    )

    @classmethod
    def seed(cls, practice) -> int:
        """Add the seed codes the practice lacks; return how many were added."""
        have = {a.code for a in cls.select(cls.code).where(cls.practice == practice)}
        rows = [{"practice": practice, "code": code, "label": label, "fee_cents": fee, "profession": who}
                for code, label, fee, who in cls.SEED if code not in have]
        if rows:
            cls.insert_many(rows).on_conflict_ignore().execute()
        return len(rows)

    @classmethod
    def catalogue(cls, practice, active_only: bool = False):
        """The practice's acts by code, seeded the first time a practice without any needs them."""
        if not cls.select().where(cls.practice == practice).exists():
            with db.atomic():
                cls.seed(practice)
        query = cls.select().where(cls.practice == practice)
        if active_only:
            query = query.where(cls.active)
        return query.order_by(cls.code)


class VisitAct(BaseModel):
    """An act coded for a visit; code, label and fee are copied so later catalogue edits change nothing."""
    appointment = ForeignKeyField(Appointment, backref="acts", on_delete="CASCADE")
    act = ForeignKeyField(Act, null=True, on_delete="SET NULL")
    code = CharField(max_length=16)
    label = CharField(max_length=200)
    fee_cents = IntegerField()
    created_at = DateTimeField(default=utcnow)


class Report(BaseModel):
    """The practitioner's report of a visit; frozen at closing, addenda after."""
    appointment = ForeignKeyField(Appointment, backref="reports", unique=True, on_delete="CASCADE")
    findings = TextField(default="")
    decisions = TextField(default="")
    prescriptions = TextField(default="")
    updated_at = DateTimeField(default=utcnow)
    frozen_at = DateTimeField(null=True)


class Addendum(BaseModel):
    """A note added to a closed visit's report, with its own time and author."""
    appointment = ForeignKeyField(Appointment, backref="addenda", on_delete="CASCADE")
    user = ForeignKeyField(User, null=True, on_delete="SET NULL")
    text = TextField()
    at = DateTimeField(default=utcnow)


class Waiver(BaseModel):
    """A checklist item the practitioner chose not to do, and why."""
    appointment = ForeignKeyField(Appointment, backref="waivers", on_delete="CASCADE")
    item = CharField(max_length=20)      # report, documents, acts, payment
    reason = CharField(max_length=300)
    user = ForeignKeyField(User, null=True, on_delete="SET NULL")
    at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("appointment", "item"), True),)


class Payment(BaseModel):
    """A payment request of a visit. ``provider`` names the backend (``offline`` by default)."""
    appointment = ForeignKeyField(Appointment, backref="payments", on_delete="CASCADE")
    amount_cents = IntegerField()
    currency = CharField(max_length=3, default="EUR")
    status = CharField(max_length=10, default="requested", index=True)   # requested, paid, waived, cancelled
    provider = CharField(max_length=20, default="offline")
    provider_ref = CharField(max_length=100, default="")
    note = CharField(max_length=300, default="")
    requested_at = DateTimeField(default=utcnow, index=True)
    paid_at = DateTimeField(null=True)
    updated_by = ForeignKeyField(User, null=True, on_delete="SET NULL")


class SchemaVersion(BaseModel):
    version = IntegerField(primary_key=True)
    applied_at = DateTimeField(default=utcnow)


MODELS = [Practice, User, Patient, Appointment, AuditEvent, Message, ChatLine, Document, Incident,
          Act, VisitAct, Report, Addendum, Waiver, Payment, RecoveryCode, WeeklyHours, HoursException, VisitType,
          BookingRequest]
