"""`lkproto.transports.api.LiveKitAPI` against the real livekit-server the harness starts.

The server's HTTP API listens on the same host and port as its WebSocket (`livekit_server.url`
is ws://host:port; the client maps it to http://). Every test runs on both anyio backends; the
official SDK participant lives on the harness's helper-thread asyncio loop.

Facts these tests pin about livekit-server v1.13.5 (no Redis, no egress workers):
- DeleteRoom needs the ``roomCreate`` grant; ``roomAdmin`` is not enough.
- A token signed with the wrong secret gets a plain-text 401 that echoes the token.
- The egress service is not mounted: ListEgress and StopEgress get a plain "404 page not
  found", i.e. `TwirpError` code "bad_route".
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from harness import API_KEY, API_SECRET
from harness.announce import announce
from harness.official import OfficialLoop, OfficialPeer
from harness.server import free_port
from lkproto.models import DisconnectReason, ParticipantKind, ParticipantState
from lkproto.tokens import VideoGrants
from lkproto.transports.anyio import Room, RoomOptions
from lkproto.transports.api import LiveKitAPI, TransportError, TwirpError

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(60)]

WRONG_SECRET = "not-the-server-secret-0123456789abcdefghij"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def api(livekit_server: Any) -> LiveKitAPI:
    return LiveKitAPI(livekit_server.url, API_KEY, API_SECRET)


async def official_with_disconnect_record(loop: OfficialLoop, url: str, token: str) -> OfficialPeer:
    """An official participant that also records ("disconnected", (reason,))."""
    peer = OfficialPeer(loop)
    await peer.connect(url, token)

    async def watch(room: Any) -> None:
        room.on("disconnected", lambda reason: peer._record("disconnected", int(reason)))

    await peer.do(watch)
    return peer


async def test_list_rooms_and_participants(
    api: LiveKitAPI,
    livekit_server: Any,
    make_token: Any,
    room_name: str,
    options: RoomOptions,
    official_loop: OfficialLoop,
) -> None:
    with anyio.fail_after(45):
        assert await api.list_rooms([room_name]) == []
        peer = OfficialPeer(official_loop)
        await peer.connect(
            livekit_server.url,
            make_token("user-1", name="User One", attributes={"role": "seller"}),
        )
        room = Room()
        try:
            await room.connect(
                livekit_server.url, make_token("agent-1", name="Agent", kind="agent"), options
            )
            await peer.wait_for(lambda r: ("joined", ("agent-1",)) in r)

            (info,) = await api.list_rooms([room_name])
            # (num_participants is the server's periodically refreshed count: not checked.)
            assert (info.name, info.sid) == (room_name, room.sid)
            assert info.creation_time_ms > 0
            assert room_name in [r.name for r in await api.list_rooms()]
            assert await api.list_rooms([room_name + "-nope"]) == []

            found = {p.identity: p for p in await api.list_participants(room_name)}
            assert sorted(found) == ["agent-1", "user-1"]
            user, agent = found["user-1"], found["agent-1"]
            assert (user.name, user.kind, dict(user.attributes)) == (
                "User One",
                ParticipantKind.STANDARD,
                {"role": "seller"},
            )
            assert (agent.name, agent.kind, agent.sid, agent.state) == (
                "Agent",
                ParticipantKind.AGENT,
                room.local_participant.sid,
                ParticipantState.ACTIVE,
            )
            assert agent.joined_at_ms > 0
            assert await api.list_participants(room_name + "-nope") == []
        finally:
            await room.disconnect()
            await peer.disconnect()


async def test_delete_room_disconnects_everyone_with_room_deleted(
    api: LiveKitAPI,
    livekit_server: Any,
    make_token: Any,
    room_name: str,
    options: RoomOptions,
    official_loop: OfficialLoop,
) -> None:
    peer = await official_with_disconnect_record(
        official_loop, livekit_server.url, make_token("user-1")
    )
    room = Room()
    reasons: list[DisconnectReason] = []
    gone = anyio.Event()

    def on_disconnected(reason: DisconnectReason) -> None:
        reasons.append(reason)
        gone.set()

    room.on("disconnected", on_disconnected)
    try:
        await room.connect(livekit_server.url, make_token("lk-1"), options)
        await announce(livekit_server, room_name, "lk-1")  # at once, not on the 3 s tick
        await peer.wait_for(lambda r: ("joined", ("lk-1",)) in r)
        with anyio.fail_after(10):
            assert await api.delete_room(room_name) is None
            await gone.wait()
        assert reasons == [DisconnectReason.ROOM_DELETED]
        assert not room.isconnected()
        got = await peer.wait_for(lambda r: [a for n, a in r if n == "disconnected"], timeout=10)
        assert got == [(int(DisconnectReason.ROOM_DELETED),)]
        with anyio.fail_after(10):
            assert await api.list_rooms([room_name]) == []
            with pytest.raises(TwirpError) as info:
                await api.delete_room(room_name)
        err = info.value
        assert (err.code, err.status, err.message) == (
            "not_found",
            404,
            "twirp error unknown: requested room does not exist",
        )
    finally:
        await room.disconnect()
        await peer.disconnect()


async def test_a_wrong_secret_is_a_clear_unauthenticated_error(
    livekit_server: Any, room_name: str
) -> None:
    api = LiveKitAPI(livekit_server.url, API_KEY, WRONG_SECRET)
    with anyio.fail_after(10), pytest.raises(TwirpError) as info:
        await api.list_rooms()
    err = info.value
    assert (err.code, err.status, err.metadata) == (
        "unauthenticated",
        401,
        {"http_error_from_intermediary": "true", "status_code": "401"},
    )
    # livekit-server's body is "invalid token: <the token>, error: ..."; the token is redacted.
    assert err.message == (
        "invalid token: <redacted>, error: token signature is invalid: signature is invalid"
    )
    for text in (str(err), repr(err), repr(api)):
        assert WRONG_SECRET not in text and "eyJ" not in text


async def test_missing_grants_and_unknown_methods(
    api: LiveKitAPI, livekit_server: Any, room_name: str
) -> None:
    with anyio.fail_after(10):
        with pytest.raises(TwirpError) as info:
            await api.call(
                "RoomService",
                "DeleteRoom",
                {"room": room_name},
                VideoGrants(room_admin=True, room=room_name),
            )
        assert (info.value.code, info.value.message, info.value.status) == (
            "unauthenticated",
            "permissions denied",
            401,
        )
        with pytest.raises(TwirpError) as info:
            await api.call("RoomService", "NoSuchMethod", {}, VideoGrants(room_list=True))
        assert (info.value.code, info.value.status, info.value.metadata) == (
            "bad_route",
            404,
            {"twirp_invalid_route": "POST /twirp/livekit.RoomService/NoSuchMethod"},
        )
        assert info.value.message == 'no handler for path "/twirp/livekit.RoomService/NoSuchMethod"'


async def test_egress_calls_against_a_server_without_egress(
    api: LiveKitAPI, room_name: str
) -> None:
    with anyio.fail_after(10):
        with pytest.raises(TwirpError) as listing:
            await api.list_egress(room_name=room_name, active=True)
        with pytest.raises(TwirpError) as stopping:
            await api.stop_egress("EG_doesnotexist")
    for err, method in (
        (listing.value, "EgressService/ListEgress"),
        (stopping.value, "EgressService/StopEgress"),
    ):
        assert (err.code, err.message, err.status, err.method, err.metadata) == (
            "bad_route",
            "404 page not found",
            404,
            method,
            {"http_error_from_intermediary": "true", "status_code": "404"},
        )


async def test_nothing_listening_is_a_transport_error(confinement: Any) -> None:
    port = free_port(confinement.host)  # bound and released: nothing listens there now
    api = LiveKitAPI(f"ws://{confinement.host}:{port}", API_KEY, API_SECRET, timeout=5)
    with anyio.fail_after(10), pytest.raises(TransportError) as info:
        await api.list_rooms()
    assert str(info.value) == (
        f"LiveKit server API RoomService/ListRooms: could not connect to "
        f"{confinement.host}:{port}: All connection attempts failed: Connection refused"
    )
