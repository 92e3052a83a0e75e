"""The signaling bridge: one browser's websocket ⇄ its connection to the relay worker.

A thin loop per side: authenticate, mint a room ticket, connect to the worker,
then pass validated frames both ways. Chat never goes through the worker: it is
saved, then published on the visit's channel, which both sides' bridges
deliver, so it survives a worker crash. When the worker is lost the bridge
tells the browser, records an incident and joins again with a new ticket; when
the visit's pinned worker is dead (or full before the call began there), it
re-pins the visit to another live worker (relays.py) and tells the other side's
bridge on the visit's channel (``relay-moved``), which follows if it is elsewhere.
docs/signaling.md documents the frames the bridge adds (``ready``,
``history``, ``file``, ``ended``) and the close codes of a refused or ended socket
(``events.CALL_CLOSES``).

The end of a visit is saved before anyone hears of it: a patient's page told "bye" loads the
call page again, which must find the visit ended (else it would be served the call once more,
and its socket refused for good).
"""
from __future__ import annotations

import json
import logging
import secrets
import threading
import time

from flask import copy_current_request_context, current_app, g, has_request_context, url_for
from simple_websocket import ConnectionClosed
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BuildError

from .. import events
from ..access import current_appointment, own_visit_or_403
from ..events import visit_channel
from ..models import Appointment, ChatLine, Document, Incident, User, db
from ..relay import client, protocol
from ..tokens import make_room_ticket
from . import bp
from .relays import reachable, relay

log = logging.getLogger(__name__)

# Back-off between attempts to reach the worker; after the last one the browser is told to reload.
BACKOFF_SECONDS = (0.1, 0.25, 0.5, 1, 1, 2, 2, 3, 3, 5, 5, 5)
# Types only the worker (or the bridge) sends: a browser sending one gets an error.
NOT_FROM_BROWSERS = (protocol.Join, protocol.Answer, protocol.Error, protocol.PeerState,
                     protocol.Stats, protocol.Pong)


def frame(type: str, **fields) -> str:  # noqa: A002 - the wire's own name
    """A bridge-made frame (same framing as the protocol's)."""
    return json.dumps({"v": protocol.VERSION, "type": type, **fields}, separators=(",", ":"),
                      ensure_ascii=False)


def chat_item(line: ChatLine) -> dict:
    return {"type": "chat", "id": line.id, "from": line.author, "text": line.text,
            "at": line.at.strftime("%Y-%m-%dT%H:%M:%SZ")}


def file_item(doc: Document, urls: dict) -> dict:
    return {"type": "file", "id": doc.id, "from": doc.author, "name": doc.filename, "size": doc.size,
            "at": doc.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "urls": urls}


def file_urls(appt: Appointment, doc: Document) -> dict:
    """Each side downloads through its own route (its own credentials)."""
    return {"patient": url_for("visit.patient_file", ref=appt.ref, doc_id=doc.id),
            "practitioner": url_for("visit.staff_file", appointment_id=appt.id, doc_id=doc.id)}


def history(appt: Appointment) -> list[dict]:
    """Chat lines and files of the visit, oldest first."""
    items = [chat_item(line) for line in ChatLine.of(appt)]
    items += [file_item(doc, file_urls(appt, doc)) for doc in Document.of(appt).where(Document.source == "call")]
    return sorted(items, key=lambda item: (item["at"], item["type"], item["id"]))


def publish_file(appt: Appointment, doc: Document) -> None:
    """Each bridge reads the file's row and sends it with its own side's URL (events stay small)."""
    events.publish(visit_channel(appt.ref), frame("file", id=doc.id))


def closing_url(appt: Appointment) -> str:
    """The closing checklist, built by another blueprint; its path when that is not there yet."""
    try:
        return url_for("closing.checklist", appointment_id=appt.id)
    except BuildError:
        return f"/visits/{appt.id}/close"


def record_incident(appointment_id: int, kind: str, role: str, detail: str) -> None:
    try:
        with db.connection_context():
            Incident.create(appointment=appointment_id, kind=kind, role=role, detail=detail[:300])
    except Exception:  # noqa: BLE001 - losing an incident must never end a call
        log.exception("could not record incident %s", kind)


