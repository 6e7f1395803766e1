"""Data track packet format v0, byte for byte (protocol-reference-2 1.5).

The vectors are the upstream ones (rust-sdks `packet/serialize.rs` `test_serialize`,
`packet/deserialize.rs` `test_base_header` and its malformed-input cases), written out here as
literal bytes; then the extension-parsing rules, and Hypothesis round trips.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lkproto.datatracks import (
    DataTrackPacket,
    DataTrackPacketError,
    E2eeExtension,
    FrameMarker,
    PacketErrorReason,
    header_size,
)

R = PacketErrorReason

# rust-sdks serialize.rs test_serialize: Final, handle 0x8811, seq 0x4422, frame 0x4411,
# timestamp 0x44221188, E2EE {0xFA, 3C x 12}, user timestamp 0x4411221111118811, FA x 1024.
VECTOR_HEADER = (
    bytes.fromhex("0c 00 88 11 44 22 44 11 44 22 11 88")  # base header: Final + X
    + bytes.fromhex("00 06")  # extension words: 7 words, written minus one
    + bytes.fromhex("01 0d fa")  # E2EE: id 1, len 13, key index...
    + b"\x3c" * 12  # ...and the IV
    + bytes.fromhex("02 08 44 11 22 11 11 11 88 11")  # user timestamp: id 2, len 8
    + bytes.fromhex("00")  # one byte of padding
)
VECTOR = VECTOR_HEADER + b"\xfa" * 1024
BASE_HEADER = bytes.fromhex("08 00 88 11 44 22 44 11 44 22 11 88")


def vector_packet() -> DataTrackPacket:
    return DataTrackPacket(
        marker=FrameMarker.FINAL,
        handle=0x8811,
        sequence=0x4422,
        frame_number=0x4411,
        timestamp=0x44221188,
        e2ee=E2eeExtension(0xFA, b"\x3c" * 12),
        user_timestamp=0x4411221111118811,
        payload=b"\xfa" * 1024,
    )


def base(marker: FrameMarker = FrameMarker.SINGLE, **fields: object) -> DataTrackPacket:
    values: dict[str, object] = {
        "marker": marker,
        "handle": 1,
        "sequence": 0,
        "frame_number": 0,
        "timestamp": 0,
    }
    values.update(fields)
    return DataTrackPacket(**values)  # type: ignore[arg-type]


def with_block(block: bytes, *, words: int | None = None, first: int = 0x1C) -> bytes:
    """A SINGLE packet on handle 1 with X set and this extension block (after W)."""
    if words is None:
        words = (2 + len(block)) // 4 - 1
    return bytes((first, 0, 0, 1)) + bytes(8) + words.to_bytes(2, "big") + block


# -- the upstream vectors ---------------------------------------------------------------------


def test_the_serialize_vector_is_byte_exact() -> None:
    packet = vector_packet()
    assert len(VECTOR_HEADER) == 40
    assert packet.header_size == 40
    assert packet.encode() == VECTOR
    assert len(packet.encode()) == 1064


def test_the_serialize_vector_decodes_back() -> None:
    packet = DataTrackPacket.decode(VECTOR)
    assert packet == vector_packet()
    assert packet.marker is FrameMarker.FINAL
    assert (packet.is_start, packet.is_final) == (False, True)
    assert packet.e2ee == E2eeExtension(0xFA, b"\x3c" * 12)


def test_the_base_header_vector() -> None:
    packet = DataTrackPacket.decode(BASE_HEADER)
    assert packet == DataTrackPacket(
        marker=FrameMarker.FINAL,
        handle=0x8811,
        sequence=0x4422,
        frame_number=0x4411,
        timestamp=0x44221188,
    )
    assert packet.user_timestamp is None and packet.e2ee is None and packet.payload == b""
    assert packet.encode() == BASE_HEADER


@pytest.mark.parametrize(
    ("user_timestamp", "e2ee", "size", "words", "padding"),
    [
        (None, None, 12, None, 0),
        (7, None, 24, 2, 0),
        (None, E2eeExtension(1, bytes(12)), 32, 4, 3),
        (7, E2eeExtension(1, bytes(12)), 40, 6, 1),
    ],
)
def test_header_sizes_extension_words_and_padding(
    user_timestamp: int | None,
    e2ee: E2eeExtension | None,
    size: int,
    words: int | None,
    padding: int,
) -> None:
    packet = base(user_timestamp=user_timestamp, e2ee=e2ee, payload=b"P")
    raw = packet.encode()
    assert packet.header_size == size
    assert header_size(user_timestamp=user_timestamp is not None, e2ee=e2ee is not None) == size
    assert len(raw) == size + 1 and raw[size:] == b"P"
    if words is None:
        assert raw[0] & 0x04 == 0
    else:
        assert raw[0] & 0x04 and int.from_bytes(raw[12:14], "big") == words
        assert raw[size - padding : size] == bytes(padding)
        assert size == 12 + 4 * (words + 1)


@pytest.mark.parametrize(
    ("marker", "first"),
    [
        (FrameMarker.SINGLE, 0x18),
        (FrameMarker.START, 0x10),
        (FrameMarker.INTER, 0x00),
        (FrameMarker.FINAL, 0x08),
    ],
)
def test_marker_bits_of_byte_zero(marker: FrameMarker, first: int) -> None:
    assert base(marker).encode()[0] == first
    assert base(marker, user_timestamp=1).encode()[0] == first | 0x04
    assert DataTrackPacket.decode(bytes((first, 0, 0, 1)) + bytes(8)).marker is marker


def test_start_and_final_flags() -> None:
    assert [(base(m).is_start, base(m).is_final) for m in FrameMarker] == [
        (False, False),  # INTER
        (False, True),  # FINAL
        (True, False),  # START
        (True, True),  # SINGLE
    ]


# -- malformed input --------------------------------------------------------------------------


def decode_error(raw: bytes) -> DataTrackPacketError:
    with pytest.raises(DataTrackPacketError) as info:
        DataTrackPacket.decode(raw)
    return info.value


def test_too_short() -> None:
    error = decode_error(bytes((0x18, 0, 0, 1)) + bytes(7))
    assert error.reason is R.TOO_SHORT
    assert str(error) == "11 bytes, under the 12-byte header"
    assert decode_error(b"").reason is R.TOO_SHORT


@pytest.mark.parametrize("first", [0x20, 0x38, 0xE0])
def test_unsupported_version(first: int) -> None:
    error = decode_error(bytes((first, 0, 0, 1)) + bytes(8))
    assert error.reason is R.UNSUPPORTED_VERSION
    assert str(error) == f"unsupported version {first >> 5}"


def test_the_version_is_checked_before_the_handle() -> None:
    assert decode_error(bytes((0x20,)) + bytes(11)).reason is R.UNSUPPORTED_VERSION


def test_handle_zero_is_invalid() -> None:
    error = decode_error(bytes((0x18,)) + bytes(11))
    assert error.reason is R.INVALID_HANDLE
    assert str(error) == "track handle 0 is reserved"


def test_missing_extension_words() -> None:
    for raw in (bytes((0x1C, 0, 0, 1)) + bytes(8), bytes((0x1C, 0, 0, 1)) + bytes(9)):
        assert decode_error(raw).reason is R.MISSING_EXTENSION_WORDS


def test_header_overrun() -> None:
    # rust test_header_overrun: one extension word, nothing after it
    error = decode_error(bytes((0x1C, 0, 0, 1)) + bytes(8) + b"\x00\x01")
    assert error.reason is R.HEADER_OVERRUN
    assert str(error) == "the extension block ends at byte 20, past the 14-byte packet"
    # rust test_ext_required_word_alignment: W=0 needs 2 block bytes, only 1 present
    assert decode_error(with_block(b"\x00", words=0)).reason is R.HEADER_OVERRUN


def test_an_extension_running_past_its_block_is_malformed() -> None:
    error = decode_error(with_block(b"\x05\x03", words=0) + b"payload")
    assert error.reason is R.MALFORMED_EXTENSION
    assert str(error) == "extension 5 of 3 bytes runs past its block"


def test_an_extension_id_without_its_length_is_malformed() -> None:
    block = b"\x07\x03abc\x09"  # id 7 (5 bytes), then id 9 in the block's last byte
    error = decode_error(with_block(block, words=1))
    assert error.reason is R.MALFORMED_EXTENSION
    assert str(error) == "extension 9 has no length byte"


def test_decode_refuses_non_bytes() -> None:
    with pytest.raises(TypeError):
        DataTrackPacket.decode("text")  # type: ignore[arg-type]


# -- extension parsing rules ------------------------------------------------------------------


@pytest.mark.parametrize("words", [0, 1, 24])
def test_padding_only_blocks_are_skipped(words: int) -> None:
    packet = DataTrackPacket.decode(with_block(bytes(4 * (words + 1) - 2), words=words))
    assert packet.payload == b"" and packet.user_timestamp is None and packet.e2ee is None


def test_unknown_extensions_are_skipped_by_length() -> None:
    block = b"\x08\x00" + bytes(4)  # rust test_ext_unknown
    assert DataTrackPacket.decode(with_block(block, words=1) + b"p").payload == b"p"
    block = b"\x09\x03xyz\x02\x08" + (5).to_bytes(8, "big") + bytes(3)
    assert DataTrackPacket.decode(with_block(block, words=4)).user_timestamp == 5


def test_a_longer_known_extension_is_read_and_its_extra_bytes_skipped() -> None:
    value = bytes.fromhex("4411221111118811")
    block = b"\x02\x0c" + value + b"\xff" * 4  # rust test_ext_forward_compat_longer_length
    assert DataTrackPacket.decode(with_block(block, words=3)).user_timestamp == 0x4411221111118811
    block = b"\x01\x0e\x07" + b"\x3c" * 12 + b"\xee" + bytes(2)
    assert DataTrackPacket.decode(with_block(block, words=4)).e2ee == E2eeExtension(7, b"<" * 12)


def test_a_shorter_known_extension_is_treated_as_unknown() -> None:
    block = b"\x02\x04" + b"\x3c" * 4  # rust test_ext_shorter_than_known_length_skipped
    assert DataTrackPacket.decode(with_block(block, words=1)).user_timestamp is None
    # id 1 is also the server's test-only participant-SID extension: only len >= 13 is E2EE
    block = b"\x01\x04PA_a"
    assert DataTrackPacket.decode(with_block(block, words=1)).e2ee is None


def test_decoding_stops_at_the_first_padding_byte_as_the_server_does() -> None:
    """Rust and JS read padding as (id, len) pairs and would find this user timestamp; the
    server (and so every packet it forwards) treats the rest of the block as padding."""
    block = b"\x00\x00\x02\x08" + (5).to_bytes(8, "big") + bytes(2)
    assert DataTrackPacket.decode(with_block(block, words=3)).user_timestamp is None


def test_a_later_copy_of_an_extension_replaces_the_earlier() -> None:
    block = b"\x02\x08" + (1).to_bytes(8, "big") + b"\x02\x08" + (2).to_bytes(8, "big") + bytes(2)
    assert DataTrackPacket.decode(with_block(block, words=5)).user_timestamp == 2


def test_reserved_bits_are_ignored_and_written_as_zero() -> None:
    packet = DataTrackPacket.decode(bytes((0x1B, 0xFF, 0, 1)) + bytes(8) + b"x")
    assert packet.marker is FrameMarker.SINGLE and packet.payload == b"x"
    assert packet.encode()[:2] == b"\x18\x00"


# -- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"handle": 0}, ValueError),
        ({"handle": 65536}, ValueError),
        ({"sequence": -1}, ValueError),
        ({"frame_number": 65536}, ValueError),
        ({"timestamp": 2**32}, ValueError),
        ({"user_timestamp": 2**64}, ValueError),
        ({"user_timestamp": -1}, ValueError),
        ({"handle": True}, TypeError),
        ({"sequence": 1.0}, TypeError),
        ({"user_timestamp": "1"}, TypeError),
        ({"payload": "text"}, TypeError),
        ({"marker": 3}, TypeError),
        ({"e2ee": (1, bytes(12))}, TypeError),
    ],
)
def test_invalid_fields_are_refused(fields: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        base(**fields)


def test_e2ee_extension_values() -> None:
    with pytest.raises(ValueError, match="must be 12 bytes, not 11"):
        E2eeExtension(1, bytes(11))
    with pytest.raises(ValueError):
        E2eeExtension(256, bytes(12))
    ext = E2eeExtension(3, bytearray(b"\x01" * 12))
    assert ext.iv == b"\x01" * 12 and isinstance(ext.iv, bytes)
    assert repr(ext) == "E2eeExtension(key_index=3)"  # the IV stays out of logs


def test_payload_accepts_bytes_like_and_repr_shows_only_its_size() -> None:
    packet = base(payload=memoryview(b"abc"))
    assert packet.payload == b"abc" and isinstance(packet.payload, bytes)
    assert "payload=<3 B>" in repr(packet)
    assert base(payload=bytearray(b"z")).payload == b"z"


# -- Hypothesis -------------------------------------------------------------------------------

U16 = st.integers(0, 0xFFFF)
IVS = st.binary(min_size=12, max_size=12)
packets = st.builds(
    DataTrackPacket,
    marker=st.sampled_from(FrameMarker),
    handle=st.integers(1, 0xFFFF),
    sequence=U16,
    frame_number=U16,
    timestamp=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=64),
    user_timestamp=st.none() | st.integers(0, 2**64 - 1),
    e2ee=st.none() | st.builds(E2eeExtension, st.integers(0, 255), IVS),
)


@settings(deadline=None)
@given(packets)
def test_every_packet_round_trips(packet: DataTrackPacket) -> None:
    raw = packet.encode()
    assert len(raw) == packet.header_size + len(packet.payload)
    assert packet.header_size % 4 == 0
    assert DataTrackPacket.decode(raw) == packet


@settings(deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_decode_or_raise_a_documented_reason(raw: bytes) -> None:
    try:
        packet = DataTrackPacket.decode(raw)
    except DataTrackPacketError as exc:
        assert exc.reason in set(PacketErrorReason) - {R.NOT_BINARY, R.UNKNOWN_HANDLE}
        return
    # what decodes re-encodes to a canonical form that decodes to the same value
    assert DataTrackPacket.decode(packet.encode()) == packet
    assert raw.endswith(packet.payload)


@settings(deadline=None)
@given(packets, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_payload(packet: DataTrackPacket, extra: bytes) -> None:
    assert DataTrackPacket.decode(packet.encode() + extra).payload == packet.payload + extra
