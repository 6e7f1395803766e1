"""The adapters' audio objects without a server: frames, the bounded queues between the
application and the peer connection, the paced send track and the frame routing."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from types import SimpleNamespace
from typing import Any

import anyio
import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from lkproto import Config
from lkproto.models import Participant
from lkproto.tracks import TrackKind, TrackPublicationInfo, TrackSource
from lkproto.transports import _aiortc_media as am
from lkproto.transports import anyio as lk
from lkproto.transports import threaded
from lkproto.transports._audio import FrameQueue, PcmQueue
from lkproto.transports._media import MediaRouter
from lkproto.transports._room import RemoteParticipant
from lkproto.transports._tracks import RemoteAudioTrack

INFO = TrackPublicationInfo(
    sid="TR_A", name="mic", kind=TrackKind.AUDIO, source=TrackSource.MICROPHONE
)


def pcm(value: int, samples: int, channels: int = 1) -> bytes:
    return np.full(samples * channels, value, dtype=np.int16).tobytes()


def decoded(value: int, samples: int = 960) -> av.AudioFrame:
    """What aiortc's Opus decoder yields: s16 stereo 48 kHz."""
    frame = av.AudioFrame(format="s16", layout="stereo", samples=samples)
    frame.planes[0].update(pcm(value, samples, 2))
    frame.sample_rate = 48000
    return frame


# -- frames ----------------------------------------------------------------------------------


def test_an_audio_frame_is_interleaved_int16_as_in_livekit_rtc() -> None:
    frame = lk.AudioFrame(pcm(7, 480, 2), 48000, 2, 480)
    assert (frame.sample_rate, frame.num_channels, frame.samples_per_channel) == (48000, 2, 480)
    assert frame.duration == 0.01 and len(frame.data) == 960 and frame.data[0] == 7
    empty = lk.AudioFrame.create(16000, 1, 160)
    empty.data[3] = -5
    assert empty.pcm()[6:8] == (-5).to_bytes(2, "little", signed=True)
    assert empty.to_wav_bytes().startswith(b"RIFF")
    assert "samples_per_channel=160" in repr(empty)
    with pytest.raises(ValueError, match="data length must be >="):
        lk.AudioFrame(b"\0\0", 48000, 1, 2)
    with pytest.raises(ValueError, match="multiple of sizeof"):
        lk.AudioFrame(b"\0\0\0", 48000, 1, 1)
    with pytest.raises(TypeError, match="bytes-like"):
        lk.AudioFrame("x", 48000, 1, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rate", "channels", "error"),
    [
        (44100, 3, ValueError),
        (11025, 1, ValueError),
        (7000, 1, ValueError),
        ("48000", 1, TypeError),
    ],
)
def test_sources_and_streams_refuse_formats_aiortc_cannot_send(
    rate: object, channels: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        lk.AudioSource(rate, channels)  # type: ignore[arg-type]
    with pytest.raises(error):
        threaded.AudioSource(rate, channels)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_a_frame_of_the_wrong_rate_or_channels_is_refused_and_nothing_is_queued() -> None:
    source = lk.AudioSource(16000, 1)
    with pytest.raises(ValueError, match="48000 Hz with 1 channel"):
        await source.capture_frame(lk.AudioFrame(pcm(1, 480), 48000, 1, 480))
    with pytest.raises(ValueError, match="with 2 channel"):
        await source.capture_frame(lk.AudioFrame(pcm(1, 160, 2), 16000, 2, 160))
    with pytest.raises(TypeError, match="expected an AudioFrame"):
        await source.capture_frame(b"raw")  # type: ignore[arg-type]
    assert source.queued_duration == 0
    await source.capture_frame(lk.AudioFrame(pcm(1, 160), 16000, 1, 160))
    assert source.queued_duration == 0.01


# -- the source's queue ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_capture_frame_waits_while_the_queue_is_full() -> None:
    source = lk.AudioSource(48000, 1, queue_size_ms=40)
    second = lk.AudioFrame(pcm(2, 960), 48000, 1, 960)
    await source.capture_frame(lk.AudioFrame(pcm(1, 1920), 48000, 1, 1920))  # 40 ms: full
    done = anyio.Event()

    async def capture() -> None:
        await source.capture_frame(second)
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(capture)
        await anyio.sleep(0.05)
        assert not done.is_set() and source.queued_duration == 0.04
        assert source.queue.pop_frame() == pcm(1, 960)  # the sender takes 20 ms: room
        await done.wait()
    assert source.queued_duration == 0.04
    source.clear_queue()
    assert source.queued_duration == 0
    await source.wait_for_playout()  # nothing queued: at once


def test_a_threaded_capture_blocks_while_full_and_gives_up_after_its_timeout() -> None:
    source = threaded.AudioSource(48000, 1, queue_size_ms=20)
    frame = threaded.AudioFrame(pcm(1, 960), 48000, 1, 960)
    source.capture_frame(frame)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="stayed full"):
        source.capture_frame(frame, timeout=0.1)
    assert time.monotonic() - started >= 0.1
    threading.Timer(0.05, source.queue.pop_frame).start()
    source.capture_frame(frame, timeout=5)  # the sender made room
    with pytest.raises(TimeoutError, match="still queued"):
        source.wait_for_playout(timeout=0.01)
    source.aclose()  # closing releases everything; later frames are dropped
    source.capture_frame(frame, timeout=0.01)
    source.wait_for_playout(timeout=0.01)


