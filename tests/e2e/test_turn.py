"""Behind a firewall: a Room reaches the SFU through LiveKit's embedded TURN server only.

One `TurnServer` (harness/turn.py) serves the module: livekit-server with TURN over UDP
(3478) and TLS (443, a certificate the harness generates and the Room trusts through
`RtcConfiguration.ssl_context`), plus the harness's plain-TCP bridge for TURN over TCP. Our
Room's host candidates live on a second address of the namespace (`CLIENT`), and nftables
drops every packet from it to the SFU's ICE ports: the direct path is blocked, and only a
TURN relay (which sends from the server's address) reaches the SFU. The official participant
keeps its direct path (its host candidates are on the confined address).

Each transport test also drops the other TURN transports, so the one under test is the only
way through: TURN/UDP with the join response's servers; TURN/TCP with servers the user gives
(the URL LiveKit does not advertise, credentials from a join); TURN/TLS with the join
response's servers, reached after the dropped UDP one (every TURN URL is tried in order,
transports/_turn.py). Each runs the interop checks (data both ways, RPC both ways, a text
stream) against the official SDK, on every adapter, and checks that the selected candidate
pair is a relay one and that the firewall really dropped the direct attempts.

Relay only (`IceTransportType.TRANSPORT_RELAY`) with the direct path open: no host candidate
is gathered, signalled or selected. Through TURN, a resume loses no reliable packet, and a
full reconnect started while the TURN path is cut fails its attempts until TURN returns, then
rejoins through the relay. The confinement check: every candidate a relay-only Room
signals, every candidate the server offers and every ICE server URL it hands out (TURN
included) is a confined address.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aioice.turn
import anyio
import pytest
from livekit import rtc

from harness import Confinement
from harness.adapters import adapter, adapter_room, anyio_backend  # noqa: F401
from harness.announce import announce
from harness.official import OfficialLoop, OfficialPeer
from harness.recorder import Recorder
from harness.sigproxy import SignalRecorder, candidate_addresses
from harness.tokens import mint_token
from harness.turn import (
    TURN_TCP_PORT,
    Firewall,
    TcpBridge,
    TurnServer,
    nft_available,
    second_address,
)
from lkproto._pb import signal_pb2
from lkproto.transports import anyio as lk_anyio
from lkproto.transports.anyio import (
    ConnectError,
    DataPacket,
    IceServer,
    IceTransportType,
    Room,
    RoomOptions,
    RpcInvocationData,
    RtcConfiguration,
    SimulateScenario,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.anyio,
    pytest.mark.timeout(90),
    pytest.mark.xdist_group("turn"),  # one server with fixed TURN ports, one firewall
]

LK, OFFICIAL = "lk", "official"
CLIENT = "10.213.77.2"  # our Room's host address: the one the firewall cuts off
TEXT = "through the relay " * 4000  # 72 KB: a stream of several chunks


@pytest.fixture(scope="module")
def turn_server(
    confinement: Confinement, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TurnServer]:
    if confinement.mode != "netns":
        pytest.skip("TURN tests bind ports 443 and 3478: only inside the harness's namespace")
    if not nft_available():
        pytest.fail("nft is missing: run `make setup` (scripts/install-system-deps.sh)")
    server = TurnServer(confinement, log_dir=tmp_path_factory.mktemp("turn-server"))
    server.start()
    bridge = TcpBridge(server.host, server.certificate)
    try:
        with second_address(confinement, CLIENT):
            yield server
    finally:
        bridge.close()
        server.close()


@pytest.fixture
def firewall(turn_server: TurnServer) -> Iterator[Firewall]:
    wall = Firewall(turn_server)
    try:
        yield wall
    finally:
        wall.clear()


@pytest.fixture
def room_token(room_name: str) -> Any:
    return lambda identity: mint_token(identity, room_name)


def _run_asyncio(coro: Any) -> Any:
    """Run an asyncio coroutine to completion on a thread of its own (whatever the test's
    backend), for what only speaks asyncio (the signal recorder)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(60)


class JoinRecord:
    """What crossed the signal connection of one relay-only Room (decoded)."""

    def __init__(self, rec: SignalRecorder) -> None:
        requests = [signal_pb2.SignalRequest.FromString(m) for m in rec.recording.to_server]
        responses = [signal_pb2.SignalResponse.FromString(m) for m in rec.recording.to_client]
        self.gathered = [c for m in requests for c in _candidates(m)]
        self.offered = [c for m in responses for c in _candidates(m)]
        joins = [m.join for m in responses if m.WhichOneof("message") == "join"]
        assert len(joins) == 1
        self.ice_servers = list(joins[0].ice_servers)


def _candidates(msg: Any) -> list[tuple[str, str]]:
    kind = msg.WhichOneof("message")
    if kind == "trickle":
        return candidate_addresses(json.loads(msg.trickle.candidateInit).get("candidate", ""))
    if kind in ("offer", "answer"):
        return candidate_addresses(getattr(msg, kind).sdp)
    return []


@pytest.fixture(scope="module")
def relay_join(turn_server: TurnServer) -> JoinRecord:
    """A relay-only Room joins through the signal recorder (direct path open) and leaves."""

    async def join() -> JoinRecord:
        host = turn_server.host
        async with SignalRecorder(host, host, turn_server.port) as rec:
            room = lk_anyio.Room()  # not the module's `Room`, which the adapter fixture swaps
            options = RoomOptions(
                rtc_config=RtcConfiguration(
                    ice_transport_type=IceTransportType.TRANSPORT_RELAY,
                    host_addresses=[host],
                    ssl_context=turn_server.certificate.ssl_context(),
                )
            )
            await room.connect(rec.url, mint_token("recorded", "turn-recorded"), options)
            assert _selected(room) and all(local == "relay" for local, _ in _selected(room))
            await room.disconnect()
        return JoinRecord(rec)

    record: JoinRecord = _run_asyncio(join())
    return record


# -- what the Room's peer connections selected ---------------------------------------------------


def _peer(room: Any) -> Any:
    """The AiortcPeer behind any adapter's Room (the threaded one sits behind a facade)."""
    session = room.threaded._io.inner.session if hasattr(room, "threaded") else room._session
    peer = session.peer
    return getattr(peer, "_peer", peer)  # trio: behind the asyncio thread bridge


def _selected(room: Any) -> list[tuple[str, str]]:
    """(local type, remote type) of every nominated candidate pair of every PC."""
    pairs = []
    for pc in _peer(room)._pcs.values():
        sctp = pc.sctp
        if sctp is None:
            continue
        connection = sctp.transport.transport._connection
        for pair in connection._nominated.values():
            pairs.append((pair.local_candidate.type, pair.remote_candidate.type))
    return pairs


def _relays(room: Any) -> set[str]:
    """How each nominated relay pair reaches its TURN server: "udp", "tcp" or "tls" (read from
    the aioice TURN client under the pair; its private name)."""
    kinds = set()
    for pc in _peer(room)._pcs.values():
        if pc.sctp is None:
            continue
        for pair in pc.sctp.transport.transport._connection._nominated.values():
            inner = pair.protocol.transport._TurnTransport__inner_protocol
            if isinstance(inner, aioice.turn.TurnClientUdpProtocol):
                kinds.add("udp")
            else:
                kinds.add("tls" if inner.transport.get_extra_info("ssl_object") else "tcp")
    return kinds


def _local_sdp(room: Any) -> str:
    return "".join(
        pc.localDescription.sdp for pc in _peer(room)._pcs.values() if pc.localDescription
    )


# -- the interop checks ---------------------------------------------------------------------------


async def _official(official_loop: OfficialLoop, url: str, token: str) -> OfficialPeer:
    peer = OfficialPeer(official_loop)
    await peer.connect(url, token)

    def on_text(reader: Any, identity: str) -> None:
        async def read() -> None:
            peer._record("text", identity, reader.info.topic, await reader.read_all())

        peer.spawn(read())

    async def register(official_room: rtc.Room) -> None:
        official_room.register_text_stream_handler("turn", on_text)
        official_room.local_participant.register_rpc_method(
            "turn.upper", lambda data: data.payload.upper()
        )

    await peer.do(register)
    return peer


@pytest.fixture
def session(
    turn_server: TurnServer,
    firewall: Firewall,
    room_token: Any,
    official_loop: OfficialLoop,
    caplog: pytest.LogCaptureFixture,
) -> Callable[[RoomOptions], contextlib.AbstractAsyncContextManager[Any]]:
    """`async with session(options) as (room, seen, peer)`: the official participant joins,
    then our Room (with an RPC method registered); both leave on exit. A failure's report
    shows which TURN URLs answered and aioice's candidate-pair states."""
    caplog.set_level(logging.DEBUG, logger="lkproto.transports")
    caplog.set_level(logging.INFO, logger="aioice.ice")

    @contextlib.asynccontextmanager
    async def open_session(options: RoomOptions) -> AsyncIterator[Any]:
        peer = await _official(official_loop, turn_server.url, room_token(OFFICIAL))
        room = Room()
        try:
            seen = Recorder(room, "data_received", timeout=20)

            async def echo(data: RpcInvocationData) -> str:
                return f"lk:{data.payload}"

            room.local_participant.register_rpc_method("turn.echo", echo)
            try:
                await room.connect(turn_server.url, room_token(LK), options)
            except ConnectError as exc:  # seen twice under heavy load: say what was dropped
                dropped = {kind: firewall.dropped(kind) for kind in ("direct", "udp", "tcp", "tls")}
                raise AssertionError(f"{exc}; the firewall dropped {dropped}") from exc
            # Announced at once, not on the server's next 3 s tick (harness/announce.py).
            await announce(turn_server, room.name, LK)
            await peer.wait_for(lambda r: ("joined", (LK,)) in r)
            yield room, seen, peer
        finally:
            await room.disconnect()
            await peer.disconnect()

    return open_session


async def _interop(room: Any, seen: Recorder, peer: OfficialPeer) -> None:
    """Data both ways, RPC both ways and a multi-chunk text stream, with the official SDK."""
    with anyio.fail_after(40):
        await room.local_participant.publish_data(b"lk via turn", reliable=True, topic="t")
        got = await peer.wait_for(lambda r: [a for n, a in r if n == "data"])
        assert got == [(LK, b"lk via turn", "t", int(rtc.DataPacketKind.KIND_RELIABLE))]

        await peer.do(lambda r: r.local_participant.publish_data(b"official via turn", topic="t"))
        packets = await seen.wait_for(lambda: seen.of("data_received"))
        packet: DataPacket = packets[0][0]
        assert (packet.data, packet.topic) == (b"official via turn", "t")
        assert packet.participant is not None and packet.participant.identity == OFFICIAL

        reply = await room.local_participant.perform_rpc(
            destination_identity=OFFICIAL, method="turn.upper", payload="relayed"
        )
        assert reply == "RELAYED"
        reply = await peer.do(
            lambda r: r.local_participant.perform_rpc(
                destination_identity=LK, method="turn.echo", payload="hello"
            )
        )
        assert reply == "lk:hello"

        await room.local_participant.send_text(TEXT, topic="turn")
        texts = await peer.wait_for(lambda r: [a for n, a in r if n == "text"])
        assert texts == [(LK, "turn", TEXT)]


def _blocked_options(turn_server: TurnServer, **rtc: Any) -> RoomOptions:
    return RoomOptions(
        auto_subscribe=False,
        rtc_config=RtcConfiguration(
            host_addresses=[CLIENT], ssl_context=turn_server.certificate.ssl_context(), **rtc
        ),
    )


def _assert_relayed(room: Any, firewall: Firewall) -> None:
    pairs = _selected(room)
    assert pairs, "no nominated candidate pair"
    assert all(local == "relay" for local, _ in pairs), pairs
    # The test can fail: our host candidates were offered and their checks were dropped.
    assert "typ host" in _local_sdp(room)
    assert firewall.dropped("direct") > 0


# -- direct path blocked: one TURN transport at a time ---------------------------------------------


async def test_turn_udp_with_the_direct_path_blocked(
    turn_server: TurnServer, firewall: Firewall, session: Any
) -> None:
    firewall.block(direct_from=CLIENT, turn_tcp=True, turn_tls=True)
    async with session(_blocked_options(turn_server)) as (room, seen, peer):
        _assert_relayed(room, firewall)
        assert _relays(room) == {"udp"}
        await _interop(room, seen, peer)


async def test_turn_tcp_with_the_direct_path_blocked(
    turn_server: TurnServer, firewall: Firewall, session: Any, relay_join: JoinRecord
) -> None:
    """Servers the user gives replace the join response's: the TURN server's credentials
    (from an earlier join) with every URL, the plain-TCP one among them."""
    (turn,) = [s for s in relay_join.ice_servers if any(u.startswith("turn") for u in s.urls)]
    host = turn_server.host
    servers = [
        IceServer(
            urls=[*turn.urls, f"turn:{host}:{TURN_TCP_PORT}?transport=tcp"],
            username=turn.username,
            password=turn.credential,
        )
    ]
    firewall.block(direct_from=CLIENT, turn_udp=True, turn_tls=True)
    async with session(_blocked_options(turn_server, ice_servers=servers)) as (room, seen, peer):
        _assert_relayed(room, firewall)
        assert _relays(room) == {"tcp"}
        await _interop(room, seen, peer)
        assert firewall.dropped("udp") > 0  # tried first, dropped
        assert firewall.dropped("tls") > 0  # tried next, dropped


async def test_turn_tls_with_the_direct_path_blocked(
    turn_server: TurnServer, firewall: Firewall, session: Any
) -> None:
    firewall.block(direct_from=CLIENT, turn_udp=True, turn_tcp=True)
    async with session(_blocked_options(turn_server)) as (room, seen, peer):
        _assert_relayed(room, firewall)
        assert _relays(room) == {"tls"}
        await _interop(room, seen, peer)
        assert firewall.dropped("udp") > 0  # the join response lists UDP first


# -- relay only, direct path open ---------------------------------------------------------------


