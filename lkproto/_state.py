"""Every connection-state change lives here, as a literal table.

States: NEW -> CONNECTING -> CONNECTED -> CLOSED, with RECONNECTING between CONNECTED and
CONNECTED again while an interrupted session is resumed or rejoined (protocol-reference D.7,
D.8): the signal closed or went quiet, the peer connection failed, or the server asked.
A transition not in the table is a bug in the caller: the core checks application verbs
against `VERBS` first and raises `LocalProtocolError`, so an illegal transition can only come
from a core bug and raises `AssertionError`.
"""

from __future__ import annotations

import enum

from lkproto.errors import LocalProtocolError
from lkproto.models import ConnectionState as S

__all__ = ["Input", "StateMachine"]


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

_ANY = frozenset(S)
# Joined: sends go out, or wait in the send queue while a resume is under way (A.7).
_JOINED = frozenset({S.CONNECTED, S.RECONNECTING})

#: The states in which each application verb is allowed.
VERBS: dict[str, frozenset[S]] = {
    "connect": frozenset({S.NEW}),
    "publish_data": _JOINED,
    "set_metadata": frozenset({S.CONNECTED}),
    "set_name": frozenset({S.CONNECTED}),
    "set_attributes": frozenset({S.CONNECTED}),
    "simulate_scenario": frozenset({S.CONNECTED}),
    # Data streams. Handlers (topics) may be registered before connecting, so that no stream
    # arriving right after the join is dropped; reader flow control is harmless at any time.
    "register_stream_topic": _ANY,
    "unregister_stream_topic": _ANY,
    "open_stream": _JOINED,
    "write_stream": _JOINED,
    "close_stream": _JOINED,
    "send_stream": _JOINED,
    "stream_consumed": _ANY,
    "stream_discarded": _ANY,
    # RPC. Methods may be registered at any time and persist for the session. A handler may
    # finish after the session ended: its answer is then reported as dropped, not refused.
    "register_rpc_method": _ANY,
    "unregister_rpc_method": _ANY,
    "perform_rpc": _JOINED,
    "respond_rpc": _JOINED | {S.CLOSED},
}


class StateMachine:
    def __init__(self) -> None:
        self.state = S.NEW

    def process(self, event: Input) -> S:
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            raise AssertionError(f"no transition from {self.state.name} on {event.name}")
        self.state = new
        return new

    def check(self, verb: str) -> None:
        if self.state not in VERBS[verb]:
            allowed = ", ".join(sorted(s.name for s in VERBS[verb]))
            raise LocalProtocolError(
                f"{verb}() is not allowed while the connection is {self.state.name} "
                f"(allowed: {allowed})",
                call=verb,
                state=self.state.name,
            )
