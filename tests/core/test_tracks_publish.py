"""Publishing media, deterministically: literal `now` (T0 = 100.0), exact signal bytes, exact
outputs (protocol-reference-2 3.2, 3.4; findings F1.1-F1.4, F4.1-F4.6, F4.11).

Signal bytes are written out by hand from the field numbers (SignalRequest.add_track 4, tag
22; mute 5, tag 2a; AddTrackRequest cid 1, name 2, type 3, width 4, height 5, muted 6,
source 8, layers 9, simulcast_codecs 10, disable_red 13, stream 15, audio_features 17 packed),
so a change of wire format cannot pass unnoticed.
"""

from __future__ import annotations

import pytest
from test_tracks_support import T0, Driver, commands, events, manager, published, refused, sent

from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto.errors import LocalProtocolError
from lkproto.tracks import (
    AddTransceiver,
    ApplyAnswer,
    CreateTrackOffer,
    Direction,
    LocalTrackMuted,
    LocalTrackMuteRefused,
    LocalTrackPublished,
    LocalTrackPublishFailed,
    LocalTrackState,
    LocalTrackSubscribed,
    LocalTrackUnmuted,
    LocalTrackUnpublished,
    PublishTrackError,
    PublishTrackErrorReason,
    SetSendSource,
    SetTransceiverDirection,
    SlotRole,
    TrackKind,
    TrackManager,
    TrackPublicationInfo,
    TrackSignalIgnored,
    TrackSource,
    UnpublishReason,
)

R = PublishTrackErrorReason
# F1.1: AddTrackRequest{cid "c1", name "mic", type AUDIO (0, omitted), source MICROPHONE (2),
# disable_red true, audio_features [TF_NO_DTX (1)]}.
ADD_MIC = bytes.fromhex("22 11 0a 02 63 31 12 03 6d 69 63 40 02 68 01 8a 01 01 01")
# The same, muted, stream "s", stereo: audio_features [TF_STEREO (0), TF_NO_DTX (1)].
ADD_MIC_MUTED_STEREO = bytes.fromhex(
    "22 17 0a 02 63 31 12 03 6d 69 63 30 01 40 02 68 01 7a 01 73 8a 01 02 00 01"
)
# F6.1: AddTrackRequest{cid "c1", name "cam", type VIDEO, width 640, height 360, source
# CAMERA, layers [{quality HIGH, width 640, height 360, bitrate 450000 (the h360 preset)}]}.
ADD_CAM = bytes.fromhex(
    "22 21 0a 02 63 31 12 03 63 61 6d 18 01 20 80 05 28 e8 02 40 01"
    " 4a 0c 08 02 10 80 05 18 e8 02 20 d0 bb 1b"
)
MUTE_TR_A = bytes.fromhex("2a 08 0a 04 54 52 5f 61 10 01")  # MuteTrackRequest{TR_a, true}
UNMUTE_TR_A = bytes.fromhex("2a 06 0a 04 54 52 5f 61")  # MuteTrackRequest{TR_a, false}


def mic_info(sid: str = "TR_a", *, muted: bool = False) -> TrackPublicationInfo:
    return TrackPublicationInfo(
        sid=sid, name="mic", kind=TrackKind.AUDIO, source=TrackSource.MICROPHONE, muted=muted
    )


def publish_mic(m: TrackManager, sid: str = "TR_a") -> str:
    """Publish an audio track and have it accepted and negotiated."""
    cid = m.publish(TrackKind.AUDIO, name="mic", now=T0)
    m.receive_signal(published(cid, sid), now=T0)
    Driver(m).settle()
    return cid


# -- the request ---------------------------------------------------------------------------


def test_publish_audio_sends_the_add_track_request_of_f1_1_and_arms_the_timeout() -> None:
    m = manager()
    assert m.publish(TrackKind.AUDIO, name="mic", now=T0) == "c1"
    assert sent(m.drain()) == [ADD_MIC]
    assert m.local_state("c1") is LocalTrackState.PENDING
    assert m.local_cids == ("c1",)
    assert m.local_info("c1") is None
    assert m.get_timer() == T0 + 10.0
    assert m.slots == ()  # no transceiver before the answer (F1.2)


def test_publish_audio_muted_stereo_with_a_stream() -> None:
    m = manager()
    m.publish(TrackKind.AUDIO, name="mic", now=T0, muted=True, stereo=True, stream="s")
    assert sent(m.drain()) == [ADD_MIC_MUTED_STEREO]
    assert m.is_muted("c1")


