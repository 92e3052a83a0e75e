"""The relay worker: an asyncio websocket server, one connection per participant.

The first frame of a connection is a ``join`` carrying a room ticket signed by
the web app; after that the connection carries the participant's signaling
(docs/signaling.md). Each participant has one RTCPeerConnection with the
worker; within a room (at most one practitioner and one patient) the media of
one is forwarded, still encoded, to the other (see forward.py).

Everything here runs on one event loop. Only ``Worker.snapshot`` is called
from other threads, so the room registry has a lock.

A plain HTTP ``GET /load`` on the websocket port answers the worker's load as JSON (``load_response``):
web processes choose the least-loaded worker for a new visit from it (visit/relays.py).
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import http
import itertools
import json
import logging
import threading

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc import exceptions as rtc_exceptions
from aiortc.sdp import candidate_from_sdp
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from webapp.relay import malloc
from webapp.relay import protocol as p
from webapp.relay.forward import (DecodingTap, Sink, Tap, forward_to, prefer_codecs, send_codec,
                                  use_fast_clock, use_lean_estimator, use_lean_srtp)
from webapp.relay.ice import enlarge_receive_buffers, use_host_addresses
from webapp.relay.load import LoadGauge, over_capacity
from webapp.tokens import TokenProblem, read_room_ticket

logger = logging.getLogger(__name__)

_CLOSE = object()            # outbox sentinel: close the websocket once flushed
# Messages waiting for one websocket. Signaling is sparse (stats every few seconds,
# mute and camera changes at human speed): a backlog this deep means the other end stopped reading.
OUTBOX_LIMIT = 256
_AIORTC_ERRORS = (rtc_exceptions.InternalError, rtc_exceptions.InvalidAccessError,
                  rtc_exceptions.InvalidStateError, rtc_exceptions.OperationError)


@dataclasses.dataclass(frozen=True)
class Settings:
    secret: str
    host_addresses: tuple[str, ...] = ("127.0.0.1",)
    ice_servers: tuple[dict, ...] = ()       # browser-style dicts: urls, username, credential
    stats_interval: float = 5.0
    transcode: bool = False                  # benchmark comparison only: decode and re-encode
    receive_buffer: int = 4 << 20            # bytes per media socket (RELAY_RECEIVE_BUFFER)
    # A participant whose media stops this long while connected is reported "lost" to the room:
    # ICE consent only gives up after ~30 s, and the other side would watch a frozen picture until then.
    media_silence: float = 3.0
    media_check_interval: float = 0.5
    # Calls (rooms) this worker takes at most; 0: no limit. Past its capacity every call would lose
    # frames at once, so a new call is refused instead (its participants are told FULL).
    max_calls: int = 0
    # And automatically: a new call is refused when, at what the calls here cost, it would push the
    # worker past this fraction of a core (or its loop lags already); 0: no automatic limit (load.py).
    # The worker process sets MAX_CPU (RELAY_MAX_CPU); an embedded relay shares its process's CPU
    # with the web app, whose work would count as the calls', so it has none unless told.
    max_cpu: float = 0.0

    def rtc_configuration(self) -> RTCConfiguration:
        # An explicit list, even empty: aiortc's default is a public STUN server.
        return RTCConfiguration(iceServers=[
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in self.ice_servers])


class Participant:
    """One websocket, and the peer connection it negotiated (if any)."""

    def __init__(self, ws, ticket) -> None:
        self.ws = ws
        self.room = ticket.room
        self.role = ticket.role
        self.pc: RTCPeerConnection | None = None
        self.pc_id = "-"
        self.taps: dict[str, Tap | DecodingTap] = {}
        self.sinks: dict[str, Sink] = {}
        self.receivers: dict = {}
        self.replaced = False
        self.stalled = False
        self._outbox: asyncio.Queue = asyncio.Queue()
        self._writer = asyncio.ensure_future(self._write())

    def post(self, msg) -> None:
        """Queue a message (or _CLOSE) for this participant, in order, without waiting.

        A connection that lets OUTBOX_LIMIT messages pile up is not reading: it is
        dropped (its reader then sees the close and the participant leaves), so
        the queue stays bounded and a reconnect starts afresh.
        """
        if msg is not _CLOSE and self._outbox.qsize() >= OUTBOX_LIMIT:
            if not self.stalled:
                self.stalled = True
                logger.warning("%s %s: stopped reading its messages; connection dropped",
                               self.pc_id, self.role)
                self.ws.transport.abort()
            return
        self._outbox.put_nowait(msg)

    async def _write(self) -> None:
        try:
            while (msg := await self._outbox.get()) is not _CLOSE:
                await self.ws.send(p.encode(msg))
            await self.ws.close()
        except ConnectionClosed:
            pass

    async def stats(self) -> p.Stats:
        lost = {}
        for kind, receiver in self.receivers.items():
            report = await receiver.getStats()
            lost[kind] = sum(getattr(s, "packetsLost", 0) for s in report.values()
                             if s.type == "inbound-rtp")
        return p.Stats(
            role=self.role, lost=lost,
            received={k: t.received for k, t in self.taps.items()},
            forwarded={k: s.forwarded for k, s in self.sinks.items()},
            dropped={k: s.dropped for k, s in self.sinks.items()})


class Room:
    def __init__(self, key: str) -> None:
        self.key = key
        self.members: dict[str, Participant] = {}

    def other(self, participant: Participant) -> Participant | None:
        return next((m for m in self.members.values() if m is not participant), None)

    def broadcast(self, msg) -> None:
        for member in self.members.values():
            member.post(msg)

    def rewire(self) -> None:
        """Point every sink at the other participant's tap of the same kind (or at nothing)."""
        for member in self.members.values():
            other = self.other(member)
            for kind, tap in member.taps.items():
                tap.sink = other.sinks.get(kind) if other else None
            for kind, sink in member.sinks.items():
                sink.attach(other.taps.get(kind) if other else None)


