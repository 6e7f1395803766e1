"""The peer connections the core has asked the adapter for, and what it knows of them.

Theory of operation (protocol-reference D.4-D.6)
- With `single_pc` (the `/rtc/v1` path) there is one peer connection, PUBLISHER: we offer,
  the server answers, and server offers renegotiate the same connection. Without it (`/rtc`,
  the fallback for servers that answer the upgrade with 404) the server's offers are for a
  second one, SUBSCRIBER, which we answer. ICE candidates from the server (`trickle`) go to
  the target the message names, or always to PUBLISHER in single-PC mode.
- The publisher is created with three data channels: `_reliable` (ordered), `_lossy`
  (unordered, no retransmits) and `_data_track` (the same options; created even when we only
  subscribe, because in single-PC mode the server writes subscribed data-track packets back
  on the channel we made, protocol-reference-2 1.4), and an offer: through `request_offer`
  when it is set (the media-track queue owns every offer of the single peer connection,
  `_media`), else at once.
- The last offer and answer per target are kept (ours and the server's): a resume's
  `SyncState` tells the server which descriptions we hold (D.8 step 5).
- `connected` holds the targets whose last reported state is "connected"; `ever_connected`
  whether any peer connection of this `Connection` ever got there. Before that there is no
  transport to resume, so a reconnect must be a full one.
- Only the peer connection asked for last under a target counts: `targets` forgets a target
  once its close is asked for, and results about it are then ignored by the `Connection`.
"""

from __future__ import annotations

from collections.abc import Callable

from lkproto import commands as cmd
from lkproto._context import Context
from lkproto._pb import signal_pb2 as spb
from lkproto.models import Channel, IceServer, PeerTarget, SdpType

__all__ = ["Peers"]


class Peers:
    __slots__ = (
        "_answers",
        "_ctx",
        "_offers",
        "connected",
        "ever_connected",
        "ice_servers",
        "request_offer",
        "single_pc",
        "targets",
    )

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self.single_pc = True
        self.ice_servers: tuple[IceServer, ...] = ()
        self.targets: set[PeerTarget] = set()
        self.connected: set[PeerTarget] = set()
        self.ever_connected = False
        self._offers: dict[PeerTarget, str] = {}  # the last offer per PC, ours or the server's
        self._answers: dict[PeerTarget, str] = {}
        self.request_offer: Callable[[float], None] | None = None

    def create_publisher(self, ice_servers: tuple[IceServer, ...], now: float) -> None:
        self.targets.add(PeerTarget.PUBLISHER)
        self._ctx.commands += [
            cmd.CreatePeerConnection(target=PeerTarget.PUBLISHER, ice_servers=ice_servers),
            cmd.CreateDataChannel(channel=Channel.RELIABLE, ordered=True, max_retransmits=None),
            cmd.CreateDataChannel(channel=Channel.LOSSY, ordered=False, max_retransmits=0),
            cmd.CreateDataChannel(channel=Channel.DATA_TRACK, ordered=False, max_retransmits=0),
        ]
        if self.request_offer is not None:
            self.request_offer(now)
        else:
            self._ctx.commands.append(cmd.CreateOffer(target=PeerTarget.PUBLISHER))

    def remote_answer(self, sdp: str) -> None:
        self._answers[PeerTarget.PUBLISHER] = sdp
        self._ctx.commands.append(
            cmd.SetRemoteDescription(target=PeerTarget.PUBLISHER, sdp=sdp, sdp_type=SdpType.ANSWER)
        )

    def remote_offer(self, sdp: str) -> None:
        # Dual-PC: the server's offer is for the subscriber PC. Single-PC: for the only PC.
        target = PeerTarget.PUBLISHER if self.single_pc else PeerTarget.SUBSCRIBER
        self._offers[target] = sdp
        if target not in self.targets:
            self.targets.add(target)
            self._ctx.commands.append(
                cmd.CreatePeerConnection(target=target, ice_servers=self.ice_servers)
            )
        self._ctx.commands += [
            cmd.SetRemoteDescription(target=target, sdp=sdp, sdp_type=SdpType.OFFER),
            cmd.CreateAnswer(target=target),
        ]

    def remote_candidate(self, trickle: spb.TrickleRequest) -> None:
        if not trickle.candidateInit:
            return
        target = PeerTarget.SUBSCRIBER if trickle.target == 1 else PeerTarget.PUBLISHER
        if self.single_pc:
            target = PeerTarget.PUBLISHER
        self._ctx.commands.append(
            cmd.AddIceCandidate(target=target, candidate_init=trickle.candidateInit)
        )

    def local_description(self, target: PeerTarget, sdp: str, sdp_type: SdpType) -> None:
        self.remember(target, sdp, sdp_type)

    def remember(self, target: PeerTarget, sdp: str, sdp_type: SdpType) -> None:
        """Keep `sdp` as the last offer or answer of `target` (ours or the server's)."""
        (self._offers if sdp_type is SdpType.OFFER else self._answers)[target] = sdp

    def sync_descriptions(self) -> tuple[str | None, str | None]:
        """The (offer, answer) a resume's `SyncState` reports: the subscriber's in dual-PC
        mode (the server offers there), else the publisher's."""
        target = PeerTarget.PUBLISHER if self.single_pc else PeerTarget.SUBSCRIBER
        return self._offers.get(target), self._answers.get(target)

    @property
    def all_connected(self) -> bool:
        """Every peer connection asked for is connected (and there is at least one)."""
        return bool(self.targets) and self.targets <= self.connected

    def close_all(self) -> None:
        """Ask for every peer connection to be closed, in target order."""
        for target in sorted(self.targets):
            self._ctx.commands.append(cmd.ClosePeerConnection(target=target))
        self.targets.clear()

    def reset(self) -> None:
        """A full reconnect: close every peer connection and forget what they negotiated."""
        self.close_all()
        self.connected.clear()
        self._offers.clear()
        self._answers.clear()
