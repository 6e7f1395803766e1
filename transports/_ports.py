"""The ports the shared pump dispatches commands to. Every method is non-blocking.

An adapter supplies a `SignalPort` (the WebSocket writer, fed in FIFO order), a `PeerPort`
(the WebRTC side: aiortc in the loop or behind a thread bridge) and an `EventSink` (what the
application sees). The peer port reports outcomes through a `PeerListener`; the pump is one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, TypeAlias

from lkproto import commands as cmd
from lkproto import events as ev
from lkproto.models import Channel, PeerState, PeerTarget, SdpType

__all__ = [
    "EventSink",
    "PeerCommand",
    "PeerListener",
    "PeerPort",
    "SignalCommand",
    "SignalPort",
    "WorkPort",
]

SignalCommand: TypeAlias = cmd.OpenSignal | cmd.SendSignal | cmd.CloseSignal
"""The commands for the signal connection (the WebSocket)."""

PeerCommand: TypeAlias = (
    cmd.CreatePeerConnection
    | cmd.CreateDataChannel
    | cmd.CreateOffer
    | cmd.CreateAnswer
    | cmd.SetRemoteDescription
    | cmd.AddIceCandidate
    | cmd.SendDataPacket
    | cmd.ClosePeerConnection
    | cmd.SendDataTrackFrame
    | cmd.AddTransceiver
    | cmd.SetTransceiverDirection
    | cmd.SetSendSource
)
"""The commands for the peer connections. With `SignalCommand` and `cmd.DeriveRatchets`
(a `WorkPort`'s), exactly `cmd.Command`: the pump routes with an exhaustive `match`, so a new
command type is a type error until routed."""


class SignalPort(Protocol):
    def submit(self, command: SignalCommand) -> None:
        """Queue a signal command; a single writer carries them out in order."""


class PeerListener(Protocol):
    """What a peer port reports back; each call becomes one core input."""

    def on_local_description(
        self,
        target: PeerTarget,
        sdp: str,
        sdp_type: SdpType,
        offer_id: int = 0,
        slot_mids: Mapping[int, str] | None = None,
    ) -> None:
        """A local description was set: for `CreateOffer(offer_id=n)`, with that id and the
        mid of every media-track slot's transceiver."""

    def on_remote_description(self, target: PeerTarget, offer_id: int) -> None:
        """`SetRemoteDescription(offer_id=n)` (n > 0) was applied, receivers re-registered."""

    def on_ice_candidate(self, target: PeerTarget, candidate_init: str | None) -> None: ...

    def on_peer_state(self, target: PeerTarget, state: PeerState) -> None: ...

    def on_channel_open(self, channel: Channel, max_message_size: int | None) -> None: ...

    def on_channel_closed(self, channel: Channel) -> None: ...

    def on_data(self, channel: Channel, data: bytes) -> None: ...

    def on_writable(self, channel: Channel) -> None:
        """The channel's buffered amount fell to its low threshold."""

    def on_reliable_delivered(self, sequence: int) -> None:
        """The server's SCTP stack cumulatively acknowledged the message carrying our reliable
        `SendDataPacket` with this `sequence` (so every one before it, too)."""

    def on_command_failed(self, command: cmd.Command, message: str) -> None: ...


class PeerPort(Protocol):
    def submit(self, command: PeerCommand) -> None:
        """Queue a peer-connection command (everything but the signal commands)."""

    def buffered_amount(self, channel: Channel) -> int:
        """Bytes queued on our sending data channel, for flow control (0 if none)."""
        ...

    def set_low_threshold(self, channel: Channel, threshold: int) -> None:
        """Report `on_writable` when the channel's buffered amount falls to `threshold`."""

    async def drain(self, timeout: float) -> bool:
        """Wait (bounded) until everything sent on our channels was acknowledged; whether it
        was."""

    async def aclose(self) -> None:
        """Close every peer connection. Idempotent."""


class WorkPort(Protocol):
    def submit(self, command: cmd.DeriveRatchets) -> None:
        """Run `command.run()` off the event loop (CPU: key derivation), then report it
        through `Pump.on_ratchets_derived`, or `on_command_failed` if it raised."""


class EventSink(Protocol):
    def deliver(self, event: ev.Event) -> None:
        """Hand one core event to the application side. Must not block."""

    def deadline_changed(self, deadline: float | None) -> None:
        """The core's next timer changed; wake the timer task."""

    def channel_changed(self, channel: Channel, is_open: bool) -> None:
        """One of our sending data channels opened or closed."""

    def writable(self, channel: Channel) -> None:
        """A sending channel drained to its low threshold; blocked writers may go on."""