def room_label(room: str) -> str:
    """A room name fit for logs: it may be an appointment id, which stays out of them."""
    return hashlib.sha256(room.encode()).hexdigest()[:8]


class Worker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._rooms: dict[str, Room] = {}
        self._lock = threading.Lock()
        self._pc_numbers = itertools.count(1)
        self._pcs: set[RTCPeerConnection] = set()
        self._background: set[asyncio.Task] = set()
        self.gauge = LoadGauge()
        self._handlers = {
            p.Offer: self._on_offer, p.Candidate: self._on_candidate, p.Ping: self._on_ping,
            p.Mute: self._relay, p.CameraRequest: self._relay, p.CameraReply: self._relay,
            p.Bye: self._on_bye, p.Join: self._on_join_again,
        }

    def _spawn(self, coro) -> None:
        """Run ``coro`` in the background; the loop keeps only weak references to tasks."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def snapshot(self) -> dict:
        """Rooms and participants now, for health checks; safe from any thread."""
        with self._lock:
            return {"rooms": len(self._rooms),
                    "participants": sum(len(r.members) for r in self._rooms.values()),
                    "peer_connections": len(self._pcs)}

    def full(self) -> bool:
        """Whether a new call would be refused now."""
        return self._full_for("")

    async def handle(self, ws) -> None:
        """One websocket connection, from join to close."""
        participant = await self._admit(ws)
        if participant is None:
            return
        watchers = [asyncio.ensure_future(self._report_stats(participant)),
                    asyncio.ensure_future(self._watch_media(participant))]
        try:
            await self._serve(participant)
        except ConnectionClosed:
            pass
        finally:
            for task in watchers:
                task.cancel()
            await self._leave(participant)

    async def _admit(self, ws) -> Participant | None:
        """Read frames until a valid join; anything else gets an error and another chance."""
        async for raw in ws:
            msg = p.decode(raw)
            if isinstance(msg, p.ProtocolError):
                reply = msg.reply()
            elif not isinstance(msg, p.Join):
                reply = p.Error(p.NOT_JOINED, "send join with a ticket first")
            else:
                ticket = read_room_ticket(self.settings.secret, msg.ticket)
                if not isinstance(ticket, TokenProblem) and self._full_for(ticket.room):
                    await ws.send(p.encode(p.Error(p.FULL, "this worker carries all the calls it can")))
                    return None
                if not isinstance(ticket, TokenProblem):
                    return self._enter(ws, ticket)
                code = p.EXPIRED_TICKET if ticket is TokenProblem.EXPIRED else p.BAD_TICKET
                reply = p.Error(code, "the room ticket was refused")
            await ws.send(p.encode(reply))
        return None

    def _full_for(self, room: str) -> bool:
        """A new room past ``max_calls``, or one the core could not carry besides the calls here
        (load.py); a call already here always takes its participants back."""
        limit = self.settings.max_calls
        with self._lock:
            if room in self._rooms:
                return False
            calls = len(self._rooms)
        return (bool(limit) and calls >= limit) or over_capacity(
            self.gauge.cpu(), self.gauge.lag(), calls, self.settings.max_cpu)

    def _enter(self, ws, ticket) -> Participant:
        participant = Participant(ws, ticket)
        with self._lock:
            room = self._rooms.setdefault(ticket.room, Room(ticket.room))
            old = room.members.get(ticket.role)
            room.members[ticket.role] = participant
        if old is not None:
            self._replace(room, old)
        logger.info("room %s: %s joined", room_label(ticket.room), ticket.role)
        room.broadcast(p.PeerState(ticket.role, "reconnecting" if old else "joined"))
        other = room.other(participant)
        if other is not None:
            participant.post(p.PeerState(other.role, "joined"))
            if other.pc is not None and other.pc.connectionState == "connected":
                participant.post(p.PeerState(other.role, "connected"))
        return participant

    def _replace(self, room: Room, old: Participant) -> None:
        """A new connection of the same role (a reconnect) takes the old one's place."""
        old.replaced = True
        old.post(p.Error(p.REPLACED, "another connection took this place"))
        old.post(_CLOSE)
        self._spawn(self._close_pc(old, room))

    async def _serve(self, participant: Participant) -> None:
        """Receive, validate, dispatch, until the socket closes or the participant says bye."""
        async for raw in participant.ws:
            msg = p.decode(raw)
            if isinstance(msg, p.ProtocolError):
                participant.post(msg.reply())
                continue
            handler = self._handlers.get(type(msg))
            if isinstance(msg, p.Chat):
                # Chat is saved with the visit by the web app, which delivers it on the visit's
                # channel; it never goes through the worker, so it survives the worker's crash.
                participant.post(p.Error(p.UNKNOWN_TYPE, "chat goes through the web app, not the worker"))
            elif handler is None:
                participant.post(p.Error(p.UNKNOWN_TYPE, f"{msg.TYPE} is sent by the worker only"))
            elif await handler(participant, msg) is _CLOSE:
                return

    async def _leave(self, participant: Participant) -> None:
        with self._lock:
            room = self._rooms.get(participant.room)
            if room is not None and room.members.get(participant.role) is participant:
                del room.members[participant.role]
                if not room.members:
                    del self._rooms[participant.room]
        await self._close_pc(participant, room)
        if room is not None and not participant.replaced:
            room.broadcast(p.PeerState(participant.role, "left"))
            logger.info("room %s: %s left", room_label(participant.room), participant.role)
        participant.post(_CLOSE)
        if room is not None and not room.members:
            malloc.trim()            # a call ended: keep the resident set flat over many calls

    def _room(self, participant: Participant) -> Room:
        with self._lock:
            return self._rooms.get(participant.room) or Room(participant.room)

    async def _on_offer(self, participant: Participant, offer: p.Offer):
        room = self._room(participant)
        if participant.pc is not None:
            room.broadcast(p.PeerState(participant.role, "reconnecting"))
            await self._close_pc(participant, room)
        pc = self._new_pc(participant, room)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
            self._wire(participant, pc)
            await pc.setLocalDescription(await pc.createAnswer())
            enlarge_receive_buffers(pc, self.settings.receive_buffer)
        except Exception as exc:  # aiortc's SDP parser fails in undocumented ways
            code = p.NEGOTIATION_FAILED if isinstance(exc, _AIORTC_ERRORS) else p.BAD_SDP
            logger.info("%s %s: offer refused (%s)", participant.pc_id, participant.role,
                        type(exc).__name__)
            await self._close_pc(participant, room)
            participant.post(p.Error(code, "the offer could not be used"))
            return
        participant.post(p.Answer(pc.localDescription.sdp))
        room.rewire()

    def _new_pc(self, participant: Participant, room: Room) -> RTCPeerConnection:
        pc = RTCPeerConnection(self.settings.rtc_configuration())
        pc_id = f"pc{next(self._pc_numbers)}"
        participant.pc, participant.pc_id = pc, pc_id
        self._pcs.add(pc)
        logger.info("%s %s: new peer connection in room %s", pc_id, participant.role,
                    room_label(participant.room))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            state = pc.connectionState
            logger.info("%s %s: %s", pc_id, participant.role, state)
            if participant.pc is not pc:
                return
            if state in ("connected", "failed"):
                room.broadcast(p.PeerState(participant.role, state))
            if state in ("failed", "closed"):
                self._spawn(self._close_pc(participant, room))
        return pc

    def _wire(self, participant: Participant, pc: RTCPeerConnection) -> None:
        """Tap the first receiver of each kind and give its sender a sink (one stream per kind)."""
        for transceiver in pc.getTransceivers():
            kind = transceiver.kind
            if kind in participant.sinks:
                continue
            prefer_codecs(transceiver)
            transcode = self.settings.transcode
            participant.receivers[kind] = transceiver.receiver
            participant.taps[kind] = (DecodingTap if transcode else Tap)(transceiver.receiver, kind)
            sink = Sink(kind, None if transcode else send_codec(transceiver))
            sender = pc.addTrack(sink)
            if not transcode:
                forward_to(sender, sink)
            participant.sinks[kind] = sink

    async def _close_pc(self, participant: Participant, room: Room | None) -> None:
        pc = participant.pc
        if pc is None:
            return
        participant.pc = None
        participant.taps, participant.sinks, participant.receivers = {}, {}, {}
        if room is not None:
            room.rewire()
        try:
            await pc.close()
        finally:
            self._pcs.discard(pc)

    async def _on_candidate(self, participant: Participant, msg: p.Candidate):
        if participant.pc is None:
            participant.post(p.Error(p.BAD_STATE, "send an offer before candidates"))
            return
        candidate = None
        if msg.candidate is not None:
            try:
                candidate = candidate_from_sdp(msg.candidate.removeprefix("candidate:"))
            except (ValueError, IndexError, AssertionError):
                participant.post(p.Error(p.BAD_FIELD, "candidate is not valid"))
                return
            candidate.sdpMid, candidate.sdpMLineIndex = msg.sdp_mid, msg.sdp_mline_index
        await participant.pc.addIceCandidate(candidate)

    async def _on_ping(self, participant: Participant, msg: p.Ping):
        participant.post(p.Pong())

    async def _relay(self, participant: Participant, msg):
        """Mute state and camera requests go to the other participant, marked with the sender."""
        other = self._room(participant).other(participant)
        if other is not None:
            other.post(dataclasses.replace(msg, sender=participant.role))

    async def _on_bye(self, participant: Participant, msg: p.Bye):
        await self._relay(participant, msg)
        return _CLOSE

    async def _on_join_again(self, participant: Participant, msg: p.Join):
        participant.post(p.Error(p.ALREADY_JOINED, "this connection has joined already"))

    async def _report_stats(self, participant: Participant) -> None:
        while True:
            await asyncio.sleep(self.settings.stats_interval)
            if participant.pc is not None:
                participant.post(await participant.stats())

    async def _watch_media(self, participant: Participant) -> None:
        """Tell the room when a connected participant's media stops, and when it comes back.

        A phone in a tunnel closes nothing: its peer connection stays "connected" until ICE
        consent expires. Frames that stop arriving say it within ``media_silence`` seconds. Only
        a peer connection that has sent something counts (no camera nor microphone: nothing to miss).
        """
        loop, settings = asyncio.get_running_loop(), self.settings
        watched, received, quiet_since, lost = None, 0, None, False
        while True:
            await asyncio.sleep(settings.media_check_interval)
            pc, now = participant.pc, loop.time()
            if pc is not watched:
                watched, received, quiet_since = pc, 0, None
            total = sum(tap.received for tap in participant.taps.values())
            if total != received:
                received, quiet_since = total, now
                if lost:
                    lost = False
                    logger.info("%s %s: media back", participant.pc_id, participant.role)
                    self._room(participant).broadcast(p.PeerState(participant.role, "connected"))
            elif (not lost and quiet_since is not None and now - quiet_since >= settings.media_silence
                  and pc is not None and pc.connectionState == "connected"):
                lost = True
                logger.info("%s %s: no media for %.1f s", participant.pc_id, participant.role,
                            now - quiet_since)
                self._room(participant).broadcast(p.PeerState(participant.role, "lost"))

    async def close_all(self) -> None:
        """Close every peer connection at once (shutdown)."""
        self.gauge.stop()
        await asyncio.gather(*(pc.close() for pc in list(self._pcs)), return_exceptions=True)
        self._pcs.clear()


