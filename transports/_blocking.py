"""The threaded adapter's blocking objects, and the bridge to the I/O thread they call through.

`IoThread` is a room's I/O thread: an asyncio loop behind an anyio `BlockingPortal`, running
the session every adapter shares (`Inner`: the async room over it, transports/_async_room.py,
and its async local participant). From any other thread, `call(what, fn)` runs `fn(inner)`
on that loop and blocks for its result; a call from the I/O thread itself is refused (it
would deadlock), and once the loop has stopped (or in a fork child, where it never existed)
calls raise `TransportClosedError` naming `what`.

The blocking twins of the async objects (transports/_participant.py, transports/_streams.py)
wrap them: the same methods and parameters, each carried out through `call`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import logging
import os
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Concatenate, Generic, ParamSpec, TypeAlias, TypeVar, overload

import attrs
from anyio.from_thread import BlockingPortal, start_blocking_portal

from lkproto import Config
from lkproto import events as ev
from lkproto._repr import plain_repr
from lkproto.models import Participant
from lkproto.rpc import RpcInvocationData

from . import _participant as _async
from . import _streams
from ._async_room import AsyncRoom
from ._blocking_datatracks import LocalDataTrack
from ._blocking_media import LocalTrackPublication
from ._checks import check_callable, check_rpc_method
from ._errors import TransportClosedError
from ._room import LocalParticipantInfo
from ._session import Session
from ._streams import ByteStreamInfo, TextStreamInfo
from ._tracks import LocalTrack, ParticipantTrackPermission, TrackPublishOptions

__all__ = [
    "FORKED",
    "ByteStreamReader",
    "ByteStreamWriter",
    "Feeds",
    "Inner",
    "IoThread",
    "LocalParticipant",
    "ProgressCallback",
    "RpcHandler",
    "TextStreamReader",
    "TextStreamWriter",
]

log = logging.getLogger("lkproto.transports")

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")
C = TypeVar("C", str, bytes)
RpcHandler: TypeAlias = Callable[[RpcInvocationData], str | None]
H = TypeVar("H", bound=RpcHandler)  # a handler, returned as it was by the decorator
ProgressCallback: TypeAlias = Callable[[int, "int | None"], object]
FORKED = (
    "this Room was inherited through fork(); its I/O thread exists only in the parent "
    "process. Create a new Room in this process."
)


@attrs.frozen
@plain_repr
class Inner:
    """What a connected Room runs on its I/O thread: an async room (transports/_async_room.py)
    over the shared session, with the async local participant whose verbs the blocking ones
    call."""

    room: AsyncRoom

    @property
    def session(self) -> Session:
        return self.room._session

    @property
    def local(self) -> _async.LocalParticipant:
        return self.room.local_participant


class Feeds:
    """The session's subscriber for a threaded Room's `events()` iterators: each event goes
    to every queue in `queues` that holds fewer than `bound` (else it is dropped, and logged).
    `open()` adds an iterator, `end()` ends them all."""

    def __init__(self, queues: list[queue.SimpleQueue[ev.Event | None]], bound: int) -> None:
        self._queues = queues
        self._bound = bound

    def open(self) -> Iterator[ev.Event]:
        """A new iterator of every event from now on, until `Disconnected` or `end()`."""
        feed: queue.SimpleQueue[ev.Event | None] = queue.SimpleQueue()
        self._queues.append(feed)
        return self._drain(feed)

    def _drain(self, feed: queue.SimpleQueue[ev.Event | None]) -> Iterator[ev.Event]:
        try:
            while (event := feed.get()) is not None:
                yield event
                if isinstance(event, ev.Disconnected):
                    return
        finally:  # no lock: a generator may be finalized by the GC on any thread
            with contextlib.suppress(ValueError):
                self._queues.remove(feed)

    def end(self) -> None:
        for feed in list(self._queues):
            feed.put(None)

    def send_nowait(self, item: ev.Event) -> None:
        for feed in list(self._queues):
            if feed.qsize() < self._bound:
                feed.put(item)
            else:
                log.warning("an events() iterator is %d behind; dropped one", self._bound)

    def close(self) -> None:
        """The iterators end at `disconnect()` (or after the `Disconnected` event)."""

    def statistics(self) -> _Unbounded:
        return _Unbounded()  # pragma: no cover - send_nowait never raises WouldBlock


@attrs.frozen
@plain_repr
class _Unbounded:
    max_buffer_size: float = float("inf")


class IoThread:
    """A room's I/O thread and the way in (see the module docstring)."""

    def __init__(self) -> None:
        self.portal: BlockingPortal | None = None
        self.inner: Inner | None = None
        self.ident: int | None = None
        self.inherited = False  # this process was forked from the one that ran the thread
        self._stack = contextlib.ExitStack()

    def start_thread(self) -> BlockingPortal:
        portal = self.portal = self._stack.enter_context(start_blocking_portal(name="lkproto-io"))
        self.ident = portal.call(threading.get_ident)
        return portal

    def stop_thread(self) -> None:
        """Stop the loop (cancelling calls still waiting) and join the thread."""
        portal, self.portal = self.portal, None
        if portal is not None:
            with contextlib.suppress(RuntimeError):
                portal.call(portal.stop, True)
        self._stack.close()

    def orphan(self) -> None:
        """In a forked child: the thread does not exist here."""
        self.portal, self.inherited = None, True

    def start(self, what: str, fn: Callable[[Inner], Awaitable[T]]) -> concurrent.futures.Future[T]:
        portal, inner = self.portal, self.inner
        if portal is None or inner is None:
            if self.inherited:
                raise TransportClosedError(f"{what}: {FORKED}")
            raise TransportClosedError(f"{what}: the room is not connected")
        if threading.get_ident() == self.ident:
            raise RuntimeError(f"{what}: blocking Room methods cannot run on the room's I/O thread")
        try:
            return portal.start_task_soon(fn, inner)
        except RuntimeError:  # the portal stopped after the check above
            raise TransportClosedError(f"{what}: the room is disconnected") from None

    def result(self, what: str, future: concurrent.futures.Future[T]) -> T:
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise TransportClosedError(f"{what}: the room was disconnected") from None
        except BaseException:  # e.g. KeyboardInterrupt while waiting: cancel the call
            future.cancel()
            raise

    def call(self, what: str, fn: Callable[[Inner], Awaitable[T]]) -> T:
        return self.result(what, self.start(what, fn))


