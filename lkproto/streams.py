"""Data streams: text and byte streams as header, chunks and trailer. Sans-I/O, usable alone.

Theory of operation (protocol-reference C):

- A stream is a `DataStream.Header` (DataPacket field 13), then `DataStream.Chunk`s (14) with
  `chunk_index` 0, 1, 2, ..., then a `DataStream.Trailer` (15), all on the reliable channel.
  A v2 header may instead carry the whole payload in `inline_content` (11): then no chunk or
  trailer follows. `compression` (12) = DEFLATE_RAW means the *whole* payload (inline, or the
  chunk contents concatenated in index order) is one raw RFC 1951 stream (`wbits=-15`).
- Sending. `OutgoingStream` is the incremental writer: never inline, never compressed (as in
  every SDK's `stream_text`/`stream_bytes`). `packetize()` is the one-shot path
  (`send_text`/`send_bytes`): deflate only if every recipient advertises
  `CAP_COMPRESSION_DEFLATE_RAW` and `client_protocol >= 2` and only if strictly smaller; inline
  only for `client_protocol >= 2` and no attachments, and only if the header packet fits
  15 000 bytes, else chunked. `StreamSupport.of(recipients)` computes that eligibility.
  Both return `DataPacket`s with `destination_identities` set and no kind or sequence: the
  caller (`Connection`) stamps those and sends them in order on the reliable channel.
- Limits on sending. A chunk's content is at most `chunk_size` (15 000, STREAM_CHUNK_SIZE in
  every SDK: under the ~16 KiB data channel message with room for framing and E2EE). Text is
  cut only before a UTF-8 lead byte, so no character is split (the bug JS, Swift and Flutter
  shipped); hence `chunk_size >= 4`. A header packet over 15 000 bytes is refused
  (`StreamHeaderTooLargeError`, JS/Rust HeaderTooLarge). `total_length` is the uncompressed
  UTF-8 byte length, never a character count.
- Receiving. `StreamAssembler` keys streams by (sender identity, stream id), so one peer can
  never feed another's stream. A header is routed only if its topic was registered for its
  kind; otherwise it is reported once as `StreamDropped(NO_HANDLER)` (a silent drop is the
  most reported stream complaint) and its later packets are ignored quietly. Chunks must be
  contiguous: an index already seen is a replay and is dropped; a gap fails the stream
  (MISSED_CHUNK, as Rust does and as JS added in client-sdk-js#2073). Text is decoded with an
  incremental UTF-8 decoder, so a character split across chunks by a sloppy sender survives.
- Bounds, all keyword arguments of `StreamAssembler` (failing only the stream concerned, never
  the connection): payload bytes per stream (`max_stream_bytes`, JS `maxPayloadByteLength`),
  bytes a compressed stream may inflate to (`max_decompressed_bytes`; inflation is done with
  `max_length`, so a bomb never materializes), bytes delivered but not yet `consumed()` across
  all streams (`max_buffered_bytes`: a slow reader's backpressure), open streams per sender,
  remembered ended stream ids, and an optional idle timeout (no SDK has one; without it a
  sender that stays connected but abandons a stream holds its slot forever).
- Ends. A trailer with a non-empty `reason` fails the stream (ABNORMAL_END); a normal
  trailer before `total_length` bytes fails it (INCOMPLETE), one before the end of a
  compressed stream's deflate data fails it too (DECODE_FAILED); more bytes than `total_length`
  fail it at once (LENGTH_EXCEEDED). A sender leaving fails its open streams (ABNORMAL_END,
  the message JS uses), so no reader hangs (node-sdks#651), but not at once: the leave comes
  over signaling and overtakes the chunks still queued for us at the server (a fast sender
  leaves as soon as its own buffer has drained, while a slow receiver may be megabytes
  behind). So a departed sender's stream carries on while chunks keep arriving, and fails only
  after `departed_timeout` seconds without a packet (0: at once, as every SDK does).
"""

from __future__ import annotations

import codecs
import enum
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import cast

import attrs

from lkproto._pb import data_pb2 as dpb
from lkproto._repr import plain_repr
from lkproto.errors import DataPacketTooLargeError, LkProtocolError, LocalProtocolError
from lkproto.models import Participant

__all__ = [
    "BYTES_MIME_TYPE",
    "CAP_COMPRESSION_DEFLATE_RAW",
    "CLIENT_PROTOCOL_DATA_STREAM_V2",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "MAX_HEADER_PACKET_SIZE",
    "STREAM_CHUNK_SIZE",
    "TEXT_MIME_TYPE",
    "DropReason",
    "OperationType",
    "OutgoingStream",
    "StreamAssembler",
    "StreamChunkReceived",
    "StreamDropped",
    "StreamError",
    "StreamErrorReason",
    "StreamEvent",
    "StreamFailed",
    "StreamFinished",
    "StreamHeaderTooLargeError",
    "StreamInfo",
    "StreamKind",
    "StreamOpened",
    "StreamSupport",
    "WriterCheckpoint",
    "packetize",
]

STREAM_CHUNK_SIZE = 15_000
MAX_HEADER_PACKET_SIZE = 15_000
DEFAULT_MAX_PAYLOAD_BYTES = 5_000_000_000  # JS DEFAULT_MAX_PAYLOAD_BYTE_LENGTH
TEXT_MIME_TYPE = "text/plain"
BYTES_MIME_TYPE = "application/octet-stream"
CAP_COMPRESSION_DEFLATE_RAW = 2  # ClientInfo.Capability
CLIENT_PROTOCOL_DATA_STREAM_V2 = 2  # ClientInfo.client_protocol: inline and compressed streams
_NONE, _DEFLATE_RAW = 0, 1  # DataStream.CompressionType
_Key = tuple[str, str]  # (sender identity, stream id)


