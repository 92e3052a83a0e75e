"""``python -m webapp.relay --host 127.0.0.1 --port 8765``: the worker as its own process.

Reads SECRET_KEY, RELAY_HOST_ADDRESSES, ICE_SERVERS, RELAY_RECEIVE_BUFFER, RELAY_MAX_CALLS and
RELAY_UDP_PORTS and RELAY_MAX_CPU from the environment; the web app must share SECRET_KEY to sign
room tickets. ``--udp-ports 40000-40999`` (or RELAY_UDP_PORTS) keeps its media sockets in that
range (ports.py).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

import uvloop

from webapp.netsettings import parse_host_addresses, parse_ice_servers, parse_receive_buffer
from webapp.relay import malloc
from webapp.relay.load import MAX_CPU
from webapp.relay.ports import PortRangeError, parse_udp_ports, port_limited
from webapp.relay.worker import Settings, server_url, start_server, stop_server


def settings_from_env(transcode: bool, stats_interval: float) -> Settings:
    secret = os.environ.get("SECRET_KEY")
    if not secret:
        sys.exit("SECRET_KEY is not set: the worker could not check room tickets")
    return Settings(
        secret=secret,
        host_addresses=tuple(parse_host_addresses(os.environ.get("RELAY_HOST_ADDRESSES", "127.0.0.1"))),
        ice_servers=tuple(parse_ice_servers(os.environ.get("ICE_SERVERS", ""))),
        receive_buffer=parse_receive_buffer(os.environ.get("RELAY_RECEIVE_BUFFER", "")),
        stats_interval=stats_interval, transcode=transcode, max_calls=max_calls_from_env(),
        max_cpu=max_cpu_from_env())


def max_calls_from_env() -> int:
    raw = os.environ.get("RELAY_MAX_CALLS", "").strip() or "0"
    if not raw.isdigit():
        sys.exit(f"RELAY_MAX_CALLS must be a whole number of calls (0: no limit), not {raw!r}")
    return int(raw)


def max_cpu_from_env() -> float:
    """RELAY_MAX_CPU: the share of a core past which a new call is refused (0.85; 0: no automatic limit)."""
    raw = os.environ.get("RELAY_MAX_CPU", "").strip()
    if not raw:
        return MAX_CPU
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        sys.exit(f"RELAY_MAX_CPU must be a share of one core between 0 and 1 (0: no automatic limit), not {raw!r}")
    return value


async def run(settings: Settings, host: str, port: int) -> None:
    server, worker = await start_server(settings, host, port)
    print(f"relay listening on {server_url(server)}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await stop_server(server, worker)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m webapp.relay", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on for the web app")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--stats-interval", type=float, default=5.0,
                        help="seconds between stats messages to each participant")
    parser.add_argument("--udp-ports", default=os.environ.get("RELAY_UDP_PORTS", ""), metavar="LOW-HIGH",
                        help="the media (ICE/UDP) ports to bind, e.g. 40000-40999 (default: RELAY_UDP_PORTS, "
                             "else any)")
    parser.add_argument("--transcode", action="store_true",
                        help="decode and re-encode media instead of forwarding (benchmark only)")
    args = parser.parse_args()
    try:
        udp_ports = parse_udp_ports(args.udp_ports)
    except PortRangeError as exc:
        sys.exit(str(exc))
    malloc.limit_arenas()        # as MALLOC_ARENA_MAX=2 would, unless it is set
    logging.basicConfig(level=os.environ.get("RELAY_LOG_LEVEL", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # uvloop: asyncio's own loop checks getpid() on every datagram (18% of the busy worker's time).
    loop_class = uvloop.Loop if udp_ports is None else port_limited(uvloop.Loop, *udp_ports)
    uvloop.run(run(settings_from_env(args.transcode, args.stats_interval), args.host, args.port),
               loop_factory=loop_class)


if __name__ == "__main__":
    main()
