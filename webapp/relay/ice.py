"""Which local addresses the worker offers as ICE host candidates, and its UDP sockets' buffers.

aioice has no setting for this: ``aioice.ice.get_host_addresses`` lists every
interface address except loopback. This is the one place that replaces it, for
the whole process: the worker must offer exactly the configured addresses (the
server's public address in production, 127.0.0.1 in tests), and never an
internal address of the machine. The variable itself is read by
``webapp.netsettings``, without aioice.
"""
from __future__ import annotations

import ipaddress
import logging
import socket

import aioice.ice

logger = logging.getLogger(__name__)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)     # Linux; Python has no name for it before 3.12


def use_host_addresses(addresses: list[str]) -> None:
    """Gather host candidates on ``addresses`` only, from now on, in this process."""
    parsed = [ipaddress.ip_address(a.strip()) for a in addresses]

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [str(a) for a in parsed
                if (a.version == 4 and use_ipv4) or (a.version == 6 and use_ipv6)]

    aioice.ice.get_host_addresses = get_host_addresses


_warned_small_buffer = False


def enlarge_receive_buffers(pc, size: int) -> list[int]:
    """Give the UDP sockets of ``pc`` a receive buffer of ``size`` bytes; returns what each got.

    A browser sends a keyframe as a burst of hundreds of packets, and a worker busy
    for a moment (another call's frame, a CPU stall) reads nothing meanwhile: with
    Linux's default (~200 KB) the rest of the burst is dropped by the kernel. Call
    after ``setLocalDescription`` (the sockets exist once candidates are gathered).
    SO_RCVBUFFORCE (root or CAP_NET_ADMIN) may exceed ``net.core.rmem_max``; else
    SO_RCVBUF is capped by it, which is logged once.
    """
    global _warned_small_buffer
    sockets = {}
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport._connection
        for protocol in connection._protocols:
            sock = getattr(protocol, "transport", None) and protocol.transport.get_extra_info("socket")
            if sock is not None:
                sockets[sock.fileno()] = sock
    sizes = []
    for sock in sockets.values():
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2   # Linux reports twice the size
        if got < size and not _warned_small_buffer:
            _warned_small_buffer = True
            logger.warning("UDP receive buffer is %d bytes, not %d: raise net.core.rmem_max", got, size)
        sizes.append(got)
    return sizes
