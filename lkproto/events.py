"""Events: what happened, for the application. Past-tense, frozen values.

Read them with `Connection.next_event()` after every input. `Event` is the union of them all,
so an adapter can `match` exhaustively (mypy flags a forgotten case via `assert_never`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import attrs

from lkproto.models import (
    Channel,
    DisconnectReason,
    IceServer,
    LeaveAction,
    Participant,
    Permissions,
    RoomInfo,
    ServerInfo,
)

__all__ = [
    "ActiveSpeakersChanged",
    "ChatMessageReceived",
    "ConnectionQualityChanged",
    "DataReceived",
    "Disconnected",
    "Event",
    "Joined",
    "MetadataUpdateCompleted",
    "MetadataUpdateFailed",
    "PacketDropped",
    "ParticipantActive",
    "ParticipantAttributesChanged",
    "ParticipantConnected",
    "ParticipantDisconnected",
    "ParticipantMetadataChanged",
    "ParticipantNameChanged",
    "ParticipantPermissionsChanged",
    "ParticipantUpdated",
    "ReconnectRequested",
    "RoomMetadataChanged",
    "RoomUpdated",
    "SipDtmfReceived",
    "SpeakerLevel",
    "TokenRefreshed",
    "TranscriptionReceived",
    "TranscriptionSegment",
]


def _frozen_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class Joined:
    """The server accepted the join (`JoinResponse`)."""

    room: RoomInfo
    local_participant: Participant
    participants: tuple[Participant, ...]
    server_info: ServerInfo
    ice_servers: tuple[IceServer, ...]
    single_peer_connection: bool


@attrs.frozen(kw_only=True)
class Disconnected:
    """The session is over. `exc` is set when a protocol fault ended it."""

    reason: DisconnectReason
    message: str = ""
    exc: Exception | None = None


@attrs.frozen(kw_only=True)
class ReconnectRequested:
    """The server sent `LeaveRequest` with RESUME or RECONNECT, or the signal was lost."""

    action: LeaveAction
    reason: DisconnectReason


@attrs.frozen(kw_only=True)
class TokenRefreshed:
    """The server issued a new token (`refresh_token`); it replaces the old one for reconnects."""

    token: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class ParticipantConnected:
    participant: Participant


@attrs.frozen(kw_only=True)
class ParticipantDisconnected:
    participant: Participant
    reason: DisconnectReason


@attrs.frozen(kw_only=True)
class ParticipantActive:
    """The participant's state became ACTIVE (its peer connection is up)."""

    participant: Participant


@attrs.frozen(kw_only=True)
class ParticipantUpdated:
    """A known participant's info changed; the specific change events follow it."""

    participant: Participant
    previous: Participant


@attrs.frozen(kw_only=True)
class ParticipantAttributesChanged:
    """`changed` holds every key whose value differs; a removed key maps to ""."""

    participant: Participant
    changed: Mapping[str, str] = attrs.field(converter=_frozen_map)


@attrs.frozen(kw_only=True)
class ParticipantNameChanged:
    participant: Participant
    old_name: str


@attrs.frozen(kw_only=True)
class ParticipantMetadataChanged:
    participant: Participant
    old_metadata: str


@attrs.frozen(kw_only=True)
class ParticipantPermissionsChanged:
    participant: Participant
    old_permissions: Permissions


@attrs.frozen(kw_only=True)
class RoomUpdated:
    room: RoomInfo


@attrs.frozen(kw_only=True)
class RoomMetadataChanged:
    old_metadata: str
    metadata: str


@attrs.frozen(kw_only=True)
class SpeakerLevel:
    sid: str
    level: float
    active: bool


@attrs.frozen(kw_only=True)
class ActiveSpeakersChanged:
    speakers: tuple[SpeakerLevel, ...]


@attrs.frozen(kw_only=True)
class ConnectionQualityChanged:
    participant_sid: str
    quality: int
    score: float


@attrs.frozen(kw_only=True)
class MetadataUpdateCompleted:
    """The server accepted the name/metadata/attributes update with this request id."""

    request_id: int


@attrs.frozen(kw_only=True)
class MetadataUpdateFailed:
    """The update was refused (`reason` is a `RequestResponse.Reason`) or timed out (-1)."""

    request_id: int
    reason: int
    message: str

    TIMEOUT = -1


@attrs.frozen(kw_only=True)
class DataReceived:
    """A user data packet (`publish_data` payload) arrived."""

    payload: bytes
    participant_identity: str
    participant_sid: str
    topic: str | None
    channel: Channel
    destination_identities: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class SipDtmfReceived:
    code: int
    digit: str
    participant_identity: str


@attrs.frozen(kw_only=True)
class TranscriptionSegment:
    id: str
    text: str
    start_time: int
    end_time: int
    final: bool
    language: str


@attrs.frozen(kw_only=True)
class TranscriptionReceived:
    participant_identity: str
    transcribed_participant_identity: str
    track_id: str
    segments: tuple[TranscriptionSegment, ...]


@attrs.frozen(kw_only=True)
class ChatMessageReceived:
    participant_identity: str
    id: str
    timestamp: int
    message: str
    edit_timestamp: int | None = None
    deleted: bool = False
    generated: bool = False


@attrs.frozen(kw_only=True)
class PacketDropped:
    """A data packet from a peer was dropped; the connection carries on.

    `reason` is one of: "malformed", "duplicate", "encrypted" (E2EE not configured),
    "unsupported" (a payload this client does not handle yet), "empty".
    """

    reason: str
    channel: Channel
    detail: str = ""
    participant_identity: str = ""


Event = (
    Joined
    | Disconnected
    | ReconnectRequested
    | TokenRefreshed
    | ParticipantConnected
    | ParticipantDisconnected
    | ParticipantActive
    | ParticipantUpdated
    | ParticipantAttributesChanged
    | ParticipantNameChanged
    | ParticipantMetadataChanged
    | ParticipantPermissionsChanged
    | RoomUpdated
    | RoomMetadataChanged
    | ActiveSpeakersChanged
    | ConnectionQualityChanged
    | MetadataUpdateCompleted
    | MetadataUpdateFailed
    | DataReceived
    | SipDtmfReceived
    | TranscriptionReceived
    | ChatMessageReceived
    | PacketDropped
)
