"""Every connection-state change lives here, as a literal table.

States: NEW -> CONNECTING -> CONNECTED -> CLOSED, with RECONNECTING between CONNECTED and
CONNECTED again when the server asks for a resume or a full reconnect (protocol-reference D.7,
D.8). A transition not in the table is a bug in the caller: the core checks application verbs
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
    RECONNECT_REQUESTED = "reconnect_requested"  # server LeaveRequest RESUME/RECONNECT
    RECONNECTED = "reconnected"  # a resume or re-join completed
    ENDED = "ended"  # close(), a fatal fault, or a server DISCONNECT


TRANSITIONS: dict[tuple[S, Input], S] = {
    (S.NEW, Input.CONNECT): S.CONNECTING,
    (S.CONNECTING, Input.JOINED): S.CONNECTED,
    (S.CONNECTED, Input.RECONNECT_REQUESTED): S.RECONNECTING,
    (S.RECONNECTING, Input.RECONNECT_REQUESTED): S.RECONNECTING,
    (S.RECONNECTING, Input.RECONNECTED): S.CONNECTED,
    (S.NEW, Input.ENDED): S.CLOSED,
    (S.CONNECTING, Input.ENDED): S.CLOSED,
    (S.CONNECTED, Input.ENDED): S.CLOSED,
    (S.RECONNECTING, Input.ENDED): S.CLOSED,
}

#: The states in which each application verb is allowed.
VERBS: dict[str, frozenset[S]] = {
    "connect": frozenset({S.NEW}),
    "publish_data": frozenset({S.CONNECTED, S.RECONNECTING}),
    "set_metadata": frozenset({S.CONNECTED}),
    "set_name": frozenset({S.CONNECTED}),
    "set_attributes": frozenset({S.CONNECTED}),
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