class _Reader(Generic[C]):
    def __init__(
        self, io: IoThread, inner: AsyncIterator[C], aclose: Callable[[], Awaitable[None]]
    ) -> None:
        self._io = io
        self._inner: AsyncIterator[C] = inner
        self._aclose = aclose

    def __iter__(self) -> Iterator[C]:
        return self

    def __next__(self) -> C:
        found: tuple[C] | None = self._io.call("read", lambda _: _next_chunk(self._inner))
        if found is None:
            raise StopIteration
        return found[0]

    def close(self) -> None:
        """Stop reading: the rest of the stream is discarded (and no longer buffered)."""
        self._io.call("close", lambda _: self._aclose())


class TextStreamReader(_Reader[str]):
    """A text stream being received: iterate for chunks (`for text in reader`), or
    `read_all()`. Each call blocks until data arrives; a failed stream raises `StreamError`."""

    def __init__(self, io: IoThread, inner: _streams.TextStreamReader) -> None:
        super().__init__(io, inner, inner.aclose)
        self.sender_identity = inner.sender_identity
        self._async = inner

    @property
    def info(self) -> TextStreamInfo:
        """The stream's `TextStreamInfo` (id, topic, attributes, size, ...)."""
        return self._async.info

    def read_all(self) -> str:
        """Block until the stream ends; return all its text (raises `StreamError` if it fails)."""
        return "".join(self)


class ByteStreamReader(_Reader[bytes]):
    """A byte stream being received: iterate for chunks, or `read_all()`."""

    def __init__(self, io: IoThread, inner: _streams.ByteStreamReader) -> None:
        super().__init__(io, inner, inner.aclose)
        self.sender_identity = inner.sender_identity
        self._async = inner

    @property
    def info(self) -> ByteStreamInfo:
        """The stream's `ByteStreamInfo` (id, topic, name, size, attributes, ...)."""
        return self._async.info

    def read_all(self) -> bytes:
        """Block until the stream ends; return all its bytes (raises `StreamError` if it fails)."""
        return b"".join(self)


