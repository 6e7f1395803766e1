"""Media tracks composed into the Connection: the offer queue owns every offer of the single
peer connection, track signals reach the `TrackManager`, its outputs leave as commands and
events, and reconnects carry publications over (media findings F1-F8)."""

from __future__ import annotations

import itertools

import pytest
from fake_sfu import T0, TOKEN, UNIX0, URL, FakeSfu, drain, participant

from lkproto import (
    Channel,
    Config,
    Connection,
    ConnectionState,
    DisconnectReason,
    LocalProtocolError,
    PeerTarget,
    ReconnectMode,
    SdpType,
)
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto.tracks import (
    Direction,
    LocalTrackState,
    ParticipantTrackPermission,
    PublishTrackErrorReason,
    SubscriptionErrorReason,
    TrackKind,
    TrackPublicationInfo,
    TrackSource,
    UnpublishReason,
)

PUB = PeerTarget.PUBLISHER
T1 = T0 + 10.0
BOB_TRACK = tpb.TrackInfo(sid="TR_Abob", type=tpb.AUDIO, name="mic", source=tpb.MICROPHONE)
BOB_INFO = TrackPublicationInfo.from_pb(BOB_TRACK)


def bob(
    *, tracks: tuple[tpb.TrackInfo, ...] = (BOB_TRACK,), **kwargs: object
) -> ppb.ParticipantInfo:
    info = participant("bob", **kwargs)  # type: ignore[arg-type]
    info.tracks.extend(tracks)
    return info


def connection(config: Config | None = None) -> Connection:
    ids = (f"cid-{i}" for i in itertools.count(1))
    return Connection(
        config or Config(auto_subscribe=True),
        now=T0,
        unix_time_ms=UNIX0,
        id_factory=lambda: next(ids),
    )


def signal_of(command: cmd.Command) -> spb.SignalRequest:
    assert isinstance(command, cmd.SendSignal), command
    return spb.SignalRequest.FromString(command.data)


def answer(offer_id: int, sdp: str = "v=0 answer", **mids: str) -> bytes:
    return FakeSfu.response(
        answer=spb.SessionDescription(type="answer", sdp=sdp, id=offer_id, mid_to_track_id=mids)
    )


def negotiate(
    conn: Connection, offer_id: int, now: float, slot_mids: dict[int, str], **mids: str
) -> None:
    """The adapter creates offer `offer_id`, the server answers it, the adapter applies it."""
    conn.local_description_created(
        PUB, f"v=0 offer {offer_id}", SdpType.OFFER, now=now, offer_id=offer_id, slot_mids=slot_mids
    )
    conn.receive_signal(answer(offer_id, f"v=0 answer {offer_id}", **mids), now=now)
    conn.remote_description_applied(PUB, offer_id, now=now)


def joined(
    config: Config | None = None, *, others: list[ppb.ParticipantInfo] | None = None
) -> Connection:
    conn = connection(config)
    conn.connect(URL, TOKEN, now=T0)
    conn.receive_signal(FakeSfu.join(others=others if others is not None else [bob()]), now=T0)
    negotiate(conn, 1, T0, {})
    conn.peer_state_changed(PUB, "connected", now=T0)
    conn.data_channel_opened(Channel.RELIABLE, now=T0)
    conn.data_channel_opened(Channel.LOSSY, now=T0)
    drain(conn)
    return conn


def published(conn: Connection, now: float = T0 + 1) -> str:
    """Publish an audio track, accepted as TR_Ame; returns its cid."""
    cid = conn.publish_track(TrackKind.AUDIO, name="mic", now=now)
    info = tpb.TrackInfo(sid="TR_Ame", type=tpb.AUDIO, name="mic", source=tpb.MICROPHONE)
    conn.receive_signal(
        FakeSfu.response(track_published=tpb.TrackPublishedResponse(cid=cid, track=info)), now=now
    )
    return cid


# -- the offer queue owns the single peer connection --------------------------------------------


