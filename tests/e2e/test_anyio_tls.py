"""`wss://`: the Room joins through TLS, verifying the server's certificate.

livekit-server speaks plain HTTP here, so a relay written with anyio terminates TLS on the
confined address and forwards the bytes both ways to the real server. Its certificate is a
throwaway self-signed one for that IP address, made for this test with `cryptography`.
With an `ssl_context` that trusts it the join works; with default verification it must fail
with a `ConnectError` that says the certificate could not be verified. Both anyio backends.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import anyio.abc
import pytest
from anyio.streams.tls import TLSListener

from harness import Confinement, LiveKitServer
from harness.certs import SelfSigned
from lkproto.transports.anyio import ConnectError, Room, RoomOptions, RtcConfiguration

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(60)]

CONNECT_TIMEOUT = 5.0
SLACK = 3.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Certificate(SelfSigned):
    """A self-signed certificate for one IP address, and its key, as PEM files."""

    def __init__(self, host: str, directory: Path) -> None:
        super().__init__(host, directory, f"lkproto test {host}")


@pytest.fixture
def certificate(confinement: Confinement, tmp_path: Path) -> Certificate:
    return Certificate(confinement.host, tmp_path)


@contextlib.asynccontextmanager
async def tls_relay(
    certificate: Certificate, host: str, upstream: tuple[str, int]
) -> AsyncIterator[tuple[int, list[int]]]:
    """A TLS-terminating relay on `host` to `upstream`; yields (port, accepted handshakes)."""
    handshakes: list[int] = []

    async def pipe(
        source: anyio.abc.ByteReceiveStream,
        sink: anyio.abc.ByteSendStream,
        done: Callable[[], None],
    ) -> None:
        # A TLS sink whose peer has already closed (close_notify) raises EndOfStream on send:
        # as with a broken or closed one, the piping is over (a race at the end of a test).
        with contextlib.suppress(
            anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream
        ):
            async for chunk in source:
                await sink.send(chunk)
        done()

    async def relay(client: anyio.abc.ByteStream) -> None:
        handshakes.append(1)
        async with (
            client,
            await anyio.connect_tcp(*upstream) as server,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(pipe, client, server, tg.cancel_scope.cancel)
            tg.start_soon(pipe, server, client, tg.cancel_scope.cancel)

    tcp = await anyio.create_tcp_listener(local_host=host)
    port = int(tcp.extra(anyio.abc.SocketAttribute.local_port))
    listener = TLSListener(tcp, certificate.server_context(), standard_compatible=False)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, relay)
        try:
            yield port, handshakes
        finally:
            tg.cancel_scope.cancel()


def options(confinement: Confinement, ssl_context: ssl.SSLContext | None) -> RoomOptions:
    return RoomOptions(
        rtc_config=RtcConfiguration(host_addresses=[confinement.host]),
        connect_timeout=CONNECT_TIMEOUT,
        ssl_context=ssl_context,
    )


async def test_wss_join_with_a_trusted_certificate(
    livekit_server: LiveKitServer,
    confinement: Confinement,
    certificate: Certificate,
    make_token: Callable[..., str],
) -> None:
    upstream = (livekit_server.host, livekit_server.port)
    async with tls_relay(certificate, confinement.host, upstream) as (port, handshakes):
        room = Room()
        url = f"wss://{confinement.host}:{port}"
        await room.connect(
            url, make_token("tls-user"), options(confinement, certificate.client_context())
        )
        try:
            assert room.isconnected() is True
            assert room.local_participant.identity == "tls-user"
            assert room.local_participant.sid.startswith("PA_")
            assert handshakes == [1]  # the signal really went through the relay
        finally:
            await room.disconnect()
        assert room.isconnected() is False


async def test_wss_default_verification_refuses_a_self_signed_certificate(
    livekit_server: LiveKitServer,
    confinement: Confinement,
    certificate: Certificate,
    make_token: Callable[..., str],
) -> None:
    upstream = (livekit_server.host, livekit_server.port)
    token = make_token("tls-user")
    async with tls_relay(certificate, confinement.host, upstream) as (port, _):
        room = Room()
        start = anyio.current_time()
        with pytest.raises(ConnectError) as info:
            await room.connect(
                f"wss://{confinement.host}:{port}", token, options(confinement, None)
            )
        elapsed = anyio.current_time() - start
    assert elapsed < CONNECT_TIMEOUT + SLACK
    message = str(info.value)
    assert message.startswith(
        f"could not reach the server: could not connect to {confinement.host}:{port}: "
        "TLS certificate verification failed: "
    )
    assert "RoomOptions(ssl_context=...)" in message
    assert token not in message
    assert room.isconnected() is False
    await room.disconnect()


async def test_wss_to_a_plain_server_fails_clearly(
    livekit_server: LiveKitServer,
    confinement: Confinement,
    certificate: Certificate,
    make_token: Callable[..., str],
) -> None:
    # The server speaks HTTP, not TLS: the handshake fails, it does not hang.
    room = Room()
    url = f"wss://{livekit_server.host}:{livekit_server.port}"
    start = anyio.current_time()
    with pytest.raises(ConnectError) as info:
        await room.connect(
            url, make_token("tls-user"), options(confinement, certificate.client_context())
        )
    assert anyio.current_time() - start < CONNECT_TIMEOUT + SLACK
    message = str(info.value)
    assert message.startswith(
        f"could not reach the server: could not connect to "
        f"{livekit_server.host}:{livekit_server.port}: "
    )
    assert "TLS" in message or "SSL" in message  # OpenSSL's wording varies by version
    assert room.isconnected() is False
