"""The `livekit.rtc`-shaped object model every adapter shares: no I/O, no backend.

`RoomModel` turns the core's events into the objects and callbacks `livekit.rtc` users know:
stable participant objects updated in place, and `(event name, *args)` emissions with the same
names and arguments as `livekit.rtc.Room` (room.py `_on_room_event`). Adapters own the I/O and
call `apply(event)` for each core event, then emit what it returns. Media-track events go to
its `TrackModel` (transports/_tracks.py), which keeps each participant's publications.
`RoomInfo`, the base of every adapter's Room, reads the room's properties from a `RoomModel`.

Divergences from `livekit.rtc`, on purpose:
- `Participant.permissions` is lkproto's `Permissions` value (same field names as the
  `ParticipantPermission` protobuf), and `kind` is a `ParticipantKind` (an `IntEnum` with the
  protobuf's values).
- `DataPacket.topic` is "" when the sender set none, as `livekit.rtc` shows it.
"""

from __future__ import annotations

import datetime
import enum
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias, assert_never

import attrs

from lkproto import events as ev
from lkproto.e2ee import E2EEOptions
from lkproto.models import (
    Channel,
    DisconnectReason,
    Participant,
    ParticipantKind,
    ParticipantState,
    Permissions,
)

from ._event_types import TypedEmitter
from ._rtc_config import RtcConfiguration
from ._tracks import FrameRouter, ParticipantMedia, TrackEvent, TrackModel, TrackPublication

if TYPE_CHECKING:
    import ssl

__all__ = [
    "AnyParticipant",
    "ConnectionState",
    "DataPacket",
    "DataPacketKind",
    "EventEmitter",
    "EventTypes",
    "LocalParticipantInfo",
    "RemoteParticipant",
    "RoomInfo",
    "RoomModel",
    "RoomOptions",
    "RtcConfiguration",
    "SipDTMF",
    "Transcription",
    "TranscriptionSegment",
]

log = logging.getLogger("lkproto.transports")

EventTypes: TypeAlias = Literal[
    "participant_connected",
    "participant_disconnected",
    "participant_active",
    "participant_metadata_changed",
    "participant_name_changed",
    "participant_attributes_changed",
    "participant_permissions_changed",
    "connection_quality_changed",
    "active_speakers_changed",
    "room_metadata_changed",
    "room_updated",
    "data_received",
    "sip_dtmf_received",
    "transcription_received",
    "connection_state_changed",
    "connected",
    "disconnected",
    "reconnecting",
    "reconnected",
    "token_refreshed",
    "data_track_published",
    "data_track_unpublished",
    "e2ee_state_changed",
    "track_published",
    "track_unpublished",
    "track_subscribed",
    "track_unsubscribed",
    "track_subscription_failed",
    "track_muted",
    "track_unmuted",
    "local_track_published",
    "local_track_unpublished",
    "local_track_republished",
    "local_track_subscribed",
]

Callback: TypeAlias = Callable[..., object]


class ConnectionState(enum.IntEnum):
    """`livekit.rtc.ConnectionState` values."""

    CONN_DISCONNECTED = 0
    CONN_CONNECTED = 1
    CONN_RECONNECTING = 2


class DataPacketKind(enum.IntEnum):
    """`livekit.rtc.DataPacketKind` values."""

    KIND_LOSSY = 0
    KIND_RELIABLE = 1


@dataclass
class RoomOptions:
    """`livekit.rtc.RoomOptions`, for the data plane.

    `single_peer_connection` defaults to True here (the `/rtc/v1` path, falling back to `/rtc`
    on a 404); `livekit.rtc` 1.2 defaults to the dual-PC path. `ssl_context` (lkproto only)
    verifies `wss://` servers, e.g. with a private CA. `encryption` end-to-end encrypts the
    data packets (transports/_e2ee.py); `e2ee` is deprecated, as in livekit.rtc.
    """

    auto_subscribe: bool = True
    dynacast: bool = False
    e2ee: E2EEOptions | None = None
    encryption: E2EEOptions | None = None
    rtc_config: RtcConfiguration | None = None
    connect_timeout: float | None = None
    single_peer_connection: bool | None = None
    peer_connection_timeout: float = 15.0
    ssl_context: ssl.SSLContext | None = None


