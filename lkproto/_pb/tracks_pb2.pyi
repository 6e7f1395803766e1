# mypy: disable-error-code="type-arg"
from lkproto._pb import data_pb2 as _data_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrackType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO: _ClassVar[TrackType]
    VIDEO: _ClassVar[TrackType]
    DATA: _ClassVar[TrackType]

class TrackSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN: _ClassVar[TrackSource]
    CAMERA: _ClassVar[TrackSource]
    MICROPHONE: _ClassVar[TrackSource]
    SCREEN_SHARE: _ClassVar[TrackSource]
    SCREEN_SHARE_AUDIO: _ClassVar[TrackSource]

class VideoQuality(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOW: _ClassVar[VideoQuality]
    MEDIUM: _ClassVar[VideoQuality]
    HIGH: _ClassVar[VideoQuality]
    OFF: _ClassVar[VideoQuality]

class BackupCodecPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PREFER_REGRESSION: _ClassVar[BackupCodecPolicy]
    SIMULCAST: _ClassVar[BackupCodecPolicy]
    REGRESSION: _ClassVar[BackupCodecPolicy]

class AudioTrackFeature(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TF_STEREO: _ClassVar[AudioTrackFeature]
    TF_NO_DTX: _ClassVar[AudioTrackFeature]
    TF_AUTO_GAIN_CONTROL: _ClassVar[AudioTrackFeature]
    TF_ECHO_CANCELLATION: _ClassVar[AudioTrackFeature]
    TF_NOISE_SUPPRESSION: _ClassVar[AudioTrackFeature]
    TF_ENHANCED_NOISE_CANCELLATION: _ClassVar[AudioTrackFeature]
    TF_PRECONNECT_BUFFER: _ClassVar[AudioTrackFeature]

class PacketTrailerFeature(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PTF_USER_TIMESTAMP: _ClassVar[PacketTrailerFeature]
    PTF_FRAME_ID: _ClassVar[PacketTrailerFeature]
    PTF_USER_DATA: _ClassVar[PacketTrailerFeature]

class SubscriptionError(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SE_UNKNOWN: _ClassVar[SubscriptionError]
    SE_CODEC_UNSUPPORTED: _ClassVar[SubscriptionError]
    SE_TRACK_NOTFOUND: _ClassVar[SubscriptionError]

class StreamState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTIVE: _ClassVar[StreamState]
    PAUSED: _ClassVar[StreamState]
AUDIO: TrackType
VIDEO: TrackType
DATA: TrackType
UNKNOWN: TrackSource
CAMERA: TrackSource
MICROPHONE: TrackSource
SCREEN_SHARE: TrackSource
SCREEN_SHARE_AUDIO: TrackSource
LOW: VideoQuality
MEDIUM: VideoQuality
HIGH: VideoQuality
OFF: VideoQuality
PREFER_REGRESSION: BackupCodecPolicy
SIMULCAST: BackupCodecPolicy
REGRESSION: BackupCodecPolicy
TF_STEREO: AudioTrackFeature
TF_NO_DTX: AudioTrackFeature
TF_AUTO_GAIN_CONTROL: AudioTrackFeature
TF_ECHO_CANCELLATION: AudioTrackFeature
TF_NOISE_SUPPRESSION: AudioTrackFeature
TF_ENHANCED_NOISE_CANCELLATION: AudioTrackFeature
TF_PRECONNECT_BUFFER: AudioTrackFeature
PTF_USER_TIMESTAMP: PacketTrailerFeature
PTF_FRAME_ID: PacketTrailerFeature
PTF_USER_DATA: PacketTrailerFeature
SE_UNKNOWN: SubscriptionError
SE_CODEC_UNSUPPORTED: SubscriptionError
SE_TRACK_NOTFOUND: SubscriptionError
ACTIVE: StreamState
PAUSED: StreamState

class TrackInfo(_message.Message):
    __slots__ = ("sid", "type", "name", "muted", "width", "height", "simulcast", "disable_dtx", "source", "layers", "mime_type", "mid", "codecs", "stereo", "disable_red", "encryption", "stream", "version", "audio_features", "backup_codec_policy", "packet_trailer_features")
    SID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MUTED_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SIMULCAST_FIELD_NUMBER: _ClassVar[int]
    DISABLE_DTX_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    MID_FIELD_NUMBER: _ClassVar[int]
    CODECS_FIELD_NUMBER: _ClassVar[int]
    STEREO_FIELD_NUMBER: _ClassVar[int]
    DISABLE_RED_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTION_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FEATURES_FIELD_NUMBER: _ClassVar[int]
    BACKUP_CODEC_POLICY_FIELD_NUMBER: _ClassVar[int]
    PACKET_TRAILER_FEATURES_FIELD_NUMBER: _ClassVar[int]
    sid: str
    type: TrackType
    name: str
    muted: bool
    width: int
    height: int
    simulcast: bool
    disable_dtx: bool
    source: TrackSource
    layers: _containers.RepeatedCompositeFieldContainer[VideoLayer]
    mime_type: str
    mid: str
    codecs: _containers.RepeatedCompositeFieldContainer[SimulcastCodecInfo]
    stereo: bool
    disable_red: bool
    encryption: _data_pb2.Encryption.Type
    stream: str
    version: TimedVersion
    audio_features: _containers.RepeatedScalarFieldContainer[AudioTrackFeature]
    backup_codec_policy: BackupCodecPolicy
    packet_trailer_features: _containers.RepeatedScalarFieldContainer[PacketTrailerFeature]
    def __init__(self, sid: _Optional[str] = ..., type: _Optional[_Union[TrackType, str]] = ..., name: _Optional[str] = ..., muted: bool = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., simulcast: bool = ..., disable_dtx: bool = ..., source: _Optional[_Union[TrackSource, str]] = ..., layers: _Optional[_Iterable[_Union[VideoLayer, _Mapping]]] = ..., mime_type: _Optional[str] = ..., mid: _Optional[str] = ..., codecs: _Optional[_Iterable[_Union[SimulcastCodecInfo, _Mapping]]] = ..., stereo: bool = ..., disable_red: bool = ..., encryption: _Optional[_Union[_data_pb2.Encryption.Type, str]] = ..., stream: _Optional[str] = ..., version: _Optional[_Union[TimedVersion, _Mapping]] = ..., audio_features: _Optional[_Iterable[_Union[AudioTrackFeature, str]]] = ..., backup_codec_policy: _Optional[_Union[BackupCodecPolicy, str]] = ..., packet_trailer_features: _Optional[_Iterable[_Union[PacketTrailerFeature, str]]] = ...) -> None: ...

class SimulcastCodecInfo(_message.Message):
    __slots__ = ("mime_type", "mid", "cid", "layers", "video_layer_mode", "sdp_cid")
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    MID_FIELD_NUMBER: _ClassVar[int]
    CID_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    VIDEO_LAYER_MODE_FIELD_NUMBER: _ClassVar[int]
    SDP_CID_FIELD_NUMBER: _ClassVar[int]
    mime_type: str
    mid: str
    cid: str
    layers: _containers.RepeatedCompositeFieldContainer[VideoLayer]
    video_layer_mode: VideoLayer.Mode
    sdp_cid: str
    def __init__(self, mime_type: _Optional[str] = ..., mid: _Optional[str] = ..., cid: _Optional[str] = ..., layers: _Optional[_Iterable[_Union[VideoLayer, _Mapping]]] = ..., video_layer_mode: _Optional[_Union[VideoLayer.Mode, str]] = ..., sdp_cid: _Optional[str] = ...) -> None: ...

class VideoLayer(_message.Message):
    __slots__ = ("quality", "width", "height", "bitrate", "ssrc", "spatial_layer", "rid", "repair_ssrc")
    class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MODE_UNUSED: _ClassVar[VideoLayer.Mode]
        ONE_SPATIAL_LAYER_PER_STREAM: _ClassVar[VideoLayer.Mode]
        MULTIPLE_SPATIAL_LAYERS_PER_STREAM: _ClassVar[VideoLayer.Mode]
        ONE_SPATIAL_LAYER_PER_STREAM_INCOMPLETE_RTCP_SR: _ClassVar[VideoLayer.Mode]
    MODE_UNUSED: VideoLayer.Mode
    ONE_SPATIAL_LAYER_PER_STREAM: VideoLayer.Mode
    MULTIPLE_SPATIAL_LAYERS_PER_STREAM: VideoLayer.Mode
    ONE_SPATIAL_LAYER_PER_STREAM_INCOMPLETE_RTCP_SR: VideoLayer.Mode
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    BITRATE_FIELD_NUMBER: _ClassVar[int]
    SSRC_FIELD_NUMBER: _ClassVar[int]
    SPATIAL_LAYER_FIELD_NUMBER: _ClassVar[int]
    RID_FIELD_NUMBER: _ClassVar[int]
    REPAIR_SSRC_FIELD_NUMBER: _ClassVar[int]
    quality: VideoQuality
    width: int
    height: int
    bitrate: int
    ssrc: int
    spatial_layer: int
    rid: str
    repair_ssrc: int
    def __init__(self, quality: _Optional[_Union[VideoQuality, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., bitrate: _Optional[int] = ..., ssrc: _Optional[int] = ..., spatial_layer: _Optional[int] = ..., rid: _Optional[str] = ..., repair_ssrc: _Optional[int] = ...) -> None: ...

class TimedVersion(_message.Message):
    __slots__ = ("unix_micro", "ticks")
    UNIX_MICRO_FIELD_NUMBER: _ClassVar[int]
    TICKS_FIELD_NUMBER: _ClassVar[int]
    unix_micro: int
    ticks: int
    def __init__(self, unix_micro: _Optional[int] = ..., ticks: _Optional[int] = ...) -> None: ...

class Codec(_message.Message):
    __slots__ = ("mime", "fmtp_line")
    MIME_FIELD_NUMBER: _ClassVar[int]
    FMTP_LINE_FIELD_NUMBER: _ClassVar[int]
    mime: str
    fmtp_line: str
    def __init__(self, mime: _Optional[str] = ..., fmtp_line: _Optional[str] = ...) -> None: ...

class AddTrackRequest(_message.Message):
    __slots__ = ("cid", "name", "type", "width", "height", "muted", "disable_dtx", "source", "layers", "simulcast_codecs", "sid", "stereo", "disable_red", "encryption", "stream", "backup_codec_policy", "audio_features", "packet_trailer_features")
    CID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MUTED_FIELD_NUMBER: _ClassVar[int]
    DISABLE_DTX_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    SIMULCAST_CODECS_FIELD_NUMBER: _ClassVar[int]
    SID_FIELD_NUMBER: _ClassVar[int]
    STEREO_FIELD_NUMBER: _ClassVar[int]
    DISABLE_RED_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTION_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    BACKUP_CODEC_POLICY_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FEATURES_FIELD_NUMBER: _ClassVar[int]
    PACKET_TRAILER_FEATURES_FIELD_NUMBER: _ClassVar[int]
    cid: str
    name: str
    type: TrackType
    width: int
    height: int
    muted: bool
    disable_dtx: bool
    source: TrackSource
    layers: _containers.RepeatedCompositeFieldContainer[VideoLayer]
    simulcast_codecs: _containers.RepeatedCompositeFieldContainer[SimulcastCodec]
    sid: str
    stereo: bool
    disable_red: bool
    encryption: _data_pb2.Encryption.Type
    stream: str
    backup_codec_policy: BackupCodecPolicy
    audio_features: _containers.RepeatedScalarFieldContainer[AudioTrackFeature]
    packet_trailer_features: _containers.RepeatedScalarFieldContainer[PacketTrailerFeature]
    def __init__(self, cid: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[_Union[TrackType, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., muted: bool = ..., disable_dtx: bool = ..., source: _Optional[_Union[TrackSource, str]] = ..., layers: _Optional[_Iterable[_Union[VideoLayer, _Mapping]]] = ..., simulcast_codecs: _Optional[_Iterable[_Union[SimulcastCodec, _Mapping]]] = ..., sid: _Optional[str] = ..., stereo: bool = ..., disable_red: bool = ..., encryption: _Optional[_Union[_data_pb2.Encryption.Type, str]] = ..., stream: _Optional[str] = ..., backup_codec_policy: _Optional[_Union[BackupCodecPolicy, str]] = ..., audio_features: _Optional[_Iterable[_Union[AudioTrackFeature, str]]] = ..., packet_trailer_features: _Optional[_Iterable[_Union[PacketTrailerFeature, str]]] = ...) -> None: ...

class SimulcastCodec(_message.Message):
    __slots__ = ("codec", "cid", "layers", "video_layer_mode")
    CODEC_FIELD_NUMBER: _ClassVar[int]
    CID_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    VIDEO_LAYER_MODE_FIELD_NUMBER: _ClassVar[int]
    codec: str
    cid: str
    layers: _containers.RepeatedCompositeFieldContainer[VideoLayer]
    video_layer_mode: VideoLayer.Mode
    def __init__(self, codec: _Optional[str] = ..., cid: _Optional[str] = ..., layers: _Optional[_Iterable[_Union[VideoLayer, _Mapping]]] = ..., video_layer_mode: _Optional[_Union[VideoLayer.Mode, str]] = ...) -> None: ...

class MuteTrackRequest(_message.Message):
    __slots__ = ("sid", "muted")
    SID_FIELD_NUMBER: _ClassVar[int]
    MUTED_FIELD_NUMBER: _ClassVar[int]
    sid: str
    muted: bool
    def __init__(self, sid: _Optional[str] = ..., muted: bool = ...) -> None: ...

class TrackPublishedResponse(_message.Message):
    __slots__ = ("cid", "track")
    CID_FIELD_NUMBER: _ClassVar[int]
    TRACK_FIELD_NUMBER: _ClassVar[int]
    cid: str
    track: TrackInfo
    def __init__(self, cid: _Optional[str] = ..., track: _Optional[_Union[TrackInfo, _Mapping]] = ...) -> None: ...

class TrackUnpublishedResponse(_message.Message):
    __slots__ = ("track_sid",)
    TRACK_SID_FIELD_NUMBER: _ClassVar[int]
    track_sid: str
    def __init__(self, track_sid: _Optional[str] = ...) -> None: ...

class UpdateLocalAudioTrack(_message.Message):
    __slots__ = ("track_sid", "features")
    TRACK_SID_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    track_sid: str
    features: _containers.RepeatedScalarFieldContainer[AudioTrackFeature]
    def __init__(self, track_sid: _Optional[str] = ..., features: _Optional[_Iterable[_Union[AudioTrackFeature, str]]] = ...) -> None: ...

class UpdateLocalVideoTrack(_message.Message):
    __slots__ = ("track_sid", "width", "height")
    TRACK_SID_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    track_sid: str
    width: int
    height: int
    def __init__(self, track_sid: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class UpdateVideoLayers(_message.Message):
    __slots__ = ("track_sid", "layers")
    TRACK_SID_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    track_sid: str
    layers: _containers.RepeatedCompositeFieldContainer[VideoLayer]
    def __init__(self, track_sid: _Optional[str] = ..., layers: _Optional[_Iterable[_Union[VideoLayer, _Mapping]]] = ...) -> None: ...

class UpdateSubscription(_message.Message):
    __slots__ = ("track_sids", "subscribe", "participant_tracks")
    TRACK_SIDS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_TRACKS_FIELD_NUMBER: _ClassVar[int]
    track_sids: _containers.RepeatedScalarFieldContainer[str]
    subscribe: bool
    participant_tracks: _containers.RepeatedCompositeFieldContainer[ParticipantTracks]
    def __init__(self, track_sids: _Optional[_Iterable[str]] = ..., subscribe: bool = ..., participant_tracks: _Optional[_Iterable[_Union[ParticipantTracks, _Mapping]]] = ...) -> None: ...

class ParticipantTracks(_message.Message):
    __slots__ = ("participant_sid", "track_sids")
    PARTICIPANT_SID_FIELD_NUMBER: _ClassVar[int]
    TRACK_SIDS_FIELD_NUMBER: _ClassVar[int]
    participant_sid: str
    track_sids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, participant_sid: _Optional[str] = ..., track_sids: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateTrackSettings(_message.Message):
    __slots__ = ("track_sids", "disabled", "quality", "width", "height", "fps", "priority")
    TRACK_SIDS_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    track_sids: _containers.RepeatedScalarFieldContainer[str]
    disabled: bool
    quality: VideoQuality
    width: int
    height: int
    fps: int
    priority: int
    def __init__(self, track_sids: _Optional[_Iterable[str]] = ..., disabled: bool = ..., quality: _Optional[_Union[VideoQuality, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[int] = ..., priority: _Optional[int] = ...) -> None: ...

class SubscriptionPermission(_message.Message):
    __slots__ = ("all_participants", "track_permissions")
    ALL_PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    TRACK_PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    all_participants: bool
    track_permissions: _containers.RepeatedCompositeFieldContainer[TrackPermission]
    def __init__(self, all_participants: bool = ..., track_permissions: _Optional[_Iterable[_Union[TrackPermission, _Mapping]]] = ...) -> None: ...

class TrackPermission(_message.Message):
    __slots__ = ("participant_sid", "all_tracks", "track_sids", "participant_identity")
    PARTICIPANT_SID_FIELD_NUMBER: _ClassVar[int]
    ALL_TRACKS_FIELD_NUMBER: _ClassVar[int]
    TRACK_SIDS_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    participant_sid: str
    all_tracks: bool
    track_sids: _containers.RepeatedScalarFieldContainer[str]
    participant_identity: str
    def __init__(self, participant_sid: _Optional[str] = ..., all_tracks: bool = ..., track_sids: _Optional[_Iterable[str]] = ..., participant_identity: _Optional[str] = ...) -> None: ...

class SubscriptionPermissionUpdate(_message.Message):
    __slots__ = ("participant_sid", "track_sid", "allowed")
    PARTICIPANT_SID_FIELD_NUMBER: _ClassVar[int]
    TRACK_SID_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    participant_sid: str
    track_sid: str
    allowed: bool
    def __init__(self, participant_sid: _Optional[str] = ..., track_sid: _Optional[str] = ..., allowed: bool = ...) -> None: ...

class SubscriptionResponse(_message.Message):
    __slots__ = ("track_sid", "err")
    TRACK_SID_FIELD_NUMBER: _ClassVar[int]
    ERR_FIELD_NUMBER: _ClassVar[int]
    track_sid: str
    err: SubscriptionError
    def __init__(self, track_sid: _Optional[str] = ..., err: _Optional[_Union[SubscriptionError, str]] = ...) -> None: ...

class TrackSubscribed(_message.Message):
    __slots__ = ("track_sid",)
    TRACK_SID_FIELD_NUMBER: _ClassVar[int]
    track_sid: str
    def __init__(self, track_sid: _Optional[str] = ...) -> None: ...

class StreamStateInfo(_message.Message):
    __slots__ = ("participant_sid", "track_sid", "state")
    PARTICIPANT_SID_FIELD_NUMBER: _ClassVar[int]
    TRACK_SID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    participant_sid: str
    track_sid: str
    state: StreamState
    def __init__(self, participant_sid: _Optional[str] = ..., track_sid: _Optional[str] = ..., state: _Optional[_Union[StreamState, str]] = ...) -> None: ...

class StreamStateUpdate(_message.Message):
    __slots__ = ("stream_states",)
    STREAM_STATES_FIELD_NUMBER: _ClassVar[int]
    stream_states: _containers.RepeatedCompositeFieldContainer[StreamStateInfo]
    def __init__(self, stream_states: _Optional[_Iterable[_Union[StreamStateInfo, _Mapping]]] = ...) -> None: ...

class SubscribedQuality(_message.Message):
    __slots__ = ("quality", "enabled")
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    quality: VideoQuality
    enabled: bool
    def __init__(self, quality: _Optional[_Union[VideoQuality, str]] = ..., enabled: bool = ...) -> None: ...

class SubscribedCodec(_message.Message):
    __slots__ = ("codec", "qualities")
    CODEC_FIELD_NUMBER: _ClassVar[int]
    QUALITIES_FIELD_NUMBER: _ClassVar[int]
    codec: str
    qualities: _containers.RepeatedCompositeFieldContainer[SubscribedQuality]
    def __init__(self, codec: _Optional[str] = ..., qualities: _Optional[_Iterable[_Union[SubscribedQuality, _Mapping]]] = ...) -> None: ...

class SubscribedQualityUpdate(_message.Message):
    __slots__ = ("track_sid", "subscribed_qualities", "subscribed_codecs")
    TRACK_SID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBED_QUALITIES_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBED_CODECS_FIELD_NUMBER: _ClassVar[int]
    track_sid: str
    subscribed_qualities: _containers.RepeatedCompositeFieldContainer[SubscribedQuality]
    subscribed_codecs: _containers.RepeatedCompositeFieldContainer[SubscribedCodec]
    def __init__(self, track_sid: _Optional[str] = ..., subscribed_qualities: _Optional[_Iterable[_Union[SubscribedQuality, _Mapping]]] = ..., subscribed_codecs: _Optional[_Iterable[_Union[SubscribedCodec, _Mapping]]] = ...) -> None: ...

class SubscribedAudioCodec(_message.Message):
    __slots__ = ("codec", "enabled")
    CODEC_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    codec: str
    enabled: bool
    def __init__(self, codec: _Optional[str] = ..., enabled: bool = ...) -> None: ...

class SubscribedAudioCodecUpdate(_message.Message):
    __slots__ = ("track_sid", "subscribed_audio_codecs")
    TRACK_SID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBED_AUDIO_CODECS_FIELD_NUMBER: _ClassVar[int]
    track_sid: str
    subscribed_audio_codecs: _containers.RepeatedCompositeFieldContainer[SubscribedAudioCodec]
    def __init__(self, track_sid: _Optional[str] = ..., subscribed_audio_codecs: _Optional[_Iterable[_Union[SubscribedAudioCodec, _Mapping]]] = ...) -> None: ...

class DataTrackInfo(_message.Message):
    __slots__ = ("pub_handle", "sid", "name", "encryption", "frame_encoding", "schema")
    PUB_HANDLE_FIELD_NUMBER: _ClassVar[int]
    SID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTION_FIELD_NUMBER: _ClassVar[int]
    FRAME_ENCODING_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    pub_handle: int
    sid: str
    name: str
    encryption: _data_pb2.Encryption.Type
    frame_encoding: DataTrackFrameEncoding
    schema: DataTrackSchemaId
    def __init__(self, pub_handle: _Optional[int] = ..., sid: _Optional[str] = ..., name: _Optional[str] = ..., encryption: _Optional[_Union[_data_pb2.Encryption.Type, str]] = ..., frame_encoding: _Optional[_Union[DataTrackFrameEncoding, _Mapping]] = ..., schema: _Optional[_Union[DataTrackSchemaId, _Mapping]] = ...) -> None: ...

class DataTrackFrameEncoding(_message.Message):
    __slots__ = ("well_known", "custom")
    class WellKnownFrameEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        WELL_KNOWN_FRAME_ENCODING_UNSPECIFIED: _ClassVar[DataTrackFrameEncoding.WellKnownFrameEncoding]
        WELL_KNOWN_FRAME_ENCODING_ROS1: _ClassVar[DataTrackFrameEncoding.WellKnownFrameEncoding]
        WELL_KNOWN_FRAME_ENCODING_CDR: _ClassVar[DataTrackFrameEncoding.WellKnownFrameEncoding]
        WELL_KNOWN_FRAME_ENCODING_PROTOBUF: _ClassVar[DataTrackFrameEncoding.WellKnownFrameEncoding]
        WELL_KNOWN_FRAME_ENCODING_FLATBUFFER: _ClassVar[DataTrackFrameEncoding.WellKnownFrameEncoding]
        WELL_KNOWN_FRAME_ENCODING_CBOR: _ClassVar[DataTrackFrameEncoding.WellKnownFrameEncoding]
        WELL_KNOWN_FRAME_ENCODING_MSGPACK: _ClassVar[DataTrackFrameEncoding.WellKnownFrameEncoding]
        WELL_KNOWN_FRAME_ENCODING_JSON: _ClassVar[DataTrackFrameEncoding.WellKnownFrameEncoding]
    WELL_KNOWN_FRAME_ENCODING_UNSPECIFIED: DataTrackFrameEncoding.WellKnownFrameEncoding
    WELL_KNOWN_FRAME_ENCODING_ROS1: DataTrackFrameEncoding.WellKnownFrameEncoding
    WELL_KNOWN_FRAME_ENCODING_CDR: DataTrackFrameEncoding.WellKnownFrameEncoding
    WELL_KNOWN_FRAME_ENCODING_PROTOBUF: DataTrackFrameEncoding.WellKnownFrameEncoding
    WELL_KNOWN_FRAME_ENCODING_FLATBUFFER: DataTrackFrameEncoding.WellKnownFrameEncoding
    WELL_KNOWN_FRAME_ENCODING_CBOR: DataTrackFrameEncoding.WellKnownFrameEncoding
    WELL_KNOWN_FRAME_ENCODING_MSGPACK: DataTrackFrameEncoding.WellKnownFrameEncoding
    WELL_KNOWN_FRAME_ENCODING_JSON: DataTrackFrameEncoding.WellKnownFrameEncoding
    WELL_KNOWN_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    well_known: DataTrackFrameEncoding.WellKnownFrameEncoding
    custom: str
    def __init__(self, well_known: _Optional[_Union[DataTrackFrameEncoding.WellKnownFrameEncoding, str]] = ..., custom: _Optional[str] = ...) -> None: ...

class DataTrackSchemaId(_message.Message):
    __slots__ = ("name", "encoding")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    name: str
    encoding: DataTrackSchemaEncoding
    def __init__(self, name: _Optional[str] = ..., encoding: _Optional[_Union[DataTrackSchemaEncoding, _Mapping]] = ...) -> None: ...

class DataTrackSchemaEncoding(_message.Message):
    __slots__ = ("well_known", "custom")
    class WellKnownSchemaEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        WELL_KNOWN_SCHEMA_ENCODING_UNSPECIFIED: _ClassVar[DataTrackSchemaEncoding.WellKnownSchemaEncoding]
        WELL_KNOWN_SCHEMA_ENCODING_PROTOBUF: _ClassVar[DataTrackSchemaEncoding.WellKnownSchemaEncoding]
        WELL_KNOWN_SCHEMA_ENCODING_FLATBUFFER: _ClassVar[DataTrackSchemaEncoding.WellKnownSchemaEncoding]
        WELL_KNOWN_SCHEMA_ENCODING_ROS1_MSG: _ClassVar[DataTrackSchemaEncoding.WellKnownSchemaEncoding]
        WELL_KNOWN_SCHEMA_ENCODING_ROS2_MSG: _ClassVar[DataTrackSchemaEncoding.WellKnownSchemaEncoding]
        WELL_KNOWN_SCHEMA_ENCODING_ROS2_IDL: _ClassVar[DataTrackSchemaEncoding.WellKnownSchemaEncoding]
        WELL_KNOWN_SCHEMA_ENCODING_OMG_IDL: _ClassVar[DataTrackSchemaEncoding.WellKnownSchemaEncoding]
        WELL_KNOWN_SCHEMA_ENCODING_JSON_SCHEMA: _ClassVar[DataTrackSchemaEncoding.WellKnownSchemaEncoding]
    WELL_KNOWN_SCHEMA_ENCODING_UNSPECIFIED: DataTrackSchemaEncoding.WellKnownSchemaEncoding
    WELL_KNOWN_SCHEMA_ENCODING_PROTOBUF: DataTrackSchemaEncoding.WellKnownSchemaEncoding
    WELL_KNOWN_SCHEMA_ENCODING_FLATBUFFER: DataTrackSchemaEncoding.WellKnownSchemaEncoding
    WELL_KNOWN_SCHEMA_ENCODING_ROS1_MSG: DataTrackSchemaEncoding.WellKnownSchemaEncoding
    WELL_KNOWN_SCHEMA_ENCODING_ROS2_MSG: DataTrackSchemaEncoding.WellKnownSchemaEncoding
    WELL_KNOWN_SCHEMA_ENCODING_ROS2_IDL: DataTrackSchemaEncoding.WellKnownSchemaEncoding
    WELL_KNOWN_SCHEMA_ENCODING_OMG_IDL: DataTrackSchemaEncoding.WellKnownSchemaEncoding
    WELL_KNOWN_SCHEMA_ENCODING_JSON_SCHEMA: DataTrackSchemaEncoding.WellKnownSchemaEncoding
    WELL_KNOWN_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    well_known: DataTrackSchemaEncoding.WellKnownSchemaEncoding
    custom: str
    def __init__(self, well_known: _Optional[_Union[DataTrackSchemaEncoding.WellKnownSchemaEncoding, str]] = ..., custom: _Optional[str] = ...) -> None: ...

class PublishDataTrackRequest(_message.Message):
    __slots__ = ("pub_handle", "name", "encryption", "frame_encoding", "schema")
    PUB_HANDLE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTION_FIELD_NUMBER: _ClassVar[int]
    FRAME_ENCODING_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    pub_handle: int
    name: str
    encryption: _data_pb2.Encryption.Type
    frame_encoding: DataTrackFrameEncoding
    schema: DataTrackSchemaId
    def __init__(self, pub_handle: _Optional[int] = ..., name: _Optional[str] = ..., encryption: _Optional[_Union[_data_pb2.Encryption.Type, str]] = ..., frame_encoding: _Optional[_Union[DataTrackFrameEncoding, _Mapping]] = ..., schema: _Optional[_Union[DataTrackSchemaId, _Mapping]] = ...) -> None: ...

class PublishDataTrackResponse(_message.Message):
    __slots__ = ("info",)
    INFO_FIELD_NUMBER: _ClassVar[int]
    info: DataTrackInfo
    def __init__(self, info: _Optional[_Union[DataTrackInfo, _Mapping]] = ...) -> None: ...

class UnpublishDataTrackRequest(_message.Message):
    __slots__ = ("pub_handle",)
    PUB_HANDLE_FIELD_NUMBER: _ClassVar[int]
    pub_handle: int
    def __init__(self, pub_handle: _Optional[int] = ...) -> None: ...

class UnpublishDataTrackResponse(_message.Message):
    __slots__ = ("info",)
    INFO_FIELD_NUMBER: _ClassVar[int]
    info: DataTrackInfo
    def __init__(self, info: _Optional[_Union[DataTrackInfo, _Mapping]] = ...) -> None: ...

class DataTrackSubscriberHandles(_message.Message):
    __slots__ = ("sub_handles",)
    class PublishedDataTrack(_message.Message):
        __slots__ = ("publisher_identity", "publisher_sid", "track_sid")
        PUBLISHER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
        PUBLISHER_SID_FIELD_NUMBER: _ClassVar[int]
        TRACK_SID_FIELD_NUMBER: _ClassVar[int]
        publisher_identity: str
        publisher_sid: str
        track_sid: str
        def __init__(self, publisher_identity: _Optional[str] = ..., publisher_sid: _Optional[str] = ..., track_sid: _Optional[str] = ...) -> None: ...
    class SubHandlesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: DataTrackSubscriberHandles.PublishedDataTrack
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[DataTrackSubscriberHandles.PublishedDataTrack, _Mapping]] = ...) -> None: ...
    SUB_HANDLES_FIELD_NUMBER: _ClassVar[int]
    sub_handles: _containers.MessageMap[int, DataTrackSubscriberHandles.PublishedDataTrack]
    def __init__(self, sub_handles: _Optional[_Mapping[int, DataTrackSubscriberHandles.PublishedDataTrack]] = ...) -> None: ...

class DataTrackSubscriptionOptions(_message.Message):
    __slots__ = ("target_fps",)
    TARGET_FPS_FIELD_NUMBER: _ClassVar[int]
    target_fps: int
    def __init__(self, target_fps: _Optional[int] = ...) -> None: ...

class UpdateDataSubscription(_message.Message):
    __slots__ = ("updates",)
    class Update(_message.Message):
        __slots__ = ("track_sid", "subscribe", "options")
        TRACK_SID_FIELD_NUMBER: _ClassVar[int]
        SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
        OPTIONS_FIELD_NUMBER: _ClassVar[int]
        track_sid: str
        subscribe: bool
        options: DataTrackSubscriptionOptions
        def __init__(self, track_sid: _Optional[str] = ..., subscribe: bool = ..., options: _Optional[_Union[DataTrackSubscriptionOptions, _Mapping]] = ...) -> None: ...
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    updates: _containers.RepeatedCompositeFieldContainer[UpdateDataSubscription.Update]
    def __init__(self, updates: _Optional[_Iterable[_Union[UpdateDataSubscription.Update, _Mapping]]] = ...) -> None: ...

class DataBlobKey(_message.Message):
    __slots__ = ("generic", "schema_id")
    GENERIC_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    generic: str
    schema_id: DataTrackSchemaId
    def __init__(self, generic: _Optional[str] = ..., schema_id: _Optional[_Union[DataTrackSchemaId, _Mapping]] = ...) -> None: ...

class DataBlob(_message.Message):
    __slots__ = ("key", "contents")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CONTENTS_FIELD_NUMBER: _ClassVar[int]
    key: DataBlobKey
    contents: bytes
    def __init__(self, key: _Optional[_Union[DataBlobKey, _Mapping]] = ..., contents: _Optional[bytes] = ...) -> None: ...

class StoreDataBlobRequest(_message.Message):
    __slots__ = ("request_id", "blob")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BLOB_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    blob: DataBlob
    def __init__(self, request_id: _Optional[int] = ..., blob: _Optional[_Union[DataBlob, _Mapping]] = ...) -> None: ...

class StoreDataBlobResponse(_message.Message):
    __slots__ = ("request_id", "key")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    key: DataBlobKey
    def __init__(self, request_id: _Optional[int] = ..., key: _Optional[_Union[DataBlobKey, _Mapping]] = ...) -> None: ...

class GetDataBlobRequest(_message.Message):
    __slots__ = ("request_id", "participant_identity", "key")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    participant_identity: str
    key: DataBlobKey
    def __init__(self, request_id: _Optional[int] = ..., participant_identity: _Optional[str] = ..., key: _Optional[_Union[DataBlobKey, _Mapping]] = ...) -> None: ...

class GetDataBlobResponse(_message.Message):
    __slots__ = ("request_id", "blob")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BLOB_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    blob: DataBlob
    def __init__(self, request_id: _Optional[int] = ..., blob: _Optional[_Union[DataBlob, _Mapping]] = ...) -> None: ...
