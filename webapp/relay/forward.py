"""Forwarding of encoded media from one peer connection to another.

aiortc's receiver reassembles each encoded frame in its jitter buffer and puts
``(codec, frame)`` on a queue read by a decoder thread; its sender asks its
encoder to ``pack()`` anything that is not a raw frame. We stand in for both:
a ``Tap`` takes the receiver's queue, so frames never reach a decoder, and a
``Sink`` is the sender's track, with a ``Packer`` in place of its encoder, so
frames are only re-packetized. Keyframe requests (PLI/FIR) that reach a sender
go to the upstream receiver as a PLI.

This is the only module that touches aiortc internals; aiortc is pinned and
tests/test_relay_forward.py fails loudly if what we rely on moves.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import random
import time

from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

logger = logging.getLogger(__name__)

VP8 = "video/vp8"
H264 = "video/h264"
VIDEO_PREFERENCE = (VP8, H264)    # every browser has VP8; H.264 where it is all they offer

# Bounded queues: ~270 ms of video, ~200 ms of audio. Deeper only adds delay.
QUEUE_FRAMES = {"video": 8, "audio": 10}
# One frame period, used to keep timestamps moving forward across a new source.
FRAME_TICKS = {"video": 90000 // 30, "audio": 960}
KEYFRAME_REQUEST_INTERVAL = 0.25  # seconds between PLIs to one sender


class EncodedFrame:
    """One reassembled encoded frame, as it left the upstream jitter buffer."""

    __slots__ = ("data", "timestamp", "codec", "keyframe")

    def __init__(self, data: bytes, timestamp: int, codec: str, keyframe: bool) -> None:
        self.data = data
        self.timestamp = timestamp
        self.codec = codec
        self.keyframe = keyframe


def is_keyframe(codec: str, data: bytes) -> bool:
    """Whether a decoder can start from this frame (audio frames always can)."""
    if codec == VP8:
        # RFC 6386 9.1: P bit clear, then the key frame start code.
        return len(data) >= 6 and not data[0] & 1 and data[3:6] == b"\x9d\x01\x2a"
    if codec == H264:
        return any(nal and nal[0] & 0x1F in (5, 7) for nal in H264Encoder._split_bitstream(data))
    return True


def prefer_codecs(transceiver) -> None:
    """Put VP8 first in the answer, so both browsers send what the other decodes.

    An answerer's codecs follow the offer's order; every browser offers VP8,
    some put H.264 first. RTX entries stay right after their codec.
    """
    if transceiver.kind != "video":
        return
    codecs = transceiver._codecs
    base = [c for c in codecs if c.name.lower() != "rtx"]
    rank = {mime: i for i, mime in enumerate(VIDEO_PREFERENCE)}
    base.sort(key=lambda c: rank.get(c.mimeType.lower(), len(rank)))
    ordered = []
    for codec in base:
        ordered.append(codec)
        ordered += [c for c in codecs
                    if c.name.lower() == "rtx" and c.parameters.get("apt") == codec.payloadType]
    transceiver._codecs = ordered


def send_codec(transceiver) -> str:
    """The mime type this transceiver's sender will use (the first negotiated)."""
    return transceiver._codecs[0].mimeType.lower()


class FrameAssembler(JitterBuffer):
    """aiortc's jitter buffer, but a frame leaves as soon as its last packet is in.

    Video: the packet with the RTP marker bit ends a frame (RFC 7741 for VP8, RFC
    6184 for H.264); the frame must be contiguous from the buffer's origin. Audio:
    every packet is a whole Opus frame. When the marker packet is lost, aiortc's
    own rule (a packet of the next frame) still completes the frame.
    """

    def __init__(self, kind: str) -> None:
        video = kind == "video"
        super().__init__(capacity=512 if video else 16, is_video=video)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        packets = []
        for count in range(self._capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None or (packets and packet.timestamp != packets[0].timestamp):
                break
            packets.append(packet)
            if packet.marker or not self._is_video:
                self.remove(count + 1)
                return JitterFrame(data=b"".join(p._data for p in packets), timestamp=packets[0].timestamp)
        return super()._remove_frame(sequence_number)


class Tap:
    """Takes the place of a receiver's decoder queue (the ``queue.Queue`` API it uses).

    Install it before the receiver starts: the decoder thread that ``receive()``
    starts reads ``None`` at once and ends without creating a decoder; from then
    on ``put`` gets each reassembled frame, on the event loop.
    """

    def __init__(self, receiver, kind: str) -> None:
        self.kind = kind
        self.received = 0
        self.unrouted = 0
        self.sink: Sink | None = None
        self._receiver = receiver
        self._last_request = 0.0
        self._pending: set[asyncio.Task] = set()
        _require(receiver, "_RTCRtpReceiver__decoder_queue")
        _require(receiver, "_RTCRtpReceiver__jitter_buffer")
        receiver._RTCRtpReceiver__decoder_queue = self
        receiver._RTCRtpReceiver__jitter_buffer = FrameAssembler(kind)

    def get(self):
        return None

    def put(self, task) -> None:
        if task is None:          # the receiver stopped
            return
        codec, jitter_frame = task
        mime = codec.mimeType.lower()
        self.received += 1
        frame = EncodedFrame(jitter_frame.data, jitter_frame.timestamp, mime,
                             is_keyframe(mime, jitter_frame.data))
        if self.sink is None or not self.sink.push(frame):
            self.unrouted += 1

    def request_keyframe(self) -> None:
        """Send a PLI upstream, at most every KEYFRAME_REQUEST_INTERVAL.

        Browsers ignore a PLI that comes soon after the previous one (Chromium: 300 ms), so
        none is sent while nobody could use the keyframe, nor before the sender has sent
        anything (its first frame is a keyframe anyway).
        """
        now = time.monotonic()
        if self.kind != "video" or now - self._last_request < KEYFRAME_REQUEST_INTERVAL:
            return
        sources = self._receiver.getSynchronizationSources()
        if sources:
            self._last_request = now
        for source in sources:
            task = asyncio.ensure_future(self._receiver._send_rtcp_pli(source.source))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)