def test_publish_video_sends_one_layer_of_f6_1() -> None:
    m = manager()
    m.publish(TrackKind.VIDEO, name="cam", now=T0, width=640, height=360)
    assert sent(m.drain()) == [ADD_CAM]


def test_publish_video_with_a_codec_hint_bitrate_and_screen_share() -> None:
    m = manager()
    m.publish(
        TrackKind.VIDEO,
        name="screen",
        now=T0,
        source=TrackSource.SCREEN_SHARE,
        width=1920,
        height=1080,
        video_codec="H264",
        max_bitrate=2_500_000,
    )
    request = spb.SignalRequest.FromString(sent(m.drain())[0]).add_track
    assert request.source == tpb.SCREEN_SHARE
    assert [(c.codec, c.cid) for c in request.simulcast_codecs] == [("h264", "c1")]
    assert [(la.width, la.height, la.bitrate) for la in request.layers] == [(1920, 1080, 2_500_000)]


@pytest.mark.parametrize(
    ("width", "height", "bitrate"),
    [(160, 90, 90_000), (641, 360, 800_000), (1280, 720, 1_700_000), (7680, 4320, 8_000_000)],
)
def test_video_layer_bitrate_defaults_to_the_first_preset_at_least_as_large(
    width: int, height: int, bitrate: int
) -> None:
    m = manager()
    m.publish(TrackKind.VIDEO, name="cam", now=T0, width=width, height=height)
    request = spb.SignalRequest.FromString(sent(m.drain())[0]).add_track
    assert request.layers[0].bitrate == bitrate


# -- the answer ----------------------------------------------------------------------------


def test_accepted_publication_gets_a_send_slot_and_the_first_offer() -> None:
    m = manager()
    m.publish(TrackKind.AUDIO, name="mic", now=T0)
    m.drain()
    m.receive_signal(published("c1", "TR_a"), now=T0 + 0.003)
    assert m.drain() == [
        LocalTrackPublished(cid="c1", info=mic_info()),
        AddTransceiver(slot=1, kind=TrackKind.AUDIO, direction=Direction.SENDONLY, source_cid="c1"),
        CreateTrackOffer(offer_id=1),
    ]
    assert m.local_state("c1") is LocalTrackState.PUBLISHED
    assert m.local_info("c1") == mic_info()
    assert m.get_timer() is None  # the publish timeout is disarmed
    assert [(s.slot, s.role, s.source_cid) for s in m.slots] == [(1, SlotRole.SEND, "c1")]


@pytest.mark.parametrize(
    ("code", "reason", "message"),
    [
        (2, R.NOT_ALLOWED, "not allowed"),  # no canPublish (F1.4)
        (5, R.UNSUPPORTED_TYPE, ""),  # type DATA (F1.4)
        (3, R.LIMIT_EXCEEDED, "limit"),
    ],
)
def test_refusals_fail_the_publication(code: int, reason: R, message: str) -> None:
    m = manager()
    m.publish(TrackKind.AUDIO, name="mic", now=T0)
    m.drain()
    m.receive_signal(refused("c1", code, message), now=T0)
    failed = LocalTrackPublishFailed(
        cid="c1", name="mic", reason=reason, message=message or reason.name
    )
    assert m.drain() == [failed]
    assert m.local_state("c1") is LocalTrackState.UNPUBLISHED
    assert m.get_timer() is None
    error = failed.exception()
    assert isinstance(error, PublishTrackError)
    assert (error.reason, error.message) == (reason, message or reason.name)


def test_an_unknown_refusal_code_is_unclassified() -> None:
    m = manager()
    m.publish(TrackKind.AUDIO, name="mic", now=T0)
    m.drain()
    m.receive_signal(refused("c1", 42, "odd"), now=T0)
    assert m.drain() == [
        LocalTrackPublishFailed(
            cid="c1", name="mic", reason=R.UNCLASSIFIED_ERROR, message="server reason 42: odd"
        )
    ]


def test_queued_and_ok_are_not_failures() -> None:
    m = manager()
    m.publish(TrackKind.AUDIO, name="mic", now=T0)
    m.drain()
    m.receive_signal(refused("c1", 4), now=T0)  # QUEUED (F1.4)
    m.receive_signal(refused("c1", 0), now=T0)  # OK
    assert m.drain() == []
    assert m.local_state("c1") is LocalTrackState.PENDING
    m.receive_signal(published("c1", "TR_a"), now=T0)
    assert events(m.drain()) == [LocalTrackPublished(cid="c1", info=mic_info())]


