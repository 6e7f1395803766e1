"""`lkproto.transports.anyio`: the `livekit.rtc` data-plane API on anyio (asyncio or trio).

Code written for `livekit.rtc`'s data plane runs after changing only the import:

    from lkproto.transports.anyio import Room, RoomOptions   # was: from livekit.rtc import ...

How it works: one background session per connected room runs three tasks in a task group (a
signal reader, a single FIFO writer and a timer sleeping until the core's deadline) around the
shared synchronous `Pump`. The WebSocket is wsproto over anyio streams (TLS for `wss://`).
WebRTC is aiortc: in this loop on asyncio, and in an asyncio loop on a helper thread on trio.
`connect()` returns once the join succeeded and the reliable data channel is open, so the
first `publish_data` is never lost.

Divergences from `livekit.rtc` (deliberate, for a production client):
- `set_metadata`/`set_name`/`set_attributes` raise `MetadataUpdateError` when the server
  refuses (e.g. no `canUpdateOwnMetadata`); `livekit.rtc` 1.2 returns silently.
- `async for event in room.events()` yields lkproto's typed events as well.
- Media (tracks) is out of scope: this is the data plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

import anyio
import anyio.abc
import attrs
import sniffio
from anyio.streams.memory import MemoryObjectSendStream

from lkproto import Config, Connection
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto.errors import LocalProtocolError
from lkproto.models import Channel, DisconnectReason, Participant

from ._aiortc import AiortcPeer
from ._asyncio_bridge import AsyncioThreadBridge
from ._errors import (
    ConnectError,
    TransportClosedError,
    TransportError,
    map_exceptions,
    redact,
)
from ._ports import PeerPort
from ._pump import Pump
from ._room import (
    ConnectionState,
    DataPacket,
    DataPacketKind,
    EventEmitter,
    LocalParticipantInfo,
    RemoteParticipant,
    RoomModel,
    RoomOptions,
    RtcConfiguration,
    SipDTMF,
    Transcription,
    TranscriptionSegment,
)
from ._ws import Accepted, Closed, Message, Rejected, WebSocketClient

__all__ = [
    "ConnectError",
    "ConnectionState",
    "DataPacket",
    "DataPacketKind",
    "DisconnectReason",
    "LocalParticipant",
    "MetadataUpdateError",
    "PublishDataError",
    "RemoteParticipant",
    "Room",
    "RoomOptions",
    "RtcConfiguration",
    "SipDTMF",
    "Transcription",
    "TranscriptionSegment",
]

log = logging.getLogger("lkproto.transports")

# Flow control on our sending channels (protocol-reference A.3, client-sdk-js watermarks):
# a writer waits while more than HIGH bytes are queued, until the queue drains to LOW.
_MARKS = {Channel.RELIABLE: (64 * 1024, 1024 * 1024), Channel.LOSSY: (8 * 1024, 256 * 1024)}
_EVENT_BUFFER = 10_000  # per `events()` subscriber; overflow drops (and logs) the newest


class PublishDataError(TransportError):
    """`publish_*` failed: too large, not connected, or the channel broke."""


class MetadataUpdateError(TransportError):
    """The server refused or did not answer a metadata, name or attributes update."""

    def __init__(self, message: str, *, reason: int) -> None:
        super().__init__(message)
        self.reason = reason


class LocalParticipant(LocalParticipantInfo):
    """`livekit.rtc.LocalParticipant`'s data plane."""

    def __init__(self, room: Room, info: Participant) -> None:
        super().__init__(info)
        self._room = room

    async def publish_data(
        self,
        payload: bytes | str,
        *,
        reliable: bool = True,
        destination_identities: Sequence[str] = (),
        topic: str = "",
    ) -> None:
        """Send a data packet; waits while the channel's send buffer is over its high mark."""
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        await self._room._publish(
            "publish_data",
            Channel.RELIABLE if reliable else Channel.LOSSY,
            lambda conn, now: conn.publish_data(
                data,
                now=now,
                reliable=reliable,
                destination_identities=tuple(destination_identities),
                topic=topic or None,
            ),
        )

    async def publish_dtmf(self, *, code: int, digit: str) -> None:
        await self._room._publish(
            "publish_dtmf",
            Channel.RELIABLE,
            lambda conn, now: conn.publish_dtmf(code, digit, now=now),
        )

    async def publish_transcription(self, transcription: Transcription) -> None:
        segments = [
            ev.TranscriptionSegment(
                id=s.id,
                text=s.text,
                start_time=s.start_time,
                end_time=s.end_time,
                final=s.final,
                language=s.language,
            )
            for s in transcription.segments
        ]
        await self._room._publish(
            "publish_transcription",
            Channel.RELIABLE,
            lambda conn, now: conn.publish_transcription(
                now=now,
                transcribed_participant_identity=transcription.participant_identity,
                track_id=transcription.track_sid,
                segments=segments,
            ),
        )

    async def set_metadata(self, metadata: str) -> None:
        await self._room._update("set_metadata", lambda c, now: c.set_metadata(metadata, now=now))

    async def set_name(self, name: str) -> None:
        await self._room._update("set_name", lambda c, now: c.set_name(name, now=now))

    async def set_attributes(self, attributes: Mapping[str, str]) -> None:
        """Merge `attributes` into ours; an empty value deletes that key."""
        attrs_ = dict(attributes)
        await self._room._update("set_attributes", lambda c, now: c.set_attributes(attrs_, now=now))


