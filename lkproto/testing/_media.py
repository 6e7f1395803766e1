"""Media tracks inside a MemoryRoom: what livekit-server v1.13.5 does with publications and
subscriptions in single-PC mode, and the frames it forwards (no RTP: whole frames).

Theory of operation (protocol-reference-2 section 3; the media findings, F-numbers)
- The simulated peer connections describe their transceivers in their (made-up) offers with
  one line per m-line, `a=lkproto-slot:<mid> <audio|video> <direction> <track id or ->`
  (`media_lines`), as a real offer's `a=mid`, direction and `a=msid` do. The server reads
  the latest offer of each participant.
- Publishing (F1.1-F1.4): `AddTrackRequest` is refused with `RequestResponse` NOT_ALLOWED
  (no canPublish) or UNSUPPORTED_TYPE (not audio or video); a cid already pending gets
  QUEUED; otherwise the answer is `TrackPublishedResponse{cid, TrackInfo}` with a new sid
  (TR_A..., TR_V...; `stream` defaults to "camera"). The track is published when an offer
  carries a sendonly m-line whose track id is that cid (the server matches the msid track id,
  F1.3): it joins the publisher's `ParticipantInfo.tracks` (mid set, mime audio/opus or
  video/vp8), broadcast at once. An m-line that stops sending it (inactive, or another
  track id) unpublishes it (F4.4). `MuteTrackRequest` updates the track and broadcasts it;
  NOT_FOUND for a sid that is not the sender's.
- Subscribing (F2.1-F2.4, F3.8, F4.7): a participant wants a track if it auto-subscribes (its
  join's `ConnectionSettings`) or asked with `UpdateSubscription`, and the publisher's
  `SubscriptionPermission` allows it (`subscription_permission_update` tells it when that
  changes). Wanted tracks are bound to free recvonly m-lines of the subscriber's latest
  offer, reusing ones freed by unpublished or unsubscribed tracks; the answer to each offer
  carries `mid_to_track_id` for the bound ones (F2.2). When a change needs new m-lines the
  server sends `MediaSectionsRequirement{num_audios, num_videos}` for all that still lack one
  (again after each answer while some do); when it only rebinds, a 0/0 requirement makes
  the client offer (F3.8). The publisher hears `track_subscribed` the first time (F4.11).
- Frames: a publisher's frame on an m-line goes to every subscriber that has that track
  bound, unless the track is muted (the server forwards nothing then, F4.1). Frames are
  opaque to the room (the memory transport sends `AudioFrame`s and, for video, I420
  `VideoFrameEvent`s).
- A participant leaving unpublishes its tracks; a resume keeps everything.
Not modelled: simulcast, layers and `UpdateTrackSettings` (accepted, ignored), stream
states, RED, server-initiated unpublish and mute, SyncState's track checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import attrs

from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb

__all__ = ["MediaModel", "media_lines", "parse_media_lines"]


class _Peer(Protocol):
    def media_received(self, mid: str, payload: object) -> None: ...


class Member(Protocol):
    """What this model reads and writes of the server's `Member`."""

    tracks: list[tpb.TrackInfo]
    version: int

    @property
    def identity(self) -> str: ...

    @property
    def sid(self) -> str: ...

    @property
    def permission(self) -> ppb.ParticipantPermission: ...

    @property
    def peer(self) -> _Peer | None: ...


class _Clock(Protocol):
    def call_soon(self, fn: Callable[[], None]) -> object: ...


class Sfu(Protocol):
    """What this model uses of the server (`_server.Sfu`)."""

    @property
    def clock(self) -> _Clock: ...

    @property
    def outages(self) -> Mapping[str, object]: ...

    # (Any: the server's own Member class, which satisfies `Member` above.)
    def _send(self, member: Any, message: spb.SignalResponse) -> None: ...

    def _broadcast_now(self, member: Any) -> None: ...


_SLOT = "a=lkproto-slot:"
_KINDS = {tpb.AUDIO: "audio", tpb.VIDEO: "video"}
_MIMES = {"audio": "audio/opus", "video": "video/vp8"}


def media_lines(slots: Iterable[tuple[str, str, str, str | None]]) -> str:
    """The offer lines describing (mid, kind, direction, track id) transceivers."""
    return "".join(
        f"{_SLOT}{mid} {kind} {direction} {tid or '-'}\r\n" for mid, kind, direction, tid in slots
    )


def parse_media_lines(sdp: str) -> dict[str, tuple[str, str, str]]:
    """mid -> (kind, direction, track id or "") from an offer's `media_lines`."""
    found: dict[str, tuple[str, str, str]] = {}
    for line in sdp.splitlines():
        if line.startswith(_SLOT):
            parts = line.removeprefix(_SLOT).split()
            if len(parts) == 4:
                mid, kind, direction, tid = parts
                found[mid] = (kind, direction, "" if tid == "-" else tid)
    return found