def test_a_frame_longer_than_the_queue_goes_in_pieces() -> None:
    queue = PcmQueue(48000, 1, 20)
    data = pcm(3, 2880)  # 60 ms into a 20 ms queue

    def sender() -> None:
        for _ in range(3):
            while queue.pop_frame() is None:
                time.sleep(0.001)

    thread = threading.Thread(target=sender)
    thread.start()
    assert queue.put_blocking(data, timeout=5)
    thread.join(5)
    assert queue.queued_bytes == 0 and queue.underruns == 0


def test_a_short_queue_pops_nothing_and_counts_an_underrun() -> None:
    queue = PcmQueue(48000, 2, 100)
    assert queue.pop_frame() is None and queue.underruns == 0
    queue.put_blocking(pcm(1, 100, 2))
    assert queue.pop_frame() is None and queue.underruns == 1
    assert queue.flush_tail() == pcm(1, 100, 2) + bytes((960 - 100) * 4)
    assert queue.flush_tail() is None


# -- streams and routing -------------------------------------------------------------------


def routed(capacity: int = 250) -> tuple[MediaRouter, RemoteAudioTrack]:
    router = MediaRouter(capacity)
    router.bind(1, "TR_A", "alice", int(TrackSource.MICROPHONE))
    return router, RemoteAudioTrack(INFO, router)


def test_an_audio_stream_keeps_the_newest_frames_up_to_its_capacity() -> None:
    router, track = routed()
    stream = threaded.AudioStream(track, capacity=3, sample_rate=48000, num_channels=2)
    for value in range(1, 6):
        am.deliver(router.consumers(1), decoded(value))
    assert stream.dropped_frames == 2
    router.unbind(1, "TR_A")  # unsubscribed: the stream ends after what it holds
    assert [event.frame.data[0] for event in stream] == [3, 4, 5]
    default = lk.AudioStream(RemoteAudioTrack(INFO, routed(7)[0]))
    assert default._queue._frames.maxlen == 7  # Config.audio_stream_capacity
    assert Config().audio_stream_capacity == 250


def test_frames_nobody_reads_are_dropped() -> None:
    router, _ = routed()
    assert router.consumers(1) == [] and router.consumers(2) == []
    am.deliver(router.consumers(1), decoded(1))  # nothing to do, nothing kept


def test_a_stream_converts_to_its_rate_channels_and_frame_size() -> None:
    router, track = routed()
    stream = threaded.AudioStream(track, sample_rate=16000, num_channels=1, frame_size_ms=10)
    for value in range(3):
        am.deliver(router.consumers(1), decoded(1000 + value))
    stream.close()
    sizes = [
        (e.frame.sample_rate, e.frame.num_channels, e.frame.samples_per_channel) for e in stream
    ]
    assert sizes and set(sizes) == {(16000, 1, 160)}
    assert len(sizes) in (5, 6)  # 60 ms, less what the resampler holds back


@pytest.mark.anyio
async def test_from_participant_follows_its_tracks_until_it_leaves() -> None:
    router, _ = routed()
    alice = RemoteParticipant(Participant(sid="PA_a", identity="alice"), router)
    stream = lk.AudioStream.from_participant(
        participant=alice, track_source=lk.TrackSource.SOURCE_MICROPHONE, sample_rate=48000
    )
    am.deliver(router.consumers(1), decoded(5))
    router.unbind(1, "TR_A")
    router.bind(2, "TR_B", "alice", int(TrackSource.MICROPHONE))
    am.deliver(router.consumers(2), decoded(6))
    router.participant_left("alice")
    values = [event.frame.data[0] async for event in stream]
    assert values == [5, 6]


def test_streams_refuse_what_they_cannot_read() -> None:
    router, track = routed()
    with pytest.raises(TypeError, match="RemoteAudioTrack"):
        lk.AudioStream("TR_A")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="capacity"):
        lk.AudioStream(track, capacity=-1)
    with pytest.raises(ValueError, match="frame_size_ms"):
        lk.AudioStream(track, frame_size_ms=15)
    with pytest.raises(ValueError, match="noise cancellation"):
        lk.AudioStream(track, noise_cancellation=object())
    with pytest.raises(TypeError, match="belongs to no session"):
        lk.AudioStream(RemoteAudioTrack(INFO, None))
    gone = RemoteAudioTrack(attrs_evolve_sid("TR_gone"), router)
    ended = threaded.AudioStream(gone)  # not subscribed (any more): ends at once
    assert list(ended) == []


