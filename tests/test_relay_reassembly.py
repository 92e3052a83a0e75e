"""forward.py on lossy links, packet by packet: what a lost packet costs audio and video.

The figures a person would notice: audio that falls behind (delay that stays), video
frozen behind a hole, frames forwarded that no decoder can use, a big keyframe that never
arrives, and a sender asked for keyframes without end.
"""
import asyncio
import time

import pytest
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RTCP_PSFB_APP, RtpPacket, unpack_remb_fci

from webapp.relay import forward
from webapp.relay.forward import FrameAssembler, Packer, Sink, Tap
from tests.test_relay_forward import VP8_DELTA, VP8_KEY, FakeReceiver

pytestmark = pytest.mark.real_clock   # media timing: no dates involved

OPUS = RTCRtpCodecParameters("audio/opus", 48000, payloadType=111)
VP8 = RTCRtpCodecParameters("video/VP8", 90000, payloadType=96)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def rtp(seq: int, ts: int, data: bytes, marker: bool = False, ssrc: int = 1) -> RtpPacket:
    packet = RtpPacket(sequence_number=seq % 65536, timestamp=ts, marker=int(marker), ssrc=ssrc)
    packet._data = data
    return packet


def frames_of(result) -> list[JitterFrame]:
    frame = result[1]
    return [] if frame is None else [frame, *frame.more]


def test_audio_after_lost_packets_every_packet_leaves_the_moment_it_arrives():
    """Before: the first lost packet left every later one 15 packets (300 ms) behind."""
    buffer = FrameAssembler("audio")
    behind = []
    for seq in range(65000, 65000 + 3000):            # one minute of Opus, across the wrap
        if seq % 100 == 7:
            continue                                  # 1% lost
        pli, frame = buffer.add(rtp(seq, seq * 960 % (1 << 32), seq.to_bytes(4, "big")))
        assert not pli
        behind.append(seq - int.from_bytes(frame.data, "big"))
    assert set(behind) == {0}
    assert buffer.add(rtp(65000 + 2998, 0, b"late"))[1] is None     # reordered: dropped


def video_frame(seq: int, index: int, packets: int, key: bool = False, size: int = 1000):
    """The RTP packets of one frame, the first carrying the VP8 header."""
    head = VP8_KEY if key else VP8_DELTA
    body = [head + bytes(size - len(head))] + [bytes([index % 256]) * size] * (packets - 1)
    return [rtp(seq + i, 3000 * index, data, marker=i == packets - 1) for i, data in enumerate(body)]


def test_a_hole_waits_for_its_retransmission_then_the_frames_behind_it_leave_together():
    clock = Clock()
    nacks = []
    buffer = FrameAssembler("video", clock=clock, on_nack=lambda ssrc, lost: nacks.append((clock.now, lost)))
    packets = [p for i in range(4) for p in video_frame(100 + 3 * i, i, 3)]
    lost = packets.pop(4)                             # the middle of frame 1
    out = []
    for packet in packets:
        out += frames_of(buffer.add(packet))
        clock.now += 0.01
    assert [f.timestamp for f in out] == [0]          # frames 1-3 wait for the hole...
    # ...asked for again 50 ms after aiortc's own NACK (either could have been lost)
    assert nacks == [(pytest.approx(100.04 + 0.05), [104])]   # the hole was seen at 100.04
    out += frames_of(buffer.add(lost))                # ...the NACK's answer, 90 ms later
    assert [f.timestamp for f in out] == [0, 3000, 6000, 9000]
    assert buffer.skipped == 0 and buffer.buffered_bytes == 0


def test_a_hole_never_filled_costs_its_frame_after_150_ms_and_says_so_once():
    clock = Clock()
    skips = []
    buffer = FrameAssembler("video", clock=clock, on_skip=lambda: skips.append(clock.now))
    out = []
    for i in range(10):                               # 30 fps, frame 2's second packet lost
        for packet in video_frame(100 + 3 * i, i, 3):
            if packet.sequence_number != 107:
                out += [(clock.now, f.timestamp) for f in frames_of(buffer.add(packet))]
        clock.now += 1 / 30
    lost_at = 100 + 2 / 30
    assert len(skips) == 1 and lost_at + 0.15 <= skips[0] <= lost_at + 0.2
    timestamps = [ts for _, ts in out]
    assert timestamps == [0, 3000] + [3000 * i for i in range(3, 10)]   # frame 2 only was given up
    assert max(at for at, ts in out if ts == 9000) <= skips[0]         # held no longer than the wait
    assert buffer.buffered_bytes == 0


