"""lkproto against the Go SDK (`server-sdk-go` v2.19.0, on pion), through a real livekit-server.

The Go participant is `lkproto-go-peer` (peers/go), driven through `harness.gopeer`. Every
test runs once per lkproto adapter (harness/adapters.py), in both directions.

The boundaries this peer puts on the matrix, each checked here rather than skipped:
- The Go SDK joins with protocol 17 and no `client_protocol` (its `ParticipantInfo` shows 0),
  so lkproto sends it RPC v1 packets and v1 data streams (no compression, no RPC v2 stream),
  paths the official Python SDK never takes. RPC v1 carries at most 15360 UTF-8 bytes each
  way: a larger request is refused by the caller before sending (1402, on either side), a
  larger response is replaced by 1504 by the callee (on either side).
- The Go SDK tells its handler the response timeout it was sent; lkproto sends
  max(response_timeout, 8 s) (15 s by default), the Go SDK max(response_timeout - 7 s, 1 s)
  (8 s by default).
- The Go SDK does not say on which channel (reliable or lossy) a packet came, so on the Go side
  a lossy packet is checked by its bytes and topic only; lkproto reports the kind.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

# Every test runs once per adapter (anyio on asyncio and on trio, trio-native, threaded): the
# fixtures swap this module's `Room` for the adapter under test. See harness/adapters.py.
from harness.adapters import adapter, adapter_room, anyio_backend  # noqa: F401
from harness.gopeer import GoPeer, b64, go_peer, unb64
from harness.recorder import Recorder
from harness.sigproxy import SignalRecorder, candidate_addresses
from lkproto._pb import signal_pb2
from lkproto.transports.anyio import (
    ByteStreamReader,
    DataPacketKind,
    Room,
    RoomOptions,
    RpcError,
    RpcInvocationData,
    RtcConfiguration,
    TextStreamReader,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(60)]

LK, GO = "lk", "go"
V1_LIMIT = 15360  # RPC v1's payload limit, in UTF-8 bytes, in both SDKs
APPLICATION_ERROR = "Application error in method handler"
UNSUPPORTED_METHOD = "Method not supported at destination"
E = RpcError.ErrorCode


@pytest.fixture
def options(confinement: Any) -> RoomOptions:
    return RoomOptions(
        auto_subscribe=False, rtc_config=RtcConfiguration(host_addresses=[confinement.host])
    )


@pytest.fixture
async def gopeer(confinement: Any, tmp_path: Path) -> AsyncIterator[GoPeer]:
    if confinement.mode != "netns":
        # Not a pass: reported as skipped, with the reason (harness/gopeer.py).
        pytest.skip("the Go peer can be confined only by the harness's network namespace (root)")
    async with go_peer(confinement, tmp_path) as peer:
        yield peer


async def both_joined(
    room: Room, peer: GoPeer, url: str, make_token: Any, options: RoomOptions
) -> None:
    """The Go peer joins first, then our Room, which finds it in the room at once.

    The Go peer learns of us only from the server's next batched participant update (every
    3 s for participants that publish no track: livekit-server's subscriberUpdateInterval),
    which it does not need in order to receive from us or answer us; so this does not wait for
    it. `test_join_participants_and_data_packets_both_ways` checks the announcements.
    """
    joined = await peer.connect(url, make_token(GO))
    assert (joined["identity"], joined["participants"], joined["protocol"]) == (GO, [], 17)
    with anyio.fail_after(30):
        await room.connect(url, make_token(LK), options)
    assert list(room.remote_participants) == [GO]


def utf8_of(nbytes: int) -> str:
    """Exactly `nbytes` of UTF-8 mixing 1- to 4-byte characters."""
    unit = "Go ↔ lkproto 官方 😀 ñ; "
    text = unit * (nbytes // len(unit.encode()) + 1)
    cut = text.encode()[: nbytes - 4].decode("utf-8", "ignore")
    return cut + "x" * (nbytes - len(cut.encode()))


# -- join, participants and data packets ---------------------------------------------------------


async def test_join_participants_and_data_packets_both_ways(
    livekit_server: Any, make_token: Any, options: RoomOptions, gopeer: GoPeer
) -> None:
    room = Room()
    seen = Recorder(room, "data_received", "participant_connected", "participant_disconnected")
    try:
        # lkproto first: it sees the Go peer join, and the Go peer finds it in the room.
        with anyio.fail_after(30):
            await room.connect(livekit_server.url, make_token(LK), options)
        joined = await gopeer.connect(livekit_server.url, make_token(GO))
        assert (joined["identity"], joined["participants"], joined["protocol"]) == (GO, [LK], 17)
        (connected,) = (await seen.wait_for(lambda: seen.of("participant_connected")))[0]
        assert connected.identity == GO
        assert list(room.remote_participants) == [GO]
        # The Go SDK advertises no client_protocol: lkproto will use RPC v1 and streams v1.
        assert room.remote_participants[GO].info.client_protocol == 0
        assert (await gopeer.do("participants"))["participants"] == [LK]

        # lkproto -> Go: exact bytes and topics, reliable and lossy, targeted and not.
        binary = bytes(range(256)) * 4
        await room.local_participant.publish_data(binary, topic="t1", destination_identities=[GO])
        await room.local_participant.publish_data(b"not for go", destination_identities=["x"])
        await room.local_participant.publish_data("lossy ✓", reliable=False, topic="t2")
        await room.local_participant.publish_data(b"marker")
        await gopeer.wait_event("data", lambda f: unb64(f["payload"]) == b"marker")
        await gopeer.wait_for(lambda r: len([1 for n, _ in r if n == "data"]) >= 3)
        got = [(f["sender"], unb64(f["payload"]), f["topic"]) for f in gopeer.of("data")]
        # The reliable channel is ordered; the lossy packet travels on its own channel.
        assert [g for g in got if g[1] != "lossy ✓".encode()] == [
            (LK, binary, "t1"),
            (LK, b"marker", ""),
        ]
        assert (LK, "lossy ✓".encode(), "t2") in got
        assert len(got) == 3  # "not for go" was filtered by the server

        # Go -> lkproto.
        await gopeer.publish_data(binary[::-1], topic="back", destinations=[LK])
        await gopeer.publish_data(b"not for lk", destinations=["x"])
        await gopeer.publish_data(b"lossy from go", reliable=False, topic="fast")
        await gopeer.publish_data(b"end")
        await seen.wait_for(lambda: len(seen.of("data_received")) >= 3)
        await seen.wait_for(lambda: [p for (p,) in seen.of("data_received") if p.data == b"end"])
        received = [
            (p.participant.identity, p.data, p.topic, p.kind) for (p,) in seen.of("data_received")
        ]
        # The reliable ones in order; "not for lk" was filtered by the server.
        assert [r for r in received if r[3] == DataPacketKind.KIND_RELIABLE] == [
            (GO, binary[::-1], "back", DataPacketKind.KIND_RELIABLE),
            (GO, b"end", "", DataPacketKind.KIND_RELIABLE),
        ]
        assert [r for r in received if r[3] != DataPacketKind.KIND_RELIABLE] == [
            (GO, b"lossy from go", "fast", DataPacketKind.KIND_LOSSY),
        ]

        # lkproto leaves; the Go peer, which found it in the room, sees it go. (The RPC test
        # ends with the other way round.)
        await room.disconnect()
        await gopeer.wait_event("participant_disconnected", lambda f: f["identity"] == LK)
    finally:
        await room.disconnect()


# -- attributes, metadata and names --------------------------------------------------------------


def described(info: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    return info["name"], info["metadata"], info["attributes"]


async def test_attributes_metadata_and_names_both_ways(
    livekit_server: Any, make_token: Any, options: RoomOptions, gopeer: GoPeer
) -> None:
    """Each side sets its name, metadata and attributes (in that order) and the other reads
    them. The Go SDK has no callback for a name change: its peer reports each metadata and
    attribute change with the participant as it stands (name included), and the server's
    updates for a participant come in order, so once the attributes (set last) arrive, the
    name set first has arrived too."""
    room = Room()
    seen = Recorder(
        room,
        "participant_attributes_changed",
        "participant_metadata_changed",
        "participant_name_changed",
    )
    try:
        joined = await gopeer.connect(
            livekit_server.url, make_token(GO, can_update_own_metadata=True)
        )
        assert joined["participants"] == []
        with anyio.fail_after(30):
            await room.connect(
                livekit_server.url, make_token(LK, can_update_own_metadata=True), options
            )
        me = room.local_participant

        # lkproto -> Go.
        await me.set_name("Lk Proto ✓")
        await me.set_metadata("lk-meta ü")
        await me.set_attributes({"mood": "curious ✓", "n": "1"})
        changed = await gopeer.wait_event("attributes_changed", lambda f: f["identity"] == LK)
        assert changed["changed"] == {"mood": "curious ✓", "n": "1"}
        assert described(changed) == ("Lk Proto ✓", "lk-meta ü", {"mood": "curious ✓", "n": "1"})
        meta = await gopeer.wait_event("metadata_changed", lambda f: f["identity"] == LK)
        assert (meta["old"], meta["metadata"]) == ("", "lk-meta ü")
        # An attribute set to "" is deleted; the Go SDK reports it as changed to "".
        await me.set_attributes({"n": ""})
        gone = await gopeer.wait_event(
            "attributes_changed", lambda f: f["identity"] == LK and f["changed"] == {"n": ""}
        )
        assert gone["attributes"] == {"mood": "curious ✓"}
        infos = (await gopeer.do("participant_info"))["participants"]
        assert [(i["identity"], *described(i)) for i in infos] == [
            (GO, "", "", {}),
            (LK, "Lk Proto ✓", "lk-meta ü", {"mood": "curious ✓"}),
        ]

        # Go -> lkproto.
        await gopeer.do("set_name", name="Go Peer ✓")
        await gopeer.do("set_metadata", metadata="go-meta 😀")
        await gopeer.do("set_attributes", attributes={"seen": "yes", "k": "v"})
        go = room.remote_participants[GO]
        for name in (
            "participant_attributes_changed",
            "participant_metadata_changed",
            "participant_name_changed",
        ):
            await seen.wait_for(
                lambda name=name: [a for a in seen.of(name) if go in a]  # type: ignore[misc]
            )
        assert [a for a in seen.of("participant_attributes_changed") if go in a] == [
            ({"seen": "yes", "k": "v"}, go)
        ]
        assert [a for a in seen.of("participant_metadata_changed") if go in a] == [
            (go, "", "go-meta 😀")
        ]
        assert [a for a in seen.of("participant_name_changed") if go in a] == [
            (go, "", "Go Peer ✓")
        ]
        assert (go.name, go.metadata, go.attributes) == (
            "Go Peer ✓",
            "go-meta 😀",
            {"seen": "yes", "k": "v"},
        )
        # The Go peer saw its own changes come back from the server.
        own = await gopeer.wait_event("attributes_changed", lambda f: f["identity"] == GO)
        assert described(own) == ("Go Peer ✓", "go-meta 😀", {"seen": "yes", "k": "v"})
        await gopeer.do("set_attributes", attributes={"k": ""})
        await seen.wait_for(
            lambda: [a for a in seen.of("participant_attributes_changed") if go in a][1:]
        )
        assert [a for a in seen.of("participant_attributes_changed") if go in a][1] == (
            {"k": ""},
            go,
        )
        assert go.attributes == {"seen": "yes"}
    finally:
        await room.disconnect()


# -- RPC (v1 with this peer) -------------------------------------------------------------------


async def test_rpc_v1_both_ways_success_errors_and_the_15360_byte_limit(
    livekit_server: Any, make_token: Any, options: RoomOptions, gopeer: GoPeer
) -> None:
    code, message = 4242, "custom failure ✗"
    data = json.dumps({"reason": "quota", "note": "ünïcödé 😀"})
    room = Room()
    seen = Recorder(room, "participant_disconnected")
    invoked: list[RpcInvocationData] = []

    def echo(inv: RpcInvocationData) -> str:
        invoked.append(inv)
        return inv.payload

    def fail(inv: RpcInvocationData) -> str:
        raise RpcError(code, message, data)

    def explode(inv: RpcInvocationData) -> str:
        raise ValueError("internal detail, not for the caller")

    room.local_participant.register_rpc_method("echo", echo)
    room.local_participant.register_rpc_method("fail", fail)
    room.local_participant.register_rpc_method("double", lambda inv: inv.payload * 2)
    room.local_participant.register_rpc_method("plain", explode)
    await gopeer.do("register_rpc", method="echo", mode="echo")
    await gopeer.do("register_rpc", method="plain", mode="plain_error")
    await gopeer.do(
        "register_rpc", method="fail", mode="error", code=code, message=message, data=data
    )
    await gopeer.do("register_rpc", method="double", mode="repeat", repeat=2)

    async def lk_call(method: str, payload: str) -> str:
        with anyio.fail_after(20):
            return await room.local_participant.perform_rpc(
                destination_identity=GO, method=method, payload=payload
            )

    async def lk_fails(method: str, payload: str) -> tuple[int, str, str | None]:
        with pytest.raises(RpcError) as info:
            await lk_call(method, payload)
        return int(info.value.code), info.value.message, info.value.data

    async def go_call(method: str, payload: str) -> dict[str, Any]:
        result = await gopeer.request(
            "perform_rpc", timeout=20, destination=LK, method=method, payload=payload
        )
        return {
            k: v for k, v in result.items() if k in ("ok", "payload", "code", "message", "data")
        }

    try:
        await both_joined(room, gopeer, livekit_server.url, make_token, options)

        # lkproto -> Go.
        assert await lk_call("echo", "héllo from lk 👋") == "héllo from lk 👋"
        # The Go peer reports the invocation on its stdout, which can trail the response.
        inv = await gopeer.wait_event("rpc_invoked")
        assert (inv["method"], inv["caller"], inv["payload"]) == ("echo", LK, "héllo from lk 👋")
        assert inv["response_timeout_ms"] == 15000  # max(15 s default, 8 s), as we send it
        assert await lk_fails("fail", "x") == (code, message, data)
        assert await lk_fails("nope", "x") == (E.UNSUPPORTED_METHOD, UNSUPPORTED_METHOD, None)
        # A handler's plain (non-RpcError) error is 1500 with the built-in message only.
        assert await lk_fails("plain", "x") == (E.APPLICATION_ERROR, APPLICATION_ERROR, None)
        at_limit = utf8_of(V1_LIMIT)
        assert await lk_call("echo", at_limit) == at_limit
        # One byte over: refused by us before sending (v1 only, as Go has no client_protocol).
        got = await lk_fails("echo", utf8_of(V1_LIMIT + 1))
        assert got == (E.REQUEST_PAYLOAD_TOO_LARGE, "Request payload too large", None)
        # A response over the limit is replaced by the Go callee with 1504.
        got = await lk_fails("double", utf8_of(V1_LIMIT // 2 + 1))
        assert got[:2] == (E.RESPONSE_PAYLOAD_TOO_LARGE, "Response payload too large")
        # Go ran its handlers for all but the unknown method and the refused request.
        await gopeer.wait_for(lambda r: [1 for n, _ in r if n == "rpc_invoked"][4:])
        assert [f["method"] for f in gopeer.of("rpc_invoked")] == [
            "echo",
            "fail",
            "plain",
            "echo",
            "double",
        ]

        # Go -> lkproto.
        assert await go_call("echo", "héllo from go ✓") == {
            "ok": True,
            "payload": "héllo from go ✓",
        }
        assert [(i.method, i.caller_identity, i.payload) for i in invoked] == [
            ("echo", GO, "héllo from go ✓")
        ]
        assert invoked[0].response_timeout == 8.0  # Go sends max(15 s - 7 s, 1 s)
        assert await go_call("fail", "x") == {
            "ok": False,
            "code": code,
            "message": message,
            "data": data,
        }
        assert await go_call("nope", "x") == {
            "ok": False,
            "code": E.UNSUPPORTED_METHOD,
            "message": UNSUPPORTED_METHOD,
            "data": "",  # the Go SDK shows "no data" as ""
        }
        assert await go_call("plain", "x") == {
            "ok": False,
            "code": E.APPLICATION_ERROR,
            "message": APPLICATION_ERROR,
            "data": "",
        }
        assert await go_call("echo", at_limit) == {"ok": True, "payload": at_limit}
        # One byte over: the Go SDK refuses before sending; nothing reaches our handler.
        over = await go_call("echo", utf8_of(V1_LIMIT + 1))
        assert over == {
            "ok": False,
            "code": E.REQUEST_PAYLOAD_TOO_LARGE,
            "message": "Request payload too large",
            "data": None,  # refused locally: no data at all
        }
        # Our response over the limit to a v1 caller becomes 1504.
        big = await go_call("double", utf8_of(V1_LIMIT // 2 + 1))
        assert (big["ok"], big["code"], big["message"]) == (
            False,
            E.RESPONSE_PAYLOAD_TOO_LARGE,
            "Response payload too large",
        )
        assert len(invoked) == 2  # echo, echo at the limit

        # The Go peer leaves; lkproto, which found it in the room, sees it go.
        await gopeer.disconnect()
        (left,) = (await seen.wait_for(lambda: seen.of("participant_disconnected")))[0]
        assert left.identity == GO
        assert GO not in room.remote_participants
    finally:
        await room.disconnect()


# -- data streams (v1 with this peer) -------------------------------------------------------------


async def test_text_and_byte_streams_both_ways_with_sha256(
    livekit_server: Any, make_token: Any, options: RoomOptions, gopeer: GoPeer
) -> None:
    text = utf8_of(40_000)  # several 15 000-byte chunks, cut inside characters
    blob = random.Random(24).randbytes(300_000)
    room = Room()
    texts: list[tuple[str, str, dict[str, str], str]] = []
    files: list[tuple[str, str, str | None, int, str]] = []
    changed = anyio.Event()

    async def on_text(reader: TextStreamReader, identity: str) -> None:
        nonlocal changed
        body = await reader.read_all()
        texts.append((identity, reader.info.topic, dict(reader.info.attributes), body))
        changed.set()
        changed = anyio.Event()

    async def on_bytes(reader: ByteStreamReader, identity: str) -> None:
        nonlocal changed
        h, size = hashlib.sha256(), 0
        async for chunk in reader:
            h.update(chunk)
            size += len(chunk)
        files.append((identity, reader.info.topic, reader.info.name, size, h.hexdigest()))
        changed.set()
        changed = anyio.Event()

    room.register_text_stream_handler("chat", on_text)
    room.register_byte_stream_handler("files", on_bytes)
    await gopeer.do("register_text", topic="chat")
    await gopeer.do("register_bytes", topic="files")
    try:
        await both_joined(room, gopeer, livekit_server.url, make_token, options)

        # lkproto -> Go.
        await room.local_participant.send_text(
            text, topic="chat", attributes={"n": "1"}, destination_identities=[GO]
        )
        await room.local_participant.send_bytes(blob, topic="files", name="blob.bin")
        got_text = await gopeer.wait_event("text", timeout=30)
        assert (got_text["sender"], got_text["topic"], got_text["attributes"]) == (
            LK,
            "chat",
            {"n": "1"},
        )
        assert got_text["text"] == text
        assert got_text["sha256"] == hashlib.sha256(text.encode()).hexdigest()
        got_file = await gopeer.wait_event("bytes", timeout=30)
        assert (got_file["sender"], got_file["topic"], got_file["name"]) == (
            LK,
            "files",
            "blob.bin",
        )
        assert (got_file["length"], got_file["size"]) == (len(blob), len(blob))
        assert got_file["sha256"] == hashlib.sha256(blob).hexdigest()

        # Go -> lkproto.
        sent = await gopeer.do(
            "send_text", text=text, topic="chat", attributes={"from": "go"}, destinations=[LK]
        )
        assert sent["sha256"] == hashlib.sha256(text.encode()).hexdigest()
        await gopeer.do("send_bytes", payload=b64(blob), topic="files", name="go.bin")
        with anyio.fail_after(30):
            while len(texts) < 1 or len(files) < 1:
                await changed.wait()
        assert texts == [(GO, "chat", {"from": "go"}, text)]
        assert files == [(GO, "files", "go.bin", len(blob), hashlib.sha256(blob).hexdigest())]
    finally:
        await room.disconnect()


# -- confinement -----------------------------------------------------------------------------


def _gathered(messages: list[bytes]) -> list[tuple[str, str]]:
    found = []
    for raw in messages:
        msg = signal_pb2.SignalRequest.FromString(raw)
        kind = msg.WhichOneof("message")
        if kind == "trickle":
            init = json.loads(msg.trickle.candidateInit)
            found += candidate_addresses(init.get("candidate", ""))
        elif kind in ("offer", "answer"):
            found += candidate_addresses(getattr(msg, kind).sdp)
    return found


@pytest.mark.parametrize("adapter", ["anyio-asyncio"])  # one run: it checks the Go side only
async def test_the_go_peer_gathers_only_confined_candidates(
    livekit_server: Any, make_token: Any, options: RoomOptions, confinement: Any, gopeer: GoPeer
) -> None:
    room = Room()
    room.local_participant.register_rpc_method("ready", lambda inv: "ready")
    async with SignalRecorder(confinement.host, livekit_server.host, livekit_server.port) as rec:
        try:
            await gopeer.connect(rec.url, make_token(GO))
            with anyio.fail_after(30):
                await room.connect(livekit_server.url, make_token(LK), options)
            # A round trip over the data channels proves ICE really connected.
            result = await gopeer.do("perform_rpc", destination=LK, method="ready", payload="?")
            assert result["payload"] == "ready"
            await gopeer.disconnect()
        finally:
            await room.disconnect()
    gathered = _gathered(rec.recording.to_server)
    assert gathered, "the Go peer signalled no candidate"
    print(f"go peer gathered: {sorted(set(gathered))}")
    assert {address for address, _ in gathered} == {confinement.host}
    assert [c for c in gathered if not confinement.allows(c[0])] == []
    assert not [a for a, _ in gathered if a.endswith(".local")]  # no mDNS candidate
