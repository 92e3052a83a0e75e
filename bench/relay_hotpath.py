"""The worker's per-packet receive work, alone: CPU microseconds per video packet.

    python bench/relay_hotpath.py [--rounds 5]

On a shared machine a whole-worker benchmark's loss figures move with other people's load;
this one feeds the same packets (the bench clip, 640x480 VP8 at ~1.6 Mbit/s, packetized and
with abs-send-time, as a browser sends them) straight to a video receiver and reads the CPU
time this process spent (``time.process_time``, not the wall clock), median of several rounds.
It compares aiortc's own ``RTCRtpReceiver._handle_rtp_packet`` (fed to forward's
reassembly, as the worker did before) with ``forward.Tap``'s.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiortc.rtcrtpparameters import (RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters,  # noqa: E402
                                     RTCRtpParameters)
from aiortc.rtcrtpreceiver import RTCRtpReceiver  # noqa: E402
from aiortc.rtp import HeaderExtensionsMap, RtpPacket  # noqa: E402

from bench.relay import FPS, encode_clip  # noqa: E402
from webapp.relay.forward import VP8, EncodedFrame, Packer, Tap  # noqa: E402

# The header extensions Chromium sends with video (ids as it numbers them).
EXTENSIONS = RTCRtpParameters(headerExtensions=[
    RTCRtpHeaderExtensionParameters(id=2, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
    RTCRtpHeaderExtensionParameters(
        id=3, uri="http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"),
    RTCRtpHeaderExtensionParameters(id=4, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
    RTCRtpHeaderExtensionParameters(id=14, uri="urn:ietf:params:rtp-hdrext:toffset"),
])


class Transport:
    state = "connected"

    def __init__(self) -> None:
        self._rtp_header_extensions_map = HeaderExtensionsMap()
        self._rtp_header_extensions_map.configure(EXTENSIONS)


def packets(seconds: int = 2) -> list[RtpPacket]:
    frames, _ = encode_clip(seconds)
    packer, out, seq = Packer(VP8), [], 0
    for number, data in enumerate(frames):
        payloads, _ = packer.pack(EncodedFrame(data, number * 3000, VP8, number == 0))
        for i, payload in enumerate(payloads):
            packet = RtpPacket(payload_type=96, sequence_number=seq % 65536, timestamp=number * 3000,
                               ssrc=1234, marker=int(i == len(payloads) - 1))
            packet.payload = payload
            # abs-send-time: 6.18 fixed-point seconds, one frame period apart
            packet.extensions.abs_send_time = int(number / FPS * (1 << 18)) & 0xFFFFFF
            packet.extensions.mid, packet.extensions.transport_sequence_number = "1", seq % 65536
            out.append(packet)
            seq += 1
    return out


async def run(lean: bool, stream: list[RtpPacket], repeat: int) -> float:
    """CPU per packet from its bytes (after SRTP) to a reassembled frame: parse, then the receiver."""
    transport = Transport()
    receiver = RTCRtpReceiver("video", transport)
    receiver._RTCRtpReceiver__codecs[96] = RTCRtpCodecParameters("video/VP8", 90000, payloadType=96)

    async def nothing(*args, **kwargs):
        pass
    receiver._send_rtcp = receiver._send_rtcp_nack = receiver._send_rtcp_pli = nothing
    tap = Tap(receiver, "video")
    extensions = transport._rtp_header_extensions_map
    if not lean:
        extensions.__class__ = HeaderExtensionsMap
    handle = tap._handle_rtp_packet if lean else (
        lambda packet, arrival_time_ms: RTCRtpReceiver._handle_rtp_packet(receiver, packet, arrival_time_ms))
    if not lean:
        receiver._RTCRtpReceiver__decoder_thread = True       # so frames reach the Tap, as in the worker
    base = [(p.timestamp, p.extensions.abs_send_time) for p in stream]
    frames = base[-1][0] // 3000 + 1
    rounds = []
    for r in range(repeat):                 # the clip again, later: sequence numbers and times go on
        data = []
        for k, (packet, (timestamp, sent)) in enumerate(zip(stream, base)):
            packet.sequence_number = (r * len(stream) + k) % 65536
            packet.timestamp = (r * frames * 3000 + timestamp) % (1 << 32)
            packet.extensions.abs_send_time = (sent + int(r * frames / FPS * (1 << 18))) & 0xFFFFFF
            data.append((packet.serialize(transport._rtp_header_extensions_map),
                         r * frames * 1000 // FPS + timestamp // 90))
        rounds.append(data)
    for packet, (timestamp, sent) in zip(stream, base):
        packet.timestamp, packet.extensions.abs_send_time = timestamp, sent
    n, start = 0, time.process_time()
    for data in rounds:
        for raw, arrival in data:
            await handle(RtpPacket.parse(raw, extensions), arrival_time_ms=arrival)
            n += 1
    assert tap.received >= frames * repeat - 1, tap.received      # every frame reassembled
    return (time.process_time() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    stream = packets()
    results = {"aiortc's receiver": [], "forward.Tap's": []}
    for _ in range(args.rounds):
        results["aiortc's receiver"].append(asyncio.run(run(False, stream, 5)))
        results["forward.Tap's"].append(asyncio.run(run(True, stream, 5)))
    print(f"{len(stream)} packets a 2 s clip ({len(stream) / 2:.0f} a second); median of {args.rounds} rounds:")
    base = statistics.median(results["aiortc's receiver"])
    for name, values in results.items():
        us = 1e6 * statistics.median(values)
        print(f"  {name:<20} {us:6.1f} us CPU per packet ({us / 1e6 / base:.2f}x)")


if __name__ == "__main__":
    main()
