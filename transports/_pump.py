"""The one synchronous pump every adapter shares.

Each input method feeds the core with `now=clock()`, then runs the contract's triad:
1. drain `commands_to_send()` and dispatch each, in order, to a non-blocking port (the
   signal, the peer, or the work port for CPU-heavy key derivation; without one, a
   `DeriveRatchets` runs inline);
2. drain `next_event()` into the event sink;
3. re-arm: tell the sink the core's next deadline.

Only the pump drains the core, so commands leave in exactly the order the core produced them
(trio-websocket's FIFO rule). The pump is not thread-safe: the adapter gives it one owner (the
event loop thread, or a lock). It implements `PeerListener`, so a peer port reports straight
into it (through a thread bridge where aiortc runs on another thread).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ParamSpec, Protocol, TypeVar, assert_never

import anyio.abc

from lkproto import Connection
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto.models import Channel, PeerState, PeerTarget, SdpType

from ._ports import EventSink, PeerPort, SignalPort, WorkPort

__all__ = ["Pump", "SessionHost"]

P = ParamSpec("P")
T = TypeVar("T")


class Pump:
    def __init__(
        self,
        conn: Connection,
        *,
        clock: Callable[[], float],
        signal: SignalPort,
        peer: PeerPort,
        sink: EventSink,
        work: WorkPort | None = None,
    ) -> None:
        self.conn = conn
        self.clock = clock
        self.signal = signal
        self.peer = peer
        self.sink = sink
        self.work = work
        self._deadline: float | None = None

    @property
    def deadline(self) -> float | None:
        return self._deadline

    def flush(self) -> None:
        """Dispatch pending commands, deliver pending events, re-arm the timer."""
        conn = self.conn
        while commands := conn.commands_to_send():
            for command in commands:
                if type(command) is cmd.SendDataPacket:  # the usual one: no match to walk
                    self.peer.submit(command)
                    continue
                match command:
                    case cmd.OpenSignal() | cmd.SendSignal() | cmd.CloseSignal():
                        self.signal.submit(command)
                    case (
                        cmd.CreatePeerConnection()
                        | cmd.CreateDataChannel()
                        | cmd.CreateOffer()
                        | cmd.CreateAnswer()
                        | cmd.SetRemoteDescription()
                        | cmd.AddIceCandidate()
                        | cmd.SendDataPacket()
                        | cmd.ClosePeerConnection()
                        | cmd.SendDataTrackFrame()
                        | cmd.AddTransceiver()
                        | cmd.SetTransceiverDirection()
                        | cmd.SetSendSource()
                    ):
                        self.peer.submit(command)
                    case cmd.DeriveRatchets():
                        if self.work is not None:
                            self.work.submit(command)
                        else:
                            conn.ratchets_derived(
                                command.request_id, command.run(), now=self.clock()
                            )
                    case _:
                        assert_never(command)
        while (event := conn.next_event()) is not None:
            self.sink.deliver(event)
        deadline = conn.get_timer()
        if deadline != self._deadline:
            self._deadline = deadline
            self.sink.deadline_changed(deadline)

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run an application verb on the core (it gets `now=`), then flush, even if it raised."""
        try:
            return fn(*args, **kwargs)
        finally:
            self.flush()

    def now(self) -> float:
        return self.clock()

    # -- signal inputs ------------------------------------------------------------------------

    def on_signal(self, data: bytes) -> None:
        self.conn.receive_signal(data, now=self.clock())
        self.flush()

    def on_signal_closed(self, code: int | None, reason: str = "") -> None:
        self.conn.signal_closed(now=self.clock(), code=code, reason=reason)
        self.flush()

    def on_signal_failed(self, status: int | None, message: str) -> None:
        self.conn.signal_connect_failed(status=status, now=self.clock(), message=message)
        self.flush()

    def on_timer(self) -> None:
        self.conn.handle_timer(self.clock())
        self.flush()

    # -- PeerListener -------------------------------------------------------------------------

    def on_local_description(
        self,
        target: PeerTarget,
        sdp: str,
        sdp_type: SdpType,
        offer_id: int = 0,
        slot_mids: Mapping[int, str] | None = None,
    ) -> None:
        self.conn.local_description_created(
            target, sdp, sdp_type, now=self.clock(), offer_id=offer_id, slot_mids=slot_mids
        )
        self.flush()

    def on_remote_description(self, target: PeerTarget, offer_id: int) -> None:
        self.conn.remote_description_applied(target, offer_id, now=self.clock())
        self.flush()

    def on_ice_candidate(self, target: PeerTarget, candidate_init: str | None) -> None:
        self.conn.ice_candidate_gathered(target, candidate_init, now=self.clock())
        self.flush()

    def on_peer_state(self, target: PeerTarget, state: PeerState) -> None:
        self.conn.peer_state_changed(target, state, now=self.clock())
        self.flush()

    def on_channel_open(self, channel: Channel, max_message_size: int | None) -> None:
        self.conn.data_channel_opened(channel, now=self.clock(), max_message_size=max_message_size)
        self.flush()
        self.sink.channel_changed(channel, True)

    def on_channel_closed(self, channel: Channel) -> None:
        self.conn.data_channel_closed(channel, now=self.clock())
        self.flush()
        self.sink.channel_changed(channel, False)

    def on_data(self, channel: Channel, data: bytes) -> None:
        self.conn.receive_data_packet(data, channel=channel, now=self.clock())
        self.flush()

    def on_writable(self, channel: Channel) -> None:
        self.sink.writable(channel)

    def on_reliable_delivered(self, sequence: int) -> None:
        self.conn.reliable_delivered(sequence, now=self.clock())
        self.flush()

    def on_ratchets_derived(self, request_id: int, chain: tuple[tuple[bytes, bytes], ...]) -> None:
        self.conn.ratchets_derived(request_id, chain, now=self.clock())
        self.flush()

    def on_command_failed(self, command: cmd.Command, message: str) -> None:
        self.conn.command_failed(command, message, now=self.clock())
        self.flush()


class SessionHost(Protocol):
    """What the session's parts (data streams, RPC) use of the session that runs them."""

    @property
    def conn(self) -> Connection | None:
        """The core, from `connect()` on (None before)."""

    @property
    def ended(self) -> ev.Disconnected | None:
        """How the session ended, once it has."""

    @property
    def tg(self) -> anyio.abc.TaskGroup | None:
        """The session's task group, where handlers run (None when not running)."""

    def live(self, call: str) -> tuple[Pump, Connection]:
        """The pump and the core, or `TransportClosedError` naming `call` if not connected."""
        ...

    async def wait_writable(self, channel: Channel) -> None:
        """Wait while our sending `channel` holds more than its high watermark."""
