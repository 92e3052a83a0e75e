"""The call's bridge through the real app, a live server and the real embedded relay worker.

Websockets are opened with simple_websocket's client, carrying the patient's
cookie or a staff session cookie, as a browser would.
"""
from __future__ import annotations

import contextlib
import html
import json
import re
import time

import pytest
from simple_websocket import Client, ConnectionClosed

from browser import live_server
from conftest import login_as, make_app, make_appointment, make_practice, make_user, signed_in, text_of
from webapp import events
from webapp.models import Appointment, AuditEvent, ChatLine, Document, Incident, Practice, User, db
from webapp.access import COOKIE, link_expires_at
from webapp.tokens import make_patient_cookie

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n%test\n"

# The Origin a page of the site sends (its PUBLIC_URL in the tests); the server refuses any other.
SITE = "https://cabinet.test"


@pytest.fixture
def served(tmp_path):
    app = make_app(tmp_path, RELAY_STATS_INTERVAL=0.5)
    with app.app_context():
        make_practice()
        doctor = make_user("practitioner")
        appt = make_appointment(practitioner=doctor, starts_in=__import__("datetime").timedelta(minutes=1))
        other = make_appointment(practitioner=doctor)
        for a in (appt, other):
            a.confirm_identity()
            a.give_consent("1", "en")
            a.record_device_check("{}")
            a.enter_waiting_room()
            a.admit(doctor)
        cookies = {a.id: make_patient_cookie("test-secret", a.id, a.link_version, link_expires_at(a))
                   for a in (appt, other)}
        session = app.session_interface.get_signing_serializer(app).dumps(signed_in(doctor))
        db.close()
    with live_server(app) as url:
        yield {"app": app, "url": url, "ws": url.replace("http", "ws", 1), "appt": appt, "other": other,
               "cookies": cookies, "session": session, "doctor": doctor}
    app.extensions["relay"].stop()


def http(s, appt=None, staff=False):
    """A test client of the same app, holding the patient's cookie or the staff session."""
    client = s["app"].test_client()
    if staff:
        client.set_cookie("session", s["session"])
    elif appt is not None:
        client.set_cookie(COOKIE, s["cookies"][appt.id])
    return client


def patient_headers(s, appt):
    return {"Cookie": f"{COOKIE}={s['cookies'][appt.id]}", "Origin": SITE}


def staff_headers(s):
    return {"Cookie": f"session={s['session']}", "Origin": SITE}


def open_patient(s, appt=None, cookie_of=None):
    appt = appt or s["appt"]
    return Client.connect(f"{s['ws']}/v/{appt.ref}/signal", headers=patient_headers(s, cookie_of or appt))


def open_staff(s, appt=None, headers=None):
    appt = appt or s["appt"]
    headers = staff_headers(s) if headers is None else {"Origin": SITE, **headers}
    return Client.connect(f"{s['ws']}/today/{appt.id}/signal", headers=headers)


