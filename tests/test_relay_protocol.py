"""The signaling codec, without sockets: every message type, valid and malformed."""
import json
import sys

import pytest

from webapp.relay import protocol as p

SDP = "\r\n".join([
    "v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
    "a=group:BUNDLE 0 1",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0", "a=mid:0", "a=rtpmap:111 opus/48000/2",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0", "a=mid:1", "a=rtpmap:96 VP8/90000",
    "",
])
CANDIDATE = "candidate:1 1 UDP 2122252543 127.0.0.1 50000 typ host"


def frame(**data) -> str:
    return json.dumps({"v": 1, **data})


ROUND_TRIPS = [
    p.Join("ticket-text"),
    p.Offer(SDP),
    p.Candidate(CANDIDATE, "0", 0),
    p.Candidate(CANDIDATE, sdp_mline_index=1),
    p.Candidate(None),
    p.Mute("audio", True),
    p.Mute("video", False, sender="patient"),
    p.Chat("Bonjour, je vous entends mal"),
    p.Chat("x" * p.MAX_CHAT_CHARS, sender="practitioner"),
    p.CameraRequest(facing="environment"),
    p.CameraRequest(zoom=2.5, sender="practitioner"),
    p.CameraReply(True, sender="patient"),
    p.Bye(),
    p.Ping(),
    p.Answer(SDP),
    p.Error(p.BAD_SDP, "the offer could not be used"),
    p.PeerState("patient", "reconnecting"),
    p.Stats("practitioner", received={"audio": 3, "video": 2}, forwarded={"video": 1},
            dropped={}, lost={"video": 0}),
    p.Pong(),
]


@pytest.mark.parametrize("msg", ROUND_TRIPS, ids=lambda m: m.TYPE)
def test_every_message_survives_encode_then_decode(msg):
    assert p.decode(p.encode(msg)) == msg


def test_every_type_is_covered_by_the_round_trips():
    assert {m.TYPE for m in ROUND_TRIPS} == set(p.MESSAGE_TYPES)


def test_encode_leaves_out_unset_optional_fields_but_keeps_the_null_candidate():
    assert json.loads(p.encode(p.Chat("hi"))) == {"v": 1, "type": "chat", "text": "hi"}
    assert json.loads(p.encode(p.Candidate(None))) == {"v": 1, "type": "candidate", "candidate": None}


@pytest.mark.parametrize("raw, expected", [
    (frame(type="candidate", candidate=""), p.Candidate(None)),
    (frame(type="chat", text="hi", extra="ignored"), p.Chat("hi")),
    (frame(type="mute", kind="audio", muted=True, **{"from": None}), p.Mute("audio", True)),
    (frame(type="camera-request", zoom=1), p.CameraRequest(zoom=1)),
    (frame(type="camera-reply", accepted=False, reason="unsupported"), p.CameraReply(False, "unsupported")),
    (frame(type="ping").encode(), p.Ping()),
])
def test_lenient_where_browsers_differ(raw, expected):
    assert p.decode(raw) == expected


