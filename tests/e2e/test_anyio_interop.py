"""`lkproto.transports.anyio.Room` against the official SDK, through a real livekit-server.

Attributes, metadata, names and data packets both ways are in test_peer_matrix.py (written
against `harness.peers.Peer`, for every peer); these are what only the official SDK checks.
Every test runs on every adapter. The official participants live on an asyncio loop in
a helper thread (harness/official.py), so the same test drives them from trio too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

import anyio
import pytest

# Every test runs once per adapter (anyio on asyncio and on trio, trio-native, threaded): the
# fixtures swap this module's `Room` for the adapter under test. See harness/adapters.py.
from harness.adapters import adapter, adapter_room, anyio_backend  # noqa: F401
from harness.announce import announce
from harness.official import OfficialLoop, OfficialPeer
from harness.recorder import Recorder
from harness.server import LiveKitServer
from lkproto.models import DisconnectReason
from lkproto.transports.anyio import (
    ConnectionState,
    Room,
    RoomOptions,
    RtcConfiguration,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(90)]

T = TypeVar("T")
PAYLOAD = 15 * 1024


@pytest.fixture
def officials(official_loop: OfficialLoop) -> Iterator[list[OfficialPeer]]:
    peers: list[OfficialPeer] = []
    yield peers
    # Disconnected by each test's own cleanup; nothing async can run in a sync fixture.


async def official(loop: OfficialLoop, url: str, token: str) -> OfficialPeer:
    peer = OfficialPeer(loop)
    await peer.connect(url, token)
    return peer


async def knows(server: LiveKitServer, room: str, identity: str, *peers: OfficialPeer) -> None:
    """Wait until each official peer has seen `identity` join.

    The server announces a participant that publishes nothing to the others on its next 3 s
    batch tick, after our `connect()` returns (the official SDK behaves the same); until then
    they would show its data with no sender, and its attributes as initial state. It is
    announced at once here (harness/announce.py): these tests are not about that wait.
    """
    await announce(server, room, identity)
    for peer in peers:
        await peer.wait_for(lambda r: ("joined", (identity,)) in r)


async def test_each_side_sees_the_other_join_and_leave(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    first = await official(official_loop, livekit_server.url, make_token("first"))
    room = Room()
    seen = Recorder(
        room,
        "participant_connected",
        "participant_disconnected",
        "connection_state_changed",
        "connected",
        "disconnected",
    )
    try:
        await room.connect(livekit_server.url, make_token("lk", name="Lk"), options)
        assert room.isconnected()
        assert room.connection_state == ConnectionState.CONN_CONNECTED
        assert seen.records[:2] == [
            ("connection_state_changed", (ConnectionState.CONN_CONNECTED,)),
            ("connected", ()),
        ]
        assert list(room.remote_participants) == ["first"]
        assert room.local_participant.identity == "lk"
        assert room.local_participant.name == "Lk"
        assert room.name and room.sid.startswith("RM_")
        await first.wait_for(lambda r: ("joined", ("lk",)) in r)

        second = await official(official_loop, livekit_server.url, make_token("second"))
        joined = await seen.wait_for(lambda: seen.of("participant_connected"))
        assert joined[0][0].identity == "second"
        assert joined[0][0] is room.remote_participants["second"]
        await second.disconnect()
        left = await seen.wait_for(lambda: seen.of("participant_disconnected"))
        assert left[0][0].identity == "second"
        assert left[0][0].disconnect_reason is DisconnectReason.CLIENT_INITIATED
        assert "second" not in room.remote_participants

        await room.disconnect()
        assert not room.isconnected()
        assert seen.records[-2:] == [
            ("connection_state_changed", (ConnectionState.CONN_DISCONNECTED,)),
            ("disconnected", (DisconnectReason.CLIENT_INITIATED,)),
        ]
        await first.wait_for(lambda r: ("left", ("lk",)) in r)
    finally:
        await room.disconnect()
        await first.disconnect()


def _numbered(i: int) -> bytes:
    head = i.to_bytes(4, "big")
    return head + bytes((i + k) % 251 for k in range(PAYLOAD - 4))


@pytest.mark.heavy("bulk")  # bulk transfer: the bulk lane (harness/phases.py)
async def test_200_reliable_15kib_packets_arrive_in_order_both_ways(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    peer = await official(official_loop, livekit_server.url, make_token("official"))
    room = Room()
    seen = Recorder(room, "data_received")
    count = 200
    try:
        await room.connect(livekit_server.url, make_token("lk"), options)
        await knows(livekit_server, room.name, "lk", peer)
        for i in range(count):
            await room.local_participant.publish_data(_numbered(i), topic="bulk")
        await peer.wait_for(lambda r: len([1 for n, _ in r if n == "data"]) >= count, 30)
        received = [data for _, data, _, _ in peer.of("data")]
        assert len(received) == count
        assert received == [_numbered(i) for i in range(count)]

        async def blast(official_room: Any) -> None:
            for i in range(count):
                await official_room.local_participant.publish_data(_numbered(i), topic="bulk")

        await peer.do(blast, 60)
        await seen.wait_for(lambda: len(seen.of("data_received")) >= count, 30)
        got = [p.data for (p,) in seen.of("data_received")]
        assert len(got) == count
        assert got == [_numbered(i) for i in range(count)]
    finally:
        await room.disconnect()
        await peer.disconnect()


async def test_dual_peer_connection_path_carries_data_both_ways(
    livekit_server: Any, make_token: Any, confinement: Any, official_loop: OfficialLoop
) -> None:
    peer = await official(official_loop, livekit_server.url, make_token("official"))
    room = Room()
    seen = Recorder(room, "data_received")
    dual = RoomOptions(
        single_peer_connection=False,
        rtc_config=RtcConfiguration(host_addresses=[confinement.host]),
    )
    try:
        await room.connect(livekit_server.url, make_token("lk"), dual)
        assert room.connection is not None
        assert room.connection.single_peer_connection is False
        await knows(livekit_server, room.name, "lk", peer)
        await room.local_participant.publish_data(b"via /rtc", topic="v0")
        await peer.wait_for(lambda r: ("data", ("lk", b"via /rtc", "v0", 1)) in r)
        await peer.do(lambda r: r.local_participant.publish_data(b"back via subscriber"))
        (packet,) = (await seen.wait_for(lambda: seen.of("data_received")))[0]
        assert (packet.participant.identity, packet.data) == ("official", b"back via subscriber")
    finally:
        await room.disconnect()
        await peer.disconnect()


async def _refuse_v1_relay(
    listener: anyio.abc.SocketListener, upstream: tuple[str, int], paths: list[str]
) -> None:
    async def handle(client: anyio.abc.SocketStream) -> None:
        async with client:
            head = b""
            while b"\r\n\r\n" not in head:
                head += await client.receive()
            path = head.split(b" ", 2)[1].decode()
            paths.append(path.split("?", 1)[0])
            if path.startswith("/rtc/v1"):
                await client.send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot here\n")
                return
            async with await anyio.connect_tcp(*upstream) as server:
                await server.send(head)

                async def pipe(src: Any, dst: Any) -> None:
                    try:
                        async for chunk in src:
                            await dst.send(chunk)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        pass
                    finally:
                        tg.cancel_scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(pipe, client, server)
                    tg.start_soon(pipe, server, client)

    await listener.serve(handle)


async def test_a_404_on_rtc_v1_falls_back_to_the_dual_pc_path(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    peer = await official(official_loop, livekit_server.url, make_token("official"))
    room = Room()
    paths: list[str] = []
    listener = await anyio.create_tcp_listener(local_host=livekit_server.host)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                _refuse_v1_relay, listener, (livekit_server.host, livekit_server.port), paths
            )
            await room.connect(f"ws://{livekit_server.host}:{port}", make_token("lk"), options)
            assert paths == ["/rtc/v1", "/rtc"]
            assert room.connection is not None and not room.connection.single_peer_connection
            await knows(livekit_server, room.name, "lk", peer)
            await room.local_participant.publish_data(b"after fallback")
            await peer.wait_for(lambda r: ("data", ("lk", b"after fallback", "", 1)) in r)
            await room.disconnect()
            tg.cancel_scope.cancel()
    finally:
        await room.disconnect()
        await listener.aclose()
        await peer.disconnect()


async def test_events_iterator_yields_typed_core_events(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    from lkproto import events as ev

    room = Room()
    await room.connect(livekit_server.url, make_token("lk"), options)
    seen: list[Any] = []
    try:
        async with anyio.create_task_group() as tg:

            async def collect() -> None:
                async for event in room.events():
                    seen.append(event)
                    if isinstance(event, ev.ParticipantConnected):
                        tg.cancel_scope.cancel()

            tg.start_soon(collect)
            peer = await official(official_loop, livekit_server.url, make_token("official"))
            # Announced at once, not on the server's next 3 s tick (harness/announce.py).
            await announce(livekit_server, room.name, "official")
        assert isinstance(seen[-1], ev.ParticipantConnected)
        assert seen[-1].participant.identity == "official"
        await peer.disconnect()
    finally:
        await room.disconnect()
