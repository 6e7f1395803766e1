"""Remote publications, subscriptions and bindings, deterministically (protocol-reference-2
3.3; findings F2.1-F2.6, F4.3, F4.7-F4.9).

Signal bytes by hand: SignalRequest.subscription is field 6 (tag 32), track_setting 7 (3a),
subscription_permission 11 (5a). UpdateSubscription track_sids 1, subscribe 2,
participant_tracks 3 ({participant_sid 1, track_sids 2}); UpdateTrackSettings track_sids 1,
disabled 3, quality 4, width 5, height 6, fps 7; SubscriptionPermission all_participants 1,
track_permissions 2 ({all_tracks 2, participant_identity 4}).
"""

from __future__ import annotations

from typing import cast

import pytest
from test_tracks_support import (
    T0,
    Driver,
    answer,
    audio_info,
    events,
    manager,
    msr,
    person,
    sent,
    update,
    video_info,
)

from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto.errors import LocalProtocolError
from lkproto.tracks import (
    AddTransceiver,
    AnswerDropped,
    CreateTrackOffer,
    Direction,
    LocalTrackPublished,
    LocalTrackPublishFailed,
    LocalTrackRepublished,
    LocalTrackRepublishing,
    LocalTrackState,
    LocalTrackUnpublished,
    ParticipantTrackPermission,
    PublishTrackErrorReason,
    StreamState,
    SubscriptionErrorReason,
    TrackKind,
    TrackManager,
    TrackMuted,
    TrackPublicationInfo,
    TrackPublished,
    TrackSignalIgnored,
    TrackStreamStateChanged,
    TrackSubscribed,
    TrackSubscriptionFailed,
    TrackSubscriptionPermissionChanged,
    TrackUnmuted,
    TrackUnpublished,
    TrackUnsubscribed,
    UnpublishReason,
    VideoQuality,
)

E = SubscriptionErrorReason
UNSUB_B = bytes.fromhex(
    "32 16 0a 04 54 52 5f 42 1a 0e 0a 06 50 41 5f 62 6f 62 12 04 54 52 5f 42"
)  # UpdateSubscription{[TR_B], false, [{PA_bob, [TR_B]}]}
SUB_B = bytes.fromhex(
    "32 18 0a 04 54 52 5f 42 10 01 1a 0e 0a 06 50 41 5f 62 6f 62 12 04 54 52 5f 42"
)
DISABLE_C = bytes.fromhex("3a 0a 0a 04 54 52 5f 43 18 01 20 02")  # {[TR_C], disabled, HIGH}
ENABLE_C = bytes.fromhex("3a 08 0a 04 54 52 5f 43 20 02")  # {[TR_C], quality HIGH}
C_320X180 = bytes.fromhex("3a 0c 0a 04 54 52 5f 43 28 c0 02 30 b4 01")
C_LOW = bytes.fromhex("3a 06 0a 04 54 52 5f 43")  # quality LOW is the proto default (0)
C_LOW_15FPS = bytes.fromhex("3a 08 0a 04 54 52 5f 43 38 0f")
ONLY_BOB = bytes.fromhex("5a 09 12 07 10 01 22 03 62 6f 62")  # {false, [{bob, all_tracks}]}
EVERYONE = bytes.fromhex("5a 02 08 01")


def info(sid: str, name: str = "mic", *, muted: bool = False) -> TrackPublicationInfo:
    return TrackPublicationInfo.from_pb(audio_info(sid, name, muted=muted))


def subscribed(sid: str, slot: int, who: str = "bob") -> TrackSubscribed:
    return TrackSubscribed(participant_identity=who, slot=slot, info=info(sid))


def unsubscribed(sid: str, slot: int, who: str = "bob") -> TrackUnsubscribed:
    return TrackUnsubscribed(participant_identity=who, sid=sid, slot=slot)


def permission(sid: str, allowed: bool) -> spb.SignalResponse:
    update = tpb.SubscriptionPermissionUpdate(
        participant_sid="PA_bob", track_sid=sid, allowed=allowed
    )
    return spb.SignalResponse(subscription_permission_update=update)


def failure(sid: str, err: int) -> spb.SignalResponse:
    response = tpb.SubscriptionResponse(track_sid=sid, err=err)  # type: ignore[arg-type]
    return spb.SignalResponse(subscription_response=response)


# -- discovery -------------------------------------------------------------------------------


