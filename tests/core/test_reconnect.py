"""Resume and full reconnect (protocol-reference D.7, D.8; A.7 for the replay), byte-exact.

Every test drives one `Connection` with literal times: T0 is the join, the interruption comes
at T0 + 10. The fake peer connection "connects" when a test says so.
"""

from __future__ import annotations

import base64
import gzip
import itertools
from urllib.parse import parse_qs, urlsplit

import pytest
from fake_sfu import TOKEN, UNIX0, URL, FakeSfu, drain, participant
from hypothesis import given
from hypothesis import strategies as st

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
    SignalCodec,
    SimulateScenario,
    StreamKind,
)
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import signal_pb2 as spb
from lkproto.rpc import RpcError

T0 = 100.0
T1 = T0 + 10.0  # the interruption
PUB = PeerTarget.PUBLISHER
E = RpcError.ErrorCode


def connection(config: Config | None = None, *, draws: list[float] | None = None) -> Connection:
    ids = (f"id-{i}" for i in itertools.count(1))
    randoms = iter(draws or [])
    return Connection(
        config,
        now=T0,
        unix_time_ms=UNIX0,
        id_factory=lambda: next(ids),
        random=lambda: next(randoms),
    )


def joined(
    config: Config | None = None, *, draws: list[float] | None = None, single_pc: bool = True
) -> Connection:
    """Joined as "me" (PA_me) with bob in the room, offer/answer done, PC connected, channels
    open, everything drained."""
    conn = connection(config, draws=draws)
    conn.connect(URL, TOKEN, now=T0, metadata="m0", single_peer_connection=single_pc)
    conn.receive_signal(FakeSfu.join(others=[participant("bob", client_protocol=2)]), now=T0)
    conn.local_description_created(PUB, "v=0 our-offer", SdpType.OFFER, now=T0)
    conn.receive_signal(
        FakeSfu.response(answer=spb.SessionDescription(type="answer", sdp="v=0 their-answer")),
        now=T0,
    )
    conn.peer_state_changed(PUB, "connected", now=T0)
    conn.data_channel_opened(Channel.RELIABLE, now=T0)
    conn.data_channel_opened(Channel.LOSSY, now=T0)
    drain(conn)
    return conn


def join_request(command: cmd.Command) -> spb.JoinRequest:
    assert isinstance(command, cmd.OpenSignal)
    query = parse_qs(urlsplit(command.url).query)
    wrapped = spb.WrappedJoinRequest.FromString(base64.urlsafe_b64decode(query["join_request"][0]))
    payload = wrapped.join_request
    if wrapped.compression == spb.WrappedJoinRequest.GZIP:
        payload = gzip.decompress(payload)
    return spb.JoinRequest.FromString(payload)


def reconnect_response(
    last_message_seq: int = 0, *, resume: int = 0, version: str | None = "1.13.6"
) -> bytes:
    response = spb.ReconnectResponse(last_message_seq=last_message_seq)
    response.client_configuration.resume_connection = resume  # type: ignore[assignment]
    if version is not None:
        response.server_info.version = version
    return FakeSfu.response(reconnect=response)


def sequences(cmds: list[cmd.Command]) -> list[int]:
    return [
        dpb.DataPacket.FromString(c.data).sequence
        for c in cmds
        if isinstance(c, cmd.SendDataPacket) and c.channel is Channel.RELIABLE
    ]


def payloads(cmds: list[cmd.Command]) -> list[bytes]:
    return [
        dpb.DataPacket.FromString(c.data).user.payload
        for c in cmds
        if isinstance(c, cmd.SendDataPacket)
    ]


def signals(cmds: list[cmd.Command]) -> list[spb.SignalRequest]:
    return [spb.SignalRequest.FromString(c.data) for c in cmds if isinstance(c, cmd.SendSignal)]


# -- resume -------------------------------------------------------------------------------------


def test_signal_loss_resumes_with_the_sid_then_syncs_and_replays_what_the_server_lacks() -> None:
    conn = joined()
    conn.receive_data_packet(
        FakeSfu.user_packet(b"in", sender="bob", sid="PA_bob", sequence=7),
        channel=Channel.RELIABLE,
        now=T0 + 1,
    )
    for n in range(1, 6):
        conn.publish_data(b"p%d" % n, now=T0 + 1)
    drain(conn)
    conn.signal_closed(now=T1, code=1006)
    cmds, evs = drain(conn)
    assert cmds == []
    assert evs == [
        ev.Reconnecting(
            mode=ReconnectMode.RESUME,
            reason=DisconnectReason.SIGNAL_CLOSE,
            message="the signal connection closed (code 1006)",
        )
    ]
    assert conn.state is ConnectionState.RECONNECTING
    assert conn.reconnect_mode is ReconnectMode.RESUME
    assert conn.get_timer() == T1  # the first attempt is immediate
    conn.publish_data(b"p6", now=T1)  # during the outage: goes out now, the channel is up
    cmds, _ = drain(conn)
    assert payloads(cmds) == [b"p6"]

    conn.handle_timer(T1)
    cmds, evs = drain(conn)
    assert len(cmds) == 1 and evs == []
    request = join_request(cmds[0])
    assert (request.reconnect, request.participant_sid, request.reconnect_reason) == (
        True,
        "PA_me",
        1,  # RR_SIGNAL_DISCONNECTED
    )
    assert request.metadata == "m0"
    assert conn.get_timer() == T1 + 5.0  # the attempt's own join timeout

    conn.receive_signal(reconnect_response(last_message_seq=3), now=T1 + 0.25)
    cmds, evs = drain(conn)
    sync = spb.SignalRequest.FromString(cmds[0].data)  # type: ignore[union-attr]
    assert sync == spb.SignalRequest(
        sync_state=spb.SyncState(
            offer=spb.SessionDescription(type="offer", sdp="v=0 our-offer"),
            answer=spb.SessionDescription(type="answer", sdp="v=0 their-answer"),
            datachannel_receive_states=[
                spb.DataChannelReceiveState(publisher_sid="PA_bob", last_seq=7)
            ],
        )
    )
    # A.7: everything after last_message_seq, in order, holding back nothing newer.
    assert sequences(cmds[1:]) == [4, 5, 6]
    assert payloads(cmds[1:]) == [b"p4", b"p5", b"p6"]
    assert evs == [ev.Reconnected(mode=ReconnectMode.RESUME, attempts=1, duration=0.25)]
    assert conn.state is ConnectionState.CONNECTED
    assert conn.reconnect_mode is None
    assert conn.server_info.version == "1.13.6"
    assert conn.local_participant is not None and conn.local_participant.sid == "PA_me"
    conn.publish_data(b"p7", now=T1 + 1)
    assert sequences(drain(conn)[0]) == [7]


