"""The states of a `Connection` and every change of them, as literal tables.

Theory of operation
- Three machines of the connection, each a table `(state, input) -> state` driven through
  `Machine`; `scripts/draw_states.py` draws them, and the track managers' machines below, into
  docs/state.md (a test fails when that page is stale). The sub-machines `streams` and `rpc`
  keep their own per-stream and per-call state; a new feature's machine gets its table here.
  The media-track manager's three machines (`lkproto.tracks`: its session phase, each local
  publication, the single peer connection's offer/answer queue) are at the end, with their own
  verb table, and after them the data-track manager's (`lkproto.datatracks`: the same session
  phase table, each local publication, each subscription), with theirs.
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
    "LOCAL_TRACK_TRANSITIONS",
    "MODE_TRANSITIONS",
    "NEGOTIATION_TRANSITIONS",
    "PUBLISH_TRANSITIONS",
    "RECONNECT_TRANSITIONS",
    "SESSION_TRANSITIONS",
    "SUBSCRIPTION_TRANSITIONS",
    "TRACK_VERBS",
    "TRANSITIONS",
    "VERBS",
    "Input",
    "LocalTrackInput",
    "LocalTrackState",
    "Machine",
    "ModeInput",
    "NegotiationInput",
    "NegotiationState",
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
    "check_data_track_verb",
    "check_track_verb",
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
    PUBLISH_TRACK = "publish_track"
    UNPUBLISH_TRACK = "unpublish_track"
    SET_TRACK_MUTED = "set_track_muted"
    SET_TRACK_SUBSCRIBED = "set_track_subscribed"
    UPDATE_TRACK_SETTINGS = "update_track_settings"
    SET_TRACK_SUBSCRIPTION_PERMISSIONS = "set_track_subscription_permissions"


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
    # Media tracks. A publish needs the server's answer now; ending one is always allowed;
    # wishes (mute, subscriptions, settings, permissions) made while reconnecting are kept
    # and sent once the session is back (`lkproto.tracks`).
    Verb.PUBLISH_TRACK: frozenset({S.CONNECTED}),
    Verb.UNPUBLISH_TRACK: _ANY,
    Verb.SET_TRACK_MUTED: _JOINED,
    Verb.SET_TRACK_SUBSCRIBED: _JOINED,
    Verb.UPDATE_TRACK_SETTINGS: _JOINED,
    Verb.SET_TRACK_SUBSCRIPTION_PERMISSIONS: _JOINED,
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


# -- media tracks (lkproto.tracks) ------------------------------------------------------------
#
# Three machines, each keyed by `(state, input)` (after h11's `_state.py`):
#
# - `SessionPhase`, one per manager: where the signal session is. Track requests go out only
#   while JOINED; while RESUMING they wait for the resume to finish (the server kept our
#   publications and subscriptions, findings F5.1); while REJOINING (a full reconnect) the
#   server has forgotten them, so nothing is sent until the new join (F5.2).
# - `LocalTrackState`, one per local publication: PENDING until the server answers the
#   `AddTrackRequest`, PUBLISHED, REPUBLISHING after a full reconnect until the republish (with
#   a new cid) is answered, UNPUBLISHED for good. A PENDING publication that is interrupted by
#   a full reconnect stays PENDING and is re-requested after the join (F5.2).
# - `NegotiationState`, one per manager: the single-PC offer/answer queue. At most one offer is
#   in flight (F3.5): CREATING (the adapter is creating and setting offer `n`), OFFERING (offer
#   `n` was sent; waiting for the answer whose `SessionDescription.id` is `n`, F3.6), APPLYING
#   (the adapter is setting that answer). Back to IDLE once the adapter confirms, or when an
#   offer is given up: its answer was lost in a resume (F5.3) or never came in time.
#
# A transition missing from a table is a bug in the manager: verbs check their allowed phases
# first (`TRACK_VERBS`) and raise `LocalProtocolError`, so `advance` raises `AssertionError`
# only for a core bug.


class SessionPhase(enum.Enum):
    """Where the signal session is, as far as media tracks care."""

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


_SP, _SI = SessionPhase, SessionInput
SESSION_TRANSITIONS: dict[tuple[SessionPhase, SessionInput], SessionPhase] = {
    (_SP.IDLE, _SI.JOIN): _SP.JOINED,
    (_SP.JOINED, _SI.RESUME): _SP.RESUMING,
    (_SP.JOINED, _SI.REJOIN): _SP.REJOINING,
    (_SP.RESUMING, _SI.RESUME): _SP.RESUMING,  # a retry
    (_SP.RESUMING, _SI.RESUMED): _SP.JOINED,
    (_SP.RESUMING, _SI.REJOIN): _SP.REJOINING,  # the resume was refused
    (_SP.REJOINING, _SI.REJOIN): _SP.REJOINING,  # a retry
    (_SP.REJOINING, _SI.JOIN): _SP.JOINED,
    (_SP.IDLE, _SI.CLOSE): _SP.CLOSED,
    (_SP.JOINED, _SI.CLOSE): _SP.CLOSED,
    (_SP.RESUMING, _SI.CLOSE): _SP.CLOSED,
    (_SP.REJOINING, _SI.CLOSE): _SP.CLOSED,
    (_SP.CLOSED, _SI.CLOSE): _SP.CLOSED,  # idempotent
}


class LocalTrackState(enum.Enum):
    """One of our publications."""

    PENDING = "pending"  #: AddTrackRequest sent (or to be re-sent after the join); no answer yet
    PUBLISHED = "published"  #: the server accepted it; it has a sid and (soon) a send slot
    REPUBLISHING = "republishing"  #: full reconnect: republished under a new cid, no answer yet
    UNPUBLISHED = "unpublished"  #: ended for good


class LocalTrackInput(enum.Enum):
    """What happens to one of our publications."""

    ACCEPTED = "accepted"  #: TrackPublishedResponse with our cid
    REFUSED = "refused"  #: RequestResponse echoing our AddTrackRequest (not QUEUED)
    TIMED_OUT = "timed_out"  #: no answer within the publish timeout
    UNPUBLISH = "unpublish"  #: the application unpublished (or cancelled the publish)
    SERVER_UNPUBLISHED = "server_unpublished"  #: SignalResponse.track_unpublished (F4.5)
    CONNECTION_LOST = "connection_lost"  #: a full reconnect began
    CLOSE = "close"  #: the session ended


_L, _LI = LocalTrackState, LocalTrackInput
LOCAL_TRACK_TRANSITIONS: dict[tuple[LocalTrackState, LocalTrackInput], LocalTrackState] = {
    (_L.PENDING, _LI.ACCEPTED): _L.PUBLISHED,
    (_L.PENDING, _LI.REFUSED): _L.UNPUBLISHED,
    (_L.PENDING, _LI.TIMED_OUT): _L.UNPUBLISHED,
    (_L.PENDING, _LI.UNPUBLISH): _L.UNPUBLISHED,
    (_L.PENDING, _LI.CONNECTION_LOST): _L.PENDING,  # re-requested, new cid, after the join
    (_L.PENDING, _LI.CLOSE): _L.UNPUBLISHED,
    (_L.PUBLISHED, _LI.UNPUBLISH): _L.UNPUBLISHED,
    (_L.PUBLISHED, _LI.SERVER_UNPUBLISHED): _L.UNPUBLISHED,
    (_L.PUBLISHED, _LI.CONNECTION_LOST): _L.REPUBLISHING,
    (_L.PUBLISHED, _LI.CLOSE): _L.UNPUBLISHED,
    (_L.REPUBLISHING, _LI.ACCEPTED): _L.PUBLISHED,
    (_L.REPUBLISHING, _LI.REFUSED): _L.UNPUBLISHED,
    (_L.REPUBLISHING, _LI.TIMED_OUT): _L.UNPUBLISHED,
    (_L.REPUBLISHING, _LI.UNPUBLISH): _L.UNPUBLISHED,
    (_L.REPUBLISHING, _LI.CONNECTION_LOST): _L.REPUBLISHING,
    (_L.REPUBLISHING, _LI.CLOSE): _L.UNPUBLISHED,
}


class NegotiationState(enum.Enum):
    """The single peer connection's offer/answer queue: one offer in flight at most."""

    IDLE = "idle"  #: no offer in flight
    CREATING = "creating"  #: `CreateTrackOffer(n)` issued; waiting for `offer_created(n)`
    OFFERING = "offering"  #: offer n sent; waiting for the answer with id n
    APPLYING = "applying"  #: `ApplyAnswer(n)` issued; waiting for `remote_description_applied(n)`


