"""Data streams for the anyio Room: `livekit.rtc`-shaped readers, writers and infos.

Readers receive the core's `StreamChunkReceived` values through an unbounded anyio memory
stream; memory is bounded by the core instead (`Config.max_buffered_stream_bytes`): a chunk
counts against that bound until the application takes it from the reader, which then reports
`stream_consumed`. A reader that falls too far behind fails (BUFFER_FULL) on its own; the
connection and other streams carry on. Dropping a reader reports `stream_discarded`.

Writers send through the core (`open_stream`/`write_stream`/`close_stream`) and then wait on
the reliable data channel's buffered amount (high/low watermarks), so a fast writer cannot
queue unbounded data.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from lkproto.streams import StreamError, StreamErrorReason, StreamInfo

if TYPE_CHECKING:
    from .anyio import Room

__all__ = [
    "ByteStreamInfo",
    "ByteStreamReader",
    "ByteStreamWriter",
    "StreamError",
    "TextStreamInfo",
    "TextStreamReader",
    "TextStreamWriter",
]

T = TypeVar("T", str, bytes)


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
        return self._info

    async def read_all(self) -> str:
        return "".join([chunk async for chunk in self])


class ByteStreamReader(_Reader[bytes]):
    """`livekit.rtc.ByteStreamReader`: async-iterate for byte chunks."""

    def __init__(self, info: ByteStreamInfo, sender: str, *args: Callable[..., None]) -> None:
        super().__init__(sender, info.stream_id, *args)
        self._info = info

    @property
    def info(self) -> ByteStreamInfo:
        return self._info

    async def read_all(self) -> bytes:
        return b"".join([chunk async for chunk in self])


class _Writer:
    def __init__(self, room: Room, stream_id: str) -> None:
        self._room = room
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
            await self._room._stream_write(self._stream_id, data)

    async def aclose(
        self, *, reason: str = "", attributes: Mapping[str, str] | None = None
    ) -> None:
        """End the stream (a non-empty `reason` tells the readers it was aborted)."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("Stream already closed")
            self._closed = True
            await self._room._stream_close(self._stream_id, reason, attributes)

    async def __aenter__(self: W) -> W:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._closed:
            await self.aclose(reason="" if exc is None else f"writer failed: {exc_type}")


W = TypeVar("W", bound=_Writer)


class TextStreamWriter(_Writer):
    """`livekit.rtc.TextStreamWriter`: `await write(text)`, then `await aclose()`."""

    def __init__(self, room: Room, info: TextStreamInfo) -> None:
        super().__init__(room, info.stream_id)
        self._info = info

    @property
    def info(self) -> TextStreamInfo:
        return self._info

    async def write(self, text: str) -> None:
        await self._write(text)


class ByteStreamWriter(_Writer):
    """`livekit.rtc.ByteStreamWriter`: `await write(data)`, then `await aclose()`."""

    def __init__(self, room: Room, info: ByteStreamInfo) -> None:
        super().__init__(room, info.stream_id)
        self._info = info

    @property
    def info(self) -> ByteStreamInfo:
        return self._info

    async def write(self, data: bytes) -> None:
        await self._write(bytes(data))