@dataclass
class TranscriptionSegment:
    id: str
    text: str
    start_time: int
    end_time: int
    final: bool
    language: str


@dataclass
class Transcription:
    participant_identity: str
    track_sid: str
    segments: list[TranscriptionSegment]


class _ParticipantBase(ParticipantMedia):
    """The properties `livekit.rtc.Participant` exposes, over lkproto's `Participant` value."""

    def __init__(self, info: Participant, router: FrameRouter | None = None) -> None:
        super().__init__(router)
        self._info = info

    @property
    def sid(self) -> str:
        """The participant's SID (server-assigned, new at every join)."""
        return self._info.sid

    @property
    def identity(self) -> str:
        """The participant's identity (from its token)."""
        return self._info.identity

    @property
    def name(self) -> str:
        """The participant's display name."""
        return self._info.name

    @property
    def metadata(self) -> str:
        """The participant's metadata."""
        return self._info.metadata

    @property
    def attributes(self) -> dict[str, str]:
        """The participant's attributes (a copy)."""
        return dict(self._info.attributes)

    @property
    def kind(self) -> ParticipantKind | int:
        """The participant's kind (`ParticipantKind`: standard, agent, SIP, ...)."""
        return self._info.kind

    @property
    def state(self) -> ParticipantState:
        """The participant's `ParticipantState` (joining, joined, active, disconnected)."""
        return self._info.state

    @property
    def permissions(self) -> Permissions:
        """The participant's permissions (`Permissions`: can_publish_data, hidden, ...)."""
        return self._info.permissions

    @property
    def disconnect_reason(self) -> DisconnectReason:
        """Why the participant left (`DisconnectReason`), once it has."""
        return self._info.disconnect_reason

    @property
    def joined_at(self) -> datetime.datetime | None:
        """When the participant joined (UTC), if the server said."""
        ms = self._info.joined_at_ms
        return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC) if ms else None

    @property
    def track_publications(self) -> Mapping[str, TrackPublication]:
        """This participant's publications by sid (a snapshot)."""
        return dict(self._publications)

    @property
    def info(self) -> Participant:
        """lkproto's immutable snapshot of this participant."""
        return self._info

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sid={self.sid}, identity={self.identity}, name={self.name})"


class RemoteParticipant(_ParticipantBase):
    """Another participant in the room."""


class LocalParticipantInfo(_ParticipantBase):
    """The local participant's properties; each adapter adds its verbs."""


#: Any participant object an event can name: a remote one, or the room's local participant
#: (`livekit.rtc.Participant`'s place in callback signatures; the adapters export it as
#: `Participant`; here that name is lkproto's participant value).
AnyParticipant: TypeAlias = RemoteParticipant | LocalParticipantInfo


@dataclass
class DataPacket:
    data: bytes
    kind: DataPacketKind
    participant: RemoteParticipant | None
    topic: str | None = None


@dataclass
class SipDTMF:
    code: int
    digit: str
    participant: RemoteParticipant | None = None


class EventEmitter(TypedEmitter):
    """`on`/`once`/`off`/`emit`, as `livekit.rtc.EventEmitter`; exceptions in callbacks are
    logged, never propagated into the session. `on` and `once` are typed per event name
    (transports/_event_types.py), so mypy checks a handler's arguments."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Callback]] = {}

    def _listen(self, event: str, callback: Callback | None, *, once: bool) -> Callback:
        if callback is None:

            def decorator(fn: Callback) -> Callback:
                self._listen(event, fn, once=once)
                return fn

            return decorator
        if once:
            fn = callback

            def once_callback(*args: object) -> object:
                self.off(event, once_callback)  # type: ignore[arg-type]
                return fn(*args)

            callback = once_callback
        self._listeners.setdefault(event, []).append(callback)
        return callback

    def off(self, event: EventTypes, callback: Callback) -> None:
        """Remove `callback` from `event` (what `on` or `once` returned). Idempotent."""
        listeners = self._listeners.get(event, [])
        if callback in listeners:
            listeners.remove(callback)

    def emit(self, event: str, *args: object) -> None:
        """Call every callback of `event` with `args`, in registration order (used by the room;
        tests may call it)."""
        for callback in list(self._listeners.get(event, [])):
            try:
                result = callback(*args)
            except Exception:
                log.exception("a %r callback raised", event)
                continue
            if inspect.iscoroutine(result):
                result.close()
                log.error("%r callbacks must be plain functions; start a task instead", event)


class RoomInfo(EventEmitter):
    """The `livekit.rtc.Room` properties every room facade reads from its `RoomModel`
    (`_model`); each facade (transports/_async_room.py, threaded.py) adds its verbs."""

    @property
    def _model(self) -> RoomModel:  # pragma: no cover - every facade defines it
        raise NotImplementedError

    @property
    def connection_state(self) -> ConnectionState:
        """`ConnectionState`: disconnected, connected, or reconnecting."""
        return self._model.connection_state

    @property
    def name(self) -> str:
        """The room's name (empty before the join)."""
        return self._model.room_name

    @property
    def sid(self) -> str:
        """The room's SID (empty before the join)."""
        return self._model.room_sid

    @property
    def metadata(self) -> str:
        """The room's metadata."""
        return self._model.room_metadata

    @property
    def num_participants(self) -> int:
        """The number of participants the server last reported."""
        return self._model.num_participants

    def isconnected(self) -> bool:
        """True unless the room is disconnected (connected or reconnecting)."""
        return self.connection_state != ConnectionState.CONN_DISCONNECTED


