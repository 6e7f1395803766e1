"""The sans-I/O core's signaling, driven against the real livekit-server.

A minimal test-only driver (wsproto over an asyncio stream, no WebRTC) carries out the core's
OpenSignal/SendSignal/CloseSignal commands and feeds back every server message. The official
`livekit` SDK is the other participant. This checks the core's join URL (`/rtc/v1` with a
WrappedJoinRequest), bearer authentication, participant tracking, keepalive and metadata
requests against the real server; the data plane needs the transport of a later issue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from urllib.parse import urlsplit

import pytest
import wsproto
import wsproto.events as wse
from livekit import rtc

from lkproto import Config, Connection, ConnectionState, DisconnectReason
from lkproto import commands as cmd
from lkproto import events as ev

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(60)]


class SignalOnlyDriver:
    """Carries out the core's signal commands; ignores peer-connection commands."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.events: asyncio.Queue[ev.Event] = asyncio.Queue()
        self.http_status: int | None = None
        self._ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def pump(self) -> None:
        """Drain commands then events, after every input (the core's contract)."""
        for command in self.conn.commands_to_send():
            if isinstance(command, cmd.OpenSignal):
                await self._open(command)
            elif isinstance(command, cmd.SendSignal):
                self._send(self._ws.send(wse.BytesMessage(data=command.data)))
            elif isinstance(command, cmd.CloseSignal):
                with contextlib.suppress(Exception):
                    self._send(self._ws.send(wse.CloseConnection(code=command.code)))
        while (event := self.conn.next_event()) is not None:
            self.events.put_nowait(event)
        self._wake.set()

    def _send(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)

    async def _open(self, command: cmd.OpenSignal) -> None:
        parts = urlsplit(command.url)
        reader, self._writer = await asyncio.open_connection(parts.hostname, parts.port)
        target = f"{parts.path}?{parts.query}"
        self._send(
            self._ws.send(
                wse.Request(host=parts.netloc, target=target, extra_headers=list(command.headers))
            )
        )
        self._tasks.append(asyncio.create_task(self._read(reader)))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        buffer = bytearray()
        while data := await reader.read(65536):
            self._ws.receive_data(data)
            for event in self._ws.events():
                if isinstance(event, wse.RejectConnection):
                    self.http_status = event.status_code
                    self.conn.signal_connect_failed(status=event.status_code, now=self.now())
                elif isinstance(event, wse.BytesMessage):
                    buffer += event.data
                    if event.message_finished:
                        self.conn.receive_signal(bytes(buffer), now=self.now())
                        buffer.clear()
                elif isinstance(event, wse.Ping):
                    self._send(self._ws.send(event.response()))
                elif isinstance(event, wse.CloseConnection):
                    self.conn.signal_closed(now=self.now(), code=event.code)
                await self.pump()
        self.conn.signal_closed(now=self.now())
        await self.pump()

    async def run_timer(self) -> None:
        while True:
            deadline = self.conn.get_timer()
            self._wake.clear()
            timeout = None if deadline is None else max(0.0, deadline - self.now())
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the inner wait completes, and this loop would then never end.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            if deadline is not None and self.now() >= deadline:
                self.conn.handle_timer(self.now())
                await self.pump()

    async def start(self, url: str, token: str, **kwargs: object) -> None:
        self.conn.connect(url, token, now=self.now(), **kwargs)  # type: ignore[arg-type]
        self._tasks.append(asyncio.create_task(self.run_timer()))
        await self.pump()

    async def next(self, kind: type[ev.Event], timeout: float = 10) -> ev.Event:
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if isinstance(event, kind):
                    return event

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        if self._writer is not None:
            self._writer.close()


def new_core(config: Config | None = None) -> Connection:
    return Connection(
        config,
        now=asyncio.get_running_loop().time(),
        unix_time_ms=int(time.time() * 1000),
        id_factory=lambda: uuid.uuid4().hex,
    )