class NegotiationInput(enum.Enum):
    OFFER = "offer"  #: something changed the SDP (or must be re-offered): a new offer
    CREATED = "created"  #: the adapter created and set the offer; it was sent
    ANSWERED = "answered"  #: the answer with the offer's id arrived
    APPLIED = "applied"  #: the adapter set the answer
    ABANDONED = "abandoned"  #: the answer was lost in a resume (F5.3) or timed out
    RESET = "reset"  #: a full reconnect: the peer connection is gone


_N, _NI = NegotiationState, NegotiationInput
NEGOTIATION_TRANSITIONS: dict[tuple[NegotiationState, NegotiationInput], NegotiationState] = {
    (_N.IDLE, _NI.OFFER): _N.CREATING,
    (_N.CREATING, _NI.CREATED): _N.OFFERING,
    (_N.OFFERING, _NI.ANSWERED): _N.APPLYING,
    (_N.APPLYING, _NI.APPLIED): _N.IDLE,
    (_N.OFFERING, _NI.ABANDONED): _N.IDLE,
    (_N.IDLE, _NI.RESET): _N.IDLE,
    (_N.CREATING, _NI.RESET): _N.IDLE,
    (_N.OFFERING, _NI.RESET): _N.IDLE,
    (_N.APPLYING, _NI.RESET): _N.IDLE,
}

