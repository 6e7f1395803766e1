"""`lkproto.transports.trio`: the `livekit.rtc` data-plane API, trio-native.

Structured lifetime, next to the `livekit.rtc` names:

    async with Room().connect(url, token, options) as room:  # joined, channel open
        await room.local_participant.publish_data(b"hi")
    # left the room; the session ran in a nursery of this task and has finished

`await room.connect(...)` / `await room.disconnect()` work too, as in `livekit.rtc`; the
session then runs as a trio system task until the room ends.

Theory of operation. The room is the shared async Room (transports/_async_room.py) over the
shared session (transports/_session.py), which already reads the signal socket, writes in
order through one FIFO writer and sleeps until the core's deadline (`Pump`); this module
gives it a trio `Runtime` (where the session's tasks live, the dialer, aiortc behind a
thread) and changes what users see:
- `connect()` returns an object that is both awaitable and an async context manager. As a
  context manager it opens a nursery in the caller's task and starts the session in it, so
  the session is a child of the code that uses the room: cancelling that code (trio's
  `move_on_after`, a nursery cancel) cancels the session, and leaving the block leaves the
  room (shielded, bounded by `_LEAVE_TIMEOUT`). Exceptions are not wrapped in
  `ExceptionGroup`s: a lone error from the block, or a `ConnectError`, propagates as itself.
- `event_channel()` hands out a `trio.MemoryReceiveChannel` of the core's typed events,
  bounded (`max_buffer_size`; overflow drops the newest event and logs it).
- `Room(dialer=...)` opens the signal connection with your own function returning a
  `trio.abc.Stream` (a proxy, a Unix socket, or `trio.testing.memory_stream_pair` in tests);
  trio's stream errors are turned into lkproto's `TransportError`s.
- aiortc, asyncio-only, runs behind `AsyncioThreadBridge` (an asyncio loop on a helper
  thread); its reports come back in order through `TrioToken.run_sync_soon`.
Users see lkproto's exceptions (`ConnectError`, `TransportClosedError`, `PublishDataError`,
`RpcError`, ...) and trio's `Cancelled`, never a trio resource error.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
from types import TracebackType

import anyio
import anyio.abc
import trio

from lkproto import Config
from lkproto import events as ev
from lkproto.models import IceServer as CoreIceServer

from . import _exports
from ._async_room import AsyncRoom
from ._audio import AudioSource
from ._datatracks import DataTrackStream, LocalDataTrack, RemoteDataTrack
from ._exports import *  # noqa: F403 - the names every adapter exports (one list)
from ._media import MediaRouter
from ._participant import LocalParticipant
from ._ports import PeerListener, PeerPort
from ._room import RoomOptions
from ._rtc_config import IcePolicy
from ._runtime import Dial, bridged_peer
from ._streams import ByteStreamReader, ByteStreamWriter, TextStreamReader, TextStreamWriter
from ._tracks import AudioStream, LocalTrackPublication, VideoStream
from ._video import VideoSource

__all__ = [
    "AudioSource",
    "AudioStream",
    "ByteStreamReader",
    "ByteStreamWriter",
    "Connecting",
    "DataTrackStream",
    "Dialer",
    "LocalDataTrack",
    "LocalParticipant",
    "LocalTrackPublication",
    "RemoteDataTrack",
    "Room",
    "TextStreamReader",
    "TextStreamWriter",
    "VideoSource",
    "VideoStream",
]
__all__ += _exports.__all__

log = logging.getLogger("lkproto.transports")

Dialer = Callable[[str, int, bool], Awaitable[trio.abc.Stream]]
"""`dialer(host, port, tls)` opens the signal connection's byte stream."""

_LEAVE_TIMEOUT = 5.0  # leaving at the end of `async with` waits this long, at most


class Room(AsyncRoom):
    """A LiveKit room on trio: `livekit.rtc.Room`'s data plane, with structured lifetime."""

    def __init__(
        self, loop: object = None, *, config: Config | None = None, dialer: Dialer | None = None
    ) -> None:
        del loop  # accepted for signature compatibility with livekit.rtc.Room
        self._runtime = _TrioRuntime(dialer)
        super().__init__(config, self._runtime)

    def connect(self, url: str, token: str, options: RoomOptions | None = None) -> Connecting:
        """Join the room: `await` it (as in `livekit.rtc`), or use it as an async context
        manager that yields the connected room and leaves it on exit."""
        return Connecting(self, url, token, options)

    def event_channel(
        self, max_buffer_size: int | None = None
    ) -> trio.MemoryReceiveChannel[ev.Event]:
        """A channel of every core event from now on; it closes when the session ends.
        `max_buffer_size`: events it may hold (None: `Config.max_queued_events`); past it the
        newest is dropped for this channel and a WARNING logged."""
        size = self._config.max_queued_events if max_buffer_size is None else max_buffer_size
        send, receive = trio.open_memory_channel[ev.Event](size)
        if not self._session.subscribe(_ChannelSubscriber(send)):
            send.close()
        return receive

    @contextlib.asynccontextmanager
    async def _lifetime(
        self, url: str, token: str, options: RoomOptions | None
    ) -> AsyncIterator[Room]:
        try:
            async with trio.open_nursery() as nursery:
                self._runtime.nursery = nursery
                try:
                    await AsyncRoom.connect(self, url, token, options)
                    yield self
                finally:
                    with trio.CancelScope(shield=True), trio.move_on_after(_LEAVE_TIMEOUT):
                        await self.disconnect()
                    self._runtime.nursery = None
        except BaseExceptionGroup as group:
            raise _unwrap(group) from None


