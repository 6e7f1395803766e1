"""`lkproto.transports.trio`'s own surface on the real server, with the official SDK as peer.

The shared interop suites (test_anyio_*.py) already run this adapter through the awaitable
`connect()`; these tests prove what only the trio adapter has: the structured lifetime of
`async with Room().connect(...)` (errors propagate as themselves, cancellation leaves the
room cleanly, the official peer sees us leave) and the trio memory channel of events.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from harness.announce import announce
from harness.official import OfficialLoop, OfficialPeer
from lkproto import events as ev
from lkproto.transports.trio import Room, RoomOptions

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.fixture
async def official(livekit_server: Any, make_token: Any, official_loop: OfficialLoop) -> Any:
    peer = OfficialPeer(official_loop)
    await peer.connect(livekit_server.url, make_token("official"))
    try:
        yield peer
    finally:
        await peer.disconnect()


async def test_an_error_in_the_block_propagates_as_itself_and_leaves_the_room(
    livekit_server: Any, make_token: Any, options: RoomOptions, official: OfficialPeer
) -> None:
    room = Room()
    with pytest.raises(ValueError, match=r"^the app failed$") as info:  # not an ExceptionGroup
        async with room.connect(livekit_server.url, make_token("lk"), options) as joined:
            assert joined is room and room.isconnected()
            await announce(livekit_server, room.name, "lk")  # at once, not on the 3 s tick
            await official.wait_for(lambda r: ("joined", ("lk",)) in r)
            await room.local_participant.publish_data(b"from trio", topic="t")
            await official.wait_for(lambda r: ("data", ("lk", b"from trio", "t", 1)) in r)
            raise ValueError("the app failed")
    assert type(info.value) is ValueError
    assert not room.isconnected()
    assert room._session.done.is_set()
    await official.wait_for(lambda r: ("left", ("lk",)) in r)


async def test_cancelling_the_block_leaves_the_room_cleanly(
    livekit_server: Any, make_token: Any, options: RoomOptions, official: OfficialPeer
) -> None:
    room = Room()
    with trio.CancelScope() as scope:
        async with room.connect(livekit_server.url, make_token("lk"), options):
            await announce(livekit_server, room.name, "lk")  # at once, not on the 3 s tick
            await official.wait_for(lambda r: ("joined", ("lk",)) in r)
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert not room.isconnected()
    # A clean leave (not a dropped socket): the server tells the others at once.
    await official.wait_for(lambda r: ("left", ("lk",)) in r)


async def test_the_event_channel_yields_typed_events_until_the_session_ends(
    livekit_server: Any, make_token: Any, options: RoomOptions, official: OfficialPeer
) -> None:
    room = Room()
    channel = room.event_channel()
    async with room.connect(livekit_server.url, make_token("lk"), options):
        await announce(livekit_server, room.name, "lk")  # at once, not on the 3 s tick
        await official.wait_for(lambda r: ("joined", ("lk",)) in r)

        async def send(room: Any) -> None:
            await room.local_participant.publish_data(b"to lk", topic="x")

        await official.do(send)
        with trio.fail_after(15):
            async for event in channel:
                if isinstance(event, ev.DataReceived):
                    break
        assert event.payload == b"to lk" and event.topic == "x"
        assert event.participant_identity == "official"
    with trio.fail_after(5):
        rest = [event async for event in channel]  # closes once the session has ended
    assert isinstance(rest[-1], ev.Disconnected)
