"""Media through a real worker process on 127.0.0.1: forwarded, never decoded or encoded."""
import asyncio
import time

import pytest

from webapp.relay import protocol as p
from webapp.relay.ice import use_host_addresses
from webapp.relay.worker import start_embedded
from tests.relay_helpers import SECRET, CODEC_USED, Caller, start_worker_process, stop_worker_process

pytestmark = pytest.mark.real_clock   # media across processes: no dates involved


@pytest.fixture(scope="module")
def worker():
    use_host_addresses(["127.0.0.1"])       # the callers, in this process, stay on loopback too
    proc, url = start_worker_process("--stats-interval", "1")
    yield url
    err = stop_worker_process(proc)
    assert CODEC_USED not in err, err


def test_two_participants_get_each_others_audio_and_video(worker):
    async def scenario():
        async with Caller(worker, "room-a", "practitioner") as doc, \
                Caller(worker, "room-a", "patient") as pat:
            await asyncio.gather(doc.call(), pat.call())
            await asyncio.gather(doc.wait_frames(audio=50, video=20),
                                 pat.wait_frames(audio=50, video=20))
            assert doc.sizes == pat.sizes == {(640, 480)}
            stats = await doc.wait_for(lambda m: isinstance(m, p.Stats) and m.forwarded.get("video"))
            assert stats.role == "practitioner"
            assert stats.received["video"] > 0 and stats.received["audio"] > 0
            await pli_reaches_the_other_sender(pat, doc)
    asyncio.run(scenario())


async def pli_reaches_the_other_sender(viewer, sender):
    """A picture loss reported by ``viewer`` to the worker reaches ``sender``'s encoder."""
    await asyncio.sleep(0.3)                  # the worker spaces its requests upstream
    before = sender.keyframe_requests
    receiver = next(t.receiver for t in viewer.pc.getTransceivers() if t.kind == "video")
    ssrc = receiver.getSynchronizationSources()[0].source
    await receiver._send_rtcp_pli(ssrc)
    deadline = asyncio.get_running_loop().time() + 2
    while sender.keyframe_requests == before:
        assert asyncio.get_running_loop().time() < deadline, "the PLI never reached the sender"
        await asyncio.sleep(0.02)


def test_late_joiner_gets_video_at_once(worker):
    """The first participant's encoder only sends a keyframe when asked: the worker asks."""
    async def scenario():
        async with Caller(worker, "room-b", "practitioner") as doc:
            await doc.call()
            await doc.wait_for(lambda m: m == p.PeerState("practitioner", "connected"))
            await asyncio.sleep(1.5)          # alone: its frames go nowhere
            requests_before = doc.keyframe_requests
            async with Caller(worker, "room-b", "patient") as pat:
                await pat.call()
                await pat.wait_frames(audio=10, video=10, timeout=5)
                assert doc.keyframe_requests > requests_before
                await doc.wait_frames(audio=10, video=10, timeout=5)
    asyncio.run(scenario())


def test_reconnect_of_one_participant_brings_media_back(worker):
    async def scenario():
        async with Caller(worker, "room-c", "practitioner") as doc:
            await doc.call()
            async with Caller(worker, "room-c", "patient") as pat:
                await pat.call()
                await pat.wait_frames(audio=10, video=10)
                # a second connection of the same role replaces the first one
                async with Caller(worker, "room-c", "patient") as again:
                    await pat.wait_for(lambda m: m == p.Error(p.REPLACED, "another connection took this place"))
                    await again.call()
                    await again.wait_frames(audio=10, video=10, timeout=5)
                    await doc.wait_frames(audio=10, video=10, timeout=5)
                    await doc.wait_for(lambda m: m == p.PeerState("patient", "reconnecting"))
    asyncio.run(scenario())


def test_audio_only_visit_gets_audio_and_sends_it(worker):
    async def scenario():
        async with Caller(worker, "room-d", "practitioner") as doc, \
                Caller(worker, "room-d", "patient", video=False) as pat:
            await asyncio.gather(doc.call(), pat.call())
            await pat.wait_frames(audio=20, video=0)
            await doc.wait_frames(audio=20, video=0)
            assert pat.frames["video"] == 0
    asyncio.run(scenario())


def test_after_calls_end_the_worker_holds_no_room_participant_connection_or_task():
    """What a leak would keep: rooms, participants, peer connections, their tasks."""
    relay = start_embedded(SECRET, host_addresses=["127.0.0.1"], stats_interval=0.5)

    def worker_tasks() -> int:
        async def count():
            return len(asyncio.all_tasks())
        return asyncio.run_coroutine_threadsafe(count(), relay._loop).result(5)

    async def scenario():
        for room in ("room-e1", "room-e2"):
            async with Caller(relay.url, room, "practitioner") as doc, \
                    Caller(relay.url, room, "patient") as pat:
                await asyncio.gather(doc.call(), pat.call())
                await asyncio.gather(doc.wait_frames(audio=10, video=5), pat.wait_frames(audio=10, video=5))
                assert relay.worker.snapshot() == {"rooms": 1, "participants": 2, "peer_connections": 2}
                await pat.send(p.Bye())
                await doc.wait_for(lambda m: m == p.PeerState("patient", "left"))

    try:
        idle = worker_tasks()
        asyncio.run(scenario())
        deadline = time.monotonic() + 5
        while relay.worker.snapshot() != {"rooms": 0, "participants": 0, "peer_connections": 0} \
                or worker_tasks() > idle:
            assert time.monotonic() < deadline, (relay.worker.snapshot(), worker_tasks(), idle)
            time.sleep(0.05)
    finally:
        relay.stop()


def test_a_participant_whose_media_stops_is_reported_lost_then_back(worker):
    """A phone in a tunnel closes nothing: the other side hears within 5 s that media stopped."""
    async def scenario():
        async with Caller(worker, "room-f", "practitioner") as doc, \
                Caller(worker, "room-f", "patient") as pat:
            await asyncio.gather(doc.call(), pat.call())
            await doc.wait_frames(audio=20, video=10)
            transport = next(s.transport for s in pat.pc.getSenders())

            async def tunnel(data: bytes) -> None:      # nothing leaves the phone; ICE stays up
                pass
            transport._send_rtp = tunnel
            stopped = time.monotonic()
            await doc.wait_for(lambda m: m == p.PeerState("patient", "lost"), timeout=5)
            assert 2.5 < time.monotonic() - stopped < 5
            assert p.PeerState("practitioner", "lost") not in doc.messages   # its own media flowed on
            seen = len(doc.messages)
            del transport._send_rtp                      # out of the tunnel
            deadline = time.monotonic() + 3
            while p.PeerState("patient", "connected") not in doc.messages[seen:]:
                assert time.monotonic() < deadline, doc.messages[seen:]
                await asyncio.sleep(0.05)
            # Sound at once; the picture waits for the worker's reassembly to give up on the gap
            # (forward.py, issue 15: 7 s here before its bounded wait).
            await doc.wait_frames(audio=10, video=0, timeout=3)
    asyncio.run(scenario())
