"""Deterministic and property tests of data packets: framing, limits, sequencing, de-dup."""

from __future__ import annotations

import itertools

import pytest
from fake_sfu import T0, FakeSfu, drain, joined_connection
from hypothesis import given, settings
from hypothesis import strategies as st

from lkproto import Channel, Config, DataPacketTooLargeError, LocalProtocolError
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._data import DataSender, Deduplicator
from lkproto._pb import data_pb2 as dpb


def sent_packets(cmds: list[cmd.Command]) -> list[tuple[Channel, dpb.DataPacket]]:
    return [
        (c.channel, dpb.DataPacket.FromString(c.data))
        for c in cmds
        if isinstance(c, cmd.SendDataPacket)
    ]


def test_publish_data_reliable_exact_bytes() -> None:
    conn = joined_connection()
    conn.publish_data(b"hi", now=T0 + 1, topic="t", destination_identities=["bob"])
    (send,) = conn.commands_to_send()
    # Hand-derived: DataPacket.user (2) = UserPacket{payload (2) "hi", topic (4) "t",
    # participant_identity (5) "me", destination_identities (6) "bob"}; DataPacket
    # destination_identities (5) "bob"; sequence (16, varint tag 0x80 0x01) = 1. kind=0 omitted.
    assert send == cmd.SendDataPacket(
        channel=Channel.RELIABLE,
        data=bytes.fromhex("1210120268692201742a026d653203626f622a03626f62800101"),
        sequence=1,
    )
    packet = dpb.DataPacket.FromString(send.data)
    assert packet == dpb.DataPacket(
        kind=0,  # type: ignore[arg-type]
        user=dpb.UserPacket(
            payload=b"hi", participant_identity="me", destination_identities=["bob"], topic="t"
        ),
        destination_identities=["bob"],
        sequence=1,
    )
    assert send.data == packet.SerializeToString()


def test_lossy_packets_carry_no_sequence_and_do_not_consume_one() -> None:
    conn = joined_connection()
    conn.publish_data(b"a", now=T0, reliable=False)
    conn.publish_data(b"b", now=T0)
    (lossy, first), (reliable, second) = sent_packets(conn.commands_to_send())
    assert (lossy, first.sequence, first.kind) == (Channel.LOSSY, 0, 1)
    assert (reliable, second.sequence, second.kind) == (Channel.RELIABLE, 1, 0)


def test_oversized_packet_is_a_local_error_and_the_channel_keeps_working() -> None:
    conn = joined_connection()
    with pytest.raises(DataPacketTooLargeError) as info:
        conn.publish_data(b"x" * 64_000, now=T0)
    assert info.value.limit == 64_000 and info.value.size > 64_000
    assert str(info.value).startswith("publish_data: the encoded data packet is")
    assert conn.commands_to_send() == []
    conn.publish_data(b"ok", now=T0)
    ((_, packet),) = sent_packets(conn.commands_to_send())
    assert packet.sequence == 1  # the refused packet consumed no sequence number


def test_remote_max_message_size_lowers_the_limit() -> None:
    conn = joined_connection(open_channels=False)
    conn.data_channel_opened(Channel.RELIABLE, now=T0, max_message_size=1000)
    assert conn.max_data_message_size == 1000
    with pytest.raises(DataPacketTooLargeError):
        conn.publish_data(b"x" * 1000, now=T0)
    conn.data_channel_opened(Channel.RELIABLE, now=T0, max_message_size=0)  # 0 = no limit
    assert conn.max_data_message_size == 64_000


def test_sends_before_the_channel_opens_wait_then_flush_in_order() -> None:
    conn = joined_connection(open_channels=False)
    conn.publish_data(b"1", now=T0)
    conn.publish_data(b"2", now=T0)
    assert conn.commands_to_send() == []
    conn.data_channel_opened(Channel.RELIABLE, now=T0 + 1)
    assert [p.user.payload for _, p in sent_packets(conn.commands_to_send())] == [b"1", b"2"]


def test_send_queue_is_bounded_and_a_refusal_changes_nothing() -> None:
    conn = joined_connection(Config(max_queued_send_bytes=40), open_channels=False)
    conn.publish_data(b"x" * 10, now=T0)
    with pytest.raises(LocalProtocolError, match="send queue is full"):
        conn.publish_data(b"y" * 30, now=T0)
    assert conn.next_sequence == 2
    conn.data_channel_opened(Channel.RELIABLE, now=T0)
    assert [p.sequence for _, p in sent_packets(conn.commands_to_send())] == [1]


def test_receive_user_packet_with_compat_fallbacks() -> None:
    conn = joined_connection()
    # Identity and destinations only on the deprecated UserPacket fields (old servers).
    legacy = dpb.DataPacket(
        user=dpb.UserPacket(
            payload=b"p",
            participant_identity="old",
            participant_sid="PA_old",
            destination_identities=["me"],
        )
    ).SerializeToString()
    conn.receive_data_packet(legacy, channel=Channel.RELIABLE, now=T0)
    conn.receive_data_packet(
        FakeSfu.user_packet(b"q", topic="t", sequence=1), channel=Channel.LOSSY, now=T0
    )
    _, evs = drain(conn)
    assert evs == [
        ev.DataReceived(
            payload=b"p",
            participant_identity="old",
            participant_sid="PA_old",
            topic=None,
            channel=Channel.RELIABLE,
            destination_identities=("me",),
        ),
        ev.DataReceived(
            payload=b"q",
            participant_identity="alice",
            participant_sid="PA_alice",
            topic="t",
            channel=Channel.LOSSY,
        ),
    ]


