"""`MemoryRoom` driving `lkproto.Connection`s: the virtual clock, faults, RPC, streams.

Every test uses literal virtual times (the room starts at t=100, the Unix epoch 1.7e12 ms) and
asserts exact events. The property tests check that a run is a pure function of its inputs
and that reliable packets keep their order through any schedule of link delays.
"""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lkproto import (
    Channel,
    Config,
    Connection,
    ConnectionState,
    DisconnectReason,
    LeaveAction,
    ParticipantState,
    ReconnectMode,
    StreamKind,
)
from lkproto import events as ev
from lkproto._pb import signal_pb2 as spb
from lkproto.rpc import RpcError
from lkproto.streams import StreamErrorReason
from lkproto.testing import MemoryRoom

T0 = 100.0
UNIX0 = 1_700_000_000_000


def new_room(**kwargs: object) -> MemoryRoom:
    return MemoryRoom(now=T0, unix_time_ms=UNIX0, **kwargs)  # type: ignore[arg-type]


def kinds(events: list[ev.Event]) -> list[str]:
    return [type(e).__name__ for e in events]


def of(events: list[ev.Event], kind: type[ev.Event]) -> list[ev.Event]:
    return [e for e in events if isinstance(e, kind)]


# -- joining and the clock -------------------------------------------------------------------


def test_join_returns_a_connected_connection() -> None:
    room = new_room()
    alice = room.join("alice", name="Alice")
    assert alice.state is ConnectionState.CONNECTED
    assert room.connection("alice") is alice
    joined, refreshed = room.events("alice")
    assert isinstance(joined, ev.Joined) and isinstance(refreshed, ev.TokenRefreshed)
    assert (joined.room.sid, joined.local_participant.sid, joined.local_participant.name) == (
        "RM_1",
        "PA_1",
        "Alice",
    )
    assert joined.server_info.version == "1.13.5" and joined.single_peer_connection
    assert alice.max_data_message_size == 64_000  # min(64 000, the server's 65 535)
    assert room.events(alice) == []
    assert room.participants["alice"].state is ParticipantState.ACTIVE
    assert (room.now, room.wall_ms, room.name) == (T0, UNIX0, "room")
    with pytest.raises(KeyError, match="no participant driven by this room is 'bob'"):
        room.events("bob")


def test_joins_are_announced_on_the_tick_and_events_can_be_peeked() -> None:
    room = new_room()
    room.join("alice")
    room.advance(1.5)
    room.join("bob")
    room.events("alice"), room.events("bob")
    room.advance(1.4)
    assert room.events("alice") == []
    room.advance(0.1)
    assert room.now == 103.0
    events = room.events("alice", clear=False)
    assert kinds(events) == [
        "ParticipantUpdated",
        "ParticipantActive",
        "ParticipantConnected",
        "ParticipantActive",
    ]
    assert events[2].participant.identity == "bob"  # type: ignore[attr-defined]
    assert room.events("alice") == events


def test_a_refused_join_never_leaks_the_token() -> None:
    room = new_room()
    stranger = MemoryRoom("other", unix_time_ms=UNIX0, api_secret="x" * 40)
    token = stranger.token("alice")
    conn = room.join("alice", token=token)
    [gone] = room.events(conn)
    assert isinstance(gone, ev.Disconnected)
    assert gone.reason is DisconnectReason.JOIN_FAILURE
    assert gone.message == (
        "the server refused the token (HTTP 401): invalid token: <redacted>, "
        "error: signature is invalid"
    )


def test_the_dual_peer_connection_fallback() -> None:
    room = new_room(single_peer_connection=False, update_interval=0)
    alice = room.join("alice")
    assert alice.state is ConnectionState.CONNECTED and not alice.single_peer_connection
    bob = room.join("bob")
    bob.publish_data(b"over /rtc", now=room.now)
    room.run_until_idle()
    assert [e.payload for e in of(room.events("alice"), ev.DataReceived)] == [b"over /rtc"]  # type: ignore[attr-defined]
    bob.close(now=room.now)
    room.run_until_idle()
    assert kinds(room.events("bob"))[-1] == "Disconnected"


def test_clock_rules_and_deadlines() -> None:
    room = new_room()
    assert room.next_deadline() is None
    with pytest.raises(ValueError, match="cannot go back in time"):
        room.advance_to(99.0)
    with pytest.raises(ValueError, match="cannot advance by -1"):
        room.advance(-1)
    room.join("alice")
    # Alice's ping (5 s) and the 3 s update tick are pending; the tick comes first.
    assert room.next_deadline() == 103.0
    room.advance(3)
    assert room.next_deadline() == 105.0
    with pytest.raises(ValueError, match="update_interval"):
        MemoryRoom(update_interval=-1)


