"""Database binding and numbered migrations, applied at start-up.

A database is never edited by hand: each schema change is a function appended
to ``MIGRATIONS``; ``migrate()`` applies the ones not yet recorded, each in
its own transaction.
"""
from __future__ import annotations

from pathlib import Path

from peewee import SQL, BooleanField, CharField, DateTimeField, ForeignKeyField, IntegerField, TextField
from playhouse.db_url import connect
from playhouse.migrate import SchemaMigrator, migrate as apply

from .models import (
    Act, Addendum, Appointment, BookingRequest, AuditEvent, ChatLine, Document, Incident, Message, Patient, Payment, Practice,
    RecoveryCode, Report, SchemaVersion, User, VisitAct, VisitType, Waiver, WeeklyHours, HoursException, db,
)
from .private_files import create_once

SQLITE_PRAGMAS = {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 10000}


def add_missing_columns(database, model, fields: dict):
    """Add the columns a table lacks. A new database already has them (its tables are
    created from the current models), so such a migration only fills in older ones; a table an
    old database lacks altogether is created whole.

    A NOT NULL column with a constant default is added by one ALTER carrying the default in SQL:
    without it, SQLite adds the column nullable and then rebuilds the table to make it NOT NULL,
    which renames the table and fails when another table's foreign key names one the database lacks."""
    table = model._meta.table_name
    if not database.table_exists(table):
        database.create_tables([model])
        return
    present = {column.name for column in database.get_columns(table)}
    migrator = SchemaMigrator.from_database(database)
    steps = []
    for name, field in fields.items():
        if name in present:
            continue
        default = _sql_default(field)
        if default is not None:
            field = field.clone()
            field.constraints = [*(field.constraints or ()), SQL(f"DEFAULT {default}")]
        steps.append(migrator.add_column(table, name, field, allow_not_null=default is not None))
    if steps:
        apply(*steps)


def _sql_default(field) -> str | None:
    """The SQL literal of a NOT NULL field's constant default, or None (nullable, none, or computed)."""
    value = field.default
    if field.null or value is None or callable(value):
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return None


def _initial(database):
    # VisitType first: a new database's appointments are created whole, with their visit type's foreign
    # key, which PostgreSQL refuses to point at a table that does not exist yet.
    database.create_tables([Practice, User, Patient, VisitType, Appointment, AuditEvent])


def _patient_way_in(database):
    """Notification channels, the patient's way in, the waiting room, and the outbox."""
    add_missing_columns(database, Appointment, {
        "notify_email": BooleanField(default=True),
        "notify_sms": BooleanField(default=True),
        "identity_failures": IntegerField(default=0),
        "identity_confirmed_at": DateTimeField(null=True),
        "consent_at": DateTimeField(null=True),
        "consent_version": CharField(max_length=32, default=""),
        "consent_locale": CharField(max_length=16, default=""),
        "device_check": TextField(default=""),
        "waiting_since": DateTimeField(null=True),
        "waiting_note": CharField(max_length=300, default=""),
        "admitted_at": DateTimeField(null=True),
    })
    database.create_tables([Message])


def _call(database):
    """The call: chat lines, files, incidents, and when the call ended."""
    add_missing_columns(database, Practice, {"max_upload_mb": IntegerField(default=10)})
    add_missing_columns(database, Appointment, {"call_ended_at": DateTimeField(null=True)})
    database.create_tables([ChatLine, Document, Incident])


def _closing(database):
    """Closing a visit: act catalogue, coded acts, report and addenda, waivers, payments."""
    add_missing_columns(database, Practice, {
        "payment_presets": CharField(max_length=200, default="2500,3000,1500"),
        "payment_instructions": TextField(default=""),
    })
    add_missing_columns(database, Appointment, {
        "closed_at": DateTimeField(null=True),
        "closed_by_id": ForeignKeyField(User, null=True, on_delete="SET NULL", field=User.id),
    })
    database.create_tables([Act, VisitAct, Report, Addendum, Waiver, Payment])
    for practice in Practice.select(Practice.id):     # only the columns this step knows exist
        Act.seed(practice)


