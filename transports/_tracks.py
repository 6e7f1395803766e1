"""Tracks and publications as `livekit.rtc` shapes them, and the model of them every adapter
shares: no I/O, no backend.

- `LocalAudioTrack.create_audio_track(name, source)` is published with
  `LocalParticipant.publish_track(track, TrackPublishOptions(...))`, which returns a
  `LocalTrackPublication`; `track.mute()`/`unmute()` tell the server (`MuteTrackRequest`).
- Remote publications (`RemoteTrackPublication`) live in `participant.track_publications`;
  once subscribed, `publication.track` is a `RemoteAudioTrack` to read with `AudioStream`.
  `publication.set_subscribed(False)` unsubscribes (`UpdateSubscription`).
- `TrackModel` (a part of `RoomModel`) turns the core's track events into these objects and
  into `(event name, *args)` emissions with `livekit.rtc`'s names and arguments:
  `track_published`, `track_unpublished`, `track_subscribed`, `track_unsubscribed`,
  `track_subscription_failed`, `track_muted`, `track_unmuted` (remote and local tracks),
  `local_track_published`, `local_track_unpublished`, `local_track_republished`,
  `local_track_subscribed`. Publications known when the join completes are listed without
  a `track_published` (as `livekit.rtc` does); `track_subscribed` follows for each.
- Frames reach `AudioStream`s through a `FrameRouter` (the session's, transports/_media.py)
  that the tracks and participants of a session carry: a stream attaches its bounded queue
  under the track's sid (or a participant and source) and the media side fills it.
- Anything a user may call from another thread (`mute()`, `set_subscribed()`) goes through
  the session's `call_soon` hook (`Controls`), which runs it on the session's own loop.

Video (issue 23): `LocalVideoTrack.create_video_track(name, source)` is published the same
way (one layer, VP8 unless `TrackPublishOptions.video_codec` asks for H264), and a
subscribed `RemoteVideoTrack` is read with `VideoStream` (transports/_video.py has the
frames, the source and the queues). The same router carries both kinds: a stream's format
(`StreamFormat` for audio, `VideoFormat` for video) says which frames it takes.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeAlias, TypeVar

import attrs

from lkproto import events as ev
from lkproto import tracks as core
from lkproto.tracks import ParticipantTrackPermission, PublishTrackError, TrackPublicationInfo

from ._audio import (
    AudioFrameEvent,
    FrameQueue,
    Latch,
    PcmSource,
    StreamFormat,
    check_format,
)
from ._video import (
    FrameSource,
    VideoBufferType,
    VideoCodec,
    VideoEncoding,
    VideoFormat,
    VideoFrameEvent,
    VideoQueue,
    buffer_type,
)

if TYPE_CHECKING:
    from ._room import RoomModel

__all__ = [
    "AudioStream",
    "AudioStreamBase",
    "Controls",
    "FrameRouter",
    "LocalAudioTrack",
    "LocalPublication",
    "LocalTrack",
    "LocalTrackPublication",
    "LocalVideoTrack",
    "ParticipantMedia",
    "ParticipantTrackPermission",
    "PublishTrackError",
    "RemoteAudioTrack",
    "RemoteTrack",
    "RemoteTrackPublication",
    "RemoteVideoTrack",
    "StreamState",
    "Track",
    "TrackEvent",
    "TrackKind",
    "TrackModel",
    "TrackPublication",
    "TrackPublishOptions",
    "TrackSource",
    "VideoQuality",
    "VideoStream",
    "VideoStreamBase",
]


class TrackKind(enum.IntEnum):
    """`livekit.rtc.TrackKind` values."""

    KIND_UNKNOWN = 0
    KIND_AUDIO = 1
    KIND_VIDEO = 2


class TrackSource(enum.IntEnum):
    """`livekit.rtc.TrackSource` values (the protocol's)."""

    SOURCE_UNKNOWN = 0
    SOURCE_CAMERA = 1
    SOURCE_MICROPHONE = 2
    SOURCE_SCREENSHARE = 3
    SOURCE_SCREENSHARE_AUDIO = 4


class StreamState(enum.IntEnum):
    """`livekit.rtc.StreamState` values."""

    STATE_UNKNOWN = 0
    STATE_ACTIVE = 1
    STATE_PAUSED = 2


_KINDS = {core.TrackKind.AUDIO: TrackKind.KIND_AUDIO, core.TrackKind.VIDEO: TrackKind.KIND_VIDEO}


@dataclass
class TrackPublishOptions:
    """`livekit.rtc.TrackPublishOptions`. `source` (None) defaults to the microphone for
    audio, and for video to the camera (the screen share for a `VideoSource` made with
    `is_screencast=True`).

    Audio: aiortc sends plain Opus at 96 kbps without DTX or RED: `dtx` and `red` are
    accepted and ignored (the track is announced without them), as are `audio_encoding` and
    `preconnect_buffer`.

    Video: `video_codec` VP8 (None: aiortc's default, VP8) or H264; aiortc encodes nothing
    else (ValueError). `video_encoding` (`VideoEncoding(max_bitrate, max_framerate)`): the
    layer's announced bitrate, and a frame-rate cap the sender applies. aiortc cannot send
    simulcast: `simulcast=True` (livekit.rtc's default) is accepted and ONE layer, at the
    source's size, is published (the server forwards it to every subscriber)."""

    source: TrackSource | int | None = None
    stream: str = ""
    dtx: bool = True
    red: bool = True
    preconnect_buffer: bool = False
    audio_encoding: object = None
    video_codec: VideoCodec | int | None = None
    video_encoding: VideoEncoding | None = None
    simulcast: bool = True


AnyQueue: TypeAlias = FrameQueue | VideoQueue[VideoFrameEvent]
AnyFormat: TypeAlias = StreamFormat | VideoFormat


class FrameRouter(Protocol):
    """Where an `AudioStream` or `VideoStream` attaches its queue (the session's router)."""

    @property
    def default_capacity(self) -> int: ...

    @property
    def default_video_capacity(self) -> int: ...

    def attach(self, key: tuple[str, ...], fmt: AnyFormat, queue: AnyQueue) -> None:
        """Deliver the frames of `key` (("track", sid) or ("participant", identity,
        source)) to `queue`, converted to `fmt`; closes it at once if `key` is gone."""

    def detach(self, key: tuple[str, ...], queue: AnyQueue) -> None: ...


class ParticipantMedia:
    """What a participant object carries for media: its publications by sid and the router
    its audio is read through (`AudioStream.from_participant`). `_room`'s participants
    derive from it."""

    @property
    def identity(self) -> str:
        raise NotImplementedError  # the participant classes' property

    def __init__(self, router: FrameRouter | None) -> None:
        self._router = router
        self._publications: dict[str, Any] = {}  # sid -> its TrackPublication


class Controls(Protocol):
    """What tracks and publications ask of their session, from any thread."""

    def set_muted(self, cid: str, muted: bool) -> None: ...

    def set_subscribed(self, sid: str, subscribed: bool) -> None: ...

    def update_settings(self, sid: str, settings: dict[str, Any]) -> None:
        """`UpdateTrackSettings` for `sid` (`TrackManager.update_track_settings`'s keywords)."""


class VideoQuality(enum.IntEnum):
    """`livekit.rtc.VideoQuality` values (the simulcast layer a subscriber asks for)."""

    VIDEO_QUALITY_LOW = 0
    VIDEO_QUALITY_MEDIUM = 1
    VIDEO_QUALITY_HIGH = 2


# -- tracks -------------------------------------------------------------------------------------


class Track:
    """`livekit.rtc.Track`: sid, name, kind, muted, stream_state."""

    def __init__(self, sid: str, name: str, kind: TrackKind, *, muted: bool = False) -> None:
        self._sid = sid
        self._name = name
        self._kind = kind
        self._muted = muted
        self._stream_state = StreamState.STATE_ACTIVE

    @property
    def sid(self) -> str:
        """The server's id of the track ("" before it is published)."""
        return self._sid

    @property
    def name(self) -> str:
        """The name the publisher gave it."""
        return self._name

    @property
    def kind(self) -> TrackKind:
        """Audio or video."""
        return self._kind

    @property
    def muted(self) -> bool:
        """Whether the track is muted now."""
        return self._muted

    @property
    def stream_state(self) -> StreamState:
        """Whether the server forwards it now (remote tracks)."""
        return self._stream_state

    def __repr__(self) -> str:
        return f"rtc.{type(self).__name__}(sid={self._sid}, name={self._name})"


_Source = TypeVar("_Source", PcmSource, FrameSource)


class _LocalTrack(Track, Generic[_Source]):
    """What `LocalAudioTrack` and `LocalVideoTrack` share: the checked name and source, the
    cid and controls while published, and muting through the controls."""

    def __init__(self, name: str, source: _Source, kind: TrackKind) -> None:
        audio = kind is TrackKind.KIND_AUDIO
        call = "create_audio_track" if audio else "create_video_track"
        if not isinstance(name, str):
            raise TypeError(f"{call}: name must be str, not {type(name).__name__}")
        if not isinstance(source, PcmSource if audio else FrameSource):
            noun = "an AudioSource" if audio else "a VideoSource"
            raise TypeError(f"{call}: source must be {noun}, not {type(source).__name__}")
        super().__init__("", name, kind)
        self._source: _Source = source
        self._cid = ""  # while published: the core's cid (the sender's track id)
        self._controls: Controls | None = None

    def _set_muted(self, muted: bool) -> None:
        self._muted = muted
        if self._controls is not None and self._cid:
            self._controls.set_muted(self._cid, muted)


class LocalAudioTrack(_LocalTrack[PcmSource]):
    """An audio track fed by an `AudioSource` (`livekit.rtc.LocalAudioTrack`)."""

    def __init__(self, name: str, source: PcmSource) -> None:
        super().__init__(name, source, TrackKind.KIND_AUDIO)

    @staticmethod
    def create_audio_track(name: str, source: PcmSource) -> LocalAudioTrack:
        """A track named `name` that sends what `source` is given
        (`livekit.rtc.LocalAudioTrack.create_audio_track`)."""
        return LocalAudioTrack(name, source)

    @property
    def source(self) -> PcmSource:
        """The `AudioSource` feeding this track (lkproto)."""
        return self._source

    def mute(self) -> None:
        """Mute: the server stops forwarding the track and silence is sent meanwhile. Before
        publishing, the track is published muted."""
        self._set_muted(True)

    def unmute(self) -> None:
        """Unmute: the server forwards the track again."""
        self._set_muted(False)


class LocalVideoTrack(_LocalTrack[FrameSource]):
    """A video track fed by a `VideoSource` (`livekit.rtc.LocalVideoTrack`)."""

    def __init__(self, name: str, source: FrameSource) -> None:
        super().__init__(name, source, TrackKind.KIND_VIDEO)

    @staticmethod
    def create_video_track(name: str, source: FrameSource) -> LocalVideoTrack:
        """A track named `name` that sends what `source` captures
        (`livekit.rtc.LocalVideoTrack.create_video_track`)."""
        return LocalVideoTrack(name, source)

    @property
    def source(self) -> FrameSource:
        """The `VideoSource` feeding this track (lkproto)."""
        return self._source

    def mute(self) -> None:
        """Mute: the server stops forwarding the track, and captured frames are dropped
        meanwhile (nothing is encoded). Before publishing, the track is published muted."""
        self._set_muted(True)

    def unmute(self) -> None:
        """Unmute: frames are sent and forwarded again."""
        self._set_muted(False)


LocalTrack: TypeAlias = LocalAudioTrack | LocalVideoTrack


class _RemoteTrack(Track):
    """A subscribed remote track of `_KIND`, and the session's router its streams attach to."""

    _KIND: TrackKind

    def __init__(self, info: TrackPublicationInfo, router: FrameRouter | None) -> None:
        super().__init__(info.sid, info.name, self._KIND, muted=info.muted)
        self._router = router


class RemoteAudioTrack(_RemoteTrack):
    """A subscribed remote audio track: read it with `AudioStream(track)`."""

    _KIND = TrackKind.KIND_AUDIO


class RemoteVideoTrack(_RemoteTrack):
    """A subscribed remote video track: read it with `VideoStream(track)`."""

    _KIND = TrackKind.KIND_VIDEO


RemoteTrack: TypeAlias = RemoteAudioTrack | RemoteVideoTrack


# -- publications ---------------------------------------------------------------------------


class TrackPublication:
    """`livekit.rtc.TrackPublication`'s properties, over the core's `TrackPublicationInfo`."""

    def __init__(self, info: TrackPublicationInfo) -> None:
        self._info = info

    @property
    def sid(self) -> str:
        """The server's id of the track."""
        return self._info.sid

    @property
    def name(self) -> str:
        """The name the publisher gave it."""
        return self._info.name

    @property
    def kind(self) -> TrackKind:
        """Audio or video."""
        return _KINDS[self._info.kind]

    @property
    def source(self) -> TrackSource:
        """Microphone, camera, screen share, ..."""
        return TrackSource(int(self._info.source))

    @property
    def simulcasted(self) -> bool:
        """Whether the publisher sends simulcast layers."""
        return self._info.simulcasted

    @property
    def width(self) -> int:
        """Video width (0 for audio)."""
        return self._info.width

    @property
    def height(self) -> int:
        """Video height (0 for audio)."""
        return self._info.height

    @property
    def mime_type(self) -> str:
        """The codec, e.g. audio/opus ("" until negotiated)."""
        return self._info.mime_type

    @property
    def muted(self) -> bool:
        """Whether it is muted now."""
        return self._info.muted

    @property
    def encryption_type(self) -> int:
        """Always 0 (NONE): lkproto does not encrypt media."""
        return 0  # NONE: lkproto does not encrypt media

    @property
    def audio_features(self) -> list[int]:
        """Audio features announced with it (`AudioTrackFeature` values)."""
        return list(self._info.audio_features)

    @property
    def info(self) -> TrackPublicationInfo:
        """lkproto's immutable snapshot of this publication."""
        return self._info

    def __repr__(self) -> str:
        return f"rtc.{type(self).__name__}(sid={self.sid}, name={self.name}, kind={self.kind})"


class LocalPublication(TrackPublication):
    """What every adapter's `LocalTrackPublication` is (waiting for the first subscriber is
    async, or blocking for the threaded adapter)."""

    def __init__(self, info: TrackPublicationInfo, track: LocalTrack) -> None:
        super().__init__(info)
        self._track: LocalTrack | None = track
        self._subscribed = Latch()

    @property
    def track(self) -> LocalTrack | None:
        """Our track, until it is unpublished."""
        return self._track


class LocalTrackPublication(LocalPublication):
    """One of our published tracks (`livekit.rtc.LocalTrackPublication`)."""

    async def wait_for_subscription(self) -> None:
        """Wait until another participant subscribed to this track for the first time."""
        await self._subscribed.wait()


class RemoteTrackPublication(TrackPublication):
    """A remote participant's publication (`livekit.rtc.RemoteTrackPublication`)."""

    def __init__(self, info: TrackPublicationInfo, controls: Controls | None) -> None:
        super().__init__(info)
        self._track: RemoteTrack | None = None
        self._controls = controls
        self._subscribed = False

    @property
    def track(self) -> RemoteTrack | None:
        """The subscribed track (read it with `AudioStream` or `VideoStream`), or None."""
        return self._track

    @property
    def subscribed(self) -> bool:
        """Whether its media reaches us now."""
        return self._subscribed

    def set_subscribed(self, subscribed: bool) -> None:
        """Subscribe or unsubscribe (`UpdateSubscription`); `track_subscribed` or
        `track_unsubscribed` follows."""
        if not isinstance(subscribed, bool):
            raise TypeError("set_subscribed: subscribed must be a bool")
        if self._controls is not None:
            self._controls.set_subscribed(self.sid, subscribed)

    def set_video_quality(self, quality: VideoQuality | int) -> None:
        """Ask the server for one simulcast layer of this video track (`UpdateTrackSettings`
        quality; livekit.rtc's checks: ValueError for audio or a track without simulcast)."""
        if isinstance(quality, bool) or not isinstance(quality, int):
            raise TypeError("set_video_quality: quality must be a VideoQuality")
        if quality not in tuple(VideoQuality):
            raise ValueError(f"set_video_quality: unknown quality {quality}")
        self._check_video("set_video_quality")
        if not self.simulcasted:
            raise ValueError(f"set_video_quality requires a simulcasted publication ({self.sid})")
        self._settings(quality=core.VideoQuality(int(quality)))

    def set_video_dimensions(self, width: int, height: int) -> None:
        """Ask the server for the layer closest to `width` x `height` (lkproto; client-sdk-js
        `setVideoDimensions`): a subscriber showing a thumbnail saves bandwidth and decoding."""
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 16384:
                raise ValueError(f"set_video_dimensions: {name} must be 1 to 16384: {value!r}")
        self._check_video("set_video_dimensions")
        self._settings(width=width, height=height)

    def set_enabled(self, enabled: bool) -> None:
        """Pause (False) or resume forwarding of this subscribed track without unsubscribing
        (lkproto; client-sdk-js `setEnabled`, `UpdateTrackSettings.disabled`)."""
        if not isinstance(enabled, bool):
            raise TypeError("set_enabled: enabled must be a bool")
        self._settings(enabled=enabled)

    def _check_video(self, call: str) -> None:
        if self._info.kind is not core.TrackKind.VIDEO:
            raise ValueError(f"{call} is only supported on video publications ({self.sid})")

    def _settings(self, **settings: Any) -> None:
        if self._controls is not None:
            self._controls.update_settings(self.sid, settings)


# -- streams ------------------------------------------------------------------------------------


def _check_capacity(name: str, capacity: int) -> None:
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
        raise ValueError(f"{name}: capacity must be a non-negative int, not {capacity!r}")


def _route(
    name: str,
    track: RemoteTrack | None,
    remote: type[_RemoteTrack],
    kwargs: dict[str, Any],
    default_source: TrackSource,
) -> tuple[FrameRouter, tuple[str, ...]]:
    """Where the stream `name` attaches: the router and key of `track` (a `remote`), or of the
    `participant` and `track_source` in `kwargs` (`from_participant`). Raises TypeError for
    anything else, or a track or participant of no session."""
    participant = kwargs.pop("participant", None)
    source = kwargs.pop("track_source", default_source)
    if kwargs:
        raise TypeError(f"{name}: unexpected arguments {sorted(kwargs)}")
    router: FrameRouter | None
    if participant is not None:
        if not isinstance(participant, ParticipantMedia):
            raise TypeError(f"{name}.from_participant: participant must be a Participant")
        router = participant._router
        key: tuple[str, ...] = ("participant", participant.identity, str(int(source)))
    else:
        if not isinstance(track, remote):
            kind = "audio" if remote._KIND is TrackKind.KIND_AUDIO else "video"
            raise TypeError(
                f"{name}: track must be a {remote.__name__} (a subscribed remote {kind} "
                f"track), not {type(track).__name__}"
            )
        router = track._router
        key = ("track", track.sid)
    if router is None:
        raise TypeError(f"{name}: that track or participant belongs to no session")
    return router, key


class AudioStreamBase:
    """What every adapter's `AudioStream` is: the audio of one remote track, resampled, in a
    bounded queue (async iteration, or blocking iteration for the threaded adapter).

    Frames are 20 ms (as decoded) unless `frame_size_ms` is given. At most `capacity`
    frames wait (0: `Config.audio_stream_capacity`); the oldest is dropped when the reader
    falls behind (`dropped_frames` counts them). The stream ends (the iteration stops) when
    the track is unsubscribed or unpublished, the session ends, or on `aclose()`.
    `from_participant` follows whichever track of that source the participant has
    subscribed, until the participant leaves.
    """

    def __init__(
        self,
        track: RemoteTrack | None,
        loop: object = None,
        capacity: int = 0,
        sample_rate: int = 48000,
        num_channels: int = 1,
        frame_size_ms: int | None = None,
        noise_cancellation: object = None,
        **kwargs: Any,
    ) -> None:
        """Raises TypeError for a track that is not a `RemoteAudioTrack` (or a participant
        that is not one of a session's), ValueError for a rate or channel count
        `AudioSource` would refuse, a negative capacity, a frame size that is not 10 to
        1000 ms in steps of 10, or noise cancellation (not available)."""
        del loop
        rate, channels = check_format(sample_rate, num_channels, "AudioStream")
        _check_capacity("AudioStream", capacity)
        if frame_size_ms is not None and (
            isinstance(frame_size_ms, bool)
            or not isinstance(frame_size_ms, int)
            or not 10 <= frame_size_ms <= 1000
            or frame_size_ms % 10
        ):
            raise ValueError("AudioStream: frame_size_ms must be 10 to 1000 in steps of 10")
        if noise_cancellation is not None:
            raise ValueError("AudioStream: noise cancellation is not available in lkproto")
        microphone = TrackSource.SOURCE_MICROPHONE
        router, key = _route("AudioStream", track, RemoteAudioTrack, kwargs, microphone)
        self._format = StreamFormat(rate, channels, frame_size_ms)
        self._queue = FrameQueue(capacity or router.default_capacity)
        self._router = router
        self._key = key
        router.attach(key, self._format, self._queue)

    @classmethod
    def from_participant(
        cls,
        *,
        participant: ParticipantMedia,
        track_source: TrackSource | int,
        loop: object = None,
        capacity: int = 0,
        sample_rate: int = 48000,
        num_channels: int = 1,
        frame_size_ms: int | None = None,
        noise_cancellation: object = None,
    ) -> Self:
        """A stream of `participant`'s track of `track_source` (the one subscribed now, and
        the next ones), until the participant leaves."""
        return cls(
            None,
            loop,
            capacity,
            sample_rate,
            num_channels,
            frame_size_ms,
            noise_cancellation,
            participant=participant,
            track_source=track_source,
        )

    @classmethod
    def from_track(
        cls,
        *,
        track: RemoteTrack,
        loop: object = None,
        capacity: int = 0,
        sample_rate: int = 48000,
        num_channels: int = 1,
        frame_size_ms: int | None = None,
        noise_cancellation: object = None,
    ) -> Self:
        """A stream of `track`, as the constructor makes."""
        return cls(
            track, loop, capacity, sample_rate, num_channels, frame_size_ms, noise_cancellation
        )

    @property
    def sample_rate(self) -> int:
        """Sample rate of the frames this stream yields, in Hz."""
        return self._format.sample_rate

    @property
    def num_channels(self) -> int:
        """Channels of the frames this stream yields."""
        return self._format.num_channels

    @property
    def dropped_frames(self) -> int:
        """Frames dropped because the reader fell `capacity` frames behind (lkproto)."""
        return self._queue.dropped

    def close(self) -> None:
        """End the stream now; frames still queued are dropped."""
        self._router.detach(self._key, self._queue)
        self._queue.close()


class AudioStream(AudioStreamBase):
    """The audio of one remote track, resampled, as an async iterator of `AudioFrameEvent`
    (`livekit.rtc.AudioStream`). See `AudioStreamBase` for the frames, bound and end."""

    def __aiter__(self) -> AsyncIterator[AudioFrameEvent]:
        return self

    async def __anext__(self) -> AudioFrameEvent:
        frame = await self._queue.get()
        if frame is None:
            raise StopAsyncIteration
        return AudioFrameEvent(frame)

    async def aclose(self) -> None:
        """End the stream now; frames still queued are dropped."""
        self.close()


class VideoStreamBase:
    """What every adapter's `VideoStream` is: the pictures of one remote video track in a
    bounded queue (async iteration, or blocking iteration for the threaded adapter).

    Frames are decoded as I420 and converted to `format` (None: I420) when the reader takes
    them. At most `capacity` frames wait (0: `Config.video_stream_capacity`); the oldest is
    dropped when the reader falls behind (`dropped_frames` counts them), so a slow reader
    costs bounded memory and sees the newest picture. The stream ends when the track is
    unsubscribed or unpublished, the session ends, or on `aclose()`. `from_participant`
    follows whichever track of that source the participant has subscribed, until the
    participant leaves.
    """

    def __init__(
        self,
        track: RemoteTrack | None,
        loop: object = None,
        capacity: int = 0,
        format: VideoBufferType | int | None = None,
        **kwargs: Any,
    ) -> None:
        """Raises TypeError for a track that is not a `RemoteVideoTrack` (or a participant
        that is not one of a session's), ValueError for a negative capacity or an unknown
        format."""
        del loop
        _check_capacity("VideoStream", capacity)
        kind = None if format is None else buffer_type(format, "VideoStream: format")
        camera = TrackSource.SOURCE_CAMERA
        router, key = _route("VideoStream", track, RemoteVideoTrack, kwargs, camera)
        self._format = VideoFormat(kind)
        self._queue: VideoQueue[VideoFrameEvent] = VideoQueue(
            capacity or router.default_video_capacity
        )
        self._router = router
        self._key = key
        router.attach(key, self._format, self._queue)

    @classmethod
    def from_participant(
        cls,
        *,
        participant: ParticipantMedia,
        track_source: TrackSource | int,
        loop: object = None,
        format: VideoBufferType | int | None = None,
        capacity: int = 0,
    ) -> Self:
        """A stream of `participant`'s video track of `track_source` (the one subscribed
        now, and the next ones), until the participant leaves."""
        return cls(None, loop, capacity, format, participant=participant, track_source=track_source)

    @classmethod
    def from_track(
        cls,
        *,
        track: RemoteTrack,
        loop: object = None,
        format: VideoBufferType | int | None = None,
        capacity: int = 0,
    ) -> Self:
        """A stream of `track`, as the constructor makes."""
        return cls(track, loop, capacity, format)

    @property
    def format(self) -> VideoBufferType | None:
        """The layout of the frames this stream yields (None: I420, as decoded)."""
        return self._format.type

    @property
    def dropped_frames(self) -> int:
        """Frames dropped because the reader fell `capacity` frames behind (lkproto)."""
        return self._queue.dropped

    def _converted(self, event: VideoFrameEvent) -> VideoFrameEvent:
        kind = self._format.type
        if kind is None or kind is event.frame.type:
            return event
        return VideoFrameEvent(event.frame.convert(kind), event.timestamp_us, event.rotation)

    def close(self) -> None:
        """End the stream now; frames still queued are dropped."""
        self._router.detach(self._key, self._queue)
        self._queue.close(drop=True)


class VideoStream(VideoStreamBase):
    """The pictures of one remote video track as an async iterator of `VideoFrameEvent`
    (`livekit.rtc.VideoStream`). See `VideoStreamBase` for the frames, bound and end."""

    def __aiter__(self) -> AsyncIterator[VideoFrameEvent]:
        return self

    async def __anext__(self) -> VideoFrameEvent:
        event = await self._queue.get()
        if event is None:
            raise StopAsyncIteration
        return self._converted(event)

    async def aclose(self) -> None:
        """End the stream now; frames still queued are dropped."""
        self.close()


# -- the model ----------------------------------------------------------------------------------

TrackEvent: TypeAlias = (
    ev.LocalTrackPublished
    | ev.LocalTrackPublishFailed
    | ev.LocalTrackRepublishing
    | ev.LocalTrackRepublished
    | ev.LocalTrackUnpublished
    | ev.LocalTrackMuted
    | ev.LocalTrackUnmuted
    | ev.LocalTrackMuteRefused
    | ev.LocalTrackSubscribed
    | ev.TrackPublished
    | ev.TrackUnpublished
    | ev.TrackMuted
    | ev.TrackUnmuted
    | ev.TrackSubscribed
    | ev.TrackUnsubscribed
    | ev.TrackSubscriptionFailed
    | ev.TrackSubscriptionPermissionChanged
    | ev.TrackStreamStateChanged
    | ev.AnswerDropped
    | ev.NegotiationTimedOut
    | ev.MediaSectionsLimited
    | ev.TrackSignalIgnored
)
Emission: TypeAlias = tuple[str, tuple[object, ...]]
_GONE_REMEMBERED = 256


class TrackModel:
    """The publications of a room, rebuilt from the core's track events (see the module)."""

    def __init__(self) -> None:
        self.router: FrameRouter | None = None
        self.controls: Controls | None = None
        self.tracks: dict[str, LocalTrack] = {}  # cid -> our track being published
        self.local: dict[str, LocalPublication] = {}  # cid -> our publication
        # The adapter's LocalTrackPublication (async, or the threaded adapter's blocking one).
        self.publication: Callable[[TrackPublicationInfo, LocalTrack], LocalPublication]
        self.publication = LocalTrackPublication
        # Unpublished remote sids -> publisher, so that subscribing to a track that is gone
        # still names its publisher in `track_subscription_failed` (bounded).
        self._gone: OrderedDict[str, str] = OrderedDict()

    def local_by_sid(self, sid: str) -> tuple[str, LocalPublication] | None:
        return next(((c, p) for c, p in self.local.items() if p.sid == sid), None)

    def apply(self, event: TrackEvent, room: RoomModel) -> list[Emission]:
        out: list[Emission] = []
        match event:
            case ev.TrackPublished():
                participant = room.remote.get(event.participant_identity)
                if participant is not None:
                    publication = RemoteTrackPublication(event.info, self.controls)
                    participant._publications[event.info.sid] = publication
                    if room.joined:
                        out.append(("track_published", (publication, participant)))
            case ev.TrackUnpublished():
                participant = room.remote.get(event.participant_identity)
                if participant is not None:
                    removed = participant._publications.pop(event.sid, None)
                    if removed is not None:
                        out.append(("track_unpublished", (removed, participant)))
                self._gone[event.sid] = event.participant_identity
                while len(self._gone) > _GONE_REMEMBERED:
                    self._gone.popitem(last=False)
            case ev.TrackMuted() | ev.TrackUnmuted():
                muted = isinstance(event, ev.TrackMuted)
                participant = room.remote.get(event.participant_identity)
                if participant is not None and event.sid in participant._publications:
                    publication = participant._publications[event.sid]
                    publication._info = attrs.evolve(publication._info, muted=muted)
                    if publication._track is not None:
                        publication._track._muted = muted
                    out.append(
                        ("track_muted" if muted else "track_unmuted", (participant, publication))
                    )
            case ev.TrackSubscribed():
                participant = room.remote.get(event.participant_identity)
                if participant is not None and event.info.sid in participant._publications:
                    publication = participant._publications[event.info.sid]
                    publication._info = event.info
                    track: RemoteTrack
                    if event.info.kind is core.TrackKind.AUDIO:
                        track = RemoteAudioTrack(event.info, self.router)
                    else:
                        track = RemoteVideoTrack(event.info, self.router)
                    publication._track, publication._subscribed = track, True
                    out.append(("track_subscribed", (track, publication, participant)))
            case ev.TrackUnsubscribed():
                participant = room.remote.get(event.participant_identity)
                ended_sub: RemoteTrackPublication | None = (
                    None if participant is None else participant._publications.get(event.sid)
                )
                if ended_sub is not None and ended_sub._track is not None:
                    gone, ended_sub._track = ended_sub._track, None
                    ended_sub._subscribed = False
                    out.append(("track_unsubscribed", (gone, ended_sub, participant)))
            case ev.TrackSubscriptionFailed():
                identity = event.participant_identity or self._gone.get(event.sid, "")
                participant = room.remote.get(identity)
                if participant is not None:
                    text = event.message or event.error.name
                    out.append(("track_subscription_failed", (participant, event.sid, text)))
            case ev.LocalTrackPublished():
                local_track = self.tracks.get(event.cid)
                if local_track is not None:
                    publication_ = self.publication(event.info, local_track)
                    local_track._sid = event.info.sid
                    self.local[event.cid] = publication_
                    if room.local is not None:
                        room.local._publications[event.info.sid] = publication_
                    out.append(("local_track_published", (publication_, local_track)))
            case ev.LocalTrackRepublishing():
                self._rekey(event.previous_cid, event.cid)
            case ev.LocalTrackRepublished():
                found = self.local.get(event.cid)
                if found is not None:
                    found._info = event.info
                    if found._track is not None:
                        found._track._sid = event.info.sid
                    if room.local is not None:
                        room.local._publications.pop(event.previous_sid, None)
                        room.local._publications[event.info.sid] = found
                    out.append(("local_track_republished", (found, event.previous_sid)))
            case ev.LocalTrackUnpublished():
                ended = self.local.pop(event.cid, None)
                local_track = self.tracks.pop(event.cid, None)
                if local_track is not None:
                    local_track._cid = ""
                    local_track._sid = ""
                if ended is not None:
                    if room.local is not None:
                        room.local._publications.pop(ended.sid, None)
                    ended._track = None
                    out.append(("local_track_unpublished", (ended,)))
            case ev.LocalTrackMuted() | ev.LocalTrackUnmuted():
                muted = isinstance(event, ev.LocalTrackMuted)
                found = self.local.get(event.cid)
                if found is not None:
                    found._info = attrs.evolve(found._info, muted=muted)
                    if found._track is not None:
                        found._track._muted = muted
                    name = "track_muted" if muted else "track_unmuted"
                    out.append((name, (room.local, found)))
            case ev.LocalTrackSubscribed():
                found = self.local.get(event.cid)
                if found is not None:
                    found._subscribed.set()
                    out.append(("local_track_subscribed", (found._track,)))
            case ev.TrackStreamStateChanged():
                participant = room.remote.get(event.participant_identity)
                streamed: RemoteTrackPublication | None = (
                    None if participant is None else participant._publications.get(event.sid)
                )
                if streamed is not None and streamed._track is not None:
                    streamed._track._stream_state = (
                        StreamState.STATE_ACTIVE
                        if event.state is core.StreamState.ACTIVE
                        else StreamState.STATE_PAUSED
                    )
            case ev.LocalTrackPublishFailed():
                self.tracks.pop(event.cid, None)  # publish_track raises
            case (
                ev.LocalTrackMuteRefused()
                | ev.TrackSubscriptionPermissionChanged()
                | ev.AnswerDropped()
                | ev.NegotiationTimedOut()
                | ev.MediaSectionsLimited()
                | ev.TrackSignalIgnored()
            ):
                pass  # no livekit.rtc emission (the session logs some)
        return out

    def _rekey(self, previous: str, cid: str) -> None:
        if previous in self.tracks:
            track = self.tracks[cid] = self.tracks.pop(previous)
            track._cid = cid
        if previous in self.local:
            self.local[cid] = self.local.pop(previous)
