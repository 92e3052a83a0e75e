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
import math
import random
import statistics
import struct
import time
import types

import aiortc.rate
import aiortc.rtcdtlstransport
import aiortc.rtcrtpsender
import pylibsrtp

from aioice.ice import StunProtocol
from aiortc import clock
from aiortc.codecs import depayload, is_rtx
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rate import RateCounter
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import (RTCP_PSFB_APP, RTCP_RTPFB_NACK, RTP_HISTORY_SIZE, HeaderExtensions, HeaderExtensionsMap,
                       RtcpPsfbPacket, RtcpRrPacket, RtcpRtpfbPacket, RtcpSrPacket, RtpPacket, pack_remb_fci,
                       unwrap_rtx)
from pylibsrtp import _srtp_assert
from pylibsrtp._binding import ffi as _srtp_ffi, lib as _srtp_lib

logger = logging.getLogger(__name__)

VP8 = "video/vp8"
H264 = "video/h264"
VIDEO_PREFERENCE = (VP8, H264)    # every browser has VP8; H.264 where it is all they offer

# Bounded queues: ~270 ms of video, ~200 ms of audio. Deeper only adds delay.
QUEUE_FRAMES = {"video": 8, "audio": 10}
# One frame period, used to keep timestamps moving forward across a new source.
FRAME_TICKS = {"video": 90000 // 30, "audio": 960}
# Seconds between PLIs to one sender: Chromium ignores one that follows another within 300 ms.
KEYFRAME_REQUEST_INTERVAL = 0.3
# How long a video frame with a hole may wait for the missing packet. A NACK and its
# retransmission take one round trip (under 150 ms on any link a call holds on); waiting
# longer only freezes the picture, and the frames behind it cannot be decoded without it.
# While a sink waits for a keyframe, a request lost on the way (or answered by a keyframe
# that was lost) is repeated this often; a keyframe asked for again and again costs the
# sender's whole bitrate.
KEYFRAME_RETRY_INTERVAL = 1.0
MAX_HOLE_WAIT = 0.15
# Packets one video stream may hold while frames are reassembled: a 4K screen-share
# keyframe is ~1-2 MB; beyond this the oldest frame is given up, whatever its packet count.
MAX_BUFFERED_BYTES = 4 << 20
# What a video sender sends at once, then its pace: a 900 KB keyframe takes ~100 ms
# instead of arriving as one burst; a usual frame (< 100 KB) never waits.
PACE_BURST = 128 << 10
PACE_RATE = 8 << 20                  # bytes per second
RENACK_INTERVAL = 0.05               # a hole still open after this is NACKed again
SOURCE_REFRESH = 1.0                 # seconds between updates of when a source was last heard
MAX_MISORDER = 1000                  # a sequence number this far back: the sender restarted


# The loss-based limit on what a viewer is sent (LossBasedLimit): the share of packets its
# receiver reports lost (RTCP RR, about every second) past which the limit comes down,
# under which it goes up again, past which the link is taken as full, how far below what
# it then carries the limit goes (never taking it to carry under half of what was sent), how
# long after that any loss means it was not far enough, and how far below what the link
# carried it stays a while.
LOSS_DECREASE = 0.02
LOSS_INCREASE = 0.005
LOSS_HEAVY = 0.1
LOSS_BACKOFF = 0.85
LOSS_FLOOR = 0.5
LOSS_FOLLOW_SECONDS = 3.0
LOSS_STEP_UP = 1.05
LOSS_CEILING = 0.9
LOSS_CEILING_SECONDS = 10.0
RATE_WINDOW = 2.0                    # at most, seconds over which a sink's sending rate is measured
RATE_MIN_WINDOW = 0.5
# The viewer's NACKs tell a loss within a round trip, its receiver reports only every second:
# past LOSS_HEAVY of the packets sent over NACK_WINDOW seconds (longer until NACK_MIN_PACKETS
# were sent) newly NACKed, two windows in a row (or one past NACK_SURE_SIGMAS of chance), the
# link is full, and the limit comes down at once. A sequence number NACKed again within
# NACK_MEMORY seconds is the same loss.
NACK_WINDOW = 0.3
NACK_MIN_PACKETS = 20
NACK_MEMORY = 2.0
NACK_SURE_SIGMAS = 6
# A link that loses packets whatever is sent (Wi-Fi, 4G: random loss) is not a full one. What
# it loses anyway is the median loss of its last LOSS_BASELINE_REPORTS receiver reports (for
# NACKs: of its last NACK_BASELINE_WINDOWS windows, over NACK_BASELINE_SECONDS at most), at
# most LOSS_BASELINE_MAX (a link losing more for long is full, whatever it lost before). Only
# the loss above that says anything, and only past LOSS_CHANCE_SIGMAS standard deviations of
# that random loss and LOSS_CHANCE_PACKETS packets (at 30 packets, 3% random loss looks like
# 10% one report in fifty). Loss between LOSS_DECREASE and LOSS_HEAVY never takes the limit
# under LOSS_MODERATE_FLOOR of where it stood before that loss began.
LOSS_BASELINE_REPORTS = 6
NACK_BASELINE_WINDOWS = 9
NACK_BASELINE_SECONDS = 10.0
LOSS_BASELINE_MAX = 0.05
LOSS_CHANCE_SIGMAS = 4
LOSS_CHANCE_MIN = 0.003               # a link that seems to lose nothing may still lose this much
LOSS_CHANCE_PACKETS = 3               # and fewer packets than this lost beyond it say nothing
LOSS_MODERATE_FLOOR = 0.8


def loss_beyond_chance(share: float, baseline: float, packets: int,
                       sigmas: float = LOSS_CHANCE_SIGMAS) -> float:
    """The share of ``packets`` lost beyond ``baseline``, what the link loses anyway; 0 when
    random loss at that rate (at least LOSS_CHANCE_MIN) could lose as many (within ``sigmas``
    standard deviations)."""
    spread = sigmas * math.sqrt(max(baseline, LOSS_CHANCE_MIN) / max(packets, 1))
    excess = share - baseline
    return excess if excess > spread and excess * packets >= LOSS_CHANCE_PACKETS else 0.0


class LossBasedLimit:
    """A bitrate limit for the sender of a stream, from the packets its viewer reports lost.

    A viewer's REMB comes from its delay-based estimator, which sees nothing when a link drops
    what it cannot carry without queueing first (a policer, a full Wi-Fi or 4G buffer that
    drops): the sender, two hops up, keeps its rate and the viewer loses every other frame.
    As the loss-based half of Google's congestion control (draft-ietf-rmcat-gcc-02, 5), with a
    finer dead band since forwarded video cannot skip frames: reported loss past 2% brings
    the limit to the rate sent times (1 - loss/2).

    Past 10% the link is full: what reaches the viewer, the rate sent times (1 - loss), is what
    it carries, and the limit goes to 85% of that at once. GCC's halved loss would take four
    reports (four seconds) to come down from 500 to 300 kbit/s, a second each of losing a
    fifth of the packets, every lost frame asking for a keyframe that loses more; an encoder
    overshoots its target, keyframes most, hence the margin. The first report after a link
    narrows understates its loss (the link's buffer, or its policer's allowance, took the
    first excess): any loss reported within 3 s of such a cut cuts the same way again, though
    never below a limit already under 85% of what the link carried (the same loss reported
    twice, by the viewer's NACKs first, ``Sink.nacked``, then by its report).
    A link that carried nothing for a while (a tunnel, a Wi-Fi handover) reports nearly all
    lost: that is not what it carries once back, so the link is never taken to carry less than
    half of what was sent (GCC's cut at total loss).

    A link that loses a few percent whatever is sent (4G, a busy Wi-Fi) is not full, and
    cutting for it never stopped: a minute at 5% random loss took 1.6 Mbit/s under 200 kbit/s
    (once in a while a burst of chance losses looked like a full link, then the next report
    was "any loss within 3 s"). The loss such a link has anyway, ``baseline``, is taken off
    first, a loss within chance of it says nothing (``loss_beyond_chance``), and loss between
    2% and 10% never takes the limit under 80% of where it stood when that loss began.

    No loss (on a link that loses some anyway: no more than chance adds to it) lets the limit
    climb 5% a report, up to 90% of what the link carried when it last lost packets, for 10 s;
    then it is lifted once well above what is sent.
    """

    def __init__(self, clock=time.monotonic) -> None:
        self.limit: int | None = None
        self._clock = clock
        self._ceiling: tuple[float, float] | None = None     # (what the link carried when it lost, when)
        self._cut_at = -LOSS_FOLLOW_SECONDS                   # when loss last said the link was full
        self._reports: collections.deque = collections.deque(maxlen=LOSS_BASELINE_REPORTS)
        self._floor: float | None = None                      # moderate loss stops here
        self._windows: collections.deque = collections.deque()   # (when, share) of NACK windows
        self._window_full = False                                 # the last one said "full"

    def cut_recently(self) -> bool:
        """Whether a loss said the link was full less than LOSS_FOLLOW_SECONDS ago."""
        return self._clock() - self._cut_at < LOSS_FOLLOW_SECONDS

    def baseline(self) -> float:
        """What the link loses whatever is sent: the median loss of its last reports (none until
        there are LOSS_BASELINE_REPORTS of them), at most LOSS_BASELINE_MAX (more is a full link
        that stayed full, not its random loss)."""
        if len(self._reports) < LOSS_BASELINE_REPORTS:
            return 0.0
        return min(statistics.median(self._reports), LOSS_BASELINE_MAX)

    def update(self, fraction_lost: float, rate: float, packets: int) -> int | None:
        """A receiver report: ``fraction_lost`` (0-1) of the ``packets`` sent since the last one,
        while ``rate`` bit/s was sent. The new limit."""
        baseline = self.baseline()
        self._reports.append(fraction_lost)
        now = self._clock()
        if self._ceiling is not None and now - self._ceiling[1] > LOSS_CEILING_SECONDS:
            self._ceiling = None
        beyond = loss_beyond_chance(fraction_lost, baseline, packets)
        if beyond > LOSS_DECREASE:
            return self.lost(beyond, rate)
        excess = fraction_lost - baseline
        if self.limit is not None and (excess < LOSS_INCREASE
                                       or baseline > LOSS_INCREASE and excess < LOSS_DECREASE):
            raised = self.limit * LOSS_STEP_UP
            if self._ceiling is not None:
                raised = min(raised, max(self.limit, LOSS_CEILING * self._ceiling[0]))
            self.limit = int(raised)
            if self._floor is not None and self.limit >= self._floor / LOSS_MODERATE_FLOOR:
                self._floor = None                             # back where the moderate loss began
            if self._ceiling is None and self.limit > 2 * rate:
                self.limit = self._floor = None                # far above what is sent: no limit
        return self.limit

    def nack_window(self, share: float, packets: int) -> float:
        """A NACK window: ``share`` of its ``packets`` newly NACKed. The loss that says the link is
        full (0: none): past LOSS_HEAVY beyond what its last windows lost and beyond chance, two
        windows in a row (chance hardly does that twice, a full link does it every time) or one
        past NACK_SURE_SIGMAS."""
        now = self._clock()
        while self._windows and (len(self._windows) >= NACK_BASELINE_WINDOWS
                                 or now - self._windows[0][0] > NACK_BASELINE_SECONDS):
            self._windows.popleft()
        anyway = min(statistics.median(s for _, s in self._windows), LOSS_BASELINE_MAX) \
            if self._windows else 0.0
        self._windows.append((now, share))
        excess = loss_beyond_chance(share, anyway, packets)
        sure = loss_beyond_chance(share, anyway, packets, NACK_SURE_SIGMAS) > LOSS_HEAVY
        twice, self._window_full = self._window_full, excess > LOSS_HEAVY
        return excess if sure or twice and self._window_full else 0.0

    def lost(self, fraction_lost: float, rate: float) -> int | None:
        """``fraction_lost`` (past LOSS_DECREASE) of ``rate`` lost beyond what the link loses
        anyway and beyond chance: from a report (``update``), or from the viewer's NACKs past
        LOSS_HEAVY (``Sink.nacked``). The new limit."""
        if rate <= 0:
            return self.limit
        now = self._clock()
        carried = max(rate * (1 - fraction_lost), rate * LOSS_FLOOR)
        full = fraction_lost > LOSS_HEAVY
        if full or now - self._cut_at < LOSS_FOLLOW_SECONDS:
            # Down to what the link carries, less a margin; never further for a loss that
            # a limit already under it did not cause (a second report of the same loss).
            self.limit = min(self.limit or int(rate), int(carried * LOSS_BACKOFF))
            self._floor = None
        else:
            base = rate if self.limit is None else min(self.limit, rate)
            if self._floor is None:
                self._floor = base * LOSS_MODERATE_FLOOR
            self.limit = int(max(base * (1 - fraction_lost / 2), min(base, self._floor)))
        if full:
            self._cut_at = now
        self._ceiling = (carried, now)
        return self.limit


class EncodedFrame:
    """One reassembled encoded frame, as it left the upstream jitter buffer."""

    __slots__ = ("data", "timestamp", "codec", "keyframe")

    def __init__(self, data: bytes, timestamp: int, codec: str, keyframe: bool) -> None:
        self.data = data
        self.timestamp = timestamp
        self.codec = codec
        self.keyframe = keyframe


NTP_OFFSET = 2208988800              # seconds from 1900 (NTP) to 1970 (Unix)


def _ntp_now() -> int:
    now = time.time() + NTP_OFFSET
    return (int(now) << 32) | int(now % 1 * (1 << 32))


def _ms_now() -> int:
    return int((time.time() + NTP_OFFSET) * 1000)


def use_fast_clock() -> None:
    """aiortc's sender reads the NTP time twice per packet, its DTLS transport the time in ms once
    per packet received, each through a time-zone-aware datetime and its arithmetic; the same
    values come from ``time.time()`` at a fraction of the cost (5% of a busy worker)."""
    for module in (aiortc.rtcrtpsender, aiortc.rtcdtlstransport):
        _require(module, "clock")
        if not isinstance(module.clock, types.SimpleNamespace):
            module.clock = types.SimpleNamespace(**{**vars(module.clock), "current_ntp_time": _ntp_now,
                                                    "current_ms": _ms_now})


class LeanSession(pylibsrtp.Session):
    """pylibsrtp's SRTP session, its RTP calls without a per-packet allocation.

    ``Session.protect``/``unprotect`` allocate the C length argument (``ffi.new``) and go
    through a generic helper at every packet: a quarter of what protecting one cost (the
    AES and HMAC in C are the rest). The same C call on the same buffers, the same errors
    (``pylibsrtp.Error``, ValueError for a packet too long); RTCP calls stay pylibsrtp's.
    """

    def __init__(self, policy=None) -> None:
        super().__init__(policy)
        for name in ("_cdata", "_buffer", "_srtp"):
            _require(self, name)
        self._length = _srtp_ffi.new("int *")
        self._context = self._srtp[0]
        self._room = len(self._cdata)

    def _lean(self, data: bytes, function, trailer: int) -> bytes:
        if not isinstance(data, bytes):
            raise TypeError("packet must be bytes")
        size = len(data)
        if size > self._room - trailer:
            raise ValueError("packet is too long")
        length, buffer = self._length, self._buffer
        length[0] = size
        buffer[0:size] = data
        status = function(self._context, self._cdata, length)
        if status:
            _srtp_assert(status)
        return buffer[0:length[0]]

    def protect(self, packet: bytes) -> bytes:
        return self._lean(packet, _srtp_lib.srtp_protect, pylibsrtp.SRTP_MAX_TRAILER_LEN)

    def unprotect(self, packet: bytes) -> bytes:
        return self._lean(packet, _srtp_lib.srtp_unprotect, 0)


def use_lean_srtp() -> None:
    """Make the DTLS transports created from now on in this process use LeanSession."""
    _require(aiortc.rtcdtlstransport, "Session")
    aiortc.rtcdtlstransport.Session = LeanSession


def _min_frame_period(self, ts_delta: float) -> float:
    """aiortc's ``OveruseEstimator.update_min_frame_period``: the least of this frame period and
    the last 59, through the builtin ``min`` instead of a Python loop over them (3% of a busy
    worker: it runs for every group of packets received)."""
    history = self.ts_delta_hist
    if len(history) >= aiortc.rate.MIN_FRAME_PERIOD_HISTORY_LENGTH:
        del history[0]
    least = min(history, default=ts_delta)
    history.append(ts_delta)
    return least if least < ts_delta else ts_delta


def use_lean_estimator() -> None:
    """Make the receivers' bandwidth estimators in this process find their least frame period
    without a Python loop (``_min_frame_period``)."""
    _require(aiortc.rate.OveruseEstimator, "update_min_frame_period")
    _require(aiortc.rate, "MIN_FRAME_PERIOD_HISTORY_LENGTH")
    aiortc.rate.OveruseEstimator.update_min_frame_period = _min_frame_period


class AbsSendTimeOnly(HeaderExtensionsMap):
    """A DTLS transport's parser of received header extensions that reads only abs-send-time.

    It is all the receive path uses (the bandwidth estimator): aiortc 1.16.0 routes packets by
    SSRC and payload type, never by MID; aiortc's own parser decoded every extension of every
    packet (6% of a busy worker). Two-byte headers (rare) still go through aiortc's parser.
    """

    def get(self, extension_profile: int, extension_value: bytes) -> HeaderExtensions:
        wanted = self._HeaderExtensionsMap__ids.abs_send_time
        if extension_profile != 0xBEDE or not wanted:
            return super().get(extension_profile, extension_value)
        values = HeaderExtensions()
        pos, end = 0, len(extension_value)
        while pos < end:
            byte = extension_value[pos]
            if byte == 0:                         # padding
                pos += 1
                continue
            length = (byte & 0x0F) + 1
            if byte >> 4 == wanted:
                if length == 3 and pos + 4 <= end:
                    values.abs_send_time = int.from_bytes(extension_value[pos + 1:pos + 4], "big")
                break
            pos += 1 + length
        return values


def read_only_abs_send_time(transport) -> None:
    """Make ``transport`` (an RTCDtlsTransport) parse received header extensions with AbsSendTimeOnly."""
    _require(transport, "_rtp_header_extensions_map")
    if type(transport._rtp_header_extensions_map) is HeaderExtensionsMap:
        transport._rtp_header_extensions_map.__class__ = AbsSendTimeOnly


def is_keyframe(codec: str, data: bytes) -> bool:
    """Whether a decoder can start from this frame (audio frames always can)."""
    if codec == VP8:
        # RFC 6386 9.1: P bit clear, then the key frame start code.
        return len(data) >= 6 and not data[0] & 1 and data[3:6] == b"\x9d\x01\x2a"
    if codec == H264:
        return any(nal and nal[0] & 0x1F in (5, 7) for nal in H264Encoder._split_bitstream(data))
    return True


def vp8_payload(payload: bytes) -> bytes:
    """aiortc's ``vp8_depayload``: what follows the VP8 payload descriptor (RFC 7741 4.2), with
    its errors, without building the descriptor object it discards (5% of a busy worker)."""
    size = len(payload)
    if size < 1:
        raise ValueError("VPX descriptor is too short")
    if not payload[0] & 0x80:
        return payload[1:]
    if size < 2:
        raise ValueError("VPX descriptor has truncated extended bits")
    bits, pos = payload[1], 2
    if bits & 0x80:                       # I: PictureID, 7 or 15 bits
        if size < pos + 1:
            raise ValueError("VPX descriptor has truncated PictureID")
        if payload[pos] & 0x80:
            if size < pos + 2:
                raise ValueError("VPX descriptor has truncated long PictureID")
            pos += 2
        else:
            pos += 1
    if bits & 0x40:                       # L: TL0PICIDX
        if size < pos + 1:
            raise ValueError("VPX descriptor has truncated TL0PICIDX")
        pos += 1
    if bits & 0x30:                       # T or K: one byte for both
        if size < pos + 1:
            raise ValueError("VPX descriptor has truncated T/K")
        pos += 1
    return payload[pos:]


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


class FrameAssembler:
    """Takes the place of a receiver's jitter buffer: ``add(packet)`` -> ``(pli_flag, frame)``.

    Audio: every Opus packet is a whole frame and leaves as it arrives; a late or
    repeated one is dropped (the decoder downstream conceals the loss). Nothing waits,
    so one lost packet adds no delay.

    Video: a frame leaves as soon as its packets are all in, contiguous from the last
    frame that left: the RTP marker bit ends it (RFC 7741 for VP8, RFC 6184 for H.264),
    or, as in aiortc, a packet of the next frame. Packets are kept by sequence number,
    bounded by bytes (``max_bytes``), not by count, so a keyframe of any size gets
    through. A hole (a packet missing while later ones arrived) is waited for at most
    ``max_wait`` seconds (a NACK's retransmission; ``on_nack`` asks again every
    RENACK_INTERVAL, as a NACK or its answer can be lost too); then the frame with the hole is
    given up, ``on_skip`` is called (the frames after it cannot be decoded until a
    keyframe) and assembly goes on from the next frame.

    ``add`` returns at most one frame, as the receiver expects; when one packet
    completes several (a retransmission filled a hole), the others ride along in
    ``frame.more``. It never asks for a PLI itself: keyframe requests go through the
    Tap, which spaces them.
    """

    def __init__(self, kind: str, max_wait: float = MAX_HOLE_WAIT,
                 max_bytes: int = MAX_BUFFERED_BYTES, on_skip=None, on_nack=None,
                 clock=time.monotonic) -> None:
        self._video = kind == "video"
        self.max_wait, self.max_bytes = max_wait, max_bytes
        self.on_skip, self.on_nack = on_skip, on_nack
        self.skipped = 0                 # frames given up
        self._clock = clock
        self._ssrc = None
        self._packets: dict[int, object] = {}    # extended sequence number -> packet
        self._bytes = 0
        self._highest: int | None = None          # extended sequence numbers
        self._next = 0                   # first packet of the frame being assembled
        self._scan = 0                   # first packet not yet looked at
        self._hole_since: float | None = None      # when the first missing packet was seen missing
        self._hole_at = 0
        self._nacked = 0.0
        self._given_up: int | None = None         # timestamp of the last frame given up
        self._last_timestamp: int | None = None   # of the last frame that left

    @property
    def buffered_bytes(self) -> int:
        return self._bytes

    def _extend(self, packet) -> int | None:
        """The packet's sequence number, unwrapped; None when it starts a new stream."""
        seq = packet.sequence_number
        if self._highest is None or packet.ssrc != self._ssrc:
            return None
        delta = (seq - self._highest + 0x8000) % 0x10000 - 0x8000
        if delta < -MAX_MISORDER:
            return None
        return self._highest + delta

    def _restart(self, packet) -> int:
        self._ssrc = packet.ssrc
        self._packets.clear()
        self._bytes = 0
        self._highest = self._next = self._scan = packet.sequence_number
        self._hole_since = self._given_up = None
        return packet.sequence_number

    def add(self, packet) -> tuple[bool, JitterFrame | None]:
        ext = self._extend(packet)
        if ext is None:
            ext = self._restart(packet)
        elif ext <= (self._highest if not self._video else self._next - 1) or ext in self._packets:
            return False, None                    # late or repeated
        self._highest = max(self._highest, ext)
        if not self._video:
            self._next = ext + 1
            return False, JitterFrame(data=packet._data, timestamp=packet.timestamp)
        if packet.timestamp == self._given_up:
            return False, None                    # the rest of a frame already given up
        self._packets[ext] = packet
        self._bytes += len(packet._data)
        frames = self._complete()
        now = self._clock()
        if self._highest < self._scan:
            self._hole_since = None
        elif self._hole_since is None or self._hole_at != self._scan:
            self._hole_since, self._hole_at = now, self._scan    # later packets are in, not this one
            self._nacked = now                    # the receiver's NackGenerator asked at once
        elif now - self._nacked >= RENACK_INTERVAL and self.on_nack is not None:
            self._nacked = now                    # that NACK or its answer may have been lost
            window = range(self._scan, min(self._highest, self._scan + 256))
            self.on_nack(packet.ssrc, [seq % 0x10000 for seq in window if seq not in self._packets][:64])
        while self._packets and (self._bytes > self.max_bytes or (
                self._hole_since is not None and now - self._hole_since > self.max_wait)):
            self._skip()
            frames += self._complete()
            self._hole_since, self._hole_at = (now if self._highest >= self._scan else None), self._scan
        if not frames:
            return False, None
        first = frames[0]
        first.raw_timestamp, first.more = first.timestamp, frames[1:]
        return False, first

    def _complete(self) -> list[JitterFrame]:
        """Every frame now whole at the front of the buffer."""
        frames = []
        packets = self._packets
        while self._scan in packets:
            packet = packets[self._scan]
            if self._scan > self._next and packet.timestamp != packets[self._next].timestamp:
                frames.append(self._pop(self._scan))     # the frame ended without a marker
                continue
            self._scan += 1
            if packet.marker:
                frames.append(self._pop(self._scan))
        return frames

    def _pop(self, end: int) -> JitterFrame:
        packets = [self._packets.pop(seq) for seq in range(self._next, end)]
        self._next = self._scan = end
        data = b"".join(p._data for p in packets)
        self._bytes -= len(data)
        self._last_timestamp = packets[0].timestamp
        return JitterFrame(data=data, timestamp=packets[0].timestamp)

    def _skip(self) -> None:
        """Give up the frame with the hole: go on from the first packet of a later frame."""
        head = self._packets.get(self._next)      # None: the hole is a frame's first packet
        given_up = head.timestamp if head is not None else self._last_timestamp
        later = sorted(seq for seq in self._packets if seq > self._scan)
        start = next((seq for seq in later if self._packets[seq].timestamp != given_up), None)
        if start is None:                         # nothing after it: all goes, and what is to come of it
            end = self._highest + 1
            if later:
                given_up = self._packets[later[-1]].timestamp
        else:
            end = start
        self._given_up = given_up
        for seq in [s for s in self._packets if s < end]:
            self._bytes -= len(self._packets.pop(seq)._data)
        self._next = self._scan = end
        self.skipped += 1
        if self.on_skip is not None:
            self.on_skip()


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
        self.bitrate_limit: int | None = None     # what the receiving end can take (its REMB)
        self._receiver = receiver
        self._last_request = 0.0
        self._deferred: asyncio.TimerHandle | None = None     # a request waiting for the interval
        self._keyframe_at = 0.0                               # when the last keyframe came through
        self._pending: set[asyncio.Task] = set()
        _require(receiver, "_RTCRtpReceiver__decoder_queue")
        _require(receiver, "_RTCRtpReceiver__jitter_buffer")
        receiver._RTCRtpReceiver__decoder_queue = self
        self.assembler = FrameAssembler(kind, on_skip=self._lost_frame, on_nack=self._nack)
        receiver._RTCRtpReceiver__jitter_buffer = self.assembler
        self._estimator = None
        if kind == "video":
            _require(receiver, "_RTCRtpReceiver__remote_bitrate_estimator")
            self._estimator = CappedEstimator(receiver._RTCRtpReceiver__remote_bitrate_estimator, self)
            receiver._RTCRtpReceiver__remote_bitrate_estimator = self._estimator
        if hasattr(receiver, "_handle_rtp_packet"):     # a real receiver (unit tests use stand-ins)
            for name in ("codecs", "remote_streams", "rtx_ssrc", "nack_generator", "active_ssrc",
                         "rtcp_ssrc", "timestamp_mapper"):
                _require(receiver, f"_RTCRtpReceiver__{name}")
            self._heard: dict[int, float] = {}           # ssrc -> when __active_ssrc was last updated
            self._frame_bytes = 0                        # of the frame being received, for the estimator
            receiver._handle_rtp_packet = self._handle_rtp_packet
            read_only_abs_send_time(receiver.transport)

    def get(self):
        return None

    async def _handle_rtp_packet(self, packet, arrival_time_ms: int) -> None:
        """``RTCRtpReceiver._handle_rtp_packet`` (aiortc 1.16.0), less what forwarding never uses.

        Every packet of every call goes through here: the same steps (RTCP statistics, RTX
        unwrapping, NACKs, depayloading, reassembly), without the per-packet debug-log calls,
        time-zone-aware clock reads (the last time each source was heard is refreshed once a
        second, enough for ``getSynchronizationSources``' 10 s window) and decoder-error checks
        (there is no decoder). The bandwidth estimator is fed once per video frame, with the
        frame's bytes and its last packet's times: the delay gradient it measures is one between
        frames, and its per-packet work was a tenth of the worker's.
        """
        receiver = self._receiver
        if not receiver._enabled:
            return
        ssrc = packet.ssrc
        now = time.monotonic()
        if now - self._heard.get(ssrc, -SOURCE_REFRESH) >= SOURCE_REFRESH:
            self._heard[ssrc] = now
            receiver._RTCRtpReceiver__active_ssrc[ssrc] = clock.current_datetime()
        codecs = receiver._RTCRtpReceiver__codecs
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        streams = receiver._RTCRtpReceiver__remote_streams
        stream = streams.get(ssrc)
        if stream is None:
            stream = streams[ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)
        if is_rtx(codec):
            original_ssrc = receiver._RTCRtpReceiver__rtx_ssrc.get(ssrc)
            apt = codec.parameters.get("apt")
            if (original_ssrc is None or len(packet.payload) < 2 or not isinstance(apt, int)
                    or apt not in codecs):
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
            codec = codecs[apt]
        nacks = receiver._RTCRtpReceiver__nack_generator
        if nacks is not None and nacks.add(packet):
            await receiver._send_rtcp_nack(packet.ssrc, sorted(nacks.missing))
        estimator = self._estimator
        if estimator is not None and packet.extensions.abs_send_time is not None:
            self._frame_bytes += len(packet.payload) + packet.padding_size
            if packet.marker:
                remb = estimator.add(arrival_time_ms=arrival_time_ms,
                                     abs_send_time=packet.extensions.abs_send_time,
                                     payload_size=self._frame_bytes, ssrc=packet.ssrc)
                self._frame_bytes = 0
                rtcp_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc
                if rtcp_ssrc is not None and remb is not None:
                    await receiver._send_rtcp(RtcpPsfbPacket(
                        fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb)))
        try:
            payload = packet.payload
            packet._data = (vp8_payload(payload) if codec.name == "VP8" else depayload(codec, payload)) \
                if payload else b""
        except ValueError:
            return
        _, frame = self.assembler.add(packet)
        if frame is not None:
            frame.timestamp = receiver._RTCRtpReceiver__timestamp_mapper.map(frame.timestamp)
            self.put((codec, frame))

    def put(self, task) -> None:
        if task is None:          # the receiver stopped
            return
        codec, jitter_frame = task
        mime = codec.mimeType.lower()
        self._deliver(mime, jitter_frame.data, jitter_frame.timestamp)
        # Frames completed by the same packet: the receiver mapped the first one's timestamp.
        for more in getattr(jitter_frame, "more", ()):
            self._deliver(mime, more.data,
                          jitter_frame.timestamp + (more.timestamp - jitter_frame.raw_timestamp) % (1 << 32))

    def _deliver(self, mime: str, data: bytes, timestamp: int) -> None:
        self.received += 1
        frame = EncodedFrame(data, timestamp, mime, is_keyframe(mime, data))
        if frame.keyframe and self.kind == "video":
            self._keyframe_at = time.monotonic()
        if self.sink is None or not self.sink.push(frame):
            self.unrouted += 1

    def _lost_frame(self) -> None:
        """A frame was given up: what follows cannot be decoded until a keyframe."""
        if self.sink is not None:
            self.sink.lost_frame()

    def _nack(self, ssrc: int, lost: list[int]) -> None:
        self._spawn(self._receiver._send_rtcp_nack(ssrc, lost))

    def request_keyframe(self) -> None:
        """Send a PLI upstream, at most every KEYFRAME_REQUEST_INTERVAL.

        Browsers ignore a PLI that comes soon after the previous one (Chromium: 300 ms), so
        none is sent while nobody could use the keyframe, nor before the sender has sent
        anything (its first frame is a keyframe anyway).
        """
        now = time.monotonic()
        if self.kind != "video":
            return
        wait = self._last_request + KEYFRAME_REQUEST_INTERVAL - now
        if wait > 0:
            self._ask_later(wait, now)
            return
        sources = self._receiver.getSynchronizationSources()
        if sources:
            self._last_request = now
        for source in sources:
            self._spawn(self._receiver._send_rtcp_pli(source.source))

    def _ask_later(self, wait: float, asked_at: float) -> None:
        """A request that came too soon after the last one is sent once the sender listens again,
        unless a keyframe came meanwhile. Dropping it cost a second of frozen video when the
        keyframe asked for was itself lost (a ~30-packet keyframe is hit 1 time in 4 at 1%
        loss): it is given up ~250 ms after the request, then nothing asked again until the
        sink's 1 s retry."""
        if self._deferred is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return

        def ask() -> None:
            self._deferred = None
            if self._keyframe_at < asked_at:
                self.request_keyframe()
        self._deferred = loop.call_later(wait, ask)

    def limit_bitrate(self, bitrate: int | None) -> None:
        """The receiving end's estimate (REMB): the sender is told at once, and from then on
        never more than this (its own link's estimate still applies when it is lower)."""
        if self._estimator is None or bitrate == self.bitrate_limit:
            return
        self.bitrate_limit = bitrate
        remb = self._estimator.current()
        if remb is not None:
            self._spawn(self._send_remb(*remb))

    async def _send_remb(self, bitrate: int, ssrcs: list[int]) -> None:
        rtcp_ssrc = self._receiver._RTCRtpReceiver__rtcp_ssrc
        if rtcp_ssrc is not None:
            await self._receiver._send_rtcp(RtcpPsfbPacket(
                fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs)))

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


