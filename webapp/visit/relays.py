"""Where the relay is, for each visit.

``RELAY_URLS`` names external workers. A visit is pinned to one, in the database
(``Appointment.relay_url``), so every web process routes both sides to the same worker: the
first side to connect pins it to the least-loaded live worker (each answers ``GET /load``,
read at most every ``RELAY_LOAD_TTL`` seconds per process; a full one is taken only when all
are full, and then says so). When the pinned worker dies the bridge re-pins the visit
(``repin``) with a conditional UPDATE: whichever side comes second finds the new pin.
docs/relay-workers.md tells the whole story.

Without ``RELAY_URLS`` the app runs the worker itself, on a background thread on a loopback
port, started on first use: a ``flask`` CLI command never starts it, and each forked gunicorn
worker starts its own after the fork. Nothing is pinned then.
"""
from __future__ import annotations

import atexit
import http.client
import json
import logging
import socket
import threading
import time
from urllib.parse import urlsplit

from flask import current_app
from peewee import fn

from ..models import Appointment, db

log = logging.getLogger(__name__)
# Seconds a worker has to answer GET /load; one that does not counts as dead until the next reading.
LOAD_TIMEOUT = 0.5


class RelayPlace:
    """Which worker serves a visit; starts the embedded one lazily, once."""

    def __init__(self, app) -> None:
        self.urls = list(app.config.get("RELAY_URLS") or [])
        self.embedded_allowed = app.config.get("RELAY_EMBEDDED", True)
        self._settings = {
            "secret": app.config["SECRET_KEY"],
            "host_addresses": tuple(app.config.get("RELAY_HOST_ADDRESSES") or ("127.0.0.1",)),
            "ice_servers": tuple(app.config.get("ICE_SERVERS") or ()),
            "stats_interval": float(app.config.get("RELAY_STATS_INTERVAL", 5.0)),
            "max_calls": int(app.config.get("RELAY_MAX_CALLS") or 0),
        }
        self._embedded = None
        self._lock = threading.Lock()
        self.load_ttl = float(app.config.get("RELAY_LOAD_TTL", 2.0))
        self._loads: dict[str, tuple[float, dict | None]] = {}
        self._loads_lock = threading.Lock()

    def url_for_visit(self, appointment_id: int) -> str | None:
        """The worker of this visit, pinning it on first use; None when there is none."""
        if not self.urls:
            embedded = self.embedded()
            return embedded.url if embedded is not None else None
        with db.connection_context():
            pinned = Appointment.select(Appointment.relay_url).where(Appointment.id == appointment_id).scalar()
        if pinned in self.urls:
            return pinned
        choice = self.choose()          # never pinned, or pinned to a worker no longer listed
        if choice is None:
            return None
        with db.connection_context():
            return Appointment.pin_relay(appointment_id, choice, replacing=pinned)

    def repin(self, appointment_id: int, gone: str, allow_full: bool = True) -> str | None:
        """The visit's worker ``gone`` is dead (or full, before anyone joined it there): pin another
        live one, unless the other side did first (then its choice). None when there is no other."""
        if allow_full:          # dead: not a choice until its next reading
            with self._loads_lock:
                self._loads[gone] = (time.monotonic(), None)
        choice = self.choose(exclude={gone}, allow_full=allow_full)
        if choice is None:
            return None
        with db.connection_context():
            return Appointment.pin_relay(appointment_id, choice, replacing=gone)

    def choose(self, exclude=(), allow_full: bool = True) -> str | None:
        """The least-loaded live worker: fewest calls, then least CPU (to a tenth of a core: less is
        noise), then the order of RELAY_URLS.

        A full worker only when every live one is full (it answers FULL: the call waits for a place).
        The choice counts as one more call until the next reading, so a burst of new visits spreads.
        """
        live = [(url, load) for url in self.urls if url not in exclude and (load := self.load(url)) is not None
                and (allow_full or not load.get("full"))]
        if not live:
            return None
        url, load = min(live, key=lambda item: (bool(item[1].get("full")), item[1].get("calls", 0),
                                                 round(item[1].get("cpu") or 0.0, 1), self.urls.index(item[0])))
        with self._loads_lock:
            load["calls"] = load.get("calls", 0) + 1
        return url

    def load(self, url: str, fresh: bool = False) -> dict | None:
        """The worker's ``GET /load`` (cached ``load_ttl`` seconds), or None when it does not answer."""
        with self._loads_lock:
            cached = self._loads.get(url)
        if cached is not None and not fresh and time.monotonic() - cached[0] < self.load_ttl:
            return cached[1]
        value = fetch_load(url)
        with self._loads_lock:
            self._loads[url] = (time.monotonic(), value)
        return value

    def embedded(self):
        if not self.embedded_allowed:
            return None
        with self._lock:
            if self._embedded is None:
                from ..relay.worker import start_embedded   # asyncio and aiortc load only here
                self._embedded = start_embedded(**self._settings)
                atexit.register(self.stop)      # close the peer connections cleanly on shutdown
                log.info("embedded relay listening on %s", self._embedded.url)
            return self._embedded

    def stop(self) -> None:
        with self._lock:
            if self._embedded is not None:
                self._embedded.stop()
                self._embedded = None

    def health(self) -> dict:
        """Each worker's load and the ongoing visits pinned to it; never starts the embedded one.

        Reads the database on the caller's connection (a request's)."""
        if self.urls:
            targets = self.urls
        elif self._embedded is not None:
            targets = [self._embedded.url]
        else:
            return {"ok": True, "mode": "embedded" if self.embedded_allowed else "none", "started": False}
        pinned = pinned_visits()
        workers = []
        for url in targets:
            load = self.load(url, fresh=True) or {}
            workers.append({"url": url, "ok": bool(load), "calls": load.get("calls"),
                            "participants": load.get("participants"), "cpu": load.get("cpu"),
                            "full": load.get("full"), "max_calls": load.get("max_calls"),
                            "pinned": pinned.get(url, 0)})
        return {"ok": all(w["ok"] for w in workers), "mode": "external" if self.urls else "embedded",
                "started": True, "workers": workers}


