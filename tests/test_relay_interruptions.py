"""Video after an interruption: the worker stalls, or the link drops everything for a while.

A garbage collection, a busy neighbour on the host or a paused VM can stop the worker for a
few hundred milliseconds; a phone in a lift loses its link for seconds. When it ends, the
viewer must see a moving picture again within about one keyframe round trip, not seconds
later. Same network and participants as tests/test_relay_lossy_network.py (root only).

``pytest -s tests/test_relay_interruptions.py`` prints the figures.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time

import pytest

from tests.test_relay_lossy_network import Peer, network, pytestmark   # noqa: F401 (fixture, marks)


def usable_arrivals(peer_log, record) -> list[tuple[float, float]]:
    """(arrival, sent) of every video frame a decoder could use: a keyframe or the successor of one."""
    usable, arrivals = set(), []
    for arrival, data in record.frames:
        number, sent, keyframe = peer_log.video[hashlib.sha1(data).digest()]
        if keyframe or number - 1 in usable:
            usable.add(number)
            arrivals.append((arrival, sent))
    return arrivals


async def interrupted_call(network, room: str, start, end, seconds: float) -> dict:
    """A call that runs a second, is interrupted for ``seconds`` (``start``/``end``), runs 2 s more."""
    async with Peer(network.url, room, "practitioner") as sender, \
            Peer(network.url, room, "patient") as viewer:
        await asyncio.gather(sender.call(), viewer.call(send_video=False))
        await asyncio.gather(sender.connected(), viewer.connected("video"))
        await asyncio.sleep(1.0)
        began = time.monotonic()
        start()
        try:
            await asyncio.sleep(seconds)
        finally:
            end()
        ended = time.monotonic()
        await asyncio.sleep(2.0)
        arrivals = usable_arrivals(sender.log, viewer.records["video"])
        before = [a for a, _ in arrivals if a < began]
        # A frame sent once the interruption ended: the picture moves again from it.
        after = [a for a, sent in arrivals if sent >= ended]
        fresh = [a for a, sent in arrivals if sent >= ended and a >= ended + 1.0]
        audio_after = [t for t, _ in viewer.records["audio"].frames if t >= ended]
        return {"freeze_s": (after[0] if after else float("inf")) - before[-1],
                "back_after_s": (after[0] if after else float("inf")) - ended,
                "usable_after": len(after), "usable_in_last_second": len(fresh),
                "audio_back_after_s": (audio_after[0] - ended) if audio_after else float("inf"),
                "keyframe_requests": sum(1 for t in sender.log.keyframe_requests if t >= began)}


def test_a_200_ms_stall_of_the_worker_freezes_video_only_that_long(network):
    pid = network.worker_pid
    figures = asyncio.run(interrupted_call(
        network, "stall", lambda: os.kill(pid, signal.SIGSTOP), lambda: os.kill(pid, signal.SIGCONT), 0.2))
    print("\nworker stopped 200 ms:", ", ".join(f"{k} {v:.3g}" for k, v in figures.items()))
    # The stall itself plus one keyframe round trip at most; the old behaviour froze ~2 s.
    assert figures["freeze_s"] < 0.2 + 0.6
    assert figures["usable_in_last_second"] >= 20      # 30 fps, steady again


def test_video_is_back_within_a_second_of_a_3_s_media_gap(network):
    figures = asyncio.run(interrupted_call(
        network, "gap", lambda: network.blackout(True), lambda: network.blackout(False), 3.0))
    print("\n3 s without media:", ", ".join(f"{k} {v:.3g}" for k, v in figures.items()))
    # ~0.1 s here (aiortc at both ends). Seen ~7 s with browsers: not the worker, then.
    assert figures["back_after_s"] < 1.0
    assert figures["usable_in_last_second"] >= 20
    assert figures["keyframe_requests"] <= 4            # one per second of gap at most, no storm
