"""The data-track manager, deterministically: literal `now` (T0 = 100.0), exact signal bytes,
exact outputs (protocol-reference-2 1.2-1.8).

We are "me"; "bob" publishes remote tracks. Signal bytes are written out by hand from the
field numbers (SignalRequest 19/20/21), so a change of wire format cannot pass unnoticed.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto.datatracks import (
    DataTrackFrame,
    DataTrackFrameDropped,
    DataTrackFrameReceived,
    DataTrackInfo,
    DataTrackManager,
    DataTrackOutput,
    DataTrackPacket,
    DataTrackPacketDropped,
    DataTrackPublished,
    DataTrackPublishFailed,
    DataTrackRepublished,
    DataTrackSignalIgnored,
    DataTrackSubscribed,
    DataTrackSubscriptionEnded,
    DataTrackUnpublished,
    E2eeExtension,
    FrameDropReason,
    FrameMarker,
    PacketErrorReason,
    Packetizer,
    PublishDataTrackError,
    PublishDataTrackErrorReason,
    PublishState,
    PushFrameError,
    PushFrameErrorReason,
    RemoteDataTrackPublished,
    RemoteDataTrackSidChanged,
    RemoteDataTrackUnpublished,
    SendDataTrackSignal,
    SessionPhase,
    SubscribeDataTrackError,
    SubscribeDataTrackErrorReason,
    SubscriptionState,
    UnpublishReason,
)
from lkproto.errors import LocalProtocolError

T0 = 100.0
PR = PublishDataTrackErrorReason
SR = SubscribeDataTrackErrorReason
IV = E2eeExtension(4, b"\x22" * 12)

# Hand-derived wire bytes. SignalRequest.publish_data_track_request is field 19 (tag 9a 01),
# unpublish_data_track_request 20 (a2 01), update_data_subscription 21 (aa 01).
PUBLISH_1_TELEMETRY = bytes.fromhex("9a 01 0d 08 01 12 09") + b"telemetry"
PUBLISH_1_TELEMETRY_GCM = bytes.fromhex("9a 01 0f 08 01 12 09") + b"telemetry" + b"\x18\x01"
UNPUBLISH_1 = bytes.fromhex("a2 01 02 08 01")
SUBSCRIBE_B1 = bytes.fromhex("aa 01 0c 0a 0a 0a 06") + b"DTR_b1" + b"\x10\x01"
UNSUBSCRIBE_B1 = bytes.fromhex("aa 01 0a 0a 08 0a 06") + b"DTR_b1"
UNSUBSCRIBE_B1_REQUEST = spb.SignalRequest.FromString(UNSUBSCRIBE_B1)


# -- helpers ----------------------------------------------------------------------------------


def dt(sid: str, handle: int, name: str, *, gcm: bool = False) -> tpb.DataTrackInfo:
    return tpb.DataTrackInfo(pub_handle=handle, sid=sid, name=name, encryption=1 if gcm else 0)


def person(
    identity: str,
    tracks: Iterable[tpb.DataTrackInfo] = (),
    *,
    sid: str = "",
    version: int = 1,
    gone: bool = False,
) -> ppb.ParticipantInfo:
    return ppb.ParticipantInfo(
        sid=sid or f"PA_{identity}",
        identity=identity,
        version=version,
        state=ppb.ParticipantInfo.DISCONNECTED if gone else ppb.ParticipantInfo.ACTIVE,
        data_tracks=list(tracks),
    )


BOB_B1 = person("bob", [dt("DTR_b1", 1, "cursor")])


def manager(*others: ppb.ParticipantInfo, **kwargs: object) -> DataTrackManager:
    m = DataTrackManager(**kwargs)  # type: ignore[arg-type]
    m.joined("me", others, now=T0)
    return m


def sent(outputs: Iterable[DataTrackOutput]) -> list[bytes]:
    return [o.data for o in outputs if isinstance(o, SendDataTrackSignal)]


def events(outputs: Iterable[DataTrackOutput]) -> list[DataTrackOutput]:
    return [o for o in outputs if not isinstance(o, SendDataTrackSignal)]


def accept(m: DataTrackManager, handle: int, sid: str, name: str, *, now: float = T0) -> None:
    response = tpb.PublishDataTrackResponse(info=dt(sid, handle, name))
    m.publish_response_received(response, now=now)


def refusal(handle: int, reason: int, message: str = "") -> spb.RequestResponse:
    return spb.RequestResponse(
        reason=reason,  # type: ignore[arg-type]
        message=message,
        publish_data_track=tpb.PublishDataTrackRequest(pub_handle=handle, name="x"),
    )


def published(m: DataTrackManager, name: str = "telemetry", **kwargs: object) -> int:
    handle = m.publish_data_track(name=name, now=T0, **kwargs)  # type: ignore[arg-type]
    accept(m, handle, f"DTR_me{handle}", name)
    m.drain()
    return handle


def handles(**mapping: int) -> tpb.DataTrackSubscriberHandles:
    entry = tpb.DataTrackSubscriberHandles.PublishedDataTrack
    return tpb.DataTrackSubscriberHandles(
        sub_handles={
            h: entry(publisher_identity="bob", track_sid=sid) for sid, h in mapping.items()
        }
    )


def subscribed(m: DataTrackManager, sid: str = "DTR_b1", handle: int = 5) -> None:
    m.subscribe(sid, now=T0)
    m.subscriber_handles_received(handles(**{sid: handle}), now=T0)
    m.drain()


def frame_packets(handle: int, payload: bytes, **kwargs: object) -> list[bytes]:
    packetizer = Packetizer(handle, mtu=100)
    packets = packetizer.packetize(payload, timestamp=900, **kwargs)  # type: ignore[arg-type]
    return [p.encode() for p in packets]


# -- publishing -------------------------------------------------------------------------------


def test_publish_sends_the_request_and_the_response_publishes() -> None:
    m = manager()
    assert m.drain() == []
    handle = m.publish_data_track(name="telemetry", now=T0)
    assert handle == 1
    assert sent(m.drain()) == [PUBLISH_1_TELEMETRY]
    assert m.publish_state(1) is PublishState.PENDING
    assert not m.is_published(1) and m.local_info(1) is None
    assert m.get_timer() == T0 + 10.0
    accept(m, 1, "DTR_me1", "telemetry", now=T0 + 0.2)
    info = DataTrackInfo("DTR_me1", "telemetry", False, pub_handle=1)
    assert m.drain() == [DataTrackPublished(pub_handle=1, info=info)]
    assert m.get_timer() is None
    assert m.is_published(1) and m.local_info(1) == info
    assert m.publish_data_track(name="second", now=T0) == 2  # handles count up


def test_publish_with_e2ee_asks_for_gcm() -> None:
    m = manager()
    m.publish_data_track(name="telemetry", now=T0, uses_e2ee=True)
    assert sent(m.drain()) == [PUBLISH_1_TELEMETRY_GCM]


def test_frame_encoding_and_schema_go_in_the_request_and_survive_a_republish() -> None:
    m = manager()
    encoding = tpb.DataTrackFrameEncoding(well_known=7)  # type: ignore[arg-type]
    schema = tpb.DataTrackSchemaId(name="pose", encoding=tpb.DataTrackSchemaEncoding(custom="x"))
    handle = m.publish_data_track(name="t", now=T0, frame_encoding=encoding, schema=schema)
    encoding.well_known = 3  # type: ignore[assignment]  # the caller's object is copied
    (request,) = [o.request for o in m.drain() if isinstance(o, SendDataTrackSignal)]
    expected = tpb.PublishDataTrackRequest(
        pub_handle=handle,
        name="t",
        frame_encoding=tpb.DataTrackFrameEncoding(well_known=7),  # type: ignore[arg-type]
        schema=schema,
    )
    assert request == spb.SignalRequest(publish_data_track_request=expected)
    accept(m, handle, "DTR_1", "t")
    (entry,) = m.sync_state_publish_data_tracks()
    assert entry.info.frame_encoding.well_known == 7 and entry.info.schema == schema
    m.reconnecting(full=True, now=T0)
    m.joined("me", [], now=T0)
    (request,) = [o.request for o in m.drain() if isinstance(o, SendDataTrackSignal)]
    assert request == spb.SignalRequest(publish_data_track_request=expected)


@pytest.mark.parametrize(
    "reason",
    [
        PR.NOT_ALLOWED,
        PR.INVALID_HANDLE,
        PR.INVALID_NAME,
        PR.DUPLICATE_HANDLE,
        PR.DUPLICATE_NAME,
        PR.INVALID_REQUEST,
        PR.LIMIT_EXCEEDED,
        PR.UNCLASSIFIED_ERROR,
    ],
)
def test_every_server_refusal_is_correlated_by_handle(reason: PublishDataTrackErrorReason) -> None:
    m = manager()
    m.publish_data_track(name="a", now=T0)
    m.publish_data_track(name="b", now=T0)
    m.drain()
    assert m.request_response_received(refusal(2, reason.value, "nope"), now=T0) is True
    failed = DataTrackPublishFailed(pub_handle=2, name="b", reason=reason, message="nope")
    assert m.drain() == [failed]
    error = failed.exception()
    assert isinstance(error, PublishDataTrackError)
    assert (error.reason, error.message, str(error)) == (reason, "nope", "nope")
    assert m.publish_state(1) is PublishState.PENDING  # the other publish is untouched
    assert m.get_timer() == T0 + 10.0
    assert m.publish_data_track(name="c", now=T0) == 3  # a refused handle is not reused


@pytest.mark.parametrize(("code", "text"), [(0, ""), (1, "gone"), (5, ""), (42, "new")])
def test_an_unknown_refusal_reason_is_unclassified(code: int, text: str) -> None:
    m = manager()
    m.publish_data_track(name="a", now=T0)
    m.drain()
    m.request_response_received(refusal(1, code, text), now=T0)
    (failed,) = m.drain()
    assert isinstance(failed, DataTrackPublishFailed)
    assert failed.reason is PR.UNCLASSIFIED_ERROR
    assert failed.message == f"server reason {code}: {text or 'UNCLASSIFIED_ERROR'}"


def test_a_refusal_without_message_names_its_reason() -> None:
    m = manager()
    m.publish_data_track(name="a", now=T0)
    m.request_response_received(refusal(1, PR.NOT_ALLOWED.value), now=T0)
    assert [e.message for e in m.drain() if isinstance(e, DataTrackPublishFailed)] == [
        "NOT_ALLOWED"
    ]


def test_publish_timeout_then_a_late_success_is_unpublished() -> None:
    m = manager()
    m.publish_data_track(name="telemetry", now=T0)
    m.drain()
    m.handle_timer(T0 + 9.999)
    assert m.drain() == []
    m.handle_timer(T0 + 10.0)
    assert m.drain() == [
        DataTrackPublishFailed(
            pub_handle=1,
            name="telemetry",
            reason=PR.TIMEOUT,
            message="no answer from the server within 10s",
        )
    ]
    assert m.get_timer() is None
    accept(m, 1, "DTR_me1", "telemetry", now=T0 + 11)
    out = m.drain()
    assert sent(out) == [UNPUBLISH_1]
    assert events(out) == [
        DataTrackSignalIgnored(
            reason="late", detail="publish of handle 1 answered after it timed out or was cancelled"
        )
    ]
    # The server's answer to that unpublish is expected: nothing more happens.
    m.unpublish_response_received(
        tpb.UnpublishDataTrackResponse(info=dt("DTR_me1", 1, "t")), now=T0
    )
    assert m.drain() == []
    assert m.publish_state(1) is PublishState.UNPUBLISHED


def test_a_late_refusal_after_the_timeout_sends_nothing() -> None:
    m = manager(publish_timeout=2.0)
    m.publish_data_track(name="telemetry", now=T0)
    m.handle_timer(T0 + 2)
    m.drain()
    m.request_response_received(refusal(1, PR.DUPLICATE_NAME.value), now=T0 + 3)
    assert m.drain() == [
        DataTrackSignalIgnored(reason="late", detail="publish of handle 1 refused after it ended")
    ]
    accept(m, 1, "DTR_me1", "telemetry")  # forgotten now: not even late
    assert m.drain() == [
        DataTrackSignalIgnored(reason="unknown-handle", detail="publish response for handle 1")
    ]


def test_cancelling_a_pending_publish() -> None:
    m = manager()
    m.publish_data_track(name="telemetry", now=T0)
    m.drain()
    m.unpublish_data_track(1, now=T0 + 1)
    assert m.drain() == [
        DataTrackPublishFailed(
            pub_handle=1, name="telemetry", reason=PR.CANCELLED, message="the publish was cancelled"
        )
    ]
    assert m.get_timer() is None
    accept(m, 1, "DTR_me1", "telemetry")
    assert sent(m.drain()) == [UNPUBLISH_1]


def test_unpublishing_a_published_track() -> None:
    m = manager()
    handle = published(m)
    m.unpublish_data_track(handle, now=T0 + 1)
    out = m.drain()
    assert sent(out) == [UNPUBLISH_1]
    assert events(out) == [
        DataTrackUnpublished(pub_handle=1, sid="DTR_me1", reason=UnpublishReason.LOCAL)
    ]
    m.unpublish_data_track(handle, now=T0 + 2)  # idempotent
    assert m.drain() == []
    not_found = spb.RequestResponse(
        reason=spb.RequestResponse.NOT_FOUND,
        unpublish_data_track=tpb.UnpublishDataTrackRequest(pub_handle=1),
    )
    assert m.request_response_received(not_found, now=T0) is True
    assert m.drain() == []  # expected: it is gone either way
    assert m.request_response_received(not_found, now=T0) is True
    assert m.drain() == [
        DataTrackSignalIgnored(reason="unknown-handle", detail="unpublish refusal for handle 1")
    ]
    with pytest.raises(PushFrameError) as info:
        m.try_push(handle, DataTrackFrame(b"late"), now=T0)
    assert info.value.reason is PushFrameErrorReason.TRACK_UNPUBLISHED
    assert info.value.frame == DataTrackFrame(b"late")
    assert info.value.message == "data track 1 is no longer published"


def test_the_server_unpublishing_our_track() -> None:
    m = manager()
    handle = published(m)
    m.try_push(handle, DataTrackFrame(b"queued"), now=T0)
    response = tpb.UnpublishDataTrackResponse(info=dt("DTR_me1", 1, "telemetry"))
    m.unpublish_response_received(response, now=T0 + 1)
    assert m.drain() == [
        DataTrackUnpublished(pub_handle=1, sid="DTR_me1", reason=UnpublishReason.SERVER)
    ]
    assert m.queued_bytes == 0 and m.frames_to_send() == []
    m.unpublish_response_received(response, now=T0 + 1)
    assert m.drain() == [
        DataTrackSignalIgnored(reason="unknown-handle", detail="unpublish response for handle 1")
    ]


def test_answers_that_match_nothing_are_reported() -> None:
    m = manager()
    m.publish_data_track(name="p", now=T0)
    handle = published(m, "q")
    m.drain()
    m.unpublish_response_received(tpb.UnpublishDataTrackResponse(info=dt("D", 1, "p")), now=T0)
    accept(m, handle, "DTR_again", "q")
    m.request_response_received(refusal(handle, PR.NOT_ALLOWED.value), now=T0)
    m.request_response_received(refusal(9, PR.NOT_ALLOWED.value), now=T0)
    m.publish_response_received(tpb.PublishDataTrackResponse(), now=T0)
    m.publish_response_received(tpb.PublishDataTrackResponse(info=dt("D", 0, "p")), now=T0)
    assert m.drain() == [
        DataTrackSignalIgnored(
            reason="unexpected", detail="unpublish response for pending handle 1"
        ),
        DataTrackSignalIgnored(
            reason="unexpected", detail="publish response for handle 2, not asked"
        ),
        DataTrackSignalIgnored(
            reason="unexpected", detail="publish refusal for handle 2, not asked"
        ),
        DataTrackSignalIgnored(reason="unknown-handle", detail="publish refusal for handle 9"),
        DataTrackSignalIgnored(reason="invalid-info", detail="publish response: no info"),
        DataTrackSignalIgnored(
            reason="invalid-info",
            detail="publish response: data track D has pub_handle 0, outside 1..65535",
        ),
    ]
    assert m.local_info(handle) == DataTrackInfo("DTR_me2", "q", pub_handle=2)
    other = spb.RequestResponse(request_id=4, reason=spb.RequestResponse.NOT_ALLOWED)
    assert m.request_response_received(other, now=T0) is False


def test_publish_misuse_is_refused_and_changes_nothing() -> None:
    m = DataTrackManager()
    with pytest.raises(LocalProtocolError) as info:
        m.publish_data_track(name="x", now=T0)
    assert (info.value.call, info.value.state) == ("publish_data_track", "IDLE")
    m.joined("me", [], now=T0)
    for kwargs, message in [
        ({"name": 5}, "name must be str"),
        ({"name": "\ud800"}, "not valid Unicode"),
        ({"name": "x", "uses_e2ee": 1}, "uses_e2ee must be a bool"),
        ({"name": "x", "frame_encoding": "json"}, "DataTrackFrameEncoding"),
        ({"name": "x", "schema": "s"}, "DataTrackSchemaId"),
        ({"name": "x", "now": float("inf")}, "now must be a finite number"),
    ]:
        arguments: dict[str, object] = {"now": T0, **kwargs}
        with pytest.raises(LocalProtocolError, match=message):
            m.publish_data_track(**arguments)  # type: ignore[arg-type]
    assert m.drain() == [] and m.get_timer() is None
    assert m.publish_data_track(name="x", now=T0) == 1


def test_max_published_tracks() -> None:
    m = manager(max_published_tracks=2)
    m.publish_data_track(name="a", now=T0)
    published(m, "b")
    with pytest.raises(LocalProtocolError, match="2 data tracks are already published"):
        m.publish_data_track(name="c", now=T0)
    m.unpublish_data_track(1, now=T0)
    assert m.publish_data_track(name="c", now=T0) == 3


def test_handles_are_never_reused_and_run_out_at_65535() -> None:
    m = manager(max_published_tracks=1)
    for expected in range(1, 65536):
        assert m.publish_data_track(name="t", now=T0) == expected
        m.unpublish_data_track(expected, now=T0)
    m.drain()
    with pytest.raises(LocalProtocolError, match="LimitReached: all 65535"):
        m.publish_data_track(name="t", now=T0)


def test_a_bad_timestamp_base_factory_is_a_local_error() -> None:
    m = manager(timestamp_base_factory=lambda: "0")
    with pytest.raises(LocalProtocolError, match="returned str, not int"):
        m.publish_data_track(name="t", now=T0)
    assert m.drain() == []


# -- pushing ----------------------------------------------------------------------------------


def test_pushed_frames_become_packets_with_the_push_time_stamp() -> None:
    m = manager(mtu=100, timestamp_base_factory=lambda: 2**32 + 5)  # the base is cut to u32
    handle = published(m)
    m.try_push(handle, DataTrackFrame(b"a" * 150, user_timestamp=42), now=T0 + 1)
    m.try_push(handle, DataTrackFrame(b"b" * 10), now=T0 + 2)
    assert m.queued_frames(handle) == 2 and m.queued_bytes == 160
    first, second = m.frames_to_send()
    assert (first.pub_handle, first.sid, first.frame_number) == (1, "DTR_me1", 0)
    decoded = [DataTrackPacket.decode(p) for p in first.packets]
    assert [p.marker for p in decoded] == [FrameMarker.START, FrameMarker.FINAL]
    assert [len(p) for p in first.packets] == [100, 98]  # 76 payload bytes, then 74
    assert first.size == 198
    assert {(p.timestamp, p.user_timestamp, p.sequence) for p in decoded} == {
        (90_005, 42, 0),
        (90_005, 42, 1),
    }
    (single,) = [DataTrackPacket.decode(p) for p in second.packets]
    assert (single.marker, single.sequence, single.frame_number, single.timestamp) == (
        FrameMarker.SINGLE,
        2,
        1,
        180_005,
    )
    assert m.queued_bytes == 0 and m.frames_to_send() == []


def test_the_queue_is_bounded_per_track_and_refuses_the_new_frame() -> None:
    m = manager()
    handle = published(m)
    for i in range(16):
        m.try_push(handle, DataTrackFrame(bytes((i,))), now=T0)
    with pytest.raises(PushFrameError) as info:
        m.try_push(handle, DataTrackFrame(b"new"), now=T0)
    assert info.value.reason is PushFrameErrorReason.QUEUE_FULL
    assert info.value.frame.payload == b"new"
    assert (info.value.call, info.value.state) == ("try_push", "queue_full")
    assert str(info.value) == "data track 1 already has 16 frames queued"
    sends = m.frames_to_send(max_frames=3)
    assert [DataTrackPacket.decode(s.packets[0]).payload for s in sends] == [b"\0", b"\1", b"\2"]
    m.try_push(handle, DataTrackFrame(b"fits again"), now=T0)
    assert m.queued_frames(handle) == 14


def test_queued_bytes_are_bounded_over_all_tracks() -> None:
    m = manager(max_queued_bytes=100)
    a, b = published(m, "a"), published(m, "b")
    m.try_push(a, DataTrackFrame(b"x" * 60), now=T0)
    with pytest.raises(PushFrameError, match="60 bytes are queued; 41 more would pass"):
        m.try_push(b, DataTrackFrame(b"y" * 41), now=T0)
    m.try_push(b, DataTrackFrame(b"y" * 40), now=T0)
    assert m.queued_bytes == 100


def test_tracks_are_served_in_turn() -> None:
    m = manager()
    a, b, c = published(m, "a"), published(m, "b"), published(m, "c")
    for handle, count in ((a, 3), (b, 1), (c, 2)):
        for _ in range(count):
            m.try_push(handle, DataTrackFrame(b"x"), now=T0)
    assert [s.pub_handle for s in m.frames_to_send()] == [a, b, c, a, c, a]
    m.try_push(b, DataTrackFrame(b"x"), now=T0)
    m.try_push(a, DataTrackFrame(b"x"), now=T0)
    assert [s.pub_handle for s in m.frames_to_send(max_frames=1)] == [b]  # after a comes b
    assert [s.pub_handle for s in m.frames_to_send(max_frames=0)] == []
    with pytest.raises(LocalProtocolError, match="max_frames"):
        m.frames_to_send(max_frames=-1)


def test_push_refusals_and_misuse() -> None:
    m = manager()
    handle = published(m)
    m.publish_data_track(name="pending", now=T0)
    frame = DataTrackFrame(b"x")
    cases: list[tuple[object, object, dict[str, object], str]] = [
        (handle, b"raw", {}, "frame must be a DataTrackFrame"),
        (handle, frame, {"e2ee": b"iv"}, "e2ee must be an E2eeExtension"),
        (handle, frame, {"now": float("nan")}, "now must be a finite number"),
        (True, frame, {}, "pub_handle must be an int"),
        (0, frame, {}, "no data track was ever published with handle 0"),
        (9, frame, {}, "no data track was ever published with handle 9"),
        (2, frame, {}, "data track 2 is not published yet"),
        (handle, frame, {"e2ee": IV}, "data track 1 does not use E2EE"),
    ]
    for pub_handle, value, kwargs, message in cases:
        arguments: dict[str, object] = {"now": T0, **kwargs}
        with pytest.raises(LocalProtocolError, match=message):
            m.try_push(pub_handle, value, **arguments)  # type: ignore[arg-type]
    assert m.queued_frames(handle) == 0 and m.queued_frames(99) == 0


def test_an_empty_frame_sends_nothing_and_a_too_large_one_is_refused() -> None:
    m = manager(mtu=100, max_packets_per_frame=3)
    handle = published(m)
    m.try_push(handle, DataTrackFrame(b""), now=T0)
    assert m.queued_frames(handle) == 0
    m.try_push(handle, DataTrackFrame(b"x" * 264), now=T0)  # 3 packets of 88 bytes
    with pytest.raises(LocalProtocolError, match="a 265-byte frame needs 4 packets, over the 3"):
        m.try_push(handle, DataTrackFrame(b"x" * 265), now=T0)


def test_an_encrypted_track_carries_the_extension_on_every_packet() -> None:
    m = manager(mtu=100)
    handle = published(m, uses_e2ee=True)
    with pytest.raises(LocalProtocolError, match="uses E2EE: give the frame's e2ee"):
        m.try_push(handle, DataTrackFrame(b"plain"), now=T0)
    m.try_push(handle, DataTrackFrame(b"c" * 100, user_timestamp=1), now=T0, e2ee=IV)
    (send,) = m.frames_to_send()
    assert [DataTrackPacket.decode(p).e2ee for p in send.packets] == [IV, IV]
    assert m.local_info(handle) == DataTrackInfo("DTR_me1", "telemetry", True, pub_handle=1)


# -- discovery --------------------------------------------------------------------------------


def test_tracks_at_join_are_discovered_and_our_own_are_skipped() -> None:
    me = person("me", [dt("DTR_mine", 1, "x")])
    m = manager(me, BOB_B1, person("carol"))
    info = DataTrackInfo("DTR_b1", "cursor", False, pub_handle=1)
    assert m.drain() == [RemoteDataTrackPublished(publisher_identity="bob", info=info)]
    assert m.remote_tracks == (("bob", info),)
    assert m.local_identity == "me" and m.phase is SessionPhase.JOINED


def test_updates_add_and_remove_tracks_per_publisher() -> None:
    m = manager(BOB_B1, person("carol", [dt("DTR_c1", 1, "c")]))
    m.drain()
    m.participants_updated(
        [person("bob", [dt("DTR_b1", 1, "cursor"), dt("DTR_b2", 2, "pose", gcm=True)], version=2)],
        now=T0,
    )
    assert m.drain() == [
        RemoteDataTrackPublished(
            publisher_identity="bob", info=DataTrackInfo("DTR_b2", "pose", True, pub_handle=2)
        )
    ]
    m.participants_updated([person("bob", [dt("DTR_b2", 2, "pose", gcm=True)], version=3)], now=T0)
    assert m.drain() == [RemoteDataTrackUnpublished(publisher_identity="bob", sid="DTR_b1")]
    assert [info.sid for _, info in m.remote_tracks] == ["DTR_c1", "DTR_b2"]  # carol untouched


def test_a_disconnected_publisher_loses_every_track() -> None:
    m = manager(person("bob", [dt("DTR_b1", 1, "a"), dt("DTR_b2", 2, "b")]))
    m.drain()
    m.participants_updated([person("bob", [dt("DTR_b1", 1, "a")], version=2, gone=True)], now=T0)
    assert m.drain() == [
        RemoteDataTrackUnpublished(publisher_identity="bob", sid="DTR_b1"),
        RemoteDataTrackUnpublished(publisher_identity="bob", sid="DTR_b2"),
    ]


def test_stale_updates_and_old_sessions_disconnects_are_ignored() -> None:
    m = manager(person("bob", [dt("DTR_b1", 1, "a")], version=5))
    m.drain()
    m.participants_updated([person("bob", [], version=4)], now=T0)  # older version
    m.participants_updated([person("bob", [], sid="PA_old", gone=True)], now=T0)  # old session
    m.participants_updated([person("", [dt("DTR_x", 1, "x")])], now=T0)  # no identity
    m.participants_updated([person("me", [dt("DTR_me", 1, "x")])], now=T0)  # ourselves
    assert m.drain() == []
    m.participants_updated([person("bob", [], version=5)], now=T0)  # the same version applies
    assert m.drain() == [RemoteDataTrackUnpublished(publisher_identity="bob", sid="DTR_b1")]
    m.participants_updated([person("dave", gone=True)], now=T0)  # never seen: nothing
    assert m.drain() == []


def test_invalid_conflicting_and_excess_listings_are_reported() -> None:
    m = manager(BOB_B1, max_remote_tracks=2)
    m.drain()
    m.participants_updated(
        [
            person(
                "carol",
                [
                    dt("", 1, "nosid"),
                    dt("DTR_c0", 0, "zero"),
                    tpb.DataTrackInfo(pub_handle=3, sid="DTR_cc", name="custom", encryption=2),
                    dt("DTR_b1", 1, "stolen"),
                    dt("DTR_c1", 1, "ok"),
                    dt("DTR_c1", 1, "ok"),
                    dt("DTR_c2", 2, "too many"),
                ],
            )
        ],
        now=T0,
    )
    assert m.drain() == [
        DataTrackSignalIgnored(reason="invalid-info", detail="'carol': a data track without SID"),
        DataTrackSignalIgnored(
            reason="invalid-info",
            detail="'carol': data track DTR_c0 has pub_handle 0, outside 1..65535",
        ),
        DataTrackSignalIgnored(
            reason="invalid-info",
            detail="'carol': data track DTR_cc uses encryption type 2, not NONE or GCM",
        ),
        DataTrackSignalIgnored(
            reason="conflict", detail="DTR_b1 listed by 'carol', published by 'bob'"
        ),
        RemoteDataTrackPublished(
            publisher_identity="carol", info=DataTrackInfo("DTR_c1", "ok", pub_handle=1)
        ),
        DataTrackSignalIgnored(
            reason="too-many-tracks", detail="DTR_c2 of 'carol': 2 remote tracks are known"
        ),
    ]


# -- subscribing ------------------------------------------------------------------------------


def test_subscribe_handles_and_frames() -> None:
    m = manager(BOB_B1)
    m.drain()
    m.subscribe("DTR_b1", now=T0)
    assert sent(m.drain()) == [SUBSCRIBE_B1]
    assert m.subscription_state("DTR_b1") is SubscriptionState.PENDING
    assert m.get_timer() == T0 + 10.0
    m.subscribe("DTR_b1", now=T0 + 1)  # once is enough (Rust shares one pipeline)
    assert m.drain() == []
    m.subscriber_handles_received(handles(DTR_b1=5), now=T0 + 0.1)
    assert m.drain() == [DataTrackSubscribed(sid="DTR_b1", publisher_identity="bob", sub_handle=5)]
    assert m.get_timer() is None
    assert m.subscription_state("DTR_b1") is SubscriptionState.ACTIVE
    assert m.subscriber_handle("DTR_b1") == 5
    for packet in frame_packets(5, b"hello world" * 20, user_timestamp=1_700_000_000_000):
        m.receive_packet(packet, now=T0 + 0.2)
    assert m.drain() == [
        DataTrackFrameReceived(
            sid="DTR_b1",
            publisher_identity="bob",
            frame=DataTrackFrame(b"hello world" * 20, 1_700_000_000_000),
            frame_number=0,
            timestamp=900,
        )
    ]


def test_snapshots_add_and_remove_routes() -> None:
    m = manager(BOB_B1, person("carol", [dt("DTR_c1", 1, "c")]))
    subscribed(m, "DTR_b1", 5)
    subscribed(m, "DTR_c1", 6)
    m.subscriber_handles_received(handles(DTR_c1=6), now=T0)  # b1's handle withdrawn
    assert m.drain() == []
    assert m.subscription_state("DTR_b1") is SubscriptionState.ACTIVE
    assert m.subscriber_handle("DTR_b1") is None
    (packet,) = frame_packets(5, b"x")
    m.receive_packet(packet, now=T0)
    assert m.drain() == [
        DataTrackPacketDropped(
            reason=PacketErrorReason.UNKNOWN_HANDLE, handle=5, detail="no subscription has handle 5"
        )
    ]
    m.subscriber_handles_received(handles(DTR_c1=6, DTR_b1=7), now=T0)
    assert m.drain() == []  # active again, quietly
    (packet,) = frame_packets(7, b"y")
    m.receive_packet(packet, now=T0)
    assert [type(e) for e in m.drain()] == [DataTrackFrameReceived]


def test_a_withdrawn_handle_drops_the_partial_frame_it_held() -> None:
    m = manager(BOB_B1)
    subscribed(m)
    first, _ = frame_packets(5, b"z" * 150)
    m.receive_packet(first, now=T0)
    m.subscriber_handles_received(handles(), now=T0)
    assert m.drain() == [
        DataTrackFrameDropped(
            sid="DTR_b1",
            publisher_identity="bob",
            frame_number=0,
            reason=FrameDropReason.INTERRUPTED,
            received=1,
            expected=None,
            detail="the server withdrew its subscriber handle",
        )
    ]


def test_odd_snapshot_entries_are_reported() -> None:
    m = manager(BOB_B1, person("carol", [dt("DTR_c1", 1, "c")]))
    m.subscribe("DTR_b1", now=T0)
    m.drain()
    snapshot = handles(DTR_b1=5)
    entry = tpb.DataTrackSubscriberHandles.PublishedDataTrack
    snapshot.sub_handles[70000].CopyFrom(entry(track_sid="DTR_b1"))
    snapshot.sub_handles[6].CopyFrom(entry(track_sid="DTR_b1"))
    snapshot.sub_handles[8].CopyFrom(entry(track_sid="DTR_c1"))
    snapshot.sub_handles[9].CopyFrom(entry(track_sid="DTR_zz"))
    m.subscriber_handles_received(snapshot, now=T0)
    out = m.drain()
    assert events(out) == [
        DataTrackSignalIgnored(reason="duplicate-handle", detail="subscriber handle 6 for DTR_b1"),
        DataTrackSignalIgnored(
            reason="unsolicited-handle", detail="subscriber handle 8 for DTR_c1"
        ),
        DataTrackSignalIgnored(
            reason="unsolicited-handle", detail="subscriber handle 9 for DTR_zz"
        ),
        DataTrackSignalIgnored(
            reason="invalid-handle", detail="subscriber handle 70000 for DTR_b1"
        ),
        DataTrackSubscribed(sid="DTR_b1", publisher_identity="bob", sub_handle=5),
    ]
    # The server holds a down track for each unsolicited handle: withdrawing it is safe.
    assert sent(out) == [
        bytes.fromhex("aa 01 0a 0a 08 0a 06") + b"DTR_c1",
        bytes.fromhex("aa 01 0a 0a 08 0a 06") + b"DTR_zz",
    ]


def test_a_subscribe_timeout_withdraws_only_once_the_server_grants_the_handle() -> None:
    """livekit-server 1.13.5 deadlocks the subscriber's subscription manager when asked to
    unsubscribe from a data track it holds no down track for: nothing is sent at the
    timeout; a handle the server grants later is withdrawn then, once."""
    m = manager(BOB_B1, subscribe_timeout=3.0)
    m.subscribe("DTR_b1", now=T0)
    m.drain()
    m.handle_timer(T0 + 3)
    out = m.drain()
    assert sent(out) == []
    ended = DataTrackSubscriptionEnded(
        sid="DTR_b1", publisher_identity="bob", reason=SR.TIMEOUT, active=False
    )
    assert events(out) == [ended]
    assert ended.is_error
    error = ended.exception()
    assert isinstance(error, SubscribeDataTrackError)
    assert (error.reason, error.message) == (
        SR.TIMEOUT,
        "Request to subscribe to data track timed-out",
    )
    assert m.subscription_state("DTR_b1") is SubscriptionState.NONE
    late = DataTrackSignalIgnored(
        reason="unsolicited-handle", detail="subscriber handle 5 for DTR_b1"
    )
    m.subscriber_handles_received(handles(DTR_b1=5), now=T0 + 4)  # too late: not ours now
    assert m.drain() == [late, SendDataTrackSignal(request=UNSUBSCRIBE_B1_REQUEST)]
    m.subscriber_handles_received(handles(DTR_b1=5), now=T0 + 4)  # asked already
    assert m.drain() == [late]
    m.subscriber_handles_received(handles(), now=T0 + 5)  # the server dropped it
    m.subscriber_handles_received(handles(DTR_b1=6), now=T0 + 6)  # granted again: again
    assert sent(m.drain()) == [UNSUBSCRIBE_B1]


def test_unsubscribe() -> None:
    m = manager(BOB_B1)
    subscribed(m)
    m.unsubscribe("DTR_b1", now=T0)
    out = m.drain()
    assert sent(out) == [UNSUBSCRIBE_B1]
    ended = DataTrackSubscriptionEnded(
        sid="DTR_b1", publisher_identity="bob", reason=SR.CANCELLED, active=True
    )
    assert events(out) == [ended] and not ended.is_error
    m.unsubscribe("DTR_b1", now=T0)
    m.unsubscribe("DTR_unknown", now=T0)
    assert m.drain() == []
    (packet,) = frame_packets(5, b"x")
    m.receive_packet(packet, now=T0)
    assert [e.reason for e in m.drain() if isinstance(e, DataTrackPacketDropped)] == [
        PacketErrorReason.UNKNOWN_HANDLE
    ]
    m.subscribe("DTR_b1", now=T0)  # and again, from scratch
    assert sent(m.drain()) == [SUBSCRIBE_B1]


def test_subscribing_to_an_unknown_track_ends_at_once() -> None:
    m = manager()
    m.subscribe("DTR_gone", now=T0)
    (ended,) = m.drain()
    assert ended == DataTrackSubscriptionEnded(
        sid="DTR_gone", publisher_identity="", reason=SR.UNPUBLISHED, active=False
    )
    assert isinstance(ended, DataTrackSubscriptionEnded) and ended.is_error
    with pytest.raises(LocalProtocolError, match="sid must be str"):
        m.subscribe(b"DTR", now=T0)  # type: ignore[arg-type]


def test_unpublished_while_subscribed() -> None:
    m = manager(BOB_B1)
    subscribed(m)
    m.participants_updated([person("bob", [], version=2)], now=T0)
    ended = DataTrackSubscriptionEnded(
        sid="DTR_b1", publisher_identity="bob", reason=SR.UNPUBLISHED, active=True
    )
    assert m.drain() == [ended, RemoteDataTrackUnpublished(publisher_identity="bob", sid="DTR_b1")]
    assert not ended.is_error  # a normal end of the stream, as in Rust
    assert m.subscription_state("DTR_b1") is SubscriptionState.NONE


def test_encrypted_remote_frames_carry_their_extension() -> None:
    m = manager(person("bob", [dt("DTR_b1", 1, "secret", gcm=True)]))
    subscribed(m)
    (plain,) = frame_packets(5, b"plain")
    m.receive_packet(plain, now=T0)
    (sealed,) = frame_packets(5, b"sealed", e2ee=IV)
    m.receive_packet(DataTrackPacket.decode(sealed).encode(), now=T0)
    assert m.drain() == [
        DataTrackFrameDropped(
            sid="DTR_b1",
            publisher_identity="bob",
            frame_number=0,
            reason=FrameDropReason.MISSING_E2EE,
            received=1,
            expected=None,
            detail="a frame without its E2EE extension on an encrypted track",
        ),
        DataTrackFrameDropped(  # the same frame number again: a duplicate of an ended frame
            sid="DTR_b1",
            publisher_identity="bob",
            frame_number=0,
            reason=FrameDropReason.UNKNOWN_FRAME,
            received=1,
            expected=None,
            detail="a packet of a frame that already ended (late or duplicated)",
        ),
    ]
    packetizer = Packetizer(5)
    packetizer.frame_number = 1
    (sealed_packet,) = packetizer.packetize(b"sealed", timestamp=1, e2ee=IV)
    m.receive_packet(sealed_packet.encode(), now=T0)
    (received,) = m.drain()
    assert isinstance(received, DataTrackFrameReceived)
    assert (received.frame.payload, received.e2ee, received.frame_number) == (b"sealed", IV, 1)


def test_pipeline_options() -> None:
    m = manager(BOB_B1)
    subscribed(m)
    m.set_pipeline_options("DTR_b1", max_partial_frames=3)
    packetizer = Packetizer(5, mtu=50)
    starts = [packetizer.packetize(b"q" * 60, timestamp=0)[0] for _ in range(3)]
    for packet in starts:
        m.receive_packet(packet.encode(), now=T0)
    assert m.drain() == []
    m.set_pipeline_options("DTR_b1", max_partial_frames=0)  # clamped to 1
    assert [
        (e.frame_number, e.detail) for e in m.drain() if isinstance(e, DataTrackFrameDropped)
    ] == [
        (0, "max_partial_frames was lowered"),
        (1, "max_partial_frames was lowered"),
    ]
    m.set_pipeline_options("DTR_b1")  # None keeps the value
    m.set_pipeline_options("DTR_nope", max_partial_frames=2)  # unknown: ignored
    assert m.drain() == []
    with pytest.raises(LocalProtocolError, match="non-negative int"):
        m.set_pipeline_options("DTR_b1", max_partial_frames=-1)
    m.set_pipeline_options("DTR_c", max_partial_frames=2)
    m.participants_updated(
        [person("bob", [dt("DTR_b1", 1, "cursor"), dt("DTR_b2", 2, "x")])], now=T0
    )
    m.set_pipeline_options("DTR_b2", max_partial_frames=2)  # before any subscription
    subscribed(m, "DTR_b2", 6)
    packetizer = Packetizer(6, mtu=50)
    for _ in range(2):
        m.receive_packet(packetizer.packetize(b"q" * 60, timestamp=0)[0].encode(), now=T0)
    assert m.drain() == []  # two partial frames held at once


def test_malformed_and_text_packets_are_reported() -> None:
    m = manager(BOB_B1)
    subscribed(m)
    m.receive_packet("hello", now=T0)
    m.receive_packet(b"\x18\x00\x00", now=T0)
    m.receive_packet(bytearray(b"\x38\x00\x00\x05" + bytes(8)), now=T0)
    m.receive_packet(memoryview(b"\x1c\x00\x00\x05" + bytes(8) + b"\x00\x02"), now=T0)
    assert m.drain() == [
        DataTrackPacketDropped(
            reason=PacketErrorReason.NOT_BINARY, handle=0, detail="a text message"
        ),
        DataTrackPacketDropped(
            reason=PacketErrorReason.TOO_SHORT, handle=0, detail="3 bytes, under the 12-byte header"
        ),
        DataTrackPacketDropped(
            reason=PacketErrorReason.UNSUPPORTED_VERSION, handle=5, detail="unsupported version 1"
        ),
        DataTrackPacketDropped(
            reason=PacketErrorReason.HEADER_OVERRUN,
            handle=5,
            detail="the extension block ends at byte 24, past the 14-byte packet",
        ),
    ]
    with pytest.raises(LocalProtocolError, match="data must be bytes, not int"):
        m.receive_packet(5, now=T0)  # type: ignore[arg-type]


# -- SID reassignment after the publisher's full reconnect -----------------------------------


def test_a_republished_track_keeps_its_subscription() -> None:
    m = manager(BOB_B1)
    subscribed(m)
    m.participants_updated(
        [person("bob", [dt("DTR_b1new", 1, "cursor")], sid="PA_bob2", version=1)], now=T0
    )
    out = m.drain()
    assert events(out) == [
        RemoteDataTrackSidChanged(
            publisher_identity="bob",
            previous_sid="DTR_b1",
            info=DataTrackInfo("DTR_b1new", "cursor", pub_handle=1),
        )
    ]
    assert sent(out) == [bytes.fromhex("aa 01 0f 0a 0d 0a 09") + b"DTR_b1new" + b"\x10\x01"]
    assert m.subscription_state("DTR_b1new") is SubscriptionState.ACTIVE
    assert m.subscriber_handle("DTR_b1new") is None  # the old handle belonged to the old SID
    m.subscriber_handles_received(handles(DTR_b1new=8), now=T0)
    (packet,) = frame_packets(8, b"again")
    m.receive_packet(packet, now=T0)
    assert [type(e) for e in m.drain()] == [DataTrackFrameReceived]


def test_an_old_disconnect_and_the_new_session_in_one_update_reassign() -> None:
    m = manager(BOB_B1)
    m.subscribe("DTR_b1", now=T0)
    m.drain()
    m.participants_updated(
        [
            person("bob", [dt("DTR_b1", 1, "cursor")], gone=True),
            person("bob", [dt("DTR_b9", 1, "cursor")], sid="PA_bob2"),
        ],
        now=T0,
    )
    out = m.drain()
    assert [type(e) for e in events(out)] == [RemoteDataTrackSidChanged]
    assert len(sent(out)) == 1
    assert m.subscription_state("DTR_b9") is SubscriptionState.PENDING
    assert m.get_timer() == T0 + 10  # the pending subscription keeps its deadline
    m.subscriber_handles_received(handles(DTR_b9=2), now=T0)
    assert m.drain() == [DataTrackSubscribed(sid="DTR_b9", publisher_identity="bob", sub_handle=2)]


def test_a_different_track_under_the_same_handle_is_a_new_publication() -> None:
    m = manager(BOB_B1)
    subscribed(m)
    m.participants_updated([person("bob", [dt("DTR_b2", 1, "renamed")], sid="PA_bob2")], now=T0)
    assert m.drain() == [
        RemoteDataTrackPublished(
            publisher_identity="bob", info=DataTrackInfo("DTR_b2", "renamed", pub_handle=1)
        ),
        DataTrackSubscriptionEnded(
            sid="DTR_b1", publisher_identity="bob", reason=SR.UNPUBLISHED, active=True
        ),
        RemoteDataTrackUnpublished(publisher_identity="bob", sid="DTR_b1"),
    ]


# -- resume and full reconnect ----------------------------------------------------------------


def test_resume_keeps_everything_and_defers_requests() -> None:
    m = manager(BOB_B1)
    handle = published(m)
    m.publish_data_track(name="pending", now=T0)
    subscribed(m)
    m.drain()
    m.reconnecting(full=False, now=T0 + 1)
    m.reconnecting(full=False, now=T0 + 2)  # a retry
    assert m.phase is SessionPhase.RESUMING
    (entry,) = m.sync_state_publish_data_tracks()
    assert entry.SerializeToString() == bytes.fromhex("0a 16 08 01 12 07") + b"DTR_me1" + (
        b"\x1a\x09telemetry"
    )
    m.try_push(handle, DataTrackFrame(b"meanwhile"), now=T0 + 2)  # frames still queue
    m.unpublish_data_track(handle, now=T0 + 2)
    m.unsubscribe("DTR_b1", now=T0 + 2)
    assert sent(m.drain()) == []
    with pytest.raises(
        LocalProtocolError, match="not allowed while the data-track session is RESUMING"
    ):
        m.subscribe("DTR_b1", now=T0)
    m.resumed(now=T0 + 3)
    assert sent(m.drain()) == [UNPUBLISH_1, UNSUBSCRIBE_B1]
    assert m.phase is SessionPhase.JOINED


def test_full_reconnect_republishes_with_the_same_handle_and_resubscribes() -> None:
    m = manager(BOB_B1)
    handle = published(m)
    m.publish_data_track(name="pending", now=T0)
    subscribed(m)
    m.try_push(handle, DataTrackFrame(b"sent"), now=T0)
    assert [s.frame_number for s in m.frames_to_send()] == [0]
    m.try_push(handle, DataTrackFrame(b"still queued"), now=T0)
    m.drain()
    m.reconnecting(full=True, now=T0 + 1)
    assert m.drain() == [
        DataTrackPublishFailed(
            pub_handle=2,
            name="pending",
            reason=PR.DISCONNECTED,
            message="the session is being re-established (full reconnect)",
        )
    ]
    assert m.publish_state(handle) is PublishState.REPUBLISHING and m.is_published(handle)
    assert m.queued_bytes == 0 and m.get_timer() is None
    with pytest.raises(PushFrameError) as info:
        m.try_push(handle, DataTrackFrame(b"new"), now=T0 + 1)
    assert info.value.reason is PushFrameErrorReason.QUEUE_FULL  # as Rust, while republishing
    (packet,) = frame_packets(5, b"x")
    m.receive_packet(packet, now=T0 + 1)
    assert [e.reason for e in m.drain() if isinstance(e, DataTrackPacketDropped)] == [
        PacketErrorReason.UNKNOWN_HANDLE  # every handle belonged to the old session
    ]
    m.reconnecting(full=True, now=T0 + 2)  # a retry
    m.joined("me", [BOB_B1], now=T0 + 3)
    assert sent(m.drain()) == [PUBLISH_1_TELEMETRY, SUBSCRIBE_B1]
    assert m.get_timer() == T0 + 13
    accept(m, handle, "DTR_me1b", "telemetry", now=T0 + 4)
    m.subscriber_handles_received(handles(DTR_b1=1), now=T0 + 4)
    assert m.drain() == [
        DataTrackRepublished(
            pub_handle=1,
            info=DataTrackInfo("DTR_me1b", "telemetry", pub_handle=1),
            previous_sid="DTR_me1",
        )
    ]
    m.try_push(handle, DataTrackFrame(b"new"), now=T0 + 5)
    (send,) = m.frames_to_send()
    # the packetizer carries on; the discarded frame never took a number
    assert (send.sid, send.frame_number) == ("DTR_me1b", 1)
    (packet,) = frame_packets(1, b"flows again")
    m.receive_packet(packet, now=T0 + 5)
    assert [type(e) for e in m.drain()] == [DataTrackFrameReceived]


def test_a_refused_or_unanswered_republish_ends_the_track() -> None:
    m = manager()
    a, b = published(m, "a"), published(m, "b")
    m.reconnecting(full=True, now=T0)
    m.joined("me", [], now=T0)
    m.drain()
    m.request_response_received(refusal(a, PR.NOT_ALLOWED.value, "no grant"), now=T0)
    m.handle_timer(T0 + 10)
    assert m.drain() == [
        DataTrackUnpublished(
            pub_handle=a,
            sid="DTR_me1",
            reason=UnpublishReason.REPUBLISH_FAILED,
            message="NOT_ALLOWED: no grant",
        ),
        DataTrackUnpublished(
            pub_handle=b,
            sid="DTR_me2",
            reason=UnpublishReason.REPUBLISH_FAILED,
            message="no answer from the server within 10s",
        ),
    ]
    accept(m, b, "DTR_late", "b")
    assert sent(m.drain()) == [bytes.fromhex("a2 01 02 08 02")]


def test_unpublishing_while_republishing() -> None:
    m = manager()
    a, b = published(m, "a"), published(m, "b")
    m.reconnecting(full=True, now=T0)
    m.unpublish_data_track(a, now=T0)  # nothing to tell a server that forgot it
    out = m.drain()
    assert sent(out) == [] and [type(e) for e in out] == [DataTrackUnpublished]
    m.joined("me", [], now=T0)
    assert len(sent(m.drain())) == 1  # only b is republished
    m.unpublish_data_track(b, now=T0)  # its republish is in flight: a success is undone
    m.drain()
    accept(m, b, "DTR_b", "b")
    assert sent(m.drain()) == [bytes.fromhex("a2 01 02 08 02")]


def test_the_server_unpublishing_a_track_being_republished() -> None:
    m = manager()
    handle = published(m)
    m.reconnecting(full=True, now=T0)
    m.joined("me", [], now=T0)
    m.drain()
    response = tpb.UnpublishDataTrackResponse(info=dt("DTR_me1", handle, "telemetry"))
    m.unpublish_response_received(response, now=T0)
    assert [e.reason for e in m.drain() if isinstance(e, DataTrackUnpublished)] == [
        UnpublishReason.SERVER
    ]


def test_a_rejoin_snapshot_removes_publishers_that_left() -> None:
    m = manager(BOB_B1, person("carol", [dt("DTR_c1", 1, "c")]))
    subscribed(m, "DTR_c1", 3)
    m.reconnecting(full=True, now=T0)
    m.joined("me", [BOB_B1, person("carol", [dt("DTR_c1", 1, "c")], gone=True)], now=T0)
    assert m.drain() == [
        DataTrackSubscriptionEnded(
            sid="DTR_c1", publisher_identity="carol", reason=SR.UNPUBLISHED, active=True
        ),
        RemoteDataTrackUnpublished(publisher_identity="carol", sid="DTR_c1"),
    ]
    m.reconnecting(full=True, now=T0)
    m.joined("me", [], now=T0)
    assert m.drain() == [RemoteDataTrackUnpublished(publisher_identity="bob", sid="DTR_b1")]


def test_disconnected_ends_everything() -> None:
    m = manager(BOB_B1)
    handle = published(m)
    m.publish_data_track(name="pending", now=T0)
    m.subscribe("DTR_b1", now=T0)
    m.drain()
    m.disconnected(now=T0 + 1)
    assert m.drain() == [
        DataTrackUnpublished(
            pub_handle=1,
            sid="DTR_me1",
            reason=UnpublishReason.DISCONNECTED,
            message="the session ended",
        ),
        DataTrackPublishFailed(
            pub_handle=2, name="pending", reason=PR.DISCONNECTED, message="the session ended"
        ),
        DataTrackSubscriptionEnded(
            sid="DTR_b1", publisher_identity="bob", reason=SR.DISCONNECTED, active=False
        ),
        RemoteDataTrackUnpublished(publisher_identity="bob", sid="DTR_b1"),
    ]
    assert m.get_timer() is None and m.phase is SessionPhase.CLOSED
    m.disconnected(now=T0 + 2)  # idempotent
    with pytest.raises(PushFrameError):
        m.try_push(handle, DataTrackFrame(b"x"), now=T0)
    with pytest.raises(LocalProtocolError, match="CLOSED"):
        m.publish_data_track(name="x", now=T0)
    # Anything still arriving changes nothing and reports nothing.
    m.participants_updated([BOB_B1], now=T0)
    accept(m, 2, "DTR_2", "pending")
    m.unpublish_response_received(tpb.UnpublishDataTrackResponse(), now=T0)
    m.subscriber_handles_received(handles(DTR_b1=1), now=T0)
    assert m.request_response_received(refusal(2, 2), now=T0) is True
    unpublish_refusal = spb.RequestResponse(
        unpublish_data_track=tpb.UnpublishDataTrackRequest(pub_handle=1)
    )
    assert m.request_response_received(unpublish_refusal, now=T0) is True
    assert m.drain() == [] and m.remote_tracks == ()


def test_session_verbs_in_the_wrong_phase() -> None:
    m = DataTrackManager()
    with pytest.raises(LocalProtocolError, match="resumed"):
        m.resumed(now=T0)
    with pytest.raises(LocalProtocolError, match="reconnecting"):
        m.reconnecting(full=True, now=T0)
    m.joined("me", [], now=T0)
    with pytest.raises(LocalProtocolError, match="joined"):
        m.joined("me", [], now=T0)
    m.reconnecting(full=True, now=T0)
    with pytest.raises(LocalProtocolError, match="a full reconnect is already under way"):
        m.reconnecting(full=False, now=T0)
    with pytest.raises(LocalProtocolError, match="local_identity must be str"):
        m.joined(None, [], now=T0)  # type: ignore[arg-type]
    m.disconnected(now=T0)
    assert m.phase is SessionPhase.CLOSED


def test_receive_signal_dispatches_every_data_track_message() -> None:
    m = manager()
    m.publish_data_track(name="a", now=T0)
    m.publish_data_track(name="b", now=T0)
    m.drain()
    messages = [
        spb.SignalResponse(update=ppb.ParticipantUpdate(participants=[BOB_B1])),
        spb.SignalResponse(
            publish_data_track_response=tpb.PublishDataTrackResponse(info=dt("DTR_a", 1, "a"))
        ),
        spb.SignalResponse(request_response=refusal(2, PR.DUPLICATE_NAME.value, "dup")),
        spb.SignalResponse(
            unpublish_data_track_response=tpb.UnpublishDataTrackResponse(info=dt("DTR_a", 1, "a"))
        ),
        spb.SignalResponse(data_track_subscriber_handles=handles(DTR_b1=3)),
        spb.SignalResponse(pong_resp=spb.Pong()),
    ]
    for message in messages:
        m.receive_signal(message, now=T0)
    assert [type(e).__name__ for e in m.drain()] == [
        "RemoteDataTrackPublished",
        "DataTrackPublished",
        "DataTrackPublishFailed",
        "DataTrackUnpublished",
        "DataTrackSignalIgnored",  # a handle for a track we did not subscribe to
        "SendDataTrackSignal",  # which is withdrawn
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"publish_timeout": 0},
        {"subscribe_timeout": float("inf")},
        {"publish_timeout": True},
        {"max_queued_frames": 0},
        {"max_queued_bytes": -1},
        {"max_partial_frames": 0},
        {"max_packets_per_frame": 0},
        {"max_remembered_frames": 0},
        {"max_published_tracks": 0},
        {"max_remote_tracks": 0},
        {"mtu": 40},
        {"mtu": 1.5},
    ],
)
def test_constructor_bounds_are_checked(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DataTrackManager(**kwargs)  # type: ignore[arg-type]


def test_frame_value_checks() -> None:
    assert DataTrackFrame(bytearray(b"ab")).payload == b"ab"
    assert repr(DataTrackFrame(b"abc", 5)) == "DataTrackFrame(payload=<3 B>, user_timestamp=5)"
    with pytest.raises(TypeError):
        DataTrackFrame("text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DataTrackFrame(b"", -1)
    with pytest.raises(TypeError):
        DataTrackFrame(b"", True)


def test_a_reassigned_track_without_subscription_sends_nothing() -> None:
    m = manager(BOB_B1)
    m.drain()
    m.participants_updated([person("bob", [dt("DTR_b5", 1, "cursor")], sid="PA_bob2")], now=T0)
    out = m.drain()
    assert sent(out) == [] and [type(e) for e in out] == [RemoteDataTrackSidChanged]
    assert m.subscription_state("DTR_b5") is SubscriptionState.NONE


def test_our_rejoin_finding_a_reassigned_track_subscribes_once() -> None:
    m = manager(BOB_B1)
    subscribed(m)
    m.reconnecting(full=True, now=T0)
    m.joined("me", [person("bob", [dt("DTR_b7", 1, "cursor")], sid="PA_bob2")], now=T0)
    out = m.drain()
    assert [type(e) for e in events(out)] == [RemoteDataTrackSidChanged]
    assert sent(out) == [bytes.fromhex("aa 01 0c 0a 0a 0a 06") + b"DTR_b7" + b"\x10\x01"]


def test_a_subscription_timing_out_during_a_full_reconnect_sends_nothing() -> None:
    m = manager(BOB_B1)
    m.subscribe("DTR_b1", now=T0)
    m.drain()
    m.reconnecting(full=True, now=T0 + 1)
    m.handle_timer(T0 + 10)
    assert m.drain() == [
        DataTrackSubscriptionEnded(
            sid="DTR_b1", publisher_identity="bob", reason=SR.TIMEOUT, active=False
        )
    ]
    m.joined("me", [BOB_B1], now=T0 + 11)
    assert m.drain() == []  # nothing left to resubscribe


def test_the_official_schema_reads_our_requests_as_meant() -> None:
    """livekit-protocol (the conformance oracle) parses what the manager sends."""
    from livekit.protocol import models as lk_models
    from livekit.protocol import rtc as lk_rtc

    m = manager(BOB_B1)
    m.publish_data_track(name="telemetry", now=T0, uses_e2ee=True)
    accept(m, 1, "DTR_me1", "telemetry")
    m.subscribe("DTR_b1", now=T0)
    m.subscriber_handles_received(handles(DTR_b1=5), now=T0)
    m.unsubscribe("DTR_b1", now=T0)
    m.unpublish_data_track(1, now=T0)
    requests = [lk_rtc.SignalRequest.FromString(data) for data in sent(m.drain())]
    assert [r.WhichOneof("message") for r in requests] == [
        "publish_data_track_request",
        "update_data_subscription",
        "update_data_subscription",
        "unpublish_data_track_request",
    ]
    publish = requests[0].publish_data_track_request
    assert (publish.pub_handle, publish.name) == (1, "telemetry")
    assert publish.encryption == lk_models.Encryption.GCM
    updates = [r.update_data_subscription.updates[0] for r in requests[1:3]]
    assert [(u.track_sid, u.subscribe) for u in updates] == [("DTR_b1", True), ("DTR_b1", False)]
    assert requests[3].unpublish_data_track_request.pub_handle == 1
    (entry,) = [
        lk_rtc.PublishDataTrackResponse.FromString(e.SerializeToString())
        for e in manager_with_one_track().sync_state_publish_data_tracks()
    ]
    assert (entry.info.pub_handle, entry.info.sid, entry.info.name) == (1, "DTR_me1", "telemetry")


def manager_with_one_track() -> DataTrackManager:
    m = manager()
    published(m)
    return m


# -- subscription permissions and withdrawing ------------------------------------------------


def permission(sid: str, *, allowed: bool) -> tpb.SubscriptionPermissionUpdate:
    return tpb.SubscriptionPermissionUpdate(
        participant_sid="PA_bob", track_sid=sid, allowed=allowed
    )


def test_a_refused_subscription_ends_at_once_and_is_not_withdrawn() -> None:
    m = manager(BOB_B1, subscribe_timeout=3.0)
    m.subscribe("DTR_b1", now=T0)
    assert sent(m.drain()) == [SUBSCRIBE_B1]
    m.receive_signal(
        spb.SignalResponse(subscription_permission_update=permission("DTR_b1", allowed=False)),
        now=T0,
    )
    (ended,) = m.drain()  # nothing is sent: the server keeps it wanted (see the docstring)
    assert ended == DataTrackSubscriptionEnded(
        sid="DTR_b1", publisher_identity="bob", reason=SR.NOT_ALLOWED, active=False
    )
    assert isinstance(ended, DataTrackSubscriptionEnded) and ended.is_error
    error = ended.exception()
    assert (error.reason, error.message) == (
        SR.NOT_ALLOWED,
        "The publisher does not allow this participant to subscribe to the track",
    )
    assert m.get_timer() is None
    # Subscribing again asks again; if the server stays silent, the timeout says why.
    m.subscribe("DTR_b1", now=T0 + 1)
    assert sent(m.drain()) == [SUBSCRIBE_B1]
    m.handle_timer(T0 + 4)
    assert m.drain() == [
        DataTrackSubscriptionEnded(
            sid="DTR_b1", publisher_identity="bob", reason=SR.NOT_ALLOWED, active=False
        )
    ]
    # Allowed later: the server grants the wish it kept, and the next subscription takes it.
    assert m.subscription_permission_changed(permission("DTR_b1", allowed=True), now=T0 + 5)
    m.subscribe("DTR_b1", now=T0 + 5)
    m.subscriber_handles_received(handles(DTR_b1=4), now=T0 + 5)
    assert events(m.drain()) == [
        DataTrackSubscribed(sid="DTR_b1", publisher_identity="bob", sub_handle=4)
    ]


def test_a_permission_revoked_while_active_ends_the_subscription() -> None:
    m = manager(BOB_B1)
    subscribed(m)
    assert m.subscription_permission_changed(permission("DTR_b1", allowed=False), now=T0)
    assert m.drain() == [
        DataTrackSubscriptionEnded(
            sid="DTR_b1", publisher_identity="bob", reason=SR.NOT_ALLOWED, active=True
        )
    ]
    assert m.subscriber_handle("DTR_b1") is None


def test_permission_updates_about_other_tracks_change_nothing() -> None:
    m = manager(BOB_B1)
    m.drain()
    assert not m.subscription_permission_changed(permission("TR_media", allowed=False), now=T0)
    assert m.subscription_permission_changed(permission("DTR_b1", allowed=False), now=T0)
    assert m.drain() == []  # known, but not subscribed
    m.disconnected(now=T0)
    m.drain()
    assert not m.subscription_permission_changed(permission("DTR_b1", allowed=False), now=T0)


def test_cancelling_before_the_handle_sends_nothing_then_withdraws_a_late_grant() -> None:
    m = manager(BOB_B1)
    m.subscribe("DTR_b1", now=T0)
    m.drain()
    m.unsubscribe("DTR_b1", now=T0)
    assert sent(m.drain()) == []
    m.subscriber_handles_received(handles(DTR_b1=2), now=T0)
    assert sent(m.drain()) == [UNSUBSCRIBE_B1]
    m.subscribe("DTR_b1", now=T0)  # wanted again before the server dropped it: routed now
    out = m.drain()
    assert sent(out) == [SUBSCRIBE_B1]
    assert events(out) == [
        DataTrackSubscribed(sid="DTR_b1", publisher_identity="bob", sub_handle=2)
    ]
    m.subscriber_handles_received(handles(DTR_b1=2), now=T0)  # the same: nothing changes
    assert m.drain() == []


def session(sid: str, version: int, state: int, *tracks: tpb.DataTrackInfo) -> ppb.ParticipantInfo:
    info = person("bob", tracks, sid=sid, version=version)
    info.state = state  # type: ignore[assignment]
    return info


def test_a_new_session_not_yet_republished_keeps_the_publishers_tracks() -> None:
    joined_, active = ppb.ParticipantInfo.JOINED, ppb.ParticipantInfo.ACTIVE
    m = manager(person("bob", [dt("DTR_b1", 1, "cursor")], sid="PA_bob1"))
    subscribed(m)
    m.participants_updated([session("PA_bob2", 1, joined_)], now=T0)
    assert m.drain() == []  # JOINED, nothing republished yet: still there
    m.participants_updated([session("PA_bob2", 2, joined_, dt("DTR_b2", 1, "cursor"))], now=T0)
    out = m.drain()
    assert [type(o).__name__ for o in out] == ["RemoteDataTrackSidChanged", "SendDataTrackSignal"]
    m.participants_updated([session("PA_bob3", 1, joined_)], now=T0)
    m.participants_updated([session("PA_bob3", 2, active)], now=T0)  # active without it
    assert [type(o).__name__ for o in m.drain()] == [
        "DataTrackSubscriptionEnded",
        "RemoteDataTrackUnpublished",
    ]


def test_resubscribing_to_a_track_the_server_still_routes_takes_its_handle_at_once() -> None:
    """livekit-server 1.13.5 may take our withdrawal of an unsolicited handle and a new
    subscribe together as no change, and send no new snapshot: the handle it routes counts."""
    m = manager(BOB_B1, subscribe_timeout=3.0)
    m.subscriber_handles_received(handles(DTR_b1=21), now=T0)  # granted, not wanted now
    assert sent(m.drain()) == [UNSUBSCRIBE_B1]
    m.subscribe("DTR_b1", now=T0)
    out = m.drain()
    assert sent(out) == [SUBSCRIBE_B1]
    assert events(out) == [
        DataTrackSubscribed(sid="DTR_b1", publisher_identity="bob", sub_handle=21)
    ]
    assert m.get_timer() is None  # active: no subscribe timeout left
    (packet,) = frame_packets(21, b"still routed")
    m.receive_packet(packet, now=T0)
    assert [type(o).__name__ for o in m.drain()] == ["DataTrackFrameReceived"]
    # If the server did take them apart, its snapshots say so and routing follows.
    m.subscriber_handles_received(handles(), now=T0 + 1)
    m.subscriber_handles_received(handles(DTR_b1=22), now=T0 + 1)
    assert m.subscriber_handle("DTR_b1") == 22
    m.handle_timer(T0 + 10)
    assert m.subscription_state("DTR_b1") is SubscriptionState.ACTIVE


def test_unsubscribing_then_subscribing_again_keeps_the_routed_handle() -> None:
    m = manager(BOB_B1)
    subscribed(m)  # handle 5
    m.unsubscribe("DTR_b1", now=T0)
    m.subscribe("DTR_b1", now=T0)  # the server may see no change: no new snapshot
    out = m.drain()
    assert sent(out) == [UNSUBSCRIBE_B1, SUBSCRIBE_B1]
    assert events(out)[-1] == DataTrackSubscribed(
        sid="DTR_b1", publisher_identity="bob", sub_handle=5
    )
    m.unsubscribe("DTR_b1", now=T0)
    m.drain()
    m.subscriber_handles_received(handles(DTR_b1=5), now=T0)  # not processed yet: no repeat
    assert sent(m.drain()) == []
    m.subscriber_handles_received(handles(), now=T0)  # processed: nothing routed any more
    m.subscribe("DTR_b1", now=T0)
    assert [type(o).__name__ for o in m.drain()] == ["SendDataTrackSignal"]  # waits
