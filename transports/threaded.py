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
- one I/O thread running an asyncio loop (an anyio `BlockingPortal`) that hosts an
  `lkproto.transports.anyio.Room`: it reads, writes in order and sleeps until the core's
  deadline, as in async code. Every blocking method hands its work to that loop
  through the portal and waits for the result, so any thread may call any method. No user
  code ever runs on the I/O thread, so a slow handler cannot stall keepalive or other traffic;
  a call made from the I/O thread itself is refused (it would deadlock).
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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Concatenate, Generic, ParamSpec, TypeAlias, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from lkproto import Config, Connection
from lkproto import events as ev
from lkproto.errors import LocalProtocolError
from lkproto.models import Participant, ReconnectMode, SimulateScenario

from . import anyio as _anyio
from ._errors import TransportClosedError
from ._room import EventEmitter, LocalParticipantInfo
from .anyio import (
    ByteStreamInfo,
    ConnectError,
    ConnectionState,
    DataPacket,
    DataPacketKind,
    DisconnectReason,
    MetadataUpdateError,
    PublishDataError,
    RemoteParticipant,
    RoomOptions,
    RpcError,
    RpcInvocationData,
    RtcConfiguration,
    SipDTMF,
    StreamError,
    TextStreamInfo,
    Transcription,
    TranscriptionSegment,
)

__all__ = [
    "ByteStreamInfo",
    "ByteStreamReader",
    "ByteStreamWriter",
    "ConnectError",
    "ConnectionState",
    "DataPacket",
    "DataPacketKind",
    "DisconnectReason",
    "LocalParticipant",
    "MetadataUpdateError",
    "PublishDataError",
    "ReconnectMode",
    "RemoteParticipant",
    "Room",
    "RoomOptions",
    "RpcError",
    "RpcInvocationData",
    "RtcConfiguration",
    "SimulateScenario",
    "SipDTMF",
    "StreamError",
    "TextStreamInfo",
    "TextStreamReader",
    "TextStreamWriter",
    "Transcription",
    "TranscriptionSegment",
    "TransportClosedError",
]

log = logging.getLogger("lkproto.transports")

_HANDLER_THREADS = 32  # RPC and stream handlers running at once, per room

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")
C = TypeVar("C", str, bytes)
RpcHandler: TypeAlias = Callable[[RpcInvocationData], "str | None"]
TextStreamHandler: TypeAlias = Callable[["TextStreamReader", str], object]
ByteStreamHandler: TypeAlias = Callable[["ByteStreamReader", str], object]
ProgressCallback: TypeAlias = Callable[[int, "int | None"], object]

_live_rooms: weakref.WeakSet[Room] = weakref.WeakSet()  # rooms with a running I/O thread


class _Reader(Generic[C]):
    def __init__(
        self, room: Room, inner: AsyncIterator[C], aclose: Callable[[], Awaitable[None]]
    ) -> None:
        self._room = room
        self._inner: AsyncIterator[C] = inner
        self._aclose = aclose

    def __iter__(self) -> Iterator[C]:
        return self

    def __next__(self) -> C:
        found: tuple[C] | None = self._room._call("read", lambda _: _next_chunk(self._inner))
        if found is None:
            raise StopIteration
        return found[0]

    def close(self) -> None:
        """Stop reading: the rest of the stream is discarded (and no longer buffered)."""
        self._room._call("close", lambda _: self._aclose())


class TextStreamReader(_Reader[str]):
    """A text stream being received: iterate for chunks (`for text in reader`), or
    `read_all()`. Each call blocks until data arrives; a failed stream raises `StreamError`."""

    def __init__(self, room: Room, inner: _anyio.TextStreamReader) -> None:
        super().__init__(room, inner, inner.aclose)
        self.sender_identity = inner.sender_identity
        self.info: TextStreamInfo = inner.info

    def read_all(self) -> str:
        return "".join(self)


class ByteStreamReader(_Reader[bytes]):
    """A byte stream being received: iterate for chunks, or `read_all()`."""

    def __init__(self, room: Room, inner: _anyio.ByteStreamReader) -> None:
        super().__init__(room, inner, inner.aclose)
        self.sender_identity = inner.sender_identity
        self.info: ByteStreamInfo = inner.info

    def read_all(self) -> bytes:
        return b"".join(self)