def _site_address(database):
    """The site's address as the practice learnt it, for links built without a request."""
    add_missing_columns(database, Practice, {"site_url": CharField(max_length=300, default="")})


def _sms_copied(database):
    """Outbox SMS that staff copied and sent, so the list of those still to send stays short."""
    add_missing_columns(database, Message, {"copied_at": DateTimeField(null=True)})


def _share_records(database):
    """Whether the practice's practitioners read each other's clinical records (off: each their own)."""
    add_missing_columns(database, Practice, {"share_records": BooleanField(default=False)})


def _sessions_and_second_factor(database):
    """Sessions that can be ended server-side, and the TOTP second factor with its recovery codes."""
    database.create_tables([User])      # no-op where it exists: a partial old schema may lack it
    add_missing_columns(database, User, {
        "session_version": IntegerField(default=1),
        "second_factor_required": BooleanField(null=True),
        "totp_secret": CharField(max_length=64, default=""),
        "totp_last_step": IntegerField(default=0),
        "totp_enrolled_at": DateTimeField(null=True),
    })
    database.create_tables([RecoveryCode])


def _audit_address(database):
    """Audit events say from where: the client's address."""
    database.create_tables([AuditEvent])      # safe: only where an old database lacks the table
    add_missing_columns(database, AuditEvent, {"address": CharField(max_length=64, default="")})


def _visit_outcomes(database):
    """Every visit ends with an outcome: how it ended, when the relay last saw media, and resumes."""
    add_missing_columns(database, Appointment, {
        "call_end_source": CharField(max_length=12, default=""),
        "media_seen_at": DateTimeField(null=True),
        "resumed_at": DateTimeField(null=True),
        "outcome": CharField(max_length=12, default=""),
        "outcome_at": DateTimeField(null=True),
        "outcome_reason": CharField(max_length=300, default=""),
    })


def _patient_record(database):
    """The patient record: the social-security number (NIR), and records merged into another."""
    if not database.table_exists(Patient._meta.table_name):      # an old database may lack it
        database.create_tables([Patient])
    add_missing_columns(database, Patient, {
        "nir": CharField(max_length=15, default=""),
        "merged_into_id": ForeignKeyField(Patient, null=True, on_delete="CASCADE", field=Patient.id),
        "merged_at": DateTimeField(null=True),
    })


def _practitioner_profile(database):
    """A practitioner's profession, specialty, RPPS and health-insurance numbers, practice address
    and phone, and signature image (kept in the document store), for the prescriptions they sign."""
    add_missing_columns(database, User, {
        "profession": CharField(max_length=20, default=""),
        "specialty": CharField(max_length=100, default=""),
        "rpps": CharField(max_length=11, default=""),
        "am_number": CharField(max_length=9, default=""),
        "practice_address": TextField(default=""),
        "practice_phone": CharField(max_length=20, default=""),
        "signature_key": CharField(max_length=100, default=""),
        "signature_type": CharField(max_length=20, default=""),
    })
    _correct_seeded_acts(database)


# Seed rows as migration 4 wrote them -> as corrected in schema 12 (see Act.SEED).
_SEED_CORRECTIONS = {
    "TC": (("Téléconsultation", 2500), ("Téléconsultation du médecin spécialiste", 2500)),
    "TCG": (("Téléconsultation du médecin généraliste", 3000),
            ("Téléconsultation du médecin généraliste", 2500)),
    "TLD": (("Télésoin infirmier : accompagnement d'une téléconsultation à domicile", 1500),
            ("Accompagnement infirmier d'une téléconsultation, à domicile (déplacement dédié)", 1500)),
    "TLS": (("Télésoin infirmier : accompagnement d'une téléconsultation lors d'un soin", 1000),
            ("Accompagnement infirmier d'une téléconsultation, lors d'un soin prévu", 1000)),
    "TLL": (("Télésoin infirmier : accompagnement d'une téléconsultation dans un lieu dédié", 1200),
            ("Accompagnement infirmier d'une téléconsultation, dans un lieu dédié", 1200)),
}


