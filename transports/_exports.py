"""The names every adapter exports: `lkproto.transports.anyio`, `.trio` and `.threaded` each
start their `__all__` from this one list, then add their own `Room`, `LocalParticipant` and
stream readers and writers (async, or blocking for the threaded adapter).

Here: the `livekit.rtc` value types and enums (data tracks' `DataTrackFrame` and
`DataTrackInfo` are the core's, from `lkproto.datatracks`), the end-to-end encryption names
(the manager and key provider objects run their verbs on whichever thread the adapter gives
them), and every exception a user of an adapter may have to catch.
"""

from __future__ import annotations

from lkproto.datatracks import (
    DataTrackFrame,
    DataTrackInfo,
    PublishDataTrackError,
    PushFrameError,
    SubscribeDataTrackError,
)
from lkproto.e2ee import (
    E2EEOptions,
    EncryptionState,
    EncryptionType,
    KeyDerivationFunction,
    KeyProviderOptions,
)
from lkproto.errors import LkProtocolError, LocalProtocolError
from lkproto.models import DisconnectReason, ParticipantKind, ReconnectMode, SimulateScenario
from lkproto.rpc import RpcError, RpcInvocationData
from lkproto.streams import StreamError

from ._e2ee import E2EEManager, KeyProvider
from ._errors import (
    ConnectError,
    MetadataUpdateError,
    PublishDataError,
    TransportClosedError,
    TransportError,
)
from ._room import AnyParticipant as Participant
from ._room import (
    ConnectionState,
    DataPacket,
    DataPacketKind,
    RemoteParticipant,
    RoomOptions,
    RtcConfiguration,
    SipDTMF,
    Transcription,
    TranscriptionSegment,
)
from ._streams import ByteStreamInfo, TextStreamInfo

__all__ = [
    "ByteStreamInfo",
    "ConnectError",
    "ConnectionState",
    "DataPacket",
    "DataPacketKind",
    "DataTrackFrame",
    "DataTrackInfo",
    "DisconnectReason",
    "E2EEManager",
    "E2EEOptions",
    "EncryptionState",
    "EncryptionType",
    "KeyDerivationFunction",
    "KeyProvider",
    "KeyProviderOptions",
    "LkProtocolError",
    "LocalProtocolError",
    "MetadataUpdateError",
    "Participant",
    "ParticipantKind",
    "PublishDataError",
    "PublishDataTrackError",
    "PushFrameError",
    "ReconnectMode",
    "RemoteParticipant",
    "RoomOptions",
    "RpcError",
    "RpcInvocationData",
    "RtcConfiguration",
    "SimulateScenario",
    "SipDTMF",
    "StreamError",
    "SubscribeDataTrackError",
    "TextStreamInfo",
    "Transcription",
    "TranscriptionSegment",
    "TransportClosedError",
    "TransportError",
]