def test_a_resume_keeps_calls_and_streams_in_flight() -> None:
    conn = joined()
    conn.register_stream_topic(StreamKind.TEXT, "chat")
    request_id = conn.perform_rpc(destination_identity="bob", method="m", payload="x", now=T0 + 9)
    header = dpb.DataPacket(
        participant_identity="bob",
        participant_sid="PA_bob",
        sequence=1,
        stream_header=dpb.DataStream.Header(
            stream_id="s1",
            topic="chat",
            mime_type="text/plain",
            text_header=dpb.DataStream.TextHeader(),
        ),
    )
    conn.receive_data_packet(header.SerializeToString(), channel=Channel.RELIABLE, now=T0 + 1)
    drain(conn)
    conn.signal_closed(now=T1, code=1006)
    conn.handle_timer(T1)
    conn.receive_signal(reconnect_response(last_message_seq=1), now=T1 + 0.1)
    _, evs = drain(conn)
    assert not [e for e in evs if isinstance(e, ev.RpcFailed | ev.StreamFailed)]
    ack = dpb.DataPacket(
        participant_identity="bob",
        participant_sid="PA_bob",
        sequence=2,
        rpc_ack=dpb.RpcAck(request_id=request_id),
    )
    response = dpb.DataPacket(
        participant_identity="bob",
        participant_sid="PA_bob",
        sequence=3,
        rpc_response=dpb.RpcResponse(request_id=request_id, payload="done"),
    )
    for packet in (ack, response):
        conn.receive_data_packet(packet.SerializeToString(), channel=Channel.RELIABLE, now=T1 + 1)
    _, evs = drain(conn)
    assert evs == [ev.RpcSucceeded(request_id=request_id, payload="done")]
    assert "s1" in [key[1] for key in conn._streams._open]  # still open, still readable


def test_a_leave_read_after_the_peer_closed_ends_the_session_without_a_reconnecting() -> None:
    # The server writes a leave, then closes our peer connection; on a busy machine the
    # peer's "closed" is read first. The leave arrives within the grace: the user sees the
    # session end, not a reconnect that never happened.
    conn = joined()
    conn.peer_state_changed(PUB, "closed", now=T1)
    assert drain(conn) == ([], [])
    conn.receive_signal(FakeSfu.leave(reason=int(DisconnectReason.SERVER_SHUTDOWN)), now=T1 + 0.2)
    _, evs = drain(conn)
    assert evs == [
        ev.Disconnected(
            reason=DisconnectReason.SERVER_SHUTDOWN, message="the server ended the session"
        )
    ]
    assert conn.state is ConnectionState.CLOSED


def test_a_second_interruption_during_the_grace_ends_the_wait_for_reconnecting() -> None:
    conn = joined()
    conn.peer_state_changed(PUB, "failed", now=T1)
    assert drain(conn)[1] == []  # held for the grace
    conn.signal_closed(now=T1 + 0.1, code=1006)  # ignored in the grace: still held
    assert drain(conn)[1] == []
    conn.peer_state_changed(PUB, "closed", now=T1 + 0.2)  # interrupted again: the wait is over
    _, evs = drain(conn)
    assert evs == [
        ev.Reconnecting(
            mode=ReconnectMode.RESUME,
            reason=DisconnectReason.MEDIA_FAILURE,
            message="the publisher peer connection failed",
        )
    ]
    conn.handle_timer(conn.get_timer() or 0.0)
    assert [e for e in drain(conn)[1] if isinstance(e, ev.Reconnecting)] == []  # only once


