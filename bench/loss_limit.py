"""The loss-based limit (``forward.LossBasedLimit`` through a ``Sink``) on simulated links.

A sender follows the limit within half a second, up to Chromium's 1.6 Mbit/s, in 1200-byte
packets; each is lost at random (4G, a busy Wi-Fi) or past a policer's capacity; the viewer
NACKs each loss a tick (20 ms) later and reports every second, as a browser does. Prints, for
each link over a few seeds, the rate the sender ends at, the lowest it fell to, and the share
lost in the last 10 s. A model, not a network: the real links are in
``tests/test_relay_lossy_network.py``. Run it from the repository's root:

    .venv/bin/python bench/loss_limit.py [--seconds 60] [--seeds 8]
"""
from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP = 1_600_000                     # what Chromium sends at 640x480
PACKET = 1200
TICK = 0.02

LINKS = {"random 3%": (0.03, None), "random 5%": (0.05, None), "random 8%": (0.08, None),
         "policer 400 kbit/s": (0.0, 400_000), "policer 1 Mbit/s": (0.0, 1_000_000),
         "1 Mbit/s + 3% random": (0.03, 1_000_000), "300 kbit/s + 5% random": (0.05, 300_000)}


@contextlib.contextmanager
def simulated_clock(forward):
    """``forward``'s monotonic clock, moved by hand (``clock.now``)."""
    clock = types.SimpleNamespace(now=1000.0)
    real = forward.time
    forward.time = types.SimpleNamespace(monotonic=lambda: clock.now, time=time.time)
    try:
        yield clock
    finally:
        forward.time = real


def simulate(seconds: float, random_loss: float, capacity: int | None = None,
             seed: int = 7) -> tuple[list[float], float]:
    """The rate sent each second, and the share of packets lost over the last 10 s."""
    from webapp.relay import forward
    with simulated_clock(forward) as clock:
        sink = forward.Sink("video", forward.VP8)
        sink.loss_limit = forward.LossBasedLimit(clock=lambda: clock.now)
        chance, rate = random.Random(seed), float(TOP)
        sent = in_report = lost_in_report = late_sent = late_lost = 0
        spare = allowance = 0.0
        nacks, rates = [], []
        for step in range(1, int(seconds / TICK) + 1):
            clock.now += TICK
            rate += (min(TOP, sink.bitrate_limit or TOP) - rate) * TICK / 0.5
            if sink._began is None:
                sink._began = clock.now
            sink._sent.append((clock.now, rate / 8 * TICK))
            spare += rate / 8 * TICK
            if capacity:
                allowance = min(allowance + capacity / 8 * TICK, capacity / 8 * 0.05)
            if nacks:
                sink.nacked(nacks, sent)
            nacks = []
            late = step * TICK > seconds - 10
            while spare >= PACKET:
                spare -= PACKET
                sent, in_report = sent + 1, in_report + 1
                through = not capacity or allowance >= PACKET
                if capacity and through:
                    allowance -= PACKET
                lost = not through or chance.random() < random_loss
                late_sent, late_lost = late_sent + late, late_lost + (late and lost)
                if lost:
                    nacks.append(sent)
                    lost_in_report += 1
            if step % round(1 / TICK) == 0:
                sink.reported_loss(lost_in_report / max(in_report, 1), sent)
                in_report = lost_in_report = 0
                rates.append(rate)
    return rates, late_lost / max(late_sent, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seeds", type=int, default=8)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    print(f"{'link':24} {'ends at (kbit/s)':>18} {'lowest':>8} {'lost, last 10 s':>17}")
    for name, (random_loss, capacity) in LINKS.items():
        runs = [simulate(args.seconds, random_loss, capacity, seed) for seed in range(args.seeds)]
        ends = [rates[-1] / 1000 for rates, _ in runs]
        lowest = min(min(rates) for rates, _ in runs) / 1000
        lost = [share * 100 for _, share in runs]
        print(f"{name:24} {min(ends):8.0f}-{max(ends):<9.0f} {lowest:8.0f} "
              f"{min(lost):8.1f}-{max(lost):.1f}%")


if __name__ == "__main__":
    main()
