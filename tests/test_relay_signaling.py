"""The worker's signaling, embedded in this process, through the bridge's blocking client."""
import itertools
import os
import socket
import time

import pytest

from webapp.relay import protocol as p
from webapp.relay.client import ConnectionClosed, RelayUnavailable, connect
from webapp.relay.worker import start_embedded
from webapp.tokens import make_room_ticket
from tests.relay_helpers import SDP_WITHOUT_CODECS, SECRET, ticket

pytestmark = pytest.mark.real_clock   # media across processes: no dates involved


@pytest.fixture(scope="module")
def relay():
    embedded = start_embedded(SECRET, host_addresses=["127.0.0.1"])
    yield embedded
    embedded.stop()


_rooms = itertools.count()


def fresh(room: str) -> str:
    """A room of its own for each parametrized case: the worker forgets a closed connection
    asynchronously, so the next case joining the same room could find it still there."""
    return f"{room}-{next(_rooms)}"


def join(relay, room, role):
    conn = connect(relay.url, ticket(room, role))
    assert receive(conn) == p.PeerState(role, "joined")
    return conn


def receive(conn, timeout=5):
    msg = conn.receive(timeout)
    assert msg is not None, "the worker did not answer"
    return msg


def test_embedded_relay_listens_on_loopback(relay):
    assert relay.url.startswith("ws://127.0.0.1:")


@pytest.mark.parametrize("first, code", [
    (p.Join("not-a-ticket"), p.BAD_TICKET),
    (p.Join(make_room_ticket("another-secret", "r", "patient", "x")), p.BAD_TICKET),
    (p.Join(make_room_ticket(SECRET, "r", "patient", "x", now=0)), p.EXPIRED_TICKET),
    (p.Ping(), p.NOT_JOINED),
    (p.Offer("v=0\r\nm=audio 9 UDP 0\r\n"), p.NOT_JOINED),
])
def test_before_a_valid_join_everything_gets_an_error_and_the_connection_stays(relay, first, code):
    conn = connect(relay.url, "garbage")
    assert receive(conn).code == p.BAD_TICKET
    conn.send(first)
    assert receive(conn).code == code
    conn.send(p.Join(ticket(fresh("room-join"), "patient")))
    assert receive(conn) == p.PeerState("patient", "joined")
    conn.close()


@pytest.mark.parametrize("raw, code", [
    ("{", p.BAD_JSON),
    ('{"v": 1, "type": "dance"}', p.UNKNOWN_TYPE),
    (p.encode(p.Stats("patient")), p.UNKNOWN_TYPE),
    ('{"v": 1, "type": "answer", "sdp": "v=0"}', p.UNKNOWN_TYPE),
    ('{"v": 2, "type": "ping"}', p.BAD_VERSION),
    ('{"v": 1, "type": "offer", "sdp": "v=0 nothing"}', p.BAD_SDP),
    ('{"v": 1, "type": "candidate", "candidate": null}', p.BAD_STATE),
    ('{"v": 1, "type": "chat", "text": ""}', p.BAD_FIELD),
    ("x" * 70_000, p.TOO_LARGE),
])
def test_malformed_messages_get_an_error_and_the_connection_stays(relay, raw, code):
    conn = join(relay, fresh("room-bad"), "patient")
    conn._ws.send(raw)
    assert receive(conn).code == code
    conn.send(p.Ping())
    assert receive(conn) == p.Pong()
    conn.close()


@pytest.mark.parametrize("sdp, code", [
    ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", p.BAD_SDP),        # no ICE, no DTLS
    (SDP_WITHOUT_CODECS, p.NEGOTIATION_FAILED),
])
def test_unusable_offers_get_an_error_and_a_later_offer_may_follow(relay, sdp, code):
    conn = join(relay, fresh("room-sdp"), "patient")
    conn.send(p.Offer(sdp))
    assert receive(conn).code == code
    conn.send(p.Candidate("candidate:1 1 UDP 2122252543 127.0.0.1 50000 typ host", "0"))
    assert receive(conn).code == p.BAD_STATE          # the refused offer left no connection
    conn.close()


def test_join_twice_is_refused(relay):
    conn = join(relay, "room-twice", "patient")
    conn.send(p.Join(ticket("room-twice", "patient")))
    assert receive(conn).code == p.ALREADY_JOINED
    conn.close()


def test_presence_chat_mute_camera_and_bye_between_the_two(relay):
    doc = join(relay, "room-talk", "practitioner")
    pat = join(relay, "room-talk", "patient")
    assert receive(doc) == p.PeerState("patient", "joined")
    assert receive(pat) == p.PeerState("practitioner", "joined")

    pat.send(p.Chat("J'ai mal au genou"))     # chat is the web app's: the worker never carries it
    assert receive(pat).code == p.UNKNOWN_TYPE

    doc.send(p.CameraRequest(facing="environment"))
    assert receive(pat) == p.CameraRequest(facing="environment", sender="practitioner")
    pat.send(p.CameraReply(False))
    assert receive(doc) == p.CameraReply(False, sender="patient")
    pat.send(p.Mute("video", True))
    assert receive(doc) == p.Mute("video", True, sender="patient")

    assert relay.worker.snapshot()["participants"] >= 2
    pat.send(p.Bye())
    assert receive(doc) == p.Bye(sender="patient")
    assert receive(doc) == p.PeerState("patient", "left")
    doc.close()


