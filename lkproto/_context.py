"""The context the parts of a `Connection` share: its outputs, deadlines, state and config.

Theory of operation
- A `Connection` is a composition of parts (`Session`, `Roster`, `Peers`, `Keepalive`,
  `MetadataRequests`, `DataReceiver`, `Exchange`, `DataTracks`, `Reconnector`, next to the
  public sub-machines `StreamAssembler`, `RpcTable` and `DataTrackManager`). No part is
  given the `Connection`. Each gets this one `Context`, the sibling parts it works with,
  and, where its decisions matter elsewhere (a participant left, the session must end), a
  few typed hooks (callbacks) the `Connection` wires at construction. Each part writes what
  it decides into the context: events for the application (`events`), commands for the
  adapter (`commands`), deadlines (`deadlines`, one heap for every part, so that deadlines
  due at the same moment fire in the order they were set) and coarse state changes (`sm`,
  whose tables are in `_state.py`).
- A new feature (media tracks, data tracks, E2EE) is a new part: it takes the `Context`,
  owns its state, adds its deadline keys to `Timer` (the `Connection` dispatches each key
  through one table), its states to `_state.py`, and is wired in the `Connection`'s
  constructor. Its state never becomes attributes of `Connection`.
- Order is the contract: events and commands come out in the order the parts append them,
  which is the order of the inputs that caused them. Parts append to `ctx.events` and
  `ctx.commands` directly and never keep a reference to either list
  (`take_commands()` replaces it).
- Wall-clock milliseconds for the wire (`Ping.timestamp`, stream headers) derive from the
  single `unix_time_ms` given at construction: wall_ms = unix_time_ms + (now - now0) * 1000.
  Ids come from the injected `id_factory`. Nothing here reads a clock or draws randomness.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._deadlines import Deadlines
from lkproto._state import StateMachine
from lkproto.config import Config
from lkproto.errors import LocalProtocolError
from lkproto.models import ConnectionState
from lkproto.signal import SignalCodec

__all__ = ["Context", "Timer"]


class Timer(enum.Enum):
    """The keys of the session's own deadlines (a metadata request's is (METADATA, id))."""

    JOIN = "join"  # the signal connection's first answer (Config.join_timeout)
    PING = "ping"  # send the next keepalive ping
    PONG = "pong-timeout"  # nothing heard from the server for ping_timeout
    METADATA = "metadata"  # a metadata update's response (Config.metadata_request_timeout)
    RETRY = "reconnect-attempt"  # the next reconnect attempt
    PEER_WAIT = "peer-recovery"  # the peer connection's recovery (peer_connection_timeout)


class Context:
    """What the parts of one `Connection` share. Not thread-safe, like the `Connection`."""

    __slots__ = (
        "_event_pos",
        "_now0",
        "_unix0",
        "codec",
        "commands",
        "config",
        "deadlines",
        "events",
        "id_factory",
        "sm",
    )

    def __init__(
        self, config: Config, *, now: float, unix_time_ms: int, id_factory: Callable[[], str]
    ) -> None:
        self.config = config
        self.id_factory = id_factory
        self.codec = SignalCodec(config)
        self.sm = StateMachine()
        self.events: list[ev.Event] = []
        self.commands: list[cmd.Command] = []
        self.deadlines = Deadlines()
        self._event_pos = 0
        self._now0 = now
        self._unix0 = unix_time_ms

    @property
    def state(self) -> ConnectionState:
        return self.sm.state

    def wall_ms(self, now: float) -> int:
        return self._unix0 + round((now - self._now0) * 1000)

    def next_event(self) -> ev.Event | None:
        if self._event_pos < len(self.events):
            event = self.events[self._event_pos]
            self._event_pos += 1
            if self._event_pos == len(self.events):
                self.events.clear()
                self._event_pos = 0
            return event
        return None

    def take_commands(self) -> list[cmd.Command]:
        out, self.commands = self.commands, []
        return out

    def misuse(self, call: str, text: str) -> LocalProtocolError:
        """A `LocalProtocolError` for `call`, naming the current state."""
        return LocalProtocolError(f"{call}: {text}", call=call, state=self.state.name)
