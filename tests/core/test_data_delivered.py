"""`reliable_delivered`: the replay buffer trimmed by what the server's SCTP stack acknowledged.

Exact tests with literal sequences and bytes, and a Hypothesis property of `DataSender` against
a model: a trim only ever forgets packets at or below a sequence the server has, the byte
bound still holds, and resume and full-reconnect replay are unchanged for the rest.
"""

from __future__ import annotations

import pytest
from fake_sfu import T0, FakeSfu, drain, joined_connection, participant
from hypothesis import given, settings
from hypothesis import strategies as st

from lkproto import Channel, Config, Connection
from lkproto import commands as cmd
from lkproto._data import DataSender
from lkproto._pb import data_pb2 as dpb

T1 = T0 + 10.0


def reliable(cmds: list[cmd.Command]) -> list[tuple[int, bytes]]:
    """(sequence, payload) of the reliable `SendDataPacket`s, checking each command's sequence
    against the packet's own."""
    out = []
    for c in cmds:
        if isinstance(c, cmd.SendDataPacket) and c.channel is Channel.RELIABLE:
            packet = dpb.DataPacket.FromString(c.data)
            assert c.sequence == packet.sequence
            out.append((c.sequence, packet.user.payload))
    return out


def resume(conn: Connection, last_message_seq: int) -> list[tuple[int, bytes]]:
    """What a resume with the server's `last_message_seq` sends again."""
    conn.resume_data(last_message_seq)
    return reliable(conn.commands_to_send())


def test_send_data_packet_carries_the_sequence_and_zero_for_lossy() -> None:
    conn = joined_connection()
    conn.publish_data(b"a", now=T0)
    conn.publish_data(b"L", now=T0, reliable=False)
    conn.publish_data(b"b", now=T0)
    cmds = conn.commands_to_send()
    # DataPacket{user (2) {payload (2) "a", participant_identity (5) "me"}, sequence (16)}
    assert cmds == [
        cmd.SendDataPacket(
            channel=Channel.RELIABLE, data=bytes.fromhex("12071201612a026d65800101"), sequence=1
        ),
        cmd.SendDataPacket(
            channel=Channel.LOSSY, data=bytes.fromhex("0801120712014c2a026d65"), sequence=0
        ),
        cmd.SendDataPacket(
            channel=Channel.RELIABLE, data=bytes.fromhex("12071201622a026d65800102"), sequence=2
        ),
    ]


def test_packets_queued_behind_a_closed_channel_keep_their_sequence() -> None:
    conn = joined_connection(open_channels=False)
    conn.publish_data(b"a", now=T0)
    conn.publish_data(b"b", now=T0)
    assert conn.commands_to_send() == []
    conn.data_channel_opened(Channel.RELIABLE, now=T0 + 1)
    assert reliable(conn.commands_to_send()) == [(1, b"a"), (2, b"b")]


def test_delivered_packets_leave_the_replay_buffer_and_are_never_replayed() -> None:
    conn = joined_connection()
    for payload in (b"1", b"2", b"3", b"4"):
        conn.publish_data(payload, now=T0)
    drain(conn)
    conn.reliable_delivered(2, now=T0 + 1)
    assert conn.commands_to_send() == [] and conn.next_event() is None  # nothing else changes
    conn.reliable_delivered(1, now=T0 + 1)  # an older report trims nothing more
    # The server reports less than it acknowledged (it had not read 2 yet): 1 and 2 are in its
    # SCTP receive buffer on the same association, so only 3 and 4 are replayed.
    assert resume(conn, last_message_seq=0) == [(3, b"3"), (4, b"4")]
    # The replayed copies' acknowledgement empties the buffer: a later resume sends nothing.
    conn.reliable_delivered(4, now=T0 + 2)
    assert resume(conn, last_message_seq=0) == []
    conn.publish_data(b"5", now=T0 + 3)
    assert reliable(conn.commands_to_send()) == [(5, b"5")]


def test_replay_bytes_follow_the_trim() -> None:
    sender = DataSender(Config())
    sender.channel_opened(Channel.RELIABLE)
    for payload in (b"one", b"three", b"seven"):
        sender.send(Channel.RELIABLE, payload, sequence=sender.next_sequence, call="t")
    assert (sender.replay_sequences, sender.replay_bytes) == ([1, 2, 3], 13)
    sender.reliable_delivered(1)
    assert (sender.replay_sequences, sender.replay_bytes) == ([2, 3], 10)
    sender.reliable_delivered(3)
    assert (sender.replay_sequences, sender.replay_bytes) == ([], 0)


