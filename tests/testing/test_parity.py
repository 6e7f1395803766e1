"""The same scenarios against `MemoryRoom` and against the real livekit-server.

Every test runs twice, with the same code and the same assertions:
- "memory": `lkproto.transports.anyio.Room`s join a `MemoryServer` (lkproto.transports.testing)
  on an asyncio loop with a virtual clock (`VirtualTimeLoop`), so the 3 s update tick, the 7 s
  and 15 s RPC timeouts pass in milliseconds of real time but measure the same on the clock;
- "server": the same Rooms join the real livekit-server v1.13.5 the harness runs (confined).
Any difference is a bug in MemoryRoom. Durations are read from the loop's clock
(`anyio.current_time`), which is virtual in one case and real in the other, and asserted
within the same bounds.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

import anyio
import attrs
import pytest
from livekit import api as lkapi

from harness import API_KEY, API_SECRET
from harness.faults import fault_server_fixture, require_cut  # noqa: F401 - `fault_server`
from harness.recorder import Recorder
from lkproto import Config
from lkproto.transports.anyio import (
    ByteStreamReader,
    DataPacketKind,
    DisconnectReason,
    MetadataUpdateError,
    Room,
    RoomOptions,
    RpcError,
    RpcInvocationData,
    RtcConfiguration,
    SimulateScenario,
    TextStreamReader,
)
from lkproto.transports.testing import MemoryServer, VirtualTimeLoop

T = TypeVar("T")

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

ANNOUNCE = 4.0  # the server announces joins and departures on its 3 s tick (plus slack)


@pytest.fixture(params=["memory", pytest.param("server", marks=pytest.mark.e2e)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def anyio_backend(backend: str) -> object:
    if backend == "memory":
        return ("asyncio", {"loop_factory": VirtualTimeLoop})
    return "asyncio"


class Admin(Protocol):
    """What the server API does (RoomService), as the test needs it."""

    async def remove(self, identity: str) -> None: ...

    async def update(
        self, identity: str, *, metadata: str = "", attributes: dict[str, str] | None = None
    ) -> None: ...

    async def send_data(self, payload: bytes, *, topic: str, destinations: list[str]) -> None: ...

    async def room_metadata(self, metadata: str) -> None: ...


@attrs.define
class Env:
    """Where the Rooms of one test go: a URL, a token factory, the connect options, and the
    server API."""

    url: str
    mint: Callable[..., str]
    options: RoomOptions
    admin: Admin

    def token(self, identity: str, **grants: Any) -> str:
        return self.mint(identity, **grants)

    async def join(self, identity: str, room: Room | None = None, **grants: Any) -> Room:
        room = room or Room()
        with anyio.fail_after(30):
            await room.connect(self.url, self.token(identity, **grants), self.options)
        return room


@attrs.define
class ServerAdmin:
    """The server API of the real server, through the official `livekit-api` client."""

    api: lkapi.LiveKitAPI
    room: str

    async def remove(self, identity: str) -> None:
        await self.api.room.remove_participant(
            lkapi.RoomParticipantIdentity(room=self.room, identity=identity)
        )

    async def update(
        self, identity: str, *, metadata: str = "", attributes: dict[str, str] | None = None
    ) -> None:
        await self.api.room.update_participant(
            lkapi.UpdateParticipantRequest(
                room=self.room, identity=identity, metadata=metadata, attributes=attributes or {}
            )
        )

    async def send_data(self, payload: bytes, *, topic: str, destinations: list[str]) -> None:
        await self.api.room.send_data(
            lkapi.SendDataRequest(
                room=self.room, data=payload, topic=topic, destination_identities=destinations
            )
        )

    async def room_metadata(self, metadata: str) -> None:
        await self.api.room.update_room_metadata(
            lkapi.UpdateRoomMetadataRequest(room=self.room, metadata=metadata)
        )


@attrs.define
class MemoryAdmin:
    """The same, as MemoryRoom's server actions."""

    server: MemoryServer

    async def remove(self, identity: str) -> None:
        with self.server.control() as room:
            room.leave(identity, reason=DisconnectReason.PARTICIPANT_REMOVED)

    async def update(
        self, identity: str, *, metadata: str = "", attributes: dict[str, str] | None = None
    ) -> None:
        with self.server.control() as room:
            room.update_participant(identity, metadata=metadata or None, attributes=attributes)

    async def send_data(self, payload: bytes, *, topic: str, destinations: list[str]) -> None:
        with self.server.control() as room:
            room.send_data(payload, topic=topic, destination_identities=destinations)

    async def room_metadata(self, metadata: str) -> None:
        with self.server.control() as room:
            room.set_metadata(metadata)