def test_the_first_offer_goes_through_the_queue_with_its_id_f3_6() -> None:
    conn = connection()
    conn.connect(URL, TOKEN, now=T0)
    conn.commands_to_send()
    conn.receive_signal(FakeSfu.join(others=[bob()]), now=T0)
    cmds, evs = drain(conn)
    assert cmds == [
        cmd.CreatePeerConnection(target=PUB, ice_servers=cmds[0].ice_servers),  # type: ignore[union-attr]
        cmd.CreateDataChannel(channel=Channel.RELIABLE, ordered=True, max_retransmits=None),
        cmd.CreateDataChannel(channel=Channel.LOSSY, ordered=False, max_retransmits=0),
        cmd.CreateDataChannel(channel=Channel.DATA_TRACK, ordered=False, max_retransmits=0),
        cmd.CreateOffer(target=PUB, offer_id=1),
    ]
    # Joined first, then the publications it listed (as livekit.rtc reports them).
    assert [type(e) for e in evs] == [ev.Joined, ev.TrackPublished]
    assert evs[1] == ev.TrackPublished(
        participant_identity="bob", participant_sid="PA_bob", info=BOB_INFO
    )
    conn.local_description_created(
        PUB, "v=0 o", SdpType.OFFER, now=T0 + 0.1, offer_id=1, slot_mids={}
    )
    (sent,) = conn.commands_to_send()
    assert sent == cmd.SendSignal(
        data=spb.SignalRequest(
            offer=spb.SessionDescription(type="offer", sdp="v=0 o", id=1)
        ).SerializeToString()
    )
    conn.receive_signal(answer(1, "v=0 a"), now=T0 + 0.2)
    assert conn.commands_to_send() == [
        cmd.SetRemoteDescription(target=PUB, sdp="v=0 a", sdp_type=SdpType.ANSWER, offer_id=1)
    ]
    assert conn.tracks.offer_in_flight == 1
    conn.remote_description_applied(PUB, 1, now=T0 + 0.3)
    assert conn.tracks.offer_in_flight is None
    assert drain(conn) == ([], [])


def test_publish_sends_the_add_track_request_then_a_send_slot_is_negotiated_f1_2() -> None:
    conn = joined()
    cid = conn.publish_track(TrackKind.AUDIO, name="mic", now=T0 + 1)
    assert cid == "cid-1"
    (add,) = conn.commands_to_send()
    assert signal_of(add) == spb.SignalRequest(
        add_track=tpb.AddTrackRequest(
            cid="cid-1",
            name="mic",
            type=tpb.AUDIO,
            source=tpb.MICROPHONE,
            disable_red=True,
            audio_features=[tpb.TF_NO_DTX],
        )
    )
    assert conn.tracks.get_timer() == T0 + 1 + 10.0  # Config.track_publish_timeout
    info = tpb.TrackInfo(sid="TR_Ame", type=tpb.AUDIO, name="mic", source=tpb.MICROPHONE)
    response = tpb.TrackPublishedResponse(cid=cid, track=info)
    conn.receive_signal(FakeSfu.response(track_published=response), now=T0 + 1.1)
    cmds, evs = drain(conn)
    assert evs == [ev.LocalTrackPublished(cid=cid, info=TrackPublicationInfo.from_pb(info))]
    assert cmds == [
        cmd.AddTransceiver(
            slot=1, kind=TrackKind.AUDIO, direction=Direction.SENDONLY, source_cid=cid
        ),
        cmd.CreateOffer(target=PUB, offer_id=2),
    ]
    negotiate(conn, 2, T0 + 1.2, {1: "1"})
    assert conn.tracks.local_state(cid) is LocalTrackState.PUBLISHED
    assert drain(conn)[1] == []


