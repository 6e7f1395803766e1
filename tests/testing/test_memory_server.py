"""The server rules of `lkproto.testing.MemoryRoom`, byte for byte, with hand-written clients.

Each test drives `RawClient`s (raw_client.py) that send SignalRequests and DataPackets by hand
and records exactly what the room sends back, at literal virtual times. The facts asserted are
livekit-server v1.13.5's, as listed in lkproto/testing/_server.py and observed against the real
server (the parity suite checks the same through real clients).
"""

from __future__ import annotations

import base64
import json

import pytest
from raw_client import RawClient, join_request, v0_target, v1_target

from lkproto import Channel, DisconnectReason, LeaveAction
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto.testing import DroppedPacket, MemoryRoom, Rejected, ice_ufrag

T0 = 100.0
UNIX0 = 1_700_000_000_000
JOINING, JOINED, ACTIVE, DISCONNECTED = 0, 1, 2, 3


def new_room(**kwargs: object) -> MemoryRoom:
    return MemoryRoom(now=T0, unix_time_ms=UNIX0, **kwargs)  # type: ignore[arg-type]


def claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


# -- joining --------------------------------------------------------------------------------------


def test_join_response_refresh_token_and_answer() -> None:
    room = new_room()
    alice = RawClient(room, "alice", name="Alice", attributes={"k": "v"})
    assert alice.kinds() == ["join", "refresh_token"]
    join = alice.signals[0].join
    expected_room = ppb.Room(
        sid="RM_1",
        name="room",
        empty_timeout=300,
        departure_timeout=20,
        creation_time=UNIX0 // 1000,
        creation_time_ms=UNIX0,
    )
    me = ppb.ParticipantInfo(
        sid="PA_1",
        identity="alice",
        name="Alice",
        state=JOINING,  # type: ignore[arg-type]
        joined_at=UNIX0 // 1000,
        joined_at_ms=UNIX0,
        version=0,
        permission=ppb.ParticipantPermission(
            can_subscribe=True, can_publish=True, can_publish_data=True
        ),
        attributes={"k": "v"},
        client_protocol=2,
        capabilities=[ppb.ClientInfo.CAP_COMPRESSION_DEFLATE_RAW],
    )
    assert join == spb.JoinResponse(
        room=expected_room,
        participant=me,
        server_version="1.13.5",
        ping_timeout=15,
        ping_interval=5,
        server_info=ppb.ServerInfo(version="1.13.5", protocol=17, node_id="ND_memory"),
        fast_publish=True,
    )
    token = alice.signals[1].refresh_token
    assert claims(token)["sub"] == "alice"
    assert claims(token)["video"] == {
        "room": "room",
        "roomJoin": True,
        "canPublish": True,
        "canSubscribe": True,
        "canPublishData": True,
        "canUpdateOwnMetadata": False,
        "hidden": False,
    }
    alice.take()
    alice.connect()
    [answer] = alice.take()
    assert answer.answer.type == "answer"
    assert ice_ufrag(answer.answer.sdp) == "memory1"
    assert "a=max-message-size:65535" in answer.answer.sdp
    assert room.participants["alice"].state == ACTIVE
    assert room.participants["alice"].version == 2
    assert room.now == T0


def test_others_in_the_join_response_and_hidden_ones_left_out() -> None:
    room = new_room()
    RawClient(room, "ghost", hidden=True).connect()
    RawClient(room, "alice").connect()
    bob = RawClient(room, "bob")
    others = bob.signals[0].join.other_participants
    assert [(p.identity, p.state, p.version) for p in others] == [("alice", ACTIVE, 2)]
    assert sorted(room.participants) == ["alice", "bob", "ghost"]


def test_join_request_overrides_and_gzip() -> None:
    room = new_room()
    request = join_request(
        metadata="from-join", participant_attributes={"k": "join", "empty": "", "new": "1"}
    )
    alice = RawClient(
        room, "alice", target=v1_target(request, gzip=True), metadata="tok", attributes={"k": "t"}
    )
    me = alice.signals[0].join.participant
    assert (me.metadata, dict(me.attributes)) == ("from-join", {"k": "join", "new": "1"})


