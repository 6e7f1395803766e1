"""Deterministic tests of the data-streams sub-machine (lkproto.streams), used alone.

Every error path is asserted with its exact value and message; time is a literal.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import pytest

from lkproto import DataPacketTooLargeError, LocalProtocolError, Participant
from lkproto._pb import data_pb2 as dpb
from lkproto.streams import (
    DropReason,
    OperationType,
    OutgoingStream,
    StreamAssembler,
    StreamChunkReceived,
    StreamDropped,
    StreamError,
    StreamErrorReason,
    StreamEvent,
    StreamFailed,
    StreamFinished,
    StreamHeaderTooLargeError,
    StreamInfo,
    StreamKind,
    StreamOpened,
    StreamSupport,
    packetize,
)

T0 = 100.0
WALL_MS = 1_700_000_000_000
TEXT = StreamKind.TEXT
BYTES = StreamKind.BYTES


def text_info(stream_id: str = "s1", topic: str = "chat", **kw: object) -> StreamInfo:
    return StreamInfo(stream_id=stream_id, kind=TEXT, topic=topic, timestamp=WALL_MS, **kw)  # type: ignore[arg-type]


def bytes_info(stream_id: str = "b1", topic: str = "files", **kw: object) -> StreamInfo:
    return StreamInfo(stream_id=stream_id, kind=BYTES, topic=topic, timestamp=WALL_MS, **kw)  # type: ignore[arg-type]


def wire(packets: Iterable[dpb.DataPacket], sender: str = "bob") -> list[dpb.DataPacket]:
    """What the server delivers: our bytes, re-parsed, with the sender stamped."""
    out = []
    for packet in packets:
        received = dpb.DataPacket.FromString(packet.SerializeToString())
        received.participant_identity = sender
        out.append(received)
    return out


def feed(
    asm: StreamAssembler,
    packets: Iterable[dpb.DataPacket],
    *,
    sender: str = "bob",
    now: float = T0,
    encryption: int = 0,
) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    for packet in wire(packets, sender):
        events += asm.receive(packet, now=now, encryption=encryption)
    return events


def assembler(**kw: object) -> StreamAssembler:
    asm = StreamAssembler(**kw)  # type: ignore[arg-type]
    asm.add_topic(TEXT, "chat")
    asm.add_topic(BYTES, "files")
    return asm


def header(stream_id: str = "s1", topic: str = "chat", **kw: object) -> dpb.DataPacket:
    kw.setdefault("text_header", dpb.DataStream.TextHeader())
    return dpb.DataPacket(
        stream_header=dpb.DataStream.Header(stream_id=stream_id, topic=topic, **kw)  # type: ignore[arg-type]
    )


def chunk(index: int, content: bytes, stream_id: str = "s1") -> dpb.DataPacket:
    return dpb.DataPacket(
        stream_chunk=dpb.DataStream.Chunk(stream_id=stream_id, chunk_index=index, content=content)
    )


def trailer(stream_id: str = "s1", reason: str = "", **attributes: str) -> dpb.DataPacket:
    return dpb.DataPacket(
        stream_trailer=dpb.DataStream.Trailer(
            stream_id=stream_id, reason=reason, attributes=attributes
        )
    )


def deflate(data: bytes) -> bytes:
    d = zlib.compressobj(wbits=-15)
    return d.compress(data) + d.flush()


def opened(info: StreamInfo, sender: str = "bob") -> StreamOpened:
    return StreamOpened(sender_identity=sender, info=info)


def got(
    data: str | bytes, nbytes: int, received: int, stream_id: str = "s1"
) -> StreamChunkReceived:
    return StreamChunkReceived(
        sender_identity="bob", stream_id=stream_id, data=data, nbytes=nbytes, received=received
    )


def finished(stream_id: str = "s1", **attributes: str) -> StreamFinished:
    return StreamFinished(sender_identity="bob", stream_id=stream_id, attributes=attributes)


def failed(reason: StreamErrorReason, message: str, stream_id: str = "s1") -> StreamFailed:
    return StreamFailed(sender_identity="bob", stream_id=stream_id, reason=reason, message=message)


def dropped(reason: DropReason, detail: str, stream_id: str = "s1") -> StreamDropped:
    return StreamDropped(sender_identity="bob", stream_id=stream_id, reason=reason, detail=detail)


# -- sending: exact wire form ------------------------------------------------------------------


def test_header_chunk_trailer_exact_wire_form() -> None:
    info = text_info(
        attributes={"k": "v"},
        total_length=4,
        operation_type=OperationType.UPDATE,
        version=2,
        reply_to_stream_id="s0",
        attached_stream_ids=("f1",),
        generated=True,
    )
    stream = OutgoingStream(info, destination_identities=["bob"], chunk_size=4)
    head, c0, tail = stream.write("hiho") + stream.close(attributes={"done": "1"})
    assert head == dpb.DataPacket(
        destination_identities=["bob"],
        stream_header=dpb.DataStream.Header(
            stream_id="s1",
            timestamp=WALL_MS,
            topic="chat",
            mime_type="text/plain",
            total_length=4,
            attributes={"k": "v"},
            text_header=dpb.DataStream.TextHeader(
                operation_type=dpb.DataStream.UPDATE,
                version=2,
                reply_to_stream_id="s0",
                attached_stream_ids=["f1"],
                generated=True,
            ),
        ),
    )
    assert head.stream_header.compression == dpb.DataStream.NONE
    assert not head.stream_header.HasField("inline_content")
    # Hand-derived: DataPacket.destination_identities (5, tag 2a) "bob"; stream_chunk (14, tag
    # 72) = Chunk{stream_id (1) "s1", content (3) "hiho"}; chunk_index 0 is not on the wire.
    assert c0.SerializeToString() == bytes.fromhex(
        "2a03626f62" + "720a" + "0a027331" + "1a046869686f"
    )
    # stream_trailer (15, tag 7a) = Trailer{stream_id "s1", attributes (3) {"done": "1"}};
    # an empty reason is not on the wire.
    assert tail.SerializeToString() == bytes.fromhex(
        "2a03626f62" + "7a0f" + "0a027331" + "1a090a04646f6e65120131"
    )
    assert head.kind == 0 and head.sequence == 0 and head.participant_identity == ""


def test_second_chunk_carries_its_index() -> None:
    stream = OutgoingStream(bytes_info(), chunk_size=4)
    packets = stream.write(b"abcdefgh")
    assert [p.WhichOneof("value") for p in packets] == [
        "stream_header",
        "stream_chunk",
        "stream_chunk",
    ]
    # Chunk{stream_id "b1", chunk_index (2) 1, content "efgh"}.
    assert packets[2].SerializeToString() == bytes.fromhex(
        "720c" + "0a026231" + "1001" + "1a0465666768"
    )


def test_byte_header_defaults_and_sender_identity_override() -> None:
    info = StreamInfo(stream_id="b1", kind=BYTES)
    assert (info.mime_type, info.name, info.topic, info.total_length) == (
        "application/octet-stream",
        "unknown",
        "",
        None,
    )
    (packet,) = OutgoingStream(info, sender_identity="agent").open()
    assert packet == dpb.DataPacket(
        participant_identity="agent",
        stream_header=dpb.DataStream.Header(
            stream_id="b1",
            mime_type="application/octet-stream",
            byte_header=dpb.DataStream.ByteHeader(name="unknown"),
        ),
    )
    text = StreamInfo(stream_id="t", kind=TEXT)
    assert (text.mime_type, text.name) == ("text/plain", "")


def test_text_is_cut_only_between_characters() -> None:
    stream = OutgoingStream(text_info(), chunk_size=5)
    # The 5-byte limit falls inside the 4-byte emoji: the first chunk stops before its lead.
    packets = stream.write("abcd😀é€x") + stream.close()
    contents = [p.stream_chunk.content for p in packets if p.HasField("stream_chunk")]
    assert contents == [b"abcd", "😀".encode(), "é€".encode(), b"x"]
    assert [p.stream_chunk.chunk_index for p in packets[1:-1]] == [0, 1, 2, 3]
    assert stream.bytes_written == len("abcd😀é€x".encode())


def test_write_without_flush_holds_at_most_one_chunk() -> None:
    stream = OutgoingStream(bytes_info(), chunk_size=4)
    (head,) = stream.open()
    assert head.HasField("stream_header")
    assert stream.open() == []  # the header goes out once
    assert stream.write(b"ab", flush=False) == []
    assert stream.write(b"cd", flush=False) == []  # exactly one chunk's worth is still held
    c0, c1 = stream.write(b"efghij", flush=False)
    assert (c0.stream_chunk.content, c1.stream_chunk.content) == (b"abcd", b"efgh")
    assert stream.write(b"k", flush=False) == []
    (c2,) = stream.flush()
    assert (c2.stream_chunk.content, c2.stream_chunk.chunk_index) == (b"ijk", 2)
    assert stream.flush() == []
    (tail,) = stream.close()
    assert tail.HasField("stream_trailer")


def test_header_goes_out_with_the_first_output() -> None:
    stream = OutgoingStream(bytes_info())
    head, c0 = stream.write(b"x")
    assert head.HasField("stream_header") and c0.stream_chunk.content == b"x"
    empty = OutgoingStream(bytes_info())
    head, tail = empty.close(reason="error")
    assert head.HasField("stream_header")
    assert tail.stream_trailer == dpb.DataStream.Trailer(stream_id="b1", reason="error")


def test_writer_misuse_raises_and_changes_nothing() -> None:
    stream = OutgoingStream(text_info(total_length=3))
    with pytest.raises(LocalProtocolError, match=r"^write: a text stream takes str$"):
        stream.write(b"abc")
    with pytest.raises(LocalProtocolError, match=r"^write: 'utf-8' codec can't encode"):
        stream.write("\ud800")
    with pytest.raises(
        LocalProtocolError, match=r"^write: 4 bytes would exceed the declared total_length of 3$"
    ):
        stream.write("abcd")
    stream.write("ab")
    with pytest.raises(LocalProtocolError) as info:
        stream.close()
    assert str(info.value) == (
        "close: only 2 of the declared 3 bytes were written; write the rest or close with a reason"
    )
    assert (info.value.call, info.value.state) == ("close", "open")
    assert stream.bytes_written == 2 and not stream.closed
    (tail,) = stream.close(reason="cancelled")
    assert tail.stream_trailer.reason == "cancelled" and stream.closed
    for call in (stream.open, stream.flush, stream.close, lambda: stream.write("c")):
        with pytest.raises(LocalProtocolError, match=r": stream s1 is already closed$") as err:
            call()
        assert err.value.state == "closed"
    with pytest.raises(LocalProtocolError, match=r"^write: a byte stream takes bytes$"):
        OutgoingStream(bytes_info()).write("text")


def test_writer_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match=r"^chunk_size must be at least 4"):
        OutgoingStream(text_info(), chunk_size=3)
    big = text_info(attributes={"a": "x" * 15_000})
    with pytest.raises(StreamHeaderTooLargeError) as info:
        OutgoingStream(big)
    assert isinstance(info.value, DataPacketTooLargeError)
    assert (info.value.size, info.value.limit) == (15_043, 15_000)
    assert str(info.value) == (
        "stream header: the encoded data packet is 15043 bytes, over the 15000-byte limit"
    )
    # The budget counts destination identities, as JS and Rust do.
    fits = text_info(attributes={"a": "x" * 14_950})
    OutgoingStream(fits)
    with pytest.raises(StreamHeaderTooLargeError):
        OutgoingStream(fits, destination_identities=["d" * 40])


# -- sending: the one-shot path ----------------------------------------------------------------


def test_packetize_chunked_for_legacy_peers() -> None:
    packets = packetize(text_info(total_length=999), "héllo", chunk_size=4)
    head, c0, c1, tail = packets
    assert head.stream_header.total_length == 6  # UTF-8 bytes, whatever the info said
    assert head.stream_header.compression == dpb.DataStream.NONE
    assert (c0.stream_chunk.content, c1.stream_chunk.content) == ("hél".encode(), b"lo")
    assert tail.stream_trailer == dpb.DataStream.Trailer(stream_id="s1")


def test_packetize_inline_for_v2_peers() -> None:
    (packet,) = packetize(
        text_info(), "hi", support=StreamSupport.INLINE, destination_identities=["x"]
    )
    assert packet.destination_identities == ["x"]
    h = packet.stream_header
    assert (h.inline_content, h.compression, h.total_length) == (b"hi", dpb.DataStream.NONE, 2)
    (empty,) = packetize(bytes_info(), b"", support=StreamSupport.INLINE)
    assert empty.stream_header.HasField("inline_content")
    assert empty.stream_header.inline_content == b""


def test_packetize_compresses_only_when_smaller() -> None:
    text = "abc" * 1000
    (packet,) = packetize(text_info(), text, support=StreamSupport.DEFLATE)
    h = packet.stream_header
    assert h.compression == dpb.DataStream.DEFLATE_RAW and h.total_length == 3000
    assert h.inline_content == deflate(text.encode())
    (plain,) = packetize(text_info(), "ab", support=StreamSupport.DEFLATE)
    assert plain.stream_header.compression == dpb.DataStream.NONE
    assert plain.stream_header.inline_content == b"ab"


def test_packetize_falls_back_to_chunks_when_inline_does_not_fit() -> None:
    payload = bytes(range(256)) * 80  # 20 480 bytes that deflate cannot shrink below itself
    head, c0, c1, tail = packetize(bytes_info(), payload, support=StreamSupport.INLINE)
    assert not head.stream_header.HasField("inline_content")
    assert (len(c0.stream_chunk.content), len(c1.stream_chunk.content)) == (15_000, 5_480)
    assert tail.HasField("stream_trailer")


def test_packetize_compressed_chunks_are_cut_anywhere() -> None:
    text = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(9000))  # 27 000 bytes
    packed = deflate(text.encode())
    packets = packetize(
        text_info(), text, support=StreamSupport.DEFLATE, max_header_size=200, chunk_size=1000
    )
    head, *chunks, tail = packets
    assert head.stream_header.compression == dpb.DataStream.DEFLATE_RAW
    assert head.stream_header.total_length == 27_000
    assert not head.stream_header.HasField("inline_content")
    assert b"".join(c.stream_chunk.content for c in chunks) == packed
    assert [len(c.stream_chunk.content) for c in chunks[:-1]] == [1000] * (len(chunks) - 1)
    assert tail.HasField("stream_trailer")


def test_packetize_checks_the_compressed_header_size() -> None:
    info = text_info(attached_stream_ids=("f1",), total_length=100)  # attachments: never inline
    (plain_header,) = OutgoingStream(info).open()
    size = plain_header.ByteSize()
    with pytest.raises(StreamHeaderTooLargeError) as err:
        packetize(info, "a" * 100, support=StreamSupport.DEFLATE, max_header_size=size)
    assert (err.value.size, err.value.limit) == (size + 2, size)  # compression = 1: 2 bytes


def test_assembler_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match=r"^StreamAssembler bounds must be at least 1$"):
        StreamAssembler(max_open_streams_per_sender=0)
    with pytest.raises(ValueError, match=r"^StreamAssembler idle_timeout must be positive$"):
        StreamAssembler(idle_timeout=0.0)


def test_packetize_never_inlines_attachments() -> None:
    info = text_info(attached_stream_ids=("f1",))
    head, c0, _ = packetize(info, "see file", support=StreamSupport.DEFLATE)
    assert list(head.stream_header.text_header.attached_stream_ids) == ["f1"]
    assert c0.stream_chunk.content == b"see file"


def test_packetize_checks_the_payload_type() -> None:
    with pytest.raises(LocalProtocolError, match=r"^packetize: a byte stream takes bytes$"):
        packetize(bytes_info(), "text")


def test_stream_support_of_recipients() -> None:
    def p(protocol: int, *caps: int) -> Participant:
        return Participant(sid="PA", identity="x", client_protocol=protocol, capabilities=caps)

    assert StreamSupport.of([]) is StreamSupport.DEFLATE  # an empty room counts as eligible
    assert StreamSupport.of([p(2, 2), p(3, 1, 2)]) is StreamSupport.DEFLATE
    assert StreamSupport.of([p(2, 2)], compress=False) is StreamSupport.INLINE
    assert StreamSupport.of([p(2, 2), p(2)]) is StreamSupport.INLINE
    assert StreamSupport.of([p(2, 2), p(1, 2)]) is StreamSupport.CHUNKED


def test_info_round_trips_through_a_header() -> None:
    info = text_info(
        total_length=0, attributes={"a": "b"}, operation_type=OperationType.REACTION, version=3
    )
    assert StreamInfo.from_header(info.to_header()) == info
    files = bytes_info(name="cat.png", mime_type="image/png")
    assert StreamInfo.from_header(files.to_header()) == files
    odd = header(text_header=dpb.DataStream.TextHeader(operation_type=9))  # type: ignore[arg-type]
    assert StreamInfo.from_header(odd.stream_header).operation_type == 9


# -- receiving: routing --------------------------------------------------------------------------


def test_a_stream_is_opened_delivered_and_finished() -> None:
    asm = assembler()
    stream = OutgoingStream(text_info(attributes={"a": "1"}), chunk_size=4)
    events = feed(asm, stream.write("hello") + stream.close(attributes={"b": "2"}))
    assert events == [
        opened(text_info(attributes={"a": "1"})),
        got("hell", 4, 4),
        got("o", 1, 5),
        finished(a="1", b="2"),
    ]
    assert asm.open_streams == () and asm.buffered_bytes == 5


def test_no_handler_is_reported_once_and_the_rest_ignored() -> None:
    asm = assembler()
    stream = OutgoingStream(text_info(topic="other"))
    assert feed(asm, stream.write("x")) == [
        dropped(DropReason.NO_HANDLER, "no text stream handler for topic 'other'")
    ]
    assert feed(asm, stream.write("y") + stream.close()) == []
    # A byte stream on a topic registered only for text is dropped too.
    files = OutgoingStream(bytes_info(topic="chat"))
    assert feed(asm, files.open()) == [
        dropped(DropReason.NO_HANDLER, "no bytes stream handler for topic 'chat'", "b1")
    ]


def test_topics_are_registered_once_and_removal_affects_new_streams_only() -> None:
    asm = assembler()
    with pytest.raises(LocalProtocolError) as info:
        asm.add_topic(TEXT, "chat")
    assert str(info.value) == (
        "add_topic: a text stream handler for topic 'chat' is already registered"
    )
    first = OutgoingStream(text_info("s1"))
    feed(asm, first.open())
    asm.remove_topic(TEXT, "chat")
    asm.remove_topic(TEXT, "chat")  # idempotent
    assert feed(asm, first.write("still")) == [got("still", 5, 5)]
    assert feed(asm, OutgoingStream(text_info("s2")).open()) == [
        dropped(DropReason.NO_HANDLER, "no text stream handler for topic 'chat'", "s2")
    ]


def test_streams_are_keyed_by_sender() -> None:
    asm = assembler()
    feed(asm, [header()], sender="bob")
    assert feed(asm, [chunk(0, b"mallory")], sender="eve") == [
        StreamDropped(
            sender_identity="eve",
            stream_id="s1",
            reason=DropReason.UNKNOWN_STREAM,
            detail="a stream_chunk for a stream whose header never came",
        )
    ]
    assert feed(asm, [chunk(1, b"again")], sender="eve") == []  # once per stream
    assert feed(asm, [chunk(0, b"ok")]) == [got("ok", 2, 2)]
    assert asm.open_streams == (("bob", "s1"),)


def test_unknown_trailer_and_duplicate_headers() -> None:
    asm = assembler()
    assert feed(asm, [trailer("zz")]) == [
        dropped(
            DropReason.UNKNOWN_STREAM, "a stream_trailer for a stream whose header never came", "zz"
        )
    ]
    feed(asm, [header()])
    dup = dropped(DropReason.DUPLICATE, "this stream id was already used")
    assert feed(asm, [header()]) == [dup]  # while open
    feed(asm, [trailer()])
    assert feed(asm, [header()]) == [dup]  # after it ended


def test_invalid_headers_are_dropped() -> None:
    asm = assembler()
    bare = dpb.DataPacket(stream_header=dpb.DataStream.Header(stream_id="s1", topic="chat"))
    assert feed(asm, [bare, chunk(0, b"x")]) == [
        dropped(DropReason.INVALID_HEADER, "no text or byte header")
    ]
    odd = header("s2", compression=7)
    assert feed(asm, [odd, chunk(0, b"x", "s2")]) == [
        dropped(DropReason.INVALID_HEADER, "unknown compression 7", "s2")
    ]


def test_only_stream_packets_are_accepted() -> None:
    with pytest.raises(LocalProtocolError, match=r"^receive: user is not a stream packet$"):
        assembler().receive(dpb.DataPacket(user=dpb.UserPacket()), now=T0)


# -- receiving: ordering and ends -----------------------------------------------------------------


def test_a_replayed_chunk_is_dropped() -> None:
    asm = assembler()
    events = feed(asm, [header(), chunk(0, b"ab"), chunk(0, b"ab"), chunk(1, b"c"), trailer()])
    assert events[1:] == [got("ab", 2, 2), got("c", 1, 3), finished()]


def test_a_gap_fails_the_stream_and_its_rest_is_ignored() -> None:
    asm = assembler()
    events = feed(asm, [header(), chunk(0, b"a"), chunk(2, b"c"), chunk(3, b"d"), trailer()])
    assert events[1:] == [
        got("a", 1, 1),
        failed(StreamErrorReason.MISSED_CHUNK, "chunk 2 arrived, expected 1"),
    ]
    assert asm.buffered_bytes == 0  # a failed stream's unconsumed bytes are released


def test_early_trailer_is_incomplete() -> None:
    events = feed(assembler(), [header(total_length=10), chunk(0, b"abcd"), trailer()])
    assert events[-1] == failed(
        StreamErrorReason.INCOMPLETE, "the stream ended after 4 of 10 bytes"
    )


def test_trailer_with_a_reason_is_an_abnormal_end() -> None:
    events = feed(assembler(), [header(total_length=10), trailer(reason="interrupted")])
    assert events[-1] == failed(
        StreamErrorReason.ABNORMAL_END, "the sender aborted the stream: interrupted"
    )


def test_more_than_total_length_fails_at_once() -> None:
    events = feed(assembler(), [header(total_length=3), chunk(0, b"ab"), chunk(1, b"cd")])
    assert events[-1] == failed(
        StreamErrorReason.LENGTH_EXCEEDED, "4 bytes received, more than the 3 the header declared"
    )


def test_sender_leaving_fails_only_its_streams() -> None:
    asm = assembler()
    feed(asm, [header("s1"), header("s2")])
    feed(asm, [header("s1")], sender="carol")
    assert asm.sender_left("bob") == [
        failed(
            StreamErrorReason.ABNORMAL_END,
            "Participant bob unexpectedly disconnected in the middle of sending data",
            stream_id,
        )
        for stream_id in ("s1", "s2")
    ]
    assert asm.open_streams == (("carol", "s1"),)
    assert feed(asm, [chunk(0, b"late")]) == []
    assert asm.sender_left("nobody") == []


def test_abort_all_fails_every_open_stream() -> None:
    asm = assembler()
    feed(asm, [header()])
    assert asm.abort_all("the connection closed") == [
        failed(StreamErrorReason.ABNORMAL_END, "the connection closed")
    ]
    assert asm.abort_all("again") == []


def test_encryption_must_match_the_header() -> None:
    asm = assembler()
    feed(asm, [header()], encryption=1)
    assert feed(asm, [chunk(0, b"x")], encryption=1) == [got("x", 1, 1)]
    assert feed(asm, [trailer()], encryption=0) == [
        failed(
            StreamErrorReason.ENCRYPTION_TYPE_MISMATCH,
            "a packet with encryption 0 in a stream opened with 1",
        )
    ]


def test_failure_is_raised_by_readers_as_a_stream_error() -> None:
    error = failed(StreamErrorReason.INCOMPLETE, "short").exception()
    assert isinstance(error, StreamError)
    assert (str(error), error.reason, error.stream_id, error.sender_identity) == (
        "short",
        StreamErrorReason.INCOMPLETE,
        "s1",
        "bob",
    )


# -- receiving: text ---------------------------------------------------------------------------


def test_a_character_split_by_a_sloppy_sender_survives() -> None:
    emoji = "😀".encode()
    events = feed(
        assembler(),
        [
            header(),
            chunk(0, b"a" + emoji[:1]),
            chunk(1, emoji[1:3]),
            chunk(2, emoji[3:]),
            trailer(),
        ],
    )
    assert events[1:] == [got("a", 1, 2), got("😀", 4, 5), finished()]


def test_invalid_utf8_fails_the_stream() -> None:
    events = feed(assembler(), [header(), chunk(0, b"ok\xff")])
    assert events[-1] == failed(
        StreamErrorReason.DECODE_FAILED, "the text is not UTF-8: invalid start byte"
    )
    events = feed(assembler(), [header(), chunk(0, "é".encode()[:1]), trailer()])
    assert events[-1] == failed(
        StreamErrorReason.DECODE_FAILED, "the text ended inside a UTF-8 character"
    )


# -- receiving: inline and compressed ---------------------------------------------------------


def test_inline_streams_open_deliver_and_finish_at_once() -> None:
    asm = assembler()
    (packet,) = packetize(text_info(), "hi", support=StreamSupport.INLINE)
    assert feed(asm, [packet]) == [opened(text_info(total_length=2)), got("hi", 2, 2), finished()]
    assert asm.open_streams == ()
    (empty,) = packetize(bytes_info(), b"", support=StreamSupport.INLINE)
    assert feed(asm, [empty]) == [opened(bytes_info(total_length=0)), finished("b1")]
    assert feed(asm, [trailer("b1")]) == []  # nothing follows an inline header


def test_inline_content_is_checked_against_total_length() -> None:
    asm = assembler()
    assert feed(asm, [header(total_length=5, inline_content=b"hi")])[-1] == failed(
        StreamErrorReason.INCOMPLETE, "the stream ended after 2 of 5 bytes"
    )
    assert feed(asm, [header("s2", total_length=1, inline_content=b"hi")])[-1] == failed(
        StreamErrorReason.LENGTH_EXCEEDED,
        "2 bytes received, more than the 1 the header declared",
        "s2",
    )


def test_compressed_inline_and_chunked_streams_inflate() -> None:
    asm = assembler()
    (packet,) = packetize(text_info(), "ab" * 100, support=StreamSupport.DEFLATE)
    assert feed(asm, [packet])[1:] == [got("ab" * 100, 200, 200), finished()]
    packed = deflate(b"z" * 300)
    events = feed(
        asm,
        [
            header("s2", compression=1, total_length=300),
            chunk(0, packed[:2], "s2"),
            chunk(1, packed[2:], "s2"),
            trailer("s2"),
        ],
    )
    text = [e.data for e in events if isinstance(e, StreamChunkReceived)]
    assert "".join(t for t in text if isinstance(t, str)) == "z" * 300
    assert events[-1] == finished("s2")


def test_a_decompression_bomb_never_inflates_past_the_bound() -> None:
    asm = assembler(max_decompressed_bytes=1000)
    bomb = deflate(b"\0" * 10_000_000)  # about 10 KB that inflate to 10 MB
    events = feed(asm, [header(compression=1, inline_content=bomb)])
    assert events[-1] == failed(
        StreamErrorReason.PAYLOAD_TOO_LARGE, "the stream inflates past the 1000-byte limit"
    )
    # The buffered bound caps inflation too: the slow reader's stream fails, nothing else.
    asm = assembler(max_buffered_bytes=50, max_buffered_bytes_per_sender=50)
    events = feed(asm, [header(compression=1), chunk(0, bomb[:100])])
    assert events[-1] == failed(
        StreamErrorReason.BUFFER_FULL,
        "the reader is too slow: 0 bytes not yet consumed, 51 more would pass the 50-byte limit",
    )
    # And so does the sender's share of it (by default half): 25 + 1 bytes inflated.
    asm = assembler(max_buffered_bytes=50)
    events = feed(asm, [header(compression=1), chunk(0, bomb[:100])])
    assert events[-1] == failed(
        StreamErrorReason.BUFFER_FULL,
        "'bob' has 0 bytes not yet consumed, 26 more would pass its 25-byte share",
    )


def test_bad_deflate_data_fails_the_stream() -> None:
    events = feed(assembler(), [header(compression=1), chunk(0, b"\xff\xff")])
    assert events[-1] == failed(
        StreamErrorReason.DECODE_FAILED,
        "bad deflate data: Error -3 while decompressing data: invalid block type",
    )
    trailing = deflate(b"done") + b"junk"
    events = feed(assembler(), [header(compression=1, inline_content=trailing)])
    assert events[-1] == failed(
        StreamErrorReason.DECODE_FAILED, "data after the end of the deflate stream"
    )


# -- receiving: bounds ------------------------------------------------------------------------


def test_max_stream_bytes_declared_and_actual() -> None:
    asm = assembler(max_stream_bytes=4)
    assert feed(asm, [header(total_length=5), chunk(0, b"x")]) == [
        opened(StreamInfo.from_header(header(total_length=5).stream_header)),
        failed(
            StreamErrorReason.PAYLOAD_TOO_LARGE,
            "the header declares 5 bytes, over the 4-byte limit",
        ),
    ]
    events = feed(asm, [header("s2"), chunk(0, b"abc", "s2"), chunk(1, b"de", "s2")])
    assert events[-1] == failed(
        StreamErrorReason.PAYLOAD_TOO_LARGE, "the stream passed the 4-byte limit", "s2"
    )


def test_open_streams_per_sender_are_bounded() -> None:
    asm = assembler(max_open_streams_per_sender=2)
    feed(asm, [header("s1"), header("s2")])
    assert feed(asm, [header("s3"), chunk(0, b"x", "s3")]) == [
        opened(StreamInfo.from_header(header("s3").stream_header)),
        failed(StreamErrorReason.TOO_MANY_STREAMS, "'bob' already has 2 open streams", "s3"),
    ]
    assert feed(asm, [header("s1")], sender="carol")[0] == opened(
        StreamInfo.from_header(header("s1").stream_header), "carol"
    )
    # Inline streams never stay open, so they are not limited.
    assert feed(asm, [header("s4", inline_content=b"ok")])[-1] == finished("s4")
    feed(asm, [trailer("s1")])
    assert len(feed(asm, [header("s5")])) == 1
    assert asm.open_streams == (("bob", "s2"), ("carol", "s1"), ("bob", "s5"))


def test_a_slow_reader_gets_backpressure_then_its_stream_fails() -> None:
    # One sender may hold the whole buffer here (by default only half of it).
    asm = assembler(max_buffered_bytes=10, max_buffered_bytes_per_sender=10)
    feed(asm, [header("s1"), header("s2")])
    assert feed(asm, [chunk(0, b"123456", "s1")]) == [got("123456", 6, 6, "s1")]
    assert feed(asm, [chunk(0, b"abc", "s2")]) == [got("abc", 3, 3, "s2")]
    assert asm.buffered_bytes == 9
    asm.consumed("bob", "s1", 4)
    assert asm.buffered_bytes == 5
    assert feed(asm, [chunk(1, b"7890", "s1")]) == [got("7890", 4, 10, "s1")]
    assert feed(asm, [chunk(1, b"de", "s2")]) == [
        failed(
            StreamErrorReason.BUFFER_FULL,
            "the reader is too slow: 9 bytes not yet consumed, 2 more would pass the 10-byte limit",
            "s2",
        )
    ]
    assert asm.buffered_bytes == 6  # s2's 3 unconsumed bytes were released with it
    asm.consumed("bob", "s1", 100)  # over-counts are clamped
    asm.consumed("bob", "s2", 3)  # a failed stream's charge is already gone
    assert asm.buffered_bytes == 0
    with pytest.raises(LocalProtocolError, match=r"^consumed: nbytes must not be negative$"):
        asm.consumed("bob", "s1", -1)


def test_discard_releases_and_silences_a_stream() -> None:
    asm = assembler()
    feed(asm, [header(), chunk(0, b"abc")])
    asm.discard("bob", "s1")
    assert (asm.buffered_bytes, asm.open_streams) == (0, ())
    assert feed(asm, [chunk(1, b"d"), trailer()]) == []
    feed(asm, [header("s2"), chunk(0, b"xy", "s2"), trailer("s2")])
    asm.discard("bob", "s2")  # a finished stream whose reader was dropped unread
    assert asm.buffered_bytes == 0
    asm.discard("bob", "never")


def test_ended_stream_ids_are_remembered_within_a_bound() -> None:
    asm = assembler(max_remembered_streams=2)
    for stream_id in ("s1", "s2", "s3"):
        feed(asm, [header(stream_id, topic="nobody")])
    assert feed(asm, [chunk(0, b"x", "s3"), chunk(0, b"x", "s2")]) == []
    # s1 was forgotten, so its late chunk is reported once more, as unknown.
    assert feed(asm, [chunk(0, b"x", "s1")]) == [
        dropped(DropReason.UNKNOWN_STREAM, "a stream_chunk for a stream whose header never came")
    ]


def test_idle_timeout() -> None:
    asm = assembler(idle_timeout=30.0)
    assert asm.get_timer() is None
    feed(asm, [header("s1")], now=T0)
    feed(asm, [header("s2")], now=T0 + 5)
    assert asm.get_timer() == 130.0
    feed(asm, [chunk(0, b"x", "s1")], now=T0 + 10)
    assert asm.get_timer() == 135.0
    assert asm.handle_timer(134.0) == []
    assert asm.handle_timer(135.0) == [
        failed(StreamErrorReason.IDLE_TIMEOUT, "no packet for 30s", "s2")
    ]
    assert asm.get_timer() == 140.0
    never = assembler()
    feed(never, [header()])
    assert never.get_timer() is None and never.handle_timer(1e9) == []


def test_a_departed_sender_stream_lives_while_packets_come() -> None:
    # T0 = 100. The leave at 110 starts the departed clock; each packet restarts it.
    asm = assembler(departed_timeout=5.0, idle_timeout=60.0)
    feed(asm, [header("s1"), header("s2")], now=T0)
    feed(asm, [header("s1")], sender="carol", now=T0)
    assert asm.sender_left("bob", now=T0 + 10) == []
    assert asm.get_timer() == 115.0  # s1 and s2: the leave + 5 (idle alone would be 160)
    feed(asm, [chunk(0, b"in flight", "s1")], now=T0 + 13)
    assert asm.get_timer() == 115.0  # s2 still
    assert asm.handle_timer(114.9) == []
    message = (
        "Participant bob unexpectedly disconnected in the middle of sending data "
        "(no more of it arrived in the 5s after it left)"
    )
    assert asm.handle_timer(115.0) == [failed(StreamErrorReason.ABNORMAL_END, message, "s2")]
    assert asm.get_timer() == 118.0  # s1: its last chunk + 5
    assert feed(asm, [trailer("s1")], now=T0 + 17)[-1] == StreamFinished(
        sender_identity="bob", stream_id="s1", attributes={}
    )
    assert asm.get_timer() == 160.0  # carol's stream: idle only
    assert asm.handle_timer(160.0)[0].reason is StreamErrorReason.IDLE_TIMEOUT  # type: ignore[union-attr]


@pytest.mark.parametrize("value", [-1.0, float("inf"), float("nan")])
def test_departed_timeout_must_be_finite_and_not_negative(value: float) -> None:
    with pytest.raises(ValueError, match="departed_timeout must be a finite number >= 0"):
        StreamAssembler(departed_timeout=value)
