"""The signaling protocol between browser, Flask bridge and relay worker.

Messages are JSON objects carrying ``"v": 1`` and a ``"type"``; each type is a
plain dataclass here. ``decode`` validates a raw frame and returns either a
message or a ``ProtocolError`` (it never raises); ``encode`` is its inverse.
The same functions serve the bridge (no asyncio here) and the worker.
docs/signaling.md is the reference for what travels on the wire.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields
from typing import Callable, ClassVar, Union

VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
MAX_SDP_CHARS = 60_000
MAX_CHAT_CHARS = 2000
MAX_CANDIDATE_CHARS = 1024
MAX_ZOOM = 10.0

ROLES = ("practitioner", "patient")
KINDS = ("audio", "video")
FACINGS = ("user", "environment")
REPLY_REASONS = ("refused", "unsupported")
# "lost": connected, but no media from that side for a few seconds (a phone in a tunnel); "connected"
# again when it comes back, "failed" when ICE gives up.
PEER_STATES = ("joined", "left", "connected", "reconnecting", "failed", "lost")

# Stable error codes: the bridge translates them, so never rename one.
BAD_JSON = "bad-json"
TOO_LARGE = "too-large"
BAD_VERSION = "bad-version"
UNKNOWN_TYPE = "unknown-type"
BAD_FIELD = "bad-field"
BAD_SDP = "bad-sdp"
BAD_TICKET = "bad-ticket"
EXPIRED_TICKET = "expired-ticket"
NOT_JOINED = "not-joined"
ALREADY_JOINED = "already-joined"
BAD_STATE = "bad-state"
NEGOTIATION_FAILED = "negotiation-failed"
REPLACED = "replaced"
FULL = "full"
ERROR_CODES = (
    BAD_JSON, TOO_LARGE, BAD_VERSION, UNKNOWN_TYPE, BAD_FIELD, BAD_SDP, BAD_TICKET,
    EXPIRED_TICKET, NOT_JOINED, ALREADY_JOINED, BAD_STATE, NEGOTIATION_FAILED, REPLACED, FULL,
)


@dataclass(frozen=True)
class ProtocolError:
    """Why a raw frame was refused; ``reply()`` is the error message to send back."""

    code: str
    message: str

    def reply(self) -> Error:
        return Error(self.code, self.message)


# A check returns None when the value is acceptable, else the error code.
Check = Callable[[object], Union[str, None]]


@dataclass(frozen=True)
class Spec:
    """How one JSON key maps to one dataclass attribute."""

    key: str
    check: Check
    required: bool = True
    nullable: bool = False       # null is a meaningful value, kept on encode


def _spec(key: str, check: Check, **kwargs) -> dict:
    return {"metadata": {"spec": Spec(key, check, **kwargs)}}


def _bounded_text(limit: int, allow_empty: bool = False) -> Check:
    def check(value):
        ok = isinstance(value, str) and (allow_empty or value) and len(value) <= limit
        return None if ok else BAD_FIELD
    return check


def _one_of(*choices) -> Check:
    return lambda value: None if isinstance(value, str) and value in choices else BAD_FIELD


def _is_bool(value) -> str | None:
    return None if isinstance(value, bool) else BAD_FIELD


def _is_mline_index(value) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 64
    return None if ok else BAD_FIELD


def _is_zoom(value) -> str | None:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and 1.0 <= value <= MAX_ZOOM)
    return None if ok else BAD_FIELD


def _is_counts(value) -> str | None:
    ok = isinstance(value, dict) and all(
        k in KINDS and isinstance(n, int) and not isinstance(n, bool) and n >= 0
        for k, n in value.items())
    return None if ok else BAD_FIELD


def _is_candidate(value) -> str | None:
    if value is None or value == "":
        return None
    ok = isinstance(value, str) and value.startswith("candidate:") and len(value) <= MAX_CANDIDATE_CHARS
    return None if ok else BAD_FIELD


_SDP_LINE = re.compile(r"[a-z]=[^\x00]*")


def _is_offer_sdp(value) -> str | None:
    """A cheap sanity check before aiortc's parser sees the text."""
    if not isinstance(value, str):
        return BAD_FIELD
    if len(value) > MAX_SDP_CHARS or not value.startswith("v=0"):
        return BAD_SDP
    lines = [line for line in re.split(r"\r?\n", value) if line]
    if not all(_SDP_LINE.fullmatch(line) for line in lines):
        return BAD_SDP
    kinds = {line[2:].split(" ", 1)[0] for line in lines if line.startswith("m=")}
    if not kinds & set(KINDS) or not kinds <= {"audio", "video", "application"}:
        return BAD_SDP
    return None


