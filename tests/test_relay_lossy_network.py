"""Calls through the worker over a lossy network: what a person hears and sees.

The worker runs in a network namespace of its own, joined to the test's by a veth
pair; nftables drops a share of the UDP between the sending participant and the
worker, both ways (media one way, NACKs and keyframe requests the other). The
kernel has no netem, so there is loss but no added delay. The participants are
aiortc peers in this process that send media they made themselves (numbered Opus
packets, VP8 frames from a real encoder), so each packet's and frame's journey is
known: audio latency, which video frames arrived, and whether a decoder could use
them. Run as root (make test runs tests inside ``unshare -n``); skipped otherwise.

``pytest -s tests/test_relay_lossy_network.py`` prints the figures of every case.
"""
from __future__ import annotations

import asyncio
import fractions
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time

import av
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci
from websockets.asyncio.client import connect

from tests.relay_helpers import CODEC_USED, ROOT, SECRET, ticket
from webapp.relay import protocol as p
from webapp.relay.forward import VP8, EncodedFrame, FrameAssembler, Packer
from webapp.relay.ice import enlarge_receive_buffers, use_host_addresses

pytestmark = [
    pytest.mark.real_clock,
    pytest.mark.skipif(os.geteuid() != 0 or not (shutil.which("ip") and shutil.which("nft")),
                       reason="needs root, iproute2 and nftables (make system-test-deps)"),
    pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")),
                       reason="no database involved: runs once, in make test's SQLite run"),
]

WIDTH, HEIGHT, FPS = 320, 240, 30
VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
SECONDS = 4.0


class Network:
    """A namespace for the worker, a veth pair to it, and nftables loss inside it."""

    def __init__(self) -> None:
        pid = os.getpid()
        self.ns = f"cabinet-relay-{pid}"
        self.host_if, self.ns_if = f"crh{pid % 10**7}", f"crw{pid % 10**7}"
        subnet = f"10.213.{pid % 250 + 1}"
        self.host_ip, self.worker_ip = f"{subnet}.1", f"{subnet}.2"

    def up(self) -> None:
        self.down()
        for command in (
                ["ip", "netns", "add", self.ns],
                ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if],
                ["ip", "link", "set", self.ns_if, "netns", self.ns],
                ["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if],
                ["ip", "link", "set", self.host_if, "up"],
                [*self.inside, "ip", "addr", "add", f"{self.worker_ip}/30", "dev", self.ns_if],
                [*self.inside, "ip", "link", "set", self.ns_if, "up"],
                [*self.inside, "ip", "link", "set", "lo", "up"]):
            subprocess.run(command, check=True, capture_output=True)

    def down(self) -> None:
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)     # takes the veth along
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)

    @property
    def inside(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns]

    def lose(self, port: int, percent: int) -> None:
        """Drop ``percent`` % of the UDP to and from ``port`` (a participant's media socket)."""
        subprocess.run([*self.inside, "nft", "delete", "table", "inet", "loss"], capture_output=True)
        if percent:
            drop = f"numgen random mod 100 < {percent} drop"
            rules = f"""table inet loss {{
  chain input {{ type filter hook input priority 0; udp sport {port} {drop}; }}
  chain output {{ type filter hook output priority 0; udp dport {port} {drop}; }}
}}"""
            subprocess.run([*self.inside, "nft", "-f", "-"], input=rules, text=True, check=True)

    def shape(self, port: int, kbytes: int) -> None:
        """Police what the worker sends to ``port`` to ``kbytes`` KB/s (0: no limit): beyond it, dropped."""
        subprocess.run([*self.inside, "nft", "delete", "table", "inet", "shape"], capture_output=True)
        if kbytes:
            rules = f"""table inet shape {{
  chain output {{ type filter hook output priority 0; udp dport {port} limit rate over {kbytes} kbytes/second drop; }}
}}"""
            subprocess.run([*self.inside, "nft", "-f", "-"], input=rules, text=True, check=True)

    def blackout(self, on: bool) -> None:
        """Drop every UDP packet in and out of the worker's namespace (media only: signaling is TCP)."""
        subprocess.run([*self.inside, "nft", "delete", "table", "inet", "blackout"], capture_output=True)
        if on:
            rules = """table inet blackout {
  chain input { type filter hook input priority 0; meta l4proto udp drop; }
  chain output { type filter hook output priority 0; meta l4proto udp drop; }
}"""
            subprocess.run([*self.inside, "nft", "-f", "-"], input=rules, text=True, check=True)

    def receive_buffers(self) -> list[int]:
        """The receive buffer (bytes) of every UDP socket in the worker's namespace."""
        out = subprocess.run([*self.inside, "ss", "-uamn"], capture_output=True, text=True, check=True).stdout
        return [int(part.split(",rb")[1].split(",")[0]) for part in out.split("skmem:(")[1:]]


