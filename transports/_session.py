"""The session every adapter shares: one room's connection to the server, on anyio.

Theory of operation. A `Session` owns the sans-I/O `Connection` of one room and runs it
around the synchronous `Pump` (transports/_pump.py) with three tasks in a task group:
- the writer: one FIFO of signal commands, carried out in order (open the WebSocket, send,
  close), so the server sees exactly the core's order;
- a reader per WebSocket it opened: each message becomes `pump.on_signal`; a reader whose
  connection the core has since replaced or closed stops feeding it (a generation count);
- the timer: it sleeps until the core's next deadline (`get_timer`), then `pump.on_timer`.
Reconnecting is the core's: it asks for a new signal connection or peer connection through
commands, and the loops above carry them out like any other.

What differs between runtimes arrives as a `Runtime` (transports/_runtime.py): where the tasks
live, the peer port (aiortc), a custom dialer. The room facades (anyio, trio, threaded)
compose a Session; none of them overrides anything in it.

`connect()` returns once the join succeeded and the reliable data channel is open, so the
first `publish_data` is never lost. Whatever the core reports goes, in this order, to the
session's own bookkeeping (joins, ends, metadata-update answers), to the data streams or RPC
(`Streams`, `Rpc`) or data tracks (`DataTracks`, which emits `data_track_published` and
`data_track_unpublished` itself), to media tracks (`Media`: frame routing before the model,
publish waiters after), to the `RoomModel` (whose `livekit.rtc` emissions go to `emit`), and
to every subscriber (`events()`, trio's `event_channel()`, the threaded adapter's iterators).
Flow control (protocol-reference A.3, client-sdk-js watermarks): a sender waits while more
than the high mark is queued on its channel, until the queue drains to the low mark.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import ssl
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Protocol, TypeAlias, assert_never

import anyio
import anyio.abc
import anyio.to_thread
import attrs

from lkproto import Config, Connection
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._repr import plain_repr
from lkproto.errors import LocalProtocolError
from lkproto.models import Channel, DisconnectReason, SimulateScenario
from lkproto.tracks import TrackPublicationInfo

from ._audio import poster
from ._checks import check_connect_arguments
from ._connector import CONNECTOR, Connector
from ._datatracks import DataTrackEvent, DataTracks
from ._e2ee import E2EEManager, RatchetWorker, connection_settings, new_iv, session_key_provider
from ._errors import (
    ConnectError,
    MetadataUpdateError,
    PublishDataError,
    TransportClosedError,
    TransportError,
    map_exceptions,
    redact,
)
from ._logging import log_connecting, log_event, log_signal_attempt, log_signal_failed
from ._media import Media
from ._ports import PeerCommand, PeerPort, SignalCommand
from ._pump import Pump
from ._room import ConnectionState, LocalParticipantInfo, RoomModel, RoomOptions, RtcConfiguration
from ._rpc import Rpc, RpcEvent
from ._rtc_config import core_ice_servers, ice_policy
from ._runtime import Runtime
from ._streams import StreamEvent, Streams
from ._tracks import LocalPublication, LocalTrack, LocalTrackPublication, TrackEvent
from ._ws import Accepted, Closed, Message, Rejected, WebSocketClient

__all__ = ["MARKS", "Emit", "Session", "Subscriber"]

log = logging.getLogger("lkproto.transports")

MARKS = {
    Channel.RELIABLE: (64 * 1024, 1024 * 1024),
    Channel.LOSSY: (8 * 1024, 256 * 1024),
    Channel.DATA_TRACK: (8 * 1024, 8 * 1024),
}
"""Per sending channel: (low, high) watermarks in bytes. `_data_track`'s frames go out only
while at most its low mark is buffered (rust-sdks `DATA_TRACK_BUFFERED_AMOUNT_LOW_THRESHOLD`,
8 KiB); otherwise the peer keeps the newest frame and drops older ones (no writer waits)."""
_AIORTC = "lkproto.transports._aiortc"  # imports aiortc, aioice, PyAV (transports/_runtime.py)

Emit: TypeAlias = Callable[..., object]
"""`emit(name, *args)`: a `livekit.rtc` emission (`EventEmitter.emit`)."""


class Subscriber(Protocol):
    """Where `deliver` copies each event: an anyio memory stream (`events()`), or an adaptor
    raising anyio's `WouldBlock`/`BrokenResourceError`/`ClosedResourceError` likewise."""

    def send_nowait(self, item: ev.Event) -> None: ...

    def close(self) -> None: ...

    def statistics(self) -> _BufferStatistics: ...


