"""The server's side of resumes, full reconnects, client scenarios and network faults, byte
for byte, with hand-written clients (raw_client.py) at literal virtual times.

The facts are livekit-server v1.13.5's (pkg/service/roommanager.go StartSession,
pkg/rtc/room.go ResumeParticipant and onSimulateScenario, participant.go Close and
onAnyTransportFailed), as listed in lkproto/testing/_server.py.
"""

from __future__ import annotations

import pytest
from raw_client import RawClient, join_request, resume_target, v0_target, v1_target

from lkproto import Channel, DisconnectReason, LeaveAction
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto.testing import MemoryRoom, Rejected, Unreachable, Upgrade, ice_ufrag

T0 = 100.0
UNIX0 = 1_700_000_000_000
JOINING, JOINED, ACTIVE, DISCONNECTED = 0, 1, 2, 3
SERVER_INFO = ppb.ServerInfo(version="1.13.5", protocol=17, node_id="ND_memory")


def new_room(**kwargs: object) -> MemoryRoom:
    return MemoryRoom(now=T0, unix_time_ms=UNIX0, **kwargs)  # type: ignore[arg-type]


def user(payload: bytes, sequence: int = 0) -> dpb.DataPacket:
    return dpb.DataPacket(user=dpb.UserPacket(payload=payload), sequence=sequence)


def leave(reason: DisconnectReason, action: LeaveAction) -> spb.LeaveRequest:
    return spb.LeaveRequest(reason=reason, action=action)  # type: ignore[arg-type]


def resume(room: MemoryRoom, identity: str, sid: str, **kwargs: object) -> RawClient:
    return RawClient(room, identity, target=resume_target(sid, **kwargs))  # type: ignore[arg-type]


def payloads(client: RawClient) -> list[bytes]:
    return [p.user.payload for _, p in client.take_data()]


def leaves(client: RawClient) -> list[spb.LeaveRequest]:
    return [s.leave for s in client.signals if s.WhichOneof("message") == "leave"]


def updates(client: RawClient) -> list[list[ppb.ParticipantInfo]]:
    return [
        list(s.update.participants) for s in client.take() if s.WhichOneof("message") == "update"
    ]


def outcomes(room: MemoryRoom) -> list[tuple[float, str, bool, str]]:
    return [(u.at, u.identity, u.resume, u.outcome) for u in room.upgrades]


# -- resuming a participant the room has -------------------------------------------------------


def test_a_resume_gets_the_reconnect_response_then_the_room() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    bob = RawClient(room, "bob").connect()
    carol = RawClient(room, "carol").connect()
    for seq in (1, 2, 3):
        alice.publish(user(b"m%d" % seq, sequence=seq))
    alice.publish(user(b"lossy"), Channel.LOSSY)  # sequence 0: not counted
    room.advance(1)
    room.drop_signal("alice")  # t = 101: only the socket; the peer connection stays up
    assert alice.closes == [None]
    room.advance(1)
    carol.send(leave=spb.LeaveRequest(reason=DisconnectReason.CLIENT_INITIATED))  # type: ignore[arg-type]
    room.advance(1)
    alice.take(), bob.take()
    again = resume(room, "alice", "PA_1")  # t = 103
    me = room.participants["alice"]
    assert (me.sid, me.state) == ("PA_1", ACTIVE)
    assert again.kinds() == ["reconnect", "update", "update", "room_update", "refresh_token"]
    reconnect, gone, everyone, room_update, _ = again.signals
    assert reconnect.reconnect == spb.ReconnectResponse(server_info=SERVER_INFO, last_message_seq=3)
    # Who left since the last signal message the server had from alice (at 100), bare.
    assert gone.update == ppb.ParticipantUpdate(
        participants=[ppb.ParticipantInfo(sid="PA_3", identity="carol", version=3, state=3)]  # type: ignore[arg-type]
    )
    # Then everyone still there, alice herself too.
    assert [(p.identity, p.state, p.version) for p in everyone.update.participants] == [
        ("alice", ACTIVE, 2),
        ("bob", ACTIVE, 2),
    ]
    assert room_update.room_update.room.num_participants == 0  # as of the last 5 s tick
    assert outcomes(room)[-1] == (103.0, "alice", True, "resumed")
    # The data path never stopped: the old peer connection carries on, sequencing too.
    alice.publish(user(b"m4", sequence=4))
    alice.publish(user(b"m3 again", sequence=3))
    assert payloads(bob) == [b"m1", b"m2", b"m3", b"lossy", b"m4"]
    assert room.dropped[-1].reason == "out of order reliable packet"
    bob.publish(user(b"to alice"))
    assert payloads(alice)[-1] == b"to alice"  # delivered to the peer connection


