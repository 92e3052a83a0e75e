"""Several relay workers: each answers its load, a visit is pinned to the least-loaded live one in
the database, every web process routes it there, a dead worker's visits move, media ports stay in range.

The workers are real ``python -m webapp.relay`` processes (tests/relay_helpers.py); a call they carry
is a participant's signaling connection holding a room (no media needed to count as a call).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from types import SimpleNamespace

import pytest

from conftest import login_as, make_app, make_appointment, make_practice, make_user
from relay_helpers import ROOT, SECRET, Caller, start_worker_process, stop_worker_process, ticket
from webapp.models import Appointment, db
from webapp.relay import client, protocol
from webapp.relay.ice import use_host_addresses
from webapp.visit.relays import RelayPlace

DEAD = "ws://127.0.0.1:9"       # nothing listens on the discard port: connection refused


def get_load(url: str) -> dict:
    with urllib.request.urlopen(url.replace("ws://", "http://") + "/load", timeout=5) as response:
        assert response.headers["Content-Type"] == "application/json"
        return json.loads(response.read())


def wait_load(url: str, **expected) -> dict:
    """The worker's load once it shows ``expected`` (a call left: the worker drops it a moment later)."""
    deadline = time.monotonic() + 5
    while True:
        load = get_load(url)
        if all(load[k] == v for k, v in expected.items()) or time.monotonic() > deadline:
            assert {k: load[k] for k in expected} == expected
            return load
        time.sleep(0.05)


class Calls:
    """Rooms held on workers by signaling connections, closed at the end."""

    def __init__(self) -> None:
        self.conns = []

    def hold(self, url: str, room: str, role: str = "patient") -> None:
        conn = client.connect(url, ticket(room, role))
        assert isinstance(conn.receive(timeout=5), protocol.PeerState)    # joined: the room exists
        self.conns.append(conn)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


@pytest.fixture(scope="module")
def workers():
    """Three workers for the module; each test leaves them without calls."""
    started = [start_worker_process(strict=False) for _ in range(3)]
    yield [url for _, url in started]
    for proc, _ in started:
        stop_worker_process(proc)


@pytest.fixture
def calls(workers):
    held = Calls()
    yield held
    held.close()
    for url in workers:
        wait_load(url, calls=0)


def another_process(app, urls: list[str]) -> RelayPlace:
    """What another web process (same database, its own load cache) knows of the relay."""
    return RelayPlace(SimpleNamespace(config={**app.config, "RELAY_URLS": urls}))


def visit(**fields):
    return make_appointment(starts_in=dt.timedelta(minutes=5), **fields)


def pin_of(appt) -> str | None:
    return Appointment.get_by_id(appt.id).relay_url


def test_the_worker_answers_its_load_as_json():
    proc, url = start_worker_process(strict=False, env={"RELAY_MAX_CALLS": "1"})
    held = Calls()
    try:
        load = get_load(url)
        assert load == {"calls": 0, "participants": 0, "max_calls": 1, "full": False, "cpu": load["cpu"],
                        "udp_ports": None}
        assert isinstance(load["cpu"], float) and 0 <= load["cpu"] < 1
        held.hold(url, "room-a", "patient")
        held.hold(url, "room-a", "practitioner")
        assert get_load(url) | {"cpu": 0} == {"calls": 1, "participants": 2, "max_calls": 1, "full": True,
                                              "cpu": 0, "udp_ports": None}
        # The websocket port still speaks websocket: only /load is plain HTTP.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url.replace("ws://", "http://") + "/other", timeout=5)
        refused.value.close()
        assert refused.value.code == 426        # Upgrade Required
    finally:
        held.close()
        stop_worker_process(proc)


def test_a_new_visit_is_pinned_to_the_least_loaded_live_worker_and_every_process_follows_the_pin(
        tmp_path, workers, calls):
    a, b, c = workers
    calls.hold(a, "busy-1")
    calls.hold(c, "busy-2")
    app = make_app(tmp_path, RELAY_URLS=[DEAD, a, b, c], RELAY_LOAD_TTL=60)    # loads read once, here
    make_practice()
    appt = visit()
    place = app.extensions["relay"]
    assert place.url_for_visit(appt.id) == b        # the dead one skipped, b carries no call
    assert pin_of(appt) == b
    # Another web process, whose own choice would be c (b carries this visit and another call now),
    # routes the visit's other side to b all the same.
    calls.hold(b, appt.ref)
    calls.hold(b, "busy-3")
    other = another_process(app, [c, a, b])
    assert other.choose() == c
    assert other.url_for_visit(appt.id) == b
    # A burst of new visits within one reading of the loads spreads: each choice counts as a call.
    first, second = visit(), visit()
    assert [place.url_for_visit(first.id), place.url_for_visit(second.id)] == [a, b]
    db.close()


def test_a_full_worker_is_skipped_and_taken_only_when_all_are_full(tmp_path, workers, calls):
    proc, small = start_worker_process(strict=False, env={"RELAY_MAX_CALLS": "1"})
    try:
        a = workers[0]
        calls.hold(small, "one")                 # full with one call
        calls.hold(a, "two")
        calls.hold(a, "three")
        app = make_app(tmp_path, RELAY_URLS=[small, a])
        make_practice()
        place = app.extensions["relay"]
        assert place.url_for_visit(visit().id) == a
        alone = another_process(app, [small])
        appt = visit()
        assert alone.url_for_visit(appt.id) == small     # it answers FULL: the call waits (the bridge's job)
        db.close()
    finally:
        calls.close()
        stop_worker_process(proc)


