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
import functools
import inspect
import logging
import math
import mimetypes
import os
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Protocol, TypeAlias, TypeVar

import anyio
import anyio.abc
import attrs
import sniffio

from lkproto import Config, Connection
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto.errors import LocalProtocolError
from lkproto.models import (
    Channel,
    DisconnectReason,
    Participant,
    ParticipantKind,
    ReconnectMode,
    SimulateScenario,
)
from lkproto.rpc import RpcError, RpcInvocationData
from lkproto.streams import StreamError, StreamKind

from ._aiortc import AiortcPeer
from ._anyio_data import (
    ByteStreamInfo,
    ByteStreamReader,
    ByteStreamWriter,
    TextStreamInfo,
    TextStreamReader,
    TextStreamWriter,
    byte_info,
    text_info,
)
from ._asyncio_bridge import AsyncioThreadBridge
from ._connector import CONNECTOR, Connector
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
    "ByteStreamInfo",
    "ByteStreamReader",
    "ByteStreamWriter",
    "ConnectError",
    "ConnectionState",
    "DataPacket",
    "DataPacketKind",
    "DisconnectReason",
    "LocalParticipant",
    "MetadataUpdateError",
    "ParticipantKind",
    "PublishDataError",
    "ReconnectMode",
    "RemoteParticipant",
    "Room",
    "RoomOptions",
    "RpcError",
    "RpcInvocationData",
    "RtcConfiguration",
    "SimulateScenario",
    "SipDTMF",
    "StreamError",
    "TextStreamInfo",
    "TextStreamReader",
    "TextStreamWriter",
    "Transcription",
    "TranscriptionSegment",
]

log = logging.getLogger("lkproto.transports")

# Flow control on our sending channels (protocol-reference A.3, client-sdk-js watermarks):
# a writer waits while more than HIGH bytes are queued, until the queue drains to LOW.
_MARKS = {Channel.RELIABLE: (64 * 1024, 1024 * 1024), Channel.LOSSY: (8 * 1024, 256 * 1024)}
_DRAIN_TIMEOUT = 2.0  # disconnect() waits this long, at most, for our sends to be acked
_FILE_READ = 4 * 15_000  # send_file reads this much per write: four chunks

