"""The session's less travelled paths: every input in odd states, and odd server data."""

from __future__ import annotations

import pytest
from fake_sfu import T0, TOKEN, URL, FakeSfu, drain, joined_connection, new_connection, participant

from lkproto import (
    Channel,
    Config,
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


def test_every_input_after_close_is_ignored() -> None:
    conn = joined_connection()
    conn.close(now=T0 + 1)
    drain(conn)
    conn.signal_connect_failed(status=500, now=T0 + 2)
    conn.receive_signal(FakeSfu.update(participant("x")), now=T0 + 2)
    conn.receive_data_packet(FakeSfu.user_packet(b"x"), channel=Channel.RELIABLE, now=T0 + 2)
    conn.local_description_created(PeerTarget.PUBLISHER, "v=0", SdpType.OFFER, now=T0 + 2)
    conn.ice_candidate_gathered(PeerTarget.PUBLISHER, "{}", now=T0 + 2)
    conn.peer_state_changed(PeerTarget.PUBLISHER, "failed", now=T0 + 2)
    conn.data_channel_opened(Channel.RELIABLE, now=T0 + 2)
    conn.command_failed(cmd.CloseSignal(), "boom", now=T0 + 2)
    conn.signal_closed(now=T0 + 2)
    conn.handle_timer(T0 + 100)
    assert drain(conn) == ([], [])
    assert conn.state is ConnectionState.CLOSED


def test_views_after_join() -> None:
    conn = joined_connection()
    assert conn.server_info.version == "1.13.5"
    assert conn.single_peer_connection is True
    assert conn.room.sid == "RM_1"
    assert conn.data_receive_states == {}
    conn.receive_data_packet(
        FakeSfu.user_packet(b"x", sequence=7), channel=Channel.RELIABLE, now=T0
    )
    assert conn.data_receive_states == {"PA_alice": 7}


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (None, "connection refused", "could not reach the server: connection refused"),
        (None, "", "could not reach the server"),
        (500, "", "the signal connection failed with HTTP 500"),
        (500, "boom", "the signal connection failed with HTTP 500: boom"),
        (401, "invalid token: x", "the server refused the token (HTTP 401): invalid token: x"),
    ],
)
def test_signal_connect_failures(status: int | None, message: str, expected: str) -> None:
    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0)
    conn.commands_to_send()
    conn.signal_connect_failed(status=status, now=T0, message=message)
    _, evs = drain(conn)
    assert evs == [ev.Disconnected(reason=DisconnectReason.JOIN_FAILURE, message=expected)]


def test_404_fallback_drops_the_embedded_offer_and_reoffers_after_join() -> None:
    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0, embed_publisher_offer=True)
    conn.commands_to_send()
    conn.local_description_created(PeerTarget.PUBLISHER, "v=0 o", SdpType.OFFER, now=T0)
    conn.commands_to_send()
    conn.signal_connect_failed(status=404, now=T0)
    (open_cmd,) = conn.commands_to_send()
    assert isinstance(open_cmd, cmd.OpenSignal) and "/rtc?" in open_cmd.url
    conn.ice_candidate_gathered(PeerTarget.PUBLISHER, '{"candidate":"c"}', now=T0)
    (trickle,) = conn.commands_to_send()  # no longer embedding: candidates are trickled
    assert isinstance(trickle, cmd.SendSignal)


def test_candidates_during_an_embedded_offer_join_are_not_trickled() -> None:
    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0, embed_publisher_offer=True)
    conn.commands_to_send()
    conn.ice_candidate_gathered(PeerTarget.PUBLISHER, '{"candidate":"c"}', now=T0)
    conn.ice_candidate_gathered(PeerTarget.PUBLISHER, None, now=T0)
    assert conn.commands_to_send() == []


def test_join_without_local_participant_is_a_protocol_error() -> None:
    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0)
    conn.commands_to_send()
    conn.receive_signal(spb.SignalResponse(join=spb.JoinResponse()).SerializeToString(), now=T0)
    _, evs = drain(conn)
    (disc,) = evs
    assert isinstance(disc, ev.Disconnected)
    assert (disc.reason, disc.message) == (
        DisconnectReason.JOIN_FAILURE,
        "join response without a local participant",
    )


def test_empty_trickle_is_ignored() -> None:
    conn = joined_connection()
    conn.receive_signal(FakeSfu.response(trickle=spb.TrickleRequest()), now=T0)
    assert drain(conn) == ([], [])