def next_of(ws, type_, timeout=5.0):
    """The next frame of this type (others are skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        if raw is None:
            break
        data = json.loads(raw)
        if data.get("type") == type_:
            return data
    raise AssertionError(f"no {type_} frame")


def refused(ws) -> bool:
    """The server closed the socket without sending a single frame."""
    try:
        raw = ws.receive(timeout=3)
    except ConnectionClosed:
        return True
    return raw is None and not ws.connected


def test_patient_and_practitioner_join_and_get_ready(served):
    patient, staff = open_patient(served), open_staff(served)
    try:
        assert next_of(patient, "history")["items"] == []
        assert next_of(patient, "ready")["role"] == "patient"
        assert next_of(staff, "ready")["role"] == "practitioner"
        assert next_of(staff, "peer-state")["role"] in ("patient", "practitioner")
    finally:
        patient.close()
        staff.close()


@pytest.mark.parametrize("who", ["anonymous", "other appointment's cookie", "staff of another practice"])
def test_strangers_are_refused(served, who):
    s = served
    if who == "anonymous":
        ws = Client.connect(f"{s['ws']}/v/{s['appt'].ref}/signal", headers={"Origin": SITE})
    elif who == "other appointment's cookie":
        ws = open_patient(s, s["appt"], cookie_of=s["other"])
    else:
        with s["app"].app_context():
            stranger = make_user("practitioner")    # sees only their own appointments
            cookie = s["app"].session_interface.get_signing_serializer(s["app"]).dumps(signed_in(stranger))
            db.close()
        ws = open_staff(s, headers={"Cookie": f"session={cookie}"})
    assert refused(ws)


def test_anonymous_staff_socket_is_refused(served):
    assert refused(open_staff(served, headers={}))


@pytest.mark.parametrize("raw, code", [
    ("not json", "bad-json"),
    ('{"v": 2, "type": "ping"}', "bad-version"),
    ('{"v": 1, "type": "launch"}', "unknown-type"),
    ('{"v": 1, "type": "join", "ticket": "forged"}', "unknown-type"),
    ('{"v": 1, "type": "chat", "text": ""}', "bad-field"),
    ('{"v": 1, "type": "chat", "text": "   "}', "bad-field"),
    ('{"v": 1, "type": "offer", "sdp": "hello"}', "bad-sdp"),
    ('{"v": 1, "type": "camera-request", "facing": "environment"}', "bad-state"),   # patients do not ask
])
def test_malformed_frames_get_an_error_and_the_socket_stays(served, raw, code):
    ws = open_patient(served)
    try:
        next_of(ws, "ready")
        ws.send(raw)
        assert next_of(ws, "error")["code"] == code
        ws.send('{"v": 1, "type": "ping"}')
        assert next_of(ws, "pong")
    finally:
        ws.close()
    with served["app"].app_context():
        assert ChatLine.select().count() == 0


def test_chat_is_saved_then_reaches_both_and_comes_back_as_history(served):
    patient, staff = open_patient(served), open_staff(served)
    try:
        next_of(patient, "ready")
        next_of(staff, "ready")
        patient.send('{"v": 1, "type": "chat", "text": "Bonjour docteur"}')
        for ws in (patient, staff):
            line = next_of(ws, "chat")
            assert (line["from"], line["text"]) == ("patient", "Bonjour docteur")
    finally:
        patient.close()
        staff.close()
    with served["app"].app_context():
        saved = ChatLine.get()
        assert (saved.author, saved.text, saved.appointment_id) == ("patient", "Bonjour docteur", served["appt"].id)
        db.close()
    again = open_staff(served)
    try:
        assert [i["text"] for i in next_of(again, "history")["items"]] == ["Bonjour docteur"]
    finally:
        again.close()
    page = http(served, served["appt"]).get(f"/v/{served['appt'].ref}/call")
    assert page.status_code == 200 and "Bonjour docteur" in page.get_data(as_text=True)


@contextlib.contextmanager
def both_ready(s):
    """The patient's and the practitioner's sockets, once the bridge said "ready" to each; closed after."""
    patient, staff = open_patient(s), open_staff(s)
    try:
        next_of(patient, "ready")
        next_of(staff, "ready")
        yield patient, staff
    finally:
        for ws in (patient, staff):
            # The server may be closing it at this very moment (after "ended"): its reader thread
            # then closes the socket between the check and the write (EBADF), the same end.
            with contextlib.suppress(ConnectionClosed, OSError):
                if ws.connected:
                    ws.close()


def test_practitioner_hang_up_ends_the_visit_for_both(served):
    with both_ready(served) as (patient, staff):
        staff.send('{"v": 1, "type": "bye"}')
        assert next_of(staff, "ended")["next"] == f"/visits/{served['appt'].id}/close"
        assert next_of(patient, "bye")["from"] == "practitioner"
    with served["app"].app_context():
        assert Appointment.get_by_id(served["appt"].id).call_ended_at is not None
        db.close()
    page = http(served, served["appt"]).get(f"/v/{served['appt'].ref}/call")
    assert "The visit has ended" in page.get_data(as_text=True)
    assert close_of(open_patient(served)) == (events.ENDED, "ended")


def test_the_end_is_saved_before_the_patient_hears_of_it(served, monkeypatch):
    """The race of issue 10: a patient told "bye" loads the call page at once; the end must be
    saved by then, however slow the database is (here: saving takes half a second)."""
    save = Appointment.end_call

    def slow_end_call(self, actor):
        time.sleep(0.5)
        return save(self, actor)
    monkeypatch.setattr(Appointment, "end_call", slow_end_call)
    with both_ready(served) as (patient, staff):
        staff.send('{"v": 1, "type": "bye"}')
        assert next_of(patient, "bye")["from"] == "practitioner"
        page = http(served, served["appt"]).get(f"/v/{served['appt'].ref}/call")   # what the page loads next
        assert "The visit has ended" in text_of(page) and "/signal" not in page.get_data(as_text=True)
        assert next_of(patient, "ended") and close_after_frames(patient) == (events.ENDED, "ended")
        assert next_of(staff, "ended")["next"] == f"/visits/{served['appt'].id}/close"
        assert close_after_frames(staff) == (events.ENDED, "ended")
    with served["app"].app_context():
        assert AuditEvent.select().where(AuditEvent.action == "call.ended").count() == 1


def test_a_bye_the_page_sent_before_closing_still_ends_the_visit(served, monkeypatch):
    """A page may say bye and close before its bridge first reads its socket; a frame written to it
    meanwhile fails and marks the session done. The bye was then never read and the patient stayed
    on "Connecting the call" (test_browser_call_end, about 1 round in 40). Here the bridge reads
    late on purpose: the bye must still end the visit."""
    from webapp.visit.bridge import Bridge
    loop = Bridge._from_browser_loop

    def reads_late(self):
        if self.role == "practitioner":
            deadline = time.monotonic() + 5
            while self.ws.connected and time.monotonic() < deadline:
                time.sleep(0.01)
            self.send('{"v": 1, "type": "pong"}')       # fails: the page has gone
            assert self.done.is_set()
        return loop(self)
    monkeypatch.setattr(Bridge, "_from_browser_loop", reads_late)
    with both_ready(served) as (patient, staff):
        staff.send('{"v": 1, "type": "bye"}')
        staff.close()
        assert next_of(patient, "bye")["from"] == "practitioner"
        assert close_after_frames(patient) == (events.ENDED, "ended")
    with served["app"].app_context():
        assert Appointment.get_by_id(served["appt"].id).call_ended_at is not None


def test_a_frame_to_a_socket_closed_under_the_bridge_ends_its_session_quietly():
    """The page closed its socket (on "bye") as the bridge wrote "ended": simple-websocket's
    reader thread had handled the close, so wsproto refused the frame. That exception ended the
    bridge's channel thread (an unhandled thread exception in the call-end test) before the
    session was closed."""
    import threading
    from types import SimpleNamespace
    from wsproto.utilities import LocalProtocolError
    from webapp.visit.bridge import Bridge

    class ClosedUnderneath:
        def send(self, text):
            raise LocalProtocolError("Event TextMessage cannot be sent in state ConnectionState.CLOSED.")

        def close(self, reason, message):
            raise LocalProtocolError("Event CloseConnection cannot be sent in state ConnectionState.CLOSED.")
    side = SimpleNamespace(ws=ClosedUnderneath(), _send_lock=threading.Lock(), done=threading.Event())
    Bridge.send(side, '{"v": 1, "type": "ended"}')
    assert side.done.is_set()
    side.done.clear()
    Bridge.close(side, events.ENDED, "ended")
    assert side.done.is_set() and not side._send_lock.locked()


def close_after_frames(ws, timeout=5.0) -> tuple[int, str]:
    """The code and reason the server closed the socket with, after whatever frames came first."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.receive(timeout=0.2)
    except ConnectionClosed:
        return ws.close_reason, ws.close_message
    raise AssertionError("the socket stayed open")