def test_the_join_and_updates_discover_publications() -> None:
    bob = person(
        "bob",
        [
            audio_info("TR_A"),
            tpb.TrackInfo(sid="TR_D", type=tpb.DATA),
            audio_info(""),
            audio_info("TR_A", "again"),  # listed twice: the first entry counts
        ],
    )
    m = manager(bob, person("me", [audio_info("TR_me")]), person("gone", gone=True))
    assert m.drain() == [
        TrackSignalIgnored(reason="invalid-info", detail="'bob' lists a track without sid"),
        TrackPublished(participant_identity="bob", participant_sid="PA_bob", info=info("TR_A")),
    ]
    m.receive_signal(update(person("carol", [video_info("TR_V")])), now=T0)
    assert m.drain() == [
        TrackPublished(
            participant_identity="carol",
            participant_sid="PA_carol",
            info=TrackPublicationInfo.from_pb(video_info("TR_V")),
        )
    ]
    assert [(who, i.sid) for who, i in m.remote_tracks] == [("bob", "TR_A"), ("carol", "TR_V")]


def test_updates_report_mute_changes_and_removals_f4_3() -> None:
    m = manager(person("bob", [audio_info("TR_A"), audio_info("TR_B")]))
    m.drain()
    m.receive_signal(
        update(person("bob", [audio_info("TR_A", muted=True), audio_info("TR_B")], version=2)),
        now=T0,
    )
    assert m.drain() == [TrackMuted(participant_identity="bob", sid="TR_A")]
    m.receive_signal(update(person("bob", [audio_info("TR_A")], version=1)), now=T0)  # older
    assert m.drain() == []
    m.receive_signal(update(person("bob", [audio_info("TR_A")], version=3)), now=T0)
    assert m.drain() == [
        TrackUnmuted(participant_identity="bob", sid="TR_A"),
        TrackUnpublished(participant_identity="bob", sid="TR_B"),
    ]
    m.receive_signal(update(person("bob", sid="PA_old", gone=True)), now=T0)  # an old session
    assert m.drain() == []
    m.receive_signal(update(person("bob", version=4, gone=True)), now=T0)
    assert m.drain() == [TrackUnpublished(participant_identity="bob", sid="TR_A")]
    m.receive_signal(update(person("bob", gone=True)), now=T0)  # already gone
    assert m.drain() == []


def test_conflicts_and_the_remote_track_bound_are_reported() -> None:
    m = manager(person("bob", [audio_info("TR_A")]), max_remote_tracks=2)
    m.receive_signal(update(person("eve", [audio_info("TR_A"), audio_info("TR_E")])), now=T0)
    m.receive_signal(update(person("carol", [audio_info("TR_C")])), now=T0)
    assert events(m.drain())[1:] == [
        TrackSignalIgnored(reason="conflict", detail="TR_A listed by 'eve', published by 'bob'"),
        TrackPublished(participant_identity="eve", participant_sid="PA_eve", info=info("TR_E")),
        TrackSignalIgnored(
            reason="too-many-tracks", detail="TR_C of 'carol': 2 remote tracks are known"
        ),
    ]


# -- binding (F2.1, F4.7, F4.9) ----------------------------------------------------------------


def test_auto_subscribe_binds_the_slot_only_once_the_answer_is_applied_f2_1() -> None:
    m = manager(person("bob", [audio_info("TR_A")]))
    m.drain()
    driver = Driver(m)
    m.receive_signal(msr(1), now=T0)
    driver.run(m.drain())
    m.drain()
    m.receive_signal(
        spb.SignalResponse(
            answer=spb.SessionDescription(
                type="answer", sdp="a", id=1, mid_to_track_id={"1": "TR_A"}
            )
        ),
        now=T0,
    )
    m.drain()
    assert m.subscribed_slot("TR_A") is None  # not before the adapter applied it
    assert m.slots[0].bound_sid == ""
    m.remote_description_applied(1, now=T0)
    assert m.drain() == [subscribed("TR_A", 1)]
    assert m.subscribed_slot("TR_A") == 1
    assert m.applied_mid_to_track_id == {"1": "TR_A"}