@pytest.mark.parametrize(
    ("target", "status", "body"),
    [
        ("/rtc/v2", 404, "404 page not found"),
        ("/rtc/v1", 400, "join_request is required"),
        ("/rtc/v1?join_request=%25%25", 400, "cannot base64 decode wrapped join request"),
        ("/rtc/v1?join_request=AAAA", 400, "cannot unmarshal wrapped join request"),
        (
            "/rtc/v1?join_request="
            + base64.urlsafe_b64encode(
                spb.WrappedJoinRequest(compression=1, join_request=b"not gzip").SerializeToString()
            ).decode(),
            400,
            "cannot unmarshal join request",
        ),
        (v0_target(protocol="x"), 400, "cannot parse the protocol version"),
        (v0_target(attributes="!!"), 400, "cannot decode attributes"),
    ],
)
def test_bad_upgrades_are_refused(target: str, status: int, body: str) -> None:
    client = RawClient(new_room(), "alice", target=target)
    assert client.rejected == Rejected(status, body)
    assert client.signals == []


def test_tokens_are_checked_like_the_server_does() -> None:
    room = new_room()
    other = MemoryRoom(now=T0, unix_time_ms=UNIX0, api_secret="another-secret-0123456789abcdefgh")
    forged = other.token("alice")
    assert RawClient(room, token=forged).rejected == Rejected(
        401, f"invalid token: {forged}, error: signature is invalid"
    )
    assert RawClient(room, headers=[]).rejected == Rejected(401, "permissions denied")
    elsewhere = MemoryRoom("elsewhere", now=T0, unix_time_ms=UNIX0).token("alice")
    assert RawClient(room, token=elsewhere).rejected == Rejected(401, "permissions denied")
    assert RawClient(room, token=room.token("")).rejected == Rejected(
        400, "identity cannot be empty"
    )
    short = room.token("alice", ttl=60)
    room.advance(60)
    assert RawClient(room, token=short).rejected == Rejected(
        401, f"invalid token: {short}, error: token is expired"
    )


def test_the_v0_path_with_a_query_token_and_a_subscriber_offer() -> None:
    room = new_room(single_peer_connection=False)
    assert RawClient(room, "x", target=v1_target()).rejected == Rejected(404, "404 page not found")
    attrs_blob = base64.urlsafe_b64encode(json.dumps({"a": "1"}).encode()).decode().rstrip("=")
    alice = RawClient(
        room,
        headers=[],
        target=v0_target(
            access_token=room.token("alice"),
            protocol="17",
            client_protocol="1",
            capabilities="CAP_COMPRESSION_DEFLATE_RAW,CAP_BOGUS",
            metadata="m",
            attributes=attrs_blob,
        ),
    )
    assert alice.kinds() == ["join", "refresh_token", "offer"]
    join = alice.signals[0].join
    assert join.subscriber_primary
    me = join.participant
    assert (me.client_protocol, list(me.capabilities), me.metadata, dict(me.attributes)) == (
        1,
        [2],
        "m",
        {"a": "1"},
    )
    assert ice_ufrag(alice.signals[2].offer.sdp) == "memory1"
    alice.send(answer=spb.SessionDescription(type="answer", sdp="v=0"))
    assert alice.kinds() == ["join", "refresh_token", "offer"]  # no reply to an answer


def test_a_client_that_hangs_up_before_the_join_is_forgotten() -> None:
    room = new_room()
    client = RawClient.__new__(RawClient)  # accept by hand, then hang up before the join runs
    client.signals, client.closes = [], []
    link = room.accept(v1_target(), [("Authorization", f"Bearer {room.token('a')}")], client)
    assert not isinstance(link, Rejected)
    link.close()
    room.run_until_idle()
    assert (client.signals, dict(room.participants)) == ([], {})


