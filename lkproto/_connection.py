"""Connection: one LiveKit client session as a sans-I/O state machine.

Theory of operation
- Inputs are method calls, each given `now` (monotonic seconds from the adapter): bytes from
  the signal WebSocket, data channel messages, timer expiries, the outcomes of earlier commands
  and application verbs. Outputs are drained by the caller after every input, in this order:
  `commands_to_send()`, then `next_event()` until None, then `get_timer()` to re-arm.
- Wall-clock milliseconds for the wire (`Ping.timestamp`) derive from the single
  `unix_time_ms` given at construction: wall_ms = unix_time_ms + (now - now0) * 1000. Ids come
  from the injected `id_factory`. Nothing here reads a clock or draws randomness.
- State changes go through `_state.StateMachine` only.
- Remote faults never raise out of `receive_*`: a malformed or unexpected signal message ends
  the session with a `Disconnected` event carrying a `RemoteProtocolError` plus close
  commands; a malformed data packet is dropped and reported as `PacketDropped`.
- Timers (protocol-reference G): join response (`Config.join_timeout`, 5 s as in JS/Rust),
  ping interval and ping timeout (from `JoinResponse.ping_interval`/`ping_timeout`, seconds; 0
  disables keepalive as in JS), one per pending metadata request
  (`Config.metadata_request_timeout`).
  `handle_timer(now)` fires whatever is due and tolerates early or repeated calls.
- Participant updates follow protocol-reference E.3: a stale `version` for the same SID is
  ignored; DISCONNECTED removes; attributes changes are reported as a diff over the union of
  keys, with "" for removed keys. `client_protocol` and capabilities refresh on every update.
- Data streams (protocol-reference C) and RPC (B) are the public sub-machines
  `streams.StreamAssembler` / `streams.OutgoingStream` / `streams.packetize` and
  `rpc.RpcTable`, composed here. Every packet they make goes through the one reliable path
  (`DataSender`: one sequence space, the size limit, the pre-open send queue); a stream's
  packets are checked and sent all or nothing, so no peer ever sees part of a stream followed
  by a gap. One-shot sends pick inline/compressed framing from what the recipients advertise
  (`client_protocol`, capabilities; an identity not in the room counts as a legacy client);
  RPC picks v1 or v2 from the destination's `client_protocol`.
- The RPC topics `lk.rpc_request`/`lk.rpc_response` are registered internally for text
  streams and reserved: their streams are read here and handed to the RPC table (the ack
  goes out when a request's header arrives), and never surface as stream events. An RPC
  payload is held against `Config.max_buffered_stream_bytes` until it is complete.
- A participant leaving fails our calls to it (1503), cancels its invocations and fails the
  streams it was sending; the session ending does the same for everyone, before the final
  `Disconnected`.
- `get_timer()` is the earliest of the session's own deadlines, the RPC table's and the
  stream assembler's; `handle_timer(now)` fires everything due across the three in time
  order (at equal times: RPC, streams, then the session's own), so a late call still reports
  what happened first, first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import ClassVar

from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._data import DataSender, Deduplicator
from lkproto._deadlines import Deadlines
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto._reconnect import reconnect_delay
from lkproto._state import Input, StateMachine
from lkproto.config import Config
from lkproto.errors import LocalProtocolError, RemoteProtocolError
from lkproto.models import (
    Channel,
    ConnectionState,
    DisconnectReason,
    IceServer,
    LeaveAction,
    Participant,
    ParticipantState,
    PeerTarget,
    ReconnectMode,
    RoomInfo,
    SdpType,
    ServerInfo,
    SimulateScenario,
)
from lkproto.rpc import (
    ATTR_METHOD,
    ATTR_REQUEST_ID,
    RPC_REQUEST_TOPIC,
    RPC_RESPONSE_TOPIC,
    InvocationCancelled,
    InvokeHandler,
    RpcDropped,
    RpcError,
    RpcTable,
    SendRpcPacket,
    SendRpcStream,
)
from lkproto.signal import SignalCodec
from lkproto.streams import (
    BYTES_MIME_TYPE,
    TEXT_MIME_TYPE,
    DropReason,
    OperationType,
    OutgoingStream,
    StreamAssembler,
    StreamChunkReceived,
    StreamDropped,
    StreamEvent,
    StreamFinished,
    StreamHeaderTooLargeError,
    StreamInfo,
    StreamKind,
    StreamOpened,
    StreamSupport,
    packetize,
)

__all__ = ["Connection"]

_JOIN = "join"
_PING = "ping"
_PONG = "pong-timeout"
_META = "metadata"
_RETRY = "reconnect-attempt"
_PEER_WAIT = "peer-recovery"
# ReconnectReason (D.7): why a resume is attempted, reported in the resume's join request.
_RR_UNKNOWN, _RR_SIGNAL, _RR_PUBLISHER, _RR_SUBSCRIBER = 0, 1, 2, 3
_RESUME_DISABLED = 1  # ClientConfigSetting.DISABLED in ClientConfiguration.resume_connection
# After our peer connection failed with the signal still up, the first attempt waits this long
# for a `leave` the server may have written just before closing the peer connection (JS waits
# up to 250 ms for the signal to close, MAX_WS_CLOSE_TIME).
_KEPT_SIGNAL_GRACE = 0.25
_RPC_TOPICS = frozenset({RPC_REQUEST_TOPIC, RPC_RESPONSE_TOPIC})
_STREAM_PACKETS = frozenset({"stream_header", "stream_chunk", "stream_trailer"})
# DataPacket kinds worth sending again in a new session (`_carry_over`).
_CARRIED = frozenset({"user", "sip_dtmf", "transcription", "chat_message"})
_StreamKey = tuple[str, str]  # (sender identity, stream id)


class _RpcStream:
    """An incoming `lk.rpc_request`/`lk.rpc_response` text stream, read by the core itself."""

    __slots__ = ("attributes", "pieces", "request")

    def __init__(self, info: StreamInfo) -> None:
        self.request = info.topic == RPC_REQUEST_TOPIC
        self.attributes = info.attributes  # the header's: what the ack was based on
        self.pieces: list[str] = []


class Connection:
    """A LiveKit client session. Not thread-safe: give it exactly one owner.

    After every call that takes `now`, drain `commands_to_send()`, then `next_event()`, then
    re-arm the timer from `get_timer()`.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        now: float,
        unix_time_ms: int,
        id_factory: Callable[[], str],
        random: Callable[[], float] | None = None,
    ) -> None:
        """`random` returns numbers in [0, 1) for the reconnect jitter; without it they are
        derived from `id_factory`'s ids, which are unpredictable enough for spreading out."""
        self.config = config or Config()
        self._random = random or self._random_from_ids
        self._now0 = now
        self._unix0 = unix_time_ms
        self._id_factory = id_factory
        self._codec = SignalCodec(self.config)
        self._sm = StateMachine()
        self._events: list[ev.Event] = []
        self._event_pos = 0
        self._commands: list[cmd.Command] = []
        self._deadlines = Deadlines()
        self._sender = DataSender(self.config)
        self._dedup = Deduplicator(self.config)
        # Session facts
        self._url = ""
        self._token = ""
        self._join_metadata = ""
        self._join_attributes: dict[str, str] = {}
        self._single_pc = True
        self._embed_offer = False
        self._local: Participant | None = None
        self._remotes: dict[str, Participant] = {}
        self._sid_to_identity: dict[str, str] = {}
        self._room = RoomInfo()
        self._server_info = ServerInfo()
        self._ice_servers: tuple[IceServer, ...] = ()
        self._peers: set[PeerTarget] = set()
        self._ping_interval = 0.0
        self._ping_timeout = 0.0
        self._rtt_ms = 0
        self._next_request_id = 1
        self._pending_meta: set[int] = set()
        self.close_exc: Exception | None = None
        # Resume and full reconnect (D.8). `_awaiting` is None between attempts, "signal"
        # while an attempt's signal connection is opening, "peer" once the server answered
        # and the peer connection is being recovered (ICE restart, or the new data channel).
        self._reconnect_mode: ReconnectMode | None = None
        self._reconnect_reason = DisconnectReason.UNKNOWN_REASON
        self._reconnect_message = ""
        self._reconnect_rr = _RR_UNKNOWN
        self._reconnect_since = 0.0
        self._attempts = 0
        self._awaiting: str | None = None
        self._last_message_seq = 0
        # What this interruption's ReconnectResponse said the server has (None: no answer
        # yet). If the resume then becomes a full reconnect, what came after it never reached
        # the server and is sent again in the new session instead of being lost.
        self._acknowledged: int | None = None
        self._connected_peers: set[PeerTarget] = set()
        self._peer_ever_connected = False
        self._offers: dict[PeerTarget, str] = {}  # the last offer per PC, ours or the server's
        self._answers: dict[PeerTarget, str] = {}
        self._cut_streams: set[str] = set()  # our streams a full reconnect ended
        # After a peer connection failed, the signal is still good: it stays open (and a
        # `leave` on it is obeyed) until the first attempt replaces it.
        self._kept_signal = False
        self._drop_on_pong: SimulateScenario | None = None  # simulate_scenario, see there
        # Data streams and RPC
        c = self.config
        self._streams = StreamAssembler(
            max_stream_bytes=c.max_stream_bytes,
            max_decompressed_bytes=c.max_decompressed_bytes,
            max_buffered_bytes=c.max_buffered_stream_bytes,
            max_open_streams_per_sender=c.max_open_streams_per_sender,
            max_buffered_bytes_per_sender=c.max_buffered_stream_bytes_per_sender,
            max_remembered_streams=c.max_remembered_streams,
            idle_timeout=c.stream_idle_timeout,
        )
        for topic in sorted(_RPC_TOPICS):
            self._streams.add_topic(StreamKind.TEXT, topic)
        self._outgoing: dict[str, OutgoingStream] = {}
        self._rpc = RpcTable(
            id_factory=id_factory,
            client_protocol=c.client_protocol,
            response_timeout=c.rpc_response_timeout,
            max_round_trip_latency=c.rpc_max_round_trip_latency,
            max_handler_timeout=c.rpc_max_handler_timeout,
            max_pending_calls=c.max_pending_rpcs,
            max_incoming_invocations=c.max_incoming_rpcs,
            max_incoming_invocations_per_caller=(
                max(1, c.max_incoming_rpcs // 4)
                if c.max_incoming_rpcs_per_caller is None
                else c.max_incoming_rpcs_per_caller
            ),
            max_method_bytes=c.max_rpc_method_bytes,
            max_remembered_requests=c.max_remembered_rpc_requests,
        )
        self._rpc_methods: set[str] = set()
        self._rpc_streams: dict[_StreamKey, _RpcStream] = {}

    # -- read-only views ------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._sm.state

    @property
    def local_participant(self) -> Participant | None:
        return self._local

    @property
    def remote_participants(self) -> Mapping[str, Participant]:
        """Remote participants by identity."""
        return MappingProxyType(self._remotes)

    @property
    def room(self) -> RoomInfo:
        return self._room

    @property
    def server_info(self) -> ServerInfo:
        return self._server_info

    @property
    def rtt_ms(self) -> int:
        """The latest signal round-trip time from ping/pong, in milliseconds (0 = unknown)."""
        return self._rtt_ms

    @property
    def single_peer_connection(self) -> bool:
        return self._single_pc

    @property
    def max_data_message_size(self) -> int:
        return self._sender.max_message_size

    @property
    def next_sequence(self) -> int:
        """The sequence number the next reliable packet will carry."""
        return self._sender.next_sequence

    @property
    def rpc_methods(self) -> frozenset[str]:
        """The methods registered with `register_rpc_method`."""
        return frozenset(self._rpc_methods)

    @property
    def open_stream_ids(self) -> tuple[str, ...]:
        """Ids of the streams we opened with `open_stream` and have not closed, oldest first."""
        return tuple(self._outgoing)

    def outgoing_stream_info(self, stream_id: str) -> StreamInfo:
        """The header of a stream opened with `open_stream` and not yet closed.

        Raises `LocalProtocolError` for any other id.
        """
        return self._writer("outgoing_stream_info", stream_id).info

    @property
    def buffered_stream_bytes(self) -> int:
        """Received stream bytes not yet reported through `stream_consumed` (the bound is
        `Config.max_buffered_stream_bytes`)."""
        return self._streams.buffered_bytes

    def wall_ms(self, now: float) -> int:
        return self._unix0 + round((now - self._now0) * 1000)

    # -- outputs ----------------------------------------------------------------------------

    def next_event(self) -> ev.Event | None:
        if self._event_pos < len(self._events):
            event = self._events[self._event_pos]
            self._event_pos += 1
            if self._event_pos == len(self._events):
                self._events.clear()
                self._event_pos = 0
            return event
        return None

    def commands_to_send(self) -> list[cmd.Command]:
        out, self._commands = self._commands, []
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline (monotonic seconds) at which to call `handle_timer`, or None."""
        times = [t for _, t in self._timers() if t is not None]
        return min(times, default=None)

    def _timers(self) -> tuple[tuple[int, float | None], ...]:
        # (rank, deadline): the rank orders equal deadlines in `handle_timer`.
        return (
            (0, self._rpc.get_timer()),
            (1, self._streams.get_timer()),
            (2, self._deadlines.earliest()),
        )

    # -- connecting -------------------------------------------------------------------------

    def connect(
        self,
        url: str,
        token: str,
        *,
        now: float,
        metadata: str = "",
        attributes: Mapping[str, str] | None = None,
        single_peer_connection: bool = True,
        embed_publisher_offer: bool = False,
    ) -> None:
        """Start joining. Emits `OpenSignal` (or first the publisher offer, if embedding).

        With `single_peer_connection` the `/rtc/v1` path is used; report a 404 on the upgrade
        through `signal_connect_failed(status=404)` to fall back to `/rtc`. With
        `embed_publisher_offer` the publisher peer connection, its data channels and an offer
        are created first and the offer travels inside the join request (faster joins, but
        the peer connection starts without the server's ICE servers).
        """
        self._sm.check("connect")
        if not token:
            raise LocalProtocolError("connect: the token is empty", call="connect", state="NEW")
        self._codec.validate_url(url)
        self._url, self._token = url, token
        self._join_metadata = metadata
        self._join_attributes = dict(attributes or {})
        self._single_pc = single_peer_connection
        self._embed_offer = embed_publisher_offer and single_peer_connection
        self._sm.process(Input.CONNECT)
        if self._embed_offer:
            self._create_publisher(())
        else:
            self._open_signal(now, offer=None)

    def _open_signal(self, now: float, *, offer: str | None, resume: bool = False) -> None:
        resume_sid = self._local.sid if resume and self._local is not None else ""
        if self._single_pc:
            request = self._codec.join_request(
                metadata=self._join_metadata,
                attributes=self._join_attributes,
                publisher_offer=offer,
                resume_sid=resume_sid,
                reconnect_reason=self._reconnect_rr,
            )
            url = self._codec.join_url_v1(self._url, request)
        else:
            url = self._codec.join_url_v0(
                self._url,
                attributes=self._join_attributes,
                metadata=self._join_metadata,
                resume_sid=resume_sid,
                reconnect_reason=self._reconnect_rr,
            )
        self._commands.append(
            cmd.OpenSignal(url=url, token=self._token, single_peer_connection=self._single_pc)
        )
        self._deadlines.set(_JOIN, now + self.config.join_timeout)

    def _create_publisher(self, ice_servers: tuple[IceServer, ...]) -> None:
        self._peers.add(PeerTarget.PUBLISHER)
        self._commands += [
            cmd.CreatePeerConnection(target=PeerTarget.PUBLISHER, ice_servers=ice_servers),
            cmd.CreateDataChannel(channel=Channel.RELIABLE, ordered=True, max_retransmits=None),
            cmd.CreateDataChannel(channel=Channel.LOSSY, ordered=False, max_retransmits=0),
            cmd.CreateOffer(target=PeerTarget.PUBLISHER),
        ]

    def signal_connect_failed(self, *, status: int | None, now: float, message: str = "") -> None:
        """The WebSocket upgrade failed with HTTP `status` (None: no HTTP answer at all)."""
        if self.state is ConnectionState.RECONNECTING and self._awaiting == "signal":
            if status in (401, 403):  # unrecoverable (D.8): retrying cannot help
                text = f"the server refused the token while reconnecting (HTTP {status})"
                if message:
                    text += f": {message}"
                self._end(DisconnectReason.JOIN_FAILURE, text, now=now, exc=None, send_leave=False)
            else:
                where = f"HTTP {status}" if status is not None else "no answer"
                self._attempt_failed(now, f"reconnect attempt failed ({where}): {message}")
            return
        if self.state is not ConnectionState.CONNECTING:
            return
        if status == 404 and self._single_pc:
            # The server predates /rtc/v1: fall back to the dual peer connection path.
            self._single_pc = False
            self._embed_offer = False
            self._open_signal(now, offer=None)
            return
        if status in (401, 403):
            text = f"the server refused the token (HTTP {status})"
        elif status is None:
            text = (
                f"could not reach the server: {message}"
                if message
                else "could not reach the server"
            )
        else:
            text = f"the signal connection failed with HTTP {status}"
        if status is not None and message:
            text += f": {message}"  # the server's reason; the adapter redacts the token
        self._end(DisconnectReason.JOIN_FAILURE, text, now=now, exc=None, send_leave=False)

    # -- signal input -----------------------------------------------------------------------

    def receive_signal(self, data: bytes, *, now: float) -> None:
        """One binary WebSocket message from the server. Never raises for remote faults."""
        if self.state in (ConnectionState.CLOSED, ConnectionState.NEW):
            return  # no signal connection was asked for, or it is over
        try:
            msg = self._codec.decode(data)
        except RemoteProtocolError as exc:
            self._fatal(exc, now=now)
            return
        if self._ping_timeout > 0:
            self._deadlines.set(_PONG, now + self._ping_timeout)
        kind = msg.WhichOneof("message")
        if self.state is ConnectionState.CONNECTING:
            self._first_message(msg, kind, now)
            return
        if self.state is ConnectionState.RECONNECTING:
            if self._awaiting == "signal":
                self._reconnect_answer(msg, kind, now)
                return
            if self._awaiting is None:
                if self._kept_signal and kind == "leave":
                    self._on_leave(msg, now)  # e.g. we were removed: do not rejoin
                return  # a straggler from a signal connection we already gave up
        handler = self._HANDLERS.get(kind or "")
        if handler is not None:
            handler(self, msg, now)
        # Anything else (media, tracks, unknown future variants) is ignored, per D.3.

    def _first_message(self, msg: spb.SignalResponse, kind: str | None, now: float) -> None:
        if kind == "join":
            self._on_join(msg.join, now)
        elif kind == "leave":
            reason = DisconnectReason.of(msg.leave.reason)
            self._end(reason, "the server refused the join", now=now, exc=None, send_leave=False)
        else:
            self._fatal(
                RemoteProtocolError(f"expected a join response first, got {kind or 'nothing'}"),
                now=now,
                reason=DisconnectReason.JOIN_FAILURE,
            )

    def _on_join(self, join: spb.JoinResponse, now: float) -> None:
        if not join.participant.sid or not join.participant.identity:
            self._fatal(
                RemoteProtocolError("join response without a local participant"),
                now=now,
                reason=DisconnectReason.JOIN_FAILURE,
            )
            return
        self._apply_join(join, now)
        self._sm.process(Input.JOINED)
        self._events.append(
            ev.Joined(
                room=self._room,
                local_participant=self._local,  # type: ignore[arg-type]  # set just above
                participants=tuple(self._remotes.values()),
                server_info=self._server_info,
                ice_servers=self._ice_servers,
                single_peer_connection=self._single_pc,
            )
        )
        if PeerTarget.PUBLISHER not in self._peers:
            self._create_publisher(self._ice_servers)

    def _apply_join(self, join: spb.JoinResponse, now: float) -> None:
        """Take over a JoinResponse's facts (a first join or a full reconnect's rejoin)."""
        self._deadlines.cancel(_JOIN)
        self._local = Participant.from_pb(join.participant)
        self._room = RoomInfo.from_pb(join.room)
        self._server_info = ServerInfo.from_pb(join.server_info)
        self._rpc.server_version = self._server_info.version
        self._rpc_permissions(join.participant)
        self._ice_servers = tuple(IceServer.from_pb(s) for s in join.ice_servers)
        self._remotes.clear()
        for info in join.other_participants:
            p = Participant.from_pb(info)
            if p.identity:
                self._remotes[p.identity] = p
                self._sid_to_identity[p.sid] = p.identity
        self._ping_interval = float(max(join.ping_interval, 0))
        self._ping_timeout = float(max(join.ping_timeout, 0))
        self._start_keepalive(now)

    def _start_keepalive(self, now: float) -> None:
        if self._ping_interval > 0 and self._ping_timeout > 0:
            self._deadlines.set(_PING, now + self._ping_interval)
            self._deadlines.set(_PONG, now + self._ping_timeout)

    def _on_answer(self, msg: spb.SignalResponse, now: float) -> None:
        self._answers[PeerTarget.PUBLISHER] = msg.answer.sdp
        self._commands.append(
            cmd.SetRemoteDescription(
                target=PeerTarget.PUBLISHER, sdp=msg.answer.sdp, sdp_type=SdpType.ANSWER
            )
        )

    def _on_offer(self, msg: spb.SignalResponse, now: float) -> None:
        # Dual-PC: the server's offer is for the subscriber PC. Single-PC: for the only PC.
        target = PeerTarget.PUBLISHER if self._single_pc else PeerTarget.SUBSCRIBER
        self._offers[target] = msg.offer.sdp
        if target not in self._peers:
            self._peers.add(target)
            self._commands.append(
                cmd.CreatePeerConnection(target=target, ice_servers=self._ice_servers)
            )
        self._commands += [
            cmd.SetRemoteDescription(target=target, sdp=msg.offer.sdp, sdp_type=SdpType.OFFER),
            cmd.CreateAnswer(target=target),
        ]

    def _on_trickle(self, msg: spb.SignalResponse, now: float) -> None:
        trickle = msg.trickle
        if not trickle.candidateInit:
            return
        target = PeerTarget.SUBSCRIBER if trickle.target == 1 else PeerTarget.PUBLISHER
        if self._single_pc:
            target = PeerTarget.PUBLISHER
        self._commands.append(
            cmd.AddIceCandidate(target=target, candidate_init=trickle.candidateInit)
        )

    def _on_update(self, msg: spb.SignalResponse, now: float) -> None:
        self._apply_participants(msg.update.participants, now)

    def _on_leave(self, msg: spb.SignalResponse, now: float) -> None:
        leave = msg.leave
        reason = DisconnectReason.of(leave.reason)
        action = int(leave.action)
        if action in (LeaveAction.RESUME, LeaveAction.RECONNECT):
            what = "a resume" if action == LeaveAction.RESUME else "a full reconnect"
            self._interrupt(
                reason,
                f"the server asked for {what}",
                now,
                full=action == LeaveAction.RECONNECT,
                immediate=True,  # D.7: at once, not after a backoff
            )
            return
        self._end(reason, "the server ended the session", now=now, exc=None, send_leave=False)

    def _on_room_update(self, msg: spb.SignalResponse, now: float) -> None:
        old = self._room
        self._room = RoomInfo.from_pb(msg.room_update.room)
        self._events.append(ev.RoomUpdated(room=self._room))
        if old.metadata != self._room.metadata:
            self._events.append(
                ev.RoomMetadataChanged(old_metadata=old.metadata, metadata=self._room.metadata)
            )

    def _on_speakers(self, msg: spb.SignalResponse, now: float) -> None:
        self._events.append(
            ev.ActiveSpeakersChanged(
                speakers=tuple(
                    ev.SpeakerLevel(sid=s.sid, level=s.level, active=s.active)
                    for s in msg.speakers_changed.speakers
                )
            )
        )

    def _on_quality(self, msg: spb.SignalResponse, now: float) -> None:
        for q in msg.connection_quality.updates:
            self._events.append(
                ev.ConnectionQualityChanged(
                    participant_sid=q.participant_sid, quality=q.quality, score=q.score
                )
            )

    def _on_refresh_token(self, msg: spb.SignalResponse, now: float) -> None:
        self._token = msg.refresh_token
        self._events.append(ev.TokenRefreshed(token=msg.refresh_token))

    def _on_pong_resp(self, msg: spb.SignalResponse, now: float) -> None:
        sent = msg.pong_resp.last_ping_timestamp
        if sent > 0:
            self._rtt_ms = max(0, self.wall_ms(now) - sent)
        scenario, self._drop_on_pong = self._drop_on_pong, None
        if scenario is not None:
            self._reconnect_rr = _RR_SIGNAL
            self._interrupt(
                DisconnectReason.SIGNAL_CLOSE, f"simulated {scenario.name.lower()}", now
            )

    def _on_request_response(self, msg: spb.SignalResponse, now: float) -> None:
        response = msg.request_response
        request_id = response.request_id
        if request_id not in self._pending_meta:
            return  # not ours (or already timed out): nothing is waiting for it
        self._pending_meta.discard(request_id)
        self._deadlines.cancel((_META, request_id))
        if response.reason == 0:
            self._events.append(ev.MetadataUpdateCompleted(request_id=request_id))
        else:
            self._events.append(
                ev.MetadataUpdateFailed(
                    request_id=request_id, reason=response.reason, message=response.message
                )
            )

    _HANDLERS: ClassVar[dict[str, Callable[[Connection, spb.SignalResponse, float], None]]] = {
        "answer": _on_answer,
        "offer": _on_offer,
        "trickle": _on_trickle,
        "update": _on_update,
        "leave": _on_leave,
        "room_update": _on_room_update,
        "speakers_changed": _on_speakers,
        "connection_quality": _on_quality,
        "refresh_token": _on_refresh_token,
        "pong_resp": _on_pong_resp,
        "request_response": _on_request_response,
    }

    # -- participants -----------------------------------------------------------------------

    def _apply_participants(self, infos: Iterable[ppb.ParticipantInfo], now: float) -> None:
        for info in infos:
            identity = info.identity or self._sid_to_identity.get(info.sid, "")
            if not identity:
                continue
            if self._local is not None and (
                identity == self._local.identity or info.sid == self._local.sid
            ):
                self._update_local(info)
                continue
            existing = self._remotes.get(identity)
            if int(info.state) == ParticipantState.DISCONNECTED:
                if existing is not None and (not info.sid or info.sid == existing.sid):
                    self._remove(existing, DisconnectReason.of(info.disconnect_reason), now)
                continue
            new = Participant.from_pb(info)
            if not new.identity:
                new = _with_identity(info, identity)
            if existing is not None and existing.sid != new.sid:
                # The same identity rejoined with a new SID: the old session is gone.
                self._remove(existing, DisconnectReason.DUPLICATE_IDENTITY, now)
                existing = None
            if existing is None:
                self._remotes[identity] = new
                self._sid_to_identity[new.sid] = identity
                self._events.append(ev.ParticipantConnected(participant=new))
                if new.state is ParticipantState.ACTIVE:
                    self._events.append(ev.ParticipantActive(participant=new))
                continue
            if existing.version > new.version:
                continue  # stale update (E.3)
            self._remotes[identity] = new
            self._diff(existing, new)

    def _update_local(self, info: ppb.ParticipantInfo) -> None:
        assert self._local is not None
        old = self._local
        if info.sid == old.sid and old.version > info.version:
            return
        new = Participant.from_pb(info)
        self._local = new
        self._rpc_permissions(info)
        self._diff(old, new)

    def _rpc_permissions(self, info: ppb.ParticipantInfo) -> None:
        """Tell the RPC table what the server will do with our packets (A.5): a hidden
        participant's lose their sender identity, and without canPublishData they are
        dropped. An info without a permission at all changes nothing (unknown: allow)."""
        if info.HasField("permission"):
            self._rpc.local_hidden = info.permission.hidden
            self._rpc.local_can_publish_data = info.permission.can_publish_data

    def _remove(self, participant: Participant, reason: DisconnectReason, now: float) -> None:
        identity = participant.identity
        self._remotes.pop(identity, None)
        self._sid_to_identity.pop(participant.sid, None)
        self._dedup.forget(participant.sid)
        self._events.append(ev.ParticipantDisconnected(participant=participant, reason=reason))
        # Then what follows from it: our calls to it fail (1503), its invocations are
        # cancelled, and the streams it was sending fail (their RPC ones were just settled).
        self._rpc.participant_left(identity, now=now)
        self._flush_rpc(now, "participant_left")
        left = self._streams.sender_left(identity, sid=participant.sid)
        self._stream_events(left, now, settle_rpc=False)

    def _diff(self, old: Participant, new: Participant) -> None:
        if old == new:
            return
        out: list[ev.Event] = [ev.ParticipantUpdated(participant=new, previous=old)]
        if old.name != new.name:
            out.append(ev.ParticipantNameChanged(participant=new, old_name=old.name))
        if old.metadata != new.metadata:
            out.append(ev.ParticipantMetadataChanged(participant=new, old_metadata=old.metadata))
        changed = {
            key: new.attributes.get(key, "")
            for key in sorted(old.attributes.keys() | new.attributes.keys())
            if old.attributes.get(key) != new.attributes.get(key)
        }
        if changed:
            out.append(ev.ParticipantAttributesChanged(participant=new, changed=changed))
        if old.permissions != new.permissions:
            out.append(
                ev.ParticipantPermissionsChanged(participant=new, old_permissions=old.permissions)
            )
        if new.state is ParticipantState.ACTIVE and old.state is not ParticipantState.ACTIVE:
            out.append(ev.ParticipantActive(participant=new))
        self._events += out

    # -- peer connection results ------------------------------------------------------------

    def local_description_created(
        self, target: PeerTarget, sdp: str, sdp_type: SdpType, *, now: float
    ) -> None:
        """The adapter created (and set) a local offer or answer."""
        if self.state is ConnectionState.CLOSED or target not in self._peers:
            return
        (self._offers if sdp_type is SdpType.OFFER else self._answers)[target] = sdp
        if sdp_type is SdpType.OFFER:
            if self.state is ConnectionState.CONNECTING and self._embed_offer:
                self._open_signal(now, offer=sdp)
            else:
                self._commands.append(cmd.SendSignal(data=self._codec.offer(sdp)))
        else:
            self._commands.append(cmd.SendSignal(data=self._codec.answer(sdp)))

    def ice_candidate_gathered(
        self, target: PeerTarget, candidate_init: str | None, *, now: float
    ) -> None:
        """A local ICE candidate (JSON RTCIceCandidateInit), or None at the end of gathering."""
        if self.state is ConnectionState.CLOSED or candidate_init is None:
            return
        if self.state is ConnectionState.CONNECTING and self._embed_offer:
            return  # the embedded offer already carries the candidates gathered so far
        self._commands.append(cmd.SendSignal(data=self._codec.trickle(candidate_init, int(target))))

    def peer_state_changed(self, target: PeerTarget, state: str, *, now: float) -> None:
        """A peer connection's connectionState changed ("connected", "failed", "closed", ...).

        Report only the peer connection the core asked for last under `target`: a closed
        one's late state changes must not be taken for the new one's."""
        if self.state is ConnectionState.CLOSED or target not in self._peers:
            return
        if state == "connected":
            self._connected_peers.add(target)
            self._peer_ever_connected = True
            if (
                self.state is ConnectionState.RECONNECTING
                and self._awaiting == "peer"
                and self._reconnect_mode is ReconnectMode.RESUME
                and self._peers <= self._connected_peers
            ):
                self._reconnected(now)  # the ICE restart worked
            return
        if state not in ("failed", "closed"):
            return  # "disconnected" may recover by itself; "failed" is final
        self._connected_peers.discard(target)
        message = f"the {target.name.lower()} peer connection {state}"
        if self.state is ConnectionState.CONNECTING:
            self._end(DisconnectReason.MEDIA_FAILURE, message, now=now, exc=None, send_leave=True)
            return
        self._reconnect_rr = _RR_PUBLISHER if target is PeerTarget.PUBLISHER else _RR_SUBSCRIBER
        # D.8: a failed peer connection is resumed with an ICE restart; a resume already
        # waiting for the peer connection becomes a full reconnect.
        waiting = self.state is ConnectionState.RECONNECTING and self._awaiting == "peer"
        # The signal did not fail: keep it until the attempt, so that what the server wrote
        # on it before closing our peer connection (a leave{DISCONNECT}) is still read.
        keep = self.state is ConnectionState.CONNECTED and self.config.reconnect_attempts > 0
        self._interrupt(
            DisconnectReason.MEDIA_FAILURE, message, now, full=waiting, close_signal=not keep
        )
        self._kept_signal = keep
        if keep:  # and give that leave a moment to arrive before the first attempt
            self._deadlines.set(_RETRY, now + _KEPT_SIGNAL_GRACE)

    def data_channel_opened(
        self, channel: Channel, *, now: float, max_message_size: int | None = None
    ) -> None:
        """A data channel opened; `max_message_size` is the remote SCTP limit if known."""
        if self.state is ConnectionState.CLOSED:
            return
        if max_message_size is not None:
            self._sender.remote_max_message_size = max(0, max_message_size)
        self._commands += self._sender.channel_opened(channel)
        if (
            channel is Channel.RELIABLE
            and self.state is ConnectionState.RECONNECTING
            and self._awaiting == "peer"
            and self._reconnect_mode is ReconnectMode.FULL
        ):
            self._reconnected(now)  # the rejoined session can carry data again

    def data_channel_closed(self, channel: Channel, *, now: float) -> None:
        self._sender.channel_closed(channel)

    def command_failed(self, command: cmd.Command, message: str, *, now: float) -> None:
        """A command could not be carried out.

        While joining, peer and signal failures end the session. Once joined, a failed
        signal command starts a resume and a failed peer command (a negotiation error, or an
        ICE restart the adapter cannot do) a full reconnect (D.8)."""
        if self.state is ConnectionState.CLOSED:
            return
        if isinstance(command, cmd.SendDataPacket):
            return  # the adapter reports a broken channel through data_channel_closed
        text = f"{type(command).__name__} failed: {message}"
        if self.state not in (ConnectionState.NEW, ConnectionState.CONNECTING):
            if isinstance(command, cmd.OpenSignal):
                if self._awaiting == "signal":
                    self._attempt_failed(now, text)
                return
            signal = isinstance(command, cmd.SendSignal | cmd.CloseSignal)
            if signal and self.state is ConnectionState.RECONNECTING and self._awaiting != "peer":
                return  # a request for a signal connection we already gave up
            if isinstance(command, cmd.ClosePeerConnection):
                return  # it is gone either way
            # A peer failure is escalated at once: another signal attempt cannot fix it.
            self._interrupt(
                DisconnectReason.UNKNOWN_REASON, text, now, full=not signal, immediate=not signal
            )
            return
        self._end(
            DisconnectReason.UNKNOWN_REASON,
            f"{type(command).__name__} failed: {message}",
            now=now,
            exc=None,
            send_leave=not isinstance(command, (cmd.OpenSignal, cmd.SendSignal)),
        )

    def signal_closed(self, *, now: float, code: int | None = None, reason: str = "") -> None:
        """The signal WebSocket closed (EOF), with its close `code` and `reason` if any.
        Before the join this fails the join; once joined it starts a resume (D.8); during a
        reconnect attempt it fails the attempt.

        Report only the signal connection the core opened last."""
        if self.state in (ConnectionState.CLOSED, ConnectionState.NEW):
            return
        why = f"code {code}: {reason}" if reason else f"code {code}"
        if self.state is ConnectionState.CONNECTING:
            self._end(
                DisconnectReason.JOIN_FAILURE,
                f"the signal closed before the join ({why})",
                now=now,
                exc=None,
                send_leave=False,
                close_signal=False,
            )
            return
        message = f"the signal connection closed ({why})"
        if self.state is ConnectionState.RECONNECTING and self._awaiting != "peer":
            if self._awaiting == "signal":
                self._attempt_failed(now, message)
            return
        self._reconnect_rr = _RR_SIGNAL
        self._interrupt(DisconnectReason.SIGNAL_CLOSE, message, now, close_signal=False)

    # -- resume and full reconnect (protocol-reference D.7, D.8, A.7) ----------------------------

    @property
    def reconnect_mode(self) -> ReconnectMode | None:
        """What a reconnect under way is doing (None when not reconnecting)."""
        return self._reconnect_mode if self.state is ConnectionState.RECONNECTING else None

    def _random_from_ids(self) -> float:
        digest = hashlib.blake2b(self._id_factory().encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def _interrupt(
        self,
        reason: DisconnectReason,
        message: str,
        now: float,
        *,
        full: bool = False,
        immediate: bool = False,
        close_signal: bool = True,
    ) -> None:
        """The session was interrupted (again): start or restart reconnecting.

        A resume unless `full`, resuming is off, the peer connection never connected, or a
        full reconnect is already under way (it stays one)."""
        if self.state is ConnectionState.CONNECTED:
            self._sm.process(Input.INTERRUPTED)
            self._attempts = 0
            self._reconnect_since = now
            self._reconnect_mode = None
            self._acknowledged = None
        if self.config.reconnect_attempts == 0:
            self._end(
                reason,
                f"{message} (reconnecting is off: Config.reconnect_attempts is 0)",
                now=now,
                exc=None,
                send_leave=close_signal,  # the signal may still work: say goodbye
                close_signal=close_signal,
            )
            return
        self._reconnect_reason, self._reconnect_message = reason, message
        self._awaiting = None
        for key in (_PING, _PONG, _JOIN, _RETRY, _PEER_WAIT):
            self._deadlines.cancel(key)
        if close_signal:
            self._commands.append(cmd.CloseSignal(code=1000))
            self._kept_signal = False
        full = (
            full
            or not self.config.resume
            or not self._peer_ever_connected
            or self._reconnect_mode is ReconnectMode.FULL
        )
        if full:
            if self._reconnect_mode is not ReconnectMode.FULL:
                self._reconnect_mode = ReconnectMode.FULL
                self._events.append(
                    ev.Reconnecting(mode=ReconnectMode.FULL, reason=reason, message=message)
                )
            self._teardown(now, message)
        elif self._reconnect_mode is None:
            self._reconnect_mode = ReconnectMode.RESUME
            self._events.append(
                ev.Reconnecting(mode=ReconnectMode.RESUME, reason=reason, message=message)
            )
        self._schedule_attempt(now, immediate=immediate)

    def _teardown(self, now: float, message: str) -> None:
        """A full reconnect drops the session: its peer connections, sequencing (A.7), and
        everything in flight, as if every other participant had left (D.8 step 1)."""
        for target in sorted(self._peers):
            self._commands.append(cmd.ClosePeerConnection(target=target))
        self._peers.clear()
        self._connected_peers.clear()
        self._offers.clear()
        self._answers.clear()
        cut_streams = set(self._outgoing)
        # What the server said it lacks; without its word, at least what never left us.
        unacknowledged = (
            self._sender.unsent()
            if self._acknowledged is None
            else self._sender.unacknowledged(self._acknowledged)
        )
        self._acknowledged = None
        self._sender.reset()
        self._dedup.reset()
        for participant in list(self._remotes.values()):
            self._remove(participant, self._reconnect_reason, now)
        self._rpc.disconnected(now=now)
        self._flush_rpc(now, "reconnect")
        cut = f"the session restarted (full reconnect): {message}"
        self._stream_events(self._streams.abort_all(cut), now, settle_rpc=False)
        self._cut_streams = cut_streams
        self._outgoing.clear()
        self._carry_over(unacknowledged, cut_streams)
        # Rejoin as we are now, not as we first joined (E.1): the server merges these over the
        # token's. Reconnecting happens only once joined, so the local participant is known.
        assert self._local is not None
        self._join_metadata = self._local.metadata
        self._join_attributes = dict(self._local.attributes)

    def _carry_over(self, unacknowledged: list[bytes], cut_streams: set[str]) -> None:
        """Queue for the new session what the server said it never got: user data, DTMF,
        transcriptions, chat, and whole streams. Not RPC packets (those calls just failed with
        1503) nor the packets of streams the reconnect cut (their writers just failed)."""
        dropped_streams = set(cut_streams)
        for data in unacknowledged:
            packet = dpb.DataPacket.FromString(data)
            kind = packet.WhichOneof("value")
            if kind == "stream_header" and packet.stream_header.topic in _RPC_TOPICS:
                dropped_streams.add(packet.stream_header.stream_id)
            if kind in _STREAM_PACKETS:
                if getattr(packet, kind).stream_id in dropped_streams:
                    continue
            elif kind not in _CARRIED:
                continue
            try:
                self._send_reliable([packet], "reconnect")
            except LocalProtocolError:  # the send queue is full: the rest is lost, as in JS
                return

    def _schedule_attempt(self, now: float, *, immediate: bool = False) -> None:
        if self._attempts >= self.config.reconnect_attempts:
            self._end(
                self._reconnect_reason,
                f"gave up reconnecting after {self._attempts} attempts: {self._reconnect_message}",
                now=now,
                exc=None,
                send_leave=False,
            )
            return
        attempt = self._attempts + 1
        draw = self._random() if attempt >= 3 and not immediate else 0.0
        delay = 0.0 if immediate else reconnect_delay(self.config, attempt, draw)
        self._deadlines.set(_RETRY, now + delay)

    def _attempt(self, now: float) -> None:
        if self._kept_signal:
            self._kept_signal = False
            self._commands.append(cmd.CloseSignal(code=1000))
        self._attempts += 1
        self._awaiting = "signal"
        resume = self._reconnect_mode is ReconnectMode.RESUME
        self._open_signal(now, offer=None, resume=resume)

    def _attempt_failed(self, now: float, message: str) -> None:
        self._awaiting = None
        self._deadlines.cancel(_JOIN)
        self._reconnect_message = message
        self._schedule_attempt(now)

    def _reconnect_answer(self, msg: spb.SignalResponse, kind: str | None, now: float) -> None:
        """The first message on a reconnect attempt's signal connection."""
        resume = self._reconnect_mode is ReconnectMode.RESUME
        if kind == "leave":
            leave = msg.leave
            reason = DisconnectReason.of(leave.reason)
            action = int(leave.action)
            if action == LeaveAction.DISCONNECT:
                text = "the server ended the session"
                self._end(reason, text, now=now, exc=None, send_leave=False)
            else:  # RECONNECT: the server no longer has our participant (a restart, a move)
                self._interrupt(
                    reason,
                    "the server cannot resume this session",
                    now,
                    full=action == LeaveAction.RECONNECT,
                    immediate=True,
                )
        elif kind == "reconnect" and resume:
            self._on_reconnect(msg.reconnect, now)
        elif kind == "join" and not resume and msg.join.participant.sid:
            self._on_rejoin(msg.join, now)
        else:
            self._commands.append(cmd.CloseSignal(code=1002))
            expected = "reconnect" if resume else "join"
            self._attempt_failed(now, f"expected a {expected} response, got {kind or 'nothing'}")

    def _on_reconnect(self, response: spb.ReconnectResponse, now: float) -> None:
        """`ReconnectResponse` (D.8 steps 3-7): sync state, recover the peer connection if it
        needs it, then replay what the server did not get (A.7)."""
        self._deadlines.cancel(_JOIN)
        if response.ice_servers:
            self._ice_servers = tuple(IceServer.from_pb(s) for s in response.ice_servers)
        if response.HasField("server_info"):
            self._server_info = ServerInfo.from_pb(response.server_info)
            self._rpc.server_version = self._server_info.version
        self._last_message_seq = self._acknowledged = response.last_message_seq
        if response.client_configuration.resume_connection == _RESUME_DISABLED:
            self._interrupt(
                self._reconnect_reason,
                "the server does not allow resuming",
                now,
                full=True,
                immediate=True,
            )
            return
        self._awaiting = "peer"
        self._start_keepalive(now)
        sync_target = PeerTarget.PUBLISHER if self._single_pc else PeerTarget.SUBSCRIBER
        self._commands.append(
            cmd.SendSignal(
                data=self._codec.sync_state(
                    offer=self._offers.get(sync_target),
                    answer=self._answers.get(sync_target),
                    receive_states=self._dedup.receive_states(),
                )
            )
        )
        if self._peers and self._peers <= self._connected_peers:
            self._reconnected(now)  # only the signal was lost: the peer connection carries on
            return
        self._deadlines.set(_PEER_WAIT, now + self.config.peer_connection_timeout)
        self._commands.append(cmd.CreateOffer(target=PeerTarget.PUBLISHER, ice_restart=True))

    def _on_rejoin(self, join: spb.JoinResponse, now: float) -> None:
        """A full reconnect's `JoinResponse`: a fresh session under the same identity."""
        old, old_room = self._local, self._room
        self._apply_join(join, now)
        assert old is not None and self._local is not None  # reconnecting implies joined
        if old != self._local:
            self._events.append(ev.ParticipantUpdated(participant=self._local, previous=old))
        if old_room != self._room:  # e.g. a new room SID: the server restarted
            self._events.append(ev.RoomUpdated(room=self._room))
            if old_room.metadata != self._room.metadata:
                self._events.append(
                    ev.RoomMetadataChanged(
                        old_metadata=old_room.metadata, metadata=self._room.metadata
                    )
                )
        for participant in self._remotes.values():
            self._events.append(ev.ParticipantConnected(participant=participant))
            if participant.state is ParticipantState.ACTIVE:
                self._events.append(ev.ParticipantActive(participant=participant))
        self._awaiting = "peer"
        self._deadlines.set(_PEER_WAIT, now + self.config.peer_connection_timeout)
        self._create_publisher(self._ice_servers)

    def _reconnected(self, now: float) -> None:
        mode = self._reconnect_mode
        assert mode is not None
        self._awaiting = None
        self._deadlines.cancel(_PEER_WAIT)
        if mode is ReconnectMode.RESUME:
            self._commands += self._sender.resume(self._last_message_seq)
        self._sm.process(Input.RECONNECTED)
        self._reconnect_mode = None
        self._events.append(
            ev.Reconnected(mode=mode, attempts=self._attempts, duration=now - self._reconnect_since)
        )

    def simulate_scenario(self, scenario: SimulateScenario, *, now: float) -> None:
        """Cause a failure, for testing (`livekit.rtc`'s `Room.simulate_scenario`).

        SIGNAL_RECONNECT drops the signal connection and resumes; FULL_RECONNECT leaves and
        rejoins. The others ask the server (`SignalRequest.simulate`), which then closes the
        signal, the session or the peer connection as the scenario says."""
        self._sm.check("simulate_scenario")
        scenario = SimulateScenario(scenario)
        if scenario is SimulateScenario.SIGNAL_RECONNECT:
            self._reconnect_rr = _RR_SIGNAL
            self._interrupt(DisconnectReason.SIGNAL_CLOSE, "simulated signal reconnect", now)
            return
        if scenario is SimulateScenario.FULL_RECONNECT:
            # No `leave` first: the server may handle it after the rejoin and end the new
            # session (seen on livekit-server 1.13.5). The rejoin itself replaces our old
            # participant (duplicate identity), which the others see leave and come back.
            self._interrupt(
                DisconnectReason.CLIENT_INITIATED, "simulated full reconnect", now, full=True
            )
            return
        requests: dict[SimulateScenario, dict[str, int | bool]] = {
            SimulateScenario.SPEAKER: {"speaker_update": 5},
            SimulateScenario.NODE_FAILURE: {"node_failure": True},
            SimulateScenario.SERVER_LEAVE: {"server_leave": True},
            SimulateScenario.MIGRATION: {"migration": True},
            SimulateScenario.FORCE_TCP: {"switch_candidate_protocol": 1},
            SimulateScenario.FORCE_TLS: {"switch_candidate_protocol": 2},
            SimulateScenario.DISCONNECT_SIGNAL_ON_RESUME: {"disconnect_signal_on_resume": True},
            SimulateScenario.DISCONNECT_SIGNAL_ON_RESUME_NO_MESSAGES: {
                "disconnect_signal_on_resume_no_messages": True
            },
        }
        request = requests[scenario]
        self._commands.append(cmd.SendSignal(data=self._codec.simulate(**request)))
        if scenario in (
            SimulateScenario.DISCONNECT_SIGNAL_ON_RESUME,
            SimulateScenario.DISCONNECT_SIGNAL_ON_RESUME_NO_MESSAGES,
        ):
            # The server arms the fault for a resume within 5 s, so one must follow; JS drops
            # its signal at once (Room.simulateScenario's postAction), and its resume can
            # overtake the request on the server. We ping right behind the request and drop
            # the signal when the pong comes: the server reads one socket in order, so by then
            # the fault is armed.
            self._drop_on_pong = scenario
            self._commands.append(cmd.SendSignal(data=self._codec.ping(self.wall_ms(now), 0)))

    # -- timers -----------------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Fire every deadline due at `now`, in time order across the session, the RPC table
        and the stream assembler. Early, late and repeated calls are all fine; afterwards
        `get_timer()` is None or later than `now`."""
        while self.state is not ConnectionState.CLOSED:
            due = [(t, rank) for rank, t in self._timers() if t is not None and t <= now]
            if not due:
                return
            when, rank = min(due)
            if rank == 0:
                self._rpc.handle_timer(when)
                self._flush_rpc(now, "handle_timer")
            elif rank == 1:
                self._stream_events(self._streams.handle_timer(when), now, call="handle_timer")
            else:
                self._fire(self._deadlines.pop_earliest(), now)

    def _fire(self, key: Hashable, now: float) -> None:
        if key == _JOIN and self.state is ConnectionState.RECONNECTING:
            self._commands.append(cmd.CloseSignal(code=1000))
            self._attempt_failed(now, f"no answer within {self.config.join_timeout:g}s")
        elif key == _RETRY:
            self._attempt(now)
        elif key == _PEER_WAIT:
            self._interrupt(
                self._reconnect_reason,
                f"the peer connection did not recover within "
                f"{self.config.peer_connection_timeout:g}s",
                now,
                full=True,
                immediate=self._reconnect_mode is ReconnectMode.RESUME,
            )
        elif key == _JOIN:
            self._end(
                DisconnectReason.JOIN_FAILURE,
                f"no join response within {self.config.join_timeout:g}s",
                now=now,
                exc=None,
                send_leave=False,
            )
        elif key == _PING:
            self._commands.append(
                cmd.SendSignal(data=self._codec.ping(self.wall_ms(now), self._rtt_ms))
            )
            self._deadlines.set(_PING, now + self._ping_interval)
        elif key == _PONG:
            self._reconnect_rr = _RR_SIGNAL
            # Nothing from the server for ping_timeout seconds means the network was down at
            # least that long: long enough for the server's ICE to give up on our peer
            # connection even if ours has not noticed yet. So the resume restarts ICE (an
            # adapter that cannot do that rejoins, sending again what the server never got).
            self._connected_peers.clear()
            self._interrupt(
                DisconnectReason.CONNECTION_TIMEOUT,
                f"ping timeout: no signal message for {self._ping_timeout:g}s",
                now,
            )
        else:  # (_META, request_id): a response cancels this deadline, so it is pending
            assert isinstance(key, tuple) and key[0] == _META
            request_id = key[1]
            self._pending_meta.discard(request_id)
            self._events.append(
                ev.MetadataUpdateFailed(
                    request_id=request_id,
                    reason=ev.MetadataUpdateFailed.TIMEOUT,
                    message=f"no response within {self.config.metadata_request_timeout:g}s",
                )
            )

    # -- data packets -----------------------------------------------------------------------

    def receive_data_packet(self, data: bytes, *, channel: Channel, now: float) -> None:
        """One message from a data channel. Malformed packets are dropped and reported."""
        if self.state is ConnectionState.CLOSED:
            return
        try:
            packet = dpb.DataPacket.FromString(bytes(data))
        except Exception as exc:  # DecodeError and friends: never crash on peer input
            self._events.append(
                ev.PacketDropped(reason="malformed", channel=channel, detail=str(exc))
            )
            return
        # Only the reliable channel is de-duplicated: it is ordered and replayed on a resume.
        # The lossy one is unordered, so "not above the last" would drop reordered packets,
        # and a sequence stamped on a lossy packet must not hide the sender's next reliable
        # ones (client-sdk-js shares one state for both channels; client-sdk-flutter does not).
        if channel is Channel.RELIABLE and self._dedup.is_duplicate(
            packet.participant_sid, packet.sequence, now
        ):
            self._events.append(
                ev.PacketDropped(
                    reason="duplicate",
                    channel=channel,
                    detail=f"sequence {packet.sequence}",
                    participant_identity=packet.participant_identity,
                )
            )
            return
        kind = packet.WhichOneof("value")
        sender = packet.participant_identity
        if kind == "user":
            user = packet.user
            sender = sender or user.participant_identity
            destinations = tuple(packet.destination_identities) or tuple(
                user.destination_identities
            )
            self._events.append(
                ev.DataReceived(
                    payload=user.payload,
                    participant_identity=sender,
                    participant_sid=packet.participant_sid or user.participant_sid,
                    topic=user.topic if user.HasField("topic") else None,
                    channel=channel,
                    destination_identities=destinations,
                )
            )
        elif kind == "sip_dtmf":
            self._events.append(
                ev.SipDtmfReceived(
                    code=packet.sip_dtmf.code,
                    digit=packet.sip_dtmf.digit,
                    participant_identity=sender,
                )
            )
        elif kind == "transcription":
            t = packet.transcription
            self._events.append(
                ev.TranscriptionReceived(
                    participant_identity=sender,
                    transcribed_participant_identity=t.transcribed_participant_identity,
                    track_id=t.track_id,
                    segments=tuple(
                        ev.TranscriptionSegment(
                            id=s.id,
                            text=s.text,
                            start_time=s.start_time,
                            end_time=s.end_time,
                            final=s.final,
                            language=s.language,
                        )
                        for s in t.segments
                    ),
                )
            )
        elif kind == "chat_message":
            c = packet.chat_message
            self._events.append(
                ev.ChatMessageReceived(
                    participant_identity=sender,
                    id=c.id,
                    timestamp=c.timestamp,
                    message=c.message,
                    edit_timestamp=c.edit_timestamp if c.HasField("edit_timestamp") else None,
                    deleted=c.deleted,
                    generated=c.generated,
                )
            )
        elif kind in _STREAM_PACKETS:
            self._receive_stream(packet, kind, now)
        elif kind == "rpc_request":
            request = packet.rpc_request
            self._rpc.request_received(
                request,
                caller_identity=sender,
                now=now,
                registered=request.method in self._rpc_methods,
            )
            self._flush_rpc(now, "receive_data_packet")
        elif kind == "rpc_ack":
            self._rpc.ack_received(packet.rpc_ack.request_id, sender_identity=sender, now=now)
            self._flush_rpc(now, "receive_data_packet")
        elif kind == "rpc_response":
            self._rpc.response_received(packet.rpc_response, sender_identity=sender, now=now)
            self._flush_rpc(now, "receive_data_packet")
        elif kind == "encrypted_packet":
            self._events.append(
                ev.PacketDropped(
                    reason="encrypted",
                    channel=channel,
                    detail="E2EE is not configured",
                    participant_identity=sender,
                )
            )
        elif kind is None:
            self._events.append(
                ev.PacketDropped(reason="empty", channel=channel, participant_identity=sender)
            )
        else:
            self._events.append(
                ev.PacketDropped(
                    reason="unsupported", channel=channel, detail=kind, participant_identity=sender
                )
            )

    def _publish(self, packet: dpb.DataPacket, *, reliable: bool, call: str) -> None:
        channel, data, sequence = self._sender.encode(packet, reliable=reliable, call=call)
        self._commands += self._sender.send(channel, data, sequence=sequence, call=call)

    def publish_data(
        self,
        payload: bytes,
        *,
        now: float,
        reliable: bool = True,
        destination_identities: Sequence[str] = (),
        topic: str | None = None,
    ) -> None:
        """Send a user data packet. Raises `DataPacketTooLargeError` over the size limit."""
        self._sm.check("publish_data")
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise LocalProtocolError(
                "publish_data: payload must be bytes", call="publish_data", state=self.state.name
            )
        assert self._local is not None
        destinations = list(destination_identities)
        user = dpb.UserPacket(
            payload=bytes(payload),
            participant_identity=self._local.identity,
            destination_identities=destinations,
        )
        if topic is not None:
            user.topic = topic
        packet = dpb.DataPacket(user=user, destination_identities=destinations)
        self._publish(packet, reliable=reliable, call="publish_data")

    def publish_dtmf(
        self, code: int, digit: str, *, now: float, destination_identities: Sequence[str] = ()
    ) -> None:
        """Send a SIP DTMF tone as a reliable data packet."""
        self._sm.check("publish_data")
        packet = dpb.DataPacket(
            sip_dtmf=dpb.SipDTMF(code=code, digit=digit),
            destination_identities=list(destination_identities),
        )
        self._publish(packet, reliable=True, call="publish_dtmf")

    def publish_transcription(
        self,
        *,
        now: float,
        transcribed_participant_identity: str,
        track_id: str,
        segments: Sequence[ev.TranscriptionSegment],
    ) -> None:
        """Send a transcription (the server forwards it only from agent participants)."""
        self._sm.check("publish_data")
        packet = dpb.DataPacket(
            transcription=dpb.Transcription(
                transcribed_participant_identity=transcribed_participant_identity,
                track_id=track_id,
                segments=[
                    dpb.TranscriptionSegment(
                        id=s.id,
                        text=s.text,
                        start_time=s.start_time,
                        end_time=s.end_time,
                        final=s.final,
                        language=s.language,
                    )
                    for s in segments
                ],
            )
        )
        self._publish(packet, reliable=True, call="publish_transcription")

    def resume_data(self, last_message_seq: int) -> None:
        """Apply `ReconnectResponse.last_message_seq`: replay unacknowledged reliable packets."""
        self._commands += self._sender.resume(last_message_seq)

    @property
    def data_receive_states(self) -> dict[str, int]:
        """Last reliable sequence per sender SID, for `SyncState.datachannel_receive_states`."""
        return self._dedup.receive_states()

    # -- data streams (protocol-reference C) -----------------------------------------------------

    def register_stream_topic(self, kind: StreamKind, topic: str) -> None:
        """Accept incoming streams of `kind` on `topic` (a handler exists for them).

        Allowed in any state, so handlers can be in place before the join. Streams on topics
        not registered are reported once as `StreamDropped` (NO_HANDLER) and ignored.

        Raises `LocalProtocolError` if this kind and topic are already registered, or the
        topic is one of the reserved RPC topics (`lk.rpc_request`, `lk.rpc_response`).
        """
        call = "register_stream_topic"
        self._sm.check(call)
        self._check_topic(call, kind, topic)
        try:
            self._streams.add_topic(kind, topic)
        except LocalProtocolError:
            raise self._misuse(
                call, f"a {kind.value} stream topic {topic!r} is already registered"
            ) from None

    def unregister_stream_topic(self, kind: StreamKind, topic: str) -> None:
        """Stop accepting new streams of `kind` on `topic`; streams already open carry on.

        Idempotent; allowed in any state. Raises `LocalProtocolError` for a reserved topic.
        """
        call = "unregister_stream_topic"
        self._sm.check(call)
        self._check_topic(call, kind, topic)
        self._streams.remove_topic(kind, topic)

    def open_stream(
        self,
        *,
        now: float,
        kind: StreamKind,
        topic: str,
        destination_identities: Sequence[str] = (),
        attributes: Mapping[str, str] | None = None,
        mime_type: str | None = None,
        name: str | None = None,
        total_length: int | None = None,
        reply_to_stream_id: str | None = None,
        attached_stream_ids: Sequence[str] = (),
        operation_type: OperationType | int = OperationType.CREATE,
        version: int = 0,
        generated: bool = False,
        stream_id: str | None = None,
    ) -> str:
        """Open a stream to write incrementally (`stream_text`/`stream_bytes` in the SDKs) and
        send its header now. Returns the stream id (from `id_factory` unless `stream_id` is
        given, e.g. for a file named in another stream's `attached_stream_ids`).

        Such a stream is never inline or compressed, as in every SDK. `mime_type` defaults to
        text/plain or application/octet-stream, `name` (byte streams) to "unknown".
        `total_length`, if given, is the exact number of (UTF-8) bytes that will be written.
        `reply_to_stream_id`, `attached_stream_ids`, `operation_type`, `version` and
        `generated` are `TextHeader` fields, for text streams only.

        Raises `LocalProtocolError` (nothing sent) in the wrong state, for options that do
        not fit `kind`, a reserved RPC topic, a stream id in use, more than
        `Config.max_open_outgoing_streams` open streams, or a full send queue;
        `StreamHeaderTooLargeError` if the header packet exceeds 15 000 bytes (attributes).
        After calling this, drain the commands.
        """
        call = "open_stream"
        self._sm.check(call)
        if len(self._outgoing) >= self.config.max_open_outgoing_streams:
            raise self._misuse(
                call,
                f"{len(self._outgoing)} streams are already open "
                "(Config.max_open_outgoing_streams); close one first",
            )
        destinations = self._destinations(call, destination_identities)
        info = self._stream_info(
            call,
            now,
            kind=kind,
            topic=topic,
            attributes=attributes,
            mime_type=mime_type,
            name=name,
            total_length=total_length,
            reply_to_stream_id=reply_to_stream_id,
            attached_stream_ids=attached_stream_ids,
            operation_type=operation_type,
            version=version,
            generated=generated,
            stream_id=stream_id,
        )
        try:
            stream = OutgoingStream(
                info,
                destination_identities=destinations,
                chunk_size=self.config.stream_chunk_size,
            )
        except LocalProtocolError as exc:
            raise self._verb_error(call, exc) from None
        self._send_reliable(stream.open(), call)
        self._outgoing[info.stream_id] = stream
        return info.stream_id

    def write_stream(self, stream_id: str, data: str | bytes, *, now: float) -> None:
        """Send `data` on the stream opened with `open_stream`, as one or more chunks now.

        `data` is `str` for a text stream (cut only between characters) and `bytes` for a
        byte stream. Raises `LocalProtocolError` (nothing sent, the stream unchanged, so the
        call may be retried) in the wrong state, for an unknown stream, the wrong type,
        writing past `total_length`, or a full send queue; `DataPacketTooLargeError` if a
        chunk packet exceeds the channel's message size. After calling this, drain the
        commands.
        """
        call = "write_stream"
        self._sm.check(call)
        stream = self._writer(call, stream_id)
        self._stream_step(call, stream, lambda: stream.write(data))

    def close_stream(
        self,
        stream_id: str,
        *,
        now: float,
        reason: str = "",
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        """Send the trailer of a stream opened with `open_stream`; the id is then free.

        A non-empty `reason` aborts the stream: the receiver fails it (ABNORMAL_END), so use
        it for a writer that gave up. `attributes` are merged into the stream's attributes
        by the receiver. Raises `LocalProtocolError` (nothing sent, the stream still open)
        in the wrong state, for an unknown stream, a normal close short of `total_length`,
        or a full send queue. After calling this, drain the commands.
        """
        call = "close_stream"
        self._sm.check(call)
        stream = self._writer(call, stream_id)
        self._stream_step(call, stream, lambda: stream.close(reason=reason, attributes=attributes))
        del self._outgoing[stream_id]

    def send_stream(
        self,
        *,
        now: float,
        kind: StreamKind,
        topic: str,
        payload: str | bytes,
        destination_identities: Sequence[str] = (),
        attributes: Mapping[str, str] | None = None,
        mime_type: str | None = None,
        name: str | None = None,
        reply_to_stream_id: str | None = None,
        attached_stream_ids: Sequence[str] = (),
        operation_type: OperationType | int = OperationType.CREATE,
        version: int = 0,
        generated: bool = False,
        stream_id: str | None = None,
        compress: bool = True,
    ) -> str:
        """Send a whole stream at once (`send_text`/`send_bytes` in the SDKs); returns its id.

        Options as for `open_stream`; `total_length` is always the payload's (UTF-8) length.
        If every recipient (the destinations, or for a broadcast every remote participant)
        has `client_protocol >= 2`, a payload that fits goes inline in the header packet,
        deflated if all of them advertise CAP_COMPRESSION_DEFLATE_RAW, `compress` is true
        and it is strictly smaller; otherwise header, chunks and trailer (protocol-reference
        C.3). A destination not in the room counts as a legacy client.

        All packets are sent or none: raises `LocalProtocolError` (nothing sent) in the wrong
        state, for options or a payload type that do not fit `kind`, a reserved topic, or if
        the send queue cannot take the whole stream; `DataPacketTooLargeError` (or its
        `StreamHeaderTooLargeError`) if a packet exceeds its limit. After calling this,
        drain the commands.
        """
        call = "send_stream"
        self._sm.check(call)
        destinations = self._destinations(call, destination_identities)
        info = self._stream_info(
            call,
            now,
            kind=kind,
            topic=topic,
            attributes=attributes,
            mime_type=mime_type,
            name=name,
            total_length=None,
            reply_to_stream_id=reply_to_stream_id,
            attached_stream_ids=attached_stream_ids,
            operation_type=operation_type,
            version=version,
            generated=generated,
            stream_id=stream_id,
        )
        try:
            packets = packetize(
                info,
                payload,
                support=self._stream_support(destinations, compress=compress),
                destination_identities=destinations,
                chunk_size=self.config.stream_chunk_size,
            )
        except LocalProtocolError as exc:
            raise self._verb_error(call, exc) from None
        self._send_reliable(packets, call)
        return info.stream_id

    def stream_consumed(self, sender_identity: str, stream_id: str, nbytes: int) -> None:
        """The application took `nbytes` (`StreamChunkReceived.nbytes`) of that stream.

        Received bytes count against `Config.max_buffered_stream_bytes` until reported here
        (or through `stream_discarded`). Lenient about unknown streams and over-counts.
        Raises `LocalProtocolError` for a negative count.
        """
        call = "stream_consumed"
        self._sm.check(call)
        if (sender_identity, stream_id) in self._rpc_streams:
            return  # the core reads RPC streams itself
        try:
            self._streams.consumed(sender_identity, stream_id, nbytes)
        except LocalProtocolError as exc:
            raise self._verb_error(call, exc) from None

    def stream_discarded(self, sender_identity: str, stream_id: str) -> None:
        """The application dropped that stream's reader: release its unconsumed bytes and,
        if it is still open, ignore the rest of it quietly (no further events)."""
        self._sm.check("stream_discarded")
        if (sender_identity, stream_id) not in self._rpc_streams:
            self._streams.discard(sender_identity, stream_id)

    def _check_topic(self, call: str, kind: StreamKind, topic: str) -> None:
        if not isinstance(kind, StreamKind):
            raise self._misuse(call, f"kind must be a StreamKind, not {kind!r}")
        if not isinstance(topic, str):
            raise self._misuse(call, f"topic must be str, not {type(topic).__name__}")
        if topic in _RPC_TOPICS:
            raise self._misuse(call, f"the topic {topic!r} is reserved for RPC")

    def _destinations(self, call: str, identities: Sequence[str]) -> list[str]:
        if isinstance(identities, str):
            raise self._misuse(call, "destination_identities must be a sequence of identities")
        return list(identities)

    def _stream_info(
        self,
        call: str,
        now: float,
        *,
        kind: StreamKind,
        topic: str,
        attributes: Mapping[str, str] | None,
        mime_type: str | None,
        name: str | None,
        total_length: int | None,
        reply_to_stream_id: str | None,
        attached_stream_ids: Sequence[str],
        operation_type: OperationType | int,
        version: int,
        generated: bool,
        stream_id: str | None,
    ) -> StreamInfo:
        self._check_topic(call, kind, topic)
        text = kind is StreamKind.TEXT
        if text and name is not None:
            raise self._misuse(call, "name is for byte streams only")
        text_only = (
            reply_to_stream_id is not None
            or attached_stream_ids
            or operation_type != OperationType.CREATE
            or version
            or generated
        )
        if not text and text_only:
            raise self._misuse(
                call,
                "reply_to_stream_id, attached_stream_ids, operation_type, version and "
                "generated are for text streams only",
            )
        if total_length is not None and (
            isinstance(total_length, bool) or not isinstance(total_length, int) or total_length < 0
        ):
            raise self._misuse(call, f"total_length must be a non-negative int: {total_length!r}")
        if isinstance(attached_stream_ids, str):
            raise self._misuse(call, "attached_stream_ids must be a sequence of stream ids")
        if stream_id is None:
            stream_id = self._id_factory()
        if not stream_id or stream_id in self._outgoing:
            raise self._misuse(call, f"the stream id {stream_id!r} is empty or already open")
        return StreamInfo(
            stream_id=stream_id,
            kind=kind,
            topic=topic,
            timestamp=self.wall_ms(now),
            mime_type=mime_type
            if mime_type is not None
            else (TEXT_MIME_TYPE if text else BYTES_MIME_TYPE),
            total_length=total_length,
            attributes=attributes or {},
            name=name if name is not None else ("" if text else "unknown"),
            operation_type=operation_type,
            version=version,
            reply_to_stream_id=reply_to_stream_id or "",
            attached_stream_ids=tuple(attached_stream_ids),
            generated=generated,
        )

    def _stream_support(self, destinations: Sequence[str], *, compress: bool) -> StreamSupport:
        """What the recipients understand (C.3); an identity not in the room is a legacy
        client (client_protocol 0), as in B.2."""
        if not destinations:
            return StreamSupport.of(self._remotes.values(), compress=compress)
        known = [self._remotes[i] for i in destinations if i in self._remotes]
        if len(known) < len(destinations):
            return StreamSupport.CHUNKED
        return StreamSupport.of(known, compress=compress)

    def _writer(self, call: str, stream_id: str) -> OutgoingStream:
        stream = self._outgoing.get(stream_id)
        if stream is None and stream_id in self._cut_streams:
            raise self._misuse(
                call, f"stream {stream_id!r} was ended by a full reconnect (a new session)"
            )
        if stream is None:
            raise self._misuse(call, f"no stream {stream_id!r} is open (open_stream first)")
        return stream

    def _stream_step(
        self, call: str, stream: OutgoingStream, step: Callable[[], list[dpb.DataPacket]]
    ) -> None:
        """Run one writer step and send its packets; if they cannot all be sent, undo it."""
        mark = stream.checkpoint()
        try:
            packets = step()
        except LocalProtocolError as exc:
            raise self._verb_error(call, exc) from None
        try:
            self._send_reliable(packets, call)
        except LocalProtocolError:
            stream.rollback(mark)
            raise

    def _verb_error(self, call: str, exc: LocalProtocolError) -> LocalProtocolError:
        """A sub-machine's misuse error, re-addressed to the `Connection` verb and state."""
        if isinstance(exc, StreamHeaderTooLargeError):
            return StreamHeaderTooLargeError(size=exc.size, limit=exc.limit, call=call)
        return self._misuse(call, str(exc).removeprefix(f"{exc.call}: "))

    def _misuse(self, call: str, text: str) -> LocalProtocolError:
        return LocalProtocolError(f"{call}: {text}", call=call, state=self.state.name)

    def _send_reliable(self, packets: Sequence[dpb.DataPacket], call: str) -> None:
        self._commands += self._sender.send_reliable(packets, call=call)

    def _receive_stream(self, packet: dpb.DataPacket, kind: str, now: float) -> None:
        events = self._streams.receive(packet, now=now)
        header = packet.stream_header
        if kind == "stream_header" and header.topic in _RPC_TOPICS:
            first = events[0]
            if isinstance(first, StreamDropped):  # a dropped header is all there is
                # Not a user stream: report it as the RPC it was meant to be.
                self._events.append(
                    RpcDropped(
                        reason="duplicate" if first.reason is DropReason.DUPLICATE else "malformed",
                        request_id=header.attributes.get(ATTR_REQUEST_ID, ""),
                        participant_identity=first.sender_identity,
                        detail=f"{header.topic} stream {first.stream_id}: {first.detail}",
                    )
                )
                return
        self._stream_events(events, now)

    def _stream_events(
        self,
        events: Iterable[StreamEvent],
        now: float,
        *,
        settle_rpc: bool = True,
        call: str = "receive_data_packet",
    ) -> None:
        """Hand stream events to the application, except those of RPC streams, which go to
        the RPC table. `settle_rpc=False`: failed RPC streams need no answer (the table has
        settled them already: their sender left, or the session ended)."""
        ignored: set[_StreamKey] = set()
        for event in events:
            if isinstance(event, StreamOpened):
                info = event.info
                if info.topic in _RPC_TOPICS:
                    key = (event.sender_identity, info.stream_id)
                    if info.topic == RPC_REQUEST_TOPIC and not self._rpc.stream_request_opened(
                        info.attributes, caller_identity=event.sender_identity, now=now
                    ):
                        # Answered or dropped at once: the payload is not wanted.
                        self._streams.discard(*key)
                        ignored.add(key)
                    else:
                        self._rpc_streams[key] = _RpcStream(info)
                    continue
            elif not isinstance(event, StreamDropped):
                key = (event.sender_identity, event.stream_id)
                if key in ignored:
                    continue
                rpc_stream = self._rpc_streams.get(key)
                if rpc_stream is not None:
                    self._rpc_stream_event(key, rpc_stream, event, now, settle=settle_rpc)
                    continue
            self._events.append(event)
        self._flush_rpc(now, call)

    def _rpc_stream_event(
        self,
        key: _StreamKey,
        rpc_stream: _RpcStream,
        event: StreamEvent,
        now: float,
        *,
        settle: bool,
    ) -> None:
        sender = key[0]
        if isinstance(event, StreamChunkReceived):
            assert isinstance(event.data, str)  # only text streams open on the RPC topics
            rpc_stream.pieces.append(event.data)
            return
        del self._rpc_streams[key]
        attributes = rpc_stream.attributes
        if isinstance(event, StreamFinished):
            self._streams.discard(*key)  # the payload was held against the buffer bound
            text = "".join(rpc_stream.pieces)
            if rpc_stream.request:
                registered = attributes.get(ATTR_METHOD, "") in self._rpc_methods
                self._rpc.stream_request_received(
                    attributes, text, caller_identity=sender, now=now, registered=registered
                )
            else:
                self._rpc.stream_response_received(
                    attributes, text, sender_identity=sender, now=now
                )
        elif settle:  # StreamFailed (an RPC stream is never dropped once opened)
            assert not isinstance(event, StreamDropped | StreamOpened)
            if rpc_stream.request:
                self._rpc.stream_request_failed(
                    attributes, caller_identity=sender, now=now, detail=event.message
                )
            else:
                self._rpc.stream_response_failed(
                    attributes, sender_identity=sender, now=now, detail=event.message
                )

    # -- RPC (protocol-reference B) ------------------------------------------------------------

    def register_rpc_method(self, method: str) -> None:
        """Answer incoming calls of `method`: they arrive as `RpcInvoked` events.

        Allowed in any state (before the join too); registrations last for the session.
        Calls of a method not registered are acked and answered 1400 UNSUPPORTED_METHOD.
        Raises `LocalProtocolError` for an empty or non-str name, or one already registered
        (unregister it first, as client-sdk-js requires).
        """
        call = "register_rpc_method"
        self._sm.check(call)
        if not isinstance(method, str) or not method:
            raise self._misuse(call, f"the method must be a non-empty str: {method!r}")
        if method in self._rpc_methods:
            raise self._misuse(call, f"the method {method!r} is already registered")
        self._rpc_methods.add(method)

    def unregister_rpc_method(self, method: str) -> None:
        """Stop answering `method`; later calls get 1400. Idempotent; any state. Invocations
        already running still expect their `respond_rpc`."""
        self._sm.check("unregister_rpc_method")
        self._rpc_methods.discard(method)

    def perform_rpc(
        self,
        *,
        destination_identity: str,
        method: str,
        payload: str,
        now: float,
        response_timeout: float | None = None,
        max_round_trip_latency: float | None = None,
    ) -> str:
        """Call `method` on `destination_identity`; returns the request id.

        The result comes later as exactly one `RpcSucceeded` or `RpcFailed` with that id
        (possibly already among this call's events: 1402 for a v1 destination and more than
        15360 bytes, 1403 for a server older than 1.8.0, 1505 if we are hidden, lack
        canPublishData, or the request could not be sent). RPC v2 (a text stream) is used if
        the destination's `client_protocol` is >= 1 and ours is too; else an RpcRequest
        packet. Timeouts, in seconds, default to `Config.rpc_response_timeout` (1502 after
        it) and `Config.rpc_max_round_trip_latency` (1501 without an ack by then).

        Raises `LocalProtocolError` (nothing sent) in the wrong state, for an empty, our own
        or a non-str destination, a method that is empty or over
        `Config.max_rpc_method_bytes`, a payload that is not str, a non-positive timeout, or
        `Config.max_pending_rpcs` calls pending. After calling this, drain the commands.
        """
        call = "perform_rpc"
        self._sm.check(call)
        assert self._local is not None
        if destination_identity == self._local.identity:
            raise self._misuse(call, "cannot call ourselves: the server never routes it back")
        remote = self._remotes.get(destination_identity)
        try:
            request_id = self._rpc.perform(
                destination_identity,
                method,
                payload,
                now=now,
                response_timeout=response_timeout,
                max_round_trip_latency=max_round_trip_latency,
                destination_client_protocol=remote.client_protocol if remote else 0,
            )
        except LocalProtocolError as exc:
            raise self._verb_error(call, exc) from None
        self._flush_rpc(now, call)
        return request_id

    def respond_rpc(self, request_id: str, result: str | RpcError | None, *, now: float) -> None:
        """Answer the invocation `request_id` (from `RpcInvoked`): a `str` result (None means
        ""), or an `RpcError` to send as is. A success over 15360 bytes to a v1 caller is
        answered 1504. An invocation that already ended (its deadline passed, the caller
        left, the session ended) is reported as `RpcDropped` and nothing is sent.

        Raises `LocalProtocolError` (nothing sent) before the join, or for a result of
        another type. After calling this, drain the commands.
        """
        call = "respond_rpc"
        self._sm.check(call)
        try:
            self._rpc.respond(request_id, result, now=now)
        except LocalProtocolError as exc:
            raise self._verb_error(call, exc) from None
        self._flush_rpc(now, call)

    def respond_rpc_exception(
        self, request_id: str, exc: BaseException, *, now: float, include_detail: bool = False
    ) -> None:
        """Answer the invocation `request_id` with the exception its handler raised. An
        `RpcError` is sent as is; anything else becomes 1500 APPLICATION_ERROR with no data,
        so nothing leaks, unless `include_detail` puts "<type>: <text>" in the data
        (truncated to 15360 bytes on the wire). As `respond_rpc` otherwise."""
        call = "respond_rpc"
        self._sm.check(call)
        self._rpc.respond_exception(request_id, exc, now=now, include_detail=include_detail)
        self._flush_rpc(now, call)

    def _flush_rpc(self, now: float, call: str) -> None:
        """Carry out the RPC table's outputs: sends through the reliable path (a refused send
        goes back to the table as `send_failed`), everything else as events."""
        while outputs := self._rpc.drain():
            for out in outputs:
                if isinstance(out, SendRpcPacket | SendRpcStream):
                    try:
                        self._send_rpc(out, now, call)
                    except LocalProtocolError as exc:
                        self._rpc.send_failed(out, now=now, detail=str(exc))
                elif isinstance(out, InvokeHandler):
                    self._events.append(ev.RpcInvoked(invocation=out.invocation))
                elif isinstance(out, InvocationCancelled):
                    self._events.append(
                        ev.RpcInvocationCancelled(
                            request_id=out.request_id,
                            caller_identity=out.caller_identity,
                            reason=out.reason,
                        )
                    )
                else:
                    self._events.append(out)

    def _send_rpc(self, out: SendRpcPacket | SendRpcStream, now: float, call: str) -> None:
        if isinstance(out, SendRpcPacket):
            self._publish(out.packet, reliable=True, call=call)
            return
        destination = out.destination_identity
        info = StreamInfo(
            stream_id=self._id_factory(),
            kind=StreamKind.TEXT,
            topic=out.topic,
            timestamp=self.wall_ms(now),
            attributes=out.attributes,
        )
        packets = packetize(
            info,
            out.text,
            support=self._stream_support([destination], compress=True),
            destination_identities=[destination],
            chunk_size=self.config.stream_chunk_size,
        )
        self._send_reliable(packets, call)

    # -- participant metadata -----------------------------------------------------------------

    def set_metadata(self, metadata: str, *, now: float) -> int:
        """Ask the server to change our metadata; returns the request id to correlate."""
        self._sm.check("set_metadata")
        return self._update_metadata("set_metadata", now, metadata=metadata)

    def set_name(self, name: str, *, now: float) -> int:
        self._sm.check("set_name")
        return self._update_metadata("set_name", now, name=name)

    def set_attributes(self, attributes: Mapping[str, str], *, now: float) -> int:
        """Merge `attributes` into ours; a value of "" deletes that key (server rule E.1)."""
        self._sm.check("set_attributes")
        return self._update_metadata("set_attributes", now, attributes=attributes)

    def _update_metadata(
        self,
        call: str,
        now: float,
        *,
        name: str | None = None,
        metadata: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> int:
        assert self._local is not None
        if len(self._pending_meta) >= self.config.max_pending_metadata_requests:
            raise LocalProtocolError(
                f"{call}: {len(self._pending_meta)} metadata updates are already pending "
                f"(Config.max_pending_metadata_requests)",
                call=call,
                state=self.state.name,
            )
        request_id = self._next_request_id
        self._next_request_id += 1
        # Like Rust: always fill in the current name and metadata, so nothing is cleared.
        self._commands.append(
            cmd.SendSignal(
                data=self._codec.update_metadata(
                    request_id=request_id,
                    name=self._local.name if name is None else name,
                    metadata=self._local.metadata if metadata is None else metadata,
                    attributes=attributes or {},
                )
            )
        )
        self._pending_meta.add(request_id)
        self._deadlines.set((_META, request_id), now + self.config.metadata_request_timeout)
        return request_id

    # -- ending -------------------------------------------------------------------------------

    def close(
        self, *, now: float, reason: DisconnectReason = DisconnectReason.CLIENT_INITIATED
    ) -> None:
        """Leave the room: send `leave`, close the signal and peer connections. Idempotent."""
        if self.state is ConnectionState.CLOSED:
            return
        # `leave` needs a working signal connection: not while a reconnect attempt is opening.
        joined = self.state is ConnectionState.CONNECTED or self._awaiting == "peer"
        self._end(reason, "closed by the application", now=now, exc=None, send_leave=joined)

    def _fatal(
        self,
        exc: RemoteProtocolError,
        *,
        now: float,
        reason: DisconnectReason = DisconnectReason.UNKNOWN_REASON,
    ) -> None:
        self.close_exc = exc
        self._end(reason, str(exc), now=now, exc=exc, send_leave=False, close_code=1002)

    def _end(
        self,
        reason: DisconnectReason,
        message: str,
        *,
        now: float,
        exc: Exception | None,
        send_leave: bool,
        close_signal: bool = True,
        close_code: int = 1000,
    ) -> None:
        if self.state is ConnectionState.CLOSED:  # pragma: no cover - callers check first
            return
        if send_leave:
            self._commands.append(cmd.SendSignal(data=self._codec.leave(int(reason))))
        if close_signal:
            self._commands.append(cmd.CloseSignal(code=close_code))
        for target in sorted(self._peers):
            self._commands.append(cmd.ClosePeerConnection(target=target))
        self._peers.clear()
        self._deadlines.clear()
        self._pending_meta.clear()
        # Every pending call resolves (1503), every invocation is cancelled and every open
        # incoming stream fails, before the final `Disconnected`; our open streams are gone.
        self._rpc.disconnected(now=now)
        self._flush_rpc(now, "close")
        aborted = self._streams.abort_all(f"the session ended: {message}")
        self._stream_events(aborted, now, settle_rpc=False)
        self._outgoing.clear()
        self._sm.process(Input.ENDED)
        self._events.append(ev.Disconnected(reason=reason, message=message, exc=exc))


def _with_identity(info: ppb.ParticipantInfo, identity: str) -> Participant:
    copy = ppb.ParticipantInfo()
    copy.CopyFrom(info)
    copy.identity = identity
    return Participant.from_pb(copy)