def load_response(worker: Worker, request) -> Response | None:
    """``process_request`` of the server: ``GET /load`` answers the load; anything else goes on
    to the websocket handshake. A worker's own figures only: no room name, nothing of a patient."""
    if request.path.split("?", 1)[0] != "/load":
        return None
    snapshot = worker.snapshot()
    body = json.dumps({"calls": snapshot["rooms"], "participants": snapshot["participants"],
                       "max_calls": worker.settings.max_calls, "full": worker.full(),
                       "cpu": round(worker.gauge.cpu(), 3),
                       "udp_ports": getattr(asyncio.get_running_loop(), "ports", None)}).encode()
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-store"), ("Connection", "close")])
    return Response(http.HTTPStatus.OK.value, "OK", headers, body)


# Seconds a closing connection waits for the participant's answer (websockets' default: 10). A
# participant that no longer reads (a frozen page, a bridge gone) held every stop of the worker
# past 10 s; a bridge or a browser answers a close within a round trip.
CLOSE_TIMEOUT = 2.0


async def start_server(settings: Settings, host: str, port: int):
    """Start listening; returns ``(server, worker)``. Binds only to ``host``."""
    use_host_addresses(list(settings.host_addresses))
    use_fast_clock()
    use_lean_srtp()
    use_lean_estimator()
    worker = Worker(settings)
    worker.gauge.start()
    server = await serve(worker.handle, host, port, max_size=1 << 20, close_timeout=CLOSE_TIMEOUT,
                         process_request=lambda connection, request: load_response(worker, request))
    return server, worker