class StreamKind(enum.Enum):
    """Which `content_header` a stream has: `text_header` or `byte_header`."""

    TEXT = "text"
    BYTES = "bytes"


class OperationType(enum.IntEnum):
    """`DataStream.OperationType` of a text stream; the SDKs attach no meaning to it."""

    CREATE = 0
    UPDATE = 1
    DELETE = 2
    REACTION = 3


class StreamSupport(enum.IntEnum):
    """What every recipient of a stream understands (protocol-reference C.3, F.2)."""

    CHUNKED = 0  #: some recipient has client_protocol < 2: header, chunks, trailer only
    INLINE = 1  #: every recipient has client_protocol >= 2: `inline_content` allowed
    DEFLATE = 2  #: ... and advertises CAP_COMPRESSION_DEFLATE_RAW: compression allowed

    @classmethod
    def of(cls, recipients: Iterable[Participant], *, compress: bool = True) -> StreamSupport:
        """Eligibility for these recipients (for a broadcast: every remote participant).

        An empty set is eligible for everything, as in JS and Rust. `compress=False` is the
        SDKs' `compress` send option turned off.
        """
        people = list(recipients)
        if any(p.client_protocol < CLIENT_PROTOCOL_DATA_STREAM_V2 for p in people):
            return cls.CHUNKED
        if compress and all(CAP_COMPRESSION_DEFLATE_RAW in p.capabilities for p in people):
            return cls.DEFLATE
        return cls.INLINE


def _frozen_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


def _default_mime(info: StreamInfo) -> str:
    return TEXT_MIME_TYPE if info.kind is StreamKind.TEXT else BYTES_MIME_TYPE


def _default_name(info: StreamInfo) -> str:
    return "" if info.kind is StreamKind.TEXT else "unknown"


@attrs.frozen(kw_only=True)
@plain_repr
class StreamInfo:
    """A stream's header as a plain value (`DataStream.Header` without the payload).

    `timestamp` is wall-clock epoch milliseconds, supplied by the caller. `name` is for byte
    streams; `operation_type` to `generated` are for text streams (`TextHeader`).
    """

    stream_id: str
    kind: StreamKind
    topic: str = ""
    timestamp: int = 0
    mime_type: str = attrs.field(default=attrs.Factory(_default_mime, takes_self=True))
    total_length: int | None = None
    attributes: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map)
    name: str = attrs.field(default=attrs.Factory(_default_name, takes_self=True))
    operation_type: OperationType | int = OperationType.CREATE
    version: int = 0
    reply_to_stream_id: str = ""
    attached_stream_ids: tuple[str, ...] = ()
    generated: bool = False

    def to_header(self) -> dpb.DataStream.Header:
        """The `DataStream.Header` for this info (no inline content, no compression)."""
        header = dpb.DataStream.Header(
            stream_id=self.stream_id,
            timestamp=self.timestamp,
            topic=self.topic,
            mime_type=self.mime_type,
            attributes=dict(self.attributes),
        )
        if self.total_length is not None:
            header.total_length = self.total_length
        if self.kind is StreamKind.TEXT:
            header.text_header.CopyFrom(
                dpb.DataStream.TextHeader(
                    operation_type=cast("dpb.DataStream.OperationType", int(self.operation_type)),
                    version=self.version,
                    reply_to_stream_id=self.reply_to_stream_id,
                    attached_stream_ids=self.attached_stream_ids,
                    generated=self.generated,
                )
            )
        else:
            header.byte_header.CopyFrom(dpb.DataStream.ByteHeader(name=self.name))
        return header

    @classmethod
    def from_header(cls, header: dpb.DataStream.Header) -> StreamInfo:
        """The info of a received header that has a `content_header`."""
        text = header.text_header
        try:
            operation: OperationType | int = OperationType(text.operation_type)
        except ValueError:
            operation = text.operation_type
        return cls(
            stream_id=header.stream_id,
            kind=StreamKind.TEXT if header.HasField("text_header") else StreamKind.BYTES,
            topic=header.topic,
            timestamp=header.timestamp,
            mime_type=header.mime_type,
            total_length=header.total_length if header.HasField("total_length") else None,
            attributes=dict(header.attributes),
            name=header.byte_header.name,
            operation_type=operation,
            version=text.version,
            reply_to_stream_id=text.reply_to_stream_id,
            attached_stream_ids=tuple(text.attached_stream_ids),
            generated=text.generated,
        )


class StreamHeaderTooLargeError(DataPacketTooLargeError):
    """A stream's header packet is over the 15 000-byte budget (HeaderTooLarge in JS/Rust).

    Usually too many or too long attributes. Nothing was emitted.
    """


# -- sending ----------------------------------------------------------------------------------


def _cut(data: bytes | bytearray, start: int, size: int, *, utf8: bool) -> int:
    """Where the piece starting at `start` ends: at most `size` bytes, not inside a character.

    Valid UTF-8 has at most 3 continuation bytes in a row, so with size >= 4 the piece is
    never empty (the splitter of JS `splitUtf8`, Rust `utf8_chunk`, Python `split_utf8`).
    """
    end = start + size
    if end >= len(data):
        return len(data)
    while utf8 and data[end] & 0xC0 == 0x80:
        end -= 1
    return end