def test_a_keyframe_of_2000_packets_leaves_whole_even_with_retransmitted_holes():
    """Before: over 512 packets (a 1080p screen share) it was never delivered."""
    clock = Clock()
    buffer = FrameAssembler("video", clock=clock)
    key = video_frame(1000, 0, 2000, key=True, size=1200)              # 2.4 MB
    lost = {1010, 1900, 2900}
    resent = {seq + 60: packet for packet in key for seq in lost
              if packet.sequence_number == seq}       # 30 ms later: a NACK's round trip
    out = []
    for packet in key:
        if packet.sequence_number not in lost:
            out += frames_of(buffer.add(packet))
        if packet.sequence_number in resent:
            out += frames_of(buffer.add(resent[packet.sequence_number]))
        clock.now += 0.0005                           # 1 s for the whole frame
    assert len(out) == 1 and len(out[0].data) == 2000 * 1200
    assert forward.is_keyframe(forward.VP8, out[0].data)
    assert out[0].data[1200 * 10:1200 * 11] == bytes([0]) * 1200
    assert buffer.skipped == 0


def test_what_one_stream_holds_is_bounded_in_bytes():
    clock = Clock()
    buffer = FrameAssembler("video", max_bytes=100_000, max_wait=60, clock=clock)
    for i in range(500):
        for packet in video_frame(10 + 5 * i, i, 5):
            if packet.sequence_number % 97:           # holes never filled, a minute's patience
                buffer.add(packet)
                assert buffer.buffered_bytes <= 100_000
    assert buffer.skipped > 0


def test_a_new_stream_or_a_restarted_sender_starts_afresh():
    buffer = FrameAssembler("video")
    buffer.add(rtp(500, 0, b"a"))                     # a frame without its end, then...
    assert buffer.add(rtp(20, 9000, b"b", marker=True, ssrc=2))[1].data == b"b"   # a new SSRC
    assert buffer.add(rtp(22, 12000, b"c", marker=True, ssrc=2))[1] is None       # 21 is missing
    assert buffer.add(rtp(40000, 15000, b"d", marker=True, ssrc=2))[1].data == b"d"   # restarted
    assert buffer.buffered_bytes == 0


def vp8(key: bool, ts: int):
    return VP8, JitterFrame(VP8_KEY if key else VP8_DELTA, ts)


def test_after_a_lost_frame_the_viewer_gets_no_undecodable_delta_and_one_keyframe_request():
    """Before: the frames after a given-up frame were forwarded, and no decoder could use them."""
    async def scenario():
        receiver = FakeReceiver()
        tap, sink = Tap(receiver, "video"), Sink("video", forward.VP8)
        sink._started = True
        sink.attach(tap)
        tap.put(vp8(True, 0))
        await asyncio.sleep(forward.KEYFRAME_REQUEST_INTERVAL)
        plis = receiver.plis
        tap.assembler.on_skip()                       # a hole was not filled in time
        for i in range(1, 25):                        # 0.8 s of deltas: none can be decoded
            tap.put(vp8(False, 3000 * i))
            await asyncio.sleep(1 / 30)
        assert receiver.plis == plis + 1              # asked once, not at every frame
        tap.put(vp8(True, 3000 * 25))
        tap.put(vp8(False, 3000 * 26))
        delivered = [sink._queue.popleft() for _ in range(len(sink._queue))]
        assert [(f.timestamp, f.keyframe) for f in delivered] == [(0, True), (75000, True), (78000, False)]
        sink.stop()
    asyncio.run(scenario())


def test_keyframe_requests_to_one_sender_are_spaced_by_300_ms_whatever_asks():
    async def scenario():
        receiver = FakeReceiver()
        tap, sink = Tap(receiver, "video"), Sink("video", forward.VP8)
        sink._started = True
        sink.attach(tap)
        loop = asyncio.get_running_loop()
        start = loop.time()
        while loop.time() - start < 1.0:              # every way of asking, all the time
            tap.assembler.on_skip()
            sink._overflow()
            tap.put(vp8(False, 0))
            await asyncio.sleep(0.01)
        assert 3 <= receiver.plis <= 4                # 1 s / 300 ms
        sink.stop()
    asyncio.run(scenario())


