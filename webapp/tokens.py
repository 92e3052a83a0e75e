"""Signed tokens: patient links, patient cookies and relay room tickets.

Each purpose has its own salt, so a token made for one purpose never reads as
another. Readers return either the payload or a ``TokenProblem`` naming the
reason; views never see itsdangerous' exceptions.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

LINK_SALT = "cabinet.patient-link.v1"
COOKIE_SALT = "cabinet.patient-cookie.v1"
TICKET_SALT = "cabinet.room-ticket.v1"
IDENTITY_SALT = "cabinet.patient-identity.v1"

TICKET_SECONDS = 60


class TokenProblem(enum.Enum):
    MALFORMED = "malformed"          # not ours at all, or a different purpose
    EXPIRED = "expired"


@dataclass(frozen=True)
class PatientLink:
    appointment_id: int
    version: int


@dataclass(frozen=True)
class RoomTicket:
    room: str
    role: str                         # "practitioner" or "patient"
    peer: str                         # stable id of this participant in the room


def _serializer(secret: str, salt: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=salt)


def _sign(secret, salt, payload, expires_at):
    return _serializer(secret, salt).dumps({**payload, "e": int(expires_at)})


def _read(secret, salt, token, now):
    if not isinstance(token, str) or not token or len(token) > 512:
        return TokenProblem.MALFORMED
    try:
        data = _serializer(secret, salt).loads(token)
    except BadSignature:
        return TokenProblem.MALFORMED
    if not isinstance(data, dict) or not isinstance(data.get("e"), int):
        return TokenProblem.MALFORMED
    if (time.time() if now is None else now) >= data["e"]:
        return TokenProblem.EXPIRED
    return data


def _patient_link(data):
    if isinstance(data, TokenProblem):
        return data
    a, v = data.get("a"), data.get("v")
    if not isinstance(a, int) or not isinstance(v, int):
        return TokenProblem.MALFORMED
    return PatientLink(a, v)


def make_patient_token(secret: str, appointment_id: int, version: int, expires_at: float) -> str:
    """The token in the link sent to the patient."""
    return _sign(secret, LINK_SALT, {"a": appointment_id, "v": version}, expires_at)


def read_patient_token(secret: str, token: str, now: float | None = None) -> PatientLink | TokenProblem:
    """The appointment and link version a patient link names, or why not."""
    return _patient_link(_read(secret, LINK_SALT, token, now))


def make_patient_cookie(secret: str, appointment_id: int, version: int, expires_at: float) -> str:
    """The cookie a patient link is exchanged for."""
    return _sign(secret, COOKIE_SALT, {"a": appointment_id, "v": version}, expires_at)


def read_patient_cookie(secret: str, value: str, now: float | None = None) -> PatientLink | TokenProblem:
    """The appointment and link version a patient cookie names, or why not."""
    return _patient_link(_read(secret, COOKIE_SALT, value, now))


def make_identity_cookie(secret: str, appointment_id: int, version: int, expires_at: float) -> str:
    """The cookie saying this browser confirmed the patient's identity for one appointment and link version."""
    return _sign(secret, IDENTITY_SALT, {"a": appointment_id, "v": version}, expires_at)


def read_identity_cookie(secret: str, value: str, now: float | None = None) -> PatientLink | TokenProblem:
    """The appointment and link version whose identity this browser confirmed, or why not."""
    return _patient_link(_read(secret, IDENTITY_SALT, value, now))


def make_room_ticket(secret: str, room: str, role: str, peer: str, now: float | None = None) -> str:
    """A short-lived ticket the web app hands to the relay worker for one participant."""
    now = time.time() if now is None else now
    return _sign(secret, TICKET_SALT, {"r": room, "o": role, "p": peer}, now + TICKET_SECONDS)


def read_room_ticket(secret: str, ticket: str, now: float | None = None) -> RoomTicket | TokenProblem:
    """The room and participant a ticket admits, or why not."""
    data = _read(secret, TICKET_SALT, ticket, now)
    if isinstance(data, TokenProblem):
        return data
    room, role, peer = data.get("r"), data.get("o"), data.get("p")
    if not all(isinstance(x, str) and x for x in (room, role, peer)):
        return TokenProblem.MALFORMED
    if role not in ("practitioner", "patient"):
        return TokenProblem.MALFORMED
    return RoomTicket(room, role, peer)


FEED_SALT = "cabinet.calendar-feed.v1"


@dataclass(frozen=True)
class FeedKey:
    user_id: int
    version: int


def make_feed_token(secret: str, user_id: int, version: int) -> str:
    """The secret part of a practitioner's calendar-feed address. It does not expire (a phone
    subscribes once); renewing or revoking changes the version it must carry."""
    return _serializer(secret, FEED_SALT).dumps({"u": user_id, "v": version})


def read_feed_token(secret: str, token: str) -> FeedKey | TokenProblem:
    """The practitioner and feed version a calendar-feed address names, or why not."""
    if not isinstance(token, str) or not token or len(token) > 512:
        return TokenProblem.MALFORMED
    try:
        data = _serializer(secret, FEED_SALT).loads(token)
    except BadSignature:
        return TokenProblem.MALFORMED
    u, v = (data.get("u"), data.get("v")) if isinstance(data, dict) else (None, None)
    if not isinstance(u, int) or not isinstance(v, int) or isinstance(u, bool) or isinstance(v, bool):
        return TokenProblem.MALFORMED
    return FeedKey(u, v)
