"""Every state change of the media-track manager (`lkproto.tracks`) lives here, as a literal
table. They join `lkproto/_state.py` when the manager is composed into `Connection`.

Three machines, each keyed by `(state, input)` (after h11's `_state.py`):

- `SessionPhase`, one per manager: where the signal session is. Track requests go out only
  while JOINED; while RESUMING they wait for the resume to finish (the server kept our
  publications and subscriptions, findings F5.1); while REJOINING (a full reconnect) the
  server has forgotten them, so nothing is sent until the new join (F5.2).
- `LocalTrackState`, one per local publication: PENDING until the server answers the
  `AddTrackRequest`, PUBLISHED, REPUBLISHING after a full reconnect until the republish (with
  a new cid) is answered, UNPUBLISHED for good. A PENDING publication that is interrupted by
  a full reconnect stays PENDING and is re-requested after the join (F5.2).
- `NegotiationState`, one per manager: the single-PC offer/answer queue. At most one offer is
  in flight (F3.5): CREATING (the adapter is creating and setting offer `n`), OFFERING (offer
  `n` was sent; waiting for the answer whose `SessionDescription.id` is `n`, F3.6), APPLYING
  (the adapter is setting that answer). Back to IDLE once the adapter confirms, or when an
  offer is given up: its answer was lost in a resume (F5.3) or never came in time.

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
    "LOCAL_TRACK_TRANSITIONS",
    "NEGOTIATION_TRANSITIONS",
    "SESSION_TRANSITIONS",
    "VERBS",
    "LocalTrackInput",
    "LocalTrackState",
    "NegotiationInput",
    "NegotiationState",
    "SessionInput",
    "SessionPhase",
    "advance",
    "check_verb",
]


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

_ANY = frozenset(SessionPhase)
_LIVE = frozenset({SessionPhase.JOINED, SessionPhase.RESUMING, SessionPhase.REJOINING})

#: The session phases in which each application verb of the manager is allowed.
VERBS: dict[str, frozenset[SessionPhase]] = {
    "joined": frozenset({SessionPhase.IDLE, SessionPhase.REJOINING}),
    "reconnecting": _LIVE,
    "resumed": frozenset({SessionPhase.RESUMING}),
    "disconnected": _ANY,
    # A new publication needs the server now: its answer is awaited with a deadline.
    "publish": frozenset({SessionPhase.JOINED}),
    # Ending is always allowed.
    "unpublish": _ANY,
    # Wishes are kept and carried over: sent now, after the resume, or after the rejoin.
    "set_muted": _LIVE,
    "set_subscribed": _LIVE,
    "update_track_settings": _LIVE,
    "set_track_subscription_permissions": _LIVE,
    "request_offer": _LIVE,
}

_State = TypeVar("_State", SessionPhase, LocalTrackState, NegotiationState)
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
            f"{verb}() is not allowed while the media-track session is {phase.name} "
            f"(allowed: {allowed})",
            call=verb,
            state=phase.name,
        )
