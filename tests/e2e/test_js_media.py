"""Audio, video, data tracks and end-to-end encryption between lkproto and the JavaScript
reference client, `livekit-client` 2.23.0 in headless Chromium, proven by content.

The JS participant is a page of a browser shared by the module (harness/jspeer.py; a
module-scoped fixture is per module, so this module starts its own Chromium, about a second;
the "js-peer" group keeps the module on one worker, one test at a time), driven
through peers/js/src/page.ts. Every test runs once per lkproto adapter (harness/adapters.py)
and checks both directions:
- audio: a tone each way, at a frequency of its own. The page reads the PCM a remote track
  decodes to (Chromium's MediaStreamTrackProcessor) and the harness measures it as it
  measures the official SDK's (harness/audio.py `Capture`). Chromium delivered no audio to
  that reader until the track was also attached to an <audio> element (played out into the
  headless browser's fake output), so the page attaches it. The page's tone is a WebAudio
  OscillatorNode published as a microphone track;
- video: a 640x360 pattern whose colour changes every second, each way (harness/video.py
  `Seen.check_pattern`: sizes, frame count, colours in order). The page publishes a canvas's
  `captureStream` (VP8, one layer, `maintain-resolution`) and reads each decoded picture's
  size and centre colour; what lkproto reads of the canvas is shifted in colour
  (`as_lkproto_sees_a_canvas`);
- data tracks: frames of one packet, a near-full packet and three packets, with user
  timestamps, exact bytes; unpublishing ends the other side's stream;
- end-to-end encryption with one shared passphrase (PBKDF2 on both sides): data packets, a
  text stream, RPC and data-track frames, both ways; a participant without the key sees
  only encrypted envelopes. (lkproto encrypts no media: with encryption on it refuses to
  publish a track, so there is no encrypted media to test.)

Measurement windows are wall-time sleeps (media is real time); everything else waits on
events. The tests are not marked `heavy`: their `xdist_group` already runs them one at a
time (harness/phases.py), beside at most the two heavy lanes.

livekit-client's own behaviour, as asserted here: it reports our encrypted packets'
encryption type as 1 (GCM) and sends its own envelopes with `encryption_type` 0 (which
lkproto accepts: it goes by the presence of `encrypted_packet`); in an encrypted room it
publishes its data tracks with `uses_e2ee`, as lkproto does.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

# Every test runs once per adapter (anyio on asyncio and on trio, trio-native, threaded): the
# fixtures swap this module's `Room` for the adapter under test. See harness/adapters.py.
from harness.adapters import adapter, adapter_room, anyio_backend  # noqa: F401
from harness.audio import Capture
from harness.jspeer import JsBrowser, JsPeer, browser_fixture
from harness.media import media_for
from harness.recorder import Recorder
from harness.taps import FrameReader, eavesdropper, envelopes
from harness.video import (
    COLOURS,
    Seen,
    fill_window,
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
    RpcInvocationData,
    RtcConfiguration,
    TextStreamReader,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.anyio,
    pytest.mark.timeout(60),
    pytest.mark.xdist_group("js-peer"),  # the module on one worker, one browser
]

LK, JS = "lk", "js"
KEY = "lkproto and livekit-client share this passphrase"
FRAME_SIZES = (100, 8 * 1024, 40_000)  # one packet, one near-full packet, three packets
TS0 = 1_700_000_000_000  # user timestamps: unix milliseconds, as the SDKs use them


browser = browser_fixture("js-media")


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
    """A fresh window of at least `seconds` on `capture`, extended (by up to 8 s, free when
    the tone is heard: it plays on) until it was loud for `loud` seconds (test_audio.py)."""
    capture.clear()
    await anyio.sleep(seconds)
    with anyio.move_on_after(8.0):
        while capture.loud_seconds() < loud:
            await anyio.sleep(0.1)


async def test_a_tone_each_way_is_heard_at_its_frequency(session: Any) -> None:
    room = Room()
    media = media_for(room)
    events = Recorder(room, "track_subscribed", "track_unpublished")
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
        subscribed = await events.wait_for(lambda: events.of("track_subscribed"))
        (track, pub, participant) = subscribed[0]
        assert (pub.sid, pub.name, participant.identity) == (js_sid, "js-tone", JS)
        async with media.recording(media.stream(track, 48000, 1), ours):
            await hear(1.0, ours, loud=0.8)
        assert ours.loud_seconds() >= 0.8, ours.summary()
        assert abs(ours.frequency() - 660) <= 5, ours.summary()

        # Each side unpublishes; the other sees it.
        await media.unpublish(sid)
        await js.wait_for(record("track_unpublished", LK, sid))
        await js.unpublish_track(js_sid)
        gone = await events.wait_for(lambda: events.of("track_unpublished"))
        assert gone == [(pub, participant)]
        assert room.remote_participants[JS].track_publications == {}


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
            tg.start_soon(play_pattern, room, source, 20.0)
            await js.wait_for(record("track_subscribed", LK, sid, "video", "lk-cam"))
            with anyio.fail_after(5):  # the first keyframe
                while not await js.video(sid):
                    await anyio.sleep(0.1)
            await js.clear_media(sid)
            await fill_window(lambda: js.video(sid), 15, 3.0)
            seen = Seen()
            seen.frames = await js.video(sid)
            tg.cancel_scope.cancel()  # the pattern was played long enough for any window
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
            await fill_window(ours.snapshot, 15, 3.0)
        palette = tuple(as_lkproto_sees_a_canvas(c) for c in COLOURS)
        print(ours.check_pattern(15, 3.0, size=(640, 360), palette=palette))


# -- data tracks ---------------------------------------------------------------------------------


def frame_payload(size: int, n: int, sender: str) -> bytes:
    head = f"{sender} frame {size}/{n}/".encode()
    return (head + bytes(range(256)) * (size // 256 + 1))[:size]


def js_frames(js: JsPeer, sid: str) -> list[tuple[bytes, int | None]]:
    return [(data, ts) for frame_sid, data, ts in js.of("data_track_frame") if frame_sid == sid]


async def js_has(js: JsPeer, predicate: Callable[[], bool], timeout: float) -> bool:
    try:
        await js.wait_for(lambda _: predicate() or None, timeout=timeout)
    except TimeoutError:
        return False
    return True


async def data_tracks_both_ways(js: JsPeer, room: Room, encrypted: bool) -> None:
    """Each side publishes a data track and the other reads frames of every size in
    `FRAME_SIZES` exactly (bytes and user timestamp). Frames are lossy: each size is pushed
    until one of it arrives (the first ones also wait for the subscription to be in place).
    Then each side unpublishes, and the other's stream ends."""
    seen = Recorder(room, "data_track_published", "data_track_unpublished")
    # lkproto publishes; JS subscribes.
    track = await room.local_participant.publish_data_track(name="lk-sensor")
    sid = track.info.sid
    assert sid.startswith("DTR_") and track.info.uses_e2ee is encrypted
    await js.wait_for(record("data_track_published", sid, "lk-sensor", LK, encrypted))
    await js.subscribe_data_track(sid)
    sent: dict[bytes, int] = {}
    for size in FRAME_SIZES:
        for n in range(60):
            data = frame_payload(size, n, LK)
            sent[data] = TS0 + n
            track.try_push(lk_frame(room, data, TS0 + n))
            arrived = lambda size=size: size in {len(p) for p, _ in js_frames(js, sid)}  # noqa: E731
            if await js_has(js, arrived, 0.3):
                break
    got = js_frames(js, sid)
    assert {len(p) for p, _ in got} == set(FRAME_SIZES), "a size never arrived"
    assert len(got) == len({p for p, _ in got}), "a frame arrived twice"
    assert [(len(p), ts) for p, ts in got if sent.get(p) != ts] == [], "not as sent"
    await track.unpublish()
    await js.wait_for(record("data_track_unpublished", sid))
    await js.wait_for(record("data_track_ended", sid, None))

    # JS publishes; lkproto subscribes.
    js_sid, uses_e2ee = await js.publish_data_track("js-sensor")
    assert js_sid.startswith("DTR_") and uses_e2ee is encrypted
    (remote,) = (await seen.wait_for(lambda: seen.of("data_track_published")))[0]
    assert (remote.info.sid, remote.info.name, remote.publisher_identity) == (
        js_sid,
        "js-sensor",
        JS,
    )
    assert remote.info.uses_e2ee is encrypted
    reader = FrameReader(remote.subscribe(buffer_size=64))
    theirs: dict[bytes, int] = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(reader.run)
        for size in FRAME_SIZES:
            for n in range(60):
                data = frame_payload(size, n, JS)
                theirs[data] = TS0 + n
                assert await js.push_data_frame(js_sid, data, TS0 + n) is None
                if await reader.within(
                    lambda size=size: size in {len(f.payload) for f in reader.frames}, 0.3
                ):
                    break
        frames = [(bytes(f.payload), f.user_timestamp) for f in reader.frames]
        assert {len(p) for p, _ in frames} == set(FRAME_SIZES), "a size never arrived"
        assert len(frames) == len({p for p, _ in frames}), "a frame arrived twice"
        assert [(len(p), ts) for p, ts in frames if theirs.get(p) != ts] == [], "not as sent"
        await js.unpublish_data_track(js_sid)
        assert (await seen.wait_for(lambda: seen.of("data_track_unpublished"))) == [(js_sid,)]
        with anyio.fail_after(10):
            await reader.ended.wait()


