"""The names every adapter exports: `lkproto.transports.anyio`, `.trio` and `.threaded` each
start their `__all__` from this one list, then add their own `Room`, `LocalParticipant` and
stream readers and writers (async, or blocking for the threaded adapter).

Here: the `livekit.rtc` value types and enums (data tracks' `DataTrackFrame` and
`DataTrackInfo` are the core's, from `lkproto.datatracks`), the track and publication
objects, the end-to-end encryption names (the manager and key provider objects run their
verbs on whichever thread the adapter gives them), and every exception a user of an adapter
may have to catch. The objects that wait (`AudioSource`, `AudioStream`, `VideoSource`,
`VideoStream`, `LocalTrackPublication`, the data-track objects) are each adapter's own (async,
or blocking for the threaded one).
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

from ._audio import AudioFrame, AudioFrameEvent
from ._e2ee import E2EEManager, KeyProvider
from ._errors import (
    ConnectError,
    MetadataUpdateError,
    PublishDataError,
    TransportClosedError,
    TransportError,
)
from ._media import UnpublishTrackError
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
from ._rtc_config import ContinualGatheringPolicy, IceServer, IceTransportType
from ._streams import ByteStreamInfo, TextStreamInfo
from ._tracks import (
    LocalAudioTrack,
    LocalVideoTrack,
    ParticipantTrackPermission,
    PublishTrackError,
    RemoteAudioTrack,
    RemoteTrackPublication,
    RemoteVideoTrack,
    StreamState,
    Track,
    TrackKind,
    TrackPublication,
    TrackPublishOptions,
    TrackSource,
    VideoQuality,
)
from ._video import (
    VideoBufferType,
    VideoCodec,
    VideoEncoding,
    VideoFrame,
    VideoFrameEvent,
    VideoRotation,
)

__all__ = [
    "AudioFrame",
    "AudioFrameEvent",
    "ByteStreamInfo",
    "ConnectError",
    "ConnectionState",
    "ContinualGatheringPolicy",
    "DataPacket",
    "DataPacketKind",
    "DataTrackFrame",
    "DataTrackInfo",
    "DisconnectReason",
    "E2EEManager",
    "E2EEOptions",
    "EncryptionState",
    "EncryptionType",
    "IceServer",
    "IceTransportType",
    "KeyDerivationFunction",
    "KeyProvider",
    "KeyProviderOptions",
    "LkProtocolError",
    "LocalAudioTrack",
    "LocalProtocolError",
    "LocalVideoTrack",
    "MetadataUpdateError",
    "Participant",
    "ParticipantKind",
    "ParticipantTrackPermission",
    "PublishDataError",
    "PublishDataTrackError",
    "PublishTrackError",
    "PushFrameError",
    "ReconnectMode",
    "RemoteAudioTrack",
    "RemoteParticipant",
    "RemoteTrackPublication",
    "RemoteVideoTrack",
    "RoomOptions",
    "RpcError",
    "RpcInvocationData",
    "RtcConfiguration",
    "SimulateScenario",
    "SipDTMF",
    "StreamError",
    "StreamState",
    "SubscribeDataTrackError",
    "TextStreamInfo",
    "Track",
    "TrackKind",
    "TrackPublication",
    "TrackPublishOptions",
    "TrackSource",
    "Transcription",
    "TranscriptionSegment",
    "TransportClosedError",
    "TransportError",
    "UnpublishTrackError",
    "VideoBufferType",
    "VideoCodec",
    "VideoEncoding",
    "VideoFrame",
    "VideoFrameEvent",
    "VideoQuality",
    "VideoRotation",
]