Emission: TypeAlias = tuple[str, tuple[object, ...]]


class RoomModel:
    """Participants, room facts and the connection state, rebuilt from core events."""

    def __init__(self, local: LocalParticipantInfo | None = None) -> None:
        self.local: LocalParticipantInfo | None = local
        self.remote: dict[str, RemoteParticipant] = {}
        self.connection_state = ConnectionState.CONN_DISCONNECTED
        self.room_sid = ""
        self.room_name = ""
        self.room_metadata = ""
        self.num_participants = 0
        self.tracks = TrackModel()

    @property
    def router(self) -> FrameRouter | None:
        return self.tracks.router

    @property
    def joined(self) -> bool:
        """The join has completed (publications found later are announced)."""
        return self.connection_state != ConnectionState.CONN_DISCONNECTED

    def participant(self, identity: str) -> _ParticipantBase | None:
        if self.local is not None and self.local.identity == identity:
            return self.local
        return self.remote.get(identity)

    def _touch(self, info: Participant) -> _ParticipantBase:
        found = self.participant(info.identity)
        if found is None:
            found = RemoteParticipant(info, self.router)
            self.remote[info.identity] = found
        found._info = info
        return found

    def set_state(self, state: ConnectionState) -> list[Emission]:
        if state == self.connection_state:
            return []
        self.connection_state = state
        return [("connection_state_changed", (state,))]

    def apply(self, event: ev.Event) -> list[Emission]:
        """Update the model; return the `livekit.rtc` emissions for this core event."""
        if isinstance(event, TrackEvent):
            return self.tracks.apply(event, self)
        out: list[Emission] = []
        match event:
            case ev.Joined():
                self.room_sid, self.room_name = event.room.sid, event.room.name
                self.room_metadata = event.room.metadata
                self.num_participants = event.room.num_participants
                if self.local is None:
                    self.local = LocalParticipantInfo(event.local_participant)
                self.local._info = event.local_participant
                self.remote = {
                    p.identity: RemoteParticipant(p, self.router) for p in event.participants
                }
            case ev.ParticipantConnected():
                out.append(("participant_connected", (self._touch(event.participant),)))
            case ev.ParticipantDisconnected():
                gone = self.remote.pop(event.participant.identity, None) or RemoteParticipant(
                    event.participant, self.router
                )
                gone._info = attrs.evolve(event.participant, disconnect_reason=event.reason)
                out.append(("participant_disconnected", (gone,)))
            case ev.ParticipantActive():
                out.append(("participant_active", (self._touch(event.participant),)))
            case ev.ParticipantUpdated():
                self._touch(event.participant)
            case ev.ParticipantAttributesChanged():
                p = self._touch(event.participant)
                out.append(("participant_attributes_changed", (dict(event.changed), p)))
            case ev.ParticipantNameChanged():
                p = self._touch(event.participant)
                out.append(("participant_name_changed", (p, event.old_name, p.name)))
            case ev.ParticipantMetadataChanged():
                p = self._touch(event.participant)
                out.append(("participant_metadata_changed", (p, event.old_metadata, p.metadata)))
            case ev.ParticipantPermissionsChanged():
                p = self._touch(event.participant)
                out.append(("participant_permissions_changed", (p, p.permissions)))
            case ev.RoomMetadataChanged():
                self.room_metadata = event.metadata
                out.append(("room_metadata_changed", (event.old_metadata, event.metadata)))
            case ev.RoomUpdated():
                self.room_sid = event.room.sid or self.room_sid
                self.num_participants = event.room.num_participants
                out.append(("room_updated", ()))
            case ev.ActiveSpeakersChanged():
                by_sid: dict[str, _ParticipantBase] = {p.sid: p for p in self.remote.values()}
                if self.local is not None:
                    by_sid[self.local.sid] = self.local
                speakers = [by_sid[s.sid] for s in event.speakers if s.active and s.sid in by_sid]
                out.append(("active_speakers_changed", (speakers,)))
            case ev.ConnectionQualityChanged():
                people = [*self.remote.values(), *([self.local] if self.local is not None else [])]
                found = next((p for p in people if p.sid == event.participant_sid), None)
                out.append(("connection_quality_changed", (found, event.quality)))
            case ev.DataReceived():
                out.append(("data_received", (self.data_packet(event),)))
            case ev.SipDtmfReceived():
                sender = self.remote.get(event.participant_identity)
                out.append(("sip_dtmf_received", (SipDTMF(event.code, event.digit, sender),)))
            case ev.TranscriptionReceived():
                segments = [
                    TranscriptionSegment(
                        id=s.id,
                        text=s.text,
                        start_time=s.start_time,
                        end_time=s.end_time,
                        final=s.final,
                        language=s.language,
                    )
                    for s in event.segments
                ]
                about = self.participant(event.transcribed_participant_identity)
                out.append(("transcription_received", (segments, about, None)))
            case ev.Reconnecting():
                changed = self.set_state(ConnectionState.CONN_RECONNECTING)
                if changed:  # once per interruption, even if a resume becomes a full reconnect
                    out += changed
                    out.append(("reconnecting", ()))
            case ev.Reconnected():
                out += self.set_state(ConnectionState.CONN_CONNECTED)
                out.append(("reconnected", ()))
            case ev.TokenRefreshed():
                out.append(("token_refreshed", ()))
            case ev.Disconnected():
                out += self.set_state(ConnectionState.CONN_DISCONNECTED)
                out.append(("disconnected", (event.reason,)))
            case ev.E2eeStateChanged():
                about = self.participant(event.participant_identity)
                out.append(("e2ee_state_changed", (about, event.state)))
            case (
                ev.MetadataUpdateCompleted()
                | ev.MetadataUpdateFailed()
                | ev.ChatMessageReceived()
                | ev.PacketDropped()
                | ev.StreamOpened()
                | ev.StreamChunkReceived()
                | ev.StreamFinished()
                | ev.StreamFailed()
                | ev.StreamDropped()
                | ev.RpcSucceeded()
                | ev.RpcFailed()
                | ev.RpcInvoked()
                | ev.RpcInvocationCancelled()
                | ev.RpcDropped()
                | ev.DataTrackPublished()
                | ev.DataTrackPublishFailed()
                | ev.DataTrackRepublished()
                | ev.DataTrackUnpublished()
                | ev.RemoteDataTrackPublished()
                | ev.RemoteDataTrackUnpublished()
                | ev.RemoteDataTrackSidChanged()
                | ev.DataTrackSubscribed()
                | ev.DataTrackSubscriptionEnded()
                | ev.DataTrackFrameReceived()
                | ev.DataTrackFrameDropped()
                | ev.DataTrackPacketDropped()
                | ev.DataTrackSignalIgnored()
            ):
                # No livekit.rtc emission here: the session's streams, RPC and data tracks
                # handle some (data_track_published/unpublished carry their objects).
                pass
            case _:
                assert_never(event)
        return out

    def data_packet(self, event: ev.DataReceived) -> DataPacket:
        """The `livekit.rtc` packet of `event` (the `data_received` emission's argument)."""
        kind = (
            DataPacketKind.KIND_RELIABLE
            if event.channel is Channel.RELIABLE
            else DataPacketKind.KIND_LOSSY
        )
        sender = self.remote.get(event.participant_identity)
        return DataPacket(
            data=event.payload, kind=kind, participant=sender, topic=event.topic or ""
        )
