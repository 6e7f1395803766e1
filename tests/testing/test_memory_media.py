"""The MemoryRoom's media-track rules (lkproto/testing/_media.py) against hand-written
requests and driven `Connection`s: publishing and its refusals, subscriptions, permissions,
mute, unpublishing, departures and frame forwarding, as livekit-server 1.13.5 does them."""

from __future__ import annotations

from raw_client import RawClient, join_request, v1_target

from lkproto import Config, SimulateScenario
from lkproto import events as ev
from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto.testing import MemoryRoom, media_lines
from lkproto.testing._media import parse_media_lines
from lkproto.tracks import TrackKind

AUTO = Config(auto_subscribe=True)


def auto_target() -> str:
    return v1_target(join_request(connection_settings=spb.ConnectionSettings(auto_subscribe=True)))


def of(signals: list[spb.SignalResponse], kind: str) -> list[spb.SignalResponse]:
    return [s for s in signals if s.WhichOneof("message") == kind]


def test_the_offer_lines_round_trip_and_foreign_lines_are_ignored() -> None:
    lines = media_lines([("1", "audio", "sendonly", "cid-1"), ("2", "video", "recvonly", None)])
    sdp = "v=0\r\na=lkproto-slot:9 audio\r\n" + lines
    assert parse_media_lines(sdp) == {
        "1": ("audio", "sendonly", "cid-1"),
        "2": ("video", "recvonly", ""),
    }


def test_add_track_refusals_and_queued_duplicates_f1_4() -> None:
    room = MemoryRoom(update_interval=0)
    viewer = RawClient(room, "viewer", can_publish=False).connect()
    viewer.take()
    viewer.send(add_track=tpb.AddTrackRequest(cid="c1", name="mic", type=tpb.AUDIO))
    (refusal,) = viewer.take()
    assert refusal.request_response.reason == spb.RequestResponse.NOT_ALLOWED
    assert refusal.request_response.add_track.cid == "c1"

    pub = RawClient(room, "pub").connect()
    pub.take()
    pub.send(add_track=tpb.AddTrackRequest(cid="d1", type=tpb.DATA))
    assert pub.take()[0].request_response.reason == spb.RequestResponse.UNSUPPORTED_TYPE
    pub.send(add_track=tpb.AddTrackRequest(cid="a1", name="mic", type=tpb.AUDIO))
    pub.send(add_track=tpb.AddTrackRequest(cid="a1", name="mic", type=tpb.AUDIO))
    first, second = pub.take()
    assert first.track_published.cid == "a1"
    assert first.track_published.track.sid.startswith("TR_A")
    assert first.track_published.track.stream == "camera"  # the server's default, F1.1
    assert second.request_response.reason == spb.RequestResponse.QUEUED
    pub.send(mute=tpb.MuteTrackRequest(sid="TR_Anope", muted=True))
    assert pub.take()[0].request_response.reason == spb.RequestResponse.NOT_FOUND
    pub.send(track_setting=tpb.UpdateTrackSettings(track_sids=["x"], disabled=True))
    assert pub.take() == []  # accepted, not modelled


