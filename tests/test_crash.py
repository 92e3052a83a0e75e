"""Crash consistency: SIGKILL the web process in a burst of chat, report autosaves and uploads; after
a restart every write the server acknowledged is there, and the SQLite file is sound."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from simple_websocket import Client, ConnectionClosed

from conftest import make_app, make_appointment, make_practice, make_user, signed_in
from smtp_helpers import free_port
from webapp.access import COOKIE, link_expires_at
from webapp.models import ChatLine, Document, Report, db
from webapp.storage import documents
from webapp.tokens import make_patient_cookie

pytestmark = pytest.mark.real_clock   # the server is a process of its own, on the machine's clock

ROOT = Path(__file__).resolve().parent.parent
SECRET = "crash-secret"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(2000)
SERVE = """
import sys
from werkzeug.serving import make_server
from webapp.app import create_app
app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "INSTANCE_PATH": sys.argv[1], "RELAY_EMBEDDED": False,
                  "ENV": {"DATABASE_URL": sys.argv[2], "SECRET_KEY": sys.argv[3], "PUBLIC_URL": "https://cabinet.test"}})
server = make_server("127.0.0.1", int(sys.argv[4]), app, threaded=True)
print("ready", flush=True)
server.serve_forever()
"""


def start(instance: Path, url: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(instance), url, SECRET, str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.fixture
def visit(tmp_path):
    if os.environ.get("TEST_DATABASE_URL", "").startswith("postgres"):
        pytest.skip("the crash is checked on the embedded SQLite file")
    url = f"sqlite:///{tmp_path / 'crash.sqlite3'}"
    app = make_app(tmp_path, INSTANCE_PATH=str(tmp_path / "instance"),
                   ENV={"DATABASE_URL": url, "SECRET_KEY": SECRET, "PUBLIC_URL": "https://cabinet.test"})
    with app.app_context():
        make_practice()
        doctor = make_user("practitioner")
        appt = make_appointment(practitioner=doctor, starts_in=dt.timedelta(minutes=1))
        for step in (appt.confirm_identity, lambda: appt.give_consent("1", "en"),
                     lambda: appt.record_device_check("{}"), appt.enter_waiting_room, lambda: appt.admit(doctor)):
            step()
        cookie = make_patient_cookie(SECRET, appt.id, appt.link_version, link_expires_at(appt))
        session = app.session_interface.get_signing_serializer(app).dumps(signed_in(doctor))
    db.close()
    return {"app": app, "url": url, "instance": tmp_path / "instance", "appt": appt, "cookie": cookie,
            "session": session, "file": tmp_path / "crash.sqlite3"}


def chat_burst(base_ws, visit, acked: list, stop: threading.Event) -> None:
    """Send chat lines; the server's copy of each saved line (its id) is the acknowledgement."""
    try:
        ws = Client.connect(f"{base_ws}/v/{visit['appt'].ref}/signal",
                            headers={"Cookie": f"{COOKIE}={visit['cookie']}", "Origin": "https://cabinet.test"})
        n = 0
        while not stop.is_set():
            n += 1
            ws.send(json.dumps({"v": 1, "type": "chat", "text": f"ligne {n}"}))
            for _ in range(50):         # file frames of the uploads arrive too: read some, then chat on
                raw = ws.receive(timeout=0.02)
                if raw is None:
                    break
                data = json.loads(raw)
                if data.get("type") == "chat":
                    acked.append((data["id"], data["text"]))
    except (ConnectionClosed, OSError):
        pass


def upload_burst(base, visit, acked: list, stop: threading.Event) -> None:
    """Send files; a 201 with the document's id is the acknowledgement."""
    boundary = "crashboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + PNG + f"\r\n--{boundary}--\r\n".encode()
    while not stop.is_set():
        request = urllib.request.Request(f"{base}/v/{visit['appt'].ref}/files", data=body, method="POST", headers={
            "Cookie": f"{COOKIE}={visit['cookie']}", "Accept": "application/json",
            "Content-Type": f"multipart/form-data; boundary={boundary}"})
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                if response.status == 201:
                    acked.append(json.loads(response.read())["id"])
        except OSError:         # refused or cut off (the kill): not acknowledged
            if stop.is_set():
                return
        time.sleep(0.05)        # a patient's pace, leaving the server to the chat and the report too


def autosave_burst(base, visit, acked: list, stop: threading.Event) -> None:
    """The practitioner's report, autosaved as they type; a 200 is the acknowledgement."""
    n = 0
    while not stop.is_set():
        n += 1
        findings = f"Constatations, version {n}"
        request = urllib.request.Request(
            f"{base}/visits/{visit['appt'].id}/report", method="POST",
            data=urllib.parse.urlencode({"findings": findings, "decisions": "", "prescriptions": ""}).encode(),
            headers={"Cookie": f"session={visit['session']}", "HX-Request": "true",
                     "Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                if response.status == 200 and response.url == request.full_url:    # saved, not sent to sign in
                    acked.append(findings)
        except OSError:         # refused, slow under load, or cut off (the kill): not acknowledged
            if stop.is_set():
                return
        time.sleep(0.05)


def test_every_acknowledged_write_survives_a_sigkill(visit):
    port = free_port()
    base, chats, files, saves, stop = f"http://127.0.0.1:{port}", [], [], [], threading.Event()
    server = start(visit["instance"], visit["url"], port)
    try:
        workers = [threading.Thread(target=chat_burst, args=(base.replace("http", "ws"), visit, chats, stop)),
                   threading.Thread(target=upload_burst, args=(base, visit, files, stop)),
                   threading.Thread(target=autosave_burst, args=(base, visit, saves, stop))]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 40
        while (len(chats) < 10 or len(files) < 5 or len(saves) < 5) and time.monotonic() < deadline:
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)          # mid-burst: writes are still arriving
        server.wait(10)
        stop.set()
        for worker in workers:
            worker.join(10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        server.stdout.close()
    assert len(chats) >= 10 and len(files) >= 5 and len(saves) >= 5, (len(chats), len(files), len(saves))

    restarted = start(visit["instance"], visit["url"], port)
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(10)
        restarted.stdout.close()

    with sqlite3.connect(visit["file"]) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with visit["app"].app_context():
        saved = {line.id: line.text for line in ChatLine.select()}
        assert all(saved.get(line_id) == text for line_id, text in chats), "an acknowledged chat line was lost"
        stored = {doc.id: doc for doc in Document.select()}
        assert all(doc_id in stored for doc_id in files), "an acknowledged upload was lost"
        assert all(documents().load(stored[doc_id].storage_key) == PNG for doc_id in files)
        # The last acknowledged autosave, or one sent after it that the server saved before dying.
        kept = Report.get(Report.appointment == visit["appt"].id).findings
        assert kept.startswith("Constatations, version ")
        assert int(kept.rsplit(" ", 1)[1]) >= int(saves[-1].rsplit(" ", 1)[1]), (kept, saves[-1])
    db.close()
