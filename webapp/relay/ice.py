"""Which local addresses the worker offers as ICE host candidates.

aioice has no setting for this: ``aioice.ice.get_host_addresses`` lists every
interface address except loopback. This is the one place that replaces it, for
the whole process: the worker must offer exactly the configured addresses (the
server's public address in production, 127.0.0.1 in tests), and never an
internal address of the machine.
"""
from __future__ import annotations

import ipaddress
import json

import aioice.ice


def use_host_addresses(addresses: list[str]) -> None:
    """Gather host candidates on ``addresses`` only, from now on, in this process."""
    parsed = [ipaddress.ip_address(a.strip()) for a in addresses]

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [str(a) for a in parsed
                if (a.version == 4 and use_ipv4) or (a.version == 6 and use_ipv6)]

    aioice.ice.get_host_addresses = get_host_addresses


def parse_addresses(text: str) -> list[str]:
    """``RELAY_HOST_ADDRESSES``: a comma-separated list of IP addresses."""
    addresses = [a.strip() for a in text.split(",") if a.strip()]
    for address in addresses:
        ipaddress.ip_address(address)       # ValueError names the bad one
    return addresses


def parse_ice_servers(text: str) -> list[dict]:
    """``ICE_SERVERS``: JSON, as browsers take it: ``[{"urls": ..., "username": ..., "credential": ...}]``,
    or comma-separated URLs of servers without credentials (as the web app reads it too)."""
    text = text.strip()
    if text and not text.startswith("["):
        return [{"urls": url.strip()} for url in text.split(",") if url.strip()]
    servers = json.loads(text) if text else []
    if not isinstance(servers, list) or not all(
            isinstance(s, dict) and isinstance(s.get("urls"), (str, list)) for s in servers):
        raise ValueError("ICE_SERVERS must be a JSON list of objects with urls")
    return servers
