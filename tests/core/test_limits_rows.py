"""Rows of docs/limits.md that no other test proved: each bound hit, and exactly what follows.

Deterministic, no network: the core through `fake_sfu`/`sfu_relay`, the adapters' own bounds
on rooms that never connect.
"""

from __future__ import annotations

import logging
import queue

import anyio
import anyio.lowlevel
import pytest
import trio
from fake_sfu import T0, joined_connection, participant
from sfu_relay import Sfu, events

import lkproto.transports.anyio as anyio_room
import lkproto.transports.threaded as threaded_room
import lkproto.transports.trio as trio_room
from lkproto import Channel, Config
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import signal_pb2 as spb
from lkproto.rpc import RpcError, RpcFailed
from lkproto.streams import StreamKind
from lkproto.transports._session import MARKS

KIB, MIB = 1024, 1024 * 1024


def sent(commands: list[cmd.Command]) -> list[tuple[Channel, bytes]]:
    return [(c.channel, c.data) for c in commands if isinstance(c, cmd.SendDataPacket)]


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "lkproto.transports"]


def dropped(number: int) -> ev.PacketDropped:
    return ev.PacketDropped(reason="empty", channel=Channel.RELIABLE, detail=str(number))


# -- the core ------------------------------------------------------------------------------------


def test_the_replay_buffer_keeps_only_the_newest_bytes() -> None:
    conn = joined_connection(Config(replay_buffer_bytes=100))
    for n in range(1, 6):
        conn.publish_data(bytes([n]) * 30, now=T0)
    sizes = {len(data) for _, data in sent(conn.commands_to_send())}
    (size,) = sizes  # every packet encodes to the same size: 2 fit in 100 bytes, 3 do not
    assert 2 * size <= 100 < 3 * size
    conn.data_channel_closed(Channel.RELIABLE, now=T0)
    conn.resume_data(last_message_seq=0)  # the server has none of them
    conn.data_channel_opened(Channel.RELIABLE, now=T0 + 1)
    replayed = [dpb.DataPacket.FromString(d) for _, d in sent(conn.commands_to_send())]
    assert [(p.sequence, p.user.payload) for p in replayed] == [
        (4, bytes([4]) * 30),
        (5, bytes([5]) * 30),
    ]


def test_the_client_checks_no_metadata_or_attribute_size() -> None:
    """Sizes are the server's to refuse (docs/limits.md): the core sends them as they are."""
    conn = joined_connection()
    conn.set_metadata("m" * (3 * MIB), now=T0)
    conn.set_name("n" * 1000, now=T0)
    conn.set_attributes({f"k{i:05d}": "v" * 100 for i in range(10_000)}, now=T0)
    requests = [
        spb.SignalRequest.FromString(c.data).update_metadata
        for c in conn.commands_to_send()
        if isinstance(c, cmd.SendSignal)
    ]
    assert [(len(r.metadata), len(r.name), len(r.attributes)) for r in requests] == [
        (3 * MIB, 0, 0),
        (0, 1000, 0),
        (0, 0, 10_000),
    ]


def test_sent_chunks_are_at_most_stream_chunk_size() -> None:
    legacy = participant("bob", client_protocol=0)  # chunked streams only
    conn = joined_connection(Config(stream_chunk_size=100), others=[legacy])
    text = "漢" * 100  # 300 bytes of 3-byte characters
    conn.send_stream(
        now=T0, kind=StreamKind.TEXT, topic="t", payload=text, destination_identities=["bob"]
    )
    packets = [dpb.DataPacket.FromString(d) for _, d in sent(conn.commands_to_send())]
    chunks = [p.stream_chunk.content for p in packets if p.HasField("stream_chunk")]
    assert [len(c) for c in chunks] == [99, 99, 99, 3]  # never inside a character
    assert "".join(c.decode() for c in chunks) == text


def test_an_rpc_v2_payload_is_held_against_the_stream_buffer() -> None:
    sfu = Sfu()
    bob = sfu.join("bob", Config(max_buffered_stream_bytes=1_000))
    bob.register_rpc_method("greet")
    alice = sfu.join("alice", Config(capabilities=()))
    events(bob)
    alice.perform_rpc(destination_identity="bob", method="greet", payload="x" * 5_000, now=T0)
    sfu.settle(now=T0)
    error = RpcError.built_in(
        RpcError.ErrorCode.APPLICATION_ERROR, "Error reading RPC request payload"
    )
    assert events(alice) == [RpcFailed(request_id="alice-1", error=error)]
    assert events(bob) == [
        ev.RpcDropped(
            reason="failed",
            request_id="alice-1",
            participant_identity="alice",
            # The payload arrives deflated inline; it inflates to alice's share
            # (half the buffer) + 1 byte at most, and fails there.
            detail="'alice' has 0 bytes not yet consumed, 501 more would pass its 500-byte share",
        )
    ]
    assert bob.buffered_stream_bytes == 0


# -- the adapters --------------------------------------------------------------------------------


