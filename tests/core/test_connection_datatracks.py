"""Data tracks through `Connection` (protocol-reference-2 section 1), byte-exact.

One connection, joined as "me" with bob in the room, driven with literal times (T0 = 100.0):
what it sends on the signal and on `_data_track`, what it reports, and how the session's
lifecycle (resume, full reconnect, end) reaches the data-track manager. The manager itself
is tested alone in test_datatrack_manager.py.
"""

from __future__ import annotations

import itertools

import pytest
from fake_sfu import TOKEN, UNIX0, URL, FakeSfu, drain, participant

from lkproto import (
    Channel,
    Config,
    Connection,
    ConnectionState,
    DisconnectReason,
    LeaveAction,
    LocalProtocolError,
    PeerTarget,
    SdpType,
)
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto.datatracks import (
    DataTrackFrame,
    DataTrackInfo,
    DataTrackPacket,
    PacketErrorReason,
    PublishDataTrackErrorReason,
    PushFrameError,
    PushFrameErrorReason,
    SubscribeDataTrackErrorReason,
    SubscriptionState,
    UnpublishReason,
)

T0 = 100.0
T1 = T0 + 10.0
PUB = PeerTarget.PUBLISHER
# SignalRequest.publish_data_track_request (19), update_data_subscription (21), hand-derived.
PUBLISH_1_POSE = bytes.fromhex("9a 01 08 08 01 12 04") + b"pose"
SUBSCRIBE_B1 = bytes.fromhex("aa 01 0c 0a 0a 0a 06") + b"DTR_b1" + b"\x10\x01"
UNPUBLISH_1 = bytes.fromhex("a2 01 02 08 01")


def bob(*tracks: tpb.DataTrackInfo, sid: str = "PA_bob", version: int = 1) -> ppb.ParticipantInfo:
    info = participant("bob", sid, version=version)
    info.data_tracks.extend(tracks)
    return info


B1 = tpb.DataTrackInfo(pub_handle=1, sid="DTR_b1", name="cursor")


def connection(config: Config | None = None, *, random: float | None = 0.0) -> Connection:
    ids = (f"id-{i}" for i in itertools.count(1))
    return Connection(
        config,
        now=T0,
        unix_time_ms=UNIX0,
        id_factory=lambda: next(ids),
        random=None if random is None else (lambda: random),
    )


def joined(
    config: Config | None = None,
    *,
    others: list[ppb.ParticipantInfo] | None = None,
    random: float | None = 0.0,
    open_data_track: bool = True,
) -> Connection:
    conn = connection(config, random=random)
    conn.connect(URL, TOKEN, now=T0)
    conn.receive_signal(FakeSfu.join(others=others if others is not None else [bob(B1)]), now=T0)
    conn.local_description_created(PUB, "v=0 our-offer", SdpType.OFFER, now=T0)
    conn.receive_signal(
        FakeSfu.response(answer=spb.SessionDescription(type="answer", sdp="v=0 their-answer")),
        now=T0,
    )
    conn.peer_state_changed(PUB, "connected", now=T0)
    conn.data_channel_opened(Channel.RELIABLE, now=T0)
    conn.data_channel_opened(Channel.LOSSY, now=T0)
    if open_data_track:
        conn.data_channel_opened(Channel.DATA_TRACK, now=T0)
    drain(conn)
    return conn


def signals(cmds: list[cmd.Command]) -> list[bytes]:
    return [c.data for c in cmds if isinstance(c, cmd.SendSignal)]


def accepted(handle: int = 1, sid: str = "DTR_me1", name: str = "pose") -> bytes:
    info = tpb.DataTrackInfo(pub_handle=handle, sid=sid, name=name)
    return FakeSfu.response(publish_data_track_response=tpb.PublishDataTrackResponse(info=info))


def published(conn: Connection, *, now: float = T0) -> int:
    handle = conn.publish_data_track(name="pose", now=now)
    conn.receive_signal(accepted(handle), now=now)
    drain(conn)
    return handle


