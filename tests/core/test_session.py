"""Deterministic tests of the signaling session: join, participants, keepalive, leave, faults."""

from __future__ import annotations

import base64
import gzip
from urllib.parse import parse_qs, urlsplit

import pytest
from fake_sfu import (
    T0,
    TOKEN,
    UNIX0,
    URL,
    FakeSfu,
    drain,
    joined_connection,
    new_connection,
    participant,
)

from lkproto import (
    Channel,
    Config,
    ConnectionState,
    DisconnectReason,
    LeaveAction,
    LocalProtocolError,
    ParticipantState,
    PeerTarget,
    ReconnectMode,
    RemoteProtocolError,
    SdpType,
)
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb


def request(data: bytes) -> spb.SignalRequest:
    return spb.SignalRequest.FromString(data)


# -- join ------------------------------------------------------------------------------------


def test_connect_opens_rtc_v1_with_wrapped_join_request_and_bearer_token() -> None:
    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0, attributes={"role": "agent"}, metadata="m")
    (open_cmd,) = conn.commands_to_send()
    assert isinstance(open_cmd, cmd.OpenSignal)
    assert open_cmd.headers == (("Authorization", f"Bearer {TOKEN}"),)
    assert TOKEN not in open_cmd.url and TOKEN not in repr(open_cmd)
    parts = urlsplit(open_cmd.url)
    assert (parts.scheme, parts.netloc, parts.path) == ("wss", "sfu.example", "/rtc/v1")
    (param,) = parse_qs(parts.query)["join_request"]
    wrapped = spb.WrappedJoinRequest.FromString(base64.urlsafe_b64decode(param))
    payload = wrapped.join_request
    if wrapped.compression == spb.WrappedJoinRequest.GZIP:
        payload = gzip.decompress(payload)
    join = spb.JoinRequest.FromString(payload)
    assert join.client_info.sdk == 9  # PYTHON
    assert join.client_info.protocol == 17
    assert join.client_info.version == "0.1.0"
    assert join.client_info.other_sdks == "lkproto:0.1.0"
    assert dict(join.participant_attributes) == {"role": "agent"}
    assert join.metadata == "m"
    assert not join.HasField("publisher_offer")
    assert conn.state is ConnectionState.CONNECTING
    assert conn.get_timer() == T0 + 5.0  # join timeout


def test_http_url_becomes_ws_and_a_path_prefix_is_kept() -> None:
    conn = new_connection()
    conn.connect("http://host:7880/prefix/", TOKEN, now=T0)
    (open_cmd,) = conn.commands_to_send()
    assert isinstance(open_cmd, cmd.OpenSignal)
    assert open_cmd.url.startswith("ws://host:7880/prefix/rtc/v1?join_request=")


def test_404_on_v1_falls_back_to_rtc_with_query_parameters_but_no_token() -> None:
    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0, attributes={"a": "b"})
    conn.commands_to_send()
    conn.signal_connect_failed(status=404, now=T0 + 1)
    (open_cmd,) = conn.commands_to_send()
    assert isinstance(open_cmd, cmd.OpenSignal)
    assert open_cmd.single_peer_connection is False
    parts = urlsplit(open_cmd.url)
    assert parts.path == "/rtc"
    query = parse_qs(parts.query)
    assert query["sdk"] == ["python"] and query["protocol"] == ["17"]
    assert query["auto_subscribe"] == ["0"]
    assert base64.urlsafe_b64decode(query["attributes"][0]) == b'{"a":"b"}'
    assert "access_token" not in query and TOKEN not in open_cmd.url
    assert conn.get_timer() == T0 + 1 + 5.0


def test_401_fails_the_join_with_a_clear_reason() -> None:
    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0)
    conn.commands_to_send()
    conn.signal_connect_failed(status=401, now=T0 + 1)
    cmds, evs = drain(conn)
    assert evs == [
        ev.Disconnected(
            reason=DisconnectReason.JOIN_FAILURE,
            message="the server refused the token (HTTP 401)",
        )
    ]
    assert cmds == [cmd.CloseSignal(code=1000)]
    assert conn.state is ConnectionState.CLOSED