def test_a_second_join_with_the_same_identity_replaces_the_first() -> None:
    room = new_room()
    watcher = RawClient(room, "watcher").connect()
    first = RawClient(room, "alice").connect()
    room.advance(3)
    watcher.take()
    second = RawClient(room, "alice").connect()
    assert first.signals[-1].leave == spb.LeaveRequest(
        reason=DisconnectReason.DUPLICATE_IDENTITY,
        action=LeaveAction.DISCONNECT,  # type: ignore[arg-type]
    )
    assert (first.closes, first.peer_closes) == ([1000], 1)
    assert room.participants["alice"].sid == "PA_3"
    room.advance(3)
    # Only the new session is announced (the old one's DISCONNECTED is superseded).
    assert watcher.updates() == [[("alice", ACTIVE, 2)]]
    assert second.signals[0].join.participant.sid == "PA_3"


# -- participant updates ---------------------------------------------------------------------------


def test_state_changes_are_batched_on_the_three_second_tick() -> None:
    room = new_room()
    alice = RawClient(room, "alice").connect()
    room.advance(1.5)
    bob = RawClient(room, "bob").connect()
    alice.take(), bob.take()
    room.advance(1.4)  # t = 102.9
    assert alice.signals == bob.signals == []
    room.advance(0.1)  # t = 103.0, the first tick after the room's creation at 100
    assert alice.updates() == bob.updates() == [[("alice", ACTIVE, 2), ("bob", ACTIVE, 2)]]
    alice.take(), bob.take()
    bob.send(leave=spb.LeaveRequest(reason=DisconnectReason.CLIENT_INITIATED))  # type: ignore[arg-type]
    assert bob.signals[-1].leave.action == LeaveAction.DISCONNECT
    assert (bob.closes, bob.peer_closes) == ([1000], 1)
    room.advance(2.9)
    assert alice.updates() == []
    room.advance(0.1)  # t = 106
    [update] = [s for s in alice.take() if s.WhichOneof("message") == "update"]
    [gone] = update.update.participants
    assert (gone.identity, gone.state, gone.version, gone.disconnect_reason) == (
        "bob",
        DISCONNECTED,
        3,
        DisconnectReason.CLIENT_INITIATED,
    )


def test_update_interval_zero_sends_at_once_and_hidden_ones_stay_silent() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    assert alice.updates() == [[("alice", JOINED, 1)], [("alice", ACTIVE, 2)]]
    ghost = RawClient(room, "ghost", hidden=True).connect()
    alice.take(), ghost.take()
    ghost.send(leave=spb.LeaveRequest(reason=DisconnectReason.USER_REJECTED))  # type: ignore[arg-type]
    room.advance(10)
    # The ghost came and went between two room ticks: one room update, counting Alice only.
    assert [s.room_update.room.num_participants for s in alice.signals] == [1]


def test_room_updates_on_the_five_second_tick() -> None:
    room = new_room()
    alice = RawClient(room, "alice").connect()
    RawClient(room, "bob").connect()
    room.advance(4.9)
    assert "room_update" not in alice.kinds()
    room.advance(0.1)
    [update] = [
        s.room_update.room for s in alice.signals if s.WhichOneof("message") == "room_update"
    ]
    assert (update.sid, update.num_participants) == ("RM_1", 2)
    carol = RawClient(room, "carol")
    assert carol.signals[0].join.room.num_participants == 2  # as of the last tick
    alice.take()
    room.advance(5)
    assert [
        s.room_update.room.num_participants for s in alice.signals if s.room_update.room.sid
    ] == [3]
    alice.take()
    room.advance(5)  # nothing changed: no update
    assert alice.signals == []


