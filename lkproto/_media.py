"""Media tracks in a `Connection`: the glue around the public `tracks.TrackManager`.

Theory of operation (protocol-reference-2 section 3; the media findings F1-F8)
- The `TrackManager` (`lkproto.tracks`) owns publications, subscriptions and the single peer
  connection's offer/answer queue. This part feeds it the session's inputs and carries out
  its outputs in order, after every input (`_flush`): signal requests become `SendSignal`,
  its offers and answers become `CreateOffer`/`SetRemoteDescription` with the queue's
  `offer_id`, its transceiver commands go to the adapter unchanged (they are
  `commands.Command`s), and its events are the session's (`events.Event`).
- The queue owns every offer of the single peer connection (F3.5): the publisher's first
  offer too, asked for through `request_offer` once the data channels are created
  (`Peers.create_publisher` calls it). `enabled` says whether the session negotiates
  through it: a single peer connection (`/rtc/v1`). On the dual peer connection fallback
  the server offers media on its own connection; offers and answers take the direct path
  as before, a `MediaSectionsRequirement` is ignored and media cannot be published; remote
  publications are still listed.
- Offers outside the queue (the offer embedded in the join, an ICE restart of a resume)
  are sent with id 0 and their answer (the next one with id 0) is applied directly:
  `direct_offer` marks one in flight. Two offers must never overlap, so a requirement that
  arrives meanwhile is held until that answer came, and the queue's own requests wait while
  a resume is under way: `resumed` is called only once the resume completed (the peer
  connection carries data).
- Ordering with the roster: remote publications of a participant who leaves are withdrawn
  (`TrackUnsubscribed`, `TrackUnpublished`) before the roster reports it gone, and those of
  a participant who arrives are listed after it is reported, as livekit.rtc emits them.
- The verbs are the `Connection`'s, which checks their state first. In a session made with
  end-to-end encryption (`encrypted`) publishing is refused: lkproto does not encrypt media
  frames, and clear media must not go into an encrypted room.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from lkproto import commands as cmd
from lkproto._context import Context
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto._peers import Peers
from lkproto._state import SessionPhase
from lkproto.errors import LocalProtocolError
from lkproto.models import PeerTarget, SdpType
from lkproto.tracks import (
    AddTransceiver,
    ApplyAnswer,
    CreateTrackOffer,
    ParticipantTrackPermission,
    SendTrackSignal,
    SetSendSource,
    SetTransceiverDirection,
    TrackKind,
    TrackManager,
    TrackSource,
    VideoQuality,
)

__all__ = ["MEDIA_SIGNALS", "MediaTracks"]

#: The `SignalResponse` variants this part handles besides answers, updates and
#: request responses.
MEDIA_SIGNALS = (
    "track_published",
    "media_sections_requirement",
    "mute",
    "track_unpublished",
    "track_subscribed",
    "subscription_response",
    "subscription_permission_update",
    "stream_state_update",
)
_DISCONNECTED = int(ppb.ParticipantInfo.DISCONNECTED)


class MediaTracks:
    """The session's media tracks (see the module docstring)."""

    __slots__ = ("_ctx", "_held", "_peers", "direct_offer", "enabled", "encrypted", "manager")

    def __init__(self, ctx: Context, peers: Peers) -> None:
        self._ctx = ctx
        self._peers = peers
        c = ctx.config
        self.manager = TrackManager(
            id_factory=ctx.id_factory,
            auto_subscribe=c.auto_subscribe,
            publish_timeout=c.track_publish_timeout,
            negotiation_timeout=c.negotiation_timeout,
            max_local_publications=c.max_published_tracks,
            max_receive_slots=c.max_receive_slots,
            max_slots_per_requirement=c.max_slots_per_requirement,
            max_remote_tracks=c.max_remote_tracks,
            max_remembered_subscription_errors=c.max_remembered_subscription_errors,
        )
        self.enabled = False
        self.encrypted = False  # the session encrypts end to end: media tracks are refused
        self.direct_offer = False  # an offer outside the queue (id 0) awaits its answer
        self._held: list[spb.SignalResponse] = []  # requirements waiting for that answer

    # -- carrying out the manager's outputs ---------------------------------------------------

    def _flush(self) -> None:
        ctx = self._ctx
        for out in self.manager.drain():
            match out:
                case SendTrackSignal():
                    if out.request.WhichOneof("message") == "offer":
                        offer = out.request.offer.sdp
                        self._peers.remember(PeerTarget.PUBLISHER, offer, SdpType.OFFER)
                    ctx.commands.append(cmd.SendSignal(data=out.data))
                case CreateTrackOffer():
                    target = PeerTarget.PUBLISHER
                    ctx.commands.append(cmd.CreateOffer(target=target, offer_id=out.offer_id))
                case ApplyAnswer():
                    self._peers.remember(PeerTarget.PUBLISHER, out.sdp, SdpType.ANSWER)
                    ctx.commands.append(
                        cmd.SetRemoteDescription(
                            target=PeerTarget.PUBLISHER,
                            sdp=out.sdp,
                            sdp_type=SdpType.ANSWER,
                            offer_id=out.offer_id,
                        )
                    )
                case AddTransceiver() | SetTransceiverDirection() | SetSendSource():
                    ctx.commands.append(out)
                case _:  # every other output is an event (`events.Event`)
                    ctx.events.append(out)

    # -- the session's lifecycle ---------------------------------------------------------------

    def joined(
        self, identity: str, others: Sequence[ppb.ParticipantInfo], *, enabled: bool, now: float
    ) -> None:
        """A JoinResponse (the first, or a full reconnect's) was taken over."""
        self.enabled = enabled
        self.manager.joined(identity, others, now=now)
        self._flush()

    def request_offer(self, now: float) -> None:
        """The publisher and its data channels were just created: negotiate them."""
        self.manager.request_offer(now=now)
        self._flush()

    def reconnecting(self, *, full: bool, now: float) -> None:
        """The session was interrupted (again), to be resumed or rejoined (once `full`, a
        reconnect stays full). Nothing to do before the first join."""
        if full:  # the peer connection is gone, and any offer outside the queue with it
            self.direct_offer = False
            self._held.clear()
        if self.manager.phase in (
            SessionPhase.JOINED,
            SessionPhase.RESUMING,
            SessionPhase.REJOINING,
        ):
            self.manager.reconnecting(full=full, now=now)
            self._flush()

    def resumed(self, now: float) -> None:
        """The resume completed: what the manager held back goes out."""
        if self.manager.phase is SessionPhase.RESUMING:
            self.manager.resumed(now=now)
            self._flush()

    def disconnected(self, now: float) -> None:
        self.manager.disconnected(now=now)
        self._flush()

    def sync_state(
        self,
    ) -> tuple[list[tpb.TrackPublishedResponse], tpb.UpdateSubscription | None, list[str]]:
        """SyncState's `publish_tracks`, `subscription` (None when it names no track) and
        `track_sids_disabled` (F5.1)."""
        m = self.manager
        subscription = m.sync_state_subscription()
        return (
            m.sync_state_publish_tracks(),
            subscription if subscription.track_sids else None,
            m.sync_state_track_sids_disabled(),
        )

    def get_timer(self) -> float | None:
        return self.manager.get_timer()

    def timer(self, now: float) -> None:
        self.manager.handle_timer(now)
        self._flush()

    # -- signal input --------------------------------------------------------------------------

    def receive(self, message: spb.SignalResponse, now: float) -> None:
        """A track message (one of `MEDIA_SIGNALS`)."""
        if message.WhichOneof("message") == "media_sections_requirement":
            if not self.enabled:
                return  # the dual-PC server offers media itself; this path cannot negotiate
            if self.direct_offer:
                self._held.append(message)
                return
        self.manager.receive_signal(message, now=now)
        self._flush()

    def receive_answer(self, message: spb.SignalResponse, now: float) -> None:
        """An `answer`: the queue's, or one to apply directly (then what it held goes in)."""
        if not self.answer(message.answer, now):
            self._peers.remote_answer(message.answer.sdp)
            self.release(now)

    def answer(self, answer: spb.SessionDescription, now: float) -> bool:
        """An answer: the queue's (True), or one to apply directly (False)."""
        if not self.enabled or (self.direct_offer and answer.id == 0):
            self.direct_offer = False
            return False
        self.manager.receive_signal(spb.SignalResponse(answer=answer), now=now)
        self._flush()
        return True

    def release(self, now: float) -> None:
        """The direct answer is being applied: the requirements held meanwhile go in."""
        held, self._held = self._held, []
        for message in held:
            self.manager.receive_signal(message, now=now)
        self._flush()

    def request_response(self, response: spb.RequestResponse, now: float) -> bool:
        """True if `response` answers one of our track requests (and was handled here)."""
        ours = self.manager.request_response_received(response, now=now)
        self._flush()
        return ours

    def leaving(self, infos: Iterable[ppb.ParticipantInfo], now: float) -> None:
        """The disconnected participants of a ParticipantUpdate, before the roster."""
        gone = [i for i in infos if i.state == _DISCONNECTED]
        if gone:
            self.manager.participants_updated(gone, now=now)
            self._flush()

    def updated(self, infos: Iterable[ppb.ParticipantInfo], now: float) -> None:
        """The other participants of a ParticipantUpdate, after the roster."""
        rest = [i for i in infos if i.state != _DISCONNECTED]
        if rest:
            self.manager.participants_updated(rest, now=now)
            self._flush()

    # -- adapter reports -----------------------------------------------------------------------

    def offer_created(
        self, offer_id: int, sdp: str, slot_mids: Mapping[int, str], now: float
    ) -> None:
        self.manager.offer_created(offer_id, sdp, slot_mids=slot_mids, now=now)
        self._flush()

    def applied(self, offer_id: int, now: float) -> None:
        self.manager.remote_description_applied(offer_id, now=now)
        self._flush()

    # -- application verbs ---------------------------------------------------------------------

    def publish(
        self,
        kind: TrackKind,
        *,
        name: str,
        now: float,
        source: TrackSource | None,
        muted: bool,
        stream: str,
        stereo: bool,
        width: int,
        height: int,
        video_codec: str,
        max_bitrate: int,
    ) -> str:
        if self.encrypted:  # clear media in an encrypted room: refused
            raise self._ctx.misuse(
                "publish_track",
                "media tracks are not end-to-end encrypted by lkproto; this Connection was "
                "made with encryption",
            )
        if not self.enabled:
            raise LocalProtocolError(
                "publish_track: media tracks need the single peer connection (/rtc/v1); "
                "this session fell back to the dual peer connection path",
                call="publish_track",
                state=self._ctx.state.name,
            )
        try:
            return self.manager.publish(
                kind,
                name=name,
                now=now,
                source=source,
                muted=muted,
                stream=stream,
                stereo=stereo,
                width=width,
                height=height,
                video_codec=video_codec,
                max_bitrate=max_bitrate,
            )
        finally:
            self._flush()

    def unpublish(self, cid: str, now: float) -> bool:
        try:
            return self.manager.unpublish(cid, now=now)
        finally:
            self._flush()

    def set_muted(self, cid: str, muted: bool, now: float) -> None:
        try:
            self.manager.set_muted(cid, muted, now=now)
        finally:
            self._flush()

    def set_subscribed(self, sid: str, subscribed: bool, now: float) -> None:
        try:
            self.manager.set_subscribed(sid, subscribed, now=now)
        finally:
            self._flush()

    def update_settings(
        self,
        sid: str,
        *,
        now: float,
        enabled: bool | None,
        width: int | None,
        height: int | None,
        quality: VideoQuality | None,
        fps: int | None,
    ) -> None:
        try:
            self.manager.update_track_settings(
                sid, now=now, enabled=enabled, width=width, height=height, quality=quality, fps=fps
            )
        finally:
            self._flush()

    def set_permissions(
        self,
        *,
        allow_all_participants: bool,
        participant_permissions: Sequence[ParticipantTrackPermission],
        now: float,
    ) -> None:
        try:
            self.manager.set_track_subscription_permissions(
                allow_all_participants=allow_all_participants,
                participant_permissions=participant_permissions,
                now=now,
            )
        finally:
            self._flush()
