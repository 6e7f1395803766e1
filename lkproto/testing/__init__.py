"""`lkproto.testing`: a LiveKit room in memory, for deterministic tests with no server.

    from lkproto.testing import MemoryRoom

    room = MemoryRoom()                       # virtual clock at 0.0
    alice = room.join("alice", before_connect=lambda c: c.register_rpc_method("ping"))
    bob = room.join("bob")
    room.advance(3)                           # the server announces joins on a 3 s tick
    bob.perform_rpc(destination_identity="alice", method="ping", payload="", now=room.now)
    room.run_until_idle()                     # alice's events now hold RpcInvoked
    room.advance(15)                          # nobody answered: bob's events hold RpcFailed

`MemoryRoom` routes signal and data between any number of `lkproto.Connection`s the way
livekit-server v1.13.5 does (join responses, batched participant updates, sender stamping,
destination filtering, silent drops for participants without canPublishData, hidden
participants, reliable ordering and de-duplication, lossy delivery, data tracks with an
optional deterministic loss rate), on a virtual clock that
fires every due timer in order, deterministically. Resumes and full reconnects are answered
as the server answers them. Faults: per-link drop, delay, duplicate and cut (`link`,
`uplink`), network cuts (`disconnect`, `restore`), `drop_signal`, `fail_peer`, server-
initiated `leave` with each action, `restart` (graceful or a crash, with downtime), and the
scenarios a client asks for with `Connection.simulate_scenario`. Media tracks are signalled
as the server does (publish, subscribe, mute, permissions, `MediaSectionsRequirement`,
`mid_to_track_id`) and their frames forwarded whole, without RTP (`send_media`, `media`).
No threads, no sockets, no real time: the adapters' memory transport
(`lkproto.transports.testing`) puts it behind unchanged application code.
"""

from __future__ import annotations

from lkproto.testing._links import Link
from lkproto.testing._media import media_lines
from lkproto.testing._room import MemoryRoom
from lkproto.testing._server import (
    DroppedPacket,
    PeerEndpoint,
    PeerLink,
    Rejected,
    SignalEndpoint,
    SignalLink,
    Unreachable,
    Upgrade,
    ice_ufrag,
)

__all__ = [
    "DroppedPacket",
    "Link",
    "MemoryRoom",
    "PeerEndpoint",
    "PeerLink",
    "Rejected",
    "SignalEndpoint",
    "SignalLink",
    "Unreachable",
    "Upgrade",
    "ice_ufrag",
    "media_lines",
]
