"""Live updates behind ``events.publish``: the hub's own promises, and, on PostgreSQL, several web
processes sharing their events through LISTEN/NOTIFY.

The PostgreSQL tests run in the PostgreSQL pass only (``tests/with_postgres.sh``, part of
``make test``): two app processes (``tests/app_process.py``) serve one database, and real websocket
clients connect to each, as a browser would to one of several gunicorn workers.
"""
from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from simple_websocket import Client

from process_helpers import closed_with, message_with
from conftest import FROZEN_AT, make_app, make_appointment, make_user, signed_in
from webapp import events
from webapp.access import COOKIE, IDENTITY_COOKIE, link_expires_at
from webapp.models import Appointment, ChatLine, db
from webapp.tokens import make_identity_cookie, make_patient_cookie

ROOT = Path(__file__).resolve().parent.parent
SITE = "https://cabinet.test"           # the Origin of the site's own pages (its PUBLIC_URL in the tests)
WAIT = 5                                # seconds: an event that takes longer has been lost
ON_POSTGRES = os.environ.get("TEST_DATABASE_URL", "").startswith("postgres")
postgres_only = pytest.mark.skipif(not ON_POSTGRES, reason="LISTEN/NOTIFY needs PostgreSQL: this runs in the "
                                                           "PostgreSQL pass (tests/with_postgres.sh)")


# The hub, whichever it is.

def test_an_event_is_small_a_row_id_and_each_side_reads_the_row(app):
    """Chat lines and files travel as their id (NOTIFY takes under 8000 bytes; a line takes 2000 characters)."""
    from webapp.visit.bridge import Bridge
    doctor = make_user("practitioner")
    appt = make_appointment(practitioner=doctor)
    with app.test_request_context():
        bridge = Bridge(None, appt, "patient", None)
    with events.subscribe(events.visit_channel(appt.ref)) as heard:
        bridge.chat("é" * 2000)
        assert json.loads(heard.get(timeout=WAIT)) == {"v": 1, "type": "chat", "id": ChatLine.get().id}


def test_a_refresh_makes_a_call_socket_catch_up(served_visit):
    """What a lost listener may have missed reaches the call anyway: the history again, and the end."""
    s, appt = served_visit, served_visit["appt"]
    with db.connection_context():
        stored = Appointment.get_by_id(appt.id)
        stored.give_consent("1", "en")
        stored.record_device_check("{}")
        stored.enter_waiting_room()
        stored.admit(s["doctor"])
    patient = Client.connect(f"{s['ws']}/v/{appt.ref}/signal", headers=_patient(f"{COOKIE}={s['cookie']}"))
    assert frame_of(patient, "history")["items"] == []
    assert subscribed(events.visit_channel(appt.ref))               # the bridge listens once it sent the history
    events.hub.put_everywhere(events.REFRESH)
    assert frame_of(patient, "history")["items"] == []          # sent again: the page skips what it shows
    with db.connection_context():
        Appointment.get_by_id(appt.id).end_call(s["doctor"])
    events.hub.put_everywhere(events.REFRESH)                   # the "ended" event itself was missed
    assert frame_of(patient, "ended")
    assert closed_with(patient, WAIT) == events.ENDED


# PostgreSQL: LISTEN/NOTIFY.

@postgres_only
def test_an_event_leaves_at_commit_and_never_with_a_rollback(app):
    with events.subscribe("today:1") as heard:
        with db.atomic():
            events.publish("today:1", "first")
            assert heard.get(timeout=0.3) is None               # never seen before its data
        assert heard.get(timeout=WAIT) == "first"
        with pytest.raises(RuntimeError), db.atomic():
            events.publish("today:1", "undone")
            raise RuntimeError
        events.publish("today:1", "second")
        assert heard.get(timeout=WAIT) == "second"


@postgres_only
def test_an_event_too_large_for_notify_is_refused_before_anything_is_sent(app):
    with pytest.raises(ValueError, match="publish an id"):
        events.publish("visit:x", "x" * 8000)


@postgres_only
def test_a_killed_listener_reconnects_and_every_page_renders_again(app):
    listener = events.hub
    with events.subscribe("today:1") as day, events.subscribe("waiting:abc") as room:
        connects, pid = listener.connects, listener.backend_pid
        db.execute_sql("SELECT pg_terminate_backend(%s)", (pid,))
        events.publish("today:1", "while away")     # may be lost with the connection: the refresh covers it
        assert events.REFRESH in drain(day) and events.REFRESH in drain(room)
        assert listener.connects == connects + 1 and listener.backend_pid != pid
        events.publish("today:1", "after")
        assert day.get(timeout=WAIT) == "after"
    db.close()


def subscribed(channel: str) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and not events.hub.count(channel):
        time.sleep(0.02)
    return events.hub.count(channel) > 0


def drain(subscription) -> list:
    """What the subscription holds within WAIT seconds (until it stays quiet for half a second after)."""
    items, deadline = [], time.monotonic() + WAIT
    while time.monotonic() < deadline:
        item = subscription.get(timeout=0.5 if items else deadline - time.monotonic())
        if item is None:
            break
        items.append(item)
    return items


# Two web processes, one database.