def _encode(info: StreamInfo, data: str | bytes | bytearray | memoryview, call: str) -> bytes:
    if info.kind is StreamKind.TEXT:
        if not isinstance(data, str):
            raise LocalProtocolError(f"{call}: a text stream takes str", call=call, state="open")
        try:
            return data.encode()
        except UnicodeEncodeError as exc:
            raise LocalProtocolError(f"{call}: {exc}", call=call, state="open") from None
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise LocalProtocolError(f"{call}: a byte stream takes bytes", call=call, state="open")
    return bytes(data)


@attrs.frozen(kw_only=True)
@plain_repr
class WriterCheckpoint:
    """What `OutgoingStream.checkpoint()` saved; opaque to everyone else."""

    header: dpb.DataPacket | None = attrs.field(eq=False)
    buffer: bytes
    next_index: int
    bytes_written: int
    closed: bool


class OutgoingStream:
    """One stream being sent, written incrementally; every method returns `DataPacket`s.

    The packets carry `destination_identities` (and `participant_identity` when
    `sender_identity` is given, the agents-only override) but no kind or sequence: send them
    in order on the reliable channel. The header is emitted by `open()` or, if that was not
    called, with the first output of `write`/`flush`/`close`.
    """

    def __init__(
        self,
        info: StreamInfo,
        *,
        destination_identities: Sequence[str] = (),
        sender_identity: str = "",
        chunk_size: int = STREAM_CHUNK_SIZE,
        max_header_size: int = MAX_HEADER_PACKET_SIZE,
    ) -> None:
        """Prepare the stream. Raises `StreamHeaderTooLargeError` if the header is too big.

        `chunk_size` (>= 4, else ValueError) bounds each chunk's content.
        """
        if chunk_size < 4:
            raise ValueError("chunk_size must be at least 4 (a whole UTF-8 character)")
        self.info = info
        self._destinations = list(destination_identities)
        self._sender = sender_identity
        self._chunk_size = chunk_size
        self._utf8 = info.kind is StreamKind.TEXT
        self._header: dpb.DataPacket | None = self._wrap(header=info.to_header())
        size = self._header.ByteSize()
        if size > max_header_size:
            raise StreamHeaderTooLargeError(size=size, limit=max_header_size, call="stream header")
        self._buffer = bytearray()
        self._next_index = 0
        #: Payload bytes accepted so far (UTF-8 bytes for text).
        self.bytes_written = 0
        #: True once `close()` has run; every later call raises `LocalProtocolError`.
        self.closed = False

    def _wrap(
        self,
        *,
        header: dpb.DataStream.Header | None = None,
        chunk: dpb.DataStream.Chunk | None = None,
        trailer: dpb.DataStream.Trailer | None = None,
    ) -> dpb.DataPacket:
        return dpb.DataPacket(
            participant_identity=self._sender,
            destination_identities=self._destinations,
            stream_header=header,
            stream_chunk=chunk,
            stream_trailer=trailer,
        )

    def _check(self, call: str) -> None:
        if self.closed:
            raise LocalProtocolError(
                f"{call}: stream {self.info.stream_id} is already closed", call=call, state="closed"
            )

    def _emit_header(self) -> list[dpb.DataPacket]:
        header, self._header = self._header, None
        return [] if header is None else [header]

    def _drain(self, *, flush: bool) -> list[dpb.DataPacket]:
        out = self._emit_header()
        buf, start = self._buffer, 0
        while len(buf) - start > self._chunk_size or (flush and start < len(buf)):
            end = _cut(buf, start, self._chunk_size, utf8=self._utf8)
            chunk = dpb.DataStream.Chunk(
                stream_id=self.info.stream_id,
                chunk_index=self._next_index,
                content=bytes(buf[start:end]),
            )
            out.append(self._wrap(chunk=chunk))
            self._next_index += 1
            start = end
        del buf[:start]
        return out

    def checkpoint(self) -> WriterCheckpoint:
        """A snapshot of this writer, for `rollback`.

        For an owner whose send can still be refused after the packets were made (a full
        send queue): take one before `open`/`write`/`flush`/`close`, and roll back if the
        packets were not sent, so the next ones reuse their chunk indexes and no gap appears.
        """
        return WriterCheckpoint(
            header=self._header,
            buffer=bytes(self._buffer),
            next_index=self._next_index,
            bytes_written=self.bytes_written,
            closed=self.closed,
        )

    def rollback(self, checkpoint: WriterCheckpoint) -> None:
        """Undo everything since `checkpoint` (the packets made since must not be sent)."""
        self._header = checkpoint.header
        self._buffer = bytearray(checkpoint.buffer)
        self._next_index = checkpoint.next_index
        self.bytes_written = checkpoint.bytes_written
        self.closed = checkpoint.closed

    def open(self) -> list[dpb.DataPacket]:
        """The header packet, so the receiver sees the stream start; [] if already emitted."""
        self._check("open")
        return self._emit_header()

    def write(self, data: str | bytes, *, flush: bool = True) -> list[dpb.DataPacket]:
        """Append `data` (str for a text stream, bytes for a byte stream).

        With `flush=True` (the default, and what every SDK does) all of it goes out now, as
        one or more chunks. With `flush=False` only whole chunks go out and the rest (at most
        one chunk's worth) waits for the next call, to batch many small writes. Raises
        `LocalProtocolError` (changing nothing) for the wrong type, after `close()`, or past
        a declared `total_length`.
        """
        self._check("write")
        raw = _encode(self.info, data, "write")
        total = self.info.total_length
        if total is not None and self.bytes_written + len(raw) > total:
            raise LocalProtocolError(
                f"write: {self.bytes_written + len(raw)} bytes would exceed the declared "
                f"total_length of {total}",
                call="write",
                state="open",
            )
        self.bytes_written += len(raw)
        self._buffer += raw
        return self._drain(flush=flush)

    def flush(self) -> list[dpb.DataPacket]:
        """Send whatever `write(..., flush=False)` held back."""
        self._check("flush")
        return self._drain(flush=True)

    def close(
        self, *, reason: str = "", attributes: Mapping[str, str] | None = None
    ) -> list[dpb.DataPacket]:
        """Flush, then the trailer. A non-empty `reason` aborts (the receiver fails the stream).

        `attributes` are merged into the stream's attributes by the receiver. Closing twice,
        or closing normally short of a declared `total_length`, raises `LocalProtocolError`.
        """
        self._check("close")
        total = self.info.total_length
        if not reason and total is not None and self.bytes_written < total:
            raise LocalProtocolError(
                f"close: only {self.bytes_written} of the declared {total} bytes were written; "
                "write the rest or close with a reason",
                call="close",
                state="open",
            )
        out = self._drain(flush=True)
        self.closed = True
        trailer = dpb.DataStream.Trailer(
            stream_id=self.info.stream_id, reason=reason, attributes=dict(attributes or {})
        )
        return [*out, self._wrap(trailer=trailer)]


