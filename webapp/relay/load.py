"""How busy the worker's core is, and whether one more call would fit.

Past its capacity a worker does not slow down gracefully: every call loses frames at once
(at 24 calls on a core that carries 20, 70% of all video). So a new call is refused while
the calls already here use nearly the whole core: ``RELAY_MAX_CALLS`` is a fixed limit, this
one follows what the calls really cost on this machine (codecs, bitrates, a busy neighbour).

Two measures over the last few seconds, taken on the worker's own event loop:

- its CPU time (all threads) per second of wall time, as a fraction of one core;
- the loop's lag: how late a timer fires. A worker starved by other processes on a shared
  core uses little CPU yet cannot keep up, and only the lag says so.
"""
from __future__ import annotations

import asyncio
import collections
import time

WINDOW = 5.0                 # seconds the measures cover
INTERVAL = 0.25              # between samples
MAX_CPU = 0.85               # of one core, with one more call (RELAY_MAX_CPU; 0: no automatic limit)
MAX_LAG = 0.05               # seconds a timer may fire late, on average over the window


def over_capacity(cpu: float, lag: float, calls: int, max_cpu: float = MAX_CPU,
                  max_lag: float = MAX_LAG) -> bool:
    """Whether a new call would push the worker past ``max_cpu`` of a core (or it lags already).

    A call costs about what the calls here cost on average: with ``calls`` calls using ``cpu``,
    one more would use ``cpu * (calls + 1) / calls``. With no call here, a call is always taken.
    """
    if not max_cpu or calls <= 0:
        return False
    return cpu * (calls + 1) / calls > max_cpu or lag > max_lag


class LoadGauge:
    """Samples CPU time and loop lag every ``interval``; ``cpu()`` and ``lag()`` over ``window``."""

    def __init__(self, window: float = WINDOW, interval: float = INTERVAL,
                 clock=time.monotonic, cpu_clock=time.process_time) -> None:
        self.window, self.interval = window, interval
        self._clock, self._cpu_clock = clock, cpu_clock
        self._samples: collections.deque = collections.deque()     # (wall, cpu, lag)
        self._task: asyncio.Task | None = None

    def sample(self, lag: float = 0.0) -> None:
        now = self._clock()
        self._samples.append((now, self._cpu_clock(), lag))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def cpu(self) -> float:
        """Fraction of one core used over the window (0 before two samples)."""
        if len(self._samples) < 2:
            return 0.0
        (t0, c0, _), (t1, c1, _) = self._samples[0], self._samples[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0

    def lag(self) -> float:
        """How late the sampling timer fired, on average over the window (seconds)."""
        lags = [lag for _, _, lag in list(self._samples)[1:]]
        return sum(lags) / len(lags) if lags else 0.0

    def start(self) -> None:
        if self._task is None:
            self.sample()
            self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            due = self._clock() + self.interval
            await asyncio.sleep(self.interval)
            self.sample(max(0.0, self._clock() - due))
