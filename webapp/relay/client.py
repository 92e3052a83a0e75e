"""A blocking client of the relay worker, for the Flask bridge (no event loop).

``simple_websocket`` (a flask-sock dependency) runs the socket on its own
thread; its package also imports its asyncio variants, which stay unused.

    conn = connect(relay_url, make_room_ticket(secret, room, role, peer))
    conn.send(msg)                 # a protocol message from the browser
    reply = conn.receive(timeout)  # Message, ProtocolError, or None on timeout
    conn.close()
"""
from __future__ import annotations

from urllib.parse import urlsplit

import simple_websocket
from simple_websocket import Client, ConnectionClosed
from wsproto.utilities import LocalProtocolError, ProtocolError

from webapp.relay import protocol

__all__ = ["RelayConnection", "RelayUnavailable", "connect", "ConnectionClosed"]

# Seconds the worker has to answer the websocket handshake: simple_websocket's client waits for
# ever, and the bridge thread with it (its page never hears "ready").
HANDSHAKE_TIMEOUT = 5.0


class _Client(Client):
    """simple_websocket's client, its handshake bounded in time; then blocking, as its reader thread expects."""

    def handshake(self):
        self.sock.settimeout(HANDSHAKE_TIMEOUT)
        try:
            super().handshake()
        except BaseException:
            self.sock.close()          # simple_websocket leaves it to the garbage collector
            raise
        self.sock.settimeout(None)


class RelayUnavailable(Exception):
    """The worker could not be reached, or refused the websocket handshake."""


class RelayConnection:
    """One participant's signaling connection to the worker."""

    def __init__(self, ws: Client) -> None:
        self._ws = ws

    def send(self, msg: protocol.Message) -> None:
        """Send a message; raises ConnectionClosed once the worker has gone: also when its reader
        thread has just handled the worker's close (wsproto refuses the frame, or the socket is
        already shut: EBADF, EPIPE, ECONNRESET)."""
        try:
            self._ws.send(protocol.encode(msg))
        except (LocalProtocolError, OSError) as refused:
            raise ConnectionClosed() from refused

    def receive(self, timeout: float | None = None) -> protocol.Message | protocol.ProtocolError | None:
        """The next message from the worker, or None after ``timeout`` seconds.

        Raises ConnectionClosed when the worker closed the connection.
        """
        raw = self._ws.receive(timeout)
        return None if raw is None else protocol.decode(raw)

    def close(self) -> None:
        """Close it, whoever closed first: the worker's close (its reader thread then closes the
        socket, maybe between our check and our write: EBADF) is the same end."""
        try:
            self._ws.close()
        except (ConnectionClosed, OSError, LocalProtocolError):
            pass


def connect(url: str, ticket: str) -> RelayConnection:
    """Open a connection to the worker at ``url`` and join with ``ticket``.

    The worker answers a refused ticket with an error message (see receive);
    raises RelayUnavailable when the worker cannot be reached, or does not complete the handshake.
    """
    if not urlsplit(url).path:
        url += "/"                 # simple_websocket sends the path as is; HTTP needs one
    try:
        conn = RelayConnection(_Client.connect(url))
    except (OSError, simple_websocket.ConnectionError, ProtocolError) as exc:
        # OSError: refused, or no answer in time. ProtocolError: the worker closed the connection
        # before answering (wsproto's "Bad HTTP message"), which used to end the bridge's thread.
        raise RelayUnavailable(url) from exc
    try:
        conn.send(protocol.Join(ticket))
    except (ConnectionClosed, OSError) as exc:     # closed right after the handshake
        conn.close()
        raise RelayUnavailable(url) from exc
    return conn
