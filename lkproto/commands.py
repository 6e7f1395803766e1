"""Commands: what the transport must do now. Imperative, frozen values.

Drain them with `Connection.commands_to_send()` after every input and carry them out in order.
`Command` is the union of them all. The adapter reports each outcome back as an input
(`local_description_created`, `ice_candidate_gathered`, `data_channel_opened`, ...).
"""

from __future__ import annotations

import attrs

from lkproto.models import Channel, IceServer, PeerTarget, SdpType

__all__ = [
    "AddIceCandidate",
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
        """The HTTP headers of the WebSocket upgrade, as (name, value) pairs; `Authorization`
        carries the token."""
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
    """Create a peer connection with these ICE servers (the publisher with its data channels)."""

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
    """Create an offer, set it as local description, then report `local_description_created`."""

    target: PeerTarget
    ice_restart: bool = False


@attrs.frozen(kw_only=True)
class CreateAnswer:
    """Create an answer, set it as local description, then report `local_description_created`."""

    target: PeerTarget


@attrs.frozen(kw_only=True)
class SetRemoteDescription:
    """Apply the server's SDP (an offer to answer, or the answer to our offer) to the peer
    connection."""

    target: PeerTarget
    sdp: str
    sdp_type: SdpType


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
    """Close the peer connection(s) and their data channels."""

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
)
