"""Resume and full reconnect through a real livekit-server, with the official SDK as the peer.

Every test runs once per adapter (anyio on asyncio and on trio, trio-native, threaded). The
failures are real: `simulate_scenario` (the client-side SIGNAL_RECONNECT and FULL_RECONNECT,
and the server-side SimulateScenario requests), and in test_resilience_faults.py a server
killed with SIGKILL and a network link cut between network namespaces.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
from typing import Any, TypeVar

import anyio
import pytest
from livekit import rtc

from harness.adapters import adapter, adapter_room, anyio_backend  # noqa: F401
from harness.announce import announce
from harness.official import OfficialLoop, OfficialPeer
from harness.recorder import Recorder
from lkproto.models import DisconnectReason
from lkproto.transports.anyio import (
    ConnectionState,
    DataPacket,
    Room,
    RoomOptions,
    RpcInvocationData,
    SimulateScenario,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(120)]

T = TypeVar("T")
PACKETS = 128  # the official SDKs' own reliability test (field-notes 4.2): 128 x 4 KiB,
PACKET_BYTES = 4096  # one every 10 ms, the sender resumes at 200 ms, the receiver at 400 ms
INTERVAL = 0.010


async def official(loop: OfficialLoop, url: str, token: str) -> OfficialPeer:
    peer = OfficialPeer(loop)
    await peer.connect(url, token)
    return peer


def at_least(n: int, items: list[T]) -> list[T] | None:
    return items if len(items) >= n else None


def payload(n: int) -> bytes:
    return n.to_bytes(4, "big") + bytes([n % 251]) * (PACKET_BYTES - 4)


async def pair(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> tuple[Any, Recorder, OfficialPeer]:
    peer = await official(official_loop, livekit_server.url, make_token("official"))
    room = Room()
    seen = Recorder(
        room,
        "reconnecting",
        "reconnected",
        "disconnected",
        "data_received",
        "connection_state_changed",
        timeout=20,
    )
    await room.connect(livekit_server.url, make_token("lk"), options)
    # Announced at once, not on the server's next 3 s tick (harness/announce.py).
    await announce(livekit_server, room.name, "lk")
    await peer.wait_for(lambda r: ("joined", ("lk",)) in r)
    await seen.wait_for(lambda: "official" in room.remote_participants)
    return room, seen, peer


# -- the official SDKs' reliability test, both directions ----------------------------------------


async def test_reliable_packets_survive_both_sides_resuming_lkproto_sending(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    room, seen, peer = await pair(livekit_server, make_token, options, official_loop)
    try:
        with anyio.fail_after(15 + 5):
            for n in range(PACKETS):
                if n == 20:  # 200 ms in: the sender resumes
                    await room.simulate_scenario(SimulateScenario.SIGNAL_RECONNECT)
                if n == 40:  # 400 ms in: the receiver resumes
                    await peer.do(
                        lambda r: r.simulate_scenario(
                            rtc.SimulateScenarioKind.SIMULATE_SIGNAL_RECONNECT
                        )
                    )
                await room.local_participant.publish_data(payload(n), reliable=True, topic="r")
                await anyio.sleep(INTERVAL)
            got = await peer.wait_for(
                lambda r: at_least(PACKETS, [a for name, a in r if name == "data"]),
                timeout=15,
            )
        assert [a[1] for a in got] == [payload(n) for n in range(PACKETS)]  # once, in order
        assert seen.names().count("reconnecting") == 1
        assert seen.names().count("reconnected") == 1
        # The official receiver's resume may need a second attempt (livekit.rtc 1.2 logs
        # "resuming connection failed: connection error: closed" for its first, sometimes).
        await peer.wait_for(lambda r: ("reconnected", ()) in r, timeout=15)
        assert room.connection_state == ConnectionState.CONN_CONNECTED
    finally:
        await room.disconnect()
        await peer.disconnect()


async def test_reliable_packets_survive_both_sides_resuming_official_sending(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    room, seen, peer = await pair(livekit_server, make_token, options, official_loop)

    async def send(r: rtc.Room) -> None:
        for n in range(PACKETS):
            if n == 20:
                await r.simulate_scenario(rtc.SimulateScenarioKind.SIMULATE_SIGNAL_RECONNECT)
            await r.local_participant.publish_data(payload(n), reliable=True, topic="r")
            await __import__("asyncio").sleep(INTERVAL)

    try:
        with anyio.fail_after(15 + 5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(functools.partial(peer.do, send, timeout=15))
                await anyio.sleep(0.4)
                await room.simulate_scenario(SimulateScenario.SIGNAL_RECONNECT)
            got = await seen.wait_for(
                lambda: at_least(PACKETS, seen.of("data_received")), timeout=15
            )
        data: list[DataPacket] = [a[0] for a in got]
        assert [d.data for d in data] == [payload(n) for n in range(PACKETS)]
        assert seen.names().count("reconnecting") == 1
        assert seen.names().count("reconnected") == 1
    finally:
        await room.disconnect()
        await peer.disconnect()


# -- what is in flight during a resume -----------------------------------------------------------


async def test_an_rpc_in_flight_during_a_resume_completes_both_ways(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    room, seen, peer = await pair(livekit_server, make_token, options, official_loop)
    release = anyio.Event()

    async def slow(data: RpcInvocationData) -> str:
        await release.wait()
        return "ours:" + data.payload

    room.local_participant.register_rpc_method("slow", slow)

    async def official_side(r: rtc.Room) -> None:
        async def handler(data: rtc.RpcInvocationData) -> str:
            await __import__("asyncio").sleep(1.0)
            return "theirs:" + data.payload

        r.local_participant.register_rpc_method("slow", handler)

    await peer.do(official_side)
    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                results: dict[str, str] = {}

                async def ours() -> None:
                    results["ours"] = await room.local_participant.perform_rpc(
                        destination_identity="official", method="slow", payload="a"
                    )

                async def theirs() -> None:
                    results["theirs"] = await peer.do(
                        lambda r: r.local_participant.perform_rpc(
                            destination_identity="lk", method="slow", payload="b"
                        )
                    )

                tg.start_soon(ours)
                tg.start_soon(theirs)
                await anyio.sleep(0.3)  # both calls are out and acknowledged
                await room.simulate_scenario(SimulateScenario.SIGNAL_RECONNECT)
                await seen.wait_for(lambda: seen.of("reconnected"))
                release.set()
        assert results == {"ours": "theirs:a", "theirs": "ours:b"}
        assert seen.names().count("reconnecting") == 1
    finally:
        await room.disconnect()
        await peer.disconnect()


async def test_a_stream_in_flight_during_a_resume_arrives_intact_both_ways(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    room, seen, peer = await pair(livekit_server, make_token, options, official_loop)
    blob = os.urandom(3 * 1024 * 1024)
    digest = hashlib.sha256(blob).hexdigest()
    received: dict[str, str] = {}
    done = anyio.Event()

    async def on_ours(reader: Any, identity: str) -> None:
        data = b"".join([chunk async for chunk in reader])
        received["by lk"] = hashlib.sha256(data).hexdigest()
        done.set()

    room.register_byte_stream_handler("blob", on_ours)

    async def official_side(r: rtc.Room) -> None:
        def handler(reader: rtc.ByteStreamReader, identity: str) -> None:
            async def read() -> None:
                data = b"".join([chunk async for chunk in reader])
                peer._record("blob", hashlib.sha256(data).hexdigest())

            peer.spawn(read())

        r.register_byte_stream_handler("blob", handler)

    await peer.do(official_side)

    async def official_sends(r: rtc.Room) -> None:
        writer = await r.local_participant.stream_bytes("b.bin", topic="blob")
        for i in range(0, len(blob), 60_000):
            await writer.write(blob[i : i + 60_000])
            await __import__("asyncio").sleep(0.005)
        await writer.aclose()

    try:
        with anyio.fail_after(60):
            writer = await room.local_participant.stream_bytes("a.bin", topic="blob")
            async with anyio.create_task_group() as tg:
                tg.start_soon(functools.partial(peer.do, official_sends, timeout=50))
                for i in range(0, len(blob), 60_000):
                    if i == 20 * 60_000:
                        await room.simulate_scenario(SimulateScenario.SIGNAL_RECONNECT)
                    await writer.write(blob[i : i + 60_000])
                    await anyio.sleep(0.005)
                await writer.aclose()
            (theirs,) = await peer.wait_for(lambda r: [a for n, a in r if n == "blob"], timeout=30)
            await done.wait()
        assert theirs == (digest,)
        assert received == {"by lk": digest}
        assert seen.names().count("reconnecting") == 1 and seen.of("reconnected")
    finally:
        await room.disconnect()
        await peer.disconnect()


# -- every client-triggerable scenario ------------------------------------------------------------


async def exchange(room: Any, seen: Recorder, peer: OfficialPeer, tag: bytes) -> None:
    """One data packet each way, proving the session works."""
    await room.local_participant.publish_data(b"to-official-" + tag, reliable=True, topic="ok")
    await peer.wait_for(
        lambda r: [a for n, a in r if n == "data" and a[1] == b"to-official-" + tag]
    )
    await peer.do(
        lambda r: r.local_participant.publish_data(b"to-lk-" + tag, reliable=True, topic="ok")
    )
    await seen.wait_for(
        lambda: [a for a in seen.of("data_received") if a[0].data == b"to-lk-" + tag]
    )


_RESUMED = re.compile(r"reconnected \(resume\) after (\d+) attempt")


def resume_attempts(records: list[logging.LogRecord]) -> list[int]:
    """The attempts of each completed resume, from the adapter's log line."""
    return [int(m[1]) for r in records if (m := _RESUMED.match(r.getMessage()))]


