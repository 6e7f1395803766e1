"""The async Room both async adapters are: `livekit.rtc.Room`'s data plane over a `Session`.

`lkproto.transports.anyio.Room` and `lkproto.transports.trio.Room` are this class with their
own `Runtime` (transports/_runtime.py); the threaded Room runs one on its I/O thread, with
its emissions and events sent to its own threads (`emit=`, `subscriber=`). The facade holds
no state of its own beyond the handle on its session: properties read the session's
`RoomModel` (through `RoomInfo`, transports/_room.py), verbs go through the session and its
streams and RPC parts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Self

import anyio

from lkproto import Config, Connection
from lkproto import events as ev
from lkproto.models import DisconnectReason, Participant, SimulateScenario
from lkproto.streams import StreamKind

from ._e2ee import E2EEManager
from ._participant import LocalParticipant
from ._room import RemoteParticipant, RoomInfo, RoomModel, RoomOptions
from ._runtime import Runtime
from ._session import Emit, Session, Subscriber
from ._streams import ByteStreamHandler, TextStreamHandler

__all__ = ["AsyncRoom"]


class AsyncRoom(RoomInfo):
    """A LiveKit room, as `livekit.rtc.Room` for the data plane, on asyncio or trio."""

    def __init__(
        self,
        config: Config | None,
        runtime: Runtime,
        *,
        emit: Emit | None = None,
        subscriber: Subscriber | None = None,
    ) -> None:
        """`emit` replaces this room's own `on()` listeners as the target of its emissions;
        `subscriber` gets every event of the session (both for the threaded Room)."""
        super().__init__()
        self._config = config or Config()
        self._session = Session(self._config, runtime, emit=emit or self.emit)
        self._local = LocalParticipant(self._session, Participant(sid="", identity=""))
        self._session.local = self._local
        if subscriber is not None:
            self._session.subscribe(subscriber)

    # -- livekit.rtc properties -----------------------------------------------------------------

    @property
    def local_participant(self) -> LocalParticipant:
        """Available before `connect()` too, so RPC methods can be registered early."""
        return self._local

    @property
    def remote_participants(self) -> Mapping[str, RemoteParticipant]:
        """The other participants, by identity (live objects, updated in place)."""
        return self._session.model.remote

    @property
    def e2ee_manager(self) -> E2EEManager:
        """End-to-end encryption: its `key_provider` once connected with
        `RoomOptions(encryption=...)` (transports/_e2ee.py)."""
        return self._session.e2ee_manager

    @property
    def connection(self) -> Connection | None:
        """The sans-I/O core behind this room (read it; drive it only through the room)."""
        return self._session.conn

    @property
    def _model(self) -> RoomModel:
        return self._session.model

    # -- connect / disconnect -------------------------------------------------------------------

    async def connect(self, url: str, token: str, options: RoomOptions | None = None) -> None:
        """Join the room. Returns when joined with the reliable data channel open.

        Raises `ConnectError` (with the server's reason, token redacted) on failure or when
        the join does not complete within the connect and peer connection timeouts.
        """
        await self._session.connect(url, token, options)

    async def disconnect(
        self, *, reason: DisconnectReason = DisconnectReason.CLIENT_INITIATED
    ) -> None:
        """Leave the room (sends `leave`), then close the signal and peer connections."""
        await self._session.disconnect(reason)

    async def simulate_scenario(self, scenario: SimulateScenario | int) -> None:
        """Cause a failure, for testing, as `livekit.rtc.Room.simulate_scenario` does.

        Takes a `lkproto.SimulateScenario` or the same int as `livekit.rtc`'s
        `SimulateScenarioKind`. SIGNAL_RECONNECT drops the signal connection (a resume
        follows); FULL_RECONNECT leaves and rejoins; the others ask the server. Watch
        `"reconnecting"`/`"reconnected"` for the outcome. Raises `TransportClosedError` when
        not connected and `LocalProtocolError` while a reconnect is under way.
        """
        self._session.simulate(scenario)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    async def events(self) -> AsyncIterator[ev.Event]:
        """Every core event from now on, until the session ends (`Disconnected` is last)."""
        bound = self._config.max_queued_events  # overflow drops (and logs) the newest
        send, receive = anyio.create_memory_object_stream[ev.Event](bound)
        if not self._session.subscribe(send):
            return
        try:
            async with receive:
                async for event in receive:
                    yield event
        finally:
            if send in self._session.subscribers:
                self._session.subscribers.remove(send)
            send.close()

    # -- streams ----------------------------------------------------------------------------

    def register_text_stream_handler(self, topic: str, handler: TextStreamHandler) -> None:
        """Route text streams on `topic` to `handler(reader, participant_identity)`.

        The handler may be a plain function (start your own task to read) or an async
        function (the room runs it in its session). Streams on topics without a handler are
        dropped and reported, never buffered.
        """
        self._session.streams.register_text(topic, handler)

    def register_byte_stream_handler(self, topic: str, handler: ByteStreamHandler) -> None:
        """Route byte streams on `topic` to `handler(reader, participant_identity)`."""
        self._session.streams.register_bytes(topic, handler)

    def unregister_text_stream_handler(self, topic: str) -> None:
        """Stop routing text streams on `topic`; new ones are dropped (and reported). Idempotent."""
        self._session.streams.unregister(StreamKind.TEXT, topic)

    def unregister_byte_stream_handler(self, topic: str) -> None:
        """Stop routing byte streams on `topic`; new ones are dropped (and reported). Idempotent."""
        self._session.streams.unregister(StreamKind.BYTES, topic)