def test_updates_without_identity_for_unknown_sids_are_ignored_and_known_sids_are_mapped() -> None:
    conn = joined_connection(others=[participant("bob", "PA_b")])
    conn.receive_signal(FakeSfu.update(ppb.ParticipantInfo(sid="PA_unknown")), now=T0)
    assert drain(conn) == ([], [])
    conn.receive_signal(
        FakeSfu.update(ppb.ParticipantInfo(sid="PA_b", state=2, version=9, name="B")), now=T0
    )  # type: ignore[arg-type]
    _, evs = drain(conn)
    assert conn.remote_participants["bob"].name == "B"
    assert conn.remote_participants["bob"].identity == "bob"
    assert [type(e) for e in evs][:2] == [ev.ParticipantUpdated, ev.ParticipantNameChanged]


def test_identical_update_emits_nothing_and_stale_local_update_is_ignored() -> None:
    conn = joined_connection(others=[participant("bob")])
    conn.receive_signal(FakeSfu.update(participant("bob")), now=T0)
    assert drain(conn) == ([], [])
    conn.receive_signal(FakeSfu.update(participant("me", "PA_me", version=3, name="three")), now=T0)
    drain(conn)
    conn.receive_signal(FakeSfu.update(participant("me", "PA_me", version=2, name="two")), now=T0)
    assert drain(conn) == ([], [])
    assert conn.local_participant is not None and conn.local_participant.name == "three"


def test_disconnect_for_an_unknown_participant_is_ignored() -> None:
    conn = joined_connection()
    conn.receive_signal(FakeSfu.update(participant("nobody", state=3)), now=T0)
    assert drain(conn) == ([], [])


def test_permission_change_is_reported_with_the_old_permissions() -> None:
    conn = joined_connection(others=[participant("bob")])
    old = conn.remote_participants["bob"].permissions
    conn.receive_signal(
        FakeSfu.update(participant("bob", version=2, can_publish_data=False)), now=T0
    )
    _, evs = drain(conn)
    (perm,) = [e for e in evs if isinstance(e, ev.ParticipantPermissionsChanged)]
    assert perm.old_permissions == old and perm.participant.permissions.can_publish_data is False


def test_failed_peer_connection_ends_the_session_with_a_leave_when_not_reconnecting() -> None:
    conn = joined_connection(Config(reconnect_attempts=0))
    conn.peer_state_changed(PeerTarget.PUBLISHER, "connected", now=T0)
    assert drain(conn) == ([], [])
    conn.peer_state_changed(PeerTarget.PUBLISHER, "failed", now=T0)
    cmds, evs = drain(conn)
    assert isinstance(cmds[0], cmd.SendSignal)
    assert spb.SignalRequest.FromString(cmds[0].data).leave.reason == DisconnectReason.MEDIA_FAILURE
    assert evs == [
        ev.Disconnected(
            reason=DisconnectReason.MEDIA_FAILURE,
            message="the publisher peer connection failed "
            "(reconnecting is off: Config.reconnect_attempts is 0)",
        )
    ]


def test_command_failures() -> None:
    conn = joined_connection(Config(reconnect_attempts=0))
    conn.command_failed(cmd.SendDataPacket(channel=Channel.RELIABLE, data=b""), "closed", now=T0)
    assert drain(conn) == ([], [])
    conn.command_failed(cmd.CreateOffer(target=PeerTarget.PUBLISHER), "no codecs", now=T0)
    cmds, evs = drain(conn)
    assert evs == [
        ev.Disconnected(
            reason=DisconnectReason.UNKNOWN_REASON,
            message="CreateOffer failed: no codecs "
            "(reconnecting is off: Config.reconnect_attempts is 0)",
        )
    ]
    assert isinstance(cmds[0], cmd.SendSignal)  # leave first, since the signal still works


def test_signal_closed_before_join_fails_the_join() -> None:
    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0)
    conn.commands_to_send()
    conn.signal_closed(now=T0, code=1011)
    cmds, evs = drain(conn)
    assert cmds == []
    assert evs == [
        ev.Disconnected(
            reason=DisconnectReason.JOIN_FAILURE,
            message="the signal closed before the join (code 1011)",
        )
    ]


def test_the_close_reason_is_kept_in_the_message() -> None:
    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0)
    conn.commands_to_send()
    conn.signal_closed(now=T0, code=1009, reason="signal message too large")
    assert drain(conn) == (
        [],
        [
            ev.Disconnected(
                reason=DisconnectReason.JOIN_FAILURE,
                message="the signal closed before the join (code 1009: signal message too large)",
            )
        ],
    )
    conn = joined_connection()
    conn.signal_closed(now=T0, code=1001, reason="going away")
    _, evs = drain(conn)
    assert [e.message for e in evs if isinstance(e, ev.Reconnecting)] == [
        "the signal connection closed (code 1001: going away)"
    ]


