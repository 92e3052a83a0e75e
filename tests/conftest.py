"""Fixtures: an app on a fresh database (SQLite, or PostgreSQL with TEST_DATABASE_URL), clients, factories."""
from __future__ import annotations

import datetime as dt
import functools
import os
import re
import shutil
import tempfile
import threading

import jinja2
import pytest
import simple_websocket
import time_machine
from werkzeug.routing import Rule

from browser import live_server
from webapp.access import link_expires_at, patient_link_url
from webapp.app import create_app
from webapp.auth import hash_password, staff_session
from webapp.tokens import make_patient_cookie
from webapp.models import MODELS, Appointment, Patient, Practice, User, db, utcnow

PASSWORD = "correct horse battery"
# Hashing is deliberately slow; the tests share one hash.
_HASH = hash_password(PASSWORD)


# Every test starts at the same instant, whatever the day or hour it runs: a Tuesday, 10:00 in
# Paris, months from any daylight-saving change, far enough ahead that cookies and relay tickets
# signed by this clock are still valid for the browser and worker processes, which keep the real one,
# and before 2038, past which pytz (under flask-babel) no longer knows daylight-saving time.
# The clock ticks from there, so waits and timeouts behave as usual.
FROZEN_AT = dt.datetime(2036, 6, 10, 8, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(autouse=True)
def clock(request):
    """The frozen clock (``clock.shift(...)`` moves it); a test can ``travel`` elsewhere itself.

    Tests marked ``real_clock`` keep the machine's: media between aiortc in this process and a
    worker process compare certificate and RTCP times across the two clocks.
    """
    if request.node.get_closest_marker("real_clock"):
        yield None
        return
    with time_machine.travel(FROZEN_AT, tick=True) as traveller:
        yield traveller


_FRESH_SCHEMA = {}      # per database URL: the fingerprint of a freshly migrated schema


def _schema_fingerprint(database) -> tuple:
    """Tables, columns, indexes and migrations applied: what a test could have changed in the schema."""
    columns = database.execute_sql(
        "SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY 1, 2").fetchall()
    indexes = database.execute_sql(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1").fetchall()
    versions = database.execute_sql("SELECT version FROM schemaversion ORDER BY 1").fetchall() \
        if any(c[0] == "schemaversion" for c in columns) else ()
    return tuple(columns), tuple(indexes), tuple(versions)


def _reset_postgres(url):
    """An empty database for the next test. Emptying the tables of an untouched schema is several times
    faster than dropping it and migrating again; a test that altered the schema (a migration test)
    gets the full drop, and the next app migrates from nothing."""
    from playhouse.db_url import connect
    database = connect(url)
    with database.connection_context():
        fresh = _FRESH_SCHEMA.get(url)
        if fresh is not None and _schema_fingerprint(database) == fresh:
            tables = [t for t in database.get_tables() if t != "schemaversion"]
            database.execute_sql("TRUNCATE %s RESTART IDENTITY CASCADE" % ", ".join(f'"{t}"' for t in tables))
        else:
            database.execute_sql("DROP SCHEMA public CASCADE")
            database.execute_sql("CREATE SCHEMA public")
            _FRESH_SCHEMA.pop(url, None)
    database.close()


def _remember_fresh_schema(url):
    if url.startswith("postgres") and url not in _FRESH_SCHEMA:
        from playhouse.db_url import connect
        database = connect(url)
        with database.connection_context():
            _FRESH_SCHEMA[url] = _schema_fingerprint(database)
        database.close()


_MIGRATED_SQLITE = []    # a freshly migrated SQLite file, made once per test process


def _migrated_sqlite_copy(path) -> None:
    """Put a copy of a freshly migrated SQLite database at ``path``: migrating from nothing costs
    more than the rest of an app's start, and most tests need only its result. Migrations are
    tested from nothing on their own (test_site)."""
    if not _MIGRATED_SQLITE:
        folder = tempfile.mkdtemp(prefix="cabinet-migrated-")
        template = os.path.join(folder, "test.sqlite3")
        create_app({"TESTING": True, "INSTANCE_PATH": os.path.join(folder, "instance"),
                    "ENV": {"DATABASE_URL": f"sqlite:///{template}", "SECRET_KEY": "test-secret"}})
        db.close()
        _MIGRATED_SQLITE.append(template)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_MIGRATED_SQLITE[0], path)


class CompiledTemplates(jinja2.BytecodeCache):
    """The templates' compiled code, kept across the apps of one test run.

    Each test makes its own app, and each app's Jinja environment used to lex, parse and compile
    every template it rendered again: a fifth of a form test's time. Jinja checks each entry
    against its template's source (a checksum), so an edited template is compiled anew."""

    def __init__(self):
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


COMPILED_TEMPLATES = CompiledTemplates()


def _clients_read_on_daemon_threads() -> None:
    """A websocket client a test opens runs its reader on a thread of the test's main thread, so
    not a daemon: one the server never closes (a test that failed before closing it, a server
    thread that died) kept pytest from exiting after its summary, and CI ran into its time limit.
    The tests' clients read on daemon threads."""
    opened = simple_websocket.Client.__init__

    def on_a_daemon_thread(self, *args, thread_class=None, **kwargs):
        opened(self, *args, thread_class=thread_class or functools.partial(threading.Thread, daemon=True), **kwargs)
    simple_websocket.Client.__init__ = on_a_daemon_thread


_clients_read_on_daemon_threads()


def _build_when_first_asked(compile_builder):
    """werkzeug compiles two URL builders (generated Python code) for every rule as the app is
    made: ~130 rules, 50 ms of each test's 57 ms of making its app, though a test builds a
    handful of URLs. In the tests a rule's builder is compiled the first time it builds one."""
    def compile_later(rule, append_unknown=True):
        built = None

        def build(self, *args, **kwargs):
            nonlocal built
            if built is None:
                built = compile_builder(rule, append_unknown)
            return built(self, *args, **kwargs)
        return build
    return compile_later


Rule._compile_builder = _build_when_first_asked(Rule._compile_builder)


def make_app(tmp_path, **overrides):
    url = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'test.sqlite3'}"
    if url.startswith("postgres"):
        _reset_postgres(url)
    elif "ENV" not in overrides and not (tmp_path / "test.sqlite3").exists():
        _migrated_sqlite_copy(tmp_path / "test.sqlite3")
    config = {"TESTING": True, "INSTANCE_PATH": str(tmp_path / "instance"), "WTF_CSRF_ENABLED": False,
              "RATELIMIT_ENABLED": False, "ENV": {"DATABASE_URL": url, "SECRET_KEY": "test-secret",
                                                  "PUBLIC_URL": "https://cabinet.test"}}
    config.update(overrides)
    app = create_app(config)
    app.jinja_env.bytecode_cache = COMPILED_TEMPLATES
    _remember_fresh_schema(url)
    return app


