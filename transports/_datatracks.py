"""Data tracks on a session: `livekit.rtc`'s `LocalDataTrack`, `RemoteDataTrack` and
`DataTrackStream`, and `DataTracks`, the part of the session that runs them.

Theory of operation (protocol-reference-2 section 1; livekit.rtc 1.2.0 `data_track.py`)
- Publishing: `LocalParticipant.publish_data_track(name=...)` asks the core and waits for
  the server's answer: a `LocalDataTrack`, or `PublishDataTrackError` with the server's
  reason. A caller cancelled while waiting withdraws the publish (a late success is undone
  by the core). `try_push(frame)` is synchronous, as in livekit.rtc: the frame goes through
  the core to the peer connection at once, and the aiortc peer sends it while the
  `_data_track` channel holds at most 8 KiB, else keeps only the newest frame until it
  drains (the official SDKs' policy: fresh frames beat complete ones). A push that cannot be
  taken raises `PushFrameError` (unpublished, republishing, or the room is gone).
- Discovery: the core reports every remote track (also those present at the join); the
  room emits `data_track_published(track)` with a `RemoteDataTrack`, and
  `data_track_unpublished(sid)`. After a publisher's full reconnect its track comes back
  under a new SID: the same `RemoteDataTrack` object takes the new SID, and its
  subscription is re-sent by the core, so readers carry on without doing anything.
- Subscribing: `RemoteDataTrack.subscribe(buffer_size=)` returns a `DataTrackStream` at once
  (an async iterator of `DataTrackFrame`s). Streams of one track share one subscription
  (the first subscribes, closing the last unsubscribes). Each stream holds at most
  `buffer_size` frames (default `Config.data_track_buffer_size`, 16); a reader that falls
  behind loses the oldest (counted in `dropped`): a slow reader loses frames, never the
  connection. When the subscription ends the stream ends: normally if the track was
  unpublished after frames could flow, else by raising `SubscribeDataTrackError` with the
  reason (TIMEOUT, DISCONNECTED, NOT_ALLOWED, UNPUBLISHED before any handle), as
  livekit.rtc raises it when iteration ends.
- E2EE (protocol-reference-2 §1.7): nothing to ask for, as in livekit.rtc (whose
  `publish_data_track` has no such option). In a room connected with
  `RoomOptions(encryption=...)` (or the deprecated `e2ee=`) the core publishes our tracks
  with `uses_e2ee` and encrypts each pushed frame with our current key, and decrypts each
  frame of an encrypted remote track with its publisher's key before this stream gets it. A
  frame that does not decrypt never reaches a stream: the room emits `e2ee_state_changed`
  (DECRYPTION_FAILED or MISSING_KEY) on a change of the publisher's state, and
  `room.events()` has a `DataTrackFrameDropped(DECRYPTION_FAILED)` per frame (logged at
  debug level). In a room without encryption an encrypted track's frames arrive as they
  are, ciphertext, as with the official SDK without a key.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TypeAlias, assert_never

import anyio

from lkproto import Connection
from lkproto import events as ev
from lkproto.datatracks import (
    DataTrackFrame,
    DataTrackInfo,
    PublishDataTrackError,
    PublishDataTrackErrorReason,
    PushFrameError,
    PushFrameErrorReason,
    SubscribeDataTrackError,
    SubscribeDataTrackErrorReason,
    SubscriptionState,
    UnpublishReason,
)
from lkproto.errors import LocalProtocolError

from ._checks import check_str
from ._errors import TransportClosedError
from ._pump import Pump, SessionHost

__all__ = [
    "DataTrackEvent",
    "DataTrackStream",
    "DataTracks",
    "LocalDataTrack",
    "RemoteDataTrack",
]

log = logging.getLogger("lkproto.transports")

DataTrackEvent: TypeAlias = (
    ev.DataTrackPublished
    | ev.DataTrackPublishFailed
    | ev.DataTrackRepublished
    | ev.DataTrackUnpublished
    | ev.RemoteDataTrackPublished
    | ev.RemoteDataTrackUnpublished
    | ev.RemoteDataTrackSidChanged
    | ev.DataTrackSubscribed
    | ev.DataTrackSubscriptionEnded
    | ev.DataTrackFrameReceived
    | ev.DataTrackFrameDropped
    | ev.DataTrackPacketDropped
    | ev.DataTrackSignalIgnored
)
Emit: TypeAlias = Callable[..., object]


class LocalDataTrack:
    """A data track we publish (livekit.rtc `LocalDataTrack`)."""

    def __init__(self, part: DataTracks, pub_handle: int, info: DataTrackInfo) -> None:
        self._part = part
        self._handle = pub_handle
        self._info = info

    @property
    def info(self) -> DataTrackInfo:
        """`sid` (changes after a full reconnect), `name`, `uses_e2ee`."""
        return self._info

    def try_push(self, frame: DataTrackFrame) -> None:
        """Send `frame` to the track's subscribers now, or raise `PushFrameError`.

        Frames are lossy: one that the data channel cannot take is dropped (the newest
        waits), never queued behind others."""
        self._part.push(self._handle, frame)

    def is_published(self) -> bool:
        """Whether the track is still published (True while a full reconnect republishes
        it; False once unpublished, by us or the server, or the room is gone)."""
        return self._part.is_published(self._handle)

    async def unpublish(self) -> None:
        """Unpublish the track (idempotent); subscribers see `data_track_unpublished`."""
        self._part.unpublish(self._handle)

    def __repr__(self) -> str:
        return f"LocalDataTrack(sid={self._info.sid}, name={self._info.name})"


class RemoteDataTrack:
    """A data track another participant publishes (livekit.rtc `RemoteDataTrack`)."""

    def __init__(self, part: DataTracks, publisher_identity: str, info: DataTrackInfo) -> None:
        self._part = part
        self._publisher_identity = publisher_identity
        self._info = info
        self._published = True

    @property
    def info(self) -> DataTrackInfo:
        """`sid` (the server's; it changes after the publisher's full reconnect), `name`,
        `uses_e2ee`."""
        return self._info

    @property
    def publisher_identity(self) -> str:
        """The identity of the participant publishing the track."""
        return self._publisher_identity

    def is_published(self) -> bool:
        """Whether the track is still published (False once unpublished, its publisher
        left, or the room is gone)."""
        return self._published

    def subscribe(self, *, buffer_size: int | None = None) -> DataTrackStream:
        """Subscribe: a stream of the frames that arrive from now on (see the module).

        `buffer_size`: frames held for a reader that is behind (None: the Config's, 16; 0 is
        clamped to 1); the oldest are dropped beyond it."""
        return self._part.subscribe(self, buffer_size)

    def set_pipeline_options(self, *, max_partial_frames: int | None = None) -> None:
        """How many frames are reassembled at once (default 1; 0 is clamped to 1; None keeps
        the current value), for this and later subscriptions."""
        self._part.set_pipeline_options(self, max_partial_frames)

    def __repr__(self) -> str:
        return (
            f"RemoteDataTrack(sid={self._info.sid}, name={self._info.name}, "
            f"publisher_identity={self._publisher_identity})"
        )


class DataTrackStream:
    """An active subscription: `async for frame in stream`, or `await stream.read()`.

    Closing it (or the last of a track's streams) unsubscribes. If the subscription fails,
    `SubscribeDataTrackError` is raised when iteration ends."""

    def __init__(self, part: DataTracks, track: RemoteDataTrack, buffer_size: int) -> None:
        self._part = part
        self._track = track
        self._frames: deque[DataTrackFrame] = deque()
        self._buffer_size = buffer_size
        self._ended = False
        self._error: SubscribeDataTrackError | None = None
        self._wake = anyio.Event()
        self.dropped = 0  #: frames lost because the reader was more than buffer_size behind

    @property
    def track(self) -> RemoteDataTrack:
        """The track this stream reads."""
        return self._track

    async def read(self) -> DataTrackFrame | None:
        """The next frame, or None once the stream has ended."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            return None

    def __aiter__(self) -> AsyncIterator[DataTrackFrame]:
        return self

    async def __anext__(self) -> DataTrackFrame:
        while True:
            if self._frames:
                return self._frames.popleft()
            if self._ended:
                error, self._error = self._error, None
                if error is not None:
                    raise error
                raise StopAsyncIteration
            self._wake = anyio.Event()
            await self._wake.wait()

    def close(self) -> None:
        """Stop reading; the last stream of a track to close unsubscribes. Idempotent."""
        if not self._ended:
            self._ended = True
            self._frames.clear()
            self._part.stream_closed(self)
            self._wake.set()

    async def aclose(self) -> None:
        """`close()`, for `async with contextlib.aclosing(...)` and livekit.rtc's name."""
        self.close()

    # Fed by the session (never blocks).
    def _push(self, frame: DataTrackFrame) -> None:
        if len(self._frames) >= self._buffer_size:
            self._frames.popleft()
            self.dropped += 1
        self._frames.append(frame)
        self._wake.set()

    def _end(self, error: SubscribeDataTrackError | None) -> None:
        if not self._ended:
            self._ended = True
            self._error = error
            self._wake.set()


class _Publishing:
    __slots__ = ("done", "failure", "track")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.track: LocalDataTrack | None = None
        self.failure: PublishDataTrackError | None = None


class DataTracks:
    """The session's data tracks: our publications, remote tracks and their readers."""

    def __init__(self, host: SessionHost, emit: Emit, buffer_size: int) -> None:
        self._host = host
        self._emit = emit
        self._buffer_size = buffer_size
        self._publishing: dict[int, _Publishing] = {}
        self.local: dict[int, LocalDataTrack] = {}
        self.remote: dict[str, RemoteDataTrack] = {}
        self.streams: dict[RemoteDataTrack, list[DataTrackStream]] = {}

    # -- publishing -----------------------------------------------------------------------------

    async def publish(self, name: str) -> LocalDataTrack:
        check_str("publish_data_track", "name", name)
        pump, conn = self._host.live("publish_data_track")
        handle = pump.call(conn.publish_data_track, name=name, now=pump.now())
        waiter = self._publishing[handle] = _Publishing()
        try:
            await waiter.done.wait()
        except BaseException:  # cancelled while waiting: withdraw the publish
            self._publishing.pop(handle, None)
            if self._host.ended is None and waiter.track is None:
                pump.call(conn.unpublish_data_track, handle, now=pump.now())
            raise
        if waiter.failure is not None:
            raise waiter.failure
        assert waiter.track is not None
        return waiter.track

    def push(self, handle: int, frame: DataTrackFrame) -> None:
        if not isinstance(frame, DataTrackFrame):
            raise TypeError(f"try_push: frame must be a DataTrackFrame, not {type(frame).__name__}")
        try:
            pump, conn = self._host.live("try_push")
        except TransportClosedError as exc:
            raise PushFrameError(PushFrameErrorReason.TRACK_UNPUBLISHED, frame, str(exc)) from None
        pump.call(conn.push_data_track_frame, handle, frame, now=pump.now())

    def is_published(self, handle: int) -> bool:
        conn = self._host.conn
        return (
            conn is not None and self._host.ended is None and conn.is_data_track_published(handle)
        )

    def unpublish(self, handle: int) -> None:
        live = self._live("unpublish")
        if live is not None:
            pump, conn = live
            pump.call(conn.unpublish_data_track, handle, now=pump.now())

    # -- subscribing ----------------------------------------------------------------------------

    def subscribe(self, track: RemoteDataTrack, buffer_size: int | None) -> DataTrackStream:
        size = self._buffer_size if buffer_size is None else buffer_size
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"subscribe: buffer_size must be an int, not {type(size).__name__}")
        if size < 0:
            raise ValueError(f"subscribe: buffer_size must not be negative, not {size}")
        stream = DataTrackStream(self, track, max(1, size))
        live = self._live("subscribe")
        if live is None:
            stream._end(_error(SubscribeDataTrackErrorReason.DISCONNECTED))
            return stream
        pump, conn = live
        if not track.is_published():
            stream._end(_error(SubscribeDataTrackErrorReason.UNPUBLISHED))
            return stream
        self.streams.setdefault(track, []).append(stream)
        sid = track.info.sid
        if conn.data_track_subscription(sid) is SubscriptionState.NONE:
            try:
                pump.call(conn.subscribe_data_track, sid, now=pump.now())
            except LocalProtocolError:  # a reconnect is under way: the room cannot ask now
                self._end_streams(track, _error(SubscribeDataTrackErrorReason.DISCONNECTED))
        return stream

    def stream_closed(self, stream: DataTrackStream) -> None:
        streams = self.streams.get(stream.track)
        if streams is None or stream not in streams:
            return
        streams.remove(stream)
        if streams:
            return
        del self.streams[stream.track]
        live = self._live("close")
        if live is not None:
            pump, conn = live
            pump.call(conn.unsubscribe_data_track, stream.track.info.sid, now=pump.now())

    def set_pipeline_options(self, track: RemoteDataTrack, max_partial_frames: int | None) -> None:
        if max_partial_frames is not None and (
            isinstance(max_partial_frames, bool) or not isinstance(max_partial_frames, int)
        ):
            kind = type(max_partial_frames).__name__
            raise TypeError(f"set_pipeline_options: max_partial_frames must be an int, not {kind}")
        if max_partial_frames is not None and max_partial_frames < 0:
            raise ValueError("set_pipeline_options: max_partial_frames must not be negative")
        live = self._live("set_pipeline_options")
        if live is not None:
            pump, conn = live
            pump.call(
                conn.set_data_track_pipeline_options,
                track.info.sid,
                max_partial_frames=max_partial_frames,
            )

    # -- what the core reports ------------------------------------------------------------------

    def on_event(self, event: DataTrackEvent) -> None:
        match event:
            case ev.DataTrackPublished():
                track = self.local[event.pub_handle] = LocalDataTrack(
                    self, event.pub_handle, event.info
                )
                waiter = self._publishing.pop(event.pub_handle, None)
                if waiter is not None:
                    waiter.track = track
                    waiter.done.set()
            case ev.DataTrackPublishFailed():
                waiter = self._publishing.pop(event.pub_handle, None)
                if waiter is not None:
                    waiter.failure = event.exception()
                    waiter.done.set()
            case ev.DataTrackRepublished():
                found = self.local.get(event.pub_handle)
                if found is not None:
                    found._info = event.info
            case ev.DataTrackUnpublished():
                self.local.pop(event.pub_handle, None)
                if event.reason in (UnpublishReason.SERVER, UnpublishReason.REPUBLISH_FAILED):
                    log.info("data track %s was unpublished: %s", event.sid, event.message)
            case ev.RemoteDataTrackPublished():
                remote = self.remote[event.info.sid] = RemoteDataTrack(
                    self, event.publisher_identity, event.info
                )
                self._emit("data_track_published", remote)
            case ev.RemoteDataTrackUnpublished():
                gone = self.remote.pop(event.sid, None)
                if gone is not None:
                    gone._published = False
                    self._end_streams(gone, None)
                self._emit("data_track_unpublished", event.sid)
            case ev.RemoteDataTrackSidChanged():
                moved = self.remote.pop(event.previous_sid, None)
                if moved is not None:
                    moved._info = event.info
                    self.remote[event.info.sid] = moved
            case ev.DataTrackSubscriptionEnded():
                ended = self.remote.get(event.sid)
                if ended is not None:
                    self._end_streams(ended, event.exception() if event.is_error else None)
            case ev.DataTrackFrameReceived():
                found_remote = self.remote.get(event.sid)
                for stream in self.streams.get(found_remote, ()) if found_remote else ():
                    stream._push(event.frame)
            case ev.DataTrackSubscribed():
                pass
            case ev.DataTrackFrameDropped() | ev.DataTrackPacketDropped():
                log.debug("data track: %s", event)
            case ev.DataTrackSignalIgnored():
                log.debug("data track signal ignored (%s): %s", event.reason, event.detail)
            case _:
                assert_never(event)

    def ended(self) -> None:
        """The session ended: waiters fail, readers end."""
        for waiter in self._publishing.values():
            reason = PublishDataTrackErrorReason.DISCONNECTED
            waiter.failure = PublishDataTrackError(reason, "the room disconnected")
            waiter.done.set()
        self._publishing.clear()
        for track in list(self.streams):
            self._end_streams(track, _error(SubscribeDataTrackErrorReason.DISCONNECTED))
        for remote in self.remote.values():
            remote._published = False

    def _end_streams(self, track: RemoteDataTrack, error: SubscribeDataTrackError | None) -> None:
        for stream in self.streams.pop(track, ()):
            stream._end(error)

    def _live(self, call: str) -> tuple[Pump, Connection] | None:
        try:
            return self._host.live(call)
        except TransportClosedError:
            return None


def _error(reason: SubscribeDataTrackErrorReason) -> SubscribeDataTrackError:
    return ev.DataTrackSubscriptionEnded(
        sid="", publisher_identity="", reason=reason, active=False
    ).exception()
