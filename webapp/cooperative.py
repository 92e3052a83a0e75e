"""Code that runs the same with real threads (``flask run``, the tests) and under gevent (gunicorn's
gevent workers, ``webapp/serving.py``): whether gevent patched the process, and ``offload`` for
CPU-bound work that must not stall the other greenlets."""
from __future__ import annotations

import contextvars
import sys

from peewee import SqliteDatabase

from .models import db

NO_EMBEDDED_RELAY = ("Cabinet runs under gevent here, where the embedded relay (asyncio on a thread) cannot run: "
                     "start the relay as its own process (python -m webapp.relay) and set RELAY_URLS to its "
                     "address(es). See docs/serving.md.")


def patched() -> bool:
    """Whether gevent monkey-patched this process (gunicorn's gevent worker does)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


def require_external_relay(config) -> None:
    """Under gevent the relay must be its own process: RuntimeError when RELAY_URLS is empty."""
    if patched() and not config.get("RELAY_URLS") and config.get("RELAY_EMBEDDED", True):
        raise RuntimeError(NO_EMBEDDED_RELAY)


def offload(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, run on a thread of gevent's pool when under gevent, so the other
    greenlets go on meanwhile; called in place otherwise (real threads: ``flask run``, tests).

    For CPU-bound work of more than ~20 ms (argon2, PDF rendering). The caller's context goes
    with it (Flask's app and request, the locale) and so does its database connection: the caller
    waits, so the connection is never used by two at once. On SQLite inside a transaction the work
    runs in place: a waiting greenlet would hold SQLite's one write lock while another greenlet,
    wanting it, blocks the whole process in SQLite's busy handler.
    """
    if not patched():
        return fn(*args, **kwargs)
    from gevent import get_hub  # noqa: PLC0415 - gevent is loaded whenever patched() is true

    database = db.obj
    if isinstance(database, SqliteDatabase) and database.in_transaction():
        return fn(*args, **kwargs)
    context = contextvars.copy_context()
    state = database._state if database is not None else None    # the caller's (greenlet-local)

    def on_a_thread():
        mine = database._state if database is not None else None
        if state is not None and not state.closed:
            mine.conn, mine.closed, mine.ctx, mine.transactions = state.conn, False, state.ctx, state.transactions
            mine.commit_callbacks = getattr(state, "commit_callbacks", [])
        try:
            return context.run(fn, *args, **kwargs)
        finally:
            if mine is not None:
                if mine.conn is not None and (state is None or mine.conn is not state.conn):
                    database.close()        # one fn opened here (the caller had none)
                mine.reset()    # the caller's connection stays the caller's: never closed here

    return get_hub().threadpool.apply(on_a_thread)