def test_keepalive_holds_for_a_minute() -> None:
    room = new_room()
    alice = room.join("alice")
    room.advance(60)
    assert alice.state is ConnectionState.CONNECTED
    assert alice.rtt_ms == 0  # pongs answer at once in virtual time


def test_run_until() -> None:
    room = new_room()
    assert not room.run_until(lambda: False)  # nothing will ever happen: False, at once
    assert room.now == T0
    room.join("alice")
    room.join("bob")
    assert room.run_until(lambda: room.now >= 103.0 and bool(room.events("alice", clear=False)))
    assert room.now == 103.0
    assert not room.run_until(lambda: False, timeout=10)
    assert room.now == 113.0
    assert not room.run_until(lambda: False, timeout=0.5)
    assert room.now == 113.5


def test_handlers_answering_each_other_forever_are_stopped() -> None:
    room = new_room(update_interval=0, max_steps=200)
    conns: dict[str, Connection] = {}

    def echo(name: str, other: str) -> object:
        def on_event(event: ev.Event) -> None:
            if isinstance(event, ev.DataReceived):
                conns[name].publish_data(b"again", now=room.now)
            if isinstance(event, ev.Joined) and name == "bob":
                room.advance(1)  # not allowed from inside the room

        return on_event

    conns["alice"] = room.join("alice", on_event=echo("alice", "bob"))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="called while the room runs"):
        room.join("bob", on_event=echo("bob", "alice"))  # type: ignore[arg-type]
    room = new_room(update_interval=0, max_steps=200)
    conns["alice"] = room.join("alice", on_event=echo("alice", "bob"))  # type: ignore[arg-type]
    conns["carol"] = room.join("carol", on_event=echo("carol", "alice"))  # type: ignore[arg-type]
    conns["alice"].publish_data(b"start", now=room.now)
    with pytest.raises(RuntimeError, match=r"still busy after 200 actions at t=100\.0"):
        room.run_until_idle()
    with pytest.raises(RuntimeError, match="still busy after 200 actions"):
        room.run_until(lambda: False)


def test_server_actions_from_an_event_handler_run_with_the_room() -> None:
    room = new_room(update_interval=0)
    room.join("alice")

    def on_event(event: ev.Event) -> None:
        if isinstance(event, ev.Joined):
            room.disconnect("bob", duration=2)  # before the offer: it waits in the network

    bob = room.join("bob", on_event=on_event)
    assert kinds(room.events("bob")) == ["Joined"]  # the refresh token waits too
    assert room.run_until(lambda: room.participants["bob"].state is ParticipantState.ACTIVE)
    assert room.now == 102.0
    assert kinds(room.events("bob")) == ["TokenRefreshed", "ParticipantUpdated"]
    assert bob.state is ConnectionState.CONNECTED


def test_an_unsolicited_answer_is_dropped_and_changes_nothing() -> None:
    room = new_room()
    alice = room.join("alice")
    room.events("alice")
    answer = spb.SessionDescription(type="answer", sdp="v=0\r\na=ice-ufrag:unknown\r\n", id=7)
    alice.receive_signal(spb.SignalResponse(answer=answer).SerializeToString(), now=room.now)
    room.advance(1)
    assert room.events("alice") == [ev.AnswerDropped(answer_id=7, outstanding_offer_id=None)]
    assert alice.state is ConnectionState.CONNECTED


def test_a_failed_client_peer_connection_is_restarted() -> None:
    room = new_room()
    room.join("alice")
    room.events("alice")
    room.fail_client_peer("alice")
    room.advance(0.25)  # the first attempt waits that long for a leave on the kept signal
    events = room.events("alice")
    assert kinds(events) == [
        "Reconnecting",
        "ParticipantUpdated",  # the resume brings Alice her own news (ACTIVE, not yet ticked)
        "ParticipantActive",
        "RoomUpdated",
        "TokenRefreshed",
        "Reconnected",  # once the ICE restart has reached the server
    ]
    assert events[0] == ev.Reconnecting(
        mode=ReconnectMode.RESUME,
        reason=DisconnectReason.MEDIA_FAILURE,
        message="the publisher peer connection failed",
    )
    assert events[-1] == ev.Reconnected(mode=ReconnectMode.RESUME, attempts=1, duration=0.25)


