"""How Cabinet is served in production: gunicorn with gevent workers.

Used as a gunicorn configuration module::

    gunicorn -c python:webapp.serving wsgi:app

Every open live page (waiting room, the day's list, each side of a call) is a websocket that stays
open for as long as the page does. Under gevent each one is a greenlet (and simple-websocket's
reader greenlet) waiting on its socket: some memory, no thread, no wake-ups while nothing happens.
So one process holds a thousand open pages (``bench/sockets.py``; docs/serving.md).

What gevent asks of the code, and where it is given:

- Nothing may block the process's one thread for long. PostgreSQL waits become cooperative through
  psycogreen (``post_fork``); sockets, ``select``, ``time.sleep`` and locks through gevent's
  monkey-patching, which gunicorn's gevent worker applies before it loads the app (so locks the app
  creates at import are gevent's). CPU-bound work (argon2, PDF rendering) goes through
  ``cooperative.offload``, which runs it on a thread of gevent's pool while the other greenlets go on.
- The relay worker (asyncio and aiortc on a thread of their own) cannot run inside a gevent
  process: ``RELAY_URLS`` must name relay processes (``python -m webapp.relay``), and a worker
  refuses to start without it (``cooperative.require_external_relay``).

This module is read by gunicorn's master before any worker exists, and imports nothing of the app
at its top: a module imported there, before gevent patches the worker, would keep real thread locks
that block the whole process when a greenlet waits on them.

Settings come from the environment: ``BIND`` (``127.0.0.1:8000``), ``WEB_CONCURRENCY`` (worker
processes, 1; more need PostgreSQL, see docs/serving.md), ``WORKER_CONNECTIONS`` (open connections
per worker, 2000), ``GUNICORN_TIMEOUT`` (120).
"""
from __future__ import annotations

import logging
import os
import sys

# gunicorn settings (the names gunicorn reads from this module)

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "gevent"
# Every open live page is a connection: a thousand pages need more than gunicorn's default 1000.
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "2000"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
# The app's locks, the events hub and the relay's settings are made in each worker, after gevent
# patched it: never load the app in the master.
preload_app = False
accesslog = "-"
# gunicorn 27's control socket is one path per user ($HOME/.gunicorn/gunicorn.ctl): several servers
# of one user (a test beside a running one) would fight over it, and Cabinet needs none.
control_socket_disable = True

# The access log without patient links: the app's own filter (``webapp.app.LinkTokenFilter``),
# installed by a logging configuration so it applies from the first request of every worker.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"patient_links": {"()": "webapp.serving.AccessLogFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"},
                   "access": {"format": "%(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"},
        "access": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "access",
                   "filters": ["patient_links"]},
    },
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}


class AccessLogFilter(logging.Filter):
    """``webapp.app.LinkTokenFilter``, loaded on the first record (in a worker, after gevent patched
    it): logging builds this filter in the master, which must not import the app (see above)."""

    _filter = None

    def filter(self, record: logging.LogRecord) -> bool:
        if AccessLogFilter._filter is None:
            from .app import LinkTokenFilter  # noqa: PLC0415 - not in the master: see the class docstring
            AccessLogFilter._filter = LinkTokenFilter()
        return AccessLogFilter._filter.filter(record)


def post_fork(server, worker) -> None:
    """psycopg2 waits for PostgreSQL through gevent (queries, LISTEN, connecting): one slow query
    then holds its own greenlet, not the process."""
    from psycogreen.gevent import patch_psycopg  # noqa: PLC0415 - gevent loads only in workers

    patch_psycopg()


def post_worker_init(worker) -> None:
    """A worker whose app would start the embedded relay stops here (gunicorn then halts)."""
    from .cooperative import require_external_relay  # noqa: PLC0415 - after the patching (module docstring)

    try:
        require_external_relay(worker.wsgi.config)
        require_shared_events(worker.cfg.workers, worker.wsgi.config["DATABASE_URL"])
    except RuntimeError as problem:
        worker.log.error("%s", problem)
        sys.exit(3)     # gunicorn's WORKER_BOOT_ERROR: the master stops instead of forking again


SQLITE_ONE_PROCESS = ("WEB_CONCURRENCY is %d but the database is SQLite: live updates (the waiting room, the day's "
                      "list, chat) travel between processes only through PostgreSQL. Use WEB_CONCURRENCY=1 "
                      "(one gevent process holds a thousand open pages) or a postgresql:// DATABASE_URL.")


def require_shared_events(workers: int, database_url: str) -> None:
    """Several processes on SQLite would each keep their own events: a patient entering through one
    would never appear on a practitioner's page served by another. RuntimeError then."""
    if workers > 1 and not database_url.startswith(("postgres://", "postgresql://")):
        raise RuntimeError(SQLITE_ONE_PROCESS % workers)
