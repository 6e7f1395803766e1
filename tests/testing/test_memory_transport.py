"""The memory transport: unchanged adapter Rooms join a MemoryRoom (lkproto.transports.testing).

The anyio Room runs on asyncio with `VirtualTimeLoop` and on trio with `MockClock`
(autojump), so every timeout below is exact on the loop's clock and takes milliseconds of
real time; the trio-native Room and Rooms on other threads' loops are covered too. Every test
has a timeout; waits are on events, never on sleeps.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TypeVar

import anyio
import anyio.from_thread
import pytest
import trio
import trio.testing

from harness.recorder import Recorder
from lkproto import DisconnectReason, LeaveAction, ParticipantState
from lkproto.testing import MemoryRoom
from lkproto.transports import threaded
from lkproto.transports import trio as lk_trio
from lkproto.transports._connector import CONNECTOR
from lkproto.transports.anyio import (
    ConnectError,
    ConnectionState,
    Room,
    RpcError,
    StreamError,
    TextStreamReader,
)
from lkproto.transports.testing import MemoryServer, VirtualTimeLoop

T = TypeVar("T")

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> object:
    if request.param == "asyncio":
        return ("asyncio", {"loop_factory": VirtualTimeLoop})
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


async def test_rpc_timeouts_are_exact_on_a_virtual_clock() -> None:
    real = time.monotonic()
    async with MemoryServer() as server:
        callee, caller = Room(), Room()

        @callee.local_participant.register_rpc_method("sleepy")
        async def sleepy(_: object) -> str:
            await anyio.sleep(3600)
            return "too late"

        await callee.connect(server.url, server.token("callee"))
        await caller.connect(server.url, server.token("caller"))
        start = anyio.current_time()
        with pytest.raises(RpcError) as info:
            await caller.local_participant.perform_rpc(
                destination_identity="callee", method="sleepy", payload=""
            )
        assert (info.value.code, anyio.current_time() - start) == (1502, 15.0)
        start = anyio.current_time()
        with pytest.raises(RpcError) as info:
            await caller.local_participant.perform_rpc(
                destination_identity="nobody", method="x", payload=""
            )
        assert (info.value.code, anyio.current_time() - start) == (1501, 7.0)
        await caller.disconnect()
        await callee.disconnect()
        assert sorted(server.room.participants) == []
    assert time.monotonic() - real < 5


async def test_a_refused_token_is_a_connect_error_without_the_token() -> None:
    async with MemoryServer(name="the-room") as server:
        token = MemoryRoom("another-room").token("alice")
        with pytest.raises(ConnectError) as info:
            await Room().connect(server.url, token)
        assert "401" in str(info.value) and token not in str(info.value)
        other_key = MemoryRoom("the-room", api_secret="s" * 40).token("bob")
        with pytest.raises(ConnectError) as info:
            await Room().connect("wss://anywhere.example:443", other_key)
        message = str(info.value)
        assert "invalid token: <redacted>, error: signature is invalid" in message
        assert other_key not in message


async def test_a_stopped_server_refuses_connections() -> None:
    server = MemoryServer()
    token = CONNECTOR.set(server)
    try:
        with pytest.raises(ConnectError, match="the MemoryServer is not running"):
            await Room().connect(server.url, "token")
    finally:
        CONNECTOR.reset(token)
    with pytest.raises(RuntimeError, match="has not started yet"):
        server.room  # noqa: B018
    with pytest.raises(RuntimeError, match="running server's loop"), server.control():
        pass
    with pytest.raises(TypeError):
        MemoryServer(MemoryRoom(), name="x")
    await server.start()
    with pytest.raises(RuntimeError, match="already running"):
        await server.start()
    await server.stop()
    with pytest.raises(ConnectionResetError):
        await server.call(lambda: None)
    ahead = MemoryRoom(now=anyio.current_time() + 100)
    with pytest.raises(RuntimeError, match="clock is ahead"):
        await MemoryServer(ahead).start()


async def test_server_actions_and_faults_reach_unchanged_rooms() -> None:
    async with MemoryServer() as server:
        alice, bob, carol = Room(), Room(), Room()
        seen = Recorder(alice, "participant_connected", "participant_disconnected", timeout=60)
        bob_seen = Recorder(bob, "disconnected", "reconnecting", "reconnected", timeout=60)
        carol_seen = Recorder(carol, "disconnected", "reconnecting", timeout=60)
        await alice.connect(server.url, server.token("alice"))
        await bob.connect(server.url, server.token("bob"))
        await carol.connect(server.url, server.token("carol"))
        await seen.wait_for(lambda: len(seen.of("participant_connected")) == 2)
        # A resume request: Bob resumes at once, the same session (PA_2) carries on.
        with server.control() as room:
            room.leave("bob", action=LeaveAction.RESUME)
        await bob_seen.wait_for(lambda: bob_seen.of("reconnected"))
        assert bob_seen.records == [("reconnecting", ()), ("reconnected", ())]
        assert bob.connection_state == ConnectionState.CONN_CONNECTED
        assert server.room.participants["bob"].sid == bob.local_participant.sid == "PA_2"
        # A cut for good: Carol's own ping timeout starts her reconnecting, 15 s after her
        # last message; the server removes her 20 s after the cut; she gives up in the end.
        with server.control() as room:
            room.disconnect("carol")
        start = anyio.current_time()
        await carol_seen.wait_for(lambda: carol_seen.of("reconnecting"))
        assert 0 < anyio.current_time() - start <= 15.0
        [(gone,)] = await seen.wait_for(lambda: seen.of("participant_disconnected"))
        assert (gone.identity, gone.disconnect_reason) == (
            "carol",
            DisconnectReason.CONNECTION_TIMEOUT,
        )
        [(reason,)] = await carol_seen.wait_for(lambda: carol_seen.of("disconnected"), 120)
        assert reason == DisconnectReason.MEDIA_FAILURE  # the last interruption: ICE failed
        assert carol.connection_state == ConnectionState.CONN_DISCONNECTED
        # (A server leave{DISCONNECT}: see test_parity.py test_server_api_actions. On trio the
        # closing of the peer connection may be read before the leave, and the core then
        # ignores the leave: a core issue, reported.)
        for room_ in (alice, bob, carol):
            await room_.disconnect()


async def test_rooms_resume_and_rejoin_through_the_memory_transport() -> None:
    async with MemoryServer(update_interval=0) as server:
        alice, bob = Room(), Room()

        @bob.local_participant.register_rpc_method("slow")
        async def slow(_: object) -> str:
            await anyio.sleep(3600)
            return "too late"

        seen = Recorder(alice, "reconnecting", "reconnected", "disconnected", timeout=60)
        got = Recorder(
            bob, "data_received", "participant_connected", "participant_disconnected", timeout=60
        )
        await alice.connect(server.url, server.token("alice"))
        await bob.connect(server.url, server.token("bob"))
        # The peer connection fails: a resume with an ICE restart, and what was in flight on
        # it is replayed.
        with server.control() as room:
            room.uplink("alice").delay(1.0)
        await alice.local_participant.publish_data(b"in flight")
        with server.control() as room:
            room.fail_peer("alice")
        await seen.wait_for(lambda: seen.of("reconnected"))
        [(packet,)] = await got.wait_for(lambda: got.of("data_received"))
        assert packet.data == b"in flight"
        assert server.room.participants["alice"].sid == "PA_1"
        assert [u.outcome for u in server.room.upgrades[2:]] == ["resumed"]
        # A crash with 3 s of downtime: attempts are refused, then the resume finds nothing
        # and Alice rejoins; her call in flight fails (1503) and Bob sees her leave and come
        # back with a new SID.
        call = alice.local_participant.perform_rpc(
            destination_identity="bob", method="slow", payload=""
        )
        failures: list[int] = []

        async def calling() -> None:
            try:
                await call
            except RpcError as exc:
                failures.append(int(exc.code))

        async with anyio.create_task_group() as tg:
            tg.start_soon(calling)
            await anyio.sleep(0.5)
            start = anyio.current_time()
            with server.control() as room:
                room.restart(graceful=False, downtime=3)
            await seen.wait_for(lambda: len(seen.of("reconnected")) == 2)
            took = anyio.current_time() - start
        # Attempts at 0, 0.3 and 1.5 s (+ up to 1 s of jitter) are refused; the fourth, 2.7 s
        # (+ jitter) after that, gets through.
        assert 4.2 <= took <= 6.2
        assert failures == [1503]
        assert seen.records == [("reconnecting", ()), ("reconnected", ())] * 2
        # (Who rejoins first, Alice or Bob, depends on their jitter: the adapter's is random.)
        assert alice.local_participant.sid == server.room.participants["alice"].sid != "PA_1"
        assert alice.connection is not None and alice.connection.room.sid == "RM_2"
        await got.wait_for(lambda: len(got.of("participant_connected")) == 1)
        assert [(p.identity, p.sid) for (p,) in got.of("participant_disconnected")] == [
            ("alice", "PA_1")
        ]
        await alice.local_participant.publish_data(b"rejoined")
        await got.wait_for(lambda: len(got.of("data_received")) == 2)
        await alice.disconnect()
        await bob.disconnect()


async def test_a_lost_chunk_fails_the_reader() -> None:
    async with MemoryServer(update_interval=0) as server:
        receiver, sender = Room(), Room()
        failures: list[BaseException] = []
        done = anyio.Event()

        async def on_text(reader: TextStreamReader, _: str) -> None:
            try:
                await reader.read_all()
            except StreamError as exc:
                failures.append(exc)
            done.set()

        receiver.register_text_stream_handler("t", on_text)
        await receiver.connect(server.url, server.token("rx"))
        await sender.connect(server.url, server.token("tx"))
        writer = await sender.local_participant.stream_text(topic="t")
        await writer.write("first")
        with server.control() as room:
            room.link("tx", "rx").drop_next(1)
        await writer.write("lost")
        await writer.write("third")
        await writer.aclose()
        with anyio.fail_after(10):
            await done.wait()
        [failure] = failures
        assert isinstance(failure, StreamError) and "chunk" in str(failure)
        await receiver.disconnect()
        await sender.disconnect()


async def test_the_dual_peer_connection_path() -> None:
    async with MemoryServer(single_peer_connection=False, update_interval=0) as server:
        alice, bob = Room(), Room()
        got = Recorder(bob, "data_received", timeout=60)
        await alice.connect(server.url, server.token("alice"))
        await bob.connect(server.url, server.token("bob"))
        assert alice.connection is not None and not alice.connection.single_peer_connection
        await alice.local_participant.publish_data(b"over /rtc")
        [(packet,)] = await got.wait_for(lambda: got.of("data_received"))
        assert packet.data == b"over /rtc"
        await alice.disconnect()
        await bob.disconnect()


@pytest.mark.parametrize(
    "anyio_backend", [("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})]
)
async def test_the_trio_native_room() -> None:
    async with MemoryServer() as server:
        async with (
            lk_trio.Room().connect(server.url, server.token("alice")) as alice,
            lk_trio.Room().connect(server.url, server.token("bob")) as bob,
        ):
            alice.local_participant.register_rpc_method("hi", lambda d: f"hi {d.caller_identity}")
            answer = await bob.local_participant.perform_rpc(
                destination_identity="alice", method="hi", payload=""
            )
            assert answer == "hi bob"
        assert dict(server.room.participants) == {}


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_rooms_on_other_threads_loops() -> None:
    """The server on this loop; each Room on its own thread's asyncio loop (real time)."""
    async with MemoryServer(update_interval=0) as server:
        results: list[str] = []
        finished = threading.Event()

        async def in_thread(identity: str, call: str | None) -> None:
            room = Room()
            room.local_participant.register_rpc_method("who", lambda d: identity)
            active = anyio.Event()
            room.on("participant_active", lambda p: p.identity == call and active.set())
            with server.installed():
                await room.connect(server.url, server.token(identity))
            try:
                if call is not None:
                    # Alice may still be JOINED (no data channel yet): packets sent to her then
                    # are lost, as on the real server (field-notes 1.3). Wait until she is ACTIVE.
                    with anyio.fail_after(10):
                        remote = room.remote_participants.get(call)
                        if remote is None or remote.state != ParticipantState.ACTIVE:
                            await active.wait()
                    try:
                        results.append(
                            await room.local_participant.perform_rpc(
                                destination_identity=call, method="who", payload=""
                            )
                        )
                    finally:
                        finished.set()
                else:
                    await anyio.to_thread.run_sync(finished.wait, 10)
            finally:
                await room.disconnect()

        errors: list[BaseException] = []

        def run(identity: str, call: str | None) -> None:
            try:
                with anyio.from_thread.start_blocking_portal() as portal:
                    portal.call(in_thread, identity, call)
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=run, args=("alice", None)),
            threading.Thread(target=run, args=("bob", "alice")),
        ]
        for t in threads:
            t.start()
        with anyio.fail_after(20):
            for t in threads:
                await anyio.to_thread.run_sync(t.join, abandon_on_cancel=True)
        assert (errors, results) == ([], ["alice"]), [
            (d.sender, d.receiver, d.reason, d.packet()) for d in server.room.dropped
        ]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_threaded_room() -> None:
    """Blocking code on worker threads, unchanged: the connector set by `async with` reaches
    the threaded Room's I/O thread (anyio copies the caller's context across both hops)."""
    async with MemoryServer(update_interval=0) as server:

        def work() -> tuple[str, list[str]]:
            with threaded.Room() as alice, threaded.Room() as bob:
                alice.local_participant.register_rpc_method("who", lambda d: "alice")
                alice.connect(server.url, server.token("alice"), threaded.RoomOptions())
                bob.connect(server.url, server.token("bob"), threaded.RoomOptions())
                answer = bob.local_participant.perform_rpc(
                    destination_identity="alice", method="who", payload="", response_timeout=8
                )
                return answer, sorted(bob.remote_participants)

        with anyio.fail_after(20):
            assert await anyio.to_thread.run_sync(work) == ("alice", ["alice"])
        assert dict(server.room.participants) == {}


async def _echo_once() -> str:
    async with MemoryServer(update_interval=0) as server:
        callee, caller = Room(), Room()
        callee.local_participant.register_rpc_method("echo", lambda d: d.payload)
        await callee.connect(server.url, server.token("callee"))
        await caller.connect(server.url, server.token("caller"))
        try:
            return await caller.local_participant.perform_rpc(
                destination_identity="callee", method="echo", payload="plain"
            )
        finally:
            await caller.disconnect()
            await callee.disconnect()


def test_under_plain_asyncio_run_and_trio_run() -> None:
    """Outside anyio's runner (sniffio learns the library from the running task only)."""
    assert asyncio.run(_echo_once()) == "plain"
    assert trio.run(_echo_once) == "plain"