_is_role = _one_of(*ROLES)
_optional_sender = _spec("from", _is_role, required=False)


class Message:
    """Base of every message; ``TYPE`` is its ``"type"`` on the wire."""

    TYPE: ClassVar[str]


# From the bridge, first frame of a worker connection.
@dataclass(frozen=True)
class Join(Message):
    TYPE = "join"
    ticket: str = field(**_spec("ticket", _bounded_text(512)))


# From the browser (the worker adds ``from`` when it relays one to the other side).
@dataclass(frozen=True)
class Offer(Message):
    TYPE = "offer"
    sdp: str = field(**_spec("sdp", _is_offer_sdp))


@dataclass(frozen=True)
class Candidate(Message):
    """A trickled ICE candidate; ``candidate=None`` means end of candidates."""

    TYPE = "candidate"
    candidate: str | None = field(**_spec("candidate", _is_candidate, nullable=True))
    sdp_mid: str | None = field(default=None, **_spec("sdpMid", _bounded_text(64), required=False))
    sdp_mline_index: int | None = field(
        default=None, **_spec("sdpMLineIndex", _is_mline_index, required=False))


@dataclass(frozen=True)
class Mute(Message):
    TYPE = "mute"
    kind: str = field(**_spec("kind", _one_of(*KINDS)))
    muted: bool = field(**_spec("muted", _is_bool))
    sender: str | None = field(default=None, **_optional_sender)


@dataclass(frozen=True)
class Chat(Message):
    TYPE = "chat"
    text: str = field(**_spec("text", _bounded_text(MAX_CHAT_CHARS)))
    sender: str | None = field(default=None, **_optional_sender)


@dataclass(frozen=True)
class CameraRequest(Message):
    """Ask the other side to switch camera (``facing``) or zoom; at least one."""

    TYPE = "camera-request"
    facing: str | None = field(default=None, **_spec("facing", _one_of(*FACINGS), required=False))
    zoom: float | None = field(default=None, **_spec("zoom", _is_zoom, required=False))
    sender: str | None = field(default=None, **_optional_sender)


@dataclass(frozen=True)
class CameraReply(Message):
    TYPE = "camera-reply"
    accepted: bool = field(**_spec("accepted", _is_bool))
    # Why not: the patient said no, or the device has no such camera or zoom.
    reason: str | None = field(default=None, **_spec("reason", _one_of(*REPLY_REASONS), required=False))
    sender: str | None = field(default=None, **_optional_sender)


@dataclass(frozen=True)
class Bye(Message):
    TYPE = "bye"
    sender: str | None = field(default=None, **_optional_sender)


@dataclass(frozen=True)
class Ping(Message):
    TYPE = "ping"


# From the worker.
@dataclass(frozen=True)
class Answer(Message):
    TYPE = "answer"
    sdp: str = field(**_spec("sdp", _bounded_text(MAX_SDP_CHARS)))


@dataclass(frozen=True)
class Error(Message):
    TYPE = "error"
    code: str = field(**_spec("code", _one_of(*ERROR_CODES)))
    message: str = field(default="", **_spec("message", _bounded_text(200, allow_empty=True),
                                             required=False))


