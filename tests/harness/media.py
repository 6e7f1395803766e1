"""The media objects of the adapter under test, behind one async interface for the e2e tests.

`media_for(room)` gives the async adapters' objects (`AudioSource`, `LocalAudioTrack`,
`AudioStream` of `lkproto.transports.anyio`, which the trio Room shares) driven directly, or
for the threaded adapter (`harness.threaded_facade.FacadeRoom`) its blocking objects driven
from worker threads, the way a threaded application uses them.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import anyio.to_thread

from harness.audio import Capture, frames
from lkproto.transports import anyio as lk
from lkproto.transports import threaded


class AsyncMedia:
    def __init__(self, room: Any) -> None:
        self.room = room

    def source(self, rate: int, channels: int, queue_size_ms: int = 200) -> Any:
        return lk.AudioSource(rate, channels, queue_size_ms=queue_size_ms)

    def track(self, source: Any, name: str) -> Any:
        return lk.LocalAudioTrack.create_audio_track(name, source)

    async def publish(self, source: Any, name: str, **options: Any) -> Any:
        track = self.track(source, name)
        return await self.room.local_participant.publish_track(
            track, lk.TrackPublishOptions(**options)
        )

    async def play(self, source: Any, freq: float, seconds: float) -> None:
        rate, channels = source.sample_rate, source.num_channels
        for chunk in frames(freq, rate, channels, seconds):
            await source.capture_frame(lk.AudioFrame(chunk, rate, channels, rate // 50))
        await source.wait_for_playout()

    def stream(self, track: Any, rate: int, channels: int) -> Any:
        return lk.AudioStream(track, sample_rate=rate, num_channels=channels)

    async def record(
        self, track: Any, capture: Capture, rate: int, channels: int, *, seconds: float
    ) -> None:
        stream = self.stream(track, rate, channels)
        with anyio.move_on_after(seconds):
            async for event in stream:
                frame = event.frame
                capture.add(bytes(frame.data), frame.sample_rate, frame.num_channels)
        await stream.aclose()


class ThreadedMedia:
    """The threaded adapter's blocking media objects, each call in a worker thread."""

    def __init__(self, room: Any) -> None:
        self.room = room

    def source(self, rate: int, channels: int, queue_size_ms: int = 200) -> Any:
        return threaded.AudioSource(rate, channels, queue_size_ms=queue_size_ms)

    def track(self, source: Any, name: str) -> Any:
        return threaded.LocalAudioTrack.create_audio_track(name, source)

    async def publish(self, source: Any, name: str, **options: Any) -> Any:
        track = self.track(source, name)
        local = self.room.threaded.local_participant
        return await anyio.to_thread.run_sync(
            lambda: local.publish_track(track, threaded.TrackPublishOptions(**options))
        )

    async def play(self, source: Any, freq: float, seconds: float) -> None:
        def run() -> None:
            rate, channels = source.sample_rate, source.num_channels
            for chunk in frames(freq, rate, channels, seconds):
                source.capture_frame(threaded.AudioFrame(chunk, rate, channels, rate // 50))
            source.wait_for_playout()

        await anyio.to_thread.run_sync(run)

    def stream(self, track: Any, rate: int, channels: int) -> Any:
        return threaded.AudioStream(track, sample_rate=rate, num_channels=channels)

    async def record(
        self, track: Any, capture: Capture, rate: int, channels: int, *, seconds: float
    ) -> None:
        def run() -> None:
            stream = self.stream(track, rate, channels)
            end = time.monotonic() + seconds
            try:
                for event in stream.frames(timeout=seconds):
                    frame = event.frame
                    capture.add(bytes(frame.data), frame.sample_rate, frame.num_channels)
                    if time.monotonic() >= end:
                        return
            except TimeoutError:
                return
            finally:
                stream.close()

        await anyio.to_thread.run_sync(run)


def media_for(room: Any) -> AsyncMedia | ThreadedMedia:
    if type(room).__name__ == "FacadeRoom":
        return ThreadedMedia(room)
    return AsyncMedia(room)