def test_the_reuse_table_of_f4_7() -> None:
    """Official tracks A and B, then C; unsubscribe, resubscribe, disable, deny, allow."""
    m = manager(person("bob", [audio_info("TR_A"), audio_info("TR_B")]))
    m.drain()
    driver = Driver(m)
    # A and B subscribed: MSR 2, answer {1: A, 2: B}
    m.receive_signal(msr(2), now=T0)
    assert events(driver.settle({"1": "TR_A", "2": "TR_B"})) == [
        subscribed("TR_A", 1),
        subscribed("TR_B", 2),
    ]
    # the official side unpublishes A: an update without A, then MSR 0/0, answer {2: B}
    m.receive_signal(update(person("bob", [audio_info("TR_B")], version=2)), now=T0)
    assert m.drain() == [
        unsubscribed("TR_A", 1),
        TrackUnpublished(participant_identity="bob", sid="TR_A"),
    ]
    m.receive_signal(msr(), now=T0)
    assert events(driver.settle({"2": "TR_B"})) == []
    # the official side publishes C: permission update, MSR 0/0, mid 1 reused {1: C, 2: B}
    m.receive_signal(
        update(person("bob", [audio_info("TR_B"), audio_info("TR_C")], version=3)), now=T0
    )
    m.receive_signal(permission("TR_C", True), now=T0)
    m.receive_signal(msr(), now=T0)
    assert events(driver.settle({"1": "TR_C", "2": "TR_B"})) == [
        TrackPublished(participant_identity="bob", participant_sid="PA_bob", info=info("TR_C")),
        subscribed("TR_C", 1),
    ]
    # we unsubscribe B: at once for us; MSR 0/0, answer {1: C}
    m.set_subscribed("TR_B", False, now=T0)
    out = m.drain()
    assert sent(out) == [UNSUB_B]
    assert events(out) == [unsubscribed("TR_B", 2)]
    m.receive_signal(msr(), now=T0)
    assert events(driver.settle({"1": "TR_C"})) == []
    # we resubscribe B: permission update, MSR 0/0, answer {1: C, 2: B}
    m.set_subscribed("TR_B", True, now=T0)
    out = m.drain()
    assert sent(out) == [SUB_B]
    assert events(out) == []  # slot 2 is not bound to B any more
    m.receive_signal(permission("TR_B", True), now=T0)
    m.receive_signal(msr(), now=T0)
    assert events(driver.settle({"1": "TR_C", "2": "TR_B"})) == [subscribed("TR_B", 2)]
    # UpdateTrackSettings{C, disabled}: nothing else changes
    m.update_track_settings("TR_C", enabled=False, now=T0)
    assert sent(m.drain()) == [DISABLE_C]
    # the official side denies everything: permission updates, MSR 0/0, answer {}
    m.receive_signal(permission("TR_B", False), now=T0)
    m.receive_signal(permission("TR_C", False), now=T0)
    m.receive_signal(msr(), now=T0)
    assert events(driver.settle({})) == [
        TrackSubscriptionPermissionChanged(participant_identity="bob", sid="TR_B", allowed=False),
        TrackSubscriptionPermissionChanged(participant_identity="bob", sid="TR_C", allowed=False),
        unsubscribed("TR_C", 1),  # in the order they were announced
        unsubscribed("TR_B", 2),
    ]
    # ... and allows us again: {1: C, 2: B}
    m.receive_signal(permission("TR_B", True), now=T0)
    m.receive_signal(permission("TR_C", True), now=T0)
    m.receive_signal(msr(), now=T0)
    assert events(driver.settle({"1": "TR_C", "2": "TR_B"})) == [
        TrackSubscriptionPermissionChanged(participant_identity="bob", sid="TR_B", allowed=True),
        TrackSubscriptionPermissionChanged(participant_identity="bob", sid="TR_C", allowed=True),
        subscribed("TR_C", 1),
        subscribed("TR_B", 2),
    ]
    assert len(m.slots) == 2  # the server reused both m-lines throughout


def test_resubscribing_while_the_slot_is_still_bound_announces_at_once() -> None:
    m = manager(person("bob", [audio_info("TR_B")]))
    m.drain()
    m.receive_signal(msr(1), now=T0)
    Driver(m).settle({"1": "TR_B"})
    m.set_subscribed("TR_B", False, now=T0)
    m.drain()
    m.set_subscribed("TR_B", True, now=T0)
    out = m.drain()
    assert sent(out) == [SUB_B]
    assert events(out) == [subscribed("TR_B", 1)]
    m.set_subscribed("TR_B", True, now=T0)  # no change
    assert m.drain() == []


def test_an_answer_may_bind_a_track_before_its_publication_is_known() -> None:
    m = manager()
    m.receive_signal(msr(1), now=T0)
    assert events(Driver(m).settle({"1": "TR_X"})) == []
    assert m.slots[0].bound_sid == "TR_X"
    m.receive_signal(update(person("bob", [audio_info("TR_X")])), now=T0)
    assert m.drain() == [
        TrackPublished(participant_identity="bob", participant_sid="PA_bob", info=info("TR_X")),
        subscribed("TR_X", 1),
    ]


def test_a_track_moving_to_another_slot_is_unsubscribed_then_subscribed() -> None:
    m = manager(person("bob", [audio_info("TR_A")]))
    m.drain()
    driver = Driver(m)
    m.receive_signal(msr(2), now=T0)
    driver.settle({"1": "TR_A"})
    m.receive_signal(msr(), now=T0)
    assert events(driver.settle({"2": "TR_A"})) == [unsubscribed("TR_A", 1), subscribed("TR_A", 2)]