def snapshot(**mapping: int) -> bytes:
    entry = tpb.DataTrackSubscriberHandles.PublishedDataTrack
    handles = tpb.DataTrackSubscriberHandles(
        sub_handles={h: entry(publisher_identity="bob", track_sid=s) for s, h in mapping.items()}
    )
    return FakeSfu.response(data_track_subscriber_handles=handles)


# -- publishing ---------------------------------------------------------------------------------


def test_publishing_sends_the_request_and_pushed_frames_leave_as_one_command() -> None:
    conn = joined()
    handle = conn.publish_data_track(name="pose", now=T0)
    cmds, evs = drain(conn)
    assert (handle, signals(cmds), evs) == (1, [PUBLISH_1_POSE], [])
    assert not conn.is_data_track_published(1) and conn.data_track_info(1) is None
    conn.receive_signal(accepted(), now=T0)
    _, evs = drain(conn)
    info = DataTrackInfo("DTR_me1", "pose", False, pub_handle=1)
    assert evs == [ev.DataTrackPublished(pub_handle=1, info=info)]
    assert conn.is_data_track_published(1) and conn.data_track_info(1) == info

    conn.push_data_track_frame(1, DataTrackFrame(b"abc", user_timestamp=0x0102), now=T0 + 1)
    (frame,) = conn.commands_to_send()
    # One packet: Single with X, handle 1, sequence 0, frame 0, 90 kHz stamp 1 s after the
    # publish (base 0: the injected random source drew 0), the user timestamp extension.
    assert frame == cmd.SendDataTrackFrame(
        pub_handle=1,
        sid="DTR_me1",
        frame_number=0,
        packets=(
            bytes.fromhex("1c 00 0001 0000 0000 00015f90 0002 02 08 0000000000000102") + b"abc",
        ),
    )
    conn.push_data_track_frame(1, DataTrackFrame(b""), now=T0 + 1)  # empty: nothing, as Rust
    assert conn.commands_to_send() == []


def test_the_packet_clock_starts_at_a_drawn_base() -> None:
    conn = joined(random=0.5)
    published(conn)
    conn.push_data_track_frame(1, DataTrackFrame(b"x"), now=T0)
    (frame,) = conn.commands_to_send()
    assert isinstance(frame, cmd.SendDataTrackFrame)
    assert DataTrackPacket.decode(frame.packets[0]).timestamp == int(0.5 * 0xFFFF_FFFF)
    # Without a random source the base is derived from the connection's ids.
    conn = joined(random=None)
    published(conn)
    conn.push_data_track_frame(1, DataTrackFrame(b"x"), now=T0)
    (frame,) = conn.commands_to_send()
    assert isinstance(frame, cmd.SendDataTrackFrame)
    assert DataTrackPacket.decode(frame.packets[0]).timestamp not in (0, int(0.5 * 0xFFFF_FFFF))


def test_frames_wait_for_the_data_track_channel_within_their_bound() -> None:
    conn = joined(Config(max_data_track_queued_frames=2), open_data_track=False)
    published(conn)
    conn.push_data_track_frame(1, DataTrackFrame(b"one"), now=T0)
    conn.push_data_track_frame(1, DataTrackFrame(b"two"), now=T0)
    assert conn.commands_to_send() == []
    with pytest.raises(PushFrameError) as full:
        conn.push_data_track_frame(1, DataTrackFrame(b"three"), now=T0)
    assert full.value.reason is PushFrameErrorReason.QUEUE_FULL
    conn.data_channel_opened(Channel.DATA_TRACK, now=T0 + 1)
    sent = [
        c.packets[0][-3:] for c in conn.commands_to_send() if isinstance(c, cmd.SendDataTrackFrame)
    ]
    assert sent == [b"one", b"two"]
    conn.data_channel_closed(Channel.DATA_TRACK, now=T0 + 2)
    conn.push_data_track_frame(1, DataTrackFrame(b"wait"), now=T0 + 2)
    assert conn.commands_to_send() == []
    # A failed frame command changes nothing: the channel reports its own close.
    conn.command_failed(
        cmd.SendDataTrackFrame(pub_handle=1, sid="DTR_me1", frame_number=0, packets=()),
        "gone",
        now=T0 + 2,
    )
    assert drain(conn) == ([], []) and conn.state is ConnectionState.CONNECTED