# -- data ------------------------------------------------------------------------------------


def test_data_reaches_destinations_with_the_sender_stamped() -> None:
    room = new_room(update_interval=0)
    alice, _bob, _carol = room.join("alice"), room.join("bob"), room.join("carol")
    for name in ("alice", "bob", "carol"):
        room.events(name)
    alice.publish_data(b"hi bob", now=room.now, destination_identities=["bob"], topic="t")
    alice.publish_data(b"lossy", now=room.now, reliable=False)
    room.run_until_idle()
    got = {name: of(room.events(name), ev.DataReceived) for name in ("bob", "carol")}
    assert got["bob"] == [
        ev.DataReceived(
            payload=b"hi bob",
            participant_identity="alice",
            participant_sid="PA_1",
            topic="t",
            channel=Channel.RELIABLE,
            destination_identities=("bob",),
        ),
        ev.DataReceived(
            payload=b"lossy",
            participant_identity="alice",
            participant_sid="PA_1",
            topic=None,
            channel=Channel.LOSSY,
        ),
    ]
    assert [e.payload for e in got["carol"]] == [b"lossy"]  # type: ignore[attr-defined]


def test_rpc_end_to_end_with_its_timeouts() -> None:
    room = new_room()

    def answer(event: ev.Event) -> None:
        if isinstance(event, ev.RpcInvoked) and event.invocation.method == "echo":
            inv = event.invocation
            room.connection("alice").respond_rpc(inv.request_id, inv.payload * 2, now=room.now)

    room.join(
        "alice",
        before_connect=lambda c: (c.register_rpc_method("echo"), c.register_rpc_method("slow")),
        on_event=answer,
    )
    bob = room.join("bob")
    mute = room.join("mute", can_publish_data=False)
    room.advance(3)
    first = bob.perform_rpc(destination_identity="alice", method="echo", payload="ab", now=room.now)
    room.run_until_idle()
    assert of(room.events("bob"), ev.RpcSucceeded) == [
        ev.RpcSucceeded(request_id=first, payload="abab")
    ]
    slow = bob.perform_rpc(destination_identity="alice", method="slow", payload="", now=room.now)
    nobody = bob.perform_rpc(destination_identity="nobody", method="x", payload="", now=room.now)
    refused = mute.perform_rpc(
        destination_identity="alice", method="echo", payload="", now=room.now
    )
    assert room.run_until(lambda: bool(of(room.events("bob", clear=False), ev.RpcFailed)))
    assert room.now == 103.0 + 7.0
    assert room.run_until(lambda: len(of(room.events("bob", clear=False), ev.RpcFailed)) == 2)
    assert room.now == 103.0 + 15.0
    failures = {e.request_id: e.error.code for e in of(room.events("bob"), ev.RpcFailed)}  # type: ignore[attr-defined]
    assert failures == {nobody: RpcError.ErrorCode.CONNECTION_TIMEOUT, slow: 1502}
    [mute_failure] = of(room.events("mute"), ev.RpcFailed)
    assert (mute_failure.request_id, mute_failure.error.code) == (refused, 1505)  # type: ignore[attr-defined]


def test_streams_through_faulty_links() -> None:
    room = new_room(update_interval=0)
    config = Config(stream_chunk_size=100)
    receiver = room.join(
        "rx", before_connect=lambda c: c.register_stream_topic(StreamKind.BYTES, "f")
    )
    sender = room.join("tx", config=config)
    room.events("rx")
    payload = bytes(range(250))
    # A duplicated chunk is dropped by the receiver (sequence de-duplication, A.7).
    room.link("tx", "rx").duplicate_next(1, channel=Channel.RELIABLE)
    sid = sender.open_stream(now=room.now, kind=StreamKind.BYTES, topic="f", stream_id="s1")
    sender.write_stream(sid, payload, now=room.now)
    sender.close_stream(sid, now=room.now)
    room.run_until_idle()
    events = room.events("rx")
    assert [e.reason for e in of(events, ev.PacketDropped)] == ["duplicate"]  # type: ignore[attr-defined]
    assert b"".join(e.data for e in of(events, ev.StreamChunkReceived)) == payload  # type: ignore[attr-defined, misc]
    assert len(of(events, ev.StreamFinished)) == 1
    # A lost chunk is a gap: the stream fails.
    sid = sender.open_stream(now=room.now, kind=StreamKind.BYTES, topic="f", stream_id="s2")
    room.run_until_idle()  # the header goes through; then the first chunk is lost
    room.link("tx", "rx").drop_next(1)
    sender.write_stream(sid, payload, now=room.now)
    sender.close_stream(sid, now=room.now)
    room.run_until_idle()
    [failed] = of(room.events("rx"), ev.StreamFailed)
    assert failed.stream_id == "s2"  # type: ignore[attr-defined]
    assert failed.reason is StreamErrorReason.MISSED_CHUNK  # type: ignore[attr-defined]
    assert [d.reason for d in room.dropped] == ["lost on the link (fault)"]
    assert receiver.state is ConnectionState.CONNECTED