def test_a_lost_worker_is_reported_and_recorded(served):
    ws = open_staff(served)
    try:
        next_of(ws, "ready")
        served["app"].extensions["relay"].stop()          # the worker goes away mid-call
        state = next_of(ws, "peer-state")
        while state["state"] == "joined":                  # the worker's welcome, before it went
            state = next_of(ws, "peer-state")
        assert (state["role"], state["state"]) == ("practitioner", "reconnecting")
        assert next_of(ws, "ready", timeout=8)             # a new embedded worker, a new ticket
    finally:
        ws.close()
    with served["app"].app_context():
        assert [(i.kind, i.role) for i in Incident.select()] == [("relay_lost", "practitioner")]


# Files.

def post_file(s, data, name, appt=None, as_staff=False):
    appt = appt or s["appt"]
    url = f"/today/{appt.id}/files" if as_staff else f"/v/{appt.ref}/files"
    body, content_type = multipart(data, name)
    return http(s, appt, staff=as_staff).post(url, data=body, content_type=content_type,
                                              headers={"Accept": "application/json"})


def multipart(data: bytes, name: str) -> tuple[bytes, str]:
    """A browser's form body, built here: the test client would spool a large one to a file it never closes."""
    boundary = "cabinet-test-boundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("data, name, status, error", [
    (b"MZ\x90\x00 not a picture", "photo.png", 422, "Only PDF, JPEG, PNG and HEIC"),   # name lies
    (b"<html><script>x</script>", "report.pdf", 422, "Only PDF, JPEG, PNG and HEIC"),
    (b"", "empty.pdf", 422, "This file is empty"),
    (PDF + b"\x00" * (1024 * 1024), "big.pdf", 413, "at most 1 MB"),
])
def test_refused_uploads_save_nothing(served, data, name, status, error):
    with served["app"].app_context():
        Practice.update(max_upload_mb=1).execute()
        db.close()
    response = post_file(served, data, name)
    assert response.status_code == status and error in response.get_json()["error"]
    with served["app"].app_context():
        assert Document.select().count() == 0


