"""``RELAY_UDP_PORTS``: the worker's media (ICE/UDP) sockets bind only inside a range of ports.

A firewall in front of the worker then opens that range, and nothing else, to the browsers.
aioice has no setting for it: it binds each host candidate's socket itself, with
``loop.create_datagram_endpoint(..., local_addr=(address, 0))`` (``Connection.get_component_candidates``),
so port 0 lets the kernel pick any ephemeral port. The worker's event loop is made of a subclass
(``port_limited``) whose ``create_datagram_endpoint`` replaces that 0 by a free port of the range,
trying the next one when a port is taken. Any other socket (a port chosen by the caller, a TURN
client's socket, which only talks out to the TURN server) is left as it is.

One participant takes one socket per host address (BUNDLE and rtcp-mux: one ICE component for audio and
video); a call of two, two sockets per address. Pure here: no aioice import.
"""
from __future__ import annotations

import logging
import threading

logger = logging.getLogger(__name__)


class PortRangeError(ValueError):
    """``RELAY_UDP_PORTS`` (or ``--udp-ports``) is not a range of ports."""


def parse_udp_ports(text: str | None) -> tuple[int, int] | None:
    """``"40000-40999"`` → ``(40000, 40999)``; empty → None (any port). Raises PortRangeError."""
    text = (text or "").strip()
    if not text:
        return None
    low, sep, high = text.partition("-")
    if not (sep and low.strip().isdigit() and high.strip().isdigit()):
        raise PortRangeError("RELAY_UDP_PORTS (--udp-ports) must be a range of UDP ports such as "
                             f"40000-40999, not {text!r}")
    low_port, high_port = int(low), int(high)
    if not 1024 <= low_port <= high_port <= 65535:
        raise PortRangeError("RELAY_UDP_PORTS (--udp-ports) must lie within 1024-65535, low port first, "
                             f"not {text!r}")
    return low_port, high_port


class PortChooser:
    """Hands out the range's ports in turn, so a port just freed is the last to be tried again."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self._next = low
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.high - self.low + 1

    def candidates(self):
        """Every port of the range once, starting after the last one handed out."""
        with self._lock:
            start = self._next
        for i in range(len(self)):
            port = self.low + (start - self.low + i) % len(self)
            with self._lock:
                self._next = self.low + (port - self.low + 1) % len(self)
            yield port


def port_limited(loop_class, low: int, high: int):
    """A subclass of ``loop_class`` (asyncio's or uvloop's) whose datagram endpoints that ask for
    any port (port 0) get one of ``low``..``high``."""
    chooser = PortChooser(low, high)

    class PortLimitedLoop(loop_class):
        async def create_datagram_endpoint(self, protocol_factory, local_addr=None, **options):
            if local_addr is None or local_addr[1] != 0 or options.get("sock") is not None:
                return await super().create_datagram_endpoint(protocol_factory, local_addr=local_addr, **options)
            last: OSError | None = None
            for port in chooser.candidates():
                try:
                    return await super().create_datagram_endpoint(
                        protocol_factory, local_addr=(local_addr[0], port, *local_addr[2:]), **options)
                except OSError as exc:      # taken (uvloop's error carries no errno): the next one
                    last = exc
            logger.warning("no free UDP port in %d-%d for a media socket", low, high)
            raise OSError(f"no free UDP port in {low}-{high}") from last

    PortLimitedLoop.ports = (low, high)
    return PortLimitedLoop