@pytest.fixture(scope="module")
def network():
    net = Network()
    net.up()
    env = {**os.environ, "SECRET_KEY": SECRET, "RELAY_HOST_ADDRESSES": net.worker_ip,
           "ICE_SERVERS": "[]", "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [*net.inside, sys.executable, str(ROOT / "tests" / "relay_helpers.py"),
         "--host", net.worker_ip, "--port", "0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = worker.stdout.readline()
        assert line.startswith("relay listening on "), line + worker.stderr.read()
        net.url = line.split()[-1]
        net.worker_pid = worker.pid        # ip netns exec execs the worker: same process
        use_host_addresses([net.host_ip])     # this process's peers, on the veth
        yield net
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=15)
        use_host_addresses(["127.0.0.1"])
        net.down()
    assert CODEC_USED not in err, err


# --- the participants ---------------------------------------------------------------

def _pictures() -> list[av.VideoFrame]:
    pictures = []
    for shift in range(0, 256, 8):
        luma = bytes((x + y // 4 + shift) % 256 for y in range(HEIGHT) for x in range(WIDTH))
        pictures.append((luma, bytes([128]) * (WIDTH * HEIGHT // 4)))
    return pictures


PICTURES = _pictures()


class Log:
    """What the sender sent and when."""

    def __init__(self) -> None:
        self.audio: dict[int, float] = {}                 # packet number -> time sent
        self.video: dict[bytes, tuple[int, float, bool]] = {}   # digest -> (frame number, time, keyframe)
        self.keyframe_requests: list[float] = []
        self.bitrates: list[int] = []                     # REMB that reached the sender
        self.sizes: list[tuple[float, int]] = []          # (time sent, bytes) of each video frame


class AudioSource(MediaStreamTrack):
    """Opus-sized packets every 20 ms, numbered (nobody decodes them)."""

    kind = "audio"

    def __init__(self, log: Log) -> None:
        super().__init__()
        self.log, self.count, self.start = log, 0, None

    async def recv(self) -> EncodedFrame:
        self.start = self.start or time.monotonic()
        await asyncio.sleep(max(0.0, self.start + self.count * 0.02 - time.monotonic()))
        number, self.count = self.count, self.count + 1
        self.log.audio[number] = time.monotonic()
        return EncodedFrame(number.to_bytes(4, "big") + bytes(76), number * 960, "audio/opus", True)


class VideoSource(MediaStreamTrack):
    """Real VP8 at 30 fps, a keyframe when asked (or a huge one when told)."""

    kind = "video"

    def __init__(self, log: Log) -> None:
        super().__init__()
        self.log, self.count, self.start = log, 0, None
        self.encoder = Vp8Encoder()
        self.encoder._packetize = lambda data, picture_id: [data]    # the frame, not its packets
        self.want_keyframe = False
        self.huge: bytes | None = None
        self.pictures = PICTURES

    async def recv(self) -> EncodedFrame:
        self.start = self.start or time.monotonic()
        await asyncio.sleep(max(0.0, self.start + self.count / FPS - time.monotonic()))
        number, self.count = self.count, self.count + 1
        if self.huge is not None:
            data, self.huge, keyframe = self.huge, None, True
        else:
            picture = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
            luma, chroma = self.pictures[number % len(self.pictures)]
            picture.planes[0].update(_stamped(luma, number))
            picture.planes[1].update(chroma)
            picture.planes[2].update(chroma)
            picture.pts, picture.time_base = number * 3000, VIDEO_TIME_BASE
            keyframe, self.want_keyframe = self.want_keyframe or number == 0, False
            (data,), _ = await asyncio.get_running_loop().run_in_executor(
                None, self.encoder.encode, picture, keyframe)
            keyframe = keyframe or data[0] & 1 == 0
        self.log.video[hashlib.sha1(data).digest()] = (number, time.monotonic(), keyframe)
        self.log.sizes.append((time.monotonic(), len(data)))
        return EncodedFrame(data, number * 3000, VP8, keyframe)


def _stamped(luma: bytes, number: int) -> bytes:
    """The picture with its number in 16 black or white 8x8 blocks at the top left: the pictures
    repeat, and two frames the encoder made alike would be one frame to ``video_figures``
    (their digest), miscounting what arrived."""
    stamp = bytes(255 if number >> bit & 1 else 0 for bit in range(16) for _ in range(8))
    marked = bytearray(luma)
    for y in range(8):
        marked[y * WIDTH:y * WIDTH + len(stamp)] = stamp
    return bytes(marked)


class Still(VideoSource):
    """A camera that sends nothing: one encoder in this process is enough."""

    async def recv(self):
        await asyncio.Event().wait()


class Record:
    """Takes a receiver's frames before any decoder (the way forward.Tap does)."""

    def __init__(self, receiver, kind: str) -> None:
        self.frames: list[tuple[float, bytes]] = []
        receiver._RTCRtpReceiver__decoder_queue = self
        receiver._RTCRtpReceiver__jitter_buffer = (
            JitterBuffer(capacity=4096, is_video=True) if kind == "video" else PassThrough())

    def get(self):
        return None

    def put(self, task) -> None:
        if task is not None:
            # A retransmission that fills a hole completes the frames behind it too (``more``).
            for frame in (task[1], *getattr(task[1], "more", ())):
                self.frames.append((time.monotonic(), frame.data))
                if self.watched is not None:
                    self._check(frame.data)

    watched = None

    def watch(self, sender_log: "Log", receiver) -> None:
        """Behave as a browser: ask again for a packet still missing (its NACK or the answer may
        have been lost), give up a frame whose packet stays lost (aiortc's jitter buffer waits
        for it forever), and ask for a keyframe when a frame cannot be decoded."""
        self.watched, self._receiver, self._usable, self._asked = sender_log, receiver, set(), 0.0

        def nack(ssrc, lost):
            asyncio.ensure_future(receiver._send_rtcp_nack(ssrc, lost))
        receiver._RTCRtpReceiver__jitter_buffer = FrameAssembler("video", on_nack=nack)

    def _check(self, data: bytes) -> None:
        number, _, keyframe = self.watched.video.get(hashlib.sha1(data).digest(), (None, 0, False))
        if number is not None and (keyframe or number - 1 in self._usable):
            self._usable.add(number)
        elif time.monotonic() - self._asked > 0.3:
            self._asked = time.monotonic()
            ssrc = self._receiver.getSynchronizationSources()[0].source
            asyncio.ensure_future(self._receiver._send_rtcp_pli(ssrc))


class PassThrough:
    def add(self, packet):
        return False, JitterFrame(packet._data, packet.timestamp)


class Peer:
    """A participant: the signaling websocket and an aiortc peer connection."""

    def __init__(self, url: str, room: str, role: str) -> None:
        self.url, self.room, self.role = url, room, role
        self.log = Log()
        self.records: dict[str, Record] = {}
        self.messages: list = []
        self.adapt = False              # the video encoder follows the REMB that reaches it

    async def __aenter__(self) -> "Peer":
        self.ws = await connect(self.url)
        await self.ws.send(p.encode(p.Join(ticket(self.room, self.role))))
        self.reader = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        self.reader.cancel()
        await self.ws.close()
        await self.pc.close()

    async def _read(self) -> None:
        async for raw in self.ws:
            self.messages.append(p.decode(raw))

    async def call(self, retransmit: bool = True, send_video: bool = True) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.audio, self.video = AudioSource(self.log), (VideoSource if send_video else Still)(self.log)
        for track in (self.audio, self.video):
            transceiver = self.pc.addTransceiver(track, "sendrecv")
            self.records[track.kind] = Record(transceiver.receiver, track.kind)
            sender = transceiver.sender
            codec = "audio/opus" if track.kind == "audio" else VP8
            sender._RTCRtpSender__encoder = Packer(codec, self._bitrate if track.kind == "video" else None)
            if track.kind == "video":
                sender._send_keyframe = self._keyframe_request
                if not retransmit:
                    sender._retransmit = _nothing
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.ws.send(p.encode(p.Offer(self.pc.localDescription.sdp)))
        answer = await self.wait_for(lambda m: isinstance(m, p.Answer))
        await self.pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
        enlarge_receive_buffers(self.pc, 4 << 20)     # as a browser's: this process is busy

    def _keyframe_request(self) -> None:
        self.log.keyframe_requests.append(time.monotonic())
        self.video.want_keyframe = True

    def _bitrate(self, bitrate: int) -> None:
        self.log.bitrates.append(bitrate)
        if self.adapt:                  # as a browser's encoder does
            self.video.encoder.target_bitrate = bitrate

    async def wait_for(self, predicate, timeout: float = 10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in self.messages:
                if predicate(msg):
                    return msg
            await asyncio.sleep(0.02)
        raise AssertionError(f"{self.role} never got it; got {self.messages}")

    def media_port(self) -> int:
        transport = self.pc.getTransceivers()[0].sender.transport.transport
        pair = transport._connection._nominated[1]
        return pair.local_candidate.port

    async def connected(self, kind: str = "audio") -> None:
        """Connected, and receiving ``kind``."""
        deadline = time.monotonic() + 10
        while self.pc.connectionState != "connected" or not self.records[kind].frames:
            assert time.monotonic() < deadline, f"{self.role}: {self.pc.connectionState}"
            await asyncio.sleep(0.02)


async def _nothing(*args) -> None:
    """A sender without retransmission (no RTX, no NACK answers)."""


# --- what the viewer got ------------------------------------------------------------

def audio_figures(sender: Log, viewer: Record, since: float) -> dict:
    latencies = []
    for arrival, data in viewer.frames:
        sent = sender.audio[int.from_bytes(data[:4], "big")]
        if sent >= since:
            latencies.append(arrival - sent)
    expected = sum(1 for t in sender.audio.values() if since <= t)
    latencies.sort()
    return {"audio_p50_ms": 1000 * statistics.median(latencies),
            "audio_p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
            "audio_received": len(latencies) / max(expected, 1)}


def video_figures(sender: Log, viewer: Record, since: float, until: float = float("inf")) -> dict:
    """Which frames a decoder could use: a keyframe, or the frame after one it could use.
    Those sent from ``since`` to ``until`` count (after it, one may be on its way as the call ends)."""
    usable: set[int] = set()
    arrivals, unusable = [], 0
    decoder = av.CodecContext.create("vp8", "r")
    decoded = errors = 0
    for arrival, data in viewer.frames:
        if hashlib.sha1(data).digest() not in sender.video:     # the end of a frame given up
            unusable += since <= arrival < until
            continue
        number, sent, keyframe = sender.video[hashlib.sha1(data).digest()]
        counted = since <= sent < until
        if keyframe or number - 1 in usable:
            usable.add(number)
            if counted:
                arrivals.append(arrival)
        elif counted:
            unusable += 1
        try:
            decoded += len(decoder.decode(av.Packet(data)))
        except av.FFmpegError:
            errors += 1
    sent_since = [t for _, t, _ in sender.video.values() if since <= t < until]
    gaps = [b - a for a, b in zip([min(sent_since)] + arrivals, arrivals + [max(sent_since)])]
    return {"video_sent": len(sent_since), "video_usable": len(arrivals), "video_unusable": unusable,
            "video_decoded": decoded, "decoder_errors": errors, "longest_freeze_s": max(gaps)}


async def lossy_call(network: Network, room: str, percent: int, retransmit: bool) -> dict:
    async with Peer(network.url, room, "practitioner") as sender, \
            Peer(network.url, room, "patient") as viewer:
        await asyncio.gather(sender.call(retransmit), viewer.call(send_video=False))
        await asyncio.gather(sender.connected(), viewer.connected("video"))
        await asyncio.sleep(0.5)
        network.lose(sender.media_port(), percent)
        since = time.monotonic()
        try:
            await asyncio.sleep(SECONDS)
        finally:
            network.lose(0, 0)
        figures = {**audio_figures(sender.log, viewer.records["audio"], since),
                   **video_figures(sender.log, viewer.records["video"], since)}
        figures["keyframe_requests"] = sum(1 for t in sender.log.keyframe_requests if t >= since)
        return figures


CASES = [(0, True), (1, True), (1, False), (5, True), (5, False)]


@pytest.mark.parametrize("percent, retransmit", CASES,
                         ids=[f"{pc}pc-{'rtx' if r else 'no-rtx'}" for pc, r in CASES])
def test_audio_stays_on_time_and_video_decodable_at_loss(network, percent, retransmit):
    figures = asyncio.run(lossy_call(network, f"loss-{percent}-{retransmit}", percent, retransmit))
    print(f"\nloss {percent}% {'with' if retransmit else 'without'} retransmission:",
          ", ".join(f"{k} {v:.3g}" for k, v in figures.items()))
    # Audio: one lost packet costs that packet, never delay for the rest of the call.
    # (p95 bound wide enough for a machine running another test suite beside this one)
    assert figures["audio_p50_ms"] < 20 and figures["audio_p95_ms"] < 150     # before: 300 ms
    assert figures["audio_received"] >= 1 - (2.5 * percent + 2) / 100
    # Video: nothing forwarded that a decoder cannot use, and never frozen for a second.
    assert figures["video_unusable"] == 0 and figures["decoder_errors"] == 0
    if retransmit or percent < 5:
        # Without retransmission a lost keyframe costs another request and round trip: 0.04-0.4 s
        # on a quiet machine, 1.16 and 1.30 s seen with the other test pass beside it (one request).
        assert figures["longest_freeze_s"] < (1.0 if retransmit else 2.0)
        # Without retransmission a lost packet costs its frame and the ones until a keyframe arrives
        # (a round trip, and a keyframe of ~30 packets is itself hit 1 time in 4 at 1%): about 1 frame in
        # 16 hit, 3 to 10 frames each, more when the machine is busy. What the old relay got wrong
        # (undecodable frames forwarded, seconds of waiting) is asserted above, not by this share.
        assert figures["video_usable"] >= figures["video_sent"] * (0.85 if retransmit else 0.6)
    else:   # 1 packet in 20 lost for good, keyframes too (browsers always retransmit: RTX)
        assert figures["longest_freeze_s"] < 3.0            # before: 3.9 s of 4
        assert figures["video_usable"] >= figures["video_sent"] * 0.2
    # One request per loss at most, never a stream of them.
    assert figures["keyframe_requests"] <= SECONDS / 0.3 + 1


def test_a_huge_keyframe_arrives_whole_and_is_asked_for_once(network):
    """A 1080p screen share's first frame: 900 KB, about 750 packets sent in one burst."""
    huge = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x07, 0x38, 0x04]) + os.urandom(900_000)

    async def scenario():
        async with Peer(network.url, "huge", "practitioner") as sender, \
                Peer(network.url, "huge", "patient") as viewer:
            await asyncio.gather(sender.call(), viewer.call(send_video=False))
            await asyncio.gather(sender.connected(), viewer.connected("video"))
            await asyncio.sleep(0.5)
            since = time.monotonic()
            sender.video.huge = huge
            deadline = since + 5
            while not any(data == huge for _, data in viewer.records["video"].frames):
                assert time.monotonic() < deadline, "the big keyframe never arrived"
                await asyncio.sleep(0.02)
            arrived = next(t for t, data in viewer.records["video"].frames if data == huge)
            await asyncio.sleep(1.5)
            buffers = network.receive_buffers()
            return arrived - since, [t for t in sender.log.keyframe_requests if t >= since], buffers

    delay, requests, buffers = asyncio.run(scenario())
    print(f"\nhuge keyframe: {delay * 1000:.0f} ms, {len(requests)} keyframe requests after it")
    # Before: never (over 512 packets), and a keyframe request every 250 ms meanwhile.
    # 0.4-0.6 s on a quiet machine, 2 s with the machine loaded 7 times over: Python at both ends.
    assert delay < 5.0
    assert len(requests) <= 1
    # The worker's media sockets can hold such a burst (ss shows twice the size asked).
    assert len(buffers) == 2 and min(buffers) >= 2 * (4 << 20)


def test_a_slow_viewer_s_bandwidth_estimate_reaches_the_sender(network):
    """The patient's browser says (REMB) it receives 300 kbit/s at most: the practitioner's
    browser is told to send no more, whatever the worker's own link could take."""
    async def scenario():
        async with Peer(network.url, "remb", "practitioner") as sender, \
                Peer(network.url, "remb", "patient") as viewer:
            await asyncio.gather(sender.call(), viewer.call(send_video=False))
            await asyncio.gather(sender.connected(), viewer.connected("video"))
            receiver = next(t.receiver for t in viewer.pc.getTransceivers() if t.kind == "video")
            ssrc = receiver.getSynchronizationSources()[0].source
            await receiver._send_rtcp(RtcpPsfbPacket(
                fmt=RTCP_PSFB_APP, ssrc=receiver._RTCRtpReceiver__rtcp_ssrc, media_ssrc=0,
                fci=pack_remb_fci(300_000, [ssrc])))
            deadline = time.monotonic() + 3
            while not sender.log.bitrates or sender.log.bitrates[-1] > 300_000:
                assert time.monotonic() < deadline, sender.log.bitrates
                await asyncio.sleep(0.05)
            told = len(sender.log.bitrates)
            await asyncio.sleep(1.5)                     # the worker's own estimates keep coming...
            return sender.log.bitrates[told - 1:]

    bitrates = asyncio.run(scenario())
    assert bitrates and max(bitrates) <= 300_000         # ...capped by the viewer's


def _noise() -> list[tuple[bytes, bytes]]:
    """Moving 8x8-block noise: the encoder spends all the bitrate it is given (gradients take little)."""
    import random
    rows = [random.Random(row).randbytes(WIDTH // 8 + 8) for row in range(HEIGHT // 8 + 8)]
    pictures = []
    for shift in range(16):
        luma = b"".join(bytes(b for b in rows[(y // 8 + shift) % len(rows)][shift % 8:][:WIDTH // 8]
                              for _ in range(8)) for y in range(0, HEIGHT, 8) for _ in range(8))
        pictures.append((luma[:WIDTH * HEIGHT], bytes([128]) * (WIDTH * HEIGHT // 4)))
    return pictures


async def call_through_a_changed_viewer_link(network: Network, room: str, settle: float, change, seconds: float):
    """The practitioner sends noise (its encoder spends all it is told) to a patient who watches like
    a browser; ``settle`` seconds in, ``change(port)`` impairs the worker-to-patient link for
    ``seconds``. The sender's log, the patient's video record, and when the link changed."""
    async with Peer(network.url, room, "practitioner") as sender, Peer(network.url, room, "patient") as viewer:
        sender.adapt = True
        await asyncio.gather(sender.call(), viewer.call(send_video=False))
        sender.video.pictures = _noise()
        await asyncio.gather(sender.connected(), viewer.connected("video"))
        receiver = next(t.receiver for t in viewer.pc.getTransceivers() if t.kind == "video")
        viewer.records["video"].watch(sender.log, receiver)
        await asyncio.sleep(settle)
        changed = time.monotonic()
        change(viewer.media_port())
        try:
            await asyncio.sleep(seconds)
        finally:
            network.shape(0, 0)
            network.lose(0, 0)
        return sender.log, viewer.records["video"], changed


def test_a_viewer_behind_a_narrow_link_makes_the_sender_lower_its_bitrate(network):
    """The worker-to-patient link carries 400 kbit/s: the practitioner's encoder (~430 kbit/s here)
    must come down to it, or frames die on that link (lost, keyframe requests, a frozen picture).
    aiortc's VP8 encoder goes no lower than 250 kbit/s: a narrower link could not be met."""
    log, record, shaped = asyncio.run(call_through_a_changed_viewer_link(
        network, "shaped", 1.5, lambda port: network.shape(port, 50), 7))   # 50 KB/s: 400 kbit/s, audio too
    def kbps(start, end):
        return sum(n for t, n in log.sizes if start <= t < end) * 8 / (end - start) / 1000
    since, until = shaped + 4, shaped + 6.8                     # once it has adapted
    settled = video_figures(log, record, since, until)
    adapting = video_figures(log, record, shaped, since)
    print(f"\nviewer link 400 kbit/s: sender {kbps(shaped - 1.5, shaped):.0f} kbit/s before, "
          f"{kbps(since, shaped + 7):.0f} after; REMB {log.bitrates[-3:]}; "
          f"{sum(1 for t in log.keyframe_requests if t >= shaped)} keyframe requests; the first 4 s: "
          f"{adapting['video_usable']} of {adapting['video_sent']} frames usable, longest freeze "
          f"{adapting['longest_freeze_s']:.2f} s; after:", settled)
    # The sender is told less than the link carries. Before: the viewer's delay-based REMB (a
    # policer adds no delay) stayed at 410-440 kbit/s, and the sender at ~400.
    assert log.bitrates and max(log.bitrates[-3:]) < 400_000
    assert kbps(since, shaped + 7) < 400
    # Once adapted (the first loss report, a second or so, brings the limit under what the link
    # carries), under 2% of frames are lost. Before: 9 to 60 of 92 frames usable, a keyframe
    # request every half second, each keyframe losing more.
    assert settled["video_usable"] >= 0.98 * settled["video_sent"]
    assert settled["video_unusable"] == 0 and settled["longest_freeze_s"] < 0.3


def test_a_viewer_on_a_link_with_random_loss_keeps_the_sender_s_bitrate(network):
    """4G or a busy Wi-Fi loses a few percent of packets whatever is sent; retransmission gets them
    back. That is not a full link, and the sender must not be told to send less and less: before,
    every chance burst of NACKs cut the limit and the next report's loss cut it again, so 20 s at
    5% told the sender 165 kbit/s and falling (aiortc's encoder then sits at its floor, 250).
    When the loss begins, one cut is fair (nothing yet tells it from a full link); then the limit
    learns what the link loses anyway and climbs back."""
    log, record, lossy = asyncio.run(call_through_a_changed_viewer_link(
        network, "random-loss", 2, lambda port: network.lose(port, 5), RANDOM_LOSS_SECONDS))
    def kbps(start, end):
        return sum(n for t, n in log.sizes if start <= t < end) * 8 / (end - start) / 1000
    end = lossy + RANDOM_LOSS_SECONDS
    before, after = kbps(lossy - 1.5, lossy), kbps(end - 5, end)
    figures = video_figures(log, record, lossy, end)
    print(f"\nviewer link 5% random loss: sender {before:.0f} kbit/s before, {after:.0f} in its last 5 s; "
          f"told {log.bitrates[-1] if log.bitrates else None} last;", figures)
    assert after >= 0.8 * before
    assert not log.bitrates or log.bitrates[-1] >= 0.8 * before * 1000
    # Retransmission recovers what is lost, but not always in time: a packet whose NACKs and
    # answers are all lost in 150 ms costs its frame and those until a keyframe (~1 in 1000).
    assert figures["video_usable"] >= 0.97 * figures["video_sent"]
    assert figures["longest_freeze_s"] < 0.5


RANDOM_LOSS_SECONDS = 30