def test_a_resume_replaces_a_socket_still_open_and_keeps_its_requests_out() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    again = resume(room, "alice", "PA_1")
    assert alice.closes == [1000]  # SwapResponseSink closes the old one
    assert alice.link is not None
    alice.link.send(spb.SignalRequest(ping_req=spb.Ping(timestamp=1)).SerializeToString())
    room.run_until_idle()
    assert [s.WhichOneof("message") for s in again.signals[-1:]] == ["refresh_token"]
    again.send(ping_req=spb.Ping(timestamp=2))
    assert again.signals[-1].pong_resp.last_ping_timestamp == 2
    # Closing the replaced socket changes nothing; closing the current one does not remove a
    # participant whose peer connection has connected.
    alice.close()
    again.close()
    room.advance(60)
    assert room.participants["alice"].state == ACTIVE


def test_a_resume_keeps_a_participant_the_server_asked_to_resume() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    room.leave("alice", action=LeaveAction.RESUME, reason=DisconnectReason.MIGRATION)
    assert [s.leave for s in alice.signals[-1:]] == [
        leave(DisconnectReason.MIGRATION, LeaveAction.RESUME)
    ]
    room.advance(4)
    resume(room, "alice", "PA_1")
    room.advance(10)  # the 5 s cleanup was cancelled by the resume (ICERestart)
    assert room.participants["alice"].state == ACTIVE


def test_the_resume_names_the_identity_not_the_sid() -> None:
    room = new_room()
    RawClient(room, "alice").connect()
    again = resume(room, "alice", "PA_999")  # StartSession looks the participant up by identity
    assert again.kinds()[0] == "reconnect"


def test_a_dual_pc_resume_restarts_the_subscribers_ice() -> None:
    room = new_room(single_peer_connection=False)
    token = room.token("alice")
    alice = RawClient(room, headers=[], target=v0_target(access_token=token, protocol="17"))
    assert alice.kinds() == ["join", "refresh_token", "offer"]
    again = RawClient(
        room,
        headers=[],
        target=v0_target(access_token=token, protocol="17", reconnect="1", sid="PA_1"),
    )
    assert again.kinds() == ["reconnect", "update", "room_update", "offer", "refresh_token"]
    assert ice_ufrag(again.signals[3].offer.sdp) == "memory1"


def test_old_protocols_get_no_departures_on_resume() -> None:
    room = new_room(update_interval=0)
    RawClient(room, "alice", target=v1_target(join_request(protocol=8))).connect()
    bob = RawClient(room, "bob").connect()
    room.drop_signal("alice")
    bob.send(leave=spb.LeaveRequest(reason=DisconnectReason.CLIENT_INITIATED))  # type: ignore[arg-type]
    again = resume(room, "alice", "PA_1", protocol=8)
    assert again.kinds() == ["reconnect", "update", "room_update", "refresh_token"]


# -- resuming a participant the room does not have ---------------------------------------------


