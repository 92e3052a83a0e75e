"""The patient's live waiting room; the practitioner's "admit" leads to the call (``webapp/visit``).

The page subscribes over a websocket (htmx's ws extension); any change to the
appointment publishes ``events.REFRESH`` on its channel and the socket renders
the status again, in the patient's language. A slower poll backs it up.
"""
from __future__ import annotations

import json
import logging
import time

from flask import render_template
from flask_babel import gettext as _

from .. import events
from ..access import current_appointment
from ..answers import full_page_load, no_store, wants_fragment
from ..events import announce, waiting_channel
from ..models import Appointment, db
from . import bp
from .join import step_appointment

log = logging.getLogger(__name__)

# The status shows nothing that changes with time alone, and every change comes as an event (a lost
# PostgreSQL listener sends REFRESH to every page when it is back): the idle render is only a safety
# net. At 30 s, 900 open waiting rooms cost 30 renders a second doing nothing (bench/sockets.py).
IDLE_REFRESH_SECONDS = 300
MAX_CLIENT_MESSAGE = 4096
TAKEOVER_GRACE_SECONDS = 1.0     # was 10: one patient's old tabs held the server's threads


def status_fragment(appt, oob: bool = False) -> str:
    return render_template("patient/_waiting_status.html", appt=appt, oob=oob)


@bp.route("/v/<ref>/waiting")
@no_store
def waiting(ref):
    """The waiting room: entering it tells the practitioner; an htmx poll gets the status only."""
    appt, elsewhere = step_appointment(ref, "patient.waiting")
    if elsewhere:
        return elsewhere
    polled = wants_fragment()
    if appt.status == "scheduled" and not polled:  # a poll never brings back a patient who was sent back
        appt.enter_waiting_room()
        announce(appt)
    if polled:
        return status_fragment(appt)
    return full_page_load() or render_template("patient/waiting.html", appt=appt)


def _client_message(ws, appt, raw) -> None:
    """The page sends only heartbeats ({"type": "ping"}); anything else gets a visible, harmless error."""
    try:
        message = json.loads(raw) if isinstance(raw, str) and len(raw) <= MAX_CLIENT_MESSAGE else None
    except ValueError:
        message = None
    if not isinstance(message, dict) or message.get("type") != "ping":
        ws.send(render_template("patient/_live_error.html",
                                message=_("Your page sent something we did not understand. It keeps working.")))


@events.sock.route("/v/<ref>/live", bp=bp)
def live(ws, ref):
    """Push the waiting status whenever it changes; the newest tab takes over from older ones."""
    try:
        appt = current_appointment(ref)
    except Exception:  # noqa: BLE001 - an invalid cookie gets a closed socket, never data
        events.close_with(ws, 1008, "link")
        return
    appointment_id = appt.id
    db.close()  # a socket lives long: hold a connection only while rendering
    with events.patient_slot(ref) as admitted:
        if not admitted:
            events.close_with(ws, events.TOO_MANY, "too many pages")
            return
        with events.subscribe(waiting_channel(appt)) as subscription:
            events.patient_tabs.claim(ref, subscription)
            announce(appt)  # the practitioner sees the patient come online
            try:
                _push_loop(ws, ref, appointment_id, subscription)
            except events.SOCKET_GONE:
                pass
            finally:
                events.patient_tabs.release(ref, subscription)
                with db.connection_context():
                    announce(Appointment.get_by_id(appointment_id))


def _close_taken_over(ws) -> None:
    """Give the thread back promptly once a newer tab took over.

    The notice replaces the element that holds the socket, so the page closes it itself within
    milliseconds and htmx does not reconnect. A page that does not is closed from here after a
    short grace, with TAKEN_OVER, a code htmx never retries. Closing at once is not enough: under
    werkzeug's server a server-side close is followed by a stray status line, Chromium then fails
    the socket and drops the notice still queued, and the old tab neither says nor knows it stopped.
    """
    deadline = time.monotonic() + TAKEOVER_GRACE_SECONDS
    while ws.connected and time.monotonic() < deadline:
        ws.receive(timeout=max(0.0, deadline - time.monotonic()))
    if ws.connected:
        events.close_with(ws, events.TAKEN_OVER, "taken over")


def _push_loop(ws, ref, appointment_id, subscription):
    send = lambda: ws.send(_render_status(appointment_id))  # noqa: E731
    send()
    subscription.watch(ws)      # its messages and its close wake the loop: no polling
    while ws.connected:
        item = subscription.get(timeout=subscription.patience(IDLE_REFRESH_SECONDS))
        if isinstance(item, events.Takeover):
            ws.send(render_template("patient/_waiting_takeover.html", ref=ref))
            _close_taken_over(ws)
            return
        if item is not None or subscription.idle_for(IDLE_REFRESH_SECONDS):
            send()
        raw = ws.receive(timeout=0)
        while raw is not None:
            with db.connection_context():
                _client_message(ws, Appointment.get_by_id(appointment_id), raw)
            raw = ws.receive(timeout=0) if ws.connected else None


def _render_status(appointment_id) -> str:
    with db.connection_context():
        return status_fragment(Appointment.get_by_id(appointment_id), oob=True)
