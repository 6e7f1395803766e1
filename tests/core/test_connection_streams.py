"""Data streams through `Connection`: connections relayed by an in-memory SFU.

Literal times throughout (T0 = 100.0); stream ids come from per-connection counters
("alice-1", ...). "bob" receives unless a test says otherwise.
"""

from __future__ import annotations

import pytest
from fake_sfu import FakeSfu
from hypothesis import given, settings
from hypothesis import strategies as st
from sfu_relay import T0, Sfu, events, packets

from lkproto import (
    Channel,
    Config,
    Connection,
    DataPacketTooLargeError,
    LocalProtocolError,
    OperationType,
    StreamErrorReason,
    StreamHeaderTooLargeError,
    StreamInfo,
    StreamKind,
)
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import participants_pb2 as ppb
from lkproto.streams import DropReason

TEXT, BYTES = StreamKind.TEXT, StreamKind.BYTES
UNIX0 = 1_700_000_000_000
LEGACY = Config(client_protocol=0, capabilities=())
EMOJI_100K = "\N{CRAB}\N{SNAKE}\N{DRAGON}\N{OWL}" * 6_400  # 100 KiB of 4-byte characters


def room(
    alice: Config | None = None, bob: Config | None = None, **bob_kwargs: object
) -> tuple[Sfu, Connection, Connection]:
    sfu = Sfu()
    b = sfu.join("bob", bob, **bob_kwargs)  # type: ignore[arg-type]
    a = sfu.join("alice", alice)
    return sfu, a, b


def consume(conn: Connection, out: list[ev.Event]) -> list[ev.Event]:
    """Report every delivered chunk as consumed, as a reader would."""
    for e in out:
        if isinstance(e, ev.StreamChunkReceived):
            conn.stream_consumed(e.sender_identity, e.stream_id, e.nbytes)
    return out


def payload(out: list[ev.Event]) -> str | bytes:
    pieces = [e.data for e in out if isinstance(e, ev.StreamChunkReceived)]
    if pieces and isinstance(pieces[0], str):
        return "".join(p for p in pieces if isinstance(p, str))
    return b"".join(p for p in pieces if isinstance(p, bytes))


# -- one-shot sends ------------------------------------------------------------------------------


def test_a_text_stream_round_trips_with_exact_events() -> None:
    sfu, alice, bob = room(bob=LEGACY)
    bob.register_stream_topic(TEXT, "chat")
    stream_id = alice.send_stream(
        now=T0 + 1,
        kind=TEXT,
        topic="chat",
        payload="h\N{LATIN SMALL LETTER E WITH ACUTE}llo \N{WAVING HAND SIGN}",
        attributes={"k": "v"},
        reply_to_stream_id="earlier",
    )
    assert stream_id == "alice-1"
    head, chunk, trailer = sfu.deliver("alice", now=T0 + 1)  # bob is legacy: chunked
    assert (head.sequence, chunk.sequence, trailer.sequence) == (1, 2, 3)
    info = StreamInfo(
        stream_id="alice-1",
        kind=TEXT,
        topic="chat",
        timestamp=UNIX0 + 1000,
        total_length=11,
        attributes={"k": "v"},
        reply_to_stream_id="earlier",
    )
    assert events(bob) == [
        ev.StreamOpened(sender_identity="alice", info=info),
        ev.StreamChunkReceived(
            sender_identity="alice",
            stream_id="alice-1",
            data="h\N{LATIN SMALL LETTER E WITH ACUTE}llo \N{WAVING HAND SIGN}",
            nbytes=11,
            received=11,
        ),
        ev.StreamFinished(sender_identity="alice", stream_id="alice-1", attributes={"k": "v"}),
    ]
    assert bob.buffered_stream_bytes == 11
    bob.stream_consumed("alice", "alice-1", 11)
    assert bob.buffered_stream_bytes == 0