class WindowRateCounter(RateCounter):
    """aiortc's RateCounter (amounts in 1 ms buckets over a window), its buckets in two lists.

    The receiver's bandwidth estimator asks it for the rate, then adds, once a video frame:
    aiortc's walked every millisecond since the last call in Python, bucket by bucket, twice
    (33 steps a frame; 6% of a busy worker). Here what leaves the window is summed and
    cleared a slice at a time. Same buckets, same integer results.
    """

    def reset(self) -> None:
        size = self._window_size
        self._counts, self._values, self._zeros = [0] * size, [0] * size, [0] * size
        self._origin_index = 0
        self._origin_ms = None
        self._count = self._value = 0

    def add(self, value: int, now_ms: int) -> None:
        if self._origin_ms is None:
            self._origin_ms = now_ms
        else:
            self._erase_old(now_ms)
        index = (self._origin_index + now_ms - self._origin_ms) % self._window_size
        self._counts[index] += 1
        self._values[index] += value
        self._count += 1
        self._value += value

    def rate(self, now_ms: int) -> int | None:
        if self._origin_ms is not None:
            self._erase_old(now_ms)
            active_window_size = now_ms - self._origin_ms + 1
            if self._count > 0 and active_window_size > 1:
                return round(self._scale * self._value / active_window_size)
        return None

    def _erase_old(self, now_ms: int) -> None:
        size = self._window_size
        new_origin_ms = now_ms - size + 1
        steps = new_origin_ms - self._origin_ms
        if steps <= 0:
            return
        start = self._origin_index
        counts, values, zeros = self._counts, self._values, self._zeros
        if steps >= size:
            spans = ((0, size),)
        elif start + steps <= size:
            spans = ((start, start + steps),)
        else:
            spans = ((start, size), (0, start + steps - size))
        for lo, hi in spans:
            self._count -= sum(counts[lo:hi])
            self._value -= sum(values[lo:hi])
            counts[lo:hi] = zeros[:hi - lo]
            values[lo:hi] = zeros[:hi - lo]
        self._origin_index = (start + steps) % size
        self._origin_ms = new_origin_ms