def test_a_requirement_adds_a_receive_slot_and_the_answer_subscribes_f2_1() -> None:
    conn = joined()
    msr = spb.MediaSectionsRequirement(num_audios=1)
    conn.receive_signal(FakeSfu.response(media_sections_requirement=msr), now=T0 + 1)
    assert conn.commands_to_send() == [
        cmd.AddTransceiver(slot=1, kind=TrackKind.AUDIO, direction=Direction.RECVONLY),
        cmd.CreateOffer(target=PUB, offer_id=2),
    ]
    negotiate(conn, 2, T0 + 1, {1: "1"}, **{"1": "TR_Abob"})
    cmds, evs = drain(conn)
    assert cmds[0] == cmd.SendSignal(
        data=spb.SignalRequest(
            offer=spb.SessionDescription(type="offer", sdp="v=0 offer 2", id=2)
        ).SerializeToString()
    )
    assert cmds[1:] == [
        cmd.SetRemoteDescription(
            target=PUB, sdp="v=0 answer 2", sdp_type=SdpType.ANSWER, offer_id=2
        )
    ]
    assert evs == [ev.TrackSubscribed(participant_identity="bob", slot=1, info=BOB_INFO)]
    assert conn.tracks.subscribed_slot("TR_Abob") == 1


def test_subscription_errors_are_reported_once_and_the_session_goes_on_f2_6() -> None:
    conn = joined()
    error = tpb.SubscriptionResponse(track_sid="TR_Abob", err=tpb.SE_UNKNOWN)
    for n in range(3):  # the server repeats it every 3 s
        conn.receive_signal(FakeSfu.response(subscription_response=error), now=T0 + 20 + 3 * n)
    assert drain(conn) == (
        [],
        [
            ev.TrackSubscriptionFailed(
                participant_identity="bob",
                sid="TR_Abob",
                error=SubscriptionErrorReason.UNKNOWN,
                message="UNKNOWN",
            )
        ],
    )
    assert conn.state is ConnectionState.CONNECTED


def test_request_responses_reach_tracks_or_metadata() -> None:
    conn = joined(Config(auto_subscribe=True, protocol_version=17))
    cid = conn.publish_track(TrackKind.AUDIO, name="mic", now=T0 + 1)
    request_id = conn.set_metadata("m", now=T0 + 1)
    drain(conn)
    refusal = spb.RequestResponse(
        reason=spb.RequestResponse.NOT_ALLOWED, message="no", add_track=tpb.AddTrackRequest(cid=cid)
    )
    conn.receive_signal(FakeSfu.response(request_response=refusal), now=T0 + 2)
    done = spb.RequestResponse(request_id=request_id, reason=spb.RequestResponse.OK)
    conn.receive_signal(FakeSfu.response(request_response=done), now=T0 + 2)
    assert drain(conn)[1] == [
        ev.LocalTrackPublishFailed(
            cid=cid, name="mic", reason=PublishTrackErrorReason.NOT_ALLOWED, message="no"
        ),
        ev.MetadataUpdateCompleted(request_id=request_id),
    ]


def test_the_publish_timeout_fires_through_the_connection_timer() -> None:
    conn = joined()
    cid = conn.publish_track(TrackKind.AUDIO, name="mic", now=T0 + 1)
    drain(conn)
    assert conn.tracks.get_timer() == T0 + 11
    conn.handle_timer(T0 + 11)
    assert drain(conn)[1] == [
        ev.LocalTrackPublishFailed(
            cid=cid,
            name="mic",
            reason=PublishTrackErrorReason.TIMEOUT,
            message="no answer from the server within 10s",
        )
    ]
    assert conn.tracks.get_timer() is None