_ANY_PHASE = frozenset(SessionPhase)
_LIVE = frozenset({SessionPhase.JOINED, SessionPhase.RESUMING, SessionPhase.REJOINING})

#: The session phases in which each application verb of the manager is allowed.
TRACK_VERBS: dict[str, frozenset[SessionPhase]] = {
    "joined": frozenset({SessionPhase.IDLE, SessionPhase.REJOINING}),
    "reconnecting": _LIVE,
    "resumed": frozenset({SessionPhase.RESUMING}),
    "disconnected": _ANY_PHASE,
    # A new publication needs the server now: its answer is awaited with a deadline.
    "publish": frozenset({SessionPhase.JOINED}),
    # Ending is always allowed.
    "unpublish": _ANY_PHASE,
    # Wishes are kept and carried over: sent now, after the resume, or after the rejoin.
    "set_muted": _LIVE,
    "set_subscribed": _LIVE,
    "update_track_settings": _LIVE,
    "set_track_subscription_permissions": _LIVE,
    "request_offer": _LIVE,
}

# -- data tracks (lkproto.datatracks): the same SessionPhase, then their own machines ------


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

_TrackState = TypeVar(
    "_TrackState",
    SessionPhase,
    LocalTrackState,
    NegotiationState,
    PublishState,
    SubscriptionState,
)


def advance(
    table: Mapping[tuple[_TrackState, _Input], _TrackState], state: _TrackState, event: _Input
) -> _TrackState:
    """The state after `event`; AssertionError if the table has no such transition."""
    new = table.get((state, event))
    if new is None:
        raise AssertionError(f"no transition from {state.name} on {event.name}")
    return new


def check_track_verb(verb: str, phase: SessionPhase) -> None:
    """Raise `LocalProtocolError` if `verb` is not allowed in `phase`."""
    if phase not in TRACK_VERBS[verb]:
        allowed = ", ".join(sorted(p.name for p in TRACK_VERBS[verb]))
        raise LocalProtocolError(
            f"{verb}() is not allowed while the media-track session is {phase.name} "
            f"(allowed: {allowed})",
            call=verb,
            state=phase.name,
        )


def check_data_track_verb(verb: str, phase: SessionPhase) -> None:
    """Raise `LocalProtocolError` if `verb` is not allowed in `phase`."""
    if phase not in DATA_TRACK_VERBS[verb]:
        allowed = ", ".join(sorted(p.name for p in DATA_TRACK_VERBS[verb]))
        raise LocalProtocolError(
            f"{verb}() is not allowed while the data-track session is {phase.name} "
            f"(allowed: {allowed})",
            call=verb,
            state=phase.name,
        )
