"""The app as ``gunicorn -c python:webapp.serving`` loads it for tests/test_serving.py and bench/sockets.py:
``gunicorn -c python:webapp.serving --pythonpath tests serving_app:app``.

The tests' settings, with the database (``DATABASE_URL``), the instance folder (``CABINET_INSTANCE``) and
the relay (``RELAY_URLS``, may be empty) from the environment. ``CABINET_IDLE_REFRESH`` (seconds) changes
how often an idle live page renders again (bench/sockets.py --idle-refresh). With ``CABINET_HELD_PDF`` (a folder), each
prescription's rendering first writes ``started`` there, then holds its thread, as a long CPU-bound
render would, until ``release`` appears: the test sees whether other pages are served meanwhile.
"""
import os
import time
from pathlib import Path

from webapp.app import create_app
from webapp import today
from webapp.closing import views
from webapp.patient import waiting

app = create_app({"TESTING": True, "INSTANCE_PATH": os.environ["CABINET_INSTANCE"], "WTF_CSRF_ENABLED": False,
                  "RATELIMIT_ENABLED": False,
                  "ENV": {"DATABASE_URL": os.environ["DATABASE_URL"], "SECRET_KEY": "test-secret",
                          "PUBLIC_URL": "https://cabinet.test", "RELAY_URLS": os.environ.get("RELAY_URLS", "")}})

if os.environ.get("CABINET_IDLE_REFRESH"):
    today.IDLE_REFRESH_SECONDS = waiting.IDLE_REFRESH_SECONDS = float(os.environ["CABINET_IDLE_REFRESH"])

if os.environ.get("CABINET_HELD_PDF"):
    held = Path(os.environ["CABINET_HELD_PDF"])
    render = views.render_prescription
    try:
        from gevent.monkey import get_original
        blocking_sleep = get_original("time", "sleep")      # holds the OS thread, as CPU work does
    except ImportError:
        blocking_sleep = time.sleep

    def held_render(*args, **kwargs):
        (held / "started").touch()
        while not (held / "release").exists():
            blocking_sleep(0.01)
        return render(*args, **kwargs)

    views.render_prescription = held_render
