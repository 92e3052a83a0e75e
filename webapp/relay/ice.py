"""Which local addresses the worker offers as ICE host candidates.

aioice has no setting for this: ``aioice.ice.get_host_addresses`` lists every
interface address except loopback. This is the one place that replaces it, for
the whole process: the worker must offer exactly the configured addresses (the
server's public address in production, 127.0.0.1 in tests), and never an
internal address of the machine. The variable itself is read by
``webapp.netsettings``, without aioice.
"""
from __future__ import annotations

import ipaddress

import aioice.ice


def use_host_addresses(addresses: list[str]) -> None:
    """Gather host candidates on ``addresses`` only, from now on, in this process."""
    parsed = [ipaddress.ip_address(a.strip()) for a in addresses]

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [str(a) for a in parsed
                if (a.version == 4 and use_ipv4) or (a.version == 6 and use_ipv6)]

    aioice.ice.get_host_addresses = get_host_addresses