def test_a_dead_peer_connection_needs_an_ice_restart_and_waits_for_it() -> None:
    conn = joined()
    conn.peer_state_changed(PUB, "failed", now=T1)
    cmds, evs = drain(conn)
    assert cmds == []  # the signal still works: kept until the attempt replaces it
    assert evs == []  # `Reconnecting` waits for the attempt: a leave may end the session first
    assert conn.state is ConnectionState.RECONNECTING
    assert conn.get_timer() == T1 + 0.25  # time for a leave the server may have sent
    conn.handle_timer(T1 + 0.25)
    cmds, evs = drain(conn)
    assert evs == [
        ev.Reconnecting(
            mode=ReconnectMode.RESUME,
            reason=DisconnectReason.MEDIA_FAILURE,
            message="the publisher peer connection failed",
        )
    ]
    assert cmds[0] == cmd.CloseSignal(code=1000)
    assert join_request(cmds[1]).reconnect_reason == 2  # RR_PUBLISHER_FAILED
    response = spb.ReconnectResponse(ice_servers=[spb.ICEServer(urls=["stun:10.0.0.9:3478"])])
    conn.receive_signal(FakeSfu.response(reconnect=response), now=T1 + 0.5)
    cmds, evs = drain(conn)
    assert signals(cmds)[0].WhichOneof("message") == "sync_state"
    assert cmds[1:] == [cmd.CreateOffer(target=PUB, ice_restart=True)]
    assert evs == []
    assert conn.get_timer() == T1 + 0.5 + 5.0  # the keepalive comes first; the PC wait is 15 s
    # The signal works again while the peer connection recovers: updates apply as usual.
    conn.receive_signal(FakeSfu.update(participant("carol")), now=T1 + 0.55)
    assert [type(e) for e in drain(conn)[1]] == [ev.ParticipantConnected, ev.ParticipantActive]
    assert conn.server_info.version == "1.13.5"  # the response carried none
    conn.local_description_created(PUB, "v=0 restart", SdpType.OFFER, now=T1 + 0.6)
    assert signals(drain(conn)[0]) == [
        spb.SignalRequest(offer=spb.SessionDescription(type="offer", sdp="v=0 restart"))
    ]
    conn.peer_state_changed(PUB, "connected", now=T1 + 2)
    _, evs = drain(conn)
    assert evs == [ev.Reconnected(mode=ReconnectMode.RESUME, attempts=1, duration=2.0)]
    conn.signal_closed(now=T1 + 3, code=1006)
    conn.handle_timer(T1 + 3)
    drain(conn)
    assert conn._peers.ice_servers[0].urls == ("stun:10.0.0.9:3478",)


def test_a_peer_connection_that_does_not_recover_turns_the_resume_into_a_full_reconnect() -> None:
    conn = joined(Config(peer_connection_timeout=3.0))
    conn.peer_state_changed(PUB, "failed", now=T1)
    conn.handle_timer(T1 + 0.25)
    conn.receive_signal(reconnect_response(), now=T1 + 1)
    drain(conn)
    conn.handle_timer(T1 + 4)
    cmds, evs = drain(conn)
    assert cmds[:2] == [cmd.CloseSignal(code=1000), cmd.ClosePeerConnection(target=PUB)]
    assert not join_request(cmds[2]).reconnect  # the rejoin goes out at once
    assert evs[0] == ev.Reconnecting(
        mode=ReconnectMode.FULL,
        reason=DisconnectReason.MEDIA_FAILURE,
        message="the peer connection did not recover within 3s",
    )
    assert conn.reconnect_mode is ReconnectMode.FULL
    assert conn.get_timer() == T1 + 4 + 5  # the rejoin's join timeout


def test_an_adapter_that_cannot_restart_ice_gets_a_full_reconnect() -> None:
    conn = joined()
    conn.signal_closed(now=T1, code=1006)
    conn.peer_state_changed(PUB, "failed", now=T1)  # while waiting to retry: still a resume
    conn.handle_timer(T1)
    conn.receive_signal(reconnect_response(), now=T1 + 1)
    drain(conn)
    conn.command_failed(cmd.CreateOffer(target=PUB, ice_restart=True), "no ICE restart", now=T1 + 1)
    _, evs = drain(conn)
    assert [type(e) for e in evs][:2] == [ev.Reconnecting, ev.ParticipantDisconnected]
    assert conn.reconnect_mode is ReconnectMode.FULL


def test_the_server_forbidding_resumes_means_a_full_reconnect() -> None:
    conn = joined()
    conn.signal_closed(now=T1, code=1006)
    conn.handle_timer(T1)
    drain(conn)
    conn.receive_signal(reconnect_response(resume=1, version=None), now=T1 + 1)  # DISABLED
    _, evs = drain(conn)
    assert evs[0] == ev.Reconnecting(
        mode=ReconnectMode.FULL,
        reason=DisconnectReason.SIGNAL_CLOSE,
        message="the server does not allow resuming",
    )


def test_resuming_off_in_config_always_rejoins() -> None:
    conn = joined(Config(resume=False))
    conn.signal_closed(now=T1, code=1006)
    _, evs = drain(conn)
    assert evs[0].mode is ReconnectMode.FULL  # type: ignore[union-attr]


def test_a_ping_timeout_closes_the_quiet_signal_and_resumes() -> None:
    conn = joined()
    conn.handle_timer(T0 + 5)
    conn.handle_timer(T0 + 10)
    drain(conn)
    conn.handle_timer(T0 + 15)
    cmds, evs = drain(conn)
    # The ping due at the same moment is not sent on the signal we just gave up.
    assert cmds[0] == cmd.CloseSignal(code=1000)
    assert join_request(cmds[1]).reconnect and len(cmds) == 2  # the first attempt, at once
    assert evs == [
        ev.Reconnecting(
            mode=ReconnectMode.RESUME,
            reason=DisconnectReason.CONNECTION_TIMEOUT,
            message="ping timeout: no signal message for 15s",
        )
    ]