class _Writer:
    def __init__(self, io: IoThread, inner: _streams.TextStreamWriter | _streams.ByteStreamWriter):
        self._io = io
        self._inner = inner

    def aclose(self, *, reason: str = "", attributes: Mapping[str, str] | None = None) -> None:
        """End the stream (`livekit.rtc`'s name; a non-empty `reason` aborts it)."""
        self._io.call("aclose", lambda _: self._inner.aclose(reason=reason, attributes=attributes))

    close = aclose

    def __enter__(self: W) -> W:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        """Close the stream if still open; aborted (with a reason) if the block raised."""
        try:
            self._io.call("aclose", lambda _: self._inner.__aexit__(exc_type, exc, tb))
        except TransportClosedError:
            if exc is None:
                raise


W = TypeVar("W", bound=_Writer)


class TextStreamWriter(_Writer):
    """`write(text)` blocks while the data channel is over its high watermark."""

    def __init__(self, io: IoThread, inner: _streams.TextStreamWriter) -> None:
        super().__init__(io, inner)
        self._text = inner

    @property
    def info(self) -> TextStreamInfo:
        """The stream's `TextStreamInfo`."""
        return self._text.info

    def write(self, text: str) -> None:
        """Send `text` as the next chunks; blocks while the channel is over its high mark."""
        self._io.call("write", lambda _: self._text.write(text))


class ByteStreamWriter(_Writer):
    """`write(data)` blocks while the data channel is over its high watermark."""

    def __init__(self, io: IoThread, inner: _streams.ByteStreamWriter) -> None:
        super().__init__(io, inner)
        self._bytes = inner

    @property
    def info(self) -> ByteStreamInfo:
        """The stream's `ByteStreamInfo`."""
        return self._bytes.info

    def write(self, data: bytes) -> None:
        """Send `data` as the next chunks; blocks while the channel is over its high mark."""
        self._io.call("write", lambda _: self._bytes.write(data))


def _blocking(
    method: Callable[Concatenate[_async.LocalParticipant, P], Awaitable[R]],
    wrap: Callable[[IoThread, R], T],
) -> Callable[Concatenate[LocalParticipant, P], T]:
    """The blocking twin of an async `LocalParticipant` method: same parameters, run on the
    room's I/O thread; `wrap(io, result)` makes the result blocking too (writers)."""

    @functools.wraps(method)
    def call(self: LocalParticipant, /, *args: P.args, **kwargs: P.kwargs) -> T:
        io = self._io
        done = io.call(method.__name__, lambda inner: method(inner.local, *args, **kwargs))
        return wrap(io, done)

    return call


def _keep(io: IoThread, result: T) -> T:
    return result


