"""Live sockets through a live server: a takeover gives the old socket's thread back at once,
and one patient or one staff member cannot hold more than a few of the server's threads."""
from __future__ import annotations

import threading

import flask_sock
import pytest
from simple_websocket import Client, ConnectionClosed

from webapp import events
from webapp.access import COOKIE

# Well under the 10 s the old socket waited for the page to close it (the server now closes a
# page that does not after 1 s), and the test's only clock.
RECEIVE_TIMEOUT = 5

# The Origin a page of the site sends (its PUBLIC_URL in the tests); the server refuses any other.
SITE = "https://cabinet.test"


@pytest.fixture
def served(served_visit):
    return served_visit


def open_live(s):
    ws = Client.connect(f"{s['ws']}/v/{s['appt'].ref}/live", headers={"Cookie": f"{COOKIE}={s['cookie']}", "Origin": SITE})
    first = ws.receive(timeout=RECEIVE_TIMEOUT)
    assert first is not None and 'id="waiting-status"' in first
    return ws


def messages_until_closed(ws) -> list[str] | None:
    """Everything the server sends before it closes the socket; None if it is still open after the timeout."""
    seen = []
    try:
        while True:
            raw = ws.receive(timeout=RECEIVE_TIMEOUT)
            if raw is None:
                return None if ws.connected else seen
            seen.append(raw)
    except ConnectionClosed:
        return seen


def released_down_to(key: str, n: int) -> bool:
    """The server's threads hold at most ``n`` slots of ``key`` within the receive timeout."""
    done = threading.Event()
    for _ in range(RECEIVE_TIMEOUT * 20):
        if events.sockets.count(key) <= n:
            return True
        done.wait(0.05)
    return False


def test_six_tabs_each_take_over_and_the_older_socket_is_closed_by_the_server(served):
    key = f"patient:{served['appt'].ref}"
    sockets = [open_live(served)]
    for _ in range(5):
        sockets.append(open_live(served))
        older = messages_until_closed(sockets[-2])
        # The older tab got the takeover notice and then a server-side close, within the receive timeout.
        assert older is not None, "the taken-over socket is still open"
        assert any('data-status="takeover"' in m for m in older)
        assert sockets[-2].close_reason == events.TAKEN_OVER
        assert events.sockets.count(key) <= events.PATIENT_SOCKETS
    # The last older socket's thread gives its slot back as it ends (after announcing the tab left).
    assert released_down_to(key, 1) and sockets[-1].connected
    sockets[-1].close()


def test_patient_sockets_over_the_cap_are_refused(served):
    """Signaling and waiting-room sockets share the appointment's cap; here its slots are taken directly."""
    key = f"patient:{served['appt'].ref}"
    for _ in range(events.PATIENT_SOCKETS):
        assert events.sockets.acquire(key, events.PATIENT_SOCKETS)
    try:
        ws = Client.connect(f"{served['ws']}/v/{served['appt'].ref}/live",
                            headers={"Cookie": f"{COOKIE}={served['cookie']}", "Origin": SITE})
        assert messages_until_closed(ws) == [] and ws.close_reason == events.TOO_MANY
    finally:
        for _ in range(events.PATIENT_SOCKETS):
            events.sockets.release(key)
    assert events.sockets.count(key) == 0


def held_up_to(key: str, n: int) -> bool:
    """The server's threads hold ``n`` slots of ``key`` within the receive timeout."""
    done = threading.Event()
    for _ in range(RECEIVE_TIMEOUT * 20):
        if events.sockets.count(key) >= n:
            return True
        done.wait(0.05)
    return False


def test_a_staff_member_holds_at_most_the_cap_of_day_sockets(served):
    headers = {"Cookie": f"session={served['session']}", "Origin": SITE}
    key = f"staff:{served['doctor'].id}"
    open_ones = []
    for n in range(1, events.STAFF_SOCKETS + 1):
        ws = Client.connect(f"{served['ws']}/today/live", headers=headers)
        open_ones.append(ws)
        # The handshake is answered before the server's thread takes its slot: on a busy machine
        # the next socket could take it first, and this one be the refused one.
        assert held_up_to(key, n)
    extra = Client.connect(f"{served['ws']}/today/live", headers=headers)
    assert messages_until_closed(extra) == [] and extra.close_reason == events.TOO_MANY
    assert events.sockets.count(key) == events.STAFF_SOCKETS
    for ws in open_ones:
        assert ws.connected
        ws.close()