class _TrioRuntime:
    """Where a trio Room's session lives: in the nursery of `async with room.connect(...)`
    (shielded: it is ended by `disconnect()`, which `_lifetime` ensures, so a cancelled
    caller still leaves cleanly, with `leave` and a close frame), else in a system task.
    aiortc runs behind a thread bridge; `dialer` replaces TCP dialing."""

    def __init__(self, dialer: Dialer | None) -> None:
        self.nursery: trio.Nursery | None = None
        self.dialer = None if dialer is None else _wrap_dialer(dialer)

    def spawn(self, run: Callable[[], Coroutine[object, object, None]]) -> None:
        if self.nursery is None:
            trio.lowlevel.spawn_system_task(run)
            return

        async def shielded() -> None:
            with trio.CancelScope(shield=True):
                await run()

        self.nursery.start_soon(shielded)

    def make_peer(
        self,
        listener: PeerListener,
        *,
        host_addresses: list[str] | None,
        ice_servers: list[CoreIceServer],
        media: MediaRouter | None = None,
        ice_policy: IcePolicy | None = None,
    ) -> PeerPort:
        return bridged_peer(
            listener,
            host_addresses=host_addresses,
            ice_servers=ice_servers,
            media=media,
            ice_policy=ice_policy,
        )


def _wrap_dialer(dialer: Dialer) -> Dial:
    async def dial(host: str, port: int, tls: bool) -> anyio.abc.ByteStream:
        return _TrioByteStream(await dialer(host, port, tls))

    return dial


class Connecting(Coroutine[object, object, None]):
    """What `Room.connect` returns: await it, or `async with` it."""

    def __init__(self, room: Room, url: str, token: str, options: RoomOptions | None) -> None:
        self._room = room
        self._args = (url, token, options)
        self._started: Coroutine[object, object, None] | None = None  # made on first use
        self._lifetime: contextlib.AbstractAsyncContextManager[Room] | None = None

    @property
    def _coroutine(self) -> Coroutine[object, object, None]:
        if self._started is None:
            self._started = AsyncRoom.connect(self._room, *self._args)
        return self._started

    def __await__(self) -> Generator[object, None, None]:
        return self._coroutine.__await__()

    def send(self, value: object) -> object:
        """Part of `Coroutine`: what `await room.connect(...)` drives."""
        return self._coroutine.send(value)

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: object = None,
        tb: TracebackType | None = None,
    ) -> object:
        """Part of `Coroutine`: what `await room.connect(...)` drives."""
        if isinstance(typ, BaseException):
            return self._coroutine.throw(typ)
        return self._coroutine.throw(typ, val, tb)  # pragma: no cover - legacy signature

    def close(self) -> None:
        """Close the coroutine (part of `Coroutine`; `await` or `async with` it instead)."""
        if self._started is not None:
            self._started.close()

    def __repr__(self) -> str:  # never show the token
        return f"<Connecting to {self._args[0]!r}>"

    async def __aenter__(self) -> Room:
        self._lifetime = self._room._lifetime(*self._args)
        return await self._lifetime.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._lifetime is not None
        return await self._lifetime.__aexit__(exc_type, exc, tb)


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one real error of a nursery's group (trio's `Cancelled`s aside), else the group."""
    errors = [e for e in group.exceptions if not isinstance(e, trio.Cancelled)]
    if len(errors) == 1:
        inner = errors[0]
        return _unwrap(inner) if isinstance(inner, BaseExceptionGroup) else inner
    if not errors and group.exceptions:
        return group.exceptions[0]
    return group


class _ChannelSubscriber:
    """A trio send channel behind the anyio-shaped subscriber interface of the room."""

    def __init__(self, send: trio.MemorySendChannel[ev.Event]) -> None:
        self._send = send

    def send_nowait(self, item: ev.Event) -> None:
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            raise anyio.WouldBlock from None
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise anyio.BrokenResourceError from None

    def close(self) -> None:
        self._send.close()

    def statistics(self) -> trio.MemoryChannelStatistics:
        return self._send.statistics()


class _TrioByteStream(anyio.abc.ByteStream):
    """A `trio.abc.Stream` seen as an anyio byte stream, with trio's errors mapped."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream

    async def receive(self, max_bytes: int = 65536) -> bytes:
        try:
            data = await self._stream.receive_some(max_bytes)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise anyio.BrokenResourceError(str(exc.__cause__ or exc)) from exc.__cause__
        if not data:
            raise anyio.EndOfStream
        return bytes(data)

    async def send(self, item: bytes) -> None:
        try:
            await self._stream.send_all(item)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise anyio.BrokenResourceError(str(exc.__cause__ or exc)) from exc.__cause__

    async def send_eof(self) -> None:  # pragma: no cover - the WebSocket never half-closes
        raise NotImplementedError

    async def aclose(self) -> None:
        await self._stream.aclose()
