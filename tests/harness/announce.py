"""Have the server announce participants to their room now, not on its next batch tick.

livekit-server 1.13.5 tells a room's participants about one that publishes no track only on
the room's 3-second batch tick (`subscriberUpdateInterval`, pkg/rtc/room.go; the ticker starts
with the room, so the second participant of a two-party test is typically seen about 2.3 s
after it joined). A participant whose name, metadata or attributes change is broadcast at
once instead: `ParticipantImpl.SetAttributes` calls the room's `onParticipantUpdate`, which
calls `broadcastParticipantState(p, broadcastOptions{immediate: true})`, and
`PushAndDequeueUpdates` sends an update at once when it is immediate (`shouldSend :=
isImmediate || pi.IsPublisher`), taking the queued one with it.

`announce` reaches that path through the server API without changing anything: an admin
`RoomService.UpdateParticipant` whose attributes delete a key nobody sets (an empty value
deletes; pkg/service/roommanager.go `UpdateParticipant` -> pkg/rtc/participant.go
`UpdateMetadata` -> `SetAttributes`). The participant's name, metadata, attributes and
permissions stay as they were; only its `ParticipantInfo.version` grows, and, as after any
claims change, the server sends the participant a fresh token (`refresh_token`: lkproto's
`token_refreshed` event; the server sends one at every join anyway).

Use it where a test waits for a join only to synchronise, never where the announcement itself
(or its batching) is what the test checks.
"""

from __future__ import annotations

from harness.server import LiveKitServer
from harness.tokens import API_KEY, API_SECRET
from lkproto.tokens import VideoGrants
from lkproto.transports.api import LiveKitAPI

# The attribute the no-op update deletes; no participant of the suite ever sets it.
ANNOUNCE_KEY = "lk.harness.announce"

__all__ = ["ANNOUNCE_KEY", "announce"]


async def announce(server: LiveKitServer, room: str, *identities: str) -> None:
    """Make the server broadcast each of `identities` in `room` to the room at once.

    Each gets a no-op admin attribute update (see the module's docstring); raises the API's
    `TwirpError` (e.g. "not_found" for a participant not in the room) or `TransportError`.
    Runs on any anyio backend.
    """
    api = LiveKitAPI(server.url, API_KEY, API_SECRET)
    grants = VideoGrants(room_admin=True, room=room)
    for identity in identities:
        await api.call(
            "RoomService",
            "UpdateParticipant",
            {"room": room, "identity": identity, "attributes": {ANNOUNCE_KEY: ""}},
            grants,
        )
