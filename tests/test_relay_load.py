"""The worker's automatic limit: a new call is refused when the calls here fill its core."""
from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect

from tests.relay_helpers import ticket
from webapp.relay import protocol as p
from webapp.relay.load import LoadGauge, over_capacity
from webapp.relay.worker import start_embedded
from tests.relay_helpers import SECRET


@pytest.mark.parametrize("cpu, lag, calls, refused", [
    (0.0, 0.0, 0, False),        # an idle worker takes a call, whatever
    (0.95, 0.0, 0, False),       # ...even if something else used its core (no call to weigh)
    (0.40, 0.0, 10, False),      # 4% a call: the 11th brings it to 44%
    (0.78, 0.0, 12, False),      # 6.5% a call: the 13th makes 84.5%
    (0.80, 0.0, 12, True),       # the 13th would make 86.7%: past 85%
    (0.50, 0.0, 1, True),        # one heavy call (a 4K screen share): a second one would not fit
    (0.30, 0.08, 6, True),       # little CPU but the loop is late: the core is fought over
    (0.30, 0.02, 6, False),
])
def test_a_new_call_is_refused_when_it_would_push_the_core_past_its_limit(cpu, lag, calls, refused):
    assert over_capacity(cpu, lag, calls) is refused


def test_no_automatic_limit_when_switched_off():
    assert not over_capacity(0.99, 1.0, 30, max_cpu=0)


def test_the_gauge_reads_cpu_and_lag_over_its_window_only():
    now, cpu = [0.0], [0.0]
    gauge = LoadGauge(window=5, clock=lambda: now[0], cpu_clock=lambda: cpu[0])
    assert gauge.cpu() == 0 and gauge.lag() == 0
    for _ in range(10):                       # 10 s at 20% of a core, timers on time
        now[0] += 1
        cpu[0] += 0.2
        gauge.sample(0.0)
    assert gauge.cpu() == pytest.approx(0.2)
    for _ in range(5):                        # then 5 s at 90%, timers 100 ms late
        now[0] += 1
        cpu[0] += 0.9
        gauge.sample(0.1)
    assert gauge.cpu() == pytest.approx(0.9)  # the quiet seconds have left the window
    assert gauge.lag() == pytest.approx(0.1)


@pytest.mark.real_clock
def test_a_worker_whose_core_is_full_refuses_a_new_call_but_not_a_call_it_carries():
    relay = start_embedded(SECRET, max_cpu=1e-6)          # any CPU at all fills this "core"

    async def join(room: str, role: str):
        ws = await connect(relay.url)
        await ws.send(p.encode(p.Join(ticket(room, role))))
        return ws, p.decode(await ws.recv())

    async def scenario():
        first, msg = await join("carried", "practitioner")
        assert isinstance(msg, p.PeerState)                  # no call yet: taken
        await asyncio.sleep(0.6)                             # the gauge has seen the worker work
        assert relay.worker.full()
        _, msg = await join("new", "practitioner")
        assert isinstance(msg, p.Error) and msg.code == p.FULL
        second, msg = await join("carried", "patient")       # the other side of a call here
        assert isinstance(msg, p.PeerState)
        await first.close()
        await second.close()
    try:
        asyncio.run(scenario())
    finally:
        relay.stop()
