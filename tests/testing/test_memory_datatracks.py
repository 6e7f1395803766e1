"""Data tracks in a `MemoryRoom`: what livekit-server 1.13.5 does with them, deterministically.

Connections the room drives publish and subscribe through the room's SFU; a raw client
(raw_client.py) sends what lkproto never would. Literal virtual times (the room starts at
t=100); `update_interval=0` so that joins are announced at once.
"""

from __future__ import annotations

import pytest
from raw_client import RawClient, resume_target

from lkproto import Channel, Config, Connection, ConnectionState, SimulateScenario
from lkproto import events as ev
from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto.datatracks import (
    DataTrackFrame,
    DataTrackPacket,
    PublishDataTrackErrorReason,
    SubscribeDataTrackErrorReason,
)
from lkproto.testing import MemoryRoom

T0 = 100.0
UNIX0 = 1_700_000_000_000


def new_room(**kwargs: object) -> MemoryRoom:
    options: dict[str, object] = {"now": T0, "unix_time_ms": UNIX0, "update_interval": 0}
    options.update(kwargs)
    return MemoryRoom(**options)  # type: ignore[arg-type]


def of(events: list[ev.Event], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, kind)]


def publish(room: MemoryRoom, who: str, name: str = "pose") -> int:
    conn = room.connection(who)
    handle = conn.publish_data_track(name=name, now=room.now)
    room.run_until_idle()
    return handle


def subscribe(room: MemoryRoom, who: str, sid: str) -> None:
    room.connection(who).subscribe_data_track(sid, now=room.now)
    room.run_until_idle()


def frames(room: MemoryRoom, who: str) -> list[DataTrackFrame]:
    return [e.frame for e in of(room.events(who), ev.DataTrackFrameReceived)]


def pair(**room_options: object) -> tuple[MemoryRoom, Connection, Connection, str]:
    """alice publishes "pose"; bob subscribes; returns the track's SID."""
    room = new_room(**room_options)
    alice, bob = room.join("alice"), room.join("bob")
    publish(room, "alice")
    (published,) = of(room.events("alice"), ev.DataTrackPublished)
    sid = published.info.sid
    assert sid == "DTR_1"
    (found,) = of(room.events("bob"), ev.RemoteDataTrackPublished)
    assert (found.publisher_identity, found.info.sid, found.info.name) == ("alice", sid, "pose")
    subscribe(room, "bob", sid)
    assert of(room.events("bob"), ev.DataTrackSubscribed) == [
        ev.DataTrackSubscribed(sid=sid, publisher_identity="alice", sub_handle=1)
    ]
    return room, alice, bob, sid


def push(
    room: MemoryRoom, conn: Connection, payload: bytes, user_timestamp: int | None = None
) -> None:
    conn.push_data_track_frame(1, DataTrackFrame(payload, user_timestamp), now=room.now)
    room.run_until_idle()


# -- publishing, subscribing, frames ----------------------------------------------------------


def test_frames_reach_the_subscriber_whole_with_their_timestamps() -> None:
    room, alice, _, sid = pair()
    big = bytes(range(256)) * 200  # 51 200 bytes: four packets
    push(room, alice, b"small", 7)
    push(room, alice, big, 8)
    assert frames(room, "bob") == [DataTrackFrame(b"small", 7), DataTrackFrame(big, 8)]
    assert [(i, t.sid, t.name) for i, t in room.connection("bob").remote_data_tracks] == [
        ("alice", sid, "pose")
    ]


def test_unpublishing_and_leaving_end_the_subscription() -> None:
    room, alice, bob, sid = pair()
    alice.unpublish_data_track(1, now=room.now)
    room.run_until_idle()
    events = room.events("bob")
    assert of(events, ev.DataTrackSubscriptionEnded) == [
        ev.DataTrackSubscriptionEnded(
            sid=sid,
            publisher_identity="alice",
            reason=SubscribeDataTrackErrorReason.UNPUBLISHED,
            active=True,
        )
    ]
    assert of(events, ev.RemoteDataTrackUnpublished) == [
        ev.RemoteDataTrackUnpublished(publisher_identity="alice", sid=sid)
    ]
    publish(room, "alice", "again")
    (again,) = of(room.events("bob"), ev.RemoteDataTrackPublished)
    subscribe(room, "bob", again.info.sid)
    room.events("bob")
    alice.close(now=room.now)
    room.run_until_idle()
    assert [e.reason for e in of(room.events("bob"), ev.DataTrackSubscriptionEnded)] == [
        SubscribeDataTrackErrorReason.UNPUBLISHED
    ]
    assert bob.remote_data_tracks == ()