class _Writer:
    def __init__(self, room: Room, inner: _anyio.TextStreamWriter | _anyio.ByteStreamWriter):
        self._room = room
        self._inner = inner

    def aclose(self, *, reason: str = "", attributes: Mapping[str, str] | None = None) -> None:
        """End the stream (`livekit.rtc`'s name; a non-empty `reason` aborts it)."""
        self._room._call(
            "aclose", lambda _: self._inner.aclose(reason=reason, attributes=attributes)
        )

    close = aclose

    def __enter__(self: W) -> W:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        """Close the stream if still open; aborted (with a reason) if the block raised."""
        try:
            self._room._call("aclose", lambda _: self._inner.__aexit__(exc_type, exc, tb))
        except TransportClosedError:
            if exc is None:
                raise


W = TypeVar("W", bound=_Writer)


class TextStreamWriter(_Writer):
    """`write(text)` blocks while the data channel is over its high watermark."""

    def __init__(self, room: Room, inner: _anyio.TextStreamWriter) -> None:
        super().__init__(room, inner)
        self._text = inner
        self.info: TextStreamInfo = inner.info

    def write(self, text: str) -> None:
        self._room._call("write", lambda _: self._text.write(text))


class ByteStreamWriter(_Writer):
    """`write(data)` blocks while the data channel is over its high watermark."""

    def __init__(self, room: Room, inner: _anyio.ByteStreamWriter) -> None:
        super().__init__(room, inner)
        self._bytes = inner
        self.info: ByteStreamInfo = inner.info

    def write(self, data: bytes) -> None:
        self._room._call("write", lambda _: self._bytes.write(data))


def _blocking(
    method: Callable[Concatenate[_anyio.LocalParticipant, P], Awaitable[R]],
    wrap: Callable[[Room, R], T],
) -> Callable[Concatenate[LocalParticipant, P], T]:
    """The blocking twin of an anyio `LocalParticipant` method: same parameters, run on the
    room's I/O thread; `wrap(room, result)` makes the result blocking too (writers)."""

    @functools.wraps(method)
    def call(self: LocalParticipant, /, *args: P.args, **kwargs: P.kwargs) -> T:
        room = self._room
        done = room._call(method.__name__, lambda r: method(r.local_participant, *args, **kwargs))
        return wrap(room, done)

    return call


def _keep(room: Room, result: T) -> T:
    return result


