"""The threaded adapter's media objects: `livekit.rtc`'s names, blocking instead of awaiting.

They share everything but the waiting with the async adapters' (transports/_audio.py,
transports/_tracks.py): `capture_frame` blocks the calling thread while the source's queue
is full, an `AudioStream` is a plain iterator whose `next()` blocks until a frame arrives,
and `wait_for_subscription` blocks. Each wait takes an optional `timeout` (seconds) after
which it raises `TimeoutError`. The queues are thread-safe, so any thread may use them;
none of these calls goes through the room's I/O thread. `VideoSource.capture_frame` never
waits (as everywhere: the oldest queued frame is dropped instead), and a `VideoStream` is a
blocking iterator like `AudioStream`.
"""

from __future__ import annotations

from collections.abc import Iterator

from ._audio import AudioFrame, AudioFrameEvent, PcmSource
from ._tracks import AudioStreamBase, LocalPublication, VideoStreamBase
from ._video import FrameSource, VideoFrameEvent

__all__ = ["AudioSource", "AudioStream", "LocalTrackPublication", "VideoSource", "VideoStream"]


class AudioSource(PcmSource):
    """`livekit.rtc.AudioSource`, blocking (see `lkproto.transports.anyio.AudioSource`)."""

    def capture_frame(self, frame: AudioFrame, timeout: float | None = None) -> None:
        """Queue `frame`, blocking while the queue is full; `TimeoutError` (and what did not
        fit is dropped) if `timeout` seconds pass first."""
        data = self._check(frame)
        if data and not self.queue.put_blocking(data, timeout):
            raise TimeoutError(f"capture_frame: the queue stayed full for {timeout}s")

    def wait_for_playout(self, timeout: float | None = None) -> None:
        """Block until everything queued has been taken by the sender."""
        if not self.queue.wait_empty_blocking(timeout):
            raise TimeoutError(f"wait_for_playout: audio still queued after {timeout}s")

    def aclose(self) -> None:
        """Drop what is queued; later frames are dropped; waiting threads are released."""
        self.queue.close()

    close = aclose


class AudioStream(AudioStreamBase):
    """`livekit.rtc.AudioStream` as a blocking iterator of `AudioFrameEvent`:
    `for event in AudioStream(track, sample_rate=16000): ...` (see
    `lkproto.transports.anyio.AudioStream` for the frames, bound and end)."""

    def __iter__(self) -> Iterator[AudioFrameEvent]:
        return self

    def __next__(self) -> AudioFrameEvent:
        frame = self._queue.get_blocking()
        if frame is None:
            raise StopIteration
        return AudioFrameEvent(frame)

    def frames(self, timeout: float | None = None) -> Iterator[AudioFrameEvent]:
        """Iterate with a `timeout` per frame (`TimeoutError` when none came in time)."""
        while (frame := self._queue.get_blocking(timeout)) is not None:
            yield AudioFrameEvent(frame)

    def aclose(self) -> None:
        """End the stream now (`close`)."""
        self.close()


class LocalTrackPublication(LocalPublication):
    """One of our published tracks (`livekit.rtc.LocalTrackPublication`), for threads."""

    def wait_for_subscription(self, timeout: float | None = None) -> None:
        """Block until another participant subscribed to this track for the first time."""
        if not self._subscribed.wait_blocking(timeout):
            raise TimeoutError(f"wait_for_subscription: nobody subscribed within {timeout}s")


class VideoSource(FrameSource):
    """`livekit.rtc.VideoSource` for threads (`capture_frame` never blocks; see
    `lkproto.transports.anyio.VideoSource`)."""

    def aclose(self) -> None:
        """Drop what is queued; later frames are dropped."""
        self.queue.close(drop=True)

    close = aclose


class VideoStream(VideoStreamBase):
    """`livekit.rtc.VideoStream` as a blocking iterator of `VideoFrameEvent`:
    `for event in VideoStream(track, format=VideoBufferType.RGBA): ...` (see
    `lkproto.transports.anyio.VideoStream` for the frames, bound and end)."""

    def __iter__(self) -> Iterator[VideoFrameEvent]:
        return self

    def __next__(self) -> VideoFrameEvent:
        event = self._queue.get_blocking()
        if event is None:
            raise StopIteration
        return self._converted(event)

    def frames(self, timeout: float | None = None) -> Iterator[VideoFrameEvent]:
        """Iterate with a `timeout` per frame (`TimeoutError` when none came in time)."""
        while (event := self._queue.get_blocking(timeout)) is not None:
            yield self._converted(event)

    def aclose(self) -> None:
        """End the stream now (`close`)."""
        self.close()
