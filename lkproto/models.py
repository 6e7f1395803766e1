"""Plain, immutable values the core hands to applications (no protobuf objects leak out).

Enum values equal the wire values of the matching protobuf enums (protocol-reference D.5, D.7).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

import attrs

from lkproto._pb import participants_pb2 as _ppb
from lkproto._pb import signal_pb2 as _spb
from lkproto._repr import plain_repr

__all__ = [
    "Channel",
    "ConnectionState",
    "DisconnectReason",
    "IceServer",
    "LeaveAction",
    "Participant",
    "ParticipantKind",
    "ParticipantState",
    "PeerState",
    "PeerTarget",
    "Permissions",
    "ReconnectMode",
    "RoomInfo",
    "SdpType",
    "ServerInfo",
    "SimulateScenario",
]


class Channel(enum.Enum):
    """The data channels: `_reliable` (ordered) and `_lossy` (unordered, no retransmits) carry
    data packets; `_data_track` (unordered, no retransmits) carries data-track packets
    (protocol-reference-2 1.4)."""

    RELIABLE = "_reliable"
    LOSSY = "_lossy"
    DATA_TRACK = "_data_track"


class PeerTarget(enum.IntEnum):
    """Which peer connection a command or result is about (wire `SignalTarget`)."""

    PUBLISHER = 0
    SUBSCRIBER = 1


class PeerState(enum.StrEnum):
    """A peer connection's `connectionState` (W3C `RTCPeerConnectionState`), as adapters
    report it through `Connection.peer_state_changed`. A `StrEnum`, so the plain strings
    ("connected", "failed", ...) that WebRTC stacks such as aiortc use compare equal."""

    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"  # may recover by itself
    FAILED = "failed"  # final: ICE gave up
    CLOSED = "closed"


class SdpType(enum.Enum):
    """Whether an SDP is an offer or an answer."""

    OFFER = "offer"
    ANSWER = "answer"


class ConnectionState(enum.Enum):
    """NEW -> CONNECTING -> CONNECTED (-> RECONNECTING -> CONNECTED)* -> CLOSED."""

    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class DisconnectReason(enum.IntEnum):
    """Why a session ended (wire `DisconnectReason`)."""

    UNKNOWN_REASON = 0
    CLIENT_INITIATED = 1
    DUPLICATE_IDENTITY = 2
    SERVER_SHUTDOWN = 3
    PARTICIPANT_REMOVED = 4
    ROOM_DELETED = 5
    STATE_MISMATCH = 6
    JOIN_FAILURE = 7
    MIGRATION = 8
    SIGNAL_CLOSE = 9
    ROOM_CLOSED = 10
    USER_UNAVAILABLE = 11
    USER_REJECTED = 12
    SIP_TRUNK_FAILURE = 13
    CONNECTION_TIMEOUT = 14
    MEDIA_FAILURE = 15
    AGENT_ERROR = 16

    @classmethod
    def of(cls, value: int) -> DisconnectReason:
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN_REASON


class LeaveAction(enum.IntEnum):
    """What a server `LeaveRequest` asks for (wire `LeaveRequest.Action`)."""

    DISCONNECT = 0
    RESUME = 1
    RECONNECT = 2


class ReconnectMode(enum.Enum):
    """How an interrupted session is being restored (protocol-reference D.8).

    RESUME keeps the participant SID, the peer connection, the reliable sequence and the
    streams and calls in flight (`reconnect=1` with the SID, then `SyncState` and replay).
    FULL is a new session: a new join with the same identity, new peer connections, the
    sequence reset; what was in flight fails.
    """

    RESUME = "resume"
    FULL = "full"


class SimulateScenario(enum.IntEnum):
    """Failures a client can ask for, for testing (`Room.simulate_scenario`).

    The values equal `livekit.rtc.SimulateScenarioKind`, so code written for it works
    unchanged; DISCONNECT_SIGNAL_ON_RESUME_NO_MESSAGES is ours. SIGNAL_RECONNECT (drop the
    signal connection, then resume) and FULL_RECONNECT (rejoin) are carried out by the client
    itself, as the official SDKs do; the rest are `SignalRequest.simulate` requests the server
    acts on (livekit-server pkg/rtc/room.go onSimulateScenario).
    """

    SIGNAL_RECONNECT = 0
    SPEAKER = 1
    NODE_FAILURE = 2
    SERVER_LEAVE = 3
    MIGRATION = 4
    FORCE_TCP = 5
    FORCE_TLS = 6
    FULL_RECONNECT = 7
    DISCONNECT_SIGNAL_ON_RESUME = 8
    DISCONNECT_SIGNAL_ON_RESUME_NO_MESSAGES = 9


class ParticipantState(enum.IntEnum):
    """`ParticipantInfo.State`: joining, joined, active, disconnected (the protobuf's values)."""

    JOINING = 0
    JOINED = 1
    ACTIVE = 2
    DISCONNECTED = 3


class ParticipantKind(enum.IntEnum):
    """`ParticipantInfo.Kind`: standard, ingress, egress, SIP, agent (the protobuf's values)."""

    STANDARD = 0
    INGRESS = 1
    EGRESS = 2
    SIP = 3
    AGENT = 4
    CONNECTOR = 7
    BRIDGE = 8


def _frozen_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
@plain_repr
class Permissions:
    """`ParticipantPermission`, the data-plane-relevant part plus the rest as flags."""

    can_subscribe: bool = False
    can_publish: bool = False
    can_publish_data: bool = False
    can_publish_sources: tuple[int, ...] = ()
    hidden: bool = False
    can_update_metadata: bool = False
    can_subscribe_metrics: bool = False
    can_manage_agent_session: bool = False

    @classmethod
    def from_pb(cls, p: _ppb.ParticipantPermission) -> Permissions:
        """The value of a protobuf `ParticipantPermission`."""
        return cls(
            can_subscribe=p.can_subscribe,
            can_publish=p.can_publish,
            can_publish_data=p.can_publish_data,
            can_publish_sources=tuple(p.can_publish_sources),
            hidden=p.hidden,
            can_update_metadata=p.can_update_metadata,
            can_subscribe_metrics=p.can_subscribe_metrics,
            can_manage_agent_session=p.can_manage_agent_session,
        )


@attrs.frozen(kw_only=True)
@plain_repr
class Participant:
    """A snapshot of one participant (`ParticipantInfo`), local or remote."""

    sid: str
    identity: str
    name: str = ""
    metadata: str = ""
    attributes: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map)
    state: ParticipantState = ParticipantState.JOINING
    kind: ParticipantKind | int = ParticipantKind.STANDARD
    permissions: Permissions = attrs.field(factory=Permissions)
    client_protocol: int = 0
    capabilities: tuple[int, ...] = ()
    version: int = 0
    joined_at_ms: int = 0
    disconnect_reason: DisconnectReason = DisconnectReason.UNKNOWN_REASON

    @classmethod
    def from_pb(cls, info: _ppb.ParticipantInfo) -> Participant:
        """The value of a protobuf `ParticipantInfo`."""
        try:
            kind: ParticipantKind | int = ParticipantKind(info.kind)
        except ValueError:
            kind = info.kind
        return cls(
            sid=info.sid,
            identity=info.identity,
            name=info.name,
            metadata=info.metadata,
            attributes=dict(info.attributes),
            state=ParticipantState(info.state)
            if info.state in (0, 1, 2, 3)
            else ParticipantState.JOINING,
            kind=kind,
            permissions=Permissions.from_pb(info.permission),
            client_protocol=info.client_protocol,
            capabilities=tuple(info.capabilities),
            version=info.version,
            joined_at_ms=info.joined_at_ms or info.joined_at * 1000,
            disconnect_reason=DisconnectReason.of(info.disconnect_reason),
        )