@pytest.mark.parametrize(
    ("bob_config", "framing"),
    [
        (LEGACY, "chunked"),
        (Config(client_protocol=2, capabilities=()), "inline"),
        (None, "deflated"),
    ],
)
def test_framing_follows_what_the_recipient_advertises(
    bob_config: Config | None, framing: str
) -> None:
    sfu, alice, bob = room(bob=bob_config)
    bob.register_stream_topic(TEXT, "t")
    text = "abc" * 2000
    alice.send_stream(now=T0, kind=TEXT, topic="t", payload=text)
    sent = sfu.deliver("alice", now=T0)
    head = sent[0].stream_header
    assert {
        "chunked": len(sent) == 3 and not head.HasField("inline_content"),
        "inline": len(sent) == 1 and head.inline_content == text.encode(),
        "deflated": len(sent) == 1 and head.compression == dpb.DataStream.DEFLATE_RAW,
    }[framing]
    assert payload(events(bob)) == text


def test_a_broadcast_is_framed_for_the_least_capable_recipient() -> None:
    sfu, alice, bob = room()
    carol = sfu.join("carol", LEGACY)
    for conn in (bob, carol):
        conn.register_stream_topic(TEXT, "t")
    alice.send_stream(now=T0, kind=TEXT, topic="t", payload="x" * 100)
    assert len(sfu.deliver("alice", now=T0)) == 3  # carol is legacy: chunked for everyone
    assert payload(events(bob)) == payload(events(carol)) == "x" * 100
    # To bob alone: deflated inline. To an identity not in the room: chunked.
    alice.send_stream(
        now=T0, kind=TEXT, topic="t", payload="x" * 100, destination_identities=["bob"]
    )
    (only,) = sfu.deliver("alice", now=T0)
    assert only.destination_identities == ["bob"]
    assert only.stream_header.compression == dpb.DataStream.DEFLATE_RAW
    assert [type(e) for e in events(carol)] == []
    alice.send_stream(
        now=T0, kind=TEXT, topic="t", payload="x", destination_identities=["bob", "ghost"]
    )
    assert len(sfu.deliver("alice", now=T0)) == 3
    alice.send_stream(
        now=T0,
        kind=TEXT,
        topic="t",
        payload="x" * 100,
        compress=False,
        destination_identities=["bob"],
    )
    assert sfu.deliver("alice", now=T0)[0].stream_header.inline_content == b"x" * 100


def test_a_100_kib_byte_stream_round_trips() -> None:
    sfu, alice, bob = room(bob=LEGACY)
    bob.register_stream_topic(BYTES, "files")
    data = bytes(range(256)) * 400  # 102 400 bytes
    alice.send_stream(
        now=T0, kind=BYTES, topic="files", payload=data, name="f.bin", mime_type="x/y"
    )
    sent = sfu.deliver("alice", now=T0)
    assert len(sent) == 1 + 7 + 1
    assert [len(p.stream_chunk.content) for p in sent[1:-1]] == [15_000] * 6 + [12_400]
    out = consume(bob, events(bob))
    opened = out[0]
    assert isinstance(opened, ev.StreamOpened)
    assert (opened.info.name, opened.info.mime_type, opened.info.total_length) == (
        "f.bin",
        "x/y",
        102_400,
    )
    assert payload(out) == data
    assert isinstance(out[-1], ev.StreamFinished)
    assert bob.buffered_stream_bytes == 0


def test_the_send_queue_takes_a_whole_stream_or_none_of_it() -> None:
    sfu, alice, bob = room(alice=Config(max_queued_send_bytes=40_000), bob=LEGACY)
    bob.register_stream_topic(BYTES, "t")
    alice.data_channel_closed(Channel.RELIABLE, now=T0)
    with pytest.raises(LocalProtocolError, match="send queue is full") as err:
        alice.send_stream(now=T0, kind=BYTES, topic="t", payload=b"z" * 50_000)
    assert (err.value.call, err.value.state) == ("send_stream", "channel not open")
    assert alice.next_sequence == 1 and alice.commands_to_send() == []
    alice.send_stream(now=T0, kind=BYTES, topic="t", payload=b"z" * 30_000)  # fits: queued
    assert alice.commands_to_send() == [] and alice.next_sequence == 5
    alice.data_channel_opened(Channel.RELIABLE, now=T0 + 1)
    sfu.deliver("alice", now=T0 + 1)
    assert payload(events(bob)) == b"z" * 30_000


# -- incremental writers ------------------------------------------------------------------------