def attrs_evolve_sid(sid: str) -> TrackPublicationInfo:
    import attrs

    return attrs.evolve(INFO, sid=sid)


def test_a_blocking_read_times_out_without_a_frame() -> None:
    with pytest.raises(TimeoutError, match="no audio frame"):
        FrameQueue(1).get_blocking(0.01)


def test_the_session_ending_ends_every_stream() -> None:
    router, track = routed()
    stream = threaded.AudioStream(track)
    router.close()
    assert list(stream.frames(timeout=1)) == []
    late = threaded.AudioStream(track)
    assert list(late) == []


# -- the send track ----------------------------------------------------------------------------


def sending(
    muted: bool = False, rate: int = 48000, channels: int = 1
) -> tuple[MediaRouter, lk.AudioSource]:
    router = MediaRouter(10)
    source = lk.AudioSource(rate, channels)
    router.add_source("cid-1", source.queue, muted)
    return router, source


def test_the_send_track_is_paced_carries_the_cid_and_never_goes_back_in_time() -> None:
    router, source = sending()
    clock = am.SlotClock()

    async def run() -> list[av.AudioFrame]:
        track = am.SendTrack("cid-1", router, clock)
        assert track.id == "cid-1"  # the msid track id the server matches (F1.3)
        source.queue.put_blocking(pcm(100, 960))
        started = asyncio.get_running_loop().time()
        out = [await track.recv() for _ in range(5)]
        elapsed = asyncio.get_running_loop().time() - started
        assert 0.07 <= elapsed <= 0.3  # 20 ms apart, on an absolute schedule
        # A new track on the same slot continues the timeline after an idle gap (F4.6).
        await asyncio.sleep(0.2)
        again = am.SendTrack("cid-2", router, clock)
        out.append(await again.recv())
        again.stop()
        with pytest.raises(MediaStreamError):
            await again.recv()
        return out

    frames = asyncio.run(run())
    pts = [f.pts for f in frames]
    assert pts[:5] == [0, 960, 1920, 2880, 3840]
    assert pts[5] >= 3840 + 960 + 0.15 * 48000  # the gap is in the timeline
    assert all(f.sample_rate == 48000 and f.layout.name == "stereo" for f in frames)
    samples = frames[0].to_ndarray().reshape(-1)
    assert samples[0] == 100 and samples[1] == 100  # mono copied to both channels
    assert not frames[1].to_ndarray().any()  # then silence: the queue ran short


def test_a_muted_or_failing_source_sends_silence_and_the_sender_lives_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router, source = sending(muted=True, rate=16000)

    async def run() -> tuple[av.AudioFrame, av.AudioFrame, int]:
        track = am.SendTrack("cid-1", router, am.SlotClock())
        source.queue.put_blocking(pcm(100, 320))
        muted = await track.recv()
        assert source.queued_duration == 0  # a muted track still drains in real time
        router.set_muted("cid-1", False)
        source.queue.put_blocking(pcm(100, 320 * 3))
        await track.recv()
        converted = await track.recv()  # 16 kHz resampled to 48 kHz stereo
        track._pull = lambda: 1 / 0  # type: ignore[method-assign]
        with caplog.at_level(logging.WARNING, logger="lkproto.transports"):
            await track.recv()
        return muted, converted, track.silent_frames

    muted, converted, silent = asyncio.run(run())
    assert not muted.to_ndarray().any()
    assert converted.samples == 960 and converted.to_ndarray().max() > 50
    assert silent >= 2 and "sending silence" in caplog.text


class _Receiver:
    def __init__(self) -> None:
        self.transport = SimpleNamespace()


def test_the_ssrc_refresh_warns_and_skips_when_aiortc_internals_moved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sdp = (
        "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n"
        "a=rtpmap:96 opus/48000/2\r\na=ssrc:1234 cname:x\r\n"
    )
    receiver: Any = _Receiver()  # its transport has no _rtp_router
    transceiver = SimpleNamespace(mid="1", receiver=receiver)
    pc: Any = SimpleNamespace(
        remoteDescription=SimpleNamespace(sdp=sdp), getTransceivers=lambda: [transceiver]
    )
    am._warned.discard("internals")
    with caplog.at_level(logging.WARNING, logger="lkproto.transports"):
        assert am.refresh_receiver_ssrcs(pc) == 0
    assert "SSRC tables are not where lkproto looks" in caplog.text
    table: dict[int, object] = {}
    receiver.transport = SimpleNamespace(
        _rtp_router=SimpleNamespace(ssrc_table=table, receivers={receiver})
    )
    receiver._RTCRtpReceiver__rtx_ssrc = {}
    assert am.refresh_receiver_ssrcs(pc) == 1 and table == {1234: receiver}
    assert am.refresh_receiver_ssrcs(pc) == 0  # known already
    pc.remoteDescription = None
    assert am.refresh_receiver_ssrcs(pc) == 0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