def test_publish_subscribe_permissions_mute_unpublish_and_departure() -> None:
    room = MemoryRoom(update_interval=0)
    pub = RawClient(room, "pub").connect()
    sub = RawClient(room, "sub", target=auto_target()).connect()
    sub.connect(media_lines([]))  # nothing to receive yet
    pub.send(add_track=tpb.AddTrackRequest(cid="a1", name="mic", type=tpb.AUDIO))
    sid = pub.take()[-1].track_published.track.sid
    sub.take()
    pub.connect(media_lines([("1", "audio", "sendonly", "a1")]))  # published once offered
    signals = sub.take()
    (update,) = of(signals, "update")
    assert [(t.sid, t.mid, t.mime_type) for t in update.update.participants[0].tracks] == [
        (sid, "1", "audio/opus")
    ]
    (permission,) = of(signals, "subscription_permission_update")
    assert permission.subscription_permission_update.allowed
    (requirement,) = of(signals, "media_sections_requirement")
    assert requirement.media_sections_requirement.num_audios == 1
    sub.connect(media_lines([]))  # still no m-line for it: asked again after the answer
    assert [s.WhichOneof("message") for s in sub.take()] == ["answer", "media_sections_requirement"]
    sub.connect(media_lines([("1", "audio", "recvonly", None)]))
    (answer,) = of(sub.take(), "answer")
    assert dict(answer.answer.mid_to_track_id) == {"1": sid}
    assert [s.track_subscribed.track_sid for s in of(pub.take(), "track_subscribed")] == [sid]

    assert pub.peer is not None
    pub.peer.send_media("1", "frame-1")
    room.run_until_idle()
    assert sub.media == [("1", "frame-1")]
    pub.peer.send_media("9", "nowhere")  # no track on that m-line
    room.run_until_idle()
    assert len(sub.media) == 1

    # Mute: broadcast, and nothing is forwarded meanwhile (F4.1).
    pub.send(mute=tpb.MuteTrackRequest(sid=sid, muted=True))
    assert of(sub.take(), "update")[0].update.participants[0].tracks[0].muted
    pub.send(mute=tpb.MuteTrackRequest(sid=sid, muted=True))  # no change: no update
    assert of(sub.take(), "update") == []
    pub.peer.send_media("1", "muted")
    room.run_until_idle()
    assert len(sub.media) == 1
    pub.send(mute=tpb.MuteTrackRequest(sid=sid, muted=False))

    # Permissions: denied, then allowed by identity.
    pub.send(subscription_permission=tpb.SubscriptionPermission(all_participants=False))
    signals = sub.take()
    assert not of(signals, "subscription_permission_update")[
        0
    ].subscription_permission_update.allowed
    assert of(signals, "media_sections_requirement")[0].media_sections_requirement.num_audios == 0
    sub.connect(media_lines([("1", "audio", "recvonly", None)]))
    assert dict(of(sub.take(), "answer")[0].answer.mid_to_track_id) == {}
    other = tpb.TrackPermission(participant_identity="someone-else", all_tracks=True)
    allow = tpb.TrackPermission(participant_identity="sub", track_sids=[sid])
    pub.send(subscription_permission=tpb.SubscriptionPermission(track_permissions=[other, allow]))
    sub.take()
    sub.connect(media_lines([("1", "audio", "recvonly", None)]))
    assert dict(of(sub.take(), "answer")[0].answer.mid_to_track_id) == {"1": sid}

    # The subscriber unsubscribes, then subscribes again: its m-line is reused.
    sub.send(subscription=tpb.UpdateSubscription(track_sids=[sid], subscribe=False))
    assert of(sub.take(), "media_sections_requirement")  # 0/0: renegotiate
    sub.send(subscription=tpb.UpdateSubscription(track_sids=[sid], subscribe=True))
    sub.connect(media_lines([("1", "audio", "recvonly", None)]))
    assert dict(of(sub.take(), "answer")[0].answer.mid_to_track_id) == {"1": sid}

    # A re-offer that still sends it changes nothing; a track announced but not yet in an
    # offer stays pending.
    pub.send(add_track=tpb.AddTrackRequest(cid="a2", name="second", type=tpb.AUDIO))
    pub.connect(media_lines([("1", "audio", "sendonly", "a1")]))
    assert of(sub.take(), "update") == []

    # Unpublished by the offer (inactive, F4.4): gone from the participant, unbound.
    pub.connect(media_lines([("1", "audio", "inactive", None)]))
    signals = sub.take()
    assert list(of(signals, "update")[0].update.participants[0].tracks) == []
    sub.connect(media_lines([("1", "audio", "recvonly", None)]))
    assert dict(of(sub.take(), "answer")[0].answer.mid_to_track_id) == {}


