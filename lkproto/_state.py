"""The states of a `Connection` and every change of them, as literal tables.

Theory of operation
- Three machines of the connection, each a table `(state, input) -> state` driven through
  `Machine`, and three of data tracks (last bullet); `scripts/draw_states.py` draws them all
  into docs/state.md (a test fails when that page is stale). The sub-machines `streams` and
  `rpc` keep their own per-stream and per-call state; a new feature's machine (tracks,
  E2EE) gets its table here.
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
- Data tracks (`lkproto.datatracks`, protocol-reference-2 section 1) have three machines of
  their own, driven through `advance` and checked with `check_verb` (`DATA_TRACK_VERBS`):
  `SessionPhase`, one per manager: data-track requests go out only while JOINED; while
  RESUMING they wait for the resume to finish (the server still has our tracks and
  subscriptions); while REJOINING (a full reconnect) the server has forgotten them, so
  nothing is sent until the new join. `PublishState`, one per local track (pub_handle):
  PENDING until the server answers the `PublishDataTrackRequest`, PUBLISHED, REPUBLISHING
  after a full reconnect until the republish is answered (pushes fail with QUEUE_FULL, as
  Rust), UNPUBLISHED for good. `SubscriptionState`, one per remote track: NONE, PENDING until
  the server's `DataTrackSubscriberHandles` names the track (or its
  `SubscriptionPermissionUpdate` refuses it), ACTIVE after that (the handle may later be
  withdrawn by a snapshot, or cleared by a full reconnect, until a new snapshot maps it).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Generic, TypeVar

from lkproto.errors import LocalProtocolError
from lkproto.models import ConnectionState as S
from lkproto.models import ReconnectMode

__all__ = [
    "DATA_TRACK_VERBS",
    "MODE_TRANSITIONS",
    "PUBLISH_TRANSITIONS",
    "RECONNECT_TRANSITIONS",
    "SESSION_TRANSITIONS",
    "SUBSCRIPTION_TRANSITIONS",
    "TRANSITIONS",
    "VERBS",
    "Input",
    "Machine",
    "ModeInput",
    "PublishInput",
    "PublishState",
    "ReconnectInput",
    "ReconnectPhase",
    "SessionInput",
    "SessionPhase",
    "StateMachine",
    "SubscriptionInput",
    "SubscriptionState",
    "Verb",
    "advance",
    "check_verb",
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
    PUBLISH_DATA_TRACK = "publish_data_track"
    UNPUBLISH_DATA_TRACK = "unpublish_data_track"
    PUSH_DATA_TRACK_FRAME = "push_data_track_frame"
    SUBSCRIBE_DATA_TRACK = "subscribe_data_track"
    UNSUBSCRIBE_DATA_TRACK = "unsubscribe_data_track"
    SET_DATA_TRACK_PIPELINE_OPTIONS = "set_data_track_pipeline_options"


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
    # Data tracks. Publishing and subscribing need the server's session as it is (not while a
    # reconnect is under way); ending them and pushing are allowed at any time (the manager
    # answers a push on a track that is gone with PushFrameError).
    Verb.PUBLISH_DATA_TRACK: frozenset({S.CONNECTED}),
    Verb.UNPUBLISH_DATA_TRACK: _ANY,
    Verb.PUSH_DATA_TRACK_FRAME: _ANY,
    Verb.SUBSCRIBE_DATA_TRACK: frozenset({S.CONNECTED}),
    Verb.UNSUBSCRIBE_DATA_TRACK: _ANY,
    Verb.SET_DATA_TRACK_PIPELINE_OPTIONS: _ANY,
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


# -- data tracks (lkproto.datatracks) ---------------------------------------------------------


class SessionPhase(enum.Enum):
    """Where the signal session is, as far as data tracks care."""

    IDLE = "idle"  #: not joined yet
    JOINED = "joined"  #: requests go out at once
    RESUMING = "resuming"  #: signal down, session kept: requests wait for `resumed()`
    REJOINING = "rejoining"  #: full reconnect: the server forgot our tracks and subscriptions
    CLOSED = "closed"  #: the session ended for good


class SessionInput(enum.Enum):
    JOIN = "join"  #: a JoinResponse (first join, or the join that ends a full reconnect)
    RESUME = "resume"  #: the session is being resumed
    RESUMED = "resumed"  #: the resume completed
    REJOIN = "rejoin"  #: a full reconnect began
    CLOSE = "close"  #: the session ended


SESSION_TRANSITIONS: dict[tuple[SessionPhase, SessionInput], SessionPhase] = {
    (SessionPhase.IDLE, SessionInput.JOIN): SessionPhase.JOINED,
    (SessionPhase.JOINED, SessionInput.RESUME): SessionPhase.RESUMING,
    (SessionPhase.JOINED, SessionInput.REJOIN): SessionPhase.REJOINING,
    (SessionPhase.RESUMING, SessionInput.RESUME): SessionPhase.RESUMING,  # a retry
    (SessionPhase.RESUMING, SessionInput.RESUMED): SessionPhase.JOINED,
    (SessionPhase.RESUMING, SessionInput.REJOIN): SessionPhase.REJOINING,  # resume refused
    (SessionPhase.REJOINING, SessionInput.REJOIN): SessionPhase.REJOINING,  # a retry
    (SessionPhase.REJOINING, SessionInput.JOIN): SessionPhase.JOINED,
    (SessionPhase.IDLE, SessionInput.CLOSE): SessionPhase.CLOSED,
    (SessionPhase.JOINED, SessionInput.CLOSE): SessionPhase.CLOSED,
    (SessionPhase.RESUMING, SessionInput.CLOSE): SessionPhase.CLOSED,
    (SessionPhase.REJOINING, SessionInput.CLOSE): SessionPhase.CLOSED,
    (SessionPhase.CLOSED, SessionInput.CLOSE): SessionPhase.CLOSED,  # idempotent
}


class PublishState(enum.Enum):
    """A local track's publication (Rust `PublishState`, plus the pending request)."""

    PENDING = "pending"  #: the publish request awaits the server's answer
    PUBLISHED = "published"  #: frames may be pushed
    REPUBLISHING = "republishing"  #: full reconnect: pushes fail with QUEUE_FULL
    UNPUBLISHED = "unpublished"  #: ended for good; pushes fail with TRACK_UNPUBLISHED