async def stop_server(server, worker: Worker) -> None:
    server.close()
    await asyncio.gather(server.wait_closed(), worker.close_all())


def server_url(server) -> str:
    host, port = next(iter(server.sockets)).getsockname()[:2]
    return f"ws://{host}:{port}"


class EmbeddedRelay:
    """A worker on a background thread with its own event loop (the ``flask run`` default)."""

    def __init__(self, settings: Settings, host: str, port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._error: OSError | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(settings, host, port),
                                        name="relay", daemon=True)
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error

    def _run(self, settings: Settings, host: str, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server, self.worker = self._loop.run_until_complete(
                start_server(settings, host, port))
            self.url = server_url(self._server)
        except OSError as exc:
            self._error = exc
        self._started.set()
        if self._error is None:
            self._loop.run_forever()
        self._loop.close()

    def stop(self, timeout: float = 10) -> None:
        """Close every connection and peer connection, then end the thread."""
        future = asyncio.run_coroutine_threadsafe(stop_server(self._server, self.worker), self._loop)
        try:
            future.result(timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)


def start_embedded(secret: str, host: str = "127.0.0.1", port: int = 0,
                   host_addresses=("127.0.0.1",), ice_servers=(),
                   stats_interval: float = 5.0, **options) -> EmbeddedRelay:
    """Run a worker in this process; ``.url`` is its websocket URL, ``.stop()`` ends it.

    ``options`` are further ``Settings`` (``media_silence``, ``max_calls``...).
    """
    settings = Settings(secret=secret, host_addresses=tuple(host_addresses),
                        ice_servers=tuple(ice_servers), stats_interval=stats_interval, **options)
    return EmbeddedRelay(settings, host, port)