def test_a_resume_of_an_unknown_participant_is_a_state_mismatch() -> None:
    room = new_room()
    client = RawClient(room, "alice", target=resume_target("PA_1"))
    assert [s.leave for s in client.signals] == [
        leave(DisconnectReason.STATE_MISMATCH, LeaveAction.RECONNECT)
    ]
    assert client.closes == [1000]
    assert dict(room.participants) == {}
    old = RawClient(room, "old", target=resume_target("PA_2", protocol=12))
    assert [s.leave for s in old.signals] == [
        spb.LeaveRequest(reason=DisconnectReason.STATE_MISMATCH, can_reconnect=True)  # type: ignore[arg-type]
    ]
    v0 = RawClient(
        room,
        headers=[],
        target=v0_target(access_token=room.token("bob"), protocol="17", reconnect="1", sid="PA_3"),
    )
    assert v0.kinds() == ["leave"]
    assert outcomes(room) == [
        (T0, "alice", True, "state mismatch"),
        (T0, "old", True, "state mismatch"),
        (T0, "bob", True, "state mismatch"),
    ]


@pytest.mark.parametrize(
    ("remove", "reason"),
    [
        (lambda room: room.leave("alice"), DisconnectReason.PARTICIPANT_REMOVED),
        (
            lambda room: room.leave("alice", action=LeaveAction.RECONNECT),
            DisconnectReason.PARTICIPANT_REMOVED,
        ),
        (lambda room: room.restart(), DisconnectReason.SERVER_SHUTDOWN),
        (lambda room: room.restart(graceful=False), DisconnectReason.SERVER_SHUTDOWN),
    ],
)
def test_a_resume_after_the_participant_is_gone_is_a_state_mismatch(
    remove: object, reason: DisconnectReason
) -> None:
    room = new_room(update_interval=0)
    RawClient(room, "alice").connect()
    remove(room)  # type: ignore[operator]
    again = resume(room, "alice", "PA_1")
    assert [s.leave for s in again.signals] == [
        leave(DisconnectReason.STATE_MISMATCH, LeaveAction.RECONNECT)
    ]


# -- scenarios a client asks for (SignalRequest.simulate) --------------------------------------


def simulate(client: RawClient, **scenario: object) -> None:
    client.send(simulate=spb.SimulateScenario(**scenario))  # type: ignore[arg-type]


def test_speaker_update() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    bob = RawClient(room, "bob").connect()
    old = RawClient(room, "old", target=v1_target(join_request(protocol=2))).connect()
    alice.take(), bob.take(), old.take()
    simulate(alice, speaker_update=3)
    simulate(old, speaker_update=3)  # protocol 2 clients do not get speaker deltas
    [now] = alice.take()
    assert now.speakers_changed == ppb.SpeakersChanged(
        speakers=[{"sid": "PA_1", "level": 0.9, "active": True}]  # type: ignore[list-item]
    )
    room.advance(2.9)
    assert alice.take() == []
    room.advance(0.1)
    [later] = alice.take()
    assert later.speakers_changed == ppb.SpeakersChanged(
        speakers=[{"sid": "PA_1", "level": 0.0, "active": False}]  # type: ignore[list-item]
    )
    assert (bob.take(), old.take()) == ([], [])  # they subscribe to no track of alice's
    simulate(alice, speaker_update=1)
    alice.send(leave=spb.LeaveRequest())
    room.advance(1)
    assert [s.WhichOneof("message") for s in alice.take()] == ["speakers_changed", "leave"]


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [("node_failure", DisconnectReason.SERVER_SHUTDOWN), ("migration", DisconnectReason.MIGRATION)],
)
def test_node_failure_and_migration_close_without_a_leave(
    scenario: str, reason: DisconnectReason
) -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    bob = RawClient(room, "bob").connect()
    alice.take(), bob.take()
    simulate(alice, **{scenario: True})
    assert (alice.signals, alice.closes, alice.peer_closes) == ([], [1000], 1)
    [[gone]] = updates(bob)
    assert (gone.identity, gone.state, gone.disconnect_reason) == ("alice", DISCONNECTED, reason)
    # The client expects to resume: the server no longer has it.
    again = resume(room, "alice", "PA_1")
    assert [s.leave for s in again.signals] == [
        leave(DisconnectReason.STATE_MISMATCH, LeaveAction.RECONNECT)
    ]


