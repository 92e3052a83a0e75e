"""Media through a real worker process on 127.0.0.1: forwarded, never decoded or encoded."""
import asyncio

import pytest

from webapp.relay import protocol as p
from webapp.relay.ice import use_host_addresses
from tests.relay_helpers import CODEC_USED, Caller, start_worker_process, stop_worker_process


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
            print(stats, doc.frames, pat.frames, doc.sizes)
    asyncio.run(scenario())