def test_upload_without_js_shows_the_error_on_the_page(served):
    body, content_type = multipart(b"nope", "x.png")
    response = http(served, served["appt"]).post(f"/v/{served['appt'].ref}/files", data=body,
                                                 content_type=content_type)
    assert response.status_code == 422 and "Only PDF, JPEG, PNG and HEIC" in response.get_data(as_text=True)


@pytest.mark.parametrize("name, shown", [
    ("../../etc/passwd.png", "passwd.png"),
    ('<img src=x onerror=alert(1)>.png', "img srcx onerroralert(1).png"),
    ("", "document.png"),
    ("résultats\x00\x1b.exe", "résultats.png"),
])
def test_hostile_names_are_cleaned(served, name, shown):
    response = post_file(served, PNG, name)
    assert response.status_code == 201
    with served["app"].app_context():
        doc = Document.get()
        assert (doc.filename, doc.content_type, doc.source, doc.author) == (shown, "image/png", "call", "patient")


def test_a_file_is_announced_and_downloaded_by_both_sides_only(served):
    s = served
    staff = open_staff(s)
    try:
        next_of(staff, "ready")
        assert post_file(s, PDF, "ordonnance.pdf").status_code == 201
        line = next_of(staff, "file")
        assert (line["from"], line["name"]) == ("patient", "ordonnance.pdf")
    finally:
        staff.close()
    mine = http(s, s["appt"]).get(f"/v/{s['appt'].ref}/files/{line['id']}")
    assert mine.status_code == 200 and mine.data == PDF
    assert mine.headers["X-Content-Type-Options"] == "nosniff"
    assert mine.headers["Content-Disposition"].startswith("attachment")
    staff_copy = http(s, staff=True).get(line["url"])
    assert staff_copy.status_code == 200 and staff_copy.data == PDF
    # Another appointment's patient asking for it: not found, nothing said.
    theirs = http(s, s["other"]).get(f"/v/{s['other'].ref}/files/{line['id']}")
    missing = http(s, s["other"]).get(f"/v/{s['other'].ref}/files/999999")
    assert theirs.status_code == missing.status_code == 404 and text_of(theirs) == text_of(missing)
    with s["app"].app_context():
        actions = [(e.actor, e.action) for e in AuditEvent.select().where(AuditEvent.action == "document.downloaded")]
        assert ("staff", "document.downloaded") in actions