def test_a_second_connection_of_the_same_role_replaces_the_first(relay):
    doc = join(relay, "room-again", "practitioner")
    first = join(relay, "room-again", "patient")
    assert receive(first) == p.PeerState("practitioner", "joined")
    assert receive(doc) == p.PeerState("patient", "joined")
    second = connect(relay.url, ticket("room-again", "patient"))
    assert receive(first).code == p.REPLACED
    assert receive(doc) == p.PeerState("patient", "reconnecting")
    assert receive(second) == p.PeerState("patient", "reconnecting")
    assert receive(second) == p.PeerState("practitioner", "joined")
    for conn in (doc, first, second):
        conn.close()


# simple_websocket 1.1.0 leaves its socket to the garbage collector when connect() fails
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_connect_to_a_missing_worker_says_so():
    with pytest.raises(RelayUnavailable):
        connect("ws://127.0.0.1:9", "ticket")


@pytest.mark.parametrize("answer", ["closes at once", "says nothing"])
def test_a_worker_that_does_not_complete_the_handshake_is_unavailable(monkeypatch, answer):
    """A worker that closes the connection before answering (wsproto's 'Bad HTTP message') or that
    never answers: the bridge's thread used to end, or wait for ever, and its page never heard
    "ready". Now the bridge is told the worker is unavailable, and retries it with its back-off."""
    import threading
    from webapp.relay import client
    monkeypatch.setattr(client, "HANDSHAKE_TIMEOUT", 0.3)
    server = socket.create_server(("127.0.0.1", 0))
    held = []

    def serve():
        with server:
            conn, _ = server.accept()
            conn.recv(4096)
            conn.close() if answer == "closes at once" else held.append(conn)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started = time.monotonic()
    with pytest.raises(RelayUnavailable):
        connect(f"ws://127.0.0.1:{server.getsockname()[1]}", "ticket")
    assert time.monotonic() - started < 3
    thread.join(3)
    for conn in held:
        conn.close()


def test_a_write_after_the_worker_closed_is_the_same_end():
    """The worker's close, handled by the reader thread just before the bridge writes: wsproto
    refuses the frame ('cannot be sent in state CLOSED'). That is the worker gone
    (ConnectionClosed, which the bridge handles), not an exception that ends its thread."""
    from wsproto.utilities import LocalProtocolError
    from simple_websocket import ConnectionClosed
    from webapp.relay.client import RelayConnection

    class ClosedUnderneath:
        def send(self, text):
            raise LocalProtocolError("Event TextMessage cannot be sent in state ConnectionState.CLOSED.")

        def close(self):
            raise LocalProtocolError("Event CloseConnection cannot be sent in state ConnectionState.CLOSED.")
    conn = RelayConnection(ClosedUnderneath())
    with pytest.raises(ConnectionClosed):
        conn.send(p.Ping())
    conn.close()                                   # quietly

    class ShutUnderneath:                          # the reader thread closed the socket first
        def send(self, text):
            raise OSError(9, "Bad file descriptor")
    with pytest.raises(ConnectionClosed):
        RelayConnection(ShutUnderneath()).send(p.Ping())


def silent_websocket(url: str, room: str, role: str) -> socket.socket:
    """A websocket that joins and then never reads (a tiny receive buffer fills at once)."""
    host, port = url.removeprefix("ws://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    payload = p.encode(p.Join(ticket(room, role))).encode()
    mask = os.urandom(4)
    sock.sendall(bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") + mask
                 + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return sock


def test_a_participant_who_stops_reading_is_dropped_instead_of_queueing_without_end(relay):
    with silent_websocket(relay.url, "room-silent", "practitioner"):
        pat = join(relay, "room-silent", "patient")
        assert receive(pat) == p.PeerState("practitioner", "joined")
        for sent in range(1, 200001):         # mute states relayed to the silent one: ~12 MB, more than buffers hold
            pat.send(p.Mute("audio", sent % 2 == 0))
            if sent % 100 == 0 and any(pat.receive(0) == p.PeerState("practitioner", "left")
                                       for _ in range(200)):
                break
        else:
            raise AssertionError("the worker kept queueing for a participant who does not read")
        assert relay.worker.snapshot()["participants"] == 1
        pat.close()


def test_past_max_calls_a_new_call_is_refused_and_a_running_one_takes_its_people_back():
    small = start_embedded(SECRET, host_addresses=["127.0.0.1"], max_calls=1)
    try:
        doc = join(small, "call-1", "practitioner")
        assert small.worker.full()
        other = connect(small.url, ticket("call-2", "practitioner"))
        assert receive(other) == p.Error(p.FULL, "this worker carries all the calls it can")
        with pytest.raises(ConnectionClosed):
            other.receive(5)                            # and the worker closes that connection
        pat = join(small, "call-1", "patient")           # the running call's second side: taken
        doc.close()
        pat.close()
        deadline = time.monotonic() + 5
        while small.worker.full():                       # the call ended: a place is free again
            assert time.monotonic() < deadline
            time.sleep(0.02)
        join(small, "call-2", "practitioner").close()
    finally:
        small.stop()


def test_a_worker_stops_promptly_though_a_participant_never_answers_its_close():
    """Shutting down (an app process's exit, the worker's SIGTERM) waited for every connection's
    closing handshake, up to websockets' 10 s each: a participant that no longer reads (a frozen
    page, a bridge gone) held the stop past its own 10 s, and it ended in a TimeoutError."""
    embedded = start_embedded(SECRET, host_addresses=["127.0.0.1"])
    with silent_websocket(embedded.url, "room-shutdown", "practitioner"):
        time.sleep(0.2)                                  # joined
        started = time.monotonic()
        embedded.stop()                                  # raises nothing
        assert time.monotonic() - started < 5