def test_metadata_requests() -> None:
    room = new_room()
    alice = RawClient(room, "alice", can_update_own_metadata=True).connect()
    bob = RawClient(room, "bob").connect()
    ghost = RawClient(room, "ghost", hidden=True, can_update_own_metadata=True).connect()
    room.advance(3)
    for c in (alice, bob, ghost):
        c.take()

    def update(client: RawClient, request_id: int, **fields: object) -> spb.RequestResponse:
        client.send(
            update_metadata=spb.UpdateParticipantMetadata(request_id=request_id, **fields)  # type: ignore[arg-type]
        )
        return [
            s.request_response
            for s in client.signals
            if s.WhichOneof("message") == "request_response"
        ][-1]

    denied = update(bob, 1, attributes={"x": "1"})
    assert (denied.request_id, denied.reason, denied.message) == (
        1,
        spb.RequestResponse.NOT_ALLOWED,
        "does not have permission to update own metadata",
    )
    assert denied.update_metadata.attributes == {"x": "1"}
    for request_id, fields, message in [
        (2, {"name": "n" * 257}, "exceeds name length limit"),
        (3, {"metadata": "m" * (512 * 1024 + 1)}, "exceeds metadata size limit"),
        (4, {"attributes": {"k": "v" * (64 * 1024)}}, "exceeds attributes size limit"),
    ]:
        refused = update(alice, request_id, **fields)
        assert (refused.reason, refused.message) == (spb.RequestResponse.LIMIT_EXCEEDED, message)
    alice.take(), bob.take()
    ok = update(alice, 5, name="Alice", metadata="m", attributes={"a": "1"})
    assert (ok.request_id, ok.reason) == (5, spb.RequestResponse.OK)
    # Three changes: three immediate broadcasts (each with a bumped version) and tokens.
    assert alice.kinds() == ["update", "refresh_token"] * 3 + ["request_response"]
    assert bob.updates() == [[("alice", ACTIVE, 3)], [("alice", ACTIVE, 4)], [("alice", ACTIVE, 5)]]
    assert claims(alice.signals[-2].refresh_token)["attributes"] == {"a": "1"}
    alice.take(), bob.take()
    # The same values again change nothing but the (always dirty) attributes; "" deletes.
    update(alice, 6, name="Alice", metadata="m", attributes={"a": ""})
    assert bob.updates() == [[("alice", ACTIVE, 6)]]
    assert dict(bob.signals[0].update.participants[0].attributes) == {}
    # A hidden participant's change goes to itself only.
    bob.take(), ghost.take()
    update(ghost, 1, metadata="boo")
    assert bob.signals == []
    assert ghost.updates() == [[("ghost", ACTIVE, 3)]]


def test_old_clients_get_no_ok_response_and_can_reconnect_leaves() -> None:
    room = new_room()
    old = RawClient(
        room, "old", target=v1_target(join_request(protocol=12)), can_update_own_metadata=True
    )
    old.connect()
    old.take()
    old.send(update_metadata=spb.UpdateParticipantMetadata(request_id=1, metadata="m"))
    assert old.kinds() == ["update", "refresh_token"]
    room.leave("old", action=LeaveAction.RECONNECT)
    assert old.signals[-1].leave == spb.LeaveRequest(
        reason=DisconnectReason.PARTICIPANT_REMOVED,
        can_reconnect=True,  # type: ignore[arg-type]
    )


def test_pings_and_unknown_requests() -> None:
    room = new_room()
    alice = RawClient(room, "alice").connect()
    alice.take()
    room.advance(2.5)
    alice.send(ping_req=spb.Ping(timestamp=42, rtt=7))
    alice.send(ping=43)
    alice.send(trickle=spb.TrickleRequest(candidateInit="{}"))
    assert [s.pong_resp for s in alice.signals[:1]] == [
        spb.Pong(last_ping_timestamp=42, timestamp=UNIX0 + 2500)
    ]
    assert alice.signals[1].pong == UNIX0 + 2500
    assert len(alice.signals) == 2
    assert alice.link is not None
    alice.link.send(b"\xff\xff not a request")
    room.run_until_idle()
    assert alice.closes == [1002]
    alice.send(ping=44)  # the socket is closed: nothing more arrives
    assert len(alice.signals) == 2


# -- data packets --------------------------------------------------------------------------------


def user(payload: bytes, **fields: object) -> dpb.DataPacket:
    return dpb.DataPacket(user=dpb.UserPacket(payload=payload), **fields)  # type: ignore[arg-type]


