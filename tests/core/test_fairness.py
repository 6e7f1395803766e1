"""One peer cannot use up what the others need (docs/limits.md F1-F4, fixed).

- F1: a sender's unread stream bytes (also unfinished RPC v2 payloads) are bounded by its
  share of the stream buffer (`Config.max_buffered_stream_bytes_per_sender`);
- F2: a caller's requests being handled are bounded by its share of the invocation slots
  (`Config.max_incoming_rpcs_per_caller`);
- F3: open streams are counted by the server-stamped `participant_sid`, and an agent's chunks
  (re-stamped with its own identity) reach the stream its header opened under a claimed one;
- F4: a failed v2 request or a refusal is reported (`RpcDropped` "failed" / "refused").

Literal times throughout (T0 = 100.0).
"""

from __future__ import annotations

import pytest
from sfu_relay import T0, Sfu, events, packets

from lkproto import Channel, Config, StreamErrorReason, StreamInfo, StreamKind
from lkproto import events as ev
from lkproto._pb import data_pb2 as dpb
from lkproto.rpc import ATTR_METHOD, ATTR_REQUEST_ID, ATTR_RESPONSE_TIMEOUT_MS, ATTR_VERSION
from lkproto.streams import (
    StreamAssembler,
    StreamChunkReceived,
    StreamEvent,
    StreamFailed,
    StreamFinished,
    StreamOpened,
)

TEXT, BYTES = StreamKind.TEXT, StreamKind.BYTES


# -- the assembler -----------------------------------------------------------------------------


def assembler(**kw: object) -> StreamAssembler:
    asm = StreamAssembler(**kw)  # type: ignore[arg-type]
    asm.add_topic(BYTES, "files")
    asm.add_topic(TEXT, "chat")
    return asm


def stamped(packet: dpb.DataPacket, identity: str, sid: str = "") -> dpb.DataPacket:
    """`packet` as the server delivers it: sender identity and SID stamped."""
    packet.participant_identity = identity
    packet.participant_sid = sid
    return packet


def header(stream_id: str, topic: str = "files") -> dpb.DataPacket:
    kind = {"byte_header": dpb.DataStream.ByteHeader()}
    if topic == "chat":
        kind = {"text_header": dpb.DataStream.TextHeader()}  # type: ignore[dict-item]
    return dpb.DataPacket(
        stream_header=dpb.DataStream.Header(stream_id=stream_id, topic=topic, **kind)  # type: ignore[arg-type]
    )


def chunk(stream_id: str, index: int, content: bytes) -> dpb.DataPacket:
    return dpb.DataPacket(
        stream_chunk=dpb.DataStream.Chunk(stream_id=stream_id, chunk_index=index, content=content)
    )


def trailer(stream_id: str) -> dpb.DataPacket:
    return dpb.DataPacket(stream_trailer=dpb.DataStream.Trailer(stream_id=stream_id))


def feed(
    asm: StreamAssembler, sender: str, *packets: dpb.DataPacket, sid: str = ""
) -> list[StreamEvent]:
    out: list[StreamEvent] = []
    for packet in packets:
        out += asm.receive(stamped(packet, sender, sid), now=T0, encryption=0)
    return out


def got(sender: str, stream_id: str, data: str | bytes, received: int) -> StreamChunkReceived:
    return StreamChunkReceived(
        sender_identity=sender,
        stream_id=stream_id,
        data=data,
        nbytes=len(data.encode() if isinstance(data, str) else data),
        received=received,
    )


def buffer_full(sender: str, stream_id: str, message: str) -> StreamFailed:
    return StreamFailed(
        sender_identity=sender,
        stream_id=stream_id,
        reason=StreamErrorReason.BUFFER_FULL,
        message=message,
    )


SHARE_FULL = "'bob' has 5 bytes not yet consumed, 1 more would pass its 5-byte share"


def test_the_share_defaults_to_half_the_buffer_and_is_checked() -> None:
    assert StreamAssembler(max_buffered_bytes=10).max_buffered_bytes_per_sender == 5
    assert StreamAssembler(max_buffered_bytes=1).max_buffered_bytes_per_sender == 1
    explicit = StreamAssembler(max_buffered_bytes=10, max_buffered_bytes_per_sender=7)
    assert explicit.max_buffered_bytes_per_sender == 7
    with pytest.raises(ValueError, match=r"^StreamAssembler bounds must be at least 1$"):
        StreamAssembler(max_buffered_bytes_per_sender=0)


