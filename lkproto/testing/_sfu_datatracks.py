"""Data tracks inside a MemoryRoom's SFU: what livekit-server v1.13.5 does with them.

Theory of operation (protocol-reference-2 section 1; [srv] is livekit/livekit v1.13.5,
pkg/rtc/participant_data_track.go, subscriptionmanager.go, room.go)
- Publishing ([srv] HandlePublishDataTrackRequest, checks in its order): without
  canPublishData -> `RequestResponse{NOT_ALLOWED}`; a handle outside 1..65535 ->
  INVALID_HANDLE; a name empty or over 256 bytes -> INVALID_NAME; a handle or a name this
  participant already publishes -> DUPLICATE_HANDLE / DUPLICATE_NAME; each refusal echoes the
  request (`publish_data_track`, request_id 0). Otherwise the track gets a SID ("DTR_1",
  "DTR_2", ...), `PublishDataTrackResponse{info}` is sent and the publisher's
  `ParticipantInfo.data_tracks` lists it. Publishing makes the participant a publisher, whose
  updates from then on go out at once instead of on the 3 s batch ([srv]
  PushAndDequeueUpdates: `shouldSend = isImmediate || pi.IsPublisher`); the update announcing
  the track goes out at once (broadcastParticipantState).
- Unpublishing: a known handle is answered `UnpublishDataTrackResponse{info}`, its
  subscriptions end, and an update follows; an unknown one `RequestResponse{NOT_FOUND}`.
  A participant that leaves takes its tracks with it (its DISCONNECTED update says so).
- Subscribing ([srv] onUpdateDataSubscriptions, subscribeDataTrack): each update is a wish,
  kept until withdrawn or until its track is unpublished. A wish is granted when the
  subscriber has canSubscribe, the track exists and the publisher's subscription permissions
  allow the subscriber; the server then gives it a handle from the subscriber's own u16
  counter (skipping 0) and sends `DataTrackSubscriberHandles`, the full snapshot of that
  subscriber's handles, whenever it changes. Each time it evaluates the publisher's
  permission and the outcome differs from the last one sent (the first always does), it
  sends `SubscriptionPermissionUpdate{publisher SID, track SID, allowed}`. A publisher's
  `SubscriptionPermission` is re-evaluated for every wish on its tracks: revoked handles go,
  newly allowed wishes are granted.
- Packets on `_data_track` ([srv] DataDownTrack.WritePacket): a publisher's packet is read
  (12-byte base header, version 0, the track handle); an unreadable packet, or one whose
  handle names no track of that publisher, is dropped. Otherwise a copy goes to every
  subscriber with a handle for the track, the handle rewritten to the subscriber's, through
  the (publisher, subscriber) `Link`. `loss` (0..1) loses that share of those copies, drawn
  from a hash of (`seed`, a counter): the same run loses the same packets. Drops are
  recorded in the room's `dropped` list.
- Resume ([srv] Room.ResumeParticipant): a `SyncState` listing a data track SID the server
  does not have for that participant makes the server start a full reconnect
  (leave{RECONNECT}).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Generic, Protocol, TypeVar

from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto.models import Channel

__all__ = ["DataTrackRouter", "MemberLike", "SfuLike"]

MAX_NAME = 256
_BASE_HEADER = 12


class MemberLike(Protocol):
    """What the router reads and writes of a participant session (`_server.M`)."""

    data_tracks: dict[int, tpb.DataTrackInfo]  # by pub_handle
    is_publisher: bool

    @property
    def sid(self) -> str: ...

    @property
    def identity(self) -> str: ...

    @property
    def permission(self) -> ppb.ParticipantPermission: ...


M = TypeVar("M", bound=MemberLike)


class SfuLike(Protocol[M]):
    """What the router uses of the SFU (`_server.Sfu`)."""

    @property
    def members(self) -> Mapping[str, M]: ...

    def send(self, member: M, message: spb.SignalResponse) -> None: ...

    def drop(
        self, sender: str, receiver: str | None, channel: Channel, data: bytes, why: str
    ) -> None: ...

    def route(self, sender: str, receiver: M, channel: Channel, data: bytes) -> None: ...

    def publication_changed(self, member: M) -> None: ...


class DataTrackRouter(Generic[M]):
    """The SFU's data tracks (see the module docstring). Driven by `Sfu`."""

    def __init__(self, sfu: SfuLike[M], *, loss: float = 0.0, seed: int = 0) -> None:
        self._sfu = sfu
        self.loss = loss
        self.seed = seed
        self._draws = 0
        self._sids = 0
        self.wishes: set[tuple[M, str]] = set()  # (subscriber, track SID)
        self.handles: dict[M, dict[str, int]] = {}  # subscriber -> track SID -> handle
        self._next_handle: dict[M, int] = {}
        self._allowed_sent: dict[tuple[M, str], bool] = {}
        self._permissions: dict[M, tpb.SubscriptionPermission] = {}

    # -- publishing -----------------------------------------------------------------------------

    def publish(self, member: M, request: tpb.PublishDataTrackRequest) -> None:
        reason: spb.RequestResponse.Reason = spb.RequestResponse.OK
        message = ""
        if not member.permission.can_publish_data:
            reason, message = spb.RequestResponse.NOT_ALLOWED, "does not have permission"
        elif not 0 < request.pub_handle <= 0xFFFF:
            reason, message = spb.RequestResponse.INVALID_HANDLE, "handle should be > 0"
        elif not 0 < len(request.name.encode()) <= MAX_NAME:
            reason, message = spb.RequestResponse.INVALID_NAME, "name should not be empty"
        elif request.pub_handle in member.data_tracks:
            reason = spb.RequestResponse.DUPLICATE_HANDLE
            message = "a data track with same handle already exists"
        elif any(t.name == request.name for t in member.data_tracks.values()):
            reason = spb.RequestResponse.DUPLICATE_NAME
            message = "a data track with same name already exists"
        if reason:
            refusal = spb.RequestResponse(reason=reason, message=message)
            refusal.publish_data_track.CopyFrom(request)
            self._sfu.send(member, spb.SignalResponse(request_response=refusal))
            return
        self._sids += 1
        info = tpb.DataTrackInfo(
            pub_handle=request.pub_handle,
            sid=f"DTR_{self._sids}",
            name=request.name,
            encryption=request.encryption,
        )
        if request.HasField("frame_encoding"):
            info.frame_encoding.CopyFrom(request.frame_encoding)
        if request.HasField("schema"):
            info.schema.CopyFrom(request.schema)
        member.data_tracks[info.pub_handle] = info
        response = tpb.PublishDataTrackResponse(info=info)
        self._sfu.send(member, spb.SignalResponse(publish_data_track_response=response))
        member.is_publisher = True
        self._sfu.publication_changed(member)

    def unpublish(self, member: M, request: tpb.UnpublishDataTrackRequest) -> None:
        info = member.data_tracks.pop(request.pub_handle, None)
        if info is None:
            response = spb.RequestResponse(reason=spb.RequestResponse.NOT_FOUND)
            response.unpublish_data_track.CopyFrom(request)
            self._sfu.send(member, spb.SignalResponse(request_response=response))
            return
        answer = tpb.UnpublishDataTrackResponse(info=info)
        self._sfu.send(member, spb.SignalResponse(unpublish_data_track_response=answer))
        self._track_gone(info.sid)
        self._sfu.publication_changed(member)

    def member_removed(self, member: M) -> None:
        """`member` left: its wishes and handles go, and so do its tracks' subscriptions."""
        self.wishes = {w for w in self.wishes if w[0] is not member}
        self._allowed_sent = {w: a for w, a in self._allowed_sent.items() if w[0] is not member}
        self.handles.pop(member, None)
        self._next_handle.pop(member, None)
        self._permissions.pop(member, None)
        for info in member.data_tracks.values():
            self._track_gone(info.sid)

    def _track_gone(self, sid: str) -> None:
        for wish in [w for w in self.wishes if w[1] == sid]:
            self.wishes.discard(wish)
            self._allowed_sent.pop(wish, None)
            self._set_handle(wish[0], sid, granted=False)

    # -- subscribing ----------------------------------------------------------------------------

    def update_subscription(self, member: M, update: tpb.UpdateDataSubscription) -> None:
        for item in update.updates:
            wish = (member, item.track_sid)
            if item.subscribe:
                self.wishes.add(wish)
            else:
                self.wishes.discard(wish)
                self._allowed_sent.pop(wish, None)
            self._reconcile(wish)

    def set_permission(self, member: M, permission: tpb.SubscriptionPermission) -> None:
        self._permissions[member] = permission
        sids = {info.sid for info in member.data_tracks.values()}
        for wish in sorted(self.wishes, key=lambda w: (w[0].identity, w[1])):
            if wish[1] in sids:
                self._reconcile(wish)

    def _reconcile(self, wish: tuple[M, str]) -> None:
        subscriber, sid = wish
        publisher = self._publisher(sid)
        granted = False
        if wish in self.wishes and subscriber.permission.can_subscribe and publisher is not None:
            allowed = self._allows(publisher, subscriber, sid)
            if self._allowed_sent.get(wish) != allowed:
                self._allowed_sent[wish] = allowed
                update = tpb.SubscriptionPermissionUpdate(
                    participant_sid=publisher.sid, track_sid=sid, allowed=allowed
                )
                self._sfu.send(
                    subscriber, spb.SignalResponse(subscription_permission_update=update)
                )
            granted = allowed
        self._set_handle(subscriber, sid, granted=granted)

    def _allows(self, publisher: M, subscriber: M, sid: str) -> bool:
        permission = self._permissions.get(publisher)
        if permission is None or permission.all_participants:
            return True
        for entry in permission.track_permissions:
            if subscriber.identity == entry.participant_identity or (
                entry.participant_sid and subscriber.sid == entry.participant_sid
            ):
                return entry.all_tracks or sid in entry.track_sids
        return False

    def _set_handle(self, subscriber: M, sid: str, *, granted: bool) -> None:
        handles = self.handles.setdefault(subscriber, {})
        if granted == (sid in handles):
            return
        if granted:
            handle = self._next_handle.get(subscriber, 0) % 0xFFFF + 1  # a u16 that skips 0
            self._next_handle[subscriber] = handle
            handles[sid] = handle
        else:
            del handles[sid]
        snapshot = tpb.DataTrackSubscriberHandles()
        for track_sid, handle in handles.items():
            publisher = self._publisher(track_sid)
            assert publisher is not None  # handles exist only for published tracks
            entry = snapshot.sub_handles[handle]
            entry.publisher_identity = publisher.identity
            entry.publisher_sid = publisher.sid
            entry.track_sid = track_sid
        self._sfu.send(subscriber, spb.SignalResponse(data_track_subscriber_handles=snapshot))

    def _publisher(self, sid: str) -> M | None:
        for member in self._sfu.members.values():
            if any(info.sid == sid for info in member.data_tracks.values()):
                return member
        return None

    # -- resume ---------------------------------------------------------------------------------

    def knows_all(self, member: M, state: spb.SyncState) -> bool:
        """Whether every data track a resume's `SyncState` lists is one `member` publishes."""
        sids = {info.sid for info in member.data_tracks.values()}
        return all(
            entry.HasField("info") and entry.info.sid in sids for entry in state.publish_data_tracks
        )

    # -- packets --------------------------------------------------------------------------------

    def packet(self, member: M, data: bytes) -> None:
        """A packet `member` sent on `_data_track` reached the server."""
        sfu, sender = self._sfu, member.identity
        if len(data) < _BASE_HEADER or data[0] >> 5:
            sfu.drop(sender, None, Channel.DATA_TRACK, data, "unreadable data-track packet")
            return
        info = member.data_tracks.get(int.from_bytes(data[2:4], "big"))
        if info is None:
            sfu.drop(sender, None, Channel.DATA_TRACK, data, "no data track has that handle")
            return
        for receiver in list(sfu.members.values()):
            handle = self.handles.get(receiver, {}).get(info.sid)
            if handle is None:
                continue
            out = data[:2] + handle.to_bytes(2, "big") + data[4:]
            if self._lost():
                why = "lost (MemoryRoom data_track_loss)"
                sfu.drop(sender, receiver.identity, Channel.DATA_TRACK, out, why)
                continue
            sfu.route(sender, receiver, Channel.DATA_TRACK, out)

    def _lost(self) -> bool:
        if self.loss <= 0:
            return False
        self._draws += 1
        digest = hashlib.blake2b(f"{self.seed}:{self._draws}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64 < self.loss
