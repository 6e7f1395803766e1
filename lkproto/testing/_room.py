"""MemoryRoom: a deterministic, in-process LiveKit room with a virtual clock.

Theory of operation
- One `Sfu` (see `_server`) plays livekit-server for one room; every message between it and
  its clients is an action on one `Scheduler`, the room's virtual clock. Nothing moves
  until the caller advances the clock (`advance`, `advance_to`, `run_until_idle`,
  `run_until`); then due actions run in (time, scheduling order), so the same calls always
  give the same trace. Zero latency by default: a message sent now is delivered now, after
  everything already due now.
- Participants are `Connection`s the room drives itself (`join`): the room is their adapter.
  After every input it drains the connection's commands, carries them out (the signal goes
  to the Sfu, the peer connection is simulated: offers and answers are made up at once, the
  data channels open when the server's answer arrives, 65535 bytes max), then drains its
  events into `events(identity)` (and hands each to `on_event`, if given), then counts its
  timer among the room's deadlines: `handle_timer` fires when the clock reaches it, at
  equal times after the room's own due actions. Call a connection's verbs with
  `now=room.now`, then let the room run.
- Clients from elsewhere (an adapter's memory transport) join through `accept` and
  `connect_peer`, speaking the same bytes as to a real server.
- Encrypted rooms: `join(encryption=E2EEOptions(...))` makes an end-to-end encrypting
  participant. The server forwards its `encrypted_packet`s as livekit-server does: it stamps
  the outer participant identity and sid and never reads the envelope. The room carries out
  `DeriveRatchets` inline at once (deterministic), and hands out IVs from one counter for
  the whole room (unique under any key here, predictable: for tests only) unless `join` is
  given an `iv_factory`.
- Faults: `link(sender, receiver)` and `uplink(identity)` (drop, delay, duplicate, down),
  `disconnect` (cut a client's network for a while, optionally resetting its socket) and
  `restore`, `drop_signal` (only the socket breaks), `fail_peer` (only the peer connection
  fails), `leave` (a server-initiated LeaveRequest with each action), `restart` (graceful or
  a crash, with downtime). What the server does in each case, resumes and full reconnects
  included, is described in `_server`. `upgrades` records every signal connection attempt,
  so a test can check a reconnect's schedule to the millisecond.
- The driven adapter reports only what the core asked for last: a signal connection or
  peer connection it has closed or replaced never speaks again (the core's rule).
- A run of zero-time actions that never ends (two handlers answering each other forever) is
  stopped after `max_steps` actions at one instant with a RuntimeError.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import assert_never
from urllib.parse import urlsplit

from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._connection import Connection
from lkproto._pb import data_pb2 as dpb
from lkproto.config import Config
from lkproto.e2ee import E2EEOptions
from lkproto.models import (
    Channel,
    DisconnectReason,
    LeaveAction,
    Participant,
    ParticipantKind,
    PeerState,
    PeerTarget,
    SdpType,
)
from lkproto.testing._links import Link
from lkproto.testing._media import media_lines
from lkproto.testing._schedule import Scheduler
from lkproto.testing._server import (
    MAX_MESSAGE_SIZE,
    DroppedPacket,
    Member,
    PeerEndpoint,
    PeerLink,
    Rejected,
    Sfu,
    SignalEndpoint,
    SignalLink,
    Unreachable,
    Upgrade,
    ice_ufrag,
)
from lkproto.testing._tokens import Grants
from lkproto.tracks import TrackKind

__all__ = ["MemoryRoom"]

URL = "ws://memory.invalid"
_SDP = "v=0\r\ns=lkproto-memory-client\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
EventHandler = Callable[[ev.Event], None]


def _check_loss(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"data_track_loss must be a number from 0 to 1, not {value!r}")


class _SignalPort:
    """One signal connection of a driven participant: the room reports only the current one
    (an adapter never hears from a socket it has closed or replaced)."""

    def __init__(self, driven: _Driven) -> None:
        self.driven = driven
        self.link: SignalLink | None = None  # None while the upgrade has no answer

    def signal_received(self, data: bytes) -> None:
        driven = self.driven
        if driven.signal is self:
            driven.touched()
            driven.conn.receive_signal(data, now=driven.now)

    def signal_closed(self, code: int | None) -> None:
        driven = self.driven
        if driven.signal is self:
            driven.signal = None
            driven.touched()
            driven.conn.signal_closed(now=driven.now, code=code)


class _PeerPort:
    """A driven participant's peer connection(s) of one session: the publisher (which the
    server knows by its ufrag) and, on the dual-PC path, the subscriber, which connects once
    it has answered the server's offer. Only the current port reports."""

    def __init__(self, driven: _Driven) -> None:
        self.driven = driven
        self.link: PeerLink | None = None
        self.targets: set[PeerTarget] = set()
        # media-track slot -> [mid, kind, direction, source cid] of its transceiver
        self.slots: dict[int, list[str]] = {}

    def _current(self) -> bool:
        return self.driven.peer is self and self.link is not None

    def data_received(self, channel: Channel, data: bytes) -> None:
        if self._current():
            self.driven.touched()
            self.driven.conn.receive_data_packet(data, channel=channel, now=self.driven.now)

    def peer_closed(self) -> None:
        self._lost(PeerState.CLOSED)

    def peer_failed(self) -> None:
        self._lost(PeerState.FAILED)

    def media_received(self, mid: str, payload: object) -> None:
        if not self._current():
            return
        slot = next((s for s, line in self.slots.items() if line[0] == mid), None)
        bound = {i.slot: i.bound_sid for i in self.driven.conn.tracks.slots}
        sid = bound.get(slot, "") if slot is not None else ""
        if sid:  # the core routes by the slot's binding; unbound frames are dropped
            self.driven.media.append((sid, payload))

    def _lost(self, state: PeerState) -> None:
        if not self._current():
            return
        driven, conn = self.driven, self.driven.conn
        self.link = None
        driven.touched()
        for channel in Channel:
            conn.data_channel_closed(channel, now=driven.now)
        for target in sorted(self.targets):
            conn.peer_state_changed(target, state, now=driven.now)


