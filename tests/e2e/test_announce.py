"""`harness.announce`: the server announces a participant at once, and nothing else changes.

Facts pinned against livekit-server 1.13.5 and the official SDK (livekit 1.2.0):
- without it, a participant that publishes nothing is announced to the room on the room's
  3-second batch tick, never sooner than 3 s after the room was created;
- with it, the official peer sees lkproto's participant within a moment of its connect;
- the no-op update changes no name, metadata, attributes or permissions, and neither side
  reports such a change (checked for a participant the other side already knows too, with a
  real attribute change after it as the barrier: events of one signal connection arrive in
  order).
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from harness import API_KEY, API_SECRET
from harness.announce import ANNOUNCE_KEY, announce
from harness.official import OfficialLoop, OfficialPeer
from harness.recorder import Recorder
from lkproto.models import Participant
from lkproto.tokens import VideoGrants
from lkproto.transports.anyio import Room, RoomOptions
from lkproto.transports.api import LiveKitAPI

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(60)]

LK, OFFICIAL = "lk", "official"
LK_CLAIMS: dict[str, Any] = {"name": "LK", "metadata": "meta", "attributes": {"role": "tester"}}
CHANGES = (
    "participant_attributes_changed",
    "participant_metadata_changed",
    "participant_name_changed",
    "participant_permissions_changed",
)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def claims(p: Participant) -> tuple[str, str, dict[str, str], Any]:
    return p.name, p.metadata, dict(p.attributes), p.permissions


async def lk_on_server(api: LiveKitAPI, room: str) -> Participant:
    (found,) = [p for p in await api.list_participants(room) if p.identity == LK]
    return found


async def test_an_announced_participant_is_seen_at_once_and_nothing_changes(
    livekit_server: Any,
    make_token: Any,
    room_name: str,
    options: RoomOptions,
    official_loop: OfficialLoop,
) -> None:
    api = LiveKitAPI(livekit_server.url, API_KEY, API_SECRET)
    peer = OfficialPeer(official_loop)
    room = Room()
    changes = Recorder(room, *CHANGES)
    with anyio.fail_after(30):
        await peer.connect(livekit_server.url, make_token(OFFICIAL))
        try:
            await room.connect(livekit_server.url, make_token(LK, **LK_CLAIMS), options)
            connected = time.monotonic()
            before = await lk_on_server(api, room_name)
            await announce(livekit_server, room_name, LK)
            await peer.wait_for(lambda r: ("joined", (LK,)) in r)
            # The tick would come 3 s after the room's creation, i.e. well after this.
            assert time.monotonic() - connected < 1.5

            # Again, now that the official peer knows us: an update of a known participant.
            await announce(livekit_server, room_name, LK)
            after = await lk_on_server(api, room_name)
            assert after.version > before.version
            assert claims(after) == claims(before)
            assert ANNOUNCE_KEY not in after.attributes

            # The barrier: a real change, which both sides report after anything earlier.
            await api.call(
                "RoomService",
                "UpdateParticipant",
                {"room": room_name, "identity": LK, "attributes": {"barrier": "1"}},
                VideoGrants(room_admin=True, room=room_name),
            )
            await peer.wait_for(lambda r: ("attributes", (LK, {"barrier": "1"})) in r)
            await changes.wait_for(lambda: changes.of("participant_attributes_changed"))
            reported = [
                (name, args)
                for name, args in peer.records
                if name in ("attributes", "metadata", "name")
            ]
            assert reported == [("attributes", (LK, {"barrier": "1"}))]
            assert [(n, a[0]) for n, a in changes.records] == [
                ("participant_attributes_changed", {"barrier": "1"})
            ]
            local = room.local_participant
            assert (local.name, local.metadata, dict(local.attributes)) == (
                "LK",
                "meta",
                {"role": "tester", "barrier": "1"},
            )
        finally:
            await room.disconnect()
            await peer.disconnect()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the server's behaviour, not ours
async def test_without_it_the_server_waits_for_its_batch_tick(
    livekit_server: Any,
    make_token: Any,
    room_name: str,
    options: RoomOptions,
    official_loop: OfficialLoop,
) -> None:
    api = LiveKitAPI(livekit_server.url, API_KEY, API_SECRET)
    peer = OfficialPeer(official_loop)
    room = Room()
    with anyio.fail_after(30):
        await peer.connect(livekit_server.url, make_token(OFFICIAL))
        try:
            await room.connect(livekit_server.url, make_token(LK), options)
            await peer.wait_for(lambda r: ("joined", (LK,)) in r)
            seen_ms = time.time() * 1000
            (info,) = await api.list_rooms([room_name])
            # The room's ticker starts after its creation time is set; its first tick is 3 s
            # later (100 ms of slack for the clocks' rounding).
            assert seen_ms - info.creation_time_ms > 2900
        finally:
            await room.disconnect()
            await peer.disconnect()
