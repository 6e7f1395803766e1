"""The replay buffer is trimmed by what the server's SCTP stack acknowledged (issue 26).

A Room sends reliable packets to a real livekit-server; once the server's SACKs cover them,
the core holds none of them for a replay (`Connection.reliable_delivered`, fed by the
`FastSctpTransport` delivery reports). With aiortc's own SCTP transport (the fallback for an
untested aiortc) nothing is reported: the packets stay, within the byte bound, and the
session goes on working. Every test runs once per adapter.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from aiortc import rtcpeerconnection
from aiortc import rtcsctptransport as sctp

import lkproto.transports._aiortc  # noqa: F401 - installs the fast path before we replace it
from harness.adapters import adapter, adapter_room, anyio_backend  # noqa: F401
from lkproto.transports.anyio import Room, RoomOptions

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(90)]

PACKETS = 60  # 1,500 B each, a few of them fragmented into two SCTP chunks
SIZES = [100 + (n * 397) % 1500 for n in range(PACKETS)]


def held(room: Any) -> list[int]:
    """The sequences the core holds for a replay."""
    conn = room.connection
    assert conn is not None
    return list(conn._sender.replay_sequences)


async def send_all(room: Any) -> None:
    for n, size in enumerate(SIZES):
        await room.local_participant.publish_data(bytes([n]) * size, reliable=True, topic="t")
        if n % 7 == 0:
            await room.local_participant.publish_data(b"lossy", reliable=False, topic="t")


async def test_acknowledged_reliable_packets_leave_the_replay_buffer(
    livekit_server: Any, make_token: Any, options: RoomOptions
) -> None:
    room = Room()
    await room.connect(livekit_server.url, make_token("lk"), options)
    try:
        await send_all(room)
        assert room.connection.next_sequence == PACKETS + 1
        with anyio.fail_after(20):  # no event says so: poll the core
            while held(room):
                await anyio.sleep(0.05)
        # The buffer is empty, not just short: and a new packet is held until its SACK.
        await room.local_participant.publish_data(b"one more", reliable=True, topic="t")
        with anyio.fail_after(20):
            while held(room):
                await anyio.sleep(0.05)
        assert room.connection.next_sequence == PACKETS + 2
    finally:
        await room.disconnect()


async def test_with_aiortcs_own_sctp_nothing_is_trimmed_and_nothing_breaks(
    livekit_server: Any, make_token: Any, options: RoomOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `_sctp.install` puts in place for an aiortc it was not tested with.
    monkeypatch.setattr(rtcpeerconnection, "RTCSctpTransport", sctp.RTCSctpTransport)
    room = Room()
    await room.connect(livekit_server.url, make_token("lk"), options)
    try:
        await send_all(room)
        await room.local_participant.publish_data(b"last", reliable=True, topic="t")
        # No event can say "nothing was reported": the SACKs come back within milliseconds
        # on this link, and a second is long enough for the first test to see its trim.
        await anyio.sleep(1.0)
        assert held(room) == list(range(1, PACKETS + 2))
        assert room.connection.next_sequence == PACKETS + 2
    finally:
        await room.disconnect()
