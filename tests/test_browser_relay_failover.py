"""Two relay workers; the one carrying a call in Chromium is killed: both sides move to the other.

The visit is pinned to the first worker (the least loaded: both idle, first listed). SIGKILL, as
a crash or the machine's end would: both bridges see their worker's websocket close, one re-pins the
visit to the live worker, the other finds the new pin, and both pages decode again within 5 s.
Run through tests/isolated.sh (a loopback-only network namespace).
"""
from __future__ import annotations

import os
import signal
import time

import pytest

from browser import chromium, live_server
from relay_helpers import start_worker_process, stop_worker_process
from test_browser_call import call_app, open_both  # noqa: F401 - call_app is a fixture
from webapp.models import Appointment, Incident

pytestmark = [pytest.mark.browser, pytest.mark.real_clock]


def test_a_killed_workers_call_moves_to_the_other_worker_within_5_s(call_app):  # noqa: F811
    (first, first_url), (second, second_url) = start_worker_process(), start_worker_process()
    try:
        app, made = call_app(RELAY_URLS=[first_url, second_url])
        with live_server(app) as url, chromium() as browser:
            doctor, patient = open_both(browser, url, made)
            doctor.wait_decoding()
            patient.wait_decoding()
            with app.app_context():
                assert Appointment.get_by_id(made["appt"].id).relay_url == first_url

            os.kill(first.pid, signal.SIGKILL)
            first.communicate(timeout=5)
            killed = time.monotonic()
            doctor.wait_decoding(timeout=5)
            patient.wait_decoding(timeout=max(0.5, 5 - (time.monotonic() - killed)))
            assert time.monotonic() - killed < 5
            assert doctor.problems == [] and patient.problems == []
        with app.app_context():
            assert Appointment.get_by_id(made["appt"].id).relay_url == second_url
            kinds = {(i.kind, i.role) for i in Incident.select()}
            assert {("relay_lost", "practitioner"), ("relay_lost", "patient"),
                    ("relay_moved", "practitioner"), ("relay_moved", "patient")} <= kinds
    finally:
        stop_worker_process(first)
        stop_worker_process(second)