TextStreamHandler: TypeAlias = Callable[[TextStreamReader, str], object]
ByteStreamHandler: TypeAlias = Callable[[ByteStreamReader, str], object]
RpcHandler: TypeAlias = Callable[[RpcInvocationData], "str | Awaitable[str | None] | None"]
ProgressCallback: TypeAlias = Callable[[int, int | None], object]
H = TypeVar("H")


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

    # -- RPC --------------------------------------------------------------------------------

    async def perform_rpc(
        self,
        *,
        destination_identity: str,
        method: str,
        payload: str,
        response_timeout: float | None = None,
        max_round_trip_latency: float | None = None,
    ) -> str:
        """Call `method` on `destination_identity`; return its response or raise `RpcError`.

        `max_round_trip_latency` bounds the wait for the callee's ack (default 7 s).
        """
        return await self._room._perform_rpc(
            destination_identity, method, payload, response_timeout, max_round_trip_latency
        )

    def register_rpc_method(
        self, method_name: str, handler: RpcHandler | None = None
    ) -> Callable[[RpcHandler], RpcHandler] | None:
        """Register a handler (sync or async) for `method_name`; usable as a decorator.

        Allowed before `connect()`; registrations last for the Room's lifetime.
        """
        if handler is None:

            def register(fn: RpcHandler) -> RpcHandler:
                self._room._register_rpc(method_name, fn)
                return fn

            return register
        self._room._register_rpc(method_name, handler)
        return None

    def unregister_rpc_method(self, method: str) -> None:
        self._room._unregister_rpc(method)

    # -- data streams -----------------------------------------------------------------------

    async def stream_text(
        self,
        *,
        destination_identities: Sequence[str] | None = None,
        topic: str = "",
        attributes: Mapping[str, str] | None = None,
        stream_id: str | None = None,
        reply_to_id: str | None = None,
        total_size: int | None = None,
    ) -> TextStreamWriter:
        """Open a text stream; write with `await writer.write(text)`, end with `aclose()`."""
        info = self._room._open_stream(
            StreamKind.TEXT,
            topic=topic,
            destination_identities=destination_identities,
            attributes=attributes,
            stream_id=stream_id,
            reply_to_stream_id=reply_to_id,
            total_length=total_size,
        )
        assert isinstance(info, TextStreamInfo)
        await self._room._wait_writable(Channel.RELIABLE)
        return TextStreamWriter(self._room, info)

    async def send_text(
        self,
        text: str,
        *,
        destination_identities: Sequence[str] | None = None,
        topic: str = "",
        attributes: Mapping[str, str] | None = None,
        reply_to_id: str | None = None,
        compress: bool = True,
    ) -> TextStreamInfo:
        """Send `text` as one text stream (inline and compressed where every peer can take it)."""
        info = await self._room._send_stream(
            StreamKind.TEXT,
            text,
            topic=topic,
            destination_identities=destination_identities,
            attributes=attributes,
            reply_to_stream_id=reply_to_id,
            compress=compress,
        )
        assert isinstance(info, TextStreamInfo)
        return info

    async def stream_bytes(
        self,
        name: str,
        *,
        total_size: int | None = None,
        mime_type: str = "application/octet-stream",
        attributes: Mapping[str, str] | None = None,
        stream_id: str | None = None,
        destination_identities: Sequence[str] | None = None,
        topic: str = "",
    ) -> ByteStreamWriter:
        """Open a byte stream; write with `await writer.write(data)`, end with `aclose()`."""
        info = self._room._open_stream(
            StreamKind.BYTES,
            topic=topic,
            destination_identities=destination_identities,
            attributes=attributes,
            stream_id=stream_id,
            total_length=total_size,
            mime_type=mime_type,
            name=name,
        )
        assert isinstance(info, ByteStreamInfo)
        await self._room._wait_writable(Channel.RELIABLE)
        return ByteStreamWriter(self._room, info)

    async def send_bytes(
        self,
        data: bytes,
        *,
        topic: str = "",
        name: str | None = None,
        mime_type: str | None = None,
        destination_identities: Sequence[str] | None = None,
        attributes: Mapping[str, str] | None = None,
        stream_id: str | None = None,
        compress: bool = True,
    ) -> ByteStreamInfo:
        """Send `data` as one byte stream."""
        info = await self._room._send_stream(
            StreamKind.BYTES,
            bytes(data),
            topic=topic,
            destination_identities=destination_identities,
            attributes=attributes,
            name=name,
            mime_type=mime_type or "application/octet-stream",
            stream_id=stream_id,
            compress=compress,
        )
        assert isinstance(info, ByteStreamInfo)
        return info

    async def send_file(
        self,
        file_path: str | os.PathLike[str],
        *,
        topic: str = "",
        destination_identities: Sequence[str] | None = None,
        attributes: Mapping[str, str] | None = None,
        stream_id: str | None = None,
        compress: bool = True,
        on_progress: ProgressCallback | None = None,
    ) -> ByteStreamInfo:
        """Stream a file from disk, reading as the channel drains (memory stays bounded).

        `on_progress(sent_bytes, total_bytes)` is called after every write. Returns once the
        data is with the server, not the receivers (flow control ends at the SFU, as with
        livekit.rtc). Files are sent uncompressed; `compress` is accepted for compatibility.
        """
        del compress  # files are streamed in chunks; the one-shot paths compress
        path = anyio.Path(file_path)
        total = (await path.stat()).st_size
        mime = mimetypes.guess_type(str(file_path))[0] or "application/octet-stream"
        writer = await self.stream_bytes(
            path.name,
            total_size=total,
            mime_type=mime,
            attributes=attributes,
            stream_id=stream_id,
            destination_identities=destination_identities,
            topic=topic,
        )
        sent = 0
        try:
            async with await anyio.open_file(file_path, "rb") as f:
                while piece := await f.read(_FILE_READ):
                    await writer.write(piece)
                    sent += len(piece)
                    if on_progress is not None:
                        on_progress(sent, total)
        except BaseException as exc:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await writer.aclose(reason=f"send_file failed: {type(exc).__name__}")
            raise
        await writer.aclose()
        return writer.info


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
        self._signal_generation = 0  # bumped whenever the core replaces or closes the signal
        self._deadline_wake = anyio.Event()
        self._channels_open: set[Channel] = set()
        self._writable: dict[Channel, anyio.Event] = {}
        self._progress = anyio.Event()  # set on join, channel open or end: connect() rechecks
        self._ended: ev.Disconnected | None = None
        self._end_seen = anyio.Event()
        self._session_done = anyio.Event()
        self._waiters: dict[int, _Waiter] = {}
        self._subscribers: list[_Subscriber] = []
        self._token = ""
        self._backend_task: object = None
        self._shield_session = False
        self._connector: Connector | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._text_handlers: dict[str, TextStreamHandler] = {}
        self._byte_handlers: dict[str, ByteStreamHandler] = {}
        self._rpc_handlers: dict[str, RpcHandler] = {}
        self._readers: dict[tuple[str, str], TextStreamReader | ByteStreamReader] = {}
        self._calls: dict[str, _Call] = {}
        self._invocations: dict[str, anyio.CancelScope] = {}
        self._local = LocalParticipant(self, Participant(sid="", identity=""))

    # -- livekit.rtc properties -----------------------------------------------------------------

    @property
    def local_participant(self) -> LocalParticipant:
        """Available before `connect()` too, so RPC methods can be registered early."""
        return self._local

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
        self._model = RoomModel(self._local)
        for topic in self._text_handlers:
            conn.register_stream_topic(StreamKind.TEXT, topic)
        for topic in self._byte_handlers:
            conn.register_stream_topic(StreamKind.BYTES, topic)
        for method in self._rpc_handlers:
            conn.register_rpc_method(method)
        rtc = options.rtc_config or RtcConfiguration()
        pump = self._pump = Pump(
            conn, clock=anyio.current_time, signal=self._writer, peer=_NoPeer(), sink=self
        )
        self._connector = CONNECTOR.get()
        if self._connector is not None:
            self._peer = self._connector.make_peer(
                pump, host_addresses=rtc.host_addresses, ice_servers=rtc.ice_servers
            )
        elif sniffio.current_async_library() == "asyncio":
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
        try:
            with anyio.move_on_after(limit):
                while not (self._ended or self._ready()):
                    await self._progress.wait()
                    self._progress = anyio.Event()
        except BaseException:  # cancelled while joining: leave nothing running behind us
            with anyio.CancelScope(shield=True):
                if self._ended is None:
                    pump.call(conn.close, now=pump.now(), reason=DisconnectReason.CLIENT_INITIATED)
                await self._finish()
            raise
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
            # Abort our open streams first: a trailer with a reason tells every reader that
            # the stream ended early (the official SDK's readers otherwise wait forever).
            for stream_id in self._conn.open_stream_ids:
                with contextlib.suppress(LocalProtocolError):
                    self._pump.call(
                        self._conn.close_stream,
                        stream_id,
                        now=self._pump.now(),
                        reason="the sender disconnected",
                    )
            # Answer the calls our handlers are still working on (1503), as livekit.rtc does,
            # instead of leaving their callers to time out.
            for request_id, scope in list(self._invocations.items()):
                scope.cancel()
                self._respond(
                    request_id, RpcError.built_in(RpcError.ErrorCode.RECIPIENT_DISCONNECTED)
                )
            if self._peer is not None and self._channels_open:
                await self._peer.drain(_DRAIN_TIMEOUT)  # don't cut off what we just sent
            if self._ended is None:
                self._pump.call(self._conn.close, now=self._pump.now(), reason=reason)
        await self._finish()

    async def simulate_scenario(self, scenario: SimulateScenario | int) -> None:
        """Cause a failure, for testing, as `livekit.rtc.Room.simulate_scenario` does.

        Takes a `lkproto.SimulateScenario` or the same int as `livekit.rtc`'s
        `SimulateScenarioKind`. SIGNAL_RECONNECT drops the signal connection (a resume
        follows); FULL_RECONNECT leaves and rejoins; the others ask the server. Watch
        `"reconnecting"`/`"reconnected"` for the outcome. Raises `TransportClosedError` when
        not connected and `LocalProtocolError` while a reconnect is under way.
        """
        pump, conn = self._live("simulate_scenario")
        pump.call(conn.simulate_scenario, SimulateScenario(scenario), now=pump.now())

    async def __aenter__(self) -> Room:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    async def events(self) -> AsyncIterator[ev.Event]:
        """Every core event from now on, until the session ends (`Disconnected` is last)."""
        bound = self._config.max_queued_events  # overflow drops (and logs) the newest
        send, receive = anyio.create_memory_object_stream[ev.Event](bound)
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
        elif isinstance(event, _DATA_EVENTS):
            self._on_data_event(event)
        for name, args in self._model.apply(event):
            self.emit(name, *args)
        for subscriber in list(self._subscribers):
            try:
                subscriber.send_nowait(event)
            except anyio.WouldBlock:
                behind = int(subscriber.statistics().max_buffer_size)
                log.warning("an events() subscriber is %d behind; dropped one", behind)
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
        try:
            await self._wait_writable(channel)
        except TransportClosedError as exc:
            raise PublishDataError(f"{call}: {exc}") from None

    async def _update(self, call: str, send: Callable[[Connection, float], int]) -> None:
        pump, conn = self._live(call)
        request_id = pump.call(send, conn, pump.now())
        waiter = self._waiters.setdefault(request_id, _Waiter())
        await waiter.done.wait()
        if waiter.failure is not None:
            raise MetadataUpdateError(
                f"{call} failed: {waiter.failure.message}", reason=waiter.failure.reason
            )

    async def _wait_writable(self, channel: Channel) -> None:
        """Wait while our sending channel holds more than its high watermark."""
        high = _MARKS[channel][1]
        while self._peer is not None and self._peer.buffered_amount(channel) > high:
            if self._ended is not None:
                raise TransportClosedError(f"the session ended: {self._ended.message}")
            event = self._writable.setdefault(channel, anyio.Event())
            await event.wait()

    # -- streams ----------------------------------------------------------------------------

    def register_text_stream_handler(self, topic: str, handler: TextStreamHandler) -> None:
        """Route text streams on `topic` to `handler(reader, participant_identity)`.

        The handler may be a plain function (start your own task to read) or an async
        function (the room runs it in its session). Streams on topics without a handler are
        dropped and reported, never buffered.
        """
        self._register_topic(self._text_handlers, StreamKind.TEXT, topic, handler)

    def register_byte_stream_handler(self, topic: str, handler: ByteStreamHandler) -> None:
        """Route byte streams on `topic` to `handler(reader, participant_identity)`."""
        self._register_topic(self._byte_handlers, StreamKind.BYTES, topic, handler)

    def unregister_text_stream_handler(self, topic: str) -> None:
        self._unregister_topic(self._text_handlers, StreamKind.TEXT, topic)

    def unregister_byte_stream_handler(self, topic: str) -> None:
        self._unregister_topic(self._byte_handlers, StreamKind.BYTES, topic)

    def _register_topic(
        self, table: dict[str, H], kind: StreamKind, topic: str, handler: H
    ) -> None:
        if topic in table:
            raise ValueError(f"a {kind.value} stream handler for topic {topic!r} is already set")
        table[topic] = handler
        if self._conn is not None:
            self._conn.register_stream_topic(kind, topic)

    def _unregister_topic(self, table: dict[str, H], kind: StreamKind, topic: str) -> None:
        if table.pop(topic, None) is not None and self._conn is not None:
            self._conn.unregister_stream_topic(kind, topic)

    def _open_stream(
        self,
        kind: StreamKind,
        *,
        topic: str,
        destination_identities: Sequence[str] | None,
        attributes: Mapping[str, str] | None,
        stream_id: str | None,
        total_length: int | None,
        reply_to_stream_id: str | None = None,
        mime_type: str | None = None,
        name: str | None = None,
    ) -> TextStreamInfo | ByteStreamInfo:
        pump, conn = self._live("stream")
        opened = pump.call(
            conn.open_stream,
            now=pump.now(),
            kind=kind,
            topic=topic,
            destination_identities=tuple(destination_identities or ()),
            attributes=attributes,
            stream_id=stream_id,
            total_length=total_length,
            reply_to_stream_id=reply_to_stream_id,
            mime_type=mime_type,
            name=name,
        )
        info = conn.outgoing_stream_info(opened)
        return text_info(info) if kind is StreamKind.TEXT else byte_info(info)

    async def _send_stream(
        self,
        kind: StreamKind,
        payload: str | bytes,
        *,
        topic: str,
        destination_identities: Sequence[str] | None,
        attributes: Mapping[str, str] | None,
        compress: bool,
        reply_to_stream_id: str | None = None,
        mime_type: str | None = None,
        name: str | None = None,
        stream_id: str | None = None,
    ) -> TextStreamInfo | ByteStreamInfo:
        pump, conn = self._live("send_stream")
        now = pump.now()
        sent = pump.call(
            conn.send_stream,
            now=now,
            kind=kind,
            topic=topic,
            payload=payload,
            destination_identities=tuple(destination_identities or ()),
            attributes=attributes,
            reply_to_stream_id=reply_to_stream_id,
            mime_type=mime_type,
            name=name,
            stream_id=stream_id,
            compress=compress,
        )
        await self._wait_writable(Channel.RELIABLE)
        size = len(payload.encode() if isinstance(payload, str) else payload)
        if kind is StreamKind.TEXT:
            return TextStreamInfo(
                stream_id=sent,
                mime_type=mime_type or "text/plain",
                topic=topic,
                timestamp=conn.wall_ms(now),
                size=size,
                attributes=dict(attributes or {}),
                reply_to_stream_id=reply_to_stream_id or "",
            )
        return ByteStreamInfo(
            stream_id=sent,
            mime_type=mime_type or "application/octet-stream",
            topic=topic,
            timestamp=conn.wall_ms(now),
            size=size,
            attributes=dict(attributes or {}),
            name=name or "",
        )

    async def _stream_write(self, stream_id: str, data: str | bytes) -> None:
        pump, conn = self._live("write")
        pump.call(conn.write_stream, stream_id, data, now=pump.now())
        await self._wait_writable(Channel.RELIABLE)

    async def _stream_close(
        self, stream_id: str, reason: str, attributes: Mapping[str, str] | None
    ) -> None:
        pump, conn = self._live("aclose")
        pump.call(
            conn.close_stream, stream_id, now=pump.now(), reason=reason, attributes=attributes
        )
        await self._wait_writable(Channel.RELIABLE)

    # -- RPC --------------------------------------------------------------------------------

    def _register_rpc(self, method: str, handler: RpcHandler) -> None:
        self._rpc_handlers[method] = handler
        if self._conn is not None:
            self._conn.register_rpc_method(method)

    def _unregister_rpc(self, method: str) -> None:
        if self._rpc_handlers.pop(method, None) is not None and self._conn is not None:
            self._conn.unregister_rpc_method(method)

    async def _perform_rpc(
        self,
        destination: str,
        method: str,
        payload: str,
        response_timeout: float | None,
        max_round_trip_latency: float | None,
    ) -> str:
        pump, conn = self._live("perform_rpc")
        request_id = pump.call(
            conn.perform_rpc,
            destination_identity=destination,
            method=method,
            payload=payload,
            now=pump.now(),
            response_timeout=response_timeout,
            max_round_trip_latency=max_round_trip_latency,
        )
        call = self._calls.setdefault(request_id, _Call())  # may have resolved already
        try:
            await call.done.wait()
        finally:
            # A cancelled caller leaves the entry to be dropped when the core resolves it.
            if call.done.is_set():
                self._calls.pop(request_id, None)
            else:
                call.abandoned = True
        if call.error is not None:
            raise call.error
        return call.payload

    def _respond(self, request_id: str, result: str | Exception | None) -> None:
        """Answer an invocation (an exception other than `RpcError` becomes a generic 1500)."""
        if self._pump is None or self._conn is None or self._ended is not None:
            return
        if isinstance(result, Exception) and not isinstance(result, RpcError):
            self._pump.call(
                self._conn.respond_rpc_exception, request_id, result, now=self._pump.now()
            )
        else:
            self._pump.call(self._conn.respond_rpc, request_id, result, now=self._pump.now())

    async def _run_handler(self, handler: RpcHandler, invocation: RpcInvocationData) -> None:
        with anyio.CancelScope() as scope:
            self._invocations[invocation.request_id] = scope
            try:
                result = handler(invocation)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                log.debug("RPC handler for %r raised", invocation.method, exc_info=True)
                self._respond(invocation.request_id, exc)
            else:
                if result is not None and not isinstance(result, str):
                    result = str(result)
                self._respond(invocation.request_id, result)
            finally:
                self._invocations.pop(invocation.request_id, None)

    async def _run_stream_handler(self, result: Awaitable[object], topic: str) -> None:
        try:
            await result
        except Exception:
            log.exception("the stream handler for topic %r raised", topic)

    def _on_data_event(self, event: ev.Event) -> None:
        conn, tg = self._conn, self._tg
        if isinstance(event, ev.StreamOpened):
            info, sender = event.info, event.sender_identity
            key = (sender, info.stream_id)
            assert conn is not None
            consumed = functools.partial(conn.stream_consumed, sender, info.stream_id)
            discard = functools.partial(self._discard, sender, info.stream_id)
            reader: TextStreamReader | ByteStreamReader
            if info.kind is StreamKind.TEXT:
                handler: Callable[..., object] | None = self._text_handlers.get(info.topic)
                reader = TextStreamReader(text_info(info), sender, consumed, discard)
            else:
                handler = self._byte_handlers.get(info.topic)
                reader = ByteStreamReader(byte_info(info), sender, consumed, discard)
            if handler is None:
                conn.stream_discarded(sender, info.stream_id)
                return
            self._readers[key] = reader
            try:
                result = handler(reader, sender)
            except Exception:
                log.exception("the stream handler for topic %r raised", info.topic)
                return
            if inspect.isawaitable(result) and tg is not None:
                tg.start_soon(self._run_stream_handler, result, info.topic)
        elif isinstance(event, ev.StreamChunkReceived):
            found = self._readers.get((event.sender_identity, event.stream_id))
            if found is not None:
                found._push((event.data, event.nbytes))
        elif isinstance(event, ev.StreamFinished | ev.StreamFailed):
            found = self._readers.pop((event.sender_identity, event.stream_id), None)
            if found is not None:
                if isinstance(event, ev.StreamFailed):
                    found._push(event.exception())
                else:
                    if found.info.attributes is not None:
                        found.info.attributes.update(event.attributes)
                    found._push(None)
        elif isinstance(event, ev.StreamDropped):
            log.info("dropped a stream from %r: %s", event.sender_identity, event.detail)
        elif isinstance(event, ev.RpcSucceeded | ev.RpcFailed):
            # No entry yet: the call resolved inside perform_rpc's own pump.call.
            call = self._calls.setdefault(event.request_id, _Call())
            if call.abandoned:
                del self._calls[event.request_id]
                return
            if isinstance(event, ev.RpcFailed):
                call.error = event.error
            else:
                call.payload = event.payload
            call.done.set()
        elif isinstance(event, ev.RpcInvoked):
            invocation = event.invocation
            rpc_handler = self._rpc_handlers.get(invocation.method)
            if rpc_handler is None or tg is None:
                self._respond(
                    invocation.request_id, RpcError.built_in(RpcError.ErrorCode.UNSUPPORTED_METHOD)
                )
            else:
                tg.start_soon(self._run_handler, rpc_handler, invocation)
        elif isinstance(event, ev.RpcInvocationCancelled):
            scope = self._invocations.pop(event.request_id, None)
            if scope is not None:
                scope.cancel()
        elif isinstance(event, ev.RpcDropped):
            log.debug("dropped an RPC message: %s %s", event.reason, event.detail)

    def _discard(self, sender: str, stream_id: str) -> None:
        self._readers.pop((sender, stream_id), None)
        if self._conn is not None and self._ended is None:
            self._conn.stream_discarded(sender, stream_id)

    # -- the session ----------------------------------------------------------------------------

    async def _start_session(self) -> None:
        started = anyio.Event()

        async def session() -> None:
            try:
                # Shielded when it runs in a caller's nursery (lkproto.transports.trio): a
                # cancelled caller then still ends the session cleanly (leave, close frame)
                # through disconnect(), instead of dropping the socket.
                with anyio.CancelScope(shield=self._shield_session):
                    async with anyio.create_task_group() as tg:
                        self._tg = tg
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

        self._spawn_session(session)
        await started.wait()

    def _spawn_session(self, session: Callable[[], Coroutine[object, object, None]]) -> None:
        """Run `session` detached from the caller (it ends when the room does): a loop task
        on asyncio, a system task on trio. `lkproto.transports.trio` can run it in a nursery."""
        if sniffio.current_async_library() == "asyncio":
            self._backend_task = asyncio.get_running_loop().create_task(session())
        else:
            import trio

            trio.lowlevel.spawn_system_task(session)

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
                if isinstance(item, cmd.OpenSignal | cmd.CloseSignal):
                    # Whatever the connection we leave behind still reports is stale: the
                    # core hears only about the signal connection it asked for last.
                    self._signal_generation += 1
                if isinstance(item, cmd.OpenSignal):
                    if stream is not None:
                        with contextlib.suppress(Exception):
                            await stream.aclose()
                        stream = None
                    limit = pump.conn.config.max_signal_message_bytes
                    ws = WebSocketClient(item.url, item.headers, max_message_size=limit)
                    stream = await self._open(ws, item)
                    if stream is not None:
                        tg.start_soon(self._read_loop, stream, ws, self._signal_generation)
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
                stream = await self._dial(end.host, end.port, end.tls)
                await stream.send(ws.handshake())
        except TransportError as exc:
            pump.on_signal_failed(None, str(exc))
            return None
        return stream

    async def _dial(self, host: str, port: int, tls: bool) -> anyio.abc.ByteStream:
        """Open the signal connection's byte stream (TLS for `wss://`)."""
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
        pump = self._pump
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
                if isinstance(result, Message):
                    pump.on_signal(result.data)
                elif isinstance(result, Rejected):
                    pump.on_signal_failed(result.status, redact(result.body, self._token))
                elif isinstance(result, Closed):
                    pump.on_signal_closed(result.code, result.reason)
                else:
                    assert isinstance(result, Accepted)
            if out := ws.data_to_send():
                self._writer.submit(out)


