"""A thousand open live pages against ONE web process, and how that process serves meanwhile.

The web process is a real gunicorn with one worker: ``--model gevent`` (the production model,
``gunicorn -c python:webapp.serving``) or ``--model gthread`` (the old advice: ``-k gthread --threads 64``),
beside a real relay worker process, on a SQLite database in a temporary folder. 25 practitioners each
keep 4 day pages open (``/today/live``, their staff session cookie) and 900 patients each keep their
waiting room open (``/v/<ref>/live``, their cookie): 1,000 websockets, opened by a client process of its
own (asyncio + websockets, so the client is not the bottleneck). Then, with all of them open:

- staff page latency: ``GET /today/`` of one practitioner, one after the other (p50, p95);
- live-update latency: a patient comes in (``GET /v/<ref>/waiting``); the clock stops when the first of
  the practitioner's 4 open day pages shows them (p50, p95);
- the web process's memory per open socket: (RSS with the sockets open - RSS before) / sockets open;
- the staff page with no socket open, for comparison on a shared (noisy) machine.

Targets (issue 14): staff page p95 < 100 ms, comes in → seen p95 < 100 ms.
Under ``--model gthread`` each open socket holds one of the 64 threads: the client stops opening once
sockets stop being answered, and the staff page is not answered either.

    .venv/bin/python bench/sockets.py [--model gevent|gthread] [--days 100] [--rooms 900] [--samples 100]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from process_helpers import DidNotStart, start_logged  # noqa: E402

SITE = "https://cabinet.test"
DAY_PAGES = 4               # a staff session's cap (events.STAFF_SOCKETS)
OPEN_TIMEOUT = 30           # seconds: a socket not answered by then counts as refused (the machine may be busy)


def more_files() -> None:
    """A thousand sockets on each side: raise the soft limit on open files to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# The server side.

def fill(folder: Path, doctors: int, rooms: int, samples: int) -> dict:
    """Practitioners, patients whose pages will stay open, and patients ready to come in (consent and
    devices done), with the cookies a browser would hold."""
    from conftest import make_app, make_appointment, make_practice, make_user, signed_in
    from webapp.access import COOKIE, IDENTITY_COOKIE, link_expires_at
    from webapp.models import db
    from webapp.tokens import make_identity_cookie, make_patient_cookie

    def cookies(appt) -> str:
        expires = link_expires_at(appt)
        return (f"{COOKIE}={make_patient_cookie('test-secret', appt.id, appt.link_version, expires)}; "
                f"{IDENTITY_COOKIE}={make_identity_cookie('test-secret', appt.id, appt.link_version, expires)}")

    app = make_app(folder)
    serializer = app.session_interface.get_signing_serializer(app)
    spec = {"days": [], "rooms": [], "entries": [], "staff": None}
    devices = json.dumps({"camera": "ok", "microphone": "ok", "speaker": "ok", "network": "good"})
    with app.app_context(), db.atomic():
        make_practice()
        staff = []
        for _ in range(doctors):
            doctor = make_user("practitioner")
            staff.append((doctor.id, f"session={serializer.dumps(signed_in(doctor))}"))
            spec["days"] += [{"doctor": doctor.id, "cookie": staff[-1][1]}] * DAY_PAGES
        for i in range(rooms):
            doctor_id = staff[i % doctors][0]
            appt = make_appointment(practitioner=doctor_id, starts_in=dt.timedelta(minutes=5))
            spec["rooms"].append({"path": f"/v/{appt.ref}/live", "cookie": cookies(appt)})
        for i in range(samples):
            doctor_id = staff[i % doctors][0]
            appt = make_appointment(practitioner=doctor_id, starts_in=dt.timedelta(minutes=5))
            appt.confirm_identity()
            appt.give_consent("1", "en")
            appt.record_device_check(devices)
            spec["entries"].append({"id": appt.id, "doctor": doctor_id, "path": f"/v/{appt.ref}/waiting",
                                    "cookie": cookies(appt)})
        spec["staff"] = staff[0][1]
    db.close()
    return spec


def start(argv: list[str], env: dict, ready: str, log: Path) -> tuple[subprocess.Popen, str]:
    try:
        return start_logged(argv, env, ready, log, wait=30)
    except DidNotStart as problem:
        sys.exit(str(problem))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def worker_pid(log: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"Booting worker with pid: (\d+)", log.read_text())
        if found:
            return int(found.group(1))
        time.sleep(0.1)
    sys.exit("the gunicorn worker did not boot")


