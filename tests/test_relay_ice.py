"""Which addresses the worker offers (RELAY_HOST_ADDRESSES) and how its settings are read."""
import asyncio
import re

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from webapp.netsettings import SettingError, parse_host_addresses, parse_ice_servers
from webapp.relay.__main__ import settings_from_env
from webapp.relay.ice import use_host_addresses
from tests.relay_helpers import Caller, start_worker_process, stop_worker_process

pytestmark = pytest.mark.real_clock   # media across processes: no dates involved


def candidate_addresses(sdp: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ host", sdp, re.M)}


@pytest.mark.parametrize("text, expected", [
    ("203.0.113.7", ["203.0.113.7"]),
    (" 203.0.113.7 , 2001:db8::1 ,", ["203.0.113.7", "2001:db8::1"]),
    ("", []),
])
def test_host_addresses_are_read_from_a_comma_separated_list(text, expected):
    assert parse_host_addresses(text) == expected


@pytest.mark.parametrize("text, bad", [("eth0", "eth0"), ("203.0.113.7,nowhere", "nowhere"),
                                       ("300.1.1.1", "300.1.1.1")])
def test_a_host_address_that_is_not_an_ip_is_refused(text, bad):
    with pytest.raises(SettingError, match=f"RELAY_HOST_ADDRESSES must list IP addresses, not '{bad}'"):
        parse_host_addresses(text)


@pytest.mark.parametrize("text, expected", [
    ("", []),
    ('[{"urls": "turns:turn.example.org:443?transport=tcp", "username": "u", "credential": "c"}]',
     [{"urls": "turns:turn.example.org:443?transport=tcp", "username": "u", "credential": "c"}]),
    ("stun:stun.example.org:3478, turn:turn.example.org:3478",
     [{"urls": "stun:stun.example.org:3478"}, {"urls": "turn:turn.example.org:3478"}]),
])
def test_ice_servers_are_json_as_browsers_take_them_or_plain_urls(text, expected):
    assert parse_ice_servers(text) == expected


@pytest.mark.parametrize("text", ['[{"urls": 5}]', '[{"username": "u"}]', "[not json"])
def test_unusable_ice_servers_are_refused(text):
    with pytest.raises(SettingError, match="ICE_SERVERS must be a JSON list of objects with urls"):
        parse_ice_servers(text)


def test_the_worker_process_takes_its_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "s")
    monkeypatch.setenv("RELAY_HOST_ADDRESSES", "203.0.113.7,2001:db8::1")
    monkeypatch.setenv("ICE_SERVERS", "turn:turn.example.org:3478")
    settings = settings_from_env(transcode=False, stats_interval=2)
    assert settings.host_addresses == ("203.0.113.7", "2001:db8::1")
    assert settings.ice_servers == ({"urls": "turn:turn.example.org:3478"},)
    monkeypatch.delenv("SECRET_KEY")
    with pytest.raises(SystemExit):
        settings_from_env(transcode=False, stats_interval=2)


def test_only_the_configured_addresses_become_host_candidates():
    async def gathered(addresses):
        use_host_addresses(addresses)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        await pc.close()
        return candidate_addresses(pc.localDescription.sdp)
    try:
        assert asyncio.run(gathered(["127.0.0.2", "127.0.0.3"])) == {"127.0.0.2", "127.0.0.3"}
    finally:
        use_host_addresses(["127.0.0.1"])


def test_python_m_webapp_relay_answers_with_the_addresses_of_relay_host_addresses():
    proc, url = start_worker_process(strict=False, env={"RELAY_HOST_ADDRESSES": "127.0.0.2"})
    try:
        async def answer():
            use_host_addresses(["127.0.0.1"])
            async with Caller(url, "room-ice", "patient") as pat:
                await pat.call()
                return pat.pc.remoteDescription.sdp
        assert candidate_addresses(asyncio.run(answer())) == {"127.0.0.2"}
    finally:
        stop_worker_process(proc)
