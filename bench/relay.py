"""Relay worker benchmark: CPU per call and frame loss, forwarding versus re-encoding.

    python bench/relay.py [--scale 4 8 12] [--seconds 10]   # CPU and loss
    python bench/relay_memory.py                            # RSS over many short calls
    python bench/relay_start_memory.py                      # RSS of a worker at rest

The worker runs as its own process (``python -m webapp.relay``); its CPU is
read from /proc/<pid>/stat. For the runs at scale it is pinned to one core and
the callers to the others, so that "one core carries N calls" is what is run.
The callers run in other processes (a few calls each) and stay cheap, so that
the worker, not its callers, is what a run measures: they send a clip that was
encoded once (640x480 VP8 at 30 fps and ~1.6 Mbit/s, what Chromium sends for a
640x480 camera; Opus 20 ms frames; a keyframe request restarts it at its
keyframe, as an encoder would), over real DTLS-SRTP, both participants of every
call. Receiving is where a full aiortc peer costs most (an asyncio queue, SRTP
decryption and RTP parsing per packet), so only a sample of the calls
(``--measured``, spread over the run) receive and count frames, from aiortc's
jitter buffer without decoding them (forward.Tap); the other calls' callers
drop the RTP the worker forwards to them as it comes off their socket, before
decryption (STUN, DTLS and RTCP still go through: ICE consent, keyframe
requests and bandwidth estimates keep the sessions as they were). The worker
does the same work either way: it receives, forwards and encrypts every
participant's media; it only gets no receiver reports from the viewers that
read nothing (a couple of RTCP packets a second against ~200 of media).
The callers run on uvloop, their senders read the clock as the worker's do
(forward.use_fast_clock: the same NTP times) and write aiortc's RTP bytes
directly (use_lean_senders, checked against aiortc's own serialization).
With 4 measured calls, the callers' core still carries about as much as the
worker's at 30 calls (~95% each, on a quiet machine): read the callers' CPU
and the CPU-pressure line before blaming the worker for a loss.

Frame loss is exact: callers are connected first, then all send for the
window; each received frame is identified by its RTP timestamp (the worker and
aiortc keep them relative to the first frame), and extra frames are sent after
the window so that nothing counted stays held in a jitter buffer.
"""
from __future__ import annotations

import argparse
import asyncio
import fractions
import functools
import json
import math
import os
import random
import struct
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"
FPS = 30
VIDEO_BITRATE = 1_600_000        # what Chromium sends for a 640x480 camera on a good link
# What libvpx is asked for so that the clip carries VIDEO_BITRATE: its rate control undershoots by
# ~8% on this clip (1.66 Mbit/s measured, printed at the start of every run).
ENCODER_BITRATE = 1_800_000
FRESH_ROWS = 64                  # rows of new noise in every frame (see encode_clip)
VIDEO_TICKS, AUDIO_TICKS = 90000 // FPS, 960
FLUSH_SECONDS = 1.0


# ---------------------------------------------------------------- the worker process

def cores() -> tuple[set[int], set[int]]:
    """The worker's core and the callers' cores: with two or more, the worker gets one to itself,
    so "one core carries N calls" is literal; with one, they share it."""
    available = sorted(os.sched_getaffinity(0))
    return {available[0]}, set(available[1:]) or {available[0]}


def pinned(cpus: set[int] | None):
    return None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))


def start_worker(*flags: str, cpus: set[int] | None = None):
    flags = ("--stats-interval", "1", *flags)
    env = {**os.environ, "SECRET_KEY": SECRET, "RELAY_HOST_ADDRESSES": "127.0.0.1",
           "ICE_SERVERS": "[]", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "webapp.relay", "--port", "0", *flags],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
                            preexec_fn=pinned(cpus))
    line = proc.stdout.readline()
    if not line.startswith("relay listening on "):
        proc.kill()
        sys.exit(f"worker did not start: {line!r}")
    return proc, line.split()[-1]