@dataclass(frozen=True)
class PeerState(Message):
    """A participant's presence or media state, sent to everyone in the room."""

    TYPE = "peer-state"
    role: str = field(**_spec("role", _is_role))
    state: str = field(**_spec("state", _one_of(*PEER_STATES)))


@dataclass(frozen=True)
class Stats(Message):
    """Cumulative media counters of one participant's peer connection, per kind."""

    TYPE = "stats"
    role: str = field(**_spec("role", _is_role))
    received: dict = field(default_factory=dict, **_spec("received", _is_counts))
    forwarded: dict = field(default_factory=dict, **_spec("forwarded", _is_counts))
    dropped: dict = field(default_factory=dict, **_spec("dropped", _is_counts))
    lost: dict = field(default_factory=dict, **_spec("lost", _is_counts))


@dataclass(frozen=True)
class Pong(Message):
    TYPE = "pong"


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls for cls in (Join, Offer, Candidate, Mute, Chat, CameraRequest, CameraReply,
                              Bye, Ping, Answer, Error, PeerState, Stats, Pong)
}


def _specs(cls: type[Message]):
    return [(f.name, f.metadata["spec"]) for f in fields(cls)]


def decode(raw: str | bytes) -> Message | ProtocolError:
    """The message in one websocket frame, or why it is refused. Never raises."""
    data = _parse(raw)
    if isinstance(data, ProtocolError):
        return data
    if data.get("v") != VERSION or isinstance(data.get("v"), bool):
        return ProtocolError(BAD_VERSION, f"expected v={VERSION}")
    cls = MESSAGE_TYPES.get(data.get("type")) if isinstance(data.get("type"), str) else None
    if cls is None:
        return ProtocolError(UNKNOWN_TYPE, "unknown message type")
    return _build(cls, data)


def _parse(raw) -> dict | ProtocolError:
    if isinstance(raw, str):
        size = len(raw.encode("utf-8", "surrogatepass"))
    elif isinstance(raw, (bytes, bytearray)):
        size = len(raw)
    else:
        return ProtocolError(BAD_JSON, "not a text frame")
    if size > MAX_MESSAGE_BYTES:
        return ProtocolError(TOO_LARGE, f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return ProtocolError(BAD_JSON, "not JSON")
    if not isinstance(data, dict):
        return ProtocolError(BAD_JSON, "not a JSON object")
    return data


def _build(cls: type[Message], data: dict) -> Message | ProtocolError:
    values = {}
    for name, spec in _specs(cls):
        if spec.key not in data:
            if spec.required:
                return ProtocolError(BAD_FIELD, f"{spec.key} is missing")
            continue
        value = data[spec.key]
        if value is None and (spec.nullable or not spec.required):
            values[name] = None
            continue
        code = spec.check(value)
        if code is not None:
            return ProtocolError(code, f"{spec.key} is not valid")
        values[name] = value
    return _cross_check(cls(**values))


def _cross_check(msg: Message) -> Message | ProtocolError:
    """Rules that involve more than one field."""
    if isinstance(msg, Candidate):
        if msg.candidate == "":
            msg = Candidate(None, msg.sdp_mid, msg.sdp_mline_index)
        if msg.candidate is not None and msg.sdp_mid is None and msg.sdp_mline_index is None:
            return ProtocolError(BAD_FIELD, "sdpMid or sdpMLineIndex is required")
    if isinstance(msg, CameraRequest) and msg.facing is None and msg.zoom is None:
        return ProtocolError(BAD_FIELD, "facing or zoom is required")
    return msg


def encode(msg: Message) -> str:
    """The JSON text of a message; optional fields left as None are omitted."""
    data = {"v": VERSION, "type": msg.TYPE}
    for name, spec in _specs(type(msg)):
        value = getattr(msg, name)
        if value is not None or spec.nullable:
            data[spec.key] = value
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