def test_the_server_refuses_what_it_must() -> None:
    room = new_room()
    room.join("alice")
    room.join("mute", can_publish_data=False)
    publish(room, "mute")
    (refused,) = of(room.events("mute"), ev.DataTrackPublishFailed)
    assert refused.reason is PublishDataTrackErrorReason.NOT_ALLOWED
    publish(room, "alice", "")
    publish(room, "alice", "x" * 257)
    publish(room, "alice", "pose")
    publish(room, "alice", "pose")
    results = [
        (type(e).__name__, getattr(e, "reason", None))
        for e in room.events("alice")
        if isinstance(e, ev.DataTrackPublished | ev.DataTrackPublishFailed)
    ]
    assert results == [
        ("DataTrackPublishFailed", PublishDataTrackErrorReason.INVALID_NAME),
        ("DataTrackPublishFailed", PublishDataTrackErrorReason.INVALID_NAME),
        ("DataTrackPublished", None),
        ("DataTrackPublishFailed", PublishDataTrackErrorReason.DUPLICATE_NAME),
    ]


def test_raw_requests_get_the_servers_answers() -> None:
    room = new_room()
    raw = RawClient(room, "raw").connect()
    raw.take()
    pub = tpb.PublishDataTrackRequest
    raw.send(publish_data_track_request=pub(pub_handle=0, name="a"))
    raw.send(publish_data_track_request=pub(pub_handle=5, name="a"))
    raw.send(publish_data_track_request=pub(pub_handle=5, name="b"))
    raw.send(unpublish_data_track_request=tpb.UnpublishDataTrackRequest(pub_handle=9))
    answers = [s for s in raw.take() if s.WhichOneof("message") != "update"]
    assert [
        (
            s.WhichOneof("message"),
            s.request_response.reason if s.HasField("request_response") else 0,
        )
        for s in answers
    ] == [
        ("request_response", spb.RequestResponse.INVALID_HANDLE),
        ("publish_data_track_response", 0),
        ("request_response", spb.RequestResponse.DUPLICATE_HANDLE),
        ("request_response", spb.RequestResponse.NOT_FOUND),
    ]
    assert answers[2].request_response.publish_data_track == pub(pub_handle=5, name="b")
    # Packets the server cannot read or route are dropped and recorded.
    raw.publish(b"\x18\x00", Channel.DATA_TRACK)
    raw.publish(bytes.fromhex("18 00 0009 0000 0000 00000000") + b"x", Channel.DATA_TRACK)
    assert [d.reason for d in room.dropped] == [
        "unreadable data-track packet",
        "no data track has that handle",
    ]


def test_a_publisher_s_updates_go_out_at_once() -> None:
    room = new_room(update_interval=3.0)
    room.join("alice")
    room.join("bob")
    room.advance(3)
    room.events("bob")
    publish(room, "alice")
    assert of(room.events("bob"), ev.RemoteDataTrackPublished)  # no 3 s batch
    room.connection("alice").close(now=room.now)
    room.run_until_idle()
    assert of(room.events("bob"), ev.ParticipantDisconnected)


# -- loss ----------------------------------------------------------------------------------------


def run_with_loss(seed: int) -> list[bytes]:
    room, alice, _, _ = pair(data_track_loss=0.3, data_track_seed=seed)
    for n in range(40):
        push(room, alice, n.to_bytes(2, "big") * (n % 3 * 9000 + 1))  # 1, 2 or 3 packets
    return [f.payload for f in frames(room, "bob")]


