"""Live updates: tell whoever watches a channel that something changed.

``publish(channel, fragment)`` is the whole publishing interface; subscribers only ever see
``Subscription.get()``. What travels is small: ``REFRESH`` ("render your view again") or a
short JSON frame naming a row by its id; each subscriber renders its own view, in its own
language and with its own permissions. Two hubs stand behind it, chosen by ``init_app``:

- SQLite: ``InProcessHub``, the threads of one web process (SQLite means one process).
- PostgreSQL: ``PostgresHub``. ``publish`` sends ``pg_notify`` on the app's own database
  connection, so an event published inside a transaction leaves at its commit (never before
  its data) or not at all; one listener connection per web process (``LISTEN``, a thread
  waiting on its socket) hands what arrives to that process's subscribers. Any number of web
  processes, on one machine or several, then see the same events. A lost listener connection
  reconnects with back-off, and every subscriber of the process then gets ``REFRESH``: what
  was published meanwhile is not lost, the views catch up by rendering again.

Channels are plain strings, named here and nowhere else: ``waiting:<ref>`` for a
patient's waiting room, ``today:<practitioner id>`` for a practitioner's day,
``visit:<ref>`` for the call's chat, files and end.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import json
import logging
import os
import secrets
import select
import socket
import threading
import time
from dataclasses import dataclass, field

import flask_sock
import psycopg2
import simple_websocket.ws
from flask import request
from simple_websocket import ConnectionClosed
from wsproto.utilities import LocalProtocolError

from .access import origin_allowed
from .models import db

log = logging.getLogger(__name__)

WRONG_ORIGIN = 1008        # close code of a socket opened from a page of another site


class Sock(flask_sock.Sock):
    """flask-sock whose every route first checks the handshake's ``Origin`` (``origin_allowed``):
    a socket opened from another site's page is closed with 1008 before anything is sent."""

    def route(self, path, bp=None, **kwargs):
        register = super().route(path, bp=bp, **kwargs)

        def decorator(handler):
            @functools.wraps(handler)
            def same_site_only(ws, *args, **kw):
                if not origin_allowed(request.headers.get("Origin")):
                    close_with(ws, WRONG_ORIGIN, "origin")
                    return None
                return handler(ws, *args, **kw)
            return register(same_site_only)
        return decorator


sock = Sock()

# A subscriber that falls behind keeps only the newest fragments: each one
# re-renders a whole section, so older ones are already out of date.
BACKLOG = 32

# "Something changed: render your view again." Subscribers render in their own
# request context, so each viewer gets their own language and permissions.
REFRESH = "<!-- refresh -->"


def waiting_channel(appt) -> str:
    return f"waiting:{appt.ref}"


def today_channel(practitioner_id: int) -> str:
    return f"today:{practitioner_id}"


def visit_channel(ref: str) -> str:
    return f"visit:{ref}"


def announce(appt) -> None:
    """Tell both sides' live pages (the waiting room, the practitioner's day) that this appointment changed."""
    publish(waiting_channel(appt), REFRESH)
    publish(today_channel(appt.practitioner_id), REFRESH)


def handed_over(appt, previous_id: int) -> None:
    """The visit changed hands: both practitioners' days refresh, and the call's bridges learn who
    holds it now (the previous practitioner's socket, if open, ends: docs/signaling.md)."""
    announce(appt)
    publish(today_channel(previous_id), REFRESH)
    publish(visit_channel(appt.ref), json.dumps({"type": "handed-over", "to": appt.practitioner_id}))


class Signal(threading.Event):
    """An Event that also calls its listeners when set.

    simple-websocket sets its connection's event when a message arrives or the socket closes;
    made of this class (``SOCK_SERVER_OPTIONS["event_class"]``), that also wakes the page's
    subscription (``Subscription.watch``), so a live page's loop sleeps until something happens
    instead of waking every second to look at its socket. Under gevent ``threading.Event`` is
    gevent's (the app is imported after the patching), so this waits as a greenlet."""

    def __init__(self):
        super().__init__()
        self._listeners: list = []

    def listen(self, listener) -> None:
        self._listeners.append(listener)
        if self.is_set():
            listener()

    def set(self) -> None:
        super().set()
        for listener in list(self._listeners):
            listener()


