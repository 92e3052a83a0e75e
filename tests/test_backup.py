"""flask backup and restore: one archive (0600) with the database, the documents and their key;
restored into a fresh instance, every visit, document and audit event is back."""
from __future__ import annotations

import json
import os
import stat
import tarfile

from conftest import make_app, make_appointment, make_practice, make_user
from webapp.app import create_app
from webapp.models import Appointment, AuditEvent, Document, db
from webapp.storage import documents
from webapp.uploads import store_document

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


def reopen(tmp_path, instance):
    """The instance as a restart would see it: same folder and database, nothing reset."""
    url = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'test.sqlite3'}"
    return create_app({"TESTING": True, "INSTANCE_PATH": str(instance), "ENV": {
        "DATABASE_URL": url, "SECRET_KEY": "test-secret", "PUBLIC_URL": "https://cabinet.test"}})


def fill(app):
    """Visits, documents (one per visit, one PDF more) and audit events; what should come back."""
    with app.app_context():
        make_practice(name="Cabinet des Lilas")
        doctor = make_user("practitioner")
        visits = [make_appointment(practitioner=doctor) for _ in range(3)]
        for n, appt in enumerate(visits):
            store_document(appt, PNG + bytes([n]), filename=f"photo{n}.png", content_type="image/png",
                           source="call", kind="other", author="patient", audit=("patient", "document.uploaded"))
            appt.cancel(doctor) if n == 2 else appt.leave_note(doctor, "Five minutes")
        store_document(visits[0], b"%PDF-1.4 report", filename="report.pdf", content_type="application/pdf",
                       source="report", kind="report", author="system")
        return {"visits": sorted(Appointment.select().tuples()),
                "audit": sorted(AuditEvent.select().tuples()),
                "documents": {d.storage_key: documents().load(d.storage_key) for d in Document.select()}}


def test_backup_then_restore_into_a_fresh_instance(tmp_path):
    source = make_app(tmp_path / "a")
    try:
        before = fill(source)
        assert len(before["documents"]) == 4 and len(before["audit"]) == 6
        out = tmp_path / "backups"
        out.mkdir()
        result = source.test_cli_runner().invoke(args=["backup", str(out)])
        assert result.exit_code == 0, result.output
        (archive,) = out.glob("cabinet-*.tar.gz")
        assert "keep it as secret as the key" in result.output
    finally:
        db.close()
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("cabinet-backup/manifest.json"))
    assert "cabinet-backup/document_key" in names
    assert manifest["counts"]["appointment"] == 3 and manifest["counts"]["document"] == 4
    assert manifest["document_files"] == 4 and manifest["schema_version"] >= 7
    assert manifest["created_at"].startswith("2036-06-10")

    # docs/backup.md, restore: a fresh instance (its database made empty at start-up), then restore.
    fresh = make_app(tmp_path / "b")
    try:
        result = fresh.test_cli_runner().invoke(args=["restore", str(archive)])
        assert result.exit_code == 0, result.output
    finally:
        db.close()
    restarted = reopen(tmp_path / "b", tmp_path / "b" / "instance")
    try:
        with restarted.app_context():
            assert sorted(Appointment.select().tuples()) == before["visits"]
            assert sorted(AuditEvent.select().tuples()) == before["audit"]
            assert {d.storage_key: documents().load(d.storage_key) for d in Document.select()} == before["documents"]
        # Restoring again over data is refused.
        again = restarted.test_cli_runner().invoke(args=["restore", str(archive)])
        assert again.exit_code != 0 and "fresh" in again.output
    finally:
        db.close()
    assert stat.S_IMODE((tmp_path / "b" / "instance" / "document_key").stat().st_mode) == 0o600


def test_backup_to_a_file_path_refuses_to_overwrite(app, runner, tmp_path):
    dest = tmp_path / "nightly.tar.gz"
    assert runner.invoke(args=["backup", str(dest)]).exit_code == 0
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    again = runner.invoke(args=["backup", str(dest)])
    assert again.exit_code != 0 and "exists already" in again.output
