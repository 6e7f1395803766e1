"""Many participants in one process: every reliable packet of a broadcast arrives (issue 26).

50 `Room`s of the anyio adapter on one asyncio loop join one room on the real server, then
each sends 5 reliable packets to everyone at once. The server writes to each participant's
`_reliable` channel from several goroutines, and its SCTP (pion) then sometimes gives an SSN
a higher TSN than the next one; aiortc alone stalled that participant's stream for good
(transports/_sctp.py). Before the fix this lost packets in 2 of 4 runs (10,099 of 12,250 in one);
benchmarks/bench_scale.py measures the same at 100 and 200 participants.
"""

from __future__ import annotations

import struct
import time
from typing import Any

import anyio
import pytest

from lkproto.transports.anyio import DataPacket, Room, RoomOptions, RtcConfiguration

# The broadcast loads both cores for a few seconds: alone under xdist, like the other floods.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.anyio,
    pytest.mark.xdist_group("solo"),  # first on the CPU, one at a time (harness/phases.py)
    pytest.mark.timeout(90),
]

PARTICIPANTS = 50
PACKETS = 5  # per sender: more writes at once to each receiver than one per sender
HEADER = struct.Struct("<II")  # sender, packet


async def test_a_broadcast_among_50_participants_in_one_process_arrives_whole(
    livekit_server: Any, make_token: Any, confinement: Any
) -> None:
    options = RoomOptions(rtc_config=RtcConfiguration(host_addresses=[confinement.host]))
    rooms = [Room() for _ in range(PARTICIPANTS)]
    received: list[set[tuple[int, int]]] = [set() for _ in rooms]
    expected = PARTICIPANTS * (PARTICIPANTS - 1) * PACKETS
    complete = anyio.Event()
    count = 0

    def listener(index: int) -> Any:
        def on_data(packet: DataPacket) -> None:
            nonlocal count
            key = HEADER.unpack_from(packet.data)
            assert key not in received[index], f"p{index} got {key} twice"
            received[index].add(key)
            count += 1
            if count == expected:
                complete.set()

        return on_data

    for i, room in enumerate(rooms):
        room.on("data_received", listener(i))
    try:
        with anyio.fail_after(40):
            async with anyio.create_task_group() as tg:
                for i, room in enumerate(rooms):
                    tg.start_soon(
                        room.connect, livekit_server.url, make_token(f"p{i:02d}"), options
                    )

        async def send(i: int) -> None:
            for k in range(PACKETS):
                payload = HEADER.pack(i, k).ljust(100, b"x")
                await rooms[i].local_participant.publish_data(payload, reliable=True)

        start = time.monotonic()
        async with anyio.create_task_group() as tg:
            for i in range(PARTICIPANTS):
                tg.start_soon(send, i)
        with anyio.move_on_after(20):
            await complete.wait()
        elapsed = time.monotonic() - start
        short = {
            f"p{i:02d}": len(got)
            for i, got in enumerate(received)
            if len(got) < (PARTICIPANTS - 1) * PACKETS
        }
        assert count == expected, f"{count} of {expected} after {elapsed:.1f} s; short: {short}"
        for i, got in enumerate(received):
            assert got == {(j, k) for j in range(PARTICIPANTS) if j != i for k in range(PACKETS)}, (
                f"p{i:02d}"
            )
    finally:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for room in rooms:
                    tg.start_soon(room.disconnect)
