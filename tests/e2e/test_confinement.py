"""Network confinement, checked on real traffic.

Two official-SDK participants join through a recording relay, then two JavaScript
participants (livekit-client in headless Chromium, harness/jspeer.py). Every ICE candidate the
server offers (trickle, SDP) and every candidate each client gathers and signals, plus every
ICE server URL the server hands out, must be a confined address. The recording is decoded with
lkproto's own schema.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from livekit import rtc

from harness import Confinement
from harness.jspeer import UNCONFINED, JsBrowser
from harness.netns import local_addresses
from harness.sigproxy import SignalRecorder, candidate_addresses
from lkproto._pb import signal_pb2

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(90)]


def _candidates(msg: signal_pb2.SignalRequest | signal_pb2.SignalResponse) -> list[tuple[str, str]]:
    """ICE candidates in a trickle or an SDP, whichever direction the message went."""
    kind = msg.WhichOneof("message")
    if kind == "trickle":
        return candidate_addresses(json.loads(msg.trickle.candidateInit).get("candidate", ""))
    if kind in ("offer", "answer"):
        return candidate_addresses(getattr(msg, kind).sdp)
    return []


def _ice_server_hosts(msg: signal_pb2.SignalResponse) -> list[str]:
    kind = msg.WhichOneof("message")
    servers = []
    if kind == "join":
        servers = list(msg.join.ice_servers)
    elif kind == "reconnect":
        servers = list(msg.reconnect.ice_servers)
    hosts = []
    for server in servers:
        for url in server.urls:
            m = re.match(r"(?:stuns?|turns?):\[?([^\]?]+?)\]?(?::\d+)?(?:\?.*)?$", url)
            assert m, url
            hosts.append(m.group(1))
    return hosts


def test_the_test_process_sees_only_confined_interfaces(confinement: Confinement) -> None:
    addrs = local_addresses()
    assert confinement.host in addrs
    assert [a for a in addrs if not confinement.allows(a)] == []


async def test_every_offered_and_gathered_candidate_is_confined(
    livekit_server, make_token, confinement: Confinement
) -> None:
    async with SignalRecorder(confinement.host, livekit_server.host, livekit_server.port) as rec:
        rooms = []
        for identity in ("cand-a", "cand-b"):
            room = rtc.Room()
            await room.connect(rec.url, make_token(identity), rtc.RoomOptions(auto_subscribe=False))
            rooms.append(room)
        a, b = rooms
        b.local_participant.register_rpc_method("lk.test.ready", lambda data: "ready")
        async with asyncio.timeout(20):
            while "cand-b" not in a.remote_participants:
                await asyncio.sleep(0.02)
        # An RPC round trip proves the data channels (and so ICE) really connected.
        reply = await a.local_participant.perform_rpc(
            destination_identity="cand-b", method="lk.test.ready", payload="?"
        )
        assert reply == "ready"
        for room in rooms:
            await room.disconnect()

    _check_recording(rec, confinement)


def _check_recording(rec: SignalRecorder, confinement: Confinement) -> list[tuple[str, str]]:
    requests = [signal_pb2.SignalRequest.FromString(m) for m in rec.recording.to_server]
    responses = [signal_pb2.SignalResponse.FromString(m) for m in rec.recording.to_client]
    gathered = [c for msg in requests for c in _candidates(msg)]
    offered = [c for msg in responses for c in _candidates(msg)]
    ice_hosts = [h for msg in responses for h in _ice_server_hosts(msg)]

    # The test can fail: it saw both joins and candidates in both directions.
    assert sum(1 for m in responses if m.WhichOneof("message") == "join") == 2
    assert gathered, "no client-gathered candidate was signalled"
    assert offered, "no server candidate was offered"
    assert ice_hosts, "the server handed out no ICE server"
    print(f"gathered={sorted(set(gathered))} offered={sorted(set(offered))} ice={ice_hosts}")
    assert [c for c in gathered if not confinement.allows(c[0])] == []
    assert [c for c in offered if not confinement.allows(c[0])] == []
    assert [h for h in ice_hosts if not confinement.allows(h)] == []
    return gathered


async def test_the_browsers_gathered_candidates_are_confined(
    livekit_server, make_token, confinement: Confinement, tmp_path
) -> None:
    """Chromium gathers host candidates on every interface of its network namespace (the
    harness's): with mDNS candidates off it signals the namespace's address itself."""
    if confinement.mode != "netns":
        pytest.skip(UNCONFINED)
    browser = JsBrowser.start(confinement, tmp_path / "driver.log")
    try:
        async with SignalRecorder(
            confinement.host, livekit_server.host, livekit_server.port
        ) as rec:
            a, b = await browser.open(), await browser.open()
            await a.connect(rec.url, make_token("cand-js-a"))
            await b.connect(rec.url, make_token("cand-js-b"))
            await b.register_rpc("lk.test.ready", prefix="ready ")
            await a.wait_for(lambda r: ("participant_connected", ("cand-js-b",)) in r, 20)
            # An RPC round trip proves the data channels (and so ICE) really connected.
            assert await a.perform_rpc("cand-js-b", "lk.test.ready", "?") == ("ready ?", None)
            await a.close()
            await b.close()
    finally:
        browser.close()
    gathered = _check_recording(rec, confinement)
    assert [c for c in gathered if c[0].endswith(".local")] == []
    assert (confinement.host, "host") in gathered