def test_a_dual_peer_connection_resume_uses_the_query_parameters() -> None:
    conn = joined(single_pc=False)
    offer = spb.SessionDescription(type="offer", sdp="v=0 sub-offer")
    conn.receive_signal(FakeSfu.response(offer=offer), now=T0 + 1)
    conn.local_description_created(
        PeerTarget.SUBSCRIBER, "v=0 sub-answer", SdpType.ANSWER, now=T0 + 1
    )
    conn.peer_state_changed(PeerTarget.SUBSCRIBER, "connected", now=T0 + 1)
    drain(conn)
    conn.signal_closed(now=T1, code=1006)
    conn.handle_timer(T1)
    (opened,), _ = drain(conn)
    assert isinstance(opened, cmd.OpenSignal)
    query = parse_qs(urlsplit(opened.url).query)
    assert (query["reconnect"], query["sid"], query["reconnect_reason"]) == (
        ["1"],
        ["PA_me"],
        ["1"],
    )
    conn.receive_signal(reconnect_response(), now=T1 + 1)
    cmds, evs = drain(conn)
    assert signals(cmds)[0].sync_state.offer.sdp == "v=0 sub-offer"
    assert signals(cmds)[0].sync_state.answer.sdp == "v=0 sub-answer"
    assert isinstance(evs[-1], ev.Reconnected)


# -- attempts, backoff, giving up ------------------------------------------------------------------


def test_failed_attempts_back_off_with_jitter_then_give_up() -> None:
    conn = joined(Config(reconnect_attempts=5), draws=[0.5, 0.25, 1.0])
    conn.signal_closed(now=T1, code=1006)
    drain(conn)
    times = []
    now = T1
    for _ in range(5):
        now = conn.get_timer()  # type: ignore[assignment]
        times.append(round(now - T1, 6))
        conn.handle_timer(now)
        (opened,), _ = drain(conn)
        assert isinstance(opened, cmd.OpenSignal)
        conn.signal_connect_failed(status=None, now=now, message="connection refused")
    # 0, 0.3, 1.2 + 0.5, 2.7 + 0.25, 4.8 + 1.0 after each failure (JS DefaultReconnectPolicy)
    assert times == [0.0, 0.3, 0.3 + 1.7, 0.3 + 1.7 + 2.95, 0.3 + 1.7 + 2.95 + 5.8]
    cmds, evs = drain(conn)
    assert evs[-1] == ev.Disconnected(
        reason=DisconnectReason.SIGNAL_CLOSE,
        message="gave up reconnecting after 5 attempts: "
        "reconnect attempt failed (no answer): connection refused",
    )
    assert cmd.ClosePeerConnection(target=PUB) in cmds
    assert conn.state is ConnectionState.CLOSED and conn.get_timer() is None


def test_a_silent_attempt_times_out_and_the_next_one_follows() -> None:
    conn = joined()
    conn.signal_closed(now=T1, code=1006)
    conn.handle_timer(T1)
    drain(conn)
    conn.handle_timer(T1 + 5)
    cmds, _ = drain(conn)
    assert cmds == [cmd.CloseSignal(code=1000)]
    assert conn.get_timer() == T1 + 5 + 0.3
    conn.handle_timer(T1 + 5.3)
    assert join_request(drain(conn)[0][0]).reconnect


def test_a_rejected_token_stops_reconnecting_at_once() -> None:
    conn = joined()
    conn.signal_closed(now=T1, code=1006)
    conn.handle_timer(T1)
    drain(conn)
    conn.signal_connect_failed(status=401, now=T1 + 0.1, message="invalid token: <redacted>")
    _, evs = drain(conn)
    assert evs[-1] == ev.Disconnected(
        reason=DisconnectReason.JOIN_FAILURE,
        message="the server refused the token while reconnecting (HTTP 401): "
        "invalid token: <redacted>",
    )


def test_a_forbidden_reconnect_without_a_reason_also_stops() -> None:
    conn = joined()
    conn.signal_closed(now=T1, code=1006)
    conn.handle_timer(T1)
    drain(conn)
    conn.signal_connect_failed(status=403, now=T1 + 0.1)
    _, evs = drain(conn)
    assert evs[-1] == ev.Disconnected(
        reason=DisconnectReason.JOIN_FAILURE,
        message="the server refused the token while reconnecting (HTTP 403)",
    )


def test_a_peer_connection_failing_while_joining_ends_the_join() -> None:
    conn = connection()
    conn.connect(URL, TOKEN, now=T0, embed_publisher_offer=True)
    drain(conn)
    conn.peer_state_changed(PUB, "failed", now=T0 + 1)
    _, evs = drain(conn)
    assert evs == [
        ev.Disconnected(
            reason=DisconnectReason.MEDIA_FAILURE, message="the publisher peer connection failed"
        )
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("reconnect_attempts", -1, "must not be negative"),
        ("reconnect_base_delay", -0.1, "non-negative number of seconds"),
        ("reconnect_jitter", float("inf"), "non-negative number of seconds"),
        ("peer_connection_timeout", 0, "must be positive"),
    ],
)
def test_reconnect_settings_are_checked(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Config(**{field: value})  # type: ignore[arg-type]


def test_sync_state_without_descriptions() -> None:
    assert SignalCodec.sync_state(offer=None, answer=None, receive_states={}) == (
        spb.SignalRequest(sync_state=spb.SyncState()).SerializeToString()
    )


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        (FakeSfu.response(pong_resp=spb.Pong(last_ping_timestamp=1)), "got pong_resp"),
        (FakeSfu.join(local=participant("me", "PA_me")), "got join"),
    ],
)
def test_an_unexpected_answer_fails_the_attempt(first: bytes, expected: str) -> None:
    conn = joined()
    conn.signal_closed(now=T1, code=1006)
    conn.handle_timer(T1)
    drain(conn)
    conn.receive_signal(first, now=T1 + 0.1)
    cmds, _ = drain(conn)
    assert cmds == [cmd.CloseSignal(code=1002)]
    assert conn._reconnector.message == f"expected a reconnect response, got {expected[4:]}"
    assert conn.get_timer() == T1 + 0.1 + 0.3


