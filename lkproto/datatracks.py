"""Data tracks: publish, subscribe and push lossy frames on `_data_track`. Sans-I/O, usable alone.

Theory of operation (protocol-reference-2 section 1; rust-sdks `livekit-datatrack`,
client-sdk-js `room/data-track/`, livekit-server 1.13.5 `pkg/rtc/participant_data_track.go`,
`subscriptionmanager.go`). A `DataTrackManager` holds both sides of data tracks for one
local participant. Inputs are method calls given `now` (monotonic seconds); outputs are read
with `drain()` after every input (signal requests to send, and what happened), and the
packets of pushed frames are pulled with `frames_to_send()` when the channel can take them.
Failures are values; `LocalProtocolError` (and its subclass `PushFrameError`) is raised only
for a refused call, and then nothing changed.

- Wire. Signal requests leave as `SendDataTrackSignal`, whose `request` is the
  `SignalRequest` (`publish_data_track_request` 19, `unpublish_data_track_request` 20,
  `update_data_subscription` 21) and whose `data` is its bytes, for the caller to send on the
  signal WebSocket. Answers come back through `receive_signal` (or the methods it
  dispatches to): `PublishDataTrackResponse` (27), `UnpublishDataTrackResponse` (28),
  `DataTrackSubscriberHandles` (29), `RequestResponse` (22) echoing our request, and
  `ParticipantUpdate` (5). Packets travel on the `_data_track` channel (unordered, no
  retransmits; in single-PC mode the server writes subscribed packets back on the channel we
  created): `frames_to_send()` out, `receive_packet()` in.
- Publishing. `publish_data_track` allocates the next handle (from 1, never reused, u16; when
  they run out `LocalProtocolError`, Rust's LimitReached) and sends
  `PublishDataTrackRequest{pub_handle, name, encryption: GCM if uses_e2ee else NONE}`. The
  server answers `PublishDataTrackResponse{info}` (SID "DTR_...") or refuses with a
  `RequestResponse` (request_id 0) whose `publish_data_track` echoes the request: refusals are
  correlated by `pub_handle` (Rust `publish_result_from_request_response`) and reported as
  `DataTrackPublishFailed` with the server's reason (NOT_ALLOWED, INVALID_HANDLE,
  INVALID_NAME, DUPLICATE_HANDLE, DUPLICATE_NAME, INVALID_REQUEST, ...). With no answer within
  `publish_timeout` (10 s, Rust `PUBLISH_TIMEOUT` and JS) it fails with TIMEOUT; a success that
  arrives later is answered with an `UnpublishDataTrackRequest` (Rust
  `on_sfu_publish_response`), so the server holds no track we do not know of. The same
  applies to a publish cancelled with `unpublish_data_track` before its answer.
- Unpublishing. Ours: `unpublish_data_track` ends the track at once (`DataTrackUnpublished`
  LOCAL) and sends the request; the server's `UnpublishDataTrackResponse` (or NOT_FOUND) that
  follows is expected and swallowed. The server's own (an `UnpublishDataTrackResponse` we did
  not ask for, e.g. the data grant was revoked) ends the track with reason SERVER.
- Pushing. `try_push` queues a frame on its track: at most `max_queued_frames` per track
  (16, Rust `FRAME_BUFFER_COUNT`) and `max_queued_bytes` over all tracks; beyond either it
  raises `PushFrameError(QUEUE_FULL)` and the frame is not taken: a lossy primitive drops, it
  never blocks or grows. While a full reconnect republishes the track it raises QUEUE_FULL too
  (Rust); once unpublished, TRACK_UNPUBLISHED. A frame needing more than
  `max_packets_per_frame` packets is refused (no official receiver could reassemble it), an
  empty one sends nothing (Rust). The 90 kHz timestamp is taken at the push. The adapter pulls
  `frames_to_send()` while the channel's buffered amount is low (Rust sends only below 8 KiB),
  tracks served in turn; each `SendDataTrackFrame` must be sent whole or dropped whole.
- Discovery. Remote tracks come from `ParticipantInfo.data_tracks` in the join's
  `other_participants` (a full snapshot: publishers missing from it have nothing) and in every
  `ParticipantUpdate` (scoped per publisher: a SID that publisher listed before and no longer
  lists is unpublished; DISCONNECTED removes them all). Our own identity is skipped; an update
  older than the last (same participant SID, lower `version`) is ignored; when one update
  lists an identity twice, the last entry wins (Rust collects them into a map; the server
  sends a synthesized DISCONNECTED of the old session before the new session). After a
  publisher's full reconnect its tracks come back with new SIDs: a new SID with the
  (publisher identity, `pub_handle`) of a track whose SID is no longer listed, and the same
  name, encryption and schema, is the same track (`RemoteDataTrackSidChanged`; Rust
  `handle_sid_reassigned`), and its subscription is re-sent for the new SID. An update
  showing the publisher's new session before it republished (not yet ACTIVE, no tracks)
  leaves its tracks in place until it does, or becomes ACTIVE without them: the server sends
  a new session's JOINED state on its update tick, which may come first. Tracks encrypted
  with anything but NONE or GCM are ignored (Rust refuses them too).
- Subscribing. `subscribe` sends `UpdateDataSubscription{updates: [{track_sid, subscribe:
  true}]}` (one update per message, as Rust) and waits for a `DataTrackSubscriberHandles`
  naming the track; after `subscribe_timeout` (10 s, Rust and JS) it ends with TIMEOUT (or
  NOT_ALLOWED if the server last said the publisher does not allow us). Each snapshot is the
  server's full list of this subscriber's
  handles (`notifyDataTrackSubscriberHandles`): packet routing follows it exactly, adding and
  removing handles (a removed handle leaves its subscription ACTIVE and waiting for a new one:
  the server keeps the subscription desired, e.g. while a permission is revoked). Packets whose
  handle is not routed are dropped and reported (`DataTrackPacketDropped(UNKNOWN_HANDLE)`);
  routed ones go to the subscription's depacketizer (`lkproto._datatrack_reassembly`), whose
  frames become `DataTrackFrameReceived` (payload, user timestamp, and the E2EE extension for
  the caller to decrypt with the publisher's key: a `Connection` made with `encryption`
  does) and whose drops become `DataTrackFrameDropped`. A frame without the E2EE extension
  on an encrypted track is dropped (Rust). Subscribing twice is one subscription (Rust
  shares one pipeline). A `SubscriptionPermissionUpdate{allowed: false}` for a track we
  subscribe to (the publisher's subscription permissions exclude us; the server sends one
  whenever it evaluates the subscription) ends it with NOT_ALLOWED at once, rather than
  leaving it to time out as the SDKs do; updates about other tracks (media) are not ours.
- Withdrawing. livekit-server 1.13.5 deadlocks a subscriber's whole subscription manager
  (no data-track or media subscription of it is ever reconciled again) when it is asked to
  unsubscribe from a data track for which it holds no down track: the cleanup branch of
  `reconcileDataTrackSubscription` calls `notifyDataTrackSubscriberHandles` while holding the
  lock that function takes. So an unsubscribe is sent only for a subscription with a
  subscriber handle (the server has its down track). One that timed out, was refused or was
  cancelled before a handle came stays wanted on the server, which keeps retrying it; if it
  ever grants it, the snapshot names a track we no longer want ("unsolicited-handle"), and
  only then is it withdrawn, safely. (client-sdk-js unsubscribes on its subscribe timeout
  and can hit the deadlock.) Subscribing again to a track the server routed to us when we
  last heard (the last snapshot, or a handle we just gave up) takes that handle at once: the
  server may take the withdrawal and the new subscribe together as no change, and send no
  new snapshot.
- Reconnects. `reconnecting(full=False)` (a resume) keeps everything: requests made meanwhile
  wait for `resumed()`, and `sync_state_publish_data_tracks()` gives `SyncState.
  publish_data_tracks` (field 8: one `PublishDataTrackResponse` per published track; the
  server issues a full reconnect if it lists a track it does not have). Field 9
  (`data_subscription`) is not produced: server 1.13.5 ignores it and Rust leaves it unset.
  `reconnecting(full=True)` fails pending publishes (DISCONNECTED, as Rust), moves published
  tracks to REPUBLISHING (queued frames are discarded) and clears every subscriber handle;
  the `joined()` that ends it republishes each track with the same handle, name, encryption
  and schema (new SID: `DataTrackRepublished`; a refusal or no answer within the publish
  timeout ends the track, REPUBLISH_FAILED) and re-sends a subscribe for every pending or
  active subscription (Rust `ResendSubscriptionUpdates`). `disconnected()` ends everything.
- Bounds, all constructor arguments: `publish_timeout`, `subscribe_timeout`,
  `max_queued_frames`, `max_queued_bytes`, `max_partial_frames`, `max_packets_per_frame`,
  `max_remembered_frames`, `max_published_tracks`, `max_remote_tracks`, `mtu` (see
  `DataTrackManager.__init__`).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable
from typing import TypeVar, cast

import attrs

from lkproto._datatrack_packet import (
    BASE_HEADER_SIZE,
    MAX_HEADER_SIZE,
    TIMESTAMP_RATE,
    DataTrackPacket,
    DataTrackPacketError,
    E2eeExtension,
    FrameMarker,
    PacketErrorReason,
    header_size,
    optional_u64,
    to_bytes,
)
from lkproto._datatrack_reassembly import (
    DEFAULT_MAX_PACKETS_PER_FRAME,
    DEFAULT_MAX_PARTIAL_FRAMES,
    DEFAULT_MAX_REMEMBERED_FRAMES,
    TRANSPORT_MTU,
    AssembledFrame,
    Depacketizer,
    DroppedFrame,
    FrameDropReason,
    Packetizer,
)
from lkproto._outputs import Outputs, is_seconds, latest_per_identity, require_now
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto._repr import plain_repr
from lkproto._state import (
    PUBLISH_TRANSITIONS,
    SESSION_TRANSITIONS,
    SUBSCRIPTION_TRANSITIONS,
    PublishInput,
    PublishState,
    SessionInput,
    SessionPhase,
    SubscriptionInput,
    SubscriptionState,
    advance,
)
from lkproto._state import check_data_track_verb as check_verb
from lkproto.errors import LkProtocolError, LocalProtocolError

__all__ = [
    "BASE_HEADER_SIZE",
    "DEFAULT_MAX_PACKETS_PER_FRAME",
    "DEFAULT_MAX_PARTIAL_FRAMES",
    "DEFAULT_MAX_PUBLISHED_TRACKS",
    "DEFAULT_MAX_QUEUED_BYTES",
    "DEFAULT_MAX_QUEUED_FRAMES",
    "DEFAULT_MAX_REMEMBERED_FRAMES",
    "DEFAULT_MAX_REMOTE_TRACKS",
    "DEFAULT_PUBLISH_TIMEOUT",
    "DEFAULT_SUBSCRIBE_TIMEOUT",
    "MAX_HEADER_SIZE",
    "TIMESTAMP_RATE",
    "TRANSPORT_MTU",
    "AssembledFrame",
    "DataTrackFrame",
    "DataTrackFrameDropped",
    "DataTrackFrameReceived",
    "DataTrackInfo",
    "DataTrackManager",
    "DataTrackOutput",
    "DataTrackPacket",
    "DataTrackPacketDropped",
    "DataTrackPacketError",
    "DataTrackPublishFailed",
    "DataTrackPublished",
    "DataTrackRepublished",
    "DataTrackSignalIgnored",
    "DataTrackSubscribed",
    "DataTrackSubscriptionEnded",
    "DataTrackUnpublished",
    "Depacketizer",
    "DroppedFrame",
    "E2eeExtension",
    "FrameDropReason",
    "FrameMarker",
    "PacketErrorReason",
    "Packetizer",
    "PublishDataTrackError",
    "PublishDataTrackErrorReason",
    "PublishState",
    "PushFrameError",
    "PushFrameErrorReason",
    "RemoteDataTrackPublished",
    "RemoteDataTrackSidChanged",
    "RemoteDataTrackUnpublished",
    "SendDataTrackFrame",
    "SendDataTrackSignal",
    "SessionPhase",
    "SubscribeDataTrackError",
    "SubscribeDataTrackErrorReason",
    "SubscriptionState",
    "UnpublishReason",
    "header_size",
]

DEFAULT_PUBLISH_TIMEOUT = 10.0
DEFAULT_SUBSCRIBE_TIMEOUT = 10.0
DEFAULT_MAX_QUEUED_FRAMES = 16
DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_PUBLISHED_TRACKS = 1024
DEFAULT_MAX_REMOTE_TRACKS = 4096
_MAX_HANDLE = 0xFFFF
_NONE, _GCM = int(dpb.Encryption.NONE), int(dpb.Encryption.GCM)
_ACTIVE = int(ppb.ParticipantInfo.ACTIVE)
_DISCONNECTED = int(ppb.ParticipantInfo.DISCONNECTED)
_PUBLISH, _SUBSCRIBE = "publish", "subscribe"


# -- values -----------------------------------------------------------------------------------


@attrs.frozen
@plain_repr
class DataTrackFrame:
    """A frame: a payload and an optional user timestamp (livekit.rtc `DataTrackFrame`).

    `user_timestamp` is a u64 of the application's choosing; the SDKs put UNIX milliseconds
    there. It travels in every packet of the frame (extension 2).
    """

    payload: bytes = attrs.field(converter=to_bytes, repr=lambda p: f"<{len(p)} B>")
    user_timestamp: int | None = attrs.field(default=None, validator=optional_u64)


@attrs.frozen
@plain_repr
class DataTrackInfo:
    """A published data track (livekit.rtc `DataTrackInfo`, plus its `pub_handle`).

    `sid` is assigned by the server and changes after a full reconnect; `name` is stable.
    """

    sid: str
    name: str
    uses_e2ee: bool = False
    pub_handle: int = attrs.field(default=0, kw_only=True)


# -- errors -----------------------------------------------------------------------------------


class PushFrameErrorReason(enum.Enum):
    """Why `try_push` refused a frame (Rust `PushFrameErrorReason`)."""

    TRACK_UNPUBLISHED = "track_unpublished"
    QUEUE_FULL = "queue_full"  #: the queue is full, or a full reconnect is republishing


class PushFrameError(LocalProtocolError):
    """`try_push` refused `frame` (livekit.rtc `PushFrameError`); nothing was queued."""

    def __init__(self, reason: PushFrameErrorReason, frame: DataTrackFrame, message: str) -> None:
        super().__init__(message, call="try_push", state=reason.value)
        self.reason = reason
        self.frame = frame
        self.message = message


class PublishDataTrackErrorReason(enum.IntEnum):
    """Why a publish failed: the server's `RequestResponse.Reason` values, then ours (100+)."""

    NOT_ALLOWED = 2  #: no canPublishData, or data tracks disabled on the server
    LIMIT_EXCEEDED = 3
    UNCLASSIFIED_ERROR = 6  #: also any reason code this client does not know
    INVALID_HANDLE = 7  #: pub_handle not in 1..65535
    INVALID_NAME = 8  #: empty, or over 256 bytes (the server counts bytes)
    DUPLICATE_HANDLE = 9
    DUPLICATE_NAME = 10  #: this publisher already has a track of that name
    INVALID_REQUEST = 11  #: a frame encoding or schema id the server refuses
    TIMEOUT = 100  #: no answer within the publish timeout
    CANCELLED = 101  #: `unpublish_data_track` before the answer
    DISCONNECTED = 102  #: a full reconnect or the end of the session came first