def test_data_from_an_unknown_participant_is_still_delivered() -> None:
    conn = joined_connection()
    assert "ghost" not in conn.remote_participants
    conn.receive_data_packet(
        FakeSfu.user_packet(b"boo", sender="ghost", sid="PA_g"), channel=Channel.RELIABLE, now=T0
    )
    _, evs = drain(conn)
    assert isinstance(evs[0], ev.DataReceived) and evs[0].participant_identity == "ghost"


def test_duplicates_are_dropped_per_sender_and_reported() -> None:
    conn = joined_connection()
    for seq in (1, 2, 2, 1, 3):
        conn.receive_data_packet(
            FakeSfu.user_packet(bytes([seq]), sequence=seq), channel=Channel.RELIABLE, now=T0
        )
    conn.receive_data_packet(
        FakeSfu.user_packet(b"b1", sender="bob", sid="PA_bob", sequence=1),
        channel=Channel.RELIABLE,
        now=T0,
    )
    _, evs = drain(conn)
    delivered = [e.payload for e in evs if isinstance(e, ev.DataReceived)]
    dropped = [e for e in evs if isinstance(e, ev.PacketDropped)]
    assert delivered == [b"\x01", b"\x02", b"\x03", b"b1"]
    assert [(d.reason, d.detail) for d in dropped] == [
        ("duplicate", "sequence 2"),
        ("duplicate", "sequence 1"),
    ]


def test_dedup_entry_expires_after_the_ttl() -> None:
    conn = joined_connection()
    conn.receive_data_packet(
        FakeSfu.user_packet(b"a", sequence=5), channel=Channel.RELIABLE, now=T0
    )
    conn.receive_data_packet(
        FakeSfu.user_packet(b"b", sequence=5), channel=Channel.RELIABLE, now=T0 + 30.5
    )
    _, evs = drain(conn)
    assert [e.payload for e in evs if isinstance(e, ev.DataReceived)] == [b"a", b"b"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xff", "malformed"),
        (b"\x92\x01\x03\x0a\x01", "malformed"),  # truncated encrypted_packet
        (b"", "empty"),
        (
            dpb.DataPacket(encrypted_packet=dpb.EncryptedPacket(iv=b"i")).SerializeToString(),
            "encrypted",
        ),
        (
            dpb.DataPacket(speaker=dpb.ActiveSpeakerUpdate(speakers=[])).SerializeToString(),
            "unsupported",
        ),
    ],
)
def test_bad_or_unhandled_packets_are_dropped_and_reported(data: bytes, reason: str) -> None:
    conn = joined_connection()
    conn.receive_data_packet(data, channel=Channel.RELIABLE, now=T0)
    _, evs = drain(conn)
    (dropped,) = evs
    assert isinstance(dropped, ev.PacketDropped) and dropped.reason == reason
    conn.publish_data(b"still fine", now=T0)
    assert sent_packets(conn.commands_to_send())[0][1].user.payload == b"still fine"


def test_dtmf_and_transcription_sent_and_received() -> None:
    conn = joined_connection()
    conn.publish_dtmf(5, "5", now=T0)
    seg = ev.TranscriptionSegment(
        id="s", text="hello", start_time=1, end_time=2, final=True, language="en"
    )
    conn.publish_transcription(
        now=T0, transcribed_participant_identity="me", track_id="TR_1", segments=[seg]
    )
    (_, dtmf), (_, tr) = sent_packets(conn.commands_to_send())
    assert (dtmf.sip_dtmf.code, dtmf.sip_dtmf.digit, dtmf.sequence) == (5, "5", 1)
    assert tr.transcription.segments[0].text == "hello" and tr.sequence == 2
    for packet in (dtmf, tr):
        packet.participant_identity = "agent"
        conn.receive_data_packet(packet.SerializeToString(), channel=Channel.RELIABLE, now=T0)
    chat = dpb.DataPacket(
        participant_identity="bob", chat_message=dpb.ChatMessage(id="c1", timestamp=7, message="yo")
    )
    conn.receive_data_packet(chat.SerializeToString(), channel=Channel.RELIABLE, now=T0)
    _, evs = drain(conn)
    assert evs == [
        ev.SipDtmfReceived(code=5, digit="5", participant_identity="agent"),
        ev.TranscriptionReceived(
            participant_identity="agent",
            transcribed_participant_identity="me",
            track_id="TR_1",
            segments=(seg,),
        ),
        ev.ChatMessageReceived(participant_identity="bob", id="c1", timestamp=7, message="yo"),
    ]