def test_forwarded_packets_are_stamped_exactly() -> None:
    room = new_room()
    alice = RawClient(room, "alice").connect()
    bob = RawClient(room, "bob").connect()
    alice.publish(
        dpb.DataPacket(
            user=dpb.UserPacket(payload=b"hi", topic="t", participant_identity="mallory"),
            participant_identity="mallory",
            participant_sid="PA_fake",
            sequence=1,
            kind=dpb.DataPacket.LOSSY,
        )
    )
    [(channel, packet)] = bob.take_data()
    assert channel is Channel.RELIABLE
    assert packet == dpb.DataPacket(
        kind=dpb.DataPacket.RELIABLE,
        user=dpb.UserPacket(
            payload=b"hi", topic="t", participant_sid="PA_1", participant_identity="alice"
        ),
        participant_identity="alice",
        participant_sid="PA_1",
        sequence=1,
    )
    assert alice.data == []  # never echoed to the sender
    alice.publish(user(b"fast", destination_identities=["bob"]), Channel.LOSSY)
    [(channel, packet)] = bob.take_data()
    assert (channel, packet.kind, list(packet.user.destination_identities)) == (
        Channel.LOSSY,
        dpb.DataPacket.LOSSY,
        ["bob"],
    )


def test_destinations_sids_and_absent_identities() -> None:
    room = new_room()
    alice = RawClient(room, "alice").connect()
    bob = RawClient(room, "bob").connect()
    carol = RawClient(room, "carol").connect()
    alice.publish(user(b"1", destination_identities=["carol", "nobody"], sequence=1))
    alice.publish(
        dpb.DataPacket(user=dpb.UserPacket(payload=b"2", destination_sids=["PA_2"]), sequence=2)
    )
    alice.publish(
        dpb.DataPacket(
            user=dpb.UserPacket(payload=b"3", destination_identities=["bob"]), sequence=3
        )
    )
    alice.publish(user(b"4", destination_identities=["nobody"], sequence=4))
    assert [p.user.payload for _, p in bob.take_data()] == [b"2", b"3"]
    assert [p.user.payload for _, p in carol.take_data()] == [b"1"]
    assert list(room.dropped) == []  # an absent destination is skipped, not a drop


def test_hidden_senders_and_what_is_dropped() -> None:
    room = new_room()
    ghost = RawClient(room, "ghost", hidden=True).connect()
    mute = RawClient(room, "mute", can_publish_data=False).connect()
    bob = RawClient(room, "bob").connect()
    ghost.publish(user(b"boo", sequence=1))
    [(_, packet)] = bob.take_data()
    assert (packet.participant_identity, packet.participant_sid) == ("", "PA_1")
    assert (packet.user.participant_identity, packet.user.participant_sid) == ("", "")
    mute.publish(user(b"x", sequence=1))
    ghost.publish(user(b"again", sequence=1))  # not above the last sequence from the ghost
    ghost.publish(b"\x0a\xff garbage")
    ghost.publish(dpb.DataPacket(metrics={}))  # type: ignore[arg-type]
    ghost.publish(dpb.DataPacket(transcription=dpb.Transcription(track_id="t"), sequence=5))
    assert bob.data == []
    assert [(d.sender, d.receiver, d.reason) for d in room.dropped] == [
        ("mute", None, "the sender lacks canPublishData"),
        ("ghost", None, "out of order reliable packet"),
        ("ghost", None, "unparsable"),
        ("ghost", None, "metrics are not forwarded as data"),
        ("ghost", None, "transcriptions only travel from agents"),
    ]
    assert room.dropped[0].packet().user.payload == b"x"
    ghost.publish(user(b"lossy with a stale sequence", sequence=1), Channel.LOSSY)
    assert len(bob.take_data()) == 1  # sequences are checked on the reliable channel only


def test_agents_may_speak_for_others() -> None:
    room = new_room()
    agent = RawClient(room, "agent", kind=4).connect()
    bob = RawClient(room, "bob").connect()
    agent.publish(
        dpb.DataPacket(transcription=dpb.Transcription(track_id="t"), participant_identity="bob")
    )
    agent.publish(
        dpb.DataPacket(chat_message=dpb.ChatMessage(message="hi"), participant_identity="bob")
    )
    header = dpb.DataStream.Header(
        stream_id="s", topic="lk.chat", text_header=dpb.DataStream.TextHeader()
    )
    agent.publish(dpb.DataPacket(stream_header=header, participant_identity="bob"))
    byte_header = dpb.DataStream.Header(
        stream_id="b", byte_header=dpb.DataStream.ByteHeader(name="f")
    )
    agent.publish(dpb.DataPacket(stream_header=byte_header, participant_identity="bob"))
    got = [p for _, p in bob.take_data()]
    assert [p.participant_identity for p in got] == ["agent", "bob", "bob", "agent"]
    assert got[1].chat_message.generated and got[2].stream_header.text_header.generated
    RawClient(room, "carol").connect().publish(
        dpb.DataPacket(chat_message=dpb.ChatMessage(message="x"), participant_identity="bob")
    )
    [(_, packet)] = bob.take_data()
    assert (packet.participant_identity, packet.chat_message.generated) == ("carol", False)