@attrs.define(eq=False)
class _Track:
    info: tpb.TrackInfo
    publisher: Member
    cid: str
    subscribed_once: bool = False

    @property
    def kind(self) -> str:
        return _KINDS[self.info.type]


@attrs.define(eq=False)
class _State:
    auto_subscribe: bool
    pending: dict[str, tpb.TrackInfo] = attrs.field(factory=dict)  # cid -> awaiting an offer
    published: dict[str, _Track] = attrs.field(factory=dict)  # sid -> ours
    lines: dict[str, tuple[str, str, str]] = attrs.field(factory=dict)  # the latest offer's
    bound: dict[str, str] = attrs.field(factory=dict)  # our mid -> the sid we receive on it
    wishes: dict[str, bool] = attrs.field(factory=dict)  # sid -> UpdateSubscription
    allowed: dict[str, bool] = attrs.field(factory=dict)  # sid -> last permission update sent
    requested: set[str] = attrs.field(factory=set)  # sids counted in a requirement since the
    # last answer (livekit-server counts new unmatched tracks as they come, all after answers)
    permission: tpb.SubscriptionPermission | None = None  # ours, as a publisher


class MediaModel:
    """The media side of one `Sfu` (see the module docstring)."""

    def __init__(self, sfu: Sfu) -> None:
        self._sfu = sfu
        self._states: dict[Member, _State] = {}
        self._count = 0

    def _tracks(self) -> list[_Track]:
        return [t for s in self._states.values() for t in s.published.values()]

    # -- the participant's life -----------------------------------------------------------------

    def joined(self, member: Member, auto_subscribe: bool) -> None:
        self._states[member] = _State(auto_subscribe=auto_subscribe)

    def left(self, member: Member) -> None:
        del self._states[member]
        member.tracks = []
        for subscriber in list(self._states):
            self._renegotiate(subscriber)

    # -- signal requests -----------------------------------------------------------------------

    def request(self, member: Member, request: spb.SignalRequest) -> bool:
        """Handle a track request; False if `request` is not one."""
        state = self._states[member]  # every member in the room has one
        kind = request.WhichOneof("message")
        if kind not in (
            "add_track",
            "mute",
            "subscription",
            "subscription_permission",
            "track_setting",
        ):
            return False
        if kind == "add_track":
            self._add_track(member, state, request.add_track)
        elif kind == "mute":
            self._mute(member, state, request.mute)
        elif kind == "subscription":
            for sid in request.subscription.track_sids:
                state.wishes[sid] = request.subscription.subscribe
            self._renegotiate(member)
        elif kind == "subscription_permission":
            state.permission = tpb.SubscriptionPermission()
            state.permission.CopyFrom(request.subscription_permission)
            for subscriber in list(self._states):
                if subscriber is not member:
                    self._renegotiate(subscriber)
        return True  # track_setting: accepted, not modelled

    def _add_track(self, member: Member, state: _State, add: tpb.AddTrackRequest) -> None:
        reason = None
        if not member.permission.can_publish:
            reason = spb.RequestResponse.NOT_ALLOWED
        elif add.type not in _KINDS:
            reason = spb.RequestResponse.UNSUPPORTED_TYPE
        elif add.cid in state.pending:
            reason = spb.RequestResponse.QUEUED
        if reason is not None:
            response = spb.RequestResponse(reason=reason, message="refused by the memory room")
            response.add_track.CopyFrom(add)
            self._sfu._send(member, spb.SignalResponse(request_response=response))
            return
        self._count += 1
        prefix = "TR_A" if add.type == tpb.AUDIO else "TR_V"
        info = tpb.TrackInfo(
            sid=f"{prefix}{self._count}",
            type=add.type,
            name=add.name,
            muted=add.muted,
            width=add.width,
            height=add.height,
            source=add.source,
            disable_red=add.disable_red,
            stream=add.stream or "camera",
            audio_features=list(add.audio_features),
        )
        state.pending[add.cid] = info
        published = tpb.TrackPublishedResponse(cid=add.cid, track=info)
        self._sfu._send(member, spb.SignalResponse(track_published=published))

    def _mute(self, member: Member, state: _State, mute: tpb.MuteTrackRequest) -> None:
        track = state.published.get(mute.sid)
        if track is None:
            response = spb.RequestResponse(reason=spb.RequestResponse.NOT_FOUND)
            response.mute.CopyFrom(mute)
            self._sfu._send(member, spb.SignalResponse(request_response=response))
            return
        if track.info.muted != mute.muted:
            track.info.muted = mute.muted
            self._announce(member, state)

    # -- offers and answers --------------------------------------------------------------------

    def answer(self, member: Member, offer: spb.SessionDescription, sdp: str) -> None:
        """Answer `member`'s offer (`sdp`, the offer's id, the mapping of its bound m-lines),
        then ask again for the m-lines its wanted tracks still lack."""
        state = self._states[member]
        answer = spb.SessionDescription(type="answer", sdp=sdp, id=offer.id)
        state.lines = parse_media_lines(offer.sdp)
        self._publish_from_offer(member, state)
        unbound = self._bind(member, state)
        answer.mid_to_track_id.update(state.bound)
        self._sfu._send(member, spb.SignalResponse(answer=answer))
        state.requested = {t.info.sid for t in unbound}
        if unbound:
            self._requirement(member, unbound)

    def _publish_from_offer(self, member: Member, state: _State) -> None:
        sending = {tid: mid for mid, (_, d, tid) in state.lines.items() if d == "sendonly" and tid}
        changed = False
        for sid, track in list(state.published.items()):
            if track.cid not in sending:  # its m-line went inactive or carries another track
                del state.published[sid]
                changed = True
        for cid, info in list(state.pending.items()):
            if cid in sending:
                del state.pending[cid]
                info.mid = sending[cid]
                info.mime_type = _MIMES[_KINDS[info.type]]
                state.published[info.sid] = _Track(info, member, cid)
                changed = True
        if changed:
            self._announce(member, state)
            for subscriber in list(self._states):
                if subscriber is not member:
                    self._renegotiate(subscriber)

    def _announce(self, member: Member, state: _State) -> None:
        member.tracks = [t.info for t in state.published.values()]
        member.version += 1
        self._sfu._broadcast_now(member)

    def _wants(self, member: Member, state: _State, track: _Track) -> bool:
        if track.publisher is member or not member.permission.can_subscribe:
            return False
        return state.wishes.get(track.info.sid, state.auto_subscribe)

    def _allows(self, track: _Track, member: Member) -> bool:
        rule = self._states[track.publisher].permission
        if rule is None or rule.all_participants:
            return True
        for entry in rule.track_permissions:
            if entry.participant_identity == member.identity or entry.participant_sid == member.sid:
                return entry.all_tracks or track.info.sid in entry.track_sids
        return False

    def _bind(self, member: Member, state: _State) -> list[_Track]:
        """Bind `member`'s wanted tracks to its free receive m-lines; returns those that
        found none."""
        tracks = {t.info.sid: t for t in self._tracks()}
        wanted: dict[str, _Track] = {}
        for sid, track in tracks.items():
            if not self._wants(member, state, track):
                continue
            allowed = self._allows(track, member)
            if state.allowed.get(sid) != allowed:
                state.allowed[sid] = allowed
                update = tpb.SubscriptionPermissionUpdate(
                    participant_sid=track.publisher.sid, track_sid=sid, allowed=allowed
                )
                self._sfu._send(member, spb.SignalResponse(subscription_permission_update=update))
            if allowed:
                wanted[sid] = track
        for mid, sid in list(state.bound.items()):
            if sid not in wanted or mid not in state.lines:
                del state.bound[mid]
        free = [
            mid
            for mid, (_, direction, _) in state.lines.items()
            if direction == "recvonly" and mid not in state.bound
        ]
        unbound: list[_Track] = []
        for sid, track in wanted.items():
            if sid in state.bound.values():
                continue
            line = next((m for m in free if state.lines[m][0] == track.kind), None)
            if line is None:
                unbound.append(track)
                continue
            free.remove(line)
            state.bound[line] = sid
            if not track.subscribed_once:
                track.subscribed_once = True
                subscribed = tpb.TrackSubscribed(track_sid=sid)
                self._sfu._send(track.publisher, spb.SignalResponse(track_subscribed=subscribed))
        return unbound

    def _renegotiate(self, member: Member) -> None:
        """Something changed what `member` should receive: ask it for an offer."""
        state = self._states[member]
        before = dict(state.bound)
        new = [t for t in self._bind(member, state) if t.info.sid not in state.requested]
        state.requested |= {t.info.sid for t in new}
        if new or state.bound != before:
            self._requirement(member, new)  # 0/0 when it only rebinds (F3.8)

    def _requirement(self, member: Member, tracks: list[_Track]) -> None:
        requirement = spb.MediaSectionsRequirement(
            num_audios=sum(1 for t in tracks if t.kind == "audio"),
            num_videos=sum(1 for t in tracks if t.kind == "video"),
        )
        self._sfu._send(member, spb.SignalResponse(media_sections_requirement=requirement))

    # -- frames --------------------------------------------------------------------------------

    def forward(self, member: Member, mid: str, payload: object) -> None:
        """A frame `member` sent on m-line `mid`."""
        state = self._states.get(member)
        if state is None:
            return
        track = next((t for t in state.published.values() if t.info.mid == mid), None)
        if track is None or track.info.muted:
            return
        for subscriber, theirs in self._states.items():
            peer = subscriber.peer
            if peer is None or subscriber.identity in self._sfu.outages:
                continue
            for their_mid, sid in theirs.bound.items():
                if sid == track.info.sid:
                    self._sfu.clock.call_soon(_deliver(peer, their_mid, payload))


def _deliver(peer: _Peer, mid: str, payload: object) -> Callable[[], None]:
    return lambda: peer.media_received(mid, payload)
