"""Events: what happened, for the application. Past-tense, frozen values.

Read them with `Connection.next_event()` after every input. `Event` is the union of them all,
so an adapter can `match` exhaustively (mypy flags a forgotten case via `assert_never`).

Data streams and RPC have one definition each, in their sub-machines, re-exported here:
- streams (`lkproto.streams`): `StreamOpened`, then `StreamChunkReceived`s, then exactly one
  `StreamFinished` or `StreamFailed`; or `StreamDropped` for a stream that was never opened
  (no handler for its topic, a duplicate or invalid header, a chunk without a header). Only
  topics registered with `Connection.register_stream_topic` open; the internal RPC topics
  `lk.rpc_request`/`lk.rpc_response` never surface.
- RPC (`lkproto.rpc`): our call ends with exactly one `RpcSucceeded` or `RpcFailed`; an
  incoming request for a registered method is `RpcInvoked` (answer it with
  `Connection.respond_rpc`), possibly followed by `RpcInvocationCancelled`. Anything
  RPC-related that was ignored (a late or foreign ack or response, a duplicate request, a
  `respond_rpc` for an invocation that already ended) is `RpcDropped`: its own event rather
  than `PacketDropped`, because it carries the request id and is not always about a packet.
- media tracks (`lkproto.tracks`): our publications (`LocalTrackPublished` or
  `LocalTrackPublishFailed`, then `LocalTrackMuted`/`LocalTrackUnmuted`,
  `LocalTrackSubscribed`, `LocalTrackRepublishing`/`LocalTrackRepublished` across a full
  reconnect, and `LocalTrackUnpublished`), remote ones (`TrackPublished`, `TrackMuted`/
  `TrackUnmuted`, `TrackSubscribed`/`TrackUnsubscribed` when a receive slot starts or stops
  carrying the track, `TrackSubscriptionFailed`, `TrackUnpublished`), and what the
  offer/answer queue or the server did that changed nothing (`AnswerDropped`,
  `NegotiationTimedOut`, `MediaSectionsLimited`, `TrackSignalIgnored`,
  `LocalTrackMuteRefused`).
- data tracks (`lkproto.datatracks`): our publish ends with exactly one `DataTrackPublished`
  or `DataTrackPublishFailed` (same `pub_handle`), a published track with one
  `DataTrackUnpublished` (`DataTrackRepublished` after a full reconnect gave it a new SID);
  remote tracks appear with `RemoteDataTrackPublished` (also those present at the join), may
  move (`RemoteDataTrackSidChanged`, their publisher's full reconnect) and go with
  `RemoteDataTrackUnpublished`; our subscription becomes `DataTrackSubscribed` and ends with
  one `DataTrackSubscriptionEnded`, with `DataTrackFrameReceived` for each frame meanwhile.
  Losses are `DataTrackFrameDropped` (a frame lost or cut short) and `DataTrackPacketDropped`
  (a packet that reached no subscription); a data-track signal message that changed nothing
  is `DataTrackSignalIgnored`. Lossy by design: none of them ends the connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import attrs

from lkproto._repr import plain_repr
from lkproto.datatracks import (
    DataTrackFrameDropped,
    DataTrackFrameReceived,
    DataTrackPacketDropped,
    DataTrackPublished,
    DataTrackPublishFailed,
    DataTrackRepublished,
    DataTrackSignalIgnored,
    DataTrackSubscribed,
    DataTrackSubscriptionEnded,
    DataTrackUnpublished,
    RemoteDataTrackPublished,
    RemoteDataTrackSidChanged,
    RemoteDataTrackUnpublished,
)
from lkproto.e2ee import EncryptionState, EncryptionType
from lkproto.models import (
    Channel,
    DisconnectReason,
    IceServer,
    Participant,
    Permissions,
    ReconnectMode,
    RoomInfo,
    ServerInfo,
)
from lkproto.rpc import RpcDropped, RpcError, RpcFailed, RpcInvocationData, RpcSucceeded
from lkproto.streams import (
    StreamChunkReceived,
    StreamDropped,
    StreamFailed,
    StreamFinished,
    StreamOpened,
)
from lkproto.tracks import (
    AnswerDropped,
    LocalTrackMuted,
    LocalTrackMuteRefused,
    LocalTrackPublished,
    LocalTrackPublishFailed,
    LocalTrackRepublished,
    LocalTrackRepublishing,
    LocalTrackSubscribed,
    LocalTrackUnmuted,
    LocalTrackUnpublished,
    MediaSectionsLimited,
    NegotiationTimedOut,
    TrackMuted,
    TrackPublished,
    TrackSignalIgnored,
    TrackStreamStateChanged,
    TrackSubscribed,
    TrackSubscriptionFailed,
    TrackSubscriptionPermissionChanged,
    TrackUnmuted,
    TrackUnpublished,
    TrackUnsubscribed,
)

__all__ = [
    "ActiveSpeakersChanged",
    "AnswerDropped",
    "ChatMessageReceived",
    "ConnectionQualityChanged",
    "DataReceived",
    "DataTrackFrameDropped",
    "DataTrackFrameReceived",
    "DataTrackPacketDropped",
    "DataTrackPublishFailed",
    "DataTrackPublished",
    "DataTrackRepublished",
    "DataTrackSignalIgnored",
    "DataTrackSubscribed",
    "DataTrackSubscriptionEnded",
    "DataTrackUnpublished",
    "Disconnected",
    "E2eeStateChanged",
    "Event",
    "Joined",
    "LocalTrackMuteRefused",
    "LocalTrackMuted",
    "LocalTrackPublishFailed",
    "LocalTrackPublished",
    "LocalTrackRepublished",
    "LocalTrackRepublishing",
    "LocalTrackSubscribed",
    "LocalTrackUnmuted",
    "LocalTrackUnpublished",
    "MediaSectionsLimited",
    "MetadataUpdateCompleted",
    "MetadataUpdateFailed",
    "NegotiationTimedOut",
    "PacketDropped",
    "ParticipantActive",
    "ParticipantAttributesChanged",
    "ParticipantConnected",
    "ParticipantDisconnected",
    "ParticipantMetadataChanged",
    "ParticipantNameChanged",
    "ParticipantPermissionsChanged",
    "ParticipantUpdated",
    "Reconnected",
    "Reconnecting",
    "RemoteDataTrackPublished",
    "RemoteDataTrackSidChanged",
    "RemoteDataTrackUnpublished",
    "RoomMetadataChanged",
    "RoomUpdated",
    "RpcDropped",
    "RpcFailed",
    "RpcInvocationCancelled",
    "RpcInvoked",
    "RpcSucceeded",
    "SipDtmfReceived",
    "SpeakerLevel",
    "StreamChunkReceived",
    "StreamDropped",
    "StreamFailed",
    "StreamFinished",
    "StreamOpened",
    "TokenRefreshed",
    "TrackMuted",
    "TrackPublished",
    "TrackSignalIgnored",
    "TrackStreamStateChanged",
    "TrackSubscribed",
    "TrackSubscriptionFailed",
    "TrackSubscriptionPermissionChanged",
    "TrackUnmuted",
    "TrackUnpublished",
    "TrackUnsubscribed",
    "TranscriptionReceived",
    "TranscriptionSegment",
]


def _frozen_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
@plain_repr
class Joined:
    """The server accepted the join (`JoinResponse`)."""

    room: RoomInfo
    local_participant: Participant
    participants: tuple[Participant, ...]
    server_info: ServerInfo
    ice_servers: tuple[IceServer, ...]
    single_peer_connection: bool


@attrs.frozen(kw_only=True)
@plain_repr
class Disconnected:
    """The session is over. `exc` is set when a protocol fault ended it."""

    reason: DisconnectReason
    message: str = ""
    exc: Exception | None = None


@attrs.frozen(kw_only=True)
@plain_repr
class Reconnecting:
    """The session was interrupted and is being restored (`livekit.rtc`'s "reconnecting").

    Emitted when the interruption is noticed (the signal closed or went quiet, the peer
    connection failed, or the server's `LeaveRequest` asked for RESUME or RECONNECT), and
    again if a resume has to become a full reconnect. After a peer connection failed with
    the signal still up, it comes with the first attempt, 250 ms later: a `leave` the server
    wrote before closing the peer connection ends the session instead, with no
    `Reconnecting`. With `mode` FULL, our calls have just
    failed (1503), incoming streams failed and every remote participant was reported gone.
    """

    mode: ReconnectMode
    reason: DisconnectReason
    message: str = ""


@attrs.frozen(kw_only=True)
@plain_repr
class Reconnected:
    """The session works again (`livekit.rtc`'s "reconnected").

    `attempts` counts the signal connections it took; `duration` is seconds since the
    interruption was noticed.
    """

    mode: ReconnectMode
    attempts: int
    duration: float


@attrs.frozen(kw_only=True)
@plain_repr
class TokenRefreshed:
    """The server issued a new token (`refresh_token`); it replaces the old one for reconnects."""

    token: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
@plain_repr
class ParticipantConnected:
    """A remote participant joined (or was first announced to us)."""

    participant: Participant


@attrs.frozen(kw_only=True)
@plain_repr
class ParticipantDisconnected:
    """A remote participant left; `reason` says why, when the server said."""

    participant: Participant
    reason: DisconnectReason


@attrs.frozen(kw_only=True)
@plain_repr
class ParticipantActive:
    """The participant's state became ACTIVE (its peer connection is up)."""

    participant: Participant


@attrs.frozen(kw_only=True)
@plain_repr
class ParticipantUpdated:
    """A known participant's info changed; the specific change events follow it."""

    participant: Participant
    previous: Participant


@attrs.frozen(kw_only=True)
@plain_repr
class ParticipantAttributesChanged:
    """`changed` holds every key whose value differs; a removed key maps to ""."""

    participant: Participant
    changed: Mapping[str, str] = attrs.field(converter=_frozen_map)


@attrs.frozen(kw_only=True)
@plain_repr
class ParticipantNameChanged:
    """A participant's name changed (`old_name` -> `participant.name`)."""

    participant: Participant
    old_name: str


@attrs.frozen(kw_only=True)
@plain_repr
class ParticipantMetadataChanged:
    """A participant's metadata changed (`old_metadata` -> `participant.metadata`)."""

    participant: Participant
    old_metadata: str


@attrs.frozen(kw_only=True)
@plain_repr
class ParticipantPermissionsChanged:
    """A participant's permissions changed (`participant.permissions`)."""

    participant: Participant
    old_permissions: Permissions


@attrs.frozen(kw_only=True)
@plain_repr
class RoomUpdated:
    """The server sent new room facts (`room`: SID, participant count, ...)."""

    room: RoomInfo


@attrs.frozen(kw_only=True)
@plain_repr
class RoomMetadataChanged:
    """The room's metadata changed (`old_metadata` -> `metadata`)."""

    old_metadata: str
    metadata: str


@attrs.frozen(kw_only=True)
@plain_repr
class SpeakerLevel:
    """One speaker in `ActiveSpeakersChanged`: its SID, audio level (0..1) and whether it is
    active."""

    sid: str
    level: float
    active: bool


@attrs.frozen(kw_only=True)
@plain_repr
class ActiveSpeakersChanged:
    """The server's list of active speakers changed (`speakers`, loudest first)."""

    speakers: tuple[SpeakerLevel, ...]


@attrs.frozen(kw_only=True)
@plain_repr
class ConnectionQualityChanged:
    """The server rated a participant's connection quality (`quality`: 0 poor to 3 excellent;
    `score`)."""

    participant_sid: str
    quality: int
    score: float


@attrs.frozen(kw_only=True)
@plain_repr
class MetadataUpdateCompleted:
    """The server accepted the name/metadata/attributes update with this request id."""

    request_id: int


@attrs.frozen(kw_only=True)
@plain_repr
class MetadataUpdateFailed:
    """The update was refused (`reason` is a `RequestResponse.Reason`) or timed out (-1)."""

    request_id: int
    reason: int
    message: str

    TIMEOUT = -1


@attrs.frozen(kw_only=True)
@plain_repr
class DataReceived:
    """A user data packet (`publish_data` payload) arrived."""

    payload: bytes
    participant_identity: str
    participant_sid: str
    topic: str | None
    channel: Channel
    destination_identities: tuple[str, ...] = ()
    #: GCM if it arrived end-to-end encrypted, NONE if it was sent in clear.
    encryption_type: EncryptionType = EncryptionType.NONE


@attrs.frozen(kw_only=True)
@plain_repr
class SipDtmfReceived:
    """A SIP DTMF tone (`code`, `digit`) arrived from a participant."""

    code: int
    digit: str
    participant_identity: str


@attrs.frozen(kw_only=True)
@plain_repr
class TranscriptionSegment:
    """One segment of a transcription: its text, times (ms), language, and whether it is final."""

    id: str
    text: str
    start_time: int
    end_time: int
    final: bool
    language: str


@attrs.frozen(kw_only=True)
@plain_repr
class TranscriptionReceived:
    """A legacy `Transcription` data packet arrived (segments about one participant's track)."""

    participant_identity: str
    transcribed_participant_identity: str
    track_id: str
    segments: tuple[TranscriptionSegment, ...]


@attrs.frozen(kw_only=True)
@plain_repr
class ChatMessageReceived:
    """A legacy chat message (`ChatMessage` data packet) arrived."""

    participant_identity: str
    id: str
    timestamp: int
    message: str
    edit_timestamp: int | None = None
    deleted: bool = False
    generated: bool = False


@attrs.frozen(kw_only=True)
@plain_repr
class PacketDropped:
    """A data packet from a peer was dropped; the connection carries on.

    `reason` is one of: "malformed", "duplicate", "encrypted" (E2EE not configured),
    "unsupported" (a payload a data-plane client does not handle: `speaker`, `metrics`),
    "empty". Stream and RPC packets have their own reports (`StreamDropped`, `RpcDropped`).
    With E2EE configured, an encrypted packet that cannot be read is dropped with the
    `lkproto.e2ee.DecryptionFailure` value as the reason ("decryption_failed",
    "missing_key", "key_invalid", "malformed_envelope", "malformed_payload"), or
    "e2ee_backlog" if it arrived while its sender's packets already waited for ratchets
    past `Config.e2ee_max_waiting_bytes`.
    """

    reason: str
    channel: Channel
    detail: str = ""
    participant_identity: str = ""


@attrs.frozen(kw_only=True)
@plain_repr
class E2eeStateChanged:
    """Reading `participant_identity`'s end-to-end encrypted data changed state (livekit.rtc's
    `e2ee_state_changed`, which the official SDKs raise for media frames only).

    OK: its packets decrypt; KEY_RATCHETED: one decrypted after following its ratchet
    (OK follows with the next); DECRYPTION_FAILED or MISSING_KEY: one was dropped (each drop
    is also a `PacketDropped` with the reason). Reported on each change, not per packet.
    """

    participant_identity: str
    state: EncryptionState


@attrs.frozen(kw_only=True)
@plain_repr
class RpcInvoked:
    """A request for a method registered with `Connection.register_rpc_method` arrived.

    The ack has already been sent. Run the handler on `invocation` and answer with
    `Connection.respond_rpc` (or `respond_rpc_exception`) within `invocation.response_timeout`
    seconds; after that the caller is answered 1502 and `RpcInvocationCancelled` follows.
    """

    invocation: RpcInvocationData


@attrs.frozen(kw_only=True)
@plain_repr
class RpcInvocationCancelled:
    """Stop the handler of `request_id`: its answer is no longer wanted.

    `reason` is RESPONSE_TIMEOUT (its deadline passed; the caller was answered 1502) or
    RECIPIENT_DISCONNECTED (the caller left, or our session ended; nothing is sent).
    """

    request_id: str
    caller_identity: str
    reason: RpcError.ErrorCode


Event = (
    Joined
    | Disconnected
    | Reconnecting
    | Reconnected
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
    | E2eeStateChanged
    | StreamOpened
    | StreamChunkReceived
    | StreamFinished
    | StreamFailed
    | StreamDropped
    | RpcSucceeded
    | RpcFailed
    | RpcInvoked
    | RpcInvocationCancelled
    | RpcDropped
    | AnswerDropped
    | LocalTrackMuteRefused
    | LocalTrackMuted
    | LocalTrackPublishFailed
    | LocalTrackPublished
    | LocalTrackRepublished
    | LocalTrackRepublishing
    | LocalTrackSubscribed
    | LocalTrackUnmuted
    | LocalTrackUnpublished
    | MediaSectionsLimited
    | NegotiationTimedOut
    | TrackMuted
    | TrackPublished
    | TrackSignalIgnored
    | TrackStreamStateChanged
    | TrackSubscribed
    | TrackSubscriptionFailed
    | TrackSubscriptionPermissionChanged
    | TrackUnmuted
    | TrackUnpublished
    | TrackUnsubscribed
    | DataTrackPublished
    | DataTrackPublishFailed
    | DataTrackRepublished
    | DataTrackUnpublished
    | RemoteDataTrackPublished
    | RemoteDataTrackUnpublished
    | RemoteDataTrackSidChanged
    | DataTrackSubscribed
    | DataTrackSubscriptionEnded
    | DataTrackFrameReceived
    | DataTrackFrameDropped
    | DataTrackPacketDropped
    | DataTrackSignalIgnored
)