def test_a_refused_publish_and_a_timeout_are_reported_with_their_reasons() -> None:
    conn = joined(Config(data_track_publish_timeout=2.0))
    conn.publish_data_track(name="pose", now=T0)
    refusal = spb.RequestResponse(
        reason=spb.RequestResponse.NOT_ALLOWED,
        message="does not have permission to publish data",
        publish_data_track=tpb.PublishDataTrackRequest(pub_handle=1, name="pose"),
    )
    conn.receive_signal(FakeSfu.response(request_response=refusal), now=T0)
    _, evs = drain(conn)
    assert evs == [
        ev.DataTrackPublishFailed(
            pub_handle=1,
            name="pose",
            reason=PublishDataTrackErrorReason.NOT_ALLOWED,
            message="does not have permission to publish data",
        )
    ]
    conn.publish_data_track(name="later", now=T0 + 1)
    drain(conn)
    assert conn.get_timer() == T0 + 3
    conn.handle_timer(T0 + 3)
    _, evs = drain(conn)
    assert [(e.pub_handle, e.reason) for e in evs if isinstance(e, ev.DataTrackPublishFailed)] == [
        (2, PublishDataTrackErrorReason.TIMEOUT)
    ]


def test_metadata_answers_still_reach_their_requests() -> None:
    conn = joined()
    request_id = conn.set_metadata("m", now=T0)
    answer = spb.RequestResponse(request_id=request_id, reason=spb.RequestResponse.OK)
    conn.receive_signal(FakeSfu.response(request_response=answer), now=T0)
    assert drain(conn)[1] == [ev.MetadataUpdateCompleted(request_id=request_id)]


def test_unpublishing_sends_the_request_and_ends_the_track() -> None:
    conn = joined()
    published(conn)
    conn.unpublish_data_track(1, now=T0)
    cmds, evs = drain(conn)
    assert signals(cmds) == [UNPUBLISH_1]
    assert evs == [
        ev.DataTrackUnpublished(pub_handle=1, sid="DTR_me1", reason=UnpublishReason.LOCAL)
    ]
    with pytest.raises(PushFrameError):
        conn.push_data_track_frame(1, DataTrackFrame(b"late"), now=T0)


# -- subscribing --------------------------------------------------------------------------------


def test_discovery_subscription_and_frames_from_the_data_track_channel() -> None:
    conn = joined(others=[])
    conn.receive_signal(FakeSfu.update(bob(B1)), now=T0)
    cmds, evs = drain(conn)
    info = DataTrackInfo("DTR_b1", "cursor", False, pub_handle=1)
    assert evs[-1] == ev.RemoteDataTrackPublished(publisher_identity="bob", info=info)
    assert conn.remote_data_tracks == (("bob", info),)

    conn.subscribe_data_track("DTR_b1", now=T0)
    assert signals(drain(conn)[0]) == [SUBSCRIBE_B1]
    assert conn.data_track_subscription("DTR_b1") is SubscriptionState.PENDING
    conn.receive_signal(snapshot(DTR_b1=7), now=T0)
    assert drain(conn)[1] == [
        ev.DataTrackSubscribed(sid="DTR_b1", publisher_identity="bob", sub_handle=7)
    ]
    packet = bytes.fromhex("18 00 0007 0000 0000 00000000") + b"hello"
    conn.receive_data_packet(packet, channel=Channel.DATA_TRACK, now=T0)
    (received,) = drain(conn)[1]
    assert isinstance(received, ev.DataTrackFrameReceived)
    assert (received.sid, received.frame) == ("DTR_b1", DataTrackFrame(b"hello"))
    conn.receive_data_packet(b"\x18\x00", channel=Channel.DATA_TRACK, now=T0)  # malformed
    (dropped,) = drain(conn)[1]
    assert isinstance(dropped, ev.DataTrackPacketDropped)
    assert dropped.reason is PacketErrorReason.TOO_SHORT
    assert conn.state is ConnectionState.CONNECTED

    conn.set_data_track_pipeline_options("DTR_b1", max_partial_frames=3)
    conn.unsubscribe_data_track("DTR_b1", now=T0)
    cmds, evs = drain(conn)
    assert len(signals(cmds)) == 1  # it had a handle: withdrawn
    assert [e.reason for e in evs if isinstance(e, ev.DataTrackSubscriptionEnded)] == [
        SubscribeDataTrackErrorReason.CANCELLED
    ]