def test_server_leave() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    alice.take()
    simulate(alice, server_leave=True)
    assert [s.leave for s in alice.signals] == [
        leave(DisconnectReason.SERVER_SHUTDOWN, LeaveAction.DISCONNECT)
    ]
    assert (alice.closes, alice.peer_closes, dict(room.participants)) == ([1000], 1, {})


def test_switch_candidate_protocol_restarts_ice() -> None:
    room = new_room(single_peer_connection=False)
    token = room.token("alice")
    alice = RawClient(room, headers=[], target=v0_target(access_token=token, protocol="17"))
    alice.connect()
    room.leave("alice", action=LeaveAction.RESUME)  # a cleanup pending: the ICE restart ends it
    dual = RawClient(room, headers=[], target=v0_target(access_token=token, protocol="17"))
    dual.connect()  # (a second session for alice: the first one is replaced)
    dual.take()
    simulate(dual, switch_candidate_protocol=1)
    assert dual.kinds() == ["offer"]
    room.advance(10)
    assert "alice" in room.participants
    single = RawClient(new_room(), "single").connect()
    single.take()
    simulate(single, switch_candidate_protocol=2)
    simulate(single, subscriber_bandwidth=1000)
    simulate(single, leave_request_full_reconnect=True)
    assert single.take() == []


def test_disconnect_signal_on_resume() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    simulate(alice, disconnect_signal_on_resume=True)
    room.advance(4.9)
    first = resume(room, "alice", "PA_1")
    # The resume is answered in full, then its socket is closed (no refresh token).
    assert first.kinds() == ["reconnect", "update", "room_update"]
    assert first.closes == [1000]
    second = resume(room, "alice", "PA_1")  # the scenario is used up
    assert second.kinds()[-1] == "refresh_token" and second.closes == []
    simulate(second, disconnect_signal_on_resume=True)
    room.advance(5)  # expired
    third = resume(room, "alice", "PA_1")
    assert third.closes == []
    assert room.participants["alice"].state == ACTIVE


def test_disconnect_signal_on_resume_without_messages() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    simulate(alice, disconnect_signal_on_resume_no_messages=True)
    first = resume(room, "alice", "PA_1")
    assert first.rejected == Rejected(500, "connection closed by media")
    assert alice.closes == [1000]  # the old socket was swapped out, then the new one closed
    assert outcomes(room)[-1] == (T0, "alice", True, "rejected 500")
    alice.publish(user(b"still routed", sequence=1))  # the peer connection is untouched
    assert room.dropped == []
    second = resume(room, "alice", "PA_1")
    assert second.kinds()[0] == "reconnect"
    simulate(second, disconnect_signal_on_resume_no_messages=True)
    room.advance(5)
    assert resume(room, "alice", "PA_1").kinds()[0] == "reconnect"


# -- the network ------------------------------------------------------------------------------


def test_a_short_cut_holds_the_signal_and_reliable_data_and_loses_lossy() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    bob = RawClient(room, "bob").connect()
    alice.take(), bob.take()
    room.disconnect("alice")
    alice.send(ping_req=spb.Ping(timestamp=7))  # waits in the socket
    alice.publish(user(b"up", sequence=1))
    alice.publish(user(b"up lossy"), Channel.LOSSY)
    bob.publish(user(b"down", sequence=1))
    bob.publish(user(b"down lossy"), Channel.LOSSY)
    room.update_participant("bob", metadata="m")  # a signal message to alice waits too
    assert resume(room, "alice", "PA_1").rejected == Unreachable(refused=False)
    room.advance(14.9)
    assert (alice.signals, alice.data, payloads(bob)) == ([], [], [])
    room.restore("alice")
    room.restore("alice")  # idempotent
    assert alice.kinds() == ["update", "room_update", "pong_resp"]  # in the order sent
    assert payloads(alice) == [b"down"]
    assert payloads(bob) == [b"up"]
    assert [d.reason for d in room.dropped] == [
        "lost: the sender's network is cut",
        "lost: the receiver's network is cut",
    ]
    assert outcomes(room)[-1] == (T0, "alice", True, "unreachable")
    room.advance(30)
    assert alice.peer_failures == 0 and room.participants["alice"].state == ACTIVE