def test_join_response_emits_joined_and_creates_publisher_with_its_three_channels() -> None:
    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0)
    conn.commands_to_send()
    bob = participant("bob", attributes={"x": "1"})
    conn.receive_signal(FakeSfu.join(others=[bob]), now=T0 + 0.5)
    cmds, evs = drain(conn)
    (joined,) = evs
    assert isinstance(joined, ev.Joined)
    assert joined.local_participant.identity == "me"
    assert [p.identity for p in joined.participants] == ["bob"]
    assert joined.participants[0].attributes == {"x": "1"}
    assert joined.server_info.version == "1.13.5"
    assert joined.ice_servers[0].urls == ("stun:127.0.0.1:3478",)
    assert joined.room.name == "room"
    assert cmds == [
        cmd.CreatePeerConnection(target=PeerTarget.PUBLISHER, ice_servers=joined.ice_servers),
        cmd.CreateDataChannel(channel=Channel.RELIABLE, ordered=True, max_retransmits=None),
        cmd.CreateDataChannel(channel=Channel.LOSSY, ordered=False, max_retransmits=0),
        cmd.CreateDataChannel(channel=Channel.DATA_TRACK, ordered=False, max_retransmits=0),
        cmd.CreateOffer(target=PeerTarget.PUBLISHER, offer_id=1),  # the offer queue's first
    ]
    assert conn.state is ConnectionState.CONNECTED
    assert conn.get_timer() == T0 + 0.5 + 5  # first ping


def test_embedded_offer_is_created_before_the_socket_opens() -> None:
    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0, embed_publisher_offer=True)
    cmds = conn.commands_to_send()
    assert [type(c) for c in cmds] == [
        cmd.CreatePeerConnection,
        cmd.CreateDataChannel,
        cmd.CreateDataChannel,
        cmd.CreateDataChannel,
        cmd.CreateOffer,
    ]
    conn.local_description_created(PeerTarget.PUBLISHER, "v=0 offer", SdpType.OFFER, now=T0 + 0.1)
    (open_cmd,) = conn.commands_to_send()
    assert isinstance(open_cmd, cmd.OpenSignal)
    param = parse_qs(urlsplit(open_cmd.url).query)["join_request"][0]
    wrapped = spb.WrappedJoinRequest.FromString(base64.urlsafe_b64decode(param))
    payload = wrapped.join_request
    if wrapped.compression == spb.WrappedJoinRequest.GZIP:
        payload = gzip.decompress(payload)
    assert spb.JoinRequest.FromString(payload).publisher_offer == spb.SessionDescription(
        type="offer", sdp="v=0 offer"
    )
    conn.receive_signal(FakeSfu.join(), now=T0 + 0.2)
    cmds, _ = drain(conn)
    assert not [c for c in cmds if isinstance(c, cmd.CreatePeerConnection)]


def test_first_message_must_be_join() -> None:
    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0)
    conn.commands_to_send()
    conn.receive_signal(FakeSfu.update(participant("bob")), now=T0 + 0.1)
    cmds, evs = drain(conn)
    (disc,) = evs
    assert isinstance(disc, ev.Disconnected)
    assert disc.reason is DisconnectReason.JOIN_FAILURE
    assert isinstance(disc.exc, RemoteProtocolError)
    assert disc.message == "expected a join response first, got update"
    assert cmds == [cmd.CloseSignal(code=1002)]


def test_leave_instead_of_join_fails_with_the_servers_reason() -> None:
    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0)
    conn.commands_to_send()
    conn.receive_signal(FakeSfu.leave(reason=2), now=T0 + 0.1)
    _, evs = drain(conn)
    assert evs == [
        ev.Disconnected(
            reason=DisconnectReason.DUPLICATE_IDENTITY, message="the server refused the join"
        )
    ]


def test_join_timeout_fires_on_the_injected_clock_and_tolerates_early_calls() -> None:
    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0)
    conn.commands_to_send()
    conn.handle_timer(T0 + 4.999)
    assert drain(conn) == ([], [])
    conn.handle_timer(T0 + 5.0)
    _, evs = drain(conn)
    assert evs == [
        ev.Disconnected(reason=DisconnectReason.JOIN_FAILURE, message="no join response within 5s")
    ]
    conn.handle_timer(T0 + 6.0)  # repeated: nothing more
    assert drain(conn) == ([], [])
    assert conn.get_timer() is None


# -- negotiation ---------------------------------------------------------------------------------