class _Driven:
    """The adapter the room plays for one `Connection` it drives (see the module docstring)."""

    def __init__(
        self, room: MemoryRoom, conn: Connection, identity: str, on_event: EventHandler | None
    ) -> None:
        self.room = room
        self.conn = conn
        self.identity = identity
        self.on_event = on_event
        self.events: list[ev.Event] = []
        self.signal: _SignalPort | None = None
        self.peer: _PeerPort | None = None
        self.timer: float | None = None  # conn.get_timer() as of the last pump
        self.media: list[tuple[str, object]] = []  # (remote track sid, frame) received

    @property
    def now(self) -> float:
        return self.room.now

    def pump(self) -> bool:
        """Drain commands and events until there are none, then note the connection's timer.

        Returns True if `on_event` ran (it may have acted on any connection)."""
        handled = False
        conn = self.conn
        while True:
            commands = conn.commands_to_send()
            for command in commands:
                self._carry_out(command)
            event = conn.next_event()
            if not commands and event is None:
                self.timer = conn.get_timer()
                return handled
            while event is not None:
                self.events.append(event)
                if self.on_event is not None:
                    handled = True
                    self.on_event(event)
                event = conn.next_event()

    def touched(self) -> None:
        self.room._dirty[self] = None

    def _carry_out(self, command: cmd.Command) -> None:
        conn, now = self.conn, self.now
        match command:
            case cmd.OpenSignal():
                self._close_signal()
                port = self.signal = _SignalPort(self)
                parts = urlsplit(command.url)
                result = self.room.accept(f"{parts.path}?{parts.query}", command.headers, port)
                if isinstance(result, Rejected):
                    self.signal = None
                    body = result.body.replace(command.token, "<redacted>")
                    conn.signal_connect_failed(status=result.status, now=now, message=body)
                elif isinstance(result, Unreachable):
                    if result.refused:
                        self.signal = None
                        message = "connection refused"
                        conn.signal_connect_failed(status=None, now=now, message=message)
                    # else: the request is lost; the connection's own timer gives up on it
                else:
                    port.link = result
            case cmd.SendSignal():
                link = self.signal.link if self.signal is not None else None
                assert link is not None, "the core sends only on an open signal"
                link.send(command.data)
            case cmd.CloseSignal():
                self._close_signal()
            case cmd.CreatePeerConnection():
                if self.peer is None:
                    self.peer = _PeerPort(self)
                self.peer.targets.add(command.target)
            case cmd.ClosePeerConnection():
                self._close_peer(command.target)
            case cmd.CreateOffer():
                slots = self.peer.slots if self.peer is not None else {}
                mids = {slot: line[0] for slot, line in slots.items()}
                sdp = _SDP + media_lines((m, k, d, c or None) for m, k, d, c in slots.values())
                conn.local_description_created(
                    command.target,
                    sdp,
                    SdpType.OFFER,
                    now=now,
                    offer_id=command.offer_id,
                    slot_mids=mids,
                )
            case cmd.CreateAnswer():
                conn.local_description_created(command.target, _SDP, SdpType.ANSWER, now=now)
                if command.target is PeerTarget.SUBSCRIBER:
                    conn.peer_state_changed(PeerTarget.SUBSCRIBER, PeerState.CONNECTED, now=now)
            case cmd.SetRemoteDescription():
                if command.target is PeerTarget.PUBLISHER and command.sdp_type is SdpType.ANSWER:
                    if self.peer is None or self.peer.link is None:  # not a renegotiation
                        self._connect(ice_ufrag(command.sdp) or "")
                    if command.offer_id:
                        conn.remote_description_applied(
                            command.target, command.offer_id, now=self.now
                        )
            case cmd.SendDataPacket():
                peer = self.peer
                assert peer is not None and peer.link is not None, "data only on open channels"
                peer.link.send(command.channel, command.data)
            case cmd.SendDataTrackFrame():
                peer = self.peer
                assert peer is not None and peer.link is not None, "frames only on open channels"
                for packet in command.packets:
                    peer.link.send(Channel.DATA_TRACK, packet)
            case cmd.AddTransceiver():
                peer_port = self.peer
                assert peer_port is not None, "transceivers only on a peer connection the core made"
                mid = str(len(peer_port.slots) + 1)  # in order, after the data channels' "0"
                kind = "audio" if command.kind is TrackKind.AUDIO else "video"
                peer_port.slots[command.slot] = [
                    mid,
                    kind,
                    command.direction.value,
                    command.source_cid or "",
                ]
            case cmd.SetTransceiverDirection():
                assert self.peer is not None, "transceivers only on a peer connection the core made"
                self.peer.slots[command.slot][2] = command.direction.value
            case cmd.SetSendSource():
                assert self.peer is not None, "transceivers only on a peer connection the core made"
                self.peer.slots[command.slot][3] = command.source_cid or ""
            case cmd.CreateDataChannel() | cmd.AddIceCandidate():
                pass  # nothing to simulate
            case cmd.DeriveRatchets():
                conn.ratchets_derived(command.request_id, command.run(), now=now)
            case _:
                assert_never(command)

    def _close_signal(self) -> None:
        port, self.signal = self.signal, None
        if port is not None and port.link is not None:
            port.link.close()

    def _close_peer(self, target: PeerTarget) -> None:
        port = self.peer
        if port is None or target is not PeerTarget.PUBLISHER:
            return  # (the subscriber has no server side of its own: it goes with the other)
        self.peer = None  # the connection the server knows: gone
        if port.link is not None:
            port.link.close()

    def _connect(self, ufrag: str) -> None:
        conn, now, port = self.conn, self.now, self.peer
        assert port is not None, "an answer comes for a peer connection the core made"
        port.link = self.room.connect_peer(ufrag, port)
        if port.link is None:
            conn.peer_state_changed(PeerTarget.PUBLISHER, PeerState.FAILED, now=now)
            return
        conn.peer_state_changed(PeerTarget.PUBLISHER, PeerState.CONNECTED, now=now)
        for channel in Channel:
            conn.data_channel_opened(channel, now=now, max_message_size=MAX_MESSAGE_SIZE)


