"""One web process of the app, for tests that need several on one database (tests/test_events_postgres.py).

``python tests/app_process.py <instance folder>`` serves the app on a free loopback port with the tests'
settings (``DATABASE_URL`` from the environment) and the tests' clock (``CABINET_TEST_CLOCK``, an ISO
instant that then ticks on), prints ``serving http://127.0.0.1:<port>`` and serves until terminated.
"""
import datetime as dt
import os
import sys
from pathlib import Path

import time_machine
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from webapp.app import create_app  # noqa: E402 - after the path that finds it


def main(instance: str) -> None:
    with time_machine.travel(dt.datetime.fromisoformat(os.environ["CABINET_TEST_CLOCK"]), tick=True):
        app = create_app({"TESTING": True, "INSTANCE_PATH": instance, "WTF_CSRF_ENABLED": False,
                          "RATELIMIT_ENABLED": False,
                          "ENV": {"DATABASE_URL": os.environ["DATABASE_URL"], "SECRET_KEY": "test-secret",
                                  "PUBLIC_URL": "https://cabinet.test", "RELAY_URLS": "ws://127.0.0.1:9"}})
        server = make_server("127.0.0.1", 0, app, threaded=True)
        print(f"serving http://127.0.0.1:{server.server_port}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
