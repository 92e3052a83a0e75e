"""The worker's per-packet send work, alone: CPU microseconds per video packet sent.

    python bench/relay_sendpath.py [--rounds 7] [--seconds 2]

The sibling of bench/relay_hotpath.py for the other half of forwarding. One connection on
loopback: this process sends, as the worker does (a Sink, forward_to, PacedTransport, the fast
clock), the bench clip (640x480 VP8 at ~1.6 Mbit/s, as a browser sends it) at 30 frames a
second; a child process receives it (aiortc too, frames reassembled by a Tap, never decoded),
so only the sending side's work lands on this process's CPU time (``time.process_time``).
Two senders share the connection, one running aiortc's own ``RTCRtpSender._run_rtp``, the
other ``forward.LeanSender``; they take turns, ``--seconds`` of clip each, and the CPU time
of each turn is divided by the packets it sent. Median of ``--rounds`` turns each. The
figure covers everything a sent packet costs here (the frame through the Sink, packetizing,
SRTP, the socket, the event loop's wake-ups), and the far end checks every frame arrived.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiortc import (RTCBundlePolicy, RTCConfiguration, RTCPeerConnection,  # noqa: E402
                    RTCSessionDescription)

from bench.relay import FPS, encode_clip  # noqa: E402
from webapp.relay.forward import VP8, EncodedFrame, Sink, Tap, forward_to, is_keyframe, use_fast_clock  # noqa: E402
from webapp.relay.ice import use_host_addresses  # noqa: E402

CONFIG = dict(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
VARIANTS = ("aiortc's sender", "forward.LeanSender")


def receiver_main(conn) -> None:
    """The far end: answers, reassembles what arrives, reports the frames each stream gave."""
    async def run() -> None:
        pc = RTCPeerConnection(RTCConfiguration(**CONFIG))
        taps = []
        pc.on("track", lambda track: taps.append(Tap(
            next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track), track.kind)))
        loop = asyncio.get_running_loop()
        sdp, kind = await loop.run_in_executor(None, conn.recv)
        await pc.setRemoteDescription(RTCSessionDescription(sdp, kind))
        await pc.setLocalDescription(await pc.createAnswer())
        conn.send((pc.localDescription.sdp, pc.localDescription.type))
        await loop.run_in_executor(None, conn.recv)          # the sender is done
        await asyncio.sleep(0.3)
        conn.send([tap.received for tap in taps])
        await pc.close()
    asyncio.run(run())


async def send(clip: list[bytes], rounds: int, seconds: float) -> dict[str, list[float]]:
    use_fast_clock()
    pc = RTCPeerConnection(RTCConfiguration(**CONFIG))
    streams = []
    for variant in VARIANTS:
        sink = Sink("video", VP8)
        sender = pc.addTrack(sink)
        forward_to(sender, sink, lean=variant == VARIANTS[1])
        streams.append((variant, sender, sink))
    parent, child = multiprocessing.get_context("fork").Pipe()
    far = multiprocessing.get_context("fork").Process(target=receiver_main, args=(child,), daemon=True)
    far.start()
    loop = asyncio.get_running_loop()
    await pc.setLocalDescription(await pc.createOffer())
    parent.send((pc.localDescription.sdp, pc.localDescription.type))
    sdp, kind = await loop.run_in_executor(None, parent.recv)
    await pc.setRemoteDescription(RTCSessionDescription(sdp, kind))
    while not all(sink._started for _, _, sink in streams):
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)                    # the connection settles (first RTCP)
    results = {variant: [] for variant in VARIANTS}
    pushed = {variant: 0 for variant in VARIANTS}
    frames_per_turn = int(seconds * FPS)
    number = 0
    idle = []
    for r in range(rounds):
        start, due = time.process_time(), loop.time()
        for k in range(frames_per_turn):        # the same wake-ups, nothing to send
            due += 1 / FPS
            await asyncio.sleep(max(0.0, due - loop.time()))
        idle.append((time.process_time() - start) / frames_per_turn)
        for variant, sender, sink in (streams if r % 2 == 0 else streams[::-1]):
            packets_before = sender._RTCRtpSender__packet_count
            start, due = time.process_time(), loop.time()
            for k in range(frames_per_turn):
                data = clip[k % len(clip)]
                frame = EncodedFrame(data, number * (90000 // FPS), VP8, is_keyframe(VP8, data) or k == 0)
                number += 1
                if sink.push(frame):
                    pushed[variant] += 1
                due += 1 / FPS
                await asyncio.sleep(max(0.0, due - loop.time()))
            while sink._queue:
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.005)
            sent = sender._RTCRtpSender__packet_count - packets_before
            results[variant].append(((time.process_time() - start) / sent, sent / frames_per_turn))
    parent.send("done")
    received = await loop.run_in_executor(None, parent.recv)
    far.join(5)
    await pc.close()
    for (variant, _, _), got in zip(streams, received):
        assert got == pushed[variant], (variant, got, pushed[variant])      # every frame arrived whole
    return results, idle, pushed, received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    use_host_addresses(["127.0.0.1"])
    frames, _ = encode_clip(2)
    clip = frames[:int(2 * FPS)]
    results, idle, pushed, received = asyncio.run(send(clip, args.rounds, args.seconds))
    print(f"{args.rounds} turns of {args.seconds:g} s each ({sum(map(len, clip)) * 8 / 2 / 1000:.0f} kbit/s VP8); "
          f"frames pushed {list(pushed.values())}, all received; median:")
    idle_us = 1e6 * statistics.median(idle)
    print(f"  {'idle turn':<20} {idle_us:6.1f} us CPU per frame period (the connection and the turn's timer)")
    base = net_base = None
    for variant, values in results.items():
        us = 1e6 * statistics.median(v for v, _ in values)
        # what is left once the idle share (per frame period, spread on its packets) is taken off
        net = 1e6 * statistics.median(v - idle_us / 1e6 / per_frame for v, per_frame in values)
        base, net_base = base or us, net_base or net
        print(f"  {variant:<20} {us:6.1f} us CPU per packet sent ({us / base:.2f}x), "
              f"{net:5.1f} us without the idle share ({net / net_base:.2f}x)"
              f"  [{', '.join(f'{1e6 * v:.1f}' for v, _ in sorted(values))}]")


if __name__ == "__main__":
    main()
