"""Helpers for the relay tests: a strict worker process and aiortc callers.

Run as a script, this module starts the worker with aiortc's codec factories
replaced by ones that fail: if the worker ever decoded or encoded, media would
stop and the failure would be printed (tests look for CODEC_USED).
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from websockets.asyncio.client import connect

from webapp.relay import protocol as p
from webapp.tokens import make_room_ticket

ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-secret"
CODEC_USED = "CODEC_USED"
WIDTH, HEIGHT = 640, 480


def ticket(room: str, role: str, secret: str = SECRET) -> str:
    return make_room_ticket(secret, room, role, peer=f"{role}-1")


class MovingVideoTrack(VideoStreamTrack):
    """640x480 frames whose content moves, so the encoder has real work (and P-frames)."""

    _frames: list[av.VideoFrame] = []

    def __init__(self) -> None:
        super().__init__()
        if not self._frames:
            for shift in range(0, 256, 8):
                frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
                frame.planes[0].update(bytes((x + shift) % 256 for x in range(WIDTH)) * HEIGHT)
                for plane in frame.planes[1:]:
                    plane.update(bytes([128]) * (plane.buffer_size))
                self._frames.append(frame)
        self._index = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        source = self._frames[self._index % len(self._frames)]
        self._index += 1
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        for plane, data in zip(frame.planes, source.planes):
            plane.update(bytes(data))
        frame.pts, frame.time_base = pts, time_base
        return frame


class Caller:
    """A participant: an aiortc peer connection and the signaling websocket of the worker."""

    def __init__(self, url: str, room: str, role: str, video: bool = True) -> None:
        self.url, self.room, self.role, self.video = url, room, role, video
        self.messages: list[p.Message] = []
        self.frames = {"audio": 0, "video": 0}
        self.sizes: set[tuple[int, int]] = set()
        self.keyframe_requests = 0
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> "Caller":
        self.ws = await connect(self.url)
        await self.send(p.Join(ticket(self.room, self.role)))
        self._tasks.append(asyncio.ensure_future(self._read()))
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.ws.close()
        if hasattr(self, "pc"):
            await self.pc.close()

    async def send(self, msg: p.Message) -> None:
        await self.ws.send(p.encode(msg))

    async def _read(self) -> None:
        async for raw in self.ws:
            self.messages.append(p.decode(raw))

    async def call(self) -> None:
        """Offer audio (and video) sendrecv, apply the worker's answer, count what comes back."""
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(AudioStreamTrack())
        if self.video:
            self._count_keyframe_requests(self.pc.addTrack(MovingVideoTrack()))
        self.pc.on("track", lambda track: self._tasks.append(asyncio.ensure_future(self._count(track))))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.send(p.Offer(self.pc.localDescription.sdp))
        answer = await self.wait_for(lambda m: isinstance(m, p.Answer))
        await self.pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))

    def _count_keyframe_requests(self, sender) -> None:
        """PLI/FIR reaching our sender end up in ``_send_keyframe``: count them."""
        original = sender._send_keyframe

        def counted() -> None:
            self.keyframe_requests += 1
            original()
        sender._send_keyframe = counted

    async def _count(self, track) -> None:
        try:
            while True:
                frame = await track.recv()
                self.frames[track.kind] += 1
                if track.kind == "video":
                    self.sizes.add((frame.width, frame.height))
        except MediaStreamError:
            pass

    async def wait_for(self, predicate, timeout: float = 10):
        """The first message (seen so far or to come) matching ``predicate``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in self.messages:
                if predicate(msg):
                    return msg
            await asyncio.sleep(0.02)
        raise AssertionError(f"{self.role} never got the message; got {self.messages}")

    async def wait_frames(self, audio: int, video: int, timeout: float = 15) -> None:
        """Wait until ``audio`` more audio frames and ``video`` more video frames were decoded."""
        goal = {"audio": self.frames["audio"] + audio, "video": self.frames["video"] + video}
        deadline = time.monotonic() + timeout
        while any(self.frames[k] < goal[k] for k in goal):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.role} decoded {self.frames}, expected {goal}")
            await asyncio.sleep(0.05)


def start_worker_process(*args: str, strict: bool = True, env: dict | None = None):
    """The worker as its own process (strict: unable to decode or encode); returns (proc, url)."""
    command = [sys.executable, __file__] if strict else [sys.executable, "-m", "webapp.relay"]
    environment = {**os.environ, "SECRET_KEY": SECRET, "RELAY_HOST_ADDRESSES": "127.0.0.1",
                   "ICE_SERVERS": "[]", "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.Popen([*command, "--port", "0", *args], cwd=ROOT, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("relay listening on "):
        proc.kill()
        raise RuntimeError(f"worker did not start: {line}{proc.stderr.read()}")
    return proc, line.split()[-1]


def stop_worker_process(proc) -> str:
    """Stop the worker (SIGTERM, as in production) and return what it printed on stderr."""
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


def _forbid_codecs() -> None:
    import aiortc.codecs
    import aiortc.rtcrtpreceiver
    import aiortc.rtcrtpsender

    def refuse(codec):
        print(f"{CODEC_USED}: {codec.mimeType}", file=sys.stderr, flush=True)
        raise RuntimeError("the relay worker must not decode or encode")

    aiortc.codecs.get_decoder = aiortc.codecs.get_encoder = refuse
    aiortc.rtcrtpreceiver.get_decoder = aiortc.rtcrtpsender.get_encoder = refuse


if __name__ == "__main__":
    _forbid_codecs()
    from webapp.relay.__main__ import main
    main()


SDP_WITHOUT_CODECS = "\r\n".join([
    "v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0",
    "m=audio 9 UDP/TLS/RTP/SAVPF 100", "c=IN IP4 0.0.0.0", "a=mid:0", "a=sendrecv", "a=rtcp-mux",
    "a=ice-ufrag:abcd", "a=ice-pwd:abcdefghijklmnopqrstuvwx",
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32), "a=setup:actpass",
    "a=rtpmap:100 nocodec/8000", "",
])
