"""Data track packet format v0: one binary message on the `_data_track` data channel.

Theory of operation (protocol-reference-2 1.5; rust-sdks `livekit-datatrack/docs/packet-v0.md`
and `src/packet/`, client-sdk-js `data-track/packet/`, livekit-server `pkg/rtc/datatrack/
packet.go`, which agree). Every integer is big-endian.

- Base header, 12 bytes: byte 0 = version (bits 7-5, must be 0), S = start of frame (bit 4),
  F = final packet of frame (bit 3), X = extensions follow (bit 2), two reserved bits; byte 1
  reserved; then the track handle u16 (0 is invalid: the publisher writes its `pub_handle`,
  subscribers see the handle the server assigned them), the sequence number u16 (+1 per
  packet), the frame number u16 (+1 per frame) and a u32 timestamp on a 90 kHz clock. S and F
  together give the `FrameMarker`: SINGLE (both), START, INTER (neither), FINAL. Reserved bits
  are written 0 and ignored when read (forward compatibility, as Rust and the server do).
- With X set, a u16 W follows at offset 12: the 2-byte W field, the extensions and the zero
  padding together occupy 4·(W+1) bytes (Rust writes words - 1, the server (size/4) - 1), so
  the header is 12 + 4·(W+1) bytes: 24 with the user timestamp, 32 with E2EE, 40 with both.
  Each extension is `id u8, len u8, value[len]` where len is the real length. Defined: id 1
  len 13 = E2EE (key index u8, then the 12-byte AES-GCM IV; the spec's "12-bit" is a typo),
  id 2 len 8 = user timestamp u64 (the SDKs put UNIX milliseconds there). Id 0 is padding.
- Encoding writes E2EE, then the user timestamp, then the padding, which always comes last
  (as Rust and JS); X is set only when there is an extension.
- Decoding follows the server's parser for the block: it stops at the first id-0 byte (the
  rest of the block is padding) rather than reading padding in (id, len) pairs as Rust and JS
  do, which would misparse padding placed mid-block. Unknown ids are skipped by their length;
  a known id with a longer length is read and its extra bytes skipped, one with a shorter
  length is treated as unknown (Rust and JS). A later copy of a known extension replaces an
  earlier one. Id 1 is also the server's test-only `DTEI_PARTICIPANT_SID`: only a length of at
  least 13 makes it E2EE.
- Malformed input raises `DataTrackPacketError` with a `PacketErrorReason`, checked in this
  order (Rust's `DeserializeError`): TOO_SHORT (under 12 bytes), UNSUPPORTED_VERSION (version
  above 0), INVALID_HANDLE (handle 0), MISSING_EXTENSION_WORDS (X set but no room for W),
  HEADER_OVERRUN (the block runs past the packet), MALFORMED_EXTENSION (an id without its
  length byte, or a value running past the block).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable

import attrs

from lkproto._repr import plain_repr
from lkproto.errors import LkProtocolError

__all__ = [
    "BASE_HEADER_SIZE",
    "MAX_HEADER_SIZE",
    "TIMESTAMP_RATE",
    "DataTrackPacket",
    "DataTrackPacketError",
    "E2eeExtension",
    "FrameMarker",
    "PacketErrorReason",
    "header_size",
]

VERSION = 0
BASE_HEADER_SIZE = 12
#: The longest header this encoder writes: both extensions and one byte of padding.
MAX_HEADER_SIZE = 40
#: Ticks per second of the packet timestamp (RTP-like).
TIMESTAMP_RATE = 90_000
E2EE_ID, E2EE_LEN = 1, 13
USER_TIMESTAMP_ID, USER_TIMESTAMP_LEN = 2, 8
IV_LEN = 12
_EXT_WORDS_SIZE = 2
_HEADER = struct.Struct(">BBHHHI")
_U8, _U16, _U32, _U64 = 0xFF, 0xFFFF, 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF


class FrameMarker(enum.IntEnum):
    """A packet's place in its frame: the S (0b10) and F (0b01) bits of byte 0."""

    INTER = 0b00
    FINAL = 0b01
    START = 0b10
    SINGLE = 0b11


