"""Simulated failures, for testing: `Connection.simulate_scenario`.

Theory of operation (livekit.rtc `Room.simulate_scenario`, client-sdk-js
`Room.simulateScenario`)
- SIGNAL_RECONNECT drops the signal connection and resumes; FULL_RECONNECT rejoins. Both
  are the reconnector's interruptions, caused here. A full reconnect sends no `leave` first:
  the server may handle it after the rejoin and end the new session (seen on livekit-server
  1.13.5); the rejoin itself replaces our old participant (duplicate identity), which the
  others see leave and come back.
- Every other scenario is a `SignalRequest.simulate` for the server, which then closes the
  signal, the session or the peer connection as the scenario says.
- DISCONNECT_SIGNAL_ON_RESUME(_NO_MESSAGES): the server arms the fault for a resume within
  5 s, so one must follow. JS drops its signal at once, and its resume can overtake the
  request on the server. We ping right behind the request and drop the signal when that
  ping's pong comes (`ponged`): the server reads one socket in order, so by then the fault
  is armed. Only that pong: the pong of a keepalive ping sent before the request can come
  before the server has read it (CI run G: the request was never read, so no fault).
"""

from __future__ import annotations

from lkproto import commands as cmd
from lkproto._context import Context
from lkproto._keepalive import Keepalive
from lkproto._reconnect import ReconnectCause, Reconnector
from lkproto.models import DisconnectReason, SimulateScenario

__all__ = ["Simulator"]

_S = SimulateScenario
#: The `SignalRequest.simulate` field each server-side scenario sets.
_REQUESTS: dict[SimulateScenario, dict[str, int | bool]] = {
    _S.SPEAKER: {"speaker_update": 5},
    _S.NODE_FAILURE: {"node_failure": True},
    _S.SERVER_LEAVE: {"server_leave": True},
    _S.MIGRATION: {"migration": True},
    _S.FORCE_TCP: {"switch_candidate_protocol": 1},
    _S.FORCE_TLS: {"switch_candidate_protocol": 2},
    _S.DISCONNECT_SIGNAL_ON_RESUME: {"disconnect_signal_on_resume": True},
    _S.DISCONNECT_SIGNAL_ON_RESUME_NO_MESSAGES: {"disconnect_signal_on_resume_no_messages": True},
}
_ON_RESUME = frozenset({_S.DISCONNECT_SIGNAL_ON_RESUME, _S.DISCONNECT_SIGNAL_ON_RESUME_NO_MESSAGES})


class Simulator:
    """Carries out `simulate_scenario` (see the module docstring)."""

    __slots__ = ("_ctx", "_drop_on_pong", "_keepalive", "_reconnector")

    def __init__(self, ctx: Context, reconnector: Reconnector, keepalive: Keepalive) -> None:
        self._ctx = ctx
        self._reconnector = reconnector
        self._keepalive = keepalive
        #: The scenario waiting for a pong, and the timestamp of the ping it waits for.
        self._drop_on_pong: tuple[SimulateScenario, int] | None = None

    def simulate(self, scenario: SimulateScenario, now: float) -> None:
        """Cause `scenario` (the Connection checked the verb). ValueError for a value that
        is not a `SimulateScenario`."""
        scenario = SimulateScenario(scenario)
        if scenario is _S.SIGNAL_RECONNECT:
            self._reconnector.interrupt(
                DisconnectReason.SIGNAL_CLOSE,
                "simulated signal reconnect",
                now,
                cause=ReconnectCause.SIGNAL,
            )
            return
        if scenario is _S.FULL_RECONNECT:
            self._reconnector.interrupt(
                DisconnectReason.CLIENT_INITIATED, "simulated full reconnect", now, full=True
            )
            return
        codec = self._ctx.codec
        self._ctx.commands.append(cmd.SendSignal(data=codec.simulate(**_REQUESTS[scenario])))
        if scenario in _ON_RESUME:
            self._drop_on_pong = (scenario, self._keepalive.send_ping(now))

    def ponged(self, last_ping_timestamp: int, now: float) -> None:
        """A pong came: drop the signal if a scenario waits for this one (the fault is armed)."""
        if self._drop_on_pong is None or self._drop_on_pong[1] != last_ping_timestamp:
            return
        scenario, _ = self._drop_on_pong
        self._drop_on_pong = None
        self._reconnector.interrupt(
            DisconnectReason.SIGNAL_CLOSE,
            f"simulated {scenario.name.lower()}",
            now,
            cause=ReconnectCause.SIGNAL,
        )
