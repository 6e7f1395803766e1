"""Video objects without a server (issue 23): frames and their conversions (checked against
livekit.rtc's own), the source's drop-oldest queue and rotation, the aiortc send track's
timeline, mute and frame-rate cap, and the bounded `VideoStream` of every adapter."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import attrs
import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket
from livekit import rtc

from harness.video import COLOURS, centre, near, pixels, solid
from lkproto import Config
from lkproto.models import Participant
from lkproto.tracks import TrackKind, TrackPublicationInfo, TrackSource
from lkproto.tracks import VideoQuality as CoreQuality
from lkproto.transports import _aiortc_media as am
from lkproto.transports import anyio as lk
from lkproto.transports import threaded
from lkproto.transports._media import MediaRouter, _video_options
from lkproto.transports._room import RemoteParticipant
from lkproto.transports._tracks import RemoteVideoTrack
from lkproto.transports._video import VideoBufferType as T
from lkproto.transports._video import VideoFrame, VideoRotation, to_av

INFO = TrackPublicationInfo(sid="TR_V", name="cam", kind=TrackKind.VIDEO, source=TrackSource.CAMERA)


# -- frames ----------------------------------------------------------------------------------


def test_a_video_frame_checks_its_arguments_and_exposes_its_planes() -> None:
    frame = VideoFrame(4, 2, T.I420, bytes(range(12)))
    assert (frame.width, frame.height, frame.type) == (4, 2, T.I420)
    assert bytes(frame.get_plane(0) or b"") == bytes(range(8))
    assert bytes(frame.get_plane(1) or b"") == bytes([8, 9])
    assert bytes(frame.get_plane(2) or b"") == bytes([10, 11])
    assert frame.get_plane(3) is None
    assert repr(frame) == "rtc.VideoFrame(width=4, height=2, type=I420)"
    assert VideoFrame(2, 2, rtc.VideoBufferType.RGBA, memoryview(bytes(16))).type is T.RGBA
    with pytest.raises(ValueError, match="needs 16 bytes, data has 15"):
        VideoFrame(2, 2, T.RGBA, bytes(15))
    with pytest.raises(ValueError, match="unknown VideoBufferType 99"):
        VideoFrame(2, 2, 99, bytes(16))
    with pytest.raises(TypeError, match="width must be an int"):
        VideoFrame(2.0, 2, T.RGBA, bytes(16))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="height must be 1 to 16384"):
        VideoFrame(2, 0, T.RGBA, b"")
    with pytest.raises(TypeError, match="data must be bytes-like"):
        VideoFrame(2, 2, T.RGBA, "x" * 16)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="plane_nth"):
        frame.get_plane(-1)


@pytest.mark.parametrize("target", list(T), ids=lambda t: t.name)
def test_every_layout_converts_and_comes_back(target: T) -> None:
    original = solid(33, 17, COLOURS[1])  # odd sizes: chroma planes round up
    there = original.convert(target)
    assert (there.type, there.width, there.height) == (target, 33, 17)
    back = there.convert(T.RGBA)
    assert near(centre(back), COLOURS[1]), (target, centre(back))


def test_conversions_match_livekit_rtcs_own() -> None:
    data = pixels(64, 36, COLOURS[4])
    ours = VideoFrame(64, 36, T.RGBA, data).convert(T.I420)
    theirs = rtc.VideoFrame(64, 36, rtc.VideoBufferType.RGBA, data).convert(
        rtc.VideoBufferType.I420
    )
    assert len(ours.data) == len(theirs.data)
    a = np.frombuffer(ours.data, np.uint8).astype(int)
    b = np.frombuffer(theirs.data, np.uint8).astype(int)
    assert np.abs(a - b).max() <= 3  # both BT.601 limited range
    flipped = VideoFrame(1, 2, T.RGB24, bytes([1, 2, 3, 4, 5, 6])).convert(T.RGB24, flip_y=True)
    assert bytes(flipped.data) == bytes([4, 5, 6, 1, 2, 3])
    same = ours.convert(T.I420)
    assert bytes(same.data) == bytes(ours.data) and same._data is not ours._data


# -- the source ------------------------------------------------------------------------------


def test_capture_frame_never_waits_and_drops_the_oldest() -> None:
    source = lk.VideoSource(8, 4, queue_size=2)
    for n in range(5):
        source.capture_frame(solid(8, 4, COLOURS[n]), timestamp_us=n)
    assert source.dropped_frames == 3 and len(source.queue) == 2
    kept = [source.queue.pop() for _ in range(2)]
    assert [k.timestamp_us for k in kept if k] == [3, 4]
    assert all(k and k.frame.format.name == "yuv420p" for k in kept)
    assert lk.VideoSource(8, 4).queue._items.maxlen == 2  # the default
    with pytest.raises(TypeError, match="expected a VideoFrame"):
        source.capture_frame(b"")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown rotation 7"):
        source.capture_frame(solid(8, 4, COLOURS[0]), rotation=7)
    with pytest.raises(ValueError, match="queue_size must be at least 1"):
        lk.VideoSource(8, 4, queue_size=0)
    with pytest.raises(ValueError, match="the size must be"):
        lk.VideoSource(0, 4)
    blocking = threaded.VideoSource(8, 4)
    blocking.close()
    blocking.capture_frame(solid(8, 4, COLOURS[0]))
    assert len(blocking.queue) == 0  # dropped after close


def test_a_rotation_turns_the_picture_clockwise() -> None:
    picture = np.zeros((4, 8, 4), np.uint8)
    picture[:, :, 3] = 255
    picture[0, 0, :3] = 255  # a white top-left corner
    source = lk.VideoSource(8, 4)
    source.capture_frame(
        VideoFrame(8, 4, T.RGBA, picture.tobytes()), rotation=VideoRotation.VIDEO_ROTATION_90
    )
    item = source.queue.pop()
    assert item is not None and (item.frame.width, item.frame.height) == (4, 8)
    luma = item.frame.to_ndarray(format="gray")
    assert luma[0, 3] > 128 and luma[0, 0] < 128  # now the top-right corner


# -- the send track --------------------------------------------------------------------------


def test_the_send_track_keeps_one_timeline_per_slot_and_skips_muted_and_fast_frames() -> None:
    router = MediaRouter(1, 1)
    source = lk.VideoSource(8, 4, queue_size=8)
    router.add_source("cid-1", source.queue, False, max_framerate=10)
    clock = am.VideoClock()

    async def run() -> list[av.VideoFrame]:
        track = am.VideoSendTrack("cid-1", router, clock)
        assert track.id == "cid-1" and track.kind == "video"
        out = []
        for n in range(3):  # 0.1 s apart at the 10 fps cap: all sent
            if n:
                await asyncio.sleep(0.1)
            source.capture_frame(solid(8, 4, COLOURS[n]))
            out.append(await track.recv())
        source.capture_frame(solid(8, 4, COLOURS[3]))  # too soon after the last: skipped
        pending = asyncio.ensure_future(track.recv())
        await asyncio.sleep(0.02)
        router.set_muted("cid-1", True)
        await asyncio.sleep(0.1)
        source.capture_frame(solid(8, 4, COLOURS[3]))  # muted: skipped
        await asyncio.sleep(0.02)
        router.set_muted("cid-1", False)
        source.capture_frame(solid(8, 4, COLOURS[4]))
        out.append(await pending)
        assert track.skipped == 2 and track.sent == 4
        # A new publication on the same slot continues the timeline (F4.6).
        router.add_source("cid-2", source.queue, False)
        again = am.VideoSendTrack("cid-2", router, clock)
        source.capture_frame(solid(8, 4, COLOURS[5]))
        out.append(await again.recv())
        again.stop()
        with pytest.raises(MediaStreamError):
            await again.recv()
        return out

    frames = asyncio.run(run())
    pts = [f.pts for f in frames]
    assert pts[0] == 0 and pts == sorted(pts) and len(set(pts)) == len(pts)
    assert 0.08 * 90000 <= pts[1] - pts[0] <= 0.3 * 90000  # capture times, in 90 kHz
    assert all(f.time_base == am.fractions.Fraction(1, 90000) for f in frames)


def test_the_send_track_idles_while_its_source_is_gone() -> None:
    router = MediaRouter(1, 1)

    async def run() -> None:
        track = am.VideoSendTrack("gone", router, am.VideoClock())
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await track.recv()

    asyncio.run(run())


# -- streams ---------------------------------------------------------------------------------


def decoded(colour: tuple[int, int, int], pts: int = 0) -> av.VideoFrame:
    """What aiortc's decoders yield: yuv420p."""
    frame = to_av(solid(16, 8, colour)).reformat(format="yuv420p")
    frame.pts, frame.time_base = pts, am.fractions.Fraction(1, 90000)
    return frame