def test_one_sender_holds_at_most_its_share_and_the_others_carry_on() -> None:
    asm = assembler(max_buffered_bytes=10)  # a share of 5 bytes each
    feed(asm, "bob", header("s1"))
    assert feed(asm, "bob", chunk("s1", 0, b"12345")) == [got("bob", "s1", b"12345", 5)]
    assert feed(asm, "bob", chunk("s1", 1, b"6")) == [buffer_full("bob", "s1", SHARE_FULL)]
    assert asm.buffered_bytes == 0  # the failed stream's bytes are released
    feed(asm, "bob", header("s2"))
    feed(asm, "carol", header("s1"))
    assert feed(asm, "bob", chunk("s2", 0, b"abcde")) == [got("bob", "s2", b"abcde", 5)]
    assert feed(asm, "carol", chunk("s1", 0, b"vwxyz")) == [got("carol", "s1", b"vwxyz", 5)]
    assert asm.buffered_bytes == 10
    # With the whole buffer held, the connection-wide bound speaks first.
    feed(asm, "carol", header("s2"))
    assert feed(asm, "carol", chunk("s2", 0, b"!")) == [
        buffer_full("carol", "s2", "the reader is too slow: 10 bytes not yet consumed, "
                    "1 more would pass the 10-byte limit")
    ]  # fmt: skip
    # What bob's reader takes is bob's room again; carol's reader takes all of hers.
    asm.consumed("bob", "s2", 3)
    assert feed(asm, "bob", chunk("s2", 1, b"fgh")) == [got("bob", "s2", b"fgh", 8)]
    asm.consumed("carol", "s1", 5)
    assert asm.buffered_bytes == 5
    assert feed(asm, "bob", chunk("s2", 2, b"i")) == [buffer_full("bob", "s2", SHARE_FULL)]
    assert asm.buffered_bytes == 0


def test_open_streams_are_counted_by_the_senders_sid() -> None:
    """An agent's text header keeps the identity it claims ("official"), its chunks and
    trailer carry its own ("agent"); the server stamps its SID on all of them."""
    asm = assembler(max_open_streams_per_sender=2)
    assert feed(asm, "official", header("c1", "chat"), sid="PA_agent") == [
        StreamOpened(
            sender_identity="official",
            info=StreamInfo.from_header(header("c1", "chat").stream_header),
        )
    ]
    assert feed(asm, "agent", chunk("c1", 0, b"hi"), trailer("c1"), sid="PA_agent") == [
        got("official", "c1", "hi", 2),
        StreamFinished(sender_identity="official", stream_id="c1", attributes={}),
    ]
    asm.consumed("official", "c1", 2)
    # Two claimed streams left open take the agent's slots, not official's.
    feed(asm, "official", header("c2", "chat"), header("c3", "chat"), sid="PA_agent")
    failed = feed(asm, "official", header("c4", "chat"), sid="PA_agent")[1:]
    assert failed == [
        StreamFailed(
            sender_identity="official",
            stream_id="c4",
            reason=StreamErrorReason.TOO_MANY_STREAMS,
            message="'official' already has 2 open streams",
        )
    ]
    feed(asm, "official", header("o1"), header("o2"), sid="PA_official")
    assert asm.open_streams == (
        ("official", "c2"),
        ("official", "c3"),
        ("official", "o1"),
        ("official", "o2"),
    )
    # The official participant's own packets never reach the agent's streams.
    assert feed(asm, "official", chunk("o1", 0, b"x"), sid="PA_official") == [
        got("official", "o1", b"x", 1)
    ]
    # The agent leaves: its claimed streams fail, official's own stay open.
    left = asm.sender_left("agent", sid="PA_agent")
    assert [(e.sender_identity, e.stream_id, e.reason) for e in left] == [  # type: ignore[union-attr]
        ("official", "c2", StreamErrorReason.ABNORMAL_END),
        ("official", "c3", StreamErrorReason.ABNORMAL_END),
    ]
    assert asm.open_streams == (("official", "o1"), ("official", "o2"))
    # Without a SID (no server stamp) the identity is the key, as before.
    left = asm.sender_left("official")
    assert [(e.sender_identity, e.stream_id, e.reason) for e in left] == [  # type: ignore[union-attr]
        ("official", "o1", StreamErrorReason.ABNORMAL_END),
        ("official", "o2", StreamErrorReason.ABNORMAL_END),
    ]
    assert (asm.open_streams, asm.buffered_bytes) == ((), 0)


# -- through Connection -------------------------------------------------------------------------


def rpc_header(stream_id: str, request_id: str, inline: bytes | None = None) -> dpb.DataPacket:
    """A v2 request's header; unfinished unless `inline` carries the payload."""
    attributes = {
        ATTR_REQUEST_ID: request_id,
        ATTR_METHOD: "greet",
        ATTR_RESPONSE_TIMEOUT_MS: "15000",
        ATTR_VERSION: "2",
    }
    return dpb.DataPacket(
        stream_header=dpb.DataStream.Header(
            stream_id=stream_id,
            topic="lk.rpc_request",
            attributes=attributes,
            text_header=dpb.DataStream.TextHeader(),
            **({} if inline is None else {"inline_content": inline}),  # type: ignore[arg-type]
        )
    )