def test_an_incremental_emoji_stream_of_100_kib_round_trips() -> None:
    sfu, alice, bob = room()
    bob.register_stream_topic(TEXT, "story")
    stream_id = alice.open_stream(
        now=T0, kind=TEXT, topic="story", total_length=len(EMOJI_100K.encode())
    )
    assert alice.open_stream_ids == (stream_id,)
    assert alice.outgoing_stream_info(stream_id) == StreamInfo(
        stream_id="alice-1",
        kind=TEXT,
        topic="story",
        timestamp=UNIX0,
        total_length=len(EMOJI_100K.encode()),
    )
    (head,) = sfu.deliver("alice", now=T0)
    assert not head.stream_header.HasField("inline_content")  # writers never go inline
    assert [type(e) for e in events(bob)] == [ev.StreamOpened]
    for start in range(0, len(EMOJI_100K), 9_999):  # odd pieces
        alice.write_stream(stream_id, EMOJI_100K[start : start + 9_999], now=T0 + 1)
    alice.close_stream(stream_id, now=T0 + 2, attributes={"done": "yes"})
    assert alice.open_stream_ids == ()
    sent = sfu.deliver("alice", now=T0 + 2)
    chunks = [p.stream_chunk for p in sent if p.HasField("stream_chunk")]
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    assert all(len(c.content) <= 15_000 for c in chunks)
    for c in chunks:
        c.content.decode()  # every chunk is whole characters
    out = consume(bob, events(bob))
    assert payload(out) == EMOJI_100K
    assert out[-1] == ev.StreamFinished(
        sender_identity="alice", stream_id=stream_id, attributes={"done": "yes"}
    )


def test_a_refused_write_leaves_the_stream_as_it_was() -> None:
    sfu, alice, bob = room(alice=Config(max_queued_send_bytes=20_000), bob=LEGACY)
    bob.register_stream_topic(BYTES, "t")
    stream_id = alice.open_stream(now=T0, kind=BYTES, topic="t")
    sfu.deliver("alice", now=T0)
    alice.data_channel_closed(Channel.RELIABLE, now=T0)
    alice.write_stream(stream_id, b"a" * 10_000, now=T0)  # queued
    with pytest.raises(LocalProtocolError, match="send queue is full"):
        alice.write_stream(stream_id, b"b" * 16_000, now=T0)
    with pytest.raises(LocalProtocolError, match="send queue is full"):
        alice.close_stream(stream_id, now=T0, attributes={"x": "y" * 10_000})
    assert alice.open_stream_ids == (stream_id,)
    alice.data_channel_opened(Channel.RELIABLE, now=T0 + 1)
    alice.write_stream(stream_id, b"c" * 5, now=T0 + 1)  # the retry takes the next index
    alice.close_stream(stream_id, now=T0 + 1)
    sent = sfu.deliver("alice", now=T0 + 1)
    assert [p.stream_chunk.chunk_index for p in sent[:-1]] == [0, 1]
    out = events(bob)
    assert payload(out) == b"a" * 10_000 + b"c" * 5
    assert isinstance(out[-1], ev.StreamFinished)


def test_a_chunk_over_the_message_size_is_refused_and_rolled_back() -> None:
    sfu, alice, bob = room(bob=LEGACY)
    bob.register_stream_topic(BYTES, "t")
    stream_id = alice.open_stream(now=T0, kind=BYTES, topic="t")
    alice.data_channel_opened(Channel.RELIABLE, now=T0, max_message_size=10_000)
    with pytest.raises(DataPacketTooLargeError) as err:
        alice.write_stream(stream_id, b"x" * 15_000, now=T0)
    assert err.value.call == "write_stream" and err.value.limit == 10_000
    alice.write_stream(stream_id, b"x" * 100, now=T0)
    alice.close_stream(stream_id, now=T0, reason="gave up")
    sfu.deliver("alice", now=T0)
    out = events(bob)
    assert out[-1] == ev.StreamFailed(
        sender_identity="alice",
        stream_id=stream_id,
        reason=StreamErrorReason.ABNORMAL_END,
        message="the sender aborted the stream: gave up",
    )