@pytest.fixture
def real_server(backend: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The harness's server (started only for the "server" runs)."""
    yield request.getfixturevalue("livekit_server") if backend == "server" else None


@pytest.fixture
async def env(
    real_server: Any, request: pytest.FixtureRequest, room_name: str
) -> AsyncIterator[Env]:
    if real_server is not None:
        confinement = request.getfixturevalue("confinement")
        make_token = request.getfixturevalue("make_token")
        options = RoomOptions(
            auto_subscribe=False, rtc_config=RtcConfiguration(host_addresses=[confinement.host])
        )
        async with lkapi.LiveKitAPI(real_server.http_url, API_KEY, API_SECRET) as api:
            yield Env(real_server.url, make_token, options, ServerAdmin(api, room_name))
        return
    async with MemoryServer(name=room_name) as server:
        yield Env(server.url, server.token, RoomOptions(auto_subscribe=False), MemoryAdmin(server))


async def timed(awaitable: Awaitable[T]) -> tuple[T, float]:
    start = anyio.current_time()
    result = await awaitable
    return result, anyio.current_time() - start


@contextlib.asynccontextmanager
async def rooms(*joined: Room) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for room in joined:
            with anyio.CancelScope(shield=True):
                await room.disconnect()


# -- join and leave ------------------------------------------------------------------------------


async def test_join_and_leave(env: Env) -> None:
    alice = await env.join("alice", attributes={"role": "host"}, name="Alice")
    seen = Recorder(alice, "participant_connected", "participant_disconnected", "room_updated")
    bob = await env.join("bob", can_publish_data=False)
    async with rooms(alice, bob):
        me = bob.local_participant
        assert (me.identity, me.kind, me.permissions.can_publish_data) == ("bob", 0, False)
        assert (me.permissions.can_subscribe, me.permissions.can_publish) == (True, True)
        # Bob learns of Alice from the join response itself, with her token's facts.
        assert list(bob.remote_participants) == ["alice"]
        remote = bob.remote_participants["alice"]
        assert (remote.name, remote.attributes, remote.sid.startswith("PA_")) == (
            "Alice",
            {"role": "host"},
            True,
        )
        assert bob.local_participant.identity == "bob"
        assert alice.sid == bob.sid and alice.sid.startswith("RM_")
        # Alice hears of Bob on the server's next update tick, not at once.
        [(args,)], took = await timed(seen.wait_for(lambda: seen.of("participant_connected")))
        assert args.identity == "bob" and args.sid == bob.local_participant.sid
        assert took <= ANNOUNCE
        assert list(alice.remote_participants) == ["bob"]
        assert not alice.remote_participants["bob"].permissions.can_publish_data
        # The participant count comes on the server's 5 s room-update tick.
        await seen.wait_for(lambda: alice.num_participants == 2, timeout=10)
        # Bob leaves: Alice hears it, with the reason, on a tick too.
        await bob.disconnect()
        [(gone,)], took = await timed(seen.wait_for(lambda: seen.of("participant_disconnected")))
        assert (gone.identity, gone.disconnect_reason) == ("bob", DisconnectReason.CLIENT_INITIATED)
        assert took <= ANNOUNCE
        assert dict(alice.remote_participants) == {}


async def test_hidden_participant_is_never_announced(env: Env) -> None:
    alice = await env.join("alice")
    seen = Recorder(alice, "participant_connected", "data_received")
    ghost = await env.join("ghost", hidden=True)
    bob = await env.join("bob")
    async with rooms(alice, ghost, bob):
        assert list(ghost.remote_participants) == ["alice"]
        assert "ghost" not in bob.remote_participants
        await seen.wait_for(lambda: seen.of("participant_connected"))
        # Bob's announcement came; the ghost's never does, and its data has no sender.
        await ghost.local_participant.publish_data(b"boo", topic="t")
        [(packet,)] = await seen.wait_for(lambda: seen.of("data_received"))
        assert (packet.data, packet.participant, packet.topic) == (b"boo", None, "t")
        assert [p.identity for (p,) in seen.of("participant_connected")] == ["bob"]
        assert list(alice.remote_participants) == ["bob"]


# -- data packet filtering -----------------------------------------------------------------------


async def test_data_packets_are_stamped_and_filtered(env: Env) -> None:
    alice = await env.join("alice")
    bob = await env.join("bob")
    carol = await env.join("carol")
    mute = await env.join("mute", can_publish_data=False)
    got = {name: Recorder(room, "data_received") for name, room in (("bob", bob), ("carol", carol))}
    async with rooms(alice, bob, carol, mute):
        me = alice.local_participant
        await me.publish_data(b"to bob", topic="t1", destination_identities=["bob", "nobody"])
        await me.publish_data(b"lossy", reliable=False, topic="fast")
        await mute.local_participant.publish_data(b"never delivered")
        await me.publish_data(b"marker")
        for recorder in got.values():
            await recorder.wait_for(
                lambda r=recorder: [1 for (p,) in r.of("data_received") if p.data == b"marker"]
            )  # type: ignore[misc]
        await got["bob"].wait_for(lambda: len(got["bob"].of("data_received")) == 3)
        await got["carol"].wait_for(lambda: len(got["carol"].of("data_received")) == 2)

        def seen(name: str) -> list[tuple[str | None, bytes, str | None, DataPacketKind]]:
            return sorted(
                (p.participant.identity if p.participant else None, p.data, p.topic, p.kind)
                for (p,) in got[name].of("data_received")
            )

        assert seen("bob") == [
            ("alice", b"lossy", "fast", DataPacketKind.KIND_LOSSY),
            ("alice", b"marker", "", DataPacketKind.KIND_RELIABLE),
            ("alice", b"to bob", "t1", DataPacketKind.KIND_RELIABLE),
        ]
        assert seen("carol") == [
            ("alice", b"lossy", "fast", DataPacketKind.KIND_LOSSY),
            ("alice", b"marker", "", DataPacketKind.KIND_RELIABLE),
        ]
        # The reliable channel is ordered: what Bob got reliably came in the order sent.
        reliable = [p.data for (p,) in got["bob"].of("data_received") if p.kind == 1]
        assert reliable == [b"to bob", b"marker"]


# -- RPC -----------------------------------------------------------------------------------------


async def test_rpc_success_errors_and_timeouts(env: Env) -> None:
    callee = Room()
    lp = callee.local_participant

    @lp.register_rpc_method("echo")
    def echo(data: RpcInvocationData) -> str:
        return f"{data.caller_identity}:{data.payload.upper()}"

    @lp.register_rpc_method("refuse")
    def refuse(data: RpcInvocationData) -> str:
        raise RpcError(42, "no thanks", "details")

    @lp.register_rpc_method("crash")
    def crash(data: RpcInvocationData) -> str:
        raise ValueError("boom")

    @lp.register_rpc_method("slow")
    async def slow(data: RpcInvocationData) -> str:
        await anyio.sleep(60)
        return "too late"

    await env.join("callee", callee)
    # The ack timeout (max_round_trip_latency, 7 s by default) configured to 2 s.
    caller = await env.join("caller", Room(config=Config(rpc_max_round_trip_latency=2.0)))
    async with rooms(callee, caller):
        call = functools.partial(
            caller.local_participant.perform_rpc, destination_identity="callee"
        )
        assert await call(method="echo", payload="hi") == "caller:HI"

        async def error(**kwargs: Any) -> tuple[tuple[int, str, str | None], float]:
            start = anyio.current_time()
            with pytest.raises(RpcError) as info:
                await call(**kwargs)
            e = info.value
            return (int(e.code), e.message, e.data), anyio.current_time() - start

        assert (await error(method="refuse", payload=""))[0] == (42, "no thanks", "details")
        assert (await error(method="crash", payload=""))[0] == (
            1500,
            "Application error in method handler",
            None,
        )
        assert (await error(method="nope", payload=""))[0] == (
            1400,
            "Method not supported at destination",
            None,
        )
        # The handler never answers: the response timeout (at least 8 s, as client-sdk-js).
        fields, took = await error(method="slow", payload="", response_timeout=9.0)
        assert fields == (1502, "Response timeout", None)
        assert 8.9 <= took <= 10.5
        # Nobody by that name: the server drops the request silently; no ack within 2 s.
        fields, took = await error(destination_identity="nobody", method="echo", payload="")
        assert fields == (1501, "Connection timeout", None)
        assert 1.9 <= took <= 3.5


async def test_rpc_caller_without_data_permission_is_refused(env: Env) -> None:
    callee = Room()
    callee.local_participant.register_rpc_method("echo", lambda data: data.payload)
    await env.join("callee", callee)
    caller = await env.join("caller", can_publish_data=False)
    async with rooms(callee, caller):
        with pytest.raises(RpcError) as info:
            await caller.local_participant.perform_rpc(
                destination_identity="callee", method="echo", payload="x"
            )
        assert int(info.value.code) == 1505


# -- streams -------------------------------------------------------------------------------------


async def test_text_and_byte_streams(env: Env) -> None:
    receiver = Room()
    texts: list[tuple[str, str, str, dict[str, str]]] = []
    files: list[tuple[str, str, bytes, str]] = []
    done = anyio.Event()

    async def on_text(reader: TextStreamReader, sender: str) -> None:
        text = await reader.read_all()
        texts.append((sender, reader.info.topic, text, dict(reader.info.attributes or {})))
        if len(texts) == 2 and files:
            done.set()

    async def on_bytes(reader: ByteStreamReader, sender: str) -> None:
        data = await reader.read_all()
        files.append((sender, reader.info.name, data, reader.info.mime_type))
        if len(texts) == 2:
            done.set()

    receiver.register_text_stream_handler("chat", on_text)
    receiver.register_byte_stream_handler("files", on_bytes)
    await env.join("receiver", receiver)
    sender = await env.join("sender")
    async with rooms(receiver, sender):
        lp = sender.local_participant
        await lp.send_text("héllo ✓", topic="chat", attributes={"k": "v"})
        big = "".join(chr(0x41 + i % 26) + "é" for i in range(20_000))  # 60 000 UTF-8 bytes
        writer = await lp.stream_text(topic="chat")
        for part in (big[:7_000], big[7_000:]):
            await writer.write(part)
        await writer.aclose()
        payload = bytes(range(256)) * 200  # 51 200 bytes: four chunks
        bytes_writer = await lp.stream_bytes("blob.bin", topic="files", total_size=len(payload))
        await bytes_writer.write(payload[:30_000])
        await bytes_writer.write(payload[30_000:])
        await bytes_writer.aclose()
        with anyio.fail_after(15):
            await done.wait()
        assert sorted(texts) == sorted(
            [("sender", "chat", "héllo ✓", {"k": "v"}), ("sender", "chat", big, {})]
        )
        assert files == [("sender", "blob.bin", payload, "application/octet-stream")]


# -- attributes ----------------------------------------------------------------------------------


async def test_attributes(env: Env) -> None:
    alice = await env.join("alice", can_update_own_metadata=True, attributes={"a": "1", "b": "2"})
    bob = await env.join("bob")
    seen = Recorder(
        bob,
        "participant_attributes_changed",
        "participant_metadata_changed",
        "participant_name_changed",
    )
    mine = Recorder(alice, "participant_attributes_changed")
    async with rooms(alice, bob):
        assert bob.remote_participants["alice"].attributes == {"a": "1", "b": "2"}
        await alice.local_participant.set_attributes({"b": "", "c": "3"})
        changed, participant = (
            await seen.wait_for(lambda: seen.of("participant_attributes_changed"))
        )[0]
        assert (changed, participant.identity) == ({"b": "", "c": "3"}, "alice")
        assert bob.remote_participants["alice"].attributes == {"a": "1", "c": "3"}
        # The change comes back to Alice too, and her own view follows it.
        await mine.wait_for(lambda: mine.of("participant_attributes_changed"))
        assert alice.local_participant.attributes == {"a": "1", "c": "3"}
        # Bob may not change his own.
        with pytest.raises(MetadataUpdateError) as info:
            await bob.local_participant.set_attributes({"x": "y"})
        assert info.value.reason == 2  # NOT_ALLOWED
        assert "does not have permission to update own metadata" in str(info.value)
        # Metadata and name: each change is broadcast at once.
        start = anyio.current_time()
        await alice.local_participant.set_metadata("meta")
        await alice.local_participant.set_name("Alice")
        await seen.wait_for(lambda: seen.of("participant_name_changed"))
        assert anyio.current_time() - start < 1.0
        [(who, old, new)] = seen.of("participant_metadata_changed")
        assert (who.identity, old, new) == ("alice", "", "meta")
        [(who, old, new)] = seen.of("participant_name_changed")
        assert (who.identity, old, new) == ("alice", "", "Alice")
        assert (bob.remote_participants["alice"].name, alice.local_participant.metadata) == (
            "Alice",
            "meta",
        )


# -- the server API: removing a participant, updating one, sending data, room metadata ---------


async def test_server_api_actions(env: Env) -> None:
    alice = await env.join("alice")
    bob = await env.join("bob")
    seen = Recorder(
        alice,
        "participant_connected",
        "participant_disconnected",
        "participant_attributes_changed",
        "participant_metadata_changed",
        "data_received",
        "room_metadata_changed",
    )
    bob_seen = Recorder(bob, "data_received", "room_metadata_changed", "disconnected")
    async with rooms(alice, bob):
        await seen.wait_for(lambda: seen.of("participant_connected"))
        # An admin update is broadcast at once, not on the tick.
        start = anyio.current_time()
        await env.admin.update("bob", metadata="m1", attributes={"role": "speaker"})
        await seen.wait_for(lambda: seen.of("participant_attributes_changed"))
        await seen.wait_for(lambda: seen.of("participant_metadata_changed"))
        assert anyio.current_time() - start < 1.0
        [(changed, who)] = seen.of("participant_attributes_changed")
        [(who2, old, new)] = seen.of("participant_metadata_changed")
        assert (changed, who.identity, who2.identity, old, new) == (
            {"role": "speaker"},
            "bob",
            "bob",
            "",
            "m1",
        )
        # Data from the server has no sender; destinations filter it.
        await env.admin.send_data(b"for alice", topic="sys", destinations=["alice"])
        await env.admin.send_data(b"for bob", topic="sys", destinations=["bob"])
        [(packet,)] = await seen.wait_for(lambda: seen.of("data_received"))
        assert (packet.data, packet.participant, packet.topic) == (b"for alice", None, "sys")
        [(packet,)] = await bob_seen.wait_for(lambda: bob_seen.of("data_received"))
        assert (packet.data, packet.participant, packet.topic) == (b"for bob", None, "sys")
        # Room metadata reaches everyone.
        await env.admin.room_metadata("hello")
        for recorder in (seen, bob_seen):
            await recorder.wait_for(lambda r=recorder: r.of("room_metadata_changed"))  # type: ignore[misc]
            assert recorder.of("room_metadata_changed") == [("", "hello")]
        assert alice.metadata == "hello"
        # Removing Bob: he is told why; Alice hears of it on the tick.
        start = anyio.current_time()
        await env.admin.remove("bob")
        [(reason,)] = await bob_seen.wait_for(lambda: bob_seen.of("disconnected"))
        assert reason == DisconnectReason.PARTICIPANT_REMOVED
        [(gone,)] = await seen.wait_for(lambda: seen.of("participant_disconnected"))
        assert (gone.identity, gone.disconnect_reason) == (
            "bob",
            DisconnectReason.PARTICIPANT_REMOVED,
        )
        assert anyio.current_time() - start <= ANNOUNCE


# -- resume and full reconnect: the scenarios a client asks for ---------------------------------


async def test_a_signal_reconnect_resumes_the_same_session(env: Env) -> None:
    alice = await env.join("alice")
    bob = await env.join("bob")
    seen = Recorder(alice, "reconnecting", "reconnected", "disconnected")
    got = Recorder(bob, "data_received", "participant_disconnected")
    async with rooms(alice, bob):
        sid = alice.local_participant.sid
        await alice.simulate_scenario(SimulateScenario.SIGNAL_RECONNECT)
        await seen.wait_for(lambda: seen.of("reconnected"))
        assert seen.records == [("reconnecting", ()), ("reconnected", ())]
        assert alice.local_participant.sid == sid
        await alice.local_participant.publish_data(b"after the resume")
        [(packet,)] = await got.wait_for(lambda: got.of("data_received"))
        assert packet.data == b"after the resume"
        await anyio.sleep(ANNOUNCE)
        assert got.of("participant_disconnected") == []  # the server kept the participant


@pytest.mark.parametrize("scenario", [SimulateScenario.NODE_FAILURE, SimulateScenario.MIGRATION])
async def test_a_closed_participant_rejoins_with_a_new_session(
    env: Env, scenario: SimulateScenario
) -> None:
    alice = await env.join("alice")
    bob = Room()

    @bob.local_participant.register_rpc_method("slow")
    async def slow(data: RpcInvocationData) -> str:
        await anyio.sleep(60)
        return "too late"

    await env.join("bob", bob)
    seen = Recorder(alice, "reconnecting", "reconnected", "disconnected")
    bob_seen = Recorder(bob, "participant_connected", "participant_disconnected")
    async with rooms(alice, bob):
        sid = alice.local_participant.sid
        failures: list[int] = []

        async def calling() -> None:
            try:
                await alice.local_participant.perform_rpc(
                    destination_identity="bob", method="slow", payload=""
                )
            except RpcError as exc:
                failures.append(int(exc.code))

        async with anyio.create_task_group() as tg:
            tg.start_soon(calling)
            await anyio.sleep(0.5)
            # The server closes the participant without a leave; the resume that follows
            # finds nothing (STATE_MISMATCH) and Alice rejoins.
            await alice.simulate_scenario(scenario)
            await seen.wait_for(lambda: seen.of("reconnected"))
        assert seen.records == [("reconnecting", ()), ("reconnected", ())]
        assert failures == [1503]  # the call did not survive the new session
        assert alice.local_participant.sid not in ("", sid)
        # On the 3 s tick, the new session's JOINED supersedes the old one's DISCONNECTED
        # (the batch keeps the newest per identity): Bob infers the old session is gone.
        [(gone,)] = await bob_seen.wait_for(lambda: bob_seen.of("participant_disconnected"))
        assert (gone.identity, gone.sid, gone.disconnect_reason) == (
            "alice",
            sid,
            DisconnectReason.DUPLICATE_IDENTITY,
        )
        [(back,)] = await bob_seen.wait_for(lambda: bob_seen.of("participant_connected"))
        assert (back.identity, back.sid) == ("alice", alice.local_participant.sid)


async def test_a_server_leave_ends_the_session(env: Env) -> None:
    alice = await env.join("alice")
    bob = await env.join("bob")
    seen = Recorder(alice, "reconnecting", "disconnected")
    bob_seen = Recorder(bob, "participant_disconnected")
    async with rooms(alice, bob):
        await alice.simulate_scenario(SimulateScenario.SERVER_LEAVE)
        [(reason,)] = await seen.wait_for(lambda: seen.of("disconnected"))
        assert (reason, seen.of("reconnecting")) == (DisconnectReason.SERVER_SHUTDOWN, [])
        [(gone,)] = await bob_seen.wait_for(lambda: bob_seen.of("participant_disconnected"))
        assert (gone.identity, gone.disconnect_reason) == (
            "alice",
            DisconnectReason.SERVER_SHUTDOWN,
        )


async def test_a_speaker_update(env: Env) -> None:
    alice = await env.join("alice")
    bob = await env.join("bob")
    seen = Recorder(alice, "active_speakers_changed")
    bob_seen = Recorder(bob, "active_speakers_changed")
    async with rooms(alice, bob):
        start = anyio.current_time()
        await alice.simulate_scenario(SimulateScenario.SPEAKER)
        [(speakers,)] = await seen.wait_for(lambda: seen.of("active_speakers_changed"))
        assert [p.identity for p in speakers] == ["alice"]
        await seen.wait_for(lambda: len(seen.of("active_speakers_changed")) == 2)
        assert seen.of("active_speakers_changed")[1] == ([],)
        assert 4.5 <= anyio.current_time() - start <= 6.5  # the SDK asks for 5 s
        assert bob_seen.of("active_speakers_changed") == []  # Bob subscribes to nothing


async def test_a_resume_after_disconnect_signal_on_resume(env: Env) -> None:
    alice = await env.join("alice")
    seen = Recorder(alice, "reconnecting", "reconnected", "disconnected")
    async with rooms(alice):
        sid = alice.local_participant.sid
        # The core pings right behind the request and drops its signal on the pong, so the
        # resume that follows finds the fault armed (the server reads one socket in order).
        await alice.simulate_scenario(SimulateScenario.DISCONNECT_SIGNAL_ON_RESUME)
        # The resume is answered, then its socket is closed: a second resume.
        await seen.wait_for(lambda: len(seen.of("reconnected")) == 2)
        assert seen.records == [("reconnecting", ()), ("reconnected", ())] * 2
        assert alice.local_participant.sid == sid


# -- a crash and a cut: the server's own faults -------------------------------------------------


@attrs.define
class Faulty:
    """An `Env` whose server can crash (SIGKILL, then a restart on the same address) and whose
    network can be cut: a `FaultServer` (tests/harness/faults.py) or a MemoryServer."""

    env: Env
    crash: Callable[[float], Awaitable[None]]  # kill, wait that long, start again
    cut: Callable[[float, list[str]], Awaitable[None]]  # cut (these clients) that long


@pytest.fixture
async def faulty(
    backend: str, request: pytest.FixtureRequest, room_name: str
) -> AsyncIterator[Faulty]:
    if backend == "server":
        server = request.getfixturevalue("fault_server")
        make_token = request.getfixturevalue("make_token")
        options = RoomOptions(
            auto_subscribe=False, rtc_config=RtcConfiguration(host_addresses=[server.client_host])
        )

        async def crash(downtime: float) -> None:
            await server.akill()
            await anyio.sleep(downtime)
            await server.arestart()

        async def cut(seconds: float, _: list[str]) -> None:
            require_cut(server)
            await anyio.to_thread.run_sync(server.cut)
            try:
                await anyio.sleep(seconds)
            finally:
                await anyio.to_thread.run_sync(server.restore)

        async with lkapi.LiveKitAPI(server.http_url, API_KEY, API_SECRET) as api:
            env = Env(server.url, make_token, options, ServerAdmin(api, room_name))
            yield Faulty(env, crash, cut)
        return
    async with MemoryServer(name=room_name) as memory:

        async def crash_memory(downtime: float) -> None:
            with memory.control() as room:
                room.restart(graceful=False, downtime=downtime + 0.5)  # (+ the real start-up)

        async def cut_memory(seconds: float, who: list[str]) -> None:
            with memory.control() as room:
                for identity in who:
                    room.disconnect(identity, duration=seconds)
            await anyio.sleep(seconds)

        env = Env(memory.url, memory.token, RoomOptions(auto_subscribe=False), MemoryAdmin(memory))
        yield Faulty(env, crash_memory, cut_memory)


@pytest.mark.xdist_group("faults")  # the server backend kills or cuts a FaultServer
async def test_after_a_crash_everyone_rejoins(faulty: Faulty) -> None:
    env = faulty.env
    alice = await env.join("alice")
    bob = Room()

    @bob.local_participant.register_rpc_method("slow")
    async def slow(data: RpcInvocationData) -> str:
        await anyio.sleep(60)
        return "too late"

    await env.join("bob", bob)
    seen = Recorder(alice, "reconnecting", "reconnected", "disconnected")
    got = Recorder(bob, "data_received", "reconnected", "participant_connected")
    async with rooms(alice, bob):
        old = (alice.local_participant.sid, bob.local_participant.sid)
        failures: list[int] = []

        async def calling() -> None:
            try:
                await alice.local_participant.perform_rpc(
                    destination_identity="bob", method="slow", payload=""
                )
            except RpcError as exc:
                failures.append(int(exc.code))

        async with anyio.create_task_group() as tg:
            tg.start_soon(calling)
            await anyio.sleep(0.5)
            start = anyio.current_time()
            await faulty.crash(1.0)
            await seen.wait_for(lambda: seen.of("reconnected"), 30)
            await got.wait_for(lambda: got.of("reconnected"), 30)
            took = anyio.current_time() - start
        assert seen.records == [("reconnecting", ()), ("reconnected", ())]
        assert failures == [1503]
        assert 1.0 < took < 15.0
        assert alice.local_participant.sid not in old and bob.local_participant.sid not in old
        await got.wait_for(lambda: "alice" in bob.remote_participants)
        await alice.local_participant.publish_data(b"after the crash")
        [(packet,)] = await got.wait_for(lambda: got.of("data_received"))
        assert packet.data == b"after the crash"


@pytest.mark.xdist_group("faults")  # the server backend kills or cuts a FaultServer
async def test_a_short_cut_loses_no_reliable_data(faulty: Faulty) -> None:
    env = faulty.env
    alice = await env.join("alice")
    bob = await env.join("bob")
    seen = Recorder(alice, "reconnecting", "disconnected")
    got = Recorder(bob, "data_received", "reconnecting", "participant_disconnected")
    async with rooms(alice, bob):
        sent = [b"%d" % i for i in range(5)]

        async def send_during() -> None:
            await anyio.sleep(0.5)
            for payload in sent:
                await alice.local_participant.publish_data(payload)
                await anyio.sleep(0.2)

        async with anyio.create_task_group() as tg:
            tg.start_soon(send_during)
            await faulty.cut(3.0, ["alice", "bob"])  # what is sent meanwhile waits
        await got.wait_for(lambda: len(got.of("data_received")) == len(sent), 20)
        assert [p.data for (p,) in got.of("data_received")] == sent
        await anyio.sleep(ANNOUNCE)
        # Nobody noticed: no ping timeout (15 s), no ICE failure, nobody left.
        assert (seen.records, got.of("reconnecting"), got.of("participant_disconnected")) == (
            [],
            [],
            [],
        )


@pytest.mark.xdist_group("faults")  # the server backend kills or cuts a FaultServer
async def test_a_long_cut_ends_in_a_rejoin(faulty: Faulty) -> None:
    env = faulty.env
    alice = await env.join("alice")
    bob = await env.join("bob")
    seen = Recorder(alice, "reconnecting", "reconnected", "disconnected")
    async with rooms(alice, bob):
        sid = alice.local_participant.sid
        # Longer than the server keeps a participant whose peer connection failed (ICE gives
        # up after ~15 s, the cleanup 5 s later): the resume after it finds nothing.
        await faulty.cut(25.0, ["alice", "bob"])
        await seen.wait_for(lambda: seen.of("reconnected"), 40)
        assert seen.records == [("reconnecting", ()), ("reconnected", ())]
        assert alice.local_participant.sid != sid