def test_loss_is_deterministic_and_loses_frames_whole() -> None:
    first, again, other = run_with_loss(1), run_with_loss(1), run_with_loss(2)
    assert first == again and first != other
    assert 10 < len(first) < 40
    for payload in first:
        n = int.from_bytes(payload[:2], "big")
        assert payload == n.to_bytes(2, "big") * (n % 3 * 9000 + 1)


def test_loss_can_change_while_the_room_runs_and_is_checked() -> None:
    room, alice, _, _ = pair()
    room.data_track_loss = 1
    push(room, alice, b"lost")
    assert frames(room, "bob") == []
    assert [d.reason for d in room.dropped] == ["lost (MemoryRoom data_track_loss)"]
    room.data_track_loss = 0.0
    push(room, alice, b"kept")
    assert frames(room, "bob") == [DataTrackFrame(b"kept")]
    for bad in (-0.1, 1.5, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match="data_track_loss"):
            room.data_track_loss = bad  # type: ignore[assignment]
        with pytest.raises(ValueError, match="data_track_loss"):
            MemoryRoom(data_track_loss=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="data_track_seed"):
        MemoryRoom(data_track_seed=1.5)  # type: ignore[arg-type]


# -- permissions -------------------------------------------------------------------------------


def test_subscription_permissions_refuse_then_grant_the_kept_wish() -> None:
    room = new_room()
    raw = RawClient(room, "raw").connect()
    bob = room.join("bob", config=Config(data_track_subscribe_timeout=5))
    raw.send(subscription_permission=tpb.SubscriptionPermission(all_participants=False))
    raw.send(publish_data_track_request=tpb.PublishDataTrackRequest(pub_handle=1, name="secret"))
    room.run_until_idle()
    (found,) = of(room.events("bob"), ev.RemoteDataTrackPublished)
    sid = found.info.sid
    subscribe(room, "bob", sid)
    assert of(room.events("bob"), ev.DataTrackSubscriptionEnded) == [
        ev.DataTrackSubscriptionEnded(
            sid=sid,
            publisher_identity="raw",
            reason=SubscribeDataTrackErrorReason.NOT_ALLOWED,
            active=False,
        )
    ]
    # bob is allowed now: the server grants the wish it kept; bob no longer wants it.
    allowed = tpb.TrackPermission(participant_identity="bob", track_sids=[sid])
    raw.send(subscription_permission=tpb.SubscriptionPermission(track_permissions=[allowed]))
    assert [e.reason for e in of(room.events("bob"), ev.DataTrackSignalIgnored)] == [
        "unsolicited-handle"
    ]
    subscribe(room, "bob", sid)
    assert of(room.events("bob"), ev.DataTrackSubscribed)
    raw.publish(bytes.fromhex("18 00 0001 0000 0000 00000000") + b"hi", Channel.DATA_TRACK)
    assert frames(room, "bob") == [DataTrackFrame(b"hi")]
    # Revoked: the handle goes, and the subscription ends.
    raw.send(subscription_permission=tpb.SubscriptionPermission(all_participants=False))
    assert [e.reason for e in of(room.events("bob"), ev.DataTrackSubscriptionEnded)] == [
        SubscribeDataTrackErrorReason.NOT_ALLOWED
    ]
    assert bob.state is ConnectionState.CONNECTED


def test_without_can_subscribe_a_subscription_times_out() -> None:
    room = new_room()
    room.join("alice")
    room.join("bob", can_subscribe=False, config=Config(data_track_subscribe_timeout=2))
    publish(room, "alice")
    (found,) = of(room.events("bob"), ev.RemoteDataTrackPublished)
    subscribe(room, "bob", found.info.sid)
    room.advance(2)
    assert [e.reason for e in of(room.events("bob"), ev.DataTrackSubscriptionEnded)] == [
        SubscribeDataTrackErrorReason.TIMEOUT
    ]


# -- reconnects --------------------------------------------------------------------------------