def test_a_publisher_leaving_unbinds_its_tracks_from_everyone() -> None:
    room = MemoryRoom(update_interval=0)
    alice = room.join("alice", config=AUTO)
    room.join("bob", config=AUTO)
    cid = alice.publish_track(TrackKind.AUDIO, name="mic", now=room.now)
    room.run_until_idle()
    assert [e for e in room.events("bob") if isinstance(e, ev.TrackSubscribed)]
    alice.close(now=room.now)
    room.run_until_idle()
    room.advance(1)
    bob_events = room.events("bob")
    assert [
        type(e) for e in bob_events if isinstance(e, ev.TrackUnsubscribed | ev.TrackUnpublished)
    ] == [
        ev.TrackUnsubscribed,
        ev.TrackUnpublished,
    ]
    room.send_media("alice", cid, "after")  # alice is gone: nothing is sent
    assert room.media("bob") == []


def test_frames_are_lost_while_a_subscriber_is_cut_off_and_unbound_ones_dropped() -> None:
    room = MemoryRoom(update_interval=0)
    alice = room.join("alice", config=AUTO)
    bob = room.join("bob", config=AUTO)
    carol = room.join("carol", config=AUTO)
    cid = alice.publish_track(TrackKind.AUDIO, name="mic", now=room.now)
    carol.publish_track(TrackKind.AUDIO, name="mic", now=room.now)
    room.run_until_idle()
    room.send_media("alice", cid, "to both")  # bob has carol's track bound too
    assert room.media("bob") == [(_sid(room, "bob", "alice"), "to both")]
    room.disconnect("alice")
    room.send_media("alice", cid, "lost on the way up")
    room.restore("alice")
    room.run_until_idle()
    assert room.media("bob") == []
    room.disconnect("bob")
    room.send_media("alice", cid, "lost")
    room.restore("bob")
    room.run_until_idle()
    assert room.media("bob") == []
    room.send_media("alice", "not-a-cid", "nothing")
    assert room.media("bob") == []
    bob.set_track_subscribed(_sid(room, "bob", "alice"), False, now=room.now)
    room.run_until_idle()
    room.send_media("alice", cid, "unsubscribed")
    assert room.media("bob", clear=False) == []


def _sid(room: MemoryRoom, who: str, publisher: str) -> str:
    conn = room.connection(who)
    return next(info.sid for identity, info in conn.tracks.remote_tracks if identity == publisher)


def test_late_frames_for_a_gone_publisher_or_an_old_peer_connection_are_dropped() -> None:
    room = MemoryRoom(update_interval=0)
    alice = room.join("alice", config=AUTO)
    bob = room.join("bob", config=AUTO)
    alice.publish_track(TrackKind.AUDIO, name="mic", now=room.now)
    room.run_until_idle()
    member = room._sfu.members["alice"]
    old_port = room._driven["bob"].peer
    assert old_port is not None
    old_port.media_received("9", "on no m-line of ours")
    alice.close(now=room.now)
    room.run_until_idle()
    room._sfu.media.forward(member, "1", "late")  # she left: nothing
    room.fail_client_peer("alice")  # she has no peer connection any more: nothing happens
    bob.simulate_scenario(SimulateScenario.FULL_RECONNECT, now=room.now)
    room.run_until_idle()
    old_port.media_received("1", "to a peer connection that is gone")
    assert room.media("bob") == []


def test_an_unpublish_idles_the_transceiver_and_an_unknown_peer_connection_fails() -> None:
    seen: list[list[tuple[str, object]]] = []
    room = MemoryRoom(update_interval=0)
    alice = room.join("alice", config=AUTO)
    room.join("bob", config=AUTO, on_event=lambda _: seen.append(room.media("bob", clear=False)))
    cid = alice.publish_track(TrackKind.AUDIO, name="mic", now=room.now)
    room.run_until_idle()
    assert alice.unpublish_track(cid, now=room.now)
    room.run_until_idle()
    assert [e for e in room.events("bob") if isinstance(e, ev.TrackUnpublished)]
    assert seen and seen[-1] == []  # media() works from inside an event handler too
    room._driven["alice"]._connect("a-ufrag-the-room-never-issued")
    assert alice.reconnect_mode is not None  # the peer connection failed: a resume began
