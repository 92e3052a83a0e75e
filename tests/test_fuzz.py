"""Property-based fuzzing: generated input to every form, query and signaling message.

Never a 500; a refused request changes nothing stored; a signaling frame the bridge refuses gets an
``error`` frame back, never an exception. Derandomized, so CI sees the same cases every run.
"""
from __future__ import annotations

import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import db_snapshot, make_appointment, make_user
from test_bad_input import AUDITS_REFUSAL, FORMS, KEEPS_DRAFT, QUERIES, world  # noqa: F401 - ``world`` is a fixture
from webapp.models import Appointment, ChatLine, db
from webapp.relay import protocol
from webapp.visit.bridge import Bridge

# Hypothesis warns when the global ``random`` moved while it drew an example; in a full run another
# thread can move it then (aiortc's RTCP loops draw their intervals from it), which the warning, and
# the 100 kB repr it builds of the strategy, turned into a failure (CI, once in four runs). The
# examples are drawn from Hypothesis' own seeded source either way (derandomize).
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")   # and its deprecations

FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# What a field may hold: text of any script, numbers written any way, huge strings, or nothing at all.
VALUES = st.one_of(
    st.none(),
    st.text(max_size=50),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["x" * 100_000, "²", "٣", "🩺" * 500, "2036-02-30", "-0", "1e309", " ", "\r\n"]),
)


def _fields(fields: dict):
    return st.fixed_dictionaries({name: VALUES for name in fields})


def _case(clients, ids, who, method, path, values):
    url = path.format(**ids)
    data = {k: v for k, v in values.items() if v is not None}
    before = db_snapshot()
    if method == "GET":
        response = clients[who].get(url, query_string=data)
    else:
        response = clients[who].post(url, data=data)
    assert response.status_code < 500, (values, response.status_code)
    if response.status_code >= 400:
        after = db_snapshot()
        if KEEPS_DRAFT.get(path) and response.status_code == 422:
            before.pop(KEEPS_DRAFT[path]), after.pop(KEEPS_DRAFT[path])
        if path in AUDITS_REFUSAL and response.status_code == 401:      # a failed sign-in is audited
            before.pop("AuditEvent"), after.pop("AuditEvent")
        assert after == before, values
    response.close()


# Forms cost a request and two snapshots of the database a case: fewer cases each, to stay near a minute.
FORM_FUZZ = settings(FUZZ, max_examples=15)


def _fuzz(clients, ids, who, method, path, fields):
    @(FORM_FUZZ if method == "POST" else FUZZ)
    @given(values=_fields(fields))
    def run(values):
        _case(clients, ids, who, method, path, values)
    run()


# One world for the whole table (building one per route cost more than the cases): 25 cases a query
# route, 15 a form.
def test_queries(world):  # noqa: F811
    clients, ids = world
    for who, path, fields in QUERIES:
        _fuzz(clients, ids, who, "GET", path, fields)


def test_forms(world):  # noqa: F811
    clients, ids = world
    for who, path, fields in FORMS:
        _fuzz(clients, ids, who, "POST", path, fields)


# Signaling messages.

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                max_size=4),
                    max_leaves=12)
KEYS = st.sampled_from(sorted({spec.metadata["spec"].key for cls in protocol.MESSAGE_TYPES.values()
                               for spec in cls.__dataclass_fields__.values()} | {"v", "type"}))
# An object with a real type and the right version, its fields right, wrong or missing.
TYPED = st.builds(lambda kind, extra, v: {**extra, "v": v, "type": kind},
                  st.sampled_from(sorted(protocol.MESSAGE_TYPES)), st.dictionaries(KEYS, JSON, max_size=5),
                  st.sampled_from([1, 1, 1, 2, "1", True, None]))
FRAMES = st.one_of(
    JSON.map(json.dumps),
    TYPED.map(json.dumps),
    st.text(max_size=100),
    st.binary(max_size=100),
    st.just("x" * (protocol.MAX_MESSAGE_BYTES + 1)),
    st.builds(lambda n: json.dumps({"v": 1, "type": "chat", "text": "a" * n}), st.integers(0, 3000)),
)


@FUZZ
@given(raw=FRAMES)
def test_decode_never_raises_and_what_it_accepts_encodes_back(raw):
    msg = protocol.decode(raw)
    assert isinstance(msg, (protocol.Message, protocol.ProtocolError))
    if isinstance(msg, protocol.ProtocolError):
        assert msg.code in protocol.ERROR_CODES
        assert protocol.decode(protocol.encode(msg.reply())) == msg.reply()
    else:
        assert protocol.decode(protocol.encode(msg)) == msg


class RecordingSocket:
    """A stand-in for the browser's websocket: keeps what the bridge sends."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed = False

    def send(self, text) -> None:
        self.sent.append(text)

    def close(self, reason=None, message=None) -> None:
        self.closed = True


def _bridge(appt, role, user_id):
    bridge = Bridge.__new__(Bridge)      # no worker: what the browser sends is judged before any relay
    bridge.ws, bridge.role, bridge.user_id = RecordingSocket(), role, user_id
    bridge.appointment_id, bridge.ref = appt.id, appt.ref
    bridge.conn, bridge.leaving, bridge.done = None, False, threading.Event()
    bridge._send_lock = threading.Lock()
    return bridge


@pytest.mark.parametrize("role", ["patient", "practitioner"])
def test_the_bridge_answers_every_frame_and_never_raises(app, role):
    with app.app_context():
        doctor = make_user("practitioner")
        appt = make_appointment(doctor)
        db.close()

    @FUZZ
    @given(raw=FRAMES)
    def run(raw):
        with app.test_request_context():
            bridge = _bridge(appt, role, doctor.id if role == "practitioner" else None)
            lines, before = ChatLine.select().count(), db_snapshot()
            bridge.from_browser(raw)
            sent = [json.loads(text) for text in bridge.ws.sent]
            msg = protocol.decode(raw)
            if isinstance(msg, protocol.Chat) and msg.text.strip():
                assert ChatLine.select().count() == lines + 1      # saved, then published to both sides
            elif isinstance(msg, protocol.Bye) and role == "practitioner":
                assert sent[-1]["type"] == "ended"
                Appointment.update(call_ended_at=None).where(Appointment.id == appt.id).execute()
            else:
                assert [s["type"] for s in sent] in (["error"], ["pong"]), (raw, sent)
                assert db_snapshot() == before
            assert not bridge.ws.closed and not bridge.done.is_set()     # the socket stays up
            db.close()
    run()