def test_a_long_cut_fails_the_peer_connection_and_removes_the_participant() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    bob = RawClient(room, "bob").connect()
    alice.take(), bob.take()
    room.disconnect("alice", duration=30)
    alice.publish(user(b"up", sequence=1))
    bob.publish(user(b"down", sequence=1))
    room.advance(15)  # ICE gives up at both ends: what the connection held is lost
    assert alice.peer_failures == 1
    assert [(d.sender, d.receiver, d.reason) for d in room.dropped] == [
        ("alice", None, "lost with the sender's peer connection"),
        ("bob", "alice", "lost with the receiver's peer connection"),
    ]
    alice.publish(user(b"dead link", sequence=2))
    assert room.dropped[-1].reason == "the sender's peer connection is closed"
    room.advance(4.9)
    assert "alice" in room.participants
    room.advance(0.1)  # 5 s after the failure: removed
    [[gone]] = updates(bob)
    assert (gone.identity, gone.disconnect_reason) == ("alice", DisconnectReason.CONNECTION_TIMEOUT)
    assert alice.signals == []  # the leaves and the close wait in the cut network
    room.advance(10)  # t = 130: the network is back, and what waited in it arrives
    # (The removal's leave{DISCONNECT} was never written: the socket was closed at 115.)
    assert leaves(alice) == [leave(DisconnectReason.CONNECTION_TIMEOUT, LeaveAction.RESUME)]
    assert alice.closes == [1000]


def test_a_cut_with_a_signal_reset_and_a_participant_never_connected() -> None:
    room = new_room(update_interval=0)
    early = RawClient(room, "early")
    early.take()
    room.disconnect("early")
    room.advance(59.9)
    assert "early" in room.participants  # a silent socket is never noticed
    room.advance(0.1)  # the join timeout: not ACTIVE a minute after joining
    assert "early" not in room.participants
    room.restore("early")
    assert leaves(early) == [leave(DisconnectReason.JOIN_FAILURE, LeaveAction.DISCONNECT)]
    late = RawClient(room, "late")
    room.disconnect("late", signal_reset=True)  # the reset is seen at once: removed
    assert (late.closes, "late" in room.participants) == ([None], False)
    with pytest.raises(ValueError, match="non-negative"):
        room.disconnect("alice", duration=-1)


def test_a_peer_connection_failure() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    old = RawClient(room, "old", target=v1_target(join_request(protocol=12))).connect()
    alice.take(), old.take()
    room.uplink("alice").delay(1)
    alice.publish(user(b"in flight", sequence=1))
    room.fail_peer("alice")
    room.fail_peer("old")
    assert [s.leave for s in alice.signals] == [
        leave(DisconnectReason.CONNECTION_TIMEOUT, LeaveAction.RESUME)
    ]
    assert old.signals == []  # protocol 12: no leave, only the close
    assert (alice.closes, alice.peer_failures, old.closes) == ([1000], 1, [1000])
    room.advance(1)
    assert room.dropped[-1].reason == "lost with the sender's peer connection"
    room.advance(3)
    again = resume(room, "alice", "PA_1")  # t = 104: the cleanup (due at 105) is cancelled
    assert again.kinds()[0] == "reconnect"
    assert again.signals[0].reconnect.last_message_seq == 0
    again.connect()  # the ICE restart: the same session's ufrag
    assert ice_ufrag(again.signals[-1].answer.sdp) == "memory1"
    room.advance(10)
    assert sorted(room.participants) == ["alice"]