def test_a_dead_workers_visit_is_re_pinned_once_for_both_sides(tmp_path, workers):
    proc, doomed = start_worker_process(strict=False)
    b, c = workers[1], workers[2]
    app = make_app(tmp_path, RELAY_URLS=[doomed, b, c])
    make_practice()
    appt = visit()
    place = app.extensions["relay"]
    assert place.url_for_visit(appt.id) == doomed
    other = another_process(app, [doomed, c, b])
    assert other.url_for_visit(appt.id) == doomed
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=5)
    assert place.repin(appt.id, doomed) == b          # this side's choice, first
    assert other.repin(appt.id, doomed) == b          # the other side would choose c: it finds b
    assert other.url_for_visit(appt.id) == b and pin_of(appt) == b
    db.close()


def test_a_later_save_of_the_visit_keeps_its_pin(tmp_path):
    make_app(tmp_path)
    make_practice()
    appt = visit()
    stale = Appointment.get_by_id(appt.id)
    assert Appointment.pin_relay(appt.id, "ws://w1") == "ws://w1"
    assert Appointment.pin_relay(appt.id, "ws://w2") == "ws://w1"           # already pinned: kept
    assert Appointment.pin_relay(appt.id, "ws://w2", replacing="ws://w1") == "ws://w2"
    stale.motive = "Contrôle"
    stale.save()                                     # loaded before the re-pin, saved after
    assert pin_of(appt) == "ws://w2" and Appointment.get_by_id(appt.id).motive == "Contrôle"
    db.close()


def test_healthz_lists_each_workers_load_and_pinned_visits(tmp_path, workers, calls):
    a = workers[0]
    app = make_app(tmp_path, RELAY_URLS=[a, DEAD])
    make_practice()
    admin = make_user("admin")
    ongoing, ended = visit(status="in_call"), visit(status="in_call")
    Appointment.update(relay_url=a).execute()
    Appointment.update(call_ended_at=Appointment.starts_at).where(Appointment.id == ended.id).execute()
    calls.hold(a, ongoing.ref)
    db.close()
    client_ = app.test_client()
    login_as(client_, admin)
    workers_seen = client_.get("/healthz").get_json()["relay"]["workers"]
    assert workers_seen[0] | {"cpu": 0} == {"url": a, "ok": True, "calls": 1, "participants": 1, "cpu": 0,
                                            "full": False, "max_calls": 0, "pinned": 1}
    assert workers_seen[1] == {"url": DEAD, "ok": False, "calls": None, "participants": None, "cpu": None,
                               "full": None, "max_calls": None, "pinned": 0}
    # The same, for people, on the administration's page.
    rows = [re.sub(r"\d+ % of a core", "N % of a core", " | ".join(re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)))
            for row in re.findall(r"<tr>(.*?)</tr>", client_.get("/admin/").get_data(as_text=True).split(
                'id="relay-workers"')[1], re.S)]
    assert rows[1:] == [f"{a} | Working | 1 | 1 | N % of a core | 1", f"{DEAD} | Unreachable |  |  |  | 0"]


# The media ports.

def worker_udp_ports(pid: int) -> set[int]:
    """The UDP ports of the process's sockets: its socket inodes (/proc/<pid>/fd) in /proc/<pid>/net/udp."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("udp", "udp6"):
        with open(f"/proc/{pid}/net/{table}") as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.real_clock
def test_the_media_sockets_bind_inside_the_configured_range():
    use_host_addresses(["127.0.0.1"])       # the callers, in this process, stay on loopback too
    proc, url = start_worker_process("--udp-ports", "41230-41239")
    try:
        assert get_load(url)["udp_ports"] == [41230, 41239]

        async def call() -> None:
            async with Caller(url, "ranged", "practitioner") as doctor, Caller(url, "ranged", "patient") as patient:
                await doctor.call()
                await patient.call()
                await doctor.wait_frames(audio=10, video=5)
                await patient.wait_frames(audio=10, video=5)
                ports.update(worker_udp_ports(proc.pid))
        ports: set[int] = set()
        asyncio.run(call())
        # One socket per participant (one host address; BUNDLE and rtcp-mux: one ICE component).
        assert len(ports) == 2 and ports <= set(range(41230, 41240))
    finally:
        stop_worker_process(proc)


@pytest.mark.parametrize("args, env, message", [
    (["--udp-ports", "40999-40000"], {}, "must lie within 1024-65535, low port first, not '40999-40000'"),
    ([], {"RELAY_UDP_PORTS": "40000"}, "must be a range of UDP ports such as 40000-40999, not '40000'"),
])
def test_a_bad_port_range_stops_the_worker_with_a_clear_message(args, env, message):
    result = subprocess.run([sys.executable, "-m", "webapp.relay", "--port", "0", *args], cwd=ROOT,
                            env={**os.environ, "SECRET_KEY": SECRET, "PYTHONPATH": str(ROOT), **env},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