def test_resume_replays_unacknowledged_packets_before_newer_ones() -> None:
    conn = joined_connection()
    for i in range(1, 6):
        conn.publish_data(bytes([i]), now=T0)
    conn.commands_to_send()
    conn.data_channel_closed(Channel.RELIABLE, now=T0)
    conn.publish_data(b"new", now=T0)  # queued behind the replay
    conn.resume_data(last_message_seq=3)
    assert conn.commands_to_send() == []  # the channel is still closed
    conn.data_channel_opened(Channel.RELIABLE, now=T0 + 1)
    assert [p.sequence for _, p in sent_packets(conn.commands_to_send())] == [4, 5, 6]


# -- properties ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("send"), st.binary(max_size=300), st.booleans()),
            st.tuples(st.just("close"), st.none(), st.none()),
            st.tuples(st.just("open"), st.none(), st.none()),
            st.tuples(st.just("resume"), st.integers(min_value=0, max_value=60), st.none()),
        ),
        max_size=60,
    ),
    replay_bytes=st.integers(min_value=0, max_value=4000),
)
def test_sender_sequences_are_contiguous_and_replay_is_ordered(
    ops: list[tuple[str, object, object]], replay_bytes: int
) -> None:
    sender = DataSender(Config(replay_buffer_bytes=replay_bytes, max_queued_send_bytes=10**9))
    sender.channel_opened(Channel.RELIABLE)
    wire: list[int] = []  # reliable sequences in the order they hit the channel
    issued = 0
    for op, arg, reliable in ops:
        if op == "send":
            assert isinstance(arg, bytes) and isinstance(reliable, bool)
            packet = dpb.DataPacket(user=dpb.UserPacket(payload=arg))
            channel, data, seq = sender.encode(packet, reliable=reliable, call="t")
            out = sender.send(channel, data, sequence=seq, call="t")
            if reliable:
                issued += 1
                assert seq == issued
            wire += [
                dpb.DataPacket.FromString(c.data).sequence
                for c in out
                if c.channel is Channel.RELIABLE
            ]
        elif op == "close":
            sender.channel_closed(Channel.RELIABLE)
        elif op == "open":
            wire += [
                dpb.DataPacket.FromString(c.data).sequence
                for c in sender.channel_opened(Channel.RELIABLE)
            ]
        else:
            assert isinstance(arg, int)
            wire += [dpb.DataPacket.FromString(c.data).sequence for c in sender.resume(arg)]
            assert all(s > arg for s in sender.replay_sequences)
        # The replay buffer holds increasing sequences, within its byte bound.
        seqs = sender.replay_sequences
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # Without a resume the wire carries 1..n exactly once, in order.
    if not any(op == "resume" for op, _, _ in ops):
        sender.channel_opened(Channel.RELIABLE)
        assert [s for s in wire if s] == list(range(1, len([s for s in wire if s]) + 1))


@settings(max_examples=200, deadline=None)
@given(
    arrivals=st.lists(
        st.tuples(
            st.sampled_from(["PA_a", "PA_b", ""]),
            st.integers(min_value=0, max_value=20),
            st.floats(0, 100),
        ),
        max_size=80,
    )
)
def test_deduplicator_accepts_each_sequence_at_most_once_within_the_ttl(
    arrivals: list[tuple[str, int, float]],
) -> None:
    dedup = Deduplicator(Config(dedup_ttl=30.0))
    now = 0.0
    accepted: dict[str, list[tuple[int, float]]] = {}
    for sid, seq, dt in arrivals:
        now += dt
        if not dedup.is_duplicate(sid, seq, now):
            accepted.setdefault(sid, []).append((seq, now))
    for sid, items in accepted.items():
        if not sid:
            continue
        for (s1, t1), (s2, t2) in itertools.pairwise(items):
            # A repeat or lower sequence is accepted only after the TTL lapsed.
            assert s2 > s1 or s2 <= 0 or s1 <= 0 or t2 - t1 > 30.0


def test_lossy_packets_are_never_deduplicated_nor_advance_the_reliable_state() -> None:
    """A sequence on a lossy packet (the server forwards it unchecked) must not hide the
    sender's next reliable packets, and lossy repeats or reorderings are delivered as sent."""
    conn = joined_connection()
    for seq, channel in (
        (1, Channel.RELIABLE),
        (9, Channel.LOSSY),
        (9, Channel.LOSSY),
        (4, Channel.LOSSY),
        (2, Channel.RELIABLE),
        (2, Channel.RELIABLE),
    ):
        conn.receive_data_packet(
            FakeSfu.user_packet(bytes([seq]), sequence=seq), channel=channel, now=T0
        )
    _, evs = drain(conn)
    delivered = [e.payload for e in evs if isinstance(e, ev.DataReceived)]
    dropped = [(e.reason, e.channel, e.detail) for e in evs if isinstance(e, ev.PacketDropped)]
    assert delivered == [b"\x01", b"\x09", b"\x09", b"\x04", b"\x02"]
    assert dropped == [("duplicate", Channel.RELIABLE, "sequence 2")]
    assert conn.data_receive_states == {"PA_alice": 2}