def test_answer_maps_that_name_no_receive_slot_are_reported() -> None:
    m = manager(person("bob", [audio_info("TR_A")]))
    m.drain()
    m.publish(kind=TrackKind.AUDIO, name="mic", now=T0)
    m.receive_signal(
        spb.SignalResponse(
            track_published=tpb.TrackPublishedResponse(cid="c1", track=audio_info("TR_me"))
        ),
        now=T0,
    )
    m.receive_signal(msr(2), now=T0)
    seen = Driver(m).settle({"1": "TR_Z", "2": "TR_A", "3": "TR_A", "9": "TR_Q"})

    def unknown(mid: str, sid: str) -> TrackSignalIgnored:
        return TrackSignalIgnored(
            reason="unknown-mid", detail=f"the answer maps mid {mid!r} to {sid}"
        )

    assert events(seen)[1:] == [
        # offer 1 had only our send slot (mid 1): the server's map fits nothing
        unknown("1", "TR_Z"),
        unknown("2", "TR_A"),
        unknown("3", "TR_A"),
        unknown("9", "TR_Q"),
        # offer 2 added receive slots 2 and 3 (mids 2, 3)
        unknown("1", "TR_Z"),
        TrackSignalIgnored(
            reason="duplicate-sid",
            detail="the answer maps TR_A to mid '3' too; the first mid keeps it",
        ),
        unknown("9", "TR_Q"),
        subscribed("TR_A", 2),
    ]


# -- subscription wishes (F2.4) -----------------------------------------------------------------


def test_manual_subscription_f2_4() -> None:
    m = manager(person("bob", [audio_info("TR_B")]), auto_subscribe=False)
    m.drain()
    assert not m.wants_subscription("TR_B")
    m.receive_signal(msr(1), now=T0)
    assert events(Driver(m).settle({"1": "TR_B"})) == []  # bound but not wanted: not announced
    m.set_subscribed("TR_B", True, now=T0)
    out = m.drain()
    assert sent(out) == [SUB_B]
    assert events(out) == [subscribed("TR_B", 1)]
    assert m.sync_state_subscription() == tpb.UpdateSubscription(
        track_sids=["TR_B"], subscribe=True
    )
    m.set_subscribed("TR_B", False, now=T0)
    assert sent(m.drain()) == [UNSUB_B]
    assert m.sync_state_subscription() == tpb.UpdateSubscription(subscribe=True)


def test_subscribing_to_an_unknown_track_fails_at_once() -> None:
    m = manager()
    m.set_subscribed("TR_gone", True, now=T0)
    m.set_subscribed("TR_gone", False, now=T0)
    assert m.drain() == [
        TrackSubscriptionFailed(
            participant_identity="",
            sid="TR_gone",
            error=E.TRACK_NOT_FOUND,
            message="no remote participant publishes this track",
        )
    ]
    with pytest.raises(LocalProtocolError, match="subscribed must be bool"):
        m.set_subscribed("TR_gone", 1, now=T0)  # type: ignore[arg-type]


def test_subscription_errors_are_reported_once_per_sid_and_error_f2_6() -> None:
    m = manager(person("bob", [audio_info("TR_B")]), max_remembered_subscription_errors=2)
    m.drain()
    for _ in range(3):  # every 3 s
        m.receive_signal(failure("TR_B", 0), now=T0)
    m.receive_signal(failure("TR_B", 1), now=T0)
    m.receive_signal(failure("TR_X", 2), now=T0)
    m.receive_signal(failure("TR_Y", 9), now=T0)
    m.receive_signal(failure("TR_B", 1), now=T0)  # forgotten: over the bound
    assert m.drain() == [
        TrackSubscriptionFailed(
            participant_identity="bob", sid="TR_B", error=E.UNKNOWN, message="UNKNOWN"
        ),
        TrackSubscriptionFailed(
            participant_identity="bob",
            sid="TR_B",
            error=E.CODEC_UNSUPPORTED,
            message="CODEC_UNSUPPORTED",
        ),
        TrackSubscriptionFailed(
            participant_identity="", sid="TR_X", error=E.TRACK_NOT_FOUND, message="TRACK_NOT_FOUND"
        ),
        TrackSubscriptionFailed(
            participant_identity="", sid="TR_Y", error=E.UNKNOWN, message="server error 9"
        ),
        TrackSubscriptionFailed(
            participant_identity="bob",
            sid="TR_B",
            error=E.CODEC_UNSUPPORTED,
            message="CODEC_UNSUPPORTED",
        ),
    ]
    m.receive_signal(msr(1), now=T0)
    Driver(m).settle({"1": "TR_B"})  # subscribed: the error is forgotten
    m.receive_signal(failure("TR_B", 1), now=T0)
    assert events(m.drain()) == [
        TrackSubscriptionFailed(
            participant_identity="bob",
            sid="TR_B",
            error=E.CODEC_UNSUPPORTED,
            message="CODEC_UNSUPPORTED",
        )
    ]