def test_a_permission_refusal_ends_the_subscription_and_media_updates_go_to_the_media_tracks() -> (
    None
):
    conn = joined()
    conn.subscribe_data_track("DTR_b1", now=T0)
    drain(conn)
    for sid in ("TR_media", "DTR_b1"):
        update = tpb.SubscriptionPermissionUpdate(
            participant_sid="PA_bob", track_sid=sid, allowed=False
        )
        conn.receive_signal(FakeSfu.response(subscription_permission_update=update), now=T0)
    cmds, evs = drain(conn)
    assert signals(cmds) == []
    assert evs == [
        # not a data track: the media-track manager's, which does not know it either
        ev.TrackSignalIgnored(reason="unknown-sid", detail="subscription permission for TR_media"),
        ev.DataTrackSubscriptionEnded(
            sid="DTR_b1",
            publisher_identity="bob",
            reason=SubscribeDataTrackErrorReason.NOT_ALLOWED,
            active=False,
        ),
    ]


def test_an_unpublish_response_of_the_server_ends_our_track() -> None:
    conn = joined()
    published(conn)
    response = tpb.UnpublishDataTrackResponse(info=tpb.DataTrackInfo(pub_handle=1, sid="DTR_me1"))
    conn.receive_signal(FakeSfu.response(unpublish_data_track_response=response), now=T0)
    assert drain(conn)[1] == [
        ev.DataTrackUnpublished(pub_handle=1, sid="DTR_me1", reason=UnpublishReason.SERVER)
    ]


# -- verbs and their states ---------------------------------------------------------------------


def test_publishing_and_subscribing_need_a_connected_session() -> None:
    conn = connection()
    with pytest.raises(LocalProtocolError, match="publish_data_track"):
        conn.publish_data_track(name="pose", now=T0)
    with pytest.raises(LocalProtocolError, match="subscribe_data_track"):
        conn.subscribe_data_track("DTR_b1", now=T0)
    with pytest.raises(LocalProtocolError, match="no data track was ever published"):
        conn.push_data_track_frame(1, DataTrackFrame(b"x"), now=T0)
    conn.unsubscribe_data_track("DTR_b1", now=T0)  # ending things is always allowed
    conn.set_data_track_pipeline_options("DTR_b1", max_partial_frames=2)
    assert drain(conn) == ([], [])


# -- the session's lifecycle --------------------------------------------------------------------


