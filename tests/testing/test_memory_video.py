"""Video in memory: MemoryRoom forwards whole pictures, so a vision agent's logic can be tested
without a server (issue 23, item 3): unchanged adapter Rooms publish with `VideoSource` and
read with `VideoStream`, on a virtual clock."""

from __future__ import annotations

import anyio
import anyio.to_thread
import pytest
import trio
import trio.testing

from harness.media import threaded_subscribed
from harness.recorder import Recorder
from harness.video import COLOURS, centre, near, solid
from lkproto.transports import threaded
from lkproto.transports.anyio import (
    LocalVideoTrack,
    Room,
    TrackPublishOptions,
    TrackSource,
    VideoBufferType,
    VideoSource,
    VideoStream,
)
from lkproto.transports.testing import MemoryServer, VirtualTimeLoop

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> object:
    if request.param == "asyncio":
        return ("asyncio", {"loop_factory": VirtualTimeLoop})
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


async def test_pictures_flow_between_rooms_in_rgba_and_i420() -> None:
    async with MemoryServer(update_interval=0) as server:
        alice, bob = Room(), Room()
        seen = Recorder(bob, "track_subscribed", "track_unsubscribed")
        await alice.connect(server.url, server.token("alice"))
        await bob.connect(server.url, server.token("bob"))
        source = VideoSource(64, 36, is_screencast=True)
        track = LocalVideoTrack.create_video_track("screen", source)
        publication = await alice.local_participant.publish_track(track, TrackPublishOptions())
        assert publication.source == TrackSource.SOURCE_SCREENSHARE
        assert (publication.width, publication.height) == (64, 36)
        subscribed = await seen.wait_for(lambda: seen.of("track_subscribed"))
        remote, remote_publication, _ = subscribed[0]
        assert remote_publication.kind == remote.kind
        rgba = VideoStream(remote, format=VideoBufferType.RGBA)
        i420 = VideoStream.from_participant(
            participant=bob.remote_participants["alice"],
            track_source=TrackSource.SOURCE_SCREENSHARE,
        )
        got: dict[str, list[tuple[int, int, int]]] = {"rgba": [], "i420": []}

        async def read(stream: VideoStream, name: str) -> None:
            async for event in stream:
                frame = event.frame
                assert (frame.width, frame.height) == (64, 36)
                got[name].append(centre(frame))
                if len(got[name]) == 3:
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(read, rgba, "rgba")
            tg.start_soon(read, i420, "i420")
            for n in range(3):
                source.capture_frame(solid(64, 36, COLOURS[n]), timestamp_us=n)
                await anyio.sleep(0.1)
        for name in ("rgba", "i420"):
            for colour, expected in zip(got[name], COLOURS, strict=False):
                assert max(abs(a - b) for a, b in zip(colour, expected, strict=True)) <= 12, got
        await rgba.aclose()
        await alice.disconnect()
        await bob.disconnect()


def test_the_threaded_adapter_carries_video_in_memory() -> None:
    async def main() -> None:
        async with MemoryServer(update_interval=0) as server:
            url, alice_token, bob_token = server.url, server.token("alice"), server.token("bob")

            def work() -> list[tuple[int, int, int]]:
                source = threaded.VideoSource(32, 18)
                track = threaded.LocalVideoTrack.create_video_track("cam", source)
                with threaded_subscribed(url, alice_token, bob_token, track) as remote:
                    stream = threaded.VideoStream(remote, format=threaded.VideoBufferType.RGB24)
                    seen: list[tuple[int, int, int]] = []
                    for n in range(3):
                        source.capture_frame(solid(32, 18, COLOURS[n]))
                        event = next(stream.frames(timeout=5))
                        seen.append(centre(event.frame))
                    stream.close()
                    return seen

            seen = await anyio.to_thread.run_sync(work)
            assert all(near(c, e) for c, e in zip(seen, COLOURS, strict=False)), seen

    anyio.run(main)
