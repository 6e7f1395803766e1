"""Data streams on a session: `livekit.rtc`-shaped readers, writers and infos, and `Streams`,
the part of the session that feeds readers, runs handlers and sends.

Readers receive the core's `StreamChunkReceived` values through an unbounded anyio memory
stream; memory is bounded by the core instead (`Config.max_buffered_stream_bytes`): a chunk
counts against that bound until the application takes it from the reader, which then reports
`stream_consumed`. A reader that falls too far behind fails (BUFFER_FULL) on its own; the
connection and other streams carry on. Dropping a reader reports `stream_discarded`.

Writers send through the core (`open_stream`/`write_stream`/`close_stream`) and then wait on
the reliable data channel's buffered amount (high/low watermarks), so a fast writer cannot
queue unbounded data.

Handlers are per topic and kind, and outlive a session's start: topics registered before
`connect()` are given to the core when it exists. A stream on a topic without a handler is
discarded at once (the core drops the rest and reports it), never buffered. An async handler
runs as a task of the session; an exception in any handler is logged, never raised into it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeAlias, TypeVar, assert_never

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from lkproto import events as ev
from lkproto.errors import LocalProtocolError
from lkproto.models import Channel
from lkproto.streams import StreamError, StreamErrorReason, StreamInfo, StreamKind

from ._checks import check_identities, check_str, check_string_map
from ._pump import SessionHost

__all__ = [
    "ByteStreamHandler",
    "ByteStreamInfo",
    "ByteStreamReader",
    "ByteStreamWriter",
    "StreamError",
    "StreamEvent",
    "Streams",
    "TextStreamHandler",
    "TextStreamInfo",
    "TextStreamReader",
    "TextStreamWriter",
]

log = logging.getLogger("lkproto.transports")

T = TypeVar("T", str, bytes)
H = TypeVar("H")

StreamEvent: TypeAlias = (
    ev.StreamOpened
    | ev.StreamChunkReceived
    | ev.StreamFinished
    | ev.StreamFailed
    | ev.StreamDropped
)


@dataclass
class _BaseStreamInfo:
    stream_id: str
    mime_type: str
    topic: str
    timestamp: int
    size: int | None
    attributes: dict[str, str] | None = field(default_factory=dict)


@dataclass
class TextStreamInfo(_BaseStreamInfo):
    """`livekit.rtc.TextStreamInfo`, plus `reply_to_stream_id` and `generated`."""

    attachments: list[str] = field(default_factory=list)
    reply_to_stream_id: str = ""
    generated: bool = False


@dataclass
class ByteStreamInfo(_BaseStreamInfo):
    """`livekit.rtc.ByteStreamInfo`."""

    name: str = ""


def text_info(info: StreamInfo) -> TextStreamInfo:
    return TextStreamInfo(
        stream_id=info.stream_id,
        mime_type=info.mime_type,
        topic=info.topic,
        timestamp=info.timestamp,
        size=info.total_length,
        attributes=dict(info.attributes),
        attachments=list(info.attached_stream_ids),
        reply_to_stream_id=info.reply_to_stream_id or "",
        generated=info.generated,
    )


def byte_info(info: StreamInfo) -> ByteStreamInfo:
    return ByteStreamInfo(
        stream_id=info.stream_id,
        mime_type=info.mime_type,
        topic=info.topic,
        timestamp=info.timestamp,
        size=info.total_length,
        attributes=dict(info.attributes),
        name=info.name or "",
    )


Item = tuple[object, int] | StreamError | None  # (chunk, nbytes) | failure | end


class _Reader(Generic[T]):
    def __init__(
        self,
        sender: str,
        stream_id: str,
        consumed: Callable[[int], None],
        discard: Callable[[], None],
    ) -> None:
        self.sender_identity = sender
        self._stream_id = stream_id
        send, receive = anyio.create_memory_object_stream[Item](max_buffer_size=float("inf"))
        self._send: MemoryObjectSendStream[Item] = send
        self._receive: MemoryObjectReceiveStream[Item] = receive
        self._consumed = consumed
        self._discard = discard
        self._done = False

    # Fed by the room (never blocks: the buffer is unbounded, the core bounds the bytes).
    def _push(self, item: Item) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._send.send_nowait(item)
        if item is None or isinstance(item, StreamError):
            self._send.close()

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._receive.receive()
        except anyio.EndOfStream:
            item = None
        if item is None:
            self._done = True
            raise StopAsyncIteration
        if isinstance(item, StreamError):
            self._done = True
            raise item
        chunk, nbytes = item
        self._consumed(nbytes)
        return chunk  # type: ignore[return-value]

    async def aclose(self) -> None:
        """Stop reading: the rest of the stream is discarded (and no longer buffered)."""
        if not self._done:
            self._done = True
            self._discard()
        self._receive.close()


class TextStreamReader(_Reader[str]):
    """`livekit.rtc.TextStreamReader`: async-iterate for text chunks, or `read_all()`."""

    def __init__(self, info: TextStreamInfo, sender: str, *args: Callable[..., None]) -> None:
        super().__init__(sender, info.stream_id, *args)
        self._info = info

    @property
    def info(self) -> TextStreamInfo:
        """The stream's `TextStreamInfo` (id, topic, attributes, size, ...)."""
        return self._info

    async def read_all(self) -> str:
        """Wait until the stream ends; return all its text (raises `StreamError` if it fails)."""
        return "".join([chunk async for chunk in self])