def packetize(
    info: StreamInfo,
    payload: str | bytes,
    *,
    support: StreamSupport = StreamSupport.CHUNKED,
    destination_identities: Sequence[str] = (),
    sender_identity: str = "",
    chunk_size: int = STREAM_CHUNK_SIZE,
    max_header_size: int = MAX_HEADER_PACKET_SIZE,
) -> list[dpb.DataPacket]:
    """All packets of a one-shot `send_text`/`send_bytes` (protocol-reference C.3).

    `info.total_length` is replaced by the payload's UTF-8/byte length. With `support` >=
    DEFLATE the payload is deflated and used if strictly smaller; with >= INLINE and no
    attachments it goes in the header if that packet fits `max_header_size`. Otherwise:
    header, chunks, trailer. Raises as `OutgoingStream` and its `write` do.
    """
    raw = _encode(info, payload, "packetize")
    info = attrs.evolve(info, total_length=len(raw))
    body, compression = raw, _NONE
    if support >= StreamSupport.DEFLATE:
        deflater = zlib.compressobj(wbits=-15)
        packed = deflater.compress(raw) + deflater.flush()
        if len(packed) < len(raw):
            body, compression = packed, _DEFLATE_RAW
    stream = OutgoingStream(
        info,
        destination_identities=destination_identities,
        sender_identity=sender_identity,
        chunk_size=chunk_size,
        max_header_size=max_header_size,
    )
    packet = stream._header
    assert packet is not None
    header = packet.stream_header
    if support >= StreamSupport.INLINE and not info.attached_stream_ids:
        header.inline_content = body
        header.compression = cast("dpb.DataStream.CompressionType", compression)
        if packet.ByteSize() <= max_header_size:
            return [packet]
        header.ClearField("inline_content")
    if compression == _NONE:
        return stream.write(payload) + stream.close()
    header.compression = dpb.DataStream.DEFLATE_RAW
    if packet.ByteSize() > max_header_size:  # the compression field took the last bytes
        raise StreamHeaderTooLargeError(
            size=packet.ByteSize(), limit=max_header_size, call="stream header"
        )
    stream._utf8 = False  # compressed bytes are opaque: cut at any byte
    stream._buffer += body
    stream.bytes_written = len(raw)
    return stream.close()


# -- receiving --------------------------------------------------------------------------------


class StreamErrorReason(enum.IntEnum):
    """Why a received stream failed. 0-10 are JS `DataStreamErrorReason` values; 100+ ours."""

    ABNORMAL_END = 1  #: trailer with a reason, or the sender left / the session ended
    DECODE_FAILED = 2  #: bad UTF-8, bad deflate data, or deflate data cut short
    LENGTH_EXCEEDED = 3  #: more bytes than the header's total_length
    INCOMPLETE = 4  #: normal trailer before total_length bytes
    ENCRYPTION_TYPE_MISMATCH = 8  #: a packet's encryption differs from the header's
    PAYLOAD_TOO_LARGE = 10  #: over max_stream_bytes or max_decompressed_bytes
    MISSED_CHUNK = 100  #: a gap in chunk_index (Rust MissedChunk)
    TOO_MANY_STREAMS = 101  #: the sender already has max_open_streams_per_sender open
    BUFFER_FULL = 102  #: the reader fell max_buffered_bytes behind
    IDLE_TIMEOUT = 103  #: no packet for idle_timeout seconds