class CappedEstimator:
    """The receiver's bandwidth estimator, its REMB capped by what the other end can take.

    aiortc's receiver sends a REMB whenever its estimator's ``add`` returns one: the
    estimate of the link from the sender to the worker. The frames go on to another
    browser, whose own REMB (the worker-to-it link) reaches our sender; the sender of
    the media must fit the slower of the two links.
    """

    def __init__(self, inner, tap: "Tap") -> None:
        self._inner = inner
        counter = getattr(inner, "incoming_bitrate", None)     # unit tests pass stand-ins
        if type(counter) is RateCounter:
            _require(counter, "_window_size")
            _require(counter, "_scale")
            inner.incoming_bitrate = WindowRateCounter(counter._window_size, counter._scale)
        self._tap = tap
        self._own: tuple[int, list[int]] | None = None

    def add(self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int):
        remb = self._inner.add(arrival_time_ms=arrival_time_ms, abs_send_time=abs_send_time,
                               payload_size=payload_size, ssrc=ssrc)
        if remb is None:
            return None
        self._own = remb
        return self.current()

    def current(self) -> tuple[int, list[int]] | None:
        """The REMB to send now: (bitrate, ssrcs), or None before anything was received."""
        limit = self._tap.bitrate_limit
        if self._own is not None:
            bitrate, ssrcs = self._own
            return (bitrate if limit is None else min(bitrate, limit)), ssrcs
        ssrcs = [s.source for s in self._tap._receiver.getSynchronizationSources()]
        if limit is None or not ssrcs:
            return None
        return limit, ssrcs


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

    def __init__(self, codec: str, on_bitrate=None) -> None:
        self.codec = codec
        self._picture_id = random.randint(0, (1 << 15) - 1)
        self._target_bitrate: int | None = None
        self._on_bitrate = on_bitrate

    @property
    def target_bitrate(self) -> int | None:
        return self._target_bitrate

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        """The sender sets this from the receiving browser's REMB: pass it upstream."""
        self._target_bitrate = bitrate
        if self._on_bitrate is not None:
            self._on_bitrate(bitrate)

    def pack(self, frame: EncodedFrame) -> tuple[list[bytes], int]:
        if self.codec == VP8:
            payloads = Vp8Encoder._packetize(frame.data, self._picture_id)
            self._picture_id = (self._picture_id + 1) % (1 << 15)
        elif self.codec == H264:
            payloads = H264Encoder._packetize(H264Encoder._split_bitstream(frame.data))
        else:
            payloads = [frame.data]
        return payloads, frame.timestamp