def note_media(appointment_id: int) -> None:
    """Media flows: the visit keeps when, so a call that ends outside Cabinet ends at a true time."""
    try:
        with db.connection_context():
            Appointment(id=appointment_id).saw_media()
    except Exception:  # noqa: BLE001 - losing this note must never end a call
        log.exception("could not note media")


def end_call(appointment_id: int, user_id: int | None) -> Appointment:
    """The practitioner hung up: saved (and audited) by the model before anyone is told."""
    with db.connection_context():
        appt = Appointment.get_by_id(appointment_id)
        appt.end_call(User.get_by_id(user_id) if user_id else "system")
    events.announce(appt)       # open "today" pages show the call as ended, not in progress
    return appt


class Bridge:
    """One browser's signaling session; ``run()`` returns when the browser goes."""

    def __init__(self, ws, appt: Appointment, role: str, user_id: int | None) -> None:
        self.ws, self.role, self.user_id = ws, role, user_id
        self.appointment_id, self.ref = appt.id, appt.ref
        self.media_kind = "audio" if appt.mode == "audio" else "video"
        config = current_app.config
        self.secret = config["SECRET_KEY"]
        self.stall_seconds = float(config.get("MEDIA_STALL_SECONDS", 15))
        self.backoff = config.get("RELAY_BACKOFF_SECONDS", BACKOFF_SECONDS)
        self.full_retry = float(config.get("RELAY_FULL_RETRY_SECONDS", 5))
        self._told_full = False
        self.peer = f"{role}-{secrets.token_hex(4)}"
        self.done = events.Signal()     # its listeners wake the browser's and the channel's loops
        self.leaving = False            # the browser hung up: the worker closing is expected
        self.conn: client.RelayConnection | None = None
        self.url: str | None = None      # the worker of the last connection
        self._send_lock = threading.Lock()
        self._media_up = False
        self._received = 0
        self._progress_at = time.monotonic()
        self._stalled = False
        self._media_noted = float("-inf")
        self._lost_at: float | None = None
        self._moved = False
        self.place = relay()

    # Sending to the browser, from any of the three threads.

    def send(self, data) -> None:
        text = protocol.encode(data) if isinstance(data, protocol.Message) else data
        try:
            with self._send_lock:
                self.ws.send(text)
        except events.SOCKET_GONE:
            # The same end however the library learnt it, not a crash of the thread (which
            # left the patient's side without its close).
            self.done.set()

    def run(self) -> None:
        with db.connection_context():
            self.send(frame("history", items=history(Appointment.get_by_id(self.appointment_id))))
        with events.subscribe(visit_channel(self.ref)) as subscription:
            channel_side = self._channel_side
            if has_request_context():        # it builds the file links (url_for) of this side
                channel_side = copy_current_request_context(channel_side)
            threads = [threading.Thread(target=self._worker_side, name=f"bridge-worker-{self.peer}", daemon=True),
                       threading.Thread(target=channel_side, args=(subscription,),
                                        name=f"bridge-channel-{self.peer}", daemon=True)]
            for thread in threads:
                thread.start()
            try:
                self._from_browser_loop()
            except ConnectionClosed:
                pass
            finally:
                self.done.set()
                conn = self.conn
                if conn is not None:
                    conn.close()
                for thread in threads:
                    thread.join(5)

    # Browser → worker (chat and hang-up handled here).

    def _from_browser_loop(self) -> None:
        """Sleeps until the browser sends, its socket closes or the session is done: no polling
        (the socket's event is an ``events.Signal``; one that is not is looked at every second).

        What the browser sent is handled even when the session is done already: a page that
        says ``bye`` and closes at once (or whose socket drops just after a chat line) may close
        before this loop first looks, and the failed write to it sets ``done``. Leaving then
        dropped the bye, and the visit never ended (the call-end test, 1 round in 40)."""
        stir = threading.Event()
        self.done.listen(stir.set)
        watched = isinstance(getattr(self.ws, "event", None), events.Signal)
        if watched:
            self.ws.event.listen(stir.set)
        while True:
            stir.clear()
            raw = self.ws.receive(timeout=0)        # what is buffered, even once closed
            if raw is not None:
                self.from_browser(raw)
            elif self.done.is_set():
                return
            else:
                stir.wait(None if watched else 1)

    def from_browser(self, raw) -> None:
        msg = protocol.decode(raw)
        if isinstance(msg, protocol.ProtocolError):
            self.send(msg.reply())
        elif isinstance(msg, NOT_FROM_BROWSERS):
            self.send(protocol.Error(protocol.UNKNOWN_TYPE, f"{msg.TYPE} is not sent by browsers"))
        elif isinstance(msg, protocol.Ping):
            self.send(protocol.Pong())
        elif isinstance(msg, protocol.Chat):
            self.chat(msg.text)
        elif isinstance(msg, (protocol.CameraRequest,)) and self.role != "practitioner":
            self.send(protocol.Error(protocol.BAD_STATE, "only the practitioner asks for the camera"))
        elif isinstance(msg, protocol.Bye):
            self.leaving = True
            if self.role != "practitioner":
                self.to_worker(msg)
                return
            appt = end_call(self.appointment_id, self.user_id)    # saved first: see the docstring
            self.to_worker(msg)
            events.publish(visit_channel(self.ref), frame("ended"))
            self.send(frame("ended", next=closing_url(appt)))
            self.close(events.ENDED, "ended")
        else:
            self.to_worker(msg)

    def to_worker(self, msg: protocol.Message) -> None:
        conn = self.conn
        if conn is None:
            self.send(protocol.Error(protocol.BAD_STATE, "relay not connected; wait for ready"))
            return
        try:
            conn.send(msg)
        except ConnectionClosed:
            self.send(protocol.Error(protocol.BAD_STATE, "relay not connected; wait for ready"))

    def chat(self, text: str) -> None:
        text = text.strip()
        if not text:
            self.send(protocol.Error(protocol.BAD_FIELD, "text is empty"))
            return
        with db.connection_context():
            line = ChatLine.create(appointment=self.appointment_id, author=self.role, user=self.user_id, text=text)
        events.publish(visit_channel(self.ref), frame("chat", id=line.id))   # each bridge reads the line

    # Worker → browser, with reconnection.

    def _worker_side(self) -> None:
        failures = 0
        while not self.done.is_set() and not self.leaving:
            conn = self._connect()
            if conn is None:
                failures += 1
                if failures == 1:
                    self._relay_lost("worker unreachable")
                if failures > len(self.backoff):
                    self.send(frame("error", code="relay-unavailable", message="relay worker unreachable"))
                    self.done.set()
                    self.ws.close(reason=1011, message="relay")
                    return
                self.done.wait(self.backoff[failures - 1])
                continue
            failures = 0
            self.conn = conn
            if self._moved:
                self._moved = False
                record_incident(self.appointment_id, "relay_moved", self.role, "joined another relay worker")
            try:
                if self._refused_as_full(conn):
                    continue
                self.send(frame("ready", role=self.role))
                self._read_worker(conn)
            except ConnectionClosed:
                if not self.done.is_set() and not self.leaving:
                    self.conn = None
                    self._relay_lost("worker connection closed")
                    self.done.wait(self.backoff[0])
            finally:
                self.conn = None

    def _connect(self) -> client.RelayConnection | None:
        # Asked each time: the other side may have re-pinned the visit, an embedded worker restarted.
        try:
            url = self.place.url_for_visit(self.appointment_id)
        except Exception:  # noqa: BLE001 - the pin is in the database: a hiccup there is retried
            log.exception("could not read the visit's relay worker")
            return None
        if url is not None and not reachable(url):
            # (the websocket client leaks its socket when the connection is refused)
            url = self._repin(url)
        if url is None:
            return None
        ticket = make_room_ticket(self.secret, self.ref, self.role, self.peer)
        try:
            conn = client.connect(url, ticket)
        except client.RelayUnavailable:
            return None
        if self.place.urls and self.url is not None and url != self.url:
            self._moved = True          # (an embedded worker restarted on another port is no move)
        self.url = url
        return conn

    def _repin(self, gone: str, full: bool = False) -> str | None:
        """Pin the visit to another live worker than ``gone``; None when there is none (then the
        bridge retries ``gone`` with its back-off, as with a single worker)."""
        if not self.place.urls:
            return None
        try:
            url = self.place.repin(self.appointment_id, gone, allow_full=not full)
        except Exception:  # noqa: BLE001 - a database hiccup: retry with the back-off
            log.exception("could not re-pin the visit")
            return None
        if url is None or url == gone:
            return None
        events.publish(visit_channel(self.ref), frame("relay-moved"))
        return url

    def _relay_lost(self, detail: str) -> None:
        self._media_up = False
        self.send(protocol.PeerState(self.role, "reconnecting"))
        record_incident(self.appointment_id, "relay_lost", self.role, detail)

    def _refused_as_full(self, conn) -> bool:
        """The worker's first word: a new call past its capacity is refused (``full``).

        Then the browser is told (its page says so, translated), the visit records it once, and
        the bridge asks again every RELAY_FULL_RETRY_SECONDS: the call starts when a place frees
        up, and the calls already running keep all their frames. Anything else is delivered.
        """
        first = conn.receive(timeout=5)
        if not (isinstance(first, protocol.Error) and first.code == protocol.FULL):
            self._deliver(first)
            return False
        conn.close()
        if self.url is not None and self._repin(self.url, full=True) is not None:
            return True                 # nobody was there yet: another worker has a place
        if not self._told_full:
            self._told_full = True
            record_incident(self.appointment_id, "relay_full", self.role, "relay at capacity")
        self.send(frame("error", code="relay-full", message="the relay carries all the calls it can"))
        self.done.wait(self.full_retry)
        return True

    def _read_worker(self, conn) -> None:
        while not self.done.is_set():
            if not self._deliver(conn.receive(timeout=1)):
                return

    def _deliver(self, msg) -> bool:
        """One message from the worker to the browser; False when this session must stop."""
        if msg is None or isinstance(msg, protocol.ProtocolError):
            return True
        if isinstance(msg, protocol.Error) and msg.code == protocol.REPLACED:
            self.send(msg)          # another tab of the same side took over: stop, never fight back
            self.close(events.TAKEN_OVER, "replaced")
            return False
        if isinstance(msg, protocol.PeerState) and msg.role == self.role:
            self._own_state(msg.state)
        elif isinstance(msg, protocol.Stats) and msg.role == self.role:
            self._stats(msg)
        self.send(msg)
        return True

    def _own_state(self, state: str) -> None:
        if state == "connected":
            self._media_up, self._progress_at, self._stalled = True, time.monotonic(), False
            if self._lost_at is not None:
                record_incident(self.appointment_id, "media_back", self.role,
                                f"media back after {time.monotonic() - self._lost_at:.0f} s")
                self._lost_at = None
            return
        self._media_up = False
        if state == "lost":
            # The worker heard nothing from this side for a few seconds while connected (the
            # other side's page says so): one incident, not also a media_stall later.
            self._lost_at = time.monotonic()
            record_incident(self.appointment_id, "media_lost", self.role, "no media while connected")
        if state == "failed":
            record_incident(self.appointment_id, "connection_failed", self.role, "ICE/DTLS failed")
        elif state == "reconnecting":
            record_incident(self.appointment_id, "reconnecting", self.role, "new offer or replacing connection")

    def _stats(self, stats: protocol.Stats) -> None:
        """A media stall: nothing received from this side for a while although connected."""
        received, now = stats.received.get(self.media_kind, 0), time.monotonic()
        if received > self._received or received < self._received:
            self._received, self._progress_at, self._stalled = received, now, False
            if now - self._media_noted >= Appointment.MEDIA_SEEN_EVERY.total_seconds():
                self._media_noted = now
                note_media(self.appointment_id)
        elif self._media_up and not self._stalled and now - self._progress_at >= self.stall_seconds:
            self._stalled = True
            record_incident(self.appointment_id, "media_stall", self.role,
                            f"no {self.media_kind} frames received for {int(now - self._progress_at)} s")

    # The visit's channel → browser: chat lines, files and the end of the visit.

    def _channel_side(self, subscription) -> None:
        self.done.listen(subscription.wake)     # the end of the session wakes the wait below
        while not self.done.is_set():
            item = subscription.get()
            if item == events.REFRESH:
                self._catch_up()
                continue
            if not isinstance(item, str):
                continue
            data = json.loads(item)
            if data.get("type") == "file":
                self._send_file(data["id"])
            elif data.get("type") == "ended" and self.role == "patient":
                self._ended()
            elif data.get("type") == "chat":
                with db.connection_context():
                    line = ChatLine.get_or_none(ChatLine.id == data["id"])
                if line is not None:
                    self.send(frame(**chat_item(line)))
            elif data.get("type") == "handed-over" and self.role == "practitioner" and data.get("to") != self.user_id:
                self._handed_over()
            elif data.get("type") == "relay-moved":
                self._follow_pin()

    def _follow_pin(self) -> None:
        """The other side re-pinned the visit: if this side is still on another worker, it leaves it
        (the worker side then joins the pinned one, as after any lost connection)."""
        conn = self.conn
        try:
            if conn is None or self.place.url_for_visit(self.appointment_id) == self.url:
                return
        except Exception:  # noqa: BLE001 - the other side's move is followed at the next loss
            log.exception("could not read the visit's relay worker")
            return
        conn.close()

    def _send_file(self, doc_id: int) -> None:
        with db.connection_context():
            doc = Document.get_or_none(Document.id == doc_id)
            if doc is None:
                return
            item = file_item(doc, file_urls(Appointment.get_by_id(self.appointment_id), doc))
        item["url"] = item.pop("urls").get(self.role)
        self.send(frame(**item))

    def _catch_up(self) -> None:
        """Events may have been missed (the hub's listener reconnected): send what the visit holds now."""
        with db.connection_context():
            appt = Appointment.get_by_id(self.appointment_id)
            items = history(appt)
        if self.role == "patient" and appt.call_ended:
            self._ended()
        elif self.role == "practitioner" and appt.practitioner_id != self.user_id:
            self._handed_over()
        else:
            self.send(frame("history", items=items))     # the page skips the items it shows already

    def _ended(self) -> None:
        """The practitioner ended the visit: the patient's side hangs up too."""
        self.leaving = True
        self.send(protocol.Bye("practitioner"))
        self.send(frame("ended"))
        self.close(events.ENDED, "ended")

    def _handed_over(self) -> None:
        """The visit is another practitioner's now: this one's side of the call ends here."""
        self.leaving = True
        self.send(frame("handed-over"))
        self.close(events.HANDED_OVER, "handed over")

    def close(self, code: int, why: str) -> None:
        """End this session with one of the close codes the page obeys (``events.CALL_CLOSES``)."""
        self.done.set()
        try:
            with self._send_lock:
                events.close_with(self.ws, code, why)
        except events.SOCKET_GONE:
            pass                # the browser went first


