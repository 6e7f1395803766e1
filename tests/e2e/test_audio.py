"""Audio tracks against the official SDK through a real livekit-server, proven by content
(issue 20): what arrives is measured (loud seconds by RMS, dominant frequency by FFT), never
counted in frames (the official `AudioStream` yields silence without RTP, findings F1.6).

Every test runs once per adapter (harness/adapters.py); the media objects of the adapter
under test come from `Media` (harness/media.py), blocking ones driven from worker threads
for the threaded adapter.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from livekit import rtc

from harness.adapters import adapter, adapter_room, anyio_backend  # noqa: F401
from harness.audio import Capture, official_publish, official_reader
from harness.media import media_for
from harness.official import OfficialLoop, OfficialPeer
from harness.recorder import Recorder
from lkproto.transports.anyio import Room, RoomOptions, RtcConfiguration

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(90)]


@pytest.fixture
def options(confinement: Any) -> RoomOptions:
    return RoomOptions(rtc_config=RtcConfiguration(host_addresses=[confinement.host]))


async def official(loop: OfficialLoop, url: str, token: str) -> OfficialPeer:
    peer = OfficialPeer(loop)
    await peer.connect(url, token, auto_subscribe=True)
    return peer


async def test_a_440_hz_tone_published_by_lkproto_reaches_the_official_sdk(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    peer = await official(official_loop, livekit_server.url, make_token("official"))
    heard = Capture()
    await peer.do(lambda r: _install_reader(r, heard, "lk"))
    room = Room()
    media = media_for(room)
    seen = Recorder(room, "local_track_published", "local_track_subscribed")
    try:
        await room.connect(livekit_server.url, make_token("lk"), options)
        source = media.source(48000, 1)
        publication = await media.publish(source, "mic")
        assert publication.sid.startswith("TR_A") and publication.name == "mic"
        await seen.wait_for(lambda: seen.of("local_track_published"))
        await media.play(source, 440, 3.0)
        await anyio.sleep(0.5)  # the tail in flight
        print("official heard", heard.summary())
        assert heard.loud_seconds() >= 0.9 * 3.0, heard.summary()
        assert abs(heard.frequency() - 440) <= 5, heard.summary()
        await seen.wait_for(lambda: seen.of("local_track_subscribed"))
    finally:
        await room.disconnect()
        await peer.disconnect()


async def _install_reader(room: rtc.Room, capture: Capture, identity: str) -> None:
    official_reader(room, capture, identity)


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (48000, 2)])
async def test_an_official_1_khz_tone_reaches_lkproto_resampled(
    livekit_server: Any,
    make_token: Any,
    options: RoomOptions,
    official_loop: OfficialLoop,
    rate: int,
    channels: int,
) -> None:
    room = Room()
    media = media_for(room)
    seen = Recorder(room, "track_subscribed")
    heard = Capture()
    peer = None
    try:
        await room.connect(livekit_server.url, make_token("lk"), options)
        peer = await official(official_loop, livekit_server.url, make_token("official"))
        await peer.do(lambda r: official_publish(r, 1000, 3.0))
        (track, publication, participant) = (
            await seen.wait_for(lambda: seen.of("track_subscribed"))
        )[0]
        assert participant.identity == "official" and publication.track is track
        await media.record(track, heard, rate, channels, seconds=2.5)
        print("lk heard", heard.summary())
        assert heard.rate == rate and heard.channels == channels
        assert heard.loud_seconds() >= 0.9 * 2.0, heard.summary()
        assert abs(heard.frequency() - 1000) <= 5, heard.summary()
    finally:
        await room.disconnect()
        if peer is not None:
            await peer.disconnect()