def test_a_resume_lists_our_tracks_in_sync_state_then_sends_what_waited() -> None:
    conn = joined()
    published(conn)
    conn.subscribe_data_track("DTR_b1", now=T0)
    conn.receive_signal(snapshot(DTR_b1=7), now=T0)
    drain(conn)
    conn.signal_closed(now=T1, code=1006)
    drain(conn)
    assert conn.state is ConnectionState.RECONNECTING
    conn.unsubscribe_data_track("DTR_b1", now=T1)  # waits for the resume
    assert signals(drain(conn)[0]) == []
    conn.handle_timer(T1)
    drain(conn)
    conn.receive_signal(FakeSfu.response(reconnect=spb.ReconnectResponse()), now=T1 + 0.25)
    cmds, _ = drain(conn)
    sync, waited = (spb.SignalRequest.FromString(data) for data in signals(cmds))
    (entry,) = sync.sync_state.publish_data_tracks
    assert (entry.info.pub_handle, entry.info.sid, entry.info.name) == (1, "DTR_me1", "pose")
    assert waited.update_data_subscription.updates[0].track_sid == "DTR_b1"
    assert conn.state is ConnectionState.CONNECTED


def test_a_full_reconnect_republishes_and_resubscribes_on_the_new_session() -> None:
    conn = joined()
    published(conn)
    conn.subscribe_data_track("DTR_b1", now=T0)
    conn.receive_signal(snapshot(DTR_b1=7), now=T0)
    drain(conn)
    conn.receive_signal(FakeSfu.leave(reason=0, action=int(LeaveAction.RECONNECT)), now=T1)
    drain(conn)
    with pytest.raises(PushFrameError) as republishing:
        conn.push_data_track_frame(1, DataTrackFrame(b"x"), now=T1)
    assert republishing.value.reason is PushFrameErrorReason.QUEUE_FULL
    conn.handle_timer(T1)
    drain(conn)
    new_me = participant("me", "PA_me2", state=0)
    conn.receive_signal(FakeSfu.join(local=new_me, others=[bob(B1)]), now=T1 + 0.5)
    cmds, _ = drain(conn)
    assert signals(cmds) == [PUBLISH_1_POSE, SUBSCRIBE_B1]  # same handle and name
    conn.receive_signal(accepted(sid="DTR_me2"), now=T1 + 0.6)
    _, evs = drain(conn)
    assert evs == [
        ev.DataTrackRepublished(
            pub_handle=1,
            info=DataTrackInfo("DTR_me2", "pose", False, pub_handle=1),
            previous_sid="DTR_me1",
        )
    ]
    # The new session's channel opens: frames flow again.
    conn.data_channel_opened(Channel.DATA_TRACK, now=T1 + 1)
    conn.push_data_track_frame(1, DataTrackFrame(b"again"), now=T1 + 1)
    frames = [c for c in drain(conn)[0] if isinstance(c, cmd.SendDataTrackFrame)]
    assert [f.sid for f in frames] == ["DTR_me2"]


def test_the_end_of_the_session_ends_every_publish_and_subscription_before_disconnected() -> None:
    conn = joined()
    published(conn)
    conn.publish_data_track(name="pending", now=T0)
    conn.subscribe_data_track("DTR_b1", now=T0)
    drain(conn)
    conn.close(now=T0 + 1)
    _, evs = drain(conn)
    assert [type(e) for e in evs] == [
        ev.DataTrackUnpublished,
        ev.DataTrackPublishFailed,
        ev.DataTrackSubscriptionEnded,
        ev.RemoteDataTrackUnpublished,
        ev.Disconnected,
    ]
    assert isinstance(evs[-1], ev.Disconnected)
    assert evs[-1].reason is DisconnectReason.CLIENT_INITIATED
    conn.receive_data_packet(b"x", channel=Channel.DATA_TRACK, now=T0 + 2)  # ignored
    assert drain(conn) == ([], [])


def test_a_full_reconnect_started_by_the_peer_connection_reports_at_once() -> None:
    conn = joined(Config(resume=False))
    conn.publish_data_track(name="pending", now=T0)
    drain(conn)
    conn.peer_state_changed(PUB, "failed", now=T1)
    _, evs = drain(conn)
    assert [(type(e), getattr(e, "reason", None)) for e in evs][-1] == (
        ev.DataTrackPublishFailed,
        PublishDataTrackErrorReason.DISCONNECTED,
    )