def test_permission_updates_report_changes_only() -> None:
    m = manager(person("bob", [audio_info("TR_B")]))
    m.drain()
    m.receive_signal(permission("TR_B", True), now=T0)
    m.receive_signal(permission("TR_B", False), now=T0)
    m.receive_signal(permission("TR_B", False), now=T0)
    m.receive_signal(permission("TR_Q", False), now=T0)
    assert m.drain() == [
        TrackSubscriptionPermissionChanged(participant_identity="bob", sid="TR_B", allowed=False),
        TrackSignalIgnored(reason="unknown-sid", detail="subscription permission for TR_Q"),
    ]


def test_stream_state_updates_report_changes_only() -> None:
    m = manager(person("bob", [audio_info("TR_B")]))
    m.drain()

    def states(*entries: tuple[str, int]) -> spb.SignalResponse:
        infos = [
            tpb.StreamStateInfo(participant_sid="PA_bob", track_sid=s, state=v)  # type: ignore[arg-type]
            for s, v in entries
        ]
        return spb.SignalResponse(stream_state_update=tpb.StreamStateUpdate(stream_states=infos))

    m.receive_signal(states(("TR_B", 0), ("TR_B", 0), ("TR_Q", 1), ("TR_B", 7)), now=T0)
    m.receive_signal(states(("TR_B", 1)), now=T0)
    assert m.drain() == [
        TrackStreamStateChanged(participant_identity="bob", sid="TR_B", state=StreamState.ACTIVE),
        TrackSignalIgnored(reason="unknown-sid", detail="stream state for TR_Q"),
        TrackSignalIgnored(reason="unknown-state", detail="stream state 7 for TR_B"),
        TrackStreamStateChanged(participant_identity="bob", sid="TR_B", state=StreamState.PAUSED),
    ]


# -- settings and permissions --------------------------------------------------------------------


def test_track_settings_are_sent_whole_when_they_change_f6_3() -> None:
    m = manager(person("bob", [audio_info("TR_C")]))
    m.drain()
    m.update_track_settings("TR_C", enabled=False, now=T0)
    m.update_track_settings("TR_C", enabled=False, now=T0)  # no change
    assert sent(m.drain()) == [DISABLE_C]
    assert m.sync_state_track_sids_disabled() == ["TR_C"]
    m.update_track_settings("TR_C", enabled=True, now=T0)
    assert sent(m.drain()) == [ENABLE_C]
    assert m.sync_state_track_sids_disabled() == []
    m.update_track_settings("TR_C", width=320, height=180, now=T0)
    m.update_track_settings("TR_C", quality=VideoQuality.LOW, now=T0)  # clears the dimensions
    m.update_track_settings("TR_C", fps=15, now=T0)
    m.update_track_settings("TR_unknown", enabled=False, now=T0)
    assert sent(m.drain()) == [C_320X180, C_LOW, C_LOW_15FPS]


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"width": 320}, "give width and height together"),
        ({"width": 320, "height": 180, "quality": VideoQuality.LOW}, "not both"),
        ({"quality": 1}, "quality must be VideoQuality"),
        ({"enabled": "no"}, "enabled must be bool"),
        ({"fps": -1}, "fps must be in 0..1000"),
    ],
)
def test_bad_track_settings_are_refused(kwargs: dict[str, object], text: str) -> None:
    m = manager(person("bob", [audio_info("TR_C")]))
    m.drain()
    with pytest.raises(LocalProtocolError, match=text):
        m.update_track_settings("TR_C", now=T0, **kwargs)  # type: ignore[arg-type]
    assert m.drain() == []


def test_our_subscription_permissions() -> None:
    m = manager()
    m.set_track_subscription_permissions(
        allow_all_participants=False,
        participant_permissions=[
            ParticipantTrackPermission(participant_identity="bob", allow_all=True)
        ],
        now=T0,
    )
    m.set_track_subscription_permissions(allow_all_participants=True, now=T0)
    assert sent(m.drain()) == [ONLY_BOB, EVERYONE]
    with pytest.raises(LocalProtocolError, match="a participant permission must be"):
        m.set_track_subscription_permissions(
            allow_all_participants=False,
            participant_permissions=cast("list[ParticipantTrackPermission]", ["bob"]),
            now=T0,
        )
    some = ParticipantTrackPermission(participant_identity="x", allowed_track_sids=["TR_1"])
    assert some.allowed_track_sids == ("TR_1",)
    for bad, text in (
        (ParticipantTrackPermission(participant_identity="\ud800"), "participant_identity is"),
        (ParticipantTrackPermission(participant_identity="x", allow_all=1), "allow_all must"),  # type: ignore[arg-type]
        (
            ParticipantTrackPermission(
                participant_identity="x",
                allowed_track_sids=cast("list[str]", [1]),
            ),
            "a track sid must",
        ),
    ):
        with pytest.raises(LocalProtocolError, match=text):
            m.set_track_subscription_permissions(
                allow_all_participants=False, participant_permissions=[bad], now=T0
            )
    assert m.drain() == []


