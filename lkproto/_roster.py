"""The participant roster: who is in the room, from join facts and participant updates.

Theory of operation (protocol-reference E.1-E.3)
- The `JoinResponse` names the local participant and everyone else already there
  (`join`); `ParticipantUpdate`s then carry `ParticipantInfo`s, full snapshots, one per
  participant that changed (`update`). A full reconnect's rejoin takes over a new
  `JoinResponse` the same way.
- An update is matched by identity, or for an info without one (a leave, from some server
  versions) by SID through the SID -> identity map kept for every participant seen.
- A stale `version` for the same SID is ignored (E.3). A new SID under a known identity is
  the same identity rejoining: the old participant is removed (DUPLICATE_IDENTITY) and the
  new one connects. State DISCONNECTED removes a participant, if the SID matches.
- A change is reported as `ParticipantUpdated` plus one event per aspect that changed: name,
  metadata, permissions, becoming ACTIVE, and attributes as a diff over the union of keys,
  with "" for a removed key. `client_protocol` and capabilities refresh on every update
  (the stream and RPC code reads them to choose framing and RPC versions).
- Who is speaking (`SpeakersChanged`) and how well each participant is connected
  (`ConnectionQualityUpdate`) are reported as they come, by participant SID.
- The roster only reports. What a departure means elsewhere (our calls to that participant
  fail, its streams fail) is the owner's `on_left` callback, called right after the
  `ParticipantDisconnected` event; `on_local_info` sees every `ParticipantInfo` of the
  local participant (its permissions decide what the server does with our packets).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from lkproto import events as ev
from lkproto._context import Context
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto.models import DisconnectReason, Participant, ParticipantState

__all__ = ["Roster"]


def _ignore_left(participant: Participant, now: float) -> None:
    """The default `on_left`: nothing else to update."""


def _ignore_info(info: ppb.ParticipantInfo) -> None:
    """The default `on_local_info`."""


class Roster:
    """The local participant and the remote ones by identity."""

    __slots__ = ("_ctx", "_on_left", "_on_local_info", "_remotes", "_sid_to_identity", "local")

    def __init__(
        self,
        ctx: Context,
        *,
        on_left: Callable[[Participant, float], None] = _ignore_left,
        on_local_info: Callable[[ppb.ParticipantInfo], None] = _ignore_info,
    ) -> None:
        self._ctx = ctx
        self._on_left = on_left
        self._on_local_info = on_local_info
        self.local: Participant | None = None
        self._remotes: dict[str, Participant] = {}
        self._sid_to_identity: dict[str, str] = {}

    @property
    def remotes(self) -> Mapping[str, Participant]:
        """Remote participants by identity (a read-only view)."""
        return MappingProxyType(self._remotes)

    def join(self, local: ppb.ParticipantInfo, others: Iterable[ppb.ParticipantInfo]) -> None:
        """Take over a `JoinResponse`'s participants, without events (the `Joined` event, or
        a rejoin's own, report them)."""
        self.local = Participant.from_pb(local)
        self._on_local_info(local)
        self._remotes.clear()
        for info in others:
            p = Participant.from_pb(info)
            if p.identity:
                self._remotes[p.identity] = p
                self._sid_to_identity[p.sid] = p.identity

    def update(self, infos: Iterable[ppb.ParticipantInfo], now: float) -> None:
        """Apply a `ParticipantUpdate` (E.3)."""
        for info in infos:
            identity = info.identity or self._sid_to_identity.get(info.sid, "")
            if not identity:
                continue
            if self.local is not None and (
                identity == self.local.identity or info.sid == self.local.sid
            ):
                self._update_local(info)
                continue
            existing = self._remotes.get(identity)
            if int(info.state) == ParticipantState.DISCONNECTED:
                if existing is not None and (not info.sid or info.sid == existing.sid):
                    self.remove(existing, DisconnectReason.of(info.disconnect_reason), now)
                elif existing is None and info.sid:
                    # Joined and left within one of the server's update batches: never
                    # announced, so no event, but what it was sending us must still end. By
                    # its SID only: the identity may already belong to a newer session.
                    self._on_left(Participant(sid=info.sid, identity=""), now)
                continue
            new = Participant.from_pb(info)
            if not new.identity:
                new = _with_identity(info, identity)
            if existing is not None and existing.sid != new.sid:
                # The same identity rejoined with a new SID: the old session is gone.
                self.remove(existing, DisconnectReason.DUPLICATE_IDENTITY, now)
                existing = None
            if existing is None:
                self._remotes[identity] = new
                self._sid_to_identity[new.sid] = identity
                self._ctx.events.append(ev.ParticipantConnected(participant=new))
                if new.state is ParticipantState.ACTIVE:
                    self._ctx.events.append(ev.ParticipantActive(participant=new))
                continue
            if existing.version > new.version:
                continue  # stale update (E.3)
            self._remotes[identity] = new
            self.diff(existing, new)

    def _update_local(self, info: ppb.ParticipantInfo) -> None:
        assert self.local is not None
        old = self.local
        if info.sid == old.sid and old.version > info.version:
            return
        new = Participant.from_pb(info)
        self.local = new
        self._on_local_info(info)
        self.diff(old, new)

    def remove(self, participant: Participant, reason: DisconnectReason, now: float) -> None:
        """`participant` left (or is taken to have left): report it, then `on_left`."""
        self._remotes.pop(participant.identity, None)
        self._sid_to_identity.pop(participant.sid, None)
        self._ctx.events.append(ev.ParticipantDisconnected(participant=participant, reason=reason))
        self._on_left(participant, now)

    def remove_all(self, reason: DisconnectReason, now: float) -> None:
        """Everyone left: a full reconnect starts a new session (D.8 step 1)."""
        for participant in list(self._remotes.values()):
            self.remove(participant, reason, now)

    def speakers_changed(self, msg: spb.SignalResponse, now: float) -> None:
        """`SpeakersChanged`: who is speaking, by participant SID, reported as it is."""
        speakers = msg.speakers_changed.speakers
        self._ctx.events.append(
            ev.ActiveSpeakersChanged(
                speakers=tuple(
                    ev.SpeakerLevel(sid=s.sid, level=s.level, active=s.active) for s in speakers
                )
            )
        )

    def quality_changed(self, msg: spb.SignalResponse, now: float) -> None:
        """`ConnectionQualityUpdate`: one event per participant it rates."""
        for q in msg.connection_quality.updates:
            self._ctx.events.append(
                ev.ConnectionQualityChanged(
                    participant_sid=q.participant_sid, quality=q.quality, score=q.score
                )
            )

    def diff(self, old: Participant, new: Participant) -> None:
        """Report what changed from `old` to `new` (nothing if they are equal)."""
        if old == new:
            return
        out: list[ev.Event] = [ev.ParticipantUpdated(participant=new, previous=old)]
        if old.name != new.name:
            out.append(ev.ParticipantNameChanged(participant=new, old_name=old.name))
        if old.metadata != new.metadata:
            out.append(ev.ParticipantMetadataChanged(participant=new, old_metadata=old.metadata))
        changed = {
            key: new.attributes.get(key, "")
            for key in sorted(old.attributes.keys() | new.attributes.keys())
            if old.attributes.get(key) != new.attributes.get(key)
        }
        if changed:
            out.append(ev.ParticipantAttributesChanged(participant=new, changed=changed))
        if old.permissions != new.permissions:
            out.append(
                ev.ParticipantPermissionsChanged(participant=new, old_permissions=old.permissions)
            )
        if new.state is ParticipantState.ACTIVE and old.state is not ParticipantState.ACTIVE:
            out.append(ev.ParticipantActive(participant=new))
        self._ctx.events += out


def _with_identity(info: ppb.ParticipantInfo, identity: str) -> Participant:
    copy = ppb.ParticipantInfo()
    copy.CopyFrom(info)
    copy.identity = identity
    return Participant.from_pb(copy)