def test_user_packet_nonces_and_oversized_messages() -> None:
    room = new_room()
    alice = RawClient(room, "alice").connect()
    bob = RawClient(room, "bob").connect()
    nonce = bytes(range(16))
    alice.publish(dpb.DataPacket(user=dpb.UserPacket(payload=b"a", nonce=nonce)))
    alice.publish(dpb.DataPacket(user=dpb.UserPacket(payload=b"b", nonce=nonce)))
    alice.publish(dpb.DataPacket(user=dpb.UserPacket(payload=b"c", nonce=b"short")))
    alice.publish(dpb.DataPacket(user=dpb.UserPacket(payload=b"d", nonce=b"short")))
    assert [p.user.payload for _, p in bob.take_data()] == [b"a", b"c", b"d"]
    alice.publish(user(b"x" * 65_536))
    assert bob.data == []
    assert [d.reason for d in room.dropped] == ["duplicate nonce", "over the SCTP max-message-size"]


def test_a_receiver_without_an_open_data_channel_loses_packets() -> None:
    room = new_room()
    alice = RawClient(room, "alice").connect()
    late = RawClient(room, "late")  # joined, no peer connection yet
    alice.publish(user(b"too early"))
    assert late.data == []
    assert [(d.receiver, d.reason) for d in room.dropped] == [
        ("late", "the receiver's data channel is not open")
    ]


def test_server_data_and_room_metadata() -> None:
    room = new_room()
    alice = RawClient(room, "alice").connect()
    bob = RawClient(room, "bob").connect()
    alice.take(), bob.take()
    room.send_data(b"sys", topic="t", destination_identities=["bob"], reliable=False)
    room.send_data(b"all")
    [(channel, packet)] = bob.take_data()[:1]
    assert (channel, packet) == (
        Channel.LOSSY,
        dpb.DataPacket(
            kind=dpb.DataPacket.LOSSY,
            user=dpb.UserPacket(payload=b"sys", topic="t", destination_identities=["bob"]),
            destination_identities=["bob"],
        ),
    )
    assert [p.user.payload for _, p in alice.take_data()] == [b"all"]
    room.set_metadata("hello")
    assert [s.room_update.room.metadata for s in alice.take()] == ["hello"]


def test_admin_updates_and_permissions() -> None:
    room = new_room()
    alice = RawClient(room, "alice").connect()
    bob = RawClient(room, "bob").connect()
    room.advance(3)
    alice.take(), bob.take()
    room.update_participant("bob", attributes={"r": "x"}, permission={"can_publish_data": False})
    assert alice.updates() == [[("bob", ACTIVE, 3)], [("bob", ACTIVE, 4)]]
    assert not alice.signals[-1].update.participants[0].permission.can_publish_data
    bob.take()
    room.update_participant("bob", permission={"can_publish_data": False})  # no change
    assert bob.signals == []
    bob.publish(user(b"muted"))
    assert room.dropped[-1].reason == "the sender lacks canPublishData"
    with pytest.raises(KeyError, match="'nobody' is not in the room"):
        room.update_participant("nobody", name="x")


# -- leaving, cuts and restarts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (DisconnectReason.CLIENT_INITIATED, DisconnectReason.CLIENT_INITIATED),
        (DisconnectReason.USER_UNAVAILABLE, DisconnectReason.USER_UNAVAILABLE),
        (DisconnectReason.AGENT_ERROR, DisconnectReason.AGENT_ERROR),
        (DisconnectReason.ROOM_DELETED, DisconnectReason.CLIENT_INITIATED),
    ],
)
def test_client_leave_reasons(reason: DisconnectReason, expected: DisconnectReason) -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    bob = RawClient(room, "bob").connect()
    alice.take()
    bob.send(leave=spb.LeaveRequest(reason=reason))  # type: ignore[arg-type]
    [[gone]] = [s.update.participants for s in alice.signals if s.WhichOneof("message") == "update"]
    assert gone.disconnect_reason == expected


