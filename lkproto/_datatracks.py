"""Data tracks in a session: the part around the public `datatracks.DataTrackManager`.

Theory of operation (protocol-reference-2 section 1)
- The manager (`lkproto.datatracks`) is the whole feature, usable alone; this part composes
  it with the session like `_exchange.Exchange` does streams and RPC. It owns the manager
  and whether our `_data_track` channel is open, and nothing else.
- Wire: the manager's signal requests (publish 19, unpublish 20, subscription 21) leave as
  `SendSignal` commands in the order it made them; the `SignalResponse`s it reads (27, 28,
  29, `SubscriptionPermissionUpdate` 15, the `RequestResponse`s echoing a data-track request
  and every `ParticipantUpdate`) are routed here by the `Connection`'s signal dispatch;
  packets from `_data_track` go to `receive_packet`. Everything else it reports becomes an
  event, unchanged (`events` re-exports the manager's output types).
- Frames: what `try_push` queued is packetized and handed to the adapter as
  `SendDataTrackFrame` commands as soon as the `_data_track` channel is open, so a frame
  pushed before the channel opens waits (bounded by `Config.max_data_track_queued_frames`
  and `max_data_track_queued_bytes`: QUEUE_FULL beyond) and goes out when it opens. From
  then on nothing waits in the core: the adapter sends while the channel's buffered amount is
  low and otherwise drops, as the official SDKs do, because a data track prefers fresh
  frames to complete ones.
- Lifecycle (`Connection` hooks): the join (first, or the one ending a full reconnect:
  republish with the same handles, resubscribe), a resume starting (requests wait) and its
  `SyncState` sent (`publish_data_tracks` carries our tracks; then the waiting requests go
  out), a full reconnect starting (publications wait for the rejoin, subscriber handles are
  forgotten, the old channel is gone), and the session's end.
- Deadlines: the manager keeps its own (publish and subscribe timeouts); the `Connection`
  reads `get_timer()` beside its other deadlines and calls `handle_timer`.
- The verbs (`publish` ... `set_pipeline_options`) are the `Connection`'s, which checks
  their state first; each flushes what the manager made of it, even when it raised.
- End-to-end encryption stays out of this part: with `encryption`, the Connection sets
  three seams to `_encryption.Encryption`'s methods. `decide_e2ee` says whether a track we
  publish uses E2EE (None means yes; without the seam, no). `seal_frame` turns a frame
  pushed on a track that uses E2EE into its ciphertext and E2EE extension before the
  manager queues it (a refusal still names the frame given); `open_frame` takes, in
  `flush`, each received frame of a remote track that uses E2EE instead of reporting it,
  and reports it decrypted (or dropped) itself.
- The 90 kHz packet clock starts, per track, at a base the SDKs draw at random; here it is
  drawn from the `Connection`'s injected random source, or derived from its ids, so the core
  still reads no clock and draws no randomness.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import TypeGuard

from lkproto import commands as cmd
from lkproto._context import Context
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto.datatracks import (
    DataTrackFrame,
    DataTrackFrameReceived,
    DataTrackInfo,
    DataTrackManager,
    E2eeExtension,
    PushFrameError,
    SendDataTrackSignal,
    SubscriptionState,
)

__all__ = ["SIGNALS", "DataTracks", "DecideE2ee", "OpenFrame", "SealFrame"]

#: Encrypts what is pushed on our track: (frame, e2ee given, the track uses E2EE) -> (frame,
#: e2ee) to queue (`_encryption.Encryption.seal_frame`).
SealFrame = Callable[
    [DataTrackFrame, E2eeExtension | None, bool], tuple[DataTrackFrame, E2eeExtension | None]
]
#: Whether a track we publish uses E2EE: (`uses_e2ee` given, the verb's name) -> the answer,
#: or a `LocalProtocolError` (`_encryption.Encryption.track_uses_e2ee`).
DecideE2ee = Callable[[bool | None, str], bool]
#: Takes a received frame of an encrypted track (`_encryption.Encryption.receive_frame`).
OpenFrame = Callable[[DataTrackFrameReceived], None]

#: The `SignalResponse` kinds that concern only data tracks (routed here by the Connection).
SIGNALS = frozenset(
    {
        "publish_data_track_response",
        "unpublish_data_track_response",
        "data_track_subscriber_handles",
        "subscription_permission_update",
    }
)


class DataTracks:
    __slots__ = ("_ctx", "channel_open", "decide_e2ee", "manager", "open_frame", "seal_frame")

    def __init__(self, ctx: Context, *, random: Callable[[], float] | None = None) -> None:
        self._ctx = ctx
        c = ctx.config
        draw = random or (lambda: _draw_from_id(ctx.id_factory()))
        self.manager = DataTrackManager(
            publish_timeout=c.data_track_publish_timeout,
            subscribe_timeout=c.data_track_subscribe_timeout,
            max_queued_frames=c.max_data_track_queued_frames,
            max_queued_bytes=c.max_data_track_queued_bytes,
            max_partial_frames=c.max_data_track_partial_frames,
            max_packets_per_frame=c.max_data_track_packets_per_frame,
            max_remembered_frames=c.max_data_track_remembered_frames,
            max_published_tracks=c.max_published_data_tracks,
            max_remote_tracks=c.max_remote_data_tracks,
            timestamp_base_factory=lambda: int(min(max(draw(), 0.0), 1.0) * 0xFFFF_FFFF),
        )
        self.channel_open = False
        #: End-to-end encryption's seams (set by the Connection made with `encryption`).
        self.seal_frame: SealFrame | None = None
        self.open_frame: OpenFrame | None = None
        self.decide_e2ee: DecideE2ee | None = None

    def flush(self) -> None:
        """Carry out what the manager produced, in order: requests become `SendSignal`
        commands, frames of encrypted tracks go to `open_frame` (if set), the rest become
        events; then, if the channel is open, the frames ready to go."""
        ctx = self._ctx
        for out in self.manager.drain():
            if isinstance(out, SendDataTrackSignal):
                ctx.commands.append(cmd.SendSignal(data=out.data))
            elif self.open_frame is not None and self._encrypted(out):
                self.open_frame(out)
            else:
                ctx.events.append(out)
        if self.channel_open and self.manager.queued_bytes:
            ctx.commands += self.manager.frames_to_send()

    # -- the session ------------------------------------------------------------------------

    def joined(
        self, local_identity: str, others: Iterable[ppb.ParticipantInfo], now: float
    ) -> None:
        self.manager.joined(local_identity, others, now=now)

    def resuming(self, now: float) -> None:
        self.manager.reconnecting(full=False, now=now)

    def resumed(self, now: float) -> None:
        self.manager.resumed(now=now)

    def restarted(self, now: float) -> None:
        """A full reconnect began: the peer connection, and its channel, are gone."""
        self.channel_open = False
        self.manager.reconnecting(full=True, now=now)

    def ended(self, now: float) -> None:
        self.channel_open = False
        self.manager.disconnected(now=now)

    def sync_state(self) -> list[tpb.PublishDataTrackResponse]:
        return self.manager.sync_state_publish_data_tracks()

    def channel_changed(self, is_open: bool) -> None:
        """The `_data_track` channel opened (what waited for it goes now) or closed."""
        self.channel_open = is_open
        if is_open:
            self.flush()

    # -- remote input -------------------------------------------------------------------------

    def receive_signal(self, msg: spb.SignalResponse, now: float) -> None:
        self.manager.receive_signal(msg, now=now)

    def permission_update(self, msg: spb.SignalResponse, now: float) -> bool:
        """A `SubscriptionPermissionUpdate`, one message for both kinds of track: True if it
        names a data track the manager knows (and was handled here), else it is a media
        track's."""
        if not self.manager.knows_remote_track(msg.subscription_permission_update.track_sid):
            return False
        self.manager.receive_signal(msg, now=now)
        return True

    def participants_updated(self, infos: Iterable[ppb.ParticipantInfo], now: float) -> None:
        self.manager.participants_updated(infos, now=now)

    def request_response(self, response: spb.RequestResponse, now: float) -> bool:
        """True if `response` echoes a data-track request (and was handled here)."""
        return self.manager.request_response_received(response, now=now)

    def receive_packet(self, data: bytes, now: float) -> None:
        self.manager.receive_packet(data, now=now)
        self.flush()

    # -- verbs: each carries out what the manager made of it (`flush`), even if it raised ---

    def publish(
        self,
        now: float,
        *,
        name: str,
        uses_e2ee: bool | None,
        frame_encoding: tpb.DataTrackFrameEncoding | None,
        schema: tpb.DataTrackSchemaId | None,
    ) -> int:
        """`uses_e2ee` as given to `Connection.publish_data_track`: decided by `decide_e2ee`
        if set (None: yes), else None means no."""
        if self.decide_e2ee is not None:
            e2ee = self.decide_e2ee(uses_e2ee, "publish_data_track")
        else:
            e2ee = False if uses_e2ee is None else uses_e2ee
        try:
            return self.manager.publish_data_track(
                name=name, now=now, uses_e2ee=e2ee, frame_encoding=frame_encoding, schema=schema
            )
        finally:
            self.flush()

    def unpublish(self, pub_handle: int, now: float) -> None:
        try:
            self.manager.unpublish_data_track(pub_handle, now=now)
        finally:
            self.flush()

    def push(
        self, pub_handle: int, frame: DataTrackFrame, now: float, e2ee: E2eeExtension | None
    ) -> None:
        """Queue `frame`, through `seal_frame` first if set. A `PushFrameError` names the
        frame given, never its ciphertext."""
        try:
            if self.seal_frame is None:
                self.manager.try_push(pub_handle, frame, now=now, e2ee=e2ee)
                return
            info = self.manager.local_info(pub_handle) if isinstance(pub_handle, int) else None
            sealed, extension = self.seal_frame(frame, e2ee, info is not None and info.uses_e2ee)
            try:
                self.manager.try_push(pub_handle, sealed, now=now, e2ee=extension)
            except PushFrameError as exc:
                raise PushFrameError(exc.reason, frame, exc.message) from None
        finally:
            self.flush()

    def subscribe(self, sid: str, now: float) -> None:
        try:
            self.manager.subscribe(sid, now=now)
        finally:
            self.flush()

    def unsubscribe(self, sid: str, now: float) -> None:
        try:
            self.manager.unsubscribe(sid, now=now)
        finally:
            self.flush()

    def set_pipeline_options(self, sid: str, max_partial_frames: int | None) -> None:
        try:
            self.manager.set_pipeline_options(sid, max_partial_frames=max_partial_frames)
        finally:
            self.flush()

    # -- views --------------------------------------------------------------------------------

    def is_published(self, pub_handle: int) -> bool:
        return self.manager.is_published(pub_handle)

    def local_info(self, pub_handle: int) -> DataTrackInfo | None:
        return self.manager.local_info(pub_handle)

    @property
    def remote_tracks(self) -> Sequence[tuple[str, DataTrackInfo]]:
        return self.manager.remote_tracks

    def subscription(self, sid: str) -> SubscriptionState:
        return self.manager.subscription_state(sid)

    def _encrypted(self, out: object) -> TypeGuard[DataTrackFrameReceived]:
        """Whether `out` is a frame of a remote track that uses E2EE (which carries its
        extension: the manager drops those that do not)."""
        if not isinstance(out, DataTrackFrameReceived) or out.e2ee is None:
            return False
        info = self.manager.remote_info(out.sid)
        return info is not None and info.uses_e2ee


def _draw_from_id(ident: str) -> float:
    digest = hashlib.blake2b(ident.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