def pinned_visits() -> dict[str, int]:
    """How many ongoing visits (in the call, not ended) each worker is pinned to."""
    query = (Appointment.select(Appointment.relay_url, fn.COUNT(Appointment.id).alias("n"))
             .where(Appointment.status == "in_call", Appointment.call_ended_at.is_null(),
                    Appointment.relay_url.is_null(False))
             .group_by(Appointment.relay_url))
    return {row.relay_url: row.n for row in query}


def worker_address(url: str) -> tuple[str, int, bool]:
    """A worker's ``ws://`` or ``wss://`` URL as (host, port, TLS)."""
    parts = urlsplit(url)
    tls = parts.scheme == "wss"
    return parts.hostname, parts.port or (443 if tls else 80), tls


def fetch_load(url: str, timeout: float = LOAD_TIMEOUT) -> dict | None:
    """A worker's load from ``GET /load`` on its websocket port; None when it does not answer."""
    host, port, tls = worker_address(url)
    conn = (http.client.HTTPSConnection if tls else http.client.HTTPConnection)(host, port, timeout=timeout)
    try:
        conn.request("GET", "/load")
        response = conn.getresponse()
        if response.status != 200:
            return None
        body = json.loads(response.read())
        return body if isinstance(body, dict) else None
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def reachable(url: str, timeout: float = 0.5) -> bool:
    host, port, _ = worker_address(url)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def relay() -> RelayPlace:
    return current_app.extensions["relay"]


def init_app(app) -> None:
    """Know where the relay is; the embedded worker itself starts on first use."""
    app.extensions["relay"] = RelayPlace(app)
