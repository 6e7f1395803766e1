"""Property tests of lkproto.streams: writer -> wire bytes -> assembler gives back the input.

Also a cross-check: the official `livekit-protocol` package parses our stream packets into
the same fields and re-serializes them to the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st
from livekit.protocol import models as lk_models

from lkproto._pb import data_pb2 as dpb
from lkproto.streams import (
    OutgoingStream,
    StreamAssembler,
    StreamChunkReceived,
    StreamEvent,
    StreamFinished,
    StreamInfo,
    StreamKind,
    StreamOpened,
    StreamSupport,
    packetize,
)

T0 = 100.0
TEXTS = st.text(st.characters(codec="utf-8"))  # any character, emoji and other 4-byte ones too
CHUNK_SIZES = st.integers(min_value=4, max_value=64)


def deliver(packets: Iterable[dpb.DataPacket], sender: str = "bob") -> list[StreamEvent]:
    """Serialize, parse (as the peer would), and feed an assembler that consumes as it goes."""
    asm = StreamAssembler(max_buffered_bytes=4096)
    asm.add_topic(StreamKind.TEXT, "t")
    asm.add_topic(StreamKind.BYTES, "t")
    events: list[StreamEvent] = []
    for packet in packets:
        received = dpb.DataPacket.FromString(packet.SerializeToString())
        received.participant_identity = sender
        for event in asm.receive(received, now=T0):
            if isinstance(event, StreamChunkReceived):
                asm.consumed(event.sender_identity, event.stream_id, event.nbytes)
            events.append(event)
    assert asm.open_streams == () and asm.buffered_bytes == 0
    return events


def payload_of(events: list[StreamEvent]) -> list[str | bytes]:
    assert isinstance(events[0], StreamOpened) and isinstance(events[-1], StreamFinished)
    chunks = events[1:-1]
    assert all(isinstance(e, StreamChunkReceived) and e.data for e in chunks)
    return [e.data for e in chunks if isinstance(e, StreamChunkReceived)]


def text_of(events: list[StreamEvent]) -> str:
    pieces = payload_of(events)
    assert all(isinstance(p, str) for p in pieces)
    return "".join(p for p in pieces if isinstance(p, str))


def bytes_of(events: list[StreamEvent]) -> bytes:
    pieces = payload_of(events)
    assert all(isinstance(p, bytes) for p in pieces)
    return b"".join(p for p in pieces if isinstance(p, bytes))


def cuts(data: str | bytes, points: list[int]) -> list[str | bytes]:
    bounds = sorted({min(p, len(data)) for p in points})
    return [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]


def check_chunks(packets: list[dpb.DataPacket], chunk_size: int, *, text: bool) -> None:
    chunks = [p.stream_chunk for p in packets if p.HasField("stream_chunk")]
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert 0 < len(c.content) <= chunk_size
        if text:
            c.content.decode()  # every chunk is whole characters


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, points=st.lists(st.integers(0, 200)), size=CHUNK_SIZES, flush=st.booleans())
def test_text_round_trip_any_writes(text: str, points: list[int], size: int, flush: bool) -> None:
    info = StreamInfo(stream_id="s", kind=StreamKind.TEXT, topic="t")
    stream = OutgoingStream(info, chunk_size=size)
    packets = stream.open()
    for piece in cuts(text, points):
        assert isinstance(piece, str)
        packets += stream.write(piece, flush=flush)
    packets += stream.close()
    check_chunks(packets, size, text=True)
    assert text_of(deliver(packets)) == text


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), points=st.lists(st.integers(0, 400)), size=CHUNK_SIZES)
def test_bytes_round_trip_any_writes(data: bytes, points: list[int], size: int) -> None:
    info = StreamInfo(stream_id="s", kind=StreamKind.BYTES, topic="t", total_length=len(data))
    stream = OutgoingStream(info, chunk_size=size)
    packets: list[dpb.DataPacket] = []
    for piece in cuts(data, points):
        assert isinstance(piece, bytes)
        packets += stream.write(piece, flush=False)
    packets += stream.close()
    check_chunks(packets, size, text=False)
    assert bytes_of(deliver(packets)) == data


@settings(max_examples=300, deadline=None)
@given(
    payload=st.one_of(TEXTS, st.binary(max_size=300), st.just("ab" * 300)),
    support=st.sampled_from(StreamSupport),
    size=CHUNK_SIZES,
    header_budget=st.sampled_from([80, 200, 15_000]),
)
def test_one_shot_round_trip(
    payload: str | bytes, support: StreamSupport, size: int, header_budget: int
) -> None:
    kind = StreamKind.TEXT if isinstance(payload, str) else StreamKind.BYTES
    info = StreamInfo(stream_id="s", kind=kind, topic="t")
    packets = packetize(
        info, payload, support=support, chunk_size=size, max_header_size=header_budget
    )
    events = deliver(packets)
    assert isinstance(events[0], StreamOpened)
    raw = payload.encode() if isinstance(payload, str) else payload
    assert events[0].info.total_length == len(raw)
    joined = text_of(events) if kind is StreamKind.TEXT else bytes_of(events)
    assert joined == payload
    if support is StreamSupport.CHUNKED:
        assert packets[0].stream_header.compression == dpb.DataStream.NONE
        assert not packets[0].stream_header.HasField("inline_content")


@settings(max_examples=200, deadline=None)
@given(text=TEXTS, points=st.lists(st.integers(0, 800)))
def test_a_sloppy_sender_splitting_characters_is_decoded(text: str, points: list[int]) -> None:
    raw = text.encode()
    pieces = [p for p in cuts(raw, points) if p]
    header = dpb.DataStream.Header(
        stream_id="s", topic="t", text_header=dpb.DataStream.TextHeader()
    )
    packets = [dpb.DataPacket(stream_header=header)]
    packets += [
        dpb.DataPacket(stream_chunk=dpb.DataStream.Chunk(stream_id="s", chunk_index=i, content=p))  # type: ignore[arg-type]
        for i, p in enumerate(pieces)
    ]
    packets.append(dpb.DataPacket(stream_trailer=dpb.DataStream.Trailer(stream_id="s")))
    events = deliver(packets)
    assert text_of(events) == text
    assert sum(e.nbytes for e in events if isinstance(e, StreamChunkReceived)) == len(raw)


def test_the_official_schema_reads_our_packets_identically() -> None:
    info = StreamInfo(
        stream_id="s-1",
        kind=StreamKind.TEXT,
        topic="lk.chat",
        timestamp=1_700_000_000_123,
        total_length=10,
        attributes={"lk.segment_id": "seg"},
        reply_to_stream_id="s-0",
        attached_stream_ids=("f-1",),
        generated=True,
    )
    stream = OutgoingStream(info, destination_identities=["alice", "bob"], chunk_size=4)
    packets = stream.write("héllo😀") + stream.close(reason="", attributes={"final": "1"})
    packets += packetize(
        StreamInfo(stream_id="s-2", kind=StreamKind.BYTES, name="a.bin"),
        b"\0" * 500,
        support=StreamSupport.DEFLATE,
    )
    for packet in packets:
        data = packet.SerializeToString()
        theirs = lk_models.DataPacket.FromString(data)
        assert theirs.SerializeToString() == data
        assert theirs.WhichOneof("value") == packet.WhichOneof("value")
    head = lk_models.DataPacket.FromString(packets[0].SerializeToString())
    h = head.stream_header
    assert list(head.destination_identities) == ["alice", "bob"]
    assert (h.stream_id, h.topic, h.timestamp, h.total_length, h.mime_type) == (
        "s-1",
        "lk.chat",
        1_700_000_000_123,
        10,
        "text/plain",
    )
    assert dict(h.attributes) == {"lk.segment_id": "seg"}
    assert (h.text_header.reply_to_stream_id, list(h.text_header.attached_stream_ids)) == (
        "s-0",
        ["f-1"],
    )
    assert h.text_header.generated and h.WhichOneof("content_header") == "text_header"
    chunks = [lk_models.DataPacket.FromString(p.SerializeToString()) for p in packets[1:4]]
    assert b"".join(c.stream_chunk.content for c in chunks).decode() == "héllo😀"
    assert [c.stream_chunk.chunk_index for c in chunks] == [0, 1, 2]
    tail = lk_models.DataPacket.FromString(packets[4].SerializeToString()).stream_trailer
    assert (tail.stream_id, tail.reason, dict(tail.attributes)) == ("s-1", "", {"final": "1"})
    inline = lk_models.DataPacket.FromString(packets[5].SerializeToString()).stream_header
    assert inline.compression == lk_models.DataStream.DEFLATE_RAW
    assert inline.byte_header.name == "a.bin" and inline.total_length == 500
    assert inline.HasField("inline_content")


def test_the_official_schema_writes_packets_we_assemble() -> None:
    official = [
        lk_models.DataPacket(
            participant_identity="py",
            stream_header=lk_models.DataStream.Header(
                stream_id="x",
                topic="t",
                total_length=6,
                byte_header=lk_models.DataStream.ByteHeader(name="f"),
            ),
        ),
        lk_models.DataPacket(
            stream_chunk=lk_models.DataStream.Chunk(stream_id="x", chunk_index=0, content=b"abc")
        ),
        lk_models.DataPacket(
            stream_chunk=lk_models.DataStream.Chunk(stream_id="x", chunk_index=1, content=b"def")
        ),
        lk_models.DataPacket(stream_trailer=lk_models.DataStream.Trailer(stream_id="x")),
    ]
    ours = [dpb.DataPacket.FromString(p.SerializeToString()) for p in official]
    assert bytes_of(deliver(ours)) == b"abcdef"