def _refuse(ws, code: int, why: str) -> None:
    """A socket that may not join the call: closed before any frame, with a code that says why."""
    events.close_with(ws, code, why)


def _closed_visit(refused: HTTPException) -> bool:
    """The patient's link answered with a redirect: the visit is closed (its space instead)."""
    response = refused.get_response()
    return 300 <= response.status_code < 400


@events.sock.route("/v/<ref>/signal", bp=bp)
def patient_signal(ws, ref):
    """The patient's signaling socket (the cookie's path is /v/<ref>/)."""
    try:
        appt = current_appointment(ref)
    except HTTPException as refused:
        return _refuse(ws, events.ENDED, "ended") if _closed_visit(refused) else _refuse(
            ws, events.NO_CREDENTIALS, "link")
    if appt.call_ended:
        return _refuse(ws, events.ENDED, "ended")
    if appt.status != "in_call":
        return _refuse(ws, events.NOT_IN_CALL, "not in call")
    bridge = Bridge(ws, appt, "patient", None)
    db.close()  # a socket lives long: hold a connection only while writing
    with events.patient_slot(ref) as admitted:   # shared with the waiting room's sockets
        if not admitted:
            return _refuse(ws, events.TOO_MANY_PAGES, "too many pages")
        bridge.run()


@events.sock.route("/today/<int:appointment_id>/signal", bp=bp)
def practitioner_signal(ws, appointment_id):
    """The visit's own practitioner's signaling socket; other staff are refused (``NOT_YOURS``)."""
    if g.user is None:
        return _refuse(ws, events.NO_CREDENTIALS, "sign in")
    try:
        appt = own_visit_or_403(appointment_id)
    except HTTPException as refused:
        return _refuse(ws, events.NOT_YOURS, "not your visit" if refused.code == 403 else "not found")
    if appt.call_ended:
        return _refuse(ws, events.ENDED, "ended")
    if appt.status != "in_call":
        return _refuse(ws, events.NOT_IN_CALL, "not in call")
    bridge = Bridge(ws, appt, "practitioner", g.user.id)
    db.close()
    bridge.run()