def test_publish_timeout_then_a_late_answer_changes_nothing() -> None:
    m = manager()
    m.publish(TrackKind.AUDIO, name="mic", now=T0)
    m.drain()
    m.handle_timer(T0 + 9.999)
    assert m.drain() == []
    m.handle_timer(T0 + 10.0)
    assert m.drain() == [
        LocalTrackPublishFailed(
            cid="c1",
            name="mic",
            reason=R.TIMEOUT,
            message="no answer from the server within 10s",
        )
    ]
    m.receive_signal(published("c1", "TR_a"), now=T0 + 11)
    m.receive_signal(refused("c1", 2), now=T0 + 11)
    assert m.drain() == [
        TrackSignalIgnored(reason="unknown-cid", detail="publish answer for 'c1'"),
        TrackSignalIgnored(reason="unknown-cid", detail="publish refusal 2 for 'c1'"),
    ]
    assert m.slots == ()  # no transceiver ever carries that cid: the server never publishes it


def test_answers_that_match_nothing_are_reported() -> None:
    m = manager()
    cid = publish_mic(m)
    m.drain()
    m.receive_signal(published(cid, "TR_a"), now=T0)  # a second answer
    m.receive_signal(refused(cid, 2), now=T0)
    nameless = spb.SignalResponse(track_published=tpb.TrackPublishedResponse(cid=cid))
    m.receive_signal(nameless, now=T0)
    assert m.drain() == [
        TrackSignalIgnored(reason="unexpected", detail="publish answer for 'c1', not asked"),
        TrackSignalIgnored(reason="unexpected", detail="publish refusal 2 for 'c1', not asked"),
        TrackSignalIgnored(
            reason="invalid-info", detail="a publish answer for 'c1' without a track sid"
        ),
    ]


# -- unpublishing ----------------------------------------------------------------------------


def test_unpublish_while_pending_cancels() -> None:
    m = manager()
    m.publish(TrackKind.AUDIO, name="mic", now=T0)
    m.drain()
    assert m.unpublish("c1", now=T0) is True
    assert m.drain() == [
        LocalTrackPublishFailed(cid="c1", name="mic", reason=R.CANCELLED, message="cancelled")
    ]
    assert m.unpublish("c1", now=T0) is False
    assert m.drain() == []
    assert m.get_timer() is None


def test_unpublish_idles_the_slot_and_renegotiates_without_a_request_f4_4() -> None:
    m = manager()
    cid = publish_mic(m)
    assert m.unpublish(cid, now=T0 + 1) is True
    assert m.drain() == [
        LocalTrackUnpublished(cid="c1", sid="TR_a", reason=UnpublishReason.LOCAL),
        SetSendSource(slot=1, source_cid=None),
        SetTransceiverDirection(slot=1, direction=Direction.INACTIVE),
        CreateTrackOffer(offer_id=2),
    ]  # no signal request: the server learns it from the inactive m-line
    assert [(s.slot, s.direction, s.source_cid) for s in m.slots] == [(1, Direction.INACTIVE, None)]


def test_server_unpublish_f4_5_idles_the_slot() -> None:
    m = manager()
    publish_mic(m)
    gone = spb.SignalResponse(track_unpublished=tpb.TrackUnpublishedResponse(track_sid="TR_a"))
    m.receive_signal(gone, now=T0)
    assert m.drain() == [
        LocalTrackUnpublished(cid="c1", sid="TR_a", reason=UnpublishReason.SERVER),
        SetSendSource(slot=1, source_cid=None),
        SetTransceiverDirection(slot=1, direction=Direction.INACTIVE),
        CreateTrackOffer(offer_id=2),
    ]
    m.receive_signal(gone, now=T0)
    assert m.drain() == [
        TrackSignalIgnored(reason="unknown-sid", detail="track_unpublished for TR_a")
    ]