@pytest.fixture(scope="module")
def processes(tmp_path_factory):
    """Web processes A and B on the test database, each with its own listener."""
    if not ON_POSTGRES:
        pytest.skip("several web processes need PostgreSQL: this runs in the PostgreSQL pass (tests/with_postgres.sh)")
    make_app(tmp_path_factory.mktemp("schema"))     # migrated before two processes start on it
    db.close()
    env = {**os.environ, "DATABASE_URL": os.environ["TEST_DATABASE_URL"], "CABINET_TEST_CLOCK": FROZEN_AT.isoformat()}
    started, logs = [], []
    try:
        for name in "AB":
            log = tempfile.TemporaryFile("w+")
            logs.append(log)
            proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "app_process.py"),
                                     str(tmp_path_factory.mktemp(f"instance{name}"))],
                                    cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
            started.append(proc)
        urls = []
        for proc, log in zip(started, logs):
            line = proc.stdout.readline()
            if not line.startswith("serving "):
                log.seek(0)
                raise AssertionError(f"an app process did not start: {line}{log.read()[-2000:]}")
            urls.append(line.split()[1])
        yield dict(zip("AB", urls))
    finally:
        for proc in started:
            proc.terminate()
            proc.wait(10)
            proc.stdout.close()
        for log in logs:
            log.close()


@pytest.fixture
def visit(app, processes):
    """A practitioner's visit in 5 minutes; the patient already confirmed, consented and checked the devices."""
    doctor = make_user("practitioner")
    appt = make_appointment(practitioner=doctor, starts_in=dt.timedelta(minutes=5))
    appt.confirm_identity()
    appt.give_consent("1", "en")
    appt.record_device_check(json.dumps({"camera": "ok", "microphone": "ok", "speaker": "ok", "network": "good"}))
    expires = link_expires_at(appt)
    cookies = (f"{COOKIE}={make_patient_cookie('test-secret', appt.id, appt.link_version, expires)}; "
               f"{IDENTITY_COOKIE}={make_identity_cookie('test-secret', appt.id, appt.link_version, expires)}")
    session = app.session_interface.get_signing_serializer(app).dumps(signed_in(doctor))
    db.close()
    return {"appt": appt, "patient": cookies, "staff": f"session={session}", **processes}


def test_two_processes_share_the_waiting_room_the_admission_and_the_chat(visit):
    appt, a, b = visit["appt"], visit["A"], visit["B"]
    day = Client.connect(ws(b, "/today/live"), headers=_staff(visit))           # the practitioner, on B
    assert 'data-waiting=' not in listening(day, events.today_channel(appt.practitioner_id), 'id="today-day"')

    assert request(a, "GET", f"/v/{appt.ref}/waiting", visit["patient"]) == 200     # the patient comes in on A
    assert appt.patient_name in until(day, 'data-waiting="%d"' % appt.id)

    room = Client.connect(ws(a, f"/v/{appt.ref}/live"), headers=_patient(visit["patient"]))
    assert 'data-status="waiting"' in room.receive(timeout=WAIT)
    assert "page open" in until(day, "page open")        # B knows the patient's page is open on A

    assert request(b, "POST", f"/today/{appt.id}/admit", visit["staff"]) == 302       # admitted on B
    assert 'data-status="in_call"' in until(room, "in_call")                          # A's page moves to the call

    patient = Client.connect(ws(a, f"/v/{appt.ref}/signal"), headers=_patient(visit["patient"]))
    doctor = Client.connect(ws(b, f"/today/{appt.id}/signal"), headers=_staff(visit))
    frame_of(patient, "history"), frame_of(doctor, "history")
    for socket in (patient, doctor):
        listening(socket, events.visit_channel(appt.ref), '"type":"history"')
    patient.send(json.dumps({"v": 1, "type": "chat", "text": "Bonjour docteur"}))
    assert frame_of(doctor, "chat")["text"] == "Bonjour docteur"                     # from A to B
    doctor.send(json.dumps({"v": 1, "type": "chat", "text": "Bonjour madame"}))
    assert [frame_of(patient, "chat")["text"] for _ in range(2)] == ["Bonjour docteur", "Bonjour madame"]
    for socket in (day, room, patient, doctor):
        socket.close()


def test_a_newer_tab_in_the_other_process_takes_over(visit):
    appt = visit["appt"]
    request(visit["A"], "GET", f"/v/{appt.ref}/waiting", visit["patient"])
    older = Client.connect(ws(visit["A"], f"/v/{appt.ref}/live"), headers=_patient(visit["patient"]))
    assert 'data-status="waiting"' in older.receive(timeout=WAIT)
    newer = Client.connect(ws(visit["B"], f"/v/{appt.ref}/live"), headers=_patient(visit["patient"]))
    assert 'data-status="waiting"' in newer.receive(timeout=WAIT)
    assert 'data-status="takeover"' in until(older, "takeover")
    assert closed_with(older, WAIT) == events.TAKEN_OVER
    newer.close()


# Helpers.

def ws(url: str, path: str) -> str:
    return url.replace("http", "ws", 1) + path


def _patient(cookies: str) -> dict:
    return {"Cookie": cookies, "Origin": SITE}


def _staff(s: dict) -> dict:
    return {"Cookie": s["staff"], "Origin": SITE}


def request(url: str, method: str, path: str, cookies: str) -> int:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=WAIT)
    try:
        conn.request(method, path, headers={"Cookie": cookies, "Origin": SITE})
        return conn.getresponse().status
    finally:
        conn.close()


def listening(socket, channel: str, text: str) -> str:
    """The first render of a socket whose handler now listens to ``channel`` (it learns of events only
    once it subscribed, after the handshake): a REFRESH sent until one with ``text`` comes back."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        events.publish(channel, events.REFRESH)
        message = socket.receive(timeout=0.3)
        if message is not None and text in message:
            return message
    raise AssertionError(f"the socket does not listen to {channel}")


def until(socket, text: str) -> str:
    """The first message within WAIT seconds that holds ``text``."""
    return message_with(socket, text, WAIT)


def frame_of(socket, kind: str) -> dict:
    """The next JSON frame of this type (others are skipped)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        raw = socket.receive(timeout=max(0.01, deadline - time.monotonic()))
        if raw is not None and json.loads(raw).get("type") == kind:
            return json.loads(raw)
    raise AssertionError(f"no {kind} frame")