# Incidents from the worker's reports, and the relay's health.

def test_media_stall_and_failures_become_incidents(served):
    from webapp.relay import protocol as p
    from webapp.visit.bridge import Bridge
    app = served["app"]
    app.config["MEDIA_STALL_SECONDS"] = 0.2
    with app.test_request_context():
        bridge = Bridge(None, Appointment.get_by_id(served["appt"].id), "patient", None)
        db.close()
    counts = lambda n: p.Stats("patient", received={"audio": n, "video": n})  # noqa: E731
    bridge._own_state("connected")
    bridge._stats(counts(30))
    bridge._stats(counts(60))          # media flows: nothing to record
    time.sleep(0.3)
    bridge._stats(counts(60))          # stalled while connected
    bridge._stats(counts(60))          # recorded once, not every report
    bridge._stats(counts(90))
    bridge._own_state("failed")
    with app.app_context():
        assert [(i.kind, i.role) for i in Incident.select().order_by(Incident.id)] == [
            ("media_stall", "patient"), ("connection_failed", "patient")]


def test_media_lost_and_back_are_two_incidents_and_no_stall(served):
    from webapp.relay import protocol as p
    from webapp.visit.bridge import Bridge
    app = served["app"]
    app.config["MEDIA_STALL_SECONDS"] = 0.2
    with app.test_request_context():
        bridge = Bridge(None, Appointment.get_by_id(served["appt"].id), "patient", None)
        db.close()
    counts = lambda n: p.Stats("patient", received={"audio": n, "video": n})  # noqa: E731
    bridge._own_state("connected")
    bridge._stats(counts(30))
    bridge._own_state("lost")          # the worker heard nothing from this side
    time.sleep(0.3)
    bridge._stats(counts(30))          # longer than a stall, but already recorded as lost
    bridge._own_state("connected")
    bridge._own_state("connected")     # once back, "connected" is no news
    with app.app_context():
        assert [(i.kind, i.role, i.detail) for i in Incident.select().order_by(Incident.id)] == [
            ("media_lost", "patient", "no media while connected"), ("media_back", "patient", "media back after 0 s")]


def test_a_call_past_the_relays_capacity_waits_told_so_then_starts(served):
    s = served
    s["app"].extensions["relay"]._settings["max_calls"] = 1     # RELAY_MAX_CALLS=1, before it starts
    s["app"].config["RELAY_FULL_RETRY_SECONDS"] = 0.2
    first = open_staff(s)
    try:
        next_of(first, "ready")
        second = open_staff(s, s["other"])
        assert next_of(second, "error")["code"] == "relay-full"
    finally:
        first.close()                                   # that call ends: a place frees up
    try:
        next_of(second, "ready", timeout=5)
    finally:
        second.close()
    with s["app"].app_context():
        assert [(i.appointment_id, i.kind, i.role) for i in Incident.select()] == [
            (s["other"].id, "relay_full", "practitioner")]      # once, though asked again and again


def test_healthz_reports_a_relay_that_is_down_without_failing(tmp_path):
    app = make_app(tmp_path, RELAY_URLS=["ws://127.0.0.1:9"])
    with app.app_context():
        make_practice()
        admin = make_user("admin")
        db.close()
    client = app.test_client()
    assert client.get("/healthz").get_json() == {"ok": True}      # the public sees no addresses
    login_as(client, admin)
    body = client.get("/healthz").get_json()
    assert body["ok"] is True and body["relay"]["ok"] is False
    assert body["relay"]["workers"] == [{"url": "ws://127.0.0.1:9", "ok": False, "calls": None, "participants": None,
                                         "cpu": None, "full": None, "max_calls": None, "pinned": 0}]


