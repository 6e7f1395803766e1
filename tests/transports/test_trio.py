"""`lkproto.transports.trio` without a network: trio's virtual clock and memory streams.

A fake signal server speaks WebSocket (wsproto, server side) over
`trio.testing.memory_stream_pair`, handed to the room through `Room(dialer=...)`. With
`autojump_clock` the join timeout passes in virtual time, so a 7-second timeout takes
milliseconds and its length can be asserted exactly. What needs WebRTC (a successful join)
is proven against the real server in tests/e2e.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    RejectConnection,
    RejectData,
    Request,
)

from lkproto import events as ev
from lkproto.models import DisconnectReason
from lkproto.transports.trio import ConnectError, Connecting, Room, RoomOptions
from lkproto.transports.trio import _unwrap as unwrap

pytestmark = pytest.mark.anyio


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    """trio's virtual clock: it jumps ahead whenever every task is blocked."""
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
def anyio_backend(autojump_clock: trio.testing.MockClock) -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": autojump_clock})


TOKEN = "header.payload.signature-that-must-never-leak-0123456789"
URL = "ws://sfu.invalid:7880"


class FakeServer:
    """Accepts or rejects the WebSocket handshake, then records what the client does."""

    def __init__(self, *, reject: tuple[int, bytes] | None = None) -> None:
        self.reject = reject
        self.dialed: list[tuple[str, int, bool]] = []
        self.request_target = ""
        self.closed = trio.Event()
        self.close_code: int | None = None

    def dialer(self, nursery: trio.Nursery) -> Callable[[str, int, bool], Any]:
        async def dial(host: str, port: int, tls: bool) -> trio.abc.Stream:
            self.dialed.append((host, port, tls))
            client, server = trio.testing.memory_stream_pair()
            nursery.start_soon(self.serve, server)
            return client

        return dial

    async def serve(self, stream: trio.abc.Stream) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        try:
            while True:
                data = await stream.receive_some(65536)
                ws.receive_data(data or None)
                for event in ws.events():
                    if isinstance(event, Request):
                        self.request_target = event.target
                        if self.reject is None:
                            await stream.send_all(ws.send(AcceptConnection()))
                        else:
                            status, body = self.reject
                            headers = [(b"content-length", str(len(body)).encode())]
                            await stream.send_all(
                                ws.send(RejectConnection(status, headers, has_body=True))
                                + ws.send(RejectData(body))
                            )
                    elif isinstance(event, CloseConnection) and self.close_code is None:
                        self.close_code = event.code  # the client's (EOF then adds 1006)
                if not data:
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            self.closed.set()


def no_secret(text: str) -> None:
    assert TOKEN not in text
    assert "signature-that-must-never-leak" not in text


async def test_a_silent_server_times_out_at_exactly_the_join_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeServer()
    async with trio.open_nursery() as nursery:
        room = Room(dialer=server.dialer(nursery))
        received: list[tuple[float, ev.Event]] = []

        async def record(channel: trio.MemoryReceiveChannel[ev.Event]) -> None:
            async for event in channel:  # the channel closes when the session ends
                received.append((trio.current_time(), event))

        nursery.start_soon(record, room.event_channel())
        start = trio.current_time()
        with pytest.raises(ConnectError) as info:
            await room.connect(URL, TOKEN, RoomOptions(connect_timeout=7))
        assert info.value.message == "no join response within 7s"
        assert server.dialed == [("sfu.invalid", 7880, False)]
        assert server.request_target.startswith("/rtc/v1?")
        no_secret(server.request_target)
        await trio.testing.wait_all_tasks_blocked()
        assert [type(e) for _, e in received] == [ev.Disconnected]
        at, ended = received[0]
        assert isinstance(ended, ev.Disconnected)
        assert ended.reason == DisconnectReason.JOIN_FAILURE
        # Virtual time: the core's join timer fired exactly 7 s after connect() began.
        assert at - start == pytest.approx(7.0)
        with trio.fail_after(1):
            await server.closed.wait()