def test_writer_misuse_raises_and_names_the_call() -> None:
    _sfu, alice, _ = room()
    fresh = Connection(now=T0, unix_time_ms=UNIX0, id_factory=lambda: "x")
    with pytest.raises(LocalProtocolError, match=r"open_stream\(\) is not allowed .* NEW"):
        fresh.open_stream(now=T0, kind=TEXT, topic="t")
    with pytest.raises(LocalProtocolError, match=r"send_stream\(\) is not allowed"):
        fresh.send_stream(now=T0, kind=TEXT, topic="t", payload="")
    cases: list[tuple[dict[str, object], str]] = [
        ({"kind": "text"}, "kind must be a StreamKind"),
        ({"topic": 5}, "topic must be str"),
        ({"topic": "lk.rpc_request"}, "'lk.rpc_request' is reserved for RPC"),
        ({"name": "n"}, "name is for byte streams only"),
        ({"kind": BYTES, "generated": True}, "are for text streams only"),
        ({"kind": BYTES, "operation_type": OperationType.UPDATE}, "are for text streams only"),
        ({"total_length": -1}, "total_length must be a non-negative int"),
        ({"total_length": True}, "total_length must be a non-negative int"),
        ({"attached_stream_ids": "abc"}, "attached_stream_ids must be a sequence"),
        ({"destination_identities": "bob"}, "destination_identities must be a sequence"),
        ({"stream_id": ""}, "the stream id '' is empty or already open"),
        ({"sender_identity": None}, "sender_identity must be str"),
    ]
    for kwargs, message in cases:
        options: dict[str, object] = {"kind": TEXT, "topic": "t", **kwargs}
        with pytest.raises(LocalProtocolError, match=message) as err:
            alice.open_stream(now=T0, **options)  # type: ignore[arg-type]
        assert (err.value.call, err.value.state) == ("open_stream", "CONNECTED")
    stream_id = alice.open_stream(now=T0, kind=TEXT, topic="t", total_length=3, stream_id="s1")
    with pytest.raises(LocalProtocolError, match="'s1' is empty or already open"):
        alice.send_stream(now=T0, kind=TEXT, topic="t", payload="", stream_id="s1")
    with pytest.raises(LocalProtocolError, match=r"^write_stream: a text stream takes str$"):
        alice.write_stream(stream_id, b"abc", now=T0)
    with pytest.raises(LocalProtocolError, match="would exceed the declared total_length"):
        alice.write_stream(stream_id, "abcd", now=T0)
    with pytest.raises(LocalProtocolError, match="only 0 of the declared 3 bytes") as err:
        alice.close_stream(stream_id, now=T0)
    assert err.value.call == "close_stream"
    with pytest.raises(LocalProtocolError, match="no stream 'nope' is open"):
        alice.write_stream("nope", "x", now=T0)
    with pytest.raises(LocalProtocolError, match="a byte stream takes bytes") as err:
        alice.send_stream(now=T0, kind=BYTES, topic="t", payload="text")
    assert err.value.call == "send_stream"
    alice.close_stream(stream_id, now=T0, reason="abandoned")
    with pytest.raises(LocalProtocolError, match="no stream 's1' is open"):
        alice.close_stream(stream_id, now=T0)
    with pytest.raises(LocalProtocolError, match=r"^outgoing_stream_info: no stream 's1'"):
        alice.outgoing_stream_info(stream_id)
    huge = {"k": "v" * 15_000}
    with pytest.raises(StreamHeaderTooLargeError) as too_large:
        alice.open_stream(now=T0, kind=TEXT, topic="t", attributes=huge)
    assert too_large.value.call == "open_stream" and too_large.value.limit == 15_000
    with pytest.raises(StreamHeaderTooLargeError) as too_large:
        alice.send_stream(now=T0, kind=TEXT, topic="t", payload="", attributes=huge)
    assert too_large.value.call == "send_stream"


def test_an_open_stream_carries_the_sender_identity_it_was_given() -> None:
    """`sender_identity` (the agents' override) stamps every packet of the stream; the server
    decides whether to keep it (see lkproto.testing's MemoryRoom and the e2e suite)."""
    _sfu, alice, _bob = room()
    stream_id = alice.open_stream(now=T0 + 1, kind=TEXT, topic="t", sender_identity="user")
    alice.write_stream(stream_id, "hi", now=T0 + 1)
    alice.close_stream(stream_id, now=T0 + 1)
    sent = [
        dpb.DataPacket.FromString(c.data)
        for c in alice.commands_to_send()
        if isinstance(c, cmd.SendDataPacket)
    ]
    assert [p.WhichOneof("value") for p in sent] == [
        "stream_header",
        "stream_chunk",
        "stream_trailer",
    ]
    assert [p.participant_identity for p in sent] == ["user", "user", "user"]


