"""Resume and full reconnect: the reconnector, and the schedule of its attempts.

Theory of operation (protocol-reference D.7, D.8, A.7)
- An interruption (the signal closed or went quiet, a peer connection failed, a command
  failed, or the server's `LeaveRequest` asked for RESUME/RECONNECT) moves the connection to
  RECONNECTING (a peer connection failing before the join ends the session instead:
  `peer_state_changed`). The reconnector's phase and mode then follow the tables in
  `_state.py` (`RECONNECT_TRANSITIONS`, `MODE_TRANSITIONS`), drawn in docs/state.md.
- A resume (mode RESUME) reopens the signal with `reconnect=1` and our participant SID. The
  server answers `ReconnectResponse`: we send `SyncState` (the descriptions we hold and the
  last sequence received per sender), restart ICE if the peer connection is not connected,
  and once it is, replay the reliable packets after `last_message_seq` (A.7).
- A full reconnect (mode FULL) is a new session under the same identity: the peer
  connections are closed, sequencing starts over, everyone is taken to have left and
  everything in flight fails (D.8 step 1); then a new join, as we are now (current name,
  metadata and attributes), and a new publisher. What the server said it never got (user
  data, DTMF, transcriptions, chat and whole streams; never RPC, whose calls just failed)
  is carried over into the new session (`_carry_over`).
- It is a full reconnect if asked for, if `Config.resume` is off, if no peer connection ever
  connected (nothing to resume), if the server refuses resuming, or if a resume's peer
  connection does not recover within `Config.peer_connection_timeout`.
- Attempts: 1 is immediate (most interruptions are over by the time they are noticed), so
  is any attempt the server asked for (D.7); attempt n >= 2 waits
  min(`reconnect_base_delay` * (n - 1)^2, `reconnect_max_delay`): 0, 0.3, 1.2, 2.7, 4.8, 7,
  7, ... s with the defaults, client-sdk-js's DefaultReconnectPolicy. From attempt 3 on, a
  draw in [0, 1) from the injected random source times `reconnect_jitter` is added, so that
  many clients cut off by one event spread out. After `Config.reconnect_attempts` attempts
  the session ends. A refused token (401/403) ends it at once: retrying cannot help.
- After a peer connection failed with the signal still up, the signal is kept (GRACE) and
  the first attempt waits `_KEPT_SIGNAL_GRACE` for a `leave` the server may have written
  just before closing the peer connection (JS waits up to 250 ms for the signal to close,
  MAX_WS_CLOSE_TIME). The `Reconnecting` event waits with it: a server that ends the session
  writes the leave, then closes the peer connection, and on a busy machine the peer's
  "closed" can be read first; the user then sees the session end (SERVER_SHUTDOWN), not a
  reconnect that never happened.
- The reconnector owns the phase, the mode, the attempt count and why the session was
  interrupted. What its decisions mean for the rest of the session (ending it, opening a
  signal, dropping what was in flight, taking over the server's facts) it asks of its owner
  through five hooks given at construction; the parts it drives directly (peer
  connections, keepalive, the data sender and de-duplicator) it is given as well. It never
  sees the `Connection`.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Sequence
from typing import Protocol

from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._context import Context, Timer
from lkproto._data import DataSender, Deduplicator
from lkproto._exchange import RPC_TOPICS, STREAM_PACKETS
from lkproto._keepalive import Keepalive
from lkproto._media import MediaTracks
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto._peers import Peers
from lkproto._state import (
    MODE_TRANSITIONS,
    RECONNECT_TRANSITIONS,
    Input,
    Machine,
    ModeInput,
    ReconnectInput,
    ReconnectPhase,
)
from lkproto.config import Config
from lkproto.errors import LocalProtocolError
from lkproto.models import (
    Channel,
    ConnectionState,
    DisconnectReason,
    LeaveAction,
    PeerState,
    PeerTarget,
    ReconnectMode,
)

__all__ = ["EndSession", "ReconnectCause", "Reconnector", "reconnect_delay"]

_KEPT_SIGNAL_GRACE = 0.25
_RESUME_DISABLED = 1  # ClientConfigSetting.DISABLED in ClientConfiguration.resume_connection
# DataPacket kinds worth sending again in a new session (`_carry_over`).
_CARRIED = frozenset({"user", "sip_dtmf", "transcription", "chat_message"})


class ReconnectCause(enum.IntEnum):
    """Why a resume is attempted, reported in its join request (wire `ReconnectReason`)."""

    UNKNOWN = 0
    SIGNAL = 1  # RR_SIGNAL_DISCONNECTED
    PUBLISHER = 2  # RR_PUBLISHER_FAILED
    SUBSCRIBER = 3  # RR_SUBSCRIBER_FAILED


def reconnect_delay(config: Config, attempt: int, draw: float) -> float:
    """Seconds to wait before attempt number `attempt` (1-based)."""
    if attempt <= 1:
        return 0.0
    nominal = min(config.reconnect_base_delay * (attempt - 1) ** 2, config.reconnect_max_delay)
    jitter = config.reconnect_jitter * min(max(draw, 0.0), 1.0) if attempt >= 3 else 0.0
    return nominal + jitter


class EndSession(Protocol):
    """How the reconnector ends the session (the owner's `_end`)."""

    def __call__(
        self,
        reason: DisconnectReason,
        message: str,
        now: float,
        *,
        send_leave: bool,
        close_signal: bool = True,
    ) -> None: ...


class Reconnector:
    __slots__ = (
        "_acknowledged",
        "_ctx",
        "_data_tracks",
        "_dedup",
        "_end",
        "_held",
        "_keepalive",
        "_media",
        "_mode",
        "_open_signal",
        "_peers",
        "_phase",
        "_random",
        "_rejoined_hook",
        "_resuming",
        "_sender",
        "_server_answered",
        "_session_lost",
        "_sync_state_resumed",
        "attempts",
        "cause",
        "last_message_seq",
        "message",
        "reason",
        "since",
    )

    def __init__(
        self,
        ctx: Context,
        *,
        peers: Peers,
        keepalive: Keepalive,
        sender: DataSender,
        dedup: Deduplicator,
        media: MediaTracks,
        open_signal: Callable[[float, bool], None],
        end: EndSession,
        session_lost: Callable[[DisconnectReason, str, float], set[str]],
        server_answered: Callable[[spb.ReconnectResponse], None],
        rejoined: Callable[[spb.JoinResponse, float], None],
        random: Callable[[], float] | None = None,
        resuming: Callable[[float], None] | None = None,
        sync_state_resumed: Callable[[float], None] | None = None,
        data_tracks: Callable[[], Sequence[tpb.PublishDataTrackResponse]] | None = None,
    ) -> None:
        """The owner's hooks carry out what a decision means outside the reconnector:
        - `open_signal(now, resume)`: open a signal connection, a resume request (with our
          SID) or a join;
        - `end`: end the session;
        - `session_lost(reason, message, now)`: a full reconnect; everyone left, everything
          in flight failed, and the join facts become what we are now. Returns the ids of
          our streams that were cut;
        - `server_answered(response)`: take over what a `ReconnectResponse` says of the
          server;
        - `rejoined(join, now)`: take over a full reconnect's `JoinResponse` and report what
          changed;
        - `resuming(now)`: an interruption that a resume may repair (each time; requests
          that need the server's session should wait);
        - `sync_state_resumed(now)`: the resume's `SyncState` was sent (what waited may go);
        - `data_tracks()`: `SyncState.publish_data_tracks`, our published data tracks.

        `random` returns numbers in [0, 1) for the jitter; without it they are derived from
        the context's ids, which are unpredictable enough for spreading out."""
        self._ctx = ctx
        self._open_signal = open_signal
        self._end = end
        self._session_lost = session_lost
        self._server_answered = server_answered
        self._rejoined_hook = rejoined
        self._resuming = resuming
        self._sync_state_resumed = sync_state_resumed
        self._data_tracks = data_tracks
        self._peers = peers
        self._keepalive = keepalive
        self._sender = sender
        self._dedup = dedup
        self._media = media
        self._random = random or self._random_from_ids
        self._phase = Machine(RECONNECT_TRANSITIONS, ReconnectPhase.IDLE)
        self._mode: Machine[ReconnectMode | None, ModeInput] = Machine(MODE_TRANSITIONS, None)
        self.reason = DisconnectReason.UNKNOWN_REASON
        self.message = ""
        self.cause = ReconnectCause.UNKNOWN
        self.since = 0.0
        self.attempts = 0
        self.last_message_seq = 0
        # What this interruption's ReconnectResponse said the server has (None: no answer
        # yet). If the resume then becomes a full reconnect, what came after it never reached
        # the server and is sent again in the new session instead of being lost.
        self._acknowledged: int | None = None
        # A resume's `Reconnecting`, held through GRACE (see the module docstring).
        self._held: ev.Reconnecting | None = None

    @property
    def phase(self) -> ReconnectPhase:
        return self._phase.state

    @property
    def mode(self) -> ReconnectMode | None:
        return self._mode.state

    def _random_from_ids(self) -> float:
        digest = hashlib.blake2b(self._ctx.id_factory().encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    # -- interruptions ---------------------------------------------------------------------

    def interrupt(
        self,
        reason: DisconnectReason,
        message: str,
        now: float,
        *,
        full: bool = False,
        immediate: bool = False,
        close_signal: bool = True,
        cause: ReconnectCause | None = None,
        keep_signal: bool = False,
    ) -> None:
        """The session was interrupted (again): start or restart reconnecting.

        A resume unless `full`, resuming is off, the peer connection never connected, or a
        full reconnect is already under way (it stays one). `keep_signal` (only from
        CONNECTED, with the signal still working): keep the signal open until the first
        attempt, which waits a moment for a `leave` on it."""
        ctx = self._ctx
        if cause is not None:
            self.cause = cause
        if ctx.state is ConnectionState.CONNECTED:
            ctx.sm.process(Input.INTERRUPTED)
            self.attempts = 0
            self.since = now
            self._acknowledged = None
        if ctx.config.reconnect_attempts == 0:
            self._end(
                reason,
                f"{message} (reconnecting is off: Config.reconnect_attempts is 0)",
                now,
                send_leave=close_signal,  # the signal may still work: say goodbye
                close_signal=close_signal,
            )
            return
        self.reason, self.message = reason, message
        self._phase.process(ReconnectInput.PEER_LOST if keep_signal else ReconnectInput.LOST)
        self._keepalive.stop()
        for key in (Timer.JOIN, Timer.RETRY, Timer.PEER_WAIT):
            ctx.deadlines.cancel(key)
        if close_signal:
            ctx.commands.append(cmd.CloseSignal(code=1000))
        full = full or not ctx.config.resume or not self._peers.ever_connected
        old = self.mode
        new = self._mode.process(ModeInput.FULL if full else ModeInput.RESUME)
        if new is not old:
            assert new is not None
            event = ev.Reconnecting(mode=new, reason=reason, message=message)
            self._held = None  # a held resume's event, superseded before its attempt
            if keep_signal and new is ReconnectMode.RESUME:
                self._held = event  # emitted by the first attempt, unless a leave ends it
            else:
                ctx.events.append(event)
        elif self._held is not None:  # interrupted again during the grace: the wait is over
            ctx.events.append(self._held)
            self._held = None
        # Media tracks first: a full reconnect withdraws remote publications before the
        # roster reports their publishers gone (livekit.rtc's order).
        self._media.reconnecting(full=new is ReconnectMode.FULL, now=now)
        if new is ReconnectMode.FULL:
            self._restart_session(now, message)
        elif self._resuming is not None:
            self._resuming(now)
        if keep_signal:  # give a `leave` on the kept signal a moment before the first attempt
            ctx.deadlines.set(Timer.RETRY, now + _KEPT_SIGNAL_GRACE)
        else:
            self._schedule_attempt(now, immediate=immediate)

    def signal_closed(self, message: str, now: float) -> None:
        """The signal connection closed once joined: a resume starts (D.8), or during an
        attempt the attempt fails. Between attempts it is an old connection: ignored."""
        phase = self.phase
        if phase in (ReconnectPhase.GRACE, ReconnectPhase.BACKOFF, ReconnectPhase.SIGNAL):
            if phase is ReconnectPhase.SIGNAL:
                self.attempt_failed(now, message)
            return
        self.interrupt(
            DisconnectReason.SIGNAL_CLOSE,
            message,
            now,
            close_signal=False,
            cause=ReconnectCause.SIGNAL,
        )

    def command_failed(self, command: cmd.Command, text: str, now: float) -> None:
        """A command failed once joined. A failed signal command starts a resume and a failed
        peer command (a negotiation error, or an ICE restart the adapter cannot do) a full
        reconnect, at once: another signal attempt cannot fix it (D.8)."""
        if isinstance(command, cmd.OpenSignal):
            if self.phase is ReconnectPhase.SIGNAL:
                self.attempt_failed(now, text)
            return
        signal = isinstance(command, cmd.SendSignal | cmd.CloseSignal)
        if signal and self.phase not in (ReconnectPhase.IDLE, ReconnectPhase.PEER):
            return  # a request for a signal connection we already gave up
        if isinstance(command, cmd.ClosePeerConnection):
            return  # it is gone either way
        self.interrupt(
            DisconnectReason.UNKNOWN_REASON, text, now, full=not signal, immediate=not signal
        )

    def _restart_session(self, now: float, message: str) -> None:
        """A full reconnect drops the session: its peer connections, sequencing (A.7), and
        everything in flight, as if every other participant had left (D.8 step 1)."""
        self._peers.reset()
        # What the server said it lacks; without its word, at least what never left us.
        unacknowledged = (
            self._sender.unsent()
            if self._acknowledged is None
            else self._sender.unacknowledged(self._acknowledged)
        )
        self._acknowledged = None
        self._sender.reset()
        self._dedup.reset()
        cut_streams = self._session_lost(self.reason, message, now)
        self._carry_over(unacknowledged, cut_streams)

    def _carry_over(self, unacknowledged: list[bytes], cut_streams: set[str]) -> None:
        """Queue for the new session what the server said it never got: user data, DTMF,
        transcriptions, chat, and whole streams. Not RPC packets (those calls just failed with
        1503) nor the packets of streams the reconnect cut (their writers just failed)."""
        dropped_streams = set(cut_streams)
        for data in unacknowledged:
            packet = dpb.DataPacket.FromString(data)
            kind = packet.WhichOneof("value")
            if kind == "stream_header" and packet.stream_header.topic in RPC_TOPICS:
                dropped_streams.add(packet.stream_header.stream_id)
            if kind in STREAM_PACKETS:
                if getattr(packet, kind).stream_id in dropped_streams:
                    continue
            elif kind not in _CARRIED:
                continue
            try:
                self._ctx.commands += self._sender.send_reliable([packet], call="reconnect")
            except LocalProtocolError:  # the send queue is full: the rest is lost, as in JS
                return

    def _schedule_attempt(self, now: float, *, immediate: bool = False) -> None:
        config = self._ctx.config
        if self.attempts >= config.reconnect_attempts:
            self._end(
                self.reason,
                f"gave up reconnecting after {self.attempts} attempts: {self.message}",
                now,
                send_leave=False,
            )
            return
        attempt = self.attempts + 1
        draw = self._random() if attempt >= 3 and not immediate else 0.0
        delay = 0.0 if immediate else reconnect_delay(config, attempt, draw)
        self._ctx.deadlines.set(Timer.RETRY, now + delay)

    # -- attempts --------------------------------------------------------------------------

    def attempt(self, now: float) -> None:
        """`Timer.RETRY` fired: open the next attempt's signal connection."""
        if self.phase is ReconnectPhase.GRACE:
            self._ctx.commands.append(cmd.CloseSignal(code=1000))
        if self._held is not None:  # the grace is over: the first attempt
            self._ctx.events.append(self._held)
            self._held = None
        self.attempts += 1
        self._phase.process(ReconnectInput.ATTEMPT)
        self._open_signal(now, self.mode is ReconnectMode.RESUME)

    def attempt_failed(self, now: float, message: str) -> None:
        self._phase.process(ReconnectInput.FAILED)
        self._ctx.deadlines.cancel(Timer.JOIN)
        self.message = message
        self._schedule_attempt(now)

    def join_timed_out(self, now: float) -> None:
        """`Timer.JOIN` fired while an attempt's signal connection was waiting (SIGNAL)."""
        self._ctx.commands.append(cmd.CloseSignal(code=1000))
        self.attempt_failed(now, f"no answer within {self._ctx.config.join_timeout:g}s")

    def peer_timed_out(self, now: float) -> None:
        """`Timer.PEER_WAIT` fired: the peer connection did not recover (PEER)."""
        self.interrupt(
            self.reason,
            f"the peer connection did not recover within "
            f"{self._ctx.config.peer_connection_timeout:g}s",
            now,
            full=True,
            immediate=self.mode is ReconnectMode.RESUME,
        )

    def signal_refused(self, status: int | None, message: str, now: float) -> None:
        """An attempt's WebSocket upgrade failed with HTTP `status` (None: no answer)."""
        if status in (401, 403):  # unrecoverable (D.8): retrying cannot help
            text = f"the server refused the token while reconnecting (HTTP {status})"
            if message:
                text += f": {message}"
            self._end(DisconnectReason.JOIN_FAILURE, text, now, send_leave=False)
        else:
            where = f"HTTP {status}" if status is not None else "no answer"
            self.attempt_failed(now, f"reconnect attempt failed ({where}): {message}")

    def answer(self, msg: spb.SignalResponse, kind: str | None, now: float) -> None:
        """The first message on a reconnect attempt's signal connection (SIGNAL)."""
        resume = self.mode is ReconnectMode.RESUME
        if kind == "leave":
            leave = msg.leave
            reason = DisconnectReason.of(leave.reason)
            action = int(leave.action)
            if action == LeaveAction.DISCONNECT:
                text = "the server ended the session"
                self._end(reason, text, now, send_leave=False)
            else:  # RECONNECT: the server no longer has our participant (a restart, a move)
                self.interrupt(
                    reason,
                    "the server cannot resume this session",
                    now,
                    full=action == LeaveAction.RECONNECT,
                    immediate=True,
                )
        elif kind == "reconnect" and resume:
            self._resumed(msg.reconnect, now)
        elif kind == "join" and not resume and msg.join.participant.sid:
            self._rejoined(msg.join, now)
        else:
            self._ctx.commands.append(cmd.CloseSignal(code=1002))
            expected = "reconnect" if resume else "join"
            self.attempt_failed(now, f"expected a {expected} response, got {kind or 'nothing'}")

    def _resumed(self, response: spb.ReconnectResponse, now: float) -> None:
        """`ReconnectResponse` (D.8 steps 3-7): sync state, recover the peer connection if it
        needs it, then replay what the server did not get (A.7)."""
        ctx = self._ctx
        ctx.deadlines.cancel(Timer.JOIN)
        self._server_answered(response)
        self.last_message_seq = self._acknowledged = response.last_message_seq
        if response.client_configuration.resume_connection == _RESUME_DISABLED:
            self.interrupt(
                self.reason, "the server does not allow resuming", now, full=True, immediate=True
            )
            return
        self._phase.process(ReconnectInput.ANSWERED)
        self._keepalive.start(now)
        offer, answer = self._peers.sync_descriptions()
        publish_tracks, subscription, disabled = self._media.sync_state()
        ctx.commands.append(
            cmd.SendSignal(
                data=ctx.codec.sync_state(
                    offer=offer,
                    answer=answer,
                    receive_states=self._dedup.receive_states(),
                    publish_tracks=publish_tracks,
                    subscription=subscription,
                    track_sids_disabled=disabled,
                    publish_data_tracks=() if self._data_tracks is None else self._data_tracks(),
                )
            )
        )
        if self._sync_state_resumed is not None:
            self._sync_state_resumed(now)
        if self._peers.all_connected:
            self._reconnected(now)  # only the signal was lost: the peer connection carries on
            return
        ctx.deadlines.set(Timer.PEER_WAIT, now + ctx.config.peer_connection_timeout)
        ctx.commands.append(cmd.CreateOffer(target=PeerTarget.PUBLISHER, ice_restart=True))

    def _rejoined(self, join: spb.JoinResponse, now: float) -> None:
        """A full reconnect's `JoinResponse`: a fresh session under the same identity."""
        self._rejoined_hook(join, now)
        self._phase.process(ReconnectInput.ANSWERED)
        self._ctx.deadlines.set(Timer.PEER_WAIT, now + self._ctx.config.peer_connection_timeout)
        self._peers.create_publisher(self._peers.ice_servers, now)

    # -- recovery --------------------------------------------------------------------------

    def peer_connected(self, now: float) -> None:
        """A peer connection reported "connected": a resume's ICE restart may have worked."""
        if (
            self.phase is ReconnectPhase.PEER
            and self.mode is ReconnectMode.RESUME
            and self._peers.all_connected
        ):
            self._reconnected(now)

    def peer_state_changed(self, target: PeerTarget, state: PeerState, now: float) -> None:
        """The current peer connection of `target` changed state (the owner checked that it
        is current and the session not over). "connected" may complete a resume; "failed"
        and "closed" end a session still joining, and interrupt a joined one (D.8)."""
        peers = self._peers
        if state is PeerState.CONNECTED:
            peers.connected.add(target)
            peers.ever_connected = True
            self.peer_connected(now)
            return
        if state not in (PeerState.FAILED, PeerState.CLOSED):
            return  # "disconnected" may recover by itself; "failed" is final
        peers.connected.discard(target)
        message = f"the {target.name.lower()} peer connection {state}"
        session = self._ctx.state
        if session is ConnectionState.CONNECTING:
            self._end(DisconnectReason.MEDIA_FAILURE, message, now, send_leave=True)
            return
        # D.8: a failed peer connection is resumed with an ICE restart; a resume already
        # waiting for the peer connection becomes a full reconnect. The signal did not fail:
        # keep it until the attempt, so that what the server wrote on it before closing our
        # peer connection (a leave{DISCONNECT}) is still read.
        keep = session is ConnectionState.CONNECTED and self._ctx.config.reconnect_attempts > 0
        self.interrupt(
            DisconnectReason.MEDIA_FAILURE,
            message,
            now,
            full=self.phase is ReconnectPhase.PEER,
            close_signal=not keep,
            cause=(
                ReconnectCause.PUBLISHER
                if target is PeerTarget.PUBLISHER
                else ReconnectCause.SUBSCRIBER
            ),
            keep_signal=keep,
        )

    def channel_opened(self, channel: Channel, now: float) -> None:
        """A data channel opened: the rejoined session of a full reconnect carries data."""
        if (
            channel is Channel.RELIABLE
            and self.phase is ReconnectPhase.PEER
            and self.mode is ReconnectMode.FULL
        ):
            self._reconnected(now)

    def _reconnected(self, now: float) -> None:
        mode = self.mode
        assert mode is not None
        self._phase.process(ReconnectInput.RECOVERED)
        self._ctx.deadlines.cancel(Timer.PEER_WAIT)
        if mode is ReconnectMode.RESUME:
            self._ctx.commands += self._sender.resume(self.last_message_seq)
            self._media.resumed(now)  # requests held during the resume go out now
        self._ctx.sm.process(Input.RECONNECTED)
        self._mode.process(ModeInput.DONE)
        self._ctx.events.append(
            ev.Reconnected(mode=mode, attempts=self.attempts, duration=now - self.since)
        )

    def ended(self) -> None:
        """The session ended: nothing is under way any more."""
        if self.phase is not ReconnectPhase.IDLE:
            self._phase.process(ReconnectInput.ENDED)
            self._mode.process(ModeInput.DONE)
