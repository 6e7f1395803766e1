"""Resumes and full reconnects of driven `Connection`s in a `MemoryRoom`: what the core does
against the server's side of them, at literal virtual times, with exact events.

Every participant that may reconnect gets `random=lambda: 0.5`, so the reconnect jitter is
0.5 s from the third attempt on and attempt times are exact: 0, 0.3, 1.2 + 0.5, 2.7 + 0.5,
4.8 + 0.5, then 7 + 0.5 s apart (protocol-reference D.8, lkproto/_reconnect.py).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lkproto import (
    Config,
    Connection,
    ConnectionState,
    DisconnectReason,
    LeaveAction,
    SimulateScenario,
    StreamKind,
)
from lkproto import events as ev
from lkproto._pb import signal_pb2 as spb
from lkproto.testing import MemoryRoom

T0 = 100.0
UNIX0 = 1_700_000_000_000
CONNECTED = ConnectionState.CONNECTED


def half() -> float:
    return 0.5


def new_room(**kwargs: object) -> MemoryRoom:
    return MemoryRoom(now=T0, unix_time_ms=UNIX0, **kwargs)  # type: ignore[arg-type]


def summary(event: ev.Event) -> tuple[object, ...]:
    """The facts of an event a reconnect test checks, compactly."""
    name = type(event).__name__
    if isinstance(event, ev.Reconnecting):
        return (name, event.mode.value, event.reason.name, event.message)
    if isinstance(event, ev.Reconnected):
        return (name, event.mode.value, event.attempts, round(event.duration, 6))
    if isinstance(event, ev.Disconnected):
        return (name, event.reason.name, event.message)
    if isinstance(event, ev.ParticipantDisconnected):
        return (name, event.participant.identity, event.participant.sid, event.reason.name)
    if isinstance(event, ev.ParticipantConnected | ev.ParticipantActive | ev.ParticipantUpdated):
        p = event.participant
        return (name, p.identity, p.sid, p.state.name)
    if isinstance(event, ev.DataReceived):
        return (name, event.payload)
    if isinstance(event, ev.RpcFailed):
        return (name, event.request_id, int(event.error.code))
    if isinstance(event, ev.RpcSucceeded):
        return (name, event.request_id, event.payload)
    if isinstance(event, ev.RoomUpdated):
        return (name, event.room.sid, event.room.num_participants)
    if isinstance(event, ev.ActiveSpeakersChanged):
        return (name, *((s.sid, s.level, s.active) for s in event.speakers))
    return (name,)


def seen(room: MemoryRoom, who: str) -> list[tuple[object, ...]]:
    return [summary(e) for e in room.events(who)]


def upgrades(room: MemoryRoom, since: int = 0) -> list[tuple[float, str, bool, str]]:
    return [(round(u.at, 6), u.identity, u.resume, u.outcome) for u in room.upgrades[since:]]


def payloads(room: MemoryRoom, who: str) -> list[bytes]:
    return [e.payload for e in room.events(who) if isinstance(e, ev.DataReceived)]


def pair(**room_options: object) -> tuple[MemoryRoom, Connection, Connection]:
    room = new_room(update_interval=0, **room_options)
    single = bool(room_options.get("single_peer_connection", True))
    alice = room.join("alice", random=half, single_peer_connection=single)
    bob = room.join("bob", random=half, single_peer_connection=single)
    room.events("alice"), room.events("bob")
    return room, alice, bob


JOINED_AGAIN = [  # what a rejoining alice sees of herself and of bob (PA_2), at once
    ("ParticipantUpdated", "alice", "PA_3", "JOINING"),
    ("ParticipantConnected", "bob", "PA_2", "ACTIVE"),
    ("ParticipantActive", "bob", "PA_2", "ACTIVE"),
    ("TokenRefreshed",),
    ("ParticipantUpdated", "alice", "PA_3", "JOINED"),
]
REJOINED = [
    ("ParticipantUpdated", "alice", "PA_3", "ACTIVE"),
    ("ParticipantActive", "alice", "PA_3", "ACTIVE"),
]
BOB_SEES_ALICE_REJOIN = [
    ("ParticipantConnected", "alice", "PA_3", "JOINED"),
    ("ParticipantUpdated", "alice", "PA_3", "ACTIVE"),
    ("ParticipantActive", "alice", "PA_3", "ACTIVE"),
]


# -- resume --------------------------------------------------------------------------------------


def test_a_signal_drop_is_resumed_at_once_and_replays_what_was_in_flight() -> None:
    room, alice, _ = pair()
    room.uplink("alice").delay(0.05)
    for i in range(10):
        alice.publish_data(b"%d" % i, now=room.now)
        if i == 4:
            room.advance(0.025)
            room.drop_signal("alice")  # at 100.065: 1 and 2 have reached the server, 3-5 not
        room.advance(0.01)
    room.advance(1)
    assert seen(room, "alice") == [
        ("Reconnecting", "resume", "SIGNAL_CLOSE", "the signal connection closed (code None)"),
        ("Reconnected", "resume", 1, 0.0),
        ("RoomUpdated", "RM_1", 0),
        ("TokenRefreshed",),
    ]
    assert upgrades(room, 2) == [(100.065, "alice", True, "resumed")]
    # The replay (sequences 3 to 5) came after the originals on the ordered uplink; the
    # server dropped the copies; Bob got every packet once, in order.
    assert payloads(room, "bob") == [b"%d" % i for i in range(10)]
    assert [(d.packet().sequence, d.reason) for d in room.dropped] == [
        (3, "out of order reliable packet"),
        (4, "out of order reliable packet"),
        (5, "out of order reliable packet"),
    ]


def test_the_official_sdks_reliability_test() -> None:
    """128 reliable packets of 4 KiB, one every 10 ms; the sender resumes at 200 ms and the
    receiver at 400 ms (client-sdk-js and rust-sdks run this against a real server): all
    arrive exactly once, in order, within 15 s. With 20 ms on each leg, the sender's replay
    overlaps what is still in flight, and the server drops the copies."""
    room, alice, bob = pair()
    room.uplink("alice").delay(0.02)
    room.link("alice", "bob").delay(0.02)
    sent = [bytes([i]) * 4096 for i in range(128)]
    for i, payload in enumerate(sent):
        if i == 20:
            alice.simulate_scenario(SimulateScenario.SIGNAL_RECONNECT, now=room.now)
        if i == 40:
            bob.simulate_scenario(SimulateScenario.SIGNAL_RECONNECT, now=room.now)
        alice.publish_data(payload, now=room.now)
        room.advance(0.01)
    room.advance(15)
    bob_events = room.events("bob")
    assert [e.payload for e in bob_events if isinstance(e, ev.DataReceived)] == sent
    assert [summary(e) for e in bob_events if isinstance(e, ev.Reconnected)] == [
        ("Reconnected", "resume", 1, 0.0)
    ]
    assert [s for s in seen(room, "alice") if s[0] == "Reconnected"] == [
        ("Reconnected", "resume", 1, 0.0)
    ]
    # At 200 ms the server has 1 to 19 (19 arrives just then); 20, and 21 (sent while the
    # signal was being replaced: the data channel stays open), are in flight: replayed.
    assert [(d.packet().sequence, d.reason) for d in room.dropped] == [
        (20, "out of order reliable packet"),
        (21, "out of order reliable packet"),
    ]


def test_a_peer_connection_failure_is_resumed_with_an_ice_restart_and_a_replay() -> None:
    room, alice, bob = pair()
    room.uplink("alice").delay(1)
    for i in range(3):
        alice.publish_data(b"%d" % i, now=room.now)
    room.advance(0.5)
    room.fail_peer("alice")  # the three packets in flight are lost with it
    room.advance(3)
    # The resume is answered; the peer connection is down, so it is ICE-restarted, and the
    # room's messages after the ReconnectResponse come in before it is up again.
    assert seen(room, "alice") == [
        ("Reconnecting", "resume", "CONNECTION_TIMEOUT", "the server asked for a resume"),
        ("RoomUpdated", "RM_1", 0),
        ("TokenRefreshed",),
        ("Reconnected", "resume", 1, 0.0),
    ]
    assert payloads(room, "bob") == [b"0", b"1", b"2"]  # replayed from last_message_seq 0
    assert [d.reason for d in room.dropped] == ["lost with the sender's peer connection"] * 3
    assert (alice.state, bob.state) == (ConnectionState.CONNECTED, ConnectionState.CONNECTED)


def test_a_dual_pc_resume_restarts_both_peer_connections() -> None:
    room, alice, _ = pair(single_peer_connection=False)
    assert not alice.single_peer_connection
    room.fail_peer("alice")
    alice.publish_data(b"after", now=room.now)
    room.advance(1)
    assert [s[0] for s in seen(room, "alice")] == [
        "Reconnecting",
        "RoomUpdated",
        "TokenRefreshed",
        "Reconnected",
    ]
    assert payloads(room, "bob") == [b"after"]


def test_a_cut_resumed_just_in_time_restarts_ice_and_loses_nothing() -> None:
    room, alice, bob = pair()
    room.advance(2)  # t = 102: Alice's last signal message came at 100
    room.disconnect("alice", duration=15.1)
    for i in range(3):
        alice.publish_data(b"%d" % i, now=room.now)  # held, then lost with the peer connection
    room.advance(12.9)
    assert room.events("alice") == []
    room.advance(0.1)  # 115: the ping timeout
    assert seen(room, "alice") == [
        (
            "Reconnecting",
            "resume",
            "CONNECTION_TIMEOUT",
            "ping timeout: no signal message for 15s",
        )
    ]
    room.advance(5)
    # 117: ICE failed (both ends), which restarts the wait; 117.1: the network is back;
    # 117.3: the attempt after the one lost in the cut finds the participant (it would be
    # removed at 122) and resumes; the room update is as of the 105 tick.
    assert seen(room, "alice") == [
        ("RoomUpdated", "RM_1", 2),
        ("TokenRefreshed",),
        ("Reconnected", "resume", 2, 2.3),
    ]
    assert upgrades(room, 2) == [
        (115.0, "alice", True, "unreachable"),
        (117.3, "alice", True, "resumed"),
    ]
    assert payloads(room, "bob") == [b"0", b"1", b"2"]
    assert [d.reason for d in room.dropped] == ["lost with the sender's peer connection"] * 3
    room.advance(30)
    assert "alice" in room.participants and bob.state is ConnectionState.CONNECTED


def test_a_participant_that_left_during_a_cut_is_reported_by_the_resume() -> None:
    """The server's `sendDisconnectUpdatesForReconnect`: with the resume it repeats every
    leave it sent since the client's last signal message (those may have died with the old
    socket), newest first, and stops at the first update older than that message."""
    room = new_room(update_interval=0)
    room.join("alice", random=half)
    room.join("bob", random=half)
    room.join("carol", random=half)
    room.advance(6)  # t = 106: alice's last signal message is her keepalive ping of 105
    room.events("alice")
    room.disconnect("alice", duration=15.1)
    room.advance(1)
    room.leave("carol")  # the server's update to alice dies in the cut
    room.advance(30)
    assert seen(room, "alice") == [
        ("Reconnecting", "resume", "CONNECTION_TIMEOUT", "ping timeout: no signal message for 15s"),
        ("ParticipantDisconnected", "carol", "PA_3", "UNKNOWN_REASON"),
        ("RoomUpdated", "RM_1", 2),
        ("TokenRefreshed",),
        ("Reconnected", "resume", 2, 1.3),
    ]
    assert sorted(room.participants) == ["alice", "bob"]


def test_a_cut_shorter_than_the_ping_timeout_goes_unnoticed() -> None:
    room, alice, _ = pair()
    room.disconnect("alice", duration=9)
    alice.publish_data(b"held", now=room.now)
    alice.publish_data(b"lossy", now=room.now, reliable=False)
    room.advance(60)
    assert seen(room, "alice") == [("RoomUpdated", "RM_1", 2)]  # the 105 tick, held till 109
    assert payloads(room, "bob") == [b"held"]
    assert room.upgrades[2:] == []


def test_an_rpc_and_a_stream_in_flight_complete_across_a_resume() -> None:
    room = new_room(update_interval=0)

    def answer(event: ev.Event) -> None:
        if isinstance(event, ev.RpcInvoked):
            inv = event.invocation
            room.drop_signal("bob")  # while the call is being handled
            room.connection("bob").respond_rpc(inv.request_id, "pong", now=room.now)

    bob = room.join(
        "bob",
        random=half,
        before_connect=lambda c: (
            c.register_rpc_method("ping"),
            c.register_stream_topic(StreamKind.TEXT, "t"),
        ),
        on_event=answer,
    )
    alice = room.join("alice", random=half, config=Config(stream_chunk_size=100))
    room.events("bob"), room.events("alice")
    call = alice.perform_rpc(destination_identity="bob", method="ping", payload="", now=room.now)
    stream = alice.open_stream(now=room.now, kind=StreamKind.TEXT, topic="t", stream_id="s")
    alice.write_stream(stream, "a" * 150, now=room.now)
    room.run_until_idle()
    alice.simulate_scenario(SimulateScenario.SIGNAL_RECONNECT, now=room.now)
    alice.write_stream(stream, "b" * 150, now=room.now)
    alice.close_stream(stream, now=room.now)
    room.run_until_idle()
    assert [
        s for s in seen(room, "alice") if s[0] in ("RpcSucceeded", "RpcFailed", "Reconnected")
    ] == [
        ("RpcSucceeded", call, "pong"),
        ("Reconnected", "resume", 1, 0.0),
    ]
    events = room.events("bob")
    text = "".join(e.data for e in events if isinstance(e, ev.StreamChunkReceived))  # type: ignore[misc]
    assert text == "a" * 150 + "b" * 150
    assert [
        type(e).__name__ for e in events if isinstance(e, ev.StreamFinished | ev.StreamFailed)
    ] == ["StreamFinished"]
    assert bob.state is ConnectionState.CONNECTED


# -- full reconnect -----------------------------------------------------------------------------


def test_a_crash_makes_everyone_rejoin_and_fails_what_was_in_flight() -> None:
    room = new_room(update_interval=0)
    bob = room.join(
        "bob",
        random=half,
        before_connect=lambda c: (
            c.register_rpc_method("slow"),
            c.register_stream_topic(StreamKind.BYTES, "f"),
        ),
    )
    alice = room.join("alice", random=half)
    room.events("bob"), room.events("alice")
    call = alice.perform_rpc(destination_identity="bob", method="slow", payload="", now=room.now)
    stream = alice.open_stream(now=room.now, kind=StreamKind.BYTES, topic="f", stream_id="s")
    alice.write_stream(stream, b"x" * 10, now=room.now)
    room.run_until_idle()
    room.events("bob")
    room.restart(graceful=False)
    assert (room.sid, alice.state, bob.state) == (
        "RM_2",
        ConnectionState.CONNECTED,
        ConnectionState.CONNECTED,
    )
    # Each resumes (the socket was reset), is told the server has no such participant, and
    # rejoins: Bob first (he was first in the room), so he is PA_3 and Alice PA_4.
    assert seen(room, "alice") == [
        ("Reconnecting", "resume", "SIGNAL_CLOSE", "the signal connection closed (code None)"),
        ("Reconnecting", "full", "STATE_MISMATCH", "the server cannot resume this session"),
        ("ParticipantDisconnected", "bob", "PA_1", "STATE_MISMATCH"),
        ("RpcFailed", call, 1503),
        ("ParticipantUpdated", "alice", "PA_4", "JOINING"),
        ("RoomUpdated", "RM_2", 0),
        ("ParticipantConnected", "bob", "PA_3", "ACTIVE"),
        ("ParticipantActive", "bob", "PA_3", "ACTIVE"),
        ("TokenRefreshed",),
        ("ParticipantUpdated", "alice", "PA_4", "JOINED"),
        ("Reconnected", "full", 2, 0.0),
        ("ParticipantUpdated", "alice", "PA_4", "ACTIVE"),
        ("ParticipantActive", "alice", "PA_4", "ACTIVE"),
    ]
    assert seen(room, "bob") == [
        ("Reconnecting", "resume", "SIGNAL_CLOSE", "the signal connection closed (code None)"),
        ("Reconnecting", "full", "STATE_MISMATCH", "the server cannot resume this session"),
        ("ParticipantDisconnected", "alice", "PA_2", "STATE_MISMATCH"),
        ("RpcInvocationCancelled",),
        ("StreamFailed",),
        ("ParticipantUpdated", "bob", "PA_3", "JOINING"),
        ("RoomUpdated", "RM_2", 0),
        ("TokenRefreshed",),
        ("ParticipantUpdated", "bob", "PA_3", "JOINED"),
        ("Reconnected", "full", 2, 0.0),
        ("ParticipantUpdated", "bob", "PA_3", "ACTIVE"),
        ("ParticipantActive", "bob", "PA_3", "ACTIVE"),
        ("ParticipantConnected", "alice", "PA_4", "JOINED"),
        ("ParticipantUpdated", "alice", "PA_4", "ACTIVE"),
        ("ParticipantActive", "alice", "PA_4", "ACTIVE"),
    ]
    with pytest.raises(Exception, match="ended by a full reconnect"):
        alice.write_stream(stream, b"more", now=room.now)
    # Sequencing starts over: the new session's first packet is 1 again, and it goes through.
    assert alice.next_sequence == 1
    alice.publish_data(b"again", now=room.now)
    room.run_until_idle()
    assert payloads(room, "bob") == [b"again"]


def test_a_graceful_restart_ends_every_session() -> None:
    room, _, _ = pair()
    room.restart()
    for who in ("alice", "bob"):
        assert seen(room, who) == [
            ("Disconnected", "SERVER_SHUTDOWN", "the server ended the session")
        ]
    assert upgrades(room, 2) == []


@pytest.mark.parametrize("downtime", [45.0, 60.0])
def test_the_backoff_schedule_while_the_server_is_down(downtime: float) -> None:
    room, alice, _ = pair()
    room.restart(graceful=False, downtime=downtime)
    room.advance(120)
    # Refused at once, each; 15 s after the crash the peer connection fails too, which
    # restarts the wait for the pending (sixth) attempt from then: 115 + 7 + 0.5.
    times = [100.0, 100.3, 102.0, 105.2, 110.5, 122.5, 130.0, 137.5, 145.0, 152.5]
    alices = [(at, outcome) for at, who, _, outcome in upgrades(room, 2) if who == "alice"]
    if downtime == 45.0:
        assert alices == [(t, "refused") for t in times[:8]] + [
            (145.0, "state mismatch"),
            (145.0, "joined"),
        ]
        assert alice.state is ConnectionState.CONNECTED
        events = seen(room, "alice")
        assert events[0] == (
            "Reconnecting",
            "resume",
            "SIGNAL_CLOSE",
            "the signal connection closed (code None)",
        )
        # The ninth attempt found nothing to resume; the tenth rejoined, 45 s after the crash.
        assert [e for e in events if e[0].startswith("Reconnect")] == [
            events[0],
            ("Reconnecting", "full", "STATE_MISMATCH", "the server cannot resume this session"),
            ("Reconnected", "full", 10, 45.0),
        ]
    else:
        assert alices == [(t, "refused") for t in times]
        assert alice.state is ConnectionState.CLOSED
        assert seen(room, "alice")[-1] == (
            "Disconnected",
            "MEDIA_FAILURE",
            "gave up reconnecting after 10 attempts: "
            "reconnect attempt failed (no answer): connection refused",
        )


def test_giving_up_after_the_configured_attempts() -> None:
    room = new_room(update_interval=0)
    alice = room.join("alice", random=half, config=Config(reconnect_attempts=3))
    room.events("alice")
    room.restart(graceful=False, downtime=60)
    room.advance(60)
    assert upgrades(room, 1) == [
        (100.0, "alice", True, "refused"),
        (100.3, "alice", True, "refused"),
        (102.0, "alice", True, "refused"),
    ]
    assert seen(room, "alice") == [
        ("Reconnecting", "resume", "SIGNAL_CLOSE", "the signal connection closed (code None)"),
        (
            "Disconnected",
            "SIGNAL_CLOSE",
            "gave up reconnecting after 3 attempts: "
            "reconnect attempt failed (no answer): connection refused",
        ),
    ]
    assert alice.state is ConnectionState.CLOSED
    room.join("never", config=Config(reconnect_attempts=0))
    room.events("never")
    room.drop_signal("never")
    assert seen(room, "never") == [
        (
            "Disconnected",
            "SIGNAL_CLOSE",
            "the signal connection closed (code None) "
            "(reconnecting is off: Config.reconnect_attempts is 0)",
        )
    ]


def test_a_long_cut_ends_in_a_full_reconnect() -> None:
    room, alice, _ = pair()
    room.advance(3)
    room.disconnect("alice", duration=30)
    room.advance(60)
    # The ping timeout at 115 (the last message came at 100); attempts lost in the cut, each
    # given up 5 s later, the first one by the failure of the peer connection at 118, which
    # restarts the wait; the server removed Alice at 123; the network is back at 133.
    assert upgrades(room, 2) == [
        (115.0, "alice", True, "unreachable"),
        (118.3, "alice", True, "unreachable"),
        (125.0, "alice", True, "unreachable"),
        (133.2, "alice", True, "state mismatch"),
        (133.2, "alice", False, "joined"),
    ]
    assert alice.state is ConnectionState.CONNECTED and "alice" in room.participants
    assert ("ParticipantDisconnected", "alice", "PA_1", "CONNECTION_TIMEOUT") in seen(room, "bob")


@pytest.mark.parametrize(
    ("action", "expected", "bob_sees"),
    [
        (
            LeaveAction.DISCONNECT,
            [("Disconnected", "MIGRATION", "the server ended the session")],
            [("ParticipantDisconnected", "alice", "PA_1", "MIGRATION")],
        ),
        (
            LeaveAction.RESUME,
            [
                ("Reconnecting", "resume", "MIGRATION", "the server asked for a resume"),
                ("Reconnected", "resume", 1, 0.0),
                ("RoomUpdated", "RM_1", 0),
                ("TokenRefreshed",),
            ],
            [],
        ),
        (
            LeaveAction.RECONNECT,
            [
                ("Reconnecting", "full", "MIGRATION", "the server asked for a full reconnect"),
                ("ParticipantDisconnected", "bob", "PA_2", "MIGRATION"),
                *JOINED_AGAIN,
                ("Reconnected", "full", 1, 0.0),
                *REJOINED,
            ],
            [("ParticipantDisconnected", "alice", "PA_1", "MIGRATION"), *BOB_SEES_ALICE_REJOIN],
        ),
    ],
)
def test_server_leave_actions(
    action: LeaveAction, expected: list[tuple[object, ...]], bob_sees: list[tuple[object, ...]]
) -> None:
    room, _, _ = pair()
    room.leave("alice", action=action, reason=DisconnectReason.MIGRATION)
    assert seen(room, "alice") == expected
    assert seen(room, "bob") == bob_sees


# -- scenarios (Connection.simulate_scenario) ----------------------------------------------------


def test_simulate_signal_reconnect() -> None:
    room, alice, _ = pair()
    alice.simulate_scenario(SimulateScenario.SIGNAL_RECONNECT, now=room.now)
    room.run_until_idle()
    assert seen(room, "alice") == [
        ("Reconnecting", "resume", "SIGNAL_CLOSE", "simulated signal reconnect"),
        ("Reconnected", "resume", 1, 0.0),
        ("RoomUpdated", "RM_1", 0),
        ("TokenRefreshed",),
    ]
    assert upgrades(room, 2) == [(T0, "alice", True, "resumed")]
    assert seen(room, "bob") == []


def test_simulate_full_reconnect() -> None:
    room, alice, _ = pair()
    alice.simulate_scenario(SimulateScenario.FULL_RECONNECT, now=room.now)
    room.run_until_idle()
    assert seen(room, "alice") == [
        ("Reconnecting", "full", "CLIENT_INITIATED", "simulated full reconnect"),
        ("ParticipantDisconnected", "bob", "PA_2", "CLIENT_INITIATED"),
        *JOINED_AGAIN,
        ("Reconnected", "full", 1, 0.0),
        *REJOINED,
    ]
    assert seen(room, "bob") == [
        (
            "ParticipantDisconnected",
            "alice",
            "PA_1",
            "DUPLICATE_IDENTITY",
        ),  # replaced by the rejoin
        *BOB_SEES_ALICE_REJOIN,
    ]
    assert upgrades(room, 2) == [(T0, "alice", False, "joined")]


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [(SimulateScenario.NODE_FAILURE, "SERVER_SHUTDOWN"), (SimulateScenario.MIGRATION, "MIGRATION")],
)
def test_simulate_node_failure_and_migration(scenario: SimulateScenario, reason: str) -> None:
    room, alice, _ = pair()
    alice.simulate_scenario(scenario, now=room.now)
    room.run_until_idle()
    assert seen(room, "alice") == [
        ("Reconnecting", "resume", "SIGNAL_CLOSE", "the signal connection closed (code 1000)"),
        ("Reconnecting", "full", "STATE_MISMATCH", "the server cannot resume this session"),
        ("ParticipantDisconnected", "bob", "PA_2", "STATE_MISMATCH"),
        *JOINED_AGAIN,
        ("Reconnected", "full", 2, 0.0),
        *REJOINED,
    ]
    assert seen(room, "bob") == [
        ("ParticipantDisconnected", "alice", "PA_1", reason),
        *BOB_SEES_ALICE_REJOIN,
    ]
    assert upgrades(room, 2) == [
        (T0, "alice", True, "state mismatch"),
        (T0, "alice", False, "joined"),
    ]


def test_simulate_server_leave() -> None:
    room, alice, _ = pair()
    alice.simulate_scenario(SimulateScenario.SERVER_LEAVE, now=room.now)
    room.run_until_idle()
    assert seen(room, "alice") == [
        ("Disconnected", "SERVER_SHUTDOWN", "the server ended the session")
    ]
    assert seen(room, "bob") == [("ParticipantDisconnected", "alice", "PA_1", "SERVER_SHUTDOWN")]


def test_simulate_speaker() -> None:
    room, alice, _ = pair()
    alice.simulate_scenario(SimulateScenario.SPEAKER, now=room.now)
    room.run_until_idle()
    assert seen(room, "alice") == [("ActiveSpeakersChanged", ("PA_1", pytest.approx(0.9), True))]
    room.advance(4.9)
    assert seen(room, "alice") == []
    room.advance(0.1)
    assert seen(room, "alice") == [
        ("RoomUpdated", "RM_1", 2),  # the 5 s room tick, at the same time
        ("ActiveSpeakersChanged", ("PA_1", 0.0, False)),
    ]
    assert [e for e in seen(room, "bob") if e[0] == "ActiveSpeakersChanged"] == []


@pytest.mark.parametrize("scenario", [SimulateScenario.FORCE_TCP, SimulateScenario.FORCE_TLS])
@pytest.mark.parametrize("single", [True, False])
def test_simulate_candidate_protocol_switches(scenario: SimulateScenario, single: bool) -> None:
    room, alice, _ = pair(single_peer_connection=single)
    alice.simulate_scenario(scenario, now=room.now)
    room.advance(1)
    # An ICE restart of the subscriber, if there is one: answered, nothing to report.
    assert (seen(room, "alice"), upgrades(room, 2)) == ([], [])
    assert alice.state is ConnectionState.CONNECTED


def drop_own_signal(room: MemoryRoom, conn: Connection) -> None:
    """What client-sdk-js does after asking for disconnect_signal_on_resume[_no_messages]
    (the core may do it itself: then there is nothing left to do)."""
    if conn.state is CONNECTED:
        conn.simulate_scenario(SimulateScenario.SIGNAL_RECONNECT, now=room.now)


def test_simulate_disconnect_signal_on_resume() -> None:
    room, alice, _ = pair()
    alice.simulate_scenario(SimulateScenario.DISCONNECT_SIGNAL_ON_RESUME, now=room.now)
    drop_own_signal(room, alice)
    room.run_until_idle()
    # The first resume is answered, then its socket closes: a second one.
    events = seen(room, "alice")
    assert events[0][:3] == ("Reconnecting", "resume", "SIGNAL_CLOSE")
    assert events[1:] == [
        ("Reconnected", "resume", 1, 0.0),
        ("RoomUpdated", "RM_1", 0),
        ("Reconnecting", "resume", "SIGNAL_CLOSE", "the signal connection closed (code 1000)"),
        ("Reconnected", "resume", 1, 0.0),
        ("RoomUpdated", "RM_1", 0),
        ("TokenRefreshed",),
    ]
    assert upgrades(room, 2) == [(T0, "alice", True, "resumed"), (T0, "alice", True, "resumed")]


def test_simulate_disconnect_signal_on_resume_without_messages() -> None:
    room, alice, _ = pair()
    alice.simulate_scenario(SimulateScenario.DISCONNECT_SIGNAL_ON_RESUME_NO_MESSAGES, now=room.now)
    drop_own_signal(room, alice)
    room.advance(1)
    assert upgrades(room, 2) == [
        (T0, "alice", True, "rejected 500"),
        (100.3, "alice", True, "resumed"),
    ]
    events = seen(room, "alice")
    assert events[0][:3] == ("Reconnecting", "resume", "SIGNAL_CLOSE")
    assert events[1:] == [
        ("Reconnected", "resume", 2, 0.3),
        ("RoomUpdated", "RM_1", 0),
        ("TokenRefreshed",),
    ]


def test_a_scenario_request_is_refused_when_not_connected() -> None:
    room, alice, _ = pair()
    alice.close(now=room.now)
    with pytest.raises(Exception, match="simulate_scenario"):
        alice.simulate_scenario(SimulateScenario.SPEAKER, now=room.now)


# -- exactly once, in order, through any of these faults ----------------------------------------

Step = tuple[str, int, float]
steps = st.lists(
    st.tuples(
        st.sampled_from(["send", "advance", "delay", "drop_signal", "fail_peer", "cut", "resume"]),
        st.integers(min_value=0, max_value=1),
        st.floats(min_value=0, max_value=9),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(steps)
def test_reliable_data_arrives_exactly_once_in_order_through_resumes(plan: list[Step]) -> None:
    room, alice, bob = pair()
    sent: list[bytes] = []
    names = ("alice", "bob")
    for i, (what, who, amount) in enumerate(plan):
        name = names[who]
        cut = name in room.offline
        if what == "send":
            for j in range(1 + who * 4):
                payload = b"%d.%d" % (i, j)
                alice.publish_data(payload, now=room.now)
                sent.append(payload)
        elif what == "advance":
            room.advance(amount)
        elif what == "delay":
            room.uplink("alice").delay(amount / 9)
            room.link("alice", "bob").delay(amount / 18)
        elif what == "drop_signal" and name in room.participants:
            room.drop_signal(name)
        elif what == "fail_peer" and name == "alice" and not cut and alice.state is CONNECTED:
            # (Not Bob's: a receiver's failed connection loses what it carried. Not while Alice
            # reconnects: an attempt lost in a cut may then come after the 5 s the server
            # keeps her, and a full reconnect loses the replay buffer.)
            room.fail_peer(name)
        elif what == "cut" and not cut and name in room.participants:
            room.disconnect(name, duration=amount)  # shorter than the ping timeout
        elif what == "resume":
            conn = room.connection(name)
            if conn.state is ConnectionState.CONNECTED:
                conn.simulate_scenario(SimulateScenario.SIGNAL_RECONNECT, now=room.now)
    room.advance(60)
    assert payloads(room, "bob") == sent
    assert all(not (u.outcome == "joined" and u.at > T0) for u in room.upgrades)  # no rejoin
    assert (alice.state, bob.state) == (ConnectionState.CONNECTED, ConnectionState.CONNECTED)


def test_the_room_rejects_a_negative_cut() -> None:
    room, _, _ = pair()
    with pytest.raises(ValueError, match="non-negative"):
        room.disconnect("alice", duration=float("nan"))


def test_what_reaches_a_peer_connection_that_just_failed_is_lost() -> None:
    room, _alice, bob = pair()
    room.fail_client_peer("alice")
    bob.publish_data(b"lost", now=room.now)  # reaches Alice's failed connection first
    room.advance(0.25)  # Alice's first attempt waits that long for a leave on her signal
    assert [s[0] for s in seen(room, "alice")][-1] == "Reconnected"
    assert payloads(room, "alice") == []
    bob.publish_data(b"after", now=room.now)
    room.run_until_idle()
    assert payloads(room, "alice") == [b"after"]


def test_a_server_offer_on_the_single_pc_path_is_answered() -> None:
    room, alice, _ = pair()
    offer = spb.SessionDescription(type="offer", sdp="v=0\r\na=ice-ufrag:memory1\r\n")
    alice.receive_signal(spb.SignalResponse(offer=offer).SerializeToString(), now=room.now)
    room.run_until_idle()
    assert (seen(room, "alice"), alice.state) == ([], ConnectionState.CONNECTED)
