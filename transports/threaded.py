"""`lkproto.transports.threaded`: the `livekit.rtc` data-plane API, blocking, for threaded code.

The same names as `livekit.rtc` without `await`:

    from lkproto.transports.threaded import Room, RoomOptions

    with Room() as room:                      # leaves the room at the end of the block
        room.connect(url, token, RoomOptions())
        room.local_participant.publish_data(b"hi")
        answer = room.local_participant.perform_rpc(
            destination_identity="bob", method="echo", payload="x", response_timeout=5
        )

Theory of operation. A connected Room owns three kinds of threads:
- one I/O thread running an asyncio loop (an anyio `BlockingPortal`) that hosts an async Room
  over the shared session (transports/_async_room.py, _session.py): it reads, writes in order
  and sleeps until the core's deadline, as in async code. Every blocking method hands its work
  to that loop through the portal and waits for the result, so any thread may call any method.
  No user code ever runs on the I/O thread, so a slow handler cannot stall keepalive or other
  traffic; a call made from the I/O thread itself is refused (it would deadlock).
- a pool of handler threads: each RPC handler (`def handler(data) -> str`) and each stream
  handler (`def handler(reader, participant_identity)`, with a blocking, iterable reader) runs
  on one of them, several at once. Handlers may call back into the room. A handler whose
  call is cancelled (the caller's deadline passed, or we disconnect) cannot be interrupted:
  the caller gets its error at once and the handler's late result is dropped.
- one dispatcher thread for `room.on(...)` callbacks: they run there one at a time, in the
  order the room emitted them (a slow callback delays later callbacks, nothing else; at most
  10 000 wait, then the newest are dropped and logged). `connect()` and `disconnect()`
  return after the callbacks for what they caused (`connected`, `disconnected`, ...) ran;
  other calls do not wait for callbacks, so a call may return before the callback for an
  event that came just before its result (e.g. `participant_disconnected` and the 1503 of
  an RPC to that participant).
Audio: `AudioSource.capture_frame` blocks while its queue is full and an `AudioStream` is a
blocking iterator (both thread-safe, with timeouts); `track.mute()` and
`publication.set_subscribed()` may be called from any thread. Video: `VideoSource.capture_frame`
never blocks (the oldest queued frame is dropped) and a `VideoStream` is a blocking iterator.
`disconnect()` (or leaving the `with` block) leaves the room, then stops and joins the I/O
thread; a new Room can be created at any time. Rooms still connected when the interpreter
exits are disconnected by an `atexit` hook. Errors are lkproto's (`ConnectError`,
`TransportClosedError`, `RpcError`, `PublishDataError`, `StreamError`, ...), never asyncio's.

Fork. Threads do not survive `fork()`: in a child process (`os.fork`, multiprocessing's
"fork" start method) a Room inherited from the parent has no I/O thread. An at-fork hook marks
every inherited Room as closed in the child: its methods raise `TransportClosedError` saying
so, `disconnect()` is a no-op, and the parent's session is left untouched (the child never
writes to the inherited sockets). A new Room created in the child works normally, as in a
process started with "spawn" or "forkserver"; the parent's Room keeps working. (Forking a
process that runs threads stays delicate in general: a lock another thread held at that
moment stays held in the child. One that bites in practice is a log file's: if another thread
was writing a record, the child's first record to that handler waits for ever, because
`logging` renews its handlers' locks in the child but not their streams'. Fork before such
threads log, hold the handlers' locks across the fork, or use "spawn", which avoids the
question.)
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import logging
import os
import queue
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from types import TracebackType
from typing import TypeAlias, TypeVar

from lkproto import Config, Connection
from lkproto import events as ev
from lkproto.streams import StreamKind

from . import _datatracks, _exports, _streams
from ._async_room import AsyncRoom
from ._blocking import (
    FORKED,
    ByteStreamReader,
    ByteStreamWriter,
    Feeds,
    Inner,
    IoThread,
    LocalParticipant,
    RpcHandler,
    TextStreamReader,
    TextStreamWriter,
)
from ._blocking_datatracks import DataTrackStream, LocalDataTrack, RemoteDataTrack, TrackWrappers
from ._blocking_media import (
    AudioSource,
    AudioStream,
    LocalTrackPublication,
    VideoSource,
    VideoStream,
)
from ._checks import check_connect_arguments
from ._exports import *  # noqa: F403 - the names every adapter exports (one list)
from ._exports import (  # after the * import, or mypy would not see them re-exported
    ConnectError,
    DisconnectReason,
    E2EEManager,
    LocalProtocolError,
    SimulateScenario,
    TransportClosedError,
)
from ._room import ConnectionState, RemoteParticipant, RoomInfo, RoomModel, RoomOptions
from ._runtime import AnyioRuntime

__all__ = [
    "AudioSource",
    "AudioStream",
    "ByteStreamReader",
    "ByteStreamWriter",
    "DataTrackStream",
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

_HANDLER_THREADS = 32  # RPC and stream handlers running at once, per room
_EMPTY = RoomModel()  # what a Room that never connected shows

T = TypeVar("T")
TextStreamHandler: TypeAlias = Callable[[TextStreamReader, str], object]
ByteStreamHandler: TypeAlias = Callable[[ByteStreamReader, str], object]

_live_rooms: weakref.WeakSet[Room] = weakref.WeakSet()  # rooms with a running I/O thread


class Room(RoomInfo):
    """A LiveKit room, as `livekit.rtc.Room` for the data plane, with blocking methods."""

    def __init__(self, *, config: Config | None = None) -> None:
        super().__init__()
        self._config = config
        self._max_queued_events = (config or Config()).max_queued_events
        self._life = threading.Lock()  # guards the fields below and the handler tables
        self._counter = threading.Lock()  # guards _pending
        self._io = IoThread()
        self._dispatch_thread: int | None = None
        self._handlers: concurrent.futures.ThreadPoolExecutor | None = None
        self._callbacks: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending = 0
        self._feeds: list[queue.SimpleQueue[ev.Event | None]] = []  # one per events() iterator
        self._feed = Feeds(self._feeds, self._max_queued_events)
        self._rpc: dict[str, RpcHandler] = {}
        self._streams: dict[tuple[bool, str], Callable[..., object]] = {}  # (text?, topic)
        self._local = LocalParticipant(self._io, self._register_rpc, config)
        self._tracks = TrackWrappers(self._io)  # blocking twins of the remote data tracks
        self._no_e2ee = E2EEManager(None, None)  # e2ee_manager before connect()

    # -- livekit.rtc properties -----------------------------------------------------------------

    @property
    def local_participant(self) -> LocalParticipant:
        """Our participant; available before `connect()` too, so RPC methods can be registered
        early."""
        return self._local

    @property
    def remote_participants(self) -> Mapping[str, RemoteParticipant]:
        """A snapshot; the participant objects are the ones callbacks receive."""
        return dict(self._model.remote)

    @property
    def connection_state(self) -> ConnectionState:
        """`ConnectionState`: disconnected, connected, or reconnecting."""
        if self._io.portal is None:
            return ConnectionState.CONN_DISCONNECTED
        return self._model.connection_state

    @property
    def e2ee_manager(self) -> E2EEManager:
        """As the anyio Room's; its key verbs block while the I/O thread carries them out."""
        inner = self._io.inner
        return self._no_e2ee if inner is None else inner.room.e2ee_manager

    @property
    def connection(self) -> Connection | None:
        """The sans-I/O core behind this room (read only: it changes on the I/O thread)."""
        return None if self._io.inner is None else self._io.inner.room.connection

    @property
    def _model(self) -> RoomModel:  # an empty one until connect()
        return _EMPTY if self._io.inner is None else self._io.inner.session.model

    # -- connect / disconnect -------------------------------------------------------------------

    def connect(self, url: str, token: str, options: RoomOptions | None = None) -> None:
        """Join the room; returns when joined with the reliable data channel open.

        Raises `ConnectError` (the server's reason, token redacted) on failure or timeout,
        `TypeError`/`ValueError` for wrong arguments. A Room may connect again after a
        failed connect or a `disconnect()`, as in `livekit.rtc`; its RPC methods and stream
        handlers carry over.
        """
        check_connect_arguments(url, token, options)
        self._open()
        try:
            self._io.call("connect", lambda inner: inner.room.connect(url, token, options))
        except TransportClosedError:
            self.disconnect()
            raise ConnectError("connect: the room was disconnected while joining") from None
        except BaseException:
            self.disconnect()
            raise
        self._flush()

    def _open(self) -> None:
        """Start the I/O thread (with the session), the handler pool and the dispatcher."""
        with self._life:
            if self._io.inherited:
                raise LocalProtocolError(f"connect: {FORKED}", call="connect")
            if self._io.portal is not None:
                raise LocalProtocolError(
                    "connect: this Room is connected or connecting; disconnect() first",
                    call="connect",
                )
            self._feeds.clear()  # the last session's iterators have ended
            portal = self._io.start_thread()
            _live_rooms.add(self)
            self._handlers = concurrent.futures.ThreadPoolExecutor(
                _HANDLER_THREADS, thread_name_prefix="lkproto-handler"
            )
            self._callbacks = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="lkproto-events"
            )
            self._io.inner = portal.call(self._make_inner)

    def disconnect(self, *, reason: DisconnectReason = DisconnectReason.CLIENT_INITIATED) -> None:
        """Leave the room, close its connections and stop its threads. Idempotent."""
        with self._life:
            if self._io.portal is not None:
                with contextlib.suppress(TransportClosedError):
                    self._io.call("disconnect", lambda inner: inner.room.disconnect(reason=reason))
                _live_rooms.discard(self)
                self._io.stop_thread()  # cancels other threads' calls still waiting; joins
                if self._handlers is not None:
                    self._handlers.shutdown(wait=False, cancel_futures=True)
                self._feed.end()
        callbacks = self._callbacks
        if callbacks is not None and self._io.portal is None:
            # Run the callbacks already queued (the last is `disconnected`), then stop.
            callbacks.shutdown(wait=threading.get_ident() != self._dispatch_thread)

    def simulate_scenario(self, scenario: SimulateScenario | int) -> None:
        """Cause a failure, for testing (see the anyio Room's `simulate_scenario`)."""
        self._io.call("simulate_scenario", lambda inner: inner.room.simulate_scenario(scenario))

    def __enter__(self) -> Room:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    def events(self) -> Iterator[ev.Event]:
        """Every core event from now on, until the session ends (`Disconnected` is last)."""
        with self._life:
            inner = self._io.inner
            if self._io.portal is None or inner is None or inner.session.ended is not None:
                return iter(())
            return self._feed.open()

    # -- handlers -------------------------------------------------------------------------------

    def register_text_stream_handler(self, topic: str, handler: TextStreamHandler) -> None:
        """Route text streams on `topic` to `handler(reader, participant_identity)`, a plain
        function run on a handler thread with a blocking `TextStreamReader`."""
        self._register_stream(True, topic, handler)

    def register_byte_stream_handler(self, topic: str, handler: ByteStreamHandler) -> None:
        """Route byte streams on `topic` to `handler(reader, participant_identity)`."""
        self._register_stream(False, topic, handler)

    def unregister_text_stream_handler(self, topic: str) -> None:
        """Stop routing text streams on `topic`; new ones are dropped (and reported). Idempotent."""
        self._register_stream(True, topic, None)

    def unregister_byte_stream_handler(self, topic: str) -> None:
        """Stop routing byte streams on `topic`; new ones are dropped (and reported). Idempotent."""
        self._register_stream(False, topic, None)

    def _register_stream(self, text: bool, topic: str, fn: Callable[..., object] | None) -> None:
        key = (text, topic)
        with self._life:
            if fn is not None and key in self._streams:
                kind = "text" if text else "byte"
                raise ValueError(f"a {kind} stream handler for topic {topic!r} is already set")
            if fn is None and self._streams.pop(key, None) is None:
                return
            if fn is not None:
                self._streams[key] = fn
        with contextlib.suppress(TransportClosedError):  # not connected: _make_inner installs it
            self._io.call("register", lambda i: _apply(self._install_stream, i, text, topic, fn))

    def _register_rpc(self, method: str, fn: RpcHandler | None) -> None:
        with self._life:
            if fn is not None:
                self._rpc[method] = fn
            elif self._rpc.pop(method, None) is None:
                return
        with contextlib.suppress(TransportClosedError):  # as above
            self._io.call("register", lambda i: _apply(self._install_rpc, i, method, fn))

    def _make_inner(self) -> Inner:  # on the I/O thread, under self._life
        room = AsyncRoom(self._config, AnyioRuntime(), emit=self._emit, subscriber=self._feed)
        inner = Inner(room)
        inner.session.local_publication = LocalTrackPublication
        for method, fn in self._rpc.items():
            self._install_rpc(inner, method, fn)
        for (text, topic), handler in self._streams.items():
            self._install_stream(inner, text, topic, handler)
        return inner

    def _install_rpc(self, inner: Inner, method: str, fn: RpcHandler | None) -> None:
        if fn is None:
            inner.session.rpc.unregister(method)
        else:
            inner.session.rpc.register(method, functools.partial(self._offload, fn))

    def _install_stream(
        self, inner: Inner, text: bool, topic: str, fn: Callable[..., object] | None
    ) -> None:
        streams = inner.session.streams
        if fn is None:
            streams.unregister(StreamKind.TEXT if text else StreamKind.BYTES, topic)
            return

        def on_stream(
            reader: _streams.TextStreamReader | _streams.ByteStreamReader, sender: str
        ) -> Awaitable[object]:
            if isinstance(reader, _streams.TextStreamReader):
                return self._offload(fn, TextStreamReader(self._io, reader), sender)
            return self._offload(fn, ByteStreamReader(self._io, reader), sender)

        if text:
            streams.register_text(topic, on_stream)
        else:
            streams.register_bytes(topic, on_stream)

    async def _offload(self, fn: Callable[..., T], *args: object) -> T:
        """Run a user handler on a handler thread (on the I/O loop: awaits its result)."""
        pool = self._handlers
        if pool is None:  # pragma: no cover - handlers only run while connected
            raise TransportClosedError("the room is not connected")
        return await asyncio.wrap_future(pool.submit(fn, *args))

    # -- emissions, run on the dispatcher thread -------------------------------------------------

    def _emit(self, name: str, *args: object) -> None:
        self._post(name, args)

    def _post(self, name: str, args: tuple[object, ...]) -> None:
        """Queue an emission for the dispatcher thread (called on the I/O thread)."""
        pool = self._callbacks
        if pool is None:  # pragma: no cover - emissions only happen while connected
            return
        args = tuple(self._swap(a) for a in args)
        with self._counter:
            bound = self._max_queued_events
            if self._pending >= bound:
                log.warning("event callbacks are %d behind; dropped %r", bound, name)
                return
            self._pending += 1
        with contextlib.suppress(RuntimeError):  # shut down: the interpreter is exiting
            pool.submit(self._dispatch, name, args)

    def _swap(self, arg: object) -> object:
        """Callbacks see this Room's local participant, not the session's async one."""
        if self._io.inner is not None and arg is self._io.inner.local:
            return self._local
        if isinstance(arg, _datatracks.RemoteDataTrack):
            return self._tracks.wrap(arg)
        return [self._swap(a) for a in arg] if isinstance(arg, list) else arg

    def _dispatch(self, name: str, args: tuple[object, ...]) -> None:
        self._dispatch_thread = threading.get_ident()
        with self._counter:
            self._pending -= 1
        self.emit(name, *args)

    def _flush(self) -> None:
        """Wait until the callbacks queued so far have run (unless called from one)."""
        pool = self._callbacks
        if pool is not None and threading.get_ident() != self._dispatch_thread:
            with contextlib.suppress(RuntimeError):
                pool.submit(int).result()

    def _orphan(self) -> None:
        """In a forked child: this room's threads do not exist here."""
        self._life, self._counter = threading.Lock(), threading.Lock()
        self._handlers, self._callbacks = None, None
        self._io.orphan()
        self._feed.end()


async def _apply(fn: Callable[..., None], *args: object) -> None:
    fn(*args)


def _after_fork_in_child() -> None:
    for room in list(_live_rooms):
        room._orphan()
    _live_rooms.clear()


def _leave_at_exit() -> None:
    for room in list(_live_rooms):
        with contextlib.suppress(Exception):
            room.disconnect()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_leave_at_exit)