def test_open_outgoing_streams_are_bounded_and_forgotten_at_the_end() -> None:
    _, alice, _ = room(alice=Config(max_open_outgoing_streams=2))
    first = alice.open_stream(now=T0, kind=TEXT, topic="t")
    alice.open_stream(now=T0, kind=BYTES, topic="t")
    with pytest.raises(LocalProtocolError, match="2 streams are already open"):
        alice.open_stream(now=T0, kind=TEXT, topic="t")
    alice.close_stream(first, now=T0)
    alice.open_stream(now=T0, kind=TEXT, topic="t")
    alice.close(now=T0)
    assert alice.open_stream_ids == ()
    with pytest.raises(LocalProtocolError, match=r"write_stream\(\) is not allowed .* CLOSED"):
        alice.write_stream(first, "x", now=T0)


# -- receiving -----------------------------------------------------------------------------------


def test_topics_route_by_kind_and_unregistered_ones_are_dropped_once() -> None:
    sfu = Sfu()
    bob = sfu.join("bob", LEGACY, before_connect=lambda c: c.register_stream_topic(TEXT, "t"))
    alice = sfu.join("alice")
    alice.send_stream(now=T0, kind=BYTES, topic="t", payload=b"bytes")  # bytes: not registered
    alice.send_stream(now=T0, kind=TEXT, topic="other", payload="x")
    alice.send_stream(now=T0, kind=TEXT, topic="t", payload="yes")
    sfu.deliver("alice", now=T0)
    out = events(bob)
    assert out[:2] == [
        ev.StreamDropped(
            sender_identity="alice",
            stream_id="alice-1",
            reason=DropReason.NO_HANDLER,
            detail="no bytes stream handler for topic 't'",
        ),
        ev.StreamDropped(
            sender_identity="alice",
            stream_id="alice-2",
            reason=DropReason.NO_HANDLER,
            detail="no text stream handler for topic 'other'",
        ),
    ]
    assert [type(e) for e in out[2:]] == [
        ev.StreamOpened,
        ev.StreamChunkReceived,
        ev.StreamFinished,
    ]
    assert payload(out) == "yes"
    bob.unregister_stream_topic(TEXT, "t")
    bob.unregister_stream_topic(TEXT, "t")  # idempotent
    alice.send_stream(now=T0, kind=TEXT, topic="t", payload="no")
    sfu.deliver("alice", now=T0)
    assert [type(e) for e in events(bob)] == [ev.StreamDropped]


def test_topic_registration_rules() -> None:
    conn = Connection(now=T0, unix_time_ms=UNIX0, id_factory=lambda: "x")
    conn.register_stream_topic(TEXT, "t")
    conn.register_stream_topic(BYTES, "t")
    with pytest.raises(
        LocalProtocolError, match="a text stream topic 't' is already registered"
    ) as err:
        conn.register_stream_topic(TEXT, "t")
    assert (err.value.call, err.value.state) == ("register_stream_topic", "NEW")
    for topic in ("lk.rpc_request", "lk.rpc_response"):
        for kind in (TEXT, BYTES):
            with pytest.raises(LocalProtocolError, match="reserved for RPC"):
                conn.register_stream_topic(kind, topic)
            with pytest.raises(LocalProtocolError, match="reserved for RPC"):
                conn.unregister_stream_topic(kind, topic)