class _BufferStatistics(Protocol):
    """What `deliver` reads of a subscriber's statistics: its bound, for the warning."""

    @property
    def max_buffer_size(self) -> float: ...


@attrs.define
@plain_repr
class _Waiter:
    done: anyio.Event = attrs.field(factory=anyio.Event)
    failure: ev.MetadataUpdateFailed | None = None


class _SignalWriter:
    """The `SignalPort`: a FIFO of signal commands and raw bytes for the single writer task."""

    def __init__(self) -> None:
        self.items: deque[SignalCommand | bytes] = deque()
        self.wake = anyio.Event()

    def submit(self, command: SignalCommand | bytes) -> None:
        self.items.append(command)
        self.wake.set()


class Session:
    """One room's connection: the core, its loops and what they report (see the module)."""

    def __init__(self, config: Config, runtime: Runtime, *, emit: Emit) -> None:
        self.config = config
        self.local: LocalParticipantInfo | None = None  # the facade's, kept current by the model
        self.model = RoomModel()
        self.streams = Streams(self)
        self.rpc = Rpc(self)
        self.datatracks = DataTracks(self, emit, config.data_track_buffer_size)
        self.e2ee_manager = E2EEManager(None, None)  # room.e2ee_manager; set by connect()
        # What `publish_track` returns: async, or the threaded adapter's blocking one.
        self.local_publication: Callable[[TrackPublicationInfo, LocalTrack], LocalPublication] = (
            LocalTrackPublication
        )
        self._runtime = runtime
        self._emit = emit
        self._fresh()

    def _fresh(self) -> None:
        """The state of one connection (a Room may connect again once it has ended)."""
        self.media = Media(self)  # its frame routing and publishes in flight
        self.conn: Connection | None = None
        self.pump: Pump | None = None
        self.peer: PeerPort | None = None
        self.tg: anyio.abc.TaskGroup | None = None
        self.channels_open: set[Channel] = set()
        self.subscribers: list[Subscriber] = []
        self.ended: ev.Disconnected | None = None
        self.done = anyio.Event()  # the session has finished: tasks ended, peer closed
        self._connector: Connector | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._token = ""
        self._writer = _SignalWriter()
        self._signal_generation = 0  # bumped whenever the core replaces or closes the signal
        self._deadline_wake = anyio.Event()
        self._writable: dict[Channel, anyio.Event] = {}
        self._progress = anyio.Event()  # set on join, channel open or end: connect() rechecks
        self._end_seen = anyio.Event()
        self._waiters: dict[int, _Waiter] = {}
        self._thread: int | None = None  # the session's loop thread, and a way onto it
        self._post: Callable[[Callable[[], None]], None] | None = None

    # -- connect / disconnect -------------------------------------------------------------------

    async def connect(self, url: str, token: str, options: RoomOptions | None) -> None:
        """Join; return when joined with the reliable data channel open, else `ConnectError`."""
        check_connect_arguments(url, token, options)
        options = options or RoomOptions()
        if self.conn is not None:
            if not self.done.is_set():
                raise LocalProtocolError(
                    "connect: this Room is connected or connecting; disconnect() first",
                    call="connect",
                )
            # Connecting again after a failed connect or a disconnect, as livekit.rtc allows:
            # a new session; registered RPC methods and stream handlers carry over.
            self._fresh()
        config = attrs.evolve(self.config, auto_subscribe=options.auto_subscribe)
        if options.connect_timeout is not None:
            config = attrs.evolve(config, join_timeout=options.connect_timeout)
        self._token = token
        log_connecting(url)
        encryption, data_channel_encryption = connection_settings(options)
        conn = self.conn = Connection(
            config,
            now=anyio.current_time(),
            unix_time_ms=int(time.time() * 1000),
            id_factory=lambda: uuid.uuid4().hex,
            encryption=encryption,
            data_channel_encryption=data_channel_encryption,
            iv_factory=new_iv,
        )
        if encryption is not None:
            keys = session_key_provider(self, encryption.key_provider_options)
            self.e2ee_manager = E2EEManager(encryption, keys)
        self.model = RoomModel(self.local)
        self.model.tracks.router, self.model.tracks.controls = self.media.router, self.media
        self.model.tracks.publication = self.local_publication
        self._thread, self._post = threading.get_ident(), poster()
        self.streams.attach()
        self.rpc.attach()
        rtc = options.rtc_config or RtcConfiguration()
        pump = self.pump = Pump(
            conn,
            clock=anyio.current_time,
            signal=self._writer,
            peer=_NoPeer(),
            sink=self,
            work=RatchetWorker(self),
        )
        self._connector = CONNECTOR.get()
        make_peer = (self._connector or self._runtime).make_peer
        ice = ice_policy(rtc, options.ssl_context)

        def make() -> PeerPort:
            return make_peer(
                pump,
                host_addresses=rtc.host_addresses,
                ice_servers=core_ice_servers(rtc),
                media=self.media.router,
                ice_policy=ice,
            )

        # aiortc's first import (most of a process's start-up, issue 25) runs on a worker thread
        # while the signal connection is set up; the core's peer commands wait meanwhile.
        deferred = self._connector is None and _AIORTC not in sys.modules
        self.peer = pump.peer = _PendingPeer() if deferred else make()
        self._ssl_context = options.ssl_context
        try:
            await self._start()
        except BaseException:  # cancelled at the first checkpoint: end the task just spawned
            with anyio.CancelScope(shield=True):
                await self._finish()
            raise
        single = True if options.single_peer_connection is None else options.single_peer_connection
        try:
            pump.call(conn.connect, url, token, now=pump.now(), single_peer_connection=single)
        except LocalProtocolError as exc:
            await self._finish()
            raise ConnectError(redact(str(exc), token)) from None
        limit = config.join_timeout + options.peer_connection_timeout + 1.0
        try:
            with anyio.move_on_after(limit):
                if deferred:
                    await self._install_peer(make)
                while not (self.ended or self._ready()):
                    await self._progress.wait()
                    self._progress = anyio.Event()
        except BaseException:  # cancelled while joining: leave nothing running behind us
            with anyio.CancelScope(shield=True):
                if self.ended is None:
                    pump.call(conn.close, now=pump.now(), reason=DisconnectReason.CLIENT_INITIATED)
                await self._finish()
            raise
        if self.ended is not None or not self._ready():
            if self.ended is not None:
                message = self.ended.message
            elif self.model.local is not None and self.model.local.sid:
                message = (
                    f"the data channel did not open within {options.peer_connection_timeout:g}s"
                )
            else:  # pragma: no cover - the core's join timer fires first
                message = f"no join within {limit:g}s"
            if self.ended is None:
                pump.call(conn.close, now=pump.now(), reason=DisconnectReason.JOIN_FAILURE)
            await self._finish()
            raise ConnectError(redact(message, token))
        for name, args in self.model.set_state(ConnectionState.CONN_CONNECTED):
            self._emit(name, *args)
        self._emit("connected")

    async def _install_peer(self, make: Callable[[], PeerPort]) -> None:
        """Import aiortc off the event loop, then make the real peer port and give it, in order,
        what the core asked of the `_PendingPeer` meanwhile (unless the session ended)."""
        pending = self.peer
        assert isinstance(pending, _PendingPeer) and self.pump is not None
        await anyio.to_thread.run_sync(importlib.import_module, _AIORTC, abandon_on_cancel=True)
        log.debug("aiortc imported; %d peer commands were waiting", len(pending.commands))
        if self.ended is not None or self.done.is_set():
            return
        self.peer = self.pump.peer = peer = make()
        for command in pending.commands:
            peer.submit(command)

    def _ready(self) -> bool:
        return bool(self.model.local and self.model.local.sid) and (
            Channel.RELIABLE in self.channels_open
        )

    async def disconnect(self, reason: DisconnectReason) -> None:
        """Leave (sends `leave`), then close the signal and peer connections. Idempotent."""
        if self.pump is None or self.conn is None:
            return
        if self.ended is None:
            # Abort our open streams first: a trailer with a reason tells every reader that
            # the stream ended early (the official SDK's readers otherwise wait forever).
            self.streams.abort_outgoing("the sender disconnected")
            self.rpc.cancel_invocations()
            if self.peer is not None and self.channels_open:
                # Don't cut off what we just sent: wait for the server's acknowledgements.
                waited = self.conn.config.leave_drain_timeout
                if not await self.peer.drain(waited):
                    log.warning(
                        "leaving with sent data the server has not acknowledged after %s s "
                        "(Config.leave_drain_timeout): it is lost",
                        waited,
                    )
            if self.ended is None:
                self.pump.call(self.conn.close, now=self.pump.now(), reason=reason)
        await self._finish()

    def simulate(self, scenario: SimulateScenario | int) -> None:
        pump, conn = self.live("simulate_scenario")
        pump.call(conn.simulate_scenario, SimulateScenario(scenario), now=pump.now())

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the session's loop: now if called there, else soon (from any thread).
        A `TransportClosedError` (the session ended meanwhile) is ignored; other errors are
        logged."""

        def run() -> None:
            try:
                fn()
            except TransportClosedError:
                pass
            except Exception:
                log.exception("a media control failed")

        if self._thread == threading.get_ident() or self._post is None:
            run()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is gone: the session ended
                self._post(run)

    def subscribe(self, subscriber: Subscriber) -> bool:
        """Copy every event from now on to `subscriber`, until it breaks or the session ends
        (then it is closed). False, and nothing kept, if the session has ended already."""
        if self.done.is_set():
            return False
        self.subscribers.append(subscriber)
        return True

    # -- EventSink ------------------------------------------------------------------------------

    def deliver(self, event: ev.Event) -> None:
        if type(event) is ev.DataReceived:
            # The hot path (every data packet): only the room model and the subscribers take
            # it; logging, the session's parts and the media side have nothing to do with it.
            self._emit("data_received", self.model.data_packet(event))
            self._copy(event)
            return
        log_event(event)
        # The session's own share first: streams, RPC and data tracks take theirs; media
        # tracks are the media side's, the room model's and the subscribers' (below).
        if isinstance(event, StreamEvent):
            self.streams.on_event(event)
        elif isinstance(event, RpcEvent):
            self.rpc.on_event(event)
        elif isinstance(event, DataTrackEvent):
            self.datatracks.on_event(event)
        elif not isinstance(event, TrackEvent):
            match event:
                case ev.Disconnected():
                    self._on_end(event)
                case ev.Joined():
                    self._progress.set()
                case ev.MetadataUpdateCompleted() | ev.MetadataUpdateFailed():
                    waiter = self._waiters.pop(event.request_id, None)
                    if waiter is not None:
                        if isinstance(event, ev.MetadataUpdateFailed):
                            waiter.failure = event
                        waiter.done.set()
                case (
                    ev.Reconnecting()
                    | ev.Reconnected()
                    | ev.TokenRefreshed()
                    | ev.ParticipantConnected()
                    | ev.ParticipantDisconnected()
                    | ev.ParticipantActive()
                    | ev.ParticipantUpdated()
                    | ev.ParticipantAttributesChanged()
                    | ev.ParticipantNameChanged()
                    | ev.ParticipantMetadataChanged()
                    | ev.ParticipantPermissionsChanged()
                    | ev.RoomUpdated()
                    | ev.RoomMetadataChanged()
                    | ev.ActiveSpeakersChanged()
                    | ev.ConnectionQualityChanged()
                    | ev.DataReceived()
                    | ev.SipDtmfReceived()
                    | ev.TranscriptionReceived()
                    | ev.ChatMessageReceived()
                    | ev.PacketDropped()
                    | ev.E2eeStateChanged()
                ):
                    pass  # the room model's (below), and the subscribers'
                case _:
                    assert_never(event)
        self.media.before(event)
        for name, args in self.model.apply(event):
            self._emit(name, *args)
        self.media.after(event)
        self._copy(event)

    def _copy(self, event: ev.Event) -> None:
        """Give `event` to every `events()` subscriber."""
        for subscriber in list(self.subscribers):
            try:
                subscriber.send_nowait(event)
            except anyio.WouldBlock:
                behind = int(subscriber.statistics().max_buffer_size)
                log.warning("an events() subscriber is %d behind; dropped one", behind)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.subscribers.remove(subscriber)

    def _on_end(self, event: ev.Disconnected) -> None:
        self.ended = event
        self.datatracks.ended()
        self.media.ended(event.message)
        for waiter in self._waiters.values():
            waiter.failure = ev.MetadataUpdateFailed(
                request_id=0, reason=-2, message=f"the session ended: {event.message}"
            )
            waiter.done.set()
        self._end_seen.set()
        self._progress.set()

    def deadline_changed(self, deadline: float | None) -> None:
        self._deadline_wake.set()

    def channel_changed(self, channel: Channel, is_open: bool) -> None:
        if is_open:
            self.channels_open.add(channel)
            if self.peer is not None:
                self.peer.set_low_threshold(channel, MARKS[channel][0])
        else:
            self.channels_open.discard(channel)
        self.writable(channel)
        self._progress.set()

    def writable(self, channel: Channel) -> None:
        event = self._writable.pop(channel, None)
        if event is not None:
            event.set()

    # -- verbs ----------------------------------------------------------------------------------

    def live(self, call: str) -> tuple[Pump, Connection]:
        if self.pump is None or self.conn is None or self.ended is not None:
            raise TransportClosedError(f"{call}: the room is not connected")
        return self.pump, self.conn

    async def publish(
        self, call: str, channel: Channel, send: Callable[[Connection, float], None]
    ) -> None:
        """Send through the core, then wait while `channel` is over its high mark."""
        pump, conn = self.live(call)
        try:
            pump.call(send, conn, pump.now())
        except LocalProtocolError as exc:
            raise PublishDataError(str(exc)) from exc
        try:
            await self.wait_writable(channel)
        except TransportClosedError as exc:
            raise PublishDataError(f"{call}: {exc}") from None

    async def update(self, call: str, send: Callable[[Connection, float], int]) -> None:
        """Ask the server for a metadata, name or attributes update; wait for its answer."""
        pump, conn = self.live(call)
        request_id = pump.call(send, conn, pump.now())
        waiter = self._waiters.setdefault(request_id, _Waiter())
        await waiter.done.wait()
        if waiter.failure is not None:
            raise MetadataUpdateError(
                f"{call} failed: {waiter.failure.message}", reason=waiter.failure.reason
            )

    async def wait_writable(self, channel: Channel) -> None:
        """Wait while our sending channel holds more than its high watermark."""
        high = MARKS[channel][1]
        while self.peer is not None and self.peer.buffered_amount(channel) > high:
            if self.ended is not None:
                raise TransportClosedError(f"the session ended: {self.ended.message}")
            event = self._writable.setdefault(channel, anyio.Event())
            await event.wait()

    # -- the loops ------------------------------------------------------------------------------

    async def _start(self) -> None:
        started = anyio.Event()

        async def run() -> None:
            try:
                async with anyio.create_task_group() as tg:
                    self.tg = tg
                    tg.start_soon(self._write_loop, tg)
                    tg.start_soon(self._timer_loop)
                    started.set()
                    await self._end_seen.wait()
                    # Give the writer a moment to send `leave` and the close frame.
                    with anyio.move_on_after(2):
                        while self._writer.items:
                            await anyio.sleep(0.005)
                    tg.cancel_scope.cancel()
            except Exception:  # pragma: no cover - a bug; never let it kill the host loop
                log.exception("the lkproto session crashed")
            finally:
                started.set()
                with anyio.CancelScope(shield=True):
                    if self.peer is not None:
                        with anyio.move_on_after(5):
                            await self.peer.aclose()
                    for subscriber in self.subscribers:
                        subscriber.close()
                    self.done.set()

        self._runtime.spawn(run)
        await started.wait()

    async def _finish(self) -> None:
        self._end_seen.set()
        await self.done.wait()

    async def _timer_loop(self) -> None:
        pump = self.pump
        assert pump is not None
        while True:
            wake = self._deadline_wake = anyio.Event()
            deadline = pump.deadline
            timeout = math.inf if deadline is None else max(0.0, deadline - pump.now())
            with anyio.move_on_after(timeout):
                await wake.wait()
            if deadline is not None and pump.now() >= deadline:
                pump.on_timer()

    async def _write_loop(self, tg: anyio.abc.TaskGroup) -> None:
        pump = self.pump
        assert pump is not None
        writer = self._writer
        stream: anyio.abc.ByteStream | None = None
        ws: WebSocketClient | None = None
        try:
            while True:
                if not writer.items:
                    writer.wake = anyio.Event()
                    await writer.wake.wait()
                    continue
                item = writer.items[0]
                match item:
                    case cmd.OpenSignal():
                        # Whatever the connection we leave behind still reports is stale: the
                        # core hears only about the signal connection it asked for last.
                        self._signal_generation += 1
                        if stream is not None:
                            with contextlib.suppress(Exception):
                                await stream.aclose()
                            stream = None
                        limit = pump.conn.config.max_signal_message_bytes
                        ws = WebSocketClient(item.url, item.headers, max_message_size=limit)
                        stream = await self._open(ws)
                        if stream is not None:
                            tg.start_soon(self._read_loop, stream, ws, self._signal_generation)
                    case cmd.SendSignal() | cmd.CloseSignal() | bytes():
                        if isinstance(item, cmd.CloseSignal):
                            self._signal_generation += 1  # as above
                        if stream is not None and ws is not None:
                            stream = await self._send(stream, ws, item)
                    case _:
                        assert_never(item)
                writer.items.popleft()
        finally:
            if stream is not None:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await stream.aclose()

    async def _send(
        self,
        stream: anyio.abc.ByteStream,
        ws: WebSocketClient,
        item: cmd.SendSignal | cmd.CloseSignal | bytes,
    ) -> anyio.abc.ByteStream | None:
        """Write one item; return the stream, or None once it is closed or broken."""
        pump = self.pump
        assert pump is not None
        try:
            with map_exceptions("signal write", self._token):
                match item:
                    case bytes():
                        await stream.send(item)
                    case cmd.SendSignal():
                        await stream.send(ws.send(item.data))
                    case cmd.CloseSignal():
                        if frame := ws.close(item.code):
                            await stream.send(frame)
                        await stream.aclose()
                        return None
                    case _:
                        assert_never(item)
        except TransportError as exc:
            log.debug("%s", exc)
            pump.on_signal_closed(None)
            return None
        return stream

    async def _open(self, ws: WebSocketClient) -> anyio.abc.ByteStream | None:
        pump = self.pump
        assert pump is not None
        end = ws.endpoint
        log_signal_attempt(end.host, end.port, end.tls)
        try:
            with map_exceptions(f"could not connect to {end.host}:{end.port}", self._token):
                stream = await self._dial(end.host, end.port, end.tls)
                await stream.send(ws.handshake())
        except TransportError as exc:
            log_signal_failed(str(exc))
            pump.on_signal_failed(None, str(exc))
            return None
        return stream

    async def _dial(self, host: str, port: int, tls: bool) -> anyio.abc.ByteStream:
        """Open the signal connection's byte stream (TLS for `wss://`)."""
        if self._runtime.dialer is not None:
            return await self._runtime.dialer(host, port, tls)
        if self._connector is not None:
            return await self._connector.dial(host, port, tls)
        if tls:
            return await anyio.connect_tcp(
                host, port, tls=True, ssl_context=self._ssl_context, tls_standard_compatible=False
            )
        return await anyio.connect_tcp(host, port)

    async def _read_loop(
        self, stream: anyio.abc.ByteStream, ws: WebSocketClient, generation: int
    ) -> None:
        pump = self.pump
        assert pump is not None
        while not ws.closed:
            try:
                with map_exceptions("signal read", self._token):
                    data: bytes | None = await stream.receive(65536)
            except (anyio.EndOfStream, TransportError, anyio.ClosedResourceError):
                data = None
            if generation != self._signal_generation:
                return  # replaced or closed by the core: nothing it says matters any more
            for result in ws.receive(data):
                match result:
                    case Message():
                        pump.on_signal(result.data)
                    case Rejected():
                        pump.on_signal_failed(result.status, redact(result.body, self._token))
                    case Closed():
                        pump.on_signal_closed(result.code, result.reason)
                    case Accepted():
                        pass
                    case _:
                        assert_never(result)
            if out := ws.data_to_send():
                self._writer.submit(out)


class _PendingPeer:
    """The peer port while aiortc is being imported (`Session._install_peer`): it keeps the
    core's commands for the real port. No channel is open yet, so nothing is buffered."""

    def __init__(self) -> None:
        self.commands: list[PeerCommand] = []

    def submit(self, command: PeerCommand) -> None:
        self.commands.append(command)

    def buffered_amount(self, channel: Channel) -> int:
        return 0

    def set_low_threshold(self, channel: Channel, threshold: int) -> None:  # pragma: no cover
        pass  # only for an open channel: never before the real port

    async def drain(self, timeout: float) -> bool:
        return True

    async def aclose(self) -> None:
        pass


class _NoPeer:
    """Placeholder until the real peer port exists (the pump and the peer refer to each other)."""

    def submit(self, command: PeerCommand) -> None:  # pragma: no cover - replaced before use
        raise AssertionError("peer port not set")

    def buffered_amount(self, channel: Channel) -> int:  # pragma: no cover
        return 0

    def set_low_threshold(self, channel: Channel, threshold: int) -> None:  # pragma: no cover
        pass

    async def drain(self, timeout: float) -> bool:  # pragma: no cover
        return True

    async def aclose(self) -> None:  # pragma: no cover
        pass
