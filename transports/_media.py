"""Media tracks on a session: publishing, subscribing, and routing frames between the
application and the peer connection.

Theory of operation (media findings F1-F8; the core's side is `lkproto.tracks`)
- `MediaRouter` is the one object shared by the session's loop, the application's threads
  and the loop that runs the peer connection (aiortc's, or the memory transport's). It is
  thread-safe (one lock) and holds: the PCM queue of each published track by cid (the send
  side pulls from it), each receive slot's current remote track sid (the core's
  `TrackSubscribed`/`TrackUnsubscribed`: frames are routed by the slot's binding, never by
  aiortc's track id, F4.9) and the queues of the `AudioStream`s reading each track or each
  participant's source. Frames for a slot with no reader are dropped at once.
- `Media` is the session's part: `publish_track` asks the core for a cid, registers the
  source's queue under it and waits for the server's answer (`PublishTrackError` on a
  refusal or timeout); `unpublish_track` ends it. It updates the router from the core's
  track events before the room model emits them (a `track_subscribed` callback that opens
  an `AudioStream` gets the very next frame) and resolves publish waiters after.
- Verbs that `livekit.rtc` makes synchronous and callable from anywhere (`track.mute()`,
  `publication.set_subscribed()`) run on the session's loop through `Session.call_soon`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from lkproto import events as ev
from lkproto import tracks as core
from lkproto._repr import plain_repr

from ._audio import Latch, PcmQueue
from ._errors import TransportError
from ._tracks import (
    AnyFormat,
    AnyQueue,
    LocalAudioTrack,
    LocalPublication,
    LocalTrack,
    LocalVideoTrack,
    ParticipantTrackPermission,
    PublishTrackError,
    TrackPublishOptions,
)
from ._video import CapturedFrame, VideoCodec, VideoEncoding, VideoQueue

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["Consumer", "Media", "MediaRouter", "SendSource", "UnpublishTrackError"]

log = logging.getLogger("lkproto.transports")


class UnpublishTrackError(TransportError):
    """`unpublish_track` for a sid that is not one of our publications."""


@attrs.define(eq=False)
@plain_repr
class SendSource:
    """A published track's queue (PCM for audio, captured frames for video), whether it is
    muted (audio: silence is sent; video: frames are dropped), and a video frame-rate cap."""

    queue: PcmQueue | VideoQueue[CapturedFrame]
    muted: bool
    max_framerate: float = 0.0


@attrs.define(eq=False)
@plain_repr
class Consumer:
    """An `AudioStream`'s or `VideoStream`'s queue and format. `converter` belongs to the
    media side, which builds it at the first audio frame (only that side touches it)."""

    fmt: AnyFormat
    queue: AnyQueue
    converter: object = None


Key = tuple[str, ...]


class MediaRouter:
    """Thread-safe routing between the application and the peer connection (see the
    module docstring)."""

    def __init__(self, default_capacity: int, default_video_capacity: int = 1) -> None:
        self.default_capacity = default_capacity
        self.default_video_capacity = default_video_capacity
        self._lock = threading.Lock()
        self._sources: dict[str, SendSource] = {}
        self._slots: dict[int, str] = {}  # receive slot -> the remote track sid it carries
        self._tracks: dict[str, tuple[str, int]] = {}  # subscribed sid -> (identity, source)
        self._consumers: dict[Key, list[Consumer]] = {}
        self._closed = False

    # -- streams (any thread) ------------------------------------------------------------------

    def attach(self, key: Key, fmt: AnyFormat, queue: AnyQueue) -> None:
        with self._lock:
            gone = self._closed or (key[0] == "track" and key[1] not in self._tracks)
            if not gone:
                self._consumers.setdefault(key, []).append(Consumer(fmt, queue))
        if gone:
            queue.close()  # the track is not subscribed (any more), or the session ended

    def detach(self, key: Key, queue: AnyQueue) -> None:
        with self._lock:
            consumers = self._consumers.get(key, [])
            self._consumers[key] = [c for c in consumers if c.queue is not queue]
            if not self._consumers[key]:
                del self._consumers[key]

    # -- the media side (the peer connection's loop) ---------------------------------------------

    def source(self, cid: str) -> SendSource | None:
        with self._lock:
            return self._sources.get(cid)

    def consumers(self, slot: int) -> list[Consumer]:
        """The readers of what receive slot `slot` carries now (none: drop the frame)."""
        with self._lock:
            sid = self._slots.get(slot)
            if sid is None:
                return []
            identity, source = self._tracks[sid]
            return [
                *self._consumers.get(("track", sid), ()),
                *self._consumers.get(("participant", identity, str(source)), ()),
            ]

    # -- the session ------------------------------------------------------------------------------

    def add_source(
        self,
        cid: str,
        queue: PcmQueue | VideoQueue[CapturedFrame],
        muted: bool,
        max_framerate: float = 0.0,
    ) -> None:
        with self._lock:
            self._sources[cid] = SendSource(queue, muted, max_framerate)

    def rename_source(self, previous: str, cid: str) -> None:
        with self._lock:
            if previous in self._sources:
                self._sources[cid] = self._sources.pop(previous)

    def remove_source(self, cid: str) -> None:
        with self._lock:
            self._sources.pop(cid, None)

    def set_muted(self, cid: str, muted: bool) -> None:
        with self._lock:
            found = self._sources.get(cid)
            if found is not None:
                found.muted = muted

    def bind(self, slot: int, sid: str, identity: str, source: int) -> None:
        with self._lock:
            self._slots[slot] = sid
            self._tracks[sid] = (identity, source)

    def unbind(self, slot: int, sid: str) -> None:
        """Slot `slot` no longer carries `sid`: its track streams end."""
        with self._lock:
            if self._slots.get(slot) == sid:
                del self._slots[slot]
            self._tracks.pop(sid, None)
            ended = self._consumers.pop(("track", sid), [])
        for consumer in ended:
            consumer.queue.close()

    def participant_left(self, identity: str) -> None:
        with self._lock:
            keys = [k for k in self._consumers if k[0] == "participant" and k[1] == identity]
            ended = [c for k in keys for c in self._consumers.pop(k)]
        for consumer in ended:
            consumer.queue.close()

    def close(self) -> None:
        """The session ended: every stream ends, nothing is sent any more."""
        with self._lock:
            self._closed = True
            ended = [c for consumers in self._consumers.values() for c in consumers]
            self._consumers.clear()
            self._sources.clear()
            self._slots.clear()
            self._tracks.clear()
        for consumer in ended:
            consumer.queue.close()


_CODECS = {VideoCodec.VP8: "vp8", VideoCodec.H264: "h264"}


def _source(track: LocalTrack, options: TrackPublishOptions) -> core.TrackSource:
    """The publication's source: the options', else the kind's usual one."""
    if options.source is None:
        if isinstance(track, LocalAudioTrack):
            return core.TrackSource.MICROPHONE
        screen = track.source.is_screencast
        return core.TrackSource.SCREEN_SHARE if screen else core.TrackSource.CAMERA
    if isinstance(options.source, bool) or not isinstance(options.source, int):
        raise TypeError("publish_track: TrackPublishOptions.source must be a TrackSource")
    try:
        return core.TrackSource(int(options.source))
    except ValueError:
        raise ValueError(f"publish_track: unknown source {options.source!r}") from None


