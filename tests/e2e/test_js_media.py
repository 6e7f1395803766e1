"""Audio, video, data tracks and end-to-end encryption between lkproto and the JavaScript
reference client, `livekit-client` 2.23.0 in headless Chromium, proven by content.

The JS participant is a page of one browser shared by the module (harness/jspeer.py; the
tests run one at a time on the worker of the "js-peer" group, like test_js_interop.py), driven
through peers/js/src/page.ts. Every test runs once per lkproto adapter (harness/adapters.py)
and checks both directions:
- audio: a tone each way, at a frequency of its own; the page reads the PCM a remote track
  decodes to (Chromium's MediaStreamTrackProcessor, no element or WebAudio graph) and the
  harness measures it as it measures the official SDK's (harness/audio.py `Capture`); the
  page's tone is a WebAudio OscillatorNode published as a microphone track;
- video: a 640x360 pattern whose colour changes every second, each way; the page publishes
  a canvas's `captureStream` (VP8, one layer, resolution kept) and reads each decoded
  picture's size and centre colour (harness/video.py `Seen.check_pattern`);
- data tracks: frames of one packet and of several, with user timestamps, exact bytes;
- end-to-end encryption with one shared passphrase (PBKDF2 on both sides): data packets, a
  text stream, RPC and data-track frames, both ways.

Measurement windows are wall-time sleeps (media is real time); everything else waits on
events. livekit-client's own behaviour, as asserted here: it reports our encrypted packets'
encryption type as 1 (GCM) and sends its own with `encryption_type` 0 (which lkproto
accepts: it decides by the presence of `encrypted_packet`); it publishes its data tracks in
an encrypted room with `uses_e2ee`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import pytest

# Every test runs once per adapter (anyio on asyncio and on trio, trio-native, threaded): the
# fixtures swap this module's `Room` for the adapter under test. See harness/adapters.py.
from harness.adapters import adapter, adapter_room, anyio_backend  # noqa: F401
from harness.audio import Capture
from harness.jspeer import UNCONFINED, JsBrowser, JsPeer
from harness.media import media_for
from harness.recorder import Recorder
from harness.video import (
    COLOURS,
    Seen,
    lk_module,
    play_pattern,
    publish_video,
    watching,
)
from lkproto.transports.anyio import (
    E2EEOptions,
    KeyProviderOptions,
    Room,
    RoomOptions,
    RtcConfiguration,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.anyio,
    pytest.mark.timeout(60),
    pytest.mark.xdist_group("js-peer"),  # with test_js_interop.py, on one worker
]

LK, JS = "lk", "js"
KEY = "lkproto and livekit-client share this passphrase"


@pytest.fixture(scope="module")
def browser(confinement: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsBrowser]:
    """One Chromium (with its driver) for the module; killed at teardown."""
    if confinement.mode != "netns":
        pytest.skip(UNCONFINED)
    log = tmp_path_factory.mktemp("js-media") / "driver.log"
    js = JsBrowser.start(confinement, log)
    try:
        yield js
    finally:
        js.close()


@pytest.fixture
def session(
    livekit_server: Any, make_token: Any, confinement: Any, browser: JsBrowser
) -> Callable[..., contextlib.AbstractAsyncContextManager[tuple[JsPeer, Room]]]:
    """`async with session(room, key=None)`: the JS peer joins first (subscribing to what we
    publish), then our `room` (auto-subscribing), both encrypted under `key` if given. Both
    leave, and the page closes, on exit; the page must have raised nothing."""

    @contextlib.asynccontextmanager
    async def open_session(
        room: Room, key: str | None = None
    ) -> AsyncIterator[tuple[JsPeer, Room]]:
        encryption = (
            None if key is None else E2EEOptions(KeyProviderOptions(shared_key=key.encode()))
        )
        options = RoomOptions(
            rtc_config=RtcConfiguration(host_addresses=[confinement.host]), encryption=encryption
        )
        js = await browser.open()
        try:
            token = make_token(JS)
            assert (
                await js.connect(livekit_server.url, token, auto_subscribe=True, e2ee_key=key) == []
            )
            await room.connect(livekit_server.url, make_token(LK), options)
            assert list(room.remote_participants) == [JS]
            yield js, room
            assert js.of("page_error") == js.of("media_error") == []
        finally:
            await room.disconnect()
            await js.close()

    return open_session


def as_lkproto_sees_a_canvas(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """A canvas colour as lkproto reads it from Chromium's `captureStream`: more saturated
    ((40, 200, 40) arrives as about (43, 242, 36)), exactly as if Chromium encoded the canvas
    as full-range BT.709 YUV (measured: within 3 of this model for every colour) and lkproto
    reads pictures as limited-range BT.601 (aiortc's decoder, then PyAV's default conversion,
    libyuv's default too). aiortc negotiates no color-space header extension, so lkproto is
    not told which the sender used."""
    r, g, b = colour
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    u, v = (b - y) / 1.8556, (r - y) / 1.5748  # full range: Y 0-255, U and V centred on 0
    c = 1.164 * (y - 16)
    out = (c + 1.596 * v, c - 0.392 * u - 0.813 * v, c + 2.017 * u)
    return tuple(int(max(0, min(255, round(x)))) for x in out)  # type: ignore[return-value]


def record(name: str, *args: object) -> Callable[[list[Any]], bool]:
    return lambda records: (name, args) in records


async def js_hears(js: JsPeer, sid: str, seconds: float, loud: float) -> Capture:
    """A fresh window of at least `seconds` on the page's reading of track `sid`, extended
    (by up to twice that) until it was loud for `loud` seconds; what it heard."""
    await js.clear_media(sid)
    await anyio.sleep(seconds)
    capture = Capture()
    with anyio.move_on_after(2 * seconds):
        while True:
            rate, frames, pcm = await js.audio(sid)
            capture = Capture()
            if rate:
                capture.add(pcm, rate, 1)
                capture.frames = frames
            if capture.loud_seconds() >= loud:
                break
            await anyio.sleep(0.2)
    return capture


async def hear(seconds: float, capture: Capture, loud: float) -> None:
    """A fresh window of at least `seconds` on `capture`, extended (by up to twice that)
    until it was loud for `loud` seconds."""
    capture.clear()
    await anyio.sleep(seconds)
    with anyio.move_on_after(2 * seconds):
        while capture.loud_seconds() < loud:
            await anyio.sleep(0.1)


@pytest.mark.heavy  # real-time media: a heavy lane (harness/phases.py)
async def test_a_tone_each_way_is_heard_at_its_frequency(session: Any) -> None:
    room = Room()
    media = media_for(room)
    events = Recorder(room, "track_subscribed")
    ours = Capture()
    async with session(room) as (js, room):
        # lkproto -> JS: 440 Hz, read by the page as PCM.
        source = media.source(48000, 1)
        publication = await media.publish(source, "lk-tone")
        sid = publication.sid
        async with media.playing(source, 440):
            await js.wait_for(record("track_subscribed", LK, sid, "audio", "lk-tone"))
            theirs = await js_hears(js, sid, 1.0, loud=0.8)
        assert theirs.loud_seconds() >= 0.8, theirs.summary()
        assert abs(theirs.frequency() - 440) <= 5, theirs.summary()

        # JS -> lkproto: 660 Hz from a WebAudio oscillator.
        js_sid = await js.publish_tone(660, "js-tone")
        assert js_sid.startswith("TR_A")
        (track, pub, participant) = (await events.wait_for(lambda: events.of("track_subscribed")))[
            0
        ]
        assert (pub.sid, pub.name, participant.identity) == (js_sid, "js-tone", JS)
        async with media.recording(media.stream(track, 48000, 1), ours):
            await hear(1.0, ours, loud=0.8)
        assert ours.loud_seconds() >= 0.8, ours.summary()
        assert abs(ours.frequency() - 660) <= 5, ours.summary()


@pytest.mark.heavy  # real-time media: a heavy lane (harness/phases.py)
async def test_a_colour_pattern_each_way_arrives_at_640x360_in_order(session: Any) -> None:
    room = Room()
    events = Recorder(room, "track_subscribed")
    ours = Seen()
    async with session(room) as (js, room):
        module = lk_module(room)
        # lkproto -> JS: the page reads each decoded picture's size and centre colour.
        source = module.VideoSource(640, 360)
        publication = await publish_video(room, source, "lk-cam")
        sid = publication.sid
        async with anyio.create_task_group() as tg:
            tg.start_soon(play_pattern, room, source, 5.0)
            await js.wait_for(record("track_subscribed", LK, sid, "video", "lk-cam"))
            with anyio.fail_after(5):  # the first keyframe
                while not await js.video(sid):
                    await anyio.sleep(0.1)
            await js.clear_media(sid)
            await anyio.sleep(3.0)
            seen = Seen()
            seen.frames = await js.video(sid)
        print(seen.check_pattern(15, 3.0, size=(640, 360)))

        # JS -> lkproto: a canvas's captureStream, one colour a second.
        js_sid = await js.publish_colours(list(COLOURS), size=(640, 360), fps=15)
        (track, pub, participant) = (await events.wait_for(lambda: events.of("track_subscribed")))[
            0
        ]
        assert (pub.sid, pub.name, participant.identity) == (js_sid, "cam", JS)
        stream = module.VideoStream(track, format=module.VideoBufferType.RGBA)
        async with watching(room, stream, ours):
            with anyio.fail_after(5):  # the first keyframe
                while not ours.snapshot():
                    await anyio.sleep(0.1)
            ours.clear()
            await anyio.sleep(3.0)
        palette = tuple(as_lkproto_sees_a_canvas(c) for c in COLOURS)
        print(ours.check_pattern(15, 3.0, size=(640, 360), palette=palette))