@pytest.mark.real_clock
def test_a_socket_opened_before_the_wall_clock_steps_back_still_answers(tmp_path):
    """A socket opened at the tests' frozen 2036, then the wall clock back at today (time-machine
    stops, as between two tests; NTP does it too): the server's socket thread scheduled its next
    ping with the wall clock and died of poll's "timeout is too large" at its next frame. The
    socket then went unanswered, and a test client's thread held the whole run at its exit."""
    import time_machine
    from flask import Flask
    from werkzeug.serving import make_server
    from conftest import FROZEN_AT

    app = Flask(__name__)
    app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": 25}
    echo = flask_sock.Sock(app)

    @echo.route("/echo")
    def answer(ws):
        while True:
            ws.send(ws.receive())

    events.pings_on_the_monotonic_clock()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with time_machine.travel(FROZEN_AT, tick=True):
            ws = Client.connect(f"ws://127.0.0.1:{server.server_port}/echo")
            assert ws.thread.daemon                 # conftest: a test's client never holds the run's exit
            ws.send("in 2036")
            assert ws.receive(timeout=RECEIVE_TIMEOUT) == "in 2036"
        ws.send("back today")                     # wakes the server's thread on today's clock
        assert ws.receive(timeout=RECEIVE_TIMEOUT) == "back today"
        ws.close()
    finally:
        server.shutdown()


class GoneUnderneath:
    """A page's socket whose page has just closed it: simple-websocket's reader thread handled
    the close, so wsproto refuses the next frame (the race the bridge met on "bye")."""
    connected = True

    def __init__(self):
        self.tried = threading.Event()

    def send(self, text):
        from wsproto.utilities import LocalProtocolError
        self.tried.set()
        raise LocalProtocolError("Event TextMessage cannot be sent in state ConnectionState.CLOSED.")

    def receive(self, timeout=None):
        return None

    def close(self, reason=None, message=None):
        self.closed_with = (reason, message)


def test_a_page_gone_under_the_day_push_ends_it_quietly(app):
    """A patient arrives as the secretary's tab closes: the day's re-render meets the closed socket
    and the push loop ends, rather than its thread dying with an exception."""
    from flask import g
    from conftest import make_user
    from webapp import today
    from webapp.models import Practice
    with app.app_context():
        doctor = make_user("practitioner")
    ws = GoneUnderneath()
    arrival = threading.Timer(0.2, events.publish, (events.today_channel(doctor.id), "arrived"))
    with app.test_request_context("/today/live"):
        g.user, g.practice = doctor, Practice.get()
        arrival.start()
        today._push_day(ws, [doctor.id])          # returns: nothing escapes
    assert ws.tried.is_set()


def test_a_page_gone_under_the_waiting_room_ends_it_quietly_and_says_the_patient_left(app):
    from conftest import make_appointment
    from webapp.tokens import make_patient_cookie
    from webapp.access import link_expires_at
    with app.app_context():
        appt = make_appointment()
        cookie = make_patient_cookie("test-secret", appt.id, appt.link_version, link_expires_at(appt))
    ws = GoneUnderneath()
    with app.test_request_context(f"/v/{appt.ref}/live", headers={"Cookie": f"{COOKIE}={cookie}", "Origin": SITE}):
        app.view_functions["patient.live"].__wrapped__(ws, appt.ref)   # returns: nothing escapes
    # Its slot is back and the patient no longer counts as online.
    assert getattr(ws, "closed_with", None) is None and ws.tried.is_set()
    assert events.sockets.count(f"patient:{appt.ref}") == 0
    assert not events.patient_tabs.online(appt.ref)
