"""Errors people can act on: every way `Room.connect` fails raises `ConnectError`, quickly,
with the server's reason, and never with the token in it.

The real livekit-server refuses bad tokens (it echoes the token in its 401 body, so redaction
is exercised for real) and unknown paths; small servers written here with anyio and wsproto
play the parts a real server cannot: one that never answers, one that upgrades and then says
nothing, one that hangs up, one that echoes the whole request. Everything listens on the
confined address only. Each case runs on asyncio and on trio.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import anyio.abc
import pytest
import wsproto
import wsproto.events as wse

from harness import Confinement, LiveKitServer, mint_token
from harness.server import free_port
from lkproto import Config
from lkproto.transports.anyio import ConnectError, Room, RoomOptions, RtcConfiguration

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(60)]

WRONG_SECRET = "not-the-server-secret-0123456789abcdefghijklmnop"
CONNECT_TIMEOUT = 5.0
SLACK = 3.0  # generous: a CI machine may be slow, but never this slow
SIG_WINDOW = 12  # no run of this many characters of the token's signature may appear


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


def options(confinement: Confinement, timeout: float = CONNECT_TIMEOUT) -> RoomOptions:
    return RoomOptions(
        rtc_config=RtcConfiguration(host_addresses=[confinement.host]), connect_timeout=timeout
    )


async def failed_connect(url: str, token: str, opts: RoomOptions) -> tuple[ConnectError, float]:
    """Connect, expecting `ConnectError`; check the room is left cleanly. Returns (exc, secs)."""
    room = Room()
    start = anyio.current_time()
    with pytest.raises(ConnectError) as info:
        await room.connect(url, token, opts)
    elapsed = anyio.current_time() - start
    assert room.isconnected() is False
    await room.disconnect()
    await room.disconnect()  # a second disconnect is harmless too
    assert room.isconnected() is False
    return info.value, elapsed


def assert_token_hidden(exc: ConnectError, token: str, caplog: pytest.LogCaptureFixture) -> None:
    """Neither the token nor a run of its signature in the error, its chain, or any log."""
    chain: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        link = pending.pop()
        if link is not None and not any(link is seen for seen in chain):
            chain.append(link)
            pending += [link.__cause__, link.__context__]
    texts = [exc.message, "".join(traceback.format_exception(exc))]
    texts += [text for link in chain for text in (str(link), repr(link))]
    texts.append(caplog.text)
    texts += [record.getMessage() for record in caplog.records]
    signature = token.rsplit(".", 1)[1]
    windows = {signature[i : i + SIG_WINDOW] for i in range(len(signature) - SIG_WINDOW + 1)}
    for text in texts:
        assert token not in text
        leaked = [w for w in windows if w in text]
        assert leaked == [], f"part of the token's signature leaked: {text!r}"


# -- the real server refuses ------------------------------------------------------------------


async def test_token_signed_with_the_wrong_secret(
    livekit_server: LiveKitServer,
    confinement: Confinement,
    room_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = mint_token("errors-user", room_name, api_secret=WRONG_SECRET)
    exc, elapsed = await failed_connect(livekit_server.url, token, options(confinement))
    assert elapsed < CONNECT_TIMEOUT + SLACK
    message = str(exc)
    assert message.startswith("the server refused the token (HTTP 401)")
    # The server's reason, with the token it echoed replaced.
    assert "invalid token: <redacted>, error: token signature is invalid" in message
    assert exc.message == message
    assert_token_hidden(exc, token, caplog)


async def test_expired_token(
    livekit_server: LiveKitServer,
    confinement: Confinement,
    room_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Issued two hours ago with a one-hour lifetime: expired an hour ago.
    token = mint_token("errors-user", room_name, now=int(time.time()) - 7200, ttl=3600)
    exc, elapsed = await failed_connect(livekit_server.url, token, options(confinement))
    assert elapsed < CONNECT_TIMEOUT + SLACK
    message = str(exc)
    assert message.startswith("the server refused the token (HTTP 401)")
    assert "invalid token: <redacted>" in message
    assert "token is expired" in message
    assert_token_hidden(exc, token, caplog)


def straddling_token(room_name: str) -> str:
    """A wrong-secret token so long that the 2 KiB cut of the 401 body falls in its signature.

    The body is "invalid token: <token>, error: ...": cut at 2048 bytes, it would keep the
    token's first 2033 characters, and the last 43 are the signature.
    """
    for size in range(1200, 1800):
        token = mint_token("errors-user", room_name, metadata="m" * size, api_secret=WRONG_SECRET)
        kept_of_signature = 2033 - (len(token) - 43)
        if 20 <= kept_of_signature <= 33:
            return token
    raise AssertionError("no metadata size puts the cut inside the signature")  # pragma: no cover


async def test_echoed_token_cut_at_the_body_limit_is_still_hidden(
    livekit_server: LiveKitServer,
    confinement: Confinement,
    room_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = straddling_token(room_name)
    exc, elapsed = await failed_connect(livekit_server.url, token, options(confinement))
    assert elapsed < CONNECT_TIMEOUT + SLACK
    message = str(exc)
    assert message.startswith("the server refused the token (HTTP 401)")
    assert "invalid token: <redacted>, error: token signature is invalid" in message
    assert_token_hidden(exc, token, caplog)


async def test_wrong_path(
    livekit_server: LiveKitServer,
    confinement: Confinement,
    make_token: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # /nope/rtc/v1 is a 404, so is the /nope/rtc fallback: the second 404 is the answer.
    token = make_token("errors-user")
    url = f"{livekit_server.url}/nope"
    exc, elapsed = await failed_connect(url, token, options(confinement))
    assert elapsed < CONNECT_TIMEOUT + SLACK
    message = str(exc)
    assert message.startswith("the signal connection failed with HTTP 404")
    assert "404 page not found" in message
    assert_token_hidden(exc, token, caplog)


async def test_unreachable_url(
    confinement: Confinement,
    make_token: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = make_token("errors-user")
    port = free_port(confinement.host)  # bound and released: nothing listens there
    url = f"ws://{confinement.host}:{port}"
    exc, elapsed = await failed_connect(url, token, options(confinement))
    assert elapsed < CONNECT_TIMEOUT + SLACK
    assert str(exc) == (
        f"could not reach the server: could not connect to {confinement.host}:{port}: "
        "All connection attempts failed: Connection refused"
    )
    assert_token_hidden(exc, token, caplog)


async def test_malformed_url_fails_before_any_io(
    make_token: Callable[..., str], confinement: Confinement, caplog: pytest.LogCaptureFixture
) -> None:
    token = make_token("errors-user")
    exc, elapsed = await failed_connect("ftp://nowhere/", token, options(confinement))
    assert elapsed < SLACK
    assert str(exc) == "connect: 'ftp://nowhere/' is not a ws://, wss://, http:// or https:// URL"
    assert_token_hidden(exc, token, caplog)


# -- servers that misbehave ---------------------------------------------------------------------

Handler = Callable[[anyio.abc.SocketStream], Awaitable[None]]


@contextlib.asynccontextmanager
async def serving(host: str, handler: Handler) -> AsyncIterator[int]:
    """Serve `handler` on a fresh port of the confined address; yield the port."""
    listener = await anyio.create_tcp_listener(local_host=host)
    port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handler)
        try:
            yield port
        finally:
            tg.cancel_scope.cancel()


async def read_request(stream: anyio.abc.SocketStream) -> tuple[wsproto.WSConnection, bytes]:
    """Read one WebSocket upgrade request; return the server connection and the raw bytes."""
    ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    raw = b""
    while True:
        data = await stream.receive()
        raw += data
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, wse.Request):
                return ws, raw


async def test_server_that_never_answers(
    confinement: Confinement, make_token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    token = make_token("errors-user")
    received: list[bytes] = []
    hung_up = anyio.Event()

    async def silent(stream: anyio.abc.SocketStream) -> None:
        with contextlib.suppress(anyio.BrokenResourceError):
            async for data in stream:
                received.append(data)
        hung_up.set()

    async with serving(confinement.host, silent) as port:
        url = f"ws://{confinement.host}:{port}"
        exc, elapsed = await failed_connect(url, token, options(confinement, timeout=1.0))
        with anyio.fail_after(5):
            await hung_up.wait()  # the client closed its socket
    assert 1.0 <= elapsed < 1.0 + SLACK
    assert str(exc) == "no join response within 1s"
    request = b"".join(received)
    assert request.startswith(b"GET /rtc/v1?join_request=")
    assert f"\r\nauthorization: bearer {token.lower()}\r\n".encode() in request.lower()
    assert_token_hidden(exc, token, caplog)


async def test_server_that_upgrades_but_never_sends_the_join(
    confinement: Confinement, make_token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    token = make_token("errors-user")
    close_codes: list[int] = []
    closed = anyio.Event()

    async def upgrade_only(stream: anyio.abc.SocketStream) -> None:
        ws, _ = await read_request(stream)
        await stream.send(ws.send(wse.AcceptConnection()))
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            while not closed.is_set():
                ws.receive_data(await stream.receive())
                for event in ws.events():
                    if isinstance(event, wse.CloseConnection):
                        close_codes.append(event.code)
                        await stream.send(ws.send(event.response()))
                        closed.set()
        closed.set()

    async with serving(confinement.host, upgrade_only) as port:
        url = f"ws://{confinement.host}:{port}"
        exc, elapsed = await failed_connect(url, token, options(confinement, timeout=1.0))
        with anyio.fail_after(5):
            await closed.wait()
    assert 1.0 <= elapsed < 1.0 + SLACK
    assert str(exc) == "no join response within 1s"
    assert close_codes == [1000]  # the client said goodbye properly
    assert_token_hidden(exc, token, caplog)


async def test_server_that_hangs_up_before_answering(
    confinement: Confinement, make_token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    token = make_token("errors-user")

    async def hang_up(stream: anyio.abc.SocketStream) -> None:
        await read_request(stream)
        await stream.aclose()

    async with serving(confinement.host, hang_up) as port:
        url = f"ws://{confinement.host}:{port}"
        exc, elapsed = await failed_connect(url, token, options(confinement))
    assert elapsed < CONNECT_TIMEOUT + SLACK
    assert str(exc) == "the signal closed before the join (code None)"
    assert_token_hidden(exc, token, caplog)


async def test_server_that_echoes_the_request_in_a_rejection(
    confinement: Confinement, make_token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    # A misconfigured proxy that answers 403 with everything we sent, Authorization included.
    token = make_token("errors-user")
    targets: list[str] = []

    async def echo(stream: anyio.abc.SocketStream) -> None:
        ws, raw = await read_request(stream)
        targets.append(raw.split(b" ", 2)[1].decode())
        await stream.send(
            ws.send(wse.RejectConnection(status_code=403, has_body=True))
            + ws.send(wse.RejectData(data=b"forbidden: " + raw, body_finished=True))
        )
        await stream.aclose()

    async with serving(confinement.host, echo) as port:
        url = f"ws://{confinement.host}:{port}"
        exc, elapsed = await failed_connect(url, token, options(confinement))
    assert elapsed < CONNECT_TIMEOUT + SLACK
    message = str(exc)
    assert message.startswith("the server refused the token (HTTP 403)")
    assert message.endswith("\r\nAuthorization: Bearer <redacted>")
    assert len(targets) == 1 and targets[0].startswith("/rtc/v1?join_request=")
    assert_token_hidden(exc, token, caplog)


async def test_404_falls_back_to_rtc_then_fails(
    confinement: Confinement, make_token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    token = make_token("errors-user")
    targets: list[str] = []

    async def not_found(stream: anyio.abc.SocketStream) -> None:
        ws, raw = await read_request(stream)
        targets.append(raw.split(b" ", 2)[1].decode())
        await stream.send(
            ws.send(wse.RejectConnection(status_code=404, has_body=True))
            + ws.send(wse.RejectData(data=b"no such path", body_finished=True))
        )
        await stream.aclose()

    async with serving(confinement.host, not_found) as port:
        url = f"ws://{confinement.host}:{port}/base"
        exc, elapsed = await failed_connect(url, token, options(confinement))
    assert elapsed < CONNECT_TIMEOUT + SLACK
    assert [t.split("?", 1)[0] for t in targets] == ["/base/rtc/v1", "/base/rtc"]
    assert str(exc).startswith("the signal connection failed with HTTP 404")
    assert "no such path" in str(exc)
    assert_token_hidden(exc, token, caplog)


async def test_a_signal_message_over_the_configured_bound_closes_with_1009(
    livekit_server: LiveKitServer,
    confinement: Confinement,
    room_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`Config.max_signal_message_bytes` reaches the WebSocket: the JoinResponse (a few
    hundred bytes at least) is over 64, so the join fails at once, with the reason."""
    token = mint_token("errors-user", room_name)
    room = Room(config=Config(max_signal_message_bytes=64))
    start = anyio.current_time()
    with pytest.raises(ConnectError) as info:
        await room.connect(livekit_server.url, token, options(confinement))
    assert (
        str(info.value) == "the signal closed before the join (code 1009: signal message too large)"
    )
    assert anyio.current_time() - start < CONNECT_TIMEOUT + SLACK
    await room.disconnect()
    assert_token_hidden(info.value, token, caplog)
