"""The literal state tables of lkproto/_state.py: their shape, their use, their diagram."""

from __future__ import annotations

import importlib.util
import inspect
import itertools
from pathlib import Path
from types import ModuleType

import pytest
from fake_sfu import TOKEN, UNIX0, URL, FakeSfu, drain, participant

from lkproto import (
    Channel,
    Connection,
    ConnectionState,
    LocalProtocolError,
    PeerState,
    PeerTarget,
    ReconnectMode,
    SdpType,
)
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._pb import signal_pb2 as spb
from lkproto._state import (
    DATA_TRACK_VERBS,
    LOCAL_TRACK_TRANSITIONS,
    MODE_TRANSITIONS,
    NEGOTIATION_TRANSITIONS,
    PUBLISH_TRANSITIONS,
    RECONNECT_TRANSITIONS,
    SESSION_TRANSITIONS,
    SUBSCRIPTION_TRANSITIONS,
    TRACK_VERBS,
    TRANSITIONS,
    VERBS,
    Input,
    Machine,
    ModeInput,
    ReconnectInput,
    ReconnectPhase,
    StateMachine,
    Verb,
)

ROOT = Path(__file__).resolve().parents[2]
T0 = 100.0
PUB = PeerTarget.PUBLISHER
P, R = ReconnectPhase, ReconnectInput


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("draw_states", ROOT / "scripts/draw_states.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_diagram_is_what_the_tables_draw() -> None:
    page = (ROOT / "docs/state.md").read_text(encoding="utf-8")
    assert page == load_script().render(), "docs/state.md is stale: run `make docs`"


def test_the_script_checks_and_writes_the_page(tmp_path: Path) -> None:
    script = load_script()
    script.PAGE = tmp_path / "state.md"  # type: ignore[attr-defined]
    assert script.main(["--check"]) == 1  # no page yet
    assert script.main([]) == 0
    assert script.PAGE.read_text(encoding="utf-8") == script.render()
    assert script.main(["--check"]) == 0


def test_the_diagram_draws_every_row() -> None:
    page = load_script().render()
    assert "    NEW --> CONNECTING: connect\n" in page
    assert "    IDLE --> GRACE: peer lost\n" in page
    assert "    FULL --> FULL: resume\n" in page  # a full reconnect stays one
    assert "    RESUME --> NONE: done\n" in page
    assert "| `respond_rpc()` | CONNECTED, RECONNECTING, CLOSED |" in page
    assert "    OFFERING --> APPLYING: answered\n" in page  # the media-track offer queue
    assert "    REPUBLISHING --> PUBLISHED: accepted\n" in page  # both publication machines
    assert "| `TrackManager.publish()` | JOINED |" in page
    assert "    PENDING --> NONE: not_allowed\n" in page  # the data-track subscription
    assert "| `resumed()` | RESUMING |" in page
    arrows = [line for line in page.splitlines() if " --> " in line and "[*]" not in line]
    tables = (
        TRANSITIONS,
        RECONNECT_TRANSITIONS,
        MODE_TRANSITIONS,
        SESSION_TRANSITIONS,
        LOCAL_TRACK_TRANSITIONS,
        NEGOTIATION_TRANSITIONS,
        PUBLISH_TRANSITIONS,
        SUBSCRIPTION_TRANSITIONS,
    )
    assert len(arrows) == sum(len(table) for table in tables)
    assert page.count("| `") == len(VERBS) + len(TRACK_VERBS) + len(DATA_TRACK_VERBS)


def test_every_verb_is_a_connection_method_with_its_states() -> None:
    assert set(VERBS) == set(Verb)
    for verb in Verb:
        assert inspect.isfunction(getattr(Connection, verb.value)), verb


def test_a_verb_in_the_wrong_state_names_the_call_and_the_state() -> None:
    sm = StateMachine()
    with pytest.raises(LocalProtocolError) as info:
        sm.check(Verb.PUBLISH_DATA)
    assert str(info.value) == (
        "publish_data() is not allowed while the connection is NEW "
        "(allowed: CONNECTED, RECONNECTING)"
    )
    assert (info.value.call, info.value.state) == ("publish_data", "NEW")
    assert type(info.value.call) is str  # not the enum member
    sm.check(Verb.CONNECT)  # allowed: no error


def test_a_transition_missing_from_a_table_is_a_core_bug() -> None:
    with pytest.raises(AssertionError, match=r"^no transition from NEW on JOINED$"):
        StateMachine().process(Input.JOINED)
    mode: Machine[ReconnectMode | None, ModeInput] = Machine(MODE_TRANSITIONS, None)
    with pytest.raises(AssertionError, match=r"^no transition from None on DONE$"):
        mode.process(ModeInput.DONE)
    phase = Machine(RECONNECT_TRANSITIONS, P.IDLE)
    assert phase.process(R.PEER_LOST) is P.GRACE
    with pytest.raises(AssertionError, match=r"^no transition from GRACE on ANSWERED$"):
        phase.process(R.ANSWERED)
    assert phase.state is P.GRACE  # unchanged


def test_the_reconnect_tables_are_closed_and_total_where_they_must_be() -> None:
    # Every phase is reachable from IDLE, and every phase but IDLE can end and be lost again.
    reachable, frontier = {P.IDLE}, [P.IDLE]
    while frontier:
        state = frontier.pop()
        for (source, _), target in RECONNECT_TRANSITIONS.items():
            if source is state and target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert reachable == set(P)
    for phase in set(P) - {P.IDLE}:
        assert RECONNECT_TRANSITIONS[phase, R.ENDED] is P.IDLE
        assert RECONNECT_TRANSITIONS[phase, R.LOST] is P.BACKOFF
    # Only a reconnect that was not under way can keep its signal.
    assert [source for source, event in RECONNECT_TRANSITIONS if event is R.PEER_LOST] == [P.IDLE]
    # The mode machine answers every input once a reconnect is under way.
    modes = [None, ReconnectMode.RESUME, ReconnectMode.FULL]
    assert set(MODE_TRANSITIONS) == set(itertools.product(modes, ModeInput)) - {
        (None, ModeInput.DONE)
    }
    assert all(MODE_TRANSITIONS[mode, ModeInput.DONE] is None for mode in modes[1:])
    assert all(
        MODE_TRANSITIONS[ReconnectMode.FULL, i] is ReconnectMode.FULL
        for i in (ModeInput.RESUME, ModeInput.FULL)
    )


# -- the phase as a Connection goes through a reconnect ----------------------------------------


def joined() -> Connection:
    ids = (f"id-{i}" for i in itertools.count(1))
    conn = Connection(now=T0, unix_time_ms=UNIX0, id_factory=lambda: next(ids), random=lambda: 0)
    conn.connect(URL, TOKEN, now=T0)
    conn.receive_signal(FakeSfu.join(others=[participant("bob")]), now=T0)
    conn.local_description_created(PUB, "v=0 offer", SdpType.OFFER, now=T0)
    conn.peer_state_changed(PUB, PeerState.CONNECTED, now=T0)
    conn.data_channel_opened(Channel.RELIABLE, now=T0)
    drain(conn)
    return conn


def phase(conn: Connection) -> ReconnectPhase:
    return conn._reconnector.phase


def test_a_resume_after_a_lost_signal_needs_no_peer_recovery() -> None:
    conn = joined()
    assert phase(conn) is P.IDLE
    conn.signal_closed(now=T0 + 1, code=1006)
    assert (phase(conn), conn.reconnect_mode) == (P.BACKOFF, ReconnectMode.RESUME)
    conn.handle_timer(T0 + 1)
    assert phase(conn) is P.SIGNAL
    conn.receive_signal(FakeSfu.response(reconnect=spb.ReconnectResponse()), now=T0 + 2)
    # The peer connection carried on: answered and recovered at once.
    assert (phase(conn), conn.state, conn.reconnect_mode) == (
        P.IDLE,
        ConnectionState.CONNECTED,
        None,
    )


def test_a_failed_peer_connection_keeps_the_signal_then_restarts_ice() -> None:
    conn = joined()
    conn.peer_state_changed(PUB, PeerState.FAILED, now=T0 + 1)
    assert (phase(conn), conn.reconnect_mode) == (P.GRACE, ReconnectMode.RESUME)
    assert drain(conn)[0] == []  # the signal stays open
    conn.handle_timer(T0 + 1.25)
    assert phase(conn) is P.SIGNAL
    assert drain(conn)[0][0] == cmd.CloseSignal(code=1000)  # the kept signal, replaced
    conn.receive_signal(FakeSfu.response(reconnect=spb.ReconnectResponse()), now=T0 + 2)
    assert phase(conn) is P.PEER
    assert drain(conn)[0][-1] == cmd.CreateOffer(target=PUB, ice_restart=True)
    conn.close(now=T0 + 2.5)
    assert (phase(conn), conn._reconnector.mode) == (P.IDLE, None)  # the session ended
    assert drain(conn)[0][0] == cmd.SendSignal(data=conn._ctx.codec.leave(1))  # signal works


def test_a_peer_connection_that_never_connected_fails_into_a_full_reconnect_at_once() -> None:
    # Nothing to resume: the full reconnect's `Reconnecting` is not held through GRACE, and
    # the attempt that ends GRACE has none to emit (it closes the kept signal all the same).
    ids = (f"id-{i}" for i in itertools.count(1))
    conn = Connection(now=T0, unix_time_ms=UNIX0, id_factory=lambda: next(ids), random=lambda: 0)
    conn.connect(URL, TOKEN, now=T0)
    conn.receive_signal(FakeSfu.join(), now=T0)
    drain(conn)
    conn.peer_state_changed(PUB, PeerState.FAILED, now=T0 + 1)
    assert (phase(conn), conn.reconnect_mode) == (P.GRACE, ReconnectMode.FULL)
    reconnecting = [e for e in drain(conn)[1] if isinstance(e, ev.Reconnecting)]
    assert [e.mode for e in reconnecting] == [ReconnectMode.FULL]
    conn.handle_timer(T0 + 1.25)
    assert phase(conn) is P.SIGNAL
    commands, events = drain(conn)
    assert commands[0] == cmd.CloseSignal(code=1000)  # the kept signal, replaced
    assert not any(isinstance(e, ev.Reconnecting) for e in events)


def test_a_full_reconnect_walks_the_phases_until_the_new_channel_opens() -> None:
    conn = joined()
    conn.receive_signal(FakeSfu.leave(reason=0, action=2), now=T0 + 1)  # RECONNECT
    assert (phase(conn), conn.reconnect_mode) == (P.BACKOFF, ReconnectMode.FULL)
    conn.handle_timer(T0 + 1)
    assert phase(conn) is P.SIGNAL
    conn.receive_signal(FakeSfu.join(others=[participant("bob")]), now=T0 + 2)
    assert phase(conn) is P.PEER
    conn.data_channel_opened(Channel.LOSSY, now=T0 + 3)
    assert phase(conn) is P.PEER  # only the reliable channel counts
    conn.data_channel_opened(Channel.RELIABLE, now=T0 + 3)
    assert (phase(conn), conn.state) == (P.IDLE, ConnectionState.CONNECTED)
    assert drain(conn)[1][-1] == ev.Reconnected(mode=ReconnectMode.FULL, attempts=1, duration=2.0)


def test_peer_states_may_be_given_as_enum_or_string() -> None:
    by_enum, by_string = joined(), joined()
    for state in PeerState:
        by_enum.peer_state_changed(PUB, state, now=T0 + 1)
        by_string.peer_state_changed(PUB, state.value, now=T0 + 1)
    assert drain(by_enum) == drain(by_string)
    assert phase(by_enum) is phase(by_string) is P.BACKOFF  # failed (GRACE), then closed
    assert PeerState("failed") is PeerState.FAILED and PeerState.FAILED == "failed"


@pytest.mark.parametrize("bad", ["checking", "CONNECTED", "", 1, None])
def test_an_unknown_peer_state_is_refused_at_the_call(bad: object) -> None:
    conn = joined()
    with pytest.raises(LocalProtocolError) as info:
        conn.peer_state_changed(PUB, bad, now=T0 + 1)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"peer_state_changed: {bad!r} is not a peer connection state "
        "(new, connecting, connected, disconnected, failed, closed)"
    )
    assert (info.value.call, info.value.state) == ("peer_state_changed", "CONNECTED")
    assert drain(conn) == ([], [])
    assert phase(conn) is P.IDLE