def test_delays_keep_reliable_order_and_let_lossy_overtake() -> None:
    room = new_room(update_interval=0)
    alice = room.join("alice")
    room.join("bob")
    room.events("bob")
    link = room.link("alice", "bob")
    link.delay(2.0)
    alice.publish_data(b"r1", now=room.now)
    alice.publish_data(b"l1", now=room.now, reliable=False)
    room.run_until_idle()  # (the room carries out verbs when it runs: now, with the delay)
    link.delay(0.5)
    alice.publish_data(b"r2", now=room.now)  # may not pass r1
    alice.publish_data(b"l2", now=room.now, reliable=False)  # may pass l1
    room.advance(0.5)
    assert [e.payload for e in of(room.events("bob"), ev.DataReceived)] == [b"l2"]  # type: ignore[attr-defined]
    room.advance(1.5)
    assert [e.payload for e in of(room.events("bob"), ev.DataReceived)] == [b"r1", b"l1", b"r2"]  # type: ignore[attr-defined]
    link.delay(0)
    link.down(channel=Channel.LOSSY)
    alice.publish_data(b"gone", now=room.now, reliable=False)
    alice.publish_data(b"r3", now=room.now)
    room.run_until_idle()
    link.up(channel=Channel.LOSSY)
    alice.publish_data(b"l3", now=room.now, reliable=False)
    room.run_until_idle()
    assert [e.payload for e in of(room.events("bob"), ev.DataReceived)] == [b"r3", b"l3"]  # type: ignore[attr-defined]


def test_uplink_faults_meet_the_servers_sequence_check() -> None:
    room = new_room(update_interval=0)
    alice = room.join("alice")
    room.join("bob")
    room.events("bob")
    room.uplink("alice").duplicate_next(1).drop_next(1, channel=Channel.LOSSY)
    alice.publish_data(b"once", now=room.now)
    alice.publish_data(b"lost", now=room.now, reliable=False)
    room.run_until_idle()
    assert [e.payload for e in of(room.events("bob"), ev.DataReceived)] == [b"once"]  # type: ignore[attr-defined]
    assert [d.reason for d in room.dropped] == [
        "lost on the uplink (fault)",
        "out of order reliable packet",
    ]


# -- leaving, cuts and restarts ------------------------------------------------------------


def test_a_cut_participant_notices_by_its_ping_and_rejoins_when_the_network_is_back() -> None:
    room = new_room()
    alice = room.join("alice", random=lambda: 0.5)
    room.join("bob")
    room.advance(4)
    room.events("alice"), room.events("bob")
    room.disconnect("alice")  # at 104
    assert room.run_until(lambda: alice.state is ConnectionState.RECONNECTING)
    assert room.now == 118.0  # its last message was the update at 103: 15 s of silence
    assert room.events("alice") == [
        ev.Reconnecting(
            mode=ReconnectMode.RESUME,
            reason=DisconnectReason.CONNECTION_TIMEOUT,
            message="ping timeout: no signal message for 15s",
        )
    ]
    # ICE fails at 119; the server removes Alice at 124; Bob hears of it on the next tick.
    assert room.run_until(
        lambda: bool(of(room.events("bob", clear=False), ev.ParticipantDisconnected))
    )
    assert room.now == 127.0
    [left] = of(room.events("bob"), ev.ParticipantDisconnected)
    assert left.reason is DisconnectReason.CONNECTION_TIMEOUT  # type: ignore[attr-defined]
    room.restore("alice")
    assert room.run_until(lambda: alice.state is ConnectionState.CONNECTED)
    # Attempts are lost in the cut (each given up after 5 s); the failure of the peer
    # connection at 119 restarts the wait. The attempt under way when the network came back
    # was lost too; the next one (3.2 s after it was given up at 131) finds nothing to
    # resume, and Alice rejoins at once: the fifth attempt.
    assert [(u.at, u.outcome) for u in room.upgrades[2:]] == [
        (118.0, "unreachable"),
        (119.3, "unreachable"),
        (126.0, "unreachable"),
        (134.2, "state mismatch"),
        (134.2, "joined"),
    ]
    assert of(room.events("alice"), ev.Reconnected) == [
        ev.Reconnected(mode=ReconnectMode.FULL, attempts=5, duration=pytest.approx(16.2))
    ]


