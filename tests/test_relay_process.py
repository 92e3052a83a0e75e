"""The worker as its own process loads the relay and nothing of the web app.

``python -m webapp.relay`` shares the ``webapp`` package with the web app for
its pure modules only (tokens, netsettings): Flask, peewee, argon2 and the
models would cost it memory and start-up time and do nothing. The worker is run
here exactly as in production, with ``PYTHONPROFILEIMPORTTIME=1`` (Python's
``-X importtime``), which makes the interpreter itself report on stderr every
module it imports, as it imports it: what it reported by the time the worker
says it is listening is what its start loaded.
"""
import os
import subprocess
import sys
import tempfile

from tests.relay_helpers import ROOT, SECRET, stop_worker_process

# What the web app needs and the worker must not load (packages, and the app's own modules).
WEB_APP_PACKAGES = {"flask", "werkzeug", "jinja2", "peewee", "argon2", "dotenv"}
WEB_APP_MODULES = {"webapp.app", "webapp.config", "webapp.models", "webapp.db"}


def modules_loaded_by_start() -> set[str]:
    """Every module ``python -m webapp.relay --port 0`` imported before it printed its address."""
    env = {**os.environ, "SECRET_KEY": SECRET, "RELAY_HOST_ADDRESSES": "127.0.0.1", "ICE_SERVERS": "[]",
           "PYTHONPATH": str(ROOT), "PYTHONPROFILEIMPORTTIME": "1"}
    with tempfile.TemporaryFile("w+") as report:     # a file, not a pipe: hundreds of lines
        proc = subprocess.Popen([sys.executable, "-m", "webapp.relay", "--port", "0"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=report, text=True)
        try:
            line = proc.stdout.readline()
            report.seek(0)
            lines = report.read().splitlines()  # C stdio writes stderr unbuffered: all of it is there
        finally:
            stop_worker_process(proc)
    assert line.startswith("relay listening on "), f"worker did not start: {line}{lines[-20:]}"
    return {entry.split("|")[-1].strip() for entry in lines
            if entry.startswith("import time:") and not entry.endswith("imported package")}


def test_python_m_webapp_relay_loads_nothing_of_the_web_app():
    loaded = modules_loaded_by_start()
    assert {"webapp.relay.worker", "webapp.tokens", "webapp.netsettings", "aiortc", "websockets"} <= loaded
    assert sorted(m for m in loaded if m.split(".")[0] in WEB_APP_PACKAGES or m in WEB_APP_MODULES) == []