def test_restart_downtime_refuses_connections() -> None:
    room = new_room()
    alice = RawClient(room, "alice").connect()
    room.restart(graceful=False, downtime=10)
    assert (alice.closes, room.serving) == ([None], False)
    refused = RawClient(room, "alice", target=resume_target("PA_1"))
    assert refused.rejected == Unreachable(refused=True)
    room.advance(9.9)
    assert not room.serving
    room.advance(0.1)
    assert room.serving
    carol = RawClient(room, "carol").connect()
    join = carol.signals[0].join
    assert (join.room.sid, join.room.creation_time_ms) == ("RM_2", UNIX0 + 10_000)
    assert outcomes(room)[-2:] == [
        (T0, "alice", True, "refused"),
        (110.0, "carol", False, "joined"),
    ]
    room.advance(4.9)
    assert alice.peer_failures == 0
    room.advance(0.1)  # 15 s after the crash, no consent checks answered: ICE gives up
    assert alice.peer_failures == 1
    with pytest.raises(ValueError, match="downtime"):
        room.restart(downtime=-1)


def test_the_upgrade_record() -> None:
    room = new_room()
    RawClient(room, "alice", target="/nowhere")
    RawClient(room, token="not.a.token")
    RawClient(room, token="a.!!!.b")
    assert room.upgrades == [
        Upgrade(at=T0, identity="alice", resume=False, outcome="rejected 404"),
        Upgrade(at=T0, identity="", resume=False, outcome="rejected 401"),
        Upgrade(at=T0, identity="", resume=False, outcome="rejected 401"),
    ]


def test_a_hidden_participant_resuming_alone_gets_no_update() -> None:
    room = new_room()
    RawClient(room, "ghost", hidden=True).connect()
    again = resume(room, "ghost", "PA_1")
    assert again.kinds() == ["reconnect", "room_update", "refresh_token"]


def test_a_failure_restarts_a_pending_cleanup_and_needs_no_peer_connection() -> None:
    room = new_room(update_interval=0)
    RawClient(room, "alice").connect()
    room.leave("alice", action=LeaveAction.RESUME)  # cleanup due at 105
    room.advance(3)
    room.fail_peer("alice")  # setupDisconnectTimer again: due at 108
    room.advance(4.9)
    assert "alice" in room.participants
    room.advance(0.1)
    assert "alice" not in room.participants
    early = RawClient(room, "early")  # no peer connection yet
    room.fail_peer("early")
    assert (leaves(early)[-1], early.closes, early.peer_failures) == (
        leave(DisconnectReason.CONNECTION_TIMEOUT, LeaveAction.RESUME),
        [1000],
        0,
    )


def test_a_second_cut_extends_the_first() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    bob = RawClient(room, "bob").connect()
    room.disconnect("alice", duration=5)
    room.advance(3)
    room.disconnect("alice", duration=5)  # the same outage: its ICE clock keeps running
    bob.publish(user(b"held", sequence=1))
    room.advance(2)  # the first restore (at 105) ends the cut
    assert payloads(alice) == [b"held"]
    room.advance(30)
    assert alice.peer_failures == 0


def test_a_crash_with_a_participant_not_yet_connected() -> None:
    room = new_room()
    early = RawClient(room, "early")
    room.restart(graceful=False)
    room.advance(20)
    assert (early.closes, early.peer_failures) == ([None], 0)


def test_packets_in_flight_to_a_peer_connection_that_changed() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    bob = RawClient(room, "bob").connect()
    carol = RawClient(room, "carol").connect()
    room.link("alice", "bob").delay(1)
    room.link("alice", "carol").delay(1)
    alice.publish(user(b"to both", sequence=1))
    room.fail_peer("bob")  # and it comes back (a resume, an ICE restart) before the packet
    resume(room, "bob", "PA_2").connect()
    bob.peer.close()  # type: ignore[union-attr]  (the old connection, already replaced: no-op)
    carol.peer.close()  # type: ignore[union-attr]
    room.advance(1)
    assert [(d.receiver, d.reason) for d in room.dropped] == [
        ("bob", "lost with the receiver's peer connection"),
        ("carol", "the receiver's data channel is not open"),
    ]