MALFORMED = [
    # framing
    ("", p.BAD_JSON),
    ("{", p.BAD_JSON),
    ("[1, 2]", p.BAD_JSON),
    ('"offer"', p.BAD_JSON),
    (b"\xff\xfe", p.BAD_JSON),
    (None, p.BAD_JSON),
    ("[" * 100_000, p.TOO_LARGE),
    ("[" * 50_000 + "]" * 50_000, p.TOO_LARGE),
    (frame(type="chat", text="é" * 40_000), p.TOO_LARGE),
    ("[" * 30_000 + "]" * 30_000, p.BAD_JSON),
    # version and type
    (json.dumps({"type": "ping"}), p.BAD_VERSION),
    (json.dumps({"v": 2, "type": "ping"}), p.BAD_VERSION),
    (json.dumps({"v": "1", "type": "ping"}), p.BAD_VERSION),
    (json.dumps({"v": True, "type": "ping"}), p.BAD_VERSION),
    (frame(), p.UNKNOWN_TYPE),
    (frame(type="dance"), p.UNKNOWN_TYPE),
    (frame(type=["offer"]), p.UNKNOWN_TYPE),
    # join
    (frame(type="join"), p.BAD_FIELD),
    (frame(type="join", ticket=""), p.BAD_FIELD),
    (frame(type="join", ticket=7), p.BAD_FIELD),
    (frame(type="join", ticket="t" * 513), p.BAD_FIELD),
    # offer
    (frame(type="offer"), p.BAD_FIELD),
    (frame(type="offer", sdp=None), p.BAD_FIELD),
    (frame(type="offer", sdp=42), p.BAD_FIELD),
    (frame(type="offer", sdp=""), p.BAD_SDP),
    (frame(type="offer", sdp="hello"), p.BAD_SDP),
    (frame(type="offer", sdp=SDP.replace("v=0", "v=1")), p.BAD_SDP),
    (frame(type="offer", sdp="\r\n".join(line for line in SDP.split("\r\n")
                                          if not line.startswith("m="))), p.BAD_SDP),
    (frame(type="offer", sdp=SDP.replace("m=video", "m=text")), p.BAD_SDP),
    (frame(type="offer", sdp=SDP + "not an sdp line\r\n"), p.BAD_SDP),
    (frame(type="offer", sdp=SDP + "a=x\x00\r\n"), p.BAD_SDP),
    (frame(type="offer", sdp=SDP + "a=" + "x" * p.MAX_SDP_CHARS), p.BAD_SDP),
    # candidate
    (frame(type="candidate"), p.BAD_FIELD),
    (frame(type="candidate", candidate=CANDIDATE), p.BAD_FIELD),
    (frame(type="candidate", candidate="typ host", sdpMid="0"), p.BAD_FIELD),
    (frame(type="candidate", candidate=5, sdpMid="0"), p.BAD_FIELD),
    (frame(type="candidate", candidate="candidate:" + "1" * 1100, sdpMid="0"), p.BAD_FIELD),
    (frame(type="candidate", candidate=CANDIDATE, sdpMLineIndex=-1), p.BAD_FIELD),
    (frame(type="candidate", candidate=CANDIDATE, sdpMLineIndex=True), p.BAD_FIELD),
    (frame(type="candidate", candidate=CANDIDATE, sdpMLineIndex="0"), p.BAD_FIELD),
    (frame(type="candidate", candidate=CANDIDATE, sdpMid=0), p.BAD_FIELD),
    # mute
    (frame(type="mute", kind="audio"), p.BAD_FIELD),
    (frame(type="mute", kind="screen", muted=True), p.BAD_FIELD),
    (frame(type="mute", kind="audio", muted="yes"), p.BAD_FIELD),
    (frame(type="mute", kind="audio", muted=1), p.BAD_FIELD),
    (frame(type="mute", kind="audio", muted=True, **{"from": "doctor"}), p.BAD_FIELD),
    # chat
    (frame(type="chat"), p.BAD_FIELD),
    (frame(type="chat", text=""), p.BAD_FIELD),
    (frame(type="chat", text=["hi"]), p.BAD_FIELD),
    (frame(type="chat", text="x" * (p.MAX_CHAT_CHARS + 1)), p.BAD_FIELD),
    # camera
    (frame(type="camera-request"), p.BAD_FIELD),
    (frame(type="camera-request", facing="left"), p.BAD_FIELD),
    (frame(type="camera-request", zoom=0.5), p.BAD_FIELD),
    (frame(type="camera-request", zoom=11), p.BAD_FIELD),
    (frame(type="camera-request", zoom=True), p.BAD_FIELD),
    ('{"v": 1, "type": "camera-request", "zoom": NaN}', p.BAD_FIELD),
    (frame(type="camera-reply"), p.BAD_FIELD),
    (frame(type="camera-reply", accepted="true"), p.BAD_FIELD),
    (frame(type="camera-reply", accepted=False, reason="busy"), p.BAD_FIELD),
    # bye
    (frame(type="bye", **{"from": 3}), p.BAD_FIELD),
    # worker messages
    (frame(type="answer"), p.BAD_FIELD),
    (frame(type="error", code="oops"), p.BAD_FIELD),
    (frame(type="peer-state", role="patient", state="sleeping"), p.BAD_FIELD),
    (frame(type="peer-state", role="admin", state="joined"), p.BAD_FIELD),
    (frame(type="stats", role="patient", received={"audio": -1}, forwarded={}, dropped={},
           lost={}), p.BAD_FIELD),
    (frame(type="stats", role="patient", received={"screen": 1}, forwarded={}, dropped={},
           lost={}), p.BAD_FIELD),
    (frame(type="stats", role="patient", received=[], forwarded={}, dropped={}, lost={}),
     p.BAD_FIELD),
]


@pytest.mark.parametrize("raw, code", MALFORMED)
def test_malformed_frames_are_refused_with_a_stable_code(raw, code):
    result = p.decode(raw)
    assert isinstance(result, p.ProtocolError), result
    assert result.code == code
    assert p.decode(p.encode(result.reply())) == result.reply()


def test_decode_survives_deep_nesting_under_the_size_limit():
    assert sys.getrecursionlimit() < 30_000     # the BAD_JSON case above really nests deeper
    assert p.decode("[" * 30_000 + "]" * 30_000).code == p.BAD_JSON


def test_error_codes_are_unique_strings():
    assert len(set(p.ERROR_CODES)) == len(p.ERROR_CODES)
    assert all(isinstance(code, str) and code == code.lower() for code in p.ERROR_CODES)


# Importing asyncio runs no loop, and the web app's own dependencies import it for their
# own use (wrapt under flask-limiter, simple_websocket's asyncio variants): the runtime check
# is on aiortc, PyAV and websockets; the source check below covers asyncio in Cabinet's code.
@pytest.mark.parametrize("module, forbidden", [
    ("webapp.relay.protocol", ("aiortc", "av", "websockets")),
    ("webapp.relay.client", ("aiortc", "av", "websockets")),
])
def test_what_the_web_app_imports_brings_no_event_loop_nor_aiortc(module, forbidden):
    import subprocess
    code = (f"import sys, {module}; "
            f"sys.exit(','.join(m for m in {forbidden!r} if m in sys.modules) or None)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_only_the_relay_package_imports_asyncio_or_aiortc():
    import ast
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent / "webapp"
    offenders = []
    for path in root.rglob("*.py"):
        if (root / "relay") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in ("asyncio", "aiortc", "av", "websockets", "aioice") for n in names):
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []
