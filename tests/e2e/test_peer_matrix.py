"""The interop matrix: lkproto against each independent peer, in both directions, on every adapter.

One test per (peer, adapter), written once against `harness.peers.Peer`: the official Python
SDK (Rust core), the JavaScript reference client in Chromium and the Go SDK (pion). Each runs
these sections in sequence in one room (room setups are what the time goes on):
- join: lkproto is in the room first; the peer finds it there and lkproto sees the peer join;
  a second lkproto Room joins (the peer sees it come) and leaves (the peer sees it go); at the
  end the peer leaves and lkproto sees it go;
- attributes, metadata and names, set both ways, one attribute deleted both ways;
- data packets: exact bytes and topics, reliable (ordered) and lossy, targeted at the other
  side and at nobody (the server filters it), both ways;
- RPC: success, an application error's code, message and data, a plain exception (1500, no
  detail), an unknown method (1400), the response timeout each side tells the other and each
  caller's timeout, the largest payload the peer allows and the boundary past it, both ways;
- text and byte streams: a 40,000-byte text of 1- to 4-byte characters with attributes, an
  empty text and a 300 KiB file, by content and sha256, both ways.

What a peer does differently is declared in its `Boundaries` and asserted at the boundary
(never skipped); the README lists each one under the matrix. The only skip is a peer that the
harness cannot confine (JS and Go need the network namespace: run as root).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

# Every test runs once per adapter (anyio on asyncio and on trio, trio-native, threaded): the
# fixtures swap this module's `Room` for the adapter under test. See harness/adapters.py.
from harness.adapters import adapter, adapter_room, anyio_backend  # noqa: F401
from harness.gopeer import UNCONFINED as GO_UNCONFINED
from harness.jspeer import browser_fixture
from harness.peers import (
    KINDS,
    Crash,
    Echo,
    Fail,
    File,
    Packet,
    Peer,
    PeerRpcError,
    Repeat,
    Slow,
    Text,
    open_peer,
    sha256,
)
from harness.recorder import Recorder
from lkproto.transports.anyio import (
    ByteStreamReader,
    DataPacket,
    DataPacketKind,
    Room,
    RoomOptions,
    RpcError,
    RpcInvocationData,
    TextStreamReader,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(150)]

LK, LK2 = "lk", "lk2"
E = RpcError.ErrorCode
APPLICATION_ERROR = "Application error in method handler"
UNSUPPORTED_METHOD = "Method not supported at destination"
BIG = 100 * 1024  # bytes of UTF-8 for an RPC v2 peer: far over v1's 15 KiB
SLOW = 3.0  # seconds a slow handler waits; the callers' timeouts are 1.5 s

browser = browser_fixture("peer-matrix")


def utf8_of(nbytes: int) -> str:
    """Exactly `nbytes` of UTF-8 mixing 1- to 4-byte characters."""
    unit = "lkproto ↔ peer 漢字 😀 ñ; "
    text = unit * (nbytes // len(unit.encode()) + 1)
    cut = text.encode()[: nbytes - 4].decode("utf-8", "ignore")
    return cut + "x" * (nbytes - len(cut.encode()))


TEXT = utf8_of(40_000)  # several stream chunks, cut inside characters


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def needs(kind: str, request: pytest.FixtureRequest, confinement: Any) -> dict[str, Any]:
    """The shared resources the peer needs: the session's official loop, the module's
    browser (skipped, saying why, where it cannot be confined), or the confinement."""
    if kind == "official":
        return {"official_loop": request.getfixturevalue("official_loop")}
    if kind == "js":
        return {"browser": request.getfixturevalue("browser")}
    if confinement.mode != "netns":
        pytest.skip(GO_UNCONFINED)  # not a pass: reported as skipped, with the reason
    return {"confinement": confinement}


@pytest.fixture
async def peer(kind: str, needs: dict[str, Any], tmp_path: Path) -> AsyncIterator[Peer]:
    async with open_peer(kind, workdir=tmp_path, **needs) as opened:
        yield opened


class Inbox:
    """What our Room's handlers received, with an awaitable count."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = anyio.Event()

    def add(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait(self, count: int, timeout: float = 30) -> list[Any]:
        with anyio.fail_after(timeout):
            while len(self.items) < count:
                await self._changed.wait()
        return self.items


async def test_interop_both_ways(
    peer: Peer, livekit_server: Any, make_token: Any, options: RoomOptions, tmp_path: Path
) -> None:
    url = livekit_server.url
    room, second = Room(), Room()
    seen = Recorder(
        room,
        "participant_connected",
        "participant_disconnected",
        "participant_attributes_changed",
        "participant_metadata_changed",
        "participant_name_changed",
        "data_received",
    )
    invoked: list[RpcInvocationData] = []
    streams = Inbox()
    prepare_lk(room, invoked, streams)
    try:
        # -- join --------------------------------------------------------------------------------
        with anyio.fail_after(30):
            await room.connect(url, make_token(LK, can_update_own_metadata=True), options)
        assert await peer.connect(url, make_token(peer.kind, can_update_own_metadata=True)) == [LK]
        p = peer.identity
        assert p == peer.kind
        await prepare_peer(peer)
        with anyio.fail_after(30):
            await second.connect(url, make_token(LK2), options)
        assert sorted(second.remote_participants) == sorted([LK, p])
        await seen.wait_for(lambda: seen.of("participant_connected")[1:])
        assert sorted(q.identity for (q,) in seen.of("participant_connected")) == sorted([p, LK2])
        assert room.remote_participants[p].identity == p
        # Below 1, lkproto speaks RPC v1 and data streams v1 to it.
        assert room.remote_participants[p].info.client_protocol == peer.boundaries.client_protocol
        await peer.wait(lambda: LK2 in peer.joined())
        assert peer.joined() == [LK, LK2]
        assert sorted(await peer.remotes()) == sorted([LK, LK2])
        await second.disconnect()  # the peer's view of it is checked at the end

        await attributes_metadata_and_names(peer, room, seen)
        await data_packets(peer, room, seen)
        await rpc(peer, room, invoked)
        await text_and_byte_streams(peer, room, streams, tmp_path)

        # -- leave -------------------------------------------------------------------------------
        await peer.wait(lambda: LK2 in peer.left())
        assert peer.left() == [LK2]
        assert await peer.remotes() == [LK]
        assert peer.faults() == []
        await peer.disconnect()
        left = await seen.wait_for(
            lambda: [q for (q,) in seen.of("participant_disconnected") if q.identity == p]
        )
        assert [q.identity for q in left] == [p]
        assert sorted(room.remote_participants) == []
    finally:
        await second.disconnect()
        await room.disconnect()


def prepare_lk(room: Room, invoked: list[RpcInvocationData], streams: Inbox) -> None:
    """Our handlers, registered before we connect."""
    lp = room.local_participant

    def echo(data: RpcInvocationData) -> str:
        invoked.append(data)
        return data.payload

    def fail(data: RpcInvocationData) -> str:
        invoked.append(data)
        raise RpcError(4242, "custom failure ✗ from lk", '{"why": "ünïcödé"}')

    def crash(data: RpcInvocationData) -> str:
        raise ValueError("a secret detail that must not cross")

    async def slow(data: RpcInvocationData) -> str:
        invoked.append(data)
        await anyio.sleep(SLOW)
        return "late: " + data.payload

    lp.register_rpc_method("echo", echo)
    lp.register_rpc_method("fail", fail)
    lp.register_rpc_method("crash", crash)
    lp.register_rpc_method("slow", slow)
    lp.register_rpc_method("double", lambda data: data.payload * 2)

    async def on_text(reader: TextStreamReader, identity: str) -> None:
        info = reader.info
        text = await reader.read_all()
        streams.add(Text(identity, info.topic, dict(info.attributes), text, info.size))

    async def on_bytes(reader: ByteStreamReader, identity: str) -> None:
        digest, size = hashlib.sha256(), 0
        async for chunk in reader:
            digest.update(chunk)
            size += len(chunk)
        info = reader.info
        assert info.size == size
        streams.add(File(identity, info.name or "", info.topic, size, digest.hexdigest()))

    room.register_text_stream_handler("chat", on_text)
    room.register_byte_stream_handler("files", on_bytes)


async def prepare_peer(peer: Peer) -> None:
    bounds = peer.boundaries
    await peer.register_rpc("echo", Echo())
    await peer.register_rpc("fail", Fail(4243, "custom failure ✗ from the peer", "data ✓"))
    await peer.register_rpc("crash", Crash())
    if bounds.rpc_handler_can_wait:
        await peer.register_rpc("slow", Slow(SLOW))
    if bounds.rpc_payload_limit is not None:
        await peer.register_rpc("double", Repeat(2))
    await peer.listen_text("chat")
    await peer.listen_bytes("files")


# -- attributes, metadata and names ---------------------------------------------------------------


async def attributes_metadata_and_names(peer: Peer, room: Room, seen: Recorder) -> None:
    p, bounds = peer.identity, peer.boundaries

    def changes(identity: str, what: str) -> list[Any]:
        return [c.value for c in peer.changes() if c.identity == identity and c.what == what]

    # lkproto -> peer: name, metadata, then attributes (so a peer without a name event has the
    # name by the time the attributes arrive: the server's updates come in order).
    me = room.local_participant
    await me.set_name("Lk Proto ✓")
    await me.set_metadata("lk-meta ü")
    await me.set_attributes({"mood": "curious ✓", "n": "1"})
    await peer.wait(lambda: changes(LK, "attributes"))
    await peer.wait(lambda: changes(LK, "metadata"))
    assert changes(LK, "attributes") == [{"mood": "curious ✓", "n": "1"}]
    assert changes(LK, "metadata") == ["lk-meta ü"]
    if bounds.reports_name_change:
        await peer.wait(lambda: changes(LK, "name"))
        assert changes(LK, "name") == ["Lk Proto ✓"]
    else:  # no event: the name is read with the participant
        assert changes(LK, "name") == []
    assert await peer.remote(LK) == ({"mood": "curious ✓", "n": "1"}, "lk-meta ü", "Lk Proto ✓")
    # An attribute set to "" is deleted; the change reports it as "".
    await me.set_attributes({"n": ""})
    await peer.wait(lambda: changes(LK, "attributes")[1:])
    assert changes(LK, "attributes")[1] == {"n": ""}
    assert (await peer.remote(LK))[0] == {"mood": "curious ✓"}
    assert (me.attributes, me.metadata, me.name) == (
        {"mood": "curious ✓"},
        "lk-meta ü",
        "Lk Proto ✓",
    )

    # peer -> lkproto.
    await peer.set_name("Peer ✓")
    await peer.set_metadata("peer-meta 😀")
    await peer.set_attributes({"seen": "yes", "k": "v"})
    other = room.remote_participants[p]

    def of(name: str) -> list[tuple[Any, ...]]:
        return [a for a in seen.of(name) if other in a]

    for name in (
        "participant_attributes_changed",
        "participant_metadata_changed",
        "participant_name_changed",
    ):
        await seen.wait_for(lambda name=name: of(name))  # type: ignore[misc]
    assert of("participant_attributes_changed") == [({"seen": "yes", "k": "v"}, other)]
    assert of("participant_metadata_changed") == [(other, "", "peer-meta 😀")]
    assert of("participant_name_changed") == [(other, "", "Peer ✓")]
    assert (other.attributes, other.metadata, other.name) == (
        {"seen": "yes", "k": "v"},
        "peer-meta 😀",
        "Peer ✓",
    )
    await peer.set_attributes({"k": ""})
    await seen.wait_for(lambda: of("participant_attributes_changed")[1:])
    assert of("participant_attributes_changed")[1] == ({"k": ""}, other)
    assert other.attributes == {"seen": "yes"}
    # As in livekit.rtc, our own changes were reported to us too, with our local participant.
    assert seen.of("participant_attributes_changed") == [
        ({"mood": "curious ✓", "n": "1"}, me),
        ({"n": ""}, me),
        ({"seen": "yes", "k": "v"}, other),
        ({"k": ""}, other),
    ]
    assert seen.of("participant_metadata_changed") == [
        (me, "", "lk-meta ü"),
        (other, "", "peer-meta 😀"),
    ]
    assert seen.of("participant_name_changed") == [(me, "", "Lk Proto ✓"), (other, "", "Peer ✓")]


# -- data packets ---------------------------------------------------------------------------------


async def data_packets(peer: Peer, room: Room, seen: Recorder) -> None:
    p, bounds = peer.identity, peer.boundaries
    payload = bytes(range(256)) * 4 + "ünïcödé ✓".encode()

    def packet(data: bytes, topic: str | None, reliable: bool) -> Packet:
        return Packet(
            LK,
            data,
            bounds.missing_topic if topic is None else topic,
            reliable if bounds.reports_packet_kind else None,
            bounds.encryption_type,
        )

    # lkproto -> peer: targeted, to someone else (the server filters it), lossy, plain.
    me = room.local_participant
    await me.publish_data(payload, topic="t1", destination_identities=[p])
    await me.publish_data(b"to nobody", topic="t1", destination_identities=["nobody"])
    await me.publish_data(b"lossy to all", reliable=False, topic="t2")
    await me.publish_data(b"marker")
    got = await peer.wait_packets(LK, 3, b"marker")
    expected = [
        packet(payload, "t1", True),
        packet(b"lossy to all", "t2", False),
        packet(b"marker", None, True),
    ]
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    # The reliable channel is ordered, so "to nobody" (sent between the two) was filtered.
    assert [g.payload for g in got if g.payload != b"lossy to all"] == [payload, b"marker"]

    # peer -> lkproto, the same four.
    await peer.publish_data(payload[::-1], topic="back", destinations=[LK])
    await peer.publish_data(b"to nobody", destinations=["nobody"])
    await peer.publish_data(b"lossy from the peer", reliable=False, topic="fast")
    await peer.publish_data(b"end")
    await seen.wait_for(lambda: [q for (q,) in seen.of("data_received") if q.data == b"end"])
    await seen.wait_for(lambda: seen.of("data_received")[2:])
    received = [
        (q.participant.identity, q.data, q.topic, q.kind) for (q,) in seen.of("data_received")
    ]
    reliable, lossy = DataPacketKind.KIND_RELIABLE, DataPacketKind.KIND_LOSSY
    assert [r for r in received if r[3] == reliable] == [
        (p, payload[::-1], "back", reliable),
        (p, b"end", "", reliable),
    ]
    assert [r for r in received if r[3] != reliable] == [(p, b"lossy from the peer", "fast", lossy)]
    first = seen.of("data_received")[0][0]
    assert isinstance(first, DataPacket)
    assert first.participant is room.remote_participants[p]


# -- RPC ------------------------------------------------------------------------------------------


async def rpc(peer: Peer, room: Room, invoked: list[RpcInvocationData]) -> None:
    p, bounds = peer.identity, peer.boundaries
    limit = bounds.rpc_payload_limit

    async def call(method: str, payload: str, **kwargs: Any) -> str:
        with anyio.fail_after(30):
            return await room.local_participant.perform_rpc(
                destination_identity=p, method=method, payload=payload, **kwargs
            )

    async def fails(method: str, payload: str = "x", **kwargs: Any) -> tuple[Any, ...]:
        with pytest.raises(RpcError) as info:
            await call(method, payload, **kwargs)
        return int(info.value.code), info.value.message, info.value.data

    async def peer_fails(method: str, payload: str = "x", **kwargs: Any) -> tuple[Any, ...]:
        with pytest.raises(PeerRpcError) as info:
            await peer.perform_rpc(LK, method, payload, **kwargs)
        return info.value.fields

    # lkproto -> peer.
    told: list[tuple[str, str, float]] = []  # what its handlers should see: (method, payload, s)
    assert await call("echo", "héllo from lk 👋") == "héllo from lk 👋"
    told.append(("echo", "héllo from lk 👋", 15.0))
    assert await fails("fail") == (4243, "custom failure ✗ from the peer", "data ✓")
    told.append(("fail", "x", 15.0))
    assert await fails("crash") == (E.APPLICATION_ERROR, APPLICATION_ERROR, None)
    told.append(("crash", "x", 15.0))
    assert await fails("missing") == (E.UNSUPPORTED_METHOD, UNSUPPORTED_METHOD, None)
    # We tell a callee max(response_timeout, 8 s), as client-sdk-js does.
    assert await call("echo", "quick", response_timeout=1.5) == "quick"
    told.append(("echo", "quick", 8.0))
    if bounds.rpc_handler_can_wait:
        # Our 1.5 s passes while its handler waits 3 s: 1502 on time; its late answer (to a
        # request we forgot) is dropped, and the next calls get their own answers.
        start = anyio.current_time()
        got = await fails("slow", response_timeout=1.5)
        elapsed = anyio.current_time() - start
        assert got == (E.RESPONSE_TIMEOUT, "Response timeout", None)
        assert 1.4 <= elapsed < 3.0
        told.append(("slow", "x", 8.0))
    if limit is None:  # RPC v2: the payload goes as a data stream
        big = utf8_of(BIG)
        assert await call("echo", big) == big
        told.append(("echo", big, 15.0))
    else:  # RPC v1 only: `limit` UTF-8 bytes each way
        at_limit = utf8_of(limit)
        assert await call("echo", at_limit) == at_limit
        told.append(("echo", at_limit, 15.0))
        # One byte over: refused by us before sending.
        got = await fails("echo", utf8_of(limit + 1))
        assert got == (E.REQUEST_PAYLOAD_TOO_LARGE, "Request payload too large", None)
        # A response over the limit is replaced with 1504 by the callee.
        half = utf8_of(limit // 2 + 1)
        got = await fails("double", half)
        assert got[:2] == (E.RESPONSE_PAYLOAD_TOO_LARGE, "Response payload too large")
        told.append(("double", half, 15.0))
    # (A peer may report an invocation after its reply.)
    await peer.wait(lambda: peer.invocations()[len(told) - 1 :])
    assert [(i.method, i.caller, i.payload, i.response_timeout) for i in peer.invocations()] == [
        (method, LK, payload, timeout) for method, payload, timeout in told
    ]

    # peer -> lkproto.
    default = bounds.rpc_told(bounds.rpc_default_timeout)
    expected: list[tuple[str, str, float]] = []
    assert await peer.perform_rpc(LK, "echo", "héllo from the peer 👋") == "héllo from the peer 👋"
    expected.append(("echo", "héllo from the peer 👋", default))
    if limit is None:
        big = utf8_of(BIG)
        assert await peer.perform_rpc(LK, "echo", big) == big
        expected.append(("echo", big, default))
    else:
        at_limit = utf8_of(limit)
        assert await peer.perform_rpc(LK, "echo", at_limit) == at_limit
        expected.append(("echo", at_limit, default))
        # One byte over: the peer refuses before sending (no data at all: it never left).
        got = await peer_fails("echo", utf8_of(limit + 1))
        assert got == (E.REQUEST_PAYLOAD_TOO_LARGE, "Request payload too large", None)
        # Our response over the limit to an RPC v1 caller becomes 1504.
        got = await peer_fails("double", utf8_of(limit // 2 + 1))
        assert got[:2] == (E.RESPONSE_PAYLOAD_TOO_LARGE, "Response payload too large")
    assert await peer_fails("fail") == (4242, "custom failure ✗ from lk", '{"why": "ünïcödé"}')
    expected.append(("fail", "x", default))
    no_data = bounds.rpc_no_data
    assert await peer_fails("crash") == (E.APPLICATION_ERROR, APPLICATION_ERROR, no_data)
    assert await peer_fails("missing") == (E.UNSUPPORTED_METHOD, UNSUPPORTED_METHOD, no_data)
    # The peer's caller timeout of 1.5 s against our handler's 3 s.
    start = anyio.current_time()
    # 1502 by the peer's own timer, or sooner by ours (we enforce what it told our handler:
    # below 1.5 s for some peers, more for others, `rpc_told`).
    assert await peer_fails("slow", timeout=1.5) == (
        E.RESPONSE_TIMEOUT,
        "Response timeout",
        no_data,
    )
    assert anyio.current_time() - start < 2.5
    expected.append(("slow", "x", bounds.rpc_told(1.5)))
    assert [(i.method, i.caller_identity, i.payload, i.response_timeout) for i in invoked] == [
        (method, p, payload, timeout) for method, payload, timeout in expected
    ]


# -- text and byte streams ------------------------------------------------------------------------


async def text_and_byte_streams(peer: Peer, room: Room, inbox: Inbox, tmp_path: Path) -> None:
    p, bounds = peer.identity, peer.boundaries
    blob = random.Random(24).randbytes(300 * 1024)  # several chunks
    source = tmp_path / "from-lk.bin"
    source.write_bytes(blob)
    attributes = {"k": "ü ✓"}

    # lkproto -> peer: a long text with attributes, an empty text, a file.
    me = room.local_participant
    sent = await me.send_text(TEXT, topic="chat", destination_identities=[p], attributes=attributes)
    await me.send_text("", topic="chat")
    await me.send_file(source, topic="files", destination_identities=[p])
    texts = await peer.wait(lambda: (t := peer.texts())[1:] and t, timeout=30)
    empty_size = None if bounds.empty_text_size_missing else 0
    assert sorted(texts, key=lambda t: len(t.text)) == [
        Text(LK, "chat", {}, "", empty_size),
        Text(LK, "chat", attributes, TEXT, len(TEXT.encode())),
    ]
    assert sorted(t.sha256 for t in texts) == sorted([sha256(b""), sha256(TEXT.encode())])
    if bounds.reports_stream_id:
        (long,) = [t for t in texts if t.text]
        assert long.stream_id == sent.stream_id
    files = await peer.wait(lambda: peer.files(), timeout=30)
    assert files == [File(LK, "from-lk.bin", "files", len(blob), sha256(blob))]

    # peer -> lkproto.
    back = blob[::-1]
    await peer.send_text(TEXT, topic="chat", destinations=[LK], attributes=attributes)
    await peer.send_text("", topic="chat")
    await peer.send_file("from-peer.bin", back, topic="files", destinations=[LK])
    items = await inbox.wait(3)
    assert sorted(items, key=repr) == sorted(
        [
            Text(p, "chat", attributes, TEXT, len(TEXT.encode())),
            Text(p, "chat", {}, "", 0 if bounds.sends_empty_text_size else None),
            File(p, "from-peer.bin", "files", len(back), sha256(back)),
        ],
        key=repr,
    )
