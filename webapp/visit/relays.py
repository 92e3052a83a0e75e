"""Where the relay is, for each visit.

``RELAY_URLS`` names external workers (a visit is pinned to one by a hash of its ref,
so both sides meet in the same worker). Without it the app runs the worker itself,
on a background thread on a loopback port, started on first use: a ``flask`` CLI
command never starts it, and each forked gunicorn worker starts its own after the fork.
"""
from __future__ import annotations

import atexit
import hashlib
import logging
import socket
import threading
from urllib.parse import urlsplit

from flask import current_app

log = logging.getLogger(__name__)


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

    def url_for_room(self, room: str) -> str | None:
        """The worker for this room, or None when there is none."""
        if self.urls:
            index = int.from_bytes(hashlib.sha256(room.encode()).digest()[:4], "big") % len(self.urls)
            return self.urls[index]
        embedded = self.embedded()
        return embedded.url if embedded is not None else None

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
        """Whether each worker accepts a TCP connection; never starts the embedded one."""
        if self.urls:
            targets = self.urls
        elif self._embedded is not None:
            targets = [self._embedded.url]
        else:
            return {"ok": True, "mode": "embedded" if self.embedded_allowed else "none", "started": False}
        workers = [{"url": url, "ok": reachable(url)} for url in targets]
        return {"ok": all(w["ok"] for w in workers), "mode": "external" if self.urls else "embedded",
                "started": True, "workers": workers}


def reachable(url: str, timeout: float = 0.5) -> bool:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def relay() -> RelayPlace:
    return current_app.extensions["relay"]


def init_app(app) -> None:
    """Know where the relay is; the embedded worker itself starts on first use."""
    app.extensions["relay"] = RelayPlace(app)
