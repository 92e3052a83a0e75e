"""The instance folder is its owner's alone: the folder 0700, the database, keys and documents 0600."""
from __future__ import annotations

import os
import stat

import pytest

from conftest import make_app
from webapp.models import db
from webapp.storage import documents


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)     # what a default shell gives: world-readable files unless we say otherwise
    yield
    os.umask(old)


def test_instance_folder_database_keys_and_documents_are_private(tmp_path, loose_umask):
    instance = tmp_path / "instance"
    app = make_app(tmp_path, ENV={"DATABASE_URL": f"sqlite:///{instance / 'cabinet.sqlite3'}",
                                  "PUBLIC_URL": "https://cabinet.test"})
    try:
        with app.app_context():
            key = documents().store(b"%PDF-1.4 secret")
        assert mode(instance) == 0o700
        assert mode(instance / "secret_key") == 0o600
        assert mode(instance / "document_key") == 0o600
        assert mode(instance / "cabinet.sqlite3") == 0o600
        for sidecar in ("cabinet.sqlite3-wal", "cabinet.sqlite3-shm"):
            if (instance / sidecar).exists():
                assert mode(instance / sidecar) == 0o600
        assert mode(instance / "documents") == 0o700
        assert mode(instance / "documents" / key[:2]) == 0o700
        assert mode(instance / "documents" / key[:2] / key) == 0o600
    finally:
        db.close()