def test_the_embedded_relay_starts_on_first_use_only(served):
    app = served["app"]
    app.extensions["relay"].stop()
    client = app.test_client()
    with app.app_context():
        login_as(client, make_user("admin"))
        db.close()
    assert client.get("/healthz").get_json()["relay"]["started"] is False     # pages alone never start it
    ws = open_patient(served)
    try:
        next_of(ws, "ready")
    finally:
        ws.close()
    relay = client.get("/healthz").get_json()["relay"]
    assert relay["started"] is True and relay["ok"] is True and relay["workers"][0]["url"].startswith("ws://127.0.0.1:")


# Only the visit's own practitioner opens the staff side of its call.

def staff_cookie(s, role):
    """A session cookie for a new staff member of the practice with this role."""
    with s["app"].app_context():
        user = make_user(role)
        cookie = s["app"].session_interface.get_signing_serializer(s["app"]).dumps(signed_in(user))
        db.close()
    return cookie


def close_of(ws) -> tuple[int, str] | None:
    """The code and reason the server closed the socket with, if it sent no frame first."""
    try:
        raw = ws.receive(timeout=3)
    except ConnectionClosed:
        return ws.close_reason, ws.close_message
    return None if raw is not None else (ws.close_reason, ws.close_message)


@pytest.mark.parametrize("role", ["secretary", "admin"])
def test_other_staff_cannot_take_over_the_call(served, role):
    s = served
    cookie = staff_cookie(s, role)
    ws = open_staff(s, headers={"Cookie": f"session={cookie}"})
    assert close_of(ws) == (events.NOT_YOURS, "not your visit")
    client = s["app"].test_client()
    client.set_cookie("session", cookie)
    page = client.get(f"/today/{s['appt'].id}/call")
    assert page.status_code == 403 and "You are not allowed to see this page." in text_of(page)
    assert "/signal" not in page.get_data(as_text=True)
    body, content_type = multipart(PDF, "fake.pdf")
    upload = client.post(f"/today/{s['appt'].id}/files", data=body, content_type=content_type,
                         headers={"Accept": "application/json"})
    assert upload.status_code == 403
    assert post_file(s, PNG, "photo.png").status_code == 201            # the patient's own file
    with s["app"].app_context():
        doc = Document.get()
        assert (doc.author, doc.filename) == ("patient", "photo.png")     # nothing stored from the refused upload
        db.close()
    download = client.get(f"/today/{s['appt'].id}/files/{doc.id}")
    assert download.status_code == 403 and PNG not in download.data
    with s["app"].app_context():
        assert AuditEvent.select().where(AuditEvent.action == "document.downloaded").count() == 0
        assert ChatLine.select().count() == 0


def test_the_practitioner_of_the_visit_still_opens_every_part(served):
    s = served
    staff = open_staff(s)
    try:
        assert next_of(staff, "ready")["role"] == "practitioner"
    finally:
        staff.close()
    assert http(s, staff=True).get(f"/today/{s['appt'].id}/call").status_code == 200
    assert post_file(s, PDF, "ordonnance.pdf", as_staff=True).status_code == 201


def test_a_hand_over_ends_the_previous_practitioners_side_and_opens_the_new_ones(served):
    s = served
    with s["app"].app_context():
        stand_in = make_user("practitioner")
        admin = make_user("admin")
        serializer = s["app"].session_interface.get_signing_serializer(s["app"])
        stand_in_cookie, admin_cookie = serializer.dumps(signed_in(stand_in)), serializer.dumps(signed_in(admin))
        db.close()
    patient, previous = open_patient(s), open_staff(s)
    try:
        next_of(previous, "ready")
        next_of(patient, "ready")
        client = s["app"].test_client()
        client.set_cookie("session", admin_cookie)
        assert client.post(f"/agenda/{s['appt'].id}/hand-over", data={"practitioner": stand_in.id}).status_code == 302
        assert next_of(previous, "handed-over") == {"v": 1, "type": "handed-over"}
        assert close_after_frames(previous) == (events.HANDED_OVER, "handed over")
        assert close_of(open_staff(s)) == (events.NOT_YOURS, "not found")      # and it does not come back
        new = open_staff(s, headers={"Cookie": f"session={stand_in_cookie}"})
        try:
            assert next_of(new, "ready")["role"] == "practitioner"
        finally:
            new.close()
        assert patient.connected                                   # the patient's side goes on
    finally:
        for ws in (patient, previous):
            if ws.connected:
                ws.close()
    with s["app"].app_context():
        assert Appointment.get_by_id(s["appt"].id).practitioner_id == stand_in.id
        assert AuditEvent.get(AuditEvent.action == "appointment.handed_over").user_id == admin.id