def _video_options(options: TrackPublishOptions) -> tuple[str, VideoEncoding]:
    """(the core's codec name, the encoding) of a video publish, checked."""
    codec = options.video_codec
    if codec is None:
        name = ""
    elif isinstance(codec, bool) or not isinstance(codec, int):
        raise TypeError("publish_track: video_codec must be a VideoCodec")
    elif codec not in _CODECS:
        raise ValueError(
            f"publish_track: aiortc encodes VP8 and H264 only, not video codec {codec!r}"
        )
    else:
        name = _CODECS[VideoCodec(codec)]
    encoding = options.video_encoding or VideoEncoding()
    if not isinstance(encoding, VideoEncoding):
        raise TypeError("publish_track: video_encoding must be a VideoEncoding")
    bitrate, fps = encoding.max_bitrate, encoding.max_framerate
    if isinstance(bitrate, bool) or not isinstance(bitrate, int) or bitrate < 0:
        raise ValueError(f"publish_track: max_bitrate must be a non-negative int: {bitrate!r}")
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 <= fps < 1000:
        raise ValueError(f"publish_track: max_framerate must be 0 to 1000: {fps!r}")
    if not isinstance(options.simulcast, bool):
        raise TypeError("publish_track: simulcast must be a bool")
    return name, encoding


@attrs.define(eq=False)
@plain_repr
class _Publishing:
    done: Latch = attrs.field(factory=Latch)
    publication: LocalPublication | None = None
    failure: PublishTrackError | None = None