# -- resume and full reconnect (F5.1, F5.2) ----------------------------------------------------


def test_requests_made_while_resuming_wait_for_the_resume() -> None:
    m = manager(person("bob", [audio_info("TR_B")]))
    m.drain()
    m.reconnecting(full=False, now=T0)
    m.reconnecting(full=False, now=T0)  # a retry
    m.set_subscribed("TR_B", False, now=T0)
    m.update_track_settings("TR_B", enabled=False, now=T0)
    assert m.drain() == []
    m.resumed(now=T0)
    assert sent(m.drain())[0] == UNSUB_B
    with pytest.raises(LocalProtocolError, match=r"resumed\(\) is not allowed"):
        m.resumed(now=T0)


def test_sync_state_for_a_resume_f5_1() -> None:
    m = manager(person("bob", [audio_info("TR_B"), audio_info("TR_C")]))
    m.drain()
    cid = m.publish(TrackKind.AUDIO, name="mic", now=T0)
    m.publish(TrackKind.AUDIO, name="pending", now=T0)
    track = audio_info("TR_me")
    track.mime_type = "audio/opus"
    m.receive_signal(
        spb.SignalResponse(track_published=tpb.TrackPublishedResponse(cid=cid, track=track)),
        now=T0,
    )
    m.set_muted(cid, True, now=T0)
    m.set_subscribed("TR_C", False, now=T0)
    m.update_track_settings("TR_B", enabled=False, now=T0)
    expected = audio_info("TR_me", muted=True)
    expected.mime_type = "audio/opus"
    assert m.sync_state_publish_tracks() == [tpb.TrackPublishedResponse(cid="c1", track=expected)]
    assert m.sync_state_subscription() == tpb.UpdateSubscription(
        track_sids=["TR_C"], subscribe=False
    )
    assert m.sync_state_track_sids_disabled() == ["TR_B"]


def test_reconnecting_full_while_resuming_and_resume_while_rejoining() -> None:
    m = manager()
    m.reconnecting(full=False, now=T0)
    m.reconnecting(full=True, now=T0)
    with pytest.raises(LocalProtocolError, match="a full reconnect is already under way"):
        m.reconnecting(full=False, now=T0)
    m.reconnecting(full=True, now=T0)
    m.joined("me", [], now=T0)
    assert m.drain() == []


def test_disconnected_ends_everything_and_is_idempotent() -> None:
    m = manager(person("bob", [audio_info("TR_B")]))
    m.drain()
    m.receive_signal(msr(1), now=T0)
    Driver(m).settle({"1": "TR_B"})
    m.disconnected(now=T0)
    assert m.drain() == [
        unsubscribed("TR_B", 1),
        TrackUnpublished(participant_identity="bob", sid="TR_B"),
    ]
    m.disconnected(now=T0)
    m.receive_signal(msr(1), now=T0)
    m.participants_updated([person("bob", [audio_info("TR_Z")])], now=T0)
    m.request_response_received(
        spb.RequestResponse(
            reason=spb.RequestResponse.NOT_ALLOWED, add_track=tpb.AddTrackRequest(cid="c1")
        ),
        now=T0,
    )
    assert m.drain() == []
    assert m.slots == ()
    assert m.get_timer() is None


def test_joined_refuses_bad_input() -> None:
    m = TrackManager(id_factory=lambda: "c")
    with pytest.raises(LocalProtocolError, match="local_identity must be str"):
        m.joined(None, [], now=T0)  # type: ignore[arg-type]
    m.joined("me", [], now=T0)
    with pytest.raises(LocalProtocolError, match=r"joined\(\) is not allowed"):
        m.joined("me", [], now=T0)


UNSUB_C = bytes.fromhex("32 16 0a 04 54 52 5f 43 1a 0e 0a 06 50 41 5f 62 6f 62 12 04 54 52 5f 43")
DISABLE_B = bytes.fromhex("3a 0a 0a 04 54 52 5f 42 18 01 20 02")
# AddTrackRequest{cid "c3", name "mic", muted, MICROPHONE, disable_red, [TF_NO_DTX]}
ADD_C3_MUTED = bytes.fromhex("22 13 0a 02 63 33 12 03 6d 69 63 30 01 40 02 68 01 8a 01 01 01")
ADD_C4_LATE = bytes.fromhex("22 12 0a 02 63 34 12 04 6c 61 74 65 40 02 68 01 8a 01 01 01")