class Subscription:
    """The fragments published on some channels since subscribing, newest last."""

    def __init__(self, hub: "InProcessHub", channels: tuple[str, ...]):
        self.hub, self.channels = hub, channels
        self._items: collections.deque = collections.deque(maxlen=BACKLOG)
        self._ready = threading.Condition()
        self._woken = False
        self._watching = False
        self._last = time.monotonic()

    def put(self, item) -> None:
        with self._ready:
            self._items.append(item)
            self._ready.notify()

    def wake(self) -> None:
        """Make a waiting ``get`` return (None when nothing arrived): its socket has news."""
        with self._ready:
            self._woken = True
            self._ready.notify()

    def watch(self, ws) -> bool:
        """Wake on ``ws``'s messages and on its close; False when ``ws`` cannot say (then poll)."""
        event = getattr(ws, "event", None)
        if not isinstance(event, Signal):
            return False
        event.listen(self.wake)
        self._watching = True
        return True

    def get(self, timeout: float | None = None):
        """The next fragment (or control item), or None after ``timeout`` seconds or a ``wake``."""
        with self._ready:
            if not self._items and not self._ready.wait_for(lambda: self._items or self._woken, timeout):
                return None
            self._woken = False
            if not self._items:
                return None
            self._last = time.monotonic()
            return self._items.popleft()

    def patience(self, idle_seconds: float) -> float:
        """How long a live page's ``get`` may wait: until its idle refresh is due when its socket
        wakes it (``watch``), else a second, to look at the socket again."""
        if not self._watching:
            return 1.0
        return max(0.0, idle_seconds - (time.monotonic() - self._last))

    def idle_for(self, seconds: float) -> bool:
        """True once nothing has arrived for ``seconds`` (then the clock starts again)."""
        now = time.monotonic()
        if now - self._last < seconds:
            return False
        self._last = now
        return True

    def close(self) -> None:
        self.hub.unsubscribe(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class InProcessHub:
    """Channels and their subscriptions, shared by the threads of one process."""
    _channels: dict = field(default_factory=lambda: collections.defaultdict(set))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def subscribe(self, *channels: str) -> Subscription:
        subscription = Subscription(self, channels)
        with self._lock:
            for channel in channels:
                self._channels[channel].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            for channel in subscription.channels:
                self._channels[channel].discard(subscription)
                if not self._channels[channel]:
                    del self._channels[channel]

    def publish(self, channel: str, fragment) -> int:
        with self._lock:
            targets = list(self._channels.get(channel, ()))
        for subscription in targets:
            subscription.put(fragment)
        return len(targets)

    def count(self, channel: str) -> int:
        with self._lock:
            return len(self._channels.get(channel, ()))

    def put_everywhere(self, item) -> int:
        """Give ``item`` to every subscription of this process (``REFRESH`` after a lost listener)."""
        with self._lock:
            targets = set().union(*self._channels.values()) if self._channels else set()
        for subscription in targets:
            subscription.put(item)
        return len(targets)

    def tell_others(self, message: dict) -> None:
        """Nothing to do: one process has no others (see ``PostgresHub.tell_others``)."""


# pg_notify refuses payloads of 8000 bytes or more; ours are a channel name and an id.
NOTIFY_MAX_BYTES = 7999
PG_CHANNEL = "cabinet"          # one LISTEN per process; the app's channel travels in the payload
OTHERS = "~processes"           # the channel of messages between web processes (``Tabs``)


class PostgresHub:
    """Events through PostgreSQL LISTEN/NOTIFY, handed to this process's subscribers by ``local``.

    The listener starts with the first subscription, in the process that subscribes (after any
    fork: a forked copy starts its own). ``backend_pid``, ``connects`` and ``listening`` say how it
    is doing."""

    BACKOFF = (0.1, 0.2, 0.5, 1, 2, 5)     # seconds before each new attempt; the last one repeats
    POLL_SECONDS = 10                      # an idle listener checks its connection this often

    def __init__(self, dsn: str):
        self.dsn = dsn
        self.local = InProcessHub()
        self.listening = threading.Event()
        self.backend_pid: int | None = None
        self.connects = 0
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._thread: threading.Thread | None = None

    @property
    def process(self) -> str:
        """This process's name among the others (new after a fork)."""
        self._forked()
        return self._process

    def _forked(self) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():    # a fork's child: its parent's thread is not here
                    self._pid, self._thread = os.getpid(), None
                    self._process = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
                    self.local, self.connects = InProcessHub(), 0
                    self.listening.clear()

    def subscribe(self, *channels: str) -> Subscription:
        self._forked()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._listen, name="events-listener", daemon=True)
                self._thread.start()
        if not self.connects:
            self.listening.wait(5)    # the first subscribers miss nothing; later ones during an outage get REFRESH
        return self.local.subscribe(*channels)

    def publish(self, channel: str, fragment) -> int:
        """NOTIFY on the app's connection: at commit if inside a transaction, else at once.
        Returns how many of this process's subscribers will get it."""
        self._notify(json.dumps({"c": channel, "f": fragment}, separators=(",", ":"), ensure_ascii=False))
        return self.count(channel)

    def tell_others(self, message: dict) -> None:
        self._notify(json.dumps({"c": OTHERS, "f": {**message, "by": self.process}}, separators=(",", ":")))

    def put_everywhere(self, item) -> int:
        return self.local.put_everywhere(item)

    def count(self, channel: str) -> int:
        return self.local.count(channel)

    @staticmethod
    def _notify(payload: str) -> None:
        if len(payload.encode()) > NOTIFY_MAX_BYTES:
            raise ValueError(f"an event of {len(payload.encode())} bytes: publish an id, not the content")
        if db.is_closed():          # a socket's thread holds no connection between renders
            with db.connection_context():
                db.execute_sql("SELECT pg_notify(%s, %s)", (PG_CHANNEL, payload))
        else:
            db.execute_sql("SELECT pg_notify(%s, %s)", (PG_CHANNEL, payload))

    def _listen(self) -> None:
        failures = 0
        while True:
            conn = None
            try:
                conn = psycopg2.connect(self.dsn, connect_timeout=5, application_name="cabinet-events")
                conn.autocommit = True
                with conn.cursor() as cursor:
                    cursor.execute(f"LISTEN {PG_CHANNEL}")
                self.backend_pid, failures = conn.get_backend_pid(), 0
                self.connects += 1
                self.listening.set()
                if self.connects > 1:       # anything published while we were away: render again
                    self.local.put_everywhere(REFRESH)
                    patient_tabs.reconnected(self)
                self._receive(conn)
            except Exception as problem:  # noqa: BLE001 - the listener never stops: it reconnects
                self.listening.clear()
                log.warning("events listener lost its connection (%s); reconnecting", type(problem).__name__)
                time.sleep(self.BACKOFF[min(failures, len(self.BACKOFF) - 1)])
                failures += 1
            finally:
                if conn is not None:
                    with contextlib.suppress(psycopg2.Error):
                        conn.close()

    def _receive(self, conn) -> None:
        beat = time.monotonic()
        while True:
            if not select.select([conn], [], [], self.POLL_SECONDS)[0]:
                with conn.cursor() as cursor:
                    cursor.execute("SELECT 1")      # a dead connection says so now, not at the next event
            conn.poll()
            while conn.notifies:
                self._dispatch(conn.notifies.pop(0).payload)
            if time.monotonic() - beat > Tabs.BEAT_SECONDS:
                beat = time.monotonic()
                patient_tabs.beat(self)

    def _dispatch(self, payload: str) -> None:
        try:
            event = json.loads(payload)
            channel, fragment = event["c"], event["f"]
        except (ValueError, KeyError, TypeError):
            log.warning("events listener: a payload that is not ours (%d bytes)", len(payload))
            return
        if channel == OTHERS:
            if fragment.get("by") != self.process:
                patient_tabs.heard(fragment)
        else:
            self.local.publish(channel, fragment)