@attrs.frozen(kw_only=True)
@plain_repr
class RoomInfo:
    """A snapshot of the room (`Room`)."""

    sid: str = ""
    name: str = ""
    metadata: str = ""
    num_participants: int = 0
    max_participants: int = 0
    active_recording: bool = False
    creation_time_ms: int = 0

    @classmethod
    def from_pb(cls, room: _ppb.Room) -> RoomInfo:
        """The value of a protobuf `Room`."""
        return cls(
            sid=room.sid,
            name=room.name,
            metadata=room.metadata,
            num_participants=room.num_participants,
            max_participants=room.max_participants,
            active_recording=room.active_recording,
            creation_time_ms=room.creation_time_ms or room.creation_time * 1000,
        )


@attrs.frozen(kw_only=True)
@plain_repr
class ServerInfo:
    """`ServerInfo`: what the server said about itself in the join."""

    version: str = ""
    protocol: int = 0
    region: str = ""
    node_id: str = ""
    edition: int = 0

    @classmethod
    def from_pb(cls, info: _ppb.ServerInfo) -> ServerInfo:
        """The value of a protobuf `ServerInfo`."""
        return cls(
            version=info.version,
            protocol=info.protocol,
            region=info.region,
            node_id=info.node_id,
            edition=info.edition,
        )


@attrs.frozen(kw_only=True)
@plain_repr
class IceServer:
    """An ICE server for the peer connection (`ICEServer`); the credential is never printed."""

    urls: tuple[str, ...]
    username: str = ""
    credential: str = attrs.field(default="", repr=False)

    @classmethod
    def from_pb(cls, server: _spb.ICEServer) -> IceServer:
        """The value of a protobuf `ICEServer`."""
        return cls(urls=tuple(server.urls), username=server.username, credential=server.credential)