def test_offer_answer_and_trickle_are_relayed() -> None:
    conn = joined_connection()
    conn.local_description_created(PeerTarget.PUBLISHER, "v=0 pub", SdpType.OFFER, now=T0 + 1)
    conn.ice_candidate_gathered(PeerTarget.PUBLISHER, '{"candidate":"c1"}', now=T0 + 1)
    cmds = conn.commands_to_send()
    assert [request(c.data) for c in cmds if isinstance(c, cmd.SendSignal)] == [
        spb.SignalRequest(offer=spb.SessionDescription(type="offer", sdp="v=0 pub")),
        spb.SignalRequest(trickle=spb.TrickleRequest(candidateInit='{"candidate":"c1"}', target=0)),
    ]
    conn.receive_signal(
        FakeSfu.response(answer=spb.SessionDescription(type="answer", sdp="v=0 ans")), now=T0 + 2
    )
    conn.receive_signal(
        FakeSfu.response(trickle=spb.TrickleRequest(candidateInit='{"candidate":"s1"}', target=1)),
        now=T0 + 2,
    )
    assert conn.commands_to_send() == [
        cmd.SetRemoteDescription(
            target=PeerTarget.PUBLISHER, sdp="v=0 ans", sdp_type=SdpType.ANSWER
        ),
        cmd.AddIceCandidate(target=PeerTarget.PUBLISHER, candidate_init='{"candidate":"s1"}'),
    ]


def test_dual_pc_server_offer_creates_the_subscriber_and_answers() -> None:
    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0)
    conn.signal_connect_failed(status=404, now=T0)
    conn.commands_to_send()
    conn.receive_signal(FakeSfu.join(), now=T0 + 0.1)
    drain(conn)
    conn.receive_signal(
        FakeSfu.response(offer=spb.SessionDescription(type="offer", sdp="v=0 sub")), now=T0 + 0.2
    )
    cmds = conn.commands_to_send()
    assert cmds[1:] == [
        cmd.SetRemoteDescription(
            target=PeerTarget.SUBSCRIBER, sdp="v=0 sub", sdp_type=SdpType.OFFER
        ),
        cmd.CreateAnswer(target=PeerTarget.SUBSCRIBER),
    ]
    assert isinstance(cmds[0], cmd.CreatePeerConnection) and cmds[0].target is PeerTarget.SUBSCRIBER
    conn.local_description_created(PeerTarget.SUBSCRIBER, "v=0 a", SdpType.ANSWER, now=T0 + 0.3)
    (send,) = conn.commands_to_send()
    assert isinstance(send, cmd.SendSignal)
    assert request(send.data) == spb.SignalRequest(
        answer=spb.SessionDescription(type="answer", sdp="v=0 a")
    )


# -- participants -------------------------------------------------------------------------------


def test_participant_join_change_and_leave() -> None:
    conn = joined_connection()
    conn.receive_signal(
        FakeSfu.update(participant("bob", state=1, attributes={"a": "1", "b": "2"})), now=T0 + 1
    )
    _, evs = drain(conn)
    assert [type(e) for e in evs] == [ev.ParticipantConnected]
    assert conn.remote_participants["bob"].state is ParticipantState.JOINED

    bob2 = participant("bob", version=2, name="Bob", metadata="md", attributes={"a": "9", "c": "3"})
    conn.receive_signal(FakeSfu.update(bob2), now=T0 + 2)
    _, evs = drain(conn)
    assert [type(e) for e in evs] == [
        ev.ParticipantUpdated,
        ev.ParticipantNameChanged,
        ev.ParticipantMetadataChanged,
        ev.ParticipantAttributesChanged,
        ev.ParticipantActive,
    ]
    attrs_event = evs[3]
    assert isinstance(attrs_event, ev.ParticipantAttributesChanged)
    assert dict(attrs_event.changed) == {"a": "9", "b": "", "c": "3"}
    name_event = evs[1]
    assert isinstance(name_event, ev.ParticipantNameChanged) and name_event.old_name == ""

    conn.receive_signal(FakeSfu.update(participant("bob", version=1, name="stale")), now=T0 + 3)
    assert drain(conn) == ([], [])  # lower version for the same SID is ignored
    assert conn.remote_participants["bob"].name == "Bob"

    gone = participant("bob", state=3, version=3)
    gone.disconnect_reason = 4  # type: ignore[assignment]
    conn.receive_signal(FakeSfu.update(gone), now=T0 + 4)
    _, evs = drain(conn)
    (left,) = evs
    assert isinstance(left, ev.ParticipantDisconnected)
    assert left.reason is DisconnectReason.PARTICIPANT_REMOVED
    assert "bob" not in conn.remote_participants


