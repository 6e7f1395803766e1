"""Regression tests for what the fuzzing campaign of issue 11 found (fuzz/README.md).

Each test names the finding; the inputs that exposed a finding through a fuzz target are kept
in fuzz/crashers/<target>/ and replayed by test_fuzz_smoke.py as well.
"""

from __future__ import annotations

import zlib

from lkproto._pb import data_pb2 as dpb
from lkproto.streams import (
    StreamAssembler,
    StreamChunkReceived,
    StreamErrorReason,
    StreamFailed,
    StreamFinished,
    StreamKind,
    StreamOpened,
)

_PAYLOAD = bytes(range(256)) * 50  # 12 800 bytes that deflate to about 1 KiB


def _assembler() -> StreamAssembler:
    assembler = StreamAssembler()
    assembler.add_topic(StreamKind.BYTES, "files")
    return assembler


def _header(stream_id: str, **fields: object) -> dpb.DataPacket:
    header = dpb.DataStream.Header(
        stream_id=stream_id,
        topic="files",
        byte_header=dpb.DataStream.ByteHeader(name="f"),
        compression=dpb.DataStream.DEFLATE_RAW,
        **fields,  # type: ignore[arg-type]
    )
    return dpb.DataPacket(participant_identity="peer", stream_header=header)


def _chunk(stream_id: str, index: int, content: bytes) -> dpb.DataPacket:
    chunk = dpb.DataStream.Chunk(stream_id=stream_id, chunk_index=index, content=content)
    return dpb.DataPacket(participant_identity="peer", stream_chunk=chunk)


def _trailer(stream_id: str) -> dpb.DataPacket:
    trailer = dpb.DataStream.Trailer(stream_id=stream_id)
    return dpb.DataPacket(participant_identity="peer", stream_trailer=trailer)


def _deflated() -> bytes:
    deflater = zlib.compressobj(wbits=-15)
    return deflater.compress(_PAYLOAD) + deflater.flush()


# -- truncated deflate data used to finish a compressed stream as if it were whole -------------


def test_an_inline_stream_whose_deflate_data_is_cut_short_fails_decode_failed() -> None:
    cut = _deflated()[:300]
    expected = zlib.decompressobj(wbits=-15).decompress(cut)
    assert 0 < len(expected) < len(_PAYLOAD)
    events = _assembler().receive(_header("s", inline_content=cut), now=1.0)
    assert [type(e) for e in events] == [StreamOpened, StreamChunkReceived, StreamFailed]
    chunk, failed = events[1], events[2]
    assert isinstance(chunk, StreamChunkReceived) and chunk.data == expected
    assert failed == StreamFailed(
        sender_identity="peer",
        stream_id="s",
        reason=StreamErrorReason.DECODE_FAILED,
        message="the deflate data ended before its last block",
    )


def test_a_chunked_stream_whose_deflate_data_never_ends_fails_at_the_trailer() -> None:
    assembler = _assembler()
    deflater = zlib.compressobj(wbits=-15)
    piece = deflater.compress(_PAYLOAD) + deflater.flush(zlib.Z_SYNC_FLUSH)  # no last block
    assert [type(e) for e in assembler.receive(_header("s"), now=1.0)] == [StreamOpened]
    delivered = assembler.receive(_chunk("s", 0, piece), now=1.0)
    assert [type(e) for e in delivered] == [StreamChunkReceived]
    assert isinstance(delivered[0], StreamChunkReceived) and delivered[0].data == _PAYLOAD
    assert assembler.receive(_trailer("s"), now=1.0) == [
        StreamFailed(
            sender_identity="peer",
            stream_id="s",
            reason=StreamErrorReason.DECODE_FAILED,
            message="the deflate data ended before its last block",
        )
    ]
    assert assembler.open_streams == ()
    assert assembler.buffered_bytes == 0  # a failed stream's bytes are released


def test_a_compressed_stream_with_no_chunk_at_all_fails_at_the_trailer() -> None:
    assembler = _assembler()
    assembler.receive(_header("s"), now=1.0)
    [failed] = assembler.receive(_trailer("s"), now=1.0)
    assert isinstance(failed, StreamFailed)
    assert failed.reason is StreamErrorReason.DECODE_FAILED


def test_whole_deflate_data_still_finishes_inline_and_chunked() -> None:
    data = _deflated()
    assembler = _assembler()
    inline = assembler.receive(_header("a", inline_content=data), now=1.0)
    assert [type(e) for e in inline] == [StreamOpened, StreamChunkReceived, StreamFinished]
    assembler.receive(_header("b"), now=1.0)
    pieces = [data[:100], data[100:]]
    received = b""
    for index, piece in enumerate(pieces):
        for event in assembler.receive(_chunk("b", index, piece), now=1.0):
            assert isinstance(event, StreamChunkReceived) and isinstance(event.data, bytes)
            received += event.data
    assert received == _PAYLOAD
    assert assembler.receive(_trailer("b"), now=1.0) == [
        StreamFinished(sender_identity="peer", stream_id="b", attributes={})
    ]