class ByteStreamReader(_Reader[bytes]):
    """`livekit.rtc.ByteStreamReader`: async-iterate for byte chunks."""

    def __init__(self, info: ByteStreamInfo, sender: str, *args: Callable[..., None]) -> None:
        super().__init__(sender, info.stream_id, *args)
        self._info = info

    @property
    def info(self) -> ByteStreamInfo:
        """The stream's `ByteStreamInfo` (id, topic, name, size, attributes, ...)."""
        return self._info

    async def read_all(self) -> bytes:
        """Wait until the stream ends; return all its bytes (raises `StreamError` if it fails)."""
        return b"".join([chunk async for chunk in self])


class _Writer:
    def __init__(self, streams: Streams, stream_id: str) -> None:
        self._streams = streams
        self._stream_id = stream_id
        self._lock = anyio.Lock()
        self._closed = False

    async def _write(self, data: str | bytes) -> None:
        async with self._lock:
            if self._closed:
                raise StreamError(
                    "write: the stream is closed",
                    reason=StreamErrorReason.ABNORMAL_END,
                    stream_id=self._stream_id,
                )
            await self._streams.write(self._stream_id, data)

    async def aclose(
        self, *, reason: str = "", attributes: Mapping[str, str] | None = None
    ) -> None:
        """End the stream (a non-empty `reason` tells the readers it was aborted)."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("Stream already closed")
            self._closed = True
            await self._streams.close(self._stream_id, reason, attributes)

    async def __aenter__(self: W) -> W:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._closed:
            await self.aclose(reason="" if exc is None else f"writer failed: {exc_type}")


W = TypeVar("W", bound=_Writer)


class TextStreamWriter(_Writer):
    """`livekit.rtc.TextStreamWriter`: `await write(text)`, then `await aclose()`."""

    def __init__(self, streams: Streams, info: TextStreamInfo) -> None:
        super().__init__(streams, info.stream_id)
        self._info = info

    @property
    def info(self) -> TextStreamInfo:
        """The stream's `TextStreamInfo`."""
        return self._info

    async def write(self, text: str) -> None:
        """Send `text` as the next chunks; waits while the channel is over its high mark."""
        await self._write(text)


class ByteStreamWriter(_Writer):
    """`livekit.rtc.ByteStreamWriter`: `await write(data)`, then `await aclose()`."""

    def __init__(self, streams: Streams, info: ByteStreamInfo) -> None:
        super().__init__(streams, info.stream_id)
        self._info = info

    @property
    def info(self) -> ByteStreamInfo:
        """The stream's `ByteStreamInfo`."""
        return self._info

    async def write(self, data: bytes) -> None:
        """Send `data` as the next chunks; waits while the channel is over its high mark."""
        await self._write(bytes(data))


TextStreamHandler: TypeAlias = Callable[[TextStreamReader, str], object]
ByteStreamHandler: TypeAlias = Callable[[ByteStreamReader, str], object]


