"""The states of a `Connection` and every change of them, as literal tables.

Theory of operation
- Three machines, each a table `(state, input) -> state` driven through `Machine`;
  `scripts/draw_states.py` draws them into docs/state.md (a test fails when that page is
  stale). The sub-machines `streams` and `rpc` keep their own per-stream and per-call state;
  a new feature's machine (tracks, data tracks, E2EE) gets its table here.
- The coarse connection state, `ConnectionState`: NEW -> CONNECTING -> CONNECTED -> CLOSED,
  with RECONNECTING between CONNECTED and CONNECTED again while an interrupted session is
  resumed or rejoined (protocol-reference D.7, D.8): the signal closed or went quiet, the
  peer connection failed, or the server asked.
- The reconnect phase, `ReconnectPhase`: what a reconnect is waiting for. IDLE whenever the
  connection is not RECONNECTING. A peer connection failure with the signal still working
  waits in GRACE (the old signal stays open, and a `leave` on it is obeyed) before the first
  attempt; any other interruption waits in BACKOFF (`reconnect_delay`). An attempt opens a
  signal connection and waits in SIGNAL for the server's answer (a `ReconnectResponse` to a
  resume, a `JoinResponse` to a rejoin); then in PEER while the peer connection recovers (an
  ICE restart, or the rejoined session's new data channel). A new interruption in any phase
  goes back to BACKOFF; the session ending, from any phase, to IDLE.
- The reconnect mode, `ReconnectMode` (None while not reconnecting): RESUME keeps the
  session, FULL starts a new one (D.8). An interruption asks for one of them; once FULL, a
  reconnect stays FULL until it completes or the session ends.
- Application verbs (`Verb`) are checked against `VERBS` before they change anything: a
  verb in the wrong state raises `LocalProtocolError`. So an input missing from a table can
  only come from a core bug, and raises `AssertionError`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Generic, TypeVar

from lkproto.errors import LocalProtocolError
from lkproto.models import ConnectionState as S
from lkproto.models import ReconnectMode

__all__ = [
    "MODE_TRANSITIONS",
    "RECONNECT_TRANSITIONS",
    "TRANSITIONS",
    "VERBS",
    "Input",
    "Machine",
    "ModeInput",
    "ReconnectInput",
    "ReconnectPhase",
    "StateMachine",
    "Verb",
]


# -- the coarse connection state --------------------------------------------------------------


class Input(enum.Enum):
    CONNECT = "connect"  # the application asked to join
    JOINED = "joined"  # JoinResponse accepted
    INTERRUPTED = "interrupted"  # signal or peer lost, or a server LeaveRequest RESUME/RECONNECT
    RECONNECTED = "reconnected"  # a resume or re-join completed
    ENDED = "ended"  # close(), a fatal fault, or a server DISCONNECT


TRANSITIONS: dict[tuple[S, Input], S] = {
    (S.NEW, Input.CONNECT): S.CONNECTING,
    (S.CONNECTING, Input.JOINED): S.CONNECTED,
    (S.CONNECTED, Input.INTERRUPTED): S.RECONNECTING,
    (S.RECONNECTING, Input.RECONNECTED): S.CONNECTED,
    (S.NEW, Input.ENDED): S.CLOSED,
    (S.CONNECTING, Input.ENDED): S.CLOSED,
    (S.CONNECTED, Input.ENDED): S.CLOSED,
    (S.RECONNECTING, Input.ENDED): S.CLOSED,
}


# -- the reconnect phase (protocol-reference D.8) -------------------------------------------


class ReconnectPhase(enum.Enum):
    """What a reconnect under way is waiting for (IDLE: no reconnect is under way)."""

    IDLE = "idle"
    GRACE = "grace"  # the peer connection failed; the signal is kept until the first attempt
    BACKOFF = "backoff"  # waiting for the next attempt
    SIGNAL = "signal"  # an attempt's signal connection is opening; awaiting the server's answer
    PEER = "peer"  # the server answered; the peer connection is being recovered


class ReconnectInput(enum.Enum):
    LOST = "lost"  # an interruption that closes (or lost) the signal connection
    PEER_LOST = "peer lost"  # the peer connection failed while the signal still works
    ATTEMPT = "attempt"  # the attempt's time came: a signal connection is opened
    FAILED = "failed"  # the attempt failed: refused, closed, unexpected answer, no answer
    ANSWERED = "answered"  # the server accepted the resume or the rejoin
    RECOVERED = "recovered"  # the peer connection carries data again: reconnected
    ENDED = "ended"  # the session ended


_P, _R = ReconnectPhase, ReconnectInput

RECONNECT_TRANSITIONS: dict[tuple[ReconnectPhase, ReconnectInput], ReconnectPhase] = {
    (_P.IDLE, _R.LOST): _P.BACKOFF,
    (_P.IDLE, _R.PEER_LOST): _P.GRACE,
    (_P.GRACE, _R.LOST): _P.BACKOFF,
    (_P.BACKOFF, _R.LOST): _P.BACKOFF,
    (_P.SIGNAL, _R.LOST): _P.BACKOFF,
    (_P.PEER, _R.LOST): _P.BACKOFF,
    (_P.GRACE, _R.ATTEMPT): _P.SIGNAL,
    (_P.BACKOFF, _R.ATTEMPT): _P.SIGNAL,
    (_P.SIGNAL, _R.FAILED): _P.BACKOFF,
    (_P.SIGNAL, _R.ANSWERED): _P.PEER,
    (_P.PEER, _R.RECOVERED): _P.IDLE,
    (_P.GRACE, _R.ENDED): _P.IDLE,
    (_P.BACKOFF, _R.ENDED): _P.IDLE,
    (_P.SIGNAL, _R.ENDED): _P.IDLE,
    (_P.PEER, _R.ENDED): _P.IDLE,
}


class ModeInput(enum.Enum):
    RESUME = "resume"  # an interruption a resume can repair
    FULL = "full"  # one only a new session can: resuming is off, refused, or cannot work
    DONE = "done"  # reconnected, or the session ended


_M = ReconnectMode

MODE_TRANSITIONS: dict[tuple[ReconnectMode | None, ModeInput], ReconnectMode | None] = {
    (None, ModeInput.RESUME): _M.RESUME,
    (None, ModeInput.FULL): _M.FULL,
    (_M.RESUME, ModeInput.RESUME): _M.RESUME,
    (_M.RESUME, ModeInput.FULL): _M.FULL,
    (_M.RESUME, ModeInput.DONE): None,
    (_M.FULL, ModeInput.RESUME): _M.FULL,  # a new session stays one
    (_M.FULL, ModeInput.FULL): _M.FULL,
    (_M.FULL, ModeInput.DONE): None,
}


# -- application verbs -----------------------------------------------------------------------


class Verb(enum.StrEnum):
    """The application verbs whose state is checked; the value is the method's name."""

    CONNECT = "connect"
    PUBLISH_DATA = "publish_data"
    SET_METADATA = "set_metadata"
    SET_NAME = "set_name"
    SET_ATTRIBUTES = "set_attributes"
    SIMULATE_SCENARIO = "simulate_scenario"
    REGISTER_STREAM_TOPIC = "register_stream_topic"
    UNREGISTER_STREAM_TOPIC = "unregister_stream_topic"
    OPEN_STREAM = "open_stream"
    WRITE_STREAM = "write_stream"
    CLOSE_STREAM = "close_stream"
    SEND_STREAM = "send_stream"
    STREAM_CONSUMED = "stream_consumed"
    STREAM_DISCARDED = "stream_discarded"
    REGISTER_RPC_METHOD = "register_rpc_method"
    UNREGISTER_RPC_METHOD = "unregister_rpc_method"
    PERFORM_RPC = "perform_rpc"
    RESPOND_RPC = "respond_rpc"