def routed(capacity: int = 5) -> tuple[MediaRouter, RemoteVideoTrack]:
    router = MediaRouter(250, capacity)
    router.bind(1, "TR_V", "alice", int(TrackSource.CAMERA))
    return router, RemoteVideoTrack(INFO, router)


def test_a_video_stream_keeps_the_newest_frames_up_to_its_capacity() -> None:
    router, track = routed()
    stream = threaded.VideoStream(track, capacity=3, format=T.RGBA)
    for n in range(5):
        am.deliver_video(router.consumers(1), decoded(COLOURS[n], pts=n * 9000))
    assert stream.dropped_frames == 2
    router.unbind(1, "TR_V")  # unsubscribed: the stream ends after what it holds
    events = list(stream)
    assert [e.timestamp_us for e in events] == [200_000, 300_000, 400_000]
    assert [e.frame.type for e in events] == [T.RGBA] * 3  # converted when taken
    assert all(near(centre(e.frame), c) for e, c in zip(events, COLOURS[2:], strict=False))
    default = lk.VideoStream(RemoteVideoTrack(INFO, routed(7)[0]))
    assert default._queue._items.maxlen == 7  # Config.video_stream_capacity
    assert Config().video_stream_capacity == 5


def test_video_frames_reach_only_video_readers_each_with_its_own_copy() -> None:
    router, track = routed()
    am.deliver_video(router.consumers(1), decoded(COLOURS[0]))  # nobody reads: dropped
    a, b = threaded.VideoStream(track), threaded.VideoStream.from_track(track=track)
    audio = threaded.AudioStream.from_participant(
        participant=RemoteParticipant(Participant(sid="PA_a", identity="alice"), router),
        track_source=lk.TrackSource.SOURCE_CAMERA,
    )
    am.deliver_video(router.consumers(1), decoded(COLOURS[1]))
    first, second = next(a.frames(1)), next(b.frames(1))
    assert first.frame.type is T.I420 and first.frame._data is not second.frame._data
    assert len(audio._queue) == 0  # an audio reader of the same key takes no pictures
    with pytest.raises(TimeoutError):
        next(a.frames(0.01))
    a.aclose()
    assert list(a) == []