class PublishInput(enum.Enum):
    ACCEPTED = "accepted"  #: PublishDataTrackResponse
    REFUSED = "refused"  #: RequestResponse echoing our PublishDataTrackRequest
    TIMED_OUT = "timed_out"  #: no answer within the publish timeout
    UNPUBLISH = "unpublish"  #: the application unpublished (or cancelled the publish)
    SERVER_UNPUBLISHED = "server_unpublished"  #: an UnpublishDataTrackResponse we did not ask for
    CONNECTION_LOST = "connection_lost"  #: a full reconnect began
    CLOSE = "close"  #: the session ended


_DP, _DPI = PublishState, PublishInput
PUBLISH_TRANSITIONS: dict[tuple[PublishState, PublishInput], PublishState] = {
    (_DP.PENDING, _DPI.ACCEPTED): _DP.PUBLISHED,
    (_DP.PENDING, _DPI.REFUSED): _DP.UNPUBLISHED,
    (_DP.PENDING, _DPI.TIMED_OUT): _DP.UNPUBLISHED,
    (_DP.PENDING, _DPI.UNPUBLISH): _DP.UNPUBLISHED,
    (_DP.PENDING, _DPI.CONNECTION_LOST): _DP.UNPUBLISHED,  # Rust: PublishError::Disconnected
    (_DP.PENDING, _DPI.CLOSE): _DP.UNPUBLISHED,
    (_DP.PUBLISHED, _DPI.UNPUBLISH): _DP.UNPUBLISHED,
    (_DP.PUBLISHED, _DPI.SERVER_UNPUBLISHED): _DP.UNPUBLISHED,
    (_DP.PUBLISHED, _DPI.CONNECTION_LOST): _DP.REPUBLISHING,
    (_DP.PUBLISHED, _DPI.CLOSE): _DP.UNPUBLISHED,
    (_DP.REPUBLISHING, _DPI.ACCEPTED): _DP.PUBLISHED,
    (_DP.REPUBLISHING, _DPI.REFUSED): _DP.UNPUBLISHED,
    (_DP.REPUBLISHING, _DPI.TIMED_OUT): _DP.UNPUBLISHED,
    (_DP.REPUBLISHING, _DPI.UNPUBLISH): _DP.UNPUBLISHED,
    (_DP.REPUBLISHING, _DPI.SERVER_UNPUBLISHED): _DP.UNPUBLISHED,
    (_DP.REPUBLISHING, _DPI.CONNECTION_LOST): _DP.REPUBLISHING,
    (_DP.REPUBLISHING, _DPI.CLOSE): _DP.UNPUBLISHED,
}