_ANY = frozenset(S)
# Joined: sends go out, or wait in the send queue while a resume is under way (A.7).
_JOINED = frozenset({S.CONNECTED, S.RECONNECTING})

#: The states in which each application verb is allowed.
VERBS: dict[Verb, frozenset[S]] = {
    Verb.CONNECT: frozenset({S.NEW}),
    Verb.PUBLISH_DATA: _JOINED,
    Verb.SET_METADATA: frozenset({S.CONNECTED}),
    Verb.SET_NAME: frozenset({S.CONNECTED}),
    Verb.SET_ATTRIBUTES: frozenset({S.CONNECTED}),
    Verb.SIMULATE_SCENARIO: frozenset({S.CONNECTED}),
    # Data streams. Handlers (topics) may be registered before connecting, so that no stream
    # arriving right after the join is dropped; reader flow control is harmless at any time.
    Verb.REGISTER_STREAM_TOPIC: _ANY,
    Verb.UNREGISTER_STREAM_TOPIC: _ANY,
    Verb.OPEN_STREAM: _JOINED,
    Verb.WRITE_STREAM: _JOINED,
    Verb.CLOSE_STREAM: _JOINED,
    Verb.SEND_STREAM: _JOINED,
    Verb.STREAM_CONSUMED: _ANY,
    Verb.STREAM_DISCARDED: _ANY,
    # RPC. Methods may be registered at any time and persist for the session. A handler may
    # finish after the session ended: its answer is then reported as dropped, not refused.
    Verb.REGISTER_RPC_METHOD: _ANY,
    Verb.UNREGISTER_RPC_METHOD: _ANY,
    Verb.PERFORM_RPC: _JOINED,
    Verb.RESPOND_RPC: _JOINED | {S.CLOSED},
}


# -- the machines ----------------------------------------------------------------------------

_State = TypeVar("_State")
_Input = TypeVar("_Input", bound=enum.Enum)


class Machine(Generic[_State, _Input]):
    """One state, changed only through `table`."""

    __slots__ = ("state", "table")

    def __init__(self, table: Mapping[tuple[_State, _Input], _State], initial: _State) -> None:
        self.table = table
        self.state = initial

    def process(self, event: _Input) -> _State:
        try:
            new = self.table[self.state, event]
        except KeyError:
            state = getattr(self.state, "name", self.state)
            raise AssertionError(f"no transition from {state} on {event.name}") from None
        self.state = new
        return new


class StateMachine(Machine[S, Input]):
    """The coarse connection state, and the verbs it allows."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(TRANSITIONS, S.NEW)

    def check(self, verb: Verb) -> None:
        if self.state not in VERBS[verb]:
            allowed = ", ".join(sorted(s.name for s in VERBS[verb]))
            raise LocalProtocolError(
                f"{verb.value}() is not allowed while the connection is {self.state.name} "
                f"(allowed: {allowed})",
                call=verb.value,
                state=self.state.name,
            )