class DecodingTap:
    """Comparison mode for the benchmark: reads decoded frames off the receiver's track."""

    def __init__(self, receiver, kind: str) -> None:
        self.kind = kind
        self.received = 0
        self.unrouted = 0
        self.sink: Sink | None = None
        self._task = asyncio.ensure_future(self._pump(receiver.track))

    async def _pump(self, track) -> None:
        try:
            while True:
                frame = await track.recv()
                self.received += 1
                if self.sink is None or not self.sink.push(frame):
                    self.unrouted += 1
        except MediaStreamError:
            pass

    def request_keyframe(self) -> None:
        """The worker's own encoder answers keyframe requests in this mode."""


class Packer:
    """Takes the place of a sender's encoder: packetizes frames that are already encoded."""

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self._picture_id = random.randint(0, (1 << 15) - 1)

    def pack(self, frame: EncodedFrame) -> tuple[list[bytes], int]:
        if self.codec == VP8:
            payloads = Vp8Encoder._packetize(frame.data, self._picture_id)
            self._picture_id = (self._picture_id + 1) % (1 << 15)
        elif self.codec == H264:
            payloads = H264Encoder._packetize(H264Encoder._split_bitstream(frame.data))
        else:
            payloads = [frame.data]
        return payloads, frame.timestamp


class Sink(MediaStreamTrack):
    """The track of one sender: a short queue of frames from whichever Tap feeds it.

    Video waits for a keyframe whenever the decoder downstream could not follow
    (start, new source, overflow), and asks upstream for one.
    """

    def __init__(self, kind: str, codec: str | None) -> None:
        super().__init__()
        self.kind = kind
        self.codec = codec            # None: raw frames for the sender to encode
        self.forwarded = 0
        self.dropped = 0
        self.upstream: Tap | DecodingTap | None = None
        self._queue: collections.deque = collections.deque()
        self._ready = asyncio.Event()
        self._started = False         # the sender reads only once DTLS is up
        self._gated = kind == "video" and codec is not None
        self._need_keyframe = self._gated
        self._offset = 0
        self._last_timestamp = None
        self._rebase = False

    def attach(self, tap: Tap | DecodingTap | None) -> None:
        """Take frames from ``tap`` from now on (None: nobody sends)."""
        if tap is self.upstream:
            return
        self.upstream = tap
        self._rebase = True
        self._queue.clear()
        self._need_keyframe = self._gated
        if tap is not None:
            tap.sink = self
            if self._started:        # else recv() asks, once the sender can send it on
                self.request_keyframe()

    def request_keyframe(self) -> None:
        if self.upstream is not None:
            self.upstream.request_keyframe()

    def push(self, frame) -> bool:
        """Queue a frame for the sender; False when it was dropped."""
        if self.readyState != "live" or not self._started:
            return False
        if isinstance(frame, EncodedFrame) and not self._admit(frame):
            self.dropped += 1
            return False
        if len(self._queue) >= QUEUE_FRAMES[self.kind]:
            self._overflow()
            if self._need_keyframe:
                self.dropped += 1
                return False
        self._queue.append(frame)
        self._ready.set()
        return True

    def _admit(self, frame: EncodedFrame) -> bool:
        if frame.codec != self.codec:
            return False
        if self._need_keyframe and not frame.keyframe:
            self.request_keyframe()
            return False
        self._need_keyframe = False
        self._retime(frame)
        return True

    def _retime(self, frame: EncodedFrame) -> None:
        """Keep RTP timestamps increasing when the upstream source changes."""
        if self._rebase and self._last_timestamp is not None:
            self._offset = self._last_timestamp + FRAME_TICKS[self.kind] - frame.timestamp
        self._rebase = False
        frame.timestamp += self._offset
        self._last_timestamp = frame.timestamp

    def _overflow(self) -> None:
        """The sender fell behind: video restarts at a keyframe, audio drops the oldest."""
        if self._gated:
            self.dropped += len(self._queue)
            self._queue.clear()
            self._need_keyframe = True
            self.request_keyframe()
        else:
            self._queue.popleft()
            self.dropped += 1

    async def recv(self):
        if not self._started:
            self._started = True
            self.request_keyframe()
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        self.forwarded += 1
        return self._queue.popleft()

    def stop(self) -> None:
        super().stop()
        self._ready.set()         # wake recv() so the sender loop ends


def forward_to(sender, sink: Sink) -> None:
    """Make ``sender`` packetize ``sink``'s encoded frames, and send its keyframe requests upstream."""
    _require(sender, "_RTCRtpSender__encoder")
    sender._RTCRtpSender__encoder = Packer(sink.codec)
    sender._send_keyframe = sink.request_keyframe


def _require(obj, attribute: str) -> None:
    """Refuse to run on an aiortc whose internals moved: setting a new attribute would do nothing."""
    if not hasattr(obj, attribute):
        raise RuntimeError(f"aiortc internals changed: {type(obj).__name__} has no {attribute}")