RESUMES = {SimulateScenario.SIGNAL_RECONNECT}
# The server closes the session without a leave and expects a resume, which it then refuses
# (STATE_MISMATCH: it no longer has the participant), so the client rejoins.
REJOINS = {SimulateScenario.NODE_FAILURE, SimulateScenario.MIGRATION}
# The server closes the signal right after (or, three times, instead of) answering the next
# resume, which the client starts itself; resuming again succeeds.
SIGNAL_ON_RESUME = {
    SimulateScenario.DISCONNECT_SIGNAL_ON_RESUME,
    SimulateScenario.DISCONNECT_SIGNAL_ON_RESUME_NO_MESSAGES,
}
# Single peer connection: the server's ICE restart applies to a subscriber PC we do not have.
NO_OP = {SimulateScenario.FORCE_TCP, SimulateScenario.FORCE_TLS}


@pytest.mark.parametrize("scenario", list(SimulateScenario), ids=lambda s: s.name.lower())
async def test_every_scenario_ends_connected_and_working(
    scenario: SimulateScenario,
    livekit_server: Any,
    make_token: Any,
    options: RoomOptions,
    official_loop: OfficialLoop,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="lkproto")
    room, seen, peer = await pair(livekit_server, make_token, options, official_loop)
    people = Recorder(room, "participant_disconnected", "participant_connected", timeout=20)
    speakers = Recorder(room, "active_speakers_changed", timeout=20)
    try:
        with anyio.fail_after(45):
            # For the two SIGNAL_ON_RESUME ones the client drops its own signal right after
            # the request, so that a resume follows (client-sdk-js does the same).
            await room.simulate_scenario(scenario)
            if scenario is SimulateScenario.SERVER_LEAVE:
                # The server closes the participant with a leave that says DISCONNECT.
                ((reason,),) = await seen.wait_for(lambda: seen.of("disconnected"))
                assert reason == DisconnectReason.SERVER_SHUTDOWN
                # The server closes our peer connection as it sends the leave; when the peer
                # connection's failure is seen first a reconnect starts (its signal is kept
                # open for a leave meanwhile), and the leave then ends it: never "reconnected".
                assert "reconnected" not in seen.names()
                assert seen.names()[-1] == "disconnected"
                await peer.wait_for(lambda r: ("left", ("lk",)) in r)
                return
            if scenario is SimulateScenario.SPEAKER:
                (speaking,) = await speakers.wait_for(
                    lambda: speakers.of("active_speakers_changed")
                )
                assert [p.identity for p in speaking[0]] == ["lk"] or speaking[0] == []
            if scenario in NO_OP or scenario is SimulateScenario.SPEAKER:
                await exchange(room, seen, peer, b"after")
                assert "reconnecting" not in seen.names()
                return
            await seen.wait_for(lambda: seen.of("reconnected"))
            if scenario is SimulateScenario.DISCONNECT_SIGNAL_ON_RESUME:
                # The server closes the answered resume's signal. Read after the resume was
                # complete, that is a second cycle; read while it still waited on its peer
                # connection (a loaded run: the trio variant once), the same cycle takes a
                # second signal connection, which its `Reconnected.attempts` (logged) counts.
                def signal_closed_again() -> bool:
                    most = max(resume_attempts(caplog.records), default=0)
                    return seen.names().count("reconnected") >= 2 or most >= 2

                await seen.wait_for(signal_closed_again)
            await seen.wait_for(lambda: room.connection_state == ConnectionState.CONN_CONNECTED)
            await exchange(room, seen, peer, b"after")
        assert room.connection_state == ConnectionState.CONN_CONNECTED
        assert seen.names().count("reconnecting") == seen.names().count("reconnected") >= 1
        full = scenario in REJOINS or scenario is SimulateScenario.FULL_RECONNECT
        # A full reconnect is a new session: livekit.rtc users see everyone leave and come back.
        assert people.names() == (
            ["participant_disconnected", "participant_connected"] if full else []
        )
        assert (("left", ("lk",)) in peer.records) == full
    finally:
        await room.disconnect()
        await peer.disconnect()