def test_server_leave_disconnect() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    bob = RawClient(room, "bob").connect()
    alice.take(), bob.take()
    room.leave("bob")
    assert [s.leave for s in bob.signals] == [
        spb.LeaveRequest(reason=DisconnectReason.PARTICIPANT_REMOVED, action=LeaveAction.DISCONNECT)  # type: ignore[arg-type]
    ]
    assert (bob.closes, bob.peer_closes) == ([1000], 1)
    assert alice.updates() == [[("bob", DISCONNECTED, 3)]]
    bob.publish(user(b"after"))  # its peer link is dead now
    assert room.dropped[-1].reason == "the sender is not in the room"


def test_server_leave_resume_keeps_the_participant_for_five_seconds() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    bob = RawClient(room, "bob").connect()
    alice.take(), bob.take()
    room.leave("bob", action=LeaveAction.RESUME, reason=DisconnectReason.MIGRATION)
    assert [s.leave for s in bob.signals] == [
        spb.LeaveRequest(reason=DisconnectReason.MIGRATION, action=LeaveAction.RESUME)  # type: ignore[arg-type]
    ]
    assert (bob.closes, bob.peer_closes) == ([1000], 0)
    bob.publish(user(b"still here"))  # the peer connection is still up
    assert [p.user.payload for _, p in alice.take_data()] == [b"still here"]
    room.advance(4.9)
    assert "bob" in room.participants
    room.advance(0.1)
    assert "bob" not in room.participants
    [[gone]] = [s.update.participants for s in alice.signals if s.WhichOneof("message") == "update"]
    assert (gone.state, gone.disconnect_reason) == (
        DISCONNECTED,
        DisconnectReason.CONNECTION_TIMEOUT,
    )
    assert bob.peer_closes == 1


def test_server_leave_reconnect_removes_at_once() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    bob = RawClient(room, "bob").connect()
    alice.take(), bob.take()
    room.leave("bob", action=LeaveAction.RECONNECT, reason=DisconnectReason.STATE_MISMATCH)
    assert bob.kinds() == ["leave"]
    assert bob.signals[0].leave.action == LeaveAction.RECONNECT
    assert (bob.closes, bob.peer_closes, "bob" in room.participants) == ([1000], 1, False)
    assert [[(i, s) for i, s, _ in u] for u in alice.updates()] == [[("bob", DISCONNECTED)]]


def test_signal_and_peer_closed_by_the_client() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    early = RawClient(room, "early")
    assert early.link is not None
    early.link.close()  # no peer connection yet: removed at once
    room.run_until_idle()
    assert "early" not in room.participants
    bob = RawClient(room, "bob").connect()
    assert bob.link is not None and bob.peer is not None
    bob.link.close()  # the peer connection is still up: bob stays
    room.advance(30)
    assert "bob" in room.participants
    bob.peer.close()
    bob.peer.close()
    room.advance(4.9)
    assert "bob" in room.participants
    room.advance(0.1)
    assert room.participants.keys() == {"alice"}
    assert alice.updates()[-1] == [("bob", DISCONNECTED, 3)]
    assert bob.closes == []  # the server never closed bob's socket: bob did


def test_a_cut_participant_hears_nothing_and_leaves_after_twenty_seconds() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    bob = RawClient(room, "bob").connect()
    alice.take(), bob.take()
    room.disconnect("bob")
    alice.publish(user(b"lost"))
    bob.publish(user(b"lost too"))
    bob.send(ping=1)
    room.advance(19.9)
    assert (bob.signals, bob.data, alice.data, bob.closes) == ([], [], [], [])
    assert "bob" in room.participants
    room.advance(0.1)
    assert "bob" not in room.participants
    [[gone]] = [s.update.participants for s in alice.signals if s.WhichOneof("message") == "update"]
    assert gone.disconnect_reason == DisconnectReason.CONNECTION_TIMEOUT
    # Its peer connection failed at 15 s (ICE, at both ends); the rest waits in the network.
    assert (bob.signals, bob.closes, bob.peer_closes, bob.peer_failures) == ([], [], 0, 1)
    assert [d.reason for d in room.dropped] == [
        "lost with the receiver's peer connection",
        "lost with the sender's peer connection",
    ]
    with pytest.raises(KeyError):
        room.disconnect("bob")