def test_rejoin_with_new_sid_disconnects_the_old_session_first() -> None:
    conn = joined_connection(others=[participant("bob", "PA_old")])
    conn.receive_signal(FakeSfu.update(participant("bob", "PA_new")), now=T0 + 1)
    _, evs = drain(conn)
    assert [type(e) for e in evs] == [
        ev.ParticipantDisconnected,
        ev.ParticipantConnected,
        ev.ParticipantActive,
    ]
    assert conn.remote_participants["bob"].sid == "PA_new"


def test_disconnect_update_without_identity_is_mapped_by_sid() -> None:
    conn = joined_connection(others=[participant("bob", "PA_b")])
    info = ppb.ParticipantInfo(sid="PA_b", state=3)  # type: ignore[arg-type]
    conn.receive_signal(FakeSfu.update(info), now=T0 + 1)
    _, evs = drain(conn)
    assert [type(e) for e in evs] == [ev.ParticipantDisconnected]


def test_local_participant_updates_report_attribute_diffs_and_client_protocol() -> None:
    conn = joined_connection()
    me = participant("me", "PA_me", version=5, attributes={"k": "v"}, client_protocol=2)
    conn.receive_signal(FakeSfu.update(me), now=T0 + 1)
    _, evs = drain(conn)
    changed = [e for e in evs if isinstance(e, ev.ParticipantAttributesChanged)]
    assert len(changed) == 1 and dict(changed[0].changed) == {"k": "v"}
    assert conn.local_participant is not None
    assert conn.local_participant.client_protocol == 2


def test_room_update_speakers_quality_and_token_refresh() -> None:
    conn = joined_connection()
    conn.receive_signal(
        FakeSfu.response(
            room_update=ppb.RoomUpdate(room=ppb.Room(sid="RM_1", name="room", metadata="new"))
        ),
        now=T0 + 1,
    )
    conn.receive_signal(
        FakeSfu.response(
            speakers_changed=ppb.SpeakersChanged(
                speakers=[dpb.SpeakerInfo(sid="PA_b", level=0.5, active=True)]
            )
        ),
        now=T0 + 1,
    )
    conn.receive_signal(
        FakeSfu.response(
            connection_quality=ppb.ConnectionQualityUpdate(
                updates=[ppb.ConnectionQualityInfo(participant_sid="PA_b", quality=2, score=4.5)]  # type: ignore[arg-type]
            )
        ),
        now=T0 + 1,
    )
    conn.receive_signal(FakeSfu.response(refresh_token="NEW-SECRET-TOKEN"), now=T0 + 1)
    _, evs = drain(conn)
    assert evs[:4] == [
        ev.RoomUpdated(room=conn.room),
        ev.RoomMetadataChanged(old_metadata="", metadata="new"),
        ev.ActiveSpeakersChanged(speakers=(ev.SpeakerLevel(sid="PA_b", level=0.5, active=True),)),
        ev.ConnectionQualityChanged(participant_sid="PA_b", quality=2, score=4.5),
    ]
    refreshed = evs[4]
    assert isinstance(refreshed, ev.TokenRefreshed) and refreshed.token == "NEW-SECRET-TOKEN"
    assert "NEW-SECRET-TOKEN" not in repr(refreshed)


# -- keepalive ----------------------------------------------------------------------------------


def test_ping_on_interval_with_wall_clock_ms_and_rtt_from_pong() -> None:
    conn = joined_connection()  # joined at T0 + 0.1, ping_interval 5, ping_timeout 15
    assert conn.get_timer() == pytest.approx(T0 + 5.1)
    conn.handle_timer(T0 + 5.1)
    (ping,) = conn.commands_to_send()
    assert isinstance(ping, cmd.SendSignal)
    sent_ms = UNIX0 + 5100
    assert request(ping.data) == spb.SignalRequest(ping_req=spb.Ping(timestamp=sent_ms, rtt=0))
    conn.receive_signal(
        FakeSfu.response(pong_resp=spb.Pong(last_ping_timestamp=sent_ms, timestamp=1)),
        now=T0 + 5.142,
    )
    assert conn.rtt_ms == 42
    conn.handle_timer(T0 + 10.1)
    (ping2,) = conn.commands_to_send()
    assert isinstance(ping2, cmd.SendSignal)
    assert request(ping2.data).ping_req.rtt == 42


