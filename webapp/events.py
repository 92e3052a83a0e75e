"""Live updates: publish rendered HTML fragments to whoever watches a channel.

``publish(channel, fragment)`` is the whole publishing interface. The hub
behind it is in-process here (one web process); a PostgreSQL LISTEN/NOTIFY hub
can take its place without changing a caller, since subscribers only ever see
``Subscription.get()``.

Channels are plain strings, named here and nowhere else: ``waiting:<ref>`` for a
patient's waiting room, ``today:<practitioner id>`` for a practitioner's day,
``visit:<ref>`` for the call's chat, files and end.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import json
import socket
import threading
import time
from dataclasses import dataclass, field

import flask_sock
from flask import request

from .access import origin_allowed

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
                    ws.close(reason=WRONG_ORIGIN, message="origin")
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


class Subscription:
    """The fragments published on some channels since subscribing, newest last."""

    def __init__(self, hub: "InProcessHub", channels: tuple[str, ...]):
        self.hub, self.channels = hub, channels
        self._items: collections.deque = collections.deque(maxlen=BACKLOG)
        self._ready = threading.Condition()
        self._last = time.monotonic()

    def put(self, item) -> None:
        with self._ready:
            self._items.append(item)
            self._ready.notify()

    def get(self, timeout: float | None = None):
        """The next fragment (or control item), or None after ``timeout`` seconds."""
        with self._ready:
            if not self._items and not self._ready.wait_for(lambda: self._items, timeout):
                return None
            self._last = time.monotonic()
            return self._items.popleft()

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


hub = InProcessHub()


def publish(channel: str, fragment) -> int:
    """Send ``fragment`` to every current subscriber of ``channel``; return how many."""
    return hub.publish(channel, fragment)


def subscribe(*channels: str) -> Subscription:
    return hub.subscribe(*channels)


class Takeover:
    """Sent to a page's older tab when the same person opens it again elsewhere."""


class Tabs:
    """One live tab per key (a patient's appointment): the newest takes over."""

    def __init__(self):
        self._current: dict[str, Subscription] = {}
        self._lock = threading.Lock()

    def claim(self, key: str, subscription: Subscription) -> None:
        with self._lock:
            older = self._current.get(key)
            self._current[key] = subscription
        if older is not None and older is not subscription:
            older.put(Takeover())

    def release(self, key: str, subscription: Subscription) -> None:
        with self._lock:
            if self._current.get(key) is subscription:
                del self._current[key]

    def online(self, key: str) -> bool:
        with self._lock:
            return key in self._current


patient_tabs = Tabs()

# A socket holds a server thread for its whole life: one person must not hold them all.
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


def init_app(app):
    app.config.setdefault("SOCK_SERVER_OPTIONS", {"ping_interval": 25, "max_message_size": 64 * 1024})
    sock.init_app(app)
