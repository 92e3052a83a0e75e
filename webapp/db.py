"""Database binding and numbered migrations, applied at start-up.

A database is never edited by hand: each schema change is a function appended
to ``MIGRATIONS``; ``migrate()`` applies the ones not yet recorded, each in
its own transaction.
"""
from __future__ import annotations

from playhouse.db_url import connect

from .models import MODELS, SchemaVersion, db

SQLITE_PRAGMAS = {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 10000}


def _initial(database):
    database.create_tables(MODELS)


MIGRATIONS = [
    (1, _initial),
]


def open_database(url: str):
    """A peewee database for ``DATABASE_URL``; SQLite gets WAL, full sync and foreign keys."""
    if url.startswith("sqlite"):
        return connect(url, pragmas=SQLITE_PRAGMAS)
    return connect(url)


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