class SubscriptionState(enum.Enum):
    """Our subscription to one remote track."""

    NONE = "none"
    PENDING = "pending"  #: subscribe sent; waiting for the server to assign a handle
    ACTIVE = "active"  #: a handle was assigned (it may be withdrawn and re-assigned later)


class SubscriptionInput(enum.Enum):
    SUBSCRIBE = "subscribe"
    HANDLE_ASSIGNED = "handle_assigned"  #: a DataTrackSubscriberHandles snapshot names it
    TIMED_OUT = "timed_out"  #: no handle within the subscribe timeout
    UNSUBSCRIBE = "unsubscribe"
    UNPUBLISHED = "unpublished"  #: the publisher unpublished the track (or left)
    NOT_ALLOWED = "not_allowed"  #: a SubscriptionPermissionUpdate refused it
    CLOSE = "close"


_DS, _DSI = SubscriptionState, SubscriptionInput
SUBSCRIPTION_TRANSITIONS: dict[tuple[SubscriptionState, SubscriptionInput], SubscriptionState] = {
    (_DS.NONE, _DSI.SUBSCRIBE): _DS.PENDING,
    (_DS.PENDING, _DSI.HANDLE_ASSIGNED): _DS.ACTIVE,
    (_DS.PENDING, _DSI.TIMED_OUT): _DS.NONE,
    (_DS.PENDING, _DSI.UNSUBSCRIBE): _DS.NONE,
    (_DS.PENDING, _DSI.UNPUBLISHED): _DS.NONE,
    (_DS.PENDING, _DSI.NOT_ALLOWED): _DS.NONE,
    (_DS.PENDING, _DSI.CLOSE): _DS.NONE,
    (_DS.ACTIVE, _DSI.HANDLE_ASSIGNED): _DS.ACTIVE,
    (_DS.ACTIVE, _DSI.UNSUBSCRIBE): _DS.NONE,
    (_DS.ACTIVE, _DSI.UNPUBLISHED): _DS.NONE,
    (_DS.ACTIVE, _DSI.NOT_ALLOWED): _DS.NONE,
    (_DS.ACTIVE, _DSI.CLOSE): _DS.NONE,
}

_DT_ANY = frozenset(SessionPhase)

#: The session phases in which each application verb of the manager is allowed.
DATA_TRACK_VERBS: dict[str, frozenset[SessionPhase]] = {
    "joined": frozenset({SessionPhase.IDLE, SessionPhase.REJOINING}),
    "reconnecting": frozenset({SessionPhase.JOINED, SessionPhase.RESUMING, SessionPhase.REJOINING}),
    "resumed": frozenset({SessionPhase.RESUMING}),
    "disconnected": _DT_ANY,
    "publish_data_track": frozenset({SessionPhase.JOINED}),
    "subscribe": frozenset({SessionPhase.JOINED}),
    # Ending things is always allowed: requests the server must see wait for a resume.
    "unpublish": _DT_ANY,
    "unsubscribe": _DT_ANY,
    "try_push": _DT_ANY,
    "set_pipeline_options": _DT_ANY,
}

_DState = TypeVar("_DState", SessionPhase, PublishState, SubscriptionState)


def advance(
    table: Mapping[tuple[_DState, _Input], _DState], state: _DState, event: _Input
) -> _DState:
    """The state after `event`; AssertionError if the table has no such transition."""
    new = table.get((state, event))
    if new is None:
        raise AssertionError(f"no transition from {state.name} on {event.name}")
    return new


def check_verb(verb: str, phase: SessionPhase) -> None:
    """Raise `LocalProtocolError` if `verb` is not allowed in `phase`."""
    if phase not in DATA_TRACK_VERBS[verb]:
        allowed = ", ".join(sorted(p.name for p in DATA_TRACK_VERBS[verb]))
        raise LocalProtocolError(
            f"{verb}() is not allowed while the data-track session is {phase.name} "
            f"(allowed: {allowed})",
            call=verb,
            state=phase.name,
        )