def test_a_signal_reset_is_resumed_at_once() -> None:
    room = new_room()
    alice = room.join("alice")
    room.events("alice")
    room.drop_signal("alice")
    assert alice.state is ConnectionState.CONNECTED
    assert kinds(room.events("alice")) == [
        "Reconnecting",
        "Reconnected",
        "ParticipantUpdated",  # her own news (ACTIVE, not ticked yet) comes with the resume
        "ParticipantActive",
        "RoomUpdated",
        "TokenRefreshed",
    ]


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (LeaveAction.DISCONNECT, ["Disconnected"]),
        (LeaveAction.RESUME, ["Reconnecting", "Reconnected", "RoomUpdated", "TokenRefreshed"]),
        (LeaveAction.RECONNECT, ["Reconnecting", "ParticipantDisconnected"]),
    ],
)
def test_server_leave_actions(action: LeaveAction, expected: list[str]) -> None:
    room = new_room(update_interval=0)
    alice = room.join("alice")
    room.join("bob")
    room.events("alice"), room.events("bob")
    room.leave("alice", action=action, reason=DisconnectReason.MIGRATION)
    events = room.events("alice")
    assert kinds(events)[: len(expected)] == expected
    if action is LeaveAction.DISCONNECT:
        assert events[-1] == ev.Disconnected(
            reason=DisconnectReason.MIGRATION, message="the server ended the session"
        )
        assert alice.state is ConnectionState.CLOSED
        assert "alice" not in room.participants
        [left] = of(room.events("bob"), ev.ParticipantDisconnected)
        assert left.participant.identity == "alice"  # type: ignore[attr-defined]
        return
    # A resume keeps the session (PA_1); a full reconnect is a new one (PA_3).
    mode = ReconnectMode.RESUME if action is LeaveAction.RESUME else ReconnectMode.FULL
    what = "a resume" if mode is ReconnectMode.RESUME else "a full reconnect"
    assert events[0] == ev.Reconnecting(
        mode=mode, reason=DisconnectReason.MIGRATION, message=f"the server asked for {what}"
    )
    assert of(events, ev.Reconnected) == [ev.Reconnected(mode=mode, attempts=1, duration=0.0)]
    assert alice.state is ConnectionState.CONNECTED
    sid = "PA_1" if mode is ReconnectMode.RESUME else "PA_3"
    assert room.participants["alice"].sid == sid
    room.advance(10)
    assert room.participants["alice"].sid == sid


def test_restarts() -> None:
    room = new_room()
    alice, bob = room.join("alice"), room.join("bob")
    room.events("alice"), room.events("bob")
    room.restart()
    assert room.events("alice") == [
        ev.Disconnected(
            reason=DisconnectReason.SERVER_SHUTDOWN, message="the server ended the session"
        )
    ]
    again = room.join("alice")
    assert kinds(room.events("alice")) == ["Joined", "TokenRefreshed"]
    assert again.state is ConnectionState.CONNECTED and room.sid == "RM_2"
    assert room.connection("alice") is again and bob.state is ConnectionState.CLOSED
    room.restart(graceful=False)  # a crash: the server forgets Alice, who rejoins
    events = room.events("alice")
    assert [type(e).__name__ for e in events if "Reconnect" in type(e).__name__] == [
        "Reconnecting",
        "Reconnecting",
        "Reconnected",
    ]
    assert (alice.state, again.state, room.sid) == (
        ConnectionState.CLOSED,
        ConnectionState.CONNECTED,
        "RM_3",
    )
    assert room.participants["alice"].sid == "PA_4"


def test_admin_actions_reach_the_clients() -> None:
    room = new_room(update_interval=0)
    room.join("alice", can_update_own_metadata=True)
    bob = room.join("bob")
    room.events("alice"), room.events("bob")
    room.update_participant("alice", name="Al", attributes={"k": "v"})
    room.set_metadata("room-meta")
    room.send_data(b"sys", topic="t")
    events = room.events("bob")
    assert kinds(events) == [
        "ParticipantUpdated",
        "ParticipantNameChanged",
        "ParticipantUpdated",
        "ParticipantAttributesChanged",
        "RoomUpdated",
        "RoomMetadataChanged",
        "DataReceived",
    ]
    assert bob.room.metadata == "room-meta"
    assert of(events, ev.DataReceived)[0].participant_identity == ""  # type: ignore[attr-defined]