@pytest.mark.anyio
async def test_from_participant_follows_its_camera_until_it_leaves() -> None:
    router, _ = routed()
    alice = RemoteParticipant(Participant(sid="PA_a", identity="alice"), router)
    stream = lk.VideoStream.from_participant(
        participant=alice, track_source=lk.TrackSource.SOURCE_CAMERA, format=T.RGB24
    )
    assert stream.format is T.RGB24
    am.deliver_video(router.consumers(1), decoded(COLOURS[2]))
    router.unbind(1, "TR_V")
    router.bind(2, "TR_W", "alice", int(TrackSource.CAMERA))
    am.deliver_video(router.consumers(2), decoded(COLOURS[3]))
    router.participant_left("alice")
    seen = [centre(event.frame) async for event in stream]
    assert len(seen) == 2 and near(seen[0], COLOURS[2]) and near(seen[1], COLOURS[3])
    await stream.aclose()


def test_video_streams_refuse_what_they_cannot_read() -> None:
    _, track = routed()
    with pytest.raises(TypeError, match="must be a RemoteVideoTrack"):
        lk.VideoStream(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="capacity must be a non-negative int"):
        lk.VideoStream(track, capacity=-1)
    with pytest.raises(ValueError, match="unknown VideoBufferType 42"):
        lk.VideoStream(track, format=42)
    with pytest.raises(TypeError, match="unexpected arguments"):
        lk.VideoStream(track, colour=1)
    with pytest.raises(TypeError, match="participant must be a Participant"):
        lk.VideoStream.from_participant(participant=object(), track_source=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="source must be a VideoSource"):
        lk.LocalVideoTrack.create_video_track("cam", object())  # type: ignore[arg-type]


def test_video_publish_options_are_checked() -> None:
    options = lk.TrackPublishOptions
    assert _video_options(options()) == ("", lk.VideoEncoding())
    encoding = lk.VideoEncoding(max_bitrate=800_000, max_framerate=15)
    assert _video_options(options(video_codec=lk.VideoCodec.H264, video_encoding=encoding)) == (
        "h264",
        encoding,
    )
    assert _video_options(options(video_codec=rtc.VideoCodec.VP8, simulcast=True))[0] == "vp8"
    with pytest.raises(ValueError, match="VP8 and H264 only"):
        _video_options(options(video_codec=lk.VideoCodec.AV1))
    with pytest.raises(ValueError, match="max_bitrate"):
        _video_options(options(video_encoding=lk.VideoEncoding(max_bitrate=-1)))
    with pytest.raises(ValueError, match="max_framerate"):
        _video_options(options(video_encoding=lk.VideoEncoding(max_framerate=-1)))
    with pytest.raises(TypeError, match="video_encoding must be"):
        _video_options(options(video_encoding=(1, 2)))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="video_codec must be"):
        _video_options(options(video_codec="vp8"))  # type: ignore[arg-type]


