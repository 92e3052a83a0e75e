"""Relay worker memory over many short calls: does its resident set stay flat?

    python bench/relay_memory.py [--calls 100] [--batch 5] [--seconds 1.5]

One worker process (``python -m webapp.relay``) serves every call. Each call is
two aiortc callers (practitioner and patient) that join a fresh room, send
640x480 VP8 at 30 fps and Opus for ``--seconds`` (a clip encoded once, so the
callers stay cheap), say ``bye`` and hang up. ``--batch`` calls run at a time.
The worker's RSS is read from /proc/<pid>/status (VmRSS) after each batch.

Target (issue 4): RSS after 100 calls within 20% of RSS after the first 10.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _load_relay_bench():
    """bench/relay.py (not a package): its worker launcher, clip and callers."""
    spec = importlib.util.spec_from_file_location("bench_relay", ROOT / "bench" / "relay.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_relay_bench()


async def one_call(url: str, room: str, seconds: float) -> dict:
    """A short call: both join, connect, send media, say bye, hang up; frames each side got.

    Media runs until each side has had ``seconds`` of the other's video and audio
    (or for ``seconds`` + 5 s at most, when the machine is too busy to keep up).
    """
    from webapp.relay import protocol as p

    go = asyncio.Event()
    pair = [bench.BenchCaller(url, room, role, bench.encode_clip(), go)
            for role in ("practitioner", "patient")]
    await asyncio.gather(*(c.start() for c in pair))
    await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in pair)), 30)
    await asyncio.sleep(0.5)          # the worker's senders start reading once DTLS is up
    go.set()
    goal = {"video": int(seconds * bench.FPS), "audio": int(seconds * 50)}
    deadline = time.monotonic() + seconds + 5
    while time.monotonic() < deadline and not all(
            len(c.taps[kind].timestamps) >= n for c in pair for kind, n in goal.items()):
        await asyncio.sleep(0.1)
    received = {c.role: {k: len(t.timestamps) for k, t in c.taps.items()} for c in pair}
    for caller in pair:
        await caller.ws.send(p.encode(p.Bye()))
    await asyncio.gather(*(c.close() for c in pair))
    return received


async def many_calls(url: str, pid: int, calls: int, batch: int, seconds: float) -> tuple[list, int]:
    """(calls done, RSS MiB) after each batch, and how many calls fell short of full media."""
    samples, short = [], 0
    goal = {"video": int(seconds * bench.FPS), "audio": int(seconds * 50)}
    done = 0
    while done < calls:
        n = min(batch, calls - done)
        results = await asyncio.gather(*(one_call(url, f"mem-{done + i}", seconds) for i in range(n)))
        short += sum(any(got[k] < goal[k] for got in r.values() for k in goal) for r in results)
        done += n
        await asyncio.sleep(0.5)          # let the worker finish closing
        samples.append((done, bench.rss_mib(pid)))
    return samples, short


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--batch", type=int, default=5, help="calls at a time")
    parser.add_argument("--seconds", type=float, default=1.5, help="media per call")
    args = parser.parse_args()
    if args.calls < 10 or 10 % args.batch:
        sys.exit("--calls must be at least 10 and --batch must divide 10")

    from webapp.relay.ice import use_host_addresses

    use_host_addresses(["127.0.0.1"])         # the callers stay on loopback too
    bench.encode_clip()
    worker, url = bench.start_worker()
    started = time.monotonic()
    print(f"worker pid {worker.pid}, MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', 'unset')}; "
          f"RSS at start: {bench.rss_mib(worker.pid):.1f} MiB", flush=True)
    try:
        samples, short = asyncio.run(many_calls(url, worker.pid, args.calls, args.batch, args.seconds))
    finally:
        bench.stop_worker(worker)
    for done, rss in samples:
        if done == 10 or done % 20 == 0 or done == samples[-1][0]:
            print(f"after {done:>3} calls: RSS {rss:6.1f} MiB", flush=True)
    print(f"calls in which a side got less than {args.seconds} s of the other's media "
          f"within {args.seconds + 5} s: {short} of {samples[-1][0]}")
    after_10 = next(rss for done, rss in samples if done == 10)
    final_calls, final = samples[-1]
    ratio = final / after_10
    verdict = "ok" if ratio <= 1.2 else "OVER TARGET"
    print(f"RSS after {final_calls} / after 10 calls: {after_10:.1f} -> {final:.1f} MiB, "
          f"ratio {ratio:.3f} (target <= 1.20: {verdict}); {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