def info_subscribed(sid: str, slot: int) -> TrackSubscribed:
    return subscribed(sid, slot)


def track_published(cid: str, track: tpb.TrackInfo) -> spb.SignalResponse:
    return spb.SignalResponse(track_published=tpb.TrackPublishedResponse(cid=cid, track=track))


def reconnected_fully() -> TrackManager:
    """c1 published as TR_a on slot 1, TR_B subscribed on slot 2, c2 pending; our wishes
    about TR_C, TR_B and our permissions set; then a full reconnect and a new join."""
    m = manager(person("bob", [audio_info("TR_B"), audio_info("TR_C")]))
    driver = Driver(m)
    m.publish(TrackKind.AUDIO, name="mic", now=T0)
    m.receive_signal(track_published("c1", audio_info("TR_a")), now=T0)
    m.receive_signal(msr(1), now=T0)
    driver.settle({"2": "TR_B"})
    m.publish(TrackKind.AUDIO, name="late", now=T0)
    m.set_subscribed("TR_C", False, now=T0)
    m.update_track_settings("TR_B", enabled=False, now=T0)
    m.set_track_subscription_permissions(
        allow_all_participants=False,
        participant_permissions=[
            ParticipantTrackPermission(participant_identity="bob", allow_all=True)
        ],
        now=T0,
    )
    m.request_offer(now=T0)
    m.drain()  # offer 3 is being created when the connection drops
    m.reconnecting(full=True, now=T0 + 1)
    assert m.drain() == [
        unsubscribed("TR_B", 2),
        TrackUnpublished(participant_identity="bob", sid="TR_B"),
        TrackUnpublished(participant_identity="bob", sid="TR_C"),
    ]
    assert m.slots == ()
    assert m.offer_in_flight is None
    assert m.applied_mid_to_track_id == {}
    assert m.local_state("c1") is LocalTrackState.REPUBLISHING
    assert m.local_state("c2") is LocalTrackState.PENDING
    assert m.get_timer() is None
    m.set_muted("c1", True, now=T0 + 1)  # kept for the republish
    m.offer_created(3, "late", slot_mids={}, now=T0 + 1)  # the old peer connection's
    assert m.drain() == [
        TrackSignalIgnored(reason="stale-offer", detail="offer 3 is not being created")
    ]
    m.joined("me", [person("bob", [audio_info("TR_B"), audio_info("TR_C")])], now=T0 + 2)
    return m


def test_full_reconnect_republishes_with_new_cids_and_resends_our_wishes_f5_2() -> None:
    m = reconnected_fully()
    out = m.drain()
    assert events(out) == [
        TrackPublished(participant_identity="bob", participant_sid="PA_bob", info=info("TR_B")),
        TrackPublished(participant_identity="bob", participant_sid="PA_bob", info=info("TR_C")),
        LocalTrackRepublishing(previous_cid="c1", cid="c3"),
        LocalTrackRepublishing(previous_cid="c2", cid="c4"),
    ]
    assert sent(out) == [UNSUB_C, DISABLE_B, ONLY_BOB, ADD_C3_MUTED, ADD_C4_LATE]
    assert m.local_cids == ("c3", "c4")
    assert m.get_timer() == T0 + 2 + 10.0
    m.receive_signal(track_published("c3", audio_info("TR_a2", muted=True)), now=T0 + 2)
    m.receive_signal(track_published("c4", audio_info("TR_l", "late")), now=T0 + 2)
    out = m.drain()
    assert out == [
        LocalTrackRepublished(cid="c3", previous_sid="TR_a", info=info("TR_a2", muted=True)),
        AddTransceiver(slot=3, kind=TrackKind.AUDIO, direction=Direction.SENDONLY, source_cid="c3"),
        CreateTrackOffer(offer_id=4),
        LocalTrackPublished(cid="c4", info=info("TR_l", "late")),
    ]
    driver = Driver(m)  # the new peer connection: mids from 1 again
    driver.run(out)
    m.receive_signal(msr(1), now=T0 + 2)  # the server needs a receive slot for TR_B
    m.receive_signal(answer(3), now=T0 + 2)  # for the old peer connection's offer
    assert events(driver.settle({"3": "TR_B"})) == [
        AnswerDropped(answer_id=3, outstanding_offer_id=4),
        # offer 4 had only slot 3: mid 3 is not there yet
        TrackSignalIgnored(reason="unknown-mid", detail="the answer maps mid '3' to TR_B"),
        info_subscribed("TR_B", 5),
    ]
    assert [(s.slot, s.mid, s.source_cid) for s in m.slots] == [
        (3, "1", "c3"),
        (4, "2", "c4"),
        (5, "3", None),
    ]


