"""Every state change of the data-track manager lives here, as a literal table.

Three machines, each keyed by `(state, input)` (after h11's `_state.py`, which these tables
join when the manager is composed into `Connection`):

- `SessionPhase`, one per manager: where the signal session is. Data-track requests go out
  only while JOINED; while RESUMING they wait for the resume to finish (the server still has
  our tracks and subscriptions, protocol-reference-2 1.3 "Reconnect"); while REJOINING (a
  full reconnect) the server has forgotten them, so nothing is sent until the new join.
- `PublishState`, one per local track (pub_handle): PENDING until the server answers the
  `PublishDataTrackRequest`, PUBLISHED, REPUBLISHING after a full reconnect until the
  republish is answered (pushes fail with QUEUE_FULL, as Rust), UNPUBLISHED for good.
- `SubscriptionState`, one per remote track: NONE, PENDING until the server's
  `DataTrackSubscriberHandles` names the track, ACTIVE after that (the handle may later be
  withdrawn by a snapshot, or cleared by a full reconnect, until a new snapshot maps it).

A transition missing from a table is a bug in the manager: verbs check their allowed phases
first (`VERBS`) and raise `LocalProtocolError`, so `advance` raises `AssertionError` only for
a core bug.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeVar

from lkproto.errors import LocalProtocolError

__all__ = [
    "PUBLISH_TRANSITIONS",
    "SESSION_TRANSITIONS",
    "SUBSCRIPTION_TRANSITIONS",
    "VERBS",
    "PublishInput",
    "PublishState",
    "SessionInput",
    "SessionPhase",
    "SubscriptionInput",
    "SubscriptionState",
    "advance",
    "check_verb",
]


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


_P, _PI = PublishState, PublishInput
PUBLISH_TRANSITIONS: dict[tuple[PublishState, PublishInput], PublishState] = {
    (_P.PENDING, _PI.ACCEPTED): _P.PUBLISHED,
    (_P.PENDING, _PI.REFUSED): _P.UNPUBLISHED,
    (_P.PENDING, _PI.TIMED_OUT): _P.UNPUBLISHED,
    (_P.PENDING, _PI.UNPUBLISH): _P.UNPUBLISHED,
    (_P.PENDING, _PI.CONNECTION_LOST): _P.UNPUBLISHED,  # Rust: PublishError::Disconnected
    (_P.PENDING, _PI.CLOSE): _P.UNPUBLISHED,
    (_P.PUBLISHED, _PI.UNPUBLISH): _P.UNPUBLISHED,
    (_P.PUBLISHED, _PI.SERVER_UNPUBLISHED): _P.UNPUBLISHED,
    (_P.PUBLISHED, _PI.CONNECTION_LOST): _P.REPUBLISHING,
    (_P.PUBLISHED, _PI.CLOSE): _P.UNPUBLISHED,
    (_P.REPUBLISHING, _PI.ACCEPTED): _P.PUBLISHED,
    (_P.REPUBLISHING, _PI.REFUSED): _P.UNPUBLISHED,
    (_P.REPUBLISHING, _PI.TIMED_OUT): _P.UNPUBLISHED,
    (_P.REPUBLISHING, _PI.UNPUBLISH): _P.UNPUBLISHED,
    (_P.REPUBLISHING, _PI.SERVER_UNPUBLISHED): _P.UNPUBLISHED,
    (_P.REPUBLISHING, _PI.CONNECTION_LOST): _P.REPUBLISHING,
    (_P.REPUBLISHING, _PI.CLOSE): _P.UNPUBLISHED,
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
    CLOSE = "close"


_S, _SI = SubscriptionState, SubscriptionInput
SUBSCRIPTION_TRANSITIONS: dict[tuple[SubscriptionState, SubscriptionInput], SubscriptionState] = {
    (_S.NONE, _SI.SUBSCRIBE): _S.PENDING,
    (_S.PENDING, _SI.HANDLE_ASSIGNED): _S.ACTIVE,
    (_S.PENDING, _SI.TIMED_OUT): _S.NONE,
    (_S.PENDING, _SI.UNSUBSCRIBE): _S.NONE,
    (_S.PENDING, _SI.UNPUBLISHED): _S.NONE,
    (_S.PENDING, _SI.CLOSE): _S.NONE,
    (_S.ACTIVE, _SI.HANDLE_ASSIGNED): _S.ACTIVE,
    (_S.ACTIVE, _SI.UNSUBSCRIBE): _S.NONE,
    (_S.ACTIVE, _SI.UNPUBLISHED): _S.NONE,
    (_S.ACTIVE, _SI.CLOSE): _S.NONE,
}

_ANY = frozenset(SessionPhase)

#: The session phases in which each application verb of the manager is allowed.
VERBS: dict[str, frozenset[SessionPhase]] = {
    "joined": frozenset({SessionPhase.IDLE, SessionPhase.REJOINING}),
    "reconnecting": frozenset({SessionPhase.JOINED, SessionPhase.RESUMING, SessionPhase.REJOINING}),
    "resumed": frozenset({SessionPhase.RESUMING}),
    "disconnected": _ANY,
    "publish_data_track": frozenset({SessionPhase.JOINED}),
    "subscribe": frozenset({SessionPhase.JOINED}),
    # Ending things is always allowed: requests the server must see wait for a resume.
    "unpublish": _ANY,
    "unsubscribe": _ANY,
    "try_push": _ANY,
    "set_pipeline_options": _ANY,
}

_State = TypeVar("_State", SessionPhase, PublishState, SubscriptionState)
_Input = TypeVar("_Input", bound=enum.Enum)


def advance(table: Mapping[tuple[_State, _Input], _State], state: _State, event: _Input) -> _State:
    """The state after `event`; AssertionError if the table has no such transition."""
    new = table.get((state, event))
    if new is None:
        raise AssertionError(f"no transition from {state.name} on {event.name}")
    return new


def check_verb(verb: str, phase: SessionPhase) -> None:
    """Raise `LocalProtocolError` if `verb` is not allowed in `phase`."""
    if phase not in VERBS[verb]:
        allowed = ", ".join(sorted(p.name for p in VERBS[verb]))
        raise LocalProtocolError(
            f"{verb}() is not allowed while the data-track session is {phase.name} "
            f"(allowed: {allowed})",
            call=verb,
            state=phase.name,
        )