class LocalParticipant(LocalParticipantInfo):
    """`livekit.rtc.LocalParticipant`'s data plane; every method blocks until done."""

    def __init__(
        self,
        io: IoThread,
        register: Callable[[str, RpcHandler | None], None],
        config: Config | None = None,
    ) -> None:
        self._io = io
        self._register = register  # the Room's: it keeps the handlers for its whole life
        self._config = config or Config()
        super().__init__(Participant(sid="", identity=""))

    @property
    def _info(self) -> Participant:  # the I/O thread keeps the session's copy current
        inner = self._io.inner
        return inner.local.info if inner is not None else self._initial

    @_info.setter
    def _info(self, value: Participant) -> None:
        self._initial = value

    publish_data = _blocking(_async.LocalParticipant.publish_data, _keep)
    publish_dtmf = _blocking(_async.LocalParticipant.publish_dtmf, _keep)
    publish_transcription = _blocking(_async.LocalParticipant.publish_transcription, _keep)
    set_metadata = _blocking(_async.LocalParticipant.set_metadata, _keep)
    set_name = _blocking(_async.LocalParticipant.set_name, _keep)
    set_attributes = _blocking(_async.LocalParticipant.set_attributes, _keep)
    perform_rpc = _blocking(_async.LocalParticipant.perform_rpc, _keep)
    send_text = _blocking(_async.LocalParticipant.send_text, _keep)
    send_bytes = _blocking(_async.LocalParticipant.send_bytes, _keep)
    stream_text = _blocking(_async.LocalParticipant.stream_text, TextStreamWriter)
    stream_text.__doc__ = "Open a text stream: `with lp.stream_text(topic=t) as w: w.write(s)`."
    stream_bytes = _blocking(_async.LocalParticipant.stream_bytes, ByteStreamWriter)
    stream_bytes.__doc__ = "Open a byte stream: `with lp.stream_bytes(name) as w: w.write(b)`."
    publish_data_track = _blocking(_async.LocalParticipant.publish_data_track, LocalDataTrack)
    publish_data_track.__doc__ = (
        "Publish a data track: `track = lp.publish_data_track(name=n)`; blocks until the "
        "server accepted it (else `PublishDataTrackError`), then `track.try_push(frame)`."
    )

    @overload
    def register_rpc_method(self, method_name: str, handler: None = None) -> Callable[[H], H]: ...
    @overload
    def register_rpc_method(self, method_name: str, handler: RpcHandler) -> None: ...
    def register_rpc_method(
        self, method_name: str, handler: RpcHandler | None = None
    ) -> Callable[[H], H] | None:
        """Register `handler(data) -> str` (a plain function, run on a handler thread) for
        `method_name`; usable as a decorator, before or after `connect()`. Raising `RpcError`
        answers with its code; any other exception answers 1500 (details stay here).
        Registering a method again replaces its handler, as in `livekit.rtc`; a bad name or
        a handler that is not callable raises `TypeError`/`ValueError` at once."""
        call = "register_rpc_method"
        check_rpc_method(call, method_name, self._config)
        if handler is None:

            def register(fn: H) -> H:
                check_callable(call, "handler", fn)
                self._register(method_name, fn)
                return fn

            return register
        check_callable(call, "handler", handler)
        self._register(method_name, handler)
        return None

    def unregister_rpc_method(self, method: str) -> None:
        """Stop answering `method` (callers then get 1400 UNSUPPORTED_METHOD). Idempotent."""
        self._register(method, None)

    # -- media tracks -------------------------------------------------------------------------

    @property
    def track_publications(self) -> Mapping[str, LocalTrackPublication]:
        """Our publications by sid (a snapshot)."""
        inner = self._io.inner
        if inner is None:
            return {}
        found = dict(inner.local._publications)  # the session makes blocking ones for us
        return {sid: p for sid, p in found.items() if isinstance(p, LocalTrackPublication)}

    def publish_track(
        self, track: LocalTrack, options: TrackPublishOptions | None = None
    ) -> LocalTrackPublication:
        """Publish `track` (a `LocalAudioTrack` fed by a blocking `AudioSource`, or a
        `LocalVideoTrack`); blocks until the server accepted it. Errors as the async
        `publish_track`."""
        done = self._io.call(
            "publish_track", lambda inner: inner.session.media.publish_track(track, options)
        )
        assert isinstance(done, LocalTrackPublication)
        return done

    def unpublish_track(self, track_sid: str) -> None:
        """Unpublish our track `track_sid`; blocks until done (`UnpublishTrackError` for a
        sid that is not ours)."""
        self._io.call("unpublish_track", lambda inner: inner.local.unpublish_track(track_sid))

    def set_track_subscription_permissions(
        self,
        *,
        allow_all_participants: bool,
        participant_permissions: Sequence[ParticipantTrackPermission] | None = None,
    ) -> None:
        """Who may subscribe to our tracks (see the async `set_track_subscription_permissions`)."""

        async def run(inner: Inner) -> None:
            inner.local.set_track_subscription_permissions(
                allow_all_participants=allow_all_participants,
                participant_permissions=participant_permissions,
            )

        self._io.call("set_track_subscription_permissions", run)

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

        future = self._io.start(
            "send_file",
            lambda io: io.local.send_file(
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
        return self._io.result("send_file", future)


async def _next_chunk(reader: AsyncIterator[C]) -> tuple[C] | None:
    try:
        return (await anext(reader),)
    except StopAsyncIteration:
        return None