hub = _in_process = InProcessHub()
_postgres_hubs: dict[str, PostgresHub] = {}


def publish(channel: str, fragment) -> int:
    """Send ``fragment`` to every current subscriber of ``channel``; return how many (in this process)."""
    return hub.publish(channel, fragment)


def subscribe(*channels: str) -> Subscription:
    return hub.subscribe(*channels)


def use_database(url: str) -> None:
    """Choose the hub for ``DATABASE_URL``: PostgreSQL's LISTEN/NOTIFY, else this process's own."""
    global hub
    if not url.startswith("postgres"):
        hub = _in_process
        return
    dsn = "postgresql://" + url.split("://", 1)[1]      # peewee's postgres+pool:// etc. are libpq's postgresql://
    hub = _postgres_hubs.get(dsn) or _postgres_hubs.setdefault(dsn, PostgresHub(dsn))


class Takeover:
    """Sent to a page's older tab when the same person opens it again elsewhere."""


class Tabs:
    """One live tab per key (a patient's appointment): the newest takes over, in whichever web
    process it opened. Other processes learn of claims and releases through the hub
    (``tell_others``), and each process says again every ``BEAT_SECONDS`` which tabs it holds, so
    a process that stopped without releasing its tabs stops counting after ``FORGET_SECONDS``."""

    BEAT_SECONDS = 30
    FORGET_SECONDS = 75
    KEYS_PER_MESSAGE = 200          # refs are short: well under NOTIFY_MAX_BYTES

    def __init__(self):
        self._current: dict[str, Subscription] = {}
        self._elsewhere: dict[str, tuple[str, float]] = {}     # key → (process, last heard)
        self._lock = threading.Lock()

    def claim(self, key: str, subscription: Subscription) -> None:
        with self._lock:
            older = self._current.get(key)
            self._current[key] = subscription
            self._elsewhere.pop(key, None)
        if older is not None and older is not subscription:
            older.put(Takeover())
        hub.tell_others({"claim": key})

    def release(self, key: str, subscription: Subscription) -> None:
        with self._lock:
            mine = self._current.get(key) is subscription
            if mine:
                del self._current[key]
        if mine:
            hub.tell_others({"release": key})

    def online(self, key: str) -> bool:
        with self._lock:
            if key in self._current:
                return True
            heard = self._elsewhere.get(key)
            return heard is not None and time.monotonic() - heard[1] < self.FORGET_SECONDS

    def heard(self, message: dict) -> None:
        """Another process's claim, release or list of held tabs."""
        by, now, older = message.get("by"), time.monotonic(), None
        with self._lock:
            if "claim" in message:
                older = self._current.pop(message["claim"], None)   # a newer tab elsewhere takes over
                self._elsewhere[message["claim"]] = (by, now)
            elif "release" in message:
                if self._elsewhere.get(message["release"], (None,))[0] == by:
                    del self._elsewhere[message["release"]]
            for key in message.get("held", ()):
                if key not in self._current:
                    self._elsewhere[key] = (by, now)
            if message.get("hello"):
                self._elsewhere = {k: v for k, v in self._elsewhere.items() if v[0] != by}
        if older is not None:
            older.put(Takeover())
        if message.get("hello") and message.get("by"):
            self.beat(hub)      # a process that was away asks who holds what

    def beat(self, to) -> None:
        """Tell the other processes which tabs this one holds."""
        with self._lock:
            keys = sorted(self._current)
            self._elsewhere = {k: v for k, v in self._elsewhere.items()
                               if time.monotonic() - v[1] < self.FORGET_SECONDS}
        for start in range(0, len(keys), self.KEYS_PER_MESSAGE):
            to.tell_others({"held": keys[start:start + self.KEYS_PER_MESSAGE]})

    def reconnected(self, to) -> None:
        """After an outage what others said was missed: forget it, say ours, and ask theirs."""
        with self._lock:
            self._elsewhere.clear()
        to.tell_others({"hello": True})
        self.beat(to)


