"""The memory transport: adapter Rooms join an `lkproto.testing.MemoryRoom`, with no network.

Theory of operation
- `MemoryServer` hosts one MemoryRoom on one event loop, its home (asyncio or trio, the loop
  it was entered on). It is the `Connector` (transports/_connector.py) every Room uses while
  the server is installed: `dial()` returns an in-memory byte stream that speaks WebSocket,
  server side, with wsproto, and `make_peer()` a `PeerPort` whose data channels deliver into
  the MemoryRoom. Application code under test runs unchanged: it connects to any URL with a
  token from `token()`, and the bytes it exchanges are the ones a real server would see.
- The MemoryRoom runs on the home loop's clock (`anyio.current_time`): after every input
  the server advances the room to now, and a driver task sleeps until the room's next
  deadline (a delayed packet, the 3 s participant-update tick, a departure). On trio with
  `trio.testing.MockClock(autojump_threshold=0)`, or on asyncio with `VirtualTimeLoop`
  (lkproto.transports.testing), that clock is virtual and a test that waits 15 s for an RPC
  timeout takes milliseconds.
- Threads and loops. The room is only ever touched on the home thread. A Room on another
  loop (each threaded Room has its own I/O thread) reaches it through a thread-safe "run
  soon over there" (`call_soon_threadsafe` / `TrioToken.run_sync_soon`, both FIFO), and what
  the room delivers goes back the same way to the Room's loop. Deliveries are never run
  inline, even on the home loop: the room may be mid-step, and the Room's pump must not be
  re-entered (the same rule the aiortc peer follows).
- The simulated peer connection: an offer or answer is made up at once; when the server's
  answer arrives, the peer presents its `a=ice-ufrag` to the room (`connect_peer`), as ICE
  ties a real peer connection to its signal session, and its data channels open with the
  server's 65535-byte max-message-size (an ICE restart connects again the same way). On the
  dual-PC path the subscriber connects once it has answered the server's offer. The room
  may close or fail it; a peer connection the core closed or replaced never reports again
  (each one the core creates gets its own endpoint in the room). `buffered_amount` is
  always 0 (delivery is immediate, so there is no backpressure to model), and `drain` is a
  round trip through the home loop, after which everything sent before has reached the
  room.
- Media tracks (transports/testing/_media.py): the transceiver commands build the offer's
  m-lines (`lkproto.testing.media_lines`), a pacer sends each published track's audio to
  the room 20 ms at a time, and what the room forwards goes to the session's streams.
- The network: while the room is down (a restart's downtime) `dial` is refused; an upgrade
  from a client whose network the room has cut gets no answer at all (the core's join
  timer gives up on it), as a lost SYN would.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextvars import Token
from typing import TypeVar, assert_never

import anyio
import anyio.abc
import sniffio
import wsproto
import wsproto.events as wse
from wsproto.utilities import LocalProtocolError as WsLocalProtocolError
from wsproto.utilities import RemoteProtocolError as WsRemoteProtocolError

from lkproto import commands as cmd
from lkproto.models import Channel, IceServer, ParticipantKind, PeerState, PeerTarget, SdpType
from lkproto.testing import MemoryRoom, PeerLink, Rejected, SignalLink, Unreachable, ice_ufrag

from .._connector import CONNECTOR, Connector
from .._media import MediaRouter
from .._ports import PeerCommand, PeerListener, PeerPort
from .._rtc_config import IcePolicy

__all__ = ["MemoryServer"]

T = TypeVar("T")
URL = "ws://memory.invalid"
_MAX_MESSAGE_SIZE = 65535
_SDP = "v=0\r\ns=lkproto-memory-client\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"


class _LoopRef:
    """The running event loop, and a thread-safe, FIFO way to run a function on it soon.

    The function runs as a plain callback, outside any task: sniffio is told which library
    that is, so anyio calls in it (`anyio.current_time`, events) work under `asyncio.run`
    too, not only under anyio's runner."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.library = sniffio.current_async_library()
        if self.library == "asyncio":
            self._soon: Callable[..., object] = asyncio.get_running_loop().call_soon_threadsafe
        else:
            import trio

            self._soon = trio.lowlevel.current_trio_token().run_sync_soon

    def here(self) -> bool:
        return threading.get_ident() == self.thread

    def soon(self, fn: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # that loop has already closed
            self._soon(self._run, fn)

    def _run(self, fn: Callable[[], None]) -> None:
        token = sniffio.current_async_library_cvar.set(self.library)
        try:
            fn()
        finally:
            sniffio.current_async_library_cvar.reset(token)


class MemoryServer:
    """Serves a MemoryRoom to adapter Rooms: use `async with MemoryServer() as server:`.

    While entered, every Room that connects in this context (asyncio or trio) joins
    `server.room`; give it `server.url` (or any URL) and a token from `server.token(...)`.
    The keyword arguments make the MemoryRoom (see its docstring); its clock starts at the
    loop's current time and its wall clock at the real one.
    """

    def __init__(self, room: MemoryRoom | None = None, /, **room_options: object) -> None:
        if room is not None and room_options:
            raise TypeError("pass either a MemoryRoom or the options to make one, not both")
        self._room = room
        self._options = room_options
        self._home: _LoopRef | None = None
        self._clock: Callable[[], float] = anyio.current_time
        self._wake: anyio.Event | None = None
        self._driver_done: anyio.Event | None = None
        self._scope: anyio.CancelScope | None = None
        self._token: Token[Connector | None] | None = None

    @property
    def room(self) -> MemoryRoom:
        """The MemoryRoom (touch it only on the server's loop, e.g. from the test's task)."""
        if self._room is None:
            raise RuntimeError("the MemoryServer has not started yet")
        return self._room

    @property
    def url(self) -> str:
        """A URL to give `Room.connect` (any URL joins this server while it is entered)."""
        return URL

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
    ) -> str:
        """A token for the room (the grants and defaults of `MemoryRoom.token`)."""
        return self.room.token(
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

    # -- lifetime ---------------------------------------------------------------------------------

    async def __aenter__(self) -> MemoryServer:
        await self.start()
        self._token = CONNECTOR.set(self)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._token is not None:
            CONNECTOR.reset(self._token)
            self._token = None
        await self.stop()

    async def start(self) -> None:
        """Bind to the running loop and start the driver (`__aenter__` does it for you)."""
        if self._home is not None:
            raise RuntimeError("this MemoryServer is already running")
        self._home = _LoopRef()
        now = self._clock()
        if self._room is None:
            options: dict[str, object] = {"unix_time_ms": int(time.time() * 1000)}
            options.update(self._options)
            self._room = MemoryRoom(now=now, **options)  # type: ignore[arg-type]
        elif now < self._room.now:
            raise RuntimeError("the MemoryRoom's clock is ahead of this loop's clock")
        self._wake = anyio.Event()
        self._driver_done = anyio.Event()
        started = anyio.Event()
        _spawn(self._drive, started)
        await started.wait()

    async def stop(self) -> None:
        """Stop the driver; the Rooms still connected then hear nothing more (a dead network)."""
        if self._scope is not None:
            self._scope.cancel()
        if self._driver_done is not None:
            await self._driver_done.wait()
        self._home = None

    @contextlib.contextmanager
    def control(self) -> Iterator[MemoryRoom]:
        """Act on the room as the server (faults, `leave`, `update_participant`, ...):

            with server.control() as room:
                room.leave("bob", action=LeaveAction.RECONNECT)

        The room is brought up to the loop's clock first, and what the block scheduled is
        run afterwards. Only on the server's own loop (the test's, usually).
        """
        home = self._home
        if home is None or not home.here():
            raise RuntimeError("MemoryServer.control() works only on the running server's loop")
        self._run()
        try:
            yield self.room
        finally:
            self._run()
            if self._wake is not None:
                self._wake.set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[MemoryServer]:
        """Set this server as the connector for the current context (e.g. another thread's)."""
        token = CONNECTOR.set(self)
        try:
            yield self
        finally:
            CONNECTOR.reset(token)

    async def _drive(self, started: anyio.Event) -> None:
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                started.set()
                while True:
                    self._wake = wake = anyio.Event()
                    deadline = self.room.next_deadline()
                    delay = math.inf if deadline is None else max(0.0, deadline - self._clock())
                    with anyio.move_on_after(delay):
                        await wake.wait()
                    self._run()
        finally:
            started.set()
            assert self._driver_done is not None
            self._driver_done.set()

    # -- running the room (home thread only) ------------------------------------------------------

    def _run(self) -> None:
        room = self.room
        room.advance_to(max(room.now, self._clock()))

    def _input(self, fn: Callable[[], T]) -> T:
        self._run()
        try:
            return fn()
        finally:
            self._run()
            if self._wake is not None:
                self._wake.set()

    def submit(self, fn: Callable[[], object]) -> None:
        """Run `fn` on the room as an input, now (home thread) or soon (from elsewhere).

        Once the server has stopped, inputs are lost, as on a dead network."""
        home = self._home
        if home is None:
            return
        if home.here():
            self._input(fn)
        else:

            def run() -> None:
                self._input(fn)

            home.soon(run)

    async def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the room as an input and return its result, from any loop.

        Raises ConnectionResetError once the server has stopped."""
        home = self._home
        if home is None:
            raise ConnectionResetError("the MemoryServer has stopped")
        if home.here():
            return self._input(fn)
        mine = _LoopRef()
        done = anyio.Event()
        box: list[T] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                box.append(self._input(fn))
            except BaseException as exc:
                errors.append(exc)
            mine.soon(done.set)

        home.soon(run)
        await done.wait()
        if errors:
            raise errors[0]
        return box[0]

    # -- Connector --------------------------------------------------------------------------------

    async def dial(self, host: str, port: int, tls: bool) -> anyio.abc.ByteStream:
        # An OSError: the Room reports it as a failed connection (ConnectError, or a failed
        # reconnect attempt).
        """@private The memory transport's signal connection (called by a Room's session, not by
        applications)."""
        if self._home is None:
            raise ConnectionRefusedError("the MemoryServer is not running")
        try:
            serving = await self.call(lambda: self.room.serving)
        except ConnectionResetError:
            serving = False
        if not serving:
            raise ConnectionRefusedError("connection refused (the MemoryRoom is restarting)")
        return _SignalStream(self)

    def make_peer(
        self,
        listener: PeerListener,
        *,
        host_addresses: list[str] | None,
        ice_servers: list[IceServer],
        media: MediaRouter | None = None,
        ice_policy: IcePolicy | None = None,
    ) -> PeerPort:
        """@private The memory transport's peer connection (called by a Room's session, not by
        applications)."""
        return _MemoryPeer(self, listener, media)


def _spawn(
    fn: Callable[[anyio.Event], Coroutine[object, object, None]], started: anyio.Event
) -> None:
    """Run `fn(started)` as a task of the running loop, detached from the caller's scopes."""
    if sniffio.current_async_library() == "asyncio":
        loop = asyncio.get_running_loop()
        task = loop.create_task(fn(started))
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)
    else:
        import trio

        trio.lowlevel.spawn_system_task(fn, started)