def test_a_keyframe_lost_soon_after_it_was_asked_for_is_asked_for_again_at_300_ms():
    """The keyframe asked for is itself lost (given up ~250 ms after the request): the next request
    leaves as soon as the sender listens again, not a second later; none when a keyframe came."""
    async def scenario():
        receiver = FakeReceiver()
        asked = []
        receiver._send_rtcp_pli = lambda ssrc: asyncio.sleep(0, asked.append(loop.time()))
        loop = asyncio.get_running_loop()
        tap, sink = Tap(receiver, "video"), Sink("video", forward.VP8)
        sink._started = True
        sink.attach(tap)
        tap.put(vp8(True, 0))
        await asyncio.sleep(forward.KEYFRAME_REQUEST_INTERVAL)
        asked.clear()
        tap.assembler.on_skip()                       # a frame lost: a keyframe is asked for
        await asyncio.sleep(0.2)
        tap.assembler.on_skip()                       # that keyframe was lost too
        while len(asked) < 2 and loop.time() - asked[0] < 0.9:
            await asyncio.sleep(0.01)
        assert len(asked) == 2                        # asked again, not at the sink's 1 s retry...
        assert asked[1] - asked[0] >= forward.KEYFRAME_REQUEST_INTERVAL - 0.01    # ...once it counts
        tap.assembler.on_skip()                       # lost again, but then...
        tap.put(vp8(True, 3000))                      # ...a keyframe came: nothing more to ask
        await asyncio.sleep(forward.KEYFRAME_REQUEST_INTERVAL)
        assert len(asked) == 2
        sink.stop()
    asyncio.run(scenario())


def test_a_low_remb_from_the_viewer_caps_the_remb_sent_to_the_sender():
    """A patient on a slow link: its browser's REMB reaches the practitioner's browser."""
    async def scenario():
        receiver = FakeReceiver()
        own_estimate = [None]

        class Estimator:                              # the worker's estimate of the sender's link
            def add(self, **packet):
                return own_estimate[0]
        receiver._RTCRtpReceiver__remote_bitrate_estimator = Estimator()
        tap, sink = Tap(receiver, "video"), Sink("video", forward.VP8)
        sink.attach(tap)
        packer = Packer(forward.VP8, on_bitrate=sink.limit_bitrate)
        packer.target_bitrate = 300_000                # the viewer's REMB, set by its sender
        await asyncio.sleep(0)
        sent = [unpack_remb_fci(p.fci) for p in receiver.rtcp if p.fmt == RTCP_PSFB_APP]
        assert sent == [(300_000, [42])]              # at once, for the stream it receives
        estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator
        own_estimate[0] = (2_000_000, [42])           # the sender's own link could take more
        assert estimator.add(arrival_time_ms=0, abs_send_time=0, payload_size=1, ssrc=42) == (300_000, [42])
        own_estimate[0] = (200_000, [42])             # ...or less: the lower one wins
        assert estimator.add(arrival_time_ms=0, abs_send_time=0, payload_size=1, ssrc=42) == (200_000, [42])
        other = Tap(FakeReceiver(), "video")          # the sender reconnects: the cap carries over
        sink.attach(other)
        assert other.bitrate_limit == 300_000
        sink.stop()
    asyncio.run(scenario())


def test_a_big_keyframe_leaves_paced_and_a_usual_frame_at_once():
    """900 KB sent as one burst overflows a browser's socket or a mobile link's queue."""
    async def scenario():
        sent = []

        class Transport:
            state = "connected"

            async def _send_rtp(self, data):
                sent.append(time.monotonic())
        paced = forward.PacedTransport(Transport())
        assert paced.state == "connected"             # the rest is the transport's own
        start = time.monotonic()
        for _ in range(50):                           # a usual keyframe, 60 KB
            await paced._send_rtp(bytes(1200))
        assert sent[-1] - start < 0.01
        await asyncio.sleep(0.1)
        start = time.monotonic()
        for _ in range(750):                          # a 1080p screen share's, 900 KB
            await paced._send_rtp(bytes(1200))
        took = sent[-1] - start
        assert (900_000 - forward.PACE_BURST) / forward.PACE_RATE <= took < 0.5
    asyncio.run(scenario())