def test_republish_reuses_the_idle_slot_once_inactive_was_negotiated_f4_6() -> None:
    m = manager()
    publish_mic(m)
    m.unpublish("c1", now=T0)
    Driver(m).settle()  # offer 2: slot 1 inactive, applied
    m.publish(TrackKind.AUDIO, name="mic", now=T0)
    m.receive_signal(published("c2", "TR_a2"), now=T0)
    assert commands(m.drain()) == [
        SetSendSource(slot=1, source_cid="c2"),
        SetTransceiverDirection(slot=1, direction=Direction.SENDONLY),
        CreateTrackOffer(offer_id=3),
    ]
    assert len(m.slots) == 1  # bounded m-lines (F8.9)


def test_republish_waits_while_the_idle_slot_is_still_negotiated_sendonly() -> None:
    m = manager()
    publish_mic(m)
    m.unpublish("c1", now=T0)
    driver = Driver(m)
    driver.run(m.drain())  # offer 2 (slot 1 inactive) is in flight
    m.publish(TrackKind.AUDIO, name="mic", now=T0)
    m.receive_signal(published("c2", "TR_a2"), now=T0)
    assert commands(m.drain()) == []  # slot 1 still carries c1's SSRC at the server
    m.receive_signal(
        spb.SignalResponse(answer=spb.SessionDescription(type="answer", sdp="a", id=2)), now=T0
    )
    m.drain()
    m.remote_description_applied(2, now=T0)
    assert commands(m.drain()) == [
        SetSendSource(slot=1, source_cid="c2"),
        SetTransceiverDirection(slot=1, direction=Direction.SENDONLY),
        CreateTrackOffer(offer_id=3),
    ]


def test_an_abandoned_inactive_offer_does_not_free_the_slot() -> None:
    m = manager()
    publish_mic(m)
    m.unpublish("c1", now=T0)
    driver = Driver(m)
    driver.run(m.drain())  # offer 2 (slot 1 inactive) is sent, never answered
    m.publish(TrackKind.AUDIO, name="mic", now=T0)
    m.receive_signal(published("c2", "TR_a2"), now=T0)
    m.drain()
    m.handle_timer(T0 + 15)
    # the server may never have seen slot 1 inactive: the new offer does not reuse it yet
    out = m.drain()
    assert commands(out) == [CreateTrackOffer(offer_id=3)]
    driver.run(out)
    assert commands(driver.settle()) == [
        ApplyAnswer(offer_id=3, sdp="answer-3"),
        SetSendSource(slot=1, source_cid="c2"),
        SetTransceiverDirection(slot=1, direction=Direction.SENDONLY),
        CreateTrackOffer(offer_id=4),
        ApplyAnswer(offer_id=4, sdp="answer-4"),
    ]


def test_a_slot_never_offered_is_reused_at_once() -> None:
    m = manager()
    m.request_offer(now=T0)
    driver = Driver(m)
    driver.run(m.drain())  # offer 1 in flight
    m.publish(TrackKind.AUDIO, name="mic", now=T0)
    m.receive_signal(published("c1", "TR_a"), now=T0)
    m.unpublish("c1", now=T0)
    m.publish(TrackKind.AUDIO, name="mic", now=T0)
    m.receive_signal(published("c2", "TR_b"), now=T0)
    assert commands(m.drain()) == []
    assert commands(driver.settle()) == [
        ApplyAnswer(offer_id=1, sdp="answer-1"),
        AddTransceiver(slot=1, kind=TrackKind.AUDIO, direction=Direction.SENDONLY, source_cid="c2"),
        CreateTrackOffer(offer_id=2),
        ApplyAnswer(offer_id=2, sdp="answer-2"),
    ]
    assert [(s.slot, s.source_cid) for s in m.slots] == [(1, "c2")]


def test_an_idle_slot_of_another_kind_or_codec_is_not_reused() -> None:
    m = manager()
    publish_mic(m)
    m.unpublish("c1", now=T0)
    Driver(m).settle()
    m.publish(TrackKind.VIDEO, name="cam", now=T0, width=640, height=360, video_codec="h264")
    m.receive_signal(published("c2", "TR_v", tpb.TrackInfo(sid="TR_v", type=tpb.VIDEO)), now=T0)
    assert commands(m.drain()) == [
        AddTransceiver(
            slot=2,
            kind=TrackKind.VIDEO,
            direction=Direction.SENDONLY,
            source_cid="c2",
            codec="h264",
        ),
        CreateTrackOffer(offer_id=3),
    ]


# -- mute ------------------------------------------------------------------------------------