def test_publish_data_rejects_non_bytes() -> None:
    conn = joined_connection()
    with pytest.raises(LocalProtocolError, match="payload must be bytes"):
        conn.publish_data("text", now=T0)  # type: ignore[arg-type]


def test_close_before_join_sends_no_leave() -> None:
    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0)
    conn.commands_to_send()
    conn.close(now=T0)
    cmds, _ = drain(conn)
    assert cmds == [cmd.CloseSignal(code=1000)]


def test_join_skips_other_participants_without_identity() -> None:
    conn = joined_connection(others=[ppb.ParticipantInfo(sid="PA_x"), participant("bob")])
    assert list(conn.remote_participants) == ["bob"]


def test_second_server_offer_reuses_the_subscriber_and_trickles_to_it() -> None:
    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0, single_peer_connection=False)
    conn.receive_signal(FakeSfu.join(), now=T0)
    drain(conn)
    offer = FakeSfu.response(offer=spb.SessionDescription(type="offer", sdp="v=0"))
    conn.receive_signal(offer, now=T0)
    conn.commands_to_send()
    conn.receive_signal(offer, now=T0)
    conn.receive_signal(
        FakeSfu.response(trickle=spb.TrickleRequest(candidateInit="{}", target=1)),
        now=T0,  # type: ignore[arg-type]
    )
    assert conn.commands_to_send() == [
        cmd.SetRemoteDescription(target=PeerTarget.SUBSCRIBER, sdp="v=0", sdp_type=SdpType.OFFER),
        cmd.CreateAnswer(target=PeerTarget.SUBSCRIBER),
        cmd.AddIceCandidate(target=PeerTarget.SUBSCRIBER, candidate_init="{}"),
    ]


def test_signal_messages_after_we_gave_up_the_signal_are_ignored() -> None:
    conn = joined_connection()
    conn.peer_state_changed(PeerTarget.PUBLISHER, "connected", now=T0)
    conn.receive_signal(FakeSfu.leave(reason=8, action=1), now=T0)
    conn.receive_signal(FakeSfu.leave(reason=8, action=2), now=T0)  # from the closed signal
    _, evs = drain(conn)
    assert [e.mode for e in evs if isinstance(e, ev.Reconnecting)] == [ReconnectMode.RESUME]
    assert conn.state is ConnectionState.RECONNECTING


def test_room_update_without_metadata_change_and_pong_without_timestamp() -> None:
    conn = joined_connection()
    conn.receive_signal(
        FakeSfu.response(room_update=ppb.RoomUpdate(room=ppb.Room(name="room"))), now=T0
    )
    conn.receive_signal(FakeSfu.response(pong_resp=spb.Pong(timestamp=5)), now=T0)
    _, evs = drain(conn)
    assert [type(e) for e in evs] == [ev.RoomUpdated]
    assert conn.rtt_ms == 0


def test_a_command_failing_during_the_join_ends_the_session_with_its_message() -> None:
    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0)
    conn.commands_to_send()
    conn.command_failed(cmd.OpenSignal(url=URL, token=TOKEN), "no route", now=T0 + 1)
    assert drain(conn) == (
        [cmd.CloseSignal(code=1000)],  # no leave first: the signal it would go on failed
        [
            ev.Disconnected(
                reason=DisconnectReason.UNKNOWN_REASON, message="OpenSignal failed: no route"
            )
        ],
    )
    assert conn.state is ConnectionState.CLOSED

    conn = new_connection()
    conn.connect(URL, TOKEN, now=T0)
    conn.commands_to_send()
    conn.command_failed(cmd.CreateOffer(target=PeerTarget.PUBLISHER), "no codecs", now=T0 + 1)
    cmds, evs = drain(conn)
    assert evs == [
        ev.Disconnected(
            reason=DisconnectReason.UNKNOWN_REASON, message="CreateOffer failed: no codecs"
        )
    ]
    assert isinstance(cmds[0], cmd.SendSignal)  # a peer command failed: the leave goes first
    assert (
        spb.SignalRequest.FromString(cmds[0].data).leave.reason == DisconnectReason.UNKNOWN_REASON
    )
    assert cmds[1:] == [cmd.CloseSignal(code=1000)]