def stop_worker(proc) -> None:
    proc.terminate()
    proc.wait(15)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_pressure() -> float:
    """Seconds, since boot, during which some runnable task of this machine waited for a core (PSI):
    over a window, how much other work (other people's, on a shared machine) was fighting for the cores."""
    try:
        with open("/proc/pressure/cpu") as f:
            return int(f.readline().split("total=")[1]) / 1e6
    except (OSError, IndexError):
        return float("nan")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


# ---------------------------------------------------------------- the callers (client process)

@functools.cache
def encode_clip(seconds: int = 2):
    """A VP8 clip (keyframe first, then only delta frames) and Opus frames, encoded once."""
    import av

    video = av.CodecContext.create("libvpx", "w")
    video.width, video.height, video.pix_fmt = 640, 480, "yuv420p"
    video.bit_rate, video.gop_size = ENCODER_BITRATE, 10_000
    video.time_base, video.framerate = fractions.Fraction(1, FPS), fractions.Fraction(FPS, 1)
    # cpu-used negative: a fixed speed. Positive, libvpx picks its speed from how long frames
    # took to encode, and the clip (1.2 to 1.5 Mbit/s) depended on the machine's load.
    video.options = {"deadline": "realtime", "cpu-used": "-8", "lag-in-frames": "0",
                     "minrate": str(ENCODER_BITRATE), "maxrate": str(ENCODER_BITRATE),
                     # keyframes the size a browser sends (~10x a delta frame), not 200 KB
                     "max-intra-rate": "1000"}
    # 8x8 blocks of noise: detail and motion for the encoder, yet a keyframe of a
    # few tens of KB like a camera's (pixel noise made 200 KB keyframes). The texture jumps
    # 40 rows and a few pixels a frame: scrolled smoothly, motion search found all of it and
    # the encoder undershot to ~440 kbit/s whatever it was asked. Moved texture alone is still
    # predictable enough that libvpx stopped at ~1.2 Mbit/s whatever it was asked: a band of
    # FRESH_ROWS rows of new noise, somewhere else in each frame (as a moving hand or face brings
    # new detail), takes it to a camera's bitrate.
    rnd = random.Random(2)
    noise = random.Random(1).randbytes(80 * (480 + 64) // 8)
    texture = b"".join(bytes(b for b in noise[r // 8 * 80:(r // 8 + 1) * 80] for _ in range(8))
                       for r in range(480 + 64))
    frames = []
    for i in range(seconds * FPS):
        frame = av.VideoFrame(640, 480, "yuv420p")
        start = (i * 5 % 64) * 640 + i * 3 % 7     # move the texture: motion with detail
        luma = bytearray(texture[start:start + 640 * 480])
        top = (i * 37 % (480 - FRESH_ROWS)) // 8 * 8
        fresh = rnd.randbytes(80 * FRESH_ROWS // 8)
        luma[top * 640:(top + FRESH_ROWS) * 640] = b"".join(
            bytes(b for b in fresh[r // 8 * 80:(r // 8 + 1) * 80] for _ in range(8)) for r in range(FRESH_ROWS))
        frame.planes[0].update(bytes(luma))
        for plane in frame.planes[1:]:
            plane.update(bytes([128]) * plane.buffer_size)
        frame.pts = i
        frames += [bytes(p) for p in video.encode(frame)]
    frames += [bytes(p) for p in video.encode(None)]

    audio = av.CodecContext.create("libopus", "w")
    audio.sample_rate, audio.layout, audio.format, audio.bit_rate = 48000, "mono", "s16", 32000
    audio.time_base = fractions.Fraction(1, 48000)
    packets = []
    for i in range(seconds * 50):
        samples = av.AudioFrame(format="s16", layout="mono", samples=960)
        samples.planes[0].update(b"".join(
            struct.pack("<h", int(6000 * math.sin(2 * math.pi * 440 * (i * 960 + n) / 48000)))
            for n in range(960)))
        samples.sample_rate, samples.pts = 48000, i * 960
        packets += [bytes(p) for p in audio.encode(samples)]
    return frames, packets


def clip_bitrates(seconds: int = 2) -> tuple[float, float]:
    """What the clip really carries, in kbit/s (video, audio): payload only, no RTP/UDP headers."""
    frames, packets = encode_clip(seconds)
    return (sum(map(len, frames)) * 8 / seconds / 1000, sum(map(len, packets)) * 8 / seconds / 1000)


@functools.cache
def make_track_class():
    from aiortc.mediastreams import MediaStreamTrack

    class ClipTrack(MediaStreamTrack):
        """Sends a pre-encoded clip in a loop, in real time, once ``go`` is set."""

        def __init__(self, kind: str, clip: list[bytes], go: asyncio.Event) -> None:
            super().__init__()
            self.kind, self._clip, self._go = kind, clip, go
            self._ticks = VIDEO_TICKS if kind == "video" else AUDIO_TICKS
            self._rate = 90000 if kind == "video" else 48000
            self.sent = 0
            self.window_end: int | None = None     # frames sent when the window closed
            self._clip_start = 0                   # sent frames when the clip last restarted

        def request_keyframe(self) -> None:
            """A PLI from the worker: like a real encoder, send a keyframe next (the clip's first)."""
            self._clip_start = self.sent

        async def recv(self):
            import av

            await self._go.wait()
            if self.sent == 0:
                self._start = time.monotonic()
            wait = self._start + self.sent * self._ticks / self._rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            packet = av.Packet(self._clip[(self.sent - self._clip_start) % len(self._clip)])
            packet.pts, packet.time_base = self.sent * self._ticks, fractions.Fraction(1, self._rate)
            self.sent += 1
            return packet

    return ClipTrack


def measured_calls(calls: int, measured: int) -> set[int]:
    """Which calls of a run receive and count frames: ``measured`` of them, spread over the run
    (with calls arriving one by one, early and late ones both)."""
    measured = min(measured, calls) if measured > 0 else calls
    return {k * calls // measured for k in range(measured)}


UNREAD = [0]      # media packets this process dropped unread (the worker did forward them)


def drop_unread_media() -> None:
    """In this (caller) process, an ICE connection whose ``bench_drop_media`` is set drops the
    SRTP media that reaches it as soon as the socket hands it over: no queue, no decryption, no
    RTP parsing. STUN (ICE consent), DTLS and SRTCP (keyframe requests, REMB) go through.
    Datagrams are told apart as aiortc's RTCDtlsTransport does: RTP/RTCP start with 128-191,
    RTCP's second byte (packet type) is 192-208."""
    from aioice.ice import Connection, StunProtocol

    received = StunProtocol.datagram_received
    Connection.bench_drop_media = False

    def datagram_received(self, data, addr) -> None:
        if self.receiver.bench_drop_media and 127 < data[0] < 192 and not 191 < data[1] < 209:
            UNREAD[0] += 1
            return
        received(self, data, addr)

    StunProtocol.datagram_received = datagram_received


NTP_OFFSET = 2208988800              # seconds from 1900 (NTP) to 1970 (Unix)


def use_lean_senders() -> None:
    """In this (caller) process, aiortc's senders build each RTP packet's bytes directly.

    The bytes are aiortc's own (checked against ``RtpPacket.serialize`` for each sender's first
    packets): same header, extensions (MID, abs-send-time, the ids negotiated), SSRC, sequence
    numbers and timestamps, encrypted by the same SRTP session, NACKs answered from the same
    history (kept as bytes, parsed when a NACK asks). What goes is aiortc's per-packet RtpPacket
    object, its extension map walk and debug-log formatting: Python the worker does not see.
    """
    from aiortc import rtcrtpsender
    from aiortc.mediastreams import MediaStreamError
    from aiortc.rtp import HeaderExtensions, RtpPacket, wrap_rtx
    from aiortc.rtcrtpsender import random_sequence_number
    from aiortc.utils import random32, uint16_add

    history_size = rtcrtpsender.RTP_HISTORY_SIZE
    header = struct.Struct("!BBHLL").pack
    checked = 20          # packets of each sender compared with aiortc's own serialization

    async def _run_rtp(self, codec) -> None:
        try:
            await _send_frames(self, codec)
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        except Exception:     # as aiortc's: say so, and let RTCRtpSender.stop() end
            traceback.print_exc()
        finally:
            if self._RTCRtpSender__track:
                self._RTCRtpSender__track.stop()
                self._RTCRtpSender__track = None
            self._RTCRtpSender__encoder = None
            self._RTCRtpSender__rtp_exited.set()

    async def _send_frames(self, codec) -> None:
        self._RTCRtpSender__rtp_started.set()
        extensions = self._RTCRtpSender__rtp_header_extensions_map
        history: dict[int, bytes] = {}
        self._RTCRtpSender__rtp_history = history
        probe = HeaderExtensions()
        probe.mid, probe.abs_send_time = self._RTCRtpSender__mid, 0xABCDEF
        profile, value = extensions.set(probe)
        block = struct.pack("!HH", profile, len(value) >> 2) + value if value else b""
        at = block.find(b"\xab\xcd\xef")        # no abs-send-time negotiated (audio): -1
        before, after = (block[:at], block[at + 3:]) if at >= 0 else (block, b"")
        first = 0x90 if value else 0x80           # version 2, with or without extensions
        send = self.transport._send_rtp
        sequence, origin = random_sequence_number(), random32()
        payload_type, ssrc, sent = codec.payloadType, self._ssrc, 0
        while True:
            frame = await self._next_encoded_frame(codec)
            if frame is None:
                continue
            timestamp = (origin + frame.timestamp) & 0xFFFFFFFF
            last = len(frame.payloads) - 1
            for i, payload in enumerate(frame.payloads):
                now = time.time() + NTP_OFFSET
                ntp = (int(now) << 32) | int(now % 1 * (1 << 32))
                abs_send_time = (ntp >> 14) & 0xFFFFFF
                data = b"".join((header(first, (0x80 if i == last else 0) | payload_type, sequence,
                                        timestamp, ssrc),
                                 before, abs_send_time.to_bytes(3, "big") if at >= 0 else b"", after,
                                 payload))
                if sent < checked:
                    packet = RtpPacket(payload_type=payload_type, marker=int(i == last),
                                       sequence_number=sequence, timestamp=timestamp, ssrc=ssrc,
                                       payload=payload)
                    packet.extensions.mid = probe.mid
                    packet.extensions.abs_send_time = abs_send_time
                    assert packet.serialize(extensions) == data, "not the packet aiortc would send"
                history[sequence % history_size] = data
                await send(data)
                self._RTCRtpSender__octet_count += len(payload)
                self._RTCRtpSender__packet_count += 1
                sent += 1
                sequence = uint16_add(sequence, 1)
            self._RTCRtpSender__ntp_timestamp = ntp
            self._RTCRtpSender__rtp_timestamp = timestamp

    async def _retransmit(self, sequence_number: int) -> None:
        data = self._RTCRtpSender__rtp_history.get(sequence_number % history_size)
        if data is None:
            return
        extensions = self._RTCRtpSender__rtp_header_extensions_map
        packet = RtpPacket.parse(data, extensions)
        if packet.sequence_number != sequence_number:
            return
        if self._RTCRtpSender__rtx_payload_type is not None:
            packet = wrap_rtx(packet, payload_type=self._RTCRtpSender__rtx_payload_type,
                              sequence_number=self._RTCRtpSender__rtx_sequence_number, ssrc=self._rtx_ssrc)
            self._RTCRtpSender__rtx_sequence_number = uint16_add(self._RTCRtpSender__rtx_sequence_number, 1)
        await self.transport._send_rtp(packet.serialize(extensions))

    rtcrtpsender.RTCRtpSender._run_rtp = _run_rtp
    rtcrtpsender.RTCRtpSender._retransmit = _retransmit


@functools.cache
def make_tap_class():
    from webapp.relay.forward import Tap

    class CountingTap(Tap):
        """Records the RTP timestamps of received frames instead of decoding them."""

        def __init__(self, receiver, kind: str) -> None:
            super().__init__(receiver, kind)
            self.timestamps: set[int] = set()

        def put(self, task) -> None:
            if task is not None:
                self.timestamps.add(task[1].timestamp)

    return CountingTap


class BenchCaller:
    def __init__(self, url: str, room: str, role: str, clip, go: asyncio.Event,
                 measured: bool = True) -> None:
        self.url, self.room, self.role, self.clip, self.go = url, room, role, clip, go
        self.measured = measured          # receives and counts frames; else drops them unread
        self.connected = asyncio.Event()
        self.worker_stats = None          # the worker's last counters for this participant
        self.refused = False              # the worker said it is full
        self.tracks, self.taps = {}, {}

    async def start(self) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
        from websockets.asyncio.client import connect

        from webapp.relay import protocol as p
        from webapp.tokens import make_room_ticket

        self.ws = await connect(self.url)
        await self.ws.send(p.encode(p.Join(make_room_ticket(SECRET, self.room, self.role, self.role))))
        reply = p.decode(await self.ws.recv())
        if isinstance(reply, p.Error) and reply.code == p.FULL:
            self.refused = True
            await self.ws.close()
            return
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        track, tap = make_track_class(), make_tap_class()
        self.tracks, self.taps = {}, {}
        for kind, clip in zip(("video", "audio"), self.clip):
            self.tracks[kind] = track(kind, clip, self.go)
            sender = self.pc.addTrack(self.tracks[kind])
            sender._send_keyframe = self.tracks[kind].request_keyframe   # what PLI/FIR call
            receiver = next(t.receiver for t in self.pc.getTransceivers() if t.sender is sender)
            if self.measured:
                self.taps[kind] = tap(receiver, kind)
        if not self.measured:       # one ICE transport: the tracks are bundled
            self.pc.getTransceivers()[0].sender.transport.transport._connection.bench_drop_media = True
        self.pc.on("connectionstatechange", self._on_state)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.ws.send(p.encode(p.Offer(self.pc.localDescription.sdp)))
        self._reader = asyncio.ensure_future(self._read(p, RTCSessionDescription))

    def _on_state(self) -> None:
        if self.pc.connectionState == "connected":
            self.connected.set()

    async def _read(self, p, description) -> None:
        async for raw in self.ws:
            msg = p.decode(raw)
            if isinstance(msg, p.Answer):
                await self.pc.setRemoteDescription(description(msg.sdp, "answer"))
            elif isinstance(msg, p.Stats):
                self.worker_stats = msg

    async def close(self) -> None:
        if self.refused or not hasattr(self, "_reader"):      # refused, or never started
            return
        self._reader.cancel()
        await self.ws.close()
        await self.pc.close()


def frames_lost(sender: BenchCaller, receiver: BenchCaller) -> dict:
    """Per kind: (frames sent in the window, frames of those the other side received)."""
    result = {}
    for kind, ticks in (("video", VIDEO_TICKS), ("audio", AUDIO_TICKS)):
        sent = sender.tracks[kind].window_end
        got = sum(1 for ts in receiver.taps[kind].timestamps if ts < sent * ticks)
        result[kind] = (sent, got)
    return result


async def run_calls(url: str, calls: int, seconds: float, tag: str, go_signal,
                    step: float = 0.0, first: int = 0, measured: set[int] | None = None) -> dict:
    """Connect ``calls`` calls, wait for ``go_signal()``, send for ``seconds``; frames sent and got.

    ``step`` > 0: calls arrive one by one instead (call ``first + i`` of the whole run joins at
    ``(first + i) * step`` seconds) and send as soon as connected, as calls come to a worker
    that is already busy: those it refuses (full) are counted, and leave the loss figures.
    ``measured``: the calls of the whole run (``first + i``) whose frames are counted (all: None).
    """
    clip = encode_clip()
    go = asyncio.Event()

    async def one_call(i: int):
        pair_go = asyncio.Event() if step else go
        counted = measured is None or first + i in measured
        pair = (BenchCaller(url, f"{tag}-{i}", "practitioner", clip, pair_go, counted),
                BenchCaller(url, f"{tag}-{i}", "patient", clip, pair_go, counted))
        await asyncio.sleep((first + i) * step)
        await pair[0].start()
        if not pair[0].refused:
            await pair[1].start()
        if pair[0].refused or pair[1].refused:
            await asyncio.gather(*(c.close() for c in pair))
            return None
        await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in pair)), 60)
        if step:
            await asyncio.sleep(1)    # the worker's senders start reading after DTLS
            pair_go.set()
        return pair

    started = await asyncio.gather(*(one_call(i) for i in range(calls)))
    pairs = [pair for pair in started if pair is not None]
    everyone = [c for pair in pairs for c in pair]
    if not step:
        await asyncio.sleep(1)
    await go_signal()
    go.set()
    unread = UNREAD[0]
    await asyncio.sleep(seconds)
    unread = UNREAD[0] - unread
    for caller in everyone:
        for track in caller.tracks.values():
            track.window_end = track.sent
    await asyncio.sleep(FLUSH_SECONDS)   # frames after the window push the counted ones out
    totals = {"video": [0, 0], "audio": [0, 0]}
    for a, b in pairs:
        if not a.measured:
            continue
        for one, other in ((a, b), (b, a)):
            for kind, (sent, got) in frames_lost(one, other).items():
                totals[kind][0] += sent
                totals[kind][1] += got
    # Where frames went missing: packets that never reached the worker's receivers
    # (its socket overflowed while it waited for a core), frames its queues dropped.
    stats = [c.worker_stats for c in everyone if c.worker_stats is not None]
    totals["worker_packets_lost"] = sum(sum(s.lost.values()) for s in stats)
    totals["worker_frames_dropped"] = sum(sum(s.dropped.values()) for s in stats)
    totals["refused"] = calls - len(pairs)
    totals["measured"] = sum(1 for a, _ in pairs if a.measured)
    totals["unread"] = unread
    await asyncio.gather(*(c.close() for c in everyone))
    return totals


def client_main(args) -> None:
    """One client process: its share of the calls; READY when connected, then waits for GO on stdin."""
    sys.path.insert(0, str(ROOT))
    import uvloop

    from webapp.relay.forward import use_fast_clock
    from webapp.relay.ice import use_host_addresses

    use_host_addresses(["127.0.0.1"])
    use_fast_clock()        # the same NTP times in the senders' RTP and RTCP, from time.time()
    use_lean_senders()
    drop_unread_media()

    async def go_signal() -> None:
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    measured = measured_calls(args.total, args.measured)
    totals = uvloop.run(run_calls(args.client, args.calls, args.seconds, args.tag, go_signal,
                                  args.ramp_step, args.first, measured))
    print("RESULT " + json.dumps(totals), flush=True)


# ---------------------------------------------------------------- the measurements

def measure(calls: int, seconds: float, transcode: bool, calls_per_client: int, pin: bool = False,
            profile: str | None = None, ramp_step: float = 0.0, measured: int = 0) -> dict:
    """Run ``calls`` calls through a fresh worker; worker CPU over the window, frames lost.

    The callers are spread over several processes (``calls_per_client`` calls each),
    so that no single caller process is what limits the run. ``pin``: the worker on a
    core of its own, the callers on the others. ``measured``: how many calls count
    frames (0: all).
    """
    worker_cores, caller_cores = cores() if pin else (None, None)
    worker, url = start_worker(*(["--transcode"] if transcode else []), cpus=worker_cores)
    shares = [min(calls_per_client, calls - i) for i in range(0, calls, calls_per_client)]
    clients = [subprocess.Popen(
        [sys.executable, __file__, "--client", url, "--calls", str(n), "--seconds", str(seconds),
         "--tag", f"{'t' if transcode else 'f'}{i}", "--ramp-step", str(ramp_step),
         "--first", str(i * calls_per_client), "--total", str(calls), "--measured", str(measured)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        preexec_fn=pinned(caller_cores)) for i, n in enumerate(shares)]
    try:
        for client in clients:
            if client.stdout.readline().strip() != "READY":
                sys.exit("a caller process failed to connect its calls")
        t0, c0 = time.monotonic(), cpu_seconds(worker.pid)
        k0, w0 = sum(cpu_seconds(c.pid) for c in clients), cpu_pressure()
        for client in clients:
            client.stdin.write("GO\n")
            client.stdin.flush()
        if profile:        # py-spy samples from outside: the worker runs as it would (root, or ptrace allowed)
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(worker.pid), "--duration",
                                    str(int(seconds)), "--format", "raw", "--nonblocking",
                                    "--output", profile], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(seconds)
        t1, c1 = time.monotonic(), cpu_seconds(worker.pid)
        k1, w1 = sum(cpu_seconds(c.pid) for c in clients), cpu_pressure()
        totals = {"video": [0, 0], "audio": [0, 0]}
        worker_side = {"worker_packets_lost": 0, "worker_frames_dropped": 0, "refused": 0,
                       "measured": 0, "unread": 0}
        for client in clients:
            result = json.loads(client.stdout.readline().removeprefix("RESULT "))
            for key in worker_side:
                worker_side[key] += result.pop(key)
            for kind, (sent, got) in result.items():
                totals[kind][0] += sent
                totals[kind][1] += got
            client.wait()
        if profile:
            spy.wait(30)
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
        stop_worker(worker)
    carried = max(calls - worker_side["refused"], 1)
    loss = {k: 1 - got / sent if sent else math.nan for k, (sent, got) in totals.items()}
    # frames counted in the measured calls, as many again in each of the others
    delivered = sum(got for _, got in totals.values()) * carried / max(worker_side["measured"], 1)
    return {"calls": calls, "carried": carried, "seconds": seconds, "sample": sorted(measured_calls(calls, measured)), "cpu_per_call": (c1 - c0) / (t1 - t0) / carried, "loss": loss, "totals": totals,
            "worker_cpu": (c1 - c0) / (t1 - t0), "callers_cpu": (k1 - k0) / (t1 - t0),
            "pressure": (w1 - w0) / (t1 - t0),
            # CPU per frame delivered: steadier than CPU per call when the machine is shared
            # (a starved worker forwards less and so spends less).
            # (With calls arriving one by one, frames sent before the window count too: no figure.)
            "cpu_per_frame": None if ramp_step else (c1 - c0) / max(delivered, 1) * seconds / (t1 - t0),
            "callers_cores": len(caller_cores) if caller_cores else os.cpu_count(), **worker_side}


def report(name: str, result: dict) -> None:
    loss = ", ".join(f"{k} {100 * v:.2f}% ({result['totals'][k][1]}/{result['totals'][k][0]})"
                     for k, v in result["loss"].items())
    refused = f" ({result['refused']} refused: worker full)" if result["refused"] else ""
    if result["measured"] < result["carried"]:
        calls = ", ".join(map(str, result["sample"]))
        others = 2 * (result["carried"] - result["measured"])
        loss += (f" [frames counted in {result['measured']} calls ({calls}, refused ones aside); "
                 f"the others' callers drop what they receive unread: "
                 f"{result['unread'] / max(others, 1) / result['seconds']:.0f} packets/s each]")
    print(f"{name:<20} calls={result['calls']:<3}{refused} worker CPU per call = "
          f"{100 * result['cpu_per_call']:5.1f}% of a core   frames lost: {loss}\n"
          f"{'':<20} worker's view: {result['worker_packets_lost']} packets lost on the way in, "
          f"{result['worker_frames_dropped']} frames dropped by its queues\n"
          f"{'':<20} CPU over the window: worker {100 * result['worker_cpu']:.0f}% of a core, "
          f"callers {100 * result['callers_cpu']:.0f}% (of {result['callers_cores']} core(s)); "
          f"some task waited for a core {100 * result['pressure']:.0f}% of the time", flush=True)
    if result["cpu_per_frame"]:
        print(f"{'':<20} worker CPU per frame delivered: {1e6 * result['cpu_per_frame']:.0f} us, so one core "
              f"would carry ~{1 / (result['cpu_per_frame'] * 2 * (FPS + 50)):.0f} calls without loss", flush=True)


def print_profile(path: str, top: int = 8) -> None:
    """The functions the worker spent its samples in (own time, and with what they call)."""
    own, total, samples = {}, {}, 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            if not count.isdigit():
                continue
            frames = [frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1]
                      for frame in stack.split(";") if frame]
            samples += int(count)
            if frames:
                own[frames[-1]] = own.get(frames[-1], 0) + int(count)
            for frame in set(frames):
                total[frame] = total.get(frame, 0) + int(count)
    print(f"  profile ({samples} samples, {path}): own time")
    for name, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {100 * n / samples:5.1f}%  {name}")
    print("  with callees")
    for name, n in sorted(total.items(), key=lambda kv: -kv[1])[2:top + 2]:
        print(f"    {100 * n / samples:5.1f}%  {name}")


def cpu_main(args) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    worker_cores, caller_cores = cores()
    video_kbps, audio_kbps = clip_bitrates()
    print(f"{os.cpu_count()} cores, load average {load}; {args.seconds:.0f} s windows; "
          f"640x480 VP8 at {FPS} fps, {video_kbps:.0f} kbit/s measured (Chromium: {VIDEO_BITRATE // 1000}), "
          f"+ Opus {audio_kbps:.0f} kbit/s; callers in processes of {args.calls_per_client} calls\n"
          f"CPU comparison unpinned; the scale runs pin the worker to core {sorted(worker_cores)} "
          f"and the callers to {sorted(caller_cores)}")
    if not args.no_compare:
        forward_1 = measure(1, args.seconds, False, args.calls_per_client)
        report("forwarding", forward_1)
        transcode_1 = measure(1, args.seconds, True, args.calls_per_client)
        report("decode + re-encode", transcode_1)
        ratio = forward_1["cpu_per_call"] / transcode_1["cpu_per_call"]
        print(f"forwarding / re-encoding CPU per call: {ratio:.3f} "
              f"({'ok' if ratio <= 1 / 6 else 'OVER'}: target <= 0.167)", flush=True)
    for calls in args.scale:
        profile = args.profile and f"{args.profile}-{calls}.txt"
        result = measure(calls, args.seconds, False, args.calls_per_client, pin=True, profile=profile,
                         ramp_step=args.ramp_step, measured=args.measured)
        report("forwarding", result)
        if profile:
            print_profile(profile)
        worst = max(result["loss"].values())
        print(f"  {result['carried']} calls carried: {100 * result['worker_cpu']:.0f}% of one core in all, "
              f"so one core carries ~{1 / result['cpu_per_call']:.1f} calls at this CPU per call; "
              f"worst loss {100 * worst:.2f}% (target: 30 calls per core, loss < 1%)", flush=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average after: {load}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, nargs="*", default=[12],
                        help="numbers of concurrent forwarded calls to measure (default: 12)")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--calls-per-client", type=int, default=3,
                        help="calls per caller process")
    parser.add_argument("--no-compare", action="store_true",
                        help="skip the 1-call forwarding versus re-encoding comparison")
    parser.add_argument("--profile", metavar="PREFIX",
                        help="sample the worker with py-spy during each scale run (PREFIX-N.txt)")
    parser.add_argument("--ramp-step", type=float, default=0.0, metavar="SECONDS",
                        help="calls join one every SECONDS and send at once (shows calls refused "
                             "by a full worker) instead of all connected before any sends")
    parser.add_argument("--measured", type=int, default=4, metavar="N",
                        help="calls (spread over the run) whose callers receive and count frames; "
                             "the others' drop what the worker sends them unread, so that the callers "
                             "stay cheaper than the worker (0: all; default: 4)")
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--total", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)       # internal: a callers' process
    parser.add_argument("--calls", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="c", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args)
    else:
        cpu_main(args)


if __name__ == "__main__":
    main()