patient_tabs = Tabs()

# A socket holds a greenlet (under gevent) or a server thread for its whole life: one person
# must not hold them all.
PATIENT_SOCKETS = 3        # per appointment (the patient's cookie): waiting-room and signaling sockets together
STAFF_SOCKETS = 4          # per signed-in user: their day's live pages
TOO_MANY = 1008            # close code of a live page's socket refused for being over its holder's cap

# The app's own close codes (4000-4999 are the application's; docs/signaling.md, "Close codes").
# A refusal says why, so the page can obey it instead of taking it for a dropped connection:
# htmx's ws extension never retries them (it retries 1006, 1011-1013), and the call page does
# what CALL_CLOSES says. A socket that just dropped (1006) or a server error (1011) is retried.
TAKEN_OVER = 4001          # a newer tab (or device) of the same person took over: stay, never reconnect
HANDED_OVER = 4002         # the visit was handed over to another practitioner: this side's call ends
NO_CREDENTIALS = 4401      # no valid staff session, or the patient's link is missing, expired or revoked
NOT_YOURS = 4403           # another practitioner's visit, or one this person cannot see
NOT_IN_CALL = 4409         # the visit is not in the call (not admitted yet, or sent back)
ENDED = 4410               # the practitioner ended the visit (or it is closed)
TOO_MANY_PAGES = 4429      # a call socket over the holder's cap: a lost socket's slot frees soon, retry later