def test_a_signal_reset() -> None:
    room = new_room(update_interval=0)
    bob = RawClient(room, "bob").connect()
    early = RawClient(room, "early")
    room.disconnect("bob", signal_reset=True)
    room.disconnect("early", signal_reset=True)
    assert (bob.closes, early.closes) == ([None], [None])
    assert room.participants.keys() == {"bob"}  # early never connected: gone at once
    room.advance(20)
    assert dict(room.participants) == {}


def test_graceful_restart_and_crash() -> None:
    room = new_room()
    alice = RawClient(room, "alice").connect()
    bob = RawClient(room, "bob").connect()
    alice.take(), bob.take()
    room.advance(1)
    room.restart()
    for client in (alice, bob):
        assert [s.leave for s in client.signals] == [
            spb.LeaveRequest(reason=DisconnectReason.SERVER_SHUTDOWN, action=LeaveAction.DISCONNECT)  # type: ignore[arg-type]
        ]
        assert (client.closes, client.peer_closes) == ([1000], 1)
    assert (room.sid, dict(room.participants)) == ("RM_2", {})
    room.advance(10)  # t = 111
    assert [c.kinds() for c in (alice, bob)] == [["leave"], ["leave"]]  # no broadcasts
    carol = RawClient(room, "carol").connect()
    assert carol.signals[0].join.room.creation_time_ms == UNIX0 + 1_000
    assert carol.signals[0].join.participant.sid == "PA_3"
    room.advance(1.9)  # t = 112.9: past the old room's tick at 112
    assert carol.updates() == []  # the new room's ticks count from its creation at 101
    room.advance(0.1)
    assert carol.updates() == [[("carol", ACTIVE, 2)]]
    carol.take()
    room.restart(graceful=False)
    assert (carol.kinds(), carol.closes, carol.peer_closes) == ([], [None], 0)
    room.advance(15)  # nothing answers its ICE consent checks any more
    assert carol.peer_failures == 1


def test_dropped_packet_record() -> None:
    record = DroppedPacket(
        sender="a", receiver=None, channel=Channel.RELIABLE, data=b"\x00", reason="r"
    )
    assert "data" not in repr(record)


def test_no_room_update_when_the_count_comes_back() -> None:
    room = new_room()
    alice = RawClient(room, "alice").connect()
    room.advance(5)
    alice.take()
    bob = RawClient(room, "bob").connect()
    bob.send(leave=spb.LeaveRequest(reason=DisconnectReason.CLIENT_INITIATED))  # type: ignore[arg-type]
    room.advance(5)
    assert "room_update" not in alice.kinds()


def test_a_second_offer_gets_an_answer_and_changes_no_state() -> None:
    room = new_room(update_interval=0)
    alice = RawClient(room, "alice").connect()
    watcher = RawClient(room, "watcher").connect()
    watcher.take()
    alice.connect()  # an ICE restart: offer, answer, the peer connection comes up again
    assert watcher.updates() == []
    assert room.participants["alice"].version == 2


def test_a_packet_in_flight_when_its_sender_leaves_is_dropped() -> None:
    room = new_room()
    alice = RawClient(room, "alice").connect()
    RawClient(room, "bob").connect()
    room.uplink("alice").delay(1.0)
    alice.publish(user(b"late"))
    room.leave("alice")
    room.advance(1)
    assert [(d.sender, d.reason) for d in room.dropped] == [
        ("alice", "the sender is not in the room")
    ]


def test_a_reset_after_the_server_closed_the_socket() -> None:
    room = new_room()
    alice = RawClient(room, "alice").connect()
    room.leave("alice", action=LeaveAction.RESUME)
    assert alice.closes == [1000]
    room.disconnect("alice", signal_reset=True)
    assert alice.closes == [1000]  # no second close
    room.advance(5)
    assert dict(room.participants) == {}