def test_a_sender_leaving_mid_stream_fails_the_reader_when_nothing_more_comes() -> None:
    sfu, alice, bob = room()
    bob.register_stream_topic(TEXT, "t")
    stream_id = alice.open_stream(now=T0, kind=TEXT, topic="t")
    alice.write_stream(stream_id, "partial", now=T0)
    sfu.deliver("alice", now=T0)
    events(bob)
    sfu.leave("alice", now=T0 + 1)
    assert [type(e) for e in events(bob)] == [ev.ParticipantDisconnected]
    assert bob.get_timer() == T0 + 11.0  # Config.stream_departed_sender_timeout after the leave
    bob.handle_timer(T0 + 10.9)
    assert events(bob) == []
    bob.handle_timer(T0 + 11.0)
    assert events(bob) == [
        ev.StreamFailed(
            sender_identity="alice",
            stream_id=stream_id,
            reason=StreamErrorReason.ABNORMAL_END,
            message="Participant alice unexpectedly disconnected in the middle of sending data "
            "(no more of it arrived in the 10s after it left)",
        )
    ]
    assert bob.buffered_stream_bytes == 0
    assert bob.get_timer() is None


def test_a_departed_sender_stream_finishes_from_what_was_in_flight() -> None:
    # issue 19 item 1: the leave (signaling) overtakes the chunks still queued at the server.
    sfu, alice, bob = room()
    bob.register_stream_topic(BYTES, "file")
    stream_id = alice.open_stream(now=T0, kind=BYTES, topic="file", total_length=30)
    sends = []
    for _ in range(3):
        alice.write_stream(stream_id, b"x" * 10, now=T0)
        sends += sfu.take("alice")
    alice.close_stream(stream_id, now=T0)
    sends += sfu.take("alice")
    sfu.forward("alice", sends[:2], now=T0)  # the header and the first chunk
    events(bob)
    peer = sfu.peers["alice"]
    sfu.leave("alice", now=T0 + 1)  # alice has sent everything and left
    assert [type(e) for e in events(bob)] == [ev.ParticipantDisconnected]
    sfu.peers["alice"] = peer  # the server still relays what it had queued for bob
    sfu.forward("alice", sends[2:3], now=T0 + 9)  # 8 s after the leave: refreshes the deadline
    assert bob.get_timer() == T0 + 19.0
    bob.handle_timer(T0 + 11.0)
    sfu.forward("alice", sends[3:], now=T0 + 18)
    out = consume(bob, events(bob))
    assert [type(e) for e in out] == [ev.StreamChunkReceived] * 2 + [ev.StreamFinished]
    assert payload(out) == b"x" * 20  # the first 10 bytes came before the leave
    assert bob.get_timer() is None


def test_a_departed_sender_timeout_of_zero_fails_at_the_leave() -> None:
    sfu, alice, bob = room(bob=Config(stream_departed_sender_timeout=0))
    bob.register_stream_topic(TEXT, "t")
    stream_id = alice.open_stream(now=T0, kind=TEXT, topic="t")
    sfu.deliver("alice", now=T0)
    events(bob)
    sfu.leave("alice", now=T0 + 1)
    out = events(bob)
    assert [type(e) for e in out] == [ev.ParticipantDisconnected, ev.StreamFailed]
    assert out[1] == ev.StreamFailed(
        sender_identity="alice",
        stream_id=stream_id,
        reason=StreamErrorReason.ABNORMAL_END,
        message="Participant alice unexpectedly disconnected in the middle of sending data",
    )


def test_the_session_ending_fails_open_streams_before_disconnected() -> None:
    sfu, alice, bob = room()
    bob.register_stream_topic(TEXT, "t")
    stream_id = alice.open_stream(now=T0, kind=TEXT, topic="t")
    sfu.deliver("alice", now=T0)
    events(bob)
    bob.receive_signal(FakeSfu.leave(reason=3), now=T0 + 1)
    out = events(bob)
    assert out[0] == ev.StreamFailed(
        sender_identity="alice",
        stream_id=stream_id,
        reason=StreamErrorReason.ABNORMAL_END,
        message="the session ended: the server ended the session",
    )
    assert isinstance(out[1], ev.Disconnected) and len(out) == 2
    bob.stream_consumed("alice", stream_id, 1)  # allowed, and harmless, in any state
    bob.stream_discarded("alice", stream_id)