class LocalParticipant(LocalParticipantInfo):
    """`livekit.rtc.LocalParticipant`'s data plane; every method blocks until done."""

    def __init__(self, room: Room) -> None:
        self._room = room
        super().__init__(Participant(sid="", identity=""))

    @property
    def _info(self) -> Participant:  # the I/O thread keeps the inner room's copy current
        inner = self._room._inner
        return inner.local_participant.info if inner is not None else self._initial

    @_info.setter
    def _info(self, value: Participant) -> None:
        self._initial = value

    publish_data = _blocking(_anyio.LocalParticipant.publish_data, _keep)
    publish_dtmf = _blocking(_anyio.LocalParticipant.publish_dtmf, _keep)
    publish_transcription = _blocking(_anyio.LocalParticipant.publish_transcription, _keep)
    set_metadata = _blocking(_anyio.LocalParticipant.set_metadata, _keep)
    set_name = _blocking(_anyio.LocalParticipant.set_name, _keep)
    set_attributes = _blocking(_anyio.LocalParticipant.set_attributes, _keep)
    perform_rpc = _blocking(_anyio.LocalParticipant.perform_rpc, _keep)
    send_text = _blocking(_anyio.LocalParticipant.send_text, _keep)
    send_bytes = _blocking(_anyio.LocalParticipant.send_bytes, _keep)
    stream_text = _blocking(_anyio.LocalParticipant.stream_text, TextStreamWriter)
    stream_text.__doc__ = "Open a text stream: `with lp.stream_text(topic=t) as w: w.write(s)`."
    stream_bytes = _blocking(_anyio.LocalParticipant.stream_bytes, ByteStreamWriter)
    stream_bytes.__doc__ = "Open a byte stream: `with lp.stream_bytes(name) as w: w.write(b)`."

    def register_rpc_method(
        self, method_name: str, handler: RpcHandler | None = None
    ) -> Callable[[RpcHandler], RpcHandler] | None:
        """Register `handler(data) -> str` (a plain function, run on a handler thread) for
        `method_name`; usable as a decorator, before or after `connect()`. Raising `RpcError`
        answers with its code; any other exception answers 1500 (details stay here)."""
        if handler is None:

            def register(fn: RpcHandler) -> RpcHandler:
                self._room._register_rpc(method_name, fn)
                return fn

            return register
        self._room._register_rpc(method_name, handler)
        return None

    def unregister_rpc_method(self, method: str) -> None:
        self._room._register_rpc(method, None)

    def send_file(
        self,
        file_path: str | os.PathLike[str],
        *,
        topic: str = "",
        destination_identities: Sequence[str] | None = None,
        attributes: Mapping[str, str] | None = None,
        stream_id: str | None = None,
        compress: bool = True,
        on_progress: ProgressCallback | None = None,
    ) -> ByteStreamInfo:
        """Stream a file from disk. `on_progress(sent_bytes, total_bytes)` runs on the calling
        thread after every write; if it raises, the stream is aborted and the error raised."""
        progress: queue.SimpleQueue[tuple[int, int | None] | None] = queue.SimpleQueue()

        def report(sent: int, total: int | None) -> None:  # on the I/O thread
            progress.put((sent, total))

        future = self._room._start(
            "send_file",
            lambda r: r.local_participant.send_file(
                file_path,
                topic=topic,
                destination_identities=destination_identities,
                attributes=attributes,
                stream_id=stream_id,
                compress=compress,
                on_progress=None if on_progress is None else report,
            ),
        )
        future.add_done_callback(lambda _: progress.put(None))
        try:
            while on_progress is not None and (item := progress.get()) is not None:
                on_progress(*item)
        except BaseException:
            future.cancel()
            raise
        return self._room._result("send_file", future)


class _Inner(_anyio.Room):
    """The anyio room on the I/O thread; hands its emissions and events to the outer Room."""

    def __init__(self, outer: Room, config: Config | None) -> None:
        super().__init__(config=config)
        self._outer = outer

    def emit(self, event: str, *args: object) -> None:
        self._outer._post(event, args)

    def deliver(self, event: ev.Event) -> None:
        super().deliver(event)
        for feed in list(self._outer._feeds):
            bound = self._config.max_queued_events
            if feed.qsize() < bound:
                feed.put(event)
            else:
                log.warning("an events() iterator is %d behind; dropped one", bound)