def test_a_publisher_s_full_reconnect_keeps_the_subscriber_s_subscription() -> None:
    room, alice, bob, sid = pair()
    alice.simulate_scenario(SimulateScenario.FULL_RECONNECT, now=room.now)
    room.run_until_idle()
    assert alice.state is ConnectionState.CONNECTED
    (republished,) = of(room.events("alice"), ev.DataTrackRepublished)
    moved = of(room.events("bob"), ev.RemoteDataTrackSidChanged)
    assert moved == [
        ev.RemoteDataTrackSidChanged(
            publisher_identity="alice", previous_sid=sid, info=republished.info
        )
    ]
    push(room, alice, b"after")
    assert frames(room, "bob") == [DataTrackFrame(b"after")]
    assert bob.data_track_subscription(republished.info.sid).name == "ACTIVE"


def test_a_resume_keeps_tracks_and_a_sync_state_naming_an_unknown_track_restarts() -> None:
    room, alice, _, _ = pair()
    room.drop_signal("alice")
    room.advance(1)
    assert alice.state is ConnectionState.CONNECTED
    push(room, alice, b"resumed")
    assert frames(room, "bob") == [DataTrackFrame(b"resumed")]
    # A client that claims a track the server does not have is told to rejoin.
    raw = RawClient(room, "raw").connect()
    sid_of_raw = room.participants["raw"].sid
    resumed = RawClient(room, "raw", target=resume_target(sid_of_raw))
    ghost = tpb.PublishDataTrackResponse(info=tpb.DataTrackInfo(pub_handle=1, sid="DTR_ghost"))
    resumed.send(sync_state=spb.SyncState(publish_data_tracks=[ghost]))
    leaves = [s.leave for s in resumed.signals if s.WhichOneof("message") == "leave"]
    assert [int(leave.action) for leave in leaves] == [spb.LeaveRequest.RECONNECT]
    assert raw.identity not in room.participants


def test_a_frame_packet_keeps_its_bytes_except_the_handle() -> None:
    room, alice, _, _ = pair()
    raw = RawClient(room, "raw").connect()
    raw.send(
        update_data_subscription=tpb.UpdateDataSubscription(
            updates=[tpb.UpdateDataSubscription.Update(track_sid="DTR_1", subscribe=True)]
        )
    )
    push(room, alice, b"abc", 5)
    (packet,) = raw.track_packets
    decoded = DataTrackPacket.decode(packet)
    assert (decoded.handle, decoded.payload, decoded.user_timestamp) == (1, b"abc", 5)


def test_the_server_keeps_encodings_checks_permissions_per_participant_and_ignores_unknowns() -> (
    None
):
    room = new_room()
    raw = RawClient(room, "raw").connect()
    bob = room.join("bob")
    carol = room.join("carol")
    assert room.data_track_loss == 0.0
    request = tpb.PublishDataTrackRequest(pub_handle=1, name="imu")
    request.frame_encoding.well_known = tpb.DataTrackFrameEncoding.WELL_KNOWN_FRAME_ENCODING_CDR
    request.schema.name = "imu-v1"
    raw.send(publish_data_track_request=request)
    room.run_until_idle()
    (found,) = of(room.events("bob"), ev.RemoteDataTrackPublished)
    sid = found.info.sid
    assert bob.remote_data_tracks[0][1] == found.info
    # carol subscribes to bob's nothing: a track the server does not know stays unanswered.
    carol.subscribe_data_track("DTR_nowhere", now=room.now)  # unknown to carol: ends at once
    room.run_until_idle()
    raw.send(
        update_data_subscription=tpb.UpdateDataSubscription(
            updates=[tpb.UpdateDataSubscription.Update(track_sid="DTR_nowhere", subscribe=True)]
        )
    )
    # Only carol may subscribe; an entry for someone else does not let bob in.
    for_carol = tpb.TrackPermission(participant_identity="carol", all_tracks=True)
    raw.send(subscription_permission=tpb.SubscriptionPermission(track_permissions=[for_carol]))
    subscribe(room, "bob", sid)
    subscribe(room, "carol", sid)
    assert [e.reason for e in of(room.events("bob"), ev.DataTrackSubscriptionEnded)] == [
        SubscribeDataTrackErrorReason.NOT_ALLOWED
    ]
    assert of(room.events("carol"), ev.DataTrackSubscribed)
    raw.send(subscription_permission=tpb.SubscriptionPermission(track_permissions=[for_carol]))
    assert of(room.events("carol"), ev.DataTrackSubscriptionEnded) == []  # unchanged