def test_unconsumed_bytes_are_bounded_and_discarding_releases_them() -> None:
    # The whole buffer is alice's share here: this is the connection-wide bound.
    config = Config(max_buffered_stream_bytes=1_000, max_buffered_stream_bytes_per_sender=1_000)
    sfu, alice, bob = room(bob=config)
    bob.register_stream_topic(BYTES, "t")
    one = alice.open_stream(now=T0, kind=BYTES, topic="t")
    two = alice.open_stream(now=T0, kind=BYTES, topic="t")
    alice.write_stream(one, b"1" * 600, now=T0)
    alice.write_stream(two, b"2" * 300, now=T0)
    sfu.deliver("alice", now=T0)
    events(bob)
    assert bob.buffered_stream_bytes == 900
    alice.write_stream(two, b"2" * 200, now=T0)  # would pass 1 000: two fails
    sfu.deliver("alice", now=T0)
    assert events(bob) == [
        ev.StreamFailed(
            sender_identity="alice",
            stream_id=two,
            reason=StreamErrorReason.BUFFER_FULL,
            message="the reader is too slow: 900 bytes not yet consumed, 200 more would pass "
            "the 1000-byte limit",
        )
    ]
    assert bob.buffered_stream_bytes == 600
    bob.stream_discarded("alice", one)  # the reader went away: the rest is ignored
    assert bob.buffered_stream_bytes == 0
    alice.write_stream(one, b"1", now=T0)
    alice.close_stream(one, now=T0)
    sfu.deliver("alice", now=T0)
    assert events(bob) == []
    with pytest.raises(LocalProtocolError, match=r"^stream_consumed: nbytes must not be negative"):
        bob.stream_consumed("alice", one, -1)


def test_an_idle_stream_fails_at_its_deadline() -> None:
    sfu, alice, bob = room(bob=Config(stream_idle_timeout=30.0))
    bob.register_stream_topic(TEXT, "t")
    stream_id = alice.open_stream(now=T0, kind=TEXT, topic="t")
    sfu.deliver("alice", now=T0 + 1)
    assert bob.get_timer() == T0 + 31.0
    alice.write_stream(stream_id, "x", now=T0 + 10)
    sfu.deliver("alice", now=T0 + 10)
    events(bob)
    assert bob.get_timer() == T0 + 40.0
    bob.handle_timer(T0 + 39.0)
    assert events(bob) == []
    bob.handle_timer(T0 + 45.0)
    assert events(bob) == [
        ev.StreamFailed(
            sender_identity="alice",
            stream_id=stream_id,
            reason=StreamErrorReason.IDLE_TIMEOUT,
            message="no packet for 30s",
        )
    ]
    assert bob.get_timer() is None


# -- property -------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(st.characters(codec="utf-8"), max_size=300),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=6),
    chunk_size=st.integers(min_value=4, max_value=40),
    one_shot=st.booleans(),
    bob_protocol=st.sampled_from([0, 1, 2]),
)
def test_any_text_round_trips_through_two_connections(
    text: str, cuts: list[int], chunk_size: int, one_shot: bool, bob_protocol: int
) -> None:
    sfu, alice, bob = room(
        alice=Config(stream_chunk_size=chunk_size),
        bob=Config(client_protocol=bob_protocol, capabilities=(2,) if bob_protocol else ()),
    )
    bob.register_stream_topic(TEXT, "t")
    if one_shot:
        alice.send_stream(now=T0, kind=TEXT, topic="t", payload=text)
    else:
        stream_id = alice.open_stream(now=T0, kind=TEXT, topic="t", total_length=len(text.encode()))
        bounds = sorted({min(c, len(text)) for c in cuts})
        for a, b in zip([0, *bounds], [*bounds, len(text)], strict=True):
            alice.write_stream(stream_id, text[a:b], now=T0)
        alice.close_stream(stream_id, now=T0)
    sent = sfu.deliver("alice", now=T0)
    assert [p.sequence for p in sent] == list(range(1, len(sent) + 1))
    for p in sent:
        assert len(p.stream_chunk.content) <= chunk_size
    out = consume(bob, events(bob))
    assert isinstance(out[0], ev.StreamOpened) and isinstance(out[-1], ev.StreamFinished)
    assert out[0].info.total_length == len(text.encode())
    assert payload(out) == text or (text == "" and payload(out) == b"")
    assert bob.buffered_stream_bytes == 0
    assert packets(alice.commands_to_send()) == []


