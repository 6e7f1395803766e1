"""Commands: what the transport must do now. Imperative, frozen values.

Drain them with `Connection.commands_to_send()` after every input and carry them out in order.
`Command` is the union of them all. The adapter reports each outcome back as an input
(`local_description_created`, `remote_description_applied`, `ice_candidate_gathered`,
`data_channel_opened`, ...).

Media tracks have one definition each, in their sub-machine (`lkproto.tracks`), re-exported
here: `AddTransceiver`, `SetTransceiverDirection`, `SetSendSource` (the adapter contract is in
that module's docstring). Their offers and answers are the `CreateOffer` and
`SetRemoteDescription` below with a non-zero `offer_id`.

`SendDataTrackFrame` is defined by its sub-machine (`lkproto.datatracks`) and re-exported:
send its packets in order on `_data_track`, all of them or none. Data tracks are lossy: an
adapter whose channel is backed up drops frames rather than queue them (the official SDKs
hold only the newest frame while the channel's buffered amount is over 8 KiB).
"""

from __future__ import annotations

import attrs

from lkproto._repr import plain_repr
from lkproto.datatracks import SendDataTrackFrame
from lkproto.e2ee import KeyDerivationFunction, ratchet_chain
from lkproto.models import Channel, IceServer, PeerTarget, SdpType
from lkproto.tracks import AddTransceiver, SetSendSource, SetTransceiverDirection

__all__ = [
    "AddIceCandidate",
    "AddTransceiver",
    "ClosePeerConnection",
    "CloseSignal",
    "Command",
    "CreateAnswer",
    "CreateDataChannel",
    "CreateOffer",
    "CreatePeerConnection",
    "DeriveRatchets",
    "OpenSignal",
    "SendDataPacket",
    "SendDataTrackFrame",
    "SendSignal",
    "SetRemoteDescription",
    "SetSendSource",
    "SetTransceiverDirection",
]


@attrs.frozen(kw_only=True)
@plain_repr
class OpenSignal:
    """Open the signal WebSocket at `url`, sending `Authorization: Bearer <token>`.

    The token is carried only here, never in the URL, and is hidden from `repr`.
    """

    url: str
    token: str = attrs.field(repr=False)
    single_peer_connection: bool = True

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """The HTTP headers of the WebSocket upgrade, as (name, value) pairs; `Authorization`
        carries the token."""
        return (("Authorization", f"Bearer {self.token}"),)


@attrs.frozen(kw_only=True)
@plain_repr
class SendSignal:
    """Send one binary WebSocket message (a serialized `SignalRequest`)."""

    data: bytes


@attrs.frozen(kw_only=True)
@plain_repr
class CloseSignal:
    """Close the signal WebSocket with this close code."""

    code: int = 1000


@attrs.frozen(kw_only=True)
@plain_repr
class CreatePeerConnection:
    """Create a peer connection with these ICE servers (the publisher with its data channels)."""

    target: PeerTarget
    ice_servers: tuple[IceServer, ...] = ()


@attrs.frozen(kw_only=True)
@plain_repr
class CreateDataChannel:
    """Create an in-band (DCEP) data channel on the publisher peer connection: `_reliable`,
    `_lossy`, or `_data_track` (unordered, no retransmits, created even when we only
    subscribe: in single-PC mode the server writes subscribed packets back on it)."""

    channel: Channel
    ordered: bool
    max_retransmits: int | None
    target: PeerTarget = PeerTarget.PUBLISHER


@attrs.frozen(kw_only=True)
@plain_repr
class CreateOffer:
    """Create an offer, set it as local description, then report `local_description_created`.

    `offer_id` (single peer connection): the offer/answer queue's number for this offer
    (`lkproto.tracks`); report it back with `offer_id=` and the mid of every transceiver
    created for a slot (`slot_mids=`). 0: an offer outside the queue (an ICE restart, the
    offer embedded in the join, the dual-PC publisher's)."""

    target: PeerTarget
    ice_restart: bool = False
    offer_id: int = 0


@attrs.frozen(kw_only=True)
@plain_repr
class CreateAnswer:
    """Create an answer, set it as local description, then report `local_description_created`."""

    target: PeerTarget


@attrs.frozen(kw_only=True)
@plain_repr
class SetRemoteDescription:
    """Apply the server's SDP (an offer to answer, or the answer to our offer) to the peer
    connection. For an answer with a non-zero `offer_id`, re-register the receivers' SSRCs
    from it (see `lkproto.tracks`), then report `remote_description_applied(target,
    offer_id)`."""

    target: PeerTarget
    sdp: str
    sdp_type: SdpType
    offer_id: int = 0


@attrs.frozen(kw_only=True)
@plain_repr
class AddIceCandidate:
    """Add a remote candidate; `candidate_init` is the JSON RTCIceCandidateInit from the server."""

    target: PeerTarget
    candidate_init: str


@attrs.frozen(kw_only=True)
@plain_repr
class SendDataPacket:
    """Send one binary message (a serialized `DataPacket`) on a data channel.

    `sequence` is the packet's `DataPacket.sequence` (0 for a lossy packet). An adapter that
    can see when the server's SCTP stack cumulatively acknowledged the message's last chunk
    reports it with `Connection.reliable_delivered(sequence, now=...)`, which lets the core
    forget the packet instead of keeping it for a replay.
    """

    channel: Channel
    data: bytes
    sequence: int = 0


@attrs.frozen(kw_only=True)
@plain_repr
class ClosePeerConnection:
    """Close the peer connection(s) and their data channels."""

    target: PeerTarget


@attrs.frozen(kw_only=True)
@plain_repr
class DeriveRatchets:
    """Derive `steps` key ratchets of `material` where the CPU may be spent, then report them
    with `Connection.ratchets_derived(request_id, <run()'s result>, now=...)` (or the failure
    through `command_failed`).

    A received E2EE packet failed with its key, and the ratchet window (protocol-reference-2
    §2.5) needs keys not derived yet: two KDF runs a step, with PBKDF2 about 1 s for a
    window of 16. The core never runs that on the receive path; the sender's packets wait
    (bounded by `Config.e2ee_max_waiting_bytes`) until the answer comes. `run()` is pure and
    thread-safe: the adapters run it in a worker thread; a synchronous driver may call it
    inline. `material` is key material: never in a repr.
    """

    request_id: int
    material: bytes = attrs.field(repr=False)
    steps: int
    salt: bytes
    kdf: KeyDerivationFunction

    def run(self) -> tuple[tuple[bytes, bytes], ...]:
        """The ratchets: (material, AES key) per step (`lkproto.e2ee.ratchet_chain`)."""
        return ratchet_chain(self.material, self.steps, self.salt, self.kdf)


Command = (
    OpenSignal
    | SendSignal
    | CloseSignal
    | CreatePeerConnection
    | CreateDataChannel
    | CreateOffer
    | CreateAnswer
    | SetRemoteDescription
    | AddIceCandidate
    | SendDataPacket
    | ClosePeerConnection
    | SendDataTrackFrame
    | AddTransceiver
    | SetTransceiverDirection
    | SetSendSource
    | DeriveRatchets
)