class PacedTransport:
    """A video sender's view of its DTLS transport that spreads a burst over time.

    A big keyframe leaves the worker as hundreds of packets at once; a browser's
    socket or a 4G link's queue drops what does not fit. Up to ``burst`` bytes go at
    once, beyond that no faster than ``rate`` bytes a second. Everything else is the
    transport's own (``__getattr__``).
    """

    def __init__(self, transport, rate: float = PACE_RATE, burst: int = PACE_BURST) -> None:
        self._transport = transport
        self._rate, self._burst = rate, burst
        self._free_at = 0.0

    def __getattr__(self, name):
        return getattr(self._transport, name)

    def reserve(self, size: int, now: float) -> float:
        """Book ``size`` bytes to go at ``now`` (monotonic): the seconds they must wait first."""
        self._free_at = max(self._free_at, now - self._burst / self._rate) + size / self._rate
        return self._free_at - now

    async def _send_rtp(self, data: bytes) -> None:
        wait = self.reserve(len(data), time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)
        await self._transport._send_rtp(data)


class SentHistory(dict):
    """A sender's ``__rtp_history`` that keeps each packet's bytes, not an RtpPacket.

    Only a NACK reads it, through aiortc's own ``_retransmit`` (RTX wrapping included):
    ``get`` parses the packet back, so what it resends is what aiortc's history gave.
    """

    def __init__(self, extensions: HeaderExtensionsMap) -> None:
        super().__init__()
        self._extensions = extensions

    def get(self, key, default=None):
        data = dict.get(self, key)
        return default if data is None else RtpPacket.parse(data, self._extensions)


