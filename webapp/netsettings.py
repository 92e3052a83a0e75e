"""The media network settings, ``RELAY_HOST_ADDRESSES``, ``ICE_SERVERS`` and
``RELAY_RECEIVE_BUFFER``, read from text.

The web app (``webapp.config``) and the worker process (``python -m webapp.relay``)
both read these two variables; they read them here, so a value means the same
to both and a bad one is refused with the same message. Standard library only,
like ``webapp.tokens``: the web app reads its settings without loading aioice,
and the worker without loading the web app's configuration.
"""
from __future__ import annotations

import ipaddress
import json


class SettingError(ValueError):
    """A value that cannot be used; the message names the variable."""


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_host_addresses(text: str) -> list[str]:
    """``RELAY_HOST_ADDRESSES``: comma-separated IP addresses, the worker's only ICE host candidates."""
    addresses = _split(text)
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise SettingError(f"RELAY_HOST_ADDRESSES must list IP addresses, not {address!r}") from None
    return addresses


def parse_ice_servers(text: str) -> list[dict]:
    """``ICE_SERVERS``: STUN/TURN servers as browsers take them, JSON
    ``[{"urls": ..., "username": ..., "credential": ...}]``, or comma-separated
    URLs of servers without credentials."""
    text = text.strip()
    if not text.startswith("["):
        return [{"urls": url} for url in _split(text)]
    try:
        servers = json.loads(text)
    except ValueError:
        servers = None
    if not isinstance(servers, list) or not all(
            isinstance(s, dict) and isinstance(s.get("urls"), (str, list)) for s in servers):
        raise SettingError("ICE_SERVERS must be a JSON list of objects with urls")
    return servers


RECEIVE_BUFFER_DEFAULT = 4 << 20
_UNITS = {"": 1, "K": 1 << 10, "KB": 1 << 10, "M": 1 << 20, "MB": 1 << 20}


def parse_receive_buffer(text: str) -> int:
    """``RELAY_RECEIVE_BUFFER``: the UDP receive buffer of each media socket of the worker,
    in bytes, or with K or M (default 4M); between 64K and 64M."""
    raw = text.strip().upper()
    if not raw:
        return RECEIVE_BUFFER_DEFAULT
    number = raw.rstrip("KMB").strip()
    unit = raw[len(raw.rstrip("KMB")):]
    if not number.isdigit() or unit not in _UNITS or not (
            64 << 10 <= int(number) * _UNITS[unit] <= 64 << 20):
        raise SettingError(f"RELAY_RECEIVE_BUFFER must be a size between 64K and 64M, not {text.strip()!r}")
    return int(number) * _UNITS[unit]