def test_ping_timeout_ends_the_session_when_the_server_goes_quiet() -> None:
    conn = joined_connection(Config(reconnect_attempts=0))
    for t in (5.1, 10.1):
        conn.handle_timer(T0 + t)
    conn.commands_to_send()
    conn.handle_timer(T0 + 15.1)
    cmds, evs = drain(conn)
    assert isinstance(evs[-1], ev.Disconnected)
    assert evs[-1].reason is DisconnectReason.CONNECTION_TIMEOUT
    assert evs[-1].message == (
        "ping timeout: no signal message for 15s "
        "(reconnecting is off: Config.reconnect_attempts is 0)"
    )
    assert cmd.CloseSignal(code=1000) in cmds
    assert cmd.ClosePeerConnection(target=PeerTarget.PUBLISHER) in cmds


def test_any_signal_message_rearms_the_ping_timeout() -> None:
    conn = joined_connection()
    conn.receive_signal(FakeSfu.update(participant("bob")), now=T0 + 14)
    conn.handle_timer(T0 + 15.1)
    _, evs = drain(conn)
    assert not [e for e in evs if isinstance(e, ev.Disconnected)]


def test_zero_ping_settings_disable_keepalive() -> None:
    conn = joined_connection(ping_interval=0, ping_timeout=0)
    assert conn.get_timer() is None


# -- leave ----------------------------------------------------------------------------------------


def test_client_leave_sends_leave_then_closes() -> None:
    conn = joined_connection()
    conn.close(now=T0 + 1)
    cmds, evs = drain(conn)
    assert isinstance(cmds[0], cmd.SendSignal)
    assert request(cmds[0].data) == spb.SignalRequest(leave=spb.LeaveRequest(reason=1, action=0))
    assert cmds[1:] == [
        cmd.CloseSignal(code=1000),
        cmd.ClosePeerConnection(target=PeerTarget.PUBLISHER),
    ]
    assert evs == [
        ev.Disconnected(
            reason=DisconnectReason.CLIENT_INITIATED, message="closed by the application"
        )
    ]
    conn.close(now=T0 + 2)
    assert drain(conn) == ([], [])


@pytest.mark.parametrize(
    ("action", "expected"),
    [(1, LeaveAction.RESUME), (2, LeaveAction.RECONNECT)],
)
def test_server_leave_asking_to_reconnect_is_surfaced(action: int, expected: LeaveAction) -> None:
    conn = joined_connection()
    conn.peer_state_changed(PeerTarget.PUBLISHER, "connected", now=T0 + 0.5)
    conn.receive_signal(FakeSfu.leave(reason=8, action=action), now=T0 + 1)
    _, evs = drain(conn)
    mode = ReconnectMode.RESUME if expected is LeaveAction.RESUME else ReconnectMode.FULL
    what = "a resume" if expected is LeaveAction.RESUME else "a full reconnect"
    assert evs[0] == ev.Reconnecting(
        mode=mode, reason=DisconnectReason.MIGRATION, message=f"the server asked for {what}"
    )
    assert conn.state is ConnectionState.RECONNECTING
    assert conn.reconnect_mode is mode
    assert conn.get_timer() == T0 + 1  # D.7: the first attempt is immediate


def test_server_leave_disconnect_ends_the_session() -> None:
    conn = joined_connection()
    conn.receive_signal(FakeSfu.leave(reason=5, action=0), now=T0 + 1)
    cmds, evs = drain(conn)
    assert evs == [
        ev.Disconnected(
            reason=DisconnectReason.ROOM_DELETED, message="the server ended the session"
        )
    ]
    assert cmds == [
        cmd.CloseSignal(code=1000),
        cmd.ClosePeerConnection(target=PeerTarget.PUBLISHER),
    ]


# -- metadata -----------------------------------------------------------------------------------


