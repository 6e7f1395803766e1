"""The Go SDK peer (`server-sdk-go` v2.19.0, on pion) is confined: every candidate it gathers.

The Go participant is `lkproto-go-peer` (peers/go), driven through `harness.gopeer`. Its
interop with lkproto (join, attributes, data, RPC, streams, on every adapter, both ways) is in
test_peer_matrix.py, written against `harness.peers.Peer`; its boundaries, asserted there:
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

import json
from typing import Any

import anyio
import pytest

# Every test runs once per adapter (anyio on asyncio and on trio, trio-native, threaded): the
# fixtures swap this module's `Room` for the adapter under test. See harness/adapters.py.
from harness.adapters import adapter, adapter_room, anyio_backend  # noqa: F401
from harness.gopeer import GoPeer, gopeer_fixture  # noqa: F401 (the `gopeer` fixture)
from harness.sigproxy import SignalRecorder, candidate_addresses
from lkproto._pb import signal_pb2
from lkproto.transports.anyio import (
    Room,
    RoomOptions,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(60)]

LK, GO = "lk", "go"


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
