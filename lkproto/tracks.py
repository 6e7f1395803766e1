"""Media tracks (audio and video) in single-PC `/rtc/v1` mode. Sans-I/O, usable alone.

Theory of operation (protocol-reference-2 section 3; the media spike's findings F1-F8, whose
letters are cited below; rust-sdks `local_participant.rs`, client-sdk-js `RTCEngine.ts`,
livekit-server 1.13.5 `participant.go`, `transport.go`). A `TrackManager` holds both sides of
media for one local participant and the offer/answer queue of its only peer connection.
Inputs are method calls given `now` (monotonic seconds): signal messages
(`receive_signal`), the adapter's reports (`offer_created`, `remote_description_applied`),
application verbs and the session's lifecycle. Outputs are frozen values read with
`drain()` after every input, in order: signal requests (`SendTrackSignal`), commands for
the adapter's peer connection (`AddTransceiver`, `SetTransceiverDirection`, `SetSendSource`,
`CreateTrackOffer`, `ApplyAnswer`) and events. Failures are values; `LocalProtocolError` is
raised only for a refused call, and then nothing changed.

- Publishing (F1.1, F1.2). `publish` draws the cid from the injected `id_factory` and sends
  `AddTrackRequest{cid, name, type, source, muted, stream}`: audio adds `disable_red` (aiortc
  cannot send RED) and `audio_features [TF_NO_DTX]` (plus TF_STEREO); video adds width,
  height, one `VideoLayer{HIGH}` and, given a codec, `simulcast_codecs [{codec, cid}]`. The
  server matches the RTP to the pending track by msid track id == cid (F1.3), so the adapter
  must give its send track the id `cid`. The answer is `TrackPublishedResponse{cid}`
  (`LocalTrackPublished`), or `RequestResponse` echoing `add_track` with NOT_ALLOWED (no
  canPublish or a source not allowed) or UNSUPPORTED_TYPE (`LocalTrackPublishFailed`);
  QUEUED (the same cid twice) is not a failure (F1.4). No answer within `publish_timeout`
  fails it (TIMEOUT); a late success is then only reported: no transceiver ever carries that
  cid, so the server never publishes it. Only once accepted does the track get a send slot
  and an offer (F1.2).
- Slots. A slot is an abstract transceiver, numbered by this manager from 1 and never
  reused; the adapter maps it to its aiortc transceiver. Slots are never removed while the
  peer connection lives: aiortc keeps every m-line in every later offer (F8.9); a full
  reconnect drops them all. A send slot idled by an unpublish is reused by the next
  publication of the same kind (and video codec) (F4.6), but only once an applied answer has
  negotiated it `inactive`: a send slot switched from one cid to another without that round
  would keep its SSRC, which the server already bound to the old track. Receive slots are
  added only when the server asks (F3.3: never pre-add), and stay `recvonly`; the server
  reuses them (F4.7). A `MediaSectionsRequirement` counts the server's transceivers that
  still lack an m-line: new ones as they come, and all of them again after each answer
  (livekit-server 1.13.5 `transport.go` `createAndSendAnswer`). So a requirement is met
  first by our receive slots the server has not yet seen in an answered offer (added for an
  earlier requirement while an offer was in flight) and only the rest become new slots;
  adding exactly the count asked for would leave spare m-lines that pion answers without
  SSRC (F3.3).
- Negotiation (F3.5, F3.6, F5.3). Anything that changes the SDP (a slot to add, a direction
  or a send source to change), a `MediaSectionsRequirement` of 0/0 (the server's request to
  renegotiate, F3.8) and `request_offer` make the queue dirty. With no offer in flight the
  pending transceiver commands are emitted, then `CreateTrackOffer(n)`; offer ids count
  from 1 and travel in `SessionDescription.id`, which the server echoes in the answer.
  Changes made while an offer is in flight wait for the next one. Only the answer with id
  n (or id 0, from a server that does not echo) is applied (`ApplyAnswer(n)`); any other is
  dropped and reported (`AnswerDropped`). An answer not received within
  `negotiation_timeout`, or an offer outstanding when the signal was resumed (its answer
  was lost), is abandoned and a new offer with a new id goes out.
- Subscribing (F2.1-F2.6, F4.7, F4.9). Remote publications come from `ParticipantInfo.tracks`
  in the join and in every `ParticipantUpdate` (diffs: `TrackPublished`, `TrackUnpublished`,
  `TrackMuted`/`TrackUnmuted`, F4.3). With `auto_subscribe` (the official default) the
  server subscribes us to everything; `set_subscribed` sends
  `UpdateSubscription{track_sids, subscribe, participant_tracks}` (F2.4). Media identity is
  the slot's mid looked up in the `mid_to_track_id` of the latest answer whose application
  the adapter confirmed: a receive slot is bound to that sid, and re-bound or unbound by
  later answers (the server reuses m-lines for other tracks, F4.7/F4.9). A bound slot whose
  sid is a known remote publication we desire is announced as `TrackSubscribed(slot)`;
  `TrackUnsubscribed(slot)` when that ends. `SubscriptionResponse` errors are reported once
  per (sid, error) (the server repeats them every 3 s, F2.6).
- Mute (F4.1, F4.2). `set_muted` sends `MuteTrackRequest` (a NOT_FOUND answer is
  `LocalTrackMuteRefused`); the server's `SignalResponse.mute` marks the publication muted
  (`LocalTrackMuted(by_server=True)`) and leaves unmuting to the application (the server
  refuses remote unmutes unless the room enables them; if it sends `muted=false`, we follow).
  `SignalResponse.track_unpublished` (server-initiated, F4.5) ends a publication; our own
  unpublish idles its slot and renegotiates, and no answer comes back (F4.4).
- Reconnects. A resume keeps everything; requests made meanwhile wait for `resumed()`, and
  `sync_state_publish_tracks`/`sync_state_subscription`/`sync_state_track_sids_disabled`
  give SyncState's fields (F5.1: every entry of `publish_tracks` carries its full TrackInfo,
  or the server falls back to a full reconnect). A full reconnect drops every slot, binding
  and the queue; each local publication is republished after the join with a NEW cid (aiortc
  ended the old send track, F5.2) and reports the new sid (`LocalTrackRepublishing`, then
  `LocalTrackRepublished`); remote publications are withdrawn and rediscovered from the new
  join, and our subscription choices, track settings and subscription permissions for sids
  that still exist are sent again.
- Bounds, all constructor arguments with documented defaults: `publish_timeout`,
  `negotiation_timeout`, `max_local_publications`, `max_receive_slots`,
  `max_slots_per_requirement`, `max_remote_tracks`, `max_remembered_subscription_errors`.

Adapter contract (aiortc, single peer connection created with `bundlePolicy=MAX_BUNDLE`,
F3.2). Carry the commands out in order, each finished before the next:

- `AddTransceiver(slot, kind, direction, source_cid, codec)`: `pc.addTransceiver(track or
  kind, direction=direction.value)` and remember slot -> transceiver. A send slot's track is
  a paced track whose `id` is `source_cid` (F1.3), whose pts never go backwards (F8.4); for
  video, apply `codec` ("vp8"/"h264", "" for aiortc's default) with `setCodecPreferences`.
  Never `pc.addTrack()` (F8.9).
- `SetSendSource(slot, source_cid, codec)`: `sender.replaceTrack(...)` with the track of
  `source_cid` (id = cid), continuing the slot's pts timeline (F4.6); None idles the sender.
- `SetTransceiverDirection(slot, direction)`: `transceiver.direction = direction.value`.
- `CreateTrackOffer(offer_id)`: `createOffer()` + `setLocalDescription()`, then report
  `offer_created(offer_id, sdp, slot_mids={slot: transceiver.mid, ...}, now=)` for every slot
  created so far; this manager sends the offer with its id.
- `ApplyAnswer(offer_id, sdp)`: `setRemoteDescription(answer)`, then re-register every
  receiver's SSRCs from the answer (F8.1), then report `remote_description_applied(offer_id,
  now=)`. Only then do bindings change: route each receive slot's frames to the sid of its
  latest `TrackSubscribed`, drop them after `TrackUnsubscribed`; never trust the aiortc
  track's id (F4.9) and drain every started receiver (F8.3).
- A failure of any of these is the session's business (`Connection` escalates to a full
  reconnect, D.8), which this manager learns through `reconnecting(full=True)`.

Composition (`Connection`'s part `lkproto/_media.py` drives it): `joined()` on every
JoinResponse, after the events reporting its participants; the track messages of every
SignalResponse (answers too: this queue owns every offer of the single peer connection, so
the data channels' first offer is `request_offer()`, called once the peer connection exists;
`joined()` itself makes no offer; an offer made outside the queue, an ICE restart or the
offer embedded in the join, is answered directly and holds requirements back meanwhile);
`request_response_received()` says whether a RequestResponse was ours;
`reconnecting(full=...)` when a resume or full reconnect begins, `resumed()` once the resume
completed (its SyncState carried the `sync_state_*` fields), `disconnected()` at the end.
`CreateTrackOffer` and `ApplyAnswer` leave the `Connection` as `commands.CreateOffer` and
`commands.SetRemoteDescription` with the offer's id; the adapter reports back through
`Connection.local_description_created(offer_id=, slot_mids=)` and
`Connection.remote_description_applied`. The state tables live in `lkproto/_state.py` (drawn
in docs/state.md).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, TypeVar, cast

import attrs

from lkproto._outputs import Outputs, is_seconds, latest_per_identity, require_now
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto._repr import plain_repr
from lkproto._state import (
    LOCAL_TRACK_TRANSITIONS,
    NEGOTIATION_TRANSITIONS,
    SESSION_TRANSITIONS,
    LocalTrackInput,
    LocalTrackState,
    NegotiationInput,
    NegotiationState,
    SessionInput,
    SessionPhase,
    advance,
)
from lkproto._state import check_track_verb as check_verb
from lkproto.errors import LkProtocolError, LocalProtocolError

__all__ = [
    "DEFAULT_MAX_LOCAL_PUBLICATIONS",
    "DEFAULT_MAX_RECEIVE_SLOTS",
    "DEFAULT_MAX_REMEMBERED_SUBSCRIPTION_ERRORS",
    "DEFAULT_MAX_REMOTE_TRACKS",
    "DEFAULT_MAX_SLOTS_PER_REQUIREMENT",
    "DEFAULT_NEGOTIATION_TIMEOUT",
    "DEFAULT_PUBLISH_TIMEOUT",
    "VIDEO_CODECS",
    "AddTransceiver",
    "AnswerDropped",
    "ApplyAnswer",
    "AudioFeature",
    "CreateTrackOffer",
    "Direction",
    "LocalTrackInput",
    "LocalTrackMuteRefused",
    "LocalTrackMuted",
    "LocalTrackPublishFailed",
    "LocalTrackPublished",
    "LocalTrackRepublished",
    "LocalTrackRepublishing",
    "LocalTrackState",
    "LocalTrackSubscribed",
    "LocalTrackUnmuted",
    "LocalTrackUnpublished",
    "MediaSectionsLimited",
    "NegotiationState",
    "NegotiationTimedOut",
    "ParticipantTrackPermission",
    "PublishTrackError",
    "PublishTrackErrorReason",
    "SendTrackSignal",
    "SessionPhase",
    "SetSendSource",
    "SetTransceiverDirection",
    "SlotInfo",
    "SlotRole",
    "StreamState",
    "SubscriptionErrorReason",
    "TrackKind",
    "TrackManager",
    "TrackMuted",
    "TrackOutput",
    "TrackPublicationInfo",
    "TrackPublished",
    "TrackSignalIgnored",
    "TrackSource",
    "TrackStreamStateChanged",
    "TrackSubscribed",
    "TrackSubscriptionFailed",
    "TrackSubscriptionPermissionChanged",
    "TrackUnmuted",
    "TrackUnpublished",
    "TrackUnsubscribed",
    "UnpublishReason",
    "VideoQuality",
]

DEFAULT_PUBLISH_TIMEOUT: Final = 10.0
DEFAULT_NEGOTIATION_TIMEOUT: Final = 15.0
DEFAULT_MAX_LOCAL_PUBLICATIONS: Final = 16
DEFAULT_MAX_RECEIVE_SLOTS: Final = 64
DEFAULT_MAX_SLOTS_PER_REQUIREMENT: Final = 16
DEFAULT_MAX_REMOTE_TRACKS: Final = 4096
DEFAULT_MAX_REMEMBERED_SUBSCRIPTION_ERRORS: Final = 256
#: The video codecs aiortc can encode (F6.1); "" leaves the choice to aiortc (VP8 first).
VIDEO_CODECS: Final = frozenset({"", "vp8", "h264"})
_MAX_DIMENSION = 16384  # a sanity bound on width and height, far above any real camera
# livekit's VideoPresets (client-sdk-js `options.ts`, rust-sdks `options.rs`): (pixels, bps).
# A video layer's bitrate, unless given, is that of the first preset at least as large.
_PRESETS = (
    (160 * 90, 90_000),
    (320 * 180, 160_000),
    (384 * 216, 180_000),
    (640 * 360, 450_000),
    (960 * 540, 800_000),
    (1280 * 720, 1_700_000),
    (1920 * 1080, 3_000_000),
    (2560 * 1440, 5_000_000),
    (3840 * 2160, 8_000_000),
)
_DISCONNECTED = int(ppb.ParticipantInfo.DISCONNECTED)
_QUEUED = int(spb.RequestResponse.QUEUED)
_OK = int(spb.RequestResponse.OK)
_PUBLISH, _NEGOTIATION = "publish", "negotiation"


# -- enums ------------------------------------------------------------------------------------


class TrackKind(enum.IntEnum):
    """`TrackType` (livekit_models.proto); DATA tracks are not media."""

    AUDIO = 0
    VIDEO = 1


class TrackSource(enum.IntEnum):
    """`TrackSource` (livekit.rtc `TrackSource.SOURCE_*`)."""

    UNKNOWN = 0
    CAMERA = 1
    MICROPHONE = 2
    SCREEN_SHARE = 3
    SCREEN_SHARE_AUDIO = 4


_SOURCES = {
    TrackKind.AUDIO: (TrackSource.MICROPHONE, TrackSource.SCREEN_SHARE_AUDIO, TrackSource.UNKNOWN),
    TrackKind.VIDEO: (TrackSource.CAMERA, TrackSource.SCREEN_SHARE, TrackSource.UNKNOWN),
}


class AudioFeature(enum.IntEnum):
    """`AudioTrackFeature` (TF_*)."""

    STEREO = 0
    NO_DTX = 1
    AUTO_GAIN_CONTROL = 2
    ECHO_CANCELLATION = 3
    NOISE_SUPPRESSION = 4
    ENHANCED_NOISE_CANCELLATION = 5
    PRECONNECT_BUFFER = 6


class VideoQuality(enum.IntEnum):
    """`VideoQuality` (livekit.rtc `VideoQuality`)."""

    LOW = 0
    MEDIUM = 1
    HIGH = 2
    OFF = 3


class StreamState(enum.IntEnum):
    """`StreamState`: whether the server forwards a subscribed track now."""

    ACTIVE = 0
    PAUSED = 1


class SubscriptionErrorReason(enum.IntEnum):
    """`SubscriptionError` (livekit.rtc `track_subscription_failed`'s error)."""

    UNKNOWN = 0  #: e.g. the track was never bound to one of our m-lines (F2.6)
    CODEC_UNSUPPORTED = 1
    TRACK_NOT_FOUND = 2  #: also: `set_subscribed` for a track this manager does not know


class Direction(enum.Enum):
    """A transceiver direction, as aiortc spells it."""

    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"


class SlotRole(enum.Enum):
    """What a slot is for."""

    SEND = "send"  #: carries one of our publications (or idles, waiting for reuse)
    RECV = "recv"  #: added for a MediaSectionsRequirement; the server binds tracks to it


class PublishTrackErrorReason(enum.IntEnum):
    """Why a publish failed: the server's `RequestResponse.Reason` values, then ours (100+)."""

    NOT_FOUND = 1
    NOT_ALLOWED = 2  #: no canPublish, or canPublishSources excludes the source
    LIMIT_EXCEEDED = 3
    UNSUPPORTED_TYPE = 5  #: a track type the server does not publish
    UNCLASSIFIED_ERROR = 6  #: also any reason code this client does not know
    TIMEOUT = 100  #: no answer within the publish timeout
    CANCELLED = 101  #: `unpublish` before the answer
    DISCONNECTED = 102  #: the session ended first


_SERVER_REASONS = frozenset(r.value for r in PublishTrackErrorReason if r.value < 100)


class PublishTrackError(LkProtocolError):
    """A publish failed (livekit.rtc raises from `publish_track`)."""

    def __init__(self, reason: PublishTrackErrorReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class UnpublishReason(enum.Enum):
    """Why one of our published tracks ended."""

    LOCAL = "local"  #: we unpublished it
    SERVER = "server"  #: SignalResponse.track_unpublished, e.g. canPublish revoked (F4.5)
    REPUBLISH_FAILED = "republish_failed"  #: refused or unanswered after a full reconnect
    DISCONNECTED = "disconnected"  #: the session ended


# -- values -----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
@plain_repr
class TrackPublicationInfo:
    """What the server says about a publication (a `TrackInfo`, livekit.rtc's
    `TrackPublication` properties)."""

    sid: str
    name: str
    kind: TrackKind
    source: TrackSource
    muted: bool = False
    mime_type: str = ""
    width: int = 0
    height: int = 0
    simulcasted: bool = False
    stream: str = ""
    mid: str = ""
    audio_features: tuple[int, ...] = ()

    @classmethod
    def from_pb(cls, info: tpb.TrackInfo, kind: TrackKind | None = None) -> TrackPublicationInfo:
        """`kind` overrides `info.type`, which must otherwise be AUDIO or VIDEO."""
        source = int(info.source)
        return cls(
            sid=info.sid,
            name=info.name,
            kind=TrackKind(int(info.type)) if kind is None else kind,
            source=TrackSource(source) if source in _SOURCE_VALUES else TrackSource.UNKNOWN,
            muted=info.muted,
            mime_type=info.mime_type,
            width=info.width,
            height=info.height,
            simulcasted=info.simulcast,
            stream=info.stream,
            mid=info.mid,
            audio_features=tuple(int(f) for f in info.audio_features),
        )


_SOURCE_VALUES = frozenset(int(s) for s in TrackSource)


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen(kw_only=True)
@plain_repr
class ParticipantTrackPermission:
    """Who may subscribe to which of our tracks (livekit.rtc `ParticipantTrackPermission`)."""

    participant_identity: str
    allow_all: bool = False
    allowed_track_sids: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)


@attrs.frozen(kw_only=True)
@plain_repr
class SlotInfo:
    """A slot as it stands (for the adapter's bookkeeping, diagnostics and tests)."""

    slot: int
    kind: TrackKind
    role: SlotRole
    direction: Direction  #: the direction wanted now (offered by the next offer if changed)
    mid: str  #: "" until an offer containing the slot was created
    source_cid: str | None  #: send slots: the publication it carries
    bound_sid: str  #: receive slots: the sid the latest applied answer maps its mid to


# -- outputs: signal and commands ---------------------------------------------------------------


@attrs.frozen(kw_only=True)
@plain_repr
class SendTrackSignal:
    """Send `request` on the signal WebSocket (`data` is its serialized form)."""

    request: spb.SignalRequest = attrs.field(hash=False)  # protobuf messages are unhashable

    @property
    def data(self) -> bytes:
        """The serialized `SignalRequest`, ready for the WebSocket."""
        return self.request.SerializeToString(deterministic=True)


@attrs.frozen(kw_only=True)
@plain_repr
class AddTransceiver:
    """Add a transceiver for `slot` (see the module docstring's adapter contract)."""

    slot: int
    kind: TrackKind
    direction: Direction
    source_cid: str | None = None
    codec: str = ""


@attrs.frozen(kw_only=True)
@plain_repr
class SetTransceiverDirection:
    """Set the direction of `slot`'s transceiver (offered by the next offer)."""

    slot: int
    direction: Direction


@attrs.frozen(kw_only=True)
@plain_repr
class SetSendSource:
    """Make `slot`'s sender carry the track of `source_cid` (None: nothing)."""

    slot: int
    source_cid: str | None
    codec: str = ""


@attrs.frozen(kw_only=True)
@plain_repr
class CreateTrackOffer:
    """Create and set an offer, then report `offer_created(offer_id, ...)` (a `Connection`
    sends it as `commands.CreateOffer(target=PUBLISHER, offer_id=...)`)."""

    offer_id: int


@attrs.frozen(kw_only=True)
@plain_repr
class ApplyAnswer:
    """Set the answer to offer `offer_id`, then report `remote_description_applied`."""

    offer_id: int
    sdp: str = attrs.field(repr=lambda s: f"<{len(s)} chars>")


# -- outputs: events ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
@plain_repr
class LocalTrackPublished:
    """The server accepted our publication `cid` (livekit.rtc `local_track_published`)."""

    cid: str
    info: TrackPublicationInfo


@attrs.frozen(kw_only=True)
@plain_repr
class LocalTrackPublishFailed:
    """Our publication `cid` failed before it was ever accepted; `cid` is not used again."""

    cid: str
    name: str
    reason: PublishTrackErrorReason
    message: str

    def exception(self) -> PublishTrackError:
        """The `PublishTrackError` an adapter raises for this failure."""
        return PublishTrackError(self.reason, self.message)


@attrs.frozen(kw_only=True)
@plain_repr
class LocalTrackRepublishing:
    """After a full reconnect our publication is requested again under a new cid: from now
    on it is `cid` (the adapter makes a new send track with that id, F5.2)."""

    previous_cid: str
    cid: str


@attrs.frozen(kw_only=True)
@plain_repr
class LocalTrackRepublished:
    """The server accepted our republished track, under a new sid."""

    cid: str
    previous_sid: str
    info: TrackPublicationInfo


@attrs.frozen(kw_only=True)
@plain_repr
class LocalTrackUnpublished:
    """Our published track ended (livekit.rtc `local_track_unpublished`)."""

    cid: str
    sid: str
    reason: UnpublishReason
    message: str = ""


@attrs.frozen(kw_only=True)
@plain_repr
class LocalTrackMuted:
    """Our track `cid` was muted: by us (`set_muted`), or by the server (an admin or API
    mute, F4.2)."""

    cid: str
    sid: str
    by_server: bool = False  #: SignalResponse.mute (an admin or API mute, F4.2)


@attrs.frozen(kw_only=True)
@plain_repr
class LocalTrackUnmuted:
    """Our track `cid` was unmuted, by us or by the server."""

    cid: str
    sid: str
    by_server: bool = False


@attrs.frozen(kw_only=True)
@plain_repr
class LocalTrackMuteRefused:
    """The server refused our `MuteTrackRequest` (NOT_FOUND: it does not know the sid)."""

    cid: str
    sid: str
    muted: bool
    reason: int
    message: str = ""


@attrs.frozen(kw_only=True)
@plain_repr
class LocalTrackSubscribed:
    """Someone subscribed to our track for the first time (F4.11,
    livekit.rtc `local_track_subscribed`)."""

    cid: str
    sid: str


@attrs.frozen(kw_only=True)
@plain_repr
class TrackPublished:
    """A remote publication was discovered (also those present at the join)."""

    participant_identity: str
    participant_sid: str
    info: TrackPublicationInfo


@attrs.frozen(kw_only=True)
@plain_repr
class TrackUnpublished:
    """A remote publication is gone (unpublished, its publisher left, or our session
    restarted or ended)."""

    participant_identity: str
    sid: str


@attrs.frozen(kw_only=True)
@plain_repr
class TrackMuted:
    """A remote publication was muted (its `TrackInfo.muted`, F4.3)."""

    participant_identity: str
    sid: str


@attrs.frozen(kw_only=True)
@plain_repr
class TrackUnmuted:
    """A remote publication was unmuted."""

    participant_identity: str
    sid: str


@attrs.frozen(kw_only=True)
@plain_repr
class TrackSubscribed:
    """Media of remote track `info.sid` now arrives on receive slot `slot`."""

    participant_identity: str
    slot: int
    info: TrackPublicationInfo


@attrs.frozen(kw_only=True)
@plain_repr
class TrackUnsubscribed:
    """Receive slot `slot` no longer carries remote track `sid`: drop what it delivers."""

    participant_identity: str
    sid: str
    slot: int


@attrs.frozen(kw_only=True)
@plain_repr
class TrackSubscriptionFailed:
    """A subscription failed (livekit.rtc `track_subscription_failed`); reported once per
    (sid, error) until the track is subscribed or the wish changes."""

    participant_identity: str  #: "" if the track is not known
    sid: str
    error: SubscriptionErrorReason
    message: str = ""


@attrs.frozen(kw_only=True)
@plain_repr
class TrackSubscriptionPermissionChanged:
    """The publisher allowed or denied our subscription to `sid` (only changes are
    reported; a track starts allowed)."""

    participant_identity: str
    sid: str
    allowed: bool


@attrs.frozen(kw_only=True)
@plain_repr
class TrackStreamStateChanged:
    """The server started or paused forwarding a subscribed remote track."""

    participant_identity: str
    sid: str
    state: StreamState


@attrs.frozen(kw_only=True)
@plain_repr
class AnswerDropped:
    """An answer that is not for the offer in flight was dropped (F3.5, F5.3)."""

    answer_id: int
    outstanding_offer_id: int | None


@attrs.frozen(kw_only=True)
@plain_repr
class NegotiationTimedOut:
    """Offer `offer_id` was not answered in time; a new offer replaces it."""

    offer_id: int


@attrs.frozen(kw_only=True)
@plain_repr
class MediaSectionsLimited:
    """A `MediaSectionsRequirement` needed more new receive slots than the bounds allow; the
    rest were not added. The server asks again after each answer while its tracks lack an
    m-line; until then they fail to subscribe (`TrackSubscriptionFailed`, F2.6)."""

    needed_audios: int
    needed_videos: int
    added_audios: int
    added_videos: int


@attrs.frozen(kw_only=True)
@plain_repr
class TrackSignalIgnored:
    """A track-related message (or part of one), or a late adapter report, changed nothing.

    `reason`: "unknown-cid" (a publish answer for no publication of ours: never ours, or
    one that already failed, timed out or ended), "unexpected" (a publish answer for a
    publication that awaits none), "invalid-info" (a TrackInfo without sid),
    "unknown-sid" (a message about a track sid we do not know), "conflict" (a sid already
    listed by another participant), "too-many-tracks" (over `max_remote_tracks`),
    "unknown-mid" (an answer maps a mid none of our receive slots has), "duplicate-sid" (an
    answer maps one sid to two mids), "stale-offer"/"stale-apply" (an adapter report for an
    offer that is no longer in flight), "unknown-state" (a stream state this client does not
    know).
    """

    reason: str
    detail: str


TrackOutput = (
    SendTrackSignal
    | AddTransceiver
    | SetTransceiverDirection
    | SetSendSource
    | CreateTrackOffer
    | ApplyAnswer
    | LocalTrackPublished
    | LocalTrackPublishFailed
    | LocalTrackRepublishing
    | LocalTrackRepublished
    | LocalTrackUnpublished
    | LocalTrackMuted
    | LocalTrackUnmuted
    | LocalTrackMuteRefused
    | LocalTrackSubscribed
    | TrackPublished
    | TrackUnpublished
    | TrackMuted
    | TrackUnmuted
    | TrackSubscribed
    | TrackUnsubscribed
    | TrackSubscriptionFailed
    | TrackSubscriptionPermissionChanged
    | TrackStreamStateChanged
    | AnswerDropped
    | NegotiationTimedOut
    | MediaSectionsLimited
    | TrackSignalIgnored
)


# -- internal state -----------------------------------------------------------------------------


@attrs.frozen
@plain_repr
class _Options:
    kind: TrackKind
    name: str
    source: TrackSource
    stream: str
    width: int
    height: int
    codec: str
    bitrate: int
    stereo: bool


@attrs.define(eq=False)
@plain_repr
class _Local:
    key: int  # stable for the publication's life (its cid changes after a full reconnect)
    cid: str
    options: _Options
    muted: bool
    state: LocalTrackState = LocalTrackState.PENDING
    requested: bool = True  # an AddTrackRequest of this session awaits its answer
    sid: str = ""
    info: tpb.TrackInfo | None = None
    slot: int | None = None
    announced_subscribed: bool = False


@attrs.define(eq=False)
@plain_repr
class _Slot:
    id: int
    kind: TrackKind
    role: SlotRole
    codec: str
    direction: Direction  # wanted
    source: str | None = None  # wanted (send slots)
    created: bool = False  # AddTransceiver was emitted
    flushed_direction: Direction | None = None  # what the adapter was last told
    flushed_source: str | None = None
    negotiated: Direction | None = None  # as offered in the latest applied offer
    first_offer: int = 0  # the first offer that carried it (0: none yet)
    mid: str = ""
    bound_sid: str = ""

    def info(self) -> SlotInfo:
        return SlotInfo(
            slot=self.id,
            kind=self.kind,
            role=self.role,
            direction=self.direction,
            mid=self.mid,
            source_cid=self.source,
            bound_sid=self.bound_sid,
        )

    def needs_flush(self) -> bool:
        if not self.created:
            return self.direction is not Direction.INACTIVE
        return self.flushed_direction is not self.direction or self.flushed_source != self.source

    def reusable(self) -> bool:
        """Whether this idle send slot (no source) may carry a new publication: the server
        binds no track to it any more (see the module docstring)."""
        if not self.created:
            return True
        return (
            self.negotiated is Direction.INACTIVE and self.flushed_direction is Direction.INACTIVE
        )


@attrs.define(eq=False)
@plain_repr
class _Remote:
    participant_identity: str
    participant_sid: str
    info: TrackPublicationInfo
    allowed: bool = True
    stream_state: StreamState | None = None


@attrs.frozen
@plain_repr
class _Settings:
    """Our UpdateTrackSettings for one remote track; the default sends nothing."""

    enabled: bool = True
    width: int = 0
    height: int = 0
    quality: VideoQuality | None = None
    fps: int = 0


_DEFAULT_SETTINGS = _Settings()


def _bound(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"TrackManager.{name} must be an int of at least 1")
    return value


def _require(value: object, kind: type, what: str, call: str) -> None:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise LocalProtocolError(
            f"{call}: {what} must be {kind.__name__}, not {type(value).__name__}", call=call
        )


def _require_text(value: object, what: str, call: str) -> str:
    """A str protobuf can carry (valid Unicode: no lone surrogates)."""
    _require(value, str, what, call)
    text = cast(str, value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"{call}: {what} is not valid Unicode", call=call) from exc
    return text


def _require_count(value: object, what: str, call: str, maximum: int) -> int:
    _require(value, int, what, call)
    number = cast(int, value)
    if not 0 <= number <= maximum:
        raise LocalProtocolError(f"{call}: {what} must be in 0..{maximum}: {number}", call=call)
    return number


def _preset_bitrate(width: int, height: int) -> int:
    area = width * height
    return next((bps for pixels, bps in _PRESETS if pixels >= area), _PRESETS[-1][1])


_M = TypeVar("_M", tpb.TrackInfo, spb.SessionDescription)


def _copy(message: _M) -> _M:
    copy = type(message)()
    copy.CopyFrom(message)
    return copy


# -- the manager --------------------------------------------------------------------------------


class TrackManager(Outputs[TrackOutput]):
    """Audio and video publications and subscriptions of one local participant, and the
    offer/answer queue of its single peer connection (see the module docstring).

    After every call, `drain()` the outputs and carry them out in order, then re-arm from
    `get_timer()`. Not thread-safe.
    """

    def __init__(
        self,
        *,
        id_factory: Callable[[], str],
        auto_subscribe: bool = True,
        publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT,
        negotiation_timeout: float = DEFAULT_NEGOTIATION_TIMEOUT,
        max_local_publications: int = DEFAULT_MAX_LOCAL_PUBLICATIONS,
        max_receive_slots: int = DEFAULT_MAX_RECEIVE_SLOTS,
        max_slots_per_requirement: int = DEFAULT_MAX_SLOTS_PER_REQUIREMENT,
        max_remote_tracks: int = DEFAULT_MAX_REMOTE_TRACKS,
        max_remembered_subscription_errors: int = DEFAULT_MAX_REMEMBERED_SUBSCRIPTION_ERRORS,
    ) -> None:
        """Args:
        id_factory: new cids (the adapter's send track ids, F1.3); LiveKit SDKs use UUID v4
            strings. Each must be a non-empty str not used by another publication.
        auto_subscribe: what the join asked for in `ConnectionSettings.auto_subscribe`
            (True: livekit.rtc `RoomOptions.auto_subscribe`'s default); it decides what
            `set_subscribed` and `sync_state_subscription` send.
        publish_timeout: seconds to wait for the answer to an AddTrackRequest (10, Rust
            `TRACK_PUBLISH_TIMEOUT`).
        negotiation_timeout: seconds to wait for the answer to an offer before a new offer
            replaces it (15, client-sdk-js `peerConnectionTimeout`).
        max_local_publications: our publications pending or published at once (16, ours:
            aiortc falls behind between 8 and 16 paced audio tracks per process, F7).
        max_receive_slots: receive slots on the peer connection, ever (64, ours: every
            started aiortc receiver keeps a decoder thread until the connection closes, F8.7;
            the server reuses slots, so this is the peak of simultaneous subscriptions).
        max_slots_per_requirement: receive slots one MediaSectionsRequirement may add (16,
            ours: the counts come from the server; more are refused and reported).
        max_remote_tracks: remote publications tracked at once (4096, ours); more are
            ignored and reported.
        max_remembered_subscription_errors: (sid, error) pairs remembered to report each
            SubscriptionResponse error once (256, ours; the server repeats them every 3 s,
            F2.6).

        Raises ValueError for a timeout that is not a positive number or a bound below 1.
        """
        if not callable(id_factory):
            raise ValueError("TrackManager.id_factory must be callable")
        if not isinstance(auto_subscribe, bool):
            raise ValueError("TrackManager.auto_subscribe must be a bool")
        for name, value in (
            ("publish_timeout", publish_timeout),
            ("negotiation_timeout", negotiation_timeout),
        ):
            if not is_seconds(value):
                raise ValueError(f"TrackManager.{name} must be a positive number of seconds")
        self._id_factory = id_factory
        self.auto_subscribe = auto_subscribe
        self.publish_timeout = float(publish_timeout)
        self.negotiation_timeout = float(negotiation_timeout)
        self.max_local_publications = _bound("max_local_publications", max_local_publications)
        self.max_receive_slots = _bound("max_receive_slots", max_receive_slots)
        self.max_slots_per_requirement = _bound(
            "max_slots_per_requirement", max_slots_per_requirement
        )
        self.max_remote_tracks = _bound("max_remote_tracks", max_remote_tracks)
        self.max_remembered_subscription_errors = _bound(
            "max_remembered_subscription_errors", max_remembered_subscription_errors
        )
        super().__init__(SendTrackSignal)
        self.phase = SessionPhase.IDLE
        self.local_identity = ""
        self._keys = 0
        self._local: dict[int, _Local] = {}  # key -> publication, in publish order
        self._slots: dict[int, _Slot] = {}
        self._last_slot = 0
        self._negotiation = NegotiationState.IDLE
        self._offer_id = 0  # the offer in flight, or the last one
        self._forced = False  # an offer is wanted even without a slot change
        self._offer_lost = False  # the offer in flight was sent before a resume
        self._offered: dict[int, Direction] = {}  # slot -> direction in the offer in flight
        self._answer: dict[str, str] = {}  # mid_to_track_id of the answer being applied
        self._applied: dict[str, str] = {}  # mid_to_track_id of the last applied answer
        # Receive slots the server has not seen yet and no requirement has claimed since its
        # last answer: they will absorb that many of its next requests (see _on_answer).
        self._credit = dict.fromkeys(TrackKind, 0)
        self._remote: dict[str, _Remote] = {}
        self._participants: dict[str, tuple[str, int]] = {}  # identity -> (sid, version)
        self._announced: dict[str, tuple[int, str]] = {}  # sid -> (slot, identity)
        self._desired: dict[str, bool] = {}  # sid -> our wish, where it differs from auto
        self._settings: dict[str, _Settings] = {}  # sid -> non-default settings
        self._errors: OrderedDict[str, int] = OrderedDict()  # sid -> error reported
        self._permissions: spb.SignalRequest | None = None  # our last SubscriptionPermission

    # -- time (`drain()` and `get_timer()` are `Outputs`') -----------------------------------

    def handle_timer(self, now: float) -> None:
        """Fire every deadline due at `now`: publish and negotiation timeouts. Early or
        repeated calls are harmless."""
        for key in self._deadlines.pop_due(now):
            kind, ident = cast(tuple[str, int], key)
            if kind == _PUBLISH:
                local = self._local[ident]
                message = f"no answer from the server within {self.publish_timeout:g}s"
                self._fail(local, LocalTrackInput.TIMED_OUT, _Reason.TIMEOUT, message)
            else:
                self._negotiation = advance(
                    NEGOTIATION_TRANSITIONS, self._negotiation, NegotiationInput.ABANDONED
                )
                self._out.append(NegotiationTimedOut(offer_id=ident))
                self._forced = True
                self._maybe_offer()

    # -- introspection ----------------------------------------------------------------------

    @property
    def negotiation(self) -> NegotiationState:
        """Where the offer/answer queue is."""
        return self._negotiation

    @property
    def offer_in_flight(self) -> int | None:
        """The id of the offer being created, answered or applied, if any."""
        return None if self._negotiation is NegotiationState.IDLE else self._offer_id

    @property
    def slots(self) -> tuple[SlotInfo, ...]:
        """Every slot of the current peer connection, by slot number."""
        return tuple(s.info() for s in self._slots.values())

    @property
    def applied_mid_to_track_id(self) -> Mapping[str, str]:
        """`mid_to_track_id` of the latest answer the adapter applied."""
        return dict(self._applied)

    @property
    def local_cids(self) -> tuple[str, ...]:
        """The cids of our publications that have not ended, in publish order."""
        return tuple(p.cid for p in self._local.values())

    def local_state(self, cid: str) -> LocalTrackState:
        """The state of publication `cid` (UNPUBLISHED once ended, or if unknown)."""
        local = self._by_cid(cid)
        return LocalTrackState.UNPUBLISHED if local is None else local.state

    def local_info(self, cid: str) -> TrackPublicationInfo | None:
        """Publication `cid` as the server accepted it (None before that, or once ended)."""
        local = self._by_cid(cid)
        if local is None or local.info is None:
            return None
        info = TrackPublicationInfo.from_pb(local.info, local.options.kind)
        return attrs.evolve(info, muted=local.muted)

    def is_muted(self, cid: str) -> bool:
        """Whether our publication `cid` is muted (False if unknown)."""
        local = self._by_cid(cid)
        return local is not None and local.muted

    @property
    def remote_tracks(self) -> tuple[tuple[str, TrackPublicationInfo], ...]:
        """(publisher identity, info) of every known remote publication, by discovery."""
        return tuple((r.participant_identity, r.info) for r in self._remote.values())

    def subscribed_slot(self, sid: str) -> int | None:
        """The receive slot announced for remote track `sid` (`TrackSubscribed`), if any."""
        announced = self._announced.get(sid)
        return None if announced is None else announced[0]

    def wants_subscription(self, sid: str) -> bool:
        """Whether we want remote track `sid` (auto-subscribe, or `set_subscribed`)."""
        return self._desired.get(sid, self.auto_subscribe)

    # -- the session ------------------------------------------------------------------------

    def joined(
        self, local_identity: str, other_participants: Iterable[ppb.ParticipantInfo], *, now: float
    ) -> None:
        """A `JoinResponse` arrived: the first join, or the one ending a full reconnect.

        `other_participants` is its list (a full snapshot). After a full reconnect our
        publications are requested again (new cids) and our wishes re-sent."""
        check_verb("joined", self.phase)
        if not isinstance(local_identity, str):
            raise LocalProtocolError("joined: local_identity must be str", call="joined")
        now = require_now(now, "joined")
        rejoin = self.phase is SessionPhase.REJOINING
        cids = [self._new_cid("joined") for _ in self._local] if rejoin else []
        if len(set(cids)) != len(cids):
            raise LocalProtocolError("joined: id_factory repeated a cid", call="joined")
        self.phase = advance(SESSION_TRANSITIONS, self.phase, SessionInput.JOIN)
        self.local_identity = local_identity
        for identity, info in latest_per_identity(other_participants, local_identity).items():
            if info.state == _DISCONNECTED:
                continue
            self._participants[identity] = (info.sid, info.version)
            self._apply_remote(identity, info.sid, list(info.tracks))
        if not rejoin:
            return
        for sid in [s for s in self._desired if s not in self._remote]:
            del self._desired[sid]
        for sid in [s for s in self._settings if s not in self._remote]:
            del self._settings[sid]
        for sid, subscribe in self._desired.items():
            self._send(self._subscription_request(sid, subscribe=subscribe))
        for sid, settings in self._settings.items():
            self._send(_settings_request(sid, settings))
        if self._permissions is not None:
            self._send(self._permissions)
        for local, cid in zip(self._local.values(), cids, strict=True):
            previous, local.cid = local.cid, cid
            local.requested = True
            self._out.append(LocalTrackRepublishing(previous_cid=previous, cid=local.cid))
            self._deadlines.set((_PUBLISH, local.key), now + self.publish_timeout)
            self._send(_add_track_request(local.cid, local.options, local.muted))

    def reconnecting(self, *, full: bool, now: float) -> None:
        """The session was interrupted. `full=False`: it is being resumed (everything is
        kept; requests wait for `resumed()`). `full=True`: the peer connection is gone and a
        new join follows (see the module docstring)."""
        check_verb("reconnecting", self.phase)
        if not full:
            if self.phase is SessionPhase.REJOINING:
                raise LocalProtocolError(
                    "reconnecting(full=False): a full reconnect is already under way",
                    call="reconnecting",
                    state=self.phase.name,
                )
            self.phase = advance(SESSION_TRANSITIONS, self.phase, SessionInput.RESUME)
            if self._negotiation is NegotiationState.OFFERING:
                self._offer_lost = True  # its answer, if any, went to the old signal (F5.3)
                self._deadlines.cancel((_NEGOTIATION, self._offer_id))
            return
        self.phase = advance(SESSION_TRANSITIONS, self.phase, SessionInput.REJOIN)
        self._deferred.clear()
        self._errors.clear()
        self._reset_negotiation()
        for local in self._local.values():
            self._deadlines.cancel((_PUBLISH, local.key))
            local.state = advance(
                LOCAL_TRACK_TRANSITIONS, local.state, LocalTrackInput.CONNECTION_LOST
            )
            local.requested = False
            local.slot = None
            local.announced_subscribed = False
        for sid in list(self._remote):
            self._remove_remote(sid, forget=False)
        self._participants.clear()

    def resumed(self, *, now: float) -> None:
        """The resume completed: requests made meanwhile are sent now, and an offer that
        was outstanding when the signal dropped is replaced by a new one (F5.3)."""
        check_verb("resumed", self.phase)
        now = require_now(now, "resumed")
        self.phase = advance(SESSION_TRANSITIONS, self.phase, SessionInput.RESUMED)
        self._send_deferred()
        if self._negotiation is NegotiationState.OFFERING:
            if self._offer_lost:
                self._negotiation = advance(
                    NEGOTIATION_TRANSITIONS, self._negotiation, NegotiationInput.ABANDONED
                )
                self._forced = True
            else:  # sent just now, from the deferred requests
                self._deadlines.set((_NEGOTIATION, self._offer_id), now + self.negotiation_timeout)
        self._offer_lost = False
        self._maybe_offer()

    def disconnected(self, *, now: float) -> None:
        """The session ended: every publication ends (DISCONNECTED), every remote
        publication is withdrawn."""
        if self.phase is SessionPhase.CLOSED:
            return
        self.phase = advance(SESSION_TRANSITIONS, self.phase, SessionInput.CLOSE)
        message = "the session ended"
        for local in list(self._local.values()):
            self._fail(local, LocalTrackInput.CLOSE, _Reason.DISCONNECTED, message)
        for sid in list(self._remote):
            self._remove_remote(sid, forget=True)
        self._reset_negotiation()
        self._participants.clear()
        self._deferred.clear()
        self._errors.clear()
        self._permissions = None
        self._deadlines.clear()

    def sync_state_publish_tracks(self) -> list[tpb.TrackPublishedResponse]:
        """`SyncState.publish_tracks` for a resume: the full TrackPublishedResponse of every
        published track (F5.1: an entry without TrackInfo makes the server reconnect us)."""
        out = []
        for local in self._local.values():
            if local.state is LocalTrackState.PUBLISHED:
                assert local.info is not None
                info = _copy(local.info)
                info.muted = local.muted
                out.append(tpb.TrackPublishedResponse(cid=local.cid, track=info))
        return out

    def sync_state_subscription(self) -> tpb.UpdateSubscription:
        """`SyncState.subscription` (client-sdk-js `sendSyncState`): with auto-subscribe the
        tracks we unsubscribed, `subscribe=false`; otherwise those we subscribed."""
        sids = [sid for sid in self._remote if sid in self._desired]
        return tpb.UpdateSubscription(track_sids=sids, subscribe=not self.auto_subscribe)

    def sync_state_track_sids_disabled(self) -> list[str]:
        """`SyncState.track_sids_disabled`: remote tracks we disabled."""
        return [
            sid for sid in self._remote if not self._settings.get(sid, _DEFAULT_SETTINGS).enabled
        ]

    # -- publishing -------------------------------------------------------------------------

    def publish(
        self,
        kind: TrackKind,
        *,
        name: str,
        now: float,
        source: TrackSource | None = None,
        muted: bool = False,
        stream: str = "",
        stereo: bool = False,
        width: int = 0,
        height: int = 0,
        video_codec: str = "",
        max_bitrate: int = 0,
    ) -> str:
        """Ask the server to publish a track; returns its cid (the adapter's send track id).

        `source` defaults to MICROPHONE for audio and CAMERA for video. Audio takes `stereo`;
        video needs `width` and `height` and takes `video_codec` (one of `VIDEO_CODECS`) and
        `max_bitrate` (bps of its one layer; 0: livekit's preset for the size). The outcome
        follows as `LocalTrackPublished` or `LocalTrackPublishFailed` with that cid. Raises
        `LocalProtocolError`, changing nothing, outside JOINED, for wrong types, a source of
        the other kind, options of the other kind, at `max_local_publications`, or when the
        id factory gives an unusable cid.
        """
        call = "publish"
        check_verb(call, self.phase)
        _require(kind, TrackKind, "kind", call)
        if source is None:
            source = _SOURCES[kind][0]
        _require(source, TrackSource, "source", call)
        if source not in _SOURCES[kind]:
            raise LocalProtocolError(
                f"{call}: a {kind.name} track cannot have the source {source.name}", call=call
            )
        for value, what in ((name, "name"), (stream, "stream"), (video_codec, "video_codec")):
            _require_text(value, what, call)
        video_codec = video_codec.lower()
        for flag, what in ((muted, "muted"), (stereo, "stereo")):
            _require(flag, bool, what, call)
        width = _require_count(width, "width", call, _MAX_DIMENSION)
        height = _require_count(height, "height", call, _MAX_DIMENSION)
        max_bitrate = _require_count(max_bitrate, "max_bitrate", call, 0xFFFF_FFFF)
        now = require_now(now, call)
        if kind is TrackKind.AUDIO:
            if width or height or video_codec or max_bitrate:
                raise LocalProtocolError(
                    f"{call}: width, height, video_codec and max_bitrate are for video",
                    call=call,
                )
        else:
            if not width or not height:
                raise LocalProtocolError(f"{call}: a video track needs width and height", call=call)
            if video_codec not in VIDEO_CODECS:
                raise LocalProtocolError(
                    f"{call}: video_codec must be one of {sorted(VIDEO_CODECS)}: "
                    f"{video_codec!r} (aiortc encodes VP8 and H.264)",
                    call=call,
                )
            if stereo:
                raise LocalProtocolError(f"{call}: stereo is for audio", call=call)
            max_bitrate = max_bitrate or _preset_bitrate(width, height)
        if len(self._local) >= self.max_local_publications:
            raise LocalProtocolError(
                f"{call}: {len(self._local)} tracks are already published or pending "
                "(max_local_publications)",
                call=call,
            )
        cid = self._new_cid(call)
        options = _Options(
            kind, name, source, stream, width, height, video_codec, max_bitrate, stereo
        )
        self._keys += 1
        local = _Local(key=self._keys, cid=cid, options=options, muted=muted)
        self._local[local.key] = local
        self._deadlines.set((_PUBLISH, local.key), now + self.publish_timeout)
        self._send(_add_track_request(cid, options, muted))
        return cid

    def unpublish(self, cid: str, *, now: float) -> bool:
        """Unpublish our track `cid` (livekit.rtc `unpublish_track`). Returns False if no
        such publication exists (any more): unpublishing is idempotent.

        A publish still pending is cancelled (`LocalTrackPublishFailed` CANCELLED); a
        published track ends at once (`LocalTrackUnpublished` LOCAL) and its slot is idled
        and renegotiated; the server sends no answer (F4.4).
        """
        call = "unpublish"
        check_verb(call, self.phase)
        _require(cid, str, "cid", call)
        now = require_now(now, call)
        local = self._by_cid(cid)
        if local is None:
            return False
        if local.sid:
            self._end(local, LocalTrackInput.UNPUBLISH, UnpublishReason.LOCAL, "")
        else:
            self._fail(local, LocalTrackInput.UNPUBLISH, _Reason.CANCELLED, "cancelled")
        self._maybe_offer()
        return True

    def set_muted(self, cid: str, muted: bool, *, now: float) -> None:
        """Mute or unmute our track `cid` (livekit.rtc `LocalTrack.mute()`/`unmute()`).

        Published: `MuteTrackRequest` and `LocalTrackMuted`/`LocalTrackUnmuted`. Before the
        server accepted it, the wish is kept and sent once it has a sid. No change, no
        output. The adapter decides what a muted sender sends (silence is simplest, F4.1).
        Raises `LocalProtocolError` for an unknown cid or wrong types.
        """
        call = "set_muted"
        check_verb(call, self.phase)
        _require(cid, str, "cid", call)
        _require(muted, bool, "muted", call)
        require_now(now, call)
        local = self._by_cid(cid)
        if local is None:
            raise LocalProtocolError(f"{call}: no publication has the cid {cid!r}", call=call)
        if local.muted == muted:
            return
        local.muted = muted
        if local.state is LocalTrackState.PUBLISHED:
            self._send(_mute_request(local.sid, muted))
            event = LocalTrackMuted if muted else LocalTrackUnmuted
            self._out.append(event(cid=local.cid, sid=local.sid))

    # -- subscribing ------------------------------------------------------------------------

    def set_subscribed(self, sid: str, subscribed: bool, *, now: float) -> None:
        """livekit.rtc `RemoteTrackPublication.set_subscribed`: `UpdateSubscription{[sid],
        subscribed, participant_tracks}` (F2.4) when the wish changes. Unsubscribing ends an
        announced subscription at once (`TrackUnsubscribed`); subscribing again to a track
        whose slot is still bound announces it again at once. A track this manager does not
        know gives `TrackSubscriptionFailed(TRACK_NOT_FOUND)` when subscribing."""
        call = "set_subscribed"
        check_verb(call, self.phase)
        _require(sid, str, "sid", call)
        _require(subscribed, bool, "subscribed", call)
        require_now(now, call)
        if sid not in self._remote:
            if subscribed:
                self._out.append(
                    TrackSubscriptionFailed(
                        participant_identity="",
                        sid=sid,
                        error=SubscriptionErrorReason.TRACK_NOT_FOUND,
                        message="no remote participant publishes this track",
                    )
                )
            return
        if self.wants_subscription(sid) == subscribed:
            return
        if subscribed == self.auto_subscribe:
            del self._desired[sid]
        else:
            self._desired[sid] = subscribed
        self._errors.pop(sid, None)
        self._send(self._subscription_request(sid, subscribe=subscribed))
        self._reconcile()

    def update_track_settings(
        self,
        sid: str,
        *,
        now: float,
        enabled: bool | None = None,
        width: int | None = None,
        height: int | None = None,
        quality: VideoQuality | None = None,
        fps: int | None = None,
    ) -> None:
        """`UpdateTrackSettings` for remote track `sid` (client-sdk-js
        `RemoteTrackPublication.setEnabled`/`setVideoDimensions`/`setVideoQuality`/
        `setVideoFPS`; livekit.rtc `set_video_quality`). None keeps a setting. Dimensions and
        quality exclude each other: giving one clears the other (neither: HIGH). The whole
        settings are sent when they change; unknown tracks are ignored."""
        call = "update_track_settings"
        check_verb(call, self.phase)
        _require(sid, str, "sid", call)
        require_now(now, call)
        if enabled is not None:
            _require(enabled, bool, "enabled", call)
        if quality is not None:
            _require(quality, VideoQuality, "quality", call)
        if (width is None) != (height is None):
            raise LocalProtocolError(f"{call}: give width and height together", call=call)
        if width is not None and quality is not None:
            raise LocalProtocolError(f"{call}: give dimensions or a quality, not both", call=call)
        current = self._settings.get(sid, _DEFAULT_SETTINGS)
        new = current
        if enabled is not None:
            new = attrs.evolve(new, enabled=enabled)
        if width is not None:
            w = _require_count(width, "width", call, _MAX_DIMENSION)
            h = _require_count(height, "height", call, _MAX_DIMENSION)
            new = attrs.evolve(new, width=w, height=h, quality=None)
        if quality is not None:
            new = attrs.evolve(new, width=0, height=0, quality=quality)
        if fps is not None:
            new = attrs.evolve(new, fps=_require_count(fps, "fps", call, 1000))
        if sid not in self._remote or new == current:
            return
        if new == _DEFAULT_SETTINGS:
            del self._settings[sid]
        else:
            self._settings[sid] = new
        self._send(_settings_request(sid, new))

    def set_track_subscription_permissions(
        self,
        *,
        allow_all_participants: bool,
        now: float,
        participant_permissions: Sequence[ParticipantTrackPermission] = (),
    ) -> None:
        """Who may subscribe to our tracks (livekit.rtc
        `LocalParticipant.set_track_subscription_permissions`):
        `SubscriptionPermission{all_participants, track_permissions}`. Re-sent after a full
        reconnect (the server forgot it)."""
        call = "set_track_subscription_permissions"
        check_verb(call, self.phase)
        _require(allow_all_participants, bool, "allow_all_participants", call)
        require_now(now, call)
        permissions = []
        for entry in participant_permissions:
            _require(entry, ParticipantTrackPermission, "a participant permission", call)
            _require_text(entry.participant_identity, "participant_identity", call)
            _require(entry.allow_all, bool, "allow_all", call)
            for sid in entry.allowed_track_sids:
                _require_text(sid, "a track sid", call)
            permissions.append(
                tpb.TrackPermission(
                    participant_identity=entry.participant_identity,
                    all_tracks=entry.allow_all,
                    track_sids=list(entry.allowed_track_sids),
                )
            )
        request = spb.SignalRequest(
            subscription_permission=tpb.SubscriptionPermission(
                all_participants=allow_all_participants, track_permissions=permissions
            )
        )
        self._permissions = request
        self._send(request)

    # -- negotiation --------------------------------------------------------------------------

    def request_offer(self, *, now: float) -> None:
        """Negotiate even if no slot changed (e.g. the data channels were created). The
        offer goes out when none is in flight."""
        check_verb("request_offer", self.phase)
        now = require_now(now, "request_offer")
        self._forced = True
        self._maybe_offer()

    def offer_created(
        self, offer_id: int, sdp: str, *, slot_mids: Mapping[int, str], now: float
    ) -> None:
        """The adapter created and set offer `offer_id`; `slot_mids` maps every slot created
        so far to its transceiver's mid. The offer is sent (`SessionDescription.id =
        offer_id`). A report for an offer no longer in flight is ignored (and reported).

        Raises `LocalProtocolError` for wrong types, a slot this manager did not create, a
        mid that changed, one mid for two slots, or a created slot left without a mid.
        """
        call = "offer_created"
        _require(offer_id, int, "offer_id", call)
        _require_text(sdp, "sdp", call)
        _require(slot_mids, Mapping, "slot_mids", call)
        now = require_now(now, call)
        if self._negotiation is not NegotiationState.CREATING or offer_id != self._offer_id:
            self._ignored("stale-offer", f"offer {offer_id} is not being created")
            return
        mids: dict[int, str] = {}
        for slot_id, mid in dict(slot_mids).items():
            slot = self._slots.get(slot_id) if isinstance(slot_id, int) else None
            if slot is None or not slot.created:
                raise LocalProtocolError(f"{call}: no transceiver for slot {slot_id!r}", call=call)
            if not isinstance(mid, str) or not mid:
                raise LocalProtocolError(f"{call}: slot {slot_id}: mid must be a str", call=call)
            if slot.mid and slot.mid != mid:
                raise LocalProtocolError(
                    f"{call}: slot {slot_id} had mid {slot.mid!r}, not {mid!r}", call=call
                )
            mids[slot_id] = mid
        for slot in self._slots.values():
            if slot.created and slot.id not in mids and not slot.mid:
                raise LocalProtocolError(f"{call}: slot {slot.id} has no mid", call=call)
        owners = {s.mid: s.id for s in self._slots.values() if s.mid and s.id not in mids}
        for slot_id, mid in mids.items():
            if owners.setdefault(mid, slot_id) != slot_id:
                raise LocalProtocolError(f"{call}: mid {mid!r} names two slots", call=call)
        for slot_id, mid in mids.items():
            self._slots[slot_id].mid = mid
        self._negotiation = advance(
            NEGOTIATION_TRANSITIONS, self._negotiation, NegotiationInput.CREATED
        )
        offer = spb.SessionDescription(type="offer", sdp=sdp, id=offer_id)
        self._send(spb.SignalRequest(offer=offer))
        if self.phase is SessionPhase.JOINED:
            self._deadlines.set((_NEGOTIATION, offer_id), now + self.negotiation_timeout)

    def remote_description_applied(self, offer_id: int, *, now: float) -> None:
        """The adapter set the answer to offer `offer_id`: its `mid_to_track_id` now decides
        the bindings (`TrackSubscribed`/`TrackUnsubscribed`), idled send slots become
        reusable, and the next offer goes out if anything changed meanwhile."""
        call = "remote_description_applied"
        _require(offer_id, int, "offer_id", call)
        now = require_now(now, call)
        if self._negotiation is not NegotiationState.APPLYING or offer_id != self._offer_id:
            self._ignored("stale-apply", f"no answer to offer {offer_id} is being applied")
            return
        self._negotiation = advance(
            NEGOTIATION_TRANSITIONS, self._negotiation, NegotiationInput.APPLIED
        )
        for slot_id, direction in self._offered.items():
            self._slots[slot_id].negotiated = direction
        self._offered = {}
        mapping, self._answer = self._answer, {}
        self._applied = mapping
        claimed: dict[str, int] = {}
        by_mid = {s.mid: s for s in self._slots.values() if s.mid}
        for mid, sid in sorted(mapping.items()):
            slot = by_mid.get(mid)
            if slot is None or slot.role is SlotRole.SEND:
                self._ignored("unknown-mid", f"the answer maps mid {mid!r} to {sid}")
            elif sid in claimed:
                detail = f"the answer maps {sid} to mid {mid!r} too; the first mid keeps it"
                self._ignored("duplicate-sid", detail)
            else:
                claimed[sid] = slot.id
        bound = {slot_id: sid for sid, slot_id in claimed.items()}
        for slot in self._slots.values():
            if slot.role is SlotRole.RECV:
                slot.bound_sid = bound.get(slot.id, "")
        self._assign_slots()
        self._reconcile()
        self._maybe_offer()

    # -- remote input: signal -----------------------------------------------------------------

    def receive_signal(self, message: spb.SignalResponse, *, now: float) -> None:
        """Apply whatever in a `SignalResponse` concerns media tracks; anything else is
        ignored. Never raises for its content."""
        if self.phase not in (SessionPhase.JOINED, SessionPhase.RESUMING):
            return
        kind = message.WhichOneof("message")
        if kind == "update":
            self.participants_updated(message.update.participants, now=now)
        elif kind == "track_published":
            self._on_track_published(message.track_published)
        elif kind == "request_response":
            self.request_response_received(message.request_response, now=now)
        elif kind == "answer":
            self._on_answer(message.answer)
        elif kind == "media_sections_requirement":
            self._on_media_sections(message.media_sections_requirement)
        elif kind == "mute":
            self._on_server_mute(message.mute)
        elif kind == "track_unpublished":
            self._on_server_unpublish(message.track_unpublished.track_sid)
        elif kind == "track_subscribed":
            self._on_track_subscribed(message.track_subscribed.track_sid)
        elif kind == "subscription_response":
            self._on_subscription_response(message.subscription_response)
        elif kind == "subscription_permission_update":
            self._on_permission(message.subscription_permission_update)
        elif kind == "stream_state_update":
            self._on_stream_states(message.stream_state_update)
        # subscribed_quality_update: one layer, nothing to adapt (F6.1). offer: never sent
        # by the server in single-PC mode (F3.1).

    def participants_updated(self, infos: Iterable[ppb.ParticipantInfo], *, now: float) -> None:
        """A `ParticipantUpdate`: discover, update and remove remote publications."""
        if self.phase not in (SessionPhase.JOINED, SessionPhase.RESUMING):
            return
        for identity, info in latest_per_identity(infos, self.local_identity).items():
            known = self._participants.get(identity)
            if known is not None and info.sid == known[0] and info.version < known[1]:
                continue  # older than one already applied
            if info.state == _DISCONNECTED:
                if known is not None and info.sid and info.sid != known[0]:
                    continue  # the end of an older session of this identity
                self._participants.pop(identity, None)
                self._apply_remote(identity, info.sid, [])
            else:
                self._participants[identity] = (info.sid, info.version)
                self._apply_remote(identity, info.sid, list(info.tracks))
        self._reconcile()

    def request_response_received(self, response: spb.RequestResponse, *, now: float) -> bool:
        """A `RequestResponse`. Returns True if it echoes one of our AddTrack or MuteTrack
        requests (and was handled here), False if it belongs to someone else."""
        kind = response.WhichOneof("request")
        if kind not in ("add_track", "mute"):
            return False
        if self.phase not in (SessionPhase.JOINED, SessionPhase.RESUMING):
            return True
        if kind == "add_track":
            self._on_add_track_refused(response)
        else:
            reason = int(response.reason)
            local = self._by_sid(response.mute.sid)
            if reason == _OK:
                return True
            if local is None:
                self._ignored("unknown-sid", f"mute refusal for {response.mute.sid}")
            else:
                self._out.append(
                    LocalTrackMuteRefused(
                        cid=local.cid,
                        sid=local.sid,
                        muted=response.mute.muted,
                        reason=reason,
                        message=response.message,
                    )
                )
        return True

    # -- internals: publishing ------------------------------------------------------------------

    def _by_cid(self, cid: str) -> _Local | None:
        return next((p for p in self._local.values() if p.cid == cid), None)

    def _by_sid(self, sid: str) -> _Local | None:
        """Our PUBLISHED publication `sid` (a republishing one's old sid is gone)."""
        return next(
            (
                p
                for p in self._local.values()
                if p.state is LocalTrackState.PUBLISHED and p.sid == sid
            ),
            None,
        )

    def _new_cid(self, call: str) -> str:
        cid = self._id_factory()
        if not isinstance(cid, str) or not cid or self._by_cid(cid) is not None:
            raise LocalProtocolError(
                f"{call}: id_factory gave {cid!r}, not a new non-empty str", call=call
            )
        return cid

    def _on_track_published(self, response: tpb.TrackPublishedResponse) -> None:
        cid = response.cid
        local = self._by_cid(cid)
        if not response.track.sid:
            self._ignored("invalid-info", f"a publish answer for {cid!r} without a track sid")
            return
        if local is None or not local.requested:
            self._unmatched(local, f"publish answer for {cid!r}")
            return
        self._deadlines.cancel((_PUBLISH, local.key))
        local.requested = False
        previous = local.sid
        local.sid = response.track.sid
        local.info = _copy(response.track)
        local.state = advance(LOCAL_TRACK_TRANSITIONS, local.state, LocalTrackInput.ACCEPTED)
        info = self.local_info(cid)
        assert info is not None
        if previous:
            self._out.append(LocalTrackRepublished(cid=cid, previous_sid=previous, info=info))
        else:
            self._out.append(LocalTrackPublished(cid=cid, info=info))
        if response.track.muted != local.muted:
            self._send(_mute_request(local.sid, local.muted))  # muted while pending
        self._assign_slots()
        self._maybe_offer()

    def _unmatched(self, local: _Local | None, detail: str) -> None:
        if local is None:  # never ours, or it already failed, timed out or ended
            self._ignored("unknown-cid", detail)
        else:
            self._ignored("unexpected", detail + ", not asked")

    def _on_add_track_refused(self, response: spb.RequestResponse) -> None:
        cid = response.add_track.cid
        code = int(response.reason)
        local = self._by_cid(cid)
        if code in (_OK, _QUEUED):
            return  # QUEUED: the same cid is pending; its answer will come (F1.4)
        if local is None or not local.requested:
            self._unmatched(local, f"publish refusal {code} for {cid!r}")
            return
        reason = (
            PublishTrackErrorReason(code) if code in _SERVER_REASONS else _Reason.UNCLASSIFIED_ERROR
        )
        message = response.message or reason.name
        if reason.value != code:
            message = f"server reason {code}: {message}"
        self._fail(local, LocalTrackInput.REFUSED, reason, message)

    def _fail(
        self,
        local: _Local,
        event: LocalTrackInput,
        reason: PublishTrackErrorReason,
        message: str,
    ) -> None:
        """End `local` before or after it was accepted, with the matching event."""
        if local.sid:
            why = UnpublishReason.DISCONNECTED
            if event is not LocalTrackInput.CLOSE:
                why = UnpublishReason.REPUBLISH_FAILED
                message = f"{reason.name}: {message}"
            self._end(local, event, why, message)
            return
        local.state = advance(LOCAL_TRACK_TRANSITIONS, local.state, event)
        self._forget(local)
        self._out.append(
            LocalTrackPublishFailed(
                cid=local.cid, name=local.options.name, reason=reason, message=message
            )
        )

    def _end(self, local: _Local, event: LocalTrackInput, why: UnpublishReason, msg: str) -> None:
        local.state = advance(LOCAL_TRACK_TRANSITIONS, local.state, event)
        self._forget(local)
        self._out.append(
            LocalTrackUnpublished(cid=local.cid, sid=local.sid, reason=why, message=msg)
        )

    def _forget(self, local: _Local) -> None:
        self._deadlines.cancel((_PUBLISH, local.key))
        del self._local[local.key]
        if local.slot is not None:
            slot = self._slots[local.slot]
            slot.source = None
            slot.direction = Direction.INACTIVE
            self._assign_slots()

    def _on_server_unpublish(self, sid: str) -> None:
        local = self._by_sid(sid)
        if local is None:
            self._ignored("unknown-sid", f"track_unpublished for {sid}")
            return
        self._end(local, LocalTrackInput.SERVER_UNPUBLISHED, UnpublishReason.SERVER, "")
        self._maybe_offer()

    def _on_server_mute(self, request: tpb.MuteTrackRequest) -> None:
        local = self._by_sid(request.sid)
        if local is None:
            self._ignored("unknown-sid", f"mute for {request.sid}")
            return
        if local.muted == request.muted:
            return
        local.muted = request.muted
        event = LocalTrackMuted if request.muted else LocalTrackUnmuted
        self._out.append(event(cid=local.cid, sid=local.sid, by_server=True))

    def _on_track_subscribed(self, sid: str) -> None:
        local = self._by_sid(sid)
        if local is None:
            self._ignored("unknown-sid", f"track_subscribed for {sid}")
        elif not local.announced_subscribed:
            local.announced_subscribed = True
            self._out.append(LocalTrackSubscribed(cid=local.cid, sid=sid))

    # -- internals: slots and negotiation --------------------------------------------------------

    def _new_slot(self, kind: TrackKind, role: SlotRole, codec: str, direction: Direction) -> _Slot:
        self._last_slot += 1
        slot = _Slot(id=self._last_slot, kind=kind, role=role, codec=codec, direction=direction)
        self._slots[slot.id] = slot
        return slot

    def _assign_slots(self) -> None:
        """Give every accepted publication without a slot one: an idle send slot of its
        kind and codec that is reusable, or, if no idle one exists, a new slot. While an idle
        one still waits for its `inactive` to be negotiated, wait for it (bounds m-lines)."""
        for local in self._local.values():
            if local.state is not LocalTrackState.PUBLISHED or local.slot is not None:
                continue
            options = local.options
            idle = [
                s
                for s in self._slots.values()
                if s.role is SlotRole.SEND
                and s.kind is options.kind
                and s.codec == options.codec
                and s.source is None
            ]
            ready = [s for s in idle if s.reusable()]
            if ready:
                slot = ready[0]
            elif idle:
                continue
            else:
                slot = self._new_slot(
                    options.kind, SlotRole.SEND, options.codec, Direction.INACTIVE
                )
            slot.source = local.cid
            slot.direction = Direction.SENDONLY
            local.slot = slot.id

    def _on_media_sections(self, requirement: spb.MediaSectionsRequirement) -> None:
        needed = {}
        for kind, count in (
            (TrackKind.AUDIO, requirement.num_audios),
            (TrackKind.VIDEO, requirement.num_videos),
        ):
            covered = min(count, self._credit[kind])
            self._credit[kind] -= covered
            needed[kind] = count - covered
        audios, videos = needed[TrackKind.AUDIO], needed[TrackKind.VIDEO]
        receiving = sum(1 for s in self._slots.values() if s.role is SlotRole.RECV)
        room = min(self.max_slots_per_requirement, self.max_receive_slots - receiving)
        add_audios = min(audios, room)
        add_videos = min(videos, room - add_audios)
        if (add_audios, add_videos) != (audios, videos):
            self._out.append(
                MediaSectionsLimited(
                    needed_audios=audios,
                    needed_videos=videos,
                    added_audios=add_audios,
                    added_videos=add_videos,
                )
            )
        for kind, count in ((TrackKind.AUDIO, add_audios), (TrackKind.VIDEO, add_videos)):
            for _ in range(count):
                self._new_slot(kind, SlotRole.RECV, "", Direction.RECVONLY)
        if not requirement.num_audios and not requirement.num_videos:
            self._forced = True  # 0/0: the server wants to renegotiate (F3.3, F3.8)
        # New slots make the queue dirty. A count met by slots already queued or in flight
        # needs no offer of its own, and one the bounds refused must not cause one: the
        # server would ask again after its answer, and again, without end.
        self._maybe_offer()

    def _maybe_offer(self) -> None:
        """With no offer in flight and something to negotiate, flush the transceiver
        commands and create the next offer."""
        if self.phase is not SessionPhase.JOINED:
            return
        if self._negotiation is not NegotiationState.IDLE:
            return
        if not self._forced and not any(s.needs_flush() for s in self._slots.values()):
            return
        for slot in self._slots.values():
            if not slot.needs_flush():
                continue
            if not slot.created:
                slot.created = True
                slot.first_offer = self._offer_id + 1
                self._out.append(
                    AddTransceiver(
                        slot=slot.id,
                        kind=slot.kind,
                        direction=slot.direction,
                        source_cid=slot.source,
                        codec=slot.codec,
                    )
                )
            else:
                # Only send slots change once created, and a send slot is SENDONLY exactly
                # when it has a source: source and direction always change together.
                self._out += [
                    SetSendSource(slot=slot.id, source_cid=slot.source, codec=slot.codec),
                    SetTransceiverDirection(slot=slot.id, direction=slot.direction),
                ]
            slot.flushed_direction = slot.direction
            slot.flushed_source = slot.source
        self._forced = False
        self._offer_id += 1
        self._offered = {s.id: s.direction for s in self._slots.values() if s.created}
        self._negotiation = advance(
            NEGOTIATION_TRANSITIONS, self._negotiation, NegotiationInput.OFFER
        )
        self._out.append(CreateTrackOffer(offer_id=self._offer_id))

    def _on_answer(self, answer: spb.SessionDescription) -> None:
        outstanding = self._offer_id if self._negotiation is NegotiationState.OFFERING else None
        accepted = outstanding is not None and answer.id in (outstanding, 0)
        answered = outstanding if accepted else answer.id
        if answered and answered <= self._offer_id:
            # livekit-server 1.13.5 `createAndSendAnswer`: with each answer the server
            # recounts its transceivers still without an m-line and asks for all of them
            # again in the MediaSectionsRequirement that follows, including those our slots
            # not yet in an answered offer will take. Those slots are credited against it.
            for kind in TrackKind:
                self._credit[kind] = sum(
                    1
                    for s in self._slots.values()
                    if s.role is SlotRole.RECV
                    and s.kind is kind
                    and not 0 < s.first_offer <= answered
                )
        if outstanding is None or not accepted:
            self._out.append(AnswerDropped(answer_id=answer.id, outstanding_offer_id=outstanding))
            return
        self._deadlines.cancel((_NEGOTIATION, outstanding))
        self._answer = dict(answer.mid_to_track_id)
        self._negotiation = advance(
            NEGOTIATION_TRANSITIONS, self._negotiation, NegotiationInput.ANSWERED
        )
        self._out.append(ApplyAnswer(offer_id=outstanding, sdp=answer.sdp))

    def _reset_negotiation(self) -> None:
        """The peer connection is gone: its slots, bindings and offer with it."""
        self._deadlines.cancel((_NEGOTIATION, self._offer_id))
        self._negotiation = advance(
            NEGOTIATION_TRANSITIONS, self._negotiation, NegotiationInput.RESET
        )
        self._forced = False
        self._offer_lost = False
        self._offered = {}
        self._answer = {}
        self._applied = {}
        self._credit = dict.fromkeys(TrackKind, 0)
        self._slots.clear()
        self._reconcile()

    # -- internals: remote publications ----------------------------------------------------------

    def _apply_remote(
        self, identity: str, participant_sid: str, tracks: list[tpb.TrackInfo]
    ) -> None:
        """Make `identity`'s publications what `tracks` lists."""
        listed: dict[str, tpb.TrackInfo] = {}
        for wire in tracks:
            if int(wire.type) not in (TrackKind.AUDIO, TrackKind.VIDEO):
                continue  # DATA: not media
            if not wire.sid:
                self._ignored("invalid-info", f"{identity!r} lists a track without sid")
            elif wire.sid not in listed:
                listed[wire.sid] = wire
        before = [sid for sid, r in self._remote.items() if r.participant_identity == identity]
        for sid, wire in listed.items():
            info = TrackPublicationInfo.from_pb(wire)
            remote = self._remote.get(sid)
            if remote is None:
                if len(self._remote) >= self.max_remote_tracks:
                    detail = f"{sid} of {identity!r}: {len(self._remote)} remote tracks are known"
                    self._ignored("too-many-tracks", detail)
                    continue
                self._remote[sid] = _Remote(identity, participant_sid, info)
                self._out.append(
                    TrackPublished(
                        participant_identity=identity, participant_sid=participant_sid, info=info
                    )
                )
                continue
            if remote.participant_identity != identity:
                detail = f"{sid} listed by {identity!r}, published by "
                self._ignored("conflict", detail + repr(remote.participant_identity))
                continue
            was_muted, remote.info = remote.info.muted, info
            remote.participant_sid = participant_sid
            if info.muted != was_muted:
                event = TrackMuted if info.muted else TrackUnmuted
                self._out.append(event(participant_identity=identity, sid=sid))
        for sid in before:
            if sid not in listed:
                self._remove_remote(sid, forget=True)

    def _remove_remote(self, sid: str, *, forget: bool) -> None:
        """Withdraw remote track `sid`: TrackUnsubscribed (if announced), TrackUnpublished.
        `forget`: our wishes about it go too (it is gone for good, not only for a rejoin)."""
        remote = self._remote.pop(sid)
        self._reconcile()
        self._errors.pop(sid, None)
        if forget:
            self._desired.pop(sid, None)
            self._settings.pop(sid, None)
        self._out.append(
            TrackUnpublished(participant_identity=remote.participant_identity, sid=sid)
        )

    def _reconcile(self) -> None:
        """Announce exactly the bound slots whose sid is a known remote track we want."""
        want: dict[str, int] = {}
        for slot in self._slots.values():
            sid = slot.bound_sid
            if sid and sid in self._remote and self.wants_subscription(sid):
                want[sid] = slot.id
        for sid, (slot_id, identity) in list(self._announced.items()):
            if want.get(sid) != slot_id:
                del self._announced[sid]
                self._out.append(
                    TrackUnsubscribed(participant_identity=identity, sid=sid, slot=slot_id)
                )
        for sid, slot_id in want.items():
            if sid not in self._announced:
                remote = self._remote[sid]
                self._announced[sid] = (slot_id, remote.participant_identity)
                self._errors.pop(sid, None)
                self._out.append(
                    TrackSubscribed(
                        participant_identity=remote.participant_identity,
                        slot=slot_id,
                        info=remote.info,
                    )
                )

    def _subscription_request(self, sid: str, *, subscribe: bool) -> spb.SignalRequest:
        remote = self._remote[sid]
        tracks = tpb.ParticipantTracks(participant_sid=remote.participant_sid, track_sids=[sid])
        update = tpb.UpdateSubscription(
            track_sids=[sid], subscribe=subscribe, participant_tracks=[tracks]
        )
        return spb.SignalRequest(subscription=update)

    def _on_subscription_response(self, response: tpb.SubscriptionResponse) -> None:
        sid, code = response.track_sid, int(response.err)
        if self._errors.get(sid) == code:
            self._errors.move_to_end(sid)
            return  # the server repeats it every 3 s (F2.6)
        self._errors[sid] = code
        self._errors.move_to_end(sid)
        while len(self._errors) > self.max_remembered_subscription_errors:
            self._errors.popitem(last=False)
        known = {e.value for e in SubscriptionErrorReason}
        error = SubscriptionErrorReason(code) if code in known else SubscriptionErrorReason.UNKNOWN
        remote = self._remote.get(sid)
        self._out.append(
            TrackSubscriptionFailed(
                participant_identity="" if remote is None else remote.participant_identity,
                sid=sid,
                error=error,
                message=f"server error {code}" if error.value != code else error.name,
            )
        )

    def _on_permission(self, update: tpb.SubscriptionPermissionUpdate) -> None:
        remote = self._remote.get(update.track_sid)
        if remote is None:
            self._ignored("unknown-sid", f"subscription permission for {update.track_sid}")
            return
        if remote.allowed != update.allowed:
            remote.allowed = update.allowed
            self._out.append(
                TrackSubscriptionPermissionChanged(
                    participant_identity=remote.participant_identity,
                    sid=update.track_sid,
                    allowed=update.allowed,
                )
            )

    def _on_stream_states(self, update: tpb.StreamStateUpdate) -> None:
        for entry in update.stream_states:
            remote = self._remote.get(entry.track_sid)
            code = int(entry.state)
            if remote is None:
                self._ignored("unknown-sid", f"stream state for {entry.track_sid}")
            elif code not in (StreamState.ACTIVE, StreamState.PAUSED):
                self._ignored("unknown-state", f"stream state {code} for {entry.track_sid}")
            elif remote.stream_state is not StreamState(code):
                remote.stream_state = StreamState(code)
                self._out.append(
                    TrackStreamStateChanged(
                        participant_identity=remote.participant_identity,
                        sid=entry.track_sid,
                        state=remote.stream_state,
                    )
                )

    # -- internals: output -------------------------------------------------------------------

    def _send(self, request: spb.SignalRequest) -> None:
        if self.phase is SessionPhase.JOINED:
            self._out.append(SendTrackSignal(request=request))
        elif self.phase is SessionPhase.RESUMING:
            self._deferred.append(request)
        # REJOINING: the server forgot this session; what matters is re-sent after the join.

    def _ignored(self, reason: str, detail: str) -> None:
        self._out.append(TrackSignalIgnored(reason=reason, detail=detail))


_Reason = PublishTrackErrorReason


def _add_track_request(cid: str, options: _Options, muted: bool) -> spb.SignalRequest:
    request = tpb.AddTrackRequest(
        cid=cid,
        name=options.name,
        type=cast("tpb.TrackType", int(options.kind)),
        source=cast("tpb.TrackSource", int(options.source)),
        muted=muted,
        stream=options.stream,
    )
    if options.kind is TrackKind.AUDIO:
        request.disable_red = True  # aiortc cannot send RED (protocol-reference-2 3.2)
        features = [AudioFeature.STEREO] if options.stereo else []
        features.append(AudioFeature.NO_DTX)  # aiortc's Opus encoder has no DTX
        request.audio_features.extend(
            cast("list[tpb.AudioTrackFeature]", [int(f) for f in features])
        )
    else:
        request.width, request.height = options.width, options.height
        layer = tpb.VideoLayer(
            quality=tpb.HIGH, width=options.width, height=options.height, bitrate=options.bitrate
        )
        request.layers.append(layer)  # one layer: aiortc cannot send simulcast
        if options.codec:
            request.simulcast_codecs.append(tpb.SimulcastCodec(codec=options.codec, cid=cid))
    return spb.SignalRequest(add_track=request)


def _mute_request(sid: str, muted: bool) -> spb.SignalRequest:
    return spb.SignalRequest(mute=tpb.MuteTrackRequest(sid=sid, muted=muted))


def _settings_request(sid: str, settings: _Settings) -> spb.SignalRequest:
    request = tpb.UpdateTrackSettings(track_sids=[sid], disabled=not settings.enabled)
    if settings.width:
        request.width, request.height = settings.width, settings.height
    else:
        quality = VideoQuality.HIGH if settings.quality is None else settings.quality
        request.quality = cast("tpb.VideoQuality", int(quality))
    if settings.fps:
        request.fps = settings.fps
    return spb.SignalRequest(track_setting=request)