def test_signal_events_between_attempts_are_ignored() -> None:
    conn = joined()
    conn.signal_closed(now=T1, code=1006)
    drain(conn)
    conn.signal_closed(now=T1, code=1006)  # the old connection, reported twice
    conn.signal_connect_failed(status=500, now=T1)
    conn.command_failed(cmd.OpenSignal(url=URL, token=TOKEN), "late", now=T1)
    conn.command_failed(cmd.SendSignal(data=b""), "late", now=T1)
    conn.command_failed(cmd.ClosePeerConnection(target=PUB), "late", now=T1)
    conn.receive_signal(FakeSfu.update(participant("carol")), now=T1)
    assert drain(conn) == ([], [])
    assert conn.get_timer() == T1


def test_a_failed_open_during_an_attempt_fails_the_attempt() -> None:
    conn = joined(draws=[0.0])
    conn.signal_closed(now=T1, code=1006)
    conn.handle_timer(T1)
    drain(conn)
    conn.command_failed(cmd.OpenSignal(url=URL, token=TOKEN), "refused", now=T1)
    assert conn._reconnector.message == "OpenSignal failed: refused"
    conn.handle_timer(T1 + 0.3)
    conn.signal_closed(now=T1 + 0.4, code=1011)  # the second attempt's connection closes
    assert conn._reconnector.message == "the signal connection closed (code 1011)"
    assert conn.get_timer() == T1 + 0.4 + 1.2 + 0.0


def test_no_reconnect_attempts_ends_the_session_with_a_leave_when_the_signal_works() -> None:
    conn = joined(Config(reconnect_attempts=0))
    conn.receive_signal(FakeSfu.leave(reason=8, action=1), now=T1)
    cmds, evs = drain(conn)
    assert cmds[0] == cmd.SendSignal(
        data=spb.SignalRequest(leave=spb.LeaveRequest(reason=8)).SerializeToString()
    )
    assert isinstance(evs[-1], ev.Disconnected)


# -- full reconnect ------------------------------------------------------------------------------


def test_the_server_not_knowing_us_any_more_means_a_full_reconnect() -> None:
    conn = joined()
    conn.register_rpc_method("echo")
    conn.register_stream_topic(StreamKind.TEXT, "chat")
    request_id = conn.perform_rpc(destination_identity="bob", method="m", payload="x", now=T0 + 9)
    conn.publish_data(b"before", now=T0 + 1)
    stream_id = conn.open_stream(now=T0 + 1, kind=StreamKind.TEXT, topic="chat")
    drain(conn)
    conn.set_attributes({"role": "agent"}, now=T0 + 2)
    conn.receive_signal(
        FakeSfu.update(participant("me", "PA_me", version=2, attributes={"role": "agent"})),
        now=T0 + 2,
    )
    drain(conn)
    conn.signal_closed(now=T1, code=1006)
    conn.handle_timer(T1)
    drain(conn)
    # livekit-server after a restart (roommanager.go): it no longer has the participant.
    conn.receive_signal(FakeSfu.leave(reason=6, action=2), now=T1 + 0.1)  # STATE_MISMATCH
    cmds, evs = drain(conn)
    assert cmds == [cmd.CloseSignal(code=1000), cmd.ClosePeerConnection(target=PUB)]
    kinds = [type(e) for e in evs]
    assert kinds[0] is ev.Reconnecting
    assert evs[0] == ev.Reconnecting(
        mode=ReconnectMode.FULL,
        reason=DisconnectReason.STATE_MISMATCH,
        message="the server cannot resume this session",
    )
    assert ev.ParticipantDisconnected in kinds
    assert (
        ev.RpcFailed(request_id=request_id, error=RpcError.built_in(E.RECIPIENT_DISCONNECTED))
        in evs
    )
    with pytest.raises(LocalProtocolError, match="was ended by a full reconnect"):
        conn.write_stream(stream_id, "late", now=T1 + 0.1)
    assert conn.get_timer() == T1 + 0.1

    conn.publish_data(b"during", now=T1 + 0.1)  # queued for the new session
    conn.handle_timer(T1 + 0.1)
    (opened,), _ = drain(conn)
    request = join_request(opened)
    assert not request.reconnect and request.participant_sid == ""
    assert dict(request.participant_attributes) == {"role": "agent"}  # as we are now
    assert request.metadata == ""

    new_me = participant("me", "PA_me2")
    dave = participant("dave", "PA_dave", state=1)  # JOINED, not yet ACTIVE
    conn.receive_signal(
        FakeSfu.join(local=new_me, others=[participant("bob", "PA_bob2"), dave]), now=T1 + 0.3
    )
    cmds, evs = drain(conn)
    assert [type(c) for c in cmds] == [
        cmd.CreatePeerConnection,
        cmd.CreateDataChannel,
        cmd.CreateDataChannel,
        cmd.CreateDataChannel,
        cmd.CreateOffer,
    ]
    assert [type(e) for e in evs] == [
        ev.ParticipantUpdated,
        ev.ParticipantConnected,
        ev.ParticipantActive,
        ev.ParticipantConnected,
    ]
    assert conn.local_participant is not None and conn.local_participant.sid == "PA_me2"
    assert conn.state is ConnectionState.RECONNECTING
    conn.data_channel_opened(Channel.LOSSY, now=T1 + 0.9)
    assert drain(conn) == ([], [])
    conn.data_channel_opened(Channel.RELIABLE, now=T1 + 1.0)
    cmds, evs = drain(conn)
    assert sequences(cmds) == [1] and payloads(cmds) == [b"during"]  # a new sequence space
    # Two signal connections: the resume the server refused, then the rejoin.
    assert evs == [ev.Reconnected(mode=ReconnectMode.FULL, attempts=2, duration=1.0)]
    assert conn.state is ConnectionState.CONNECTED
    assert "echo" in conn.rpc_methods


