"""The media objects of the adapter under test, behind one async interface for the e2e tests.

`media_for(room)` gives the async adapters' objects (`AudioSource`, `LocalAudioTrack`,
`AudioStream` of `lkproto.transports.anyio`, which the trio Room shares) driven directly, or
for the threaded adapter (`harness.threaded_facade.FacadeRoom`) its blocking objects driven
from worker threads, the way a threaded application uses them. `threaded_subscribed` gives a
test two threaded Rooms, one reading the track the other publishes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.to_thread

from harness.audio import Capture, frames, tone
from lkproto.transports import anyio as lk
from lkproto.transports import threaded


class _Media:
    """What both adapters' media objects are made the same way with: `lib` is the adapter."""

    lib: Any

    def __init__(self, room: Any) -> None:
        self.room = room

    def source(self, rate: int, channels: int, queue_size_ms: int = 200) -> Any:
        return self.lib.AudioSource(rate, channels, queue_size_ms=queue_size_ms)

    def track(self, source: Any, name: str) -> Any:
        return self.lib.LocalAudioTrack.create_audio_track(name, source)

    def stream(self, track: Any, rate: int, channels: int) -> Any:
        return self.lib.AudioStream(track, sample_rate=rate, num_channels=channels)

    def from_participant(self, participant: Any, rate: int = 48000, channels: int = 1) -> Any:
        return self.lib.AudioStream.from_participant(
            participant=participant,
            track_source=self.lib.TrackSource.SOURCE_MICROPHONE,
            sample_rate=rate,
            num_channels=channels,
        )


class AsyncMedia(_Media):
    lib = lk

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

    async def record(
        self, track: Any, capture: Capture, rate: int, channels: int, *, seconds: float
    ) -> None:
        stream = self.stream(track, rate, channels)
        with anyio.move_on_after(seconds):
            async for event in stream:
                frame = event.frame
                capture.add(bytes(frame.data), frame.sample_rate, frame.num_channels)
        await stream.aclose()

    @contextlib.asynccontextmanager
    async def playing(self, source: Any, freq: float) -> AsyncIterator[None]:
        """Play `freq` into `source` in the background until the block ends."""
        rate, channels = source.sample_rate, source.num_channels
        step = rate // 50

        async def run() -> None:
            n = 0
            while True:
                chunk = tone(freq, rate, channels, step, n * step)
                await source.capture_frame(lk.AudioFrame(chunk, rate, channels, step))
                n += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

    @contextlib.asynccontextmanager
    async def recording(self, stream: Any, capture: Capture) -> AsyncIterator[None]:
        """Read `stream` into `capture` in the background until the block ends."""

        async def run() -> None:
            async for event in stream:
                frame = event.frame
                capture.add(bytes(frame.data), frame.sample_rate, frame.num_channels)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                await stream.aclose()

    async def unpublish(self, sid: str) -> None:
        await self.room.local_participant.unpublish_track(sid)

    async def set_permissions(self, allow_all: bool, identities: list[str]) -> None:
        self.room.local_participant.set_track_subscription_permissions(
            allow_all_participants=allow_all,
            participant_permissions=[
                lk.ParticipantTrackPermission(participant_identity=i, allow_all=True)
                for i in identities
            ],
        )


class ThreadedMedia(_Media):
    """The threaded adapter's blocking media objects, each call in a worker thread."""

    lib = threaded

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

    @contextlib.asynccontextmanager
    async def playing(self, source: Any, freq: float) -> AsyncIterator[None]:
        rate, channels = source.sample_rate, source.num_channels
        step = rate // 50
        stop = threading.Event()

        def run() -> None:
            n = 0
            while not stop.is_set():
                chunk = tone(freq, rate, channels, step, n * step)
                try:
                    source.capture_frame(threaded.AudioFrame(chunk, rate, channels, step), 0.5)
                except TimeoutError:
                    continue
                n += 1

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            await anyio.to_thread.run_sync(thread.join, 5)

    @contextlib.asynccontextmanager
    async def recording(self, stream: Any, capture: Capture) -> AsyncIterator[None]:
        def run() -> None:
            for event in stream:
                frame = event.frame
                capture.add(bytes(frame.data), frame.sample_rate, frame.num_channels)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stream.aclose()
            await anyio.to_thread.run_sync(thread.join, 5)

    async def unpublish(self, sid: str) -> None:
        local = self.room.threaded.local_participant
        await anyio.to_thread.run_sync(local.unpublish_track, sid)

    async def set_permissions(self, allow_all: bool, identities: list[str]) -> None:
        local = self.room.threaded.local_participant
        permissions = [
            threaded.ParticipantTrackPermission(participant_identity=i, allow_all=True)
            for i in identities
        ]
        await anyio.to_thread.run_sync(
            lambda: local.set_track_subscription_permissions(
                allow_all_participants=allow_all, participant_permissions=permissions
            )
        )


@contextlib.contextmanager
def threaded_subscribed(url: str, alice_token: str, bob_token: str, track: Any) -> Iterator[Any]:
    """Two threaded Rooms: alice publishes `track`, and once bob is subscribed to it the
    block gets bob's remote track; both leave when it ends."""
    with threaded.Room() as alice, threaded.Room() as bob:
        alice.connect(url, alice_token)
        bob.connect(url, bob_token)
        publication = alice.local_participant.publish_track(track)
        publication.wait_for_subscription(timeout=10)
        remote = None
        for _ in range(200):
            found = bob.remote_participants.get("alice")
            pub = None if found is None else found.track_publications.get(publication.sid)
            if pub is not None and pub.track is not None:
                remote = pub.track
                break
            time.sleep(0.01)
        assert remote is not None
        yield remote


def media_for(room: Any) -> AsyncMedia | ThreadedMedia:
    if type(room).__name__ == "FacadeRoom":
        return ThreadedMedia(room)
    return AsyncMedia(room)