@attrs.define
class _Call:
    done: anyio.Event = attrs.field(factory=anyio.Event)
    payload: str = ""
    error: RpcError | None = None
    abandoned: bool = False  # the caller was cancelled; drop the result when it comes


_DATA_EVENTS = (
    ev.StreamOpened,
    ev.StreamChunkReceived,
    ev.StreamFinished,
    ev.StreamFailed,
    ev.StreamDropped,
    ev.RpcSucceeded,
    ev.RpcFailed,
    ev.RpcInvoked,
    ev.RpcInvocationCancelled,
    ev.RpcDropped,
)


class _Subscriber(Protocol):
    """Where `deliver` copies each event: an anyio memory stream (`events()`), or an adaptor
    raising anyio's `WouldBlock`/`BrokenResourceError`/`ClosedResourceError` likewise."""

    def send_nowait(self, item: ev.Event) -> None: ...

    def close(self) -> None: ...

    def statistics(self) -> _BufferStatistics: ...


class _BufferStatistics(Protocol):
    """What `deliver` reads of a subscriber's statistics: its bound, for the warning."""

    @property
    def max_buffer_size(self) -> float: ...


class _NoPeer:
    """Placeholder until the real peer port exists (the pump and the peer refer to each other)."""

    def submit(self, command: cmd.Command) -> None:  # pragma: no cover - replaced before use
        raise AssertionError("peer port not set")

    def buffered_amount(self, channel: Channel) -> int:  # pragma: no cover
        return 0

    def set_low_threshold(self, channel: Channel, threshold: int) -> None:  # pragma: no cover
        pass

    async def drain(self, timeout: float) -> None:  # pragma: no cover
        pass

    async def aclose(self) -> None:  # pragma: no cover
        pass