def test_join_attributes_and_metadata_travel_in_the_join_request() -> None:
    room = new_room()
    alice = room.join(
        "alice", attributes={"a": "token"}, join_attributes={"a": "join"}, join_metadata="jm"
    )
    local = alice.local_participant
    assert local is not None
    assert (dict(local.attributes), local.metadata) == ({"a": "join"}, "jm")


# -- determinism -------------------------------------------------------------------------------

actions = st.lists(
    st.tuples(
        st.sampled_from(["data", "lossy", "delay", "advance", "rpc"]),
        st.integers(min_value=0, max_value=3),
    ),
    max_size=25,
)


def run_scenario(steps: list[tuple[str, int]]) -> list[tuple[float, str, str]]:
    room = new_room()
    trace: list[tuple[float, str, str]] = []

    def recorder(name: str) -> object:
        def on_event(event: ev.Event) -> None:
            trace.append((room.now, name, repr(event)))
            if isinstance(event, ev.RpcInvoked):
                conn = room.connection(name)
                conn.respond_rpc(event.invocation.request_id, "ok", now=room.now)

        return on_event

    conns = [
        room.join(n, on_event=recorder(n), before_connect=lambda c: c.register_rpc_method("m"))  # type: ignore[arg-type]
        for n in ("a", "b", "c")
    ]
    names = ["a", "b", "c"]
    for i, (what, n) in enumerate(steps):
        sender = conns[n % 3]
        other = names[(n + 1) % 3]
        if what == "data":
            sender.publish_data(f"{i}".encode(), now=room.now)
        elif what == "lossy":
            sender.publish_data(f"{i}".encode(), now=room.now, reliable=False)
        elif what == "delay":
            room.link(names[n % 3], other).delay(n * 0.7)
        elif what == "advance":
            room.advance(n * 1.3)
        else:
            sender.perform_rpc(destination_identity=other, method="m", payload="x", now=room.now)
    room.advance(30)
    return trace


@settings(max_examples=40, deadline=None)
@given(actions)
def test_a_run_is_a_pure_function_of_its_inputs(steps: list[tuple[str, int]]) -> None:
    assert run_scenario(steps) == run_scenario(steps)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5), st.booleans(), st.floats(0, 2)), max_size=30))
def test_reliable_packets_keep_their_order_through_any_delays(
    plan: list[tuple[float, bool, float]],
) -> None:
    room = new_room(update_interval=0)
    alice = room.join("alice")
    room.join("bob")
    room.events("bob")
    link = room.link("alice", "bob")
    sent: list[bytes] = []
    for i, (delay, reliable, wait) in enumerate(plan):
        link.delay(delay)
        payload = str(i).encode()
        alice.publish_data(payload, now=room.now, reliable=reliable)
        if reliable:
            sent.append(payload)
        room.advance(wait)
    room.advance(10)
    got = [e for e in of(room.events("bob"), ev.DataReceived)]
    reliable_got = [e.payload for e in got if e.channel is Channel.RELIABLE]  # type: ignore[attr-defined]
    assert reliable_got == sent
    assert len(got) == len(plan)


def test_token_claims_follow_the_grants() -> None:
    room = new_room()
    token = room.token("a", kind=4, hidden=True, can_publish=False, metadata="m")
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert (claims["kind"], claims["metadata"], claims["video"]["canPublishData"]) == (
        "agent",
        "m",
        False,
    )


def test_the_package_docstring_example() -> None:
    room = MemoryRoom()  # virtual clock at 0.0
    room.join("alice", before_connect=lambda c: c.register_rpc_method("ping"))
    bob = room.join("bob")
    room.advance(3)  # the server announces joins on a 3 s tick
    bob.perform_rpc(destination_identity="alice", method="ping", payload="", now=room.now)
    room.run_until_idle()  # alice's events now hold RpcInvoked
    assert kinds(room.events("alice"))[-1] == "RpcInvoked"
    room.advance(15)  # nobody answered: bob's events hold RpcFailed
    [failed] = of(room.events("bob"), ev.RpcFailed)
    assert failed.error.code == 1502  # type: ignore[attr-defined]