def test_config_bounds_reach_the_track_manager() -> None:
    conn = joined(Config(auto_subscribe=True, max_published_tracks=1, track_publish_timeout=2.5))
    conn.publish_track(TrackKind.AUDIO, name="a", now=T0 + 1)
    assert conn.tracks.get_timer() == T0 + 3.5
    with pytest.raises(LocalProtocolError, match="max_local_publications"):
        conn.publish_track(TrackKind.AUDIO, name="b", now=T0 + 1)
    tracks = conn.tracks
    assert (tracks.max_receive_slots, tracks.max_slots_per_requirement) == (64, 16)
    assert (tracks.max_remote_tracks, tracks.max_remembered_subscription_errors) == (4096, 256)
    assert tracks.negotiation_timeout == 15.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("track_publish_timeout", 0.0),
        ("negotiation_timeout", float("inf")),
        ("max_receive_slots", 0),
    ],
)
def test_media_config_values_are_checked(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        Config(**{field: value})  # type: ignore[arg-type]


# -- verbs -------------------------------------------------------------------------------------


def test_track_verbs_send_their_requests() -> None:
    conn = joined()
    cid = published(conn)
    negotiate(conn, 2, T0 + 1, {1: "1"})
    drain(conn)
    conn.set_track_muted(cid, True, now=T0 + 2)
    conn.set_track_subscribed("TR_Abob", False, now=T0 + 2)
    conn.update_track_settings("TR_Abob", now=T0 + 2, enabled=False)
    conn.set_track_subscription_permissions(
        allow_all_participants=False,
        participant_permissions=[
            ParticipantTrackPermission(participant_identity="bob", allow_all=True)
        ],
        now=T0 + 2,
    )
    cmds, evs = drain(conn)
    assert [signal_of(c) for c in cmds] == [
        spb.SignalRequest(mute=tpb.MuteTrackRequest(sid="TR_Ame", muted=True)),
        spb.SignalRequest(
            subscription=tpb.UpdateSubscription(
                track_sids=["TR_Abob"],
                subscribe=False,
                participant_tracks=[
                    tpb.ParticipantTracks(participant_sid="PA_bob", track_sids=["TR_Abob"])
                ],
            )
        ),
        spb.SignalRequest(
            track_setting=tpb.UpdateTrackSettings(
                track_sids=["TR_Abob"], disabled=True, quality=tpb.HIGH
            )
        ),
        spb.SignalRequest(
            subscription_permission=tpb.SubscriptionPermission(
                all_participants=False,
                track_permissions=[
                    tpb.TrackPermission(participant_identity="bob", all_tracks=True)
                ],
            )
        ),
    ]
    assert evs == [ev.LocalTrackMuted(cid=cid, sid="TR_Ame")]
    assert conn.unpublish_track(cid, now=T0 + 3) is True
    assert conn.unpublish_track(cid, now=T0 + 3) is False
    cmds, evs = drain(conn)
    assert evs == [ev.LocalTrackUnpublished(cid=cid, sid="TR_Ame", reason=UnpublishReason.LOCAL)]
    assert cmds == [  # the slot idles and is renegotiated; no request (F4.4)
        cmd.SetSendSource(slot=1, source_cid=None),
        cmd.SetTransceiverDirection(slot=1, direction=Direction.INACTIVE),
        cmd.CreateOffer(target=PUB, offer_id=3),
    ]


def test_track_verbs_check_the_connection_state() -> None:
    conn = connection()
    with pytest.raises(
        LocalProtocolError, match=r"publish_track\(\) is not allowed while the connection is NEW"
    ):
        conn.publish_track(TrackKind.AUDIO, name="mic", now=T0)
    for call in (
        lambda: conn.set_track_muted("x", True, now=T0),
        lambda: conn.set_track_subscribed("x", True, now=T0),
        lambda: conn.update_track_settings("x", now=T0),
        lambda: conn.set_track_subscription_permissions(allow_all_participants=True, now=T0),
    ):
        with pytest.raises(LocalProtocolError, match="is not allowed while the connection is NEW"):
            call()
    assert conn.unpublish_track("x", now=T0) is False  # allowed in any state: nothing to end


def test_refused_track_verbs_change_nothing() -> None:
    conn = joined()
    with pytest.raises(LocalProtocolError, match="a AUDIO track cannot have the source CAMERA"):
        conn.publish_track(TrackKind.AUDIO, name="mic", now=T0 + 1, source=TrackSource.CAMERA)
    with pytest.raises(LocalProtocolError, match="no publication has the cid"):
        conn.set_track_muted("nope", True, now=T0 + 1)
    assert drain(conn) == ([], [])
    assert conn.state is ConnectionState.CONNECTED


# -- participants and their tracks, in livekit.rtc's order ----------------------------------------


def test_a_leaving_participants_tracks_end_before_it_leaves_and_a_new_ones_start_after() -> None:
    conn = joined()
    msr = spb.MediaSectionsRequirement(num_audios=1)
    conn.receive_signal(FakeSfu.response(media_sections_requirement=msr), now=T0 + 1)
    negotiate(conn, 2, T0 + 1, {1: "1"}, **{"1": "TR_Abob"})
    drain(conn)
    carol_track = tpb.TrackInfo(sid="TR_Acarol", type=tpb.AUDIO, name="c", source=tpb.MICROPHONE)
    carol = participant("carol")
    carol.tracks.append(carol_track)
    gone = bob(state=ppb.ParticipantInfo.DISCONNECTED, version=2)
    conn.receive_signal(FakeSfu.update(gone, carol), now=T0 + 2)
    evs = drain(conn)[1]
    assert [type(e) for e in evs] == [
        ev.TrackUnsubscribed,
        ev.TrackUnpublished,
        ev.ParticipantDisconnected,
        ev.ParticipantConnected,
        ev.ParticipantActive,
        ev.TrackPublished,
    ]
    assert evs[0] == ev.TrackUnsubscribed(participant_identity="bob", sid="TR_Abob", slot=1)
    assert evs[5] == ev.TrackPublished(
        participant_identity="carol",
        participant_sid="PA_carol",
        info=TrackPublicationInfo.from_pb(carol_track),
    )


# -- reconnects -----------------------------------------------------------------------------


def reconnect_response() -> bytes:
    return FakeSfu.response(reconnect=spb.ReconnectResponse())


def test_a_resume_syncs_published_tracks_and_reoffers_a_lost_offer_f5_1_f5_3() -> None:
    conn = joined()
    cid = published(conn)
    drain(conn)  # AddTransceiver, CreateOffer(2): offer 2 is being created
    conn.local_description_created(
        PUB, "v=0 offer 2", SdpType.OFFER, now=T0 + 1, offer_id=2, slot_mids={1: "1"}
    )
    drain(conn)  # offer 2 sent; its answer will be lost with the signal
    conn.signal_closed(now=T1, code=1006)
    conn.set_track_muted(cid, True, now=T1)  # held until the resume completes
    assert drain(conn)[0] == []
    conn.handle_timer(T1)
    drain(conn)
    conn.receive_signal(reconnect_response(), now=T1 + 0.1)
    cmds, evs = drain(conn)
    sync = signal_of(cmds[0]).sync_state
    info = tpb.TrackInfo(sid="TR_Ame", type=tpb.AUDIO, name="mic", source=tpb.MICROPHONE)
    info.muted = True  # muted meanwhile: the server learns it from the sync too
    assert list(sync.publish_tracks) == [tpb.TrackPublishedResponse(cid=cid, track=info)]
    assert not sync.HasField("subscription")  # auto-subscribe and nothing unsubscribed
    assert sync.offer == spb.SessionDescription(type="offer", sdp="v=0 offer 2")
    assert cmds[1:] == [
        cmd.SendSignal(
            data=spb.SignalRequest(
                mute=tpb.MuteTrackRequest(sid="TR_Ame", muted=True)
            ).SerializeToString()
        ),
        cmd.CreateOffer(target=PUB, offer_id=3),  # offer 2's answer went to the old signal
    ]
    assert [type(e) for e in evs] == [ev.Reconnected]
    conn.receive_signal(answer(2), now=T1 + 0.2)  # a straggler: not the offer in flight
    assert drain(conn)[1] == [ev.AnswerDropped(answer_id=2, outstanding_offer_id=None)]


def test_sync_state_names_the_tracks_we_unsubscribed_and_disabled() -> None:
    conn = joined()
    conn.set_track_subscribed("TR_Abob", False, now=T0 + 1)
    conn.update_track_settings("TR_Abob", now=T0 + 1, enabled=False)
    drain(conn)
    conn.signal_closed(now=T1, code=1006)
    conn.handle_timer(T1)
    drain(conn)
    conn.receive_signal(reconnect_response(), now=T1 + 0.1)
    sync = signal_of(drain(conn)[0][0]).sync_state
    assert sync.subscription == tpb.UpdateSubscription(track_sids=["TR_Abob"], subscribe=False)
    assert list(sync.track_sids_disabled) == ["TR_Abob"]


def test_an_ice_restart_offer_and_its_answer_take_the_direct_path() -> None:
    conn = joined()
    conn.peer_state_changed(PUB, "failed", now=T1)
    conn.handle_timer(T1 + 0.25)
    drain(conn)
    conn.receive_signal(reconnect_response(), now=T1 + 0.3)
    cmds, _ = drain(conn)
    assert cmds[-1] == cmd.CreateOffer(target=PUB, ice_restart=True)
    conn.local_description_created(PUB, "v=0 restart", SdpType.OFFER, now=T1 + 0.4)
    assert signal_of(conn.commands_to_send()[0]).offer == spb.SessionDescription(
        type="offer", sdp="v=0 restart"
    )
    conn.receive_signal(answer(0, "v=0 restarted"), now=T1 + 0.5)
    assert conn.commands_to_send() == [
        cmd.SetRemoteDescription(target=PUB, sdp="v=0 restarted", sdp_type=SdpType.ANSWER)
    ]
    conn.peer_state_changed(PUB, "connected", now=T1 + 0.6)
    cmds, evs = drain(conn)
    assert [type(e) for e in evs] == [ev.Reconnected]
    assert conn.tracks.offer_in_flight is None  # nothing was lost: no offer of the queue's


def test_a_full_reconnect_withdraws_remote_tracks_first_and_republishes_ours_f5_2() -> None:
    conn = joined()
    cid = published(conn)
    drain(conn)
    conn.simulate_scenario(__import__("lkproto").SimulateScenario.FULL_RECONNECT, now=T1)
    evs = drain(conn)[1]
    assert [type(e) for e in evs] == [
        ev.Reconnecting,
        ev.TrackUnpublished,
        ev.ParticipantDisconnected,
    ]
    conn.handle_timer(T1)
    drain(conn)
    conn.receive_signal(FakeSfu.join(others=[bob()]), now=T1 + 0.1)
    cmds, evs = drain(conn)
    assert [type(e) for e in evs] == [
        ev.ParticipantConnected,
        ev.ParticipantActive,
        ev.TrackPublished,
        ev.LocalTrackRepublishing,
    ]
    assert evs[3] == ev.LocalTrackRepublishing(previous_cid=cid, cid="cid-2")
    requests = [signal_of(c) for c in cmds if isinstance(c, cmd.SendSignal)]
    assert requests[-1].add_track.cid == "cid-2"
    assert cmds[-1] == cmd.CreateOffer(target=PUB, offer_id=3)  # the new publisher's first
    assert conn.reconnect_mode is ReconnectMode.FULL


def test_closing_ends_our_tracks_before_the_final_event() -> None:
    conn = joined()
    cid = published(conn)
    drain(conn)
    conn.close(now=T0 + 5)
    evs = drain(conn)[1]
    assert evs == [
        ev.LocalTrackUnpublished(
            cid=cid, sid="TR_Ame", reason=UnpublishReason.DISCONNECTED, message="the session ended"
        ),
        ev.TrackUnpublished(participant_identity="bob", sid="TR_Abob"),
        ev.Disconnected(
            reason=DisconnectReason.CLIENT_INITIATED, message="closed by the application"
        ),
    ]
    conn.remote_description_applied(PUB, 2, now=T0 + 6)  # late reports are ignored
    assert drain(conn) == ([], [])


# -- the paths without the queue ------------------------------------------------------------


def test_the_dual_peer_connection_path_cannot_publish_and_answers_directly() -> None:
    conn = connection()
    conn.connect(URL, TOKEN, now=T0, single_peer_connection=False)
    conn.receive_signal(FakeSfu.join(others=[bob()]), now=T0)
    assert conn.commands_to_send()[-1] == cmd.CreateOffer(target=PUB)
    conn.local_description_created(PUB, "v=0 o", SdpType.OFFER, now=T0)
    conn.receive_signal(answer(0, "v=0 a"), now=T0)
    assert conn.commands_to_send()[-1] == cmd.SetRemoteDescription(
        target=PUB, sdp="v=0 a", sdp_type=SdpType.ANSWER
    )
    conn.peer_state_changed(PUB, "connected", now=T0)
    conn.data_channel_opened(Channel.RELIABLE, now=T0)
    with pytest.raises(LocalProtocolError, match="single peer connection"):
        conn.publish_track(TrackKind.AUDIO, name="mic", now=T0 + 1)
    assert [r for _, r in conn.tracks.remote_tracks] == [BOB_INFO]  # still listed


def test_an_embedded_offer_is_answered_directly_and_holds_requirements_until_then() -> None:
    conn = connection()
    conn.connect(URL, TOKEN, now=T0, embed_publisher_offer=True)
    assert conn.commands_to_send()[-1] == cmd.CreateOffer(target=PUB)
    conn.local_description_created(PUB, "v=0 o", SdpType.OFFER, now=T0)
    drain(conn)
    conn.receive_signal(FakeSfu.join(others=[bob()]), now=T0 + 0.1)
    msr = spb.MediaSectionsRequirement(num_audios=1)
    conn.receive_signal(FakeSfu.response(media_sections_requirement=msr), now=T0 + 0.15)
    assert drain(conn)[0] == []  # held: the embedded offer is still in flight
    conn.receive_signal(answer(0, "v=0 a"), now=T0 + 0.2)
    assert conn.commands_to_send() == [
        cmd.SetRemoteDescription(target=PUB, sdp="v=0 a", sdp_type=SdpType.ANSWER),
        cmd.AddTransceiver(slot=1, kind=TrackKind.AUDIO, direction=Direction.RECVONLY),
        cmd.CreateOffer(target=PUB, offer_id=1),
    ]
    negotiate(conn, 1, T0 + 0.3, {1: "1"}, **{"1": "TR_Abob"})
    assert drain(conn)[1] == [ev.TrackSubscribed(participant_identity="bob", slot=1, info=BOB_INFO)]


def test_the_dual_peer_connection_path_ignores_requirements() -> None:
    conn = connection()
    conn.connect(URL, TOKEN, now=T0, single_peer_connection=False)
    conn.receive_signal(FakeSfu.join(), now=T0)
    drain(conn)
    msr = spb.MediaSectionsRequirement(num_audios=1)
    conn.receive_signal(FakeSfu.response(media_sections_requirement=msr), now=T0 + 1)
    assert drain(conn) == ([], [])


def test_a_full_reconnect_forgets_an_offer_outside_the_queue() -> None:
    conn = joined()
    conn.peer_state_changed(PUB, "failed", now=T1)
    conn.handle_timer(T1 + 0.25)
    conn.receive_signal(reconnect_response(), now=T1 + 0.3)
    conn.local_description_created(PUB, "v=0 restart", SdpType.OFFER, now=T1 + 0.4)
    conn.command_failed(
        cmd.CreateOffer(target=PUB, ice_restart=True), "no ICE restart", now=T1 + 0.5
    )
    conn.handle_timer(T1 + 0.5)
    conn.receive_signal(FakeSfu.join(others=[bob()]), now=T1 + 0.6)
    drain(conn)
    msr = spb.MediaSectionsRequirement(num_audios=1)
    conn.receive_signal(FakeSfu.response(media_sections_requirement=msr), now=T1 + 0.7)
    assert drain(conn)[0] == []  # the new publisher's first offer (2) is being created
    negotiate(conn, 2, T1 + 0.8, {})
    assert drain(conn)[0][-2:] == [  # not held back: no offer outside the queue is pending
        cmd.AddTransceiver(slot=1, kind=TrackKind.AUDIO, direction=Direction.RECVONLY),
        cmd.CreateOffer(target=PUB, offer_id=3),
    ]