def test_mute_and_unmute_a_published_track() -> None:
    m = manager()
    cid = publish_mic(m)
    m.set_muted(cid, True, now=T0)
    out = m.drain()
    assert sent(out) == [MUTE_TR_A]
    assert events(out) == [LocalTrackMuted(cid="c1", sid="TR_a")]
    m.set_muted(cid, True, now=T0)
    assert m.drain() == []  # no change, no output
    assert m.local_info(cid) == mic_info(muted=True)
    assert m.sync_state_publish_tracks()[0].track.muted is True
    m.set_muted(cid, False, now=T0)
    out = m.drain()
    assert sent(out) == [UNMUTE_TR_A]
    assert events(out) == [LocalTrackUnmuted(cid="c1", sid="TR_a")]


def test_mute_while_pending_is_sent_once_the_track_has_a_sid() -> None:
    m = manager()
    m.publish(TrackKind.AUDIO, name="mic", now=T0)
    m.drain()
    m.set_muted("c1", True, now=T0)
    assert m.drain() == []
    m.receive_signal(published("c1", "TR_a"), now=T0)
    out = m.drain()
    assert sent(out) == [MUTE_TR_A]
    assert events(out) == [LocalTrackPublished(cid="c1", info=mic_info(muted=True))]


def test_a_refused_mute_is_reported() -> None:
    m = manager()
    publish_mic(m)
    mute = tpb.MuteTrackRequest(sid="TR_a", muted=True)
    response = spb.RequestResponse(reason=spb.RequestResponse.NOT_FOUND, message="?", mute=mute)
    assert m.request_response_received(response, now=T0) is True
    other = spb.RequestResponse(
        reason=spb.RequestResponse.NOT_FOUND, mute=tpb.MuteTrackRequest(sid="TR_x")
    )
    assert m.request_response_received(other, now=T0) is True
    fine = spb.RequestResponse(reason=spb.RequestResponse.OK, mute=mute)
    assert m.request_response_received(fine, now=T0) is True
    assert m.drain() == [
        LocalTrackMuteRefused(cid="c1", sid="TR_a", muted=True, reason=1, message="?"),
        TrackSignalIgnored(reason="unknown-sid", detail="mute refusal for TR_x"),
    ]
    metadata = spb.RequestResponse(
        reason=spb.RequestResponse.NOT_FOUND, update_metadata=spb.UpdateParticipantMetadata()
    )
    assert m.request_response_received(metadata, now=T0) is False


def test_server_mute_f4_2_is_reported_and_unmuting_is_left_to_the_application() -> None:
    m = manager()
    cid = publish_mic(m)
    mute = spb.SignalResponse(mute=tpb.MuteTrackRequest(sid="TR_a", muted=True))
    m.receive_signal(mute, now=T0)
    assert m.drain() == [LocalTrackMuted(cid="c1", sid="TR_a", by_server=True)]
    assert m.is_muted(cid)
    m.receive_signal(mute, now=T0)
    assert m.drain() == []
    m.set_muted(cid, False, now=T0)  # the application unmutes (F4.2)
    out = m.drain()
    assert sent(out) == [UNMUTE_TR_A]
    assert events(out) == [LocalTrackUnmuted(cid="c1", sid="TR_a")]
    m.receive_signal(mute, now=T0)
    unmute = spb.SignalResponse(mute=tpb.MuteTrackRequest(sid="TR_a", muted=False))
    m.receive_signal(unmute, now=T0)  # a room with remote unmute enabled
    m.receive_signal(spb.SignalResponse(mute=tpb.MuteTrackRequest(sid="TR_x")), now=T0)
    assert m.drain() == [
        LocalTrackMuted(cid="c1", sid="TR_a", by_server=True),
        LocalTrackUnmuted(cid="c1", sid="TR_a", by_server=True),
        TrackSignalIgnored(reason="unknown-sid", detail="mute for TR_x"),
    ]


def test_track_subscribed_f4_11_is_reported_once() -> None:
    m = manager()
    publish_mic(m)
    subscribed = spb.SignalResponse(track_subscribed=tpb.TrackSubscribed(track_sid="TR_a"))
    m.receive_signal(subscribed, now=T0)
    m.receive_signal(subscribed, now=T0)
    m.receive_signal(
        spb.SignalResponse(track_subscribed=tpb.TrackSubscribed(track_sid="TR_z")), now=T0
    )
    assert m.drain() == [
        LocalTrackSubscribed(cid="c1", sid="TR_a"),
        TrackSignalIgnored(reason="unknown-sid", detail="track_subscribed for TR_z"),
    ]


