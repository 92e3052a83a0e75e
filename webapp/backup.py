"""Backup and restore: the database, the documents and their key, as one tar.gz.

The database copy is consistent while the app writes: SQLite's online backup API, or
``pg_dump`` (one snapshot) for PostgreSQL. The database is copied first, then the
documents: a document stored meanwhile is an extra file no row points to (harmless);
documents are only ever deleted by ``purge``, which should not run during a backup.

The archive holds the key with the documents, so it is as secret as the key: it is
created 0600 and must be stored encrypted (docs/backup.md).
"""
from __future__ import annotations

import io
import json
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from datetime import datetime
from pathlib import Path

from . import __version__
from .db import schema_version
from .models import MODELS, Appointment, Patient, SchemaVersion, User, db, utcnow
from .private_files import replacing
from .storage import DocumentStore, write_keys

ROOT = "cabinet-backup"


class BackupError(Exception):
    """The backup or restore cannot go on; the message says why."""


def pg_tool(name: str) -> str:
    """``pg_dump`` or ``psql``: on the PATH, else the newest of Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if not candidates:
        raise BackupError(f"{name} not found: install the PostgreSQL client (postgresql-client)")
    return str(candidates[-1])


def libpq_url(url: str) -> str:
    """peewee's ``postgres+pool://``, ``postgresext://``… as libpq reads it."""
    return "postgresql://" + url.split("://", 1)[1]


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def archive_path(dest: Path, now: datetime) -> Path:
    """``dest`` itself, or a timestamped name inside it when it is a folder."""
    if dest.is_dir():
        return dest / f"cabinet-{now:%Y%m%d-%H%M%S}.tar.gz"
    return dest


def counts() -> dict:
    with db.connection_context():
        return {model._meta.table_name: model.select().count() for model in MODELS}


def _dump_database(url: str, work: Path) -> str:
    if is_sqlite(url):
        target = work / "database.sqlite3"
        source = sqlite3.connect(db.obj.database)
        copy = sqlite3.connect(target)
        try:
            with copy:
                source.backup(copy)
        finally:
            copy.close()
            source.close()
        return target.name
    target = work / "database.sql"
    done = subprocess.run([pg_tool("pg_dump"), "--no-owner", "--no-privileges", "--format=plain",
                           "--file", str(target), "--dbname", libpq_url(url)], capture_output=True, text=True)
    if done.returncode:
        raise BackupError(f"pg_dump failed: {done.stderr.strip()}")
    return target.name


def create(dest: Path, url: str, store: DocumentStore) -> tuple[Path, dict]:
    """Write the archive; return its path and manifest."""
    now = utcnow()
    path = archive_path(dest, now)
    if path.exists():
        raise BackupError(f"{path} exists already")
    with db.connection_context():
        version = schema_version()
    with tempfile.TemporaryDirectory(prefix="cabinet-backup-") as tmp:
        work = Path(tmp)
        database = _dump_database(url, work)
        documents = store.paths()
        manifest = {"format": 1, "created_at": now.isoformat() + "Z", "app_version": __version__,
                    "schema_version": version, "database": "sqlite" if is_sqlite(url) else "postgresql",
                    "database_file": database, "counts": counts(), "document_files": len(documents),
                    "document_keys": len(store.keys)}
        with replacing(path) as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=2).encode())
            _add_bytes(tar, "document_key", b"\n".join(store.keys) + b"\n")
            tar.add(work / database, f"{ROOT}/{database}")
            for doc in documents:
                tar.add(doc, f"{ROOT}/documents/{doc.relative_to(store.root).as_posix()}")
    return path, manifest


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(f"{ROOT}/{name}")
    info.size, info.mode, info.mtime = len(data), 0o600, int(datetime.now().timestamp())
    tar.addfile(info, io.BytesIO(data))


def restore(archive: Path, url: str, instance: Path, store: DocumentStore, configured_key: str) -> dict:
    """Load an archive into this (fresh) instance: database, documents, key. Returns the manifest."""
    with db.connection_context():
        if any(model.select().exists() for model in (User, Patient, Appointment)):
            raise BackupError("this instance's database holds data already: restore into a fresh one")
    if store.paths():
        raise BackupError(f"{store.root} holds documents already: restore into a fresh instance")
    with tempfile.TemporaryDirectory(prefix="cabinet-restore-") as tmp:
        work = Path(tmp)
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(work, filter="data")
        base = work / ROOT
        manifest = json.loads((base / "manifest.json").read_text())
        if (manifest["database"] == "sqlite") != is_sqlite(url):
            raise BackupError(f"the archive holds a {manifest['database']} database; DATABASE_URL is not one")
        _load_database(base / manifest["database_file"], url)
        keys = (base / "document_key").read_bytes().split()
        if configured_key:
            if configured_key.encode().split(b",")[0].strip() != keys[0]:
                raise BackupError("DOCUMENT_KEY is set and differs from the archive's key: set it to the "
                                  "content of the archive's document_key, or unset it")
        else:
            write_keys(instance / "document_key", keys)
        for source in sorted((base / "documents").glob("??/*")):
            target = store.root / source.parent.name / source.name
            target.parent.mkdir(exist_ok=True, mode=0o700)
            shutil.copyfile(source, target)
            target.chmod(0o600)
    return manifest


def _load_database(dump: Path, url: str) -> None:
    if is_sqlite(url):
        source = sqlite3.connect(dump)
        target = sqlite3.connect(db.obj.database)
        try:
            with target:
                source.backup(target)
        finally:
            target.close()
            source.close()
        return
    # The app made its empty tables at start-up; the dump brings its own.
    with db.connection_context():
        db.drop_tables([*MODELS, SchemaVersion], cascade=True, safe=True)
    done = subprocess.run([pg_tool("psql"), "--quiet", "--no-psqlrc", "-v", "ON_ERROR_STOP=1",
                           "--single-transaction", "--file", str(dump), "--dbname", libpq_url(url)],
                          capture_output=True, text=True)
    if done.returncode:
        raise BackupError(f"psql failed: {done.stderr.strip()}")