async def test_core_joins_tracks_an_official_sdk_peer_and_updates_attributes(
    livekit_server, make_token
) -> None:
    official = rtc.Room()
    await official.connect(
        livekit_server.url,
        make_token("official", can_update_own_metadata=True),
        rtc.RoomOptions(auto_subscribe=False),
    )
    gone: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    official.on("participant_disconnected", lambda p: gone.done() or gone.set_result(p.identity))

    driver = SignalOnlyDriver(new_core())
    token = make_token("core", can_update_own_metadata=True, attributes={"from": "token"})
    try:
        await driver.start(livekit_server.url, token, attributes={"role": "tester"})
        joined = await driver.next(ev.Joined)
        assert isinstance(joined, ev.Joined)
        assert joined.single_peer_connection is True  # /rtc/v1 was accepted
        assert joined.local_participant.identity == "core"
        assert dict(joined.local_participant.attributes) == {"from": "token", "role": "tester"}
        assert [p.identity for p in joined.participants] == ["official"]
        assert joined.server_info.version == "1.13.5"
        assert driver.conn.state is ConnectionState.CONNECTED

        request_id = driver.conn.set_attributes({"mood": "curious", "from": ""}, now=driver.now())
        await driver.pump()
        done = await driver.next(ev.MetadataUpdateCompleted)
        assert done == ev.MetadataUpdateCompleted(request_id=request_id)

        # The official SDK's view of us reflects the merge ("" deleted the token's key). It
        # emits no participant_attributes_changed for us, apparently because a signal-only
        # participant never becomes ACTIVE; so we observe its participant state instead.
        def official_view() -> dict[str, str] | None:
            peer = official.remote_participants.get("core")
            return None if peer is None else dict(peer.attributes)

        async with asyncio.timeout(10):
            while official_view() != {"mood": "curious", "role": "tester"}:
                await asyncio.sleep(0.05)

        # The official SDK changes its own attributes; the core reports the diff.
        async with asyncio.timeout(10):
            await official.local_participant.set_attributes({"seen": "yes"})
        change = await driver.next(ev.ParticipantAttributesChanged)
        assert isinstance(change, ev.ParticipantAttributesChanged)
        assert (change.participant.identity, dict(change.changed)) == ("official", {"seen": "yes"})

        # Keepalive against the real server: the server's ping_interval is 5 s.
        async with asyncio.timeout(15):
            while driver.conn.rtt_ms == 0:
                await asyncio.sleep(0.1)
        assert 0 < driver.conn.rtt_ms < 5000

        driver.conn.close(now=driver.now())
        await driver.pump()
        bye = await driver.next(ev.Disconnected)
        assert bye == ev.Disconnected(
            reason=DisconnectReason.CLIENT_INITIATED, message="closed by the application"
        )
        assert await asyncio.wait_for(gone, 10) == "core"
    finally:
        await driver.stop()
        await official.disconnect()


async def test_core_sees_an_official_sdk_participant_join_and_leave(
    livekit_server, make_token
) -> None:
    driver = SignalOnlyDriver(new_core())
    try:
        await driver.start(livekit_server.url, make_token("watcher"))
        await driver.next(ev.Joined)
        official = rtc.Room()
        await official.connect(livekit_server.url, make_token("visitor", name="Visitor"),
                               rtc.RoomOptions(auto_subscribe=False))  # fmt: skip
        arrived = await driver.next(ev.ParticipantConnected)
        assert isinstance(arrived, ev.ParticipantConnected)
        assert (arrived.participant.identity, arrived.participant.name) == ("visitor", "Visitor")
        await official.disconnect()
        left = await driver.next(ev.ParticipantDisconnected)
        assert isinstance(left, ev.ParticipantDisconnected)
        assert left.participant.identity == "visitor"
        assert left.reason is DisconnectReason.CLIENT_INITIATED
        assert "visitor" not in driver.conn.remote_participants
    finally:
        driver.conn.close(now=driver.now())
        await driver.pump()
        await driver.stop()


async def test_core_reports_a_refused_token_clearly(livekit_server, make_token) -> None:
    driver = SignalOnlyDriver(new_core())
    bad = make_token("intruder", api_secret="not-the-server-secret-0123456789abcdef")
    try:
        await driver.start(livekit_server.url, bad)
        failed = await driver.next(ev.Disconnected)
        assert isinstance(failed, ev.Disconnected)
        assert failed.reason is DisconnectReason.JOIN_FAILURE
        assert driver.http_status == 401
        assert failed.message == "the server refused the token (HTTP 401)"
        assert bad not in repr(failed)
    finally:
        await driver.stop()
