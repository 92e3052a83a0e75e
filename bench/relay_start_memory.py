"""Relay worker memory at start: its resident set once it is listening.

    python bench/relay_start_memory.py [--runs 5] [--tree PATH]

Starts ``python -m webapp.relay --port 0`` (this interpreter, the checkout at
``--tree``, default this one) ``--runs`` times, reads VmRSS from
/proc/<pid>/status as soon as it prints "relay listening on", stops it, and
prints each figure and their median. What a worker holds before its first call
is what each of several workers on one server costs at rest.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def rss_at_start(tree: Path) -> int:
    """The worker's VmRSS (KiB) when it says it is listening."""
    env = {**os.environ, "SECRET_KEY": "bench-secret", "RELAY_HOST_ADDRESSES": "127.0.0.1",
           "ICE_SERVERS": "[]", "PYTHONPATH": str(tree)}
    proc = subprocess.Popen([sys.executable, "-m", "webapp.relay", "--port", "0"],
                            cwd=tree, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("relay listening on "):
            sys.exit(f"worker did not start: {line!r}")
        return rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(15)


def revision(tree: Path) -> str:
    done = subprocess.run(["git", "-C", str(tree), "describe", "--always", "--dirty"],
                          capture_output=True, text=True)
    return done.stdout.strip() or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout to measure (default: this one)")
    args = parser.parse_args()
    tree = args.tree.resolve()
    figures = [rss_at_start(tree) / 1024 for _ in range(args.runs)]
    print(f"{tree} ({revision(tree)}), Python {sys.version.split()[0]}")
    print("VmRSS at start, MiB: " + " ".join(f"{f:.1f}" for f in figures))
    print(f"median: {statistics.median(figures):.1f} MiB")


if __name__ == "__main__":
    main()