def test_a_full_reconnect_whose_data_channel_never_opens_tries_again() -> None:
    conn = joined(Config(peer_connection_timeout=2.0), draws=[0.0])
    conn.receive_signal(FakeSfu.leave(reason=8, action=2), now=T1)
    conn.handle_timer(T1)
    drain(conn)
    conn.receive_signal(FakeSfu.join(local=participant("me", "PA_me2")), now=T1 + 0.1)
    drain(conn)
    conn.signal_closed(now=T1 + 0.5, code=1006)  # lost again while waiting: still full
    cmds, evs = drain(conn)
    assert cmds == [cmd.ClosePeerConnection(target=PUB)]
    assert evs == []
    assert conn.get_timer() == T1 + 0.5 + 0.3
    conn.handle_timer(T1 + 0.8)
    assert not join_request(drain(conn)[0][0]).reconnect
    conn.receive_signal(FakeSfu.join(local=participant("me", "PA_me3")), now=T1 + 0.9)
    drain(conn)
    conn.handle_timer(T1 + 2.9)
    cmds, _ = drain(conn)
    assert cmds[:2] == [cmd.CloseSignal(code=1000), cmd.ClosePeerConnection(target=PUB)]


def test_a_rejoin_as_the_same_participant_reports_no_local_change() -> None:
    conn = joined()
    conn.receive_signal(FakeSfu.leave(reason=8, action=2), now=T1)
    conn.handle_timer(T1)
    drain(conn)
    conn.receive_signal(FakeSfu.join(), now=T1 + 0.1)  # the very same local info
    _, evs = drain(conn)
    assert evs == []


def test_a_disconnect_answer_ends_the_session() -> None:
    conn = joined()
    conn.signal_closed(now=T1, code=1006)
    conn.handle_timer(T1)
    drain(conn)
    conn.receive_signal(FakeSfu.leave(reason=5, action=0), now=T1 + 0.1)
    _, evs = drain(conn)
    assert evs[-1] == ev.Disconnected(
        reason=DisconnectReason.ROOM_DELETED, message="the server ended the session"
    )


def test_a_resume_answer_during_an_attempt_retries_the_resume() -> None:
    conn = joined()
    conn.signal_closed(now=T1, code=1006)
    conn.handle_timer(T1)
    drain(conn)
    conn.receive_signal(FakeSfu.leave(reason=8, action=1), now=T1 + 0.1)
    cmds, evs = drain(conn)
    assert cmds == [cmd.CloseSignal(code=1000)] and evs == []
    assert conn.reconnect_mode is ReconnectMode.RESUME and conn.get_timer() == T1 + 0.1


# -- leaving while reconnecting ------------------------------------------------------------------


def test_close_while_an_attempt_is_opening_sends_no_leave() -> None:
    conn = joined()
    conn.signal_closed(now=T1, code=1006)
    conn.handle_timer(T1)
    drain(conn)
    conn.close(now=T1 + 0.1)
    cmds, evs = drain(conn)
    assert signals(cmds) == []
    assert evs[-1] == ev.Disconnected(
        reason=DisconnectReason.CLIENT_INITIATED, message="closed by the application"
    )


def test_close_while_the_peer_recovers_says_goodbye() -> None:
    conn = joined()
    conn.peer_state_changed(PUB, "failed", now=T1)
    conn.handle_timer(T1 + 0.25)
    conn.receive_signal(reconnect_response(), now=T1 + 0.3)
    drain(conn)
    conn.close(now=T1 + 0.2)
    cmds, _ = drain(conn)
    assert [s.WhichOneof("message") for s in signals(cmds)] == ["leave"]


# -- simulate_scenario ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "request_"),
    [
        (SimulateScenario.SPEAKER, spb.SimulateScenario(speaker_update=5)),
        (SimulateScenario.NODE_FAILURE, spb.SimulateScenario(node_failure=True)),
        (SimulateScenario.SERVER_LEAVE, spb.SimulateScenario(server_leave=True)),
        (SimulateScenario.MIGRATION, spb.SimulateScenario(migration=True)),
        (SimulateScenario.FORCE_TCP, spb.SimulateScenario(switch_candidate_protocol=1)),  # type: ignore[arg-type]
        (SimulateScenario.FORCE_TLS, spb.SimulateScenario(switch_candidate_protocol=2)),  # type: ignore[arg-type]
    ],
)
def test_server_side_scenarios_are_simulate_requests(
    scenario: SimulateScenario, request_: spb.SimulateScenario
) -> None:
    conn = joined()
    conn.simulate_scenario(scenario, now=T1)
    cmds, evs = drain(conn)
    assert cmds == [cmd.SendSignal(data=spb.SignalRequest(simulate=request_).SerializeToString())]
    assert evs == [] and conn.state is ConnectionState.CONNECTED