def test_layer_choices_become_track_settings_and_follow_livekit_rtcs_checks() -> None:
    calls: list[tuple[str, dict[str, object]]] = []

    class Controls:
        def set_muted(self, cid: str, muted: bool) -> None: ...

        def set_subscribed(self, sid: str, subscribed: bool) -> None: ...

        def update_settings(self, sid: str, settings: dict[str, object]) -> None:
            calls.append((sid, settings))

    simulcast = lk.RemoteTrackPublication(attrs.evolve(INFO, simulcasted=True), Controls())
    simulcast.set_video_quality(lk.VideoQuality.VIDEO_QUALITY_LOW)
    simulcast.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_HIGH)
    simulcast.set_video_dimensions(320, 180)
    simulcast.set_enabled(False)
    assert calls == [
        ("TR_V", {"quality": CoreQuality.LOW}),
        ("TR_V", {"quality": CoreQuality.HIGH}),
        ("TR_V", {"width": 320, "height": 180}),
        ("TR_V", {"enabled": False}),
    ]
    single = lk.RemoteTrackPublication(INFO, Controls())
    with pytest.raises(ValueError, match="requires a simulcasted publication"):
        single.set_video_quality(lk.VideoQuality.VIDEO_QUALITY_LOW)
    audio = lk.RemoteTrackPublication(
        TrackPublicationInfo(
            sid="TR_A", name="mic", kind=TrackKind.AUDIO, source=TrackSource.MICROPHONE
        ),
        Controls(),
    )
    with pytest.raises(ValueError, match="only supported on video"):
        audio.set_video_dimensions(320, 180)
    with pytest.raises(ValueError, match="unknown quality 3"):
        simulcast.set_video_quality(3)
    with pytest.raises(TypeError, match="quality must be"):
        simulcast.set_video_quality("low")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="width must be 1 to 16384"):
        simulcast.set_video_dimensions(0, 180)
    with pytest.raises(TypeError, match="enabled must be a bool"):
        simulcast.set_enabled(1)  # type: ignore[arg-type]
    assert len(calls) == 4


# -- payload types of receive m-lines --------------------------------------------------------

_HEAD = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
_OFFER = _HEAD + (
    "m=video 9 UDP/TLS/RTP/SAVPF 97 98 99 100\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\n"
    "a=rtpmap:97 VP8/90000\r\na=rtcp-fb:97 nack\r\na=rtpmap:98 rtx/90000\r\n"
    "a=fmtp:98 apt=97\r\na=rtpmap:99 H264/90000\r\n"
    "a=fmtp:99 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n"
    "a=rtpmap:100 rtx/90000\r\na=fmtp:100 apt=99\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 97 98\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=sendonly\r\n"
    "a=rtpmap:97 VP8/90000\r\na=rtpmap:98 rtx/90000\r\na=fmtp:98 apt=97\r\n"
)


def test_the_answer_to_a_receive_m_line_takes_the_offers_payload_types() -> None:
    answer = _HEAD + (
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 125 126 102 103\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n"
        "a=sendonly\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtpmap:97 rtx/90000\r\n"
        "a=fmtp:97 apt=96\r\na=rtpmap:125 H264/90000\r\n"
        "a=fmtp:125 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
        "a=rtpmap:126 rtx/90000\r\na=fmtp:126 apt=125\r\na=rtpmap:102 AV1/90000\r\n"
        "a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=recvonly\r\n"
        "a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n"
    )
    aligned = am.align_payload_types(_OFFER, answer)
    first, second = aligned.split("m=video")[1:]
    assert first == (
        " 9 UDP/TLS/RTP/SAVPF 97 98 99 100\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\n"
        "a=rtpmap:97 VP8/90000\r\na=rtcp-fb:97 nack\r\na=rtpmap:98 rtx/90000\r\n"
        "a=fmtp:98 apt=97\r\na=rtpmap:99 H264/90000\r\n"
        "a=fmtp:99 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
        "a=rtpmap:100 rtx/90000\r\na=fmtp:100 apt=99\r\n"
    )  # VP8 and H.264 (the same profile, 42) renumbered, AV1 (not offered) dropped
    assert second == answer.split("m=video")[2]  # our send m-line: the answer's numbers
    same = _HEAD + _OFFER[len(_HEAD) :].replace("recvonly", "sendonly", 1)
    assert am.align_payload_types(_OFFER, same) == same  # nothing to renumber
    assert am.align_payload_types(_OFFER, "not sdp") == "not sdp"
    assert am.align_payload_types(_OFFER, _HEAD) == _HEAD  # another number of m-lines