def lk_frame(room: Room, data: bytes, user_timestamp: int) -> Any:
    return lk_module(room).DataTrackFrame(data, user_timestamp=user_timestamp)


async def test_data_track_frames_of_every_size_cross_both_ways_exactly(session: Any) -> None:
    room = Room()
    async with session(room) as (js, room):
        await data_tracks_both_ways(js, room, encrypted=False)


# -- end-to-end encryption -----------------------------------------------------------------------


@pytest.mark.timeout(90)
async def test_encrypted_data_text_rpc_and_data_tracks_both_ways_and_eve_reads_none(
    session: Any, livekit_server: Any, make_token: Any, confinement: Any
) -> None:
    room = Room()
    inbox: list[tuple[Any, ...]] = []
    changed = anyio.Event()

    def add(*item: Any) -> None:
        inbox.append(item)
        changed.set()

    async def on_text(reader: TextStreamReader, identity: str) -> None:
        add("text", identity, reader.info.topic, await reader.read_all())

    def echo(data: RpcInvocationData) -> str:
        add("rpc", data.caller_identity, data.payload)
        return "lk echoes " + data.payload

    room.register_text_stream_handler("secret-text", on_text)
    room.local_participant.register_rpc_method("echo", echo)
    room.on("data_received", lambda p: add("data", p.participant.identity, p.data, p.topic))
    secrets = {
        LK: ("lk's secret packet ✓", "lk's secret text 😀"),
        JS: ("js's secret packet ✓", "js's secret text 😀"),
    }
    async with session(room, key=KEY) as (js, room):
        await js.on_text("secret-text")
        await js.register_rpc("echo", prefix="js echoes ")
        eve, raw = await eavesdropper(livekit_server.url, make_token("eve"), confinement.host)
        try:
            await js.wait_for(record("participant_connected", "eve"))
            me = room.local_participant
            # lkproto -> JS: a packet, a text stream, an RPC.
            await me.publish_data(secrets[LK][0].encode(), topic="secret")
            await me.send_text(secrets[LK][1], topic="secret-text")
            with anyio.fail_after(30):
                reply = await me.perform_rpc(
                    destination_identity=JS, method="echo", payload="lk's secret call"
                )
            assert reply == "js echoes lk's secret call"
            # (livekit-client reports our envelope's encryption type: 1, GCM.)
            await js.wait_for(record("data", LK, secrets[LK][0].encode(), "secret", "reliable", 1))
            (text,) = await js.wait_for(lambda r: [a for n, a in r if n == "text"])
            assert text[:4] == (LK, "secret-text", {}, secrets[LK][1])
            # (The page reports an invocation asynchronously: it may come after the reply.)
            await js.wait_for(record("rpc_invoked", "echo", LK, "lk's secret call", 15000))

            # JS -> lkproto, the same three.
            await js.publish_data(secrets[JS][0].encode(), topic="secret")
            await js.send_text(secrets[JS][1], topic="secret-text")
            assert await js.perform_rpc(LK, "echo", "js's secret call") == (
                "lk echoes js's secret call",
                None,
            )
            with anyio.fail_after(15):
                while len(inbox) < 3:
                    changed = anyio.Event()
                    await changed.wait()
            assert sorted(inbox, key=repr) == sorted(
                [
                    ("data", JS, secrets[JS][0].encode(), "secret"),
                    ("text", JS, "secret-text", secrets[JS][1]),
                    ("rpc", JS, "js's secret call"),
                ],
                key=repr,
            )

            # Eve got each sender's two broadcasts (the packet; the text stream, one packet:
            # both sides speak data streams v2, whose header carries a short text inline),
            # each an encrypted envelope, with none of the plaintext. (The RPCs are
            # addressed, so the server never forwards them to her.) livekit-client leaves the
            # envelope's encryption_type unset (0, NONE); lkproto says GCM (1).
            with anyio.fail_after(10):
                while not all(len(envelopes(raw).get(who, [])) >= 2 for who in (LK, JS)):
                    await anyio.sleep(0.05)
            seen = envelopes(raw)
            assert {who: len(packets) for who, packets in seen.items()} == {LK: 2, JS: 2}
            for who, expected_type in ((LK, 1), (JS, 0)):
                kinds = {p.WhichOneof("value") for p in seen[who]}
                assert kinds == {"encrypted_packet"}, (who, kinds)
                types = {p.encrypted_packet.encryption_type for p in seen[who]}
                assert types == {expected_type}, (who, types)
            everything = b"".join(raw)
            plain = [t.encode() for pair in secrets.values() for t in pair]
            assert [p for p in plain if p in everything] == []
        finally:
            await eve.disconnect()

        # Data tracks: each side's is published encrypted (`uses_e2ee`) and read exactly.
        await data_tracks_both_ways(js, room, encrypted=True)
        assert js.of("encryption_error") == []
