"""The anyio Room's async API over `lkproto.transports.threaded.Room`, for the async e2e tests.

`FacadeRoom` can replace `lkproto.transports.anyio.Room` in tests/e2e/test_anyio_*.py without
other changes, so the same assertions also run against the blocking adapter:
- every awaitable method runs the threaded Room's blocking method in a worker thread
  (`anyio.to_thread.run_sync`), so the test's event loop keeps running meanwhile;
- what the test registers (RPC handlers, stream handlers, `room.on` callbacks; plain or
  `async def`) runs back on the test's event loop: the threaded Room calls a plain wrapper on
  its handler or dispatcher thread, which hands the test's function to the loop
  (`anyio.from_thread.run` with the loop's token, taken when the FacadeRoom is created) and
  waits for it. So test code never runs on a foreign thread, and anyio primitives in it work;
- readers and writers are wrapped the same way (`await reader.read_all()`,
  `async for chunk in reader`, `await writer.write(...)`, `await writer.aclose()`).

A FacadeRoom must be created inside the test's event loop (asyncio or trio).

What cannot carry over: a handler of the blocking adapter runs on its own thread and cannot be
interrupted, so when the core cancels an invocation (the caller's deadline, our disconnect),
the caller gets its 1502/1503 at once but the test's handler coroutine is not cancelled: it
runs to completion and its result is dropped.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from lkproto import Config
from lkproto import events as ev
from lkproto.models import DisconnectReason
from lkproto.transports import threaded

__all__ = ["FacadeLocalParticipant", "FacadeRoom"]

T = TypeVar("T")
_END = object()


async def _maybe_await(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class FacadeRoom:
    """`lkproto.transports.anyio.Room`'s API, carried out by a `threaded.Room`."""

    def __init__(self, loop: object = None, *, config: Config | None = None) -> None:
        del loop
        self.threaded = threaded.Room(config=config)
        self._token = anyio.lowlevel.current_token()
        self._local = FacadeLocalParticipant(self)
        self._callbacks: dict[tuple[str, Callable[..., Any]], Callable[..., Any]] = {}

    # -- bridges ------------------------------------------------------------------------------

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call of the threaded Room off the test's loop."""
        return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)

    def _back(self, fn: Callable[..., Any], *args: Any) -> Any:
        """From one of the threaded Room's threads: run the test's `fn` on the test's loop."""
        return anyio.from_thread.run(_maybe_await, fn, args, token=self._token)

    def _swap(self, arg: Any) -> Any:
        if arg is self.threaded.local_participant:
            return self._local
        return [self._swap(a) for a in arg] if isinstance(arg, list) else arg

    # -- properties ---------------------------------------------------------------------------

    @property
    def local_participant(self) -> FacadeLocalParticipant:
        return self._local

    @property
    def remote_participants(self) -> Any:
        return self.threaded.remote_participants

    @property
    def connection_state(self) -> threaded.ConnectionState:
        return self.threaded.connection_state

    @property
    def name(self) -> str:
        return self.threaded.name

    @property
    def sid(self) -> str:
        return self.threaded.sid

    @property
    def metadata(self) -> str:
        return self.threaded.metadata

    @property
    def num_participants(self) -> int:
        return self.threaded.num_participants

    @property
    def e2ee_manager(self) -> Any:
        """The threaded Room's: its key verbs block briefly (the I/O thread runs them)."""
        return self.threaded.e2ee_manager

    @property
    def connection(self) -> Any:
        return self.threaded.connection

    @property
    def _session(self) -> Any:
        """The shared session inside the threaded Room (a test counts the bytes its pump is
        fed)."""
        inner = self.threaded._io.inner
        return None if inner is None else inner.session

    def isconnected(self) -> bool:
        return self.threaded.isconnected()

    # -- connect / disconnect -----------------------------------------------------------------

    async def connect(self, url: str, token: str, options: Any = None) -> None:
        await self._blocking(self.threaded.connect, url, token, options)

    async def disconnect(
        self, *, reason: DisconnectReason = DisconnectReason.CLIENT_INITIATED
    ) -> None:
        await self._blocking(functools.partial(self.threaded.disconnect, reason=reason))

    async def simulate_scenario(self, scenario: Any) -> None:
        await self._blocking(self.threaded.simulate_scenario, scenario)

    async def __aenter__(self) -> FacadeRoom:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    async def events(self) -> AsyncIterator[ev.Event]:
        it = self.threaded.events()
        while (event := await self._blocking(next, it, _END)) is not _END:
            yield event

    # -- callbacks and handlers ---------------------------------------------------------------

    def on(self, event: Any, callback: Callable[..., Any] | None = None) -> Any:
        if callback is None:
            return functools.partial(self.on, event)

        def on_dispatcher_thread(*args: Any) -> None:
            self._back(callback, *[self._swap(a) for a in args])

        self._callbacks[(event, callback)] = on_dispatcher_thread
        self.threaded.on(event, on_dispatcher_thread)
        return callback

    def off(self, event: Any, callback: Callable[..., Any]) -> None:
        wrapper = self._callbacks.pop((event, callback), None)
        if wrapper is not None:
            self.threaded.off(event, wrapper)

    def register_text_stream_handler(self, topic: str, handler: Callable[..., Any]) -> None:
        self.threaded.register_text_stream_handler(topic, self._stream_handler(handler))

    def register_byte_stream_handler(self, topic: str, handler: Callable[..., Any]) -> None:
        self.threaded.register_byte_stream_handler(topic, self._stream_handler(handler))

    def unregister_text_stream_handler(self, topic: str) -> None:
        self.threaded.unregister_text_stream_handler(topic)

    def unregister_byte_stream_handler(self, topic: str) -> None:
        self.threaded.unregister_byte_stream_handler(topic)

    def _stream_handler(self, handler: Callable[..., Any]) -> Callable[..., None]:
        def on_handler_thread(reader: Any, identity: str) -> None:
            self._back(handler, AsyncReader(self, reader), identity)

        return on_handler_thread


