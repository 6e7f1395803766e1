"""One program, written for `livekit.rtc`'s data plane, run unchanged on lkproto.

`data_plane_program` only uses names that `livekit.rtc` defines. The test runs it once with
`livekit.rtc` and once with `lkproto.transports.anyio` passed in as the module (the "import
change"), each time against the same official SDK peer, and compares what it observed.
"""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any

import pytest
from livekit import rtc as official_rtc

from harness.official import OfficialLoop, OfficialPeer
from lkproto.transports import anyio as lkproto_rtc

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(90)]


async def data_plane_program(rtc: ModuleType, url: str, token: str) -> dict[str, Any]:
    """A small livekit.rtc data-plane app: join, set attributes, ping the peer, await a reply."""
    room = rtc.Room()
    inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    events: list[str] = []

    @room.on("data_received")
    def on_data(packet: Any) -> None:
        sender = packet.participant.identity if packet.participant else None
        reliable = packet.kind == rtc.DataPacketKind.KIND_RELIABLE
        inbox.put_nowait((sender, bytes(packet.data), packet.topic, reliable))

    room.on("connected", lambda: events.append("connected"))
    room.on("disconnected", lambda reason: events.append(f"disconnected:{int(reason)}"))

    await room.connect(url, token, rtc.RoomOptions(auto_subscribe=False))
    connected = room.isconnected() and room.connection_state == rtc.ConnectionState.CONN_CONNECTED
    peers = sorted(room.remote_participants)
    peer = room.remote_participants["peer"]
    me = room.local_participant
    await me.set_attributes({"program": "ran"})
    await me.publish_data("ping", topic="program", destination_identities=["peer"])
    reply = await asyncio.wait_for(inbox.get(), 15)
    result = {
        "connected": connected,
        "peers": peers,
        "peer": (peer.identity, peer.name, peer.metadata, peer.attributes, int(peer.kind)),
        "me": (me.identity, me.attributes),
        "reply": reply,
    }
    await room.disconnect()
    result["after"] = (room.isconnected(), int(room.connection_state))
    result["events"] = events
    return result


async def run_against_peer(
    rtc: ModuleType, loop: OfficialLoop, url: str, make_token: Any
) -> dict[str, Any]:
    peer = OfficialPeer(loop)
    await peer.connect(
        url, make_token("peer", name="Peer", metadata="m", attributes={"role": "echo"})
    )
    try:
        program = asyncio.ensure_future(
            data_plane_program(rtc, url, make_token("program", can_update_own_metadata=True))
        )
        ping = await peer.wait_for(lambda r: [a for n, a in r if n == "data"])
        assert ping[0][1:] == (b"ping", "program", 1)
        await peer.do(
            lambda r: r.local_participant.publish_data(
                b"pong", topic="reply", destination_identities=["program"]
            )
        )
        return await asyncio.wait_for(program, 30)
    finally:
        await peer.disconnect()


async def test_a_livekit_rtc_program_runs_unchanged_on_lkproto(
    livekit_server: Any, make_token: Any, confinement: Any, official_loop: OfficialLoop
) -> None:
    if confinement.mode != "netns":
        pytest.skip("the unchanged program cannot restrict ICE to loopback (netns mode only)")
    url = livekit_server.url
    with_official = await run_against_peer(official_rtc, official_loop, url, make_token)
    with_lkproto = await run_against_peer(lkproto_rtc, official_loop, url, make_token)
    expected = {
        "connected": True,
        "peers": ["peer"],
        "peer": ("peer", "Peer", "m", {"role": "echo"}, 0),
        "me": ("program", {"program": "ran"}),
        "reply": ("peer", b"pong", "reply", True),
        "after": (False, 0),
    }
    official_events = with_official.pop("events")
    lkproto_events = with_lkproto.pop("events")
    assert with_official == expected
    assert with_lkproto == expected
    # livekit.rtc 1.2 emits "disconnected" from disconnect() only when its state had not
    # already flipped (a race with its FFI event), and emits no "connected" from connect().
    # lkproto emits both, always, in order.
    assert official_events in ([], ["disconnected:1"])
    assert lkproto_events == ["connected", "disconnected:1"]
