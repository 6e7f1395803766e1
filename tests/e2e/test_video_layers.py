"""Video beyond the per-adapter proofs (issue 23), on the anyio adapter only (the machinery is
the adapters' shared code): H.264 on request, the server's layers chosen with
`UpdateTrackSettings` (`set_video_dimensions`, `set_video_quality`), and a late joiner that
receives two video tracks at once (two receivers of one kind: MAX_BUNDLE and the SSRC
refresh, F3.2/F8.1, with video's RTX)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from harness.audio import track_events
from harness.official import OfficialLoop, OfficialPeer
from harness.recorder import Recorder
from harness.video import (
    Seen,
    official_publish_video,
    official_video_reader,
    play_pattern,
    publish_video,
    watching,
)
from lkproto.models import SimulateScenario
from lkproto.transports.anyio import (
    Room,
    RoomOptions,
    RtcConfiguration,
    VideoBufferType,
    VideoCodec,
    VideoEncoding,
    VideoQuality,
    VideoSource,
    VideoStream,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture
def options(confinement: Any) -> RoomOptions:
    return RoomOptions(rtc_config=RtcConfiguration(host_addresses=[confinement.host]))


async def test_h264_on_request_reaches_the_official_sdk(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    seen: dict[str, Seen] = {}
    peer = OfficialPeer(official_loop)
    track_events(peer)
    peer.on_room.append(lambda room: official_video_reader(room, seen, "lk"))
    await peer.connect(livekit_server.url, make_token("official"), auto_subscribe=True)
    room = Room()
    try:
        await room.connect(livekit_server.url, make_token("lk"), options)
        source = VideoSource(640, 360)
        encoding = VideoEncoding(max_bitrate=1_000_000, max_framerate=15)
        publication = await publish_video(
            room, source, video_codec=VideoCodec.H264, video_encoding=encoding
        )
        await peer.wait_for(lambda r: ("track_subscribed", ("lk", publication.sid)) in r)
        await play_pattern(room, source, 3.0)
        await anyio.sleep(0.5)
        print(seen[publication.sid].check_pattern(15, 3.0, size=(640, 360)))
        mime = await peer.do(lambda r: _mime(r, publication.sid))
        assert mime.lower() == "video/h264", mime
    finally:
        await room.disconnect()
        await peer.disconnect()


async def _mime(room: Any, sid: str) -> str:
    return str(room.remote_participants["lk"].track_publications[sid].mime_type)


async def test_the_server_sends_the_layer_asked_for(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    room = Room()
    events = Recorder(room, "track_subscribed")
    peer = OfficialPeer(official_loop)
    try:
        await room.connect(livekit_server.url, make_token("lk"), options)
        await peer.connect(livekit_server.url, make_token("official"))
        # livekit.rtc publishes 1280x720 with simulcast: layers 320x180, 640x360, 1280x720.
        await peer.do(lambda r: official_publish_video(r, 30.0, size=(1280, 720)))
        (track, publication, _) = (await events.wait_for(lambda: events.of("track_subscribed")))[0]
        assert publication.simulcasted and (publication.width, publication.height) == (1280, 720)
        sizes = Seen()
        async with watching(room, VideoStream(track, format=VideoBufferType.I420), sizes):
            await _wait_for_size(sizes, (1280, 720))
            publication.set_video_dimensions(320, 180)
            await _wait_for_size(sizes, (320, 180))
            publication.set_video_quality(VideoQuality.VIDEO_QUALITY_MEDIUM)
            await _wait_for_size(sizes, (640, 360))
        frames = sizes.snapshot()
        assert sizes.runs()[1] <= 0.1 * len(frames), sizes.runs()  # every layer shows the colour
    finally:
        await room.disconnect()
        await peer.disconnect()


async def _wait_for_size(seen: Seen, size: tuple[int, int]) -> None:
    with anyio.fail_after(10):
        while not any((w, h) == size for w, h, _ in seen.snapshot()[-3:]):
            await anyio.sleep(0.1)


async def test_a_late_joiner_receives_two_video_tracks_at_once(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    a = OfficialPeer(official_loop)
    b = OfficialPeer(official_loop)
    await a.connect(livekit_server.url, make_token("official-a"))
    await b.connect(livekit_server.url, make_token("official-b"))
    await a.do(lambda r: official_publish_video(r, 30.0))
    await b.do(lambda r: official_publish_video(r, 30.0))
    room = Room()
    events = Recorder(room, "track_subscribed")
    try:
        await room.connect(livekit_server.url, make_token("lk"), options)
        subscribed = await events.wait_for(
            lambda: len(events.of("track_subscribed")) >= 2 and events.of("track_subscribed")
        )
        seen = {p.identity: Seen() for _, _, p in subscribed}
        tracks = {p.identity: t for t, _, p in subscribed}
        async with (
            watching(room, VideoStream(tracks["official-a"]), seen["official-a"]),
            watching(room, VideoStream(tracks["official-b"]), seen["official-b"]),
        ):
            await anyio.sleep(1.0)
            for got in seen.values():
                got.clear()
            await anyio.sleep(3.0)
        for got in seen.values():
            print(got.check_pattern(15, 3.0, size=(640, 360)))
    finally:
        await room.disconnect()
        await a.disconnect()
        await b.disconnect()


async def test_a_full_reconnect_republishes_video_and_rpc_works_beside_it(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    seen: dict[str, Seen] = {}
    peer = OfficialPeer(official_loop)
    track_events(peer)
    peer.on_room.append(lambda room: official_video_reader(room, seen, "lk"))
    await peer.connect(livekit_server.url, make_token("official"), auto_subscribe=True)
    await peer.do(_serve_rpc)
    room = Room()
    events = Recorder(room, "reconnected", "local_track_republished")
    try:
        await room.connect(livekit_server.url, make_token("lk"), options)
        source = VideoSource(640, 360)
        publication = await publish_video(room, source)
        old = publication.sid
        await peer.wait_for(lambda r: ("track_subscribed", ("lk", old)) in r)
        async with anyio.create_task_group() as tg:
            tg.start_soon(play_pattern, room, source, 12.0)
            answer = await room.local_participant.perform_rpc(
                destination_identity="official", method="echo", payload="ping"
            )
            assert answer == "ping"
            await room.simulate_scenario(SimulateScenario.FULL_RECONNECT)
            await events.wait_for(lambda: events.of("reconnected"))
            republished = await events.wait_for(lambda: events.of("local_track_republished"))
            assert republished == [(publication, old)] and publication.sid != old  # F5.2
            await peer.wait_for(
                lambda r: ("track_subscribed", ("lk", publication.sid)) in r, timeout=20
            )
            await anyio.sleep(1.0)  # the first keyframe
            seen[publication.sid].clear()
            await anyio.sleep(3.0)
            tg.cancel_scope.cancel()
        print(seen[publication.sid].check_pattern(15, 3.0, size=(640, 360)))
    finally:
        await room.disconnect()
        await peer.disconnect()


async def _serve_rpc(room: Any) -> None:
    async def echo(data: Any) -> str:
        return str(data.payload)

    room.local_participant.register_rpc_method("echo", echo)