def test_set_attributes_correlates_request_response_by_id() -> None:
    conn = joined_connection()
    rid = conn.set_attributes({"a": "1", "gone": ""}, now=T0 + 1)
    assert rid == 1
    (send,) = conn.commands_to_send()
    assert isinstance(send, cmd.SendSignal)
    assert request(send.data) == spb.SignalRequest(
        update_metadata=spb.UpdateParticipantMetadata(
            request_id=1, name="", metadata="", attributes={"a": "1", "gone": ""}
        )
    )
    assert conn.set_name("New", now=T0 + 1) == 2
    conn.commands_to_send()
    conn.receive_signal(
        FakeSfu.response(request_response=spb.RequestResponse(request_id=1, reason=0)), now=T0 + 2
    )
    conn.receive_signal(
        FakeSfu.response(
            request_response=spb.RequestResponse(request_id=2, reason=2, message="no permission")
        ),  # type: ignore[arg-type]
        now=T0 + 2,
    )
    _, evs = drain(conn)
    assert evs == [
        ev.MetadataUpdateCompleted(request_id=1),
        ev.MetadataUpdateFailed(request_id=2, reason=2, message="no permission"),
    ]


def test_metadata_request_times_out_after_five_seconds() -> None:
    conn = joined_connection(ping_interval=0, ping_timeout=0)
    rid = conn.set_metadata("x", now=T0 + 1)
    assert conn.get_timer() == T0 + 6
    conn.handle_timer(T0 + 6)
    _, evs = drain(conn)
    assert evs == [
        ev.MetadataUpdateFailed(request_id=rid, reason=-1, message="no response within 5s")
    ]
    conn.receive_signal(
        FakeSfu.response(request_response=spb.RequestResponse(request_id=rid)), now=T0 + 7
    )
    assert drain(conn) == ([], [])  # a late response resolves nothing twice


def test_pending_metadata_requests_are_bounded() -> None:
    conn = joined_connection(Config(max_pending_metadata_requests=1))
    conn.set_metadata("a", now=T0)
    with pytest.raises(LocalProtocolError, match="already pending"):
        conn.set_metadata("b", now=T0)


# -- faults and misuse ---------------------------------------------------------------------------


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff", b"\x0a\x05abc", b"\x08"])
def test_malformed_signal_never_raises_and_ends_the_session(garbage: bytes) -> None:
    conn = joined_connection()
    conn.receive_signal(garbage, now=T0 + 1)
    cmds, evs = drain(conn)
    (disc,) = evs
    assert isinstance(disc, ev.Disconnected)
    assert isinstance(disc.exc, RemoteProtocolError)
    assert disc.message.startswith(f"malformed SignalResponse ({len(garbage)} bytes)")
    assert cmds == [
        cmd.CloseSignal(code=1002),
        cmd.ClosePeerConnection(target=PeerTarget.PUBLISHER),
    ]
    conn.receive_signal(FakeSfu.update(participant("x")), now=T0 + 2)  # after close: ignored
    assert drain(conn) == ([], [])


def test_verbs_in_the_wrong_state_raise_naming_the_call_and_state() -> None:
    conn = new_connection()
    with pytest.raises(LocalProtocolError) as info:
        conn.publish_data(b"x", now=T0)
    assert str(info.value) == (
        "publish_data() is not allowed while the connection is NEW "
        "(allowed: CONNECTED, RECONNECTING)"
    )
    assert (info.value.call, info.value.state) == ("publish_data", "NEW")
    conn.connect(URL, TOKEN, now=T0)
    with pytest.raises(
        LocalProtocolError, match=r"connect\(\) is not allowed while the connection is CONNECTING"
    ):
        conn.connect(URL, TOKEN, now=T0)


def test_bad_url_and_empty_token_are_refused_locally() -> None:
    with pytest.raises(LocalProtocolError, match="not a ws://"):
        new_connection().connect("ftp://x", TOKEN, now=T0)
    with pytest.raises(LocalProtocolError, match="token is empty"):
        new_connection().connect(URL, "", now=T0)


def test_signal_closed_after_join_ends_with_signal_close_when_not_reconnecting() -> None:
    conn = joined_connection(Config(reconnect_attempts=0))
    conn.signal_closed(now=T0 + 1, code=1006)
    cmds, evs = drain(conn)
    assert evs == [
        ev.Disconnected(
            reason=DisconnectReason.SIGNAL_CLOSE,
            message="the signal connection closed (code 1006) "
            "(reconnecting is off: Config.reconnect_attempts is 0)",
        )
    ]
    assert cmds == [cmd.ClosePeerConnection(target=PeerTarget.PUBLISHER)]


def test_unknown_signal_variants_are_ignored() -> None:
    conn = joined_connection()
    conn.receive_signal(FakeSfu.response(pong=123), now=T0 + 1)
    assert drain(conn) == ([], [])
    assert conn.state is ConnectionState.CONNECTED