def test_a_report_while_the_channel_is_closed_or_for_an_unissued_sequence_is_ignored() -> None:
    conn = joined_connection()
    for payload in (b"1", b"2", b"3"):
        conn.publish_data(payload, now=T0)
    drain(conn)
    conn.reliable_delivered(4, now=T0)  # never issued (next is 4): not this session's
    conn.data_channel_closed(Channel.RELIABLE, now=T0 + 1)
    conn.reliable_delivered(3, now=T0 + 1)  # no channel: cannot be told from an old one
    assert resume(conn, last_message_seq=0) == []  # queued: the channel is closed
    conn.data_channel_opened(Channel.RELIABLE, now=T0 + 2)
    assert reliable(conn.commands_to_send()) == [(1, b"1"), (2, b"2"), (3, b"3")]
    conn.reliable_delivered(3, now=T0 + 3)
    assert resume(conn, last_message_seq=0) == []


def test_an_old_associations_report_after_a_full_reconnect_trims_nothing_new() -> None:
    conn = joined_connection()
    for payload in (b"1", b"2", b"3"):
        conn.publish_data(payload, now=T0)
    drain(conn)
    conn.receive_signal(FakeSfu.leave(reason=8, action=2), now=T1)  # a full reconnect at once
    conn.handle_timer(T1)
    conn.receive_signal(FakeSfu.join(local=participant("me", "PA_me2")), now=T1 + 0.1)
    drain(conn)
    conn.publish_data(b"new", now=T1 + 0.2)  # sequence 1 of the new session, queued
    conn.reliable_delivered(3, now=T1 + 0.3)  # the old association's last SACK, late
    conn.reliable_delivered(1, now=T1 + 0.3)
    conn.data_channel_opened(Channel.RELIABLE, now=T1 + 0.4)
    assert reliable(conn.commands_to_send()) == [(1, b"new")]
    assert resume(conn, last_message_seq=0) == [(1, b"new")]  # still held for a replay


def test_a_wrong_sequence_type_is_refused_at_the_call() -> None:
    conn = joined_connection()
    conn.publish_data(b"1", now=T0)
    drain(conn)
    with pytest.raises(TypeError, match=r"^reliable_delivered: sequence must be an int, not str$"):
        conn.reliable_delivered("1", now=T0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"not bool$"):
        conn.reliable_delivered(True, now=T0)
    assert resume(conn, last_message_seq=0) == [(1, b"1")]


# -- property -----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("send"), st.integers(0, 200), st.booleans()),
            st.tuples(st.just("close"), st.just(0), st.just(False)),
            st.tuples(st.just("open"), st.just(0), st.just(False)),
            st.tuples(st.just("resume"), st.integers(0, 40), st.just(False)),
            st.tuples(st.just("delivered"), st.integers(-2, 40), st.just(False)),
            st.tuples(st.just("reset"), st.just(0), st.just(False)),
        ),
        max_size=60,
    ),
    bound=st.integers(0, 3000),
)
def test_a_trim_forgets_only_what_the_server_has_and_the_bound_still_holds(
    ops: list[tuple[str, int, bool]], bound: int
) -> None:
    sender = DataSender(Config(replay_buffer_bytes=bound, max_queued_send_bytes=10**9))
    sender.channel_opened(Channel.RELIABLE)
    is_open = True
    issued: list[tuple[int, int]] = []  # (sequence, size) since the last reset
    has: set[int] = set()  # issued packets the server has (a valid report, or a resume)
    for op, arg, flag in ops:
        if op == "send":
            packet = dpb.DataPacket(user=dpb.UserPacket(payload=b"x" * arg))
            channel, data, seq = sender.encode(packet, reliable=flag, call="t")
            out = sender.send(channel, data, sequence=seq, call="t")
            assert all(c.sequence == seq for c in out)
            if flag:
                issued.append((seq, len(data)))
        elif op == "close":
            sender.channel_closed(Channel.RELIABLE)
            is_open = False
        elif op == "open":
            sent = sender.channel_opened(Channel.RELIABLE)
            assert all(c.sequence == dpb.DataPacket.FromString(c.data).sequence for c in sent)
            is_open = True
        elif op == "resume":
            sender.resume(arg)
            has |= {s for s, _ in issued if s <= arg}
        elif op == "delivered":
            before = sender.replay_sequences
            sender.reliable_delivered(arg)
            if not is_open or arg >= sender.next_sequence:
                assert sender.replay_sequences == before  # ignored
            else:
                has |= {s for s, _ in issued if s <= arg}
        else:
            sender.reset()
            sender.channel_opened(Channel.RELIABLE)
            issued, has, is_open = [], set(), True
        seqs = sender.replay_sequences
        expected = [s for s, _ in issued if s not in has]
        # What is held is what the server may lack, newest first kept (the bound evicts the
        # oldest), in order, within the bound; nothing it may lack is dropped otherwise.
        assert seqs == expected[len(expected) - len(seqs) :]
        assert sender.replay_bytes == sum(n for s, n in issued if s in seqs) <= bound
        if sum(n for _, n in issued) <= bound:
            assert seqs == expected