def _correct_seeded_acts(database):
    """The first seed priced TCG above the 25 € of a teleconsultation and called the nurses' acts
    of accompanying a teleconsultation "télésoin": rows still exactly as seeded are corrected; an
    act an administrator edited is theirs and stays as it is."""
    if not database.table_exists(Act._meta.table_name):      # a partial old schema may lack it
        return
    for code, ((old_label, old_fee), (label, fee)) in _SEED_CORRECTIONS.items():
        (Act.update(label=label, fee_cents=fee)
         .where(Act.code == code, Act.label == old_label, Act.fee_cents == old_fee).execute())


def _appointment_language(database):
    """Who chose the appointment's language: the patient, staff, or the patient's browser."""
    add_missing_columns(database, Appointment, {"locale_source": CharField(max_length=10, default="")})


def _availability(database):
    """Opening hours, their exceptions and visit types; the practice's online-booking switch and the
    notice patients give to cancel or move; the visit type an appointment was booked as."""
    add_missing_columns(database, Practice, {
        "online_booking": BooleanField(default=False),
        "patient_change_notice_hours": IntegerField(default=24),
    })
    database.create_tables([WeeklyHours, HoursException, VisitType])
    add_missing_columns(database, Appointment, {
        "visit_type_id": ForeignKeyField(VisitType, null=True, on_delete="SET NULL", field=VisitType.id),
    })


def _calendar_feed(database):
    """A practitioner's calendar feed: whether it is on, the version its address must carry, and
    whether it names patients."""
    add_missing_columns(database, User, {
        "feed_version": IntegerField(default=0),
        "feed_on": BooleanField(default=False),
        "feed_details": BooleanField(default=False),
    })


def _online_booking(database):
    """Patients book online: the booking waiting for its code, the records staff check, and which
    appointments patients booked themselves."""
    add_missing_columns(database, Patient, {"needs_check": BooleanField(default=False)})
    add_missing_columns(database, Appointment, {"booked_online": BooleanField(default=False)})
    database.create_tables([BookingRequest])


def _relay_pin(database):
    """The relay worker a visit is pinned to (``RELAY_URLS``): every web process routes both sides there."""
    add_missing_columns(database, Appointment, {"relay_url": CharField(max_length=200, null=True)})


MIGRATIONS = [
    (1, _initial),
    (2, _patient_way_in),
    (3, _call),
    (4, _closing),
    (5, _site_address),
    (6, _sms_copied),
    (7, _share_records),
    (8, _sessions_and_second_factor),
    (9, _audit_address),
    (10, _visit_outcomes),
    (11, _patient_record),
    (12, _practitioner_profile),
    (13, _appointment_language),
    (14, _availability),
    (15, _calendar_feed),
    (16, _online_booking),
    (17, _relay_pin),
]


def open_database(url: str):
    """A peewee database for ``DATABASE_URL``; SQLite gets WAL, full sync and foreign keys, and a
    file made 0600 (SQLite gives its -wal and -shm files the database file's mode)."""
    if url.startswith("sqlite"):
        # check_same_thread off: under gevent, ``cooperative.offload`` lends a waiting greenlet's
        # connection to a pool thread (peewee still gives each thread or greenlet its own).
        database = connect(url, pragmas=SQLITE_PRAGMAS, check_same_thread=False)
        if database.database != ":memory:":
            _private_file(Path(database.database))
        return database
    return connect(url)


def _private_file(path: Path) -> None:
    if not path.exists():
        create_once(path)


def migrate(database=db) -> list[int]:
    """Apply pending migrations; return the versions applied."""
    with database.connection_context():
        database.create_tables([SchemaVersion])
        done = {row.version for row in SchemaVersion.select()}
        applied = []
        for version, step in MIGRATIONS:
            if version in done:
                continue
            with database.atomic():
                step(database)
                SchemaVersion.create(version=version)
            applied.append(version)
        return applied


def schema_version(database=db) -> int:
    return max((r.version for r in SchemaVersion.select()), default=0)


def init_app(app):
    """Bind the proxy, migrate, and connect per request."""
    db.initialize(open_database(app.config["DATABASE_URL"]))
    migrate()

    @app.before_request
    def _connect():
        db.connect(reuse_if_open=True)

    @app.teardown_appcontext
    def _close(exc):
        if not db.is_closed():
            db.close()