@pytest.mark.parametrize(
    ("scenario", "request_"),
    [
        (
            SimulateScenario.DISCONNECT_SIGNAL_ON_RESUME,
            spb.SimulateScenario(disconnect_signal_on_resume=True),
        ),
        (
            SimulateScenario.DISCONNECT_SIGNAL_ON_RESUME_NO_MESSAGES,
            spb.SimulateScenario(disconnect_signal_on_resume_no_messages=True),
        ),
    ],
)
def test_signal_on_resume_scenarios_arm_the_server_then_drop_the_signal(
    scenario: SimulateScenario, request_: spb.SimulateScenario
) -> None:
    conn = joined()
    conn.simulate_scenario(scenario, now=T1)
    cmds, evs = drain(conn)
    assert cmds[0] == cmd.SendSignal(data=spb.SignalRequest(simulate=request_).SerializeToString())
    assert signals(cmds[1:])[0].ping_req.timestamp == UNIX0 + 10_000  # right behind it
    assert evs == []
    # The server reads one socket in order: its pong means the fault is armed. Now drop the
    # signal, so that the resume it waits for follows at once.
    pong = spb.SignalResponse(pong_resp=spb.Pong(last_ping_timestamp=UNIX0 + 10_000))
    conn.receive_signal(pong.SerializeToString(), now=T1 + 0.01)
    cmds, evs = drain(conn)
    assert cmds == [cmd.CloseSignal(code=1000)]
    assert conn.get_timer() == T1 + 0.01
    assert evs == [
        ev.Reconnecting(
            mode=ReconnectMode.RESUME,
            reason=DisconnectReason.SIGNAL_CLOSE,
            message=f"simulated {scenario.name.lower()}",
        )
    ]


def test_signal_on_resume_waits_for_its_own_pong_not_an_earlier_pings() -> None:
    """CI run G: the pong of a keepalive ping sent just before the request dropped the signal
    before the server had read the request, so the fault was never armed."""
    conn = joined()
    conn.handle_timer(now=T1 - 0.0004)  # the keepalive's ping, in the same millisecond
    keepalive = signals(drain(conn)[0])
    conn.simulate_scenario(SimulateScenario.DISCONNECT_SIGNAL_ON_RESUME, now=T1)
    ours = signals(drain(conn)[0])[1].ping_req.timestamp
    assert keepalive[0].ping_req.timestamp == ours - 1 == UNIX0 + 10_000
    for stamp in (ours - 1, 0, ours + 1):  # the keepalive's pong; a stray one; a wrong one
        pong = spb.SignalResponse(pong_resp=spb.Pong(last_ping_timestamp=stamp))
        conn.receive_signal(pong.SerializeToString(), now=T1 + 0.01)
        assert drain(conn) == ([], []) and conn.state is ConnectionState.CONNECTED
    pong = spb.SignalResponse(pong_resp=spb.Pong(last_ping_timestamp=ours))
    conn.receive_signal(pong.SerializeToString(), now=T1 + 0.02)
    cmds, evs = drain(conn)
    assert cmds == [cmd.CloseSignal(code=1000)]
    assert [type(e) for e in evs] == [ev.Reconnecting]


def test_a_simulated_signal_reconnect_drops_the_signal_and_resumes() -> None:
    conn = joined()
    conn.simulate_scenario(SimulateScenario.SIGNAL_RECONNECT, now=T1)
    cmds, evs = drain(conn)
    assert cmds == [cmd.CloseSignal(code=1000)]
    assert evs == [
        ev.Reconnecting(
            mode=ReconnectMode.RESUME,
            reason=DisconnectReason.SIGNAL_CLOSE,
            message="simulated signal reconnect",
        )
    ]
    with pytest.raises(
        LocalProtocolError, match="not allowed while the connection is RECONNECTING"
    ):
        conn.simulate_scenario(SimulateScenario.SPEAKER, now=T1)


def test_a_simulated_full_reconnect_rejoins() -> None:
    conn = joined()
    conn.simulate_scenario(7, now=T1)  # type: ignore[arg-type]  # livekit.rtc's int works
    cmds, evs = drain(conn)
    assert cmds == [cmd.CloseSignal(code=1000), cmd.ClosePeerConnection(target=PUB)]
    assert evs[0] == ev.Reconnecting(
        mode=ReconnectMode.FULL,
        reason=DisconnectReason.CLIENT_INITIATED,
        message="simulated full reconnect",
    )


# -- properties ----------------------------------------------------------------------------------


@given(
    sent=st.integers(0, 30),
    acked=st.integers(0, 30),
    during=st.integers(0, 5),
    channel_down=st.booleans(),
)
def test_a_resume_replays_exactly_the_unacknowledged_packets_in_order(
    sent: int, acked: int, during: int, channel_down: bool
) -> None:
    acked = min(acked, sent)
    conn = joined()
    for n in range(sent):
        conn.publish_data(b"%d" % n, now=T0 + 1)
    drain(conn)
    conn.signal_closed(now=T1, code=1006)
    if channel_down:
        conn.data_channel_closed(Channel.RELIABLE, now=T1)
    for n in range(during):
        conn.publish_data(b"d%d" % n, now=T1)
    early, _ = drain(conn)
    conn.handle_timer(T1)
    drain(conn)
    conn.receive_signal(reconnect_response(last_message_seq=acked), now=T1 + 1)
    cmds, _ = drain(conn)
    if channel_down:
        conn.data_channel_opened(Channel.RELIABLE, now=T1 + 2)
        cmds += drain(conn)[0]
    wire = sequences(early) + sequences(cmds)
    total = sent + during
    if channel_down:  # nothing went out early; each packet after `acked` exactly once
        assert wire == list(range(acked + 1, total + 1))
    else:  # the ones sent during the outage went out early and are replayed too
        assert wire == list(range(sent + 1, total + 1)) + list(range(acked + 1, total + 1))