_TASKS: set[asyncio.Task[None]] = set()


class _SignalStream(anyio.abc.ByteStream):
    """The client's signal socket: bytes in, a WebSocket server (wsproto) on the other end."""

    def __init__(self, server: MemoryServer) -> None:
        self._server = server
        self._loop = _LoopRef()
        self._ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self._incoming = bytearray()
        self._message = bytearray()
        self._ready = anyio.Event()
        self._eof = False
        self._closed = False
        self._link: SignalLink | None = None
        self._accepted = False
        self._early: list[Callable[[], None]] = []  # what the server said before the accept

    # -- what the client does -----------------------------------------------------------------

    async def send(self, item: bytes) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if self._eof:
            return  # the server hung up; what the client still writes goes nowhere
        try:
            self._ws.receive_data(bytes(item))
            for event in self._ws.events():
                await self._handle(event)
        except (WsLocalProtocolError, WsRemoteProtocolError):
            self._hang_up()

    async def _handle(self, event: wse.Event) -> None:
        if isinstance(event, wse.Request):
            headers = tuple(
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in event.extra_headers
            )
            result = await self._server.call(
                lambda: self._server.room.accept(event.target, headers, _SignalEndpoint(self))
            )
            if isinstance(result, Unreachable):
                if result.refused:  # it went down after the dial: the connection breaks
                    self._hang_up()
                return  # the client's network is cut: no answer, ever
            if isinstance(result, Rejected):
                body = result.body.encode()
                self._push(
                    self._ws.send(
                        wse.RejectConnection(
                            status_code=result.status,
                            headers=[
                                (b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()),
                            ],
                            has_body=True,
                        )
                    )
                    + self._ws.send(wse.RejectData(data=body, body_finished=True))
                )
                self._hang_up()
                return
            self._link = result
            self._push(self._ws.send(wse.AcceptConnection()))
            self._accepted = True
            early, self._early = self._early, []
            for fn in early:
                fn()
        elif isinstance(event, wse.BytesMessage):
            self._message += event.data
            if event.message_finished:
                data, link = bytes(self._message), self._link
                self._message.clear()
                if link is not None:
                    self._server.submit(lambda: link.send(data))
        elif isinstance(event, wse.CloseConnection):
            if self._ws.state is wsproto.connection.ConnectionState.REMOTE_CLOSING:
                self._push(self._ws.send(event.response()))
            self._client_gone()
            self._hang_up()
        elif isinstance(event, wse.Ping):
            self._push(self._ws.send(event.response()))

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while not self._incoming:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._eof:
                raise anyio.EndOfStream
            self._ready = anyio.Event()
            await self._ready.wait()
        chunk = bytes(self._incoming[:max_bytes])
        del self._incoming[:max_bytes]
        return chunk

    async def send_eof(self) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._client_gone()
            self._ready.set()

    def _client_gone(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            self._server.submit(link.close)

    # -- what the server does (always on the client's loop) -----------------------------------

    def _push(self, data: bytes) -> None:
        if data and not self._eof:
            self._incoming += data
        self._ready.set()

    def _hang_up(self) -> None:
        self._eof = True
        self._ready.set()

    def deliver(self, data: bytes) -> None:
        if not self._accepted:
            self._early.append(lambda: self.deliver(data))
        elif self._ws.state is wsproto.connection.ConnectionState.OPEN:
            self._push(self._ws.send(wse.BytesMessage(data=data)))

    def server_closed(self, code: int | None) -> None:
        if not self._accepted:
            self._early.append(lambda: self.server_closed(code))
            return
        self._link = None
        if code is not None and self._ws.state is wsproto.connection.ConnectionState.OPEN:
            self._push(self._ws.send(wse.CloseConnection(code=code)))
        self._hang_up()


class _SignalEndpoint:
    """The room's view of a `_SignalStream`: called on the home thread, runs on the client's."""

    def __init__(self, stream: _SignalStream) -> None:
        self._stream = stream

    def signal_received(self, data: bytes) -> None:
        self._stream._loop.soon(lambda: self._stream.deliver(data))

    def signal_closed(self, code: int | None) -> None:
        self._stream._loop.soon(lambda: self._stream.server_closed(code))


class _MemoryPeer:
    """The `PeerPort` of a Room connected to a MemoryServer (see the module docstring)."""

    def __init__(
        self, server: MemoryServer, listener: PeerListener, media: MediaRouter | None = None
    ) -> None:
        from ._media import MemoryMedia  # PyAV and aiortc's codecs: with the first peer only

        self._server = server
        self._listener = listener
        self._media = MemoryMedia(media, self._send_media)
        self._loop = _LoopRef()
        self._endpoint: _PeerEndpoint | None = None  # the current publisher connection's
        self._link: PeerLink | None = None
        self._targets: set[PeerTarget] = set()
        self._closed = False

    def _soon(self, fn: Callable[[], None]) -> None:
        def run() -> None:
            if not self._closed:
                fn()

        self._loop.soon(run)

    def submit(self, command: PeerCommand) -> None:
        if self._closed:
            return
        listener = self._listener
        match command:
            case cmd.CreatePeerConnection():
                if command.target is PeerTarget.PUBLISHER or self._endpoint is None:
                    self._disconnect()
                    self._endpoint = _PeerEndpoint(self)
                self._targets.add(command.target)
            case cmd.CreateOffer() | cmd.CreateAnswer():
                kind = SdpType.OFFER if isinstance(command, cmd.CreateOffer) else SdpType.ANSWER
                target = command.target
                offer_id = command.offer_id if isinstance(command, cmd.CreateOffer) else 0
                mids = self._media.slot_mids() if offer_id else None
                sdp = _SDP + self._media.offer_lines()
                self._soon(lambda: listener.on_local_description(target, sdp, kind, offer_id, mids))
                if kind is SdpType.ANSWER and target is PeerTarget.SUBSCRIBER:
                    self._soon(
                        lambda: listener.on_peer_state(PeerTarget.SUBSCRIBER, PeerState.CONNECTED)
                    )
            case cmd.SetRemoteDescription():
                endpoint = self._endpoint
                publisher = command.target is PeerTarget.PUBLISHER
                answer = publisher and command.sdp_type is SdpType.ANSWER
                if answer and endpoint is not None and not endpoint.connecting:
                    endpoint.connecting = True  # later answers renegotiate the same link
                    ufrag = ice_ufrag(command.sdp) or ""
                    self._server.submit(
                        lambda: self._connected(
                            endpoint, self._server.room.connect_peer(ufrag, endpoint)
                        )
                    )
                if command.offer_id:
                    applied = command.offer_id
                    self._soon(
                        lambda: listener.on_remote_description(PeerTarget.PUBLISHER, applied)
                    )
            case cmd.SendDataPacket():
                link = self._link
                if link is None:
                    failed = command
                    self._soon(
                        lambda: listener.on_command_failed(failed, "the data channel is not open")
                    )
                else:
                    channel, data = command.channel, command.data
                    self._server.submit(lambda: link.send(channel, data))
            case cmd.SendDataTrackFrame():
                frame_link = self._link
                if frame_link is not None:  # else lost, as a lossy frame is
                    packets = command.packets

                    def send_frame() -> None:
                        for packet in packets:
                            frame_link.send(Channel.DATA_TRACK, packet)

                    self._server.submit(send_frame)
            case cmd.ClosePeerConnection():
                self._targets.discard(command.target)
                if command.target is PeerTarget.PUBLISHER:
                    self._disconnect()
                    self._endpoint = None
                    self._media.reset()
            case cmd.AddTransceiver() | cmd.SetTransceiverDirection() | cmd.SetSendSource():
                if self._media.execute(command):
                    _spawn(self._pace, anyio.Event())
            case cmd.CreateDataChannel() | cmd.AddIceCandidate():
                pass  # nothing to simulate
            case _:
                assert_never(command)

    def _connected(self, endpoint: _PeerEndpoint, link: PeerLink | None) -> None:
        """On the home thread: the room's answer to `connect_peer`."""

        def report() -> None:
            if self._endpoint is not endpoint:  # closed meanwhile: hang up the late link
                if link is not None:
                    self._server.submit(link.close)
                return
            listener = self._listener
            if link is None:
                listener.on_peer_state(PeerTarget.PUBLISHER, PeerState.FAILED)
                return
            self._link = link
            listener.on_peer_state(PeerTarget.PUBLISHER, PeerState.CONNECTED)
            for channel in Channel:
                listener.on_channel_open(channel, _MAX_MESSAGE_SIZE)

        self._soon(report)

    def _lost(self, endpoint: _PeerEndpoint, state: PeerState) -> None:
        """On this peer's loop: the room closed or failed `endpoint`'s connection."""
        if self._endpoint is not endpoint or self._link is None:
            return
        self._link = None
        endpoint.connecting = False  # an ICE restart's answer connects it again
        listener = self._listener
        for channel in Channel:
            listener.on_channel_closed(channel)
        for target in sorted(self._targets):
            listener.on_peer_state(target, state)

    def _disconnect(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            self._server.submit(link.close)

    def buffered_amount(self, channel: Channel) -> int:
        return 0

    def set_low_threshold(self, channel: Channel, threshold: int) -> None:
        pass

    async def drain(self, timeout: float) -> bool:
        with anyio.move_on_after(timeout), contextlib.suppress(ConnectionResetError):
            await self._server.call(lambda: None)
            return True
        return False

    async def aclose(self) -> None:
        self._disconnect()
        self._closed = self._media.closed = True

    async def _pace(self, started: anyio.Event) -> None:
        await self._media.pace()

    def _send_media(self, mid: str, frame: object) -> None:
        link = self._link
        if link is not None:
            self._server.submit(lambda: link.send_media(mid, frame))


class _PeerEndpoint:
    """The room's view of one peer connection of a `_MemoryPeer`: called on the home thread,
    runs on the client's, and only while it is that peer's current connection."""

    def __init__(self, peer: _MemoryPeer) -> None:
        self._peer = peer
        self.connecting = False  # its first answer asked the room to connect it

    def data_received(self, channel: Channel, data: bytes) -> None:
        peer = self._peer

        def deliver() -> None:
            if peer._endpoint is self:
                peer._listener.on_data(channel, data)

        peer._soon(deliver)

    def peer_closed(self) -> None:
        self._later(lambda: self._peer._lost(self, PeerState.CLOSED))

    def peer_failed(self) -> None:
        self._later(lambda: self._peer._lost(self, PeerState.FAILED))

    def media_received(self, mid: str, payload: object) -> None:
        peer = self._peer

        def deliver() -> None:
            if peer._endpoint is self:
                peer._media.received(mid, payload)

        peer._soon(deliver)

    def _later(self, fn: Callable[[], None]) -> None:
        """Report one loop turn late: what the room said on the signal socket before (a
        leave) reaches the Room's reader first, as livekit-server's leave, written before it
        closes the peer connection, usually does. (Signal bytes take a hop through the
        Room's reader task; a peer report would otherwise overtake them.)"""
        self._peer._soon(lambda: self._peer._soon(fn))