@pytest.fixture
def app(tmp_path):
    """The app on a fresh database with its practice. No app context stays pushed: each request
    gets its own, as in production (a shared one would carry ``g`` from request to request)."""
    app = make_app(tmp_path)
    make_practice()
    yield app
    if not db.is_closed():
        db.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


# Factories.

def make_practice(**fields):
    existing = Practice.select().first()
    if existing:
        return existing
    # English by default so assertions read like the source; French tests say so.
    return Practice.create(**{"name": "Cabinet des Tilleuls", "timezone": "Europe/Paris", "default_locale": "en",
                              **fields})


_counter = iter(range(1, 10**6))


def make_user(role="practitioner", **fields):
    n = next(_counter)
    defaults = {"practice": make_practice(), "email": f"{role}{n}@cabinet.example.org", "name": f"{role.title()} {n}",
                "role": role, "password_hash": _HASH, "locale": "en"}
    return User.create(**{**defaults, **fields})


def make_patient(**fields):
    n = next(_counter)
    defaults = {"practice": make_practice(), "first_name": "Jeanne", "last_name": f"Patient{n}",
                "birth_date": dt.date(1970, 5, 17), "email": f"patient{n}@example.org",
                "phone": "+33612345678", "locale": "en"}
    return Patient.create(**{**defaults, **fields})


