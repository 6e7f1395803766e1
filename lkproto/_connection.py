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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import ClassVar

from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._data import DataSender, Deduplicator
from lkproto._deadlines import Deadlines
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
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
    RoomInfo,
    SdpType,
    ServerInfo,
)
from lkproto.signal import SignalCodec

__all__ = ["Connection"]

_JOIN = "join"
_PING = "ping"
_PONG = "pong-timeout"
_META = "metadata"


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
    ) -> None:
        self.config = config or Config()
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
        return self._deadlines.earliest()

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

    def _open_signal(self, now: float, *, offer: str | None) -> None:
        if self._single_pc:
            request = self._codec.join_request(
                metadata=self._join_metadata,
                attributes=self._join_attributes,
                publisher_offer=offer,
            )
            url = self._codec.join_url_v1(self._url, request)
        else:
            url = self._codec.join_url_v0(
                self._url, attributes=self._join_attributes, metadata=self._join_metadata
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
        self._end(DisconnectReason.JOIN_FAILURE, text, now=now, exc=None, send_leave=False)

    # -- signal input -----------------------------------------------------------------------

    def receive_signal(self, data: bytes, *, now: float) -> None:
        """One binary WebSocket message from the server. Never raises for remote faults."""
        if self.state is ConnectionState.CLOSED:
            return
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
        self._deadlines.cancel(_JOIN)
        self._local = Participant.from_pb(join.participant)
        self._room = RoomInfo.from_pb(join.room)
        self._server_info = ServerInfo.from_pb(join.server_info)
        self._ice_servers = tuple(IceServer.from_pb(s) for s in join.ice_servers)
        self._remotes.clear()
        for info in join.other_participants:
            p = Participant.from_pb(info)
            if p.identity:
                self._remotes[p.identity] = p
                self._sid_to_identity[p.sid] = p.identity
        self._sm.process(Input.JOINED)
        self._ping_interval = float(max(join.ping_interval, 0))
        self._ping_timeout = float(max(join.ping_timeout, 0))
        if self._ping_interval > 0 and self._ping_timeout > 0:
            self._deadlines.set(_PING, now + self._ping_interval)
            self._deadlines.set(_PONG, now + self._ping_timeout)
        self._events.append(
            ev.Joined(
                room=self._room,
                local_participant=self._local,
                participants=tuple(self._remotes.values()),
                server_info=self._server_info,
                ice_servers=self._ice_servers,
                single_peer_connection=self._single_pc,
            )
        )
        if PeerTarget.PUBLISHER not in self._peers:
            self._create_publisher(self._ice_servers)

    def _on_answer(self, msg: spb.SignalResponse, now: float) -> None:
        self._commands.append(
            cmd.SetRemoteDescription(
                target=PeerTarget.PUBLISHER, sdp=msg.answer.sdp, sdp_type=SdpType.ANSWER
            )
        )

    def _on_offer(self, msg: spb.SignalResponse, now: float) -> None:
        # Dual-PC: the server's offer is for the subscriber PC. Single-PC: for the only PC.
        target = PeerTarget.PUBLISHER if self._single_pc else PeerTarget.SUBSCRIBER
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
        self._apply_participants(msg.update.participants)

    def _on_leave(self, msg: spb.SignalResponse, now: float) -> None:
        leave = msg.leave
        reason = DisconnectReason.of(leave.reason)
        action = int(leave.action)
        if action in (LeaveAction.RESUME, LeaveAction.RECONNECT):
            if self.state is ConnectionState.CONNECTED:
                self._sm.process(Input.RECONNECT_REQUESTED)
            self._events.append(ev.ReconnectRequested(action=LeaveAction(action), reason=reason))
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

    def _apply_participants(self, infos: Iterable[ppb.ParticipantInfo]) -> None:
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
                    self._remove(existing, DisconnectReason.of(info.disconnect_reason))
                continue
            new = Participant.from_pb(info)
            if not new.identity:
                new = _with_identity(info, identity)
            if existing is not None and existing.sid != new.sid:
                # The same identity rejoined with a new SID: the old session is gone.
                self._remove(existing, DisconnectReason.DUPLICATE_IDENTITY)
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
        self._diff(old, new)

    def _remove(self, participant: Participant, reason: DisconnectReason) -> None:
        self._remotes.pop(participant.identity, None)
        self._sid_to_identity.pop(participant.sid, None)
        self._dedup.forget(participant.sid)
        self._events.append(ev.ParticipantDisconnected(participant=participant, reason=reason))

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
        if self.state is ConnectionState.CLOSED:
            return
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
        """A peer connection's connectionState changed ("connected", "failed", "closed", ...)."""
        if self.state is ConnectionState.CLOSED:
            return
        if state == "failed":
            self._end(
                DisconnectReason.MEDIA_FAILURE,
                f"the {target.name.lower()} peer connection failed",
                now=now,
                exc=None,
                send_leave=True,
            )

    def data_channel_opened(
        self, channel: Channel, *, now: float, max_message_size: int | None = None
    ) -> None:
        """A data channel opened; `max_message_size` is the remote SCTP limit if known."""
        if self.state is ConnectionState.CLOSED:
            return
        if max_message_size is not None:
            self._sender.remote_max_message_size = max(0, max_message_size)
        self._commands += self._sender.channel_opened(channel)

    def data_channel_closed(self, channel: Channel, *, now: float) -> None:
        self._sender.channel_closed(channel)

    def command_failed(self, command: cmd.Command, message: str, *, now: float) -> None:
        """A command could not be carried out. Peer and signal failures end the session."""
        if self.state is ConnectionState.CLOSED:
            return
        if isinstance(command, cmd.SendDataPacket):
            return  # the adapter reports a broken channel through data_channel_closed
        self._end(
            DisconnectReason.UNKNOWN_REASON,
            f"{type(command).__name__} failed: {message}",
            now=now,
            exc=None,
            send_leave=not isinstance(command, (cmd.OpenSignal, cmd.SendSignal)),
        )

    def signal_closed(self, *, now: float, code: int | None = None) -> None:
        """The signal WebSocket closed (EOF). Before the join this fails the join."""
        if self.state is ConnectionState.CLOSED:
            return
        if self.state is ConnectionState.CONNECTING:
            self._end(
                DisconnectReason.JOIN_FAILURE,
                f"the signal closed before the join (code {code})",
                now=now,
                exc=None,
                send_leave=False,
                close_signal=False,
            )
            return
        self._end(
            DisconnectReason.SIGNAL_CLOSE,
            f"the signal connection closed (code {code})",
            now=now,
            exc=None,
            send_leave=False,
            close_signal=False,
        )

    # -- timers -----------------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Fire every deadline due at `now`. Early, late and repeated calls are all fine."""
        for key in self._deadlines.pop_due(now):
            if self.state is ConnectionState.CLOSED:
                return
            if key == _JOIN:
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
                self._end(
                    DisconnectReason.CONNECTION_TIMEOUT,
                    f"ping timeout: no signal message for {self._ping_timeout:g}s",
                    now=now,
                    exc=None,
                    send_leave=False,
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
        if self._dedup.is_duplicate(packet.participant_sid, packet.sequence, now):
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
        joined = self.state in (ConnectionState.CONNECTED, ConnectionState.RECONNECTING)
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
        self._sm.process(Input.ENDED)
        self._events.append(ev.Disconnected(reason=reason, message=message, exc=exc))


def _with_identity(info: ppb.ParticipantInfo, identity: str) -> Participant:
    copy = ppb.ParticipantInfo()
    copy.CopyFrom(info)
    copy.identity = identity
    return Participant.from_pb(copy)