_SERVER_REASONS = frozenset(r.value for r in PublishDataTrackErrorReason if r.value < 100)


class PublishDataTrackError(LkProtocolError):
    """A publish failed (livekit.rtc `PublishDataTrackError`); see `DataTrackPublishFailed`."""

    def __init__(self, reason: PublishDataTrackErrorReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class SubscribeDataTrackErrorReason(enum.IntEnum):
    """Why a subscription ended (client-sdk-js `DataTrackSubscribeErrorReason` values)."""

    UNPUBLISHED = 0  #: the publisher unpublished the track, or left
    TIMEOUT = 1  #: no subscriber handle within the subscribe timeout
    DISCONNECTED = 2  #: the session ended
    CANCELLED = 4  #: we unsubscribed
    NOT_ALLOWED = 100  #: the publisher's subscription permissions exclude us (ours)


class SubscribeDataTrackError(LkProtocolError):
    """A subscription failed (livekit.rtc `SubscribeDataTrackError`)."""

    def __init__(self, reason: SubscribeDataTrackErrorReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class UnpublishReason(enum.Enum):
    """Why one of our published tracks ended."""

    LOCAL = "local"  #: we unpublished it
    SERVER = (
        "server"  #: the server unpublished it (an UnpublishDataTrackResponse we did not ask for)
    )
    REPUBLISH_FAILED = "republish_failed"  #: refused, or unanswered, after a full reconnect
    DISCONNECTED = "disconnected"  #: the session ended


# -- outputs ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
@plain_repr
class SendDataTrackSignal:
    """Send `request` on the signal WebSocket (`data` is its serialized form)."""

    request: spb.SignalRequest = attrs.field(hash=False)  # protobuf messages are unhashable

    @property
    def data(self) -> bytes:
        """The request serialized: what goes on the signal WebSocket."""
        return self.request.SerializeToString(deterministic=True)


@attrs.frozen(kw_only=True)
@plain_repr
class SendDataTrackFrame:
    """Send `packets` (one frame) on `_data_track`, in order, all of them or none."""

    pub_handle: int
    sid: str
    frame_number: int
    packets: tuple[bytes, ...] = attrs.field(repr=lambda p: f"<{len(p)} packets>")

    @property
    def size(self) -> int:
        """Bytes of all the packets together."""
        return sum(len(p) for p in self.packets)


@attrs.frozen(kw_only=True)
@plain_repr
class DataTrackPublished:
    """Our publish of `pub_handle` succeeded; frames may be pushed."""

    pub_handle: int
    info: DataTrackInfo


@attrs.frozen(kw_only=True)
@plain_repr
class DataTrackPublishFailed:
    """Our publish of `pub_handle` failed; the handle is not used again."""

    pub_handle: int
    name: str
    reason: PublishDataTrackErrorReason
    message: str

    def exception(self) -> PublishDataTrackError:
        """The error for the awaiting `publish_data_track` to raise."""
        return PublishDataTrackError(self.reason, self.message)


@attrs.frozen(kw_only=True)
@plain_repr
class DataTrackRepublished:
    """After a full reconnect the server accepted our track again, under a new SID."""

    pub_handle: int
    info: DataTrackInfo
    previous_sid: str


@attrs.frozen(kw_only=True)
@plain_repr
class DataTrackUnpublished:
    """Our track `pub_handle` ended; pushes now fail with TRACK_UNPUBLISHED."""

    pub_handle: int
    sid: str
    reason: UnpublishReason
    message: str = ""


@attrs.frozen(kw_only=True)
@plain_repr
class RemoteDataTrackPublished:
    """A remote participant's track was discovered (also those present at join)."""

    publisher_identity: str
    info: DataTrackInfo


@attrs.frozen(kw_only=True)
@plain_repr
class RemoteDataTrackUnpublished:
    """A remote track is gone (unpublished, its publisher left, or our session ended)."""

    publisher_identity: str
    sid: str


@attrs.frozen(kw_only=True)
@plain_repr
class RemoteDataTrackSidChanged:
    """A remote track came back with a new SID after its publisher's full reconnect."""

    publisher_identity: str
    previous_sid: str
    info: DataTrackInfo


@attrs.frozen(kw_only=True)
@plain_repr
class DataTrackSubscribed:
    """Our subscription to `sid` is active: the server assigned `sub_handle`."""

    sid: str
    publisher_identity: str
    sub_handle: int


@attrs.frozen(kw_only=True)
@plain_repr
class DataTrackSubscriptionEnded:
    """Our subscription to `sid` ended; `active` says whether it had become active.

    `is_error` is False for the ends a reader treats as a normal end of its stream (we
    cancelled, or the track was unpublished after frames could flow, as in Rust).
    """

    sid: str
    publisher_identity: str
    reason: SubscribeDataTrackErrorReason
    active: bool

    @property
    def is_error(self) -> bool:
        """Whether the reader should see `exception()` rather than a normal end."""
        if self.reason is SubscribeDataTrackErrorReason.CANCELLED:
            return False
        return not (self.reason is SubscribeDataTrackErrorReason.UNPUBLISHED and self.active)

    def exception(self) -> SubscribeDataTrackError:
        """The error for the subscription's reader (raise it if `is_error`)."""
        return SubscribeDataTrackError(self.reason, _SUBSCRIBE_MESSAGES[self.reason])


_SUBSCRIBE_MESSAGES = {
    SubscribeDataTrackErrorReason.UNPUBLISHED: (
        "The track has been unpublished and is no longer available"
    ),
    SubscribeDataTrackErrorReason.TIMEOUT: "Request to subscribe to data track timed-out",
    SubscribeDataTrackErrorReason.DISCONNECTED: "Cannot subscribe to data track when disconnected",
    SubscribeDataTrackErrorReason.CANCELLED: "Subscription to data track cancelled by caller",
    SubscribeDataTrackErrorReason.NOT_ALLOWED: (
        "The publisher does not allow this participant to subscribe to the track"
    ),
}


@attrs.frozen(kw_only=True)
@plain_repr
class DataTrackFrameReceived:
    """A frame of subscribed track `sid` was reassembled.

    If `e2ee` is set the payload is ciphertext: decrypt it with the publisher's key, the key
    index and the IV (protocol-reference-2 1.7). A `Connection` made with `encryption` does
    that before reporting the frame (then `e2ee` is None and the payload plain).
    `timestamp` is the packets' 90 kHz stamp.
    """

    sid: str
    publisher_identity: str
    frame: DataTrackFrame
    frame_number: int
    timestamp: int
    e2ee: E2eeExtension | None = None


@attrs.frozen(kw_only=True)
@plain_repr
class DataTrackFrameDropped:
    """A frame of subscribed track `sid` was lost (see `FrameDropReason`)."""

    sid: str
    publisher_identity: str
    frame_number: int
    reason: FrameDropReason
    received: int
    expected: int | None
    detail: str


@attrs.frozen(kw_only=True)
@plain_repr
class DataTrackPacketDropped:
    """A `_data_track` packet was dropped before reaching a subscription.

    `handle` is the packet's track handle when it could be read, else 0.
    """

    reason: PacketErrorReason
    handle: int
    detail: str


@attrs.frozen(kw_only=True)
@plain_repr
class DataTrackSignalIgnored:
    """A data-track signal message (or part of one) changed nothing. Report or log it.

    `reason`: "unknown-handle" (an answer for a handle we never used or already forgot),
    "late" (an answer after the publish timed out or was cancelled; a success is answered
    with an unpublish request), "unexpected" (an answer our track's state does not expect),
    "invalid-info" (a DataTrackInfo without SID, with a handle outside 1..65535 or an
    unsupported encryption), "conflict" (a SID already published by someone else),
    "too-many-tracks" (over `max_remote_tracks`), "invalid-handle" (a subscriber handle
    outside 1..65535), "unsolicited-handle" (a handle for a track we are not subscribing to)
    and "duplicate-handle" (a second handle for the same track).
    """

    reason: str
    detail: str


DataTrackOutput = (
    SendDataTrackSignal
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


# -- the manager ------------------------------------------------------------------------------


@attrs.define(eq=False)
@plain_repr
class _Queued:
    frame: DataTrackFrame
    e2ee: E2eeExtension | None
    timestamp: int


@attrs.define(eq=False)
@plain_repr
class _LocalTrack:
    handle: int
    name: str
    uses_e2ee: bool
    frame_encoding: tpb.DataTrackFrameEncoding | None
    schema: tpb.DataTrackSchemaId | None
    packetizer: Packetizer
    state: PublishState = PublishState.PENDING
    sid: str = ""
    requested: bool = True  # a publish request of this session awaits its answer
    queue: deque[_Queued] = attrs.Factory(deque)
    queued_bytes: int = 0

    def info(self) -> DataTrackInfo:
        return DataTrackInfo(self.sid, self.name, self.uses_e2ee, pub_handle=self.handle)

    def wire_info(self) -> tpb.DataTrackInfo:
        info = tpb.DataTrackInfo(
            pub_handle=self.handle,
            sid=self.sid,
            name=self.name,
            encryption=cast("dpb.Encryption.Type", _GCM if self.uses_e2ee else _NONE),
        )
        if self.frame_encoding is not None:
            info.frame_encoding.CopyFrom(self.frame_encoding)
        if self.schema is not None:
            info.schema.CopyFrom(self.schema)
        return info


@attrs.define(eq=False)
@plain_repr
class _RemoteTrack:
    key: int  # stable across SID changes: names the subscribe timer
    info: DataTrackInfo
    publisher_identity: str
    wire: tpb.DataTrackInfo
    max_partial_frames: int
    subscription: SubscriptionState = SubscriptionState.NONE
    sub_handle: int | None = None
    depacketizer: Depacketizer | None = None
    was_active: bool = False
    allowed: bool | None = None  # the last SubscriptionPermissionUpdate about it


def _bound(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"DataTrackManager.{name} must be an int of at least {minimum}")
    return value


def _require_str(value: object, what: str, call: str) -> str:
    if not isinstance(value, str):
        raise LocalProtocolError(
            f"{call}: {what} must be str, not {type(value).__name__}", call=call
        )
    return value


def _require_handle(value: object, call: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LocalProtocolError(
            f"{call}: pub_handle must be an int, not {type(value).__name__}", call=call
        )
    return value


def _info_problem(wire: tpb.DataTrackInfo) -> str:
    if not wire.sid:
        return "a data track without SID"
    if not 0 < wire.pub_handle <= _MAX_HANDLE:
        return f"data track {wire.sid} has pub_handle {wire.pub_handle}, outside 1..65535"
    if wire.encryption not in (_NONE, _GCM):
        return f"data track {wire.sid} uses encryption type {wire.encryption}, not NONE or GCM"
    return ""


def _same_publication(a: tpb.DataTrackInfo, b: tpb.DataTrackInfo) -> bool:
    """Name, encryption, frame encoding and schema agree (Rust `handle_sid_reassigned`)."""
    return (
        a.name == b.name
        and a.encryption == b.encryption
        and a.HasField("frame_encoding") == b.HasField("frame_encoding")
        and a.frame_encoding == b.frame_encoding
        and a.HasField("schema") == b.HasField("schema")
        and a.schema == b.schema
    )


class DataTrackManager(Outputs[DataTrackOutput]):
    """Both sides of data tracks for one local participant (see the module docstring).

    After every call, `drain()` the outputs, pull `frames_to_send()` when the `_data_track`
    channel can take more, and re-arm from `get_timer()`. Not thread-safe.
    """

    def __init__(
        self,
        *,
        publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT,
        subscribe_timeout: float = DEFAULT_SUBSCRIBE_TIMEOUT,
        max_queued_frames: int = DEFAULT_MAX_QUEUED_FRAMES,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        max_partial_frames: int = DEFAULT_MAX_PARTIAL_FRAMES,
        max_packets_per_frame: int = DEFAULT_MAX_PACKETS_PER_FRAME,
        max_remembered_frames: int = DEFAULT_MAX_REMEMBERED_FRAMES,
        max_published_tracks: int = DEFAULT_MAX_PUBLISHED_TRACKS,
        max_remote_tracks: int = DEFAULT_MAX_REMOTE_TRACKS,
        mtu: int = TRANSPORT_MTU,
        timestamp_base_factory: Callable[[], int] | None = None,
    ) -> None:
        """Args:
        publish_timeout: seconds to wait for the answer to a publish (10, Rust and JS).
        subscribe_timeout: seconds to wait for a subscriber handle (10, Rust and JS).
        max_queued_frames: frames `try_push` may queue per track (16, Rust
            `FRAME_BUFFER_COUNT`).
        max_queued_bytes: payload bytes queued over all tracks (64 MiB, ours: 16 frames of
            the largest frame a receiver reassembles, 2 MB, are 32 MB for one track).
        max_partial_frames: frames each subscription reassembles at once (1, the SDKs'
            default; per track with `set_pipeline_options`).
        max_packets_per_frame: packets of one frame, both ways (128, Rust/JS
            `MAX_BUFFER_PACKETS`): a larger frame is refused by `try_push` and dropped on
            receipt.
        max_remembered_frames: ended frame numbers each subscription remembers, so late
            packets are dropped rather than start a frame (64, ours).
        max_published_tracks: our tracks pending or published at once (1024, ours; the server
            allows 65 535 handles per publisher).
        max_remote_tracks: remote tracks tracked at once (4096, ours); more are ignored and
            reported.
        mtu: the largest packet (16 000, Rust `TRANSPORT_MTU`; above 40).
        timestamp_base_factory: the 90 kHz timestamp's value when a track is published (once
            per track); the SDKs draw it at random (`lambda: secrets.randbits(32)`), the
            default is 0.

        Raises ValueError for a timeout that is not a positive number or a bound below 1.
        """
        for name, value in (
            ("publish_timeout", publish_timeout),
            ("subscribe_timeout", subscribe_timeout),
        ):
            if not is_seconds(value):
                raise ValueError(f"DataTrackManager.{name} must be a positive number of seconds")
        self.publish_timeout = float(publish_timeout)
        self.subscribe_timeout = float(subscribe_timeout)
        self.max_queued_frames = _bound("max_queued_frames", max_queued_frames)
        self.max_queued_bytes = _bound("max_queued_bytes", max_queued_bytes)
        self.max_partial_frames = _bound("max_partial_frames", max_partial_frames)
        self.max_packets_per_frame = _bound("max_packets_per_frame", max_packets_per_frame)
        self.max_remembered_frames = _bound("max_remembered_frames", max_remembered_frames)
        self.max_published_tracks = _bound("max_published_tracks", max_published_tracks)
        self.max_remote_tracks = _bound("max_remote_tracks", max_remote_tracks)
        self.mtu = _bound("mtu", mtu, MAX_HEADER_SIZE + 1)
        super().__init__(SendDataTrackSignal)
        self._timestamp_base = timestamp_base_factory or (lambda: 0)
        self.phase = SessionPhase.IDLE
        self.local_identity = ""
        self._last_handle = 0
        self._local: dict[int, _LocalTrack] = {}
        self._abandoned: set[int] = set()  # timed out or cancelled: a late success is undone
        self._unpublishing: set[int] = set()  # we asked; the server's answer is expected
        self._queued_bytes = 0
        self._cursor = 0  # the handle `frames_to_send` served last
        self._remote: dict[str, _RemoteTrack] = {}
        self._by_handle: dict[int, str] = {}  # subscriber handle -> SID
        self._publishers: dict[str, tuple[str, int]] = {}  # identity -> (SID, version)
        self._withdrawing: set[str] = set()  # unsolicited handles we asked the server to drop
        self._unrouted: dict[str, int] = {}  # the last snapshot's unsolicited SID -> handle
        self._keys = 0

    # -- time (`drain()` and `get_timer()` are `Outputs`') -----------------------------------

    def handle_timer(self, now: float) -> None:
        """Fire every deadline due at `now`: publish and subscribe timeouts. Early or
        repeated calls are harmless."""
        for key in self._deadlines.pop_due(now):
            kind, ident = cast(tuple[str, int], key)
            if kind == _PUBLISH:
                track = self._local[ident]
                self._abandoned.add(ident)
                message = f"no answer from the server within {self.publish_timeout:g}s"
                if track.state is PublishState.PENDING:
                    self._fail_publish(track, PublishInput.TIMED_OUT, _Reason.TIMEOUT, message)
                else:
                    self._end_local(track, PublishInput.TIMED_OUT, _Unpub.REPUBLISH_FAILED, message)
            else:
                remote = next(t for t in self._remote.values() if t.key == ident)
                reason = (
                    SubscribeDataTrackErrorReason.NOT_ALLOWED
                    if remote.allowed is False
                    else SubscribeDataTrackErrorReason.TIMEOUT
                )
                self._end_subscription(remote, SubscriptionInput.TIMED_OUT, reason)

    @property
    def queued_bytes(self) -> int:
        """Payload bytes queued by `try_push` over all tracks, not yet pulled."""
        return self._queued_bytes

    def frames_to_send(self, *, max_frames: int | None = None) -> list[SendDataTrackFrame]:
        """Packetize and return queued frames, at most `max_frames` (None: all), taking the
        tracks in turn. Send each result's packets in order on `_data_track`, all or none."""
        if max_frames is not None and (
            isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 0
        ):
            raise LocalProtocolError(
                "frames_to_send: max_frames must be None or a non-negative int",
                call="frames_to_send",
            )
        out: list[SendDataTrackFrame] = []
        while max_frames is None or len(out) < max_frames:
            ready = sorted(h for h, t in self._local.items() if t.queue)
            if not ready:
                break
            handle = min((h for h in ready if h > self._cursor), default=ready[0])
            self._cursor = handle
            track = self._local[handle]
            queued = track.queue.popleft()
            size = len(queued.frame.payload)
            track.queued_bytes -= size
            self._queued_bytes -= size
            packetizer = track.packetizer
            number = packetizer.frame_number
            packets = packetizer.packetize(
                queued.frame.payload,
                timestamp=queued.timestamp,
                user_timestamp=queued.frame.user_timestamp,
                e2ee=queued.e2ee,
            )
            out.append(
                SendDataTrackFrame(
                    pub_handle=handle,
                    sid=track.sid,
                    frame_number=number,
                    packets=tuple(p.encode() for p in packets),
                )
            )
        return out

    # -- the session ------------------------------------------------------------------------

    def joined(
        self, local_identity: str, other_participants: Iterable[ppb.ParticipantInfo], *, now: float
    ) -> None:
        """A `JoinResponse` arrived: the first join, or the one ending a full reconnect.

        `other_participants` is its list (a full snapshot). After a full reconnect our tracks
        are republished and our subscriptions re-sent.
        """
        check_verb("joined", self.phase)
        _require_str(local_identity, "local_identity", "joined")
        rejoin = self.phase is SessionPhase.REJOINING
        self.phase = advance(SESSION_TRANSITIONS, self.phase, SessionInput.JOIN)
        self.local_identity = local_identity
        latest = latest_per_identity(other_participants, local_identity)
        self._publishers = {}
        gone = {t.publisher_identity for t in self._remote.values()} - set(latest)
        for identity in sorted(gone):
            self._apply(identity, None, resubscribe=False)
        for identity, info in latest.items():
            if info.state == _DISCONNECTED:
                self._apply(identity, None, resubscribe=False)
                continue
            self._publishers[identity] = (info.sid, info.version)
            self._apply(identity, list(info.data_tracks), resubscribe=False)
        if not rejoin:
            return
        for track in sorted(self._local.values(), key=lambda t: t.handle):
            track.requested = True
            self._deadlines.set((_PUBLISH, track.handle), now + self.publish_timeout)
            self._send(_publish_request(track))
        for remote in self._remote.values():
            if remote.subscription is not SubscriptionState.NONE:
                self._send(_subscription_request(remote.info.sid, subscribe=True))

    def reconnecting(self, *, full: bool, now: float) -> None:
        """The session was interrupted. `full=False`: it is being resumed (everything is
        kept; requests wait for `resumed()`). `full=True`: a new join follows; see the module
        docstring."""
        check_verb("reconnecting", self.phase)
        if not full:
            if self.phase is SessionPhase.REJOINING:
                raise LocalProtocolError(
                    "reconnecting(full=False): a full reconnect is already under way",
                    call="reconnecting",
                    state=self.phase.name,
                )
            self.phase = advance(SESSION_TRANSITIONS, self.phase, SessionInput.RESUME)
            return
        self.phase = advance(SESSION_TRANSITIONS, self.phase, SessionInput.REJOIN)
        for track in sorted(self._local.values(), key=lambda t: t.handle):
            self._deadlines.cancel((_PUBLISH, track.handle))
            if track.state is PublishState.PENDING:
                message = "the session is being re-established (full reconnect)"
                self._fail_publish(
                    track, PublishInput.CONNECTION_LOST, _Reason.DISCONNECTED, message
                )
                continue
            track.state = advance(PUBLISH_TRANSITIONS, track.state, PublishInput.CONNECTION_LOST)
            track.requested = False
            self._discard_queue(track)
        self._abandoned.clear()
        self._unpublishing.clear()
        self._deferred.clear()
        self._withdrawing.clear()
        self._unrouted.clear()
        for remote in self._remote.values():
            self._withdraw_handle(remote, "the session is being re-established")

    def resumed(self, *, now: float) -> None:
        """The resume completed: requests made meanwhile are sent now."""
        check_verb("resumed", self.phase)
        self.phase = advance(SESSION_TRANSITIONS, self.phase, SessionInput.RESUMED)
        self._send_deferred()

    def disconnected(self, *, now: float) -> None:
        """The session ended: every publish, track and subscription ends (DISCONNECTED)."""
        if self.phase is SessionPhase.CLOSED:
            return
        self.phase = advance(SESSION_TRANSITIONS, self.phase, SessionInput.CLOSE)
        message = "the session ended"
        for track in sorted(self._local.values(), key=lambda t: t.handle):
            if track.state is PublishState.PENDING:
                self._fail_publish(track, PublishInput.CLOSE, _Reason.DISCONNECTED, message)
            else:
                self._end_local(track, PublishInput.CLOSE, _Unpub.DISCONNECTED, message)
        for sid in list(self._remote):
            self._remove_remote(sid, SubscribeDataTrackErrorReason.DISCONNECTED)
        self._abandoned.clear()
        self._unpublishing.clear()
        self._deferred.clear()
        self._publishers.clear()
        self._withdrawing.clear()
        self._unrouted.clear()
        self._deadlines.clear()

    def sync_state_publish_data_tracks(self) -> list[tpb.PublishDataTrackResponse]:
        """`SyncState.publish_data_tracks` for a resume: one entry per published track."""
        return [
            tpb.PublishDataTrackResponse(info=t.wire_info())
            for t in sorted(self._local.values(), key=lambda t: t.handle)
            if t.state is PublishState.PUBLISHED
        ]

    # -- publishing -------------------------------------------------------------------------

    def publish_data_track(
        self,
        *,
        name: str,
        now: float,
        uses_e2ee: bool = False,
        frame_encoding: tpb.DataTrackFrameEncoding | None = None,
        schema: tpb.DataTrackSchemaId | None = None,
    ) -> int:
        """Ask the server to publish a track; returns its `pub_handle`.

        The outcome follows as `DataTrackPublished` or `DataTrackPublishFailed` with that
        handle. `uses_e2ee` asks for GCM encryption (then every pushed frame must carry its
        E2EE extension). The name is checked by the server (1-256 bytes, unique per
        publisher). Raises `LocalProtocolError`, changing nothing, outside JOINED, for a name
        that is not str or not valid Unicode, for wrong types, at `max_published_tracks`, or
        when all 65 535 handles were used (Rust's LimitReached).
        """
        call = "publish_data_track"
        check_verb(call, self.phase)
        _require_str(name, "name", call)
        try:
            name.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise LocalProtocolError(f"{call}: the name is not valid Unicode", call=call) from exc
        if not isinstance(uses_e2ee, bool):
            raise LocalProtocolError(f"{call}: uses_e2ee must be a bool", call=call)
        if frame_encoding is not None and not isinstance(
            frame_encoding, tpb.DataTrackFrameEncoding
        ):
            raise LocalProtocolError(
                f"{call}: frame_encoding must be a DataTrackFrameEncoding", call=call
            )
        if schema is not None and not isinstance(schema, tpb.DataTrackSchemaId):
            raise LocalProtocolError(f"{call}: schema must be a DataTrackSchemaId", call=call)
        now = require_now(now, call)
        if len(self._local) >= self.max_published_tracks:
            raise LocalProtocolError(
                f"{call}: {len(self._local)} data tracks are already published or pending "
                "(max_published_tracks)",
                call=call,
            )
        if self._last_handle >= _MAX_HANDLE:
            raise LocalProtocolError(
                f"{call}: LimitReached: all {_MAX_HANDLE} data track handles of this "
                "participant were used (handles are never reused)",
                call=call,
            )
        base = self._timestamp_base()
        if isinstance(base, bool) or not isinstance(base, int):
            raise LocalProtocolError(
                f"{call}: timestamp_base_factory returned {type(base).__name__}, not int", call=call
            )
        self._last_handle += 1
        track = _LocalTrack(
            handle=self._last_handle,
            packetizer=Packetizer(
                self._last_handle, mtu=self.mtu, epoch=now, timestamp_base=base & 0xFFFF_FFFF
            ),
            name=name,
            uses_e2ee=uses_e2ee,
            frame_encoding=None if frame_encoding is None else _copy(frame_encoding),
            schema=None if schema is None else _copy(schema),
        )
        self._local[track.handle] = track
        self._deadlines.set((_PUBLISH, track.handle), now + self.publish_timeout)
        self._send(_publish_request(track))
        return track.handle

    def unpublish_data_track(self, pub_handle: int, *, now: float) -> None:
        """Unpublish our track (livekit.rtc `LocalDataTrack.unpublish`). Idempotent.

        A publish still pending is cancelled (`DataTrackPublishFailed` CANCELLED; a success
        arriving later is undone). Raises `LocalProtocolError` for a handle never allocated.
        """
        call = "unpublish_data_track"
        self._known_handle(_require_handle(pub_handle, call), call)
        track = self._local.get(pub_handle)
        if track is None:
            return
        if track.state is PublishState.PENDING:
            self._abandoned.add(pub_handle)
            message = "the publish was cancelled"
            self._fail_publish(track, PublishInput.UNPUBLISH, _Reason.CANCELLED, message)
            return
        if track.state is PublishState.PUBLISHED:
            self._unpublishing.add(pub_handle)
            self._send(_unpublish_request(pub_handle))
        elif track.requested:  # republishing, request out: a late success is undone
            self._abandoned.add(pub_handle)
        self._end_local(track, PublishInput.UNPUBLISH, _Unpub.LOCAL, "")

    def try_push(
        self,
        pub_handle: int,
        frame: DataTrackFrame,
        *,
        now: float,
        e2ee: E2eeExtension | None = None,
    ) -> None:
        """Queue `frame` on our published track (livekit.rtc `LocalDataTrack.try_push`).

        `e2ee` is the frame's key index and IV when the track uses E2EE (the payload is then
        the ciphertext and tag); it must be given exactly then. Raises `PushFrameError`
        (QUEUE_FULL, TRACK_UNPUBLISHED) or `LocalProtocolError` (a handle never published or
        still pending, wrong types, a frame over `max_packets_per_frame` packets); nothing is
        queued then.
        """
        call = "try_push"
        if not isinstance(frame, DataTrackFrame):
            raise LocalProtocolError(
                f"{call}: frame must be a DataTrackFrame, not {type(frame).__name__}", call=call
            )
        if e2ee is not None and not isinstance(e2ee, E2eeExtension):
            raise LocalProtocolError(f"{call}: e2ee must be an E2eeExtension or None", call=call)
        require_now(now, call)
        self._known_handle(_require_handle(pub_handle, call), call)
        track = self._local.get(pub_handle)
        if track is None:
            raise PushFrameError(
                PushFrameErrorReason.TRACK_UNPUBLISHED,
                frame,
                f"data track {pub_handle} is no longer published",
            )
        if track.state is PublishState.PENDING:
            raise LocalProtocolError(
                f"{call}: data track {pub_handle} is not published yet", call=call, state="pending"
            )
        if track.state is PublishState.REPUBLISHING:
            raise PushFrameError(
                PushFrameErrorReason.QUEUE_FULL,
                frame,
                f"data track {pub_handle} is being republished after a reconnect",
            )
        if track.uses_e2ee != (e2ee is not None):
            needs = "uses E2EE: give the frame's e2ee" if track.uses_e2ee else "does not use E2EE"
            raise LocalProtocolError(f"{call}: data track {pub_handle} {needs}", call=call)
        packetizer = track.packetizer
        size = len(frame.payload)
        user_timestamp = frame.user_timestamp is not None
        count = packetizer.packet_count(size, user_timestamp=user_timestamp, e2ee=e2ee is not None)
        if count > self.max_packets_per_frame:
            raise LocalProtocolError(
                f"{call}: a {size}-byte frame needs {count} packets, over the "
                f"{self.max_packets_per_frame} a receiver reassembles (max_packets_per_frame)",
                call=call,
            )
        if not size:
            return  # as Rust: an empty frame becomes no packets
        if len(track.queue) >= self.max_queued_frames:
            raise PushFrameError(
                PushFrameErrorReason.QUEUE_FULL,
                frame,
                f"data track {pub_handle} already has {len(track.queue)} frames queued",
            )
        if self._queued_bytes + size > self.max_queued_bytes:
            raise PushFrameError(
                PushFrameErrorReason.QUEUE_FULL,
                frame,
                f"{self._queued_bytes} bytes are queued; {size} more would pass max_queued_bytes",
            )
        track.queue.append(_Queued(frame, e2ee, packetizer.clock(now)))
        track.queued_bytes += size
        self._queued_bytes += size

    def publish_state(self, pub_handle: int) -> PublishState:
        """The state of our track `pub_handle` (UNPUBLISHED once it ended, or if unknown)."""
        track = self._local.get(pub_handle)
        return PublishState.UNPUBLISHED if track is None else track.state

    def is_published(self, pub_handle: int) -> bool:
        """livekit.rtc `LocalDataTrack.is_published()`: published or being republished."""
        return self.publish_state(pub_handle) in (PublishState.PUBLISHED, PublishState.REPUBLISHING)

    def local_info(self, pub_handle: int) -> DataTrackInfo | None:
        """Our track's info once accepted (its SID changes after a full reconnect)."""
        track = self._local.get(pub_handle)
        return None if track is None or not track.sid else track.info()

    def queued_frames(self, pub_handle: int) -> int:
        """Frames queued on our track and not yet pulled."""
        track = self._local.get(pub_handle)
        return 0 if track is None else len(track.queue)

    # -- subscribing ------------------------------------------------------------------------

    @property
    def remote_tracks(self) -> tuple[tuple[str, DataTrackInfo], ...]:
        """(publisher identity, info) of every known remote track, in discovery order."""
        return tuple((t.publisher_identity, t.info) for t in self._remote.values())

    def remote_info(self, sid: str) -> DataTrackInfo | None:
        """The info of remote track `sid` (None if it is not known)."""
        remote = self._remote.get(sid)
        return None if remote is None else remote.info

    def knows_remote_track(self, sid: str) -> bool:
        """Whether `sid` is a remote data track known here (a `SubscriptionPermissionUpdate`
        names media and data tracks alike; the session routes it by this)."""
        return sid in self._remote

    def subscription_state(self, sid: str) -> SubscriptionState:
        """Our subscription to remote track `sid` (NONE if none, or `sid` is unknown)."""
        remote = self._remote.get(sid)
        return SubscriptionState.NONE if remote is None else remote.subscription

    def subscriber_handle(self, sid: str) -> int | None:
        """The handle the server routes `sid`'s packets under, if one is assigned now."""
        remote = self._remote.get(sid)
        return None if remote is None else remote.sub_handle

    def subscribe(self, sid: str, *, now: float) -> None:
        """Subscribe to remote track `sid` (livekit.rtc `RemoteDataTrack.subscribe`).

        `DataTrackSubscribed` follows, or `DataTrackSubscriptionEnded` (at once with
        UNPUBLISHED if the track is not known). Subscribing again is a no-op. Raises
        `LocalProtocolError` outside JOINED or for a `sid` that is not str.
        """
        call = "subscribe"
        check_verb(call, self.phase)
        _require_str(sid, "sid", call)
        deadline = require_now(now, call) + self.subscribe_timeout
        remote = self._remote.get(sid)
        if remote is None:
            ended = DataTrackSubscriptionEnded(
                sid=sid,
                publisher_identity="",
                reason=SubscribeDataTrackErrorReason.UNPUBLISHED,
                active=False,
            )
            self._out.append(ended)
            return
        if remote.subscription is not SubscriptionState.NONE:
            return
        remote.subscription = advance(
            SUBSCRIPTION_TRANSITIONS, remote.subscription, SubscriptionInput.SUBSCRIBE
        )
        remote.was_active = False
        self._withdrawing.discard(sid)
        self._deadlines.set((_SUBSCRIBE, remote.key), deadline)
        self._send(_subscription_request(sid, subscribe=True))
        handle = self._unrouted.pop(sid, None)
        if handle is not None and handle not in self._by_handle:
            # The server routes it to us already (we had let go of it, and it may take our
            # withdrawal and this subscribe together as no change): route it now.
            self._assign(remote, handle)

    def unsubscribe(self, sid: str, *, now: float) -> None:
        """End our subscription to `sid` (`DataTrackSubscriptionEnded` CANCELLED). Idempotent."""
        call = "unsubscribe"
        _require_str(sid, "sid", call)
        remote = self._remote.get(sid)
        if remote is None or remote.subscription is SubscriptionState.NONE:
            return
        if remote.sub_handle is not None:  # see "Withdrawing" in the module docstring
            self._send(_subscription_request(sid, subscribe=False))
            self._withdrawing.add(sid)
            self._unrouted[sid] = remote.sub_handle  # until a snapshot says otherwise
        self._end_subscription(
            remote, SubscriptionInput.UNSUBSCRIBE, SubscribeDataTrackErrorReason.CANCELLED
        )

    def set_pipeline_options(self, sid: str, *, max_partial_frames: int | None = None) -> None:
        """livekit.rtc `RemoteDataTrack.set_pipeline_options`: how many frames of `sid` are
        reassembled at once, now and for later subscriptions (0 is clamped to 1, None keeps
        the value). Partial frames over a lowered bound are dropped and reported. Unknown
        tracks are ignored."""
        call = "set_pipeline_options"
        _require_str(sid, "sid", call)
        if max_partial_frames is None:
            return
        if (
            isinstance(max_partial_frames, bool)
            or not isinstance(max_partial_frames, int)
            or max_partial_frames < 0
        ):
            raise LocalProtocolError(
                f"{call}: max_partial_frames must be a non-negative int", call=call
            )
        remote = self._remote.get(sid)
        if remote is None:
            return
        remote.max_partial_frames = max(1, max_partial_frames)
        if remote.depacketizer is not None:
            drops = remote.depacketizer.set_max_partial_frames(remote.max_partial_frames)
            self._report_drops(remote, drops)

    # -- remote input: signal -------------------------------------------------------------

    def receive_signal(self, message: spb.SignalResponse, *, now: float) -> None:
        """Apply whatever in a `SignalResponse` concerns data tracks (a participant update,
        a publish/unpublish response, subscriber handles, a request response echoing one of
        our data-track requests); anything else is ignored. Never raises for its content."""
        kind = message.WhichOneof("message")
        if kind == "update":
            self.participants_updated(message.update.participants, now=now)
        elif kind == "publish_data_track_response":
            self.publish_response_received(message.publish_data_track_response, now=now)
        elif kind == "unpublish_data_track_response":
            self.unpublish_response_received(message.unpublish_data_track_response, now=now)
        elif kind == "data_track_subscriber_handles":
            self.subscriber_handles_received(message.data_track_subscriber_handles, now=now)
        elif kind == "request_response":
            self.request_response_received(message.request_response, now=now)
        elif kind == "subscription_permission_update":
            self.subscription_permission_changed(message.subscription_permission_update, now=now)

    def _listening(self) -> bool:
        return self.phase in (SessionPhase.JOINED, SessionPhase.RESUMING)

    def participants_updated(self, infos: Iterable[ppb.ParticipantInfo], *, now: float) -> None:
        """A `ParticipantUpdate`: discover, reassign and remove remote tracks."""
        if not self._listening():
            return
        for identity, info in latest_per_identity(infos, self.local_identity).items():
            known = self._publishers.get(identity)
            if known is not None and info.sid == known[0] and info.version < known[1]:
                continue  # an update older than one already applied
            if info.state == _DISCONNECTED:
                if known is not None and info.sid and info.sid != known[0]:
                    continue  # the end of an older session of this identity
                self._publishers.pop(identity, None)
                self._apply(identity, None, resubscribe=True)
            elif (
                known is not None
                and info.sid != known[0]
                and info.state != _ACTIVE
                and not info.data_tracks
            ):
                # A new session of this identity (its full reconnect) that has not
                # republished yet: its tracks wait for the republish, or for it to become
                # active without them.
                self._publishers[identity] = (info.sid, info.version)
            else:
                self._publishers[identity] = (info.sid, info.version)
                self._apply(identity, list(info.data_tracks), resubscribe=True)

    def publish_response_received(
        self, response: tpb.PublishDataTrackResponse, *, now: float
    ) -> None:
        """A `PublishDataTrackResponse`: our publish (or republish) was accepted."""
        if not self._listening():
            return
        wire = response.info
        handle = wire.pub_handle
        problem = _info_problem(wire) if response.HasField("info") else "no info"
        if problem:
            self._ignored("invalid-info", f"publish response: {problem}")
            return
        track = self._local.get(handle)
        if track is None or not track.requested:
            if handle in self._abandoned:
                self._abandoned.discard(handle)
                self._unpublishing.add(handle)
                self._send(_unpublish_request(handle))
                detail = f"publish of handle {handle} answered after it timed out or was cancelled"
                self._ignored("late", detail)
            elif track is None:
                self._ignored("unknown-handle", f"publish response for handle {handle}")
            else:
                self._ignored("unexpected", f"publish response for handle {handle}, not asked")
            return
        self._deadlines.cancel((_PUBLISH, handle))
        track.requested = False
        previous, track.sid = track.sid, wire.sid
        first = track.state is PublishState.PENDING
        track.state = advance(PUBLISH_TRANSITIONS, track.state, PublishInput.ACCEPTED)
        if first:
            self._out.append(DataTrackPublished(pub_handle=handle, info=track.info()))
        else:
            self._out.append(
                DataTrackRepublished(pub_handle=handle, info=track.info(), previous_sid=previous)
            )

    def unpublish_response_received(
        self, response: tpb.UnpublishDataTrackResponse, *, now: float
    ) -> None:
        """An `UnpublishDataTrackResponse`: the answer to ours, or the server's own."""
        if not self._listening():
            return
        handle = response.info.pub_handle
        if handle in self._unpublishing:
            self._unpublishing.discard(handle)
            return
        track = self._local.get(handle)
        if track is None:
            self._ignored("unknown-handle", f"unpublish response for handle {handle}")
        elif track.state is PublishState.PENDING:
            self._ignored("unexpected", f"unpublish response for pending handle {handle}")
        else:
            self._end_local(track, PublishInput.SERVER_UNPUBLISHED, _Unpub.SERVER, "")

    def request_response_received(self, response: spb.RequestResponse, *, now: float) -> bool:
        """A `RequestResponse`. Returns True if it echoes a data-track request (and was
        handled here), False if it belongs to someone else."""
        kind = response.WhichOneof("request")
        if kind == "publish_data_track":
            if self._listening():
                self._publish_refused(response)
            return True
        if kind == "unpublish_data_track":
            handle = response.unpublish_data_track.pub_handle
            if self._listening():
                if handle in self._unpublishing:  # NOT_FOUND: it is gone either way
                    self._unpublishing.discard(handle)
                else:
                    self._ignored("unknown-handle", f"unpublish refusal for handle {handle}")
            return True
        return False

    def _publish_refused(self, response: spb.RequestResponse) -> None:
        handle = response.publish_data_track.pub_handle
        track = self._local.get(handle)
        if track is None or not track.requested:
            if handle in self._abandoned:
                self._abandoned.discard(handle)
                self._ignored("late", f"publish of handle {handle} refused after it ended")
            elif track is None:
                self._ignored("unknown-handle", f"publish refusal for handle {handle}")
            else:
                self._ignored("unexpected", f"publish refusal for handle {handle}, not asked")
            return
        code = int(response.reason)
        reason = (
            PublishDataTrackErrorReason(code)
            if code in _SERVER_REASONS
            else PublishDataTrackErrorReason.UNCLASSIFIED_ERROR
        )
        message = response.message or reason.name
        if reason.value != code:
            message = f"server reason {code}: {message}"
        if track.state is PublishState.PENDING:
            self._fail_publish(track, PublishInput.REFUSED, reason, message)
        else:
            self._end_local(
                track, PublishInput.REFUSED, _Unpub.REPUBLISH_FAILED, f"{reason.name}: {message}"
            )

    def subscription_permission_changed(
        self, update: tpb.SubscriptionPermissionUpdate, *, now: float
    ) -> bool:
        """A `SubscriptionPermissionUpdate`. Returns True if it names a remote data track we
        know (False: a media track, or one we never heard of; nothing changes).

        The server sends one when it first evaluates our subscription and whenever the
        publisher's permissions change its outcome (livekit-server 1.13.5
        `subscribeDataTrack`). `allowed=False` for a track we are subscribing to ends the
        subscription at once (NOT_ALLOWED; the SDKs wait for their 10 s timeout instead). It
        is not withdrawn: see "Withdrawing" in the module docstring.
        """
        remote = self._remote.get(update.track_sid) if self._listening() else None
        if remote is None:
            return False
        remote.allowed = update.allowed
        if not update.allowed and remote.subscription is not SubscriptionState.NONE:
            self._end_subscription(
                remote, SubscriptionInput.NOT_ALLOWED, SubscribeDataTrackErrorReason.NOT_ALLOWED
            )
        return True

    def subscriber_handles_received(
        self, handles: tpb.DataTrackSubscriberHandles, *, now: float
    ) -> None:
        """A `DataTrackSubscriberHandles` snapshot: route packets exactly as it says."""
        if not self._listening():
            return
        assigned: dict[str, int] = {}
        unsolicited: dict[str, int] = {}
        for handle in sorted(handles.sub_handles):
            sid = handles.sub_handles[handle].track_sid
            if not 0 < handle <= _MAX_HANDLE:
                self._ignored("invalid-handle", f"subscriber handle {handle} for {sid}")
                continue
            remote = self._remote.get(sid)
            if remote is None or remote.subscription is SubscriptionState.NONE:
                self._ignored("unsolicited-handle", f"subscriber handle {handle} for {sid}")
                unsolicited.setdefault(sid, handle)
                if sid and sid not in self._withdrawing:  # it has a down track now: withdraw
                    self._withdrawing.add(sid)
                    self._send(_subscription_request(sid, subscribe=False))
                continue
            if sid in assigned:
                self._ignored("duplicate-handle", f"subscriber handle {handle} for {sid}")
                continue
            assigned[sid] = handle
        self._withdrawing &= set(unsolicited)  # the server dropped the others
        self._unrouted = unsolicited
        for remote in self._remote.values():
            if remote.sub_handle is not None and assigned.get(remote.info.sid) != remote.sub_handle:
                self._withdraw_handle(remote, "the server withdrew its subscriber handle")
        for sid, handle in assigned.items():
            remote = self._remote[sid]
            if remote.sub_handle != handle:
                self._assign(remote, handle)

    def _assign(self, remote: _RemoteTrack, handle: int) -> None:
        """Route `handle`'s packets to `remote`'s subscription (a new depacketizer)."""
        remote.sub_handle = handle
        self._by_handle[handle] = remote.info.sid
        remote.depacketizer = Depacketizer(
            max_partial_frames=remote.max_partial_frames,
            max_packets_per_frame=self.max_packets_per_frame,
            max_remembered_frames=self.max_remembered_frames,
        )
        first = remote.subscription is SubscriptionState.PENDING
        remote.subscription = advance(
            SUBSCRIPTION_TRANSITIONS, remote.subscription, SubscriptionInput.HANDLE_ASSIGNED
        )
        if first:
            self._deadlines.cancel((_SUBSCRIBE, remote.key))
            remote.was_active = True
            self._out.append(
                DataTrackSubscribed(
                    sid=remote.info.sid,
                    publisher_identity=remote.publisher_identity,
                    sub_handle=handle,
                )
            )

    # -- remote input: packets -------------------------------------------------------------

    def receive_packet(self, data: bytes | bytearray | memoryview | str, *, now: float) -> None:
        """One message from the `_data_track` channel. Never raises for its content: a
        packet that cannot be read or routed is reported as `DataTrackPacketDropped`.

        Raises `LocalProtocolError` only if `data` is neither bytes-like nor str.
        """
        if isinstance(data, str):
            self._packet_dropped(PacketErrorReason.NOT_BINARY, 0, "a text message")
            return
        if not isinstance(data, bytes | bytearray | memoryview):
            raise LocalProtocolError(
                f"receive_packet: data must be bytes, not {type(data).__name__}",
                call="receive_packet",
            )
        raw = bytes(data)
        try:
            packet = DataTrackPacket.decode(raw)
        except DataTrackPacketError as exc:
            handle = int.from_bytes(raw[2:4], "big") if len(raw) >= 4 else 0
            self._packet_dropped(exc.reason, handle, str(exc))
            return
        sid = self._by_handle.get(packet.handle)
        if sid is None:
            self._packet_dropped(
                PacketErrorReason.UNKNOWN_HANDLE,
                packet.handle,
                f"no subscription has handle {packet.handle}",
            )
            return
        remote = self._remote[sid]
        assert remote.depacketizer is not None
        for result in remote.depacketizer.push(packet):
            if isinstance(result, DroppedFrame):
                self._report_drops(remote, [result])
            elif remote.info.uses_e2ee and result.e2ee is None:
                drop = DroppedFrame(
                    frame_number=result.frame_number,
                    reason=FrameDropReason.MISSING_E2EE,
                    received=1,
                    detail="a frame without its E2EE extension on an encrypted track",
                )
                self._report_drops(remote, [drop])
            else:
                frame = DataTrackFrame(result.payload, result.user_timestamp)
                self._out.append(
                    DataTrackFrameReceived(
                        sid=sid,
                        publisher_identity=remote.publisher_identity,
                        frame=frame,
                        frame_number=result.frame_number,
                        timestamp=result.timestamp,
                        e2ee=result.e2ee,
                    )
                )

    # -- internals ------------------------------------------------------------------------

    def _send(self, request: spb.SignalRequest) -> None:
        # Requests are made only while the server has our session: verbs check the phase,
        # and what a remote input asks for comes while JOINED or RESUMING (`_listening`).
        if self.phase is SessionPhase.JOINED:
            self._out.append(SendDataTrackSignal(request=request))
        else:
            assert self.phase is SessionPhase.RESUMING, self.phase
            self._deferred.append(request)

    def _ignored(self, reason: str, detail: str) -> None:
        self._out.append(DataTrackSignalIgnored(reason=reason, detail=detail))

    def _packet_dropped(self, reason: PacketErrorReason, handle: int, detail: str) -> None:
        self._out.append(DataTrackPacketDropped(reason=reason, handle=handle, detail=detail))

    def _known_handle(self, handle: int, call: str) -> None:
        if not 0 < handle <= self._last_handle:
            raise LocalProtocolError(
                f"{call}: no data track was ever published with handle {handle}", call=call
            )

    def _discard_queue(self, track: _LocalTrack) -> None:
        self._queued_bytes -= track.queued_bytes
        track.queued_bytes = 0
        track.queue.clear()

    def _fail_publish(
        self,
        track: _LocalTrack,
        event: PublishInput,
        reason: PublishDataTrackErrorReason,
        message: str,
    ) -> None:
        track.state = advance(PUBLISH_TRANSITIONS, track.state, event)
        self._deadlines.cancel((_PUBLISH, track.handle))
        del self._local[track.handle]
        self._out.append(
            DataTrackPublishFailed(
                pub_handle=track.handle, name=track.name, reason=reason, message=message
            )
        )

    def _end_local(
        self, track: _LocalTrack, event: PublishInput, reason: UnpublishReason, message: str
    ) -> None:
        track.state = advance(PUBLISH_TRANSITIONS, track.state, event)
        self._deadlines.cancel((_PUBLISH, track.handle))
        self._discard_queue(track)
        del self._local[track.handle]
        self._out.append(
            DataTrackUnpublished(
                pub_handle=track.handle, sid=track.sid, reason=reason, message=message
            )
        )

    def _apply(
        self, identity: str, listing: list[tpb.DataTrackInfo] | None, *, resubscribe: bool
    ) -> None:
        """Make `identity`'s tracks what `listing` says (None: it has none)."""
        listed: dict[str, tpb.DataTrackInfo] = {}
        for wire in listing or ():
            problem = _info_problem(wire)
            if problem:
                self._ignored("invalid-info", f"{identity!r}: {problem}")
            elif wire.sid not in listed:
                listed[wire.sid] = wire
        before = [sid for sid, t in self._remote.items() if t.publisher_identity == identity]
        for sid, wire in listed.items():
            existing = self._remote.get(sid)
            if existing is not None:
                if existing.publisher_identity != identity:
                    detail = f"{sid} listed by {identity!r}, published by "
                    self._ignored("conflict", detail + repr(existing.publisher_identity))
                continue
            moved = next(
                (
                    t
                    for t in self._remote.values()
                    if t.publisher_identity == identity
                    and t.info.pub_handle == wire.pub_handle
                    and t.info.sid not in listed
                    and _same_publication(t.wire, wire)
                ),
                None,
            )
            if moved is not None:
                self._reassign(moved, wire, resubscribe=resubscribe)
            elif len(self._remote) >= self.max_remote_tracks:
                detail = f"{sid} of {identity!r}: {len(self._remote)} remote tracks are known"
                self._ignored("too-many-tracks", detail)
            else:
                self._keys += 1
                info = DataTrackInfo(
                    wire.sid, wire.name, wire.encryption == _GCM, pub_handle=wire.pub_handle
                )
                self._remote[sid] = _RemoteTrack(
                    key=self._keys,
                    info=info,
                    publisher_identity=identity,
                    wire=_copy(wire),
                    max_partial_frames=self.max_partial_frames,
                )
                self._out.append(RemoteDataTrackPublished(publisher_identity=identity, info=info))
        for sid in before:
            if sid in self._remote and sid not in listed:
                self._remove_remote(sid, SubscribeDataTrackErrorReason.UNPUBLISHED)

    def _reassign(
        self, remote: _RemoteTrack, wire: tpb.DataTrackInfo, *, resubscribe: bool
    ) -> None:
        previous = remote.info.sid
        del self._remote[previous]
        self._withdraw_handle(remote, "its publisher republished it under a new SID")
        remote.info = attrs.evolve(remote.info, sid=wire.sid)
        remote.wire = _copy(wire)
        self._remote[wire.sid] = remote
        self._out.append(
            RemoteDataTrackSidChanged(
                publisher_identity=remote.publisher_identity,
                previous_sid=previous,
                info=remote.info,
            )
        )
        if resubscribe and remote.subscription is not SubscriptionState.NONE:
            self._send(_subscription_request(wire.sid, subscribe=True))

    def _withdraw_handle(self, remote: _RemoteTrack, why: str) -> None:
        """Stop routing `remote`'s packets (its subscription, if any, stays)."""
        if remote.sub_handle is None:
            return
        del self._by_handle[remote.sub_handle]
        remote.sub_handle = None
        depacketizer, remote.depacketizer = remote.depacketizer, None
        assert depacketizer is not None
        self._report_drops(remote, depacketizer.reset(why))

    def _remove_remote(self, sid: str, reason: SubscribeDataTrackErrorReason) -> None:
        remote = self._remote[sid]
        if remote.subscription is not SubscriptionState.NONE:
            event = (
                SubscriptionInput.CLOSE
                if reason is SubscribeDataTrackErrorReason.DISCONNECTED
                else SubscriptionInput.UNPUBLISHED
            )
            self._end_subscription(remote, event, reason)
        del self._remote[sid]
        self._out.append(
            RemoteDataTrackUnpublished(publisher_identity=remote.publisher_identity, sid=sid)
        )

    def _end_subscription(
        self,
        remote: _RemoteTrack,
        event: SubscriptionInput,
        reason: SubscribeDataTrackErrorReason,
    ) -> None:
        remote.subscription = advance(SUBSCRIPTION_TRANSITIONS, remote.subscription, event)
        self._deadlines.cancel((_SUBSCRIBE, remote.key))
        if remote.sub_handle is not None:
            del self._by_handle[remote.sub_handle]
            remote.sub_handle = None
        remote.depacketizer = None  # its partial frames go with the subscription
        self._out.append(
            DataTrackSubscriptionEnded(
                sid=remote.info.sid,
                publisher_identity=remote.publisher_identity,
                reason=reason,
                active=remote.was_active,
            )
        )

    def _report_drops(self, remote: _RemoteTrack, drops: Iterable[DroppedFrame]) -> None:
        for drop in drops:
            self._out.append(
                DataTrackFrameDropped(
                    sid=remote.info.sid,
                    publisher_identity=remote.publisher_identity,
                    frame_number=drop.frame_number,
                    reason=drop.reason,
                    received=drop.received,
                    expected=drop.expected,
                    detail=drop.detail,
                )
            )


_Reason = PublishDataTrackErrorReason
_Unpub = UnpublishReason


_M = TypeVar("_M", tpb.DataTrackFrameEncoding, tpb.DataTrackSchemaId, tpb.DataTrackInfo)


def _copy(message: _M) -> _M:
    copy = type(message)()
    copy.CopyFrom(message)
    return copy


def _publish_request(track: _LocalTrack) -> spb.SignalRequest:
    request = tpb.PublishDataTrackRequest(
        pub_handle=track.handle,
        name=track.name,
        encryption=cast("dpb.Encryption.Type", _GCM if track.uses_e2ee else _NONE),
    )
    if track.frame_encoding is not None:
        request.frame_encoding.CopyFrom(track.frame_encoding)
    if track.schema is not None:
        request.schema.CopyFrom(track.schema)
    return spb.SignalRequest(publish_data_track_request=request)


def _unpublish_request(handle: int) -> spb.SignalRequest:
    request = tpb.UnpublishDataTrackRequest(pub_handle=handle)
    return spb.SignalRequest(unpublish_data_track_request=request)


def _subscription_request(sid: str, *, subscribe: bool) -> spb.SignalRequest:
    update = tpb.UpdateDataSubscription.Update(track_sid=sid, subscribe=subscribe)
    request = tpb.UpdateDataSubscription(updates=[update])
    return spb.SignalRequest(update_data_subscription=request)