class MemoryRoom:
    """One LiveKit room in memory, with a virtual clock. Not thread-safe: one owner.

    `now` is the starting time (monotonic seconds, as the participants see it) and
    `unix_time_ms` the wall clock at that moment (for tokens and `joined_at`). Tokens must be
    signed with `api_key`/`api_secret` and grant `roomJoin` for `name`. `update_interval` is
    the server's participant-update batch period (3 s, as livekit-server; 0 sends at once).
    `single_peer_connection=False` answers `/rtc/v1` with 404, as servers before 1.9 do.
    `data_track_loss` (0 to 1) is the share of data-track packets the server loses on their
    way to subscribers, drawn deterministically from `data_track_seed`: the same run loses the
    same packets (a frame of several packets is lost with any of them). Change it any time
    through the `data_track_loss` property.
    """

    def __init__(
        self,
        name: str = "room",
        *,
        now: float = 0.0,
        unix_time_ms: int = 1_700_000_000_000,
        api_key: str = "lkproto-memory-key",
        api_secret: str = "lkproto-memory-secret-0123456789abcdef",
        update_interval: float = 3.0,
        single_peer_connection: bool = True,
        max_steps: int = 1_000_000,
        data_track_loss: float = 0.0,
        data_track_seed: int = 0,
    ) -> None:
        if not (update_interval >= 0 and math.isfinite(update_interval)):
            raise ValueError("update_interval must be a non-negative number of seconds")
        _check_loss(data_track_loss)
        if isinstance(data_track_seed, bool) or not isinstance(data_track_seed, int):
            raise TypeError(f"data_track_seed must be an int, not {data_track_seed!r}")
        self._clock = Scheduler(now)
        self._now0 = now
        self._unix0 = unix_time_ms
        self._max_steps = max_steps
        self._sfu = Sfu(
            self._clock,
            lambda: self.wall_ms,
            name=name,
            api_key=api_key,
            api_secret=api_secret,
            update_interval=update_interval,
            single_peer_connection=single_peer_connection,
            data_track_loss=data_track_loss,
            data_track_seed=data_track_seed,
        )
        self._driven: dict[str, _Driven] = {}
        self._dirty: dict[_Driven, None] = {}  # driven connections given input since a pump
        self._busy = False  # inside advance_to/run_until (an on_event handler may act)
        self._ivs = itertools.count(1)  # AES-GCM IVs for encrypting participants

    @property
    def data_track_loss(self) -> float:
        """The share of data-track packets lost on their way to subscribers (0 to 1)."""
        return self._sfu.datatracks.loss

    @data_track_loss.setter
    def data_track_loss(self, value: float) -> None:
        _check_loss(value)
        self._sfu.datatracks.loss = float(value)

    # -- the clock ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The room's name."""
        return self._sfu.name

    @property
    def sid(self) -> str:
        """The room's SID (a restart gives a new one)."""
        return self._sfu.room_sid

    @property
    def now(self) -> float:
        """The room's virtual clock, in seconds: pass it as `now=` to the connections' verbs."""
        return self._clock.now

    @property
    def wall_ms(self) -> int:
        """Unix time in milliseconds at `now`."""
        return self._unix0 + round((self._clock.now - self._now0) * 1000)

    def next_deadline(self) -> float | None:
        """When something is next due (a delivery, a server or participant timer), or None."""
        for driven in self._driven.values():
            driven.timer = driven.conn.get_timer()
        when, _ = self._next()
        return when

    def _next(self) -> tuple[float | None, _Driven | None]:
        when = self._clock.next_time()
        owner: _Driven | None = None
        for driven in self._driven.values():
            timer = driven.timer
            if timer is not None and (when is None or timer < when):
                when, owner = timer, driven
        return when, owner

    def _pump(self, *, everyone: bool = True) -> None:
        """Drain the driven connections: all of them (the caller may have used any), or
        those given input since (`everyone=False`); all again whenever a handler ran."""
        targets = list(self._driven.values()) if everyone else list(self._dirty)
        self._dirty.clear()
        while targets:
            handled = False
            for driven in targets:
                handled = driven.pump() or handled
            targets = list(self._driven.values()) if handled else list(self._dirty)
            self._dirty.clear()

    def _step(self, limit: float) -> bool:
        """Run the next thing due at or before `limit`; False if there is none."""
        when, owner = self._next()
        if when is None or when > limit:
            return False
        if owner is None:
            action = self._clock.pop_due(when)
            assert action is not None
            action()
        else:
            self._clock.now = max(self._clock.now, when)
            owner.conn.handle_timer(self._clock.now)
            self._dirty[owner] = None
        self._pump(everyone=False)
        return True

    def _enter(self, call: str) -> None:
        if self._busy:
            raise RuntimeError(
                f"MemoryRoom.{call}() called while the room runs (from an on_event handler?): "
                "return instead; the room carries on with what the handler did"
            )
        self._busy = True

    def _settle(self) -> None:
        """After a server action: run what it caused, unless the room is running already."""
        if not self._busy:
            self.run_until_idle()

    def _count(self, steps: int, instant: float) -> tuple[int, float]:
        if self._clock.now != instant:
            return 1, self._clock.now
        if steps >= self._max_steps:
            raise RuntimeError(
                f"still busy after {self._max_steps} actions at t={instant}: "
                "participants answering each other forever?"
            )
        return steps + 1, instant

    def advance_to(self, when: float) -> None:
        """Run everything due up to `when`, in order, then set the clock to `when`."""
        if when < self._clock.now:
            raise ValueError(f"cannot go back in time: {when} < now {self._clock.now}")
        self._enter("advance_to")
        try:
            self._pump()
            steps, instant = 0, self._clock.now
            while self._step(when):
                steps, instant = self._count(steps, instant)
            self._clock.now = when
        finally:
            self._busy = False

    def advance(self, seconds: float) -> None:
        """Move the clock `seconds` forward, firing every due timer in order."""
        if not seconds >= 0:
            raise ValueError(f"cannot advance by {seconds} seconds")
        self.advance_to(self._clock.now + seconds)

    def run_until_idle(self) -> None:
        """Run everything due now (zero-latency deliveries and what they cause)."""
        self.advance_to(self._clock.now)

    def run_until(self, predicate: Callable[[], bool], *, timeout: float = math.inf) -> bool:
        """Step the clock until `predicate()` holds (True) or `timeout` seconds pass (False).

        Returns as soon as it holds, at the time it first did.
        """
        deadline = self._clock.now + timeout
        self._enter("run_until")
        try:
            self._pump()
            steps, instant = 0, self._clock.now
            while True:
                if predicate():
                    return True
                if not self._step(deadline):
                    if math.isfinite(deadline):
                        self._clock.now = deadline
                    return predicate()
                steps, instant = self._count(steps, instant)
        finally:
            self._busy = False

    # -- participants ---------------------------------------------------------------------------

    def token(
        self,
        identity: str,
        *,
        name: str = "",
        metadata: str = "",
        attributes: Mapping[str, str] | None = None,
        kind: ParticipantKind | int = ParticipantKind.STANDARD,
        can_publish: bool = True,
        can_subscribe: bool = True,
        can_publish_data: bool | None = None,
        can_update_own_metadata: bool = False,
        hidden: bool = False,
        ttl: int = 6 * 3600,
    ) -> str:
        """A token for this room (defaults as livekit's: canPublishData = canPublish)."""
        grants = Grants(
            identity=identity,
            room=self.name,
            room_join=True,
            name=name,
            metadata=metadata,
            attributes=dict(attributes or {}),
            kind=int(kind),
            can_publish=can_publish,
            can_subscribe=can_subscribe,
            can_publish_data=can_publish if can_publish_data is None else can_publish_data,
            can_update_metadata=can_update_own_metadata,
            hidden=hidden,
        )
        return self._sfu.token(grants, ttl=ttl)

    def join(
        self,
        identity: str,
        *,
        config: Config | None = None,
        token: str | None = None,
        name: str = "",
        metadata: str = "",
        attributes: Mapping[str, str] | None = None,
        kind: ParticipantKind | int = ParticipantKind.STANDARD,
        can_publish: bool = True,
        can_subscribe: bool = True,
        can_publish_data: bool | None = None,
        can_update_own_metadata: bool = False,
        hidden: bool = False,
        join_metadata: str = "",
        join_attributes: Mapping[str, str] | None = None,
        single_peer_connection: bool = True,
        before_connect: Callable[[Connection], None] | None = None,
        on_event: EventHandler | None = None,
        random: Callable[[], float] | None = None,
        encryption: E2EEOptions | None = None,
        data_channel_encryption: bool = True,
        iv_factory: Callable[[], bytes] | None = None,
    ) -> Connection:
        """Add a participant the room drives; returns its `Connection`, joined (or refused).

        The grants go into a token for this room (or pass your own `token`). `before_connect`
        runs on the new connection first (register RPC methods and stream topics there).
        `join_metadata`/`join_attributes` travel in the JoinRequest. `random` is the
        connection's source of reconnect jitter (numbers in [0, 1); by default derived from
        its ids, so a run is still a pure function of its inputs). `encryption`,
        `data_channel_encryption` and `iv_factory` are the `Connection`'s (end-to-end
        encryption; IVs from the room's counter by default). Runs the room until
        idle, so the connection is CONNECTED with its data channels open on return, unless
        the server refused it. The others hear of it on the next update tick.
        """
        if token is None:
            token = self.token(
                identity,
                name=name,
                metadata=metadata,
                attributes=attributes,
                kind=kind,
                can_publish=can_publish,
                can_subscribe=can_subscribe,
                can_publish_data=can_publish_data,
                can_update_own_metadata=can_update_own_metadata,
                hidden=hidden,
            )
        ids = itertools.count(1)
        conn = Connection(
            config,
            now=self.now,
            unix_time_ms=self.wall_ms,
            id_factory=lambda: f"{identity}-{next(ids)}",
            random=random,
            encryption=encryption,
            data_channel_encryption=data_channel_encryption,
            iv_factory=iv_factory or self._next_iv,
        )
        driven = _Driven(self, conn, identity, on_event)
        self._driven[identity] = driven
        if before_connect is not None:
            before_connect(conn)
        conn.connect(
            URL,
            token,
            now=self.now,
            metadata=join_metadata,
            attributes=join_attributes,
            single_peer_connection=single_peer_connection,
        )
        self._settle()
        return conn

    def _next_iv(self) -> bytes:
        return next(self._ivs).to_bytes(12, "big")

    def _driver(self, who: str | Connection) -> _Driven:
        for driven in self._driven.values():
            if driven.identity == who or driven.conn is who:
                return driven
        raise KeyError(f"no participant driven by this room is {who!r}")

    def connection(self, identity: str) -> Connection:
        """The `Connection` of the participant last joined as `identity` with `join`."""
        return self._driver(identity).conn

    def events(self, who: str | Connection, *, clear: bool = True) -> list[ev.Event]:
        """The events of a driven participant since the last call (all of them if not `clear`).

        Every event is recorded here, `on_event` or not, until read: a long run should read
        them now and then."""
        driven = self._driver(who)
        if not self._busy:
            self._pump()
        out = list(driven.events)
        if clear:
            driven.events.clear()
        return out

    def send_media(self, who: str | Connection, cid: str, payload: object) -> None:
        """`who` sends one media frame (any object) on the send transceiver that carries its
        publication `cid`; the room forwards it to every subscriber of that track (none while
        it is muted). Nothing happens if no transceiver carries `cid` (yet)."""
        driven = self._driver(who)
        port = driven.peer
        line = None
        if port is not None and port.link is not None:
            line = next(
                (ln for ln in port.slots.values() if ln[3] == cid and ln[2] == "sendonly"), None
            )
        if port is not None and port.link is not None and line is not None:
            port.link.send_media(line[0], payload)
        self._settle()

    def media(self, who: str | Connection, *, clear: bool = True) -> list[tuple[str, object]]:
        """The media frames `who` received since the last call: (remote track sid, frame),
        routed by its receive slots' bindings as an adapter does."""
        driven = self._driver(who)
        if not self._busy:
            self._pump()
        out = list(driven.media)
        if clear:
            driven.media.clear()
        return out

    @property
    def participants(self) -> Mapping[str, Participant]:
        """Everyone in the room now, hidden ones too, as the server sees them."""
        return MappingProxyType(
            {i: Participant.from_pb(m.info()) for i, m in self._sfu.members.items()}
        )

    @property
    def dropped(self) -> list[DroppedPacket]:
        """Every data packet the room did not deliver, oldest first (the list is live)."""
        return self._sfu.dropped

    @property
    def offline(self) -> frozenset[str]:
        """The identities whose network is cut now (`disconnect` until `restore`)."""
        return frozenset(self._sfu.outages)

    @property
    def serving(self) -> bool:
        """False during a restart's downtime: connections are refused."""
        return self._clock.now >= self._sfu.down_until

    @property
    def upgrades(self) -> list[Upgrade]:
        """Every signal connection attempt (join or resume), oldest first, with its outcome
        and virtual time (the list is live). A memory transport's dial refused during a
        restart's downtime never gets as far as an upgrade, and is not listed."""
        return self._sfu.upgrades

    # -- faults and server actions --------------------------------------------------------------

    def link(self, sender: str, receiver: str) -> Link:
        """Faults on the packets the server forwards from `sender` to `receiver`."""
        return self._sfu.link(sender, receiver)

    def uplink(self, identity: str) -> Link:
        """Faults on the packets `identity` sends the server (before the server sees them)."""
        return self._sfu.uplink(identity)

    def disconnect(
        self, identity: str, *, signal_reset: bool = False, duration: float | None = None
    ) -> None:
        """Cut `identity`'s client off the network, until `restore` (or for `duration` s).

        Its signal messages and reliable data wait, both ways, as TCP and SCTP would hold
        them, and go through in order when the network is back; lossy data is lost, and so
        is a connection attempt. With `signal_reset` its socket is also reset at once (the
        client sees the signal close without a close frame); otherwise it notices only by
        its ping timeout (15 s after the last message it got). 15 s into the cut both ends'
        peer connection fails (what it held is lost) and the server removes the participant
        5 s later (CONNECTION_TIMEOUT) unless it resumed.
        """
        if duration is not None and not duration >= 0:
            raise ValueError(f"a cut lasts a non-negative number of seconds, not {duration}")
        self._sfu.cut(self._sfu_member(identity), signal_reset=signal_reset, duration=duration)
        self._settle()

    def restore(self, identity: str) -> None:
        """End `identity`'s network cut: what was held goes through, in order. Idempotent."""
        self._sfu.restore(identity)
        self._settle()

    def drop_signal(self, identity: str) -> None:
        """Break `identity`'s signal socket (no close frame), leaving its peer connection up.

        The server keeps a participant whose peer connection has connected, for a resume;
        one that never connected is removed (SIGNAL_CLOSE)."""
        self._sfu.reset_signal(self._sfu_member(identity))
        self._settle()

    def fail_client_peer(self, identity: str) -> None:
        """Make `identity`'s own peer connection fail (its ICE gives up) while the server
        has not noticed and the signal is intact: the client resumes and restarts ICE, which
        the server answers on the same session."""
        driven = self._driven[identity]
        if driven.peer is not None:
            driven.peer.peer_failed()
        self._settle()

    def fail_peer(self, identity: str) -> None:
        """Make `identity`'s peer connection fail (ICE) at both ends, the signal intact: the
        server sends leave{RESUME, CONNECTION_TIMEOUT}, closes the socket and removes the
        participant 5 s later unless it resumes (then an ICE restart brings it back)."""
        self._sfu.peer_failed(self._sfu_member(identity))
        self._settle()

    def leave(
        self,
        identity: str,
        *,
        action: LeaveAction = LeaveAction.DISCONNECT,
        reason: DisconnectReason = DisconnectReason.PARTICIPANT_REMOVED,
    ) -> None:
        """Send `identity` a server LeaveRequest with `action`, and do what the server does."""
        self._sfu.server_leave(self._sfu_member(identity), LeaveAction(action), int(reason))
        self._settle()

    def restart(self, *, graceful: bool = True, downtime: float = 0.0) -> None:
        """Restart the server; the room starts over empty, with a new SID, after `downtime`
        seconds during which connections are refused.

        Graceful (livekit-server's RoomManager.Stop): everyone is sent leave{SERVER_SHUTDOWN,
        DISCONNECT} and the sessions end. A crash: every socket is reset without a word and
        the peer connections fail 15 s later; the clients resume, the new server has never
        heard of them (leave{STATE_MISMATCH, RECONNECT}), and they rejoin."""
        if not downtime >= 0:
            raise ValueError(f"downtime must be a non-negative number of seconds, not {downtime}")
        self._sfu.restart(graceful=graceful, downtime=downtime)
        self._settle()

    def update_participant(
        self,
        identity: str,
        *,
        name: str | None = None,
        metadata: str | None = None,
        attributes: Mapping[str, str] | None = None,
        permission: Mapping[str, bool] | None = None,
    ) -> None:
        """The server API's UpdateParticipant: no permission check, broadcast at once.

        `permission` sets `ParticipantPermission` fields by name, e.g.
        `{"can_publish_data": False}`.
        """
        self._sfu.apply_update(
            self._sfu_member(identity),
            name=name,
            metadata=metadata,
            attributes=attributes,
            permission=permission,
        )
        self._settle()

    def set_metadata(self, metadata: str) -> None:
        """The server API's UpdateRoomMetadata: a room_update goes to everyone at once."""
        self._sfu.metadata = metadata
        self._sfu.send_room_update()
        self._settle()

    def send_data(
        self,
        payload: bytes,
        *,
        topic: str | None = None,
        destination_identities: Sequence[str] = (),
        reliable: bool = True,
    ) -> None:
        """The server API's SendData: a user packet with no sender."""
        user = dpb.UserPacket(payload=bytes(payload), destination_identities=destination_identities)
        if topic is not None:
            user.topic = topic
        channel = Channel.RELIABLE if reliable else Channel.LOSSY
        packet = dpb.DataPacket(
            user=user,
            destination_identities=destination_identities,
            kind=dpb.DataPacket.RELIABLE if reliable else dpb.DataPacket.LOSSY,
        )
        self._sfu.forward(None, channel, packet)
        self._settle()

    def _sfu_member(self, identity: str) -> Member:
        member = self._sfu.members.get(identity)
        if member is None:
            raise KeyError(f"{identity!r} is not in the room")
        return member

    # -- clients from elsewhere (memory transports) ---------------------------------------------

    def accept(
        self, target: str, headers: Sequence[tuple[str, str]], endpoint: SignalEndpoint
    ) -> SignalLink | Rejected | Unreachable:
        """A client's WebSocket upgrade to `target` (path?query) with these headers.

        Returns the link to send `SignalRequest`s on, the refusal (HTTP status and body), or
        `Unreachable` (the server is down, or the client's network is cut). What the server
        says arrives at `endpoint` as the clock runs.
        """
        return self._sfu.accept(target, headers, endpoint)

    def connect_peer(self, ufrag: str, endpoint: PeerEndpoint) -> PeerLink | None:
        """A client's peer connection reached the server: `ufrag` is the `a=ice-ufrag` of the
        server's answer (`ice_ufrag`). Returns the link to send data channel messages on, or
        None if no session has that ufrag."""
        return self._sfu.connect_peer(ufrag, endpoint)