_rtp_header = struct.Struct("!BBHLL").pack


def _header_extensions(extensions: HeaderExtensionsMap, mid: str | None) -> tuple[int, bytes, bytes | None]:
    """What a sender puts after the fixed header, as aiortc's ``RtpPacket.serialize`` would:
    ``(first byte of the header, bytes before abs-send-time, bytes after it)``; when no
    abs-send-time was negotiated, everything is in the first part and nothing goes between."""
    blocks = []
    for probe_value in (0, 0xFFFFFF):
        probe = HeaderExtensions()
        probe.mid, probe.abs_send_time = mid, probe_value
        profile, value = extensions.set(probe)
        blocks.append(struct.pack("!HH", profile, len(value) >> 2) + value if value else b"")
    first = 0x90 if blocks[0] else 0x80           # version 2, with or without an extension block
    if blocks[0] == blocks[1]:
        return first, blocks[0], None
    at = next(i for i, (a, b) in enumerate(zip(*blocks)) if a != b)
    if blocks[1][at:at + 3] != b"\xff\xff\xff":
        raise RuntimeError("aiortc internals changed: abs-send-time is not 3 bytes in the header extensions")
    return first, blocks[0][:at], blocks[0][at + 3:]


def _direct_route(dtls):
    """``(protect, sendto, address)``: the end of aiortc's send chain (DTLS transport -> ICE
    transport -> aioice connection -> its protocol -> the UDP socket), when it is the plain
    one; None otherwise (not connected yet or any more, a TURN relay): then aiortc's own path."""
    if type(dtls) is not RTCDtlsTransport or dtls._state is not DtlsState.CONNECTED:
        return None
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None or type(pair.protocol) is not StunProtocol:
        return None
    return dtls._tx_srtp.protect, pair.protocol.transport.sendto, pair.remote_addr


