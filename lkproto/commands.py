"""Commands: what the transport must do now. Imperative, frozen values.

Drain them with `Connection.commands_to_send()` after every input and carry them out in order.
`Command` is the union of them all. The adapter reports each outcome back as an input
(`local_description_created`, `remote_description_applied`, `ice_candidate_gathered`,
`data_channel_opened`, ...).

Media tracks have one definition each, in their sub-machine (`lkproto.tracks`), re-exported
here: `AddTransceiver`, `SetTransceiverDirection`, `SetSendSource` (the adapter contract is in
that module's docstring). Their offers and answers are the `CreateOffer` and
`SetRemoteDescription` below with a non-zero `offer_id`.
"""

from __future__ import annotations

import attrs

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
    "OpenSignal",
    "SendDataPacket",
    "SendSignal",
    "SetRemoteDescription",
    "SetSendSource",
    "SetTransceiverDirection",
]


@attrs.frozen(kw_only=True)
class OpenSignal:
    """Open the signal WebSocket at `url`, sending `Authorization: Bearer <token>`.

    The token is carried only here, never in the URL, and is hidden from `repr`.
    """

    url: str
    token: str = attrs.field(repr=False)
    single_peer_connection: bool = True

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return (("Authorization", f"Bearer {self.token}"),)


@attrs.frozen(kw_only=True)
class SendSignal:
    """Send one binary WebSocket message (a serialized `SignalRequest`)."""

    data: bytes


@attrs.frozen(kw_only=True)
class CloseSignal:
    """Close the signal WebSocket with this close code."""

    code: int = 1000


@attrs.frozen(kw_only=True)
class CreatePeerConnection:
    target: PeerTarget
    ice_servers: tuple[IceServer, ...] = ()


@attrs.frozen(kw_only=True)
class CreateDataChannel:
    """Create an in-band (DCEP) data channel on the publisher peer connection."""

    channel: Channel
    ordered: bool
    max_retransmits: int | None
    target: PeerTarget = PeerTarget.PUBLISHER


@attrs.frozen(kw_only=True)
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
class CreateAnswer:
    """Create an answer, set it as local description, then report `local_description_created`."""

    target: PeerTarget


@attrs.frozen(kw_only=True)
class SetRemoteDescription:
    """Set the remote description. For an answer with a non-zero `offer_id`, re-register the
    receivers' SSRCs from it (see `lkproto.tracks`), then report
    `remote_description_applied(target, offer_id)`."""

    target: PeerTarget
    sdp: str
    sdp_type: SdpType
    offer_id: int = 0


@attrs.frozen(kw_only=True)
class AddIceCandidate:
    """Add a remote candidate; `candidate_init` is the JSON RTCIceCandidateInit from the server."""

    target: PeerTarget
    candidate_init: str


@attrs.frozen(kw_only=True)
class SendDataPacket:
    """Send one binary message (a serialized `DataPacket`) on a data channel."""

    channel: Channel
    data: bytes


@attrs.frozen(kw_only=True)
class ClosePeerConnection:
    target: PeerTarget


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
    | AddTransceiver
    | SetTransceiverDirection
    | SetSendSource
)