async def test_a_401_is_a_connect_error_with_the_reason_and_never_the_token(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeServer(reject=(401, b"invalid token: " + TOKEN.encode()))
    async with trio.open_nursery() as nursery:
        room = Room(dialer=server.dialer(nursery))
        with pytest.raises(ConnectError) as info:
            async with room.connect(URL, TOKEN):
                raise AssertionError("the block must not run")  # pragma: no cover
    message = info.value.message
    assert message == "the server refused the token (HTTP 401): invalid token: <redacted>"
    for text in (message, str(info.value), repr(info.value), repr(room.connect(URL, TOKEN))):
        no_secret(text)
    assert info.value.__cause__ is None


async def test_a_refused_dial_is_a_connect_error_not_an_os_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def refuse(host: str, port: int, tls: bool) -> trio.abc.Stream:
        raise OSError(errno.ECONNREFUSED, "Connect call failed")

    with pytest.raises(ConnectError) as info:
        await Room(dialer=refuse).connect("wss://sfu.invalid", TOKEN)
    assert info.value.message == (
        "could not reach the server: could not connect to sfu.invalid:443: Connection refused"
    )


async def test_a_stream_that_breaks_mid_handshake_is_a_connect_error_not_a_trio_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def broken(host: str, port: int, tls: bool) -> trio.abc.Stream:
        client, server = trio.testing.memory_stream_pair()
        await server.aclose()
        return client

    with pytest.raises(ConnectError) as info:
        await Room(dialer=broken).connect(URL, TOKEN)
    assert info.value.message == (
        "could not reach the server: could not connect to sfu.invalid:7880: "
        "MemoryReceiveStream was closed"
    )


async def test_cancelling_the_block_while_joining_leaves_nothing_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeServer()
    async with trio.open_nursery() as nursery:
        room = Room(dialer=server.dialer(nursery))
        with trio.move_on_after(1) as scope:
            async with room.connect(URL, TOKEN, RoomOptions(connect_timeout=30)):
                raise AssertionError("the block must not run")  # pragma: no cover
        assert scope.cancelled_caught
        assert room._session.done.is_set()
        assert not room.isconnected()
        with trio.fail_after(1):
            await server.closed.wait()
        assert server.close_code == 1000  # a clean close, not a dropped socket


async def test_cancelling_an_awaited_connect_leaves_nothing_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeServer()
    async with trio.open_nursery() as nursery:
        room = Room(dialer=server.dialer(nursery))
        with trio.move_on_after(2):
            await room.connect(URL, TOKEN, RoomOptions(connect_timeout=30))
        assert room._session.done.is_set()
        with trio.fail_after(1):
            await server.closed.wait()
        assert server.close_code == 1000


async def test_a_connect_cancelled_at_its_first_checkpoint_leaves_nothing_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The deadline has passed before connect() first yields (as a 20 ms deadline does on a
    loaded machine): the session task it just spawned must still be ended."""
    server = FakeServer()
    async with trio.open_nursery() as nursery:
        room = Room(dialer=server.dialer(nursery))
        with trio.move_on_after(0) as scope:
            await room.connect(URL, TOKEN, RoomOptions(connect_timeout=30))
        assert scope.cancelled_caught and not room.isconnected()
        assert room._session.done.is_set()
        with trio.move_on_after(0) as again:  # and the room can connect again
            await room.connect(URL, TOKEN, RoomOptions(connect_timeout=30))
        assert again.cancelled_caught and room._session.done.is_set()


async def test_an_event_channel_opened_after_the_session_ended_is_closed_at_once() -> None:
    async def refuse(host: str, port: int, tls: bool) -> trio.abc.Stream:
        raise OSError(errno.ECONNREFUSED, "refused")

    room = Room(dialer=refuse)
    with pytest.raises(ConnectError):
        await room.connect(URL, TOKEN)
    channel = room.event_channel()
    assert [e async for e in channel] == []


def test_unwrap_finds_the_one_real_error() -> None:
    error = ValueError("boom")
    cancelled = trio.Cancelled._create()  # type: ignore[attr-defined]
    assert unwrap(BaseExceptionGroup("g", [cancelled, error])) is error
    assert unwrap(BaseExceptionGroup("g", [BaseExceptionGroup("h", [error])])) is error
    assert unwrap(BaseExceptionGroup("g", [cancelled])) is cancelled
    two = BaseExceptionGroup("g", [error, KeyError("k")])
    assert unwrap(two) is two


def test_connecting_is_awaitable_and_an_async_context_manager() -> None:
    connecting = Room().connect(URL, TOKEN)
    assert isinstance(connecting, Connecting)
    assert repr(connecting) == "<Connecting to 'ws://sfu.invalid:7880'>"
    connecting.close()