def make_appointment(practitioner=None, patient=..., starts_in=dt.timedelta(hours=2), **fields):
    """An appointment; ``patient=None`` makes an instant visit's, with contact details only."""
    practitioner = practitioner or make_user("practitioner")
    patient = make_patient() if patient is ... else patient
    defaults = {"practice": make_practice(), "practitioner": practitioner, "patient": patient,
                "contact_email": patient.email if patient else "", "contact_phone": patient.phone if patient else "",
                "starts_at": (utcnow() + starts_in).replace(second=0, microsecond=0),
                "duration_minutes": 20, "motive": "Suivi", "locale": patient.locale if patient else ""}
    return Appointment.create(**{**defaults, **fields})


def login_as(client, user_or_role="practitioner", **fields):
    """Sign a test client in as an existing user, or as a new one of that role."""
    user = make_user(user_or_role, **fields) if isinstance(user_or_role, str) else user_or_role
    with client.session_transaction() as session:
        session.update(signed_in(user))
    return user


def signed_in(user) -> dict:
    """A fully signed-in staff session of ``user`` (password and second factor both done), as the
    login pages leave it; tests that make a session cookie themselves dump this."""
    return staff_session(user, second_factor_done=True)


def holding_link(app, appt):
    """A test client that opened the patient's link of ``appt`` (so holds its cookie)."""
    client = app.test_client()
    with app.test_request_context():
        link = patient_link_url(appt).replace("https://cabinet.test", "")
    response = client.get(link)
    assert response.status_code == 302, response.status_code
    return client


@pytest.fixture
def served_visit(tmp_path):
    """The app on a live loopback server, with a practitioner's visit in 5 minutes: the patient's
    cookie and the practitioner's session cookie for websocket clients."""
    app = make_app(tmp_path)
    with app.app_context():
        make_practice()
        doctor = make_user("practitioner")
        appt = make_appointment(practitioner=doctor, starts_in=dt.timedelta(minutes=5))
        cookie = make_patient_cookie("test-secret", appt.id, appt.link_version, link_expires_at(appt))
        session = app.session_interface.get_signing_serializer(app).dumps(signed_in(doctor))
        db.close()
    with live_server(app) as url:
        yield {"url": url, "ws": url.replace("http", "ws", 1), "appt": appt, "cookie": cookie, "session": session,
               "doctor": doctor}


HX = {"HX-Request": "true"}


def text_of(response) -> str:
    """The visible text of an HTML response, tags removed, spaces folded."""
    html = response.get_data(as_text=True)
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


@pytest.fixture(scope="session", autouse=True)
def compiled_catalogues():
    """Tests read the .po files as they are now, never a stale .mo.

    make test runs two pytest processes on the same tree: one's start rewrote every .mo while the
    other's tests read them, and a test read an empty catalogue ("unpack requires a buffer of 4
    bytes"). A catalogue is written only when it changed, whole, then renamed over the old one."""
    import io
    from pathlib import Path
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    for po in (Path(__file__).resolve().parent.parent / "translations").glob("*/LC_MESSAGES/messages.po"):
        with po.open("rb") as fh:
            catalog = read_po(fh)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.read_bytes() == compiled.getvalue():
            continue
        partial = mo.with_name(f"messages.mo.{os.getpid()}")
        partial.write_bytes(compiled.getvalue())
        os.replace(partial, mo)


@pytest.fixture(autouse=True)
def own_socket_slots(monkeypatch):
    """Each test's server counts its own open sockets. Users' ids start again at 1 in every test's
    database, and a socket an earlier test left open gave its slot back whenever its client was
    collected: in the middle of another test's count of the same "staff:1" (the staff cap test let
    a fifth socket in, once). A handler keeps the counter it took its slot from."""
    from webapp import events
    monkeypatch.setattr(events, "sockets", events.SocketSlots())


_SNAPSHOT_QUERIES: dict[type, list] = {}


def db_snapshot() -> dict:
    """Every row of every table, to compare before and after a request that must change nothing.

    The rows are the database's own values (a date is the text SQLite keeps): each is compared
    with itself taken the same way. The queries are built once per kind of database; building
    them for every snapshot was half of a form test's time."""
    kind = type(db.obj)
    queries = _SNAPSHOT_QUERIES.get(kind)
    if queries is None:
        queries = _SNAPSHOT_QUERIES[kind] = [(model.__name__, *model.select().sql()) for model in MODELS]
    return {name: sorted(map(repr, db.execute_sql(sql, params).fetchall())) for name, sql, params in queries}
