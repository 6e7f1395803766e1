"""The threaded adapter's data tracks: blocking twins of transports/_datatracks.py's objects.

Each wraps the async object the room's session holds on its I/O thread and carries every
call out there through the `IoThread` (transports/_blocking.py): `try_push` and `unpublish`
on a `LocalDataTrack`, `subscribe` and `set_pipeline_options` on a `RemoteDataTrack`, and
reading a `DataTrackStream`, which is a plain iterator (`for frame in stream`) whose `next`
blocks until a frame arrives. Callbacks (`data_track_published`) receive these wrappers: the
room keeps one per remote track (`TrackWrappers`), so a track is the same object each time.
Once the room is disconnected, a stream ends, `is_published()` is False and `unpublish()`
does nothing; `try_push` raises `PushFrameError`, as livekit.rtc does. End-to-end
encryption adds nothing here: the core encrypts and decrypts frames (see _datatracks.py).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from lkproto.datatracks import DataTrackFrame, DataTrackInfo, PushFrameError, PushFrameErrorReason

from . import _datatracks
from ._errors import TransportClosedError

if TYPE_CHECKING:
    from ._blocking import IoThread

__all__ = ["DataTrackStream", "LocalDataTrack", "RemoteDataTrack", "TrackWrappers"]

T = TypeVar("T")


async def _run(fn: Callable[[], T]) -> T:
    return fn()


class LocalDataTrack:
    """A data track we publish (livekit.rtc `LocalDataTrack`), with blocking methods."""

    def __init__(self, io: IoThread, inner: _datatracks.LocalDataTrack) -> None:
        self._io = io
        self._inner = inner

    @property
    def info(self) -> DataTrackInfo:
        """`sid` (changes after a full reconnect), `name`, `uses_e2ee`."""
        return self._inner.info

    def try_push(self, frame: DataTrackFrame) -> None:
        """Send `frame` now, or raise `PushFrameError` (see the async `try_push`)."""
        if not isinstance(frame, DataTrackFrame):
            raise TypeError(f"try_push: frame must be a DataTrackFrame, not {type(frame).__name__}")
        try:
            self._io.call("try_push", lambda _: _run(lambda: self._inner.try_push(frame)))
        except TransportClosedError as exc:
            raise PushFrameError(PushFrameErrorReason.TRACK_UNPUBLISHED, frame, str(exc)) from None

    def is_published(self) -> bool:
        """Whether the track is still published (False once the room is disconnected)."""
        try:
            return self._io.call("is_published", lambda _: _run(self._inner.is_published))
        except TransportClosedError:
            return False

    def unpublish(self) -> None:
        """Unpublish the track (idempotent)."""
        with contextlib.suppress(TransportClosedError):
            self._io.call("unpublish", lambda _: self._inner.unpublish())

    def __repr__(self) -> str:
        return repr(self._inner)


class RemoteDataTrack:
    """A data track another participant publishes (livekit.rtc `RemoteDataTrack`)."""

    def __init__(self, io: IoThread, inner: _datatracks.RemoteDataTrack) -> None:
        self._io = io
        self._inner = inner

    @property
    def info(self) -> DataTrackInfo:
        """`sid` (the server's; it changes after the publisher's full reconnect), `name`,
        `uses_e2ee`."""
        return self._inner.info

    @property
    def publisher_identity(self) -> str:
        """The identity of the participant publishing the track."""
        return self._inner.publisher_identity

    def is_published(self) -> bool:
        """Whether the track is still published."""
        return self._inner.is_published()

    def subscribe(self, *, buffer_size: int | None = None) -> DataTrackStream:
        """Subscribe: a blocking iterator of the frames that arrive from now on."""
        stream = self._io.call(
            "subscribe", lambda _: _run(lambda: self._inner.subscribe(buffer_size=buffer_size))
        )
        return DataTrackStream(self._io, stream)

    def set_pipeline_options(self, *, max_partial_frames: int | None = None) -> None:
        """How many frames are reassembled at once (see the async adapter's)."""
        self._io.call(
            "set_pipeline_options",
            lambda _: _run(
                lambda: self._inner.set_pipeline_options(max_partial_frames=max_partial_frames)
            ),
        )

    def __repr__(self) -> str:
        return repr(self._inner)


class DataTrackStream:
    """`for frame in stream` (or `stream.read()`), blocking until a frame arrives; raises
    `SubscribeDataTrackError` at the end if the subscription failed. A context manager
    (closing it unsubscribes)."""

    def __init__(self, io: IoThread, inner: _datatracks.DataTrackStream) -> None:
        self._io = io
        self._inner = inner

    @property
    def dropped(self) -> int:
        """Frames lost because this reader was more than `buffer_size` behind."""
        return self._inner.dropped

    def read(self) -> DataTrackFrame | None:
        """The next frame, or None once the stream has ended."""
        try:
            return self._io.call("read", lambda _: self._inner.read())
        except TransportClosedError:
            return None

    def __iter__(self) -> Iterator[DataTrackFrame]:
        return self

    def __next__(self) -> DataTrackFrame:
        frame = self.read()
        if frame is None:
            raise StopIteration
        return frame

    def close(self) -> None:
        """Stop reading (the last stream of a track unsubscribes). Idempotent."""
        with contextlib.suppress(TransportClosedError):
            self._io.call("close", lambda _: _run(self._inner.close))

    def __enter__(self) -> DataTrackStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class TrackWrappers:
    """One blocking `RemoteDataTrack` per async one, for a room's callbacks."""

    def __init__(self, io: IoThread) -> None:
        self._io = io
        self._made: weakref.WeakKeyDictionary[_datatracks.RemoteDataTrack, RemoteDataTrack] = (
            weakref.WeakKeyDictionary()
        )

    def wrap(self, track: _datatracks.RemoteDataTrack) -> RemoteDataTrack:
        found = self._made.get(track)
        if found is None:
            found = self._made[track] = RemoteDataTrack(self._io, track)
        return found