class StreamError(LkProtocolError):
    """A received stream failed; a transport's stream reader raises this."""

    def __init__(
        self, message: str, *, reason: StreamErrorReason, stream_id: str = "", sender: str = ""
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.stream_id = stream_id
        self.sender_identity = sender


class DropReason(enum.Enum):
    """Why a stream's packets were ignored without opening it."""

    NO_HANDLER = "no_handler"  #: no topic registered for its kind
    DUPLICATE = "duplicate"  #: a header for a stream id already open or ended
    UNKNOWN_STREAM = "unknown_stream"  #: a chunk or trailer whose header never came
    INVALID_HEADER = "invalid_header"  #: no content_header, or an unknown compression


@attrs.frozen(kw_only=True)
@plain_repr
class StreamOpened:
    """A stream started; `StreamChunkReceived`s and one `StreamFinished`/`StreamFailed` follow."""

    sender_identity: str
    info: StreamInfo


@attrs.frozen(kw_only=True)
@plain_repr
class StreamChunkReceived:
    """Payload, in order: `str` for text streams, `bytes` for byte streams, never empty.

    `nbytes` is its size on the wire (UTF-8 bytes for text): pass it to
    `StreamAssembler.consumed()` once the application has taken it. `received` is the
    stream's total so far, for progress against `info.total_length`.
    """

    sender_identity: str
    stream_id: str
    data: str | bytes
    nbytes: int
    received: int


@attrs.frozen(kw_only=True)
@plain_repr
class StreamFinished:
    """The stream ended normally; `attributes` include the trailer's updates."""

    sender_identity: str
    stream_id: str
    attributes: Mapping[str, str] = attrs.field(converter=_frozen_map)


@attrs.frozen(kw_only=True)
@plain_repr
class StreamFailed:
    """The stream ended with an error; nothing more comes for it."""

    sender_identity: str
    stream_id: str
    reason: StreamErrorReason
    message: str

    def exception(self) -> StreamError:
        """The error for the stream's reader to raise."""
        return StreamError(
            self.message, reason=self.reason, stream_id=self.stream_id, sender=self.sender_identity
        )


@attrs.frozen(kw_only=True)
@plain_repr
class StreamDropped:
    """A stream was not opened; reported once per stream, later packets are ignored."""

    sender_identity: str
    stream_id: str
    reason: DropReason
    detail: str


StreamEvent = StreamOpened | StreamChunkReceived | StreamFinished | StreamFailed | StreamDropped


class _Incoming:
    """Receive state of one stream."""

    def __init__(
        self,
        info: StreamInfo,
        *,
        sender: str,
        compressed: bool,
        encryption: int,
        now: float,
        origin: str = "",
    ) -> None:
        self.info = info
        self.sender = sender
        #: Who really sent it: the header packet's `participant_sid`, which the server always
        #: sets to the sender's own SID (the identity can be an agent's claim), else `sender`.
        self.origin = origin or sender
        self.encryption = encryption
        self.inflater = zlib.decompressobj(wbits=-15) if compressed else None
        utf8 = info.kind is StreamKind.TEXT
        self.decoder = codecs.getincrementaldecoder("utf-8")() if utf8 else None
        self.next_index = 0
        self.received = 0  # payload bytes, after inflation
        self.last_activity = now
        self.departed: float | None = None  # when its sender left, if it did


class StreamAssembler:
    """Reassembles incoming streams and reports them as `StreamEvent` values.

    Every input returns the events it caused, in order. It never raises for what a peer
    sent; every bound below fails only the stream concerned (see the module docstring).
    """

    def __init__(
        self,
        *,
        max_stream_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        max_decompressed_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        max_buffered_bytes: int = 16 * 1024 * 1024,
        max_open_streams_per_sender: int = 64,
        max_remembered_streams: int = 4096,
        idle_timeout: float | None = None,
        max_buffered_bytes_per_sender: int | None = None,
        departed_timeout: float = 0.0,
    ) -> None:
        """Set the bounds.

        - `max_stream_bytes`: payload bytes one stream may carry (JS default, 5 GB).
        - `max_decompressed_bytes`: bytes a compressed stream may inflate to (same default).
        - `max_buffered_bytes`: delivered bytes not yet `consumed()`, across all streams;
          the stream that would pass it fails. 16 MiB: a thousand plain chunks, and more than
          one full compressed chunk can inflate to (15 000 x deflate's 1032:1 = 15.5 MB).
        - `max_open_streams_per_sender`: 64; a further header fails that new stream.
        - `max_remembered_streams`: ended or dropped stream ids kept so that their late
          packets are ignored quietly (4096, oldest forgotten).
        - `idle_timeout`: seconds without a packet after which an open stream fails;
          None (the default, like every SDK) never.
        - `max_buffered_bytes_per_sender`: the share of `max_buffered_bytes` one sender's
          streams may hold, so that one sender (a slow reader's peer, or unfinished RPC
          payloads) cannot fail everyone else's streams; None: half of `max_buffered_bytes`.
        - `departed_timeout`: seconds a stream whose sender left (`sender_left`) may go
          without a packet before it fails; 0 (the default, like every SDK): it fails at the
          leave. What is still in flight when the leave arrives keeps it open.

        Raises ValueError for a bound below 1 or a timeout that is not positive (or, for
        `departed_timeout`, negative).
        """
        bounds = (max_stream_bytes, max_decompressed_bytes, max_buffered_bytes)
        if min(*bounds, max_open_streams_per_sender, max_remembered_streams) < 1:
            raise ValueError("StreamAssembler bounds must be at least 1")
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError("StreamAssembler idle_timeout must be positive")
        if not 0 <= departed_timeout < float("inf"):
            raise ValueError("StreamAssembler departed_timeout must be a finite number >= 0")
        self.max_stream_bytes = max_stream_bytes
        self.max_decompressed_bytes = max_decompressed_bytes
        self.max_buffered_bytes = max_buffered_bytes
        if max_buffered_bytes_per_sender is None:
            max_buffered_bytes_per_sender = max(1, max_buffered_bytes // 2)
        if max_buffered_bytes_per_sender < 1:
            raise ValueError("StreamAssembler bounds must be at least 1")
        self.max_buffered_bytes_per_sender = max_buffered_bytes_per_sender
        self.max_open_streams_per_sender = max_open_streams_per_sender
        self.max_remembered_streams = max_remembered_streams
        self.idle_timeout = idle_timeout
        self.departed_timeout = departed_timeout
        self._topics: dict[StreamKind, set[str]] = {StreamKind.TEXT: set(), StreamKind.BYTES: set()}
        self._open: dict[_Key, _Incoming] = {}
        self._per_sender: dict[str, int] = {}  # by origin (see `_Incoming.origin`)
        self._by_origin: dict[tuple[str, str], _Key] = {}  # (sender SID, stream id) -> key
        self._ended: OrderedDict[_Key, None] = OrderedDict()
        self._charged: dict[_Key, int] = {}
        self._buffered = 0
        self._buffered_by: dict[str, int] = {}  # sender identity -> its share of _buffered

    # -- topics and flow control ------------------------------------------------------------

    def add_topic(self, kind: StreamKind, topic: str) -> None:
        """Accept streams of `kind` on `topic` (a handler was registered).

        Raises `LocalProtocolError` if it is already accepted (HandlerAlreadyRegistered).
        """
        if topic in self._topics[kind]:
            raise LocalProtocolError(
                f"add_topic: a {kind.value} stream handler for topic {topic!r} is already "
                "registered",
                call="add_topic",
                state="registered",
            )
        self._topics[kind].add(topic)

    def remove_topic(self, kind: StreamKind, topic: str) -> None:
        """Stop accepting new streams of `kind` on `topic`; open ones carry on. Idempotent."""
        self._topics[kind].discard(topic)

    @property
    def buffered_bytes(self) -> int:
        """Bytes delivered in `StreamChunkReceived` and not yet `consumed()`."""
        return self._buffered

    @property
    def open_streams(self) -> tuple[tuple[str, str], ...]:
        """(sender identity, stream id) of every open stream, oldest first."""
        return tuple(self._open)

    def consumed(self, sender_identity: str, stream_id: str, nbytes: int) -> None:
        """The application took `nbytes` (from `StreamChunkReceived.nbytes`) of this stream.

        Lenient: unknown streams and over-counts are ignored, since a failed stream's charge
        is released at once. Negative counts raise `LocalProtocolError`.
        """
        if nbytes < 0:
            raise LocalProtocolError("consumed: nbytes must not be negative", call="consumed")
        key = (sender_identity, stream_id)
        charged = self._charged.get(key, 0)
        self._release(key, min(nbytes, charged))

    def discard(self, sender_identity: str, stream_id: str) -> None:
        """The application dropped the stream's reader: release its unconsumed bytes, and if it
        is still open, ignore the rest of it quietly."""
        key = (sender_identity, stream_id)
        self._release(key, self._charged.get(key, 0))
        if key in self._open:
            self._end(key)

    def _release(self, key: _Key, nbytes: int) -> None:
        left = self._charged.pop(key, 0) - nbytes
        self._buffered -= nbytes
        if left:
            self._charged[key] = left
        if nbytes:
            held = self._buffered_by.pop(key[0]) - nbytes
            if held:
                self._buffered_by[key[0]] = held

    # -- packets ----------------------------------------------------------------------------

    def receive(
        self, packet: dpb.DataPacket, *, now: float, encryption: int = 0
    ) -> list[StreamEvent]:
        """A `DataPacket` holding `stream_header`, `stream_chunk` or `stream_trailer`.

        The sender is `packet.participant_identity`; `encryption` is the `Encryption.Type` of
        the packet that carried it (0 if it was not encrypted). Returns the events it caused:
        for a header `StreamOpened` (then at once a chunk and `StreamFinished` if it was
        inline, or `StreamFailed` if a bound is already broken) or `StreamDropped`; for a
        chunk its payload, nothing for a replayed index, or a failure; for a trailer
        `StreamFinished` or `StreamFailed`. Any other packet raises `LocalProtocolError`.
        """
        sender = packet.participant_identity
        kind = packet.WhichOneof("value")
        if kind == "stream_header":
            sid = packet.participant_sid
            return self._header(packet.stream_header, sender, now, encryption, sid)
        if kind not in ("stream_chunk", "stream_trailer"):
            raise LocalProtocolError(f"receive: {kind} is not a stream packet", call="receive")
        part = packet.stream_chunk if kind == "stream_chunk" else packet.stream_trailer
        key = (sender, part.stream_id)
        if key not in self._open and packet.participant_sid:
            # An agent's header may claim another identity; its chunks carry its own.
            key = self._by_origin.get((packet.participant_sid, part.stream_id), key)
        stream = self._open.get(key)
        if stream is None:
            return self._unknown(key, kind)
        stream.last_activity = now
        try:
            if encryption != stream.encryption:
                raise _error(
                    StreamErrorReason.ENCRYPTION_TYPE_MISMATCH,
                    f"a packet with encryption {encryption} in a stream opened with "
                    f"{stream.encryption}",
                )
            if isinstance(part, dpb.DataStream.Chunk):
                return self._chunk(key, stream, part)
            if part.reason:
                raise _error(
                    StreamErrorReason.ABNORMAL_END, f"the sender aborted the stream: {part.reason}"
                )
            finished = self._finish(stream, part.attributes)
        except StreamError as exc:
            return [self._failed(key, exc)]
        self._end(key)
        return [finished]

    def _header(
        self, header: dpb.DataStream.Header, sender: str, now: float, encryption: int, sid: str
    ) -> list[StreamEvent]:
        key = (sender, header.stream_id)
        if key in self._open or key in self._ended:
            return [self._dropped(key, DropReason.DUPLICATE, "this stream id was already used")]
        if header.WhichOneof("content_header") is None:
            self._end(key)
            return [self._dropped(key, DropReason.INVALID_HEADER, "no text or byte header")]
        info = StreamInfo.from_header(header)
        if info.topic not in self._topics[info.kind]:
            self._end(key)
            detail = f"no {info.kind.value} stream handler for topic {info.topic!r}"
            return [self._dropped(key, DropReason.NO_HANDLER, detail)]
        if header.compression not in (_NONE, _DEFLATE_RAW):
            self._end(key)
            detail = f"unknown compression {header.compression}"
            return [self._dropped(key, DropReason.INVALID_HEADER, detail)]
        out: list[StreamEvent] = [StreamOpened(sender_identity=sender, info=info)]
        compressed = header.compression == _DEFLATE_RAW
        stream = _Incoming(
            info, sender=sender, compressed=compressed, encryption=encryption, now=now, origin=sid
        )
        try:
            if info.total_length is not None and info.total_length > self.max_stream_bytes:
                raise _error(
                    StreamErrorReason.PAYLOAD_TOO_LARGE,
                    f"the header declares {info.total_length} bytes, over the "
                    f"{self.max_stream_bytes}-byte limit",
                )
            if header.HasField("inline_content"):
                out += self._accept(key, stream, header.inline_content)
                out.append(self._finish(stream, {}))
                self._end(key)
                return out
            if self._per_sender.get(stream.origin, 0) >= self.max_open_streams_per_sender:
                raise _error(
                    StreamErrorReason.TOO_MANY_STREAMS,
                    f"{sender!r} already has {self.max_open_streams_per_sender} open streams",
                )
        except StreamError as exc:
            return [*out, self._failed(key, exc)]
        self._open[key] = stream
        self._per_sender[stream.origin] = self._per_sender.get(stream.origin, 0) + 1
        if sid:
            self._by_origin[(sid, key[1])] = key
        return out

    def _chunk(
        self, key: _Key, stream: _Incoming, chunk: dpb.DataStream.Chunk
    ) -> list[StreamEvent]:
        if chunk.chunk_index < stream.next_index:
            return []  # a replay (e.g. after a resume): already delivered
        if chunk.chunk_index > stream.next_index:
            raise _error(
                StreamErrorReason.MISSED_CHUNK,
                f"chunk {chunk.chunk_index} arrived, expected {stream.next_index}",
            )
        stream.next_index += 1
        return self._accept(key, stream, chunk.content)

    def sender_left(self, identity: str, sid: str = "", *, now: float = 0.0) -> list[StreamEvent]:
        """The participant left at `now`: its open streams (also those it opened under a
        claimed identity, `sid`: its SID; only those when `identity` is "") fail with
        ABNORMAL_END once no packet of theirs has arrived for `departed_timeout` seconds (at
        once if that is 0); see `handle_timer`."""
        keys = [
            k
            for k, s in self._open.items()
            if (identity and k[0] == identity) or (sid and s.origin == sid)
        ]
        if not self.departed_timeout:
            return [self._failed(key, _departed(key[0], 0.0)) for key in keys]
        for key in keys:
            self._open[key].departed = now
        return []

    def abort_all(self, message: str) -> list[StreamEvent]:
        """Fail every open stream (ABNORMAL_END, `message`): the session ended or restarted."""
        error = _error(StreamErrorReason.ABNORMAL_END, message)
        return [self._failed(key, error) for key in list(self._open)]

    def _deadline(self, stream: _Incoming) -> float | None:
        when = None
        if self.idle_timeout is not None:
            when = stream.last_activity + self.idle_timeout
        if stream.departed is not None:
            left = max(stream.last_activity, stream.departed) + self.departed_timeout
            when = left if when is None else min(when, left)
        return when

    def get_timer(self) -> float | None:
        """When `handle_timer` must next run (an idle or departed-sender deadline), or None."""
        if not self._open:
            return None  # the usual case, asked after every input
        deadlines = [d for s in self._open.values() if (d := self._deadline(s)) is not None]
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> list[StreamEvent]:
        """Fail every stream idle for `idle_timeout` seconds (IDLE_TIMEOUT), and every stream
        of a departed sender with no packet for `departed_timeout` seconds (ABNORMAL_END)."""
        out: list[StreamEvent] = []
        for key, stream in list(self._open.items()):
            idle = self.idle_timeout
            if idle is not None and stream.last_activity + idle <= now:
                out.append(
                    self._failed(
                        key, _error(StreamErrorReason.IDLE_TIMEOUT, f"no packet for {idle:g}s")
                    )
                )
            elif stream.departed is not None and (
                max(stream.last_activity, stream.departed) + self.departed_timeout <= now
            ):
                out.append(self._failed(key, _departed(key[0], self.departed_timeout)))
        return out

    # -- internals --------------------------------------------------------------------------

    def _accept(self, key: _Key, stream: _Incoming, content: bytes) -> list[StreamEvent]:
        """Inflate, check the bounds, decode and charge one piece of payload."""
        if stream.inflater is not None:
            content = self._inflate(stream, content)
        n = len(content)
        total = stream.info.total_length
        if total is not None and stream.received + n > total:
            raise _error(
                StreamErrorReason.LENGTH_EXCEEDED,
                f"{stream.received + n} bytes received, more than the {total} the header declared",
            )
        if stream.received + n > self.max_stream_bytes:
            raise _error(
                StreamErrorReason.PAYLOAD_TOO_LARGE,
                f"the stream passed the {self.max_stream_bytes}-byte limit",
            )
        if self._buffered + n > self.max_buffered_bytes:
            raise _error(
                StreamErrorReason.BUFFER_FULL,
                f"the reader is too slow: {self._buffered} bytes not yet consumed, "
                f"{n} more would pass the {self.max_buffered_bytes}-byte limit",
            )
        held = self._buffered_by.get(key[0], 0)
        if held + n > self.max_buffered_bytes_per_sender:
            raise _error(
                StreamErrorReason.BUFFER_FULL,
                f"{key[0]!r} has {held} bytes not yet consumed, {n} more would pass its "
                f"{self.max_buffered_bytes_per_sender}-byte share",
            )
        stream.received += n
        data: str | bytes = content
        if stream.decoder is not None:
            held = len(stream.decoder.getstate()[0])
            try:
                data = stream.decoder.decode(content)
            except UnicodeDecodeError as exc:
                raise _error(
                    StreamErrorReason.DECODE_FAILED, f"the text is not UTF-8: {exc.reason}"
                ) from None
            n += held - len(stream.decoder.getstate()[0])  # bytes of `data`, exactly
        if not data:
            return []
        self._charged[key] = self._charged.get(key, 0) + n
        self._buffered += n
        self._buffered_by[key[0]] = self._buffered_by.get(key[0], 0) + n
        return [
            StreamChunkReceived(
                sender_identity=key[0],
                stream_id=key[1],
                data=data,
                nbytes=n,
                received=stream.received,
            )
        ]

    def _inflate(self, stream: _Incoming, content: bytes) -> bytes:
        """Inflate, producing at most one byte more than the tightest bound allows."""
        inflater = stream.inflater
        assert inflater is not None
        room = min(self.max_decompressed_bytes, self.max_stream_bytes) - stream.received
        room = min(room, self.max_buffered_bytes - self._buffered)
        held = self._buffered_by.get(stream.sender, 0)
        room = min(room, self.max_buffered_bytes_per_sender - held)
        if stream.info.total_length is not None:
            room = min(room, stream.info.total_length - stream.received)
        try:
            out = inflater.decompress(content, room + 1)
        except zlib.error as exc:
            raise _error(StreamErrorReason.DECODE_FAILED, f"bad deflate data: {exc}") from None
        if inflater.unused_data:
            raise _error(
                StreamErrorReason.DECODE_FAILED, "data after the end of the deflate stream"
            )
        if stream.received + len(out) > self.max_decompressed_bytes:
            raise _error(
                StreamErrorReason.PAYLOAD_TOO_LARGE,
                f"the stream inflates past the {self.max_decompressed_bytes}-byte limit",
            )
        return out

    def _finish(self, stream: _Incoming, attributes: Mapping[str, str]) -> StreamFinished:
        total = stream.info.total_length
        if total is not None and stream.received < total:
            raise _error(
                StreamErrorReason.INCOMPLETE,
                f"the stream ended after {stream.received} of {total} bytes",
            )
        if stream.inflater is not None and not stream.inflater.eof:
            # Truncated deflate data: what arrived inflates, so without a total_length the
            # loss would go unnoticed (JS's DecompressionStream errors here too).
            raise _error(
                StreamErrorReason.DECODE_FAILED, "the deflate data ended before its last block"
            )
        if stream.decoder is not None:
            try:
                stream.decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise _error(
                    StreamErrorReason.DECODE_FAILED, "the text ended inside a UTF-8 character"
                ) from None
        return StreamFinished(
            sender_identity=stream.sender,
            stream_id=stream.info.stream_id,
            attributes={**stream.info.attributes, **attributes},
        )

    def _unknown(self, key: _Key, what: str) -> list[StreamEvent]:
        if key in self._ended:
            return []  # the stream ended or was dropped, and that was reported
        self._end(key)
        detail = f"a {what} for a stream whose header never came"
        return [self._dropped(key, DropReason.UNKNOWN_STREAM, detail)]

    @staticmethod
    def _dropped(key: _Key, reason: DropReason, detail: str) -> StreamDropped:
        return StreamDropped(sender_identity=key[0], stream_id=key[1], reason=reason, detail=detail)

    def _failed(self, key: _Key, error: StreamError) -> StreamFailed:
        self._end(key)
        self._release(key, self._charged.get(key, 0))  # a failed reader discards its queue
        return StreamFailed(
            sender_identity=key[0], stream_id=key[1], reason=error.reason, message=str(error)
        )

    def _end(self, key: _Key) -> None:
        """Close `key` if open, and remember it so its late packets are ignored quietly."""
        stream = self._open.pop(key, None)
        if stream is not None:
            left = self._per_sender.pop(stream.origin) - 1
            if left:
                self._per_sender[stream.origin] = left
            self._by_origin.pop((stream.origin, key[1]), None)
        self._ended[key] = None
        self._ended.move_to_end(key)
        while len(self._ended) > self.max_remembered_streams:
            self._ended.popitem(last=False)


def _error(reason: StreamErrorReason, message: str) -> StreamError:
    return StreamError(message, reason=reason)


def _departed(identity: str, waited: float) -> StreamError:
    message = f"Participant {identity} unexpectedly disconnected in the middle of sending data"
    if waited:
        message += f" (no more of it arrived in the {waited:g}s after it left)"
    return _error(StreamErrorReason.ABNORMAL_END, message)