class Room(EventEmitter):
    """A LiveKit room, as `livekit.rtc.Room` for the data plane, with blocking methods."""

    def __init__(self, *, config: Config | None = None) -> None:
        super().__init__()
        self._config = config
        self._max_queued_events = (config or Config()).max_queued_events
        self._life = threading.Lock()  # guards the fields below and the handler tables
        self._counter = threading.Lock()  # guards _pending
        self._portal: BlockingPortal | None = None
        self._stack = contextlib.ExitStack()
        self._inner: _Inner | None = None
        self._io_thread: int | None = None
        self._dispatch_thread: int | None = None
        self._handlers: concurrent.futures.ThreadPoolExecutor | None = None
        self._callbacks: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending = 0
        self._used = False
        self._inherited = False
        self._feeds: list[queue.SimpleQueue[ev.Event | None]] = []
        self._rpc: dict[str, RpcHandler] = {}
        self._streams: dict[tuple[bool, str], Callable[..., object]] = {}  # (text?, topic)
        self._local = LocalParticipant(self)

    # -- livekit.rtc properties -----------------------------------------------------------------

    @property
    def local_participant(self) -> LocalParticipant:
        return self._local

    @property
    def remote_participants(self) -> Mapping[str, RemoteParticipant]:
        """A snapshot; the participant objects are the ones callbacks receive."""
        inner = self._inner
        return {} if inner is None else dict(inner.remote_participants)

    @property
    def connection_state(self) -> ConnectionState:
        inner = self._inner
        if inner is None or self._portal is None:
            return ConnectionState.CONN_DISCONNECTED
        return inner.connection_state

    @property
    def name(self) -> str:
        return "" if self._inner is None else self._inner.name

    @property
    def sid(self) -> str:
        return "" if self._inner is None else self._inner.sid

    @property
    def metadata(self) -> str:
        return "" if self._inner is None else self._inner.metadata

    @property
    def num_participants(self) -> int:
        return 0 if self._inner is None else self._inner.num_participants

    @property
    def connection(self) -> Connection | None:
        """The sans-I/O core behind this room (read only: it changes on the I/O thread)."""
        return None if self._inner is None else self._inner.connection

    def isconnected(self) -> bool:
        return self.connection_state != ConnectionState.CONN_DISCONNECTED

    # -- connect / disconnect -------------------------------------------------------------------

    def connect(self, url: str, token: str, options: RoomOptions | None = None) -> None:
        """Join the room; returns when joined with the reliable data channel open.

        Raises `ConnectError` (the server's reason, token redacted) on failure or timeout.
        """
        self._open()
        try:
            self._call("connect", lambda r: r.connect(url, token, options))
        except TransportClosedError:
            self.disconnect()
            raise ConnectError("connect: the room was disconnected while joining") from None
        except BaseException:
            self.disconnect()
            raise
        self._flush()

    def _open(self) -> None:
        """Start the I/O thread (with the inner room), the handler pool and the dispatcher."""
        with self._life:
            if self._used or self._inherited:
                raise LocalProtocolError("connect: this Room was already used", call="connect")
            self._used = True
            portal = self._stack.enter_context(start_blocking_portal(name="lkproto-io"))
            self._portal = portal
            _live_rooms.add(self)
            self._io_thread = portal.call(threading.get_ident)
            self._handlers = concurrent.futures.ThreadPoolExecutor(
                _HANDLER_THREADS, thread_name_prefix="lkproto-handler"
            )
            self._callbacks = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="lkproto-events"
            )
            self._inner = portal.call(self._make_inner)

    def disconnect(self, *, reason: DisconnectReason = DisconnectReason.CLIENT_INITIATED) -> None:
        """Leave the room, close its connections and stop its threads. Idempotent."""
        with self._life:
            portal = self._portal
            if portal is not None:
                with contextlib.suppress(TransportClosedError):
                    self._call("disconnect", lambda r: r.disconnect(reason=reason))
                self._portal = None
                _live_rooms.discard(self)
                with contextlib.suppress(RuntimeError):
                    portal.call(portal.stop, True)  # cancels other threads' calls still waiting
                self._stack.close()  # joins the I/O thread
                if self._handlers is not None:
                    self._handlers.shutdown(wait=False, cancel_futures=True)
                for feed in list(self._feeds):
                    feed.put(None)
        callbacks = self._callbacks
        if callbacks is not None and self._portal is None:
            # Run the callbacks already queued (the last is `disconnected`), then stop.
            callbacks.shutdown(wait=threading.get_ident() != self._dispatch_thread)

    def simulate_scenario(self, scenario: SimulateScenario | int) -> None:
        """Cause a failure, for testing (see the anyio Room's `simulate_scenario`)."""
        self._call("simulate_scenario", lambda r: r.simulate_scenario(scenario))

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
        feed: queue.SimpleQueue[ev.Event | None] = queue.SimpleQueue()
        with self._life:
            if self._portal is None or self._inner is None or self._inner._ended is not None:
                return iter(())
            self._feeds.append(feed)
        return self._drain(feed)

    def _drain(self, feed: queue.SimpleQueue[ev.Event | None]) -> Iterator[ev.Event]:
        try:
            while (event := feed.get()) is not None:
                yield event
                if isinstance(event, ev.Disconnected):
                    return
        finally:  # no lock: a generator may be finalized by the GC on any thread
            with contextlib.suppress(ValueError):
                self._feeds.remove(feed)

    # -- handlers -------------------------------------------------------------------------------

    def register_text_stream_handler(self, topic: str, handler: TextStreamHandler) -> None:
        """Route text streams on `topic` to `handler(reader, participant_identity)`, a plain
        function run on a handler thread with a blocking `TextStreamReader`."""
        self._register_stream(True, topic, handler)

    def register_byte_stream_handler(self, topic: str, handler: ByteStreamHandler) -> None:
        """Route byte streams on `topic` to `handler(reader, participant_identity)`."""
        self._register_stream(False, topic, handler)

    def unregister_text_stream_handler(self, topic: str) -> None:
        self._register_stream(True, topic, None)

    def unregister_byte_stream_handler(self, topic: str) -> None:
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
            inner, live = self._inner, self._portal is not None
        if live and inner is not None:
            with contextlib.suppress(TransportClosedError):
                self._call("register", lambda r: _apply(self._install_stream, r, text, topic, fn))

    def _register_rpc(self, method: str, fn: RpcHandler | None) -> None:
        with self._life:
            if fn is None:
                if self._rpc.pop(method, None) is None:
                    return
            else:
                self._rpc[method] = fn
            live = self._inner is not None and self._portal is not None
        if live:
            with contextlib.suppress(TransportClosedError):
                self._call("register", lambda r: _apply(self._install_rpc, r, method, fn))

    def _make_inner(self) -> _Inner:  # on the I/O thread, under self._life
        inner = _Inner(self, self._config)
        for method, fn in self._rpc.items():
            self._install_rpc(inner, method, fn)
        for (text, topic), handler in self._streams.items():
            self._install_stream(inner, text, topic, handler)
        return inner

    def _install_rpc(self, inner: _Inner, method: str, fn: RpcHandler | None) -> None:
        if fn is None:
            inner.local_participant.unregister_rpc_method(method)
        else:
            inner.local_participant.register_rpc_method(
                method, functools.partial(self._offload, fn)
            )

    def _install_stream(
        self, inner: _Inner, text: bool, topic: str, fn: Callable[..., object] | None
    ) -> None:
        if fn is None:
            if text:
                inner.unregister_text_stream_handler(topic)
            else:
                inner.unregister_byte_stream_handler(topic)
            return

        def on_stream(
            reader: _anyio.TextStreamReader | _anyio.ByteStreamReader, sender: str
        ) -> Awaitable[object]:
            if isinstance(reader, _anyio.TextStreamReader):
                return self._offload(fn, TextStreamReader(self, reader), sender)
            return self._offload(fn, ByteStreamReader(self, reader), sender)

        if text:
            inner.register_text_stream_handler(topic, on_stream)
        else:
            inner.register_byte_stream_handler(topic, on_stream)

    async def _offload(self, fn: Callable[..., T], *args: object) -> T:
        """Run a user handler on a handler thread (on the I/O loop: awaits its result)."""
        pool = self._handlers
        if pool is None:  # pragma: no cover - handlers only run while connected
            raise TransportClosedError("the room is not connected")
        return await asyncio.wrap_future(pool.submit(fn, *args))

    # -- the bridge to the I/O thread -----------------------------------------------------------

    def _start(
        self, what: str, fn: Callable[[_Inner], Awaitable[T]]
    ) -> concurrent.futures.Future[T]:
        portal, inner = self._portal, self._inner
        if portal is None or inner is None:
            if self._inherited:
                raise TransportClosedError(
                    f"{what}: this Room was inherited through fork(); its I/O thread exists only "
                    "in the parent process. Create a new Room in this process."
                )
            raise TransportClosedError(f"{what}: the room is not connected")
        if threading.get_ident() == self._io_thread:
            raise RuntimeError(f"{what}: blocking Room methods cannot run on the room's I/O thread")
        try:
            return portal.start_task_soon(fn, inner)
        except RuntimeError:  # the portal stopped after the check above
            raise TransportClosedError(f"{what}: the room is disconnected") from None

    def _result(self, what: str, future: concurrent.futures.Future[T]) -> T:
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise TransportClosedError(f"{what}: the room was disconnected") from None
        except BaseException:  # e.g. KeyboardInterrupt while waiting: cancel the call
            future.cancel()
            raise

    def _call(self, what: str, fn: Callable[[_Inner], Awaitable[T]]) -> T:
        return self._result(what, self._start(what, fn))

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
        """Callbacks see this Room's local participant, not the inner room's."""
        if self._inner is not None and arg is self._inner.local_participant:
            return self._local
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
        self._portal, self._handlers, self._callbacks = None, None, None
        self._inherited = True
        for feed in list(self._feeds):
            feed.put(None)


async def _next_chunk(reader: AsyncIterator[C]) -> tuple[C] | None:
    try:
        return (await anext(reader),)
    except StopAsyncIteration:
        return None


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