def test_a_sender_never_announced_still_ends_its_stream_when_it_leaves() -> None:
    # It joined and left within one of the server's update batches: the only sign is a
    # DISCONNECTED update for a participant we never saw. No event, but its stream ends.
    _sfu, _alice, bob = room()
    bob.register_stream_topic(TEXT, "t")
    header = dpb.DataPacket(
        participant_identity="carol",
        participant_sid="PA_carol",
        stream_header=dpb.DataStream.Header(
            stream_id="c-1", topic="t", text_header=dpb.DataStream.TextHeader()
        ),
    )
    bob.receive_data_packet(header.SerializeToString(), channel=Channel.RELIABLE, now=T0)
    assert [type(e) for e in events(bob)] == [ev.StreamOpened]
    gone = ppb.ParticipantInfo(
        identity="carol", sid="PA_carol", state=ppb.ParticipantInfo.DISCONNECTED
    )
    bob.receive_signal(FakeSfu.update(gone), now=T0 + 1)
    assert events(bob) == []
    assert bob.get_timer() == T0 + 11.0
    bob.handle_timer(T0 + 11.0)
    assert [(type(e), e.stream_id) for e in events(bob)] == [(ev.StreamFailed, "c-1")]  # type: ignore[union-attr]


def test_a_leave_of_an_older_session_of_a_present_identity_changes_nothing() -> None:
    sfu, _alice, bob = room()
    bob.register_stream_topic(TEXT, "t")
    stream_id = _alice.open_stream(now=T0, kind=TEXT, topic="t")
    sfu.deliver("alice", now=T0)
    events(bob)
    stale = ppb.ParticipantInfo(
        identity="alice", sid="PA_older", state=ppb.ParticipantInfo.DISCONNECTED
    )
    bob.receive_signal(FakeSfu.update(stale), now=T0 + 1)
    assert events(bob) == []
    assert "alice" in bob.remote_participants and bob.get_timer() is None
    assert stream_id


def test_a_data_packet_the_leave_overtook_is_still_delivered() -> None:
    # Issue 19 item 1, data packets: nothing waits on them, so one in flight when its sender's
    # leave arrives is delivered as it comes (the adapters show no participant object for
    # it, as livekit.rtc does for a sender it no longer knows).
    sfu, alice, bob = room()
    alice.publish_data(b"last words", now=T0, topic="t")
    sends = sfu.take("alice")
    peer = sfu.peers["alice"]
    sfu.leave("alice", now=T0 + 1)
    assert [type(e) for e in events(bob)] == [ev.ParticipantDisconnected]
    sfu.peers["alice"] = peer
    sfu.forward("alice", sends, now=T0 + 2)
    (got,) = events(bob)
    assert isinstance(got, ev.DataReceived)
    assert (got.payload, got.participant_identity, got.topic) == (b"last words", "alice", "t")


def test_an_unannounced_leave_ends_only_that_sessions_streams() -> None:
    # The DISCONNECTED update names an identity that a newer session may already use: only
    # the streams of the SID that left are ended, never those of the identity's new session.
    _sfu, _alice, bob = room()
    bob.register_stream_topic(TEXT, "t")
    for sid, stream_id in (("PA_old", "old-1"), ("PA_new", "new-1")):
        header = dpb.DataPacket(
            participant_identity="carol",
            participant_sid=sid,
            stream_header=dpb.DataStream.Header(
                stream_id=stream_id, topic="t", text_header=dpb.DataStream.TextHeader()
            ),
        )
        bob.receive_data_packet(header.SerializeToString(), channel=Channel.RELIABLE, now=T0)
    events(bob)
    gone = ppb.ParticipantInfo(
        identity="carol", sid="PA_old", state=ppb.ParticipantInfo.DISCONNECTED
    )
    bob.receive_signal(FakeSfu.update(gone), now=T0 + 1)
    bob.handle_timer(T0 + 11.0)
    assert [(type(e), e.stream_id) for e in events(bob)] == [(ev.StreamFailed, "old-1")]  # type: ignore[union-attr]
    nameless = ppb.ParticipantInfo(state=ppb.ParticipantInfo.DISCONNECTED)  # no SID: ignored
    bob.receive_signal(FakeSfu.update(nameless), now=T0 + 12)
    assert events(bob) == [] and bob.get_timer() is None
