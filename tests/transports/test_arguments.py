"""Issue 19 items 6 to 8, on every adapter: wrong arguments are refused at the call with a
clear TypeError/ValueError (nothing sent, nothing allocated, the session unharmed), a second
registration of an RPC method replaces the first (as in livekit.rtc), and a Room connects
again after a disconnect or a failed connect (as in livekit.rtc).

The Rooms join the memory transport (`MemoryServer`), so no server is needed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from lkproto.transports import anyio as lk_anyio
from lkproto.transports import threaded
from lkproto.transports import trio as lk_trio
from lkproto.transports.testing import MemoryServer

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

ROOMS: dict[str, Callable[[], Any]] = {
    "anyio": lk_anyio.Room,
    "trio": lk_trio.Room,
    "threaded": threaded.Room,
}

# (call, expected exception, message fragment): on a connected local participant `lp`.
BAD_CALLS: list[tuple[str, Callable[[Any], Any], type[Exception], str]] = [
    ("int payload", lambda lp: lp.publish_data(123), TypeError, "payload must be bytes or str"),
    (
        "oversized payload",
        lambda lp: lp.publish_data(b"x" * 70_000),
        ValueError,
        "cannot fit one data packet",
    ),
    (
        "str destinations",
        lambda lp: lp.publish_data(b"x", destination_identities="bob"),
        TypeError,
        "destination_identities must be a list of str, not str",
    ),
    (
        "int destination",
        lambda lp: lp.send_text("x", destination_identities=[1]),
        TypeError,
        "destination_identities must hold str, not int",
    ),
    (
        "int attribute",
        lambda lp: lp.set_attributes({"a": 1}),
        TypeError,
        "attributes must map str to str",
    ),
    ("bytes text", lambda lp: lp.send_text(b"x"), TypeError, "text must be str, not bytes"),
    ("str bytes", lambda lp: lp.send_bytes("x"), TypeError, "data must be bytes, not str"),
    (
        "empty method",
        lambda lp: lp.perform_rpc(destination_identity="bob", method="", payload=""),
        ValueError,
        "the method name is empty",
    ),
    (
        "long method",
        lambda lp: lp.perform_rpc(destination_identity="bob", method="m" * 100, payload=""),
        ValueError,
        r"over Config.max_rpc_method_bytes \(64\)",
    ),
    (
        "no destination",
        lambda lp: lp.perform_rpc(destination_identity="", method="m", payload=""),
        ValueError,
        "destination_identity is empty",
    ),
    (
        "int metadata",
        lambda lp: lp.set_metadata(5),
        TypeError,
        "metadata must be str, not int",
    ),
]


def _bad_registrations(lp: Any) -> None:
    for name, handler, error, fragment in [
        ("", lambda d: "x", ValueError, "the method name is empty"),
        ("m" * 100, lambda d: "x", ValueError, "over Config.max_rpc_method_bytes"),
        (5, lambda d: "x", TypeError, "method must be str, not int"),
        ("ok", 42, TypeError, "handler must be callable, not int"),
    ]:
        with pytest.raises(error, match=fragment):
            lp.register_rpc_method(name, handler)
    decorate = lp.register_rpc_method("fine")
    with pytest.raises(TypeError, match="handler must be callable"):
        decorate("not a function")
    with pytest.raises(ValueError, match="the method name is empty"):
        lp.register_rpc_method("")  # the decorator form fails at the call, not later


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _call(room: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """Run a verb of any adapter's Room: the threaded one's blocking verbs in a thread."""
    if isinstance(room, threaded.Room):
        return await anyio.to_thread.run_sync(fn, *args)
    result = fn(*args)
    if isinstance(result, Awaitable):
        result = await result
    return result


def _rooms(backend: str) -> list[str]:
    return ["anyio", "threaded"] if backend == "asyncio" else ["anyio", "trio"]


async def test_wrong_arguments_are_refused_at_the_call(anyio_backend: str) -> None:
    async with MemoryServer(update_interval=0) as server:
        for kind in _rooms(anyio_backend):
            room = ROOMS[kind]()
            _bad_registrations(room.local_participant)
            for url, token, error, fragment in [
                (server.url, b"token", TypeError, "connect: token must be str, not bytes"),
                (None, "t", TypeError, "connect: url must be str, not NoneType"),
                ("", "t", ValueError, "connect: url is empty"),
                (server.url, "", ValueError, "connect: token is empty"),
            ]:
                with pytest.raises(error, match=fragment):
                    await _call(room, room.connect, url, token)
            with pytest.raises(TypeError, match="options must be RoomOptions or None, not dict"):
                await _call(room, room.connect, server.url, "t", {})
            await _call(room, room.connect, server.url, server.token(f"{kind}-a"))
            lp = room.local_participant
            for name, verb, error, fragment in BAD_CALLS:
                with pytest.raises(error, match=fragment):
                    await _call(room, verb, lp)
                assert room.isconnected(), name
            await _call(room, lp.publish_data, b"still fine")  # the session is unharmed
            await _call(room, room.disconnect)
        assert dict(server.room.participants) == {}


async def test_a_second_registration_replaces_the_handler(anyio_backend: str) -> None:
    async with MemoryServer(update_interval=0) as server:
        caller = lk_anyio.Room()
        await caller.connect(server.url, server.token("caller"))
        for kind in _rooms(anyio_backend):
            callee = ROOMS[kind]()
            identity = f"{kind}-callee"
            callee.local_participant.register_rpc_method("m", lambda d: "first")
            await _call(callee, callee.connect, server.url, server.token(identity))
            callee.local_participant.register_rpc_method("m", lambda d: "second")
            answer = await caller.local_participant.perform_rpc(
                destination_identity=identity, method="m", payload=""
            )
            assert answer == "second"
            await _call(callee, callee.disconnect)
        await caller.disconnect()


async def test_a_room_connects_again_after_a_disconnect(anyio_backend: str) -> None:
    async with MemoryServer(update_interval=0) as server:
        caller = lk_anyio.Room()
        await caller.connect(server.url, server.token("caller"))
        for kind in _rooms(anyio_backend):
            room = ROOMS[kind]()
            identity = f"{kind}-again"
            room.local_participant.register_rpc_method("who", lambda d: "me")
            await _call(room, room.connect, server.url, server.token(identity))
            with pytest.raises(Exception, match="connected or connecting; disconnect"):
                await _call(room, room.connect, server.url, server.token(identity))
            await _call(room, room.disconnect)
            assert not room.isconnected()
            await _call(room, room.connect, server.url, server.token(identity))
            assert room.isconnected() and room.local_participant.identity == identity
            answer = await caller.local_participant.perform_rpc(
                destination_identity=identity, method="who", payload=""
            )
            assert answer == "me"  # registered before the first connect: carried over
            await _call(room, room.disconnect)
        await caller.disconnect()


async def test_a_cancelled_send_tells_the_reader_in_plain_words(
    anyio_backend: str, tmp_path: Any
) -> None:
    # Issue 19 item 5: the reason a peer sees names no Python exception ("CancelledError").
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * 600_000)
    async with MemoryServer(update_interval=0) as server:
        alice, bob = lk_anyio.Room(), lk_anyio.Room()
        failures: list[str] = []
        ended = anyio.Event()

        async def on_file(reader: Any, identity: str) -> None:
            try:
                await reader.read_all()
            except Exception as exc:
                failures.append(str(exc))
            ended.set()

        bob.register_byte_stream_handler("files", on_file)
        await alice.connect(server.url, server.token("alice"))
        await bob.connect(server.url, server.token("bob"))
        with anyio.CancelScope() as scope:
            await alice.local_participant.send_file(
                source, topic="files", on_progress=lambda sent, total: scope.cancel()
            )
        with anyio.fail_after(10):
            await ended.wait()
        assert failures == ["the sender aborted the stream: the sender cancelled the transfer"]
        await alice.disconnect()
        await bob.disconnect()