@attrs.define
class _Waiter:
    done: anyio.Event = attrs.field(factory=anyio.Event)
    failure: ev.MetadataUpdateFailed | None = None


class _SignalWriter:
    """The `SignalPort`: a FIFO of signal commands and raw bytes for the single writer task."""

    def __init__(self) -> None:
        self.items: deque[cmd.OpenSignal | cmd.SendSignal | cmd.CloseSignal | bytes] = deque()
        self.wake = anyio.Event()

    def submit(self, command: cmd.OpenSignal | cmd.SendSignal | cmd.CloseSignal | bytes) -> None:
        self.items.append(command)
        self.wake.set()


class Room(EventEmitter):
    """A LiveKit room, as `livekit.rtc.Room` for the data plane, on asyncio or trio."""

    def __init__(self, loop: object = None, *, config: Config | None = None) -> None:
        super().__init__()
        del loop  # accepted for signature compatibility with livekit.rtc.Room
        self._config = config or Config()
        self._model = RoomModel()
        self._pump: Pump | None = None
        self._conn: Connection | None = None
        self._peer: PeerPort | None = None
        self._writer = _SignalWriter()
        self._deadline_wake = anyio.Event()
        self._channels_open: set[Channel] = set()
        self._writable: dict[Channel, anyio.Event] = {}
        self._progress = anyio.Event()  # set on join, channel open or end: connect() rechecks
        self._ended: ev.Disconnected | None = None
        self._end_seen = anyio.Event()
        self._session_done = anyio.Event()
        self._waiters: dict[int, _Waiter] = {}
        self._subscribers: list[MemoryObjectSendStream[ev.Event]] = []
        self._token = ""
        self._backend_task: object = None

    # -- livekit.rtc properties -----------------------------------------------------------------

    @property
    def local_participant(self) -> LocalParticipant:
        local = self._model.local
        if not isinstance(local, LocalParticipant):
            raise TransportClosedError("cannot access local participant before connecting")
        return local

    @property
    def remote_participants(self) -> Mapping[str, RemoteParticipant]:
        return self._model.remote

    @property
    def connection_state(self) -> ConnectionState:
        return self._model.connection_state

    @property
    def name(self) -> str:
        return self._model.room_name

    @property
    def sid(self) -> str:
        return self._model.room_sid

    @property
    def metadata(self) -> str:
        return self._model.room_metadata

    @property
    def num_participants(self) -> int:
        return self._model.num_participants

    @property
    def connection(self) -> Connection | None:
        """The sans-I/O core behind this room (read it; drive it only through the room)."""
        return self._conn

    def isconnected(self) -> bool:
        return self._model.connection_state != ConnectionState.CONN_DISCONNECTED

    # -- connect / disconnect -------------------------------------------------------------------

    async def connect(self, url: str, token: str, options: RoomOptions | None = None) -> None:
        """Join the room. Returns when joined with the reliable data channel open.

        Raises `ConnectError` (with the server's reason, token redacted) on failure or when
        the join does not complete within the connect and peer connection timeouts.
        """
        options = options or RoomOptions()
        if self._conn is not None:
            raise LocalProtocolError("connect: this Room was already used", call="connect")
        config = attrs.evolve(self._config, auto_subscribe=options.auto_subscribe)
        if options.connect_timeout is not None:
            config = attrs.evolve(config, join_timeout=options.connect_timeout)
        self._token = token
        conn = self._conn = Connection(
            config,
            now=anyio.current_time(),
            unix_time_ms=int(time.time() * 1000),
            id_factory=lambda: uuid.uuid4().hex,
        )
        self._model = RoomModel(LocalParticipant(self, Participant(sid="", identity="")))
        rtc = options.rtc_config or RtcConfiguration()
        pump = self._pump = Pump(
            conn, clock=anyio.current_time, signal=self._writer, peer=_NoPeer(), sink=self
        )
        if sniffio.current_async_library() == "asyncio":
            self._peer = AiortcPeer(
                pump, host_addresses=rtc.host_addresses, ice_servers=rtc.ice_servers
            )
        else:
            import trio

            token_ = trio.lowlevel.current_trio_token()
            self._peer = AsyncioThreadBridge(
                pump,
                token_.run_sync_soon,
                host_addresses=rtc.host_addresses,
                ice_servers=rtc.ice_servers,
            )
        pump.peer = self._peer
        self._ssl_context = options.ssl_context
        await self._start_session()
        single = True if options.single_peer_connection is None else options.single_peer_connection
        try:
            pump.call(conn.connect, url, token, now=pump.now(), single_peer_connection=single)
        except LocalProtocolError as exc:
            await self._finish()
            raise ConnectError(redact(str(exc), token)) from None
        limit = config.join_timeout + options.peer_connection_timeout + 1.0
        with anyio.move_on_after(limit):
            while not (self._ended or self._ready()):
                await self._progress.wait()
                self._progress = anyio.Event()
        if self._ended is not None or not self._ready():
            if self._ended is not None:
                message = self._ended.message
            elif self._model.local is not None and self._model.local.sid:
                message = (
                    f"the data channel did not open within {options.peer_connection_timeout:g}s"
                )
            else:  # pragma: no cover - the core's join timer fires first
                message = f"no join within {limit:g}s"
            if self._ended is None:
                pump.call(conn.close, now=pump.now(), reason=DisconnectReason.JOIN_FAILURE)
            await self._finish()
            raise ConnectError(redact(message, token))
        for name, args in self._model.set_state(ConnectionState.CONN_CONNECTED):
            self.emit(name, *args)
        self.emit("connected")

    def _ready(self) -> bool:
        return bool(self._model.local and self._model.local.sid) and (
            Channel.RELIABLE in self._channels_open
        )

    async def disconnect(
        self, *, reason: DisconnectReason = DisconnectReason.CLIENT_INITIATED
    ) -> None:
        """Leave the room (sends `leave`), then close the signal and peer connections."""
        if self._pump is None or self._conn is None:
            return
        if self._ended is None:
            self._pump.call(self._conn.close, now=self._pump.now(), reason=reason)
        await self._finish()

    async def __aenter__(self) -> Room:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    async def events(self) -> AsyncIterator[ev.Event]:
        """Every core event from now on, until the session ends (`Disconnected` is last)."""
        send, receive = anyio.create_memory_object_stream[ev.Event](_EVENT_BUFFER)
        if self._session_done.is_set():
            return
        self._subscribers.append(send)
        try:
            async with receive:
                async for event in receive:
                    yield event
        finally:
            if send in self._subscribers:
                self._subscribers.remove(send)
            send.close()

    # -- EventSink ------------------------------------------------------------------------------

    def deliver(self, event: ev.Event) -> None:
        if isinstance(event, ev.Disconnected):
            self._ended = event
            for waiter in self._waiters.values():
                waiter.failure = ev.MetadataUpdateFailed(
                    request_id=0, reason=-2, message=f"the session ended: {event.message}"
                )
                waiter.done.set()
            self._end_seen.set()
            self._progress.set()
        elif isinstance(event, ev.Joined):
            self._progress.set()
        elif (
            isinstance(event, ev.MetadataUpdateCompleted | ev.MetadataUpdateFailed)
            and event.request_id in self._waiters
        ):
            waiter = self._waiters.pop(event.request_id)
            if isinstance(event, ev.MetadataUpdateFailed):
                waiter.failure = event
            waiter.done.set()
        for name, args in self._model.apply(event):
            self.emit(name, *args)
        for subscriber in list(self._subscribers):
            try:
                subscriber.send_nowait(event)
            except anyio.WouldBlock:
                log.warning("an events() subscriber is %d behind; dropped one", _EVENT_BUFFER)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(subscriber)

    def deadline_changed(self, deadline: float | None) -> None:
        self._deadline_wake.set()

    def channel_changed(self, channel: Channel, is_open: bool) -> None:
        if is_open:
            self._channels_open.add(channel)
            if self._peer is not None:
                self._peer.set_low_threshold(channel, _MARKS[channel][0])
        else:
            self._channels_open.discard(channel)
        self.writable(channel)
        self._progress.set()

    def writable(self, channel: Channel) -> None:
        event = self._writable.pop(channel, None)
        if event is not None:
            event.set()

    # -- verbs ----------------------------------------------------------------------------------

    def _live(self, call: str) -> tuple[Pump, Connection]:
        if self._pump is None or self._conn is None or self._ended is not None:
            raise TransportClosedError(f"{call}: the room is not connected")
        return self._pump, self._conn

    async def _publish(
        self, call: str, channel: Channel, send: Callable[[Connection, float], None]
    ) -> None:
        pump, conn = self._live(call)
        try:
            pump.call(send, conn, pump.now())
        except LocalProtocolError as exc:
            raise PublishDataError(str(exc)) from exc
        high = _MARKS[channel][1]
        while self._peer is not None and self._peer.buffered_amount(channel) > high:
            if self._ended is not None:
                raise PublishDataError(f"{call}: the session ended: {self._ended.message}")
            event = self._writable.setdefault(channel, anyio.Event())
            await event.wait()

    async def _update(self, call: str, send: Callable[[Connection, float], int]) -> None:
        pump, conn = self._live(call)
        request_id = pump.call(send, conn, pump.now())
        waiter = self._waiters.setdefault(request_id, _Waiter())
        await waiter.done.wait()
        if waiter.failure is not None:
            raise MetadataUpdateError(
                f"{call} failed: {waiter.failure.message}", reason=waiter.failure.reason
            )

    # -- the session ----------------------------------------------------------------------------

    async def _start_session(self) -> None:
        started = anyio.Event()

        async def session() -> None:
            try:
                async with anyio.create_task_group() as tg:
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
                    if self._peer is not None:
                        with anyio.move_on_after(5):
                            await self._peer.aclose()
                    for subscriber in self._subscribers:
                        subscriber.close()
                    self._session_done.set()

        if sniffio.current_async_library() == "asyncio":
            self._backend_task = asyncio.get_running_loop().create_task(session())
        else:
            import trio

            trio.lowlevel.spawn_system_task(session)
        await started.wait()

    async def _finish(self) -> None:
        self._end_seen.set()
        await self._session_done.wait()

    async def _timer_loop(self) -> None:
        pump = self._pump
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
        pump = self._pump
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
                if isinstance(item, cmd.OpenSignal):
                    if stream is not None:
                        await stream.aclose()
                    ws = WebSocketClient(item.url, item.headers)
                    stream = await self._open(ws, item)
                    if stream is not None:
                        tg.start_soon(self._read_loop, stream, ws)
                elif stream is not None and ws is not None:
                    try:
                        with map_exceptions("signal write", self._token):
                            if isinstance(item, bytes):
                                await stream.send(item)
                            elif isinstance(item, cmd.SendSignal):
                                await stream.send(ws.send(item.data))
                            else:
                                if frame := ws.close(item.code):
                                    await stream.send(frame)
                                await stream.aclose()
                                stream = None
                    except TransportError as exc:
                        log.debug("%s", exc)
                        stream = None
                        pump.on_signal_closed(None)
                writer.items.popleft()
        finally:
            if stream is not None:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await stream.aclose()

    async def _open(
        self, ws: WebSocketClient, command: cmd.OpenSignal
    ) -> anyio.abc.ByteStream | None:
        pump = self._pump
        assert pump is not None
        end = ws.endpoint
        try:
            with map_exceptions(f"could not connect to {end.host}:{end.port}", self._token):
                stream: anyio.abc.ByteStream
                if end.tls:
                    stream = await anyio.connect_tcp(
                        end.host,
                        end.port,
                        tls=True,
                        ssl_context=self._ssl_context,
                        tls_standard_compatible=False,
                    )
                else:
                    stream = await anyio.connect_tcp(end.host, end.port)
                await stream.send(ws.handshake())
        except TransportError as exc:
            pump.on_signal_failed(None, str(exc))
            return None
        return stream

    async def _read_loop(self, stream: anyio.abc.ByteStream, ws: WebSocketClient) -> None:
        pump = self._pump
        assert pump is not None
        while not ws.closed:
            try:
                with map_exceptions("signal read", self._token):
                    data: bytes | None = await stream.receive(65536)
            except (anyio.EndOfStream, TransportError):
                data = None
            for result in ws.receive(data):
                if isinstance(result, Message):
                    pump.on_signal(result.data)
                elif isinstance(result, Rejected):
                    pump.on_signal_failed(result.status, redact(result.body, self._token))
                elif isinstance(result, Closed):
                    pump.on_signal_closed(result.code)
                else:
                    assert isinstance(result, Accepted)
            if out := ws.data_to_send():
                self._writer.submit(out)


class _NoPeer:
    """Placeholder until the real peer port exists (the pump and the peer refer to each other)."""

    def submit(self, command: cmd.Command) -> None:  # pragma: no cover - replaced before use
        raise AssertionError("peer port not set")

    def buffered_amount(self, channel: Channel) -> int:  # pragma: no cover
        return 0

    def set_low_threshold(self, channel: Channel, threshold: int) -> None:  # pragma: no cover
        pass

    async def aclose(self) -> None:  # pragma: no cover
        pass