class AsyncReader:
    """A threaded stream reader, read from the test's loop."""

    def __init__(self, room: FacadeRoom, reader: Any) -> None:
        self._room = room
        self._reader = reader
        self.info = reader.info
        self.sender_identity = reader.sender_identity

    def __aiter__(self) -> AsyncReader:
        return self

    async def __anext__(self) -> Any:
        chunk = await self._room._blocking(next, self._reader, _END)
        if chunk is _END:
            raise StopAsyncIteration
        return chunk

    async def read_all(self) -> Any:
        return await self._room._blocking(self._reader.read_all)

    async def aclose(self) -> None:
        await self._room._blocking(self._reader.close)


class AsyncWriter:
    """A threaded stream writer, driven from the test's loop."""

    def __init__(self, room: FacadeRoom, writer: Any) -> None:
        self._room = room
        self._writer = writer
        self.info = writer.info

    async def write(self, data: Any) -> None:
        await self._room._blocking(self._writer.write, data)

    async def aclose(self, *, reason: str = "", attributes: Any = None) -> None:
        await self._room._blocking(
            functools.partial(self._writer.aclose, reason=reason, attributes=attributes)
        )

    async def __aenter__(self) -> AsyncWriter:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        await self._room._blocking(self._writer.__exit__, exc_type, exc, tb)


def _forward(name: str) -> Callable[..., Any]:
    """An async method running the threaded LocalParticipant's blocking `name`."""

    async def call(self: FacadeLocalParticipant, *args: Any, **kwargs: Any) -> Any:
        blocking = getattr(self._room.threaded.local_participant, name)
        return await self._room._blocking(functools.partial(blocking, *args, **kwargs))

    call.__name__ = name
    return call


class FacadeLocalParticipant:
    """The anyio LocalParticipant's API; properties read the threaded participant."""

    def __init__(self, room: FacadeRoom) -> None:
        self._room = room

    def __getattr__(self, name: str) -> Any:  # identity, sid, name, attributes, info, ...
        return getattr(self._room.threaded.local_participant, name)

    def __repr__(self) -> str:
        return repr(self._room.threaded.local_participant)

    publish_data = _forward("publish_data")
    publish_dtmf = _forward("publish_dtmf")
    publish_transcription = _forward("publish_transcription")
    set_metadata = _forward("set_metadata")
    set_name = _forward("set_name")
    set_attributes = _forward("set_attributes")
    perform_rpc = _forward("perform_rpc")
    send_text = _forward("send_text")
    send_bytes = _forward("send_bytes")

    async def stream_text(self, **kwargs: Any) -> AsyncWriter:
        lp = self._room.threaded.local_participant
        writer = await self._room._blocking(functools.partial(lp.stream_text, **kwargs))
        return AsyncWriter(self._room, writer)

    async def stream_bytes(self, name: str, **kwargs: Any) -> AsyncWriter:
        lp = self._room.threaded.local_participant
        writer = await self._room._blocking(functools.partial(lp.stream_bytes, name, **kwargs))
        return AsyncWriter(self._room, writer)

    async def send_file(
        self, file_path: Any, *, on_progress: Callable[..., Any] | None = None, **kwargs: Any
    ) -> Any:
        room = self._room
        progress = None if on_progress is None else functools.partial(room._back, on_progress)
        send = functools.partial(
            room.threaded.local_participant.send_file, file_path, on_progress=progress, **kwargs
        )
        return await room._blocking(send)

    def register_rpc_method(self, method: str, handler: Callable[..., Any] | None = None) -> Any:
        if handler is None:

            def register(fn: Callable[..., Any]) -> Callable[..., Any]:
                self.register_rpc_method(method, fn)
                return fn

            return register
        room = self._room
        room.threaded.local_participant.register_rpc_method(
            method, functools.partial(room._back, handler)
        )
        return None

    def unregister_rpc_method(self, method: str) -> None:
        self._room.threaded.local_participant.unregister_rpc_method(method)