def test_config_bounds_one_senders_share_of_the_stream_buffer() -> None:
    sfu = Sfu()
    config = Config(max_buffered_stream_bytes=1_000, max_buffered_stream_bytes_per_sender=600)
    bob = sfu.join("bob", config)
    bob.register_stream_topic(BYTES, "t")
    alice, carol = sfu.join("alice"), sfu.join("carol")
    events(bob)
    one = alice.open_stream(now=T0, kind=BYTES, topic="t")
    two = alice.open_stream(now=T0, kind=BYTES, topic="t")
    alice.write_stream(one, b"1" * 600, now=T0)
    alice.write_stream(two, b"2", now=T0)
    mine = carol.open_stream(now=T0, kind=BYTES, topic="t")
    carol.write_stream(mine, b"3" * 400, now=T0)
    sfu.deliver("alice", now=T0)
    sfu.deliver("carol", now=T0)
    out = [e for e in events(bob) if not isinstance(e, ev.StreamOpened)]
    assert [(e.sender_identity, e.stream_id, type(e).__name__) for e in out] == [  # type: ignore[union-attr]
        ("alice", one, "StreamChunkReceived"),
        ("alice", two, "StreamFailed"),
        ("carol", mine, "StreamChunkReceived"),
    ]
    assert out[1] == ev.StreamFailed(
        sender_identity="alice",
        stream_id=two,
        reason=StreamErrorReason.BUFFER_FULL,
        message="'alice' has 600 bytes not yet consumed, 1 more would pass its 600-byte share",
    )
    assert bob.buffered_stream_bytes == 1_000


def test_config_per_sender_and_per_caller_shares_are_checked() -> None:
    for name in ("max_buffered_stream_bytes_per_sender", "max_incoming_rpcs_per_caller"):
        with pytest.raises(ValueError, match=rf"^Config\.{name} must be at least 1 \(or None\)$"):
            Config(**{name: 0})  # type: ignore[arg-type]
        assert getattr(Config(**{name: 1}), name) == 1  # type: ignore[arg-type]


def test_one_caller_takes_at_most_its_share_of_the_invocation_slots() -> None:
    """max_incoming_rpcs=8: a quarter, 2, per caller by default. alice's third request is
    acked, answered 1500 and reported; carol is still served."""
    sfu = Sfu()
    bob = sfu.join("bob", Config(max_incoming_rpcs=8))
    bob.register_rpc_method("greet")
    sfu.join("alice"), sfu.join("carol")
    events(bob)
    for n in (1, 2, 3):  # unfinished: they hold their slots
        packet = stamped(rpc_header(f"s{n}", f"a{n}"), "alice", "PA_alice")
        bob.receive_data_packet(packet.SerializeToString(), channel=Channel.RELIABLE, now=T0)
    packet = stamped(rpc_header("s1", "c1", inline=b"hi"), "carol", "PA_carol")
    bob.receive_data_packet(packet.SerializeToString(), channel=Channel.RELIABLE, now=T0)
    refusal = "too many concurrent RPC invocations from this caller"
    out = events(bob)
    assert out[0] == ev.RpcDropped(
        reason="refused", request_id="a3", participant_identity="alice", detail=refusal
    )
    assert [type(e).__name__ for e in out] == ["RpcDropped", "RpcInvoked"]
    assert out[1].invocation.caller_identity == "carol"  # type: ignore[union-attr]
    sent = [
        (p.destination_identities[0], p.WhichOneof("value"))
        for p in packets(bob.commands_to_send())
    ]
    assert sent == [
        ("alice", "rpc_ack"),
        ("alice", "rpc_ack"),
        ("alice", "rpc_ack"),
        ("alice", "rpc_response"),
        ("carol", "rpc_ack"),
    ]


def test_config_max_incoming_rpcs_per_caller_sets_the_share() -> None:
    sfu = Sfu()
    bob = sfu.join("bob", Config(max_incoming_rpcs=8, max_incoming_rpcs_per_caller=1))
    bob.register_rpc_method("greet")
    sfu.join("alice")
    events(bob)
    for n in (1, 2):
        packet = stamped(rpc_header(f"s{n}", f"a{n}"), "alice", "PA_alice")
        bob.receive_data_packet(packet.SerializeToString(), channel=Channel.RELIABLE, now=T0)
    assert events(bob) == [
        ev.RpcDropped(
            reason="refused",
            request_id="a2",
            participant_identity="alice",
            detail="too many concurrent RPC invocations from this caller",
        )
    ]
    # The default share never rounds down to nothing.
    tiny = Sfu().join("bob", Config(max_incoming_rpcs=1))
    assert tiny._rpc.max_incoming_invocations_per_caller == 1