class Streams:
    """The data streams of one session: handlers by topic, the readers being fed, sending."""

    def __init__(self, host: SessionHost) -> None:
        self._host = host
        self.text_handlers: dict[str, TextStreamHandler] = {}
        self.byte_handlers: dict[str, ByteStreamHandler] = {}
        self.readers: dict[tuple[str, str], TextStreamReader | ByteStreamReader] = {}

    # -- handlers -------------------------------------------------------------------------------

    def register_text(self, topic: str, handler: TextStreamHandler) -> None:
        self._register(self.text_handlers, StreamKind.TEXT, topic, handler)

    def register_bytes(self, topic: str, handler: ByteStreamHandler) -> None:
        self._register(self.byte_handlers, StreamKind.BYTES, topic, handler)

    def unregister(self, kind: StreamKind, topic: str) -> None:
        table = self.text_handlers if kind is StreamKind.TEXT else self.byte_handlers
        conn = self._host.conn
        if table.pop(topic, None) is not None and conn is not None:
            conn.unregister_stream_topic(kind, topic)

    def _register(self, table: dict[str, H], kind: StreamKind, topic: str, handler: H) -> None:
        if topic in table:
            raise ValueError(f"a {kind.value} stream handler for topic {topic!r} is already set")
        table[topic] = handler
        conn = self._host.conn
        if conn is not None:
            conn.register_stream_topic(kind, topic)

    def attach(self) -> None:
        """Give the topics registered so far to the core (just made by `connect()`)."""
        conn = self._host.conn
        assert conn is not None
        for topic in self.text_handlers:
            conn.register_stream_topic(StreamKind.TEXT, topic)
        for topic in self.byte_handlers:
            conn.register_stream_topic(StreamKind.BYTES, topic)

    # -- sending --------------------------------------------------------------------------------

    def open(
        self,
        kind: StreamKind,
        *,
        topic: str,
        destination_identities: Sequence[str] | None,
        attributes: Mapping[str, str] | None,
        stream_id: str | None,
        total_length: int | None,
        reply_to_stream_id: str | None = None,
        mime_type: str | None = None,
        name: str | None = None,
        sender_identity: str | None = None,
    ) -> TextStreamInfo | ByteStreamInfo:
        """Open a stream to write incrementally; its header is sent now. `sender_identity`:
        see `LocalParticipant.stream_text`."""
        call = "stream_text" if kind is StreamKind.TEXT else "stream_bytes"
        destination_identities = check_identities(call, destination_identities)
        attributes = None if attributes is None else check_string_map(call, attributes)
        check_str(call, "topic", topic)
        pump, conn = self._host.live("stream")
        me = conn.local_participant
        if sender_identity is not None and not isinstance(sender_identity, str):
            kind_name = type(sender_identity).__name__
            raise TypeError(f"sender_identity must be str or None, not {kind_name}")
        foreign = sender_identity is not None and me is not None and sender_identity != me.identity
        opened = pump.call(
            conn.open_stream,
            now=pump.now(),
            kind=kind,
            topic=topic,
            destination_identities=tuple(destination_identities or ()),
            attributes=attributes,
            stream_id=stream_id,
            total_length=total_length,
            reply_to_stream_id=reply_to_stream_id,
            mime_type=mime_type,
            name=name,
            sender_identity=sender_identity if foreign and sender_identity else "",
        )
        info = conn.outgoing_stream_info(opened)
        return text_info(info) if kind is StreamKind.TEXT else byte_info(info)

    async def send(
        self,
        kind: StreamKind,
        payload: str | bytes,
        *,
        topic: str,
        destination_identities: Sequence[str] | None,
        attributes: Mapping[str, str] | None,
        compress: bool,
        reply_to_stream_id: str | None = None,
        mime_type: str | None = None,
        name: str | None = None,
        stream_id: str | None = None,
    ) -> TextStreamInfo | ByteStreamInfo:
        """Send `payload` as one whole stream (inline and compressed where it can be)."""
        call = "send_text" if kind is StreamKind.TEXT else "send_bytes"
        if kind is StreamKind.TEXT:
            check_str(call, "text", payload)
        elif not isinstance(payload, bytes | bytearray | memoryview):
            raise TypeError(f"{call}: data must be bytes, not {type(payload).__name__}")
        else:
            payload = bytes(payload)
        destination_identities = check_identities(call, destination_identities)
        attributes = None if attributes is None else check_string_map(call, attributes)
        check_str(call, "topic", topic)
        pump, conn = self._host.live("send_stream")
        now = pump.now()
        sent = pump.call(
            conn.send_stream,
            now=now,
            kind=kind,
            topic=topic,
            payload=payload,
            destination_identities=tuple(destination_identities or ()),
            attributes=attributes,
            reply_to_stream_id=reply_to_stream_id,
            mime_type=mime_type,
            name=name,
            stream_id=stream_id,
            compress=compress,
        )
        await self._host.wait_writable(Channel.RELIABLE)
        size = len(payload.encode() if isinstance(payload, str) else payload)
        if kind is StreamKind.TEXT:
            return TextStreamInfo(
                stream_id=sent,
                mime_type=mime_type or "text/plain",
                topic=topic,
                timestamp=conn.wall_ms(now),
                size=size,
                attributes=dict(attributes or {}),
                reply_to_stream_id=reply_to_stream_id or "",
            )
        return ByteStreamInfo(
            stream_id=sent,
            mime_type=mime_type or "application/octet-stream",
            topic=topic,
            timestamp=conn.wall_ms(now),
            size=size,
            attributes=dict(attributes or {}),
            name=name or "",
        )

    async def write(self, stream_id: str, data: str | bytes) -> None:
        pump, conn = self._host.live("write")
        pump.call(conn.write_stream, stream_id, data, now=pump.now())
        await self._host.wait_writable(Channel.RELIABLE)

    async def close(
        self, stream_id: str, reason: str, attributes: Mapping[str, str] | None
    ) -> None:
        pump, conn = self._host.live("aclose")
        pump.call(
            conn.close_stream, stream_id, now=pump.now(), reason=reason, attributes=attributes
        )
        await self._host.wait_writable(Channel.RELIABLE)

    def abort_outgoing(self, reason: str) -> None:
        """End every stream we are still sending, with `reason` (before leaving)."""
        pump, conn = self._host.live("disconnect")
        for stream_id in conn.open_stream_ids:
            with contextlib.suppress(LocalProtocolError):
                pump.call(conn.close_stream, stream_id, now=pump.now(), reason=reason)

    # -- receiving ------------------------------------------------------------------------------

    def on_event(self, event: StreamEvent) -> None:
        match event:
            case ev.StreamOpened():
                self._opened(event)
            case ev.StreamChunkReceived():
                found = self.readers.get((event.sender_identity, event.stream_id))
                if found is not None:
                    found._push((event.data, event.nbytes))
            case ev.StreamFinished():
                found = self.readers.pop((event.sender_identity, event.stream_id), None)
                if found is not None:
                    if found.info.attributes is not None:
                        found.info.attributes.update(event.attributes)
                    found._push(None)
            case ev.StreamFailed():
                found = self.readers.pop((event.sender_identity, event.stream_id), None)
                if found is not None:
                    found._push(event.exception())
            case ev.StreamDropped():
                log.info("dropped a stream from %r: %s", event.sender_identity, event.detail)
            case _:
                assert_never(event)

    def _opened(self, event: ev.StreamOpened) -> None:
        conn, tg = self._host.conn, self._host.tg
        assert conn is not None
        info, sender = event.info, event.sender_identity
        consumed = functools.partial(conn.stream_consumed, sender, info.stream_id)
        discard = functools.partial(self._discard, sender, info.stream_id)
        reader: TextStreamReader | ByteStreamReader
        if info.kind is StreamKind.TEXT:
            handler: Callable[..., object] | None = self.text_handlers.get(info.topic)
            reader = TextStreamReader(text_info(info), sender, consumed, discard)
        else:
            handler = self.byte_handlers.get(info.topic)
            reader = ByteStreamReader(byte_info(info), sender, consumed, discard)
        if handler is None:
            conn.stream_discarded(sender, info.stream_id)
            return
        self.readers[(sender, info.stream_id)] = reader
        try:
            result = handler(reader, sender)
        except Exception:
            log.exception("the stream handler for topic %r raised", info.topic)
            return
        if inspect.isawaitable(result) and tg is not None:
            tg.start_soon(_run_handler, result, info.topic)

    def _discard(self, sender: str, stream_id: str) -> None:
        self.readers.pop((sender, stream_id), None)
        conn = self._host.conn
        if conn is not None and self._host.ended is None:
            conn.stream_discarded(sender, stream_id)


async def _run_handler(result: Awaitable[object], topic: str) -> None:
    try:
        await result
    except Exception:
        log.exception("the stream handler for topic %r raised", topic)