# What the call page does on each code (js/call/signaling.js reads this table from the page):
# go to the page for "ended", load the page again (the server then shows where to go: sign-in,
# the link's problem, the waiting room, a refusal), say why and stay without reconnecting
# ("replaced", "handed-over"), or retry later.
CALL_CLOSES = {TAKEN_OVER: "replaced", HANDED_OVER: "handed-over", NO_CREDENTIALS: "reload",
               NOT_YOURS: "reload", NOT_IN_CALL: "reload", ENDED: "ended", TOO_MANY_PAGES: "retry"}


def close_with(ws, code: int, why: str) -> None:
    """Close ``ws`` with ``code``, the close frame being the last bytes the browser reads.

    werkzeug's server (``flask run``, the tests' live server) writes an HTTP status line on the
    socket once the handler returns; a browser that reads it after the close frame fails the
    socket (1006), losing the code and any frame still queued. Shutting the sending side at once
    prevents that (the stray write then fails quietly); other servers close the socket anyway.
    Raises ``ConnectionClosed`` when the socket had closed already.
    """
    ws.close(reason=code, message=why)
    with contextlib.suppress(OSError, AttributeError):
        ws.sock.shutdown(socket.SHUT_WR)


class SocketSlots:
    """How many sockets each holder has open, capped; shared by the server's threads."""

    def __init__(self):
        self._open: collections.Counter = collections.Counter()
        self._lock = threading.Lock()

    def acquire(self, key: str, cap: int) -> bool:
        with self._lock:
            if self._open[key] >= cap:
                return False
            self._open[key] += 1
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]

    def count(self, key: str) -> int:
        with self._lock:
            return self._open[key]

    @contextlib.contextmanager
    def slot(self, key: str, cap: int):
        """Yields whether the socket got a slot; a refused one must close (``TOO_MANY``) and return."""
        got = self.acquire(key, cap)
        try:
            yield got
        finally:
            if got:
                self.release(key)


sockets = SocketSlots()


def patient_slot(ref: str):
    return sockets.slot(f"patient:{ref}", PATIENT_SOCKETS)


def staff_slot(user_id: int):
    return sockets.slot(f"staff:{user_id}", STAFF_SOCKETS)


# What writing to a page's socket raises once the page has gone: simple-websocket's ConnectionClosed
# when it noticed; BrokenPipeError/ConnectionResetError when it has not yet; wsproto's "cannot be
# sent in state CLOSED" when its reader thread has just handled the page's close.
SOCKET_GONE = (ConnectionClosed, OSError, LocalProtocolError)


def pings_on_the_monotonic_clock() -> None:
    """simple-websocket schedules a socket's pings with the wall clock (``time.time``). Stepped back
    (NTP; in the tests, time-machine leaving its 2036 for today), its reader thread waited until the
    old time came back, or died of poll's "timeout is too large": the page's socket then went
    unanswered and its server thread was never released. Stepped forward, it pinged at once and
    could close a healthy socket for a missing pong. An interval wants the monotonic clock."""
    if not callable(getattr(simple_websocket.ws, "time", None)):
        raise RuntimeError("simple-websocket internals changed: ws.time is gone")
    simple_websocket.ws.time = time.monotonic


def init_app(app):
    use_database(app.config["DATABASE_URL"])
    pings_on_the_monotonic_clock()
    app.config.setdefault("SOCK_SERVER_OPTIONS", {"ping_interval": 25, "max_message_size": 64 * 1024})
    app.config["SOCK_SERVER_OPTIONS"].setdefault("event_class", Signal)    # see ``Signal``
    sock.init_app(app)
