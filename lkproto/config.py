"""Connection settings: every limit and timer default, in one frozen value.

Defaults follow the current official clients (client-sdk-js, rust-sdks); the protocol field or
reason behind each is given beside it.
"""

from __future__ import annotations

import math

import attrs

from lkproto._repr import plain_repr
from lkproto._version import __version__
from lkproto.datatracks import (
    DEFAULT_MAX_PACKETS_PER_FRAME,
    DEFAULT_MAX_PARTIAL_FRAMES,
    DEFAULT_MAX_PUBLISHED_TRACKS,
    DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_MAX_QUEUED_FRAMES,
    DEFAULT_MAX_REMEMBERED_FRAMES,
    DEFAULT_SUBSCRIBE_TIMEOUT,
)
from lkproto.datatracks import DEFAULT_MAX_REMOTE_TRACKS as DEFAULT_MAX_REMOTE_DATA_TRACKS
from lkproto.datatracks import DEFAULT_PUBLISH_TIMEOUT as DEFAULT_DATA_TRACK_PUBLISH_TIMEOUT
from lkproto.e2ee import (
    DEFAULT_MAX_CACHED_RATCHETS,
    DEFAULT_MAX_CLONED_IDENTITIES,
    DEFAULT_RATCHET_RETRY_INTERVAL,
)
from lkproto.rpc import (
    DEFAULT_MAX_HANDLER_TIMEOUT,
    DEFAULT_MAX_ROUND_TRIP_LATENCY,
    DEFAULT_RESPONSE_TIMEOUT,
)
from lkproto.streams import (
    CAP_COMPRESSION_DEFLATE_RAW,
    CLIENT_PROTOCOL_DATA_STREAM_V2,
    DEFAULT_MAX_PAYLOAD_BYTES,
    STREAM_CHUNK_SIZE,
)
from lkproto.tracks import (
    DEFAULT_MAX_LOCAL_PUBLICATIONS,
    DEFAULT_MAX_RECEIVE_SLOTS,
    DEFAULT_MAX_REMEMBERED_SUBSCRIPTION_ERRORS,
    DEFAULT_MAX_REMOTE_TRACKS,
    DEFAULT_MAX_SLOTS_PER_REQUIREMENT,
    DEFAULT_NEGOTIATION_TIMEOUT,
    DEFAULT_PUBLISH_TIMEOUT,
)

__all__ = ["Config"]