async def test_relay_only_never_uses_a_host_candidate(
    turn_server: TurnServer, firewall: Firewall, confinement: Confinement, session: Any
) -> None:
    options = RoomOptions(
        auto_subscribe=False,
        rtc_config=RtcConfiguration(
            ice_transport_type=IceTransportType.TRANSPORT_RELAY,
            host_addresses=[confinement.host],
            ssl_context=turn_server.certificate.ssl_context(),
        ),
    )
    firewall.block()  # nothing dropped: counts nothing, proves the path is open
    async with session(options) as (room, seen, peer):
        pairs = _selected(room)
        assert pairs and all(local == "relay" for local, _ in pairs), pairs
        sdp = _local_sdp(room)
        assert "typ relay" in sdp
        assert "typ host" not in sdp and "typ srflx" not in sdp
        await _interop(room, seen, peer)


def test_relay_candidates_and_turn_urls_are_confined(
    relay_join: JoinRecord, confinement: Confinement
) -> None:
    gathered, offered = relay_join.gathered, relay_join.offered
    urls = [u for s in relay_join.ice_servers for u in s.urls]
    print(f"gathered={gathered} offered={offered} urls={urls}")
    # The test can fail: the Room signalled relay candidates, the server TURN URLs.
    assert gathered and {kind for _, kind in gathered} == {"relay"}
    assert offered
    assert any(u.startswith("turn:") for u in urls) and any(u.startswith("turns:") for u in urls)
    assert [c for c in gathered + offered if not confinement.allows(c[0])] == []
    hosts = [u.split(":")[1] for u in urls]
    assert [h for h in hosts if not confinement.allows(h)] == []


# -- resume and full reconnect through TURN -------------------------------------------------------


async def test_a_resume_through_turn_loses_nothing(
    turn_server: TurnServer, firewall: Firewall, session: Any
) -> None:
    """The official SDKs' reliability check, shortened: reliable packets sent while the signal
    connection drops and resumes (the peer connection stays, relayed) arrive once, in order."""
    firewall.block(direct_from=CLIENT, turn_tcp=True, turn_tls=True)
    async with session(_blocked_options(turn_server)) as (room, _seen, peer):
        events = Recorder(room, "reconnecting", "reconnected", timeout=20)
        payloads = [n.to_bytes(4, "big") * 1024 for n in range(64)]  # 4 KiB each
        with anyio.fail_after(40):
            for n, payload in enumerate(payloads):
                if n == 16:
                    await room.simulate_scenario(SimulateScenario.SIGNAL_RECONNECT)
                await room.local_participant.publish_data(payload, reliable=True, topic="r")
                await anyio.sleep(0.01)
            got = await peer.wait_for(
                lambda r: (d := [a[1] for n, a in r if n == "data"]) and len(d) >= 64 and d
            )
            await events.wait_for(lambda: "reconnected" in events.names())
        assert got == payloads
        assert events.names() == ["reconnecting", "reconnected"]
        _assert_relayed(room, firewall)


async def test_a_full_reconnect_waits_out_a_cut_turn_path(
    turn_server: TurnServer, firewall: Firewall, session: Any
) -> None:
    """TURN cut (UDP and TLS dropped, the direct path still blocked) while the Room rejoins:
    its attempts fail until TURN returns, then it rejoins through the relay."""
    firewall.block(direct_from=CLIENT, turn_tcp=True)
    async with session(_blocked_options(turn_server)) as (room, seen, peer):
        events = Recorder(room, "reconnecting", "reconnected", "disconnected", timeout=60)
        firewall.block(direct_from=CLIENT, turn_udp=True, turn_tcp=True, turn_tls=True)
        with anyio.fail_after(70):
            await room.simulate_scenario(SimulateScenario.FULL_RECONNECT)
            await events.wait_for(lambda: "reconnecting" in events.names())
            await anyio.sleep(3)  # an attempt or two without TURN
            assert "reconnected" not in events.names()
            cut = firewall.dropped("udp") + firewall.dropped("tls")
            firewall.block(direct_from=CLIENT, turn_tcp=True)  # TURN is back
            await events.wait_for(lambda: "reconnected" in events.names())
            assert "disconnected" not in events.names()
            assert cut > 0  # the attempts really knocked on the cut TURN server
            await peer.wait_for(lambda r: r.count(("joined", (LK,))) >= 2)  # seen rejoining
            await _data_both_ways(room, seen, peer, b"after the cut")
        _assert_relayed(room, firewall)


async def _data_both_ways(room: Any, seen: Recorder, peer: OfficialPeer, data: bytes) -> None:
    await room.local_participant.publish_data(data, reliable=True, topic="again")
    await peer.wait_for(lambda r: [a for n, a in r if n == "data" and a[1] == data])
    await peer.do(lambda r: r.local_participant.publish_data(data, topic="again"))
    await seen.wait_for(lambda: [p for (p,) in seen.of("data_received") if p.data == data])
