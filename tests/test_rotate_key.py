"""flask rotate-document-key: every document re-encrypted under a new key, and killed half-way,
run again, none lost: both keys read until the last file is done."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

from conftest import make_app, make_appointment
from webapp.models import Document, db
from webapp.storage import documents, read_keys
from webapp.uploads import store_document

ROOT = Path(__file__).resolve().parent.parent
COUNT = 50
SIZE = 400_000
# The command as cron would run it, on this test's instance folder and database.
RUN = """
import sys
from webapp.app import create_app
app = create_app({{"INSTANCE_PATH": {instance!r}, "ENV": {{"DATABASE_URL": {url!r}, "SECRET_KEY": "s"}}}})
result = app.test_cli_runner().invoke(args=["rotate-document-key"])
print(result.output)
sys.exit(result.exit_code)
"""


def body(n: int) -> bytes:
    return b"%PDF-1.4\n" + hashlib.sha256(str(n).encode()).digest() * (SIZE // 32)


@pytest.fixture
def instance(tmp_path):
    app = make_app(tmp_path)
    with app.app_context():
        appt = make_appointment()
        for n in range(COUNT):
            store_document(appt, body(n), filename=f"d{n}.pdf", content_type="application/pdf", source="call",
                           kind="other", author="patient")
        yield app, {d.storage_key: d.filename for d in Document.select()}
    db.close()


def inodes(store):
    return {p.name: p.stat().st_ino for p in store.paths()}


def test_killed_half_way_then_run_again_every_document_reads_with_the_new_key(instance, tmp_path):
    app, names = instance
    store = app.extensions["documents"]
    old_key = read_keys(tmp_path / "instance" / "document_key")
    before = inodes(store)
    script = RUN.format(instance=str(tmp_path / "instance"), url=app.config["DATABASE_URL"])
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    done = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        done = sum(1 for name, ino in inodes(store).items() if before.get(name) != ino)
        if done >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.001)
    output = proc.communicate()[0].decode()
    assert proc.returncode == -signal.SIGKILL, output
    done = sum(1 for name, ino in inodes(store).items() if before.get(name) != ino)
    assert 0 < done < COUNT, done
    keys = read_keys(tmp_path / "instance" / "document_key")
    assert len(keys) == 2 and keys[1] == old_key[0]      # mid-rotation: new first, old kept
    new = keys[0]
    # Meanwhile the running app reads every document, old and new.
    with app.app_context():
        assert all(documents().load(key) == body(int(name[1:-4])) for key, name in names.items())

    again = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "every document reads with the new key" in again.stdout
    assert read_keys(tmp_path / "instance" / "document_key") == [new]
    only_new, only_old = Fernet(new), Fernet(old_key[0])
    for key, name in names.items():
        token = (store.root / key[:2] / key).read_bytes()
        assert only_new.decrypt(token) == body(int(name[1:-4]))
        with pytest.raises(InvalidToken):
            only_old.decrypt(token)
    assert not list(store.root.glob("*/*.part"))
    with app.app_context():    # the running app followed the key file
        assert all(documents().load(key) == body(int(name[1:-4])) for key, name in names.items())


def test_with_document_key_set_a_new_key_must_come_first(tmp_path):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    url = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'test.sqlite3'}"
    env = {"DATABASE_URL": url, "SECRET_KEY": "s", "DOCUMENT_KEY": old}
    app = make_app(tmp_path, ENV=env)
    try:
        with app.app_context():
            key = documents().store(b"%PDF-1.4 x")
        refused = app.test_cli_runner().invoke(args=["rotate-document-key"])
        assert refused.exit_code != 0 and "DOCUMENT_KEY=new,old" in refused.output
    finally:
        db.close()
    app = make_app(tmp_path, ENV={**env, "DOCUMENT_KEY": f"{new},{old}"})
    try:
        result = app.test_cli_runner().invoke(args=["rotate-document-key"])
        assert result.exit_code == 0 and "remove the old key" in result.output
        assert Fernet(new.encode()).decrypt((tmp_path / "instance" / "documents" / key[:2] / key).read_bytes()) \
            == b"%PDF-1.4 x"
    finally:
        db.close()
