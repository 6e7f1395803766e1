# mypy: disable-error-code="type-arg"
from lkproto._pb import data_pb2 as _data_pb2
from lkproto._pb import participants_pb2 as _participants_pb2
from lkproto._pb import tracks_pb2 as _tracks_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReconnectReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RR_UNKNOWN: _ClassVar[ReconnectReason]
    RR_SIGNAL_DISCONNECTED: _ClassVar[ReconnectReason]
    RR_PUBLISHER_FAILED: _ClassVar[ReconnectReason]
    RR_SUBSCRIBER_FAILED: _ClassVar[ReconnectReason]
    RR_SWITCH_CANDIDATE: _ClassVar[ReconnectReason]

class ClientConfigSetting(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNSET: _ClassVar[ClientConfigSetting]
    DISABLED: _ClassVar[ClientConfigSetting]
    ENABLED: _ClassVar[ClientConfigSetting]

class SignalTarget(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PUBLISHER: _ClassVar[SignalTarget]
    SUBSCRIBER: _ClassVar[SignalTarget]

class CandidateProtocol(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UDP: _ClassVar[CandidateProtocol]
    TCP: _ClassVar[CandidateProtocol]
    TLS: _ClassVar[CandidateProtocol]
RR_UNKNOWN: ReconnectReason
RR_SIGNAL_DISCONNECTED: ReconnectReason
RR_PUBLISHER_FAILED: ReconnectReason
RR_SUBSCRIBER_FAILED: ReconnectReason
RR_SWITCH_CANDIDATE: ReconnectReason
UNSET: ClientConfigSetting
DISABLED: ClientConfigSetting
ENABLED: ClientConfigSetting
PUBLISHER: SignalTarget
SUBSCRIBER: SignalTarget
UDP: CandidateProtocol
TCP: CandidateProtocol
TLS: CandidateProtocol

class SignalRequest(_message.Message):
    __slots__ = ("offer", "answer", "trickle", "add_track", "mute", "subscription", "track_setting", "leave", "update_layers", "subscription_permission", "sync_state", "simulate", "ping", "update_metadata", "ping_req", "update_audio_track", "update_video_track", "publish_data_track_request", "unpublish_data_track_request", "update_data_subscription", "store_data_blob_request", "get_data_blob_request")
    OFFER_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    TRICKLE_FIELD_NUMBER: _ClassVar[int]
    ADD_TRACK_FIELD_NUMBER: _ClassVar[int]
    MUTE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TRACK_SETTING_FIELD_NUMBER: _ClassVar[int]
    LEAVE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_LAYERS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_PERMISSION_FIELD_NUMBER: _ClassVar[int]
    SYNC_STATE_FIELD_NUMBER: _ClassVar[int]
    SIMULATE_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    UPDATE_METADATA_FIELD_NUMBER: _ClassVar[int]
    PING_REQ_FIELD_NUMBER: _ClassVar[int]
    UPDATE_AUDIO_TRACK_FIELD_NUMBER: _ClassVar[int]
    UPDATE_VIDEO_TRACK_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_DATA_TRACK_REQUEST_FIELD_NUMBER: _ClassVar[int]
    UNPUBLISH_DATA_TRACK_REQUEST_FIELD_NUMBER: _ClassVar[int]
    UPDATE_DATA_SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STORE_DATA_BLOB_REQUEST_FIELD_NUMBER: _ClassVar[int]
    GET_DATA_BLOB_REQUEST_FIELD_NUMBER: _ClassVar[int]
    offer: SessionDescription
    answer: SessionDescription
    trickle: TrickleRequest
    add_track: _tracks_pb2.AddTrackRequest
    mute: _tracks_pb2.MuteTrackRequest
    subscription: _tracks_pb2.UpdateSubscription
    track_setting: _tracks_pb2.UpdateTrackSettings
    leave: LeaveRequest
    update_layers: _tracks_pb2.UpdateVideoLayers
    subscription_permission: _tracks_pb2.SubscriptionPermission
    sync_state: SyncState
    simulate: SimulateScenario
    ping: int
    update_metadata: UpdateParticipantMetadata
    ping_req: Ping
    update_audio_track: _tracks_pb2.UpdateLocalAudioTrack
    update_video_track: _tracks_pb2.UpdateLocalVideoTrack
    publish_data_track_request: _tracks_pb2.PublishDataTrackRequest
    unpublish_data_track_request: _tracks_pb2.UnpublishDataTrackRequest
    update_data_subscription: _tracks_pb2.UpdateDataSubscription
    store_data_blob_request: _tracks_pb2.StoreDataBlobRequest
    get_data_blob_request: _tracks_pb2.GetDataBlobRequest
    def __init__(self, offer: _Optional[_Union[SessionDescription, _Mapping]] = ..., answer: _Optional[_Union[SessionDescription, _Mapping]] = ..., trickle: _Optional[_Union[TrickleRequest, _Mapping]] = ..., add_track: _Optional[_Union[_tracks_pb2.AddTrackRequest, _Mapping]] = ..., mute: _Optional[_Union[_tracks_pb2.MuteTrackRequest, _Mapping]] = ..., subscription: _Optional[_Union[_tracks_pb2.UpdateSubscription, _Mapping]] = ..., track_setting: _Optional[_Union[_tracks_pb2.UpdateTrackSettings, _Mapping]] = ..., leave: _Optional[_Union[LeaveRequest, _Mapping]] = ..., update_layers: _Optional[_Union[_tracks_pb2.UpdateVideoLayers, _Mapping]] = ..., subscription_permission: _Optional[_Union[_tracks_pb2.SubscriptionPermission, _Mapping]] = ..., sync_state: _Optional[_Union[SyncState, _Mapping]] = ..., simulate: _Optional[_Union[SimulateScenario, _Mapping]] = ..., ping: _Optional[int] = ..., update_metadata: _Optional[_Union[UpdateParticipantMetadata, _Mapping]] = ..., ping_req: _Optional[_Union[Ping, _Mapping]] = ..., update_audio_track: _Optional[_Union[_tracks_pb2.UpdateLocalAudioTrack, _Mapping]] = ..., update_video_track: _Optional[_Union[_tracks_pb2.UpdateLocalVideoTrack, _Mapping]] = ..., publish_data_track_request: _Optional[_Union[_tracks_pb2.PublishDataTrackRequest, _Mapping]] = ..., unpublish_data_track_request: _Optional[_Union[_tracks_pb2.UnpublishDataTrackRequest, _Mapping]] = ..., update_data_subscription: _Optional[_Union[_tracks_pb2.UpdateDataSubscription, _Mapping]] = ..., store_data_blob_request: _Optional[_Union[_tracks_pb2.StoreDataBlobRequest, _Mapping]] = ..., get_data_blob_request: _Optional[_Union[_tracks_pb2.GetDataBlobRequest, _Mapping]] = ...) -> None: ...

class SignalResponse(_message.Message):
    __slots__ = ("join", "answer", "offer", "trickle", "update", "track_published", "leave", "mute", "speakers_changed", "room_update", "connection_quality", "stream_state_update", "subscribed_quality_update", "subscription_permission_update", "refresh_token", "track_unpublished", "pong", "reconnect", "pong_resp", "subscription_response", "request_response", "track_subscribed", "room_moved", "media_sections_requirement", "subscribed_audio_codec_update", "publish_data_track_response", "unpublish_data_track_response", "data_track_subscriber_handles", "store_data_blob_response", "get_data_blob_response")
    JOIN_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    OFFER_FIELD_NUMBER: _ClassVar[int]
    TRICKLE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    TRACK_PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    LEAVE_FIELD_NUMBER: _ClassVar[int]
    MUTE_FIELD_NUMBER: _ClassVar[int]
    SPEAKERS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    ROOM_UPDATE_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_QUALITY_FIELD_NUMBER: _ClassVar[int]
    STREAM_STATE_UPDATE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBED_QUALITY_UPDATE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_PERMISSION_UPDATE_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TRACK_UNPUBLISHED_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    RECONNECT_FIELD_NUMBER: _ClassVar[int]
    PONG_RESP_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    TRACK_SUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    ROOM_MOVED_FIELD_NUMBER: _ClassVar[int]
    MEDIA_SECTIONS_REQUIREMENT_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBED_AUDIO_CODEC_UPDATE_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_DATA_TRACK_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    UNPUBLISH_DATA_TRACK_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    DATA_TRACK_SUBSCRIBER_HANDLES_FIELD_NUMBER: _ClassVar[int]
    STORE_DATA_BLOB_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    GET_DATA_BLOB_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    join: JoinResponse
    answer: SessionDescription
    offer: SessionDescription
    trickle: TrickleRequest
    update: _participants_pb2.ParticipantUpdate
    track_published: _tracks_pb2.TrackPublishedResponse
    leave: LeaveRequest
    mute: _tracks_pb2.MuteTrackRequest
    speakers_changed: _participants_pb2.SpeakersChanged
    room_update: _participants_pb2.RoomUpdate
    connection_quality: _participants_pb2.ConnectionQualityUpdate
    stream_state_update: _tracks_pb2.StreamStateUpdate
    subscribed_quality_update: _tracks_pb2.SubscribedQualityUpdate
    subscription_permission_update: _tracks_pb2.SubscriptionPermissionUpdate
    refresh_token: str
    track_unpublished: _tracks_pb2.TrackUnpublishedResponse
    pong: int
    reconnect: ReconnectResponse
    pong_resp: Pong
    subscription_response: _tracks_pb2.SubscriptionResponse
    request_response: RequestResponse
    track_subscribed: _tracks_pb2.TrackSubscribed
    room_moved: RoomMovedResponse
    media_sections_requirement: MediaSectionsRequirement
    subscribed_audio_codec_update: _tracks_pb2.SubscribedAudioCodecUpdate
    publish_data_track_response: _tracks_pb2.PublishDataTrackResponse
    unpublish_data_track_response: _tracks_pb2.UnpublishDataTrackResponse
    data_track_subscriber_handles: _tracks_pb2.DataTrackSubscriberHandles
    store_data_blob_response: _tracks_pb2.StoreDataBlobResponse
    get_data_blob_response: _tracks_pb2.GetDataBlobResponse
    def __init__(self, join: _Optional[_Union[JoinResponse, _Mapping]] = ..., answer: _Optional[_Union[SessionDescription, _Mapping]] = ..., offer: _Optional[_Union[SessionDescription, _Mapping]] = ..., trickle: _Optional[_Union[TrickleRequest, _Mapping]] = ..., update: _Optional[_Union[_participants_pb2.ParticipantUpdate, _Mapping]] = ..., track_published: _Optional[_Union[_tracks_pb2.TrackPublishedResponse, _Mapping]] = ..., leave: _Optional[_Union[LeaveRequest, _Mapping]] = ..., mute: _Optional[_Union[_tracks_pb2.MuteTrackRequest, _Mapping]] = ..., speakers_changed: _Optional[_Union[_participants_pb2.SpeakersChanged, _Mapping]] = ..., room_update: _Optional[_Union[_participants_pb2.RoomUpdate, _Mapping]] = ..., connection_quality: _Optional[_Union[_participants_pb2.ConnectionQualityUpdate, _Mapping]] = ..., stream_state_update: _Optional[_Union[_tracks_pb2.StreamStateUpdate, _Mapping]] = ..., subscribed_quality_update: _Optional[_Union[_tracks_pb2.SubscribedQualityUpdate, _Mapping]] = ..., subscription_permission_update: _Optional[_Union[_tracks_pb2.SubscriptionPermissionUpdate, _Mapping]] = ..., refresh_token: _Optional[str] = ..., track_unpublished: _Optional[_Union[_tracks_pb2.TrackUnpublishedResponse, _Mapping]] = ..., pong: _Optional[int] = ..., reconnect: _Optional[_Union[ReconnectResponse, _Mapping]] = ..., pong_resp: _Optional[_Union[Pong, _Mapping]] = ..., subscription_response: _Optional[_Union[_tracks_pb2.SubscriptionResponse, _Mapping]] = ..., request_response: _Optional[_Union[RequestResponse, _Mapping]] = ..., track_subscribed: _Optional[_Union[_tracks_pb2.TrackSubscribed, _Mapping]] = ..., room_moved: _Optional[_Union[RoomMovedResponse, _Mapping]] = ..., media_sections_requirement: _Optional[_Union[MediaSectionsRequirement, _Mapping]] = ..., subscribed_audio_codec_update: _Optional[_Union[_tracks_pb2.SubscribedAudioCodecUpdate, _Mapping]] = ..., publish_data_track_response: _Optional[_Union[_tracks_pb2.PublishDataTrackResponse, _Mapping]] = ..., unpublish_data_track_response: _Optional[_Union[_tracks_pb2.UnpublishDataTrackResponse, _Mapping]] = ..., data_track_subscriber_handles: _Optional[_Union[_tracks_pb2.DataTrackSubscriberHandles, _Mapping]] = ..., store_data_blob_response: _Optional[_Union[_tracks_pb2.StoreDataBlobResponse, _Mapping]] = ..., get_data_blob_response: _Optional[_Union[_tracks_pb2.GetDataBlobResponse, _Mapping]] = ...) -> None: ...

class WrappedJoinRequest(_message.Message):
    __slots__ = ("compression", "join_request")
    class Compression(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        NONE: _ClassVar[WrappedJoinRequest.Compression]
        GZIP: _ClassVar[WrappedJoinRequest.Compression]
    NONE: WrappedJoinRequest.Compression
    GZIP: WrappedJoinRequest.Compression
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    JOIN_REQUEST_FIELD_NUMBER: _ClassVar[int]
    compression: WrappedJoinRequest.Compression
    join_request: bytes
    def __init__(self, compression: _Optional[_Union[WrappedJoinRequest.Compression, str]] = ..., join_request: _Optional[bytes] = ...) -> None: ...

class JoinRequest(_message.Message):
    __slots__ = ("client_info", "connection_settings", "metadata", "participant_attributes", "add_track_requests", "publisher_offer", "reconnect", "reconnect_reason", "participant_sid", "sync_state")
    class ParticipantAttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CLIENT_INFO_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    ADD_TRACK_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_OFFER_FIELD_NUMBER: _ClassVar[int]
    RECONNECT_FIELD_NUMBER: _ClassVar[int]
    RECONNECT_REASON_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_SID_FIELD_NUMBER: _ClassVar[int]
    SYNC_STATE_FIELD_NUMBER: _ClassVar[int]
    client_info: _participants_pb2.ClientInfo
    connection_settings: ConnectionSettings
    metadata: str
    participant_attributes: _containers.ScalarMap[str, str]
    add_track_requests: _containers.RepeatedCompositeFieldContainer[_tracks_pb2.AddTrackRequest]
    publisher_offer: SessionDescription
    reconnect: bool
    reconnect_reason: ReconnectReason
    participant_sid: str
    sync_state: SyncState
    def __init__(self, client_info: _Optional[_Union[_participants_pb2.ClientInfo, _Mapping]] = ..., connection_settings: _Optional[_Union[ConnectionSettings, _Mapping]] = ..., metadata: _Optional[str] = ..., participant_attributes: _Optional[_Mapping[str, str]] = ..., add_track_requests: _Optional[_Iterable[_Union[_tracks_pb2.AddTrackRequest, _Mapping]]] = ..., publisher_offer: _Optional[_Union[SessionDescription, _Mapping]] = ..., reconnect: bool = ..., reconnect_reason: _Optional[_Union[ReconnectReason, str]] = ..., participant_sid: _Optional[str] = ..., sync_state: _Optional[_Union[SyncState, _Mapping]] = ...) -> None: ...

class ConnectionSettings(_message.Message):
    __slots__ = ("auto_subscribe", "adaptive_stream", "subscriber_allow_pause", "disable_ice_lite", "auto_subscribe_data_track")
    AUTO_SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    ADAPTIVE_STREAM_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ALLOW_PAUSE_FIELD_NUMBER: _ClassVar[int]
    DISABLE_ICE_LITE_FIELD_NUMBER: _ClassVar[int]
    AUTO_SUBSCRIBE_DATA_TRACK_FIELD_NUMBER: _ClassVar[int]
    auto_subscribe: bool
    adaptive_stream: bool
    subscriber_allow_pause: bool
    disable_ice_lite: bool
    auto_subscribe_data_track: bool
    def __init__(self, auto_subscribe: bool = ..., adaptive_stream: bool = ..., subscriber_allow_pause: bool = ..., disable_ice_lite: bool = ..., auto_subscribe_data_track: bool = ...) -> None: ...

class JoinResponse(_message.Message):
    __slots__ = ("room", "participant", "other_participants", "server_version", "ice_servers", "subscriber_primary", "alternative_url", "client_configuration", "server_region", "ping_timeout", "ping_interval", "server_info", "sif_trailer", "enabled_publish_codecs", "fast_publish")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    OTHER_PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    ICE_SERVERS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_PRIMARY_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVE_URL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CONFIGURATION_FIELD_NUMBER: _ClassVar[int]
    SERVER_REGION_FIELD_NUMBER: _ClassVar[int]
    PING_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    PING_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    SERVER_INFO_FIELD_NUMBER: _ClassVar[int]
    SIF_TRAILER_FIELD_NUMBER: _ClassVar[int]
    ENABLED_PUBLISH_CODECS_FIELD_NUMBER: _ClassVar[int]
    FAST_PUBLISH_FIELD_NUMBER: _ClassVar[int]
    room: _participants_pb2.Room
    participant: _participants_pb2.ParticipantInfo
    other_participants: _containers.RepeatedCompositeFieldContainer[_participants_pb2.ParticipantInfo]
    server_version: str
    ice_servers: _containers.RepeatedCompositeFieldContainer[ICEServer]
    subscriber_primary: bool
    alternative_url: str
    client_configuration: ClientConfiguration
    server_region: str
    ping_timeout: int
    ping_interval: int
    server_info: _participants_pb2.ServerInfo
    sif_trailer: bytes
    enabled_publish_codecs: _containers.RepeatedCompositeFieldContainer[_tracks_pb2.Codec]
    fast_publish: bool
    def __init__(self, room: _Optional[_Union[_participants_pb2.Room, _Mapping]] = ..., participant: _Optional[_Union[_participants_pb2.ParticipantInfo, _Mapping]] = ..., other_participants: _Optional[_Iterable[_Union[_participants_pb2.ParticipantInfo, _Mapping]]] = ..., server_version: _Optional[str] = ..., ice_servers: _Optional[_Iterable[_Union[ICEServer, _Mapping]]] = ..., subscriber_primary: bool = ..., alternative_url: _Optional[str] = ..., client_configuration: _Optional[_Union[ClientConfiguration, _Mapping]] = ..., server_region: _Optional[str] = ..., ping_timeout: _Optional[int] = ..., ping_interval: _Optional[int] = ..., server_info: _Optional[_Union[_participants_pb2.ServerInfo, _Mapping]] = ..., sif_trailer: _Optional[bytes] = ..., enabled_publish_codecs: _Optional[_Iterable[_Union[_tracks_pb2.Codec, _Mapping]]] = ..., fast_publish: bool = ...) -> None: ...

class ReconnectResponse(_message.Message):
    __slots__ = ("ice_servers", "client_configuration", "server_info", "last_message_seq")
    ICE_SERVERS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CONFIGURATION_FIELD_NUMBER: _ClassVar[int]
    SERVER_INFO_FIELD_NUMBER: _ClassVar[int]
    LAST_MESSAGE_SEQ_FIELD_NUMBER: _ClassVar[int]
    ice_servers: _containers.RepeatedCompositeFieldContainer[ICEServer]
    client_configuration: ClientConfiguration
    server_info: _participants_pb2.ServerInfo
    last_message_seq: int
    def __init__(self, ice_servers: _Optional[_Iterable[_Union[ICEServer, _Mapping]]] = ..., client_configuration: _Optional[_Union[ClientConfiguration, _Mapping]] = ..., server_info: _Optional[_Union[_participants_pb2.ServerInfo, _Mapping]] = ..., last_message_seq: _Optional[int] = ...) -> None: ...

class ICEServer(_message.Message):
    __slots__ = ("urls", "username", "credential")
    URLS_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    urls: _containers.RepeatedScalarFieldContainer[str]
    username: str
    credential: str
    def __init__(self, urls: _Optional[_Iterable[str]] = ..., username: _Optional[str] = ..., credential: _Optional[str] = ...) -> None: ...

class ClientConfiguration(_message.Message):
    __slots__ = ("video", "screen", "resume_connection", "disabled_codecs", "force_relay")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    SCREEN_FIELD_NUMBER: _ClassVar[int]
    RESUME_CONNECTION_FIELD_NUMBER: _ClassVar[int]
    DISABLED_CODECS_FIELD_NUMBER: _ClassVar[int]
    FORCE_RELAY_FIELD_NUMBER: _ClassVar[int]
    video: VideoConfiguration
    screen: VideoConfiguration
    resume_connection: ClientConfigSetting
    disabled_codecs: DisabledCodecs
    force_relay: ClientConfigSetting
    def __init__(self, video: _Optional[_Union[VideoConfiguration, _Mapping]] = ..., screen: _Optional[_Union[VideoConfiguration, _Mapping]] = ..., resume_connection: _Optional[_Union[ClientConfigSetting, str]] = ..., disabled_codecs: _Optional[_Union[DisabledCodecs, _Mapping]] = ..., force_relay: _Optional[_Union[ClientConfigSetting, str]] = ...) -> None: ...

class VideoConfiguration(_message.Message):
    __slots__ = ("hardware_encoder",)
    HARDWARE_ENCODER_FIELD_NUMBER: _ClassVar[int]
    hardware_encoder: ClientConfigSetting
    def __init__(self, hardware_encoder: _Optional[_Union[ClientConfigSetting, str]] = ...) -> None: ...

class DisabledCodecs(_message.Message):
    __slots__ = ("codecs", "publish")
    CODECS_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    codecs: _containers.RepeatedCompositeFieldContainer[_tracks_pb2.Codec]
    publish: _containers.RepeatedCompositeFieldContainer[_tracks_pb2.Codec]
    def __init__(self, codecs: _Optional[_Iterable[_Union[_tracks_pb2.Codec, _Mapping]]] = ..., publish: _Optional[_Iterable[_Union[_tracks_pb2.Codec, _Mapping]]] = ...) -> None: ...

class RoomMovedResponse(_message.Message):
    __slots__ = ("room", "token", "participant", "other_participants")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    OTHER_PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    room: _participants_pb2.Room
    token: str
    participant: _participants_pb2.ParticipantInfo
    other_participants: _containers.RepeatedCompositeFieldContainer[_participants_pb2.ParticipantInfo]
    def __init__(self, room: _Optional[_Union[_participants_pb2.Room, _Mapping]] = ..., token: _Optional[str] = ..., participant: _Optional[_Union[_participants_pb2.ParticipantInfo, _Mapping]] = ..., other_participants: _Optional[_Iterable[_Union[_participants_pb2.ParticipantInfo, _Mapping]]] = ...) -> None: ...

class SessionDescription(_message.Message):
    __slots__ = ("type", "sdp", "id", "mid_to_track_id")
    class MidToTrackIdEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SDP_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    MID_TO_TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    type: str
    sdp: str
    id: int
    mid_to_track_id: _containers.ScalarMap[str, str]
    def __init__(self, type: _Optional[str] = ..., sdp: _Optional[str] = ..., id: _Optional[int] = ..., mid_to_track_id: _Optional[_Mapping[str, str]] = ...) -> None: ...

class TrickleRequest(_message.Message):
    __slots__ = ("candidateInit", "target", "final")
    CANDIDATEINIT_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    candidateInit: str
    target: SignalTarget
    final: bool
    def __init__(self, candidateInit: _Optional[str] = ..., target: _Optional[_Union[SignalTarget, str]] = ..., final: bool = ...) -> None: ...

class MediaSectionsRequirement(_message.Message):
    __slots__ = ("num_audios", "num_videos")
    NUM_AUDIOS_FIELD_NUMBER: _ClassVar[int]
    NUM_VIDEOS_FIELD_NUMBER: _ClassVar[int]
    num_audios: int
    num_videos: int
    def __init__(self, num_audios: _Optional[int] = ..., num_videos: _Optional[int] = ...) -> None: ...

class SyncState(_message.Message):
    __slots__ = ("answer", "subscription", "publish_tracks", "data_channels", "offer", "track_sids_disabled", "datachannel_receive_states", "publish_data_tracks", "data_subscription")
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_TRACKS_FIELD_NUMBER: _ClassVar[int]
    DATA_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    OFFER_FIELD_NUMBER: _ClassVar[int]
    TRACK_SIDS_DISABLED_FIELD_NUMBER: _ClassVar[int]
    DATACHANNEL_RECEIVE_STATES_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_DATA_TRACKS_FIELD_NUMBER: _ClassVar[int]
    DATA_SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    answer: SessionDescription
    subscription: _tracks_pb2.UpdateSubscription
    publish_tracks: _containers.RepeatedCompositeFieldContainer[_tracks_pb2.TrackPublishedResponse]
    data_channels: _containers.RepeatedCompositeFieldContainer[DataChannelInfo]
    offer: SessionDescription
    track_sids_disabled: _containers.RepeatedScalarFieldContainer[str]
    datachannel_receive_states: _containers.RepeatedCompositeFieldContainer[DataChannelReceiveState]
    publish_data_tracks: _containers.RepeatedCompositeFieldContainer[_tracks_pb2.PublishDataTrackResponse]
    data_subscription: _tracks_pb2.UpdateDataSubscription
    def __init__(self, answer: _Optional[_Union[SessionDescription, _Mapping]] = ..., subscription: _Optional[_Union[_tracks_pb2.UpdateSubscription, _Mapping]] = ..., publish_tracks: _Optional[_Iterable[_Union[_tracks_pb2.TrackPublishedResponse, _Mapping]]] = ..., data_channels: _Optional[_Iterable[_Union[DataChannelInfo, _Mapping]]] = ..., offer: _Optional[_Union[SessionDescription, _Mapping]] = ..., track_sids_disabled: _Optional[_Iterable[str]] = ..., datachannel_receive_states: _Optional[_Iterable[_Union[DataChannelReceiveState, _Mapping]]] = ..., publish_data_tracks: _Optional[_Iterable[_Union[_tracks_pb2.PublishDataTrackResponse, _Mapping]]] = ..., data_subscription: _Optional[_Union[_tracks_pb2.UpdateDataSubscription, _Mapping]] = ...) -> None: ...

class DataChannelReceiveState(_message.Message):
    __slots__ = ("publisher_sid", "last_seq")
    PUBLISHER_SID_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    publisher_sid: str
    last_seq: int
    def __init__(self, publisher_sid: _Optional[str] = ..., last_seq: _Optional[int] = ...) -> None: ...

class DataChannelInfo(_message.Message):
    __slots__ = ("label", "id", "target")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    label: str
    id: int
    target: SignalTarget
    def __init__(self, label: _Optional[str] = ..., id: _Optional[int] = ..., target: _Optional[_Union[SignalTarget, str]] = ...) -> None: ...

class LeaveRequest(_message.Message):
    __slots__ = ("can_reconnect", "reason", "action", "regions")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DISCONNECT: _ClassVar[LeaveRequest.Action]
        RESUME: _ClassVar[LeaveRequest.Action]
        RECONNECT: _ClassVar[LeaveRequest.Action]
    DISCONNECT: LeaveRequest.Action
    RESUME: LeaveRequest.Action
    RECONNECT: LeaveRequest.Action
    CAN_RECONNECT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    can_reconnect: bool
    reason: _participants_pb2.DisconnectReason
    action: LeaveRequest.Action
    regions: RegionSettings
    def __init__(self, can_reconnect: bool = ..., reason: _Optional[_Union[_participants_pb2.DisconnectReason, str]] = ..., action: _Optional[_Union[LeaveRequest.Action, str]] = ..., regions: _Optional[_Union[RegionSettings, _Mapping]] = ...) -> None: ...

class RegionSettings(_message.Message):
    __slots__ = ("regions",)
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    regions: _containers.RepeatedCompositeFieldContainer[RegionInfo]
    def __init__(self, regions: _Optional[_Iterable[_Union[RegionInfo, _Mapping]]] = ...) -> None: ...

class RegionInfo(_message.Message):
    __slots__ = ("region", "url", "distance")
    REGION_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    region: str
    url: str
    distance: int
    def __init__(self, region: _Optional[str] = ..., url: _Optional[str] = ..., distance: _Optional[int] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ("timestamp", "rtt")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    RTT_FIELD_NUMBER: _ClassVar[int]
    timestamp: int
    rtt: int
    def __init__(self, timestamp: _Optional[int] = ..., rtt: _Optional[int] = ...) -> None: ...

class Pong(_message.Message):
    __slots__ = ("last_ping_timestamp", "timestamp")
    LAST_PING_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    last_ping_timestamp: int
    timestamp: int
    def __init__(self, last_ping_timestamp: _Optional[int] = ..., timestamp: _Optional[int] = ...) -> None: ...

class UpdateParticipantMetadata(_message.Message):
    __slots__ = ("metadata", "name", "attributes", "request_id")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    METADATA_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    metadata: str
    name: str
    attributes: _containers.ScalarMap[str, str]
    request_id: int
    def __init__(self, metadata: _Optional[str] = ..., name: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., request_id: _Optional[int] = ...) -> None: ...

class RequestResponse(_message.Message):
    __slots__ = ("request_id", "reason", "message", "trickle", "add_track", "mute", "update_metadata", "update_audio_track", "update_video_track", "publish_data_track", "unpublish_data_track")
    class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OK: _ClassVar[RequestResponse.Reason]
        NOT_FOUND: _ClassVar[RequestResponse.Reason]
        NOT_ALLOWED: _ClassVar[RequestResponse.Reason]
        LIMIT_EXCEEDED: _ClassVar[RequestResponse.Reason]
        QUEUED: _ClassVar[RequestResponse.Reason]
        UNSUPPORTED_TYPE: _ClassVar[RequestResponse.Reason]
        UNCLASSIFIED_ERROR: _ClassVar[RequestResponse.Reason]
        INVALID_HANDLE: _ClassVar[RequestResponse.Reason]
        INVALID_NAME: _ClassVar[RequestResponse.Reason]
        DUPLICATE_HANDLE: _ClassVar[RequestResponse.Reason]
        DUPLICATE_NAME: _ClassVar[RequestResponse.Reason]
        INVALID_REQUEST: _ClassVar[RequestResponse.Reason]
    OK: RequestResponse.Reason
    NOT_FOUND: RequestResponse.Reason
    NOT_ALLOWED: RequestResponse.Reason
    LIMIT_EXCEEDED: RequestResponse.Reason
    QUEUED: RequestResponse.Reason
    UNSUPPORTED_TYPE: RequestResponse.Reason
    UNCLASSIFIED_ERROR: RequestResponse.Reason
    INVALID_HANDLE: RequestResponse.Reason
    INVALID_NAME: RequestResponse.Reason
    DUPLICATE_HANDLE: RequestResponse.Reason
    DUPLICATE_NAME: RequestResponse.Reason
    INVALID_REQUEST: RequestResponse.Reason
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRICKLE_FIELD_NUMBER: _ClassVar[int]
    ADD_TRACK_FIELD_NUMBER: _ClassVar[int]
    MUTE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_METADATA_FIELD_NUMBER: _ClassVar[int]
    UPDATE_AUDIO_TRACK_FIELD_NUMBER: _ClassVar[int]
    UPDATE_VIDEO_TRACK_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_DATA_TRACK_FIELD_NUMBER: _ClassVar[int]
    UNPUBLISH_DATA_TRACK_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    reason: RequestResponse.Reason
    message: str
    trickle: TrickleRequest
    add_track: _tracks_pb2.AddTrackRequest
    mute: _tracks_pb2.MuteTrackRequest
    update_metadata: UpdateParticipantMetadata
    update_audio_track: _tracks_pb2.UpdateLocalAudioTrack
    update_video_track: _tracks_pb2.UpdateLocalVideoTrack
    publish_data_track: _tracks_pb2.PublishDataTrackRequest
    unpublish_data_track: _tracks_pb2.UnpublishDataTrackRequest
    def __init__(self, request_id: _Optional[int] = ..., reason: _Optional[_Union[RequestResponse.Reason, str]] = ..., message: _Optional[str] = ..., trickle: _Optional[_Union[TrickleRequest, _Mapping]] = ..., add_track: _Optional[_Union[_tracks_pb2.AddTrackRequest, _Mapping]] = ..., mute: _Optional[_Union[_tracks_pb2.MuteTrackRequest, _Mapping]] = ..., update_metadata: _Optional[_Union[UpdateParticipantMetadata, _Mapping]] = ..., update_audio_track: _Optional[_Union[_tracks_pb2.UpdateLocalAudioTrack, _Mapping]] = ..., update_video_track: _Optional[_Union[_tracks_pb2.UpdateLocalVideoTrack, _Mapping]] = ..., publish_data_track: _Optional[_Union[_tracks_pb2.PublishDataTrackRequest, _Mapping]] = ..., unpublish_data_track: _Optional[_Union[_tracks_pb2.UnpublishDataTrackRequest, _Mapping]] = ...) -> None: ...

class SimulateScenario(_message.Message):
    __slots__ = ("speaker_update", "node_failure", "migration", "server_leave", "switch_candidate_protocol", "subscriber_bandwidth", "disconnect_signal_on_resume", "disconnect_signal_on_resume_no_messages", "leave_request_full_reconnect")
    SPEAKER_UPDATE_FIELD_NUMBER: _ClassVar[int]
    NODE_FAILURE_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_FIELD_NUMBER: _ClassVar[int]
    SERVER_LEAVE_FIELD_NUMBER: _ClassVar[int]
    SWITCH_CANDIDATE_PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_BANDWIDTH_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_SIGNAL_ON_RESUME_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_SIGNAL_ON_RESUME_NO_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    LEAVE_REQUEST_FULL_RECONNECT_FIELD_NUMBER: _ClassVar[int]
    speaker_update: int
    node_failure: bool
    migration: bool
    server_leave: bool
    switch_candidate_protocol: CandidateProtocol
    subscriber_bandwidth: int
    disconnect_signal_on_resume: bool
    disconnect_signal_on_resume_no_messages: bool
    leave_request_full_reconnect: bool
    def __init__(self, speaker_update: _Optional[int] = ..., node_failure: bool = ..., migration: bool = ..., server_leave: bool = ..., switch_candidate_protocol: _Optional[_Union[CandidateProtocol, str]] = ..., subscriber_bandwidth: _Optional[int] = ..., disconnect_signal_on_resume: bool = ..., disconnect_signal_on_resume_no_messages: bool = ..., leave_request_full_reconnect: bool = ...) -> None: ...