BEHIND = Config(max_queued_events=5)  # the default, 10 000, is checked by the limits audit


@pytest.mark.anyio
async def test_an_anyio_events_subscriber_that_falls_behind_loses_the_newest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    room = anyio_room.Room(config=BEHIND)
    stream = room.events()
    first = anyio.Event()
    received: list[ev.Event] = []

    async def consume() -> None:
        async for event in stream:
            received.append(event)
            first.set()

    with caplog.at_level(logging.WARNING, logger="lkproto.transports"):
        room._session.deliver(dropped(0))  # nobody subscribed yet: nothing is kept for later
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            with anyio.fail_after(5):
                while not (
                    room._session.subscribers
                    and room._session.subscribers[0].statistics().tasks_waiting_receive == 1  # type: ignore[attr-defined]
                ):
                    await anyio.lowlevel.checkpoint()
            # Delivered without a checkpoint between them: the first goes straight to the
            # waiting consumer, the buffer holds the next 5, the last 2 are dropped.
            for n in range(1, 9):
                room._session.deliver(dropped(n))
            with anyio.fail_after(5):
                while len(received) < 6:
                    await anyio.lowlevel.checkpoint()
            room._session.deliver(dropped(9))  # room again once the consumer caught up
            with anyio.fail_after(5):
                while len(received) < 7:
                    await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()
    assert received == [dropped(n) for n in (1, 2, 3, 4, 5, 6, 9)]
    assert warnings(caplog) == ["an events() subscriber is 5 behind; dropped one"] * 2


def test_a_trio_event_channel_that_falls_behind_loses_the_newest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> tuple[list[ev.Event], list[ev.Event]]:
        room = trio_room.Room(config=BEHIND)
        channel = room.event_channel()
        own = room.event_channel(max_buffer_size=2)
        for n in range(7):
            room._session.deliver(dropped(n))
        out: tuple[list[ev.Event], list[ev.Event]] = ([], [])
        for receiver, got in zip((channel, own), out, strict=True):
            while True:
                try:
                    got.append(receiver.receive_nowait())
                except trio.WouldBlock:
                    break
        return out

    with caplog.at_level(logging.WARNING, logger="lkproto.transports"):
        received, own = trio.run(main)
    assert received == [dropped(n) for n in range(5)]
    assert own == [dropped(n) for n in range(2)]
    # Each event goes to both channels in turn: the own one (2) fills first.
    two, five = (f"an events() subscriber is {n} behind; dropped one" for n in (2, 5))
    assert warnings(caplog) == [two, two, two, five, two, five, two]


@pytest.mark.anyio
async def test_a_threaded_events_iterator_that_falls_behind_loses_the_newest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outer = threaded_room.Room(config=BEHIND)
    feed: queue.SimpleQueue[ev.Event | None] = queue.SimpleQueue()
    outer._feeds.append(feed)
    inner = outer._make_inner()  # the session the I/O thread runs
    with caplog.at_level(logging.WARNING, logger="lkproto.transports"):
        for n in range(6):
            inner.session.deliver(dropped(n))
    assert [feed.get_nowait() for _ in range(feed.qsize())] == [dropped(n) for n in range(5)]
    assert warnings(caplog) == ["an events() iterator is 5 behind; dropped one"]


def test_threaded_callbacks_that_fall_behind_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    class Pool:
        def __init__(self) -> None:
            self.submitted: list[tuple[object, ...]] = []

        def submit(self, *args: object) -> None:
            self.submitted.append(args)

    room = threaded_room.Room(config=BEHIND)
    pool = Pool()
    room._callbacks = pool  # type: ignore[assignment]
    room._pending = 4
    with caplog.at_level(logging.WARNING, logger="lkproto.transports"):
        room._post("data_received", ("first",))
        room._post("data_received", ("second",))
    assert [args[1:] for args in pool.submitted] == [("data_received", ("first",))]
    assert room._pending == 5
    assert warnings(caplog) == ["event callbacks are 5 behind; dropped 'data_received'"]


@pytest.mark.anyio
async def test_a_writer_waits_while_the_channel_holds_more_than_the_high_mark() -> None:
    low, high = MARKS[Channel.RELIABLE]
    assert (low, high) == (64 * KIB, MIB)

    class Peer:
        amount = high + 1

        def buffered_amount(self, channel: Channel) -> int:
            return self.amount

    room = anyio_room.Room()
    peer = Peer()
    room._session.peer = peer  # type: ignore[assignment]
    done = anyio.Event()

    async def write() -> None:
        await room._session.wait_writable(Channel.RELIABLE)
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(write)
        await anyio.wait_all_tasks_blocked()
        assert not done.is_set()
        room._session.writable(Channel.RELIABLE)  # woken, but still over the mark: waits again
        await anyio.wait_all_tasks_blocked()
        assert not done.is_set()
        peer.amount = high  # at the mark is not over it
        room._session.writable(Channel.RELIABLE)
        with anyio.fail_after(5):
            await done.wait()
