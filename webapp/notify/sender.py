"""The in-process sender: a daemon thread that queues due reminders and sends due messages.

Not started in tests (``app.testing``), when ``NOTIFY_SENDER`` is false (cron runs
``flask send-due`` instead), nor by command-line commands other than ``flask run``.
A process runs one sender per app; a forked worker starts its own on its first request.
"""
from __future__ import annotations

import os
import threading

import click
from flask.helpers import get_debug_flag

from ..models import db
from .outbox import run_once

INTERVAL_SECONDS = 30

_lock = threading.Lock()


class Sender:
    def __init__(self, app, interval: float = INTERVAL_SECONDS):
        self.app, self.interval = app, interval
        self.pid = os.getpid()
        self.stopping = threading.Event()
        self._woken = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="cabinet-notify", daemon=True)

    def _loop(self):
        while not self.stopping.is_set():
            try:
                with self.app.app_context(), db.connection_context():
                    run_once()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one bad pass
                # The class only: an exception's text could quote a recipient.
                self.app.logger.error("notification pass failed: %s", type(exc).__name__)
            self._woken.wait(self.interval)
            self._woken.clear()

    def wake(self) -> None:
        """Run a pass now (something was queued): an instant visit's link must not wait 30 s."""
        self._woken.set()

    @property
    def alive(self) -> bool:
        return self.pid == os.getpid() and self.thread.is_alive()

    def stop(self, timeout: float = 5.0):
        self.stopping.set()
        self._woken.set()
        if self.thread.is_alive():
            self.thread.join(timeout)


def wanted(app) -> bool:
    if app.testing or not app.config.get("NOTIFY_SENDER", True):
        return False
    command = click.get_current_context(silent=True)
    if command is None:
        return True                      # a WSGI server imported wsgi.py
    # `flask init-db`, `flask send-due`... load the app too: only `flask run` serves.
    if command.info_name != "run":
        return False
    # With the reloader, the watching parent loads the app too; only the serving child sends.
    reload = command.params.get("reload")
    if reload is None:
        reload = get_debug_flag()
    return not reload or os.environ.get("WERKZEUG_RUN_MAIN") == "true"


def start(app) -> Sender | None:
    """Start this app's sender unless one is already running in this process."""
    with _lock:
        current = app.extensions.get("notify_sender")
        if current is not None and current.alive:
            return current
        sender = Sender(app, app.config.get("NOTIFY_INTERVAL_SECONDS", INTERVAL_SECONDS))
        app.extensions["notify_sender"] = sender
        sender.thread.start()
        return sender


def init_app(app):
    if not wanted(app):
        return
    start(app)

    @app.before_request
    def _keep_sender():
        # A worker forked after start-up (or a thread that died) gets a sender again.
        sender = app.extensions.get("notify_sender")
        if sender is None or not sender.alive:
            start(app)