class LeanSender:
    """``RTCRtpSender._run_rtp`` (aiortc 1.16.0) for a forwarding sender, less its per-packet work.

    The same packets leave (header, marker, MID and abs-send-time extensions, sequence
    numbers, timestamps, SRTP session), and the same counters move (the sender report's
    NTP/RTP timestamps, octets and packets; the DTLS transport's). What goes: an RtpPacket
    object per packet and its serialization through the extension map (the extension bytes
    are computed once, the abs-send-time in them once a frame), two clock reads per packet
    (one a frame now, which is what abs-send-time and the sender report carry), the
    no-op debug-log calls, and five coroutines per packet (PacedTransport, the DTLS and ICE
    transports, aioice's connection and protocol): a packet the pacer lets go at once is
    encrypted and handed to the socket right here. Packets the pacer holds back carry the
    time they leave (aiortc's carried the time they were queued). The history NACKs read
    keeps bytes (SentHistory).
    """

    def __init__(self, sender) -> None:
        for name in ("track", "transport", "encoder", "mid", "rtp_header_extensions_map", "rtp_history",
                     "rtp_started", "rtp_exited", "ntp_timestamp", "rtp_timestamp", "octet_count",
                     "packet_count"):
            _require(sender, f"_RTCRtpSender__{name}")
        _require(sender, "_enabled")
        self._sender = sender
        self._routes: tuple | None = None        # (dtls transport, its direct route)
        sender._run_rtp = self.run

    async def run(self, codec) -> None:
        sender = self._sender
        sender._RTCRtpSender__rtp_started.set()
        try:
            await self._send(codec)
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        except Exception:       # as aiortc's: say so, and let RTCRtpSender.stop() end
            logger.exception("%s sender stopped", sender.kind)
        track = sender._RTCRtpSender__track
        if track:
            track.stop()
            sender._RTCRtpSender__track = None
        sender._RTCRtpSender__encoder = None
        sender._RTCRtpSender__rtp_exited.set()

    def _route(self, dtls):
        if self._routes is None or self._routes[0] is not dtls:
            if type(dtls) is RTCDtlsTransport:
                for name in ("_state", "_tx_srtp", "_RTCDtlsTransport__tx_bytes", "_RTCDtlsTransport__tx_packets"):
                    _require(dtls, name)
                _require(dtls.transport, "_connection")
                _require(dtls.transport._connection, "_nominated")
            route = _direct_route(dtls)
            if route is None:
                return None               # look again next frame
            self._routes = (dtls, route)
        return self._routes[1] if dtls._state is DtlsState.CONNECTED else None

    async def _send(self, codec) -> None:
        sender = self._sender
        extensions = sender._RTCRtpSender__rtp_header_extensions_map
        history = SentHistory(extensions)
        sender._RTCRtpSender__rtp_history = history
        first, before, after = _header_extensions(extensions, sender._RTCRtpSender__mid)
        overhead = 12 + len(before) + (3 + len(after) if after is not None else 0)
        payload_type, ssrc = codec.payloadType, sender._ssrc
        # Looked up where aiortc's loop finds them, so a test can fix them for both.
        sequence = aiortc.rtcrtpsender.random_sequence_number()
        origin = aiortc.rtcrtpsender.random32()
        size = RTP_HISTORY_SIZE

        def stamped() -> tuple[int, bytes]:
            """The NTP time now, and the extension bytes with abs-send-time set to it."""
            ntp = aiortc.rtcrtpsender.clock.current_ntp_time()
            if after is None:
                return ntp, before
            return ntp, b"".join((before, ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big"), after))

        while True:
            track = sender._RTCRtpSender__track
            if not track:
                await asyncio.sleep(0.02)
                continue
            frame = await track.recv()
            if not sender._enabled:
                continue
            payloads, timestamp = sender._RTCRtpSender__encoder.pack(frame)
            if not payloads:
                continue
            timestamp = (origin + timestamp) & 0xFFFFFFFF
            transport = sender._RTCRtpSender__transport
            paced = transport if isinstance(transport, PacedTransport) else None
            dtls = transport._transport if paced is not None else transport
            route = self._route(dtls)
            ntp, stamp = stamped()
            now = time.monotonic() if paced is not None else 0.0
            last = len(payloads) - 1
            octets = 0
            for i, payload in enumerate(payloads):
                if paced is not None:
                    wait = paced.reserve(overhead + len(payload), now)
                    if wait > 0:
                        await asyncio.sleep(wait)
                        now = time.monotonic()
                        ntp, stamp = stamped()
                        route = self._route(dtls)
                data = b"".join((_rtp_header(first, 0x80 | payload_type if i == last else payload_type,
                                             sequence, timestamp, ssrc), stamp, payload))
                history[sequence % size] = data
                if route is not None and dtls._state is DtlsState.CONNECTED:
                    protect, sendto, address = route
                    protected = protect(data)
                    sendto(protected, address)
                    dtls._RTCDtlsTransport__tx_bytes += len(protected)
                    dtls._RTCDtlsTransport__tx_packets += 1
                else:
                    await dtls._send_rtp(data)          # aiortc's chain; raises once not connected
                octets += len(payload)
                sequence = (sequence + 1) & 0xFFFF
            sender._RTCRtpSender__ntp_timestamp = ntp
            sender._RTCRtpSender__rtp_timestamp = timestamp
            sender._RTCRtpSender__octet_count += octets
            sender._RTCRtpSender__packet_count += last + 1


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
        self.bitrate_limit: int | None = None      # the lower of the two below, passed upstream
        self.remb: int | None = None               # the viewer's own estimate
        self.loss_limit = LossBasedLimit()         # from the packets the viewer reports lost
        self._sent: collections.deque = collections.deque()    # (time, bytes) over RATE_WINDOW
        self._began: float | None = None                       # when it first sent
        self._reported = 0.0                  # when the viewer's last receiver report came
        self._reported_count = 0              # the sender's packet count then
        self._nacked: dict[int, float] = {}   # sequence number -> when first NACKed
        self._nack_window = (0.0, 0, 0)        # (since, packets sent then, new NACKs since)
        self._asked = -KEYFRAME_RETRY_INTERVAL
        self._sender = None                   # set by forward_to

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
            if self.bitrate_limit is not None and hasattr(tap, "limit_bitrate"):
                tap.limit_bitrate(self.bitrate_limit)
            if self._started:        # else recv() asks, once the sender can send it on
                self.request_keyframe()

    def limit_bitrate(self, bitrate: int) -> None:
        """The receiving browser's estimate of what reaches it (REMB), for the sending one."""
        self.remb = bitrate
        self._pass_limit()

    def reported_loss(self, fraction_lost: float, packets_sent: int) -> None:
        """The viewer's receiver report for this stream: the share of packets lost since the last;
        ``packets_sent`` is the sender's count so far."""
        if self._gated:
            now = time.monotonic()
            window = min(RATE_WINDOW, max(RATE_MIN_WINDOW, now - self._reported))
            self._reported, packets = now, packets_sent - self._reported_count
            self._reported_count = packets_sent
            self.loss_limit.update(fraction_lost, self.send_rate(window), packets)
            self._pass_limit()

    def nacked(self, lost: list[int], packets_sent: int) -> None:
        """The viewer asks for these packets again: ``packets_sent`` is the sender's count so far.
        When a NACK_WINDOW's packets say the link is full (``LossBasedLimit.nack_window``), the
        limit comes down now rather than at the next receiver report (once per
        LOSS_FOLLOW_SECONDS: the report then says whether it came down far enough)."""
        if not self._gated:
            return
        now = time.monotonic()
        since, base, new = self._nack_window
        for seq in lost:
            if seq not in self._nacked:
                self._nacked[seq] = now
                new += 1
        while self._nacked:
            seq, at = next(iter(self._nacked.items()))
            if now - at <= NACK_MEMORY:
                break
            del self._nacked[seq]
        sent = packets_sent - base
        if now - since < NACK_WINDOW or sent < NACK_MIN_PACKETS:
            self._nack_window = (since, base, new)   # too few packets yet to tell chance from full
            return
        self._nack_window = (now, packets_sent, 0)
        full = self.loss_limit.nack_window(min(1.0, new / sent), sent)
        if full and not self.loss_limit.cut_recently():
            self.loss_limit.lost(full, self.send_rate(min(RATE_WINDOW, now - since)))
            self._pass_limit()

    def send_rate(self, window: float = RATE_WINDOW) -> float:
        """Bits per second this sink handed its sender over the last ``window`` seconds (at most
        RATE_WINDOW): a report's loss is set against what was sent since the one before."""
        now = time.monotonic()
        while self._sent and now - self._sent[0][0] > RATE_WINDOW:
            self._sent.popleft()
        if self._began is not None:
            window = min(window, max(RATE_MIN_WINDOW / 5, now - self._began))   # a stream younger than it
        return sum(n for t, n in self._sent if now - t <= window) * 8 / window

    def _pass_limit(self) -> None:
        limits = [x for x in (self.remb, self.loss_limit.limit) if x is not None]
        self.bitrate_limit = min(limits) if limits else None

        if self.upstream is not None and hasattr(self.upstream, "limit_bitrate"):
            self.upstream.limit_bitrate(self.bitrate_limit)

    def lost_frame(self) -> None:
        """Upstream gave up a frame: hold delta frames (undecodable) until a keyframe, and ask
        for one (the frame given up may be the keyframe asked for: then ask again)."""
        if self._gated:
            self._need_keyframe = True
            self.request_keyframe()

    def request_keyframe(self) -> None:
        self._asked = time.monotonic()
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
            if time.monotonic() - self._asked >= KEYFRAME_RETRY_INTERVAL:
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
            if self._sender is not None and self.kind == "video":
                # Its transport is final once it reads (bundling is done): pace what it sends.
                self._sender._RTCRtpSender__transport = PacedTransport(self._sender.transport)
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        self.forwarded += 1
        frame = self._queue.popleft()
        if self._gated:
            if self._began is None:
                self._began = time.monotonic()
            self._sent.append((time.monotonic(), len(frame.data)))
        return frame

    def stop(self) -> None:
        super().stop()
        self._ready.set()         # wake recv() so the sender loop ends


def forward_to(sender, sink: Sink, lean: bool = True) -> None:
    """Make ``sender`` packetize ``sink``'s encoded frames, and send its keyframe requests upstream.

    ``lean``: its packets leave through LeanSender (False: aiortc's own loop, for comparison)."""
    _require(sender, "_RTCRtpSender__encoder")
    sender._RTCRtpSender__encoder = Packer(sink.codec, on_bitrate=sink.limit_bitrate)
    _require(sender, "_RTCRtpSender__transport")
    if lean:
        LeanSender(sender)
    sink._sender = sender
    sender._send_keyframe = sink.request_keyframe
    handle_rtcp = sender._handle_rtcp_packet

    async def read_reports(packet) -> None:
        """The viewer's receiver reports: the loss on the worker-to-viewer link, for the sender."""
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == sender._ssrc:
                    sink.reported_loss(report.fraction_lost / 256, sender._RTCRtpSender__packet_count)
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK \
                and packet.media_ssrc == sender._ssrc:
            sink.nacked(packet.lost, sender._RTCRtpSender__packet_count)
        await handle_rtcp(packet)
    sender._handle_rtcp_packet = read_reports


def _require(obj, attribute: str) -> None:
    """Refuse to run on an aiortc whose internals moved: setting a new attribute would do nothing."""
    if not hasattr(obj, attribute):
        raise RuntimeError(f"aiortc internals changed: {type(obj).__name__} has no {attribute}")
