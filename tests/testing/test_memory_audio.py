"""Audio in memory: MemoryRoom signals media tracks as livekit-server does and forwards whole
frames, so an agent's audio logic can be tested without a server (issue 20, item 3).

Through the memory transport, unchanged adapter Rooms publish and read audio with the
`livekit.rtc` objects, on a virtual clock (seconds of audio in milliseconds); the driven
MemoryRoom (no adapter) carries frames between raw `Connection`s.
"""

from __future__ import annotations

import time

import anyio
import pytest
import trio
import trio.testing

from harness.audio import Capture, frames
from harness.media import threaded_subscribed
from harness.recorder import Recorder
from lkproto import Config
from lkproto import events as ev
from lkproto.testing import MemoryRoom
from lkproto.tracks import TrackKind
from lkproto.transports import threaded
from lkproto.transports.anyio import (
    AudioFrame,
    AudioSource,
    AudioStream,
    LocalAudioTrack,
    PublishTrackError,
    Room,
)
from lkproto.transports.testing import MemoryServer, VirtualTimeLoop

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> object:
    if request.param == "asyncio":
        return ("asyncio", {"loop_factory": VirtualTimeLoop})
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


async def play(source: AudioSource, freq: float, seconds: float) -> None:
    rate, channels = source.sample_rate, source.num_channels
    for chunk in frames(freq, rate, channels, seconds):
        await source.capture_frame(AudioFrame(chunk, rate, channels, rate // 50))
    await source.wait_for_playout()


async def test_audio_flows_between_rooms_with_the_official_events() -> None:
    real = time.monotonic()
    async with MemoryServer(update_interval=0) as server:
        alice, bob = Room(), Room()
        heard, mono = Capture(), Capture()
        seen = Recorder(
            bob,
            "track_published",
            "track_subscribed",
            "track_muted",
            "track_unmuted",
            "track_unsubscribed",
            "track_unpublished",
        )
        ours = Recorder(
            alice, "local_track_published", "local_track_subscribed", "local_track_unpublished"
        )
        await alice.connect(server.url, server.token("alice"))
        await bob.connect(server.url, server.token("bob"))
        source = AudioSource(16000, 1)
        track = LocalAudioTrack.create_audio_track("mic", source)
        publication = await alice.local_participant.publish_track(track)
        subscribed = await seen.wait_for(lambda: seen.of("track_subscribed"))
        remote, remote_publication, participant = subscribed[0]
        assert participant.identity == "alice" and remote.sid == publication.sid
        assert seen.of("track_published") == [(remote_publication, participant)]
        await publication.wait_for_subscription()
        assert ours.of("local_track_subscribed") == [(track,)]

        stereo = AudioStream(remote, sample_rate=48000, num_channels=2)
        low = AudioStream.from_participant(
            participant=participant, track_source=remote_publication.source, sample_rate=16000
        )

        async def read(stream: AudioStream, capture: Capture) -> None:
            async for event in stream:
                capture.add(
                    bytes(event.frame.data), event.frame.sample_rate, event.frame.num_channels
                )

        async with anyio.create_task_group() as tg:
            tg.start_soon(read, stereo, heard)
            tg.start_soon(read, low, mono)
            await play(source, 440, 2.0)
            track.mute()
            await seen.wait_for(lambda: seen.of("track_muted"))
            await play(source, 440, 1.0)  # muted: the room forwards nothing
            track.unmute()
            await seen.wait_for(lambda: seen.of("track_unmuted"))
            await alice.local_participant.unpublish_track(publication.sid)
            await seen.wait_for(lambda: seen.of("track_unpublished"))
            await low.aclose()  # it follows alice's microphone until she leaves: ours to end
        # The track's own stream ended with it.
        assert [args[0] for args in seen.of("track_unsubscribed")] == [remote]
        assert ours.of("local_track_unpublished") == [(publication,)]
        await alice.disconnect()
        await bob.disconnect()
        for capture, rate, channels in ((heard, 48000, 2), (mono, 16000, 1)):
            assert (capture.rate, capture.channels) == (rate, channels)
            assert 1.8 <= capture.loud_seconds() <= 2.1, capture.summary()
            assert abs(capture.frequency() - 440) <= 5, capture.summary()
    assert time.monotonic() - real < 20


async def test_publishing_without_can_publish_is_refused_as_by_the_server() -> None:
    async with MemoryServer() as server:
        room = Room()
        await room.connect(server.url, server.token("viewer", can_publish=False))
        with pytest.raises(PublishTrackError, match="refused by the memory room"):
            source = AudioSource(48000, 1)
            await room.local_participant.publish_track(
                LocalAudioTrack.create_audio_track("m", source)
            )
        await room.disconnect()


def test_the_threaded_adapter_carries_audio_in_memory() -> None:
    async def main() -> None:
        async with MemoryServer(update_interval=0) as server:
            url, alice_token, bob_token = server.url, server.token("alice"), server.token("bob")

            def work() -> tuple[float, float]:
                heard = Capture()
                source = threaded.AudioSource(48000, 1)
                track = threaded.LocalAudioTrack.create_audio_track("mic", source)
                with threaded_subscribed(url, alice_token, bob_token, track) as remote:
                    stream = threaded.AudioStream(remote)
                    for chunk in frames(700, 48000, 1, 1.0):
                        source.capture_frame(threaded.AudioFrame(chunk, 48000, 1, 960))
                    source.wait_for_playout(timeout=10)
                    for event in stream.frames(timeout=0.5):
                        heard.add(bytes(event.frame.data), 48000, 1)
                        if heard.frames >= 45:
                            break
                    stream.close()
                return heard.loud_seconds(), heard.frequency()

            loud, freq = await anyio.to_thread.run_sync(work)
            assert loud >= 0.8 and abs(freq - 700) <= 5

    anyio.run(main)


def test_a_memory_room_forwards_frames_between_connections() -> None:
    room = MemoryRoom(update_interval=0)
    config = Config(auto_subscribe=True)
    alice = room.join("alice", config=config)
    room.join("bob", config=config)
    carol = room.join("carol", config=Config(auto_subscribe=False))
    room.advance(1)
    cid = alice.publish_track(TrackKind.AUDIO, name="mic", now=room.now)
    room.run_until_idle()
    published = [e for e in room.events("alice") if isinstance(e, ev.LocalTrackPublished)]
    sid = published[0].info.sid
    assert [type(e) for e in room.events("bob") if isinstance(e, ev.TrackSubscribed)] == [
        ev.TrackSubscribed
    ]
    room.send_media("alice", cid, b"frame-1")
    assert room.media("bob") == [(sid, b"frame-1")]
    assert room.media("carol") == []  # not subscribed (no auto-subscribe)
    carol.set_track_subscribed(sid, True, now=room.now)
    room.run_until_idle()
    room.send_media("alice", cid, b"frame-2")
    assert room.media("carol") == [(sid, b"frame-2")]
    alice.set_track_muted(cid, True, now=room.now)
    room.run_until_idle()
    room.send_media("alice", cid, b"muted")
    assert room.media("bob") == [(sid, b"frame-2")] and room.media("carol") == []