@attrs.frozen(kw_only=True)
@plain_repr
class Config:
    """Settings for one `Connection`. Every bound the core enforces lives here."""

    #: Signal protocol version sent in `ClientInfo.protocol`; JS and Rust send 17.
    protocol_version: int = 17
    #: `ClientInfo.client_protocol`, the peer-to-peer feature level the server relays to
    #: every other participant (protocol-reference F.2); peers pick how to talk to us from it.
    #: 0 = RPC v1 packets and uncompressed header/chunk/trailer streams only; 1 = also RPC v2
    #: over `lk.rpc_request`/`lk.rpc_response` text streams; 2 = also single-packet inline
    #: streams (`Header.inline_content`) and the `Header.compression` field. We advertise 2,
    #: as client-sdk-js does, because the core implements all of it: `RpcTable` speaks v2,
    #: `StreamAssembler` decodes inline and compressed streams. Lower it to talk like an older
    #: client (Rust's `use_legacy_data_streams` advertises 1); RPC v2 is then used only if
    #: this is >= 1.
    client_protocol: int = CLIENT_PROTOCOL_DATA_STREAM_V2
    #: `ClientInfo.capabilities` (enum values). CAP_COMPRESSION_DEFLATE_RAW (2): we inflate
    #: raw-deflate streams (inline and chunked; F.2 requires it on top of client_protocol 2
    #: before a peer may compress for us). Remove it to receive only uncompressed streams.
    capabilities: tuple[int, ...] = (CAP_COMPRESSION_DEFLATE_RAW,)
    #: `ClientInfo.version`; the SDK field is always PYTHON (9).
    sdk_version: str = __version__
    #: `ClientInfo.os`, informational.
    os_name: str = ""
    #: `ConnectionSettings.auto_subscribe`: whether the server subscribes us to every remote
    #: track (the adapters pass `RoomOptions.auto_subscribe`, True as in livekit.rtc); the
    #: core's default, False, suits a data-plane client.
    auto_subscribe: bool = False
    #: Seconds to wait for the first signal message (`join`) after opening; JS and Rust use 5.
    join_timeout: float = 5.0
    #: Seconds to wait for a `RequestResponse` to an `UpdateParticipantMetadata`; Rust uses 5.
    metadata_request_timeout: float = 5.0
    #: Most metadata/name/attribute updates awaiting a response at once.
    max_pending_metadata_requests: int = 64
    #: Largest signal (WebSocket) message the adapters reassemble (the core takes whole
    #: messages). A bigger one closes the signal connection with 1009, and a reconnect
    #: follows. A JoinResponse or ParticipantUpdate of a large room is the biggest message.
    max_signal_message_bytes: int = 16 * 1024 * 1024
    #: Events one application subscriber may have waiting in the adapters (an anyio
    #: `events()` stream, a trio `event_channel()`, a threaded `events()` iterator, the
    #: threaded callback backlog); past it the newest is dropped for that subscriber and a
    #: WARNING logged, so a consumer that stops reading costs bounded memory.
    max_queued_events: int = 10_000
    #: Upper bound on one data channel message; SCTP max-message-size default in JS/Rust.
    max_data_message_size: int = 64_000
    #: Bytes of sent reliable packets kept for replay after a resume (oldest evicted first);
    #: those the server acknowledged (`Connection.reliable_delivered`) leave it earlier.
    replay_buffer_bytes: int = 4 * 1024 * 1024
    #: Bytes of data packets queued while a data channel is not yet open.
    max_queued_send_bytes: int = 4 * 1024 * 1024
    #: Seconds a leave (`disconnect()`) waits, at most, for the server to acknowledge the
    #: reliable data already sent (a last `publish_data`, a stream's trailer, the tail of a
    #: `send_file`: a writer returns once the channel holds at most 1 MiB, the adapters' high
    #: mark) before it closes the peer connection; what is unacknowledged then is lost, and
    #: the adapters log a WARNING. No SDK waits at all. 0: leave at once.
    leave_drain_timeout: float = 2.0
    #: Seconds a per-sender receive sequence is remembered for de-duplication (JS: 30 s).
    dedup_ttl: float = 30.0
    #: Most senders tracked for de-duplication; the stalest entry is forgotten beyond this.
    max_dedup_senders: int = 4096

    # -- data streams (protocol-reference C; `lkproto.streams`) --------------------------------
    #: Most bytes in one sent chunk's `content`, and so the step text is cut at (never inside
    #: a UTF-8 character, hence at least 4). STREAM_CHUNK_SIZE = 15 000 in every SDK: under
    #: the ~16 KiB data channel message with room for framing and E2EE (C.2).
    stream_chunk_size: int = STREAM_CHUNK_SIZE
    #: Most payload bytes one received stream may carry, declared or delivered; beyond it the
    #: stream fails with PAYLOAD_TOO_LARGE. JS `maxPayloadByteLength`, 5 GB (C.2).
    max_stream_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    #: Most bytes a compressed stream may inflate to. Inflation is bounded as it runs, so a
    #: decompression bomb never materializes (JS uses the payload cap for both, C.4).
    max_decompressed_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    #: Received stream bytes delivered in `StreamChunkReceived` but not yet reported through
    #: `Connection.stream_consumed` (or `stream_discarded`), across all streams; the stream
    #: that would pass it fails with BUFFER_FULL. A slow reader's backpressure: the Python
    #: SDK's readers buffer without limit (field-notes 1.2). 16 MiB is a thousand plain
    #: chunks and more than one compressed chunk can inflate to. RPC v2 payloads are held
    #: against it too, until the whole request or response has arrived.
    max_buffered_stream_bytes: int = 16 * 1024 * 1024
    #: The share of `max_buffered_stream_bytes` one sender's streams may hold (BUFFER_FULL
    #: beyond it), so one peer's unread streams or unfinished RPC v2 payloads cannot fail
    #: every other participant's streams. None: half of `max_buffered_stream_bytes`.
    max_buffered_stream_bytes_per_sender: int | None = None
    #: Most streams one sender may have open towards us at once; a further header fails that
    #: stream (TOO_MANY_STREAMS). Bounds per-peer state; no SDK limits it.
    max_open_streams_per_sender: int = 64
    #: Ended or dropped stream ids remembered so their late packets are ignored quietly.
    max_remembered_streams: int = 4096
    #: Seconds without a packet after which an open received stream fails (IDLE_TIMEOUT);
    #: None, like every SDK, never. Without it a sender that stays connected but abandons a
    #: stream holds its slot until it leaves.
    stream_idle_timeout: float | None = None
    #: Seconds a received stream whose sender left may go without a packet before it fails
    #: (ABNORMAL_END). The leave comes over signaling and overtakes the chunks still queued
    #: for us at the server (a fast sender leaves once its own buffer drained; a slow
    #: receiver can be megabytes behind), so the stream carries on while they keep coming.
    #: 0: fail at the leave, as every SDK does (and loses the end of such a transfer).
    stream_departed_sender_timeout: float = 10.0
    #: Most streams we send that are open (`open_stream` without `close_stream`) at once.
    max_open_outgoing_streams: int = 256

    # -- RPC (protocol-reference B; `lkproto.rpc`) -----------------------------------------------
    #: Default seconds a caller waits for the response (1502 RESPONSE_TIMEOUT after it);
    #: 15 s in current client-sdk-js and rust-sdks (B.3).
    rpc_response_timeout: float = DEFAULT_RESPONSE_TIMEOUT
    #: Default seconds a caller waits for the ack (1501 CONNECTION_TIMEOUT after it):
    #: maxRoundTripLatency, 7 s in JS and Rust (B.3), "to account for relay timeouts and
    #: retries in LiveKit Cloud".
    rpc_max_round_trip_latency: float = DEFAULT_MAX_ROUND_TRIP_LATENCY
    #: The longest our handler may run for one incoming request: a request asking for more
    #: (its `response_timeout_ms` is a uint32, up to 49 days) gets this, and 1502 after it.
    #: A local bound (no SDK caps it), so one caller cannot hold a slot for ever.
    rpc_max_handler_timeout: float = DEFAULT_MAX_HANDLER_TIMEOUT
    #: Most of our calls awaiting a result at once; `perform_rpc` refuses more.
    max_pending_rpcs: int = 1024
    #: Most incoming requests being handled at once; beyond it a request is acked and
    #: answered 1500 APPLICATION_ERROR.
    max_incoming_rpcs: int = 256
    #: Most of those from one caller (a request of an RPC v2 caller counts from its header
    #: on), so one peer cannot take every slot; beyond it: acked and answered 1500.
    #: None: a quarter of `max_incoming_rpcs`.
    max_incoming_rpcs_per_caller: int | None = None
    #: Longest method name `perform_rpc` accepts, in UTF-8 bytes. A local rule (no SDK limits
    #: it); the name must fit the 15 000-byte header budget of a v2 request (B.4).
    max_rpc_method_bytes: int = 64
    #: Incoming request ids remembered to ignore a duplicated request (B.4).
    max_remembered_rpc_requests: int = 1024
    #: Seconds a call whose destination left still waits for an ack or response that the
    #: leave may have overtaken (1503 RECIPIENT_DISCONNECTED after it, or at its own deadline
    #: if sooner). 0: 1503 at the leave, as every SDK does.
    rpc_departed_callee_timeout: float = 2.0

    # -- end-to-end encryption (protocol-reference-2 §2; `lkproto.e2ee`) ----------------------
    #: After a ratchet window from a key failed, how many more failing packets from that key
    #: only try the ratchets already derived (AES tag checks, microseconds) before a window
    #: may derive again (`KeyProvider(ratchet_retry_interval=)`). Native SDKs have no such
    #: bound: every undecryptable packet costs them a window of KDF runs. 0: always derive.
    e2ee_ratchet_retry_interval: int = DEFAULT_RATCHET_RETRY_INTERVAL
    #: Ratchet results kept, by key material, least recently used forgotten (1024: 64
    #: windows of 16). Keep it >= `ratchet_window_size`, or a window cannot be searched whole.
    e2ee_max_cached_ratchets: int = DEFAULT_MAX_CACHED_RATCHETS
    #: Participants holding their own copy of the shared key ring (shared-key mode: a copy is
    #: made when their key ratchets or fails); the least recently used copy is forgotten.
    e2ee_max_cloned_identities: int = DEFAULT_MAX_CLONED_IDENTITIES
    #: Bytes of received packets and data-track frames held while their sender's ratchets
    #: are derived off the event loop (`commands.DeriveRatchets`); a sender's later packets
    #: and frames wait behind its first so that order is kept. Past it a packet is dropped
    #: (`PacketDropped(reason="e2ee_backlog")`), a frame too (`DataTrackFrameDropped`,
    #: E2EE_BACKLOG). A window of 16 PBKDF2 ratchets takes ~1 s of one core.
    e2ee_max_waiting_bytes: int = 4 * 1024 * 1024

    # -- resume and reconnect (protocol-reference D.7, D.8; `ReconnectMode`) --------------------
    #: Try a resume (same participant, `reconnect=1`) before a full reconnect. The server can
    #: forbid resumes (`ClientConfiguration.resume_connection`); False always rejoins.
    resume: bool = True
    #: Signal connection attempts before giving up and ending the session; 10 in JS and Rust.
    reconnect_attempts: int = 10
    #: Attempt n waits min(base * (n - 1)^2, max) seconds: 0, 0.3, 1.2, 2.7, 4.8, 7, 7, ...,
    #: client-sdk-js's DefaultReconnectPolicy. The first attempt is immediate.
    reconnect_base_delay: float = 0.3
    #: The cap on one attempt's nominal delay (JS and Rust: 7 s).
    reconnect_max_delay: float = 7.0
    #: From the third attempt on, a uniform random 0..jitter seconds is added (JS: 1 s), drawn
    #: from the Connection's injected random source, so clients cut off together do not all
    #: come back in the same instant.
    reconnect_jitter: float = 1.0
    #: Seconds a reconnect waits for the peer connection: the ICE restart of a resume, or the
    #: new data channel of a full reconnect (JS `peerConnectionTimeout`, 15 s). After it, a
    #: resume becomes a full reconnect and a full reconnect tries again.
    peer_connection_timeout: float = 15.0

    # -- media tracks (protocol-reference-2 section 3; `lkproto.tracks`) -------------------------
    #: Seconds to wait for the server's answer to a publish (`AddTrackRequest`); Rust's
    #: TRACK_PUBLISH_TIMEOUT, 10 s. A publish unanswered by then fails with TIMEOUT.
    track_publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT
    #: Seconds to wait for the answer to one of our offers before a new offer (a new id)
    #: replaces it; JS `peerConnectionTimeout`, 15 s.
    negotiation_timeout: float = DEFAULT_NEGOTIATION_TIMEOUT
    #: Most of our tracks published or pending at once; `publish_track` refuses more. aiortc
    #: falls behind between 8 and 16 paced audio tracks per process (media findings F7).
    max_published_tracks: int = DEFAULT_MAX_LOCAL_PUBLICATIONS
    #: Most receive transceivers on the peer connection, ever: each started aiortc receiver
    #: keeps a decoder thread until the connection closes (F8.7). The server reuses them, so
    #: this is the peak of simultaneous subscriptions.
    max_receive_slots: int = DEFAULT_MAX_RECEIVE_SLOTS
    #: Most receive transceivers one `MediaSectionsRequirement` may add (the counts come from
    #: the server; more are refused and reported as `MediaSectionsLimited`).
    max_slots_per_requirement: int = DEFAULT_MAX_SLOTS_PER_REQUIREMENT
    #: Most remote publications tracked at once; more are ignored and reported.
    max_remote_tracks: int = DEFAULT_MAX_REMOTE_TRACKS
    #: (track, error) pairs remembered so each `SubscriptionResponse` error is reported once
    #: (the server repeats them every 3 s, F2.6).
    max_remembered_subscription_errors: int = DEFAULT_MAX_REMEMBERED_SUBSCRIPTION_ERRORS
    #: The adapters' audio: frames an `AudioStream(capacity=0)` holds for its reader (20 ms
    #: each; livekit.rtc's 0 means unbounded). Past it the oldest frame is dropped, so a
    #: reader that falls behind costs bounded memory and hears the newest audio.
    audio_stream_capacity: int = 250
    #: The adapters' video: frames a `VideoStream(capacity=0)` holds for its reader
    #: (livekit.rtc's 0 means unbounded; a 640x360 I420 frame is 345 600 bytes). Past it the
    #: oldest frame is dropped, so a reader that falls behind costs bounded memory, sees the
    #: newest picture and never stalls the peer connection (audio, data).
    video_stream_capacity: int = 5
    # -- data tracks (protocol-reference-2 section 1; `lkproto.datatracks`) ---------------------
    #: Seconds to wait for the server's answer to a data-track publish (or a full reconnect's
    #: republish); `PublishDataTrackError` TIMEOUT after it. 10 s in Rust (`PUBLISH_TIMEOUT`)
    #: and JS; a success arriving later is answered with an unpublish request.
    data_track_publish_timeout: float = DEFAULT_DATA_TRACK_PUBLISH_TIMEOUT
    #: Seconds to wait for the server's subscriber handle; the subscription then ends with
    #: TIMEOUT (and is withdrawn). 10 s in Rust and JS.
    data_track_subscribe_timeout: float = DEFAULT_SUBSCRIBE_TIMEOUT
    #: Frames `try_push` may queue per track while the `_data_track` channel is not open
    #: (before it opens); `PushFrameError` QUEUE_FULL beyond. Rust `FRAME_BUFFER_COUNT`, 16.
    max_data_track_queued_frames: int = DEFAULT_MAX_QUEUED_FRAMES
    #: Payload bytes so queued over all tracks (QUEUE_FULL beyond): 16 frames of the largest
    #: frame a receiver reassembles (2 MB) are 32 MB for one track.
    max_data_track_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    #: Frames each subscription reassembles at once (the SDKs' default, 1; a new frame evicts
    #: the oldest partial one). Per track with `RemoteDataTrack.set_pipeline_options`.
    max_data_track_partial_frames: int = DEFAULT_MAX_PARTIAL_FRAMES
    #: Packets of one frame, both ways (Rust/JS `MAX_BUFFER_PACKETS`, 128: about 2 MB at the
    #: 16 000-byte MTU); a larger frame is refused by `try_push` and dropped on receipt.
    max_data_track_packets_per_frame: int = DEFAULT_MAX_PACKETS_PER_FRAME
    #: Ended frame numbers each subscription remembers, so their late packets are dropped
    #: instead of starting a frame (ours).
    max_data_track_remembered_frames: int = DEFAULT_MAX_REMEMBERED_FRAMES
    #: Our data tracks pending or published at once (ours; the server allows 65 535 handles).
    max_published_data_tracks: int = DEFAULT_MAX_PUBLISHED_TRACKS
    #: Remote data tracks known at once; more are ignored and reported (ours).
    max_remote_data_tracks: int = DEFAULT_MAX_REMOTE_DATA_TRACKS
    #: Frames one `RemoteDataTrack.subscribe()` stream holds for a reader that is behind (the
    #: adapters' default for `buffer_size`, 16 as Rust's `DataTrackSubscribeOptions`); the
    #: oldest is dropped beyond it: a slow reader loses frames, never the connection.
    data_track_buffer_size: int = 16

    def __attrs_post_init__(self) -> None:
        for name in (
            "join_timeout",
            "metadata_request_timeout",
            "dedup_ttl",
            "peer_connection_timeout",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"Config.{name} must be positive")
        for name in ("track_publish_timeout", "negotiation_timeout"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"Config.{name} must be a positive number of seconds")
        for name in (
            "rpc_response_timeout",
            "rpc_max_round_trip_latency",
            "rpc_max_handler_timeout",
            "data_track_publish_timeout",
            "data_track_subscribe_timeout",
        ):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"Config.{name} must be a positive number of seconds")
        idle = self.stream_idle_timeout
        if idle is not None and not (idle > 0 and math.isfinite(idle)):
            raise ValueError("Config.stream_idle_timeout must be a positive number (or None)")
        for name in (
            "stream_departed_sender_timeout",
            "rpc_departed_callee_timeout",
            "leave_drain_timeout",
        ):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"Config.{name} must be a non-negative number of seconds")
        if self.stream_chunk_size < 4:
            raise ValueError("Config.stream_chunk_size must be at least 4 (a UTF-8 character)")
        if self.client_protocol < 0:
            raise ValueError("Config.client_protocol must not be negative")
        for name in (
            "max_pending_metadata_requests",
            "max_signal_message_bytes",
            "max_queued_events",
            "max_data_message_size",
            "max_dedup_senders",
            "max_stream_bytes",
            "max_decompressed_bytes",
            "max_buffered_stream_bytes",
            "max_open_streams_per_sender",
            "max_remembered_streams",
            "max_open_outgoing_streams",
            "max_pending_rpcs",
            "max_incoming_rpcs",
            "max_rpc_method_bytes",
            "max_remembered_rpc_requests",
            "max_published_tracks",
            "max_receive_slots",
            "max_slots_per_requirement",
            "max_remote_tracks",
            "max_remembered_subscription_errors",
            "audio_stream_capacity",
            "video_stream_capacity",
            "max_data_track_queued_frames",
            "max_data_track_queued_bytes",
            "max_data_track_partial_frames",
            "max_data_track_packets_per_frame",
            "max_data_track_remembered_frames",
            "max_published_data_tracks",
            "max_remote_data_tracks",
            "data_track_buffer_size",
            "e2ee_max_cached_ratchets",
            "e2ee_max_cloned_identities",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"Config.{name} must be at least 1")
        for name in ("max_buffered_stream_bytes_per_sender", "max_incoming_rpcs_per_caller"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"Config.{name} must be at least 1 (or None)")
        for name in (
            "replay_buffer_bytes",
            "max_queued_send_bytes",
            "e2ee_ratchet_retry_interval",
            "e2ee_max_waiting_bytes",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"Config.{name} must not be negative")
        if self.reconnect_attempts < 0:
            raise ValueError("Config.reconnect_attempts must not be negative (0: never reconnect)")
        for name in ("reconnect_base_delay", "reconnect_max_delay", "reconnect_jitter"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"Config.{name} must be a non-negative number of seconds")