class PacketErrorReason(enum.Enum):
    """Why a received data-track packet was dropped.

    The first six are decode failures (`DataTrackPacketError`, Rust `DeserializeError`); the
    last two are reported only by the manager's receive path.
    """

    TOO_SHORT = "too_short"  #: under the 12-byte base header
    UNSUPPORTED_VERSION = "unsupported_version"  #: a version above 0
    INVALID_HANDLE = "invalid_handle"  #: track handle 0
    MISSING_EXTENSION_WORDS = "missing_extension_words"  #: X set, no 2 bytes for W
    HEADER_OVERRUN = "header_overrun"  #: the extension block runs past the packet
    MALFORMED_EXTENSION = "malformed_extension"  #: an extension runs past its block
    NOT_BINARY = "not_binary"  #: a text message on `_data_track` (Rust rejects them too)
    UNKNOWN_HANDLE = "unknown_handle"  #: no subscription has this subscriber handle


class DataTrackPacketError(LkProtocolError):
    """`DataTrackPacket.decode` refused its input; `reason` says why."""

    def __init__(self, reason: PacketErrorReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


_Validator = Callable[[object, "attrs.Attribute[int]", int], None]


def _uint(bits: int, *, minimum: int = 0) -> _Validator:
    top = (1 << bits) - 1

    def check(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{attribute.name} must be an int, not {type(value).__name__}")
        if not minimum <= value <= top:
            raise ValueError(f"{attribute.name} must be in {minimum}..{top}: {value}")

    return check


def optional_u64(instance: object, attribute: attrs.Attribute[int | None], value: object) -> None:
    """attrs validator: None or an int in 0..2**64-1."""
    if value is not None:
        _uint(64)(instance, attribute, value)  # type: ignore[arg-type]


def to_bytes(value: object) -> bytes:
    """`value` as immutable bytes; TypeError for anything that is not bytes-like."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"expected bytes, bytearray or memoryview, not {type(value).__name__}")


def _iv(value: object) -> bytes:
    raw = to_bytes(value)
    if len(raw) != IV_LEN:
        raise ValueError(f"the E2EE IV must be {IV_LEN} bytes, not {len(raw)}")
    return raw


@attrs.frozen
@plain_repr
class E2eeExtension:
    """Extension 1: the key index and the 12-byte AES-GCM IV of an encrypted frame.

    Carried on every packet of the frame (Rust and JS); the IV is left out of `repr`.
    """

    key_index: int = attrs.field(validator=_uint(8))
    iv: bytes = attrs.field(converter=_iv, repr=False)


def _marker(value: object) -> FrameMarker:
    if isinstance(value, FrameMarker):
        return value
    raise TypeError(f"marker must be a FrameMarker, not {type(value).__name__}")


def _e2ee(value: object) -> E2eeExtension | None:
    if value is None or isinstance(value, E2eeExtension):
        return value
    raise TypeError(f"e2ee must be an E2eeExtension or None, not {type(value).__name__}")


def header_size(*, user_timestamp: bool, e2ee: bool) -> int:
    """The header length of a packet with these extensions: 12, 24, 32 or 40 bytes."""
    extensions = (2 + E2EE_LEN if e2ee else 0) + (2 + USER_TIMESTAMP_LEN if user_timestamp else 0)
    if not extensions:
        return BASE_HEADER_SIZE
    return BASE_HEADER_SIZE + -(-(_EXT_WORDS_SIZE + extensions) // 4) * 4


@attrs.frozen(kw_only=True)
@plain_repr
class DataTrackPacket:
    """One packet: the header fields as values, and the payload.

    `handle` 1..65535; `sequence` and `frame_number` u16; `timestamp` u32 (90 kHz ticks);
    `user_timestamp` u64 or None; `e2ee` the E2EE extension or None. Out-of-range values raise
    ValueError, wrong types TypeError.
    """

    marker: FrameMarker = attrs.field(converter=_marker)
    handle: int = attrs.field(validator=_uint(16, minimum=1))
    sequence: int = attrs.field(validator=_uint(16))
    frame_number: int = attrs.field(validator=_uint(16))
    timestamp: int = attrs.field(validator=_uint(32))
    payload: bytes = attrs.field(default=b"", converter=to_bytes, repr=lambda p: f"<{len(p)} B>")
    user_timestamp: int | None = attrs.field(default=None, validator=optional_u64)
    e2ee: E2eeExtension | None = attrs.field(default=None, converter=_e2ee)

    @property
    def is_start(self) -> bool:
        """The S bit: the first packet of its frame (START or SINGLE)."""
        return bool(self.marker & FrameMarker.START)

    @property
    def is_final(self) -> bool:
        """The F bit: the last packet of its frame (FINAL or SINGLE)."""
        return bool(self.marker & FrameMarker.FINAL)

    @property
    def header_size(self) -> int:
        """Bytes of header `encode` writes: 12, 24, 32 or 40."""
        return header_size(user_timestamp=self.user_timestamp is not None, e2ee=bool(self.e2ee))

    def encode(self) -> bytes:
        """The packet's bytes: header, extensions (E2EE first), zero padding, payload."""
        extensions = bytearray()
        if self.e2ee is not None:
            extensions += bytes((E2EE_ID, E2EE_LEN, self.e2ee.key_index)) + self.e2ee.iv
        if self.user_timestamp is not None:
            extensions += bytes((USER_TIMESTAMP_ID, USER_TIMESTAMP_LEN))
            extensions += self.user_timestamp.to_bytes(USER_TIMESTAMP_LEN, "big")
        first = (VERSION << 5) | (int(self.marker) << 3)
        block = b""
        if extensions:
            first |= 0x04
            words = -(-(_EXT_WORDS_SIZE + len(extensions)) // 4)
            padding = words * 4 - _EXT_WORDS_SIZE - len(extensions)
            block = (words - 1).to_bytes(2, "big") + extensions + bytes(padding)
        header = _HEADER.pack(
            first, 0, self.handle, self.sequence, self.frame_number, self.timestamp
        )
        return header + block + self.payload

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> DataTrackPacket:
        """Parse one packet. Raises `DataTrackPacketError` (see the module docstring) for
        malformed input and TypeError if `data` is not bytes-like."""
        raw = to_bytes(data)
        if len(raw) < BASE_HEADER_SIZE:
            raise _error(PacketErrorReason.TOO_SHORT, f"{len(raw)} bytes, under the 12-byte header")
        first, _, handle, sequence, frame_number, timestamp = _HEADER.unpack_from(raw)
        version = first >> 5
        if version != VERSION:
            raise _error(PacketErrorReason.UNSUPPORTED_VERSION, f"unsupported version {version}")
        if handle == 0:
            raise _error(PacketErrorReason.INVALID_HANDLE, "track handle 0 is reserved")
        offset = BASE_HEADER_SIZE
        user_timestamp: int | None = None
        e2ee: E2eeExtension | None = None
        if first & 0x04:
            if len(raw) < BASE_HEADER_SIZE + _EXT_WORDS_SIZE:
                raise _error(
                    PacketErrorReason.MISSING_EXTENSION_WORDS,
                    "the extension flag is set but the extension words field is missing",
                )
            words = int.from_bytes(raw[offset : offset + 2], "big")
            end = offset + 4 * (words + 1)
            if end > len(raw):
                raise _error(
                    PacketErrorReason.HEADER_OVERRUN,
                    f"the extension block ends at byte {end}, past the {len(raw)}-byte packet",
                )
            user_timestamp, e2ee = _extensions(raw, offset + _EXT_WORDS_SIZE, end)
            offset = end
        return cls(
            marker=FrameMarker((first >> 3) & 0b11),
            handle=handle,
            sequence=sequence,
            frame_number=frame_number,
            timestamp=timestamp,
            payload=raw[offset:],
            user_timestamp=user_timestamp,
            e2ee=e2ee,
        )


def _extensions(raw: bytes, start: int, end: int) -> tuple[int | None, E2eeExtension | None]:
    """The known extensions of the block raw[start:end], as the server parses it."""
    user_timestamp: int | None = None
    e2ee: E2eeExtension | None = None
    i = start
    while i < end:
        ext_id = raw[i]
        if ext_id == 0:
            break  # padding has started: the rest of the block is padding
        if i + 2 > end:
            raise _error(
                PacketErrorReason.MALFORMED_EXTENSION, f"extension {ext_id} has no length byte"
            )
        size = raw[i + 1]
        value_start, i = i + 2, i + 2 + size
        if i > end:
            raise _error(
                PacketErrorReason.MALFORMED_EXTENSION,
                f"extension {ext_id} of {size} bytes runs past its block",
            )
        if ext_id == E2EE_ID and size >= E2EE_LEN:
            iv = raw[value_start + 1 : value_start + 1 + IV_LEN]
            e2ee = E2eeExtension(raw[value_start], iv)
        elif ext_id == USER_TIMESTAMP_ID and size >= USER_TIMESTAMP_LEN:
            value = raw[value_start : value_start + USER_TIMESTAMP_LEN]
            user_timestamp = int.from_bytes(value, "big")
    return user_timestamp, e2ee


def _error(reason: PacketErrorReason, message: str) -> DataTrackPacketError:
    return DataTrackPacketError(reason, message)
