"""Connection: one LiveKit client session as a sans-I/O state machine.

Theory of operation
- Inputs are method calls, each given `now` (monotonic seconds from the adapter): bytes from
  the signal WebSocket, data channel messages, timer expiries, the outcomes of earlier commands
  (among them `reliable_delivered`: the server acknowledged our reliable packets up to a
  sequence, see `_data`) and application verbs. Outputs are drained by the caller after
  every input, in this order: `commands_to_send()`, then `next_event()` until None, then
  `get_timer()` to re-arm.
- `Connection` is a composition. It checks every verb's state, owns the signal dispatch
  (each `SignalResponse` kind to the part it concerns, in one table built at construction),
  the merged timer and the session's end, and delegates the rest to parts that share one
  `_context.Context` (events, commands, deadlines, the state machine; see that module for
  the seam a new part plugs into). Where a part owns a feature, the verbs are thin: the
  state check, then one call into that part.
  - `_session.Session`: the session's facts (where and as whom we join, the room, the
    server), opening the signal and the join (D.1-D.3, E.1);
  - `_roster.Roster`: participants, from the join and `ParticipantUpdate`s (E.3), active
    speakers and connection quality;
  - `_peers.Peers`: the peer connections asked for, their descriptions and candidates;
  - `_keepalive.Keepalive`: ping/pong and the ping timeout (G);
  - `_metadata.MetadataRequests`: our name/metadata/attribute updates and their answers;
  - `_data.DataSender`, `_data.Deduplicator`, `_data.DataReceiver`: data packets (A);
  - `_exchange.Exchange`: data streams (C) and RPC (B), around `streams.StreamAssembler`
    and `rpc.RpcTable`;
  - `_datatracks.DataTracks`: data tracks (protocol-reference-2 section 1), around
    `datatracks.DataTrackManager`, with the `_data_track` channel;
  - `_encryption.Encryption` (when made with `encryption=`): end-to-end encryption of data
    packets around `e2ee.KeyProvider`/`DataCryptor` (protocol-reference-2 §2);
  - `_reconnect.Reconnector`: resume and full reconnect (D.7, D.8), and what a peer
    connection's state change means;
  - `_media.MediaTracks`: media tracks and the single peer connection's offer/answer queue,
    around `tracks.TrackManager` (protocol-reference-2 section 3);
  - `_simulate.Simulator`: `simulate_scenario`'s failures, for testing.
- Every state change goes through the tables in `_state.py`; application verbs are checked
  there (`Verb`) before anything changes.
- Remote faults never raise out of `receive_*`: a malformed or unexpected signal message ends
  the session with a `Disconnected` event carrying a `RemoteProtocolError` plus close
  commands; a malformed data packet is dropped and reported as `PacketDropped`.
- Timers (protocol-reference G): join response (`Config.join_timeout`, 5 s as in JS/Rust),
  keepalive, one per pending metadata request, and the reconnector's, all in the context's
  one heap. `get_timer()` is the earliest of those, the RPC table's, the stream assembler's,
  the track manager's and the data-track manager's; `handle_timer(now)` fires everything due
  across the five in time order (at equal times: RPC, streams, the session's own in the order
  they were set, media tracks, then data tracks), so a late call still reports what happened
  first, first. Early or repeated calls are fine.
- The session ending fails what is in flight (every call, invocation and open stream) before
  the final `Disconnected`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence

from lkproto import commands as cmd
from lkproto import datatracks as dt
from lkproto import events as ev
from lkproto._context import Context, Timer
from lkproto._data import (
    DataReceiver,
    DataSender,
    Deduplicator,
    dtmf_packet,
    transcription_packet,
    user_packet,
)
from lkproto._datatracks import SIGNALS as DATA_TRACK_SIGNALS
from lkproto._datatracks import DataTracks
from lkproto._encryption import attach as attach_encryption
from lkproto._exchange import Exchange
from lkproto._keepalive import Keepalive
from lkproto._media import MEDIA_SIGNALS, MediaTracks
from lkproto._metadata import MetadataRequests
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto._peers import Peers
from lkproto._reconnect import ReconnectCause, Reconnector
from lkproto._roster import Roster
from lkproto._session import Session
from lkproto._simulate import Simulator
from lkproto._state import Input, ReconnectPhase, Verb
from lkproto.config import Config
from lkproto.e2ee import E2EEOptions, KeyProvider
from lkproto.errors import LocalProtocolError, RemoteProtocolError
from lkproto.models import (
    Channel,
    ConnectionState,
    DisconnectReason,
    LeaveAction,
    Participant,
    PeerState,
    PeerTarget,
    ReconnectMode,
    RoomInfo,
    SdpType,
    ServerInfo,
    SimulateScenario,
)
from lkproto.rpc import RpcError
from lkproto.streams import OperationType, StreamInfo, StreamKind
from lkproto.tracks import (
    ParticipantTrackPermission,
    TrackKind,
    TrackManager,
    TrackSource,
    VideoQuality,
)

__all__ = ["Connection"]

_S = ConnectionState


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
        encryption: E2EEOptions | None = None,
        data_channel_encryption: bool = True,
        iv_factory: Callable[[], bytes] | None = None,
    ) -> None:
        """`random` returns numbers in [0, 1) for the reconnect jitter; without it they are
        derived from `id_factory`'s ids, which are unpredictable enough for spreading out.

        `encryption` turns end-to-end encryption on (protocol-reference-2 §2): its key
        provider (`key_provider`) decrypts what peers encrypted, our data tracks are
        encrypted (as Rust does whenever its E2EE manager exists, §1.7), and with
        `data_channel_encryption` our data packets are encrypted too (`False` is what
        livekit.rtc's deprecated `RoomOptions.e2ee` does: media and data tracks only).
        `iv_factory` returns a fresh 12-byte AES-GCM IV per packet or frame, never repeated
        under one key (e.g. `lambda: os.urandom(12)`); required with `encryption`. Raises
        TypeError for an `encryption` that is not `E2EEOptions`, ValueError without the
        `iv_factory`.
        """
        self.config = config or Config()
        self.close_exc: Exception | None = None
        ctx = self._ctx = Context(
            self.config, now=now, unix_time_ms=unix_time_ms, id_factory=id_factory
        )
        self._sm = ctx.sm
        self._sender = DataSender(self.config)
        self._dedup = Deduplicator(self.config)
        self._peers = Peers(ctx)
        self._keepalive = Keepalive(ctx)
        self._metadata = MetadataRequests(ctx)
        self._roster = Roster(ctx, on_left=self._participant_left, on_local_info=self._local_info)
        self._exchange = Exchange(ctx, self._sender, self._roster)
        self._streams, self._rpc = self._exchange.streams, self._exchange.rpc
        self._receiver = DataReceiver(ctx, self._dedup)
        self._receiver.routes.update(self._exchange.routes)
        self._datatracks = DataTracks(ctx, random=random)
        self._encryption = attach_encryption(
            ctx,
            encryption,
            encrypt_data=data_channel_encryption,
            iv_factory=iv_factory,
            roster=self._roster,
            receiver=self._receiver,
            sender=self._sender,
            datatracks=self._datatracks,
        )
        self._media = MediaTracks(ctx, self._peers)
        self._media.encrypted = self._encryption is not None
        self._session = Session(
            ctx,
            roster=self._roster,
            peers=self._peers,
            keepalive=self._keepalive,
            datatracks=self._datatracks,
            media=self._media,
            rpc=self._rpc,
            cause=lambda: int(self._reconnector.cause),
            end=self._end,
            fatal=self._fatal,
        )
        self._reconnector = Reconnector(
            ctx,
            peers=self._peers,
            keepalive=self._keepalive,
            sender=self._sender,
            dedup=self._dedup,
            media=self._media,
            open_signal=self._session.open_signal,
            end=self._end,
            session_lost=self._session_lost,
            server_answered=self._session.server_answered,
            rejoined=self._session.rejoined,
            random=random,
            resuming=self._datatracks.resuming,
            sync_state_resumed=self._sync_state_resumed,
            data_tracks=self._datatracks.sync_state,
        )
        self._simulator = Simulator(ctx, self._reconnector, self._keepalive)
        # The signal dispatch once joined: each `SignalResponse` kind to the part it concerns.
        self._handlers: dict[str, Callable[[spb.SignalResponse, float], None]] = {
            "answer": self._media.receive_answer,
            "offer": lambda msg, now: self._peers.remote_offer(msg.offer.sdp),
            "trickle": lambda msg, now: self._peers.remote_candidate(msg.trickle),
            "update": self._on_update,
            "leave": self._on_leave,
            "room_update": self._session.room_updated,
            "speakers_changed": self._roster.speakers_changed,
            "connection_quality": self._roster.quality_changed,
            "refresh_token": self._session.token_refreshed,
            "pong_resp": self._on_pong_resp,
            "request_response": self._on_request_response,
            **dict.fromkeys(DATA_TRACK_SIGNALS, self._datatracks.receive_signal),
            **dict.fromkeys(MEDIA_SIGNALS, self._media.receive),
            "subscription_permission_update": self._on_permission_update,
        }
        self._timer_handlers: dict[Hashable, Callable[[float], None]] = {
            Timer.JOIN: self._join_timed_out,
            Timer.PING: self._keepalive.ping,
            Timer.PONG: self._pong_timed_out,
            Timer.RETRY: self._reconnector.attempt,
            Timer.PEER_WAIT: self._reconnector.peer_timed_out,
        }

    # -- read-only views ------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """Where the session is: the `ConnectionState` of the core's state table."""
        return self._sm.state

    @property
    def local_participant(self) -> Participant | None:
        """Our own participant as the server last described it, or None before the join."""
        return self._roster.local

    @property
    def remote_participants(self) -> Mapping[str, Participant]:
        """Remote participants by identity."""
        return self._roster.remotes

    @property
    def room(self) -> RoomInfo:
        """The room as the server last described it, or None before the join."""
        return self._session.room

    @property
    def server_info(self) -> ServerInfo:
        """What the server said about itself in the join, or None before it."""
        return self._session.server_info

    @property
    def rtt_ms(self) -> int:
        """The latest signal round-trip time from ping/pong, in milliseconds (0 = unknown)."""
        return self._keepalive.rtt_ms

    @property
    def single_peer_connection(self) -> bool:
        """True when the session uses one peer connection (`/rtc/v1`), False for the
        publisher/subscriber pair (`/rtc`)."""
        return self._peers.single_pc

    @property
    def max_data_message_size(self) -> int:
        """The largest data channel message we send, in bytes (the peer's SCTP limit, at most
        `Config.max_data_message_size`)."""
        return self._sender.max_message_size

    @property
    def next_sequence(self) -> int:
        """The sequence number the next reliable packet will carry."""
        return self._sender.next_sequence

    @property
    def rpc_methods(self) -> frozenset[str]:
        """The methods registered with `register_rpc_method`."""
        return frozenset(self._exchange.rpc_methods)

    @property
    def open_stream_ids(self) -> tuple[str, ...]:
        """Ids of the streams we opened with `open_stream` and have not closed, oldest first."""
        return tuple(self._exchange.outgoing)

    def outgoing_stream_info(self, stream_id: str) -> StreamInfo:
        """The header of a stream opened with `open_stream` and not yet closed.

        Raises `LocalProtocolError` for any other id.
        """
        return self._exchange.writer("outgoing_stream_info", stream_id).info

    @property
    def buffered_stream_bytes(self) -> int:
        """Received stream bytes not yet reported through `stream_consumed` (the bound is
        `Config.max_buffered_stream_bytes`)."""
        return self._streams.buffered_bytes

    @property
    def reconnect_mode(self) -> ReconnectMode | None:
        """What a reconnect under way is doing (None when not reconnecting)."""
        return self._reconnector.mode if self.state is _S.RECONNECTING else None

    @property
    def tracks(self) -> TrackManager:
        """The media-track sub-machine of this session, for reading (its slots, publications
        and negotiation state); drive it only through this Connection's track verbs."""
        return self._media.manager

    @property
    def key_provider(self) -> KeyProvider | None:
        """The end-to-end encryption keys (`set_shared_key`, `set_key`, `ratchet_*`,
        `export_*`), or None if made without `encryption`. Its verbs produce no output."""
        return self._encryption.key_provider if self._encryption is not None else None

    @property
    def data_channel_encryption(self) -> bool:
        """Whether the data packets we send are end-to-end encrypted."""
        return self._encryption is not None and self._encryption.encrypt_data

    @property
    def data_receive_states(self) -> dict[str, int]:
        """Last reliable sequence per sender SID, for `SyncState.datachannel_receive_states`."""
        return self._dedup.receive_states()

    def wall_ms(self, now: float) -> int:
        """The wall-clock time (ms since the epoch) that the monotonic `now` corresponds to."""
        return self._ctx.wall_ms(now)

    # -- outputs ----------------------------------------------------------------------------

    def next_event(self) -> ev.Event | None:
        """The next event, or None when there is none; call until None after every input."""
        return self._ctx.next_event()

    def commands_to_send(self) -> list[cmd.Command]:
        """Take every command produced since the last call, in order; carry them out in order."""
        return self._ctx.take_commands()

    def get_timer(self) -> float | None:
        """The earliest deadline (monotonic seconds) at which to call `handle_timer`, or None."""
        # Called after every input (each data packet received or sent): one small tuple.
        earliest: float | None = None
        for t in self._deadlines():
            if t is not None and (earliest is None or t < earliest):
                earliest = t
        return earliest

    def _deadlines(self) -> tuple[float | None, ...]:
        # In rank order: the rank (the index) orders equal deadlines in `handle_timer`.
        return (
            self._rpc.get_timer(),
            self._streams.get_timer(),
            self._ctx.deadlines.earliest(),
            self._media.get_timer(),
            self._datatracks.manager.get_timer(),
        )

    def handle_timer(self, now: float) -> None:
        """Fire every deadline due at `now`, in time order across the session, the RPC table
        and the stream assembler. Early, late and repeated calls are all fine; afterwards
        `get_timer()` is None or later than `now`."""
        while self.state is not _S.CLOSED:
            due = [
                (t, rank) for rank, t in enumerate(self._deadlines()) if t is not None and t <= now
            ]
            if not due:
                return
            when, rank = min(due)
            if rank == 0:
                self._exchange.rpc_timer(when, now)
            elif rank == 1:
                self._exchange.streams_timer(when, now)
            elif rank == 2:
                key = self._ctx.deadlines.pop_earliest()
                if isinstance(key, tuple):  # (Timer.METADATA, request_id)
                    self._metadata.timed_out(key[1])
                else:
                    self._timer_handlers[key](now)
            elif rank == 3:
                self._media.timer(now)
            else:
                self._datatracks.manager.handle_timer(when)
            self._datatracks.flush()

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
        self._sm.check(Verb.CONNECT)
        self._session.connect(
            url, token, now, metadata, attributes, single_peer_connection, embed_publisher_offer
        )

    def signal_connect_failed(self, *, status: int | None, now: float, message: str = "") -> None:
        """The WebSocket upgrade failed with HTTP `status` (None: no HTTP answer at all)."""
        if self._reconnector.phase is ReconnectPhase.SIGNAL:
            self._reconnector.signal_refused(status, message, now)
            return
        self._session.connect_failed(status, message, now)

    # -- signal input -----------------------------------------------------------------------

    def receive_signal(self, data: bytes, *, now: float) -> None:
        """One binary WebSocket message from the server. Never raises for remote faults."""
        if self.state in (_S.CLOSED, _S.NEW):
            return  # no signal connection was asked for, or it is over
        try:
            msg = self._ctx.codec.decode(data)
        except RemoteProtocolError as exc:
            self._fatal(exc, now=now)
            return
        self._keepalive.heard(now)
        try:
            self._dispatch(msg, now)
        finally:
            self._datatracks.flush()  # what the data-track manager made of it, in order

    def _dispatch(self, msg: spb.SignalResponse, now: float) -> None:
        kind = msg.WhichOneof("message")
        if self.state is _S.CONNECTING:
            self._session.first_message(msg, kind, now)
            return
        phase = self._reconnector.phase
        if phase is ReconnectPhase.SIGNAL:
            self._reconnector.answer(msg, kind, now)
            return
        if phase in (ReconnectPhase.GRACE, ReconnectPhase.BACKOFF):
            if phase is ReconnectPhase.GRACE and kind == "leave":
                self._on_leave(msg, now)  # e.g. we were removed: do not rejoin
            return  # a straggler from a signal connection we already gave up
        handler = self._handlers.get(kind or "")
        if handler is not None:  # anything else (unknown future variants) is ignored, per D.3
            handler(msg, now)

    def _on_update(self, msg: spb.SignalResponse, now: float) -> None:
        infos = msg.update.participants
        self._media.leaving(infos, now)  # their tracks end before they leave
        self._roster.update(infos, now)
        self._media.updated(infos, now)  # new participants are reported before their tracks
        self._datatracks.participants_updated(infos, now)

    def _on_leave(self, msg: spb.SignalResponse, now: float) -> None:
        leave = msg.leave
        reason = DisconnectReason.of(leave.reason)
        action = int(leave.action)
        if action in (LeaveAction.RESUME, LeaveAction.RECONNECT):
            what = "a resume" if action == LeaveAction.RESUME else "a full reconnect"
            self._reconnector.interrupt(
                reason,
                f"the server asked for {what}",
                now,
                full=action == LeaveAction.RECONNECT,
                immediate=True,  # D.7: at once, not after a backoff
            )
            return
        self._end(reason, "the server ended the session", now, send_leave=False)

    def _on_pong_resp(self, msg: spb.SignalResponse, now: float) -> None:
        self._keepalive.pong(msg.pong_resp.last_ping_timestamp, now)
        self._simulator.ponged(msg.pong_resp.last_ping_timestamp, now)

    def _on_request_response(self, msg: spb.SignalResponse, now: float) -> None:
        if not self._media.request_response(
            msg.request_response, now
        ) and not self._datatracks.request_response(msg.request_response, now):
            self._metadata.answered(msg.request_response)

    def _on_permission_update(self, msg: spb.SignalResponse, now: float) -> None:
        if not self._datatracks.permission_update(msg, now):
            self._media.receive(msg, now)

    # -- the parts' hooks --------------------------------------------------------------

    def _local_info(self, info: ppb.ParticipantInfo) -> None:
        self._exchange.local_info(info)

    def _participant_left(self, participant: Participant, now: float) -> None:
        self._dedup.forget(participant.sid)
        self._exchange.participant_left(participant.identity, participant.sid, now)
        if self._encryption is not None:
            self._encryption.participant_left(participant.identity)

    def _session_lost(self, reason: DisconnectReason, message: str, now: float) -> set[str]:
        self._roster.remove_all(reason, now)
        self._datatracks.restarted(now)
        self._datatracks.flush()
        cut_streams = self._exchange.restarted(now, message)
        self._session.rejoin_as_now()
        return cut_streams

    def _sync_state_resumed(self, now: float) -> None:
        """The resume's `SyncState` went out: requests held during the resume may follow."""
        self._datatracks.resumed(now)
        self._datatracks.flush()

    # -- peer connection results ------------------------------------------------------------

    def local_description_created(
        self,
        target: PeerTarget,
        sdp: str,
        sdp_type: SdpType,
        *,
        now: float,
        offer_id: int = 0,
        slot_mids: Mapping[int, str] | None = None,
    ) -> None:
        """The adapter created (and set) a local offer or answer.

        For `CreateOffer(offer_id=n)` with n > 0, report `offer_id=n` and `slot_mids`: the
        mid of the transceiver of every slot created so far (`lkproto.tracks`); the offer is
        sent with that id. Raises `LocalProtocolError` for slot mids that do not fit."""
        if self.state is not _S.CLOSED and target in self._peers.targets:
            self._session.local_description(target, sdp, sdp_type, offer_id, slot_mids, now)

    def remote_description_applied(self, target: PeerTarget, offer_id: int, *, now: float) -> None:
        """The adapter applied `SetRemoteDescription(offer_id=n)` (n > 0), after
        re-registering its receivers' SSRCs: the answer's bindings take effect."""
        if self.state is _S.CLOSED or target not in self._peers.targets:
            return
        self._media.applied(offer_id, now)

    def ice_candidate_gathered(
        self, target: PeerTarget, candidate_init: str | None, *, now: float
    ) -> None:
        """A local ICE candidate (JSON RTCIceCandidateInit), or None at the end of gathering."""
        if self.state is not _S.CLOSED and candidate_init is not None:
            self._session.candidate_gathered(target, candidate_init)

    def peer_state_changed(self, target: PeerTarget, state: PeerState | str, *, now: float) -> None:
        """A peer connection's connectionState changed (a `PeerState`, or its string value:
        "connected", "failed", "closed", ...).

        Report only the peer connection the core asked for last under `target`: a closed
        one's late state changes must not be taken for the new one's. Raises
        `LocalProtocolError` for a value that is not a connection state."""
        try:
            state = PeerState(state)
        except ValueError:
            raise LocalProtocolError(
                f"peer_state_changed: {state!r} is not a peer connection state "
                f"({', '.join(PeerState)})",
                call="peer_state_changed",
                state=self.state.name,
            ) from None
        if self.state is not _S.CLOSED and target in self._peers.targets:
            self._reconnector.peer_state_changed(target, state, now)

    def data_channel_opened(
        self, channel: Channel, *, now: float, max_message_size: int | None = None
    ) -> None:
        """A data channel opened; `max_message_size` is the remote SCTP limit if known."""
        if self.state is _S.CLOSED:
            return
        if channel is Channel.DATA_TRACK:
            self._datatracks.channel_changed(True)
            return
        if max_message_size is not None:
            self._sender.remote_max_message_size = max(0, max_message_size)
        self._ctx.commands += self._sender.channel_opened(channel)
        self._reconnector.channel_opened(channel, now)

    def data_channel_closed(self, channel: Channel, *, now: float) -> None:
        """A data channel of ours closed (the transport saw it): sends on it queue or fail."""
        if channel is Channel.DATA_TRACK:
            self._datatracks.channel_changed(False)
            return
        self._sender.channel_closed(channel)

    def reliable_delivered(self, sequence: int, *, now: float) -> None:
        """The server has every reliable packet we sent up to and including `sequence`
        (`SendDataPacket.sequence`): the adapter saw the SCTP message carrying it cumulatively
        acknowledged. Those packets leave the replay buffer; nothing is sent or reported.
        Ignored while our reliable channel is not open and for a sequence not issued yet."""
        if type(sequence) is not int:
            raise TypeError(
                f"reliable_delivered: sequence must be an int, not {type(sequence).__name__}"
            )
        self._sender.reliable_delivered(sequence)

    def command_failed(self, command: cmd.Command, message: str, *, now: float) -> None:
        """A command could not be carried out.

        While joining, peer and signal failures end the session. Once joined, a failed
        signal command starts a resume and a failed peer command (a negotiation error, or an
        ICE restart the adapter cannot do) a full reconnect (D.8)."""
        if self.state is _S.CLOSED:
            return
        if isinstance(command, cmd.SendDataPacket | cmd.SendDataTrackFrame):
            return  # the adapter reports a broken channel through data_channel_closed
        if isinstance(command, cmd.DeriveRatchets):
            if self._encryption is not None:
                self._encryption.derivation_failed(command.request_id, message, now)
            return
        text = f"{type(command).__name__} failed: {message}"
        if self.state not in (_S.NEW, _S.CONNECTING):
            self._reconnector.command_failed(command, text, now)
            return
        self._end(
            DisconnectReason.UNKNOWN_REASON,
            text,
            now,
            send_leave=not isinstance(command, (cmd.OpenSignal, cmd.SendSignal)),
        )

    def signal_closed(self, *, now: float, code: int | None = None, reason: str = "") -> None:
        """The signal WebSocket closed (EOF), with its close `code` and `reason` if any.
        Before the join this fails the join; once joined it starts a resume (D.8); during a
        reconnect attempt it fails the attempt.

        Report only the signal connection the core opened last."""
        if self.state in (_S.CLOSED, _S.NEW):
            return
        why = f"code {code}: {reason}" if reason else f"code {code}"
        if self.state is _S.CONNECTING:
            self._session.signal_closed(why, now)
        else:
            self._reconnector.signal_closed(f"the signal connection closed ({why})", now)

    def simulate_scenario(self, scenario: SimulateScenario, *, now: float) -> None:
        """Cause a failure, for testing (`livekit.rtc`'s `Room.simulate_scenario`).

        SIGNAL_RECONNECT drops the signal connection and resumes; FULL_RECONNECT leaves and
        rejoins. The others ask the server (`SignalRequest.simulate`), which then closes the
        signal, the session or the peer connection as the scenario says."""
        self._sm.check(Verb.SIMULATE_SCENARIO)
        self._simulator.simulate(scenario, now)

    # -- the session's own deadlines ----------------------------------------------------------

    def _join_timed_out(self, now: float) -> None:
        if self.state is _S.RECONNECTING:
            self._reconnector.join_timed_out(now)
        else:
            self._session.join_timed_out(now)

    def _pong_timed_out(self, now: float) -> None:
        # Nothing from the server for ping_timeout seconds means the network was down at
        # least that long: long enough for the server's ICE to give up on our peer
        # connection even if ours has not noticed yet. So the resume restarts ICE (an
        # adapter that cannot do that rejoins, sending again what the server never got).
        self._peers.connected.clear()
        self._reconnector.interrupt(
            DisconnectReason.CONNECTION_TIMEOUT,
            f"ping timeout: no signal message for {self._keepalive.timeout:g}s",
            now,
            cause=ReconnectCause.SIGNAL,
        )

    # -- data packets -----------------------------------------------------------------------

    def receive_data_packet(self, data: bytes, *, channel: Channel, now: float) -> None:
        """One message from a data channel. Malformed packets are dropped and reported
        (`PacketDropped`; on `_data_track`, `DataTrackPacketDropped`)."""
        if self.state is _S.CLOSED:
            return
        if channel is Channel.DATA_TRACK:
            self._datatracks.receive_packet(data, now)
            return
        self._receiver.receive(data, channel=channel, now=now)

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
        self._sm.check(Verb.PUBLISH_DATA)
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise LocalProtocolError(
                "publish_data: payload must be bytes", call="publish_data", state=self.state.name
            )
        packet = user_packet(
            bytes(payload),
            identity=self._local().identity,
            destinations=list(destination_identities),
            topic=topic,
        )
        self._ctx.commands += self._sender.publish(packet, reliable=reliable, call="publish_data")

    def publish_dtmf(
        self, code: int, digit: str, *, now: float, destination_identities: Sequence[str] = ()
    ) -> None:
        """Send a SIP DTMF tone as a reliable data packet."""
        self._sm.check(Verb.PUBLISH_DATA)
        packet = dtmf_packet(code, digit, list(destination_identities))
        self._ctx.commands += self._sender.publish(packet, reliable=True, call="publish_dtmf")

    def publish_transcription(
        self,
        *,
        now: float,
        transcribed_participant_identity: str,
        track_id: str,
        segments: Sequence[ev.TranscriptionSegment],
    ) -> None:
        """Send a transcription (the server forwards it only from agent participants)."""
        self._sm.check(Verb.PUBLISH_DATA)
        packet = transcription_packet(transcribed_participant_identity, track_id, segments)
        call = "publish_transcription"
        self._ctx.commands += self._sender.publish(packet, reliable=True, call=call)

    def ratchets_derived(
        self, request_id: int, chain: Sequence[tuple[bytes, bytes]], *, now: float
    ) -> None:
        """The result of `DeriveRatchets(request_id)` (its `run()`): the packets that waited
        for those key ratchets are read now. Ignored after the session ended or for a request
        no longer pending; raises `LocalProtocolError` (changing nothing) for a chain that is
        not (32-byte material, 16-byte key) pairs."""
        if self.state is not _S.CLOSED and self._encryption is not None:
            self._encryption.ratchets_derived(request_id, chain, now)

    def resume_data(self, last_message_seq: int) -> None:
        """Apply `ReconnectResponse.last_message_seq`: replay unacknowledged reliable packets."""
        self._ctx.commands += self._sender.resume(last_message_seq)

    # -- data streams (protocol-reference C) -----------------------------------------------------

    def register_stream_topic(self, kind: StreamKind, topic: str) -> None:
        """Accept incoming streams of `kind` on `topic` (a handler exists for them).

        Allowed in any state, so handlers can be in place before the join. Streams on topics
        not registered are reported once as `StreamDropped` (NO_HANDLER) and ignored.

        Raises `LocalProtocolError` if this kind and topic are already registered, or the
        topic is one of the reserved RPC topics (`lk.rpc_request`, `lk.rpc_response`).
        """
        self._sm.check(Verb.REGISTER_STREAM_TOPIC)
        self._exchange.register_topic(kind, topic)

    def unregister_stream_topic(self, kind: StreamKind, topic: str) -> None:
        """Stop accepting new streams of `kind` on `topic`; streams already open carry on.

        Idempotent; allowed in any state. Raises `LocalProtocolError` for a reserved topic.
        """
        self._sm.check(Verb.UNREGISTER_STREAM_TOPIC)
        self._exchange.unregister_topic(kind, topic)

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
        sender_identity: str = "",
    ) -> str:
        """Open a stream to write incrementally (`stream_text`/`stream_bytes` in the SDKs) and
        send its header now. Returns the stream id (from `id_factory` unless `stream_id` is
        given, e.g. for a file named in another stream's `attached_stream_ids`).

        Such a stream is never inline or compressed, as in every SDK. `mime_type` defaults to
        text/plain or application/octet-stream, `name` (byte streams) to "unknown".
        `total_length`, if given, is the exact number of (UTF-8) bytes that will be written.
        `reply_to_stream_id`, `attached_stream_ids`, `operation_type`, `version` and
        `generated` are `TextHeader` fields, for text streams only. `sender_identity` ("" means
        ourselves) sets the packets' `participant_identity`: the server keeps it only for
        agent participants (sending on behalf of another participant) and otherwise
        overwrites it with ours.

        Raises `LocalProtocolError` (nothing sent) in the wrong state, for options that do
        not fit `kind`, a reserved RPC topic, a stream id in use, more than
        `Config.max_open_outgoing_streams` open streams, or a full send queue;
        `StreamHeaderTooLargeError` if the header packet exceeds 15 000 bytes (attributes).
        After calling this, drain the commands.
        """
        self._sm.check(Verb.OPEN_STREAM)
        return self._exchange.open_stream(
            now,
            kind=kind,
            topic=topic,
            destination_identities=destination_identities,
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
            sender_identity=sender_identity,
        )

    def write_stream(self, stream_id: str, data: str | bytes, *, now: float) -> None:
        """Send `data` on the stream opened with `open_stream`, as one or more chunks now.

        `data` is `str` for a text stream (cut only between characters) and `bytes` for a
        byte stream. Raises `LocalProtocolError` (nothing sent, the stream unchanged, so the
        call may be retried) in the wrong state, for an unknown stream, the wrong type,
        writing past `total_length`, or a full send queue; `DataPacketTooLargeError` if a
        chunk packet exceeds the channel's message size. After calling this, drain the
        commands.
        """
        self._sm.check(Verb.WRITE_STREAM)
        self._exchange.write_stream(stream_id, data)

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
        self._sm.check(Verb.CLOSE_STREAM)
        self._exchange.close_stream(stream_id, reason=reason, attributes=attributes)

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
        self._sm.check(Verb.SEND_STREAM)
        return self._exchange.send_stream(
            now,
            kind=kind,
            topic=topic,
            payload=payload,
            destination_identities=destination_identities,
            attributes=attributes,
            mime_type=mime_type,
            name=name,
            reply_to_stream_id=reply_to_stream_id,
            attached_stream_ids=attached_stream_ids,
            operation_type=operation_type,
            version=version,
            generated=generated,
            stream_id=stream_id,
            compress=compress,
        )

    def stream_consumed(self, sender_identity: str, stream_id: str, nbytes: int) -> None:
        """The application took `nbytes` (`StreamChunkReceived.nbytes`) of that stream.

        Received bytes count against `Config.max_buffered_stream_bytes` until reported here
        (or through `stream_discarded`). Lenient about unknown streams and over-counts.
        Raises `LocalProtocolError` for a negative count.
        """
        self._sm.check(Verb.STREAM_CONSUMED)
        self._exchange.consumed(sender_identity, stream_id, nbytes)

    def stream_discarded(self, sender_identity: str, stream_id: str) -> None:
        """The application dropped that stream's reader: release its unconsumed bytes and,
        if it is still open, ignore the rest of it quietly (no further events)."""
        self._sm.check(Verb.STREAM_DISCARDED)
        self._exchange.discarded(sender_identity, stream_id)

    # -- RPC (protocol-reference B) ------------------------------------------------------------

    def register_rpc_method(self, method: str) -> None:
        """Answer incoming calls of `method`: they arrive as `RpcInvoked` events.

        Allowed in any state (before the join too); registrations last for the session.
        Calls of a method not registered are acked and answered 1400 UNSUPPORTED_METHOD.
        Raises `LocalProtocolError` for an empty or non-str name, or one already registered
        (unregister it first, as client-sdk-js requires).
        """
        self._sm.check(Verb.REGISTER_RPC_METHOD)
        self._exchange.register_method(method)

    def unregister_rpc_method(self, method: str) -> None:
        """Stop answering `method`; later calls get 1400. Idempotent; any state. Invocations
        already running still expect their `respond_rpc`."""
        self._sm.check(Verb.UNREGISTER_RPC_METHOD)
        self._exchange.rpc_methods.discard(method)

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
        self._sm.check(Verb.PERFORM_RPC)
        return self._exchange.perform(
            now,
            destination_identity=destination_identity,
            method=method,
            payload=payload,
            response_timeout=response_timeout,
            max_round_trip_latency=max_round_trip_latency,
        )

    def respond_rpc(self, request_id: str, result: str | RpcError | None, *, now: float) -> None:
        """Answer the invocation `request_id` (from `RpcInvoked`): a `str` result (None means
        ""), or an `RpcError` to send as is. A success over 15360 bytes to a v1 caller is
        answered 1504. An invocation that already ended (its deadline passed, the caller
        left, the session ended) is reported as `RpcDropped` and nothing is sent.

        Raises `LocalProtocolError` (nothing sent) before the join, or for a result of
        another type. After calling this, drain the commands.
        """
        self._sm.check(Verb.RESPOND_RPC)
        self._exchange.respond(request_id, result, now)

    def respond_rpc_exception(
        self, request_id: str, exc: BaseException, *, now: float, include_detail: bool = False
    ) -> None:
        """Answer the invocation `request_id` with the exception its handler raised. An
        `RpcError` is sent as is; anything else becomes 1500 APPLICATION_ERROR with no data,
        so nothing leaks, unless `include_detail` puts "<type>: <text>" in the data
        (truncated to 15360 bytes on the wire). As `respond_rpc` otherwise."""
        self._sm.check(Verb.RESPOND_RPC)
        self._exchange.respond_exception(request_id, exc, now, include_detail=include_detail)

    # -- data tracks (protocol-reference-2 section 1; `lkproto.datatracks`) -------------------

    def publish_data_track(
        self,
        *,
        name: str,
        now: float,
        uses_e2ee: bool | None = None,
        frame_encoding: tpb.DataTrackFrameEncoding | None = None,
        schema: tpb.DataTrackSchemaId | None = None,
    ) -> int:
        """Publish a data track named `name`; returns its `pub_handle` (1, 2, 3, ...).

        Exactly one `DataTrackPublished` or `DataTrackPublishFailed` with that handle follows
        (the server's refusal reason: NOT_ALLOWED without canPublishData, DUPLICATE_NAME,
        INVALID_NAME, ...; TIMEOUT after `Config.data_track_publish_timeout`).

        `uses_e2ee` (GCM), as the official SDKs decide it: None (the default) means yes if
        this Connection was made with `encryption`, and then each pushed frame is encrypted
        here with our current key (False is refused there). Without `encryption`, True
        leaves the encryption to the caller: every frame pushed must carry its E2EE
        extension, the payload its ciphertext. Raises `LocalProtocolError` (nothing sent)
        unless CONNECTED, for a name that is not str, or at
        `Config.max_published_data_tracks`.
        """
        self._sm.check(Verb.PUBLISH_DATA_TRACK)
        return self._datatracks.publish(
            now, name=name, uses_e2ee=uses_e2ee, frame_encoding=frame_encoding, schema=schema
        )

    def unpublish_data_track(self, pub_handle: int, *, now: float) -> None:
        """Unpublish our track (`DataTrackUnpublished` LOCAL at once; a pending publish is
        cancelled instead). Idempotent; any state. Raises `LocalProtocolError` for a handle
        never allocated."""
        self._sm.check(Verb.UNPUBLISH_DATA_TRACK)
        self._datatracks.unpublish(pub_handle, now)

    def push_data_track_frame(
        self,
        pub_handle: int,
        frame: dt.DataTrackFrame,
        *,
        now: float,
        e2ee: dt.E2eeExtension | None = None,
    ) -> None:
        """Send `frame` on our published track (livekit.rtc `LocalDataTrack.try_push`).

        Its packets leave as one `SendDataTrackFrame` command, at once if the `_data_track`
        channel is open, else when it opens (at most `Config.max_data_track_queued_frames`
        per track wait). Raises `PushFrameError` (QUEUE_FULL: too many waiting, or a full
        reconnect is republishing the track; TRACK_UNPUBLISHED: it ended) or
        `LocalProtocolError` (a handle never published or still pending, wrong types, a
        frame over `Config.max_data_track_packets_per_frame` packets); nothing is queued then.

        In a Connection made with `encryption`, a frame on a track that uses E2EE is
        encrypted here (AES-GCM under our current key, the IV from `iv_factory`; the payload
        becomes ciphertext and 16-byte tag, so even an empty frame is sent, as Rust does),
        and its packets carry the E2EE extension; `e2ee` must then be None. Elsewhere `e2ee`
        is the extension of a frame the caller encrypted, given exactly on such tracks.
        """
        self._sm.check(Verb.PUSH_DATA_TRACK_FRAME)
        self._datatracks.push(pub_handle, frame, now, e2ee)

    def subscribe_data_track(self, sid: str, *, now: float) -> None:
        """Subscribe to remote track `sid` (from `RemoteDataTrackPublished`).

        `DataTrackSubscribed` follows, then a `DataTrackFrameReceived` per frame, until one
        `DataTrackSubscriptionEnded` (at once, UNPUBLISHED, if `sid` is not known; TIMEOUT
        after `Config.data_track_subscribe_timeout`; NOT_ALLOWED if the publisher's
        permissions exclude us). Subscribing again is a no-op. Raises `LocalProtocolError`
        unless CONNECTED or for a `sid` that is not str."""
        self._sm.check(Verb.SUBSCRIBE_DATA_TRACK)
        self._datatracks.subscribe(sid, now)

    def unsubscribe_data_track(self, sid: str, *, now: float) -> None:
        """End our subscription to `sid` (`DataTrackSubscriptionEnded` CANCELLED).
        Idempotent; any state."""
        self._sm.check(Verb.UNSUBSCRIBE_DATA_TRACK)
        self._datatracks.unsubscribe(sid, now)

    def set_data_track_pipeline_options(
        self, sid: str, *, max_partial_frames: int | None = None
    ) -> None:
        """How many frames of remote track `sid` are reassembled at once (livekit.rtc
        `RemoteDataTrack.set_pipeline_options`; 0 is clamped to 1, None keeps it). Partial
        frames over a lowered bound are dropped and reported. Any state."""
        self._sm.check(Verb.SET_DATA_TRACK_PIPELINE_OPTIONS)
        self._datatracks.set_pipeline_options(sid, max_partial_frames)

    def is_data_track_published(self, pub_handle: int) -> bool:
        """livekit.rtc `LocalDataTrack.is_published()`: published, or being republished."""
        return self._datatracks.is_published(pub_handle)

    def data_track_info(self, pub_handle: int) -> dt.DataTrackInfo | None:
        """Our track's info once accepted (its SID changes after a full reconnect)."""
        return self._datatracks.local_info(pub_handle)

    @property
    def remote_data_tracks(self) -> tuple[tuple[str, dt.DataTrackInfo], ...]:
        """(publisher identity, info) of every remote data track known, in discovery order."""
        return tuple(self._datatracks.remote_tracks)

    def data_track_subscription(self, sid: str) -> dt.SubscriptionState:
        """Our subscription to remote track `sid` (NONE if none, or `sid` is unknown)."""
        return self._datatracks.subscription(sid)

    # -- media tracks (protocol-reference-2 section 3; `lkproto.tracks`) ----------------------

    def publish_track(
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
        """Publish a track; returns its cid, which the adapter's send track must use as its
        id (the server matches the RTP to the publication by it).

        The outcome follows as `LocalTrackPublished` or `LocalTrackPublishFailed` with that
        cid (NOT_ALLOWED without canPublish or for a source not allowed, TIMEOUT after
        `Config.track_publish_timeout`); once accepted, a send slot is negotiated. Options
        as `TrackManager.publish`. Raises `LocalProtocolError` (nothing sent) when not
        connected, on the dual peer connection path or with an embedded offer, for wrong
        arguments, at `Config.max_published_tracks`, or with end-to-end encryption on (media
        frames are not encrypted). After calling this, drain the commands."""
        self._sm.check(Verb.PUBLISH_TRACK)
        return self._media.publish(
            kind,
            name=name,
            now=now,
            source=source,
            muted=muted,
            stream=stream,
            stereo=stereo,
            width=width,
            height=height,
            video_codec=video_codec,
            max_bitrate=max_bitrate,
        )

    def unpublish_track(self, cid: str, *, now: float) -> bool:
        """Unpublish our track `cid` (a pending publish is cancelled). Idempotent: False if
        no such publication exists any more."""
        self._sm.check(Verb.UNPUBLISH_TRACK)
        return self._media.unpublish(cid, now)

    def set_track_muted(self, cid: str, muted: bool, *, now: float) -> None:
        """Mute or unmute our track `cid` (`MuteTrackRequest`). The server stops forwarding a
        muted track; what the sender sends meanwhile is the adapter's choice. Raises
        `LocalProtocolError` for an unknown cid."""
        self._sm.check(Verb.SET_TRACK_MUTED)
        self._media.set_muted(cid, muted, now)

    def set_track_subscribed(self, sid: str, subscribed: bool, *, now: float) -> None:
        """Subscribe to or unsubscribe from remote track `sid` (`UpdateSubscription`); an
        unknown sid gives `TrackSubscriptionFailed(TRACK_NOT_FOUND)` when subscribing."""
        self._sm.check(Verb.SET_TRACK_SUBSCRIBED)
        self._media.set_subscribed(sid, subscribed, now)

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
        """`UpdateTrackSettings` for remote track `sid` (see `TrackManager`)."""
        self._sm.check(Verb.UPDATE_TRACK_SETTINGS)
        self._media.update_settings(
            sid, now=now, enabled=enabled, width=width, height=height, quality=quality, fps=fps
        )

    def set_track_subscription_permissions(
        self,
        *,
        allow_all_participants: bool,
        now: float,
        participant_permissions: Sequence[ParticipantTrackPermission] = (),
    ) -> None:
        """Who may subscribe to our tracks (`SubscriptionPermission`); kept across a full
        reconnect."""
        self._sm.check(Verb.SET_TRACK_SUBSCRIPTION_PERMISSIONS)
        self._media.set_permissions(
            allow_all_participants=allow_all_participants,
            participant_permissions=participant_permissions,
            now=now,
        )

    # -- participant metadata -----------------------------------------------------------------

    def set_metadata(self, metadata: str, *, now: float) -> int:
        """Ask the server to change our metadata; returns the request id to correlate."""
        self._sm.check(Verb.SET_METADATA)
        return self._metadata.request("set_metadata", self._local(), now, metadata=metadata)

    def set_name(self, name: str, *, now: float) -> int:
        """Ask the server to set our name (needs `canUpdateOwnMetadata`); returns the request id
        that `MetadataUpdateCompleted`/`MetadataUpdateFailed` will carry."""
        self._sm.check(Verb.SET_NAME)
        return self._metadata.request("set_name", self._local(), now, name=name)

    def set_attributes(self, attributes: Mapping[str, str], *, now: float) -> int:
        """Merge `attributes` into ours; a value of "" deletes that key (server rule E.1)."""
        self._sm.check(Verb.SET_ATTRIBUTES)
        return self._metadata.request("set_attributes", self._local(), now, attributes=attributes)

    def _local(self) -> Participant:
        local = self._roster.local
        assert local is not None  # joined: the verbs that need it check that first
        return local

    # -- ending -------------------------------------------------------------------------------

    def close(
        self, *, now: float, reason: DisconnectReason = DisconnectReason.CLIENT_INITIATED
    ) -> None:
        """Leave the room: send `leave`, close the signal and peer connections. Idempotent."""
        if self.state is _S.CLOSED:
            return
        # `leave` needs a working signal connection: not while a reconnect attempt is opening.
        joined = self.state is _S.CONNECTED or self._reconnector.phase is ReconnectPhase.PEER
        self._end(reason, "closed by the application", now, send_leave=joined)

    def _fatal(
        self,
        exc: RemoteProtocolError,
        *,
        now: float,
        reason: DisconnectReason = DisconnectReason.UNKNOWN_REASON,
    ) -> None:
        self.close_exc = exc
        self._end(reason, str(exc), now, exc=exc, send_leave=False, close_code=1002)

    def _end(
        self,
        reason: DisconnectReason,
        message: str,
        now: float,
        *,
        send_leave: bool,
        exc: Exception | None = None,
        close_signal: bool = True,
        close_code: int = 1000,
    ) -> None:
        if self.state is _S.CLOSED:  # pragma: no cover - callers check first
            return
        ctx = self._ctx
        if send_leave:
            ctx.commands.append(cmd.SendSignal(data=ctx.codec.leave(int(reason))))
        if close_signal:
            ctx.commands.append(cmd.CloseSignal(code=close_code))
        self._peers.close_all()
        self._media.disconnected(now)  # our tracks end, the others' are withdrawn
        ctx.deadlines.clear()
        self._metadata.pending.clear()
        # Every pending call resolves (1503), every invocation is cancelled and every open
        # incoming stream fails, before the final `Disconnected`; our open streams are gone.
        self._exchange.ended(now, message)
        self._datatracks.ended(now)
        self._datatracks.flush()
        if self._encryption is not None:
            self._encryption.ended()
        self._reconnector.ended()
        self._sm.process(Input.ENDED)
        ctx.events.append(ev.Disconnected(reason=reason, message=message, exc=exc))