class Media:
    """The session's media tracks (see the module docstring). Also the tracks' `Controls`."""

    def __init__(self, session: Session) -> None:
        self._session = session
        config = session.config
        self.router = MediaRouter(config.audio_stream_capacity, config.video_stream_capacity)
        self._publishing: dict[str, _Publishing] = {}

    # -- verbs (on the session's loop) --------------------------------------------------------

    async def publish_track(
        self, track: LocalTrack, options: TrackPublishOptions | None
    ) -> LocalPublication:
        if not isinstance(track, LocalAudioTrack | LocalVideoTrack):
            raise TypeError(
                "publish_track: expected a LocalAudioTrack or a LocalVideoTrack, not "
                f"{type(track).__name__}"
            )
        options = options or TrackPublishOptions()
        if not isinstance(options, TrackPublishOptions):
            raise TypeError("publish_track: options must be a TrackPublishOptions")
        if track._cid:
            raise ValueError(f"publish_track: the track {track.name!r} is already published")
        source = _source(track, options)
        pump, conn = self._session.live("publish_track")
        if isinstance(track, LocalAudioTrack):
            cid = pump.call(
                conn.publish_track,
                core.TrackKind.AUDIO,
                name=track.name,
                now=pump.now(),
                source=source,
                muted=track.muted,
                stream=options.stream,
                stereo=track.source.num_channels == 2,
            )
            self.router.add_source(cid, track.source.queue, track.muted)
        else:
            codec, encoding = _video_options(options)
            cid = pump.call(
                conn.publish_track,
                core.TrackKind.VIDEO,
                name=track.name,
                now=pump.now(),
                source=source,
                muted=track.muted,
                stream=options.stream,
                width=track.source.width,
                height=track.source.height,
                video_codec=codec,
                max_bitrate=encoding.max_bitrate,
            )
            self.router.add_source(
                cid, track.source.queue, track.muted, float(encoding.max_framerate)
            )
        waiter = self._publishing[cid] = _Publishing()
        self._session.model.tracks.tracks[cid] = track
        track._cid, track._controls = cid, self
        await waiter.done.wait()
        if waiter.failure is not None:
            raise waiter.failure
        assert waiter.publication is not None
        return waiter.publication

    async def unpublish_track(self, track_sid: str) -> None:
        found = self._session.model.tracks.local_by_sid(track_sid)
        if found is None:
            raise UnpublishTrackError(
                f"unpublish_track: no track of ours has the sid {track_sid!r}"
            )
        pump, conn = self._session.live("unpublish_track")
        pump.call(conn.unpublish_track, found[0], now=pump.now())

    def set_permissions(
        self, allow_all_participants: bool, permissions: Sequence[ParticipantTrackPermission]
    ) -> None:
        pump, conn = self._session.live("set_track_subscription_permissions")
        pump.call(
            conn.set_track_subscription_permissions,
            allow_all_participants=allow_all_participants,
            participant_permissions=list(permissions),
            now=pump.now(),
        )

    # -- Controls (any thread) -------------------------------------------------------------------

    def set_muted(self, cid: str, muted: bool) -> None:
        def run() -> None:
            pump, conn = self._session.live("mute")
            if cid in conn.tracks.local_cids:
                pump.call(conn.set_track_muted, cid, muted, now=pump.now())

        self._session.call_soon(run)

    def set_subscribed(self, sid: str, subscribed: bool) -> None:
        def run() -> None:
            pump, conn = self._session.live("set_subscribed")
            pump.call(conn.set_track_subscribed, sid, subscribed, now=pump.now())

        self._session.call_soon(run)

    def update_settings(self, sid: str, settings: dict[str, Any]) -> None:
        def run() -> None:
            pump, conn = self._session.live("update_track_settings")
            pump.call(conn.update_track_settings, sid, now=pump.now(), **settings)

        self._session.call_soon(run)

    # -- the core's events ------------------------------------------------------------------------

    def before(self, event: ev.Event) -> None:
        """Route by what the core decided, before the room model emits it."""
        router = self.router
        match event:
            case ev.TrackSubscribed():
                info = event.info
                router.bind(event.slot, info.sid, event.participant_identity, int(info.source))
            case ev.TrackUnsubscribed():
                router.unbind(event.slot, event.sid)
            case ev.LocalTrackRepublishing():
                router.rename_source(event.previous_cid, event.cid)
                self._session.model.tracks._rekey(event.previous_cid, event.cid)
            case ev.LocalTrackMuted() | ev.LocalTrackUnmuted():
                router.set_muted(event.cid, isinstance(event, ev.LocalTrackMuted))
            case ev.LocalTrackUnpublished():
                router.remove_source(event.cid)
            case ev.ParticipantDisconnected():
                router.participant_left(event.participant.identity)
            case ev.AnswerDropped() | ev.NegotiationTimedOut() | ev.MediaSectionsLimited():
                log.info("media negotiation: %s", event)
            case ev.TrackSubscriptionFailed() | ev.LocalTrackMuteRefused():
                log.info("%s", event)
            case _:
                pass

    def after(self, event: ev.Event) -> None:
        """Resolve `publish_track` once the model has the publication."""
        match event:
            case ev.LocalTrackPublished():
                waiter = self._publishing.pop(event.cid, None)
                if waiter is not None:
                    waiter.publication = self._session.model.tracks.local.get(event.cid)
                    waiter.done.set()
            case ev.LocalTrackPublishFailed():
                self.router.remove_source(event.cid)
                self._fail(event.cid, event.exception())
            case _:
                pass

    def _fail(self, cid: str, failure: PublishTrackError) -> None:
        waiter = self._publishing.pop(cid, None)
        if waiter is not None:
            waiter.failure = failure
            waiter.done.set()
        track = self._session.model.tracks.tracks.pop(cid, None)
        if track is not None:
            track._cid = ""

    def ended(self, message: str) -> None:
        """The session ended: streams end, publishes in flight fail."""
        self.router.close()
        for cid in list(self._publishing):
            reason = core.PublishTrackErrorReason.DISCONNECTED
            self._fail(cid, PublishTrackError(reason, f"the session ended: {message}"))