def test_transceivers_negotiated_while_connecting_are_started_once_connected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    class Pc:
        async def _RTCPeerConnection__connect(self) -> None:
            calls.append("connect")

    class Failing:
        async def _RTCPeerConnection__connect(self) -> None:
            raise RuntimeError("boom")

    async def run() -> None:
        media = am.AiortcMedia(None)
        media.start_late_transceivers(Pc())  # type: ignore[arg-type]
        media.start_late_transceivers(Failing())  # type: ignore[arg-type]
        media.start_late_transceivers(object())  # type: ignore[arg-type]  (another aiortc)
        await asyncio.sleep(0.01)
        await media.aclose()

    asyncio.run(run())
    assert calls == ["connect"]
    assert "starting late transceivers failed" in caplog.text
    assert "RTCPeerConnection.__connect is not where lkproto looks" in caplog.text


def _packet(seq: int, ts: int, marker: int, data: bytes) -> RtpPacket:
    packet = RtpPacket(payload_type=97, marker=marker, sequence_number=seq, timestamp=ts)
    packet._data = data  # type: ignore[attr-defined]  (what aiortc's depayloader sets)
    return packet


def test_a_video_frame_is_released_at_its_marker_not_one_frame_later() -> None:
    buffer = am.MarkerJitterBuffer(capacity=128, is_video=True)
    assert buffer.add(_packet(10, 1000, 0, b"a")) == (False, None)
    pli, frame = buffer.add(_packet(11, 1000, 1, b"b"))  # the marker: the frame is complete
    assert not pli and frame is not None and (frame.data, frame.timestamp) == (b"ab", 1000)
    # A frame with a hole waits for the missing packet (a retransmission), then goes.
    assert buffer.add(_packet(14, 2000, 1, b"e"))[1] is None
    assert buffer.add(_packet(12, 2000, 0, b"c"))[1] is None
    frame = buffer.add(_packet(13, 2000, 0, b"d"))[1]
    assert frame is not None and frame.data == b"cde"
    frame = buffer.add(_packet(15, 3000, 1, b"f"))[1]
    assert frame is not None and frame.data == b"f"
    assert am.MarkerJitterBuffer(capacity=4, is_video=True)._remove_marked() is None


def test_video_receivers_get_the_marker_jitter_buffer() -> None:
    from aiortc import RTCPeerConnection

    async def run() -> None:
        pc = RTCPeerConnection()
        transceiver = pc.addTransceiver("video", direction="recvonly")
        assert am.use_marker_jitter_buffer(transceiver)
        buffer = transceiver.receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        assert isinstance(buffer, am.MarkerJitterBuffer) and buffer.capacity == 512
        assert not am.use_marker_jitter_buffer(SimpleNamespace(receiver=object()))  # type: ignore[arg-type]
        await pc.close()

    asyncio.run(run())


def test_capture_frame_and_video_source_refuse_wrong_types_and_turn_every_way() -> None:
    source = lk.VideoSource(8, 4, queue_size=4)
    frame = solid(8, 4, COLOURS[0])
    with pytest.raises(TypeError, match="timestamp_us must be an int"):
        source.capture_frame(frame, timestamp_us=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rotation must be a VideoRotation"):
        source.capture_frame(frame, rotation="90")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="width must be an int"):
        lk.VideoSource("8", 4)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="is_screencast must be a bool"):
        lk.VideoSource(8, 4, is_screencast=1)  # type: ignore[arg-type]
    for turn, size in ((VideoRotation.VIDEO_ROTATION_180, (8, 4)), (3, (4, 8))):
        source.capture_frame(frame, rotation=turn)
        item = source.queue.pop()
        assert item is not None and (item.frame.width, item.frame.height) == size
    assert repr(source) == "rtc.VideoSource(width=8, height=4)" and source.captured == 2