def serve(model: str, folder: Path, env: dict) -> tuple[subprocess.Popen, str, int]:
    app = ["--pythonpath", "tests", "serving_app:app"]
    if model == "gevent":
        argv = [str(Path(sys.executable).with_name("gunicorn")), "-c", "python:webapp.serving", *app]
    else:
        argv = [str(Path(sys.executable).with_name("gunicorn")), "-k", "gthread", "--workers", "1", "--threads",
                "64", "--bind", "127.0.0.1:0", "--timeout", "120", "--no-control-socket", *app]
    log = folder / "gunicorn.log"
    proc, url = start(argv, env, r"Listening at: (http://[\d.:]+)", log)
    pid = worker_pid(log)
    ok = False
    deadline = time.monotonic() + 30
    while not ok and time.monotonic() < deadline:       # the worker has loaded the app
        try:
            ok = urllib.request.urlopen(url + "/healthz", timeout=5).status == 200
        except OSError:
            time.sleep(0.2)
    return proc, url, pid


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("gevent", "gthread"), default="gevent")
    parser.add_argument("--days", type=int, default=100, help="open day pages (4 per practitioner)")
    parser.add_argument("--rooms", type=int, default=900, help="open waiting rooms (one patient each)")
    parser.add_argument("--samples", type=int, default=100, help="staff pages and patients coming in, each")
    parser.add_argument("--idle-refresh", type=float, default=None,
                        help="seconds between an idle page's renders (the app's own: 30), to see what they cost")
    parser.add_argument("--no-deflate", action="store_true",
                        help="the client offers no permessage-deflate (browsers always do: for comparison)")
    args = parser.parse_args()
    more_files()
    doctors = max(1, args.days // DAY_PAGES)
    with tempfile.TemporaryDirectory(prefix="cabinet-bench-sockets-") as tmp:
        folder = Path(tmp)
        started = time.monotonic()
        spec = fill(folder, doctors, args.rooms, args.samples)
        print(f"database: SQLite ({doctors} practitioners, {args.rooms} + {args.samples} patients) "
              f"in {time.monotonic() - started:.0f} s", flush=True)
        relay, relay_url = start([sys.executable, "-m", "webapp.relay", "--port", "0"],
                                 {**os.environ, "SECRET_KEY": "test-secret"}, r"relay listening on (ws://[\d.:]+)",
                                 folder / "relay.log")
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{folder / 'test.sqlite3'}",
               "CABINET_INSTANCE": str(folder / "instance"), "RELAY_URLS": relay_url, "BIND": "127.0.0.1:0",
               "WEB_CONCURRENCY": "1"}
        if args.idle_refresh:
            env["CABINET_IDLE_REFRESH"] = str(args.idle_refresh)
        web, url, pid = serve(args.model, folder, env)
        try:
            spec["url"] = url
            (folder / "spec.json").write_text(json.dumps(spec))
            for _ in range(3):      # templates compiled and caches filled before the baseline
                timed_get(url + "/today/", spec["staff"])
            before = rss_kib(pid)
            alone = [t for t in (timed_get(url + "/today/", spec["staff"]) for _ in range(args.samples)) if t]
            spec["deflate"] = not args.no_deflate
            (folder / "spec.json").write_text(json.dumps(spec))
            client = subprocess.Popen([sys.executable, __file__, "--client", str(folder / "spec.json")],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            opened = json.loads(client.stdout.readline())
            during = rss_kib(pid)
            client.stdin.write("go\n")
            client.stdin.flush()
            result = json.loads(client.stdout.readline())
            if args.idle_refresh:
                print(f"idle pages render again every {args.idle_refresh:g} s (the app: 300 s for a waiting room, 30 s for the day: its minutes move)")
            report(args.model, opened, before, during, result, alone)
            client.wait(30)
        finally:
            for proc in (web, relay):
                proc.terminate()
            for proc in (web, relay):
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def report(model: str, opened: dict, before: int, during: int, result: dict, alone: list[float]) -> None:
    print(f"model: {model}{'' if opened.get('deflate', True) else ' (no permessage-deflate)'}; one web process (1 gunicorn worker); client: asyncio + websockets, another process")
    print(f"sockets open: {opened['open']} of {opened['asked']} ({opened['refused']} not answered within "
          f"{OPEN_TIMEOUT} s) in {opened['seconds']:.1f} s")
    if opened["open"]:
        print(f"web process RSS: {before / 1024:.1f} MiB before, {during / 1024:.1f} MiB with them open: "
              f"{(during - before) / opened['open']:.1f} KiB per open socket")
    if alone:       # the same page with no socket open: on a shared machine, compare with this
        print(f"staff page GET /today/, no socket open: p50 {percentile(alone, 50) * 1000:.1f} ms, "
              f"p95 {percentile(alone, 95) * 1000:.1f} ms ({len(alone)} samples)")
    for name, label in (("staff", "staff page GET /today/"), ("seen", "comes in -> seen on the day page")):
        values = result[name]
        if values:
            print(f"{label}: p50 {percentile(values, 50) * 1000:.1f} ms, p95 {percentile(values, 95) * 1000:.1f} ms "
                  f"({len(values)} samples, {result[name + '_failed']} failed)")
        else:
            print(f"{label}: no answer ({result[name + '_failed']} failed within {OPEN_TIMEOUT} s)")


# The client side (its own process): every page's socket, then the measures.

async def client(spec_path: str) -> None:
    from websockets.asyncio.client import connect

    more_files()
    spec = json.loads(Path(spec_path).read_text())
    base = spec["url"].replace("http", "ws", 1)
    seen: dict[int, float] = {}
    sockets, refused = [], 0
    started = time.monotonic()

    async def read(ws):
        try:
            async for message in ws:
                for found in re.finditer(r'data-waiting="(\d+)"', message):
                    seen.setdefault(int(found.group(1)), time.monotonic())
        except Exception:  # noqa: BLE001 - a closed socket just stops being read
            pass

    async def open_one(path: str, cookie: str):
        nonlocal refused
        try:
            ws = await connect(base + path, additional_headers={"Cookie": cookie}, origin=SITE,
                               open_timeout=OPEN_TIMEOUT, ping_interval=None, max_size=None,
                               compression="deflate" if spec["deflate"] else None)
        except (OSError, asyncio.TimeoutError, Exception):  # noqa: BLE001 - counted, not raised
            refused += 1
            return
        sockets.append(ws)
        asyncio.get_running_loop().create_task(read(ws))

    # The waiting rooms first: each one opening re-renders its practitioner's open day pages, and 900
    # patients do not all come online within seconds of each other in a real practice.
    pages = [(r["path"], r["cookie"]) for r in spec["rooms"]]
    pages += [("/today/live", d["cookie"]) for d in spec["days"]]
    batch = 25
    for start_at in range(0, len(pages), batch):
        await asyncio.gather(*(open_one(p, c) for p, c in pages[start_at:start_at + batch]))
        if refused >= batch:        # the server stopped answering (gthread: its threads are all held)
            break
    seconds = time.monotonic() - started
    await asyncio.sleep(1)      # the last pages' handlers subscribe after their handshake
    print(json.dumps({"asked": len(pages), "open": len(sockets), "refused": refused, "seconds": seconds,
                      "deflate": spec["deflate"]}), flush=True)
    await asyncio.to_thread(sys.stdin.readline)

    result = {"staff": [], "staff_failed": 0, "seen": [], "seen_failed": 0}
    for _ in range(len(spec["entries"])):
        took = await asyncio.to_thread(timed_get, spec["url"] + "/today/", spec["staff"])
        result["staff"].append(took) if took is not None else result.__setitem__("staff_failed",
                                                                                 result["staff_failed"] + 1)
        if result["staff_failed"] >= 3:
            break
    for entry in spec["entries"]:
        if result["seen_failed"] >= 3:
            break
        at = time.monotonic()
        if await asyncio.to_thread(timed_get, spec["url"] + entry["path"], entry["cookie"]) is None:
            result["seen_failed"] += 1
            continue
        deadline = at + OPEN_TIMEOUT
        while entry["id"] not in seen and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        if entry["id"] in seen:
            result["seen"].append(seen[entry["id"]] - at)
        else:
            result["seen_failed"] += 1
        await asyncio.sleep(0.05)
    print(json.dumps(result), flush=True)
    os._exit(0)         # the sockets drop with the process: closing a thousand one by one takes long


def timed_get(url: str, cookie: str) -> float | None:
    request = urllib.request.Request(url, headers={"Cookie": cookie, "Origin": SITE})
    at = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=OPEN_TIMEOUT) as response:
            response.read()
            return time.monotonic() - at if response.status == 200 else None
    except (OSError, urllib.error.HTTPError):
        return None


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--client":
        asyncio.run(client(sys.argv[2]))
    else:
        main()