# -- refused calls ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"kind": 0}, "kind must be TrackKind"),
        ({"source": TrackSource.CAMERA}, "AUDIO track cannot have the source CAMERA"),
        ({"source": 2}, "source must be TrackSource"),
        ({"name": b"mic"}, "name must be str"),
        ({"name": "mic\ud800"}, "name is not valid Unicode"),
        ({"muted": 1}, "muted must be bool"),
        ({"width": True}, "width must be int"),
        ({"width": -1}, "width must be in 0..16384"),
        ({"width": 640}, "are for video"),
        ({"video_codec": "vp8"}, "are for video"),
        ({"now": float("nan")}, "now must be a finite number"),
        ({"kind": TrackKind.VIDEO}, "needs width and height"),
        (
            {"kind": TrackKind.VIDEO, "width": 640, "height": 360, "video_codec": "av1"},
            "video_codec must be one of",
        ),
        ({"kind": TrackKind.VIDEO, "width": 640, "height": 360, "stereo": True}, "stereo is for"),
    ],
)
def test_bad_publish_arguments_are_refused_and_change_nothing(
    kwargs: dict[str, object], text: str
) -> None:
    m = manager()
    arguments: dict[str, object] = {"kind": TrackKind.AUDIO, "name": "mic", "now": T0} | kwargs
    kind = arguments.pop("kind")
    with pytest.raises(LocalProtocolError, match=text) as info:
        m.publish(kind, **arguments)  # type: ignore[arg-type]
    assert info.value.call == "publish"
    assert m.drain() == []
    assert m.local_cids == ()


def test_publish_is_bounded_and_needs_a_usable_cid() -> None:
    m = manager(max_local_publications=1)
    m.publish(TrackKind.AUDIO, name="mic", now=T0)
    with pytest.raises(LocalProtocolError, match="max_local_publications"):
        m.publish(TrackKind.AUDIO, name="mic", now=T0)
    same = TrackManager(id_factory=lambda: "x")
    same.joined("me", [], now=T0)
    same.publish(TrackKind.AUDIO, name="a", now=T0)
    with pytest.raises(LocalProtocolError, match="id_factory gave 'x', not a new"):
        same.publish(TrackKind.AUDIO, name="b", now=T0)
    empty = TrackManager(id_factory=lambda: "")
    empty.joined("me", [], now=T0)
    with pytest.raises(LocalProtocolError, match="id_factory gave ''"):
        empty.publish(TrackKind.AUDIO, name="a", now=T0)
    assert empty.drain() == []


def test_verbs_outside_their_phases_are_refused() -> None:
    m = TrackManager(id_factory=lambda: "c")
    with pytest.raises(LocalProtocolError, match=r"publish\(\) is not allowed while .* IDLE"):
        m.publish(TrackKind.AUDIO, name="mic", now=T0)
    m = manager()
    cid = m.publish(TrackKind.AUDIO, name="mic", now=T0)
    with pytest.raises(LocalProtocolError, match="no publication has the cid 'zz'"):
        m.set_muted("zz", True, now=T0)
    with pytest.raises(LocalProtocolError, match="muted must be bool"):
        m.set_muted(cid, 1, now=T0)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="cid must be str"):
        m.unpublish(1, now=T0)  # type: ignore[arg-type]
    m.disconnected(now=T0)
    with pytest.raises(LocalProtocolError, match="CLOSED"):
        m.set_muted(cid, True, now=T0)
    assert m.unpublish(cid, now=T0) is False


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"id_factory": "c"}, "id_factory must be callable"),
        ({"auto_subscribe": 1}, "auto_subscribe must be a bool"),
        ({"publish_timeout": 0}, "publish_timeout must be a positive number"),
        ({"negotiation_timeout": True}, "negotiation_timeout must be a positive number"),
        ({"max_receive_slots": 0}, "max_receive_slots must be an int of at least 1"),
        ({"max_local_publications": 2.0}, "max_local_publications must be an int"),
    ],
)
def test_bad_bounds_are_refused(kwargs: dict[str, object], text: str) -> None:
    arguments: dict[str, object] = {"id_factory": lambda: "c"} | kwargs
    with pytest.raises(ValueError, match=text):
        TrackManager(**arguments)  # type: ignore[arg-type]