def test_a_resume_that_must_become_a_rejoin_sends_again_what_the_server_never_got() -> None:
    conn = joined()
    conn.register_stream_topic(StreamKind.TEXT, "chat")
    conn.publish_data(b"p1", now=T0 + 1)
    drain(conn)
    conn.handle_timer(T0 + 5)
    conn.handle_timer(T0 + 10)
    drain(conn)
    # The network goes down: what we send now vanishes with the old peer connection.
    conn.publish_data(b"p2", now=T0 + 11)
    conn.perform_rpc(destination_identity="bob", method="m", payload="x", now=T0 + 11)  # v2
    conn.perform_rpc(destination_identity="carol", method="m", payload="x", now=T0 + 11)  # v1
    whole = conn.send_stream(now=T0 + 11, kind=StreamKind.TEXT, topic="chat", payload="whole")
    open_id = conn.open_stream(now=T0 + 11, kind=StreamKind.TEXT, topic="chat")
    conn.write_stream(open_id, "part", now=T0 + 11)
    conn.publish_data(b"p3", now=T0 + 11)
    drain(conn)
    conn.handle_timer(T0 + 15)  # ping timeout: the peer connection is not trusted any more
    drain(conn)
    conn.receive_signal(reconnect_response(last_message_seq=1), now=T0 + 16)
    cmds, _ = drain(conn)
    assert cmds[-1] == cmd.CreateOffer(target=PUB, ice_restart=True)
    conn.command_failed(cmds[-1], "aiortc cannot restart ICE", now=T0 + 16)
    drain(conn)
    conn.handle_timer(T0 + 16)
    drain(conn)
    conn.receive_signal(FakeSfu.join(local=participant("me", "PA_me2")), now=T0 + 17)
    drain(conn)
    conn.data_channel_opened(Channel.RELIABLE, now=T0 + 18)
    cmds, evs = drain(conn)
    sent = [dpb.DataPacket.FromString(c.data) for c in cmds if isinstance(c, cmd.SendDataPacket)]
    kinds = [p.WhichOneof("value") for p in sent]
    # p2, the whole stream (one inline packet for bob) and p3, renumbered from 1; not the RPC
    # request (that call failed with 1503) nor the stream the reconnect cut.
    assert kinds == ["user", "stream_header", "user"]
    assert sent[1].stream_header.stream_id == whole != open_id
    assert [p.user.payload for p in sent if p.HasField("user")] == [b"p2", b"p3"]
    assert [p.sequence for p in sent] == [1, 2, 3]
    assert isinstance(evs[-1], ev.Reconnected)


def test_without_an_answer_from_the_server_only_what_never_left_is_sent_again() -> None:
    conn = joined()
    conn.publish_data(b"p1", now=T0 + 1)
    conn.data_channel_closed(Channel.RELIABLE, now=T0 + 2)
    conn.publish_data(b"p2", now=T0 + 3)  # queued: it never left us
    drain(conn)
    conn.receive_signal(FakeSfu.leave(reason=8, action=2), now=T1)  # a full reconnect at once
    conn.handle_timer(T1)
    conn.receive_signal(FakeSfu.join(local=participant("me", "PA_me2")), now=T1 + 0.1)
    conn.data_channel_opened(Channel.RELIABLE, now=T1 + 0.2)
    cmds, _ = drain(conn)
    # The old server may have forwarded p1: not again. p2 never left: sent in the new session.
    assert payloads(cmds) == [b"p2"] and sequences(cmds) == [1]


def test_a_full_send_queue_ends_the_carry_over() -> None:
    conn = joined(Config(max_queued_send_bytes=100))
    conn.publish_data(b"a" * 60, now=T0 + 1)
    conn.publish_data(b"b" * 60, now=T0 + 1)
    drain(conn)
    conn.signal_closed(now=T1, code=1006)
    conn.handle_timer(T1)
    conn.receive_signal(reconnect_response(resume=1), now=T1 + 0.1)  # resuming is off
    conn.handle_timer(T1 + 0.1)
    conn.receive_signal(FakeSfu.join(local=participant("me", "PA_me2")), now=T1 + 0.2)
    conn.data_channel_opened(Channel.RELIABLE, now=T1 + 0.3)
    cmds, _ = drain(conn)
    assert payloads(cmds) == [b"a" * 60]  # the second did not fit the queue


def test_a_leave_read_after_the_peer_connection_closed_is_obeyed() -> None:
    # livekit-server removing us writes the leave and closes our peer connection; either
    # can be noticed first. The signal is kept until the attempt, so the leave still counts.
    conn = joined()
    conn.peer_state_changed(PUB, "closed", now=T1)
    drain(conn)
    conn.receive_signal(FakeSfu.leave(reason=4, action=0), now=T1)  # PARTICIPANT_REMOVED
    cmds, evs = drain(conn)
    assert evs[-1] == ev.Disconnected(
        reason=DisconnectReason.PARTICIPANT_REMOVED, message="the server ended the session"
    )
    assert not [c for c in cmds if isinstance(c, cmd.OpenSignal)]


def test_rejoining_a_restarted_server_reports_its_new_room() -> None:
    conn = joined()
    conn.receive_signal(FakeSfu.leave(reason=6, action=2), now=T1)
    conn.handle_timer(T1)
    drain(conn)
    fresh = FakeSfu.join(local=participant("me", "PA_me2"), room_metadata="new")
    response = spb.SignalResponse.FromString(fresh)
    response.join.room.sid = "RM_2"
    conn.receive_signal(response.SerializeToString(), now=T1 + 0.1)
    _, evs = drain(conn)
    assert [type(e) for e in evs] == [
        ev.ParticipantUpdated,
        ev.RoomUpdated,
        ev.RoomMetadataChanged,
    ]
    assert evs[2] == ev.RoomMetadataChanged(old_metadata="", metadata="new")
    assert conn.room.sid == "RM_2"