# Each refusal closes with its own code (events.CALL_CLOSES), which the call page obeys.

def patient_refusal(s, change):
    """Change the visit (or the cookie) as ``change`` says, then open the patient's socket."""
    appt, cookie_of = s["appt"], None
    with s["app"].app_context():
        row = Appointment.get_by_id(appt.id)
        doctor = User.get_by_id(s["doctor"].id)
        if change == "no cookie":
            db.close()
            return Client.connect(f"{s['ws']}/v/{appt.ref}/signal", headers={"Origin": SITE})
        if change == "another visit's cookie":
            cookie_of = s["other"]
        elif change == "link renewed":
            row.renew_link(doctor)
        elif change == "sent back to the waiting list":
            row.send_back(doctor, row.starts_at)
        elif change == "ended":
            row.end_call(doctor)
        elif change == "closed":
            row.end_call(doctor)
            row.close(doctor)
        db.close()
    return open_patient(s, appt, cookie_of=cookie_of)


@pytest.mark.parametrize("change, closed", [
    ("no cookie", (events.NO_CREDENTIALS, "link")),
    ("another visit's cookie", (events.NO_CREDENTIALS, "link")),
    ("link renewed", (events.NO_CREDENTIALS, "link")),
    ("sent back to the waiting list", (events.NOT_IN_CALL, "not in call")),
    ("ended", (events.ENDED, "ended")),
    ("closed", (events.ENDED, "ended")),
])
def test_a_refused_patient_socket_says_why(served, change, closed):
    assert close_of(patient_refusal(served, change)) == closed


def test_a_patient_over_the_socket_cap_is_told_to_retry_later(served):
    key = f"patient:{served['appt'].ref}"       # the patient's other pages hold every slot
    for _ in range(events.PATIENT_SOCKETS):
        assert events.sockets.acquire(key, events.PATIENT_SOCKETS)
    try:
        assert close_of(open_patient(served)) == (events.TOO_MANY_PAGES, "too many pages")
        assert events.CALL_CLOSES[events.TOO_MANY_PAGES] == "retry"
    finally:
        for _ in range(events.PATIENT_SOCKETS):
            events.sockets.release(key)


@pytest.mark.parametrize("who, closed", [
    ("signed out", (events.NO_CREDENTIALS, "sign in")),
    ("another practitioner", (events.NOT_YOURS, "not found")),
    ("the practitioner, call ended", (events.ENDED, "ended")),
    ("the practitioner, patient sent back", (events.NOT_IN_CALL, "not in call")),
])
def test_a_refused_staff_socket_says_why(served, who, closed):
    s = served
    headers = {"signed out": {}, "another practitioner": {"Cookie": f"session={staff_cookie(s, 'practitioner')}"}
               }.get(who)
    with s["app"].app_context():
        row, doctor = Appointment.get_by_id(s["appt"].id), User.get_by_id(s["doctor"].id)
        if headers is not None:
            pass
        elif who.endswith("call ended"):
            row.end_call(doctor)
        else:
            row.send_back(doctor, row.starts_at)
        db.close()
    assert close_of(open_staff(s, headers=headers)) == closed


def test_the_call_page_carries_what_each_close_code_asks(served):
    """js/call/ reads the table from the page: the codes and what they ask exist once, in events.py."""
    page = http(served, served["appt"]).get(f"/v/{served['appt'].ref}/call").get_data(as_text=True)
    closes = json.loads(html.unescape(re.search(r'data-closes="([^"]*)"', page).group(1)))
    assert closes == {str(code): action for code, action in events.CALL_CLOSES.items()}
    assert all(4000 <= int(code) < 5000 for code in closes)
    assert sorted(closes.values()) == ["ended", "handed-over", "reload", "reload", "reload", "replaced", "retry"]