def test_a_republish_that_fails_ends_the_publication() -> None:
    m = reconnected_fully()
    m.drain()
    m.receive_signal(
        spb.SignalResponse(
            request_response=spb.RequestResponse(
                reason=spb.RequestResponse.NOT_ALLOWED, add_track=tpb.AddTrackRequest(cid="c3")
            )
        ),
        now=T0 + 2,
    )
    m.handle_timer(T0 + 12)
    assert m.drain() == [
        LocalTrackUnpublished(
            cid="c3",
            sid="TR_a",
            reason=UnpublishReason.REPUBLISH_FAILED,
            message="NOT_ALLOWED: NOT_ALLOWED",
        ),
        LocalTrackPublishFailed(
            cid="c4",
            name="late",
            reason=PublishTrackErrorReason.TIMEOUT,
            message="no answer from the server within 10s",
        ),
    ]


def test_the_session_ending_ends_our_publications() -> None:
    m = reconnected_fully()
    m.receive_signal(track_published("c3", audio_info("TR_a2", muted=True)), now=T0 + 2)
    m.drain()
    m.unpublish("c4", now=T0 + 2)
    m.publish(TrackKind.AUDIO, name="x", now=T0 + 2)
    m.drain()
    m.disconnected(now=T0 + 3)
    assert events(m.drain()) == [
        LocalTrackUnpublished(
            cid="c3", sid="TR_a2", reason=UnpublishReason.DISCONNECTED, message="the session ended"
        ),
        LocalTrackPublishFailed(
            cid="c5",
            name="x",
            reason=PublishTrackErrorReason.DISCONNECTED,
            message="the session ended",
        ),
        TrackUnpublished(participant_identity="bob", sid="TR_B"),
        TrackUnpublished(participant_identity="bob", sid="TR_C"),
    ]
    assert m.local_cids == ()


def test_permissions_set_while_rejoining_are_sent_after_the_join() -> None:
    m = manager()
    m.reconnecting(full=True, now=T0)
    m.set_track_subscription_permissions(allow_all_participants=True, now=T0)
    assert m.drain() == []
    m.joined("me", [], now=T0)
    assert sent(m.drain()) == [EVERYONE]


def test_wishes_about_tracks_gone_by_the_rejoin_are_dropped() -> None:
    m = manager(person("bob", [audio_info("TR_B"), audio_info("TR_C")]))
    m.set_subscribed("TR_C", False, now=T0)
    m.update_track_settings("TR_B", enabled=False, now=T0)
    m.drain()
    m.reconnecting(full=True, now=T0)
    m.joined("me", [], now=T0)
    assert sent(m.drain()) == []
    assert m.sync_state_subscription() == tpb.UpdateSubscription()
    assert m.sync_state_track_sids_disabled() == []


def test_a_rejoin_refuses_a_repeated_cid_and_changes_nothing() -> None:
    m = TrackManager(id_factory=lambda: "same")
    m.joined("me", [], now=T0)
    m.publish(TrackKind.AUDIO, name="a", now=T0)
    m.unpublish("same", now=T0)
    numbers = iter(["a1", "a2", "z", "z"])
    m = TrackManager(id_factory=lambda: next(numbers))
    m.joined("me", [], now=T0)
    m.publish(TrackKind.AUDIO, name="a", now=T0)
    m.publish(TrackKind.AUDIO, name="b", now=T0)
    m.reconnecting(full=True, now=T0)
    m.drain()
    with pytest.raises(LocalProtocolError, match="id_factory repeated a cid"):
        m.joined("me", [], now=T0)
    assert m.local_cids == ("a1", "a2")
    assert m.drain() == []


def test_a_late_joiner_subscribes_through_the_requirement_after_the_join_answer_f2_3() -> None:
    m = manager(person("bob", [audio_info("TR_B")]))  # bob published before we joined
    m.drain()
    driver = Driver(m)
    m.request_offer(now=T0)  # the data channels' offer
    assert events(driver.settle()) == []
    m.receive_signal(msr(1), now=T0)  # right after the answer to the join offer
    assert events(driver.settle({"1": "TR_B"})) == [subscribed("TR_B", 1)]
    m.receive_signal(msr(0, 0), now=T0 + 0.13)  # then 0/0; the answer repeats the map
    assert events(driver.settle({"1": "TR_B"})) == []
    assert m.subscribed_slot("TR_B") == 1
    assert len(m.slots) == 1
